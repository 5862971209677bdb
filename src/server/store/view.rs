//! The process's in-memory view of what the check-only gate reads: per
//! user, the subscription, the open period's committed usage and its holds.
//!
//! **The store is the authority; this is a copy.** A check without
//! `reserve`, which promises nothing, answers from it. A reservation on
//! PostgreSQL decides on it too, but only as a proposal: the store writes
//! its holds after confirming, under the user's row lock, that the usage
//! the decision assumed room for is still there
//! ([`super::holds::reserve_in_one_trip`]), and otherwise the gate decides
//! again on what it reads under the lock. So no copy here can ever let a
//! limit be exceeded, on one node or many.
//!
//! How stale the copy can be:
//! - This process's own writes: not at all. Every [`super::WriteTx`] says
//!   what it changed ([`Affects`]); when it commits, the users it names (or,
//!   by default, everyone) are dropped from the view before `commit()`
//!   returns, so a check that starts after a write was acknowledged sees it.
//! - Other processes' writes (a second node on the same Postgres, `tally`
//!   commands beside a server on the same SQLite file): an entry is used for
//!   at most [`UsageView::ttl`] after it was read from the store.
//!
//! A load that raced a write can never be kept: each fill presents the
//! version it saw before reading, and a write in between moves the version.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::domain::identity::UserId;

use crate::domain::limits::Usage;
use crate::domain::subscription::Subscription;

/// What a write transaction changed, for the caches of store state. The
/// default is the safe answer: anything may have changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Affects {
    #[default]
    Anything,
    /// Only these users' subscriptions, usage or holds (nothing shared such
    /// as plans, prices, keys or users).
    Users(Vec<String>),
    /// Nothing any cache holds (sessions, sign-in attempts, a key's last
    /// use, alerts).
    NothingCached,
}

impl Affects {
    /// `self` widened to cover `other` too.
    pub fn and(self, other: Affects) -> Affects {
        match (self, other) {
            (Affects::Anything, _) | (_, Affects::Anything) => Affects::Anything,
            (Affects::NothingCached, x) | (x, Affects::NothingCached) => x,
            (Affects::Users(mut a), Affects::Users(b)) => {
                a.extend(b);
                Affects::Users(a)
            }
        }
    }
}

/// When a copy of store state was read: taken before the read, so a write
/// that committed during it counts as after. A copy answers while
/// [`UsageView::is_fresh`] says so. The usage view, the key cache and the
/// check-only catalog all go by it.
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    loaded: Instant,
    epoch: u64,
}

/// One user's view, as read from the store at `stamp`.
#[derive(Clone, Debug)]
pub struct UserView {
    pub sub: Subscription,
    /// Committed usage of `sub`'s open period plus its live holds.
    pub seen: Usage,
    /// When the first of those holds lapses: the entry is wrong from then.
    until: Option<DateTime<Utc>>,
    stamp: Stamp,
}

/// Proof of what the view's versions were before a load began.
#[derive(Debug)]
pub struct Ticket {
    user: String,
    version: u64,
    stamp: Stamp,
}

#[derive(Default)]
struct Slot {
    version: u64,
    view: Option<Arc<UserView>>,
}

/// Entries kept before the view starts over (a few hundred bytes each).
const MAX_USERS: usize = 100_000;

pub struct UsageView {
    slots: Mutex<HashMap<String, Slot>>,
    /// Moves on every write that may have changed anything: every entry
    /// read before it is stale.
    epoch: AtomicU64,
    ttl: Duration,
}

impl std::fmt::Debug for UsageView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageView").field("epoch", &self.epoch()).field("ttl", &self.ttl).finish()
    }
}

impl UsageView {
    pub fn new(ttl: Duration) -> UsageView {
        UsageView { slots: Mutex::default(), epoch: AtomicU64::new(0), ttl }
    }

    /// How long an entry may answer for other processes' writes.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Moves whenever this process commits a write that may have changed
    /// anything cached (plans, prices, keys, users). Other caches compare it
    /// to know their copy still holds.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Take before reading what a copy will hold.
    pub fn stamp(&self) -> Stamp {
        Stamp { loaded: Instant::now(), epoch: self.epoch() }
    }

