//! Providers' response times as distributions that merge (the provider
//! comparison; `latency` is Tally's own request latency): a call's milliseconds fall in
//! one of [`BUCKETS`] log-linear buckets (exact below 64 ms, then 32 per
//! doubling), and a distribution is a count per bucket. Counts add, so the
//! distribution of a provider, a month or the deployment is the sum of its
//! rollups' and no view reads the events again.
//!
//! Error bound: a percentile is answered as the middle of the bucket that
//! holds it, which is exact below 64 ms and within 1/64 (1.6 %) of the
//! true value above (a bucket spans 1/32 of its lower bound).

use std::collections::BTreeMap;

/// Below this many milliseconds every millisecond has its own bucket.
const EXACT_BELOW: u64 = 64;
/// Buckets per doubling above [`EXACT_BELOW`].
const PER_DOUBLING: u64 = 32;
/// The slowest response a bucket holds: the ingest API's bound on
/// `response_time_ms` (a day).
pub const MAX_MS: u64 = 86_400_000;
/// How many buckets there are.
pub const BUCKETS: u16 = bucket_of(MAX_MS) + 1;

/// The bucket of a response time (clamped to [`MAX_MS`]).
pub const fn bucket_of(ms: u64) -> u16 {
    let ms = if ms > MAX_MS { MAX_MS } else { ms };
    if ms < EXACT_BELOW {
        return ms as u16;
    }
    // e = floor(log2 ms) >= 6; the next five bits below the top one.
    let e = 63 - ms.leading_zeros() as u64;
    let sub = (ms >> (e - 5)) - PER_DOUBLING;
    (EXACT_BELOW + (e - 6) * PER_DOUBLING + sub) as u16
}

/// The milliseconds bucket `b` holds: `[low, high)`.
pub fn bounds(b: u16) -> (u64, u64) {
    let b = b as u64;
    if b < EXACT_BELOW {
        return (b, b + 1);
    }
    let e = 6 + (b - EXACT_BELOW) / PER_DOUBLING;
    let sub = (b - EXACT_BELOW) % PER_DOUBLING;
    let width = 1u64 << (e - 5);
    let low = (PER_DOUBLING + sub) * width;
    (low, low + width)
}

/// The value a percentile in bucket `b` is reported as: the bucket's
/// middle (its only value below 64 ms).
pub fn representative(b: u16) -> u64 {
    let (low, high) = bounds(b);
    if high - low == 1 { low } else { low + (high - low) / 2 }
}

/// A distribution of response times: calls per bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    counts: BTreeMap<u16, i64>,
}

impl Histogram {
    /// One call that took `ms`.
    pub fn record(&mut self, ms: u64) {
        self.add_bucket(bucket_of(ms), 1);
    }

    /// `n` calls in bucket `b` (as the store keeps them).
    pub fn add_bucket(&mut self, b: u16, n: i64) {
        if n != 0 {
            *self.counts.entry(b).or_default() += n;
        }
    }

    /// Adds another distribution to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (&b, &n) in &other.counts {
            self.add_bucket(b, n);
        }
    }

    /// Calls counted.
    pub fn count(&self) -> i64 {
        self.counts.values().sum()
    }

    /// The buckets with calls, in order.
    pub fn buckets(&self) -> impl Iterator<Item = (u16, i64)> + '_ {
        self.counts.iter().map(|(&b, &n)| (b, n))
    }

    /// The `q`-quantile (0 < q <= 1) by the nearest-rank rule, within the
    /// module's error bound; `None` without calls.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total <= 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as i64).max(1);
        let mut seen = 0;
        for (&b, &n) in &self.counts {
            seen += n;
            if seen >= rank {
                return Some(representative(b));
            }
        }
        self.counts.keys().next_back().map(|&b| representative(b))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn buckets_are_exact_below_64_ms_then_32_per_doubling() {
        for ms in 0..64 {
            assert_eq!(bounds(bucket_of(ms)), (ms, ms + 1));
        }
        assert_eq!(bucket_of(64), 64);
        assert_eq!(bounds(64), (64, 66));
        assert_eq!(bucket_of(127), 95);
        assert_eq!(bucket_of(128), 96);
        assert_eq!(bounds(96), (128, 132));
        assert_eq!(bucket_of(u64::MAX), bucket_of(MAX_MS));
        assert_eq!(BUCKETS, bucket_of(MAX_MS) + 1);
    }

    #[test]
    fn buckets_tile_the_range_without_gaps() {
        let mut next = 0;
        for b in 0..BUCKETS {
            let (low, high) = bounds(b);
            assert_eq!(low, next, "bucket {b} starts where the last ended");
            assert!(high > low);
            assert_eq!(bucket_of(low), b);
            assert_eq!(bucket_of(high - 1), b);
            next = high;
        }
        assert!(next > MAX_MS);
    }

    #[test]
    fn an_empty_distribution_has_no_percentiles() {
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    proptest! {
        /// Every percentile is within the stated bound of the exact
        /// nearest-rank percentile of the same calls, and merging two
        /// distributions is the distribution of all their calls.
        #[test]
        fn percentiles_are_within_the_bound(
            a in prop::collection::vec(0u64..MAX_MS, 1..300),
            b in prop::collection::vec(0u64..5_000, 0..300),
            q in prop::sample::select(vec![0.5, 0.9, 0.95, 0.99, 1.0]),
        ) {
            let (mut ha, mut hb, mut all) = (Histogram::default(), Histogram::default(), Histogram::default());
            a.iter().for_each(|&ms| { ha.record(ms); all.record(ms) });
            b.iter().for_each(|&ms| { hb.record(ms); all.record(ms) });
            ha.merge(&hb);
            prop_assert_eq!(&ha, &all);
            let mut sorted: Vec<u64> = a.iter().chain(&b).copied().collect();
            sorted.sort_unstable();
            let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
            let exact = sorted[rank - 1];
            let got = all.quantile(q).unwrap();
            let err = got.abs_diff(exact) as f64;
            prop_assert!(err <= exact as f64 / 64.0, "q {} exact {} got {}", q, exact, got);
        }
    }
}
