use std::collections::BTreeMap;

use chrono::Utc;
use rust_decimal::Decimal;

use super::cost::INPUT_CLASSES;
use super::*;
use crate::domain::money::{Nanos, Price};
use crate::domain::provider::Provider;
use chrono::TimeZone;
use proptest::prelude::*;

fn p(s: &str) -> Option<Price> {
    Some(Price::parse(s).unwrap())
}

/// Rates from `(field, price)` pairs.
fn class(pairs: &[(RateField, &str)]) -> ClassRates {
    let mut r = ClassRates::default();
    for (f, s) in pairs {
        r.set(*f, p(s));
    }
    r
}

fn flat(pairs: &[(RateField, &str)]) -> Rates {
    Rates { base: class(pairs), ..Rates::default() }
}

fn llm(input: &str, output: &str, cached: Option<&str>) -> Rates {
    let mut r = flat(&[(RateField::InputPerMillion, input), (RateField::OutputPerMillion, output)]);
    r.base.cached_input_per_million = cached.and_then(p);
    r
}

fn q(i: u64, o: u64, c: u64, u: u64) -> Quantities {
    Quantities::default().with(Count::Input, i).with(Count::Output, o).with(Count::CachedInput, c).with_units(u)
}

use RateField::*;

/// The classes the stack-only pricing sums as input are the input
/// classes; each count has one name and one label, and the parts
/// describe themselves in that order.
#[test]
fn classes_and_counts_agree() {
    for c in CostClass::ALL {
        assert_eq!(c.is_input(), (c as usize) < INPUT_CLASSES, "{c:?}");
        assert_eq!(CostClass::ALL[c as usize], c);
    }
    let mut q = Quantities::default();
    for (i, c) in Count::ALL.into_iter().enumerate() {
        assert_eq!(Count::ALL.iter().filter(|d| d.field() == c.field() || d.label() == c.label()).count(), 1);
        q[c] = i as u64 * 1000;
        assert_eq!(q[c], i as u64 * 1000);
    }
    assert_eq!(q[Count::AudioOutput], 7000);
    q.service_tier = ServiceTier::Flex;
    assert_eq!(
        q.describe_parts(),
        "cache read 2,000 · cache write 5m 3,000 · cache write 1h 4,000 · audio in 5,000 · reasoning 6,000 · audio out 7,000 · web search 8,000 · flex"
    );
    assert_eq!(Quantities::default().describe_parts(), "");
}

/// The class tables cover every class: each count sits at its own index,
/// is charged as its own cost class, and a part belongs to a total that is
/// charged on the same side; the event's parts are every count but its
/// three columns of old; every cost class but units is some count's.
#[test]
fn every_table_covers_every_class() {
    for (i, c) in Count::ALL.into_iter().enumerate() {
        assert_eq!(c as usize, i, "{c:?} sits at its index");
        assert_eq!(Count::ALL.iter().filter(|d| d.class() == c.class()).count(), 1, "{c:?}'s class is its own");
        if let Some(total) = c.part_of() {
            assert!(matches!(total, Count::Input | Count::Output), "{c:?} is a part of a total");
            assert_eq!(c.class().is_input(), total == Count::Input, "{c:?} is charged on its total's side");
        }
    }
    let old_columns = [Count::Input, Count::Output, Count::CachedInput];
    let parts: Vec<Count> = Count::ALL.into_iter().filter(|c| !old_columns.contains(c)).collect();
    assert_eq!(parts, Count::PARTS);
    for class in CostClass::ALL {
        let counted = Count::ALL.iter().any(|c| c.class() == class);
        assert_eq!(counted, class != CostClass::Units, "{class:?}");
    }
    // A split is checked against the table: one more of any part than its
    // total holds is refused, naming the total.
    for c in Count::ALL {
        let Some(total) = c.part_of() else { continue };
        let q = Quantities::default().with(total, 10).with(c, 11);
        let err = q.check_split().unwrap_err().to_string();
        assert!(err.contains(c.field()) && err.contains(total.field()), "{err}");
        assert!(Quantities::default().with(total, 10).with(c, 10).check_split().is_ok());
    }
}

