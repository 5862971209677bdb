//! SQLite's write group: concurrent writers share one transaction and
//! one commit (and so one fsync), with the memo of what the group holds.

use super::*;

/// SQLite: the longest a group with only reservations' holds stays open
/// (see [`GroupWriter::flush_soon`]).
const MEMO_FLUSH_DELAY: Duration = Duration::from_millis(2);

/// SQLite group commit.
///
/// SQLite admits one writer at a time, and a durable commit needs an
/// fsync, so committing every request on its own caps the write paths at
/// the disk's fsync rate. Instead the process's writers
/// take turns (first come, first served, in the async mutex) inside one
/// open transaction, each in its own savepoint: a job that fails or is
/// dropped rolls back to its savepoint and leaves the others' work alone.
/// A flusher task commits the group once the writers queued behind it have
/// had their turn, and only then does each job's `commit()` return (in
/// `power` durability, once the log's syncer has also synced that group:
/// [`super::wal_sync`]), so a write is acknowledged only once it is
/// durable, and a failed group commit fails every job in it (none was
/// acknowledged). Readers use the pool's
/// other connections and see a job's writes only after its group commits.
///
/// The busy handler stays as the fallback for other processes writing the
/// same file (`tally seed` beside a server).
///
/// The writer keeps one connection from group to group, and with it a
/// [`memo::Memo`] of the state the group's transaction holds, from which
/// reservations decide without reading the store again.
#[derive(Clone)]
pub(super) struct GroupWriter {
    pub(super) group: Arc<tokio::sync::Mutex<Group>>,
    /// The group's [`Shared`] part (the group holds it too).
    pub(super) shared: Arc<std::sync::Mutex<Shared>>,
    /// Told when a group opens (the group holds it too).
    pub(super) opened: Arc<tokio::sync::Notify>,
    flush: Arc<tokio::sync::Notify>,
    /// A flush is due shortly (see [`GroupWriter::flush_soon`]).
    flush_due: Arc<std::sync::atomic::AtomicBool>,
}

/// What reservations decide on ([`Store::in_memo`]), behind a short lock
/// of its own rather than the group's turn: a reservation need not wait
/// for a long job (a batch of a thousand events) of other users.
#[derive(Default)]
pub(super) struct Shared {
    /// The group's transaction is open (or committing): it holds SQLite's
    /// write lock, so nothing but the group's jobs can change what the
    /// memo describes.
    pub(super) open: bool,
    /// The job running now, and what it said it may change (it starts as
    /// [`view::Affects::Anything`] and narrows): a reservation beside it
    /// decides only for users it leaves alone.
    pub(super) running: Option<view::Affects>,
    /// What the open transaction holds, for reservations.
    pub(super) memo: memo::Memo,
    /// Holds taken on the memo alone, written before the next job's
    /// statements or the commit, whichever comes first.
    pending_holds: Vec<holds::NewHold>,
    /// Told when the open group has committed.
    done: Option<tokio::sync::watch::Receiver<GroupOutcome>>,
    /// Moves whenever a job ends: a reservation waiting for the running
    /// job to leave its user decides then.
    job_ends: JobEnds,
}

/// A count of ended jobs, watched.
pub(super) struct JobEnds(tokio::sync::watch::Sender<u64>);

impl Default for JobEnds {
    fn default() -> JobEnds {
        JobEnds(tokio::sync::watch::channel(0).0)
    }
}

impl Shared {
    /// Runs `f` on the memo: what it returns, the users it held for, and
    /// the news of the commit that will write their holds.
    pub(super) fn decide<T>(
        &mut self,
        f: impl FnOnce(&mut MemoJob<'_>) -> T,
    ) -> (T, Vec<String>, Option<tokio::sync::watch::Receiver<GroupOutcome>>) {
        let mut job = MemoJob { shared: self, held_for: Vec::new() };
        let out = f(&mut job);
        let held_for = std::mem::take(&mut job.held_for);
        (out, held_for, self.done.clone())
    }

    /// No job runs any more (it ended, or was rolled back).
    fn job_ended(&mut self) {
        self.running = None;
        self.job_ends.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether the running job may change `user_id`'s state.
    fn busy_with(&self, user_id: &UserId) -> bool {
        match &self.running {
            None | Some(view::Affects::NothingCached) => false,
            Some(view::Affects::Anything) => true,
            Some(view::Affects::Users(users)) => users.iter().any(|u| u == user_id.as_str()),
        }
    }
}

impl std::fmt::Debug for GroupWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupWriter")
    }
}

