//! Test support: a fresh, migrated store per test, on SQLite (a temporary
//! file) or on PostgreSQL (a fresh schema in `TEST_DATABASE_URL`, dropped
//! afterwards), and [`both_stores!`] to run one test body on each.
//!
//! Postgres tests are skipped only when `TALLY_SKIP_POSTGRES=1` (the test
//! command sets it, loudly, when no server answers outside CI); otherwise an
//! unreachable Postgres fails the test.

use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};

use super::service::subscriptions::NewUser;
use super::service::{Engine, EngineConfig};
use super::store::{Store, StoreOptions, drop_schema};
use crate::domain::identity::Role;
use crate::domain::limits::Limits;
use crate::domain::money::{Nanos, Price};
use crate::domain::period::BillingCycle;
use crate::domain::plan::{Plan, Tier};
use crate::domain::pricing::{ClassRates, PriceVersion, Rates};
use crate::domain::provider::Provider;

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A migrated store that cleans up after itself via [`TestDb::cleanup`].
pub struct TestDb {
    pub store: Store,
    sqlite_file: Option<PathBuf>,
    pg_schema: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let path = std::env::temp_dir().join(format!("tally-test-{}.db", uuid::Uuid::new_v4()));
        let store = Store::connect(&format!("sqlite://{}", path.display()), StoreOptions::default())
            .await
            .expect("open sqlite");
        store.migrate().await.expect("migrate sqlite");
        TestDb { store, sqlite_file: Some(path), pg_schema: None }
    }

    /// `None` when Postgres tests are skipped for this run.
    pub async fn postgres() -> Option<TestDb> {
        if std::env::var("TALLY_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
            return None;
        }
        let url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.into());
        let schema = format!("tally_test_{}", uuid::Uuid::new_v4().simple());
        let opts = StoreOptions { schema: Some(schema.clone()), max_connections: 20, ..StoreOptions::default() };
        let store = Store::connect(&url, opts)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {url} is unreachable ({e}); set TALLY_SKIP_POSTGRES=1 to skip"));
        store.migrate().await.expect("migrate postgres");
        Some(TestDb { store, sqlite_file: None, pg_schema: Some((url, schema)) })
    }

    /// The Postgres schema this database lives in, if it is one.
    pub fn schema(&self) -> Option<&str> {
        self.pg_schema.as_ref().map(|(_, s)| s.as_str())
    }

    pub async fn cleanup(mut self) {
        self.store.close().await;
        if let Some(p) = self.sqlite_file.take() {
            remove_sqlite_files(&p);
        }
        if let Some((url, schema)) = self.pg_schema.take()
            && let Err(e) = drop_schema(&url, &schema).await
        {
            eprintln!("could not drop test schema {schema}: {e}");
        }
    }
}

/// Removes a SQLite database file with its WAL and shared-memory files.
pub fn remove_sqlite_files(p: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
}

/// A test that panicked never reaches [`TestDb::cleanup`]: its database is
/// removed here instead (the Postgres schema from a thread of its own, as
/// `drop` cannot await).
impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(p) = self.sqlite_file.take() {
            remove_sqlite_files(&p);
        }
        if let Some((url, schema)) = self.pg_schema.take() {
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(drop_schema(&url, &schema)).ok()
            })
            .join();
            if !matches!(dropped, Ok(Some(()))) {
                eprintln!("could not drop a test schema after a failed test");
            }
        }
    }
}

/// Runs `body(store)` as two tests, `sqlite` and `postgres`, in a module
/// named like the test.
#[macro_export]
macro_rules! both_stores {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let db = $crate::server::testing::TestDb::sqlite().await;
                super::$body(db.store.clone()).await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(db) = $crate::server::testing::TestDb::postgres().await {
                    super::$body(db.store.clone()).await;
                    db.cleanup().await;
                }
            }
        }
    };
}

pub fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).single().expect("valid date")
}

/// A user id for a test; panics on a malformed one.
pub fn uid(s: &str) -> crate::domain::identity::UserId {
    crate::domain::identity::UserId::parse(s).expect("valid user id")
}

pub fn price(s: &str) -> Option<Price> {
    Some(Price::parse(s).expect("valid price"))
}

/// An engine over `store` with a small catalog: a plan "Test" (limits as
/// given), gemini-2.5-pro at $1.25/$10 per 1M ($0.3125 cached), tavily at
/// $0.001 per search, all in force from `since`.
/// The engine's settings in tests: the defaults, except that webhooks may
/// go to loopback, where the tests' receivers listen.
pub fn test_config() -> EngineConfig {
    EngineConfig { webhook_allow_private: true, ..EngineConfig::default() }
}

pub async fn engine_with_catalog(store: Store, limits: Limits, since: DateTime<Utc>) -> (Engine, i64) {
    use super::store::catalog;
    let engine = Engine::new(store.clone(), test_config());
    let mut tx = store.begin().await.expect("begin");
    let plan = Plan {
        id: 0,
        name: "Test".into(),
        tier: Tier::Pro,
        price_monthly: Nanos::from_usd(79),
        price_yearly: Nanos::from_usd(790),
        description: String::new(),
        features: vec![],
        limits,
        archived: false,
        credits: Default::default(),
    };
    let plan_id = catalog::insert_plan(&mut tx, &plan, since).await.expect("plan");
    let versions = [
        (
            "gemini",
            "gemini-2.5-pro",
            Rates::from(ClassRates {
                input_per_million: price("1.25"),
                output_per_million: price("10"),
                cached_input_per_million: price("0.3125"),
                ..ClassRates::default()
            }),
        ),
        ("tavily", "*", Rates::from(ClassRates { per_search: price("0.001"), ..ClassRates::default() })),
    ];
    for (p, m, rates) in versions {
        let v = PriceVersion {
            id: 0,
            provider: Provider::parse(p).expect("valid"),
            model: m.into(),
            effective_from: since,
            rates,
            description: String::new(),
            max_output_tokens: None,
        };
        catalog::insert_price_version(&mut tx, &v, None, since).await.expect("price");
    }
    tx.commit().await.expect("commit");
    (engine, plan_id)
}

/// Creates user `id` on `plan_id`, monthly, anchored at `at`.
pub async fn user_on_plan(engine: &Engine, id: &str, plan_id: i64, at: DateTime<Utc>) {
    engine
        .create_user(
            NewUser {
                id: Some(crate::domain::identity::UserId::parse(id).expect("test user id")),
                email: crate::domain::identity::Email::parse(&format!("{id}@example.test")).expect("test email"),
                name: id.into(),
                role: Role::User,
                password_hash: None,
                plan: Some((plan_id, BillingCycle::Monthly)),
                timezone: None,
            },
            at,
        )
        .await
        .expect("create user");
}