#[test]
fn pricing_table() {
    let flash_lite = llm("0.075", "0.30", None);
    let pro = llm("1.25", "10.00", Some("0.3125"));
    let tavily = flat(&[(PerSearch, "0.001")]);
    let tiny = llm("0.0001", "0.0001", None);
    let cases: &[(&Rates, Quantities, i64, i64)] = &[
        // 1M input at $0.075 = 75_000_000 nanos; 1M output at $0.30.
        (&flash_lite, q(1_000_000, 0, 0, 0), 75_000_000, 75_000_000),
        (&flash_lite, q(0, 1_000_000, 0, 0), 0, 300_000_000),
        // 1 token at $0.075/M = 75 nanos.
        (&flash_lite, q(1, 0, 0, 0), 75, 75),
        // Sub-nano amounts round once, half away from zero: 4 tokens at
        // $0.0001/M = 0.4 nanos -> 0; 5 tokens = 0.5 -> 1.
        (&tiny, q(4, 0, 0, 0), 0, 0),
        (&tiny, q(5, 0, 0, 0), 1, 1),
        // Input and output round together, once: 0.4 + 0.4 = 0.8 -> 1.
        (&tiny, q(4, 4, 0, 0), 0, 1),
        // 1000 in, 500 out on 2.5 Pro: 1000*1.25*1000 + 500*10*1000 = 1_250_000 + 5_000_000.
        (&pro, q(1000, 500, 0, 0), 1_250_000, 6_250_000),
        // Cached tokens are part of input and charged once, at the cached rate.
        (&pro, q(1000, 0, 400, 0), 750_000 + 125_000, 875_000),
        // No cached rate: cached tokens are charged at the input rate, once.
        (&flash_lite, q(1_000_000, 0, 1_000_000, 0), 75_000_000, 75_000_000),
        (&tavily, q(0, 0, 0, 1), 0, 1_000_000),
        (&tavily, q(0, 0, 0, 3), 0, 3_000_000),
    ];
    for (rates, quantities, input, total) in cases {
        let c = price_event(rates, *quantities).unwrap();
        assert_eq!((c.input.0, c.total.0), (*input, *total), "{rates:?} {quantities:?}");
        assert_eq!(c.input.0 + c.output.0, c.total.0);
        assert_eq!(c.breakdown.sum(), c.total.0);
    }
}

