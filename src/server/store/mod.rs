//! Storage: one sqlx `Any` pool over SQLite (embedded default) or PostgreSQL,
//! chosen by the URL scheme, with one set of runtime queries for both.
//!
//! The schema keeps both dialects column-for-column identical (see
//! `migrations/`): instants are unix milliseconds, money is integer nanos,
//! prices are decimal text and flags are 0/1 integers, which are exactly the
//! types the `Any` driver maps faithfully on both. SQL here must stay in the
//! common subset (`$n` binds, `ON CONFLICT`, `RETURNING`, `CAST(.. AS BIGINT)`
//! around aggregates, since Postgres sums BIGINT into NUMERIC).
//!
//! Concurrency: every transaction that changes a user's usage starts with
//! [`lock_user`], an UPDATE of the user's subscription row. On Postgres that
//! row lock serialises writers per user; on SQLite every write transaction
//! begins `IMMEDIATE`, taking the database write lock up front (no
//! read-to-write upgrade that could fail), and `busy_timeout` queues the
//! others.

pub mod alerts;
pub mod bills;
pub mod catalog;
pub mod events;
pub mod holds;
pub mod keys;
pub mod rollups;
#[cfg(test)]
mod schema_tests;
pub mod sessions;
pub mod users;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Connection, Executor, Transaction};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

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
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { max_connections: 10, acquire_timeout: Duration::from_secs(10), schema: None }
    }
}

/// The application's handle on the database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: the process's writers take turns here, first come first
    /// served, before they begin. SQLite admits one writer at a time
    /// anyway; without this queue the others would poll the file lock in
    /// the busy handler, which sleeps up to 100 ms between tries, and that
    /// sleeping was the whole of the write paths' tail latency. The busy
    /// handler stays as the fallback for other processes on the same file
    /// (`tally seed` beside a server).
    write_turn: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// A write transaction: dereferences to the sqlx transaction, and on
/// SQLite holds the process's write turn until it commits or is dropped.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> StoreResult<()> {
        self.tx.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> StoreResult<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
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
            .after_connect(move |conn, _meta| {
                let schema = schema.clone();
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => {
                            // WAL for concurrent readers; FULL sync so an
                            // acknowledged event survives power loss too.
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = FULL",
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
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(connect_opts)
            .await?;
        let write_turn = (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Store { pool, backend, write_turn })
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

    /// Begins a write transaction. On SQLite it first waits for the
    /// process's write turn, then takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a transaction that read first and wrote later would
    /// otherwise fail, not wait, when another writer got in between. Never
    /// begin a second write transaction while holding one: on SQLite that
    /// waits for itself.
    pub async fn begin(&self) -> StoreResult<WriteTx> {
        Ok(match &self.write_turn {
            Some(turn) => {
                let turn = turn.clone().lock_owned().await;
                WriteTx { tx: self.pool.begin_with("BEGIN IMMEDIATE").await?, _turn: Some(turn) }
            }
            None => WriteTx { tx: self.pool.begin().await?, _turn: None },
        })
    }

    /// Whether the store answers a trivial query.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Waits for checked-out connections and closes the pool (SQLite then
    /// checkpoints its WAL).
    pub async fn close(&self) {
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

/// Takes the per-user write lock for the rest of the transaction; returns
/// false when the user has no subscription row (no such user).
pub async fn lock_user(tx: &mut WriteTx, user_id: &str) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE subscriptions SET lock_version = lock_version + 1 WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected() == 1)
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
}
