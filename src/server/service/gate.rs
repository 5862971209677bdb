//! The gate: checking planned operations against the plan before the call,
//! and reserving their estimated usage.
//!
//! A reservation is written in the same transaction that checked the room
//! for it, under the user's lock, so concurrent reservations can never take
//! a hard limit past its value (for calls, tokens and cost alike). A hold
//! counts until the event naming it arrives or it expires; expired holds
//! simply stop counting, so there are no phantom 429s.

use crate::domain::identity::UserId;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Engine;
use super::catalog::CatalogSnapshot;
use super::subscriptions::lock_current;
use crate::domain::limits::{Demand, LimitUse, ProviderUsage, Usage, ceilings, first_exceeded};
use crate::domain::money::Nanos;
use crate::domain::pricing::{Catalog, Quantities, ServiceTier, price_event};
use crate::domain::provider::{LimitKey, Provider};
use crate::domain::subscription::Subscription;
use crate::server::error::{AppError, AppResult};
use crate::server::store::Backend;
use crate::server::store::holds::{self, NewHold, OneTrip, Premises};
use crate::server::store::memo::Held;
use crate::server::store::users;
use crate::server::store::view::{Affects, UserView};

/// One planned operation.
#[derive(Clone, Debug)]
pub struct Operation {
    pub provider: Provider,
    pub model: Option<String>,
    pub tokens_requested: u64,
    /// Requests, searches, images or pages; `None`: one where the price is
    /// per unit, none otherwise.
    pub units_requested: Option<u64>,
    /// The service tier the call will use (batch, flex and priority may be
    /// priced differently); standard unless said.
    pub service_tier: ServiceTier,
    pub operation_type: String,
}

/// The verdict on one operation.
#[derive(Clone, Debug)]
pub struct OperationCheck {
    pub provider: String,
    pub operation_type: String,
    pub cost: Nanos,
    pub allowed: bool,
    /// The limit that decided, when there is one.
    pub limit: Option<LimitUse>,
    pub message: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Preflight {
    pub can_proceed: bool,
    pub total_cost: Nanos,
    pub operations: Vec<OperationCheck>,
    /// Calls of the first operation's provider against its limit.
    pub calls_summary: Option<LimitUse>,
    pub reservation_id: Option<String>,
    /// When the period (and so every limit) resets.
    pub resets_at: DateTime<Utc>,
    /// The first limit that denied, if any.
    pub denied_by: Option<LimitUse>,
    /// A prepaid customer's credits against the request's worst case.
    pub wallet: Option<CreditCheck>,
}

/// What a prepaid customer has available and what a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditCheck {
    /// Balance less the holds of calls in flight (negative in debt).
    pub available: Nanos,
    /// The worst-case cost of the request's operations.
    pub required: Nanos,
}

impl CreditCheck {
    pub fn enough(self) -> bool {
        self.required <= self.available
    }
}

impl Preflight {
    /// Whether it was refused for want of prepaid credits (every limit
    /// allowed it).
    pub fn insufficient_credits(&self) -> bool {
        self.wallet.is_some_and(|w| !w.enough())
    }

    /// Why it was denied, in words: the first refused operation's message.
    pub fn denial_message(&self) -> Option<&str> {
        self.operations.iter().find_map(|o| o.message.as_deref())
    }

    /// `Retry-After` of a denial: seconds until the limits reset (at least
    /// one).
    pub fn retry_after_secs(&self, now: DateTime<Utc>) -> i64 {
        (self.resets_at - now).num_seconds().max(1)
    }
}