/// Published price sheets, priced by hand. Each case: rates, usage, the
/// total in nano-dollars, and the breakdown by class.
#[test]
fn published_price_sheets() {
    // Anthropic Claude Sonnet 4.5: $3 in, $15 out, 5-minute cache
    // writes $3.75, 1-hour writes $6, cache reads $0.30; above 200k
    // input tokens every rate doubles-ish ($6 / $22.50 / $7.50 / $12 /
    // $0.60); batch halves the standard rates.
    let sonnet = Rates {
        base: class(&[
            (InputPerMillion, "3"),
            (OutputPerMillion, "15"),
            (CacheWritePerMillion, "3.75"),
            (CacheWrite1hPerMillion, "6"),
            (CachedInputPerMillion, "0.30"),
        ]),
        tiers: vec![ContextTier {
            above_input_tokens: 200_000,
            rates: class(&[
                (InputPerMillion, "6"),
                (OutputPerMillion, "22.50"),
                (CacheWritePerMillion, "7.50"),
                (CacheWrite1hPerMillion, "12"),
                (CachedInputPerMillion, "0.60"),
            ]),
        }],
        service_tiers: BTreeMap::from([(
            ServiceTier::Batch,
            ServiceTierRates { rates: class(&[(InputPerMillion, "1.50"), (OutputPerMillion, "7.50")]), tiers: vec![] },
        )]),
    };
    let claude = {
        // 10k plain + 50k cache reads + 20k 5m writes + 5k 1h writes.
        Quantities::default()
            .with(Count::Input, 85_000)
            .with(Count::CachedInput, 50_000)
            .with(Count::CacheWrite, 20_000)
            .with(Count::CacheWrite1h, 5_000)
            .with(Count::Output, 2_000)
    };
    // GPT-5: $1.25 in, $0.125 cached, $10 out; reasoning is output.
    // Batch $0.625 / $0.0625 / $5; flex sets no cached rate (standard's
    // applies); priority $2.50 / $0.25 / $20.
    let gpt5 = Rates {
        base: class(&[(InputPerMillion, "1.25"), (CachedInputPerMillion, "0.125"), (OutputPerMillion, "10")]),
        tiers: vec![],
        service_tiers: BTreeMap::from([
            (
                ServiceTier::Batch,
                ServiceTierRates {
                    rates: class(&[
                        (InputPerMillion, "0.625"),
                        (CachedInputPerMillion, "0.0625"),
                        (OutputPerMillion, "5"),
                    ]),
                    tiers: vec![],
                },
            ),
            (
                ServiceTier::Flex,
                ServiceTierRates {
                    rates: class(&[(InputPerMillion, "0.625"), (OutputPerMillion, "5")]),
                    tiers: vec![],
                },
            ),
            (
                ServiceTier::Priority,
                ServiceTierRates {
                    rates: class(&[
                        (InputPerMillion, "2.50"),
                        (CachedInputPerMillion, "0.25"),
                        (OutputPerMillion, "20"),
                    ]),
                    tiers: vec![],
                },
            ),
        ]),
    };
    let gpt = |tier| {
        Quantities::default()
            .with(Count::Input, 100_000)
            .with(Count::CachedInput, 60_000)
            .with(Count::Output, 8_000)
            .with(Count::Reasoning, 6_000)
            .with_tier(tier)
    };
    // Gemini 2.5 Pro: $1.25 / $10 up to 200k input tokens, $2.50 / $15
    // above (thinking billed as output); grounding $35 per 1,000 queries.
    let gemini = Rates {
        base: class(&[(InputPerMillion, "1.25"), (OutputPerMillion, "10"), (PerSearchQuery, "0.035")]),
        tiers: vec![ContextTier {
            above_input_tokens: 200_000,
            rates: class(&[(InputPerMillion, "2.50"), (OutputPerMillion, "15")]),
        }],
        ..Rates::default()
    };
    let gem = |input| {
        Quantities::default()
            .with(Count::Input, input)
            .with(Count::Output, 5_000)
            .with(Count::Reasoning, 3_000)
            .with(Count::SearchQueries, 2)
    };
    // gpt-realtime: text $4 in / $0.40 cached / $16 out, audio $32 in /
    // $64 out.
    let realtime = flat(&[
        (InputPerMillion, "4"),
        (CachedInputPerMillion, "0.40"),
        (OutputPerMillion, "16"),
        (AudioInputPerMillion, "32"),
        (AudioOutputPerMillion, "64"),
    ]);
    let audio = Quantities::default()
        .with(Count::Input, 10_000)
        .with(Count::AudioInput, 8_000)
        .with(Count::CachedInput, 1_000)
        .with(Count::Output, 3_000)
        .with(Count::AudioOutput, 2_500);
    // Tavily: $0.008 a search credit.
    let tavily = flat(&[(PerSearch, "0.008")]);
    use CostClass as C;
    type Case<'a> = (&'a str, &'a Rates, Quantities, i64, Vec<(CostClass, i64)>);
    let cases: Vec<Case> = vec![
        (
            "claude, 5m and 1h writes",
            &sonnet,
            claude,
            // 10k×3 + 50k×0.30 + 20k×3.75 + 5k×6 + 2k×15 = 180,000 $/M·tok.
            180_000_000,
            vec![
                (C::Input, 30_000_000),
                (C::CachedInput, 15_000_000),
                (C::CacheWrite, 75_000_000),
                (C::CacheWrite1h, 30_000_000),
                (C::Output, 30_000_000),
            ],
        ),
        (
            "claude above 200k: every class at the long-context rate",
            &sonnet,
            claude.with(Count::Input, 200_001 + 75_000),
            // 200,001×6 + 50k×0.60 + 20k×7.50 + 5k×12 + 2k×22.50.
            1_200_006_000 + 30_000_000 + 150_000_000 + 60_000_000 + 45_000_000,
            vec![
                (C::Input, 1_200_006_000),
                (C::CachedInput, 30_000_000),
                (C::CacheWrite, 150_000_000),
                (C::CacheWrite1h, 60_000_000),
                (C::Output, 45_000_000),
            ],
        ),
        (
            "claude batch: unset batch rates fall back to standard ones",
            &sonnet,
            claude.with_tier(ServiceTier::Batch),
            // 10k×1.50 + 50k×0.30 + 20k×3.75 + 5k×6 + 2k×7.50.
            15_000_000 + 15_000_000 + 75_000_000 + 30_000_000 + 15_000_000,
            vec![
                (C::Input, 15_000_000),
                (C::CachedInput, 15_000_000),
                (C::CacheWrite, 75_000_000),
                (C::CacheWrite1h, 30_000_000),
                (C::Output, 15_000_000),
            ],
        ),
        (
            "gpt-5 standard, reasoning at the output rate",
            &gpt5,
            gpt(ServiceTier::Standard),
            137_500_000,
            vec![
                (C::Input, 50_000_000),
                (C::CachedInput, 7_500_000),
                (C::Output, 20_000_000),
                (C::Reasoning, 60_000_000),
            ],
        ),
        (
            "gpt-5 batch",
            &gpt5,
            gpt(ServiceTier::Batch),
            68_750_000,
            vec![
                (C::Input, 25_000_000),
                (C::CachedInput, 3_750_000),
                (C::Output, 10_000_000),
                (C::Reasoning, 30_000_000),
            ],
        ),
        (
            "gpt-5 flex: no flex cached rate, so standard's",
            &gpt5,
            gpt(ServiceTier::Flex),
            72_500_000,
            vec![
                (C::Input, 25_000_000),
                (C::CachedInput, 7_500_000),
                (C::Output, 10_000_000),
                (C::Reasoning, 30_000_000),
            ],
        ),
        (
            "gpt-5 priority",
            &gpt5,
            gpt(ServiceTier::Priority),
            275_000_000,
            vec![
                (C::Input, 100_000_000),
                (C::CachedInput, 15_000_000),
                (C::Output, 40_000_000),
                (C::Reasoning, 120_000_000),
            ],
        ),
        (
            "gemini 2.5 pro at 200k: the base tier, plus two grounded queries",
            &gemini,
            gem(200_000),
            370_000_000,
            vec![
                (C::Input, 250_000_000),
                (C::Output, 20_000_000),
                (C::Reasoning, 30_000_000),
                (C::SearchQueries, 70_000_000),
            ],
        ),
        (
            "gemini 2.5 pro one token above 200k: the whole request at the higher tier",
            &gemini,
            gem(200_001),
            645_002_500,
            vec![
                (C::Input, 500_002_500),
                (C::Output, 30_000_000),
                (C::Reasoning, 45_000_000),
                (C::SearchQueries, 70_000_000),
            ],
        ),
        (
            "gpt-realtime, audio in and out",
            &realtime,
            audio,
            428_400_000,
            vec![
                (C::Input, 4_000_000),
                (C::CachedInput, 400_000),
                (C::AudioInput, 256_000_000),
                (C::Output, 8_000_000),
                (C::AudioOutput, 160_000_000),
            ],
        ),
        ("tavily, three searches", &tavily, q(0, 0, 0, 3), 24_000_000, vec![(C::Units, 24_000_000)]),
    ];
    for (name, rates, quantities, total, classes) in cases {
        let c = price_event(rates, quantities).unwrap();
        assert_eq!(c.total.0, total, "{name}");
        let got: Vec<(CostClass, i64)> = c.breakdown.nonzero().map(|(k, n)| (k, n.0)).collect();
        assert_eq!(got, classes, "{name}");
        assert_eq!(c.input.0 + c.output.0, c.total.0, "{name}");
    }
}

