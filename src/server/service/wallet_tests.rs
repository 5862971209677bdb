//! Prepaid credits against real stores (both): the gate reserves against
//! the balance, events debit it once, grants spend and lapse in order, and
//! every balance is the sum of its entries.

use chrono::{DateTime, Duration, Utc};

use super::Engine;
use super::tests::{ev, ok, op, scalar};
use super::wallet::NewGrant;
use crate::both_stores;
use crate::domain::limits::Limits;
use crate::domain::money::Nanos;
use crate::domain::plan::BillingMode;
use crate::domain::wallet::{EntryKind, GrantKind, GrantSource};
use crate::server::error::AppError;
use crate::server::store::{Store, catalog, wallet};
use crate::server::testing::{engine_with_catalog, t, uid, user_on_plan};

/// A search costs $0.001 on the test catalog.
const SEARCH: Nanos = Nanos(1_000_000);

/// Makes plan `plan_id` prepaid.
pub(crate) async fn make_prepaid(engine: &Engine, plan_id: i64, at: DateTime<Utc>) {
    let mut p = engine.catalog_snapshot().await.unwrap().plan(plan_id).unwrap().clone();
    p.credits.mode = BillingMode::Prepaid;
    let mut conn = engine.store.pool().acquire().await.unwrap();
    assert!(catalog::update_plan(&mut conn, &p, at).await.unwrap());
}

/// `u1` on a prepaid plan with no limits, from `start`.
async fn prepaid_user(store: Store, start: DateTime<Utc>) -> Engine {
    let (engine, plan) = engine_with_catalog(store, Limits::new(), start).await;
    make_prepaid(&engine, plan, start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    engine
}

pub(crate) fn grant_of(amount: Nanos, key: &str) -> NewGrant {
    NewGrant {
        amount,
        kind: GrantKind::Paid,
        source: GrantSource::Admin,
        priority: 0,
        effective_at: None,
        expires_at: None,
        idempotency_key: key.into(),
        note: None,
    }
}

/// The balance, and the sum of the statement's entries: always equal.
async fn balance_and_entries(engine: &Engine, now: DateTime<Utc>) -> (Nanos, Nanos) {
    let w = engine.wallet_view(&uid("u1"), now).await.unwrap();
    let mut conn = engine.store.pool().acquire().await.unwrap();
    (w.balance, wallet::entries_sum(&mut conn, &uid("u1")).await.unwrap())
}

async fn entries_of(engine: &Engine) -> Vec<(EntryKind, Nanos, Option<String>)> {
    let page = engine.wallet_statement(&uid("u1"), 500, None).await.unwrap();
    page.entries.iter().rev().map(|e| (e.entry.kind, e.entry.amount, e.entry.event_id.clone())).collect()
}

/// A balance worth exactly 50 searches admits 50 of 200 concurrent
/// reservations; the 51st is refused naming what is available and what it
/// needs; each recorded event is debited once, a retried one never again.
async fn reservations_spend_the_balance_exactly(store: Store) {
    let start = t(2026, 11, 1);
    let engine = prepaid_user(store.clone(), start).await;
    let now = t(2026, 11, 10);
    engine.grant_credits(&uid("u1"), grant_of(Nanos(SEARCH.0 * 50), "k1"), "admin:test", now).await.unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.preflight(&uid("u1"), &[op("tavily", 0)], true, now).await })
        })
        .collect();
    let mut admitted = Vec::new();
    for task in tasks {
        let p = task.await.unwrap().unwrap();
        let w = p.wallet.expect("a prepaid verdict carries the wallet");
        assert_eq!(w.required, SEARCH);
        if p.can_proceed {
            admitted.push(p.reservation_id.unwrap());
        } else {
            assert!(p.insufficient_credits() && p.denied_by.is_none());
            assert_eq!(w.available, Nanos::ZERO);
            assert!(p.denial_message().unwrap().contains("$0.001"), "{:?}", p.denial_message());
        }
    }
    assert_eq!(admitted.len(), 50);
    engine.store.settled().await.unwrap();
    let view = engine.wallet_view(&uid("u1"), now).await.unwrap();
    assert_eq!((view.balance, view.held, view.available), (Nanos(SEARCH.0 * 50), Nanos(SEARCH.0 * 50), Nanos::ZERO));

    // Each call arrives with its reservation: the hold becomes a debit.
    let events: Vec<_> = admitted
        .iter()
        .enumerate()
        .map(|(i, rid)| {
            let mut e = ev(&format!("e{i}"), "u1", "tavily", None, 0, 0, now);
            e.reservation_id = Some(rid.clone());
            e
        })
        .collect();
    engine.record(ok(events.clone()), now).await.unwrap();
    let view = engine.wallet_view(&uid("u1"), now).await.unwrap();
    assert_eq!((view.balance, view.held, view.available), (Nanos::ZERO, Nanos::ZERO, Nanos::ZERO));
    // Sent again: duplicates, nothing debited twice.
    let again = engine.record(ok(events), now).await.unwrap();
    assert!(again.iter().all(|r| r.outcome == super::recording::Outcome::Duplicate));
    let entries = entries_of(&engine).await;
    let debits: Vec<_> = entries.iter().filter(|e| e.0 == EntryKind::Debit).collect();
    assert_eq!(debits.len(), 50);
    assert!(debits.iter().all(|d| d.1 == Nanos(-SEARCH.0) && d.2.is_some()));
    assert_eq!(balance_and_entries(&engine, now).await, (Nanos::ZERO, Nanos::ZERO));
    // The debits reconcile with the recorded events' costs to the nano.
    let spent = scalar(&store, "SELECT CAST(COALESCE(SUM(cost_total_nanos), 0) AS BIGINT) FROM usage_events").await;
    let debited = scalar(
        &store,
        "SELECT CAST(COALESCE(-SUM(amount_nanos), 0) AS BIGINT) FROM wallet_entries WHERE kind = 'debit'",
    )
    .await;
    assert_eq!(spent, debited);
    // Nothing is left: a check alone says so too.
    let check = engine.preflight(&uid("u1"), &[op("tavily", 0)], false, now).await.unwrap();
    assert!(!check.can_proceed && check.insufficient_credits());
}
both_stores!(reservations_spend_the_balance_exactly, reservations_spend_the_balance_exactly);