/// Estimated cost: the most the requested tokens could cost however they
/// split between input and output, plus the requested units (one by
/// default where the price is per unit) at the unit price. Between two
/// context-tier thresholds the cost is linear in the split, so the most is
/// at an end: all output, all input, or either side of a threshold (where
/// the whole request changes price). A reservation for 300k input tokens on
/// a model that charges more above 200k so holds the higher tier's price.
/// Unpriced models estimate at zero (their calls and tokens still count
/// against limits).
pub fn estimate(catalog: &Catalog, op: &Operation, at: DateTime<Utc>) -> Nanos {
    let Some(v) = catalog.lookup(&op.provider, op.model.as_deref(), at) else {
        return Nanos::ZERO;
    };
    let units = op.units_requested.unwrap_or(v.rates.has_unit_price() as u64);
    let t = op.tokens_requested;
    let mut inputs = vec![0, t];
    for n in v.rates.thresholds().into_iter().filter(|n| *n < t) {
        inputs.extend([n, n + 1]);
    }
    inputs
        .into_iter()
        .map(|i| price_event(&v.rates, Quantities::tokens(i, t - i).with_units(units).with_tier(op.service_tier)))
        .try_fold(Nanos::ZERO, |most, c| c.map(|c| most.max(c.total)))
        .unwrap_or(Nanos(i64::MAX))
}

/// Where the output tokens held for a call come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputBound {
    /// The request's own maximum.
    Requested,
    /// The model's output cap from the catalog.
    ModelCap,
    /// The deployment's default (`TALLY_PROXY_DEFAULT_MAX_OUTPUT`).
    Default,
}

impl OutputBound {
    /// Where the figure came from, in words for a refusal.
    pub fn describe(self) -> &'static str {
        match self {
            OutputBound::Requested => "the request's maximum",
            OutputBound::ModelCap => "the model's output cap; set a maximum to hold less",
            OutputBound::Default => "the proxy's default; set a maximum to hold less",
        }
    }
}

/// The output tokens to hold for a call that sets no maximum of its own
/// (one that does holds its maximum, [`OutputBound::Requested`]): the
/// model's cap from the catalog, else `default_max`, once per answer
/// asked for (`choices`).
pub fn output_to_hold(
    catalog: &Catalog,
    provider: &Provider,
    model: Option<&str>,
    choices: u64,
    default_max: u64,
    at: DateTime<Utc>,
) -> (u64, OutputBound) {
    match catalog.lookup(provider, model, at).and_then(|v| v.max_output_tokens) {
        Some(cap) => (cap.saturating_mul(choices), OutputBound::ModelCap),
        None => (default_max.saturating_mul(choices), OutputBound::Default),
    }
}

fn describe(l: &LimitUse, resets_at: DateTime<Utc>) -> String {
    format!(
        "{} limit reached: {} used of {} (including requests in flight); it resets on {}",
        l.key.label(),
        l.key.display_value(l.used),
        l.key.display_value(l.limit),
        resets_at.format("%b %-d, %Y %H:%M UTC")
    )
}

/// The verdict on a request before anything is held, with the holds the
/// allowed operations would take.
struct Verdict {
    preflight: Preflight,
    holds: Vec<(usize, ProviderUsage)>,
}

impl Engine {
    /// Checks `ops` for `user_id`; with `reserve`, holds their estimated
    /// usage when all are allowed.
    ///
    /// Checking only is a read: no lock and no write, so it never waits for
    /// writers. It answers from the process's copy of committed usage and
    /// holds ([`crate::server::store::view`]), and promises nothing; only a
    /// reservation holds room. Reserving locks the user's subscription row,
    /// reads usage and holds from the store, checks and writes the holds in
    /// that one transaction: the store is the authority, so two nodes (or
    /// two requests) can never both take the last of a limit. On SQLite the
    /// lock and the reads are usually answered by the write group's memo,
    /// an exact record of that same transaction's state (see
    /// [`crate::server::store::memo`]), so the reservation runs no
    /// statement: its holds are written with the group. On PostgreSQL an
    /// allowed reservation is usually one round trip: decided on the
    /// process's copy and confirmed and written by the store under the
    /// user's lock ([`Engine::reserve_in_one_trip`]). A denial, or a copy
    /// the store finds out of date, is decided again the long way, in five:
    /// BEGIN (sent with `SET LOCAL synchronous_commit = off`), the lock
    /// (which also reads the subscription and the catalog revision), usage
    /// and holds, the holds' INSERT, and COMMIT.
    pub async fn preflight(
        &self,
        user_id: &UserId,
        ops: &[Operation],
        reserve: bool,
        now: DateTime<Utc>,
    ) -> AppResult<Preflight> {
        let p = self.decide(user_id, ops, reserve, now).await?;
        self.counters.decided(reserve, p.can_proceed);
        Ok(p)
    }