#[test]
fn no_float_noise() {
    // The classic: 0.0016150000000000001 in float land.
    let r = llm("0.075", "0.30", None);
    let c = price_event(&r, q(1000, 5133, 0, 0)).unwrap();
    assert_eq!(c.total.usd_string(), "0.001614900");
}

#[test]
fn parts_cannot_exceed_their_totals() {
    let r = llm("1", "1", None);
    let bad = [
        q(10, 0, 11, 0),
        Quantities::default()
            .with(Count::Input, 10)
            .with(Count::CachedInput, 5)
            .with(Count::CacheWrite, 4)
            .with(Count::AudioInput, 2),
        Quantities::default().with(Count::Input, 10).with(Count::CacheWrite1h, 11),
        Quantities::default().with(Count::Output, 10).with(Count::Reasoning, 8).with(Count::AudioOutput, 3),
        Quantities::default()
            .with(Count::Input, u64::MAX)
            .with(Count::CachedInput, u64::MAX)
            .with(Count::CacheWrite, 1),
    ];
    for b in bad {
        assert!(matches!(price_event(&r, b), Err(PricingError::InvalidSplit(_))), "{b:?}");
    }
    let exact = Quantities::default()
        .with(Count::Input, 10)
        .with(Count::CachedInput, 5)
        .with(Count::CacheWrite, 3)
        .with(Count::AudioInput, 2);
    assert!(price_event(&r, exact).is_ok());
}

