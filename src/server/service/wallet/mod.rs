//! Wallets of prepaid credits: granting, voiding and adjusting (audited),
//! debiting recorded events, and what the gate weighs a prepaid call
//! against.
//!
//! Every change runs under the customer's subscription lock, the lock the
//! gate's reservations and the recording of events take, so the balance a
//! reservation is checked against cannot move under it on any node.

use crate::domain::identity::UserId;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Engine;
use super::audit;
use super::subscriptions::lock_current;
use crate::domain::money::{MoneyError, Nanos};
use crate::domain::wallet::{
    Entry, Grant, GrantKind, GrantSource, GrantStatus, LowBalance, MAX_GRANT, Wallet, WalletError, daily_balance,
    runs_out_at,
};
use crate::domain::webhooks::EventType;
use crate::server::error::{AppError, AppResult};
use crate::server::store::live::Kind;
use crate::server::store::wallet::{self, Save, StoredEntry, StoredGrant};
use crate::server::store::{holds, webhooks};

mod locked;
use locked::announce;
pub use locked::grant_included;
pub(super) use locked::{balance_in, debit_events};

/// A grant as asked for.
#[derive(Clone, Debug)]
pub struct NewGrant {
    pub amount: Nanos,
    pub kind: GrantKind,
    pub source: GrantSource,
    pub priority: i64,
    /// Now when absent.
    pub effective_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub idempotency_key: String,
    pub note: Option<String>,
}

/// A customer's wallet at an instant, for people and the API.
#[derive(Clone, Debug)]
pub struct WalletView {
    pub balance: Nanos,
    /// Worst-case cost of the calls reserved and not yet recorded.
    pub held: Nanos,
    /// What a new call may reserve: balance less holds.
    pub available: Nanos,
    /// The balance below which the customer is warned, as it stands now.
    pub low_balance_threshold: Option<Nanos>,
    /// The rule it comes from.
    pub low_balance: Option<LowBalance>,
    /// When the next grant expires (or becomes effective).
    pub next_change: Option<DateTime<Utc>>,
    /// When what is available runs out at the last week's rate of spending.
    pub runs_out_at: Option<DateTime<Utc>>,
    /// The balance at the end of each day of the open period, so far.
    pub burn_down: Vec<(DateTime<Utc>, Nanos)>,
    /// Newest first.
    pub grants: Vec<StoredGrant>,
    /// Whether the customer's plan spends the wallet.
    pub prepaid: bool,
}

/// One page of the statement, newest first.
#[derive(Clone, Debug)]
pub struct Statement {
    pub entries: Vec<StoredEntry>,
    pub next_cursor: Option<String>,
}

/// What the audit log records of a change to a wallet.
#[derive(Clone, Debug, Serialize)]
struct WalletChange<'a> {
    balance: String,
    entries: Vec<EntrySnapshot<'a>>,
}

#[derive(Clone, Debug, Serialize)]
struct EntrySnapshot<'a> {
    kind: &'static str,
    amount: String,
    grant_id: Option<&'a str>,
    note: Option<&'a str>,
}

fn invalid(e: WalletError) -> AppError {
    match e {
        WalletError::NoSuchGrant(_) => AppError::NotFound(e.to_string()),
        WalletError::Amount => AppError::InvalidFields(vec![("amount".into(), e.to_string())]),
        WalletError::Expiry => AppError::InvalidFields(vec![("expires_at".into(), e.to_string())]),
        WalletError::TooManyGrants => AppError::Conflict(e.to_string()),
    }
}

fn new_grant_id() -> String {
    format!("grt_{}", uuid::Uuid::new_v4().simple())
}

/// A USD amount field: a decimal string with at most nine places.
pub fn amount_field(field: &str, raw: &str, signed: bool) -> AppResult<Nanos> {
    let raw = raw.trim();
    let (neg, digits) = match raw.strip_prefix('-') {
        Some(d) if signed => (true, d),
        _ => (false, raw),
    };
    let bad = |m: String| AppError::InvalidFields(vec![(field.into(), m)]);
    let n = Nanos::parse_usd(digits).map_err(|e| match e {
        MoneyError::Negative => bad("must be more than 0".into()),
        e => bad(format!("{e}; send USD as a string such as \"50\" or \"12.5\"")),
    })?;
    Ok(if neg { Nanos(-n.0) } else { n })
}

