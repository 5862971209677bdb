//! Re-pricing usage recorded without a price, when a price version that
//! covers it is added.
//!
//! An unpriced event is stored at $0 and flagged. When the catalog gains a
//! version that prices it (its provider and model, in force at the event's
//! time), the event gets its cost in the same transaction as the new
//! version: in its own period while that period is open; if that period's
//! bill is already issued, in the open period, marked late (a closed bill
//! never changes). Rollups move with it, so events, rollups and bills keep
//! reconciling; limits the open period now reaches raise their threshold
//! alerts; the admin alert resolves once nothing of that model is left
//! unpriced; the audit log says what was re-priced and by whom.

use crate::domain::identity::UserId;
use crate::server::store::WriteTx;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::catalog::CatalogCache;
use super::subscriptions::lock_current;
use super::webhooks::announce_alerts;
use crate::domain::webhooks::EventType;
use std::collections::BTreeMap;

use crate::domain::alerts::{UNPRICED_SEARCH, crossings, threshold_alert, unpriced_search_model};
use crate::domain::limits::{Limits, ProviderUsage, Usage};
use crate::domain::money::Nanos;
use crate::domain::period::Period;
use crate::domain::pricing::{ANY_MODEL, Catalog, PriceVersion, price_event};
use crate::server::error::AppResult;
use crate::server::store::{alerts, catalog, events, ms, rollups};

/// What a re-pricing did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repriced {
    pub events: i64,
    pub cost: Nanos,
    /// Events whose own period was closed, billed in the open period.
    pub moved_to_open_period: i64,
}