#[test]
fn the_highest_tier_exceeded_wins() {
    let r = Rates {
        base: class(&[(InputPerMillion, "1")]),
        tiers: vec![
            ContextTier { above_input_tokens: 128_000, rates: class(&[(InputPerMillion, "2")]) },
            ContextTier { above_input_tokens: 272_000, rates: class(&[(InputPerMillion, "4")]) },
        ],
        ..Rates::default()
    };
    for (n, rate) in [(128_000, 1), (128_001, 2), (272_000, 2), (272_001, 4)] {
        assert_eq!(price_event(&r, q(n, 0, 0, 0)).unwrap().total.0, n as i64 * rate * 1000, "{n}");
    }
    assert_eq!(r.thresholds(), vec![128_000, 272_000]);
}

#[test]
fn breakdowns_round_trip_through_the_store_form() {
    let b = Breakdown([5, 0, 0, 7, 0, 11, 0, 0, 0, 3]);
    assert_eq!(b.encode(), "input=5;cache_write_1h=7;output=11;search_queries=3");
    assert_eq!(Breakdown::decode(&b.encode()), Some(b));
    assert_eq!(Breakdown::decode(""), Some(Breakdown::default()));
    assert_eq!(Breakdown::decode("bogus=1"), None);
    assert_eq!(b.to_json()["output"], "0.000000011");
}

#[test]
fn catalog_lookup_by_effective_date_and_wildcard() {
    let t = |d| Utc.with_ymd_and_hms(2026, 1, d, 0, 0, 0).unwrap();
    let gem = Provider::parse("gemini").unwrap();
    let tav = Provider::parse("tavily").unwrap();
    let v = |id, provider: &Provider, model: &str, from, input: &str| PriceVersion {
        id,
        provider: provider.clone(),
        model: model.into(),
        effective_from: from,
        rates: llm(input, "1", None),
        description: String::new(),
        max_output_tokens: None,
    };
    let cat = Catalog::new(vec![
        v(2, &gem, "gemini-2.5-pro", t(10), "2"),
        v(1, &gem, "gemini-2.5-pro", t(1), "1"),
        v(3, &tav, ANY_MODEL, t(1), "0"),
    ]);
    assert_eq!(cat.lookup(&gem, Some("gemini-2.5-pro"), t(5)).unwrap().id, 1);
    assert_eq!(cat.lookup(&gem, Some("gemini-2.5-pro"), t(10)).unwrap().id, 2);
    assert!(cat.lookup(&gem, Some("gemini-2.5-pro"), Utc.with_ymd_and_hms(2025, 12, 31, 0, 0, 0).unwrap()).is_none());
    assert!(cat.lookup(&gem, Some("gemini-9"), t(20)).is_none(), "unknown LLM models are unpriced");
    assert_eq!(cat.lookup(&tav, None, t(2)).unwrap().id, 3);
    assert_eq!(cat.lookup(&tav, Some("advanced"), t(2)).unwrap().id, 3);
    let current: Vec<i64> = cat.current(t(20)).iter().map(|v| v.id).collect();
    assert_eq!(current, vec![2, 3]);
}