    /// Whether a copy read at `stamp` may still answer: this process has
    /// written nothing since that may have changed it, and it is younger
    /// than the TTL (the bound for other processes' writes).
    pub fn is_fresh(&self, stamp: &Stamp) -> bool {
        stamp.epoch == self.epoch() && stamp.loaded.elapsed() < self.ttl
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // A panic elsewhere while holding it leaves plain data behind.
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The user's entry, if it is young enough, nothing changed since, and
    /// none of its holds has lapsed by `now`.
    pub fn get(&self, user_id: &UserId, now: DateTime<Utc>) -> Option<Arc<UserView>> {
        let slots = self.slots();
        let view = slots.get(user_id.as_str())?.view.as_ref()?;
        let fresh = self.is_fresh(&view.stamp) && view.until.is_none_or(|t| now < t);
        fresh.then(|| view.clone())
    }

    /// Take before reading what [`UsageView::fill`] will store.
    pub fn ticket(&self, user_id: &UserId) -> Ticket {
        let stamp = self.stamp();
        let version = self.slots().get(user_id.as_str()).map_or(0, |s| s.version);
        Ticket { user: user_id.to_string(), version, stamp }
    }

    /// Keeps what was read under `ticket` (usage and live holds of `sub`'s
    /// open period; `until`: the first hold's expiry), unless a write came
    /// in between.
    pub fn fill(&self, ticket: Ticket, sub: Subscription, seen: Usage, until: Option<DateTime<Utc>>) -> Arc<UserView> {
        let view = Arc::new(UserView { sub, seen, until, stamp: ticket.stamp });
        let mut slots = self.slots();
        if self.epoch() != ticket.stamp.epoch {
            return view;
        }
        if slots.len() >= MAX_USERS && !slots.contains_key(&ticket.user) {
            // Starting over is always safe: versions restart, but the
            // epoch moves, so no ticket taken before is honoured.
            slots.clear();
            self.epoch.fetch_add(1, Ordering::AcqRel);
            return view;
        }
        let slot = slots.entry(ticket.user).or_default();
        if slot.version == ticket.version {
            slot.view = Some(view.clone());
        }
        view
    }

    /// Records a reservation this process just wrote for `user_id`, decided
    /// on `before` (an entry [`UsageView::get`] or [`UsageView::fill`]
    /// gave): `before` plus `held`, lapsing no later than `expires_at`, with
    /// `before`'s stamp, so it answers for other processes' writes no longer
    /// than `before` would have. When the entry is no longer `before`, the
    /// user is dropped instead. Either way a load begun before this is not
    /// kept.
    pub fn add_held(&self, user_id: &UserId, before: &Arc<UserView>, held: &Usage, expires_at: DateTime<Utc>) {
        let mut slots = self.slots();
        let slot = slots.entry(user_id.to_string()).or_default();
        slot.version += 1;
        slot.view = match slot.view.take() {
            Some(v) if Arc::ptr_eq(&v, before) => Some(Arc::new(UserView {
                sub: v.sub.clone(),
                seen: v.seen.plus(held),
                until: Some(v.until.map_or(expires_at, |t| t.min(expires_at))),
                stamp: v.stamp,
            })),
            _ => None,
        };
    }

    /// Drops what a committed (or possibly committed) write changed.
    pub fn forget(&self, affects: &Affects) {
        match affects {
            Affects::NothingCached => {}
            Affects::Anything => {
                let mut slots = self.slots();
                self.epoch.fetch_add(1, Ordering::AcqRel);
                slots.clear();
            }
            Affects::Users(users) => {
                let mut slots = self.slots();
                for u in users {
                    let slot = slots.entry(u.clone()).or_default();
                    slot.version += 1;
                    slot.view = None;
                }
            }
        }
    }
}

#[cfg(test)]
pub(in crate::server::store) mod tests {
    use super::*;
    use crate::domain::identity::UserId;
    use crate::domain::limits::ProviderUsage;
    use crate::domain::period::BillingCycle;
    use crate::domain::provider::Provider;
    use crate::domain::subscription::Status;
    use crate::server::testing::uid;

    /// A monthly subscription from 2026-01-01 (shared with the memo's tests).
    pub(in crate::server::store) fn sub(user: &str) -> Subscription {
        let t = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 1, 0, 0, 0).unwrap();
        Subscription {
            user_id: UserId::parse(user).unwrap(),
            plan_id: None,
            billing_cycle: BillingCycle::Monthly,
            status: Status::Active,
            anchor_at: t,
            period_start: t,
            period_end: t + chrono::Duration::days(31),
            cycle_start: t,
            cycle_end: t + chrono::Duration::days(31),
            renewal_count: 0,
            started_at: t,
            pending: None,
            period_fee: None,
            timezone: chrono_tz::Tz::UTC,
            cancel_at: None,
        }
    }

