//! Each view held to the contract's shape: the exact JSON of a typical
//! value, and which fields are left out rather than `null`.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::admin::{KeyView, NewKeyView, UserView, WebhookView};
use super::alert::{AlertData, UsageAlert};
use super::plan::{PlanView, SubscriptionLimits, SubscriptionPlan};
use super::price::{ApiPricing, PriceView};
use super::usage::LogEntryView;
use crate::domain::alerts::{Alert, Severity};
use crate::domain::identity::{ApiKey, Role, Scope, User, UserId};
use crate::domain::limits::Limits;
use crate::domain::money::{Nanos, Price};
use crate::domain::plan::{NO_PLAN, Plan, Tier};
use crate::domain::pricing::{ClassRates, PriceVersion, RateField, Rates};
use crate::domain::provider::{FAMILY_A_LIMIT_KEYS, Provider};
use crate::domain::usage_log::LogEntry;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap()
}

fn plan() -> Plan {
    Plan {
        id: 7,
        name: "Pro".into(),
        tier: Tier::Pro,
        price_monthly: Nanos::from_usd(79),
        price_yearly: Nanos::from_usd(790),
        description: "d".into(),
        features: vec!["f".into()],
        limits: Limits::new().with("openai_calls", 100).with("monthly_cost", Nanos::from_usd(150).0),
        archived: false,
        credits: Default::default(),
    }
}

fn to(v: impl serde::Serialize) -> Value {
    serde_json::to_value(v).unwrap()
}

/// The admin API's plan (and the audit log's): every family A limit key,
/// `null` when unlimited, money as exact strings.
#[test]
fn plan_view_has_every_limit_key_and_exact_money() {
    let v = to(PlanView::from(&plan()));
    let limits = v["limits"].as_object().unwrap();
    for key in FAMILY_A_LIMIT_KEYS {
        assert!(limits.contains_key(*key), "{key} missing");
    }
    assert_eq!(limits["openai_calls"], json!(100));
    assert_eq!(limits["monthly_cost"], json!("150.000000000"));
    assert_eq!(limits["gemini_calls"], Value::Null);
    let mut rest = v.as_object().unwrap().clone();
    rest.remove("limits");
    assert_eq!(
        Value::Object(rest),
        json!({
            "id": 7, "name": "Pro", "tier": "pro", "price_monthly": "79.000000000",
            "price_yearly": "790.000000000", "description": "d", "features": ["f"], "archived": false,
            "billing_mode": "postpaid", "included_credits": null, "credits_rollover_cap": null,
        })
    );
}

/// Family A: money as numbers, 0 = unlimited; no plan is the free tier.
#[test]
fn family_a_plan_and_limits() {
    let v = to(SubscriptionPlan::from(&plan()));
    assert_eq!(v["price_monthly"], json!(79.0));
    assert_eq!(v["limits"]["monthly_cost"], json!(150.0));
    assert_eq!(v["limits"]["openai_calls"], json!(100));
    assert_eq!(v["limits"]["gemini_calls"], json!(0));
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
    let none = to(SubscriptionLimits::of(None));
    assert_eq!(none["plan_name"], json!(NO_PLAN));
    assert_eq!(none["tier"], json!("free"));
    assert_eq!(none["features"], json!([]));
    assert_eq!(none["limits"].as_object().unwrap().len(), FAMILY_A_LIMIT_KEYS.len());
}

fn alert(read: bool) -> Alert {
    Alert {
        id: 3,
        user_id: Some(UserId::parse("u1").unwrap()),
        alert_type: "usage_threshold".into(),
        limit_key: Some("openai_calls".into()),
        threshold: 80,
        provider: read.then(|| "openai".into()),
        title: "t".into(),
        message: "m".into(),
        severity: Severity::Warning,
        is_read: read,
        read_at: read.then(at),
        billing_period: Some("2026-03".into()),
        created_at: at(),
        resolved_at: None,
    }
}

