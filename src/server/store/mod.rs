//! Storage: one sqlx `Any` pool over SQLite (embedded default) or PostgreSQL,
//! chosen by the URL scheme, with one set of runtime queries for both.
//!
//! The schema keeps both dialects column-for-column identical (see
//! `migrations/`): instants are unix milliseconds, money is integer nanos,
//! prices are decimal text and flags are 0/1 integers, which are exactly the
//! types the `Any` driver maps faithfully on both. SQL here must stay in the
//! common subset (`$n` binds, `ON CONFLICT`, `RETURNING`, `CAST(.. AS BIGINT)`
//! around aggregates, since Postgres sums BIGINT into NUMERIC). Statements
//! built at run time with many binds take theirs from [`Placeholders`].
//!
//! Concurrency: every transaction that changes a user's usage starts with
//! [`users::lock_subscription`], an UPDATE of the user's subscription row. On Postgres that
//! row lock serialises writers per user; on SQLite the process's writers
//! take turns in one group transaction that began `IMMEDIATE` (see
//! [`GroupWriter`]), and `busy_timeout` queues other processes. There the
//! group already holds the database's write lock, so a job that finds its
//! user in the group's [`memo`] skips the row lock and the reads.

pub mod alerts;
pub mod bills;
pub mod catalog;
pub mod claims;
pub mod events;
#[cfg(test)]
mod group_tests;
pub mod holds;
pub mod insights;
pub mod keys;
pub mod live;
pub mod memo;
pub mod node_stats;
pub mod one_server;
pub mod rollups;
#[cfg(test)]
mod schema_tests;
pub mod sessions;
pub mod users;
pub mod view;
pub mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Executor, Transaction};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// SQLite: the longest a group with only reservations' holds stays open
/// (see [`GroupWriter::flush_soon`]).
const MEMO_FLUSH_DELAY: Duration = Duration::from_millis(2);

/// A pooled PostgreSQL connection idle this long is pinged before use.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Config(format!(
                "DATABASE_URL must start with sqlite: or postgres: (got `{}`)",
                redact_url(url)
            )))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Config(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The SQLite write group this job was part of failed to commit.
    #[error("{0}")]
    Group(Arc<StoreError>),
}

impl StoreError {
    /// Whether this is a unique-constraint violation (decided by error kind,
    /// never by message text).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }

    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_foreign_key_violation())
    }

    /// The store is unreachable, restarting or overloaded (as opposed to a
    /// bad query): worth retrying shortly. Decided by error kind and SQLSTATE:
    /// Postgres's connection exceptions (class 08), shutdown and start-up
    /// (57P01-57P03) and too many connections (53300); SQLite's busy codes.
    pub fn is_unavailable(&self) -> bool {
        if let StoreError::Group(e) = self {
            return e.is_unavailable();
        }
        let StoreError::Database(e) = self else { return false };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(d) => d.code().is_some_and(|c| {
                c.starts_with("08")
                    || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300" | "5" | "261" | "517" | "773")
            }),
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Pool settings.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Postgres only: put every table in this schema (tests use a fresh one).
    pub schema: Option<String>,
    /// The longest the process answers from its in-memory copies of store
    /// state (see [`view`]) without reading the store again: the bound on
    /// how late it sees another process's writes. This process's own writes
    /// it sees at once.
    pub cache_ttl: Duration,
    /// When a write is acknowledged (see [`Durability`]).
    pub durability: Durability,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            schema: None,
            cache_ttl: Duration::from_secs(1),
            durability: Durability::default(),
        }
    }
}

/// When a write is acknowledged (`TALLY_DURABILITY`). Reservations' holds
/// are transient and wait for neither (see [`WriteTx::commit_unsynced`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// Once it is on disk: an acknowledged event survives a power cut.
    /// SQLite commits with `synchronous = FULL`; PostgreSQL with its own
    /// `synchronous_commit`.
    #[default]
    Power,
    /// Once it is in the write-ahead log: it survives a crash or `kill -9`
    /// of Tally, and a power cut or operating-system crash may lose the
    /// last second or so of writes. SQLite commits with `synchronous =
    /// NORMAL` and syncs the log every [`PROCESS_SYNC_EVERY`];
    /// PostgreSQL's sessions set `synchronous_commit = off` (the server
    /// flushes within three `wal_writer_delay`s, 600 ms by default).
    Process,
}