    /// `calls` OpenAI calls.
    pub(in crate::server::store) fn used(calls: i64) -> Usage {
        let mut u = Usage::default();
        u.add(&Provider::parse("openai").unwrap(), ProviderUsage { calls, tokens: 0, cost: Default::default() });
        u
    }

    fn calls(v: &UserView) -> i64 {
        v.seen.total().calls
    }

    #[test]
    fn a_fill_is_served_until_a_write_names_the_user() {
        let view = UsageView::new(Duration::from_secs(60));
        assert!(view.get(&uid("u1"), Utc::now()).is_none());
        let t = view.ticket(&uid("u1"));
        view.fill(t, sub("u1"), used(3), None);
        assert_eq!(calls(&view.get(&uid("u1"), Utc::now()).unwrap()), 3);
        view.forget(&Affects::Users(vec!["u2".into()]));
        assert!(view.get(&uid("u1"), Utc::now()).is_some(), "another user's write leaves u1 alone");
        view.forget(&Affects::NothingCached);
        assert!(view.get(&uid("u1"), Utc::now()).is_some());
        view.forget(&Affects::Users(vec!["u1".into()]));
        assert!(view.get(&uid("u1"), Utc::now()).is_none());
    }

    #[test]
    fn a_load_that_raced_a_write_is_not_kept() {
        let view = UsageView::new(Duration::from_secs(60));
        // Read before the write committed, filled after it: stale.
        let t = view.ticket(&uid("u1"));
        view.forget(&Affects::Users(vec!["u1".into()]));
        view.fill(t, sub("u1"), used(1), None);
        assert!(view.get(&uid("u1"), Utc::now()).is_none());
        // The same with a write that may have changed anything.
        let t = view.ticket(&uid("u1"));
        view.forget(&Affects::Anything);
        view.fill(t, sub("u1"), used(1), None);
        assert!(view.get(&uid("u1"), Utc::now()).is_none());
        // A load after the write is kept.
        let t = view.ticket(&uid("u1"));
        view.fill(t, sub("u1"), used(2), None);
        assert_eq!(calls(&view.get(&uid("u1"), Utc::now()).unwrap()), 2);
    }

    #[test]
    fn an_undeclared_write_forgets_everyone_and_moves_the_epoch() {
        let view = UsageView::new(Duration::from_secs(60));
        for u in ["u1", "u2"] {
            let t = view.ticket(&uid(u));
            view.fill(t, sub(u), used(1), None);
        }
        let before = view.epoch();
        view.forget(&Affects::Anything);
        assert!(view.epoch() > before);
        assert!(view.get(&uid("u1"), Utc::now()).is_none() && view.get(&uid("u2"), Utc::now()).is_none());
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let view = UsageView::new(Duration::from_millis(30));
        let t = view.ticket(&uid("u1"));
        view.fill(t, sub("u1"), used(1), None);
        assert!(view.get(&uid("u1"), Utc::now()).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(view.get(&uid("u1"), Utc::now()).is_none(), "another process's write is seen within the ttl");
    }

    #[test]
    fn an_entry_ends_when_its_first_hold_lapses() {
        let view = UsageView::new(Duration::from_secs(60));
        let now = Utc::now();
        let t = view.ticket(&uid("u1"));
        view.fill(t, sub("u1"), used(3), Some(now + chrono::Duration::seconds(10)));
        assert!(view.get(&uid("u1"), now + chrono::Duration::seconds(9)).is_some());
        assert!(view.get(&uid("u1"), now + chrono::Duration::seconds(10)).is_none(), "the hold no longer counts");
    }

    #[test]
    fn affects_widen() {
        use Affects::*;
        assert_eq!(NothingCached.and(Users(vec!["a".into()])), Users(vec!["a".into()]));
        assert_eq!(Users(vec!["a".into()]).and(Users(vec!["b".into()])), Users(vec!["a".into(), "b".into()]));
        assert_eq!(Users(vec![]).and(Anything), Anything);
        assert_eq!(NothingCached.and(NothingCached), NothingCached);
    }
}