/// `UsageAlert` leaves out `provider` and `read_at` when it has none; the
/// webhook's alert keeps every field.
#[test]
fn alerts_on_family_a_and_on_webhooks() {
    let unread = to(UsageAlert::from(&alert(false)));
    assert_eq!(
        unread,
        json!({
            "id": 3, "type": "usage_threshold", "threshold_percentage": 80, "title": "t", "message": "m",
            "severity": "warning", "is_sent": true, "sent_at": "2026-03-04T05:06:07.000Z", "is_read": false,
            "billing_period": "2026-03", "created_at": "2026-03-04T05:06:07.000Z",
        })
    );
    let read = to(UsageAlert::from(&alert(true)));
    assert_eq!(read["provider"], json!("openai"));
    assert_eq!(read["read_at"], json!("2026-03-04T05:06:07.000Z"));
    let hook = to(AlertData::from(&alert(false)));
    assert_eq!(
        hook,
        json!({
            "alert_id": 3, "user_id": "u1", "alert_type": "usage_threshold", "limit_key": "openai_calls",
            "threshold": 80, "provider": null, "title": "t", "message": "m", "severity": "warning",
            "billing_period": "2026-03", "created_at": "2026-03-04T05:06:07+00:00", "resolved_at": null,
        })
    );
}

/// The admin price view names every rate field; family A's is per token.
#[test]
fn price_views() {
    let base = ClassRates { input_per_million: Some(Price::parse("2.5").unwrap()), ..ClassRates::default() };
    let v = PriceVersion {
        id: 9,
        provider: Provider::parse("openai").unwrap(),
        model: "gpt-4o".into(),
        effective_from: at(),
        rates: Rates::from(base),
        description: String::new(),
        max_output_tokens: Some(16_384),
    };
    let admin = to(PriceView::from(&v));
    for f in RateField::ALL {
        assert!(admin.get(f.name()).is_some(), "{} missing", f.name());
    }
    assert_eq!(admin["input_per_million"], json!("2.5"));
    assert_eq!(admin["max_output_tokens"], json!(16_384));
    assert!(admin.get("tiers").is_some() && admin.get("service_tiers").is_some());
    let a = to(ApiPricing::from(&v));
    assert_eq!(a["cost_per_input_token"], json!(0.0000025));
    assert_eq!(a["cost_per_request"], json!(0.0));
    assert_eq!(a["effective_date"], json!("2026-03-04T05:06:07.000Z"));
    assert_eq!(a.as_object().unwrap().len(), 10);
}

/// A user carries its id twice; a new key's secret is `key` beside the
/// key's fields; a webhook's secret only when just made.
#[test]
fn people_keys_and_webhooks() {
    let u = User {
        id: UserId::parse("u1").unwrap(),
        email: crate::domain::identity::Email::parse("a@example.com").unwrap(),
        name: "A".into(),
        role: Role::Admin,
        created_at: at(),
    };
    assert_eq!(
        to(UserView::from(&u)),
        json!({"id": "u1", "user_id": "u1", "email": "a@example.com", "name": "A", "role": "admin",
               "created_at": "2026-03-04T05:06:07+00:00"})
    );
    let k = ApiKey {
        id: "k1".into(),
        prefix: "tly_ab".into(),
        user_id: None,
        scopes: vec![Scope::Ingest],
        name: "n".into(),
        created_at: at(),
        last_used_at: None,
        revoked_at: None,
    };
    let made = to(NewKeyView { key: KeyView::from(&k), secret: "tly_secret".into() });
    assert_eq!(made["key"], json!("tly_secret"));
    assert_eq!(made["id"], json!("k1"));
    assert_eq!(made["scopes"], json!(["ingest"]));
    assert_eq!(made.as_object().unwrap().len(), 9);
    let e = crate::domain::webhooks::Endpoint {
        id: "w1".into(),
        url: "https://example.com/h".into(),
        events: vec![],
        description: String::new(),
        created_at: at(),
        deleted_at: None,
        pending: 1,
        delivered: 2,
        failed: 3,
    };
    let w = to(WebhookView::from(&e));
    assert!(w.get("secret").is_none());
    assert_eq!(w["deliveries"], json!({"pending": 1, "delivered": 2, "failed": 3}));
}

