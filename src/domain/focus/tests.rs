use chrono::TimeZone;

use super::*;
use crate::domain::event::UsageParts;
use crate::domain::pricing::Breakdown;

/// FOCUS 1.2's mandatory columns with their data type and whether they
/// allow nulls, as the specification's column files (tag v1.2) say.
const SPEC_MANDATORY: [(&str, &str, bool); 21] = [
    ("BilledCost", "Decimal", false),
    ("BillingAccountId", "String", false),
    ("BillingAccountName", "String", true),
    ("BillingCurrency", "String", false),
    ("BillingPeriodEnd", "Date/Time", false),
    ("BillingPeriodStart", "Date/Time", false),
    ("ChargeCategory", "String", false),
    ("ChargeClass", "String", true),
    ("ChargeDescription", "String", true),
    ("ChargePeriodEnd", "Date/Time", false),
    ("ChargePeriodStart", "Date/Time", false),
    ("ContractedCost", "Decimal", false),
    ("EffectiveCost", "Decimal", false),
    ("InvoiceIssuerName", "String", false),
    ("ListCost", "Decimal", false),
    ("PricingQuantity", "Decimal", true),
    ("PricingUnit", "String", true),
    ("ProviderName", "String", false),
    ("PublisherName", "String", false),
    ("ServiceCategory", "String", false),
    ("ServiceName", "String", false),
];

/// The other FOCUS columns this export fills, with their types.
const SPEC_OTHERS: [(&str, &str); 9] = [
    ("ChargeFrequency", "String"),
    ("ConsumedQuantity", "Decimal"),
    ("ConsumedUnit", "String"),
    ("ResourceId", "String"),
    ("ServiceSubcategory", "String"),
    ("SkuId", "String"),
    ("SubAccountId", "String"),
    ("SubAccountName", "String"),
    ("Tags", "JSON"),
];

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 4, h, m, 7).unwrap()
}

fn account() -> Account<'static> {
    Account {
        user_id: "u1",
        name: "Ada",
        period_start: Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
        period_end: Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap(),
        issuer: "Acme AI",
    }
}

/// A reasoning call with cache reads: input 1,000 (200 cached), output 500
/// (300 reasoning).
fn event() -> LogEntry {
    let mut parts = UsageParts::default();
    parts[Count::Reasoning] = 300;
    let mut breakdown = Breakdown::default();
    breakdown.0[CostClass::Input as usize] = 2_000_000;
    breakdown.0[CostClass::CachedInput as usize] = 250_000;
    breakdown.0[CostClass::Output as usize] = 2_000_001;
    breakdown.0[CostClass::Reasoning as usize] = 3_000_000;
    let mut tags = crate::domain::tags::Tags::default();
    tags.0.insert("team".into(), "search".into());
    LogEntry {
        id: 1,
        event_id: "e1".into(),
        occurred_at: at(10, 42),
        provider: "openai".into(),
        actual_provider_name: None,
        model: Some("o4-mini".into()),
        operation_type: None,
        endpoint: None,
        method: None,
        tokens_input: 1000,
        tokens_output: 500,
        tokens_cached_input: 200,
        units: 0,
        cost_input: Nanos(2_250_000),
        cost_output: Nanos(5_000_001),
        cost_total: Nanos(7_250_001),
        breakdown,
        parts,
        unpriced: false,
        response_time_ms: Some(900),
        status_code: 200,
        error_message: None,
        billing_period: "2026-03".into(),
        retry_count: 0,
        estimated: false,
        tags,
    }
}

fn col(name: &str) -> usize {
    HEADER.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name} is not a column"))
}

/// The header opens with every mandatory column in the specification's
/// order, then the others, and names no column twice; custom columns are
/// `x_`-prefixed.
#[test]
fn the_header_holds_every_mandatory_column() {
    let names: Vec<&str> = SPEC_MANDATORY.iter().map(|c| c.0).collect();
    assert_eq!(&HEADER[..MANDATORY], names.as_slice());
    for (name, _) in SPEC_OTHERS {
        assert!(HEADER[MANDATORY..].contains(&name), "{name}");
    }
    for (i, h) in HEADER.iter().enumerate() {
        assert_eq!(HEADER.iter().filter(|x| *x == h).count(), 1, "{h} twice");
        let known = SPEC_MANDATORY.iter().any(|c| c.0 == *h) || SPEC_OTHERS.iter().any(|c| c.0 == *h);
        assert!(known || h.starts_with("x_"), "column {i} `{h}` is neither FOCUS's nor x_");
    }
}