/// Promotional credits that expire first are spent first; what is left of
/// them leaves at their instant, once, however often the wallet is read or
/// changed afterwards.
async fn grants_spend_in_order_and_lapse_once(store: Store) {
    let start = t(2026, 11, 1);
    let engine = prepaid_user(store, start).await;
    let now = t(2026, 11, 10);
    let promo = NewGrant {
        kind: GrantKind::Promotional,
        expires_at: Some(now + Duration::hours(1)),
        ..grant_of(Nanos::from_usd(1), "promo")
    };
    engine.grant_credits(&uid("u1"), grant_of(Nanos::from_usd(2), "paid"), "admin:test", now).await.unwrap();
    let (promo, _) = engine.grant_credits(&uid("u1"), promo, "admin:test", now).await.unwrap();
    let events = (0..3).map(|i| ev(&format!("s{i}"), "u1", "tavily", None, 0, 0, now)).collect();
    engine.record(ok(events), now).await.unwrap();
    let w = engine.wallet_view(&uid("u1"), now).await.unwrap();
    let left = |id: &str| w.grants.iter().find(|g| g.grant.id == id).unwrap().grant.remaining;
    assert_eq!(left(&promo.grant.id), Nanos(Nanos::from_usd(1).0 - 3 * SEARCH.0));
    assert_eq!(w.balance, Nanos(Nanos::from_usd(3).0 - 3 * SEARCH.0));
    // One instant before the expiry it still counts; at it, not.
    let at_expiry = now + Duration::hours(1);
    assert_eq!(engine.wallet_view(&uid("u1"), at_expiry - Duration::milliseconds(1)).await.unwrap().balance, w.balance);
    assert_eq!(engine.wallet_view(&uid("u1"), at_expiry).await.unwrap().balance, Nanos::from_usd(2));
    // Two later changes: the expiry is written by the first, once.
    let later = now + Duration::hours(2);
    engine.grant_credits(&uid("u1"), grant_of(Nanos::from_usd(1), "more"), "admin:test", later).await.unwrap();
    engine.adjust_wallet(&uid("u1"), Nanos(-SEARCH.0), "correction", "adj", "admin:test", later).await.unwrap();
    let entries = entries_of(&engine).await;
    let expiries: Vec<_> = entries.iter().filter(|e| e.0 == EntryKind::Expiry).collect();
    assert_eq!(expiries.len(), 1);
    assert_eq!(expiries[0].1, Nanos(-(Nanos::from_usd(1).0 - 3 * SEARCH.0)));
    let kinds: Vec<EntryKind> = entries.iter().map(|e| e.0).collect();
    use EntryKind::*;
    assert_eq!(kinds, vec![Grant, Grant, Debit, Debit, Debit, Expiry, Grant, Adjustment]);
    assert_eq!(
        balance_and_entries(&engine, later).await,
        (Nanos(Nanos::from_usd(3).0 - SEARCH.0), Nanos(Nanos::from_usd(3).0 - SEARCH.0))
    );
}
both_stores!(grants_spend_in_order_and_lapse_once, grants_spend_in_order_and_lapse_once);