/// Prices the unpriced events that `version` now covers. Runs inside the
/// transaction that added the version; locks each affected user in turn.
pub async fn reprice_for(
    tx: &mut WriteTx,
    catalogs: &CatalogCache,
    version: &PriceVersion,
    actor: &str,
    now: DateTime<Utc>,
) -> AppResult<Repriced> {
    // The catalog as it is now, the new version included.
    let prices = Catalog::new(catalog::price_versions(tx).await?);
    let model = (version.model != ANY_MODEL).then_some(version.model.as_str());
    let events = events::unpriced_events(tx, version.provider.as_str(), model, version.effective_from).await?;
    let mut done = Repriced::default();
    // Per user, locked once: the open period and its label, its limits, and
    // what re-pricing added to it (threshold alerts follow, as if the usage
    // had been priced at once).
    let mut open_of: BTreeMap<UserId, (Period, String, Limits, Usage)> = BTreeMap::new();
    // Prepaid customers' re-priced events, debited from their wallets once
    // (an event is re-priced once: it is no longer unpriced after).
    let mut debits: BTreeMap<UserId, (crate::domain::subscription::Subscription, Vec<(String, Nanos)>)> =
        BTreeMap::new();
    let mut models = std::collections::BTreeSet::new();
    for e in events {
        let Some(v) = prices.lookup(&version.provider, e.model.as_deref(), e.occurred_at) else { continue };
        if v.id != version.id {
            // A more specific or later version prices it; not this one's doing.
            continue;
        }
        if !open_of.contains_key(&e.user_id) {
            let Some((sub, snapshot)) = lock_current(tx, catalogs, &e.user_id, now).await? else { continue };
            let open = sub.current_period();
            if snapshot.plan_of(&sub).is_some_and(|p| p.credits.prepaid()) {
                debits.insert(e.user_id.clone(), (sub.clone(), Vec::new()));
            }
            open_of.insert(e.user_id.clone(), (open, open.label(), snapshot.limits_of(&sub), Usage::default()));
        }
        let (open, open_label, ..) = &open_of[&e.user_id];
        let (open_start, open_label) = (open.start, open_label.clone());
        let units = if e.units == 0 { v.rates.has_unit_price() as u64 } else { e.units as u64 };
        let q = e.parts.quantities(e.tokens_input as u64, e.tokens_output as u64, e.tokens_cached_input as u64, units);
        let Ok(cost) = price_event(&v.rates, q) else { continue };
        let model_key = e.model.clone().unwrap_or_default();
        let provider = version.provider.as_str();
        let closed = e.period_start < open_start;
        if closed {
            // Out of the closed period (its bill stays as issued)...
            let out = rollups::RollupDelta {
                calls: -1,
                errors: -((e.status_code >= 400) as i64),
                tokens_input: -e.tokens_input,
                tokens_output: -e.tokens_output,
                tokens_cached_input: -e.tokens_cached_input,
                cost: Nanos::ZERO,
                unpriced_calls: -1,
                response_ms_sum: -e.response_time_ms.unwrap_or(0),
                response_ms_count: -(e.response_time_ms.is_some() as i64),
            };
            rollups::adjust_rollup(tx, &e.user_id, (e.period_start, &e.billing_period), provider, &model_key, &out)
                .await?;
            // ...into the open one, priced.
            let into = rollups::RollupDelta {
                calls: 1,
                errors: -out.errors,
                tokens_input: e.tokens_input,
                tokens_output: e.tokens_output,
                tokens_cached_input: e.tokens_cached_input,
                cost: cost.total,
                unpriced_calls: 0,
                response_ms_sum: -out.response_ms_sum,
                response_ms_count: -out.response_ms_count,
            };
            rollups::adjust_rollup(tx, &e.user_id, (open_start, &open_label), provider, &model_key, &into).await?;
            events::set_event_price(tx, e.id, &cost, units as i64, v.id, Some((open_start, &open_label))).await?;
            done.moved_to_open_period += 1;
        } else {
            let d = rollups::RollupDelta { cost: cost.total, unpriced_calls: -1, ..Default::default() };
            rollups::adjust_rollup(tx, &e.user_id, (e.period_start, &e.billing_period), provider, &model_key, &d)
                .await?;
            events::set_event_price(tx, e.id, &cost, units as i64, v.id, None).await?;
        }
        // What the open period gained: the cost, and the call and tokens of
        // an event moved in from a billed period.
        let (calls, tokens) = if closed { (1, e.tokens_input + e.tokens_output) } else { (0, 0) };
        if let Some((.., gained)) = open_of.get_mut(&e.user_id) {
            gained.add(&version.provider, ProviderUsage { calls, tokens, cost: cost.total });
        }
        if let Some((_, d)) = debits.get_mut(&e.user_id) {
            d.push((e.event_id.clone(), cost.total));
        }
        tx.notify(&e.user_id, crate::server::store::live::Kind::Usage);
        done.events += 1;
        done.cost = done.cost.saturating_add(cost.total);
        models.insert(e.model.clone());
    }
    for (user_id, (open, label, limits, more)) in &open_of {
        let after = rollups::period_usage(tx, user_id, open.start).await?;
        let mut before = after.clone();
        for (p, u) in &more.by_provider {
            let b = before.by_provider.entry(p.clone()).or_default();
            *b = ProviderUsage {
                calls: b.calls - u.calls,
                tokens: b.tokens - u.tokens,
                cost: Nanos(b.cost.0 - u.cost.0),
            };
        }
        let crossed = crossings(limits, &before, &after);
        for (limit, t) in &crossed {
            let alert = threshold_alert(user_id, label, ms(open.start), limit, *t, open.end);
            let raised = alerts::raise_threshold_alert(tx, user_id, (open.start, label), &alert, now).await?;
            announce_alerts(tx, EventType::AlertCreated, raised, now).await?;
        }
        if !crossed.is_empty() {
            tx.notify(user_id, crate::server::store::live::Kind::Alert);
        }
    }
    for (sub, d) in debits.values() {
        let d: Vec<(&str, Nanos)> = d.iter().map(|(id, c)| (id.as_str(), *c)).collect();
        super::wallet::debit_events(tx, sub, &d, now).await?;
    }
    for m in &models {
        if events::unpriced_left(tx, version.provider.as_str(), m.as_deref().unwrap_or("")).await? == 0 {
            let resolved = alerts::resolve_unpriced_alert(tx, version.provider.as_str(), m.as_deref(), now).await?;
            announce_alerts(tx, EventType::AlertResolved, resolved, now).await?;
        }
    }
    // Web-search queries that the price in force now covers: their alerts
    // resolve (events recorded before keep the price they had).
    let mut covered = Vec::new();
    for (id, key) in alerts::open_admin_alerts(tx, UNPRICED_SEARCH, version.provider.as_str()).await? {
        let Some(model) = unpriced_search_model(version.provider.as_str(), &key) else { continue };
        let priced = prices.lookup(&version.provider, model, now);
        if priced.is_some_and(|v| v.rates.effective(0, Default::default()).per_search_query.is_some()) {
            covered.push(id);
        }
    }
    let resolved = alerts::resolve_alerts(tx, &covered, now).await?;
    announce_alerts(tx, EventType::AlertResolved, resolved, now).await?;
    if done.events > 0 {
        super::audit::record(
            tx,
            actor,
            "usage.reprice",
            ("price", &format!("{}/{}", version.provider, version.model)),
            super::audit::NONE,
            Some(&json!({
                "price_version_id": version.id,
                "events": done.events,
                "cost": done.cost.usd_string(),
                "billed_in_open_period_as_late": done.moved_to_open_period,
            })),
            now,
        )
        .await?;
    }
    Ok(done)
}
