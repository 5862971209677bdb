//! Recording usage: price, deduplicate, roll up and alert, in one
//! transaction per batch.
//!
//! Every front door that records usage (the ingest API, the demo seed, the
//! `simulate` command) calls [`Engine::record`]. The event rows, their rollup
//! increments, consumed holds and any alerts commit together, so an
//! acknowledged event is durable and counted exactly once, and a crash
//! leaves nothing half-written.
//!
//! Every acknowledged cost lands in exactly one bill:
//! - an event timestamped before its user's subscription began belongs to
//!   no bill, so it is rejected with the reason and nothing is recorded;
//! - a late event (timestamped in a period whose bill is already issued) is
//!   billed in the open period and marked `late`, keeping its own
//!   timestamp; a closed bill never changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::Engine;
use super::subscriptions::lock_current;
use super::webhooks::announce_alerts;
use crate::domain::alerts::{crossed, threshold_alert, unpriced_alert, unpriced_search_alert};
use crate::domain::event::{MAX_EVENT_COST_USD, UsageEvent};
use crate::domain::identity::UserId;
use crate::domain::limits::{LimitUse, ProviderUsage};
use crate::domain::money::Nanos;
use crate::domain::period::usage_period;
use crate::domain::pricing::{Cost, price_event, unpriced_search_queries};
use crate::domain::provider::{LimitKey, Provider};
use crate::domain::response_times::Histogram;
use crate::domain::tags::MAX_KEYS_PER_USER;
use crate::domain::webhooks::EventType;
use crate::server::error::AppResult;
use crate::server::store::events::Recorded;
use crate::server::store::live::Kind;
use crate::server::store::memo::Held;
use crate::server::store::rollups::RollupDelta;
use crate::server::store::view::Affects;
use crate::server::store::{alerts, events, holds, ms, response_times, rollups};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected => "rejected",
        }
    }
}

/// The result for one event of a batch, in batch order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventResult {
    pub id: String,
    pub outcome: Outcome,
    /// The cost recorded (first recorded, for a duplicate); zero if rejected.
    pub cost: Nanos,
    pub unpriced: bool,
    pub error: Option<String>,
}

impl EventResult {
    fn rejected(id: String, error: String) -> EventResult {
        EventResult { id, outcome: Outcome::Rejected, cost: Nanos::ZERO, unpriced: false, error: Some(error) }
    }
}

/// An event as received: parsed, or the reason it could not be, with the id
/// if one could be read.
pub type Incoming = Result<UsageEvent, (String, String)>;

impl Engine {
    /// Records a batch. Invalid events are rejected one by one; the others
    /// commit together. Errors only when the store fails (nothing written).
    #[tracing::instrument(skip_all, fields(events = incoming.len()))]
    pub async fn record(&self, incoming: Vec<Incoming>, now: DateTime<Utc>) -> AppResult<Vec<EventResult>> {
        self.record_acked(incoming, now, true).await
    }

    /// [`Engine::record`] for calls already answered (the proxy's): on
    /// SQLite in `power` durability it returns once the batch is in the
    /// write-ahead log, before the sync that follows within one
    /// `fdatasync` (see [`crate::server::store::WriteTx::commit_written`]).
    /// The answer does not wait for the disk; a power cut in between
    /// loses the calls answered since the last sync.
    pub async fn record_answered(&self, incoming: Vec<Incoming>, now: DateTime<Utc>) -> AppResult<Vec<EventResult>> {
        self.record_acked(incoming, now, false).await
    }

    async fn record_acked(
        &self,
        incoming: Vec<Incoming>,
        now: DateTime<Utc>,
        synced: bool,
    ) -> AppResult<Vec<EventResult>> {
        let (results, spent) = self.record_batch(incoming, now, synced).await?;
        self.counters.recorded(&results);
        self.check_spikes_after(spent, now);
        Ok(results)
    }