/// A call that happened is recorded even when it costs more than is left:
/// the balance goes negative, and the next grant pays that first.
async fn debt_is_paid_by_the_next_grant(store: Store) {
    let start = t(2026, 11, 1);
    let engine = prepaid_user(store, start).await;
    let now = t(2026, 11, 10);
    engine.grant_credits(&uid("u1"), grant_of(SEARCH, "one"), "admin:test", now).await.unwrap();
    let events = (0..3).map(|i| ev(&format!("s{i}"), "u1", "tavily", None, 0, 0, now)).collect();
    let results = engine.record(ok(events), now).await.unwrap();
    assert!(results.iter().all(|r| r.outcome == super::recording::Outcome::Accepted));
    assert_eq!(balance_and_entries(&engine, now).await, (Nanos(-2 * SEARCH.0), Nanos(-2 * SEARCH.0)));
    // In debt, nothing is admitted, not even a call estimated at nothing.
    let p = engine.preflight(&uid("u1"), &[op("tavily", 0)], true, now).await.unwrap();
    assert!(!p.can_proceed && p.wallet.unwrap().available == Nanos(-2 * SEARCH.0));
    let (g, _) =
        engine.grant_credits(&uid("u1"), grant_of(Nanos::from_usd(1), "two"), "admin:test", now).await.unwrap();
    assert_eq!(g.grant.remaining, Nanos(Nanos::from_usd(1).0 - 2 * SEARCH.0));
    assert_eq!(engine.wallet_view(&uid("u1"), now).await.unwrap().balance, Nanos(Nanos::from_usd(1).0 - 2 * SEARCH.0));
    assert!(engine.preflight(&uid("u1"), &[op("tavily", 0)], true, now).await.unwrap().can_proceed);
}
both_stores!(debt_is_paid_by_the_next_grant, debt_is_paid_by_the_next_grant);

/// The same idempotency key answers the same grant (or adjustment) and
/// never grants twice; reused for something else, it is refused.
async fn a_key_grants_once(store: Store) {
    let start = t(2026, 11, 1);
    let engine = prepaid_user(store, start).await;
    let now = t(2026, 11, 10);
    let (first, created) =
        engine.grant_credits(&uid("u1"), grant_of(Nanos::from_usd(5), "k"), "admin:a", now).await.unwrap();
    assert!(created);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move {
                engine.grant_credits(&uid("u1"), grant_of(Nanos::from_usd(5), "k"), "admin:a", now).await
            })
        })
        .collect();
    for task in tasks {
        let (again, created) = task.await.unwrap().unwrap();
        assert_eq!((again.grant.id.as_str(), created), (first.grant.id.as_str(), false));
    }
    let other = engine.grant_credits(&uid("u1"), grant_of(Nanos::from_usd(6), "k"), "admin:a", now).await;
    assert!(matches!(other, Err(AppError::Conflict(_))), "{other:?}");
    for _ in 0..3 {
        engine.adjust_wallet(&uid("u1"), Nanos::from_usd(1), "goodwill", "adj-1", "admin:a", now).await.unwrap();
    }
    assert_eq!(balance_and_entries(&engine, now).await, (Nanos::from_usd(6), Nanos::from_usd(6)));
    // Bad input is refused by field, and changes nothing.
    let zero = engine.grant_credits(&uid("u1"), grant_of(Nanos::ZERO, "z"), "admin:a", now).await;
    assert!(matches!(zero, Err(AppError::InvalidFields(ref f)) if f[0].0 == "amount"), "{zero:?}");
    let past = NewGrant { expires_at: Some(now - Duration::hours(1)), ..grant_of(Nanos::from_usd(1), "p") };
    assert!(matches!(engine.grant_credits(&uid("u1"), past, "admin:a", now).await, Err(AppError::InvalidFields(_))));
    let nobody = engine.grant_credits(&uid("nobody"), grant_of(Nanos::from_usd(1), "n"), "admin:a", now).await;
    assert!(matches!(nobody, Err(AppError::NotFound(_))), "{nobody:?}");
    assert_eq!(
        engine.void_grant(&uid("u1"), "grt_missing", "x", "admin:a", now).await.err().map(|e| e.status().as_u16()),
        Some(404)
    );
    assert_eq!(balance_and_entries(&engine, now).await, (Nanos::from_usd(6), Nanos::from_usd(6)));
}
both_stores!(a_key_grants_once, a_key_grants_once);