/// Any usage, its parts drawn inside their totals.
fn usage() -> impl Strategy<Value = Quantities> {
    (
        0u64..2_000_000,
        0u64..200_000,
        [0u64..=100, 0u64..=100, 0u64..=100, 0u64..=100, 0u64..=100, 0u64..=100],
        0u64..5,
        0u64..5,
        0usize..4,
    )
        .prop_map(|(input, output, f, units, searches, tier)| {
            // Shares of the input split over four parts, of the output over two.
            let share = |total: u64, pct: u64, left: &mut u64| {
                let n = (total * pct / 100).min(*left);
                *left -= n;
                n
            };
            let mut li = input;
            let mut lo = output;
            Quantities::default()
                .with(Count::Input, input)
                .with(Count::Output, output)
                .with(Count::CachedInput, share(input, f[0], &mut li))
                .with(Count::CacheWrite, share(input, f[1], &mut li))
                .with(Count::CacheWrite1h, share(input, f[2], &mut li))
                .with(Count::AudioInput, share(input, f[3], &mut li))
                .with(Count::Reasoning, share(output, f[4], &mut lo))
                .with(Count::AudioOutput, share(output, f[5], &mut lo))
                .with(Count::SearchQueries, searches)
                .with_units(units)
                .with_tier(ServiceTier::ALL[tier])
        })
}

/// A tiered price with every class set, its long-context and service
/// tiers never cheaper than the base.
fn tiered() -> Rates {
    let all = |scale: &str| {
        let mut r = ClassRates::default();
        for (i, f) in RateField::ALL.into_iter().enumerate() {
            let base = Decimal::from(i as i64 + 1) / Decimal::from(7);
            let v = (base.round_dp(6) * Decimal::from_str_exact(scale).unwrap()).normalize();
            r.set(f, p(&v.to_string()));
        }
        r
    };
    Rates {
        base: all("1"),
        tiers: vec![ContextTier { above_input_tokens: 200_000, rates: all("2") }],
        service_tiers: BTreeMap::from([
            (ServiceTier::Batch, ServiceTierRates { rates: all("0.5"), tiers: vec![] }),
            (
                ServiceTier::Priority,
                ServiceTierRates {
                    rates: all("1.75"),
                    tiers: vec![ContextTier { above_input_tokens: 200_000, rates: all("3.5") }],
                },
            ),
        ]),
    }
}

