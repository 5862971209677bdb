//! The wallet's part of other changes, run in their transaction under the
//! customer's lock: debiting recorded events, the balance the gate weighs,
//! a plan's included credits, and what a change tells people (alerts and
//! webhooks).

use crate::domain::identity::UserId;
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::new_grant_id;
use crate::domain::alerts::{wallet_depleted_alert, wallet_low_alert};
use crate::domain::money::Nanos;
use crate::domain::plan::Plan;
use crate::domain::subscription::{Status, Subscription};
use crate::domain::wallet::{Entry, EntryKind, Grant, GrantKind, GrantSource, GrantStatus};
use crate::domain::webhooks::EventType;
use crate::server::error::AppResult;
use crate::server::service::webhooks::announce_alerts;
use crate::server::store::live::Kind;
use crate::server::store::wallet::{self, Save};
use crate::server::store::{StoreResult, WriteTx, alerts, ms, webhooks};
use crate::server::views::events::{WalletBalance, WalletCredited};

/// Debits, in the recording transaction (under the user's lock), each
/// accepted event's cost from a prepaid customer's wallet. Entries carry
/// the event's id; an event is debited once because it is accepted once.
pub(in crate::server::service) async fn debit_events(
    tx: &mut WriteTx,
    sub: &Subscription,
    events: &[(&str, Nanos)],
    now: DateTime<Utc>,
) -> AppResult<()> {
    if events.iter().all(|(_, c)| *c == Nanos::ZERO) {
        return Ok(());
    }
    let user_id = &sub.user_id;
    let loaded = wallet::load(tx, user_id).await?;
    let mut w = loaded.clone();
    let mut entries = w.settle_due(now);
    for (id, cost) in events {
        entries.extend(w.debit(*cost, now, id));
    }
    wallet::save(
        tx,
        Save { user_id, loaded: &loaded, wallet: &w, new_grants: &[], entries: &entries, request_key: None, now },
    )
    .await?;
    if announce(tx, sub, loaded.balance(), w.balance(), &entries, now).await? {
        tx.notify(user_id, Kind::Alert);
    }
    Ok(())
}

/// A prepaid customer's balance at `now`, in the caller's (locked)
/// transaction.
pub(in crate::server::service) async fn balance_in(
    tx: &mut WriteTx,
    user_id: &UserId,
    now: DateTime<Utc>,
) -> AppResult<Nanos> {
    Ok(wallet::load(tx, user_id).await?.balance_at(now))
}

/// Grants the plan's included credits for `sub`'s open period, once (the
/// grant's idempotency key names the period), expiring at the period's
/// end. With a rollover cap, what the plan's credits of the period just
/// ended left at its end, up to the cap, comes along as a second grant for
/// this period. Runs under the customer's lock: when a subscription starts,
/// when a plan change applies, and when a period rolls over.
pub async fn grant_included(
    conn: &mut AnyConnection,
    plan: Option<&Plan>,
    sub: &Subscription,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let Some((plan, included)) = plan.and_then(|p| p.credits.included.map(|i| (p, i))) else { return Ok(()) };
    if sub.status != Status::Active {
        return Ok(());
    }
    let user_id = &sub.user_id;
    let period = sub.current_period();
    let key = format!("plan:{}", ms(period.start));
    if wallet::grant_by_key(conn, user_id, &key).await?.is_some() {
        return Ok(());
    }
    let loaded = wallet::load(conn, user_id).await?;
    let mut w = loaded.clone();
    let mut entries = w.settle_due(now);
    let from_plan =
        |id: &Option<String>| w.grants.iter().any(|g| Some(&g.id) == id.as_ref() && g.source == GrantSource::Plan);
    let left_at_end: Nanos = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Expiry && e.at == period.start && from_plan(&e.grant_id))
        .map(|e| Nanos(-e.amount.0))
        .sum();
    let rolled = plan.credits.rollover_cap.map_or(Nanos::ZERO, |cap| left_at_end.min(cap));
    let label = period.label();
    let mut new = Vec::new();
    for (amount, key, note) in [
        (included, key, format!("included in {} for {label}", plan.name)),
        (rolled, format!("rollover:{}", ms(period.start)), format!("rolled over into {label}")),
    ] {
        if amount <= Nanos::ZERO {
            continue;
        }
        let id = new_grant_id();
        let grant = Grant {
            id: id.clone(),
            kind: GrantKind::Paid,
            source: GrantSource::Plan,
            amount,
            remaining: Nanos::ZERO,
            priority: 0,
            effective_at: period.start,
            expires_at: Some(period.end),
            created_at: now,
            status: GrantStatus::Pending,
        };
        match w.add_grant(grant, now) {
            Ok(made) => entries.extend(made),
            // A wallet full of open grants gets no more; say so in the log.
            Err(e) => {
                tracing::warn!(user_id = user_id.as_str(), error = %e, "included credits not granted");
                continue;
            }
        }
        new.push((id, Some(key), Some(note)));
    }
    let new: Vec<(&str, Option<&str>, Option<&str>)> =
        new.iter().map(|(id, k, n)| (id.as_str(), k.as_deref(), n.as_deref())).collect();
    wallet::save(
        conn,
        Save { user_id, loaded: &loaded, wallet: &w, new_grants: &new, entries: &entries, request_key: None, now },
    )
    .await?;
    announce(conn, sub, loaded.balance(), w.balance(), &entries, now).await.map(|_| ())
}

/// What a change to a wallet tells people, in the change's transaction:
/// `wallet.credited` for each credit; a balance crossing the customer's
/// low-balance threshold or zero raises an alert with `wallet.low` or
/// `wallet.depleted`, and crossing back resolves it. `before` is the
/// balance as last written. Whether an alert was raised or resolved.
pub(super) async fn announce(
    conn: &mut AnyConnection,
    sub: &Subscription,
    before: Nanos,
    after: Nanos,
    entries: &[Entry],
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let user_id = &sub.user_id;
    for e in entries {
        if matches!(e.kind, EntryKind::Grant | EntryKind::Refund | EntryKind::Adjustment) && e.amount > Nanos::ZERO {
            webhooks::enqueue(conn, EventType::WalletCredited, &WalletCredited::of(user_id, e), now).await?;
        }
    }
    if before == after {
        return Ok(false);
    }
    let threshold = wallet::threshold(conn, user_id).await?;
    let period = sub.current_period();
    let label = period.label();
    let mut changed = false;
    // (the least balance that is not alerted, the alert, its webhook)
    let checks = [
        (Some(Nanos(1)), wallet_depleted_alert(user_id, after), EventType::WalletDepleted),
        (threshold, wallet_low_alert(user_id, after, threshold.unwrap_or_default()), EventType::WalletLow),
    ];
    for (floor, alert, event) in checks {
        let Some(floor) = floor else { continue };
        if before >= floor && after < floor {
            let raised = alerts::raise_threshold_alert(conn, user_id, (period.start, &label), &alert, now).await?;
            changed |= raised.is_some();
            announce_alerts(conn, EventType::AlertCreated, raised, now).await?;
            let data = WalletBalance {
                user_id,
                balance: after.usd_string(),
                threshold: (event == EventType::WalletLow).then(|| floor.usd_string()),
            };
            webhooks::enqueue(conn, event, &data, now).await?;
        } else if after >= floor
            && before < floor
            && let Some(id) = alerts::open_alert_id(conn, &alert.dedupe_key).await?
        {
            let resolved = alerts::resolve_alerts(conn, &[id], now).await?;
            changed |= !resolved.is_empty();
            announce_alerts(conn, EventType::AlertResolved, resolved, now).await?;
        }
    }
    Ok(changed)
}