/// A postpaid customer's calls are neither weighed against nor debited
/// from a wallet, even one with credits in it.
async fn postpaid_ignores_the_wallet(store: Store) {
    let start = t(2026, 11, 1);
    let (engine, plan) = engine_with_catalog(store, Limits::new(), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 10);
    engine.grant_credits(&uid("u1"), grant_of(SEARCH, "k"), "admin:a", now).await.unwrap();
    let p = engine.preflight(&uid("u1"), &[op("tavily", 0), op("tavily", 0)], true, now).await.unwrap();
    assert!(p.can_proceed && p.wallet.is_none());
    engine.record(ok(vec![ev("e", "u1", "tavily", None, 0, 0, now)]), now).await.unwrap();
    assert_eq!(balance_and_entries(&engine, now).await, (SEARCH, SEARCH));
}
both_stores!(postpaid_ignores_the_wallet, postpaid_ignores_the_wallet);

/// An event recorded without a price costs nothing until a price arrives;
/// then it is debited its cost, once, however many prices follow.
async fn a_repriced_event_is_debited_once(store: Store) {
    use crate::domain::pricing::RateField;
    use crate::server::service::admin::PriceForm;
    let start = t(2026, 11, 1);
    let engine = prepaid_user(store, start).await;
    let now = t(2026, 11, 10);
    engine.grant_credits(&uid("u1"), grant_of(Nanos::from_usd(10), "k"), "admin:test", now).await.unwrap();
    let e = ev("new-model", "u1", "openai", Some("o9-preview"), 1_000_000, 0, now);
    let r = engine.record(ok(vec![e]), now).await.unwrap();
    assert!(r[0].unpriced);
    assert_eq!(engine.wallet_view(&uid("u1"), now).await.unwrap().balance, Nanos::from_usd(10));
    let price = |usd: &str, from: &str| PriceForm {
        effective_from: Some(from.into()),
        ..PriceForm::with_rates("openai", "o9-preview", &[(RateField::InputPerMillion, usd)])
    };
    engine.add_price(&price("2", "2026-11-01T00:00:00Z"), "admin:test", now).await.unwrap();
    assert_eq!(engine.wallet_view(&uid("u1"), now).await.unwrap().balance, Nanos::from_usd(8));
    // A later price covers the same event, which is priced already.
    engine.add_price(&price("3", "2026-11-05T00:00:00Z"), "admin:test", now).await.unwrap();
    assert_eq!(balance_and_entries(&engine, now).await, (Nanos::from_usd(8), Nanos::from_usd(8)));
    let debits: Vec<_> = entries_of(&engine).await.into_iter().filter(|e| e.0 == EntryKind::Debit).collect();
    assert_eq!(debits, vec![(EntryKind::Debit, Nanos(-Nanos::from_usd(2).0), Some("new-model".to_string()))]);
}
both_stores!(a_repriced_event_is_debited_once, a_repriced_event_is_debited_once);

