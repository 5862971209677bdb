//! Exact money. Stored costs and sums are integer nano-USD ([`Nanos`]); prices
//! are exact decimals ([`Price`]). Floating point appears only at the very edge
//! (chart data and the family A JSON numbers), through [`Nanos::as_f64_usd`].
//!
//! The one rounding rule: an exact decimal amount becomes nanos by rounding
//! half away from zero ([`Nanos::round_from_decimal`]). It is applied once per
//! event; sums of nanos are exact integers and never rounded again.

use std::fmt;
use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Nano-USD per USD.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// An exact amount of money in nano-USD (1e-9 USD).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Nanos(pub i64);

/// Why a money value could not be parsed or computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not a decimal amount of USD")]
    NotDecimal(String),
    #[error("amounts must not be negative")]
    Negative,
    #[error("`{0}` has more than {1} decimal places")]
    TooPrecise(String, u32),
    #[error("amount out of range")]
    Overflow,
}

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);

    /// Whole dollars, for plan prices and tests.
    pub const fn from_usd(usd: i64) -> Nanos {
        Nanos(usd * NANOS_PER_USD)
    }

    /// Rounds an exact amount of nano-USD to an integer, half away from zero.
    pub fn round_from_decimal(nanos: Decimal) -> Result<Nanos, MoneyError> {
        nanos
            .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
            .to_i64()
            .map(Nanos)
            .ok_or(MoneyError::Overflow)
    }

    /// The exact USD value.
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 9)
    }

    /// Parses a USD decimal string (`"29"`, `"0.000123450"`) with at most nine
    /// decimal places, so the value is exact in nanos.
    pub fn parse_usd(s: &str) -> Result<Nanos, MoneyError> {
        let d = parse_decimal(s)?;
        if d.scale() > 9 {
            return Err(MoneyError::TooPrecise(s.trim().to_string(), 9));
        }
        d.checked_mul(Decimal::from(NANOS_PER_USD)).and_then(|n| n.to_i64()).map(Nanos).ok_or(MoneyError::Overflow)
    }

    /// Family B wire format: a decimal string with exactly nine places.
    pub fn usd_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:09}", abs / NANOS_PER_USD as u64, abs % NANOS_PER_USD as u64)
    }

    /// The amount as an `f64` of USD. Only for chart data and family A JSON
    /// numbers; never summed or stored.
    pub fn as_f64_usd(self) -> f64 {
        self.to_decimal().to_f64().unwrap_or(0.0)
    }

    pub fn checked_add(self, other: Nanos) -> Option<Nanos> {
        self.0.checked_add(other.0).map(Nanos)
    }

    pub fn saturating_add(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(other.0))
    }

    /// For people: `$1,234.56`; amounts under a dollar keep four decimals
    /// (`$0.0016`) so small AI costs do not read as zero.
    pub fn display(self) -> String {
        let places = if self.0.unsigned_abs() >= NANOS_PER_USD as u64 { 2 } else { 4 };
        let rounded = self.to_decimal().round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero);
        let s = format!("{:.*}", places as usize, rounded.abs());
        let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
        let sign = if self.0 < 0 { "-" } else { "" };
        format!("{sign}${}.{frac}", group_thousands(int))
    }
}

impl Nanos {
    /// A price as people write it, exact: `$0`, `$29`, `$29.90`, `$0.0025`,
    /// `$1,234.5678` (whole dollars alone, cents as two places, any finer
    /// amount to its last significant digit).
    pub fn display_plain(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (int, frac) = (abs / NANOS_PER_USD as u64, abs % NANOS_PER_USD as u64);
        let int = group_thousands(&int.to_string());
        if frac == 0 {
            return format!("{sign}${int}");
        }
        let digits = format!("{frac:09}");
        let trimmed = digits.trim_end_matches('0');
        let frac = if trimmed.len() <= 2 { &digits[..2] } else { trimmed };
        format!("{sign}${int}.{frac}")
    }
}

impl std::ops::Add for Nanos {
    type Output = Nanos;
    /// Saturates instead of wrapping, the same in debug and release builds.
    /// Stored totals never come near the bound (the recorder refuses, per
    /// event, usage whose period totals would not fit; see
    /// `Usage::checked_add`); code that takes untrusted sums uses
    /// [`Nanos::checked_add`].
    fn add(self, rhs: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(rhs.0))
    }
}

impl std::iter::Sum for Nanos {
    fn sum<I: Iterator<Item = Nanos>>(iter: I) -> Nanos {
        iter.fold(Nanos::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// Groups an unsigned integer string by thousands: `1234567` → `1,234,567`.
pub fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Formats a count for people: `12,345`.
pub fn format_count(n: i64) -> String {
    let s = group_thousands(&n.unsigned_abs().to_string());
    if n < 0 { format!("-{s}") } else { s }
}

fn parse_decimal(s: &str) -> Result<Decimal, MoneyError> {
    let t = s.trim();
    // Decimal::from_str accepts forms we do not want on the wire (e.g. "1e3"
    // via from_scientific is separate; "_" separators are rejected by it).
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-') {
        return Err(MoneyError::NotDecimal(s.to_string()));
    }
    let d = Decimal::from_str(t).map_err(|_| MoneyError::NotDecimal(s.to_string()))?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(MoneyError::Negative);
    }
    Ok(d.normalize())
}

/// An exact, non-negative price in USD (per unit, or per million tokens;
/// the field it sits in says which). At most twelve decimal places.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(Decimal);

impl Price {
    pub const MAX_SCALE: u32 = 12;