/// An optional instant field: RFC 3339, or a form's `YYYY-MM-DDTHH:MM`
/// (read as UTC); empty is none.
pub fn instant_field(field: &str, raw: Option<&str>) -> AppResult<Option<DateTime<Utc>>> {
    raw.map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            DateTime::parse_from_rfc3339(r)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(r, "%Y-%m-%dT%H:%M").map(|t| t.and_utc()))
                .map_err(|_| AppError::InvalidFields(vec![(field.into(), format!("`{r}` is not an RFC 3339 instant"))]))
        })
        .transpose()
}

/// The most an idempotency key, a note or a reason may be.
const MAX_TEXT: usize = 200;

fn check_text(field: &str, v: &str, required: bool) -> AppResult<()> {
    if (required && v.trim().is_empty()) || v.chars().count() > MAX_TEXT {
        return Err(AppError::InvalidFields(vec![(
            field.into(),
            format!("{} 1 to {MAX_TEXT} characters", if required { "required:" } else { "at most" }),
        )]));
    }
    Ok(())
}

impl Engine {
    /// Locks the customer, loads the wallet with every grant that became
    /// effective or expired by `now` applied, runs `change`, and writes the
    /// result with one audit entry (when `actor` is given) in the same
    /// transaction.
    async fn change_wallet<T>(
        &self,
        user_id: &UserId,
        actor: Option<(&str, &str)>,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut Wallet) -> AppResult<(Vec<Entry>, T, Vec<(String, Option<String>, Option<String>)>)>,
        request_key: Option<&str>,
    ) -> AppResult<T> {
        let mut tx = self.store.begin().await?;
        let Some((sub, _)) = lock_current(&mut tx, &self.catalog, user_id, now).await? else {
            return Err(AppError::NotFound(format!("no user with id `{user_id}`")));
        };
        let loaded = wallet::load(&mut tx, user_id).await?;
        let mut w = loaded.clone();
        let mut entries = w.settle_due(now);
        // The request's key goes on its own first entry, after any expiry.
        let request_key = request_key.map(|k| (entries.len(), k));
        let (made, out, new_grants) = change(&mut w)?;
        entries.extend(made);
        let new: Vec<(&str, Option<&str>, Option<&str>)> =
            new_grants.iter().map(|(id, k, n)| (id.as_str(), k.as_deref(), n.as_deref())).collect();
        wallet::save(
            &mut tx,
            Save { user_id, loaded: &loaded, wallet: &w, new_grants: &new, entries: &entries, request_key, now },
        )
        .await?;
        if announce(&mut tx, &sub, loaded.balance(), w.balance(), &entries, now).await? {
            tx.notify(user_id, Kind::Alert);
        }
        if let Some((actor, action)) = actor {
            let after = WalletChange {
                balance: w.balance().usd_string(),
                entries: entries
                    .iter()
                    .map(|e| EntrySnapshot {
                        kind: e.kind.as_str(),
                        amount: e.amount.usd_string(),
                        grant_id: e.grant_id.as_deref(),
                        note: e.note.as_deref(),
                    })
                    .collect(),
            };
            audit::record(&mut tx, actor, action, ("wallet", user_id), audit::NONE, Some(&after), now).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Grants credits. The same idempotency key again answers the grant it
    /// made (`false`: nothing new), and is refused if it asked for a
    /// different amount or kind.
    pub async fn grant_credits(
        &self,
        user_id: &UserId,
        g: NewGrant,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<(StoredGrant, bool)> {
        check_text("idempotency_key", &g.idempotency_key, true)?;
        check_text("note", g.note.as_deref().unwrap_or(""), false)?;
        if g.amount <= Nanos::ZERO || g.amount > MAX_GRANT {
            return Err(invalid(WalletError::Amount));
        }
        let mut conn = self.store.pool().acquire().await?;
        if let Some(found) = wallet::grant_by_key(&mut conn, user_id, &g.idempotency_key).await? {
            return same_grant(found, &g);
        }
        drop(conn);
        let id = new_grant_id();
        let grant = Grant {
            id: id.clone(),
            kind: g.kind,
            source: g.source,
            amount: g.amount,
            remaining: Nanos::ZERO,
            priority: g.priority,
            effective_at: g.effective_at.unwrap_or(now),
            expires_at: g.expires_at,
            created_at: now,
            status: GrantStatus::Pending,
        };
        let key = g.idempotency_key.clone();
        let note = g.note.clone();
        let made = self
            .change_wallet(
                user_id,
                Some((actor, "wallet.grant")),
                now,
                |w| {
                    let entries = w.add_grant(grant, now).map_err(invalid)?;
                    let made = w.grants.iter().find(|x| x.id == id).cloned().expect("just added");
                    Ok((entries, made, vec![(id.clone(), Some(key), note.clone())]))
                },
                None,
            )
            .await;
        match made {
            Ok(grant) => Ok((StoredGrant { grant, note: g.note.clone() }, true)),
            // Another request with the same key won the race: answer its grant.
            Err(e @ AppError::Conflict(_)) => {
                let mut conn = self.store.pool().acquire().await?;
                match wallet::grant_by_key(&mut conn, user_id, &g.idempotency_key).await? {
                    Some(found) => same_grant(found, &g),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Voids an open grant: what is left of it leaves the balance.
    pub async fn void_grant(
        &self,
        user_id: &UserId,
        grant_id: &str,
        reason: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<Nanos> {
        check_text("reason", reason, true)?;
        self.change_wallet(
            user_id,
            Some((actor, "wallet.void")),
            now,
            |w| {
                let entries = w.void(grant_id, now, reason.trim()).map_err(invalid)?;
                Ok((entries, w.balance(), vec![]))
            },
            None,
        )
        .await
    }

    /// Moves the balance by a signed amount with a reason; the same
    /// idempotency key again changes nothing. The balance after.
    pub async fn adjust_wallet(
        &self,
        user_id: &UserId,
        amount: Nanos,
        reason: &str,
        idempotency_key: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<(Nanos, bool)> {
        check_text("reason", reason, true)?;
        check_text("idempotency_key", idempotency_key, true)?;
        let mut conn = self.store.pool().acquire().await?;
        if let Some(found) = wallet::adjustment_by_key(&mut conn, user_id, idempotency_key).await? {
            return Ok((found.entry.balance_after, false));
        }
        drop(conn);
        let up = new_grant_id();
        self.change_wallet(
            user_id,
            Some((actor, "wallet.adjust")),
            now,
            |w| {
                let entries = w.adjust(amount, now, reason.trim(), &up).map_err(invalid)?;
                let new = if amount > Nanos::ZERO {
                    vec![(up.clone(), None, Some(reason.trim().to_string()))]
                } else {
                    vec![]
                };
                Ok((entries, (w.balance(), true), new))
            },
            Some(idempotency_key),
        )
        .await
    }

    /// Gives back what a recorded event's debits drew, each part where it
    /// came from (see [`Wallet::refund`]), once per event: a second refund
    /// of it is refused (409), however the two race. What was refunded.
    pub async fn refund_event(
        &self,
        user_id: &UserId,
        event_id: &str,
        reason: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<Nanos> {
        check_text("reason", reason, true)?;
        let key = format!("refund:{event_id}");
        let mut conn = self.store.pool().acquire().await?;
        let already = || AppError::Conflict(format!("event `{event_id}` was refunded already"));
        if wallet::adjustment_by_key(&mut conn, user_id, &key).await?.is_some() {
            return Err(already());
        }
        let draws = wallet::event_draws(&mut conn, user_id, event_id).await?;
        drop(conn);
        if draws.is_empty() {
            return Err(AppError::NotFound(format!("no debit of `{user_id}` for event `{event_id}`")));
        }
        let refund_grant = new_grant_id();
        let reason = reason.trim().to_string();
        let done = self
            .change_wallet(
                user_id,
                Some((actor, "wallet.refund")),
                now,
                |w| {
                    let mut entries = w.refund(&draws, now, event_id, &refund_grant);
                    if let Some(first) = entries.first_mut() {
                        first.note = Some(first.note.take().map_or(reason.clone(), |n| format!("{reason} ({n})")));
                    }
                    let total = entries.iter().map(|e| e.amount).sum::<Nanos>();
                    let new = if w.grants.iter().any(|g| g.id == refund_grant) {
                        vec![(refund_grant.clone(), None, Some(reason.clone()))]
                    } else {
                        vec![]
                    };
                    Ok((entries, total, new))
                },
                Some(&key),
            )
            .await;
        match done {
            // The same refund committed first.
            Err(AppError::Conflict(_)) => Err(already()),
            other => other,
        }
    }

    /// Sets (or clears) when the customer is warned that credits run low.
    pub async fn set_low_balance_threshold(
        &self,
        user_id: &UserId,
        rule: Option<LowBalance>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        if lock_current(&mut tx, &self.catalog, user_id, now).await?.is_none() {
            return Err(AppError::NotFound(format!("no user with id `{user_id}`")));
        }
        wallet::set_threshold(&mut tx, user_id, rule, now).await?;
        let after = rule.map(|r| match r {
            LowBalance::Amount(n) => n.usd_string(),
            LowBalance::PercentOfLastTopUp(p) => format!("{p}%"),
        });
        audit::record(&mut tx, actor, "wallet.threshold", ("wallet", user_id), audit::NONE, Some(&after), now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sends `grant.expiring` for each grant with credits left that lapses
    /// within the configured warning time, once per grant (across nodes).
    /// How many were sent.
    pub async fn warn_expiring_grants(&self, now: DateTime<Utc>) -> AppResult<usize> {
        let window = self.config.grant_expiry_warning;
        if window <= chrono::Duration::zero() {
            return Ok(0);
        }
        let mut tx = self.store.begin().await?;
        tx.affects(crate::server::store::view::Affects::NothingCached);
        let expiring = wallet::take_expiring(&mut tx, now, now + window).await?;
        for (user_id, grant_id, remaining, expires_at) in &expiring {
            let data = crate::server::views::events::GrantExpiring {
                user_id,
                grant_id,
                remaining: remaining.usd_string(),
                expires_at: expires_at.to_rfc3339(),
            };
            webhooks::enqueue(&mut tx, EventType::GrantExpiring, &data, now).await?;
        }
        tx.commit().await?;
        Ok(expiring.len())
    }

    /// The wallet at `now`: balance, holds, what is available, the grants.
    pub async fn wallet_view(&self, user_id: &UserId, now: DateTime<Utc>) -> AppResult<WalletView> {
        let mut conn = self.store.pool().acquire().await?;
        let sub = crate::server::store::users::subscription(&mut conn, user_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no user with id `{user_id}`")))?;
        let catalog = self.catalog.recent(&self.store).await?;
        let w = wallet::load(&mut conn, user_id).await?;
        let seen = holds::usage_and_holds(&mut conn, user_id, sub.current_period().start, now).await?;
        let held = seen.held.total().cost;
        let balance = w.balance_at(now);
        let available = Nanos(balance.0.saturating_sub(held.0));
        let week = chrono::Duration::days(7);
        let spent = wallet::debited_since(&mut conn, user_id, now - week).await?;
        let period_start = sub.current_period().start;
        let (before, points) = wallet::balances_since(&mut conn, user_id, period_start).await?;
        let low = wallet::low_balance(&mut conn, user_id).await?;
        Ok(WalletView {
            balance,
            held,
            available,
            runs_out_at: runs_out_at(available, spent, week, now).filter(|_| spent > Nanos::ZERO),
            burn_down: daily_balance(before, &points, period_start, now),
            low_balance_threshold: low.0.and_then(|r| r.resolve(low.1)),
            low_balance: low.0,
            next_change: w.next_change(now),
            grants: wallet::grants(&mut conn, user_id, 200).await?,
            prepaid: catalog.plan_of(&sub).is_some_and(|p| p.credits.prepaid()),
        })
    }

    /// One page of the wallet's statement, newest first. `cursor` is the
    /// `next_cursor` of the page before.
    pub async fn wallet_statement(&self, user_id: &UserId, limit: i64, cursor: Option<&str>) -> AppResult<Statement> {
        let limit = limit.clamp(1, 500);
        let before = match cursor {
            None => None,
            Some(c) => Some(c.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                AppError::InvalidFields(vec![("cursor".into(), "not a cursor this statement gave".into())])
            })?),
        };
        let mut conn = self.store.pool().acquire().await?;
        if crate::server::store::users::subscription(&mut conn, user_id).await?.is_none() {
            return Err(AppError::NotFound(format!("no user with id `{user_id}`")));
        }
        let mut entries = wallet::entries(&mut conn, user_id, limit, before).await?;
        let more = entries.len() as i64 > limit;
        entries.truncate(limit as usize);
        let next_cursor = if more { entries.last().map(|e| e.id.to_string()) } else { None };
        Ok(Statement { entries, next_cursor })
    }
}

/// The grant an idempotency key made, if the request asks for the same.
fn same_grant(found: StoredGrant, g: &NewGrant) -> AppResult<(StoredGrant, bool)> {
    if found.grant.amount != g.amount || found.grant.kind != g.kind {
        return Err(AppError::Conflict(format!(
            "idempotency key `{}` was used for a grant of {} ({}); use a new key for a different grant",
            g.idempotency_key,
            found.grant.amount.display_plain(),
            found.grant.kind.as_str()
        )));
    }
    Ok((found, false))
}