/// In `process` durability on SQLite, how often the log is synced (by a
/// passive checkpoint, which never blocks writers): the bound on what a
/// power cut loses.
pub const PROCESS_SYNC_EVERY: Duration = Duration::from_secs(1);

/// The application's handle on the database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: the process's writers, committed in groups.
    group: Option<GroupWriter>,
    /// What the check-only gate answers from (see [`view`]).
    view: Arc<view::UsageView>,
    /// Announcements of committed changes (see [`live`]).
    live: Arc<live::LiveHub>,
    /// PostgreSQL only: where the live listener connects.
    listen_url: Option<Secret>,
}

/// A connection URL, which may hold a password: never printed.
#[derive(Clone)]
struct Secret(Arc<str>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// SQLite group commit.
///
/// SQLite admits one writer at a time, and with `synchronous = FULL` each
/// commit waits for an fsync, so committing every request on its own caps
/// the write paths at the disk's fsync rate. Instead the process's writers
/// take turns (first come, first served, in the async mutex) inside one
/// open transaction, each in its own savepoint: a job that fails or is
/// dropped rolls back to its savepoint and leaves the others' work alone.
/// A flusher task commits the group once the writers queued behind it have
/// had their turn, and only then does each job's `commit()` return, so a
/// write is acknowledged only once it is durable, and a failed group commit
/// fails every job in it (none was acknowledged). Readers use the pool's
/// other connections and see a job's writes only after its group commits.
///
/// The busy handler stays as the fallback for other processes writing the
/// same file (`tally seed` beside a server).
///
/// The writer keeps one connection from group to group, and with it a
/// [`memo::Memo`] of the state the group's transaction holds, from which
/// reservations decide without reading the store again.
#[derive(Clone)]
struct GroupWriter {
    group: Arc<tokio::sync::Mutex<Group>>,
    /// The group's [`Shared`] part (the group holds it too).
    shared: Arc<std::sync::Mutex<Shared>>,
    /// Told when a group opens (the group holds it too).
    opened: Arc<tokio::sync::Notify>,
    flush: Arc<tokio::sync::Notify>,
    /// A flush is due shortly (see [`GroupWriter::flush_soon`]).
    flush_due: Arc<std::sync::atomic::AtomicBool>,
}

/// What reservations decide on ([`Store::in_memo`]), behind a short lock
/// of its own rather than the group's turn: a reservation need not wait
/// for a long job (a batch of a thousand events) of other users.
#[derive(Default)]
struct Shared {
    /// The group's transaction is open and not committing: it holds
    /// SQLite's write lock, so nothing but the group's jobs can change what
    /// the memo describes.
    open: bool,
    /// The job running now, and what it said it may change (it starts as
    /// [`view::Affects::Anything`] and narrows): a reservation beside it
    /// decides only for users it leaves alone.
    running: Option<view::Affects>,
    /// What the open transaction holds, for reservations.
    memo: memo::Memo,
    /// Holds taken on the memo alone, written before the next job's
    /// statements or the commit, whichever comes first.
    pending_holds: Vec<holds::NewHold>,
    /// Told when the open group has committed.
    done: Option<tokio::sync::watch::Receiver<GroupOutcome>>,
}

impl Shared {
    /// Runs `f` on the memo: what it returns, the users it held for, and
    /// the news of the commit that will write their holds.
    fn decide<T>(
        &mut self,
        f: impl FnOnce(&mut MemoJob<'_>) -> T,
    ) -> (T, Vec<String>, Option<tokio::sync::watch::Receiver<GroupOutcome>>) {
        let mut job = MemoJob { shared: self, held_for: Vec::new() };
        let out = f(&mut job);
        let held_for = std::mem::take(&mut job.held_for);
        (out, held_for, self.done.clone())
    }

    /// Whether the running job may change `user_id`'s state.
    fn busy_with(&self, user_id: &str) -> bool {
        match &self.running {
            None | Some(view::Affects::NothingCached) => false,
            Some(view::Affects::Anything) => true,
            Some(view::Affects::Users(users)) => users.iter().any(|u| u == user_id),
        }
    }
}

impl std::fmt::Debug for GroupWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupWriter")
    }
}