/// A usage-log entry says `actual_provider_name`, `estimated` and `tags`
/// only when they hold something.
#[test]
fn log_entry_leaves_out_what_is_unset() {
    let mut e = LogEntry {
        id: 1,
        event_id: "e1".into(),
        occurred_at: at(),
        provider: "openai".into(),
        actual_provider_name: None,
        model: Some("gpt-4o".into()),
        operation_type: None,
        endpoint: None,
        method: None,
        tokens_input: 10,
        tokens_output: 5,
        tokens_cached_input: 0,
        units: 0,
        cost_input: Nanos(1_000_000_000),
        cost_output: Nanos(500_000_000),
        cost_total: Nanos(1_500_000_000),
        breakdown: Default::default(),
        parts: Default::default(),
        unpriced: false,
        response_time_ms: Some(1500),
        status_code: 500,
        error_message: None,
        billing_period: "2026-03".into(),
        retry_count: 0,
        estimated: false,
        tags: Default::default(),
    };
    let v = to(LogEntryView::from(&e));
    for absent in ["actual_provider_name", "estimated", "tags"] {
        assert!(v.get(absent).is_none(), "{absent} present");
    }
    assert_eq!(v["tokens_total"], json!(15));
    assert_eq!(v["cost_total"], json!(1.5));
    assert_eq!(v["response_time"], json!(1.5));
    assert_eq!(v["status"], json!("failed"));
    assert_eq!(v["endpoint"], json!(""));
    assert_eq!(v["error_message"], Value::Null);
    e.actual_provider_name = Some("azure".into());
    e.estimated = true;
    e.tags.0.insert("team".into(), "a".into());
    let v = to(LogEntryView::from(&e));
    assert_eq!(
        (&v["actual_provider_name"], &v["estimated"], &v["tags"]),
        (&json!("azure"), &json!(true), &json!({"team": "a"}))
    );
}

/// The contract's own words for the family A types these views carry
/// (`../shared/contract.md`, "Types"), copied verbatim: every field it
/// names must be in the view, and every field it marks required must be
/// there even when the value is empty.
const CONTRACT_TYPES: &[(&str, &str)] = &[
    (
        "SubscriptionLimits",
        r#"plan_name: string, tier: "free"|"basic"|"pro"|"enterprise", limits: {gemini_calls, openai_calls, anthropic_calls, mistral_calls, tavily_calls, serper_calls, metaphor_calls, firecrawl_calls, stability_calls, video_calls, image_edit_calls, gemini_tokens, openai_tokens, anthropic_tokens, mistral_tokens, monthly_cost}, features: string[]"#,
    ),
    (
        "SubscriptionPlan",
        "id, name, tier, price_monthly, price_yearly, description, features: string[], limits: {same keys as above}",
    ),
    (
        "APIPricing",
        "provider, model_name, cost_per_input_token, cost_per_output_token, cost_per_request, cost_per_search, cost_per_image, cost_per_page, description, effective_date",
    ),
    (
        "UsageAlert",
        r#"id: number, type: string, threshold_percentage, provider?, title, message, severity: "info"|"warning"|"error", is_sent: bool, sent_at?, is_read: bool, read_at?, billing_period, created_at"#,
    ),
    (
        "UsageLog",
        r#"id, timestamp, provider, actual_provider_name?, model_used (string|null), endpoint, method, tokens_input, tokens_output, tokens_total, cost_input, cost_output, cost_total, response_time, status_code, status: "success"|"failed", error_message (string|null), billing_period, retry_count"#,
    ),
    (
        "SubscriptionRenewal",
        r#"id, plan_name, plan_tier, previous_period_start?, previous_period_end?, new_period_start, new_period_end, billing_cycle: "monthly"|"yearly", renewal_type: "new"|"renewal"|"upgrade"|"downgrade", renewal_count, previous_plan_name?, previous_plan_tier?, usage_before_renewal (object|null), payment_amount, payment_status, payment_date (string|null), created_at"#,
    ),
];

/// `(name, required)` of each top-level field of a contract type's text.
fn contract_fields(text: &str) -> Vec<(String, bool)> {
    let mut fields = Vec::new();
    let (mut depth, mut start) = (0, 0);
    let bytes: Vec<char> = text.chars().collect();
    for (i, c) in bytes.iter().enumerate().chain(std::iter::once((bytes.len(), &','))) {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth -= 1,
            ',' if depth == 0 => {
                let part: String = bytes[start..i].iter().collect();
                let name: String = part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let optional = part.trim()[name.len()..].starts_with('?');
                fields.push((name, !optional));
                start = i + 1;
            }
            _ => {}
        }
    }
    fields
}