/// How a group's commit ended, shared by every job in it: its number
/// (counted from 1 per writer), or why it failed.
pub(super) type GroupOutcome = Option<Result<u64, Arc<StoreError>>>;

/// The open group: its transaction and the jobs waiting for its commit.
#[derive(Default)]
pub(super) struct Group {
    /// The writer's connection, kept across groups: `PRAGMA data_version`
    /// on it moves only when another connection commits.
    pub(super) conn: Option<PoolConnection<Any>>,
    /// A transaction is open on `conn`.
    pub(super) open: bool,
    pub(super) done: Option<tokio::sync::watch::Sender<GroupOutcome>>,
    /// A job ended without committing or rolling back (its future was
    /// dropped): its savepoint is still open and is rolled back before the
    /// connection is used again.
    abandoned: bool,
    /// The last job ended well, and its savepoint is released with the next
    /// job's start (one statement, not two) or committed with the group.
    unreleased: bool,
    /// The memo and what reservations decided on it ([`Shared`]).
    shared: Arc<std::sync::Mutex<Shared>>,
    /// Told when a group opens: reservations waiting for one decide then.
    opened: Arc<tokio::sync::Notify>,
    /// `power` durability on a database file: syncs what the groups commit
    /// (the writer's connection then commits with `synchronous = NORMAL`).
    pub(super) syncer: Option<Arc<WalSyncer>>,
    /// Groups committed so far.
    commits: u64,
    /// Where the writer's connection comes from, for the flusher (which
    /// may open a group for holds decided during a commit).
    pool: Option<AnyPool>,
    /// The store is closing: no group opens again (it would keep a
    /// connection the pool's close waits for).
    closed: bool,
}

impl Drop for Group {
    fn drop(&mut self) {
        // A connection inside an open transaction must never serve again.
        if let (true, Some(conn)) = (self.open, self.conn.as_mut()) {
            conn.close_on_drop();
        }
    }
}