    async fn decide(
        &self,
        user_id: &UserId,
        ops: &[Operation],
        reserve: bool,
        now: DateTime<Utc>,
    ) -> AppResult<Preflight> {
        if ops.is_empty() || ops.len() > 100 {
            return Err(AppError::Invalid("operations must hold 1 to 100 operations".into()));
        }
        if !reserve && let Some(p) = self.check_only(user_id, ops, now).await? {
            return Ok(p);
        }
        if let Some(p) = self.decide_in_memo(user_id, ops, reserve, now).await? {
            return Ok(p);
        }
        if reserve && let Some(p) = self.reserve_in_one_trip(user_id, ops, now).await? {
            return Ok(p);
        }
        let turn = self.user_turns.take([user_id.as_str()]).await;
        let mut tx = self.store.begin_unsynced().await?;
        tx.hold_until_done(turn);
        tx.affects(Affects::Users(vec![user_id.to_string()]));
        let (catalog, held) = match tx.recall(user_id, now) {
            Some(held) => (self.catalog.get_in(&mut tx).await?, held),
            None => {
                let (sub, catalog) = lock_current(&mut tx, &self.catalog, user_id, now)
                    .await?
                    .ok_or_else(|| AppError::NotFound(format!("no user with id `{user_id}`")))?;
                let seen = holds::usage_and_holds(&mut tx, user_id, sub.current_period().start, now).await?;
                (catalog, Held { sub, used: seen.used, held: seen.held, until: seen.first_expiry })
            }
        };
        // A prepaid customer's balance, read under the same lock as usage:
        // grants and debits take it too.
        let balance = if prepaid(&catalog, &held.sub) {
            Some(super::wallet::balance_in(&mut tx, user_id, now).await?)
        } else {
            None
        };
        let (preflight, after, new_holds) = self.decide_on(&catalog, held, balance, ops, reserve, now)?;
        holds::insert_holds(&mut tx, &new_holds).await?;
        tx.learned_user(user_id, after);
        // Holds need not outlive a crash (see `commit_unsynced`), and
        // neither need a period rollover `lock_current` may have written
        // (it is done again): the answer does not wait for the disk.
        tx.commit_unsynced().await?;
        Ok(preflight)
    }