/// A plan's included credits arrive at each period start and expire at its
/// end; what is left, up to the plan's rollover cap, comes along into the
/// next period; each period's credits are granted once.
async fn included_credits_arrive_each_period(store: Store) {
    let start = t(2026, 11, 1);
    let (engine, plan) = engine_with_catalog(store, Limits::new(), start).await;
    let mut p = engine.catalog_snapshot().await.unwrap().plan(plan).unwrap().clone();
    p.credits.mode = BillingMode::Prepaid;
    p.credits.included = Some(Nanos::from_usd(5));
    p.credits.rollover_cap = Some(Nanos::from_usd(2));
    let mut conn = engine.store.pool().acquire().await.unwrap();
    catalog::update_plan(&mut conn, &p, start).await.unwrap();
    drop(conn);
    user_on_plan(&engine, "u1", plan, start).await;
    let nov = t(2026, 11, 10);
    assert_eq!(engine.wallet_view(&uid("u1"), nov).await.unwrap().balance, Nanos::from_usd(5));
    // $1.25 spent in November.
    engine.record(ok(vec![ev("n1", "u1", "gemini", Some("gemini-2.5-pro"), 1_000_000, 0, nov)]), nov).await.unwrap();
    // Read in December before anything rolls the period over: November's
    // credits no longer count.
    let dec = t(2026, 12, 5);
    assert_eq!(engine.wallet_view(&uid("u1"), dec).await.unwrap().balance, Nanos::ZERO);
    // The first locked request in December rolls over: $5 anew, plus $2 of
    // November's $3.75.
    for _ in 0..2 {
        assert!(engine.preflight(&uid("u1"), &[op("tavily", 0)], true, dec).await.unwrap().can_proceed);
    }
    // (A reservation commits without waiting for SQLite's group.)
    engine.store.settled().await.unwrap();
    assert_eq!(balance_and_entries(&engine, dec).await, (Nanos::from_usd(7), Nanos::from_usd(7)));
    let kinds: Vec<(EntryKind, Nanos)> = entries_of(&engine).await.into_iter().map(|e| (e.0, e.1)).collect();
    let usd = |cents: i64| Nanos(cents * 10_000_000);
    assert_eq!(
        kinds,
        vec![
            (EntryKind::Grant, usd(500)),
            (EntryKind::Debit, Nanos(-usd(125).0)),
            (EntryKind::Expiry, Nanos(-usd(375).0)),
            (EntryKind::Grant, usd(500)),
            (EntryKind::Grant, usd(200)),
        ]
    );
    let w = engine.wallet_view(&uid("u1"), dec).await.unwrap();
    assert!(
        w.grants
            .iter()
            .filter(|g| g.grant.status.is_open())
            .all(|g| g.grant.source == GrantSource::Plan && g.grant.expires_at == Some(t(2027, 1, 1)))
    );
}
both_stores!(included_credits_arrive_each_period, included_credits_arrive_each_period);