    /// Records a batch; the results, and the users whose recorded events
    /// cost something. `synced`: acknowledged once durable as the store's
    /// setting says, else once in the log.
    async fn record_batch(
        &self,
        incoming: Vec<Incoming>,
        now: DateTime<Utc>,
        synced: bool,
    ) -> AppResult<(Vec<EventResult>, Vec<UserId>)> {
        let mut spent = Vec::new();
        let mut results: Vec<Option<EventResult>> = vec![None; incoming.len()];
        let mut by_user: BTreeMap<UserId, Vec<(usize, UsageEvent)>> = BTreeMap::new();
        for (i, e) in incoming.into_iter().enumerate() {
            match e {
                Ok(ev) => by_user.entry(ev.user_id.clone()).or_default().push((i, ev)),
                Err((id, err)) => results[i] = Some(EventResult::rejected(id, err)),
            }
        }

        let turns = self.user_turns.take(by_user.keys().map(UserId::as_str)).await;
        // PostgreSQL: answered calls commit without waiting for the WAL
        // flush (`synchronous_commit = off`, flushed within 600 ms).
        let mut tx = if synced { self.store.begin().await? } else { self.store.begin_unsynced().await? };
        tx.hold_until_done(turns);
        tx.affects(Affects::Users(by_user.keys().map(UserId::to_string).collect()));
        // Users in sorted order, so concurrent batches lock in the same order.
        for (user_id, events) in by_user {
            // On SQLite the write group's memo may know the user's state
            // (see `store::memo`): no lock and no read then. The catalog
            // is the one the transaction sees once the user is locked.
            let recalled = tx.recall(&user_id, now);
            let (sub, catalog, mut period_usage) = match &recalled {
                Some(held) => (held.sub.clone(), self.catalog.get_in(&mut tx).await?, held.used.clone()),
                None => {
                    let Some((sub, catalog)) = lock_current(&mut tx, &self.catalog, &user_id, now).await? else {
                        for (i, ev) in events {
                            results[i] = Some(EventResult::rejected(ev.id, format!("unknown user `{user_id}`")));
                        }
                        continue;
                    };
                    let used = rollups::period_usage(&mut tx, &user_id, sub.current_period().start).await?;
                    (sub, catalog, used)
                }
            };
            let limits = catalog.limits_of(&sub);
            let current = sub.current_period();
            // Set-based: decide every event in memory, then write the batch
            // in a few statements (the new rows many a statement, one upsert
            // per rollup row). Under the user's lock nothing else records
            // for this user, so the ids found here are all there are.
            let ids: Vec<&str> = events.iter().map(|(_, e)| e.id.as_str()).collect();
            let recorded = events::recorded_among(&mut tx, &user_id, &ids).await?;
            let mut first_in_batch: HashMap<&str, Recorded> = HashMap::new();
            let mut rows: Vec<events::PricedEvent<'_>> = Vec::with_capacity(events.len());
            let mut deltas: BTreeMap<(DateTime<Utc>, String, &str, &str), RollupDelta> = BTreeMap::new();
            // The same rows' response times (the provider comparison).
            let mut times: BTreeMap<(DateTime<Utc>, String, &str, &str), Histogram> = BTreeMap::new();
            let mut consumed: Vec<(&str, &str, &str)> = Vec::new();
            let mut unpriced: BTreeSet<(&Provider, Option<&str>)> = BTreeSet::new();
            // Priced, but with web-search queries their price does not cover.
            let mut unpriced_searches: BTreeSet<(&Provider, Option<&str>)> = BTreeSet::new();
            let mut threshold_alerts = Vec::new();
            // The user's tag keys, read only when this batch tags something.
            let mut tag_keys: Option<BTreeSet<String>> = if events.iter().any(|(_, e)| !e.tags.0.is_empty()) {
                Some(crate::server::store::insights::tag_keys(&mut tx, &user_id).await?.into_iter().collect())
            } else {
                None
            };

            for (i, ev) in &events {
                let i = *i;
                let reject = |error: String| Some(EventResult::rejected(ev.id.clone(), error));
                if !(ev.provider.is_builtin() || catalog.prices.knows_provider(&ev.provider)) {
                    results[i] =
                        reject(format!("unknown provider `{}`; add it to the pricing catalog first", ev.provider));
                    continue;
                }
                let version = catalog.prices.lookup(&ev.provider, ev.model.as_deref(), ev.timestamp);
                let unit_default = version.map_or(0, |v| v.rates.has_unit_price() as u64);
                let cost = match version {
                    Some(v) => match price_event(&v.rates, ev.quantities(unit_default)) {
                        Ok(c) => c,
                        Err(e) => {
                            results[i] = reject(e.to_string());
                            continue;
                        }
                    },
                    None => Cost::default(),
                };
                if cost.total > Nanos::from_usd(MAX_EVENT_COST_USD) {
                    results[i] = reject(format!(
                        "this event would cost {}, more than the {} one event may cost; check its counts",
                        cost.total.display_plain(),
                        Nanos::from_usd(MAX_EVENT_COST_USD).display_plain()
                    ));
                    continue;
                }
                if ev.timestamp < sub.started_at {
                    results[i] = reject(format!(
                        "`timestamp` {} is before this user's subscription began ({}), so it belongs to no bill; nothing was recorded",
                        ev.timestamp.to_rfc3339(),
                        sub.started_at.to_rfc3339()
                    ));
                    continue;
                }
                // Late usage is billed in the open period; closed bills stay.
                let late = ev.timestamp < current.start;
                let (period_start, billing_period) = if late {
                    (current.start, current.label())
                } else {
                    let p = usage_period(sub.anchor(), ev.timestamp);
                    (p.start, p.label())
                };
                let priced = events::PricedEvent {
                    event: ev,
                    units: ev.units.unwrap_or(unit_default),
                    cost,
                    price_version_id: version.map(|v| v.id),
                    unpriced: version.is_none(),
                    period_start,
                    billing_period,
                    late,
                };
                let added = ProviderUsage { calls: 1, tokens: ev.tokens_total() as i64, cost: cost.total };
                const TOO_BIG: &str =
                    "this period's totals for this user would exceed what can be counted; nothing was recorded";
                if period_start == current.start && !period_usage.fits(&ev.provider, added) {
                    results[i] = reject(TOO_BIG.into());
                    continue;
                }
                if let Some(first) = recorded.get(ev.id.as_str()).or_else(|| first_in_batch.get(ev.id.as_str())) {
                    // A retry's own reservation is released: the call it
                    // held for was recorded already.
                    if let Some(rid) = &ev.reservation_id {
                        consumed.push((rid.as_str(), ev.provider.as_str(), ev.model.as_deref().unwrap_or("")));
                    }
                    results[i] = Some(EventResult {
                        id: ev.id.clone(),
                        outcome: Outcome::Duplicate,
                        cost: first.cost,
                        unpriced: first.unpriced,
                        error: None,
                    });
                    continue;
                }
                if let Some(known) = &mut tag_keys {
                    let new: Vec<&String> = ev.tags.0.keys().filter(|k| !known.contains(*k)).collect();
                    if known.len() + new.len() > MAX_KEYS_PER_USER {
                        results[i] = reject(format!(
                            "this user's events already carry {} distinct tag keys, the most there may be \
                             ({MAX_KEYS_PER_USER}); reuse one instead of `{}`",
                            known.len(),
                            new[0]
                        ));
                        continue;
                    }
                    known.extend(new.into_iter().cloned());
                }
                let model = ev.model.as_deref().unwrap_or("");
                let row_key = (priced.period_start, priced.billing_period.clone(), ev.provider.as_str(), model);
                let delta = rollups::delta_of(&priced);
                let Some(sum) = deltas.get(&row_key).copied().unwrap_or_default().checked_add(&delta) else {
                    results[i] = reject(TOO_BIG.into());
                    continue;
                };
                if let Some(took) = ev.response_time_ms {
                    times.entry(row_key.clone()).or_default().record(took);
                }
                deltas.insert(row_key, sum);
                first_in_batch.insert(&ev.id, Recorded { cost: cost.total, unpriced: priced.unpriced });
                if let Some(rid) = &ev.reservation_id {
                    consumed.push((rid.as_str(), ev.provider.as_str(), model));
                }
                if priced.unpriced {
                    unpriced.insert((&ev.provider, ev.model.as_deref()));
                } else if version.is_some_and(|v| unpriced_search_queries(&v.rates, &ev.quantities(unit_default))) {
                    unpriced_searches.insert((&ev.provider, ev.model.as_deref()));
                }
                // Threshold alerts concern the current period only.
                if period_start == current.start {
                    let touched = [
                        LimitKey::Calls(ev.provider.clone()),
                        LimitKey::Tokens(ev.provider.clone()),
                        LimitKey::MonthlyCost,
                    ];
                    let before: Vec<(LimitKey, i64, i64)> = touched
                        .into_iter()
                        .filter_map(|k| limits.get(&k).map(|limit| (k.clone(), period_usage.measure(&k), limit)))
                        .collect();
                    period_usage.checked_add(&ev.provider, added);
                    for (key, used_before, limit) in before {
                        let after = LimitUse { used: period_usage.measure(&key), key, limit };
                        for t in crossed(used_before, &after) {
                            threshold_alerts.push(threshold_alert(
                                &user_id,
                                &current.label(),
                                ms(current.start),
                                &after,
                                t,
                                current.end,
                            ));
                        }
                    }
                }
                results[i] = Some(EventResult {
                    id: ev.id.clone(),
                    outcome: Outcome::Accepted,
                    cost: cost.total,
                    unpriced: priced.unpriced,
                    error: None,
                });
                rows.push(priced);
            }

            if !rows.is_empty() {
                tx.notify(&user_id, Kind::Usage);
            }
            if rows.iter().any(|r| r.cost.total > Nanos::ZERO) {
                spent.push(user_id.clone());
            }
            if !threshold_alerts.is_empty() {
                tx.notify(&user_id, Kind::Alert);
            }
            events::insert_events(&mut tx, &rows, now).await?;
            // A prepaid customer pays each accepted event from the wallet,
            // under the same lock (a duplicate was not accepted: no debit).
            if catalog.plan_of(&sub).is_some_and(|p| p.credits.prepaid()) {
                let debits: Vec<(&str, Nanos)> = rows.iter().map(|r| (r.event.id.as_str(), r.cost.total)).collect();
                super::wallet::debit_events(&mut tx, &sub, &debits, now).await?;
            }
            for ((start, label, provider, model), d) in &deltas {
                rollups::adjust_rollup(&mut tx, &user_id, (*start, label), provider, model, d).await?;
            }
            for ((start, label, provider, model), h) in &times {
                response_times::add(&mut tx, &user_id, (*start, label), provider, model, h).await?;
            }
            holds::consume_holds(&mut tx, &user_id, &consumed, now).await?;
            // SQLite: the memo learns the user's state as this job leaves
            // it, so the next reservation decides without reading the
            // store or waiting for this job's commit. Every event of the
            // open period was added to `period_usage` above; when holds
            // were consumed, or the memo did not know the user, the holds
            // are read again (one statement, inside the job).
            if tx.keeps_memo() {
                let held = match recalled {
                    Some(held) if consumed.is_empty() => Held { used: period_usage, ..held },
                    _ => {
                        let seen = holds::usage_and_holds(&mut tx, &user_id, current.start, now).await?;
                        Held { sub: sub.clone(), used: seen.used, held: seen.held, until: seen.first_expiry }
                    }
                };
                tx.learned_user(&user_id, held);
            }
            for (provider, model) in unpriced {
                let alert = unpriced_alert(provider.as_str(), model);
                // Raised anew, or again for a model priced since (alert
                // resolved) but used before that price's start.
                let raised = alerts::raise_unpriced_alert(&mut tx, &alert, now).await?;
                announce_alerts(&mut tx, EventType::PriceUnpriced, raised, now).await?;
                if raised.is_some() {
                    tracing::warn!(%provider, ?model, "usage recorded for a model without a price");
                }
            }
            for (provider, model) in unpriced_searches {
                let alert = unpriced_search_alert(provider.as_str(), model);
                let raised = alerts::raise_unpriced_alert(&mut tx, &alert, now).await?;
                announce_alerts(&mut tx, EventType::PriceUnpriced, raised, now).await?;
                if raised.is_some() {
                    tracing::warn!(%provider, ?model, "web-search queries recorded without a per-query price");
                }
            }
            let label = current.label();
            for alert in &threshold_alerts {
                let raised =
                    alerts::raise_threshold_alert(&mut tx, &user_id, (current.start, &label), alert, now).await?;
                announce_alerts(&mut tx, EventType::AlertCreated, raised, now).await?;
            }
        }
        if synced {
            tx.commit().await?;
        } else {
            tx.commit_written().await?;
        }
        Ok((results.into_iter().map(|r| r.expect("every event has a result")).collect(), spent))
    }
}
