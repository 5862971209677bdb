//! SQLite only: the write group's own record of what a reservation reads,
//! so that most reservations run no statement of their own (their holds
//! are written with the group) instead of six.
//!
//! A reservation reads the catalog's revision, the user's subscription and
//! the open period's usage and live holds, decides, and writes its holds.
//! On SQLite every write of this process runs in the write group
//! ([`super::GroupWriter`]), whose transaction holds the database's write
//! lock from `BEGIN IMMEDIATE` to `COMMIT`; so the group's transaction,
//! with the work of the jobs before, *is* the state each reservation
//! decides on, and nothing can change it but the group's own jobs. The memo
//! keeps that state per user as those jobs leave it.
//!
//! **It is exact, not a cache**, and so a reservation may decide on it:
//! - A job that ends (`RELEASE`) drops what it says it changed (its
//!   [`Affects`]; by default everything) before the next job runs; what it
//!   remembers (a reservation's new state) goes in after that. A job rolled
//!   back changed nothing. A group that fails, or whose commit fails,
//!   leaves an empty memo.
//! - Other processes on the same file (`tally simulate` beside a server)
//!   commit only between groups, while the write lock is free; any commit
//!   by another connection moves `PRAGMA data_version` on the writer's own
//!   connection, which the next group reads once it holds the lock, and the
//!   memo starts over.
//! - Time: an entry is used only while its period is open and until its
//!   first hold lapses (after that the hold no longer counts).
//! - Beside a running job: the memo sits behind a short lock of its own,
//!   so a reservation decides while a job runs, but only for a user that
//!   job has said it leaves alone (for that user it waits for the job to
//!   end, not for its commit); a job starts as able to change anything
//!   and narrows when it names its users. Jobs teach the memo the state
//!   they leave their users in (a batch of events, a reservation), so a
//!   busy user stays known.
//! - While the group commits: decisions go on (the lock is still held and
//!   the state is the one being committed), and their holds go in the next
//!   group. Between that commit and the next group's `BEGIN IMMEDIATE`
//!   nothing is decided on it: another process could write then.
//!
//! PostgreSQL has no memo: several nodes write there, and each reservation
//! reads the store under the user's row lock.

use crate::domain::identity::UserId;
use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::view::Affects;
use crate::domain::limits::Usage;
use crate::domain::subscription::Subscription;

/// A user's state as the group's transaction holds it.
#[derive(Clone, Debug)]
pub struct Held {
    pub sub: Subscription,
    /// Usage of `sub`'s open period (written by jobs before, committed or
    /// not).
    pub used: Usage,
    /// Its live holds.
    pub held: Usage,
    /// When the first of those holds lapses.
    pub until: Option<DateTime<Utc>>,
}

impl Held {
    /// What a new demand is weighed against: usage plus holds.
    pub fn seen(&self) -> Usage {
        self.used.plus(&self.held)
    }

    /// Whether this still describes the user at `now`: the period has not
    /// ended (rolling it over is a write) and no hold has lapsed.
    fn holds_at(&self, now: DateTime<Utc>) -> bool {
        now < self.sub.period_end && self.until.is_none_or(|t| now < t)
    }
}

/// Entries kept before the memo starts over.
const MAX_USERS: usize = 100_000;

#[derive(Debug, Default)]
pub struct Memo {
    users: HashMap<String, Held>,
    /// The catalog revision the group's transaction holds, once read.
    revision: Option<i64>,
    /// `PRAGMA data_version` on the writer's connection when last read.
    data_version: Option<i64>,
}

impl Memo {
    pub fn clear(&mut self) {
        self.users.clear();
        self.revision = None;
    }

    /// The writer's connection is new: its `data_version` says nothing yet.
    pub fn restart(&mut self) {
        self.clear();
        self.data_version = None;
    }

    /// A new group holds the write lock and read `data_version`: if another
    /// connection committed since the last group, nothing here holds.
    pub fn opened(&mut self, data_version: i64) {
        if self.data_version != Some(data_version) {
            self.clear();
            self.data_version = Some(data_version);
        }
    }

