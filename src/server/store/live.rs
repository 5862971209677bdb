//! Live changes: which users' usage, alerts or subscription a committed
//! write changed, for the dashboard's stream (`GET /api/stream`).
//!
//! A write transaction names what it changed ([`super::WriteTx::notify`]);
//! nothing is announced unless the transaction commits.
//! - SQLite (one process owns the file): the commit publishes in-process.
//! - PostgreSQL (any number of nodes): the transaction sends
//!   `pg_notify(<channel>, …)`, which Postgres delivers on commit to every
//!   node's [`listen`]er, this node's included; so a page served by node B
//!   hears of usage ingested on node A. The listener also drops those users
//!   from the node's usage view (see `view`), so a check-only preflight on B
//!   sees A's writes at once instead of after the view's TTL.
//!
//! Announcements are hints to re-read, never data: a stream that misses one
//! (a full buffer, a listener reconnecting) still shows the truth at its
//! next read, and the page's 30-second refresh stays underneath.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

/// What changed for a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Recorded usage (the period totals moved).
    Usage,
    /// An alert was raised or read.
    Alert,
    /// The plan, cycle or status changed.
    Subscription,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Usage, Kind::Alert, Kind::Subscription];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Usage => "usage",
            Kind::Alert => "alert",
            Kind::Subscription => "subscription",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The user of a change that may concern everyone (announcements were
/// lost): every stream re-reads.
pub const EVERYONE: &str = "*";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    pub user_id: Arc<str>,
    pub kind: Kind,
}

impl Change {
    pub fn new(user_id: &str, kind: Kind) -> Change {
        Change { user_id: user_id.into(), kind }
    }

    /// Whether a stream of `user_id` must re-read.
    pub fn concerns(&self, user_id: &str) -> bool {
        &*self.user_id == user_id || &*self.user_id == EVERYONE
    }
}

/// The process's announcements of committed changes, and its shutdown.
#[derive(Debug)]
pub struct LiveHub {
    tx: broadcast::Sender<Change>,
    closed: watch::Sender<bool>,
    /// Whether other nodes' changes are heard now (always, on SQLite).
    hearing: watch::Sender<bool>,
    /// The NOTIFY channel (PostgreSQL): one per schema, so deployments and
    /// test runs sharing a database do not hear each other.
    channel: String,
}

/// Changes buffered per subscriber; one that falls further behind is told
/// it lagged and re-reads everything.
const BUFFER: usize = 4096;

impl LiveHub {
    /// `in_process`: every write is made by this process (SQLite), so
    /// every change is heard without a listener.
    pub fn new(schema: Option<&str>, in_process: bool) -> LiveHub {
        LiveHub {
            tx: broadcast::channel(BUFFER).0,
            closed: watch::channel(false).0,
            hearing: watch::channel(in_process).0,
            channel: match schema {
                Some(s) => format!("tally_live_{s}"),
                None => "tally_live".to_string(),
            },
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// Open streams (subscribers) in this process.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Becomes `true` when the server shuts down: streams end then, so a
    /// graceful shutdown does not wait on open pages.
    pub fn closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Waits until changes committed from now on are heard (the listener
    /// is connected, on PostgreSQL).
    pub async fn hearing(&self) {
        let _ = self.hearing.subscribe().wait_for(|h| *h).await;
    }

    pub(super) fn publish(&self, changes: impl IntoIterator<Item = Change>) {
        for c in changes {
            // No subscriber is not an error: nobody is watching.
            let _ = self.tx.send(c);
        }
    }

    pub(super) fn channel(&self) -> &str {
        &self.channel
    }
}

/// A NOTIFY payload is limited to 8,000 bytes: changes go as `kind:user`
/// lines, split into payloads below this.
const MAX_PAYLOAD: usize = 7000;

pub(super) fn payloads(changes: &[Change]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in changes {
        // The user id as a JSON string: ids may hold any character.
        let line = format!("{}:{}\n", c.kind.as_str(), serde_json::Value::from(&*c.user_id));
        if !cur.is_empty() && cur.len() + line.len() > MAX_PAYLOAD {
            out.push(std::mem::take(&mut cur));
        }
        cur.push_str(&line);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_payload(s: &str) -> Vec<Change> {
    s.lines()
        .filter_map(|l| {
            let (k, u) = l.split_once(':')?;
            Some(Change::new(&serde_json::from_str::<String>(u).ok()?, Kind::parse(k)?))
        })
        .collect()
}

/// PostgreSQL: hears every node's announcements and republishes them in
/// this process (and drops those users from the usage view). Runs until the
/// hub closes; a lost connection is re-opened after a pause, and since
/// announcements sent meanwhile are lost, every cached user is forgotten
/// then and subscribers are told they lagged.
pub async fn listen(url: String, hub: Arc<LiveHub>, view: Arc<super::view::UsageView>) {
    use sqlx::postgres::PgListener;
    let mut closed = hub.closed();
    let mut failures = 0u32;
    loop {
        let connected = async {
            let mut l = PgListener::connect(&url).await?;
            l.listen(hub.channel()).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let attempt = tokio::select! {
            r = connected => Some(r),
            _ = closed.wait_for(|c| *c) => None,
        };
        let mut listener = match attempt {
            None => return,
            Some(Ok(l)) => {
                hub.hearing.send_replace(true);
                l
            }
            Some(Err(e)) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(error = %e, "live updates: cannot listen on PostgreSQL; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = closed.wait_for(|c| *c) => return,
                }
            }
        };
        if failures > 0 {
            tracing::info!("live updates: listening on PostgreSQL again");
            view.forget(&super::view::Affects::Anything);
            hub.publish(Kind::ALL.map(|k| Change::new(EVERYONE, k)));
        }
        loop {
            // `try_recv` reports a lost connection instead of reconnecting
            // silently, so the gap is known and handled above.
            let msg = tokio::select! {
                m = listener.try_recv() => m,
                _ = closed.wait_for(|c| *c) => return,
            };
            match msg {
                Ok(Some(n)) => {
                    let changes = parse_payload(n.payload());
                    let users: Vec<String> = changes.iter().map(|c| c.user_id.to_string()).collect();
                    view.forget(&super::view::Affects::Users(users));
                    hub.publish(changes);
                }
                Ok(None) | Err(_) => {
                    // Lost: reconnect (and re-read everything) above.
                    hub.hearing.send_replace(false);
                    failures = 1;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_stay_small() {
        let changes: Vec<Change> =
            (0..500).map(|i| Change::new(&format!("user:{i:0>100}\n\"é"), Kind::ALL[i % 3])).collect();
        let p = payloads(&changes);
        assert!(p.len() > 1);
        assert!(p.iter().all(|s| s.len() <= MAX_PAYLOAD));
        let back: Vec<Change> = p.iter().flat_map(|s| parse_payload(s)).collect();
        assert_eq!(back, changes);
        assert!(payloads(&[]).is_empty());
    }
}
