//! SQLite in `power` durability: the write-ahead log is synced by a thread
//! of its own, apart from the commits.
//!
//! With `synchronous = FULL` every `COMMIT` waits for an fsync while it
//! holds the write group's turn, so each group's jobs wait for their own
//! fsync *and* for the one before theirs, and nothing else can write
//! meanwhile. Instead the group's writer connection commits with
//! `synchronous = NORMAL` (the commit is in the log, in the operating
//! system's cache: it survives a crash of Tally), and this thread then
//! `fdatasync`s the log file, covering every group committed since its
//! last sync. A write acknowledged as durable waits for the sync that
//! covers its group: at most the one running when it committed and the
//! next. Everything else (the next group, reservations, the proxy's
//! answers, see [`super::WriteTx::commit_written`]) goes on meanwhile.
//!
//! Syncing a file from another descriptor is enough: `fdatasync` writes
//! back the file's (the inode's) dirty pages whoever wrote them. The log
//! is opened again whenever its inode changes (SQLite deletes it when the
//! last connection closes, after checkpointing it into the database file,
//! which that checkpoint syncs). SQLite syncs the log itself before every
//! checkpoint copies from it, so the database file never gets ahead of it.
//!
//! A failed sync fails every write it was to cover: after a failed
//! `fdatasync` the kernel may have dropped the pages, so a later success
//! proves nothing about them. Their senders see the store as unavailable
//! and retry; ingest's duplicate check makes the retry exact.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use super::{StoreError, StoreResult};

/// How far the log is synced, by group commit number.
#[derive(Clone, Copy, Debug, Default)]
struct Synced {
    /// Every group up to this one is on disk.
    upto: u64,
    /// A sync covering groups up to this one failed.
    failed_upto: u64,
}

#[derive(Default)]
struct Wanted {
    /// The last group committed.
    upto: u64,
    closed: bool,
}

struct Inner {
    /// The log: the database file's name with `-wal`.
    path: PathBuf,
    wanted: Mutex<Wanted>,
    wake: Condvar,
    synced: tokio::sync::watch::Sender<Synced>,
}

/// The syncing thread's handle; the thread ends when the last handle is
/// dropped (or [`WalSyncer::close`]).
pub(super) struct WalSyncer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WalSyncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalSyncer").field("log", &self.inner.path).finish()
    }
}

impl WalSyncer {
    /// Starts syncing the log of the database file `db`.
    pub(super) fn start(db: &std::path::Path) -> std::io::Result<Arc<WalSyncer>> {
        let mut path = db.as_os_str().to_owned();
        path.push("-wal");
        let inner = Arc::new(Inner {
            path: PathBuf::from(path),
            wanted: Mutex::default(),
            wake: Condvar::new(),
            synced: tokio::sync::watch::channel(Synced::default()).0,
        });
        let thread = inner.clone();
        std::thread::Builder::new().name("tally-wal-sync".into()).spawn(move || thread.run())?;
        Ok(Arc::new(WalSyncer { inner }))
    }

    /// Group `seq` has committed: sync it (with whatever else has by then).
    pub(super) fn committed(&self, seq: u64) {
        let mut wanted = self.inner.wanted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        wanted.upto = wanted.upto.max(seq);
        self.inner.wake.notify_one();
    }

    /// Returns once group `seq` is on disk; an error if the sync meant to
    /// cover it failed.
    pub(super) async fn synced(&self, seq: u64) -> StoreResult<()> {
        let mut rx = self.inner.synced.subscribe();
        let outcome = rx.wait_for(|s| s.failed_upto >= seq || s.upto >= seq).await.map(|s| *s);
        match outcome {
            Ok(s) if s.failed_upto < seq => Ok(()),
            Ok(_) => Err(StoreError::Database(sqlx::Error::Io(std::io::Error::other(
                "syncing the SQLite write-ahead log failed; the write may not survive a power cut",
            )))),
            Err(_) => Err(StoreError::Database(sqlx::Error::WorkerCrashed)),
        }
    }

    /// Stops the thread once it has synced what is committed.
    pub(super) fn close(&self) {
        self.inner.wanted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).closed = true;
        self.inner.wake.notify_one();
    }

    /// Syncs done so far (for tests).
    #[cfg(test)]
    pub(super) fn synced_upto(&self) -> u64 {
        self.inner.synced.borrow().upto
    }
}

impl Drop for WalSyncer {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    fn run(&self) {
        let mut log: Option<(std::fs::File, u64)> = None;
        let mut done = 0;
        loop {
            let target = {
                let mut wanted = self.wanted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                while wanted.upto <= done && !wanted.closed {
                    wanted = self.wake.wait(wanted).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                if wanted.upto <= done {
                    return;
                }
                wanted.upto
            };
            match self.sync(&mut log) {
                Ok(()) => self.synced.send_modify(|s| s.upto = target),
                Err(e) => {
                    tracing::error!(error = %e, log = %self.path.display(), "syncing the SQLite write-ahead log failed");
                    log = None;
                    self.synced.send_modify(|s| s.failed_upto = target);
                }
            }
            done = target;
        }
    }

    /// `fdatasync` of the log as it is now, opened again if it is a new
    /// file. No log at all: the last connection closed and checkpointed
    /// it into the database file, which that checkpoint synced.
    fn sync(&self, log: &mut Option<(std::fs::File, u64)>) -> std::io::Result<()> {
        let inode = match std::fs::metadata(&self.path) {
            Ok(m) => m.ino(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if log.as_ref().is_none_or(|(_, i)| *i != inode) {
            let file = std::fs::File::open(&self.path)?;
            let inode = file.metadata()?.ino();
            *log = Some((file, inode));
        }
        log.as_ref().expect("opened above").0.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each committed group is synced in turn; the log is found again
    /// when it is replaced by a new file, and its absence (checkpointed
    /// away by the last connection) is not an error.
    #[tokio::test]
    async fn syncs_each_group_and_follows_the_log_file() {
        let db = std::env::temp_dir().join(format!("tally-walsync-{}.db", uuid::Uuid::new_v4().simple()));
        let log = PathBuf::from(format!("{}-wal", db.display()));
        std::fs::write(&log, b"one").unwrap();
        let syncer = WalSyncer::start(&db).unwrap();
        syncer.committed(1);
        syncer.synced(1).await.unwrap();
        assert!(syncer.synced_upto() >= 1);
        // Replaced: a new inode.
        std::fs::remove_file(&log).unwrap();
        std::fs::write(&log, b"two").unwrap();
        syncer.committed(2);
        syncer.committed(3);
        syncer.synced(3).await.unwrap();
        std::fs::remove_file(&log).unwrap();
        syncer.committed(4);
        syncer.synced(4).await.unwrap();
        assert_eq!(syncer.synced_upto(), 4);
        // Closing syncs what was committed before the thread ends.
        syncer.committed(5);
        syncer.close();
        syncer.synced(5).await.unwrap();
    }
}