fn check_type(name: &str, kind: &str, v: &str) {
    match kind {
        "Decimal" => {
            let ok = !v.starts_with('+')
                && v.trim_start_matches('-').chars().all(|c| c.is_ascii_digit() || c == '.')
                && v.matches('.').count() <= 1
                && v.parse::<f64>().is_ok();
            assert!(ok, "{name} `{v}` is not a FOCUS decimal");
        }
        "Date/Time" => {
            assert!(chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%SZ").is_ok(), "{name} `{v}`");
        }
        "JSON" => assert!(v.is_empty() || serde_json::from_str::<serde_json::Value>(v).is_ok(), "{name} `{v}`"),
        _ => {}
    }
}

/// Each row: every value of its column's type, no null where FOCUS forbids
/// it, one row per class counted or charged, and the rows' billed cost is
/// the event's cost exactly.
#[test]
fn an_event_becomes_one_row_per_class_and_its_cost_exactly() {
    let e = event();
    let rows = rows(&account(), &e);
    let classes: Vec<&str> = rows.iter().map(|r| r[col("x_CostClass")].as_str()).collect();
    assert_eq!(classes, ["input", "cached_input", "output", "reasoning"]);
    for r in &rows {
        for (i, (name, kind, nulls)) in SPEC_MANDATORY.iter().enumerate() {
            assert!(*nulls || !r[i].is_empty(), "{name} is null");
            check_type(name, kind, &r[i]);
        }
        for (name, kind) in SPEC_OTHERS {
            check_type(name, kind, &r[col(name)]);
        }
        for c in ["ListCost", "ContractedCost", "EffectiveCost"] {
            assert_eq!(r[col(c)], r[col("BilledCost")], "{c}");
        }
        assert_eq!(r[col("ChargePeriodStart")], "2026-03-04T10:00:00Z");
        assert_eq!(r[col("ChargePeriodEnd")], "2026-03-04T11:00:00Z");
        assert_eq!(r[col("BillingPeriodStart")], "2026-03-01T00:00:00Z");
        assert_eq!(r[col("SubAccountId")], "u1");
        assert_eq!(r[col("ServiceName")], "OpenAI");
        assert_eq!(r[col("SkuId")], "o4-mini");
        assert_eq!(r[col("Tags")], r#"{"team":"search"}"#);
        assert_eq!(r[col("ServiceCategory")], "AI and Machine Learning");
    }
    // Quantities: uncached input 800, cached 200, text output 200, reasoning 300.
    let quantities: Vec<&str> = rows.iter().map(|r| r[col("ConsumedQuantity")].as_str()).collect();
    assert_eq!(quantities, ["800", "200", "200", "300"]);
    let billed: i64 = rows.iter().map(|r| Nanos::parse_usd(&r[col("BilledCost")]).unwrap().0).sum();
    assert_eq!(billed, e.cost_total.0);
}

/// A search call is a request to a web service; an event that counted and
/// cost nothing has no rows; an unpriced model's tokens are rows at $0.
#[test]
fn units_searches_and_empty_events() {
    let mut search = event();
    search.provider = "tavily".into();
    search.model = None;
    (search.tokens_input, search.tokens_output, search.tokens_cached_input, search.units) = (0, 0, 0, 2);
    search.parts = UsageParts::default();
    search.breakdown = Breakdown::default();
    search.breakdown.0[CostClass::Units as usize] = 16_000_000;
    let r = rows(&account(), &search);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0][col("PricingUnit")].as_str(), r[0][col("PricingQuantity")].as_str()), ("Unit", "2"));
    assert_eq!((r[0][col("ServiceCategory")].as_str(), r[0][col("BilledCost")].as_str()), ("Web", "0.016000000"));
    assert_eq!(r[0][col("ChargeDescription")], "Tavily: units");
    search.units = 0;
    search.breakdown = Breakdown::default();
    assert!(rows(&account(), &search).is_empty());
    let mut unpriced = event();
    unpriced.breakdown = Breakdown::default();
    let r = rows(&account(), &unpriced);
    assert_eq!(r.len(), 4);
    assert!(r.iter().all(|r| r[col("BilledCost")] == "0.000000000"));
}