/// How a group's commit ended, shared by every job in it.
type GroupOutcome = Option<Result<(), Arc<StoreError>>>;

/// The open group: its transaction and the jobs waiting for its commit.
#[derive(Default)]
struct Group {
    /// The writer's connection, kept across groups: `PRAGMA data_version`
    /// on it moves only when another connection commits.
    conn: Option<PoolConnection<Any>>,
    /// A transaction is open on `conn`.
    open: bool,
    done: Option<tokio::sync::watch::Sender<GroupOutcome>>,
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
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn conn(&mut self) -> &mut sqlx::AnyConnection {
        debug_assert!(self.open, "a group job runs in the open transaction");
        self.conn.as_deref_mut().expect("a group job runs in the open transaction")
    }

    /// Opens a transaction that holds the write lock, on the writer's
    /// connection, and tells the memo whether another connection
    /// committed since the last one.
    async fn open(&mut self, pool: &AnyPool) -> StoreResult<()> {
        if self.conn.is_none() {
            self.conn = Some(pool.acquire().await?);
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
            (shared.open, shared.running, shared.done) = (false, None, None);
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
    async fn undo_job(&mut self) -> StoreResult<()> {
        self.abandoned = false;
        match self.run("ROLLBACK TO job; RELEASE job").await {
            Ok(()) => {
                self.shared().running = None;
                Ok(())
            }
            Err(e) => Err(self.fail(e).await),
        }
    }

    /// Rolls back an abandoned job's savepoint.
    async fn recover(&mut self) {
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
    async fn flush(&mut self) {
        self.recover().await;
        if self.open {
            // The holds decided so far are written while reservations may
            // still decide beside; then, from the last few written to the
            // commit's outcome, the memo stays as it is.
            let early = self.write_pending().await;
            {
                let mut shared = self.shared();
                (shared.open, shared.done) = (false, None);
            }
            let committed = match early.and(self.write_pending().await) {
                Ok(()) => self.run("COMMIT").await,
                Err(e) => Err(e),
            };
            let outcome = match committed {
                Ok(()) => {
                    self.open = false;
                    self.unreleased = false;
                    Ok(())
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
    fn end_job(&mut self, affects: &view::Affects, learned: memo::Learned) {
        self.abandoned = false;
        self.unreleased = true;
        let mut shared = self.shared();
        shared.memo.job_ended(affects, learned);
        shared.running = None;
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
    async fn close(&mut self) {
        self.flush().await;
        self.shared().memo.restart();
        self.conn.take();
    }
}

impl GroupWriter {
    fn start() -> GroupWriter {
        let group = Group::default();
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
                group.lock().await.flush().await;
            }
        });
        w
    }

    /// Asks for the group to commit within [`MEMO_FLUSH_DELAY`], for what
    /// reservations decided on the memo: they do not wait for that commit,
    /// and the group stays open meanwhile, so the reservations after them
    /// decide on the memo too instead of opening a group each.
    fn flush_soon(&self) {
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

    async fn begin(&self, pool: &AnyPool) -> StoreResult<TxInner> {
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

    /// The user's state as the group's transaction holds it, if known and
    /// no running job may change it.
    pub fn recall(&self, user_id: &str, now: DateTime<Utc>) -> Option<memo::Held> {
        if self.shared.busy_with(user_id) {
            return None;
        }
        self.shared.memo.user(user_id, now).cloned()
    }

    /// Takes `holds` for `user_id` (just recalled), whose state is then
    /// `after`. They are written with the group, before the next job or
    /// the commit; no running job reads this user's holds.
    pub fn hold(&mut self, user_id: &str, after: memo::Held, holds: Vec<holds::NewHold>) {
        debug_assert!(!self.shared.busy_with(user_id), "decided beside a job that may change the user");
        let learned = memo::Learned { users: vec![(user_id.to_string(), after)], revision: None };
        self.shared.memo.job_ended(&view::Affects::Users(vec![user_id.to_string()]), learned);
        self.shared.pending_holds.extend(holds);
        self.held_for.push(user_id.to_string());
    }
}

/// A write transaction: dereferences to its connection. On SQLite it is
/// one job of a group commit (see [`GroupWriter`]); on Postgres, its own
/// transaction. Dropping it uncommitted rolls it back.
///
/// It also says what it changes ([`WriteTx::affects`]), so the process's
/// caches of store state drop exactly that when it commits.
pub struct WriteTx {
    inner: TxInner,
    /// What it said it changes; `None`, said nothing: anything.
    affects: Option<view::Affects>,
    view: Arc<view::UsageView>,
    /// What to announce once committed (see [`live`]).
    notices: Vec<live::Change>,
    live: Arc<live::LiveHub>,
    /// SQLite: what the group's memo keeps once this job ends.
    learned: memo::Learned,
}

enum TxInner {
    Own(Transaction<'static, Any>),
    Grouped { group: tokio::sync::OwnedMutexGuard<Group>, flush: FlushOnDrop },
}

/// Wakes the flusher when a group job ends, however it ends: a job dropped
/// uncommitted leaves the group's transaction open, holding SQLite's write
/// lock, until the flusher rolls the job back and ends the group. (Declared
/// after the guard, so it fires once the turn is released.)
struct FlushOnDrop(Arc<tokio::sync::Notify>);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

impl WriteTx {
    /// Narrows what this transaction changes, for the caches (the default,
    /// [`view::Affects::Anything`], forgets every cached entry). Calls add
    /// up; say every user whose subscription, usage or holds it writes.
    pub fn affects(&mut self, a: view::Affects) {
        let said = match self.affects.take() {
            None => a,
            Some(said) => said.and(a),
        };
        if let TxInner::Grouped { group, .. } = &self.inner {
            // Reservations beside this job may decide for other users.
            group.shared().running = Some(said.clone());
        }
        self.affects = Some(said);
    }

    /// A transaction that, until told otherwise, may change anything.
    fn new(inner: TxInner, view: Arc<view::UsageView>, live: Arc<live::LiveHub>) -> WriteTx {
        WriteTx { inner, affects: None, view, notices: Vec::new(), live, learned: Default::default() }
    }

    /// SQLite: the user's state as the write group's transaction holds it,
    /// if the group's memo has it (see [`memo`]); a reservation may decide
    /// on it. Always `None` on PostgreSQL.
    pub fn recall(&self, user_id: &str, now: DateTime<Utc>) -> Option<memo::Held> {
        match &self.inner {
            TxInner::Grouped { group, .. } => group.shared().memo.user(user_id, now).cloned(),
            TxInner::Own(_) => None,
        }
    }

    /// SQLite: the catalog revision the group's transaction holds, if known.
    pub fn recall_revision(&self) -> Option<i64> {
        match &self.inner {
            TxInner::Grouped { group, .. } => group.shared().memo.revision(),
            TxInner::Own(_) => None,
        }
    }

    /// Tells the group's memo, once this job has ended well, the user's
    /// state as this job leaves it. Say it only after the job's last write.
    pub fn learned_user(&mut self, user_id: &str, held: memo::Held) {
        self.learned.users.push((user_id.to_string(), held));
    }

    /// Tells the group's memo the catalog revision this job read.
    pub fn learned_revision(&mut self, revision: i64) {
        self.learned.revision = Some(revision);
    }

    /// Announces, once committed, that this transaction changed `kind` for
    /// `user_id` (the live stream's pages re-read it).
    pub fn notify(&mut self, user_id: &str, kind: live::Kind) {
        let c = live::Change::new(user_id, kind);
        if !self.notices.contains(&c) {
            self.notices.push(c);
        }
    }

    /// Commits; returns once the work is durable. Whatever the outcome (a
    /// failed commit may still have been applied), the caches drop what
    /// this transaction changed before this returns. Then what it changed
    /// is announced: on PostgreSQL by NOTIFY, sent inside the transaction
    /// and delivered by Postgres on commit, to every node.
    pub async fn commit(self) -> StoreResult<()> {
        let WriteTx { mut inner, affects, view, notices, live, learned } = self;
        let affects = affects.unwrap_or_default();
        if let (TxInner::Own(tx), false) = (&mut inner, notices.is_empty())
            && let Err(e) = Self::send_notices(tx, &live, &notices).await
        {
            view.forget(&affects);
            return Err(e);
        }
        let grouped = matches!(inner, TxInner::Grouped { .. });
        let outcome = Self::commit_inner(inner, &affects, learned).await;
        view.forget(&affects);
        if grouped && outcome.is_ok() {
            live.publish(notices);
        }
        outcome
    }

    /// Commits without waiting for the work to be durable, for writes a
    /// crash may lose harmlessly: a reservation's holds only keep room for
    /// calls in flight, and expire by themselves; the calls' events are
    /// recorded durably on their own. The work is visible to the next
    /// writer at once (SQLite: the same group transaction; PostgreSQL:
    /// committed with `synchronous_commit = off`, which skips only the wait
    /// for the WAL flush). On SQLite the caches drop what it changed again
    /// once its group has committed, and it is announced then.
    /// Begin it with [`Store::begin_unsynced`]: on PostgreSQL that is what
    /// turns the flush wait off.
    pub async fn commit_unsynced(self) -> StoreResult<()> {
        if let TxInner::Own(_) = &self.inner {
            return self.commit().await;
        }
        let WriteTx { inner, affects, view, notices, live, learned } = self;
        let affects = affects.unwrap_or_default();
        let TxInner::Grouped { mut group, flush } = inner else { unreachable!("handled above") };
        group.end_job(&affects, learned);
        let mut done = group.done.as_ref().expect("an open group has waiters").subscribe();
        drop(group);
        drop(flush);
        view.forget(&affects);
        tokio::spawn(async move {
            let committed = matches!(done.wait_for(Option::is_some).await.map(|o| o.clone()), Ok(Some(Ok(()))));
            // A reader may have refilled the caches from before the commit.
            view.forget(&affects);
            if committed {
                live.publish(notices);
            }
        });
        Ok(())
    }

    async fn send_notices(
        tx: &mut Transaction<'static, Any>,
        live: &live::LiveHub,
        notices: &[live::Change],
    ) -> StoreResult<()> {
        for payload in live::payloads(notices) {
            sqlx::query("SELECT pg_notify($1, $2)").bind(live.channel()).bind(payload).execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn commit_inner(inner: TxInner, affects: &view::Affects, learned: memo::Learned) -> StoreResult<()> {
        match inner {
            TxInner::Own(tx) => tx.commit().await?,
            TxInner::Grouped { mut group, flush } => {
                group.end_job(affects, learned);
                let mut done = group.done.as_ref().expect("an open group has waiters").subscribe();
                drop(group);
                drop(flush);
                let outcome = done.wait_for(Option::is_some).await.map(|o| o.clone().expect("is some"));
                match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(StoreError::Group(e)),
                    // The flusher is gone (the runtime is shutting down).
                    Err(_) => return Err(StoreError::Group(Arc::new(sqlx::Error::WorkerCrashed.into()))),
                }
            }
        }
        Ok(())
    }

    pub async fn rollback(self) -> StoreResult<()> {
        match self.inner {
            TxInner::Own(tx) => tx.rollback().await?,
            TxInner::Grouped { mut group, .. } => group.undo_job().await?,
        }
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        match &self.inner {
            TxInner::Own(tx) => tx,
            TxInner::Grouped { group, .. } => group.conn.as_deref().expect("a group job runs in the open transaction"),
        }
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match &mut self.inner {
            TxInner::Own(tx) => tx,
            TxInner::Grouped { group, .. } => group.conn(),
        }
    }
}

/// SQLite in `process` durability: syncs the log every `every` with a
/// passive checkpoint (which syncs the log, copies what no reader needs
/// into the database file and syncs that, without blocking writers), until
/// the pool closes.
async fn sync_log_every(pool: AnyPool, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "syncing the write-ahead log failed; will retry");
        }
    }
}

/// Hides a password in a connection URL for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// For SQLite file URLs: make sure the directory exists and ask for
/// create-if-missing (`mode=rwc`) unless the URL chose a mode.
fn prepare_sqlite_url(url: &str) -> StoreResult<String> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:"
        && !path.is_empty()
        && let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Config(format!("cannot create directory {}: {e}", dir.display())))?;
    }
    Ok(if query.contains("mode=") {
        url.to_string()
    } else if query.is_empty() {
        format!("{url}?mode=rwc")
    } else {
        format!("{url}&mode=rwc")
    })
}

impl Store {
    /// Connects and configures every connection. Does not migrate.
    pub async fn connect(url: &str, opts: StoreOptions) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_string(),
        };
        let connect_opts = AnyConnectOptions::from_str(&url)?;
        let schema = opts.schema.clone();
        let durability = opts.durability;
        if let (Backend::Postgres, Some(s)) = (backend, &schema) {
            if !valid_schema_name(s) {
                return Err(StoreError::Config(format!("schema name `{s}` must be 1-63 of a-z, 0-9 and _")));
            }
            let mut conn = sqlx::AnyConnection::connect_with(&connect_opts).await?;
            conn.execute(format!("CREATE SCHEMA IF NOT EXISTS \"{s}\"").as_str()).await?;
            conn.close().await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(opts.max_connections)
            .acquire_timeout(opts.acquire_timeout)
            // sqlx pings a connection before every use by default: a round
            // trip (on SQLite a hop to its thread) in front of every
            // statement batch. Only a PostgreSQL connection idle long
            // enough for the server to have gone away and back is tested
            // first; one cut in use fails its request with 503 (store
            // unavailable) and is closed when released, as sqlx pings it
            // then.
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                Box::pin(async move {
                    if backend == Backend::Postgres && meta.idle_for >= PING_IF_IDLE_FOR {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                let schema = schema.clone();
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => {
                            // WAL for concurrent readers; FULL sync so an
                            // acknowledged event survives power loss too,
                            // NORMAL when a process crash is the bound.
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                match durability {
                                    Durability::Power => "PRAGMA synchronous = FULL",
                                    Durability::Process => "PRAGMA synchronous = NORMAL",
                                },
                                "PRAGMA foreign_keys = ON",
                                "PRAGMA busy_timeout = 15000",
                            ] {
                                conn.execute(pragma).await?;
                            }
                        }
                        Backend::Postgres => {
                            if let Some(s) = schema {
                                conn.execute(format!("SET search_path TO \"{s}\"").as_str()).await?;
                            }
                            if durability == Durability::Process {
                                conn.execute("SET synchronous_commit = off").await?;
                            }
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(connect_opts)
            .await?;
        let group = (backend == Backend::Sqlite).then(GroupWriter::start);
        if backend == Backend::Sqlite && opts.durability == Durability::Process {
            tokio::spawn(sync_log_every(pool.clone(), PROCESS_SYNC_EVERY));
        }
        Ok(Store {
            pool,
            backend,
            group,
            view: Arc::new(view::UsageView::new(opts.cache_ttl)),
            live: Arc::new(live::LiveHub::new(opts.schema.as_deref(), backend == Backend::Sqlite)),
            listen_url: (backend == Backend::Postgres).then(|| Secret(url.as_str().into())),
        })
    }

    /// Applies pending migrations for this backend.
    pub async fn migrate(&self) -> StoreResult<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The process's copy of what the check-only gate reads.
    pub fn view(&self) -> &view::UsageView {
        &self.view
    }

    /// Begins a write transaction. On SQLite it joins the open write group
    /// (see [`GroupWriter`]) when its turn comes; the group's transaction
    /// began `IMMEDIATE`, taking the write lock at once, so no read-to-write
    /// upgrade can fail. Never begin a second write transaction while
    /// holding one: on SQLite that waits for itself.
    pub async fn begin(&self) -> StoreResult<WriteTx> {
        self.begin_as("BEGIN").await
    }

    /// [`Store::begin`] for work to be committed with
    /// [`WriteTx::commit_unsynced`]. On PostgreSQL the transaction begins
    /// with `SET LOCAL synchronous_commit = off` sent with its `BEGIN`, in
    /// one round trip.
    pub async fn begin_unsynced(&self) -> StoreResult<WriteTx> {
        self.begin_as("BEGIN; SET LOCAL synchronous_commit = off").await
    }

    /// A write transaction; on PostgreSQL begun by `statement`.
    async fn begin_as(&self, statement: &'static str) -> StoreResult<WriteTx> {
        let inner = match &self.group {
            Some(w) => w.begin(&self.pool).await?,
            None => TxInner::Own(self.pool.begin_with(statement).await?),
        };
        Ok(WriteTx::new(inner, self.view.clone(), self.live.clone()))
    }

    /// SQLite: runs `f` on the write group's memo alone, with no statement
    /// of its own: a reservation decided there costs no round trip to
    /// SQLite's thread. While the group is open it runs at once, beside
    /// whatever job runs, and the memo answers only for users that job
    /// leaves alone (see [`MemoJob::recall`]); otherwise it waits for a
    /// turn of the group and opens it. Its holds are written with
    /// the group, and, like [`WriteTx::commit_unsynced`], it does not wait
    /// for that commit; the caches drop the users it held for at once and
    /// again once the group has committed. `None` on PostgreSQL, which has
    /// no memo.
    pub async fn in_memo<T>(&self, f: impl FnOnce(&mut MemoJob<'_>) -> T) -> StoreResult<Option<T>> {
        let Some(w) = &self.group else { return Ok(None) };
        let mut f = Some(f);
        // While the group is open, at once, beside whatever job runs. Else
        // when a group next opens: by this call, in a turn of the group, or
        // by the job ahead of it in the queue (then beside that job).
        let (out, held_for, done) = loop {
            let opened = w.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            {
                let mut shared = w.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if shared.open {
                    break shared.decide(f.take().expect("decided once"));
                }
            }
            tokio::select! {
                mut g = w.group.lock() => {
                    g.recover().await;
                    if !g.open {
                        g.open(&self.pool).await?;
                    }
                    let mut shared = g.shared();
                    break shared.decide(f.take().expect("decided once"));
                }
                () = &mut opened => {}
            }
        };
        // The group commits soon, and gives the write lock back.
        w.flush_soon();
        if !held_for.is_empty() {
            let affects = view::Affects::Users(held_for);
            self.view.forget(&affects);
            if let Some(mut done) = done {
                let view = self.view.clone();
                tokio::spawn(async move {
                    done.wait_for(Option::is_some).await.ok();
                    // A reader may have refilled the view from before the commit.
                    view.forget(&affects);
                });
            }
        }
        Ok(Some(out))
    }

    /// Returns once every write committed so far, unsynced ones included
    /// ([`WriteTx::commit_unsynced`]), is durable and visible to every
    /// connection: an empty write whose group commits after theirs.
    pub async fn settled(&self) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.affects(view::Affects::NothingCached);
        tx.commit().await
    }

    /// Whether the store answers a trivial query.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Waits for checked-out connections and closes the pool (SQLite then
    /// checkpoints its WAL).
    /// The announcements of committed changes.
    pub fn live(&self) -> &Arc<live::LiveHub> {
        &self.live
    }

    /// PostgreSQL: starts hearing other nodes' announcements (see
    /// [`live::listen`]); a server calls this once. SQLite: nothing to do.
    pub fn start_live(&self) {
        if let Some(url) = &self.listen_url {
            tokio::spawn(live::listen(url.0.to_string(), self.live.clone(), self.view.clone()));
        }
    }

    pub async fn close(&self) {
        self.live.close();
        if let Some(w) = &self.group {
            w.group.lock().await.close().await;
        }
        self.pool.close().await;
    }
}

/// Lower-case identifiers only, so quoting cannot be escaped.
pub fn valid_schema_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Drops a Postgres schema and everything in it (test clean-up).
pub async fn drop_schema(url: &str, schema: &str) -> StoreResult<()> {
    if !valid_schema_name(schema) {
        return Err(StoreError::Config(format!("bad schema name `{schema}`")));
    }
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    // Never wait forever behind a connection a failed test left busy.
    conn.execute("SET lock_timeout = '10s'").await?;
    conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str()).await?;
    conn.close().await?;
    Ok(())
}

/// Bind placeholders for a statement built at run time, in bind order:
/// `$1, $2, ...` on Postgres, anonymous `?` on SQLite.
///
/// Why not `$n` everywhere: for each bind, sqlx asks SQLite the
/// parameter's name to learn its number, and SQLite finds a name by a
/// linear search of the statement's parameter list, so binding n named
/// parameters costs O(n²). At a 500-row insert (13,500 binds) that was
/// about 0.4 s per execution, the whole of a batched-ingest regression.
/// Anonymous `?` are bound by position.
pub struct Placeholders {
    numbered: bool,
    next: usize,
}

impl Placeholders {
    /// Placeholders in the dialect of the connection's backend.
    pub fn for_conn(conn: &sqlx::AnyConnection) -> Placeholders {
        Placeholders { numbered: conn.backend_name() != "SQLite", next: 0 }
    }

    /// Appends the next placeholder to `sql`.
    pub fn push(&mut self, sql: &mut String) {
        self.next += 1;
        if self.numbered {
            sql.push('$');
            sql.push_str(&self.next.to_string());
        } else {
            sql.push('?');
        }
    }

    /// Appends `(p, p, ..., p)`: a row of `n` placeholders.
    pub fn push_row(&mut self, sql: &mut String, n: usize) {
        sql.push('(');
        for c in 0..n {
            if c > 0 {
                sql.push_str(", ");
            }
            self.push(sql);
        }
        sql.push(')');
    }
}

/// Unix milliseconds of an instant.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The instant of unix milliseconds.
pub fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// A user id read back from column `col`; a malformed one is corruption.
pub(crate) fn user_id_at(r: &sqlx::any::AnyRow, col: &str) -> StoreResult<crate::domain::identity::UserId> {
    use sqlx::Row;
    let raw: String = r.try_get(col)?;
    crate::domain::identity::UserId::parse(&raw).map_err(|e| StoreError::Corrupt(format!("{col} `{raw}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(Backend::from_url("sqlite://data/tally.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::from_url("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert!(Backend::from_url("mysql://x").is_err());
        assert_eq!(redact_url("postgres://user:secret@host/db"), "postgres://user:***@host/db");
        assert_eq!(redact_url("postgres://user@host/db"), "postgres://user@host/db");
        assert_eq!(prepare_sqlite_url("sqlite::memory:").unwrap(), "sqlite::memory:?mode=rwc");
        assert_eq!(prepare_sqlite_url("sqlite://x.db?mode=ro").unwrap(), "sqlite://x.db?mode=ro");
    }

    /// `power` waits for the disk on every commit, `process` for the log
    /// alone, on every connection of the pool.
    #[tokio::test]
    async fn durability_sets_how_every_connection_commits() {
        for (durability, sqlite_sync, pg_commit) in [(Durability::Power, 2, "on"), (Durability::Process, 1, "off")] {
            let opts = StoreOptions { durability, max_connections: 3, ..StoreOptions::default() };
            let path = std::env::temp_dir().join(format!("tally-durability-{}.db", uuid::Uuid::new_v4().simple()));
            let store = Store::connect(&format!("sqlite://{}", path.display()), opts.clone()).await.unwrap();
            let mut conns = Vec::new();
            for _ in 0..3 {
                let mut conn = store.pool().acquire().await.unwrap();
                let sync: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *conn).await.unwrap();
                assert_eq!(sync, sqlite_sync, "{durability:?}");
                conns.push(conn);
            }
            drop(conns);
            store.close().await;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            if std::env::var("TALLY_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
                continue;
            }
            let url = std::env::var("TEST_DATABASE_URL")
                .unwrap_or_else(|_| crate::server::testing::DEFAULT_TEST_DATABASE_URL.into());
            let store = Store::connect(&url, opts).await.unwrap();
            let mut conn = store.pool().acquire().await.unwrap();
            let commit: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&mut *conn).await.unwrap();
            // `power` leaves the server's own setting, `on` here.
            assert_eq!(commit, pg_commit, "{durability:?}");
            drop(conn);
            store.close().await;
        }
    }
}