    pub fn parse(s: &str) -> Result<Price, MoneyError> {
        let d = parse_decimal(s)?;
        if d.scale() > Self::MAX_SCALE {
            return Err(MoneyError::TooPrecise(s.trim().to_string(), Self::MAX_SCALE));
        }
        if d > Decimal::from(1_000_000_000i64) {
            return Err(MoneyError::Overflow);
        }
        Ok(Price(d))
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }

    /// Canonical string (no trailing zeros): what is stored and sent.
    pub fn as_string(self) -> String {
        self.0.normalize().to_string()
    }

    /// USD per single token for a per-million price (family A's per-token
    /// fields), as an edge `f64`.
    pub fn per_token_f64(self) -> f64 {
        (self.0 / Decimal::from(1_000_000)).to_f64().unwrap_or(0.0)
    }

    pub fn as_f64(self) -> f64 {
        self.0.to_f64().unwrap_or(0.0)
    }
}

impl FromStr for Price {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Price::parse(s)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl Serialize for Price {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Price::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_strings_have_nine_places() {
        for (nanos, s) in [
            (0, "0.000000000"),
            (1, "0.000000001"),
            (123_450, "0.000123450"),
            (29 * NANOS_PER_USD, "29.000000000"),
            (-1_500_000_000, "-1.500000000"),
        ] {
            assert_eq!(Nanos(nanos).usd_string(), s);
            assert_eq!(Nanos::parse_usd(s.trim_start_matches('-')).unwrap().0, nanos.abs());
        }
    }

    #[test]
    fn parse_rejects_bad_amounts() {
        assert_eq!(Nanos::parse_usd("-1"), Err(MoneyError::Negative));
        assert!(matches!(Nanos::parse_usd("1e3"), Err(MoneyError::NotDecimal(_))));
        assert!(matches!(Nanos::parse_usd(""), Err(MoneyError::NotDecimal(_))));
        assert!(matches!(Nanos::parse_usd("0.0000000001"), Err(MoneyError::TooPrecise(..))));
        assert!(matches!(Nanos::parse_usd("99999999999999"), Err(MoneyError::Overflow)));
        assert_eq!(Nanos::parse_usd("0.0000000010").unwrap(), Nanos(1));
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        for (exact, want) in [("0.5", 1), ("0.4999", 0), ("1.5", 2), ("2.5", 3), ("-0.5", -1)] {
            let d = Decimal::from_str(exact).unwrap();
            assert_eq!(Nanos::round_from_decimal(d).unwrap(), Nanos(want), "{exact}");
        }
    }

    #[test]
    fn display_for_people() {
        assert_eq!(Nanos::from_usd(1234).display(), "$1,234.00");
        assert_eq!(Nanos(1_615_000).display(), "$0.0016");
        assert_eq!(Nanos(15_750_000_000).display(), "$15.75");
        assert_eq!(Nanos(0).display(), "$0.0000");
        assert_eq!(format_count(1_234_567), "1,234,567");
        assert_eq!(format_count(999), "999");
    }

    #[test]
    fn price_parse_and_canonical_form() {
        assert_eq!(Price::parse("0.0750").unwrap().as_string(), "0.075");
        assert_eq!(Price::parse("10").unwrap().as_string(), "10");
        assert!(Price::parse("-0.1").is_err());
        assert!(Price::parse("0.0000000000001").is_err());
        assert!((Price::parse("1.25").unwrap().per_token_f64() - 0.00000125).abs() < 1e-15);
    }

    #[test]
    fn plain_prices_read_as_people_write_them() {
        let cases = [
            (0, "$0"),
            (29_000_000_000, "$29"),
            (29_990_000_000, "$29.99"),
            (29_900_000_000, "$29.90"),
            (2_500_000, "$0.0025"),
            (1_234_567_800_000, "$1,234.5678"),
            (1, "$0.000000001"),
            (-1_500_000_000, "-$1.50"),
        ];
        for (n, want) in cases {
            assert_eq!(Nanos(n).display_plain(), want, "{n}");
        }
    }

    #[test]
    fn huge_amounts_are_an_error_not_a_panic() {
        for s in ["100000000000000000000", "79228162514264337593543950335", "9223372037"] {
            assert_eq!(Nanos::parse_usd(s), Err(MoneyError::Overflow), "{s}");
        }
        assert_eq!(Nanos::parse_usd("9223372036").unwrap(), Nanos(9_223_372_036_000_000_000));
    }
}