    /// A job ended: drop what it changed, then keep what it learned.
    pub fn job_ended(&mut self, affects: &Affects, learned: Learned) {
        match affects {
            Affects::NothingCached => {}
            Affects::Anything => self.clear(),
            Affects::Users(users) => {
                for u in users {
                    self.users.remove(u);
                }
            }
        }
        if let Some(r) = learned.revision
            && !matches!(affects, Affects::Anything)
        {
            self.revision = Some(r);
        }
        for (user, held) in learned.users {
            if self.users.len() >= MAX_USERS {
                self.users.clear();
            }
            self.users.insert(user, held);
        }
    }

    pub fn user(&self, user_id: &UserId, now: DateTime<Utc>) -> Option<&Held> {
        self.users.get(user_id.as_str()).filter(|h| h.holds_at(now))
    }

    pub fn revision(&self) -> Option<i64> {
        self.revision
    }
}

/// What a job read or wrote that the memo may keep once it ends.
#[derive(Debug, Default)]
pub struct Learned {
    pub users: Vec<(String, Held)>,
    pub revision: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::view::tests::{sub, used};
    use crate::server::testing::uid;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn held(user: &str, calls: i64, until: Option<DateTime<Utc>>) -> Held {
        Held { sub: sub(user), used: used(calls), held: Usage::default(), until }
    }

    fn learn(user: &str, calls: i64) -> Learned {
        Learned { users: vec![(user.into(), held(user, calls, None))], revision: Some(7) }
    }

    #[test]
    fn a_job_that_names_a_user_drops_it_and_what_it_learned_goes_in_after() {
        let mut m = Memo::default();
        m.opened(1);
        m.job_ended(&Affects::Users(vec!["u1".into()]), learn("u1", 3));
        assert_eq!(m.user(&uid("u1"), t0()).unwrap().seen().total().calls, 3);
        assert_eq!(m.revision(), Some(7));
        m.job_ended(&Affects::Users(vec!["u2".into()]), Learned::default());
        assert!(m.user(&uid("u1"), t0()).is_some(), "another user's job leaves u1 alone");
        m.job_ended(&Affects::NothingCached, Learned::default());
        assert!(m.user(&uid("u1"), t0()).is_some());
        m.job_ended(&Affects::Users(vec!["u1".into()]), Learned::default());
        assert!(m.user(&uid("u1"), t0()).is_none());
    }

    #[test]
    fn an_undeclared_write_or_another_connections_commit_empties_it() {
        let mut m = Memo::default();
        m.opened(1);
        m.job_ended(&Affects::NothingCached, learn("u1", 1));
        m.job_ended(&Affects::Anything, Learned::default());
        assert!(m.user(&uid("u1"), t0()).is_none());
        assert_eq!(m.revision(), None, "an undeclared write may have changed the catalog");
        // What a job learned under Anything is still kept for its user (it
        // read it after its own writes), but never the revision.
        m.job_ended(&Affects::Anything, learn("u1", 1));
        assert!(m.user(&uid("u1"), t0()).is_some());
        assert_eq!(m.revision(), None);
        m.opened(1);
        assert!(m.user(&uid("u1"), t0()).is_some(), "no other commit: still exact");
        m.opened(2);
        assert!(m.user(&uid("u1"), t0()).is_none(), "another connection committed");
        m.job_ended(&Affects::NothingCached, learn("u1", 1));
        m.restart();
        assert!(m.user(&uid("u1"), t0()).is_none());
        m.opened(2);
        assert!(m.user(&uid("u1"), t0()).is_none());
    }

    #[test]
    fn an_entry_ends_with_its_period_or_its_first_hold() {
        let mut m = Memo::default();
        let lapse = t0() + chrono::Duration::minutes(5);
        let learned = Learned { users: vec![("u1".into(), held("u1", 1, Some(lapse)))], revision: None };
        m.job_ended(&Affects::NothingCached, learned);
        assert!(m.user(&uid("u1"), lapse - chrono::Duration::seconds(1)).is_some());
        assert!(m.user(&uid("u1"), lapse).is_none(), "the hold no longer counts");
        m.job_ended(&Affects::NothingCached, learn("u2", 1));
        assert!(m.user(&uid("u2"), t0() + chrono::Duration::days(31)).is_none(), "the period ended");
    }
}
