//! In-process turns per user, taken before a write transaction begins.
//!
//! Not the authority: the store's per-user lock is (the subscription row
//! lock on Postgres, across every node). Without these turns, a process's
//! requests for one busy user each take a pooled database connection and
//! then wait for that row lock, so a slow writer for one user (a large
//! batch) can tie up the pool for every other user. Waiting here holds no
//! connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

/// Held turns; dropping it ends them.
pub type Turns = Vec<OwnedMutexGuard<()>>;

#[derive(Debug, Default)]
pub struct UserTurns {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    locks: HashMap<String, Weak<TurnLock<()>>>,
    /// Forget ended turns once the map grows past this.
    sweep_at: usize,
}

const MIN_SWEEP: usize = 1024;

impl UserTurns {
    /// Waits for the turn of every user in `users`, taken in sorted order
    /// so that concurrent batches naming the same users cannot deadlock.
    /// Never call it while holding a write transaction.
    pub async fn take<'a>(&self, users: impl IntoIterator<Item = &'a str>) -> Turns {
        let mut ids: Vec<&str> = users.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        let locks: Vec<Arc<TurnLock<()>>> = {
            let mut inner = self.inner.lock().expect("user turns lock");
            if inner.locks.len() >= inner.sweep_at.max(MIN_SWEEP) {
                inner.locks.retain(|_, w| w.strong_count() > 0);
                inner.sweep_at = inner.locks.len() * 2;
            }
            ids.iter()
                .map(|id| match inner.locks.get(*id).and_then(Weak::upgrade) {
                    Some(lock) => lock,
                    None => {
                        let lock = Arc::new(TurnLock::new(()));
                        inner.locks.insert((*id).to_string(), Arc::downgrade(&lock));
                        lock
                    }
                })
                .collect()
        };
        let mut turns = Vec::with_capacity(locks.len());
        for lock in locks {
            turns.push(lock.lock_owned().await);
        }
        turns
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.inner.lock().unwrap().locks.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// One user's turns are taken one at a time; other users' are not held
    /// up; overlapping batches in opposite orders do not deadlock; ended
    /// turns are forgotten.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn turns_serialise_per_user_only() {
        let turns = Arc::new(UserTurns::default());
        let held = turns.take(["a"]).await;
        // Another user's turn is free while `a` is held...
        tokio::time::timeout(Duration::from_secs(5), turns.take(["b"])).await.expect("b is not held up");
        // ...and `a`'s waits until it is released.
        let t = turns.clone();
        let waiter = tokio::spawn(async move { t.take(["a"]).await.len() });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "a second turn of `a` was granted while the first was held");
        drop(held);
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap(), 1);

        // Many batches naming the same users in different orders all finish.
        let batches: Vec<_> = (0..50)
            .map(|i| {
                let t = turns.clone();
                tokio::spawn(async move {
                    let users: Vec<String> = if i % 2 == 0 {
                        vec!["x".into(), "y".into(), "z".into()]
                    } else {
                        vec!["z".into(), "y".into(), "x".into(), "x".into()]
                    };
                    let held = t.take(users.iter().map(String::as_str)).await;
                    assert_eq!(held.len(), 3);
                    tokio::task::yield_now().await;
                })
            })
            .collect();
        for b in batches {
            tokio::time::timeout(Duration::from_secs(10), b).await.expect("no deadlock").unwrap();
        }

        // Past the sweep size, ended turns are dropped from the map.
        for i in 0..(MIN_SWEEP + 10) {
            drop(turns.take([format!("u{i}").as_str()]).await);
        }
        assert!(turns.tracked() < MIN_SWEEP, "ended turns are kept: {}", turns.tracked());
    }
}