/// Each view against the contract's list: required fields present on a
/// value that leaves every optional one empty, optional fields present
/// when set; nothing the contract names is missing.
#[test]
fn views_carry_every_field_the_contract_names() {
    let sparse_renewal = crate::domain::subscription::Renewal {
        id: 1,
        user_id: UserId::parse("u1").unwrap(),
        plan_id: Some(7),
        plan_name: "Pro".into(),
        plan_tier: "pro".into(),
        previous_plan_name: None,
        previous_plan_tier: None,
        previous_period_start: None,
        previous_period_end: None,
        new_period_start: at(),
        new_period_end: at(),
        billing_cycle: "monthly".into(),
        renewal_type: "new".into(),
        renewal_count: 0,
        usage_before: None,
        payment_amount: Nanos::ZERO,
        payment_status: "paid".into(),
        payment_date: None,
        created_at: at(),
    };
    let full_renewal = crate::domain::subscription::Renewal {
        previous_plan_name: Some("Basic".into()),
        previous_plan_tier: Some("basic".into()),
        previous_period_start: Some(at()),
        previous_period_end: Some(at()),
        ..sparse_renewal.clone()
    };
    let log = |full: bool| {
        let e = LogEntry {
            id: 1,
            event_id: "e1".into(),
            occurred_at: at(),
            provider: "openai".into(),
            actual_provider_name: full.then(|| "azure".into()),
            model: None,
            operation_type: None,
            endpoint: None,
            method: None,
            tokens_input: 0,
            tokens_output: 0,
            tokens_cached_input: 0,
            units: 0,
            cost_input: Nanos::ZERO,
            cost_output: Nanos::ZERO,
            cost_total: Nanos::ZERO,
            breakdown: Default::default(),
            parts: Default::default(),
            unpriced: false,
            response_time_ms: None,
            status_code: 200,
            error_message: None,
            billing_period: "2026-03".into(),
            retry_count: 0,
            estimated: false,
            tags: Default::default(),
        };
        to(LogEntryView::from(&e))
    };
    let p = PriceVersion {
        id: 9,
        provider: Provider::parse("openai").unwrap(),
        model: "m".into(),
        effective_from: at(),
        rates: Rates::from(ClassRates::default()),
        description: String::new(),
        max_output_tokens: None,
    };
    // (type, the view with optional fields empty, with them set)
    let views: Vec<(&str, Value, Value)> = vec![
        ("SubscriptionLimits", to(SubscriptionLimits::of(None)), to(SubscriptionLimits::of(Some(&plan())))),
        ("SubscriptionPlan", to(SubscriptionPlan::from(&plan())), to(SubscriptionPlan::from(&plan()))),
        ("APIPricing", to(ApiPricing::from(&p)), to(ApiPricing::from(&p))),
        ("UsageAlert", to(UsageAlert::from(&alert(false))), to(UsageAlert::from(&alert(true)))),
        ("UsageLog", log(false), log(true)),
        (
            "SubscriptionRenewal",
            to(super::usage::RenewalView::from(&sparse_renewal)),
            to(super::usage::RenewalView::from(&full_renewal)),
        ),
    ];
    assert_eq!(views.len(), CONTRACT_TYPES.len());
    for ((name, text), (view, sparse, full)) in CONTRACT_TYPES.iter().zip(&views) {
        assert_eq!(name, view);
        let fields = contract_fields(text);
        assert!(fields.len() >= 4, "{name}: parsed {fields:?}");
        for (field, required) in &fields {
            assert!(full.get(field).is_some(), "{name}.{field} is missing");
            if *required {
                assert!(sparse.get(field).is_some(), "{name}.{field} is required but left out when empty");
            } else {
                assert_ne!(sparse.get(field), Some(&Value::Null), "{name}.{field} is optional: omitted, not null");
            }
        }
    }
    // The limits object names every key the contract lists.
    let text = CONTRACT_TYPES[0].1;
    let listed = &text[text.find("limits: {").unwrap() + 9..];
    let listed = &listed[..listed.find('}').unwrap()];
    let limits = to(SubscriptionLimits::of(None));
    assert_eq!(listed.split(", ").count(), 16);
    for key in listed.split(", ") {
        assert!(limits["limits"].get(key).is_some(), "limits.{key} missing");
    }
}