/// Credits, a balance under the threshold, a balance used up, credits
/// again and a grant about to lapse: each says so once, as an alert the
/// customer sees (resolved when credits take the balance back over) and as
/// a webhook.
async fn wallet_changes_are_announced(store: Store) {
    use crate::domain::webhooks::EventType;
    let start = t(2026, 11, 1);
    let engine = prepaid_user(store.clone(), start).await;
    let now = t(2026, 11, 10);
    let every: Vec<String> = EventType::ALL.iter().map(|t| t.as_str().to_string()).collect();
    let (hook, _) = engine.create_webhook("http://127.0.0.1:9/w", &every, "", "admin", start).await.unwrap();
    let rule = crate::domain::wallet::LowBalance::Amount(Nanos(SEARCH.0 * 3));
    engine.set_low_balance_threshold(&uid("u1"), Some(rule), "admin:test", now).await.unwrap();
    engine.grant_credits(&uid("u1"), grant_of(Nanos(SEARCH.0 * 5), "five"), "admin:test", now).await.unwrap();
    let search = |i: usize| ev(&format!("s{i}"), "u1", "tavily", None, 0, 0, now);
    // 5 → 3: not under the threshold yet; 3 → 2: under it.
    engine.record(ok((0..2).map(search).collect()), now).await.unwrap();
    engine.record(ok(vec![search(2)]), now).await.unwrap();
    engine.record(ok(vec![search(3)]), now).await.unwrap();
    // 1 → -1: used up (the call happened; it cost more than was left).
    engine.record(ok((4..6).map(search).collect()), now).await.unwrap();
    let open = |engine: &Engine| {
        let engine = engine.clone();
        async move {
            let mut conn = engine.store.pool().acquire().await.unwrap();
            let mut types: Vec<String> = sqlx::query_scalar(
                "SELECT alert_type FROM alerts WHERE user_id = 'u1' AND resolved_at IS NULL ORDER BY alert_type",
            )
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            types.dedup();
            types
        }
    };
    assert_eq!(open(&engine).await, vec!["wallet_depleted", "wallet_low"]);
    // Credits again: both resolve.
    let later = NewGrant { expires_at: Some(now + Duration::hours(48)), ..grant_of(Nanos::from_usd(1), "again") };
    engine.grant_credits(&uid("u1"), later, "admin:test", now).await.unwrap();
    assert!(open(&engine).await.is_empty());
    // A grant lapsing within the warning time (72 h) is announced once.
    assert_eq!(engine.warn_expiring_grants(now).await.unwrap(), 1);
    assert_eq!(engine.warn_expiring_grants(now + Duration::hours(1)).await.unwrap(), 0);
    use EventType::*;
    let sent: Vec<EventType> = {
        let (_, list) = engine.webhook_deliveries(&hook.id, 100).await.unwrap();
        list.iter().rev().map(|d| d.event_type).collect()
    };
    let wallet_only: Vec<EventType> =
        sent.into_iter().filter(|t| matches!(t, WalletLow | WalletDepleted | WalletCredited | GrantExpiring)).collect();
    assert_eq!(wallet_only, vec![WalletCredited, WalletLow, WalletDepleted, WalletCredited, GrantExpiring]);
    let body: String = sqlx::query_scalar("SELECT body FROM webhook_events WHERE event_type = 'wallet.depleted'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["data"]["balance"], serde_json::json!("-0.001000000"), "{body}");
}
both_stores!(wallet_changes_are_announced, wallet_changes_are_announced);

/// A refund gives back what the event's debits drew, once: sent again, or
/// eight times at once, only one lands; an event that was never debited
/// cannot be refunded into money.
async fn an_event_is_refunded_once(store: Store) {
    let start = t(2026, 11, 1);
    let engine = prepaid_user(store, start).await;
    let now = t(2026, 11, 10);
    engine.grant_credits(&uid("u1"), grant_of(Nanos(SEARCH.0 * 2), "two"), "admin:test", now).await.unwrap();
    let calls = (0..3).map(|i| ev(&format!("s{i}"), "u1", "tavily", None, 0, 0, now)).collect();
    engine.record(ok(calls), now).await.unwrap();
    // s2 went into debt: its refund pays the debt back.
    assert_eq!(engine.wallet_view(&uid("u1"), now).await.unwrap().balance, Nanos(-SEARCH.0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.refund_event(&uid("u1"), "s2", "failed call", "admin:test", now).await })
        })
        .collect();
    let mut refunded = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(n) => {
                assert_eq!(n, SEARCH);
                refunded += 1;
            }
            Err(AppError::Conflict(m)) => assert!(m.contains("refunded already"), "{m}"),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(refunded, 1);
    assert_eq!(balance_and_entries(&engine, now).await, (Nanos::ZERO, Nanos::ZERO));
    // s0's cent goes back into the grant it came from.
    engine.refund_event(&uid("u1"), "s0", "goodwill", "admin:test", now).await.unwrap();
    assert_eq!(balance_and_entries(&engine, now).await, (SEARCH, SEARCH));
    let missing = engine.refund_event(&uid("u1"), "never-recorded", "x", "admin:test", now).await;
    assert!(matches!(missing, Err(AppError::NotFound(_))), "{missing:?}");
    let refunds: Vec<_> = entries_of(&engine).await.into_iter().filter(|e| e.0 == EntryKind::Refund).collect();
    assert_eq!(
        refunds,
        vec![(EntryKind::Refund, SEARCH, Some("s2".to_string())), (EntryKind::Refund, SEARCH, Some("s0".to_string()))]
    );
}
both_stores!(an_event_is_refunded_once, an_event_is_refunded_once);

/// A threshold as a percent follows the last top-up.
async fn a_percent_threshold_follows_the_last_top_up(store: Store) {
    use crate::domain::wallet::LowBalance;
    let start = t(2026, 11, 1);
    let engine = prepaid_user(store, start).await;
    let now = t(2026, 11, 10);
    let rule = LowBalance::PercentOfLastTopUp(20);
    engine.set_low_balance_threshold(&uid("u1"), Some(rule), "admin:test", now).await.unwrap();
    assert_eq!(engine.wallet_view(&uid("u1"), now).await.unwrap().low_balance_threshold, None);
    let top_up = |usd: i64, key: &str| NewGrant { source: GrantSource::TopUp, ..grant_of(Nanos::from_usd(usd), key) };
    engine.grant_credits(&uid("u1"), top_up(50, "t1"), "admin:test", now).await.unwrap();
    engine.grant_credits(&uid("u1"), grant_of(Nanos::from_usd(500), "not-a-top-up"), "admin:test", now).await.unwrap();
    let w = engine.wallet_view(&uid("u1"), now).await.unwrap();
    assert_eq!((w.low_balance_threshold, w.low_balance), (Some(Nanos::from_usd(10)), Some(rule)));
    engine.grant_credits(&uid("u1"), top_up(20, "t2"), "admin:test", now + Duration::minutes(1)).await.unwrap();
    assert_eq!(engine.wallet_view(&uid("u1"), now).await.unwrap().low_balance_threshold, Some(Nanos::from_usd(4)));
}
both_stores!(a_percent_threshold_follows_the_last_top_up, a_percent_threshold_follows_the_last_top_up);