impl Group {
    pub(super) fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        debug_assert!(self.open, "a group job runs in the open transaction");
        self.conn.as_deref_mut().expect("a group job runs in the open transaction")
    }

    /// Opens a transaction that holds the write lock, on the writer's
    /// connection, and tells the memo whether another connection
    /// committed since the last one.
    pub(super) async fn open(&mut self, pool: &AnyPool) -> StoreResult<()> {
        if self.closed {
            return Err(sqlx::Error::PoolClosed.into());
        }
        if self.conn.is_none() {
            let mut conn = pool.acquire().await?;
            if self.syncer.is_some() {
                // Its commits are synced by the syncer, off the group's turn.
                conn.execute("PRAGMA synchronous = NORMAL").await?;
            }
            self.conn = Some(conn);
            self.shared().memo.restart();
        }
        let conn = self.conn.as_deref_mut().expect("acquired above");
        let began: StoreResult<i64> = async {
            conn.execute("BEGIN IMMEDIATE").await?;
            Ok(sqlx::query_scalar("PRAGMA data_version").fetch_one(&mut *conn).await?)
        }
        .await;
        match began {
            Ok(version) => {
                let done = tokio::sync::watch::channel(None).0;
                {
                    let mut shared = self.shared();
                    shared.memo.opened(version);
                    shared.done = Some(done.subscribe());
                    shared.open = true;
                }
                self.open = true;
                self.done = Some(done);
                self.opened.notify_waiters();
                Ok(())
            }
            Err(e) => {
                self.discard().await;
                Err(e)
            }
        }
    }

    /// Closes the writer's connection (rolling back whatever it had open);
    /// the next group takes a fresh one.
    async fn discard(&mut self) {
        self.open = false;
        self.unreleased = false;
        {
            let mut shared = self.shared();
            (shared.open, shared.done) = (false, None);
            shared.job_ended();
            shared.pending_holds.clear();
            shared.memo.restart();
        }
        if let Some(conn) = self.conn.take() {
            conn.close().await.ok();
        }
    }

    async fn run(&mut self, sql: &str) -> StoreResult<()> {
        sqlx::query(sql).execute(self.conn()).await?;
        Ok(())
    }

    /// Undoes the current job's work and closes its savepoint; if that
    /// fails, the group cannot go on (see [`Group::fail`]).
    pub(super) async fn undo_job(&mut self) -> StoreResult<()> {
        self.abandoned = false;
        match self.run("ROLLBACK TO job; RELEASE job").await {
            Ok(()) => {
                self.shared().job_ended();
                Ok(())
            }
            Err(e) => Err(self.fail(e).await),
        }
    }

    /// Rolls back an abandoned job's savepoint.
    pub(super) async fn recover(&mut self) {
        if self.abandoned {
            // A failure has already failed the group and told its jobs.
            self.undo_job().await.ok();
        }
    }

    /// The group cannot go on (its transaction or a savepoint failed):
    /// rolls back everything uncommitted and fails every job waiting for
    /// it. Returns the error for the job that saw it.
    async fn fail(&mut self, e: StoreError) -> StoreError {
        let e = Arc::new(e);
        tracing::warn!(error = %e, "a SQLite write group failed; its jobs are rolled back and told so");
        if self.open {
            self.discard().await;
        }
        if let Some(done) = self.done.take() {
            done.send_replace(Some(Err(e.clone())));
        }
        self.abandoned = false;
        StoreError::Group(e)
    }

    /// Commits the open group, if any, and tells its jobs how it went.
    ///
    /// Reservations go on deciding on the memo while the group commits:
    /// the transaction still holds the write lock, so the state the memo
    /// describes is the one being committed, and nothing else can write
    /// before it. Their holds wait in `pending_holds` for the next group
    /// (they are not part of this commit), which the flush each decision
    /// asks for opens. Only after `COMMIT` returns, when another process could
    /// write before the next group takes the lock again, does deciding
    /// wait for that group.
    async fn flush(&mut self) {
        self.recover().await;
        if !self.open
            && !self.shared().pending_holds.is_empty()
            && let Some(pool) = self.pool.clone()
            && self.open(&pool).await.is_err()
        {
            // The holds are lost with the writer's connection (they only
            // keep room for calls in flight); `open` said why in the log.
            return;
        }
        if self.open {
            let written = self.write_pending().await;
            // From here the holds decided go to the next group.
            self.shared().done = None;
            let committed = match written {
                Ok(()) => self.run("COMMIT").await,
                Err(e) => Err(e),
            };
            self.shared().open = false;
            let outcome = match committed {
                Ok(()) => {
                    self.open = false;
                    self.unreleased = false;
                    self.commits += 1;
                    if let Some(s) = &self.syncer {
                        s.committed(self.commits);
                    }
                    Ok(self.commits)
                }
                Err(e) => {
                    // Whatever the commit left open is rolled back.
                    self.discard().await;
                    Err(Arc::new(e))
                }
            };
            if let Some(done) = self.done.take() {
                done.send_replace(Some(outcome));
            }
        }
    }

    /// A job ended well: its savepoint stays open until the next job starts
    /// (see `unreleased`), and the memo drops what it changed and keeps
    /// what it learned (see [`memo::Memo::job_ended`]).
    pub(super) fn end_job(&mut self, affects: &view::Affects, learned: memo::Learned) {
        self.abandoned = false;
        self.unreleased = true;
        let mut shared = self.shared();
        shared.memo.job_ended(affects, learned);
        shared.job_ended();
    }

    /// Writes the holds taken on the memo alone. They go in the last ended
    /// job's savepoint, which is never rolled back.
    async fn write_pending(&mut self) -> StoreResult<()> {
        let pending = std::mem::take(&mut self.shared().pending_holds);
        if pending.is_empty() {
            return Ok(());
        }
        holds::insert_holds(self.conn(), &pending).await
    }

    /// Opens the next job's savepoint, releasing the last one's.
    async fn start_job(&mut self) -> StoreResult<()> {
        // Until it says what it changes, the job may change anything.
        self.shared().running = Some(view::Affects::Anything);
        if let Err(e) = self.write_pending().await {
            return Err(self.fail(e).await);
        }
        let sql = if self.unreleased { "RELEASE job; SAVEPOINT job" } else { "SAVEPOINT job" };
        self.unreleased = false;
        if let Err(e) = self.run(sql).await {
            return Err(self.fail(e).await);
        }
        self.abandoned = true;
        Ok(())
    }

    /// Ends the group for good (the store is closing): commits it and
    /// gives the writer's connection back.
    pub(super) async fn close(&mut self) {
        self.flush().await;
        self.closed = true;
        self.shared().memo.restart();
        // Not back to the pool: it may commit without syncing.
        if let Some(conn) = self.conn.take() {
            conn.close().await.ok();
        }
    }
}