proptest! {
    #[test]
    fn cost_never_decreases_as_usage_grows(
        i in 0u64..10_000_000, o in 0u64..10_000_000, u in 0u64..1000,
        di in 0u64..1_000_000, dout in 0u64..1_000_000, du in 0u64..10,
        cached_frac in 0u64..=100,
    ) {
        let mut r = llm("1.25", "10", Some("0.3125"));
        r.base.per_request = p("0.0004");
        let c = i * cached_frac / 100;
        let small = price_event(&r, q(i, o, c, u)).unwrap();
        let big = price_event(&r, q(i + di, o + dout, c, u + du)).unwrap();
        prop_assert!(big.total >= small.total);
        prop_assert_eq!(small.input.0 + small.output.0, small.total.0);
        prop_assert!(small.output.0 >= 0);
    }

    #[test]
    fn cached_tokens_never_cost_more_than_uncached(i in 0u64..10_000_000, frac in 0u64..=100) {
        let r = llm("1.25", "10", Some("0.3125"));
        let c = i * frac / 100;
        let with_cache = price_event(&r, q(i, 0, c, 0)).unwrap();
        let without = price_event(&r, q(i, 0, 0, 0)).unwrap();
        prop_assert!(with_cache.total <= without.total);
    }

    /// The breakdown is the total, split: every class ≥ 0, the input
    /// classes sum to `input`, all of them to `total`, and each class is
    /// within a nano of its exact amount.
    #[test]
    fn the_breakdown_adds_up(q in usage()) {
        let c = price_event(&tiered(), q).unwrap();
        prop_assert!(c.breakdown.0.iter().all(|n| *n >= 0));
        prop_assert_eq!(c.breakdown.sum(), c.total.0);
        let input: i64 = CostClass::ALL.into_iter().filter(|k| k.is_input()).map(|k| c.breakdown.get(k).0).sum();
        prop_assert_eq!(input, c.input.0);
    }

    /// No class is counted twice: when every rate is the same, the cost
    /// is the total tokens at that rate however they are split.
    #[test]
    fn no_token_is_charged_twice(q in usage()) {
        let mut r = ClassRates::default();
        for f in RateField::ALL.into_iter().filter(|f| !f.is_unit_price() && *f != PerSearchQuery) {
            r.set(f, p("0.37"));
        }
        let rates = Rates { base: r, ..Rates::default() };
        let q = q.with_units(0).with(Count::SearchQueries, 0);
        let c = price_event(&rates, q).unwrap();
        let exact = Decimal::from(q[Count::Input] + q[Count::Output]) * Decimal::from_str_exact("0.37").unwrap() * Decimal::from(1000);
        prop_assert_eq!(c.total, Nanos::round_from_decimal(exact).unwrap());
    }

    /// More of any class never costs less, tiers and service tiers
    /// included (when their rates are never below the base).
    #[test]
    fn monotone_in_every_class(q in usage(), which in 0usize..10, more in 1u64..300_000) {
        let rates = tiered();
        let mut bigger = q;
        match which {
            0 => bigger[Count::Input] += more,
            1 => { bigger[Count::Input] += more; bigger[Count::CachedInput] += more }
            2 => { bigger[Count::Input] += more; bigger[Count::CacheWrite] += more }
            3 => { bigger[Count::Input] += more; bigger[Count::CacheWrite1h] += more }
            4 => { bigger[Count::Input] += more; bigger[Count::AudioInput] += more }
            5 => bigger[Count::Output] += more,
            6 => { bigger[Count::Output] += more; bigger[Count::Reasoning] += more }
            7 => { bigger[Count::Output] += more; bigger[Count::AudioOutput] += more }
            8 => bigger.units += more % 7,
            _ => bigger[Count::SearchQueries] += more % 7,
        }
        let a = price_event(&rates, q).unwrap();
        let b = price_event(&rates, bigger).unwrap();
        prop_assert!(b.total >= a.total, "{:?} -> {:?}", a, b);
    }

    /// At the boundary the whole request switches: N input tokens are all
    /// at the base rates, N + 1 all at the tier's.
    #[test]
    fn the_whole_request_switches_tier_at_the_boundary(n in 1u64..400_000, out in 0u64..100_000, cached_pct in 0u64..=100) {
        let r = Rates {
            base: class(&[(InputPerMillion, "1.25"), (OutputPerMillion, "10"), (CachedInputPerMillion, "0.125")]),
            tiers: vec![ContextTier {
                above_input_tokens: n,
                rates: class(&[(InputPerMillion, "2.50"), (OutputPerMillion, "15"), (CachedInputPerMillion, "0.25")]),
            }],
            ..Rates::default()
        };
        let at = |input: u64, i: &str, o: &str, c: &str| {
            let cached = input * cached_pct / 100;
            let d = |s: &str| Decimal::from_str_exact(s).unwrap();
            let exact = (Decimal::from(input - cached) * d(i) + Decimal::from(cached) * d(c) + Decimal::from(out) * d(o)) * Decimal::from(1000);
            (Quantities::default().with(Count::Input, input).with(Count::CachedInput, cached).with(Count::Output, out), Nanos::round_from_decimal(exact).unwrap())
        };
        let (below, want_below) = at(n, "1.25", "10", "0.125");
        let (above, want_above) = at(n + 1, "2.50", "15", "0.25");
        prop_assert_eq!(price_event(&r, below).unwrap().total, want_below);
        prop_assert_eq!(price_event(&r, above).unwrap().total, want_above);
    }
}

#[test]
fn search_queries_without_a_per_query_price_are_flagged() {
    let plain = Rates::from(ClassRates {
        input_per_million: Price::parse("1").ok(),
        output_per_million: Price::parse("2").ok(),
        ..ClassRates::default()
    });
    let mut with_queries = plain.clone();
    with_queries.base.per_search_query = Price::parse("0.035").ok();
    let q = |n| Quantities::default().with(Count::Input, 100).with(Count::Output, 10).with(Count::SearchQueries, n);
    let table = [(&plain, 0, false), (&plain, 2, true), (&with_queries, 2, false), (&with_queries, 0, false)];
    for (rates, n, flagged) in table {
        assert_eq!(unpriced_search_queries(rates, &q(n)), flagged, "{n} queries");
    }
    // Flagged queries cost nothing; priced ones their price.
    assert_eq!(price_event(&plain, q(2)).unwrap().total, price_event(&plain, q(0)).unwrap().total);
    let extra = price_event(&with_queries, q(2)).unwrap().total.0 - price_event(&with_queries, q(0)).unwrap().total.0;
    assert_eq!(extra, 70_000_000);
}
