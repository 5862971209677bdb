//! `GET /api/stream`: Server-Sent Events telling one user's pages what
//! changed, as it commits (see `store::live` for how a change on any node
//! reaches every node).
//!
//! Events carry the state after the change, read from the store, so a page
//! never needs to trust a count it was sent earlier:
//! - `usage`: the open period's totals, `{billing_period, total_calls,
//!   total_tokens, total_cost, usage_status}` (sent at once on connect too);
//! - `alert`: `{unread_alerts}`;
//! - `subscription`: `{plan_name, status, billing_cycle}`.

use crate::domain::identity::UserId;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::Utc;
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::state::AppState;
use crate::server::store::live::Kind;

#[derive(Deserialize)]
pub struct StreamQuery {
    user_id: Option<String>,
}

/// A quiet stream still sends a comment this often, so proxies keep it open
/// and a dead peer is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub async fn stream(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<StreamQuery>,
) -> AppResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let user_id = match (q.user_id, principal.own_user()) {
        (Some(u), _) => u,
        (None, Some(u)) => u.to_string(),
        (None, None) => return Err(AppError::Invalid("user_id is required for this caller".into())),
    };
    let user_id = principal.require_read(&user_id)?;
    let slot = state.streams.take(&principal.actor())?;
    // Subscribe before the first read, so nothing committed in between is
    // missed; an unknown user is refused before the stream opens.
    let changes = state.engine.live().subscribe();
    let first = event(&state, &user_id, Kind::Usage).await?;
    let closed = state.engine.live().closed();
    let queue = std::collections::VecDeque::from([first]);
    let s = futures::stream::unfold(
        (queue, changes, closed, state, user_id, slot),
        |(mut queue, mut changes, mut closed, state, user, slot)| async move {
            loop {
                if let Some(e) = queue.pop_front() {
                    return Some((Ok(e), (queue, changes, closed, state, user, slot)));
                }
                let mut kinds = tokio::select! {
                    r = changes.recv() => match r {
                        Ok(c) if c.concerns(&user) => vec![c.kind],
                        Ok(_) => continue,
                        // Missed some: re-read everything.
                        Err(RecvError::Lagged(_)) => Kind::ALL.to_vec(),
                        Err(RecvError::Closed) => return None,
                    },
                    _ = closed.wait_for(|c| *c) => return None,
                };
                // A burst (a batch for many users, several batches) sends
                // each kind once, read after the burst.
                while let Ok(c) = changes.try_recv() {
                    if c.concerns(&user) && !kinds.contains(&c.kind) {
                        kinds.push(c.kind);
                    }
                }
                for k in kinds {
                    match event(&state, &user, k).await {
                        Ok(e) => queue.push_back(e),
                        // The store is down for a moment: the page keeps
                        // its numbers and its 30-second refresh.
                        Err(e) => tracing::debug!(error = %e, user = %user, "live update skipped"),
                    }
                }
            }
        },
    );
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The `kind` event for `user_id`, read now.
async fn event(state: &AppState, user_id: &UserId, kind: Kind) -> AppResult<Event> {
    let now = Utc::now();
    let data = match kind {
        Kind::Usage => {
            let s = state.engine.period_view(user_id, now).await?;
            LiveData::Usage {
                billing_period: s.label.clone(),
                total_calls: s.total_calls(),
                total_tokens: s.total_tokens(),
                total_cost: s.total_cost().usd_string(),
                usage_status: crate::domain::limits::overall_status(&s.limit_uses()).as_str(),
            }
        }
        Kind::Alert => LiveData::Alert { unread_alerts: state.engine.alerts(user_id, true).await?.1 },
        Kind::Subscription => {
            let s = state.engine.period_view(user_id, now).await?;
            LiveData::Subscription {
                plan_name: s.plan_name().to_string(),
                status: s.subscription.status.to_string(),
                billing_cycle: s.subscription.billing_cycle.as_str(),
            }
        }
    };
    Event::default().event(kind.as_str()).json_data(data).map_err(|_| AppError::Internal)
}

/// What each kind of event carries (see the module's header).
#[derive(Serialize)]
#[serde(untagged)]
enum LiveData {
    Usage {
        billing_period: String,
        total_calls: i64,
        total_tokens: i64,
        total_cost: String,
        usage_status: &'static str,
    },
    Alert {
        unread_alerts: i64,
    },
    Subscription {
        plan_name: String,
        status: String,
        billing_cycle: &'static str,
    },
}
