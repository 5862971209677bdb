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
mod group;

#[cfg(test)]
mod group_tests;

pub mod holds;

pub mod insights;

pub mod keys;

pub mod live;

pub mod memo;

pub mod node_stats;

pub mod one_server;

pub mod response_times;
pub mod rollups;

#[cfg(test)]
mod schema_tests;

pub mod sessions;
mod sql;
mod tx;
mod wal_sync;

pub mod users;

pub mod view;

pub mod wallet;

pub mod webhooks;

use crate::domain::identity::UserId;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Executor, Transaction};

use self::group::*;
pub use self::sql::*;
pub use self::tx::*;
use self::wal_sync::WalSyncer;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

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
    /// SQLite: the write group commits to the log and a thread of its own
    /// then syncs the log, covering every group committed since its last
    /// sync ([`wal_sync`]); other connections commit with `synchronous =
    /// FULL`. PostgreSQL commits with its own `synchronous_commit`. The
    /// proxy's record of a call it answered is the one exception: it is
    /// acknowledged once in the log ([`WriteTx::commit_written`]).
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

/// The database file a SQLite URL names; `None` for PostgreSQL and for an
/// in-memory database. The one reading of a SQLite URL's path: connecting,
/// the serving lock and the default secret-key file all use it.
pub fn sqlite_file(database_url: &str) -> Option<std::path::PathBuf> {
    let path = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// For SQLite file URLs: make sure the directory exists and ask for
/// create-if-missing (`mode=rwc`) unless the URL chose a mode.
fn prepare_sqlite_url(url: &str) -> StoreResult<String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    if let Some(dir) = sqlite_file(url).as_deref().and_then(Path::parent).filter(|d| !d.as_os_str().is_empty()) {
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
        // `power` on a database file: the log is synced apart from the
        // commits (see [`wal_sync`]).
        let syncer = match (backend, durability, sqlite_file(&url)) {
            (Backend::Sqlite, Durability::Power, Some(file)) => Some(
                WalSyncer::start(&file)
                    .map_err(|e| StoreError::Config(format!("cannot start the write-ahead log's syncer: {e}")))?,
            ),
            _ => None,
        };
        let group = (backend == Backend::Sqlite).then(|| GroupWriter::start(pool.clone(), syncer));
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
        let ((out, held_for, done), opened_here) = loop {
            let opened = w.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            {
                let mut shared = w.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if shared.open {
                    break (shared.decide(f.take().expect("decided once")), false);
                }
            }
            tokio::select! {
                mut g = w.group.lock() => {
                    g.recover().await;
                    let opened_here = !g.open;
                    if opened_here {
                        g.open(&self.pool).await?;
                    }
                    let mut shared = g.shared();
                    break (shared.decide(f.take().expect("decided once")), opened_here);
                }
                () = &mut opened => {}
            }
        };
        // The group commits soon: it writes the holds, and gives back the
        // write lock this call may have taken.
        if opened_here || !held_for.is_empty() {
            w.flush_soon();
        }
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

    /// SQLite: `f` on the write group's memo if a group holds the write
    /// lock now (so the memo is exact), without waiting; `None` otherwise
    /// and on PostgreSQL. For reads that promise nothing (a check without
    /// a reservation).
    pub fn peek_memo<T>(&self, f: impl FnOnce(&MemoJob<'_>) -> T) -> Option<T> {
        let w = self.group.as_ref()?;
        let mut shared = w.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !shared.open {
            return None;
        }
        Some(shared.decide(|m| f(m)).0)
    }

    /// SQLite: the user's state as the write group's memo holds it, if it
    /// does (without waiting for the group).
    #[cfg(test)]
    pub fn memo_user(&self, user_id: &UserId, now: DateTime<Utc>) -> Option<memo::Held> {
        let w = self.group.as_ref()?;
        let shared = w.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        shared.memo.user(user_id, now).cloned()
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
    /// alone, on every connection of the pool; in `power` the write
    /// group's commits are synced by the log's syncer, and a commit
    /// returns only once its group is synced.
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
            let syncer = match &store.group {
                Some(w) => w.group.lock().await.syncer.clone(),
                None => None,
            };
            assert_eq!(syncer.is_some(), durability == Durability::Power);
            for _ in 0..3 {
                let mut tx = store.begin().await.unwrap();
                tx.affects(view::Affects::NothingCached);
                sqlx::query("CREATE TABLE IF NOT EXISTS t (x INTEGER)").execute(&mut *tx).await.unwrap();
                sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *tx).await.unwrap();
                let before = syncer.as_ref().map(|s| s.synced_upto());
                tx.commit().await.unwrap();
                if let (Some(s), Some(before)) = (&syncer, before) {
                    assert!(s.synced_upto() > before, "a commit returned before its group was synced");
                }
            }
            store.close().await;
            crate::server::testing::remove_sqlite_files(&path);
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