impl GroupWriter {
    pub(super) fn start(pool: AnyPool, syncer: Option<Arc<WalSyncer>>) -> GroupWriter {
        let mut group = Group::default();
        group.syncer = syncer;
        group.pool = Some(pool);
        let (shared, opened) = (group.shared.clone(), group.opened.clone());
        let w = GroupWriter {
            group: Arc::new(tokio::sync::Mutex::new(group)),
            shared,
            opened,
            flush: Arc::default(),
            flush_due: Arc::default(),
        };
        let (group, flush) = (Arc::downgrade(&w.group), w.flush.clone());
        tokio::spawn(async move {
            loop {
                flush.notified().await;
                // Gone when every handle on the store is.
                let Some(group) = group.upgrade() else { return };
                // The mutex is fair: the writers already queued go first
                // and join this group; later ones wait for the next.
                // Holds decided during a commit are written by the next
                // flush: each decision asks for one ([`GroupWriter::flush_soon`]).
                group.lock().await.flush().await;
            }
        });
        w
    }

    /// Asks for the group to commit within [`MEMO_FLUSH_DELAY`], for what
    /// reservations decided on the memo: they do not wait for that commit,
    /// and the group stays open meanwhile, so the reservations after them
    /// decide on the memo too instead of opening a group each.
    pub(super) fn flush_soon(&self) {
        use std::sync::atomic::Ordering;
        if !self.flush_due.swap(true, Ordering::AcqRel) {
            let (flush, due) = (self.flush.clone(), self.flush_due.clone());
            tokio::spawn(async move {
                tokio::time::sleep(MEMO_FLUSH_DELAY).await;
                due.store(false, Ordering::Release);
                flush.notify_one();
            });
        }
    }

    pub(super) async fn begin(&self, pool: &AnyPool) -> StoreResult<TxInner> {
        let mut g = self.group.clone().lock_owned().await;
        g.recover().await;
        if !g.open {
            g.open(pool).await?;
        }
        g.start_job().await?;
        Ok(TxInner::Grouped { group: g, flush: FlushOnDrop(self.flush.clone()) })
    }
}

/// A decision on the write group's memo alone (see [`Store::in_memo`]),
/// possibly beside a running job.
pub struct MemoJob<'a> {
    shared: &'a mut Shared,
    held_for: Vec<String>,
}

impl MemoJob<'_> {
    /// The catalog revision the group's transaction holds, if known (and
    /// no running job may change it).
    pub fn revision(&self) -> Option<i64> {
        if matches!(self.shared.running, Some(view::Affects::Anything)) {
            return None;
        }
        self.shared.memo.revision()
    }

    /// When the running job may change `user_id`'s state: the news of its
    /// end, to decide then instead of reading the store.
    pub fn busy(&self, user_id: &UserId) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.shared.busy_with(user_id).then(|| self.shared.job_ends.0.subscribe())
    }

    /// The user's state as the group's transaction holds it, if known and
    /// no running job may change it.
    pub fn recall(&self, user_id: &UserId, now: DateTime<Utc>) -> Option<memo::Held> {
        if self.shared.busy_with(user_id) {
            return None;
        }
        self.shared.memo.user(user_id, now).cloned()
    }

    /// Takes `holds` for `user_id` (just recalled), whose state is then
    /// `after`. They are written with the group, before the next job or
    /// the commit; no running job reads this user's holds.
    pub fn hold(&mut self, user_id: &UserId, after: memo::Held, holds: Vec<holds::NewHold>) {
        debug_assert!(!self.shared.busy_with(user_id), "decided beside a job that may change the user");
        let learned = memo::Learned { users: vec![(user_id.to_string(), after)], revision: None };
        self.shared.memo.job_ended(&view::Affects::Users(vec![user_id.to_string()]), learned);
        self.shared.pending_holds.extend(holds);
        self.held_for.push(user_id.to_string());
    }
}