    /// SQLite: the decision on the write group's memo alone, when it knows
    /// the catalog revision and the user (see
    /// [`crate::server::store::memo`]); no statement runs, and the holds
    /// are written with the group. While a job that may change the user
    /// runs (a batch of the user's events), it waits for that job to end,
    /// not for its commit. `None` otherwise, and on PostgreSQL.
    async fn decide_in_memo(
        &self,
        user_id: &UserId,
        ops: &[Operation],
        reserve: bool,
        now: DateTime<Utc>,
    ) -> AppResult<Option<Preflight>> {
        enum InMemo {
            Decided(AppResult<Preflight>),
            Busy(tokio::sync::watch::Receiver<u64>),
            Unknown,
        }
        let Some(catalog) = self.catalog.snapshot().await else { return Ok(None) };
        // Jobs are short; past a few, the locked path queues fairly.
        for _ in 0..4 {
            let decided = self
                .store
                .in_memo(|m| {
                    if let Some(ended) = m.busy(user_id) {
                        return InMemo::Busy(ended);
                    }
                    if m.revision() != Some(catalog.revision) {
                        return InMemo::Unknown;
                    }
                    let Some(held) = m.recall(user_id, now) else { return InMemo::Unknown };
                    // The memo keeps no wallet.
                    if prepaid(&catalog, &held.sub) {
                        return InMemo::Unknown;
                    }
                    InMemo::Decided(self.decide_on(&catalog, held, None, ops, reserve, now).map(
                        |(preflight, after, new_holds)| {
                            if !new_holds.is_empty() {
                                m.hold(user_id, after, new_holds);
                            }
                            preflight
                        },
                    ))
                })
                .await?;
            match decided {
                Some(InMemo::Decided(p)) => return p.map(Some),
                Some(InMemo::Busy(mut ended)) => {
                    // An error: the store is closing; the locked path says so.
                    if ended.changed().await.is_err() {
                        return Ok(None);
                    }
                }
                Some(InMemo::Unknown) | None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// PostgreSQL: an allowed reservation decided on the process's copy of
    /// the user's state (read from the store when it has no fresh one) and
    /// written in one round trip by the store, which first confirms under
    /// the user's row lock that the copy's premises still hold (same period,
    /// plan, status and catalog revision; usage and holds within the
    /// [`ceilings`] of what the reservation adds). `None`, with nothing
    /// written, when the copy denies (a denial is decided under the lock),
    /// when the store finds a premise broken, and on SQLite.
    async fn reserve_in_one_trip(
        &self,
        user_id: &UserId,
        ops: &[Operation],
        now: DateTime<Utc>,
    ) -> AppResult<Option<Preflight>> {
        if self.store.backend() != Backend::Postgres {
            return Ok(None);
        }
        // One of this process's writers per user at a time, as on the long
        // way: reservations of one user queue here, not for the row lock
        // inside the database (each holding a pooled connection while it
        // waits), and each decides on a copy that carries the one before.
        let _turn = self.user_turns.take([user_id.as_str()]).await;
        let catalog = self.catalog.recent(&self.store).await?;
        let Some(entry) = self.user_view(user_id, now).await? else { return Ok(None) };
        if prepaid(&catalog, &entry.sub) {
            return Ok(None);
        }
        // The copy keeps usage and holds as one total; `after.held` is then
        // exactly what this reservation adds.
        let held = Held { sub: entry.sub.clone(), used: entry.seen.clone(), held: Usage::default(), until: None };
        let Ok((preflight, after, new_holds)) = self.decide_on(&catalog, held, None, ops, true, now) else {
            return Ok(None);
        };
        // All of a reservation's holds lapse together.
        let Some(expires_at) = new_holds.first().map(|h| h.expires_at) else { return Ok(None) };
        if !preflight.can_proceed {
            return Ok(None);
        }
        let premises = Premises {
            period_start: entry.sub.period_start,
            plan_id: entry.sub.plan_id,
            catalog_revision: catalog.revision,
        };
        let ceilings = ceilings(&catalog.limits_of(&entry.sub), &after.held);
        let mut conn = self.store.pool().acquire().await?;
        let outcome = holds::reserve_in_one_trip(&mut conn, user_id, premises, &ceilings, &new_holds, now).await?;
        self.counters.tried_one_trip(outcome);
        match outcome {
            OneTrip::Held => {
                self.store.view().add_held(user_id, &entry, &after.held, expires_at);
                Ok(Some(preflight))
            }
            OneTrip::Changed | OneTrip::Full => Ok(None),
        }
    }

    /// The process's copy of the user's subscription, usage and holds,
    /// read from the store when it has no fresh one. `None` for an unknown
    /// user and for a period that has ended (rolling it over is a write).
    async fn user_view(&self, user_id: &UserId, now: DateTime<Utc>) -> AppResult<Option<Arc<UserView>>> {
        let view = self.store.view();
        let entry = match view.get(user_id, now) {
            Some(entry) => entry,
            None => {
                let ticket = view.ticket(user_id);
                let mut conn = self.store.pool().acquire().await?;
                let Some(sub) = users::subscription(&mut conn, user_id).await? else { return Ok(None) };
                if now >= sub.period_end {
                    return Ok(None);
                }
                let seen = holds::usage_and_holds(&mut conn, user_id, sub.current_period().start, now).await?;
                view.fill(ticket, sub, seen.total(), seen.first_expiry)
            }
        };
        Ok((now < entry.sub.period_end).then_some(entry))
    }

    /// The verdict on `ops` given the user's state, and with `reserve`,
    /// when all are allowed, the holds to write and the state after them.
    fn decide_on(
        &self,
        catalog: &CatalogSnapshot,
        held: Held,
        balance: Option<Nanos>,
        ops: &[Operation],
        reserve: bool,
        now: DateTime<Utc>,
    ) -> AppResult<(Preflight, Held, Vec<NewHold>)> {
        let period = held.sub.current_period();
        let credit = balance.map(|b| (b, held.held.total().cost));
        let Verdict { mut preflight, holds } = self.verdict(catalog, &held.sub, held.seen(), credit, ops, now)?;
        let mut after = held;
        let mut new_holds = Vec::new();
        if reserve && preflight.can_proceed {
            let id = format!("rsv_{}", uuid::Uuid::new_v4().simple());
            let ttl = self.config.hold_span();
            let expires_at = (now + ttl).min(period.end);
            for (i, usage) in holds {
                let op = &ops[i];
                new_holds.push(NewHold {
                    id: id.clone(),
                    op_index: i as i64,
                    user_id: after.sub.user_id.clone(),
                    period_start: period.start,
                    provider: op.provider.as_str().to_string(),
                    model: op.model.clone().unwrap_or_default(),
                    usage,
                    created_at: now,
                    expires_at,
                });
                after.held.add(&op.provider, usage);
                after.until = Some(after.until.map_or(expires_at, |t| t.min(expires_at)));
            }
            preflight.reservation_id = Some(id);
        }
        Ok((preflight, after, new_holds))
    }

    /// The check without `reserve`, from the process's view of the user's
    /// usage (read from the store when the view has no fresh copy). `None`
    /// when it needs the locked path: an unknown user (to say so the same
    /// way) or a period that has ended (rolling it over is a write).
    async fn check_only(
        &self,
        user_id: &UserId,
        ops: &[Operation],
        now: DateTime<Utc>,
    ) -> AppResult<Option<Preflight>> {
        let catalog = self.catalog.recent(&self.store).await?;
        // SQLite: the write group's memo, exact while a group holds the
        // write lock, when it knows the user (this process's reservations
        // count at once).
        let memo = self.store.peek_memo(|m| {
            let known = m.busy(user_id).is_none() && m.revision() == Some(catalog.revision);
            known.then(|| m.recall(user_id, now)).flatten()
        });
        if let Some(held) = memo.flatten()
            && !prepaid(&catalog, &held.sub)
        {
            return Ok(Some(self.verdict(&catalog, &held.sub, held.seen(), None, ops, now)?.preflight));
        }
        let Some(entry) = self.user_view(user_id, now).await? else { return Ok(None) };
        // The copy keeps no wallet: a prepaid customer is read from the store.
        if prepaid(&catalog, &entry.sub) {
            return Ok(None);
        }
        Ok(Some(self.verdict(&catalog, &entry.sub, entry.seen.clone(), None, ops, now)?.preflight))
    }

    /// Checks `ops` against `sub`'s limits, given what is used and held,
    /// and for a prepaid customer against `credit`: the wallet's balance
    /// and the cost of the live holds.
    fn verdict(
        &self,
        catalog: &CatalogSnapshot,
        sub: &Subscription,
        mut seen: Usage,
        credit: Option<(Nanos, Nanos)>,
        ops: &[Operation],
        now: DateTime<Utc>,
    ) -> AppResult<Verdict> {
        let user_id = sub.user_id.as_str();
        if sub.status != crate::domain::subscription::Status::Active {
            return Err(AppError::Forbidden(format!(
                "the subscription of `{user_id}` is {}; nothing is admitted until it is resumed",
                sub.status
            )));
        }
        let period = sub.current_period();
        let limits = catalog.limits_of(sub);
        let calls_summary = limits.get(&LimitKey::Calls(ops[0].provider.clone())).map(|limit| LimitUse {
            key: LimitKey::Calls(ops[0].provider.clone()),
            used: seen.provider(&ops[0].provider).calls,
            limit,
        });

        let mut checks = Vec::with_capacity(ops.len());
        let mut denied_by = None;
        // One hold per allowed operation, settled one by one.
        let mut holds: Vec<(usize, ProviderUsage)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if self.config.unpriced_policy == super::UnpricedPolicy::Deny
                && catalog.prices.lookup(&op.provider, op.model.as_deref(), now).is_none()
            {
                return Err(AppError::Unpriced(format!(
                    "{} model `{}` has no price, so its cost cannot be held against your limits; an administrator must \
                     price it first",
                    op.provider,
                    op.model.as_deref().unwrap_or("(none)")
                )));
            }
            let cost = estimate(&catalog.prices, op, now);
            let demand = Demand { provider: op.provider.clone(), calls: 1, tokens: op.tokens_requested as i64, cost };
            let exceeded = first_exceeded(&limits, &seen, &demand);
            let calls_key = LimitKey::Calls(op.provider.clone());
            let limit = exceeded.clone().or_else(|| {
                limits.get(&calls_key).map(|limit| LimitUse {
                    key: calls_key,
                    used: seen.measure(&LimitKey::Calls(op.provider.clone())),
                    limit,
                })
            });
            let message = exceeded.as_ref().map(|l| describe(l, period.end));
            if let Some(l) = &exceeded {
                denied_by.get_or_insert(l.clone());
            } else {
                // Later operations of the same request see this one's demand.
                let add = ProviderUsage { calls: 1, tokens: demand.tokens, cost };
                seen.add(&op.provider, add);
                holds.push((i, add));
            }
            checks.push(OperationCheck {
                provider: op.provider.as_str().to_string(),
                operation_type: op.operation_type.clone(),
                cost,
                allowed: exceeded.is_none(),
                limit,
                message,
            });
        }
        // Prepaid: the request's worst case against what the holds leave.
        let wallet = credit.map(|(balance, held)| CreditCheck {
            available: Nanos(balance.0.saturating_sub(held.0)),
            required: holds.iter().map(|(_, u)| u.cost).fold(Nanos::ZERO, Nanos::saturating_add),
        });
        if let Some(w) = wallet
            && denied_by.is_none()
            && !w.enough()
        {
            let message = format!(
                "not enough prepaid credits: this request needs up to {} and {} is available (the balance less \
                 calls in flight); add credits to continue",
                w.required.display_plain(),
                w.available.display_plain()
            );
            for c in &mut checks {
                c.allowed = false;
                c.message.get_or_insert_with(|| message.clone());
            }
            holds.clear();
        }
        Ok(Verdict {
            preflight: Preflight {
                can_proceed: denied_by.is_none() && wallet.is_none_or(CreditCheck::enough),
                total_cost: checks.iter().map(|c| c.cost).fold(Nanos::ZERO, Nanos::saturating_add),
                operations: checks,
                calls_summary,
                reservation_id: None,
                resets_at: period.end,
                denied_by,
                wallet,
            },
            holds,
        })
    }
}

/// Whether `sub`'s plan spends prepaid credits.
fn prepaid(catalog: &CatalogSnapshot, sub: &Subscription) -> bool {
    catalog.plan_of(sub).is_some_and(|p| p.credits.prepaid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::pricing::{ClassRates, PriceVersion, Rates};

    /// Without the request's own maximum: the model's cap, else the
    /// default, each once per answer asked for.
    #[test]
    fn output_to_hold_takes_the_model_cap_then_the_default() {
        let at = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let version = |model: &str, cap: Option<u64>| PriceVersion {
            id: 0,
            provider: Provider::parse("openai").unwrap(),
            model: model.into(),
            effective_from: at - chrono::Duration::days(1),
            rates: Rates::from(ClassRates::default()),
            description: String::new(),
            max_output_tokens: cap,
        };
        let catalog = Catalog::new(vec![version("capped", Some(16_384)), version("uncapped", None)]);
        let openai = Provider::parse("openai").unwrap();
        // (model, answers asked for, what is held)
        let cases: &[(Option<&str>, u64, (u64, OutputBound))] = &[
            (Some("capped"), 1, (16_384, OutputBound::ModelCap)),
            (Some("capped"), 3, (49_152, OutputBound::ModelCap)),
            (Some("uncapped"), 2, (8_000, OutputBound::Default)),
            (Some("unknown"), 1, (4_000, OutputBound::Default)),
            (None, 1, (4_000, OutputBound::Default)),
            (Some("capped"), u64::MAX, (u64::MAX, OutputBound::ModelCap)),
        ];
        for &(model, choices, want) in cases {
            assert_eq!(output_to_hold(&catalog, &openai, model, choices, 4_000, at), want, "{model:?} x{choices}");
        }
    }
}
