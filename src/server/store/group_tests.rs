//! Write transactions: on SQLite they are jobs of one group commit (see
//! `GroupWriter`), on Postgres each its own transaction; either way each
//! commits or rolls back alone, and a commit returns only once the work is
//! visible to every other connection.

use sqlx::Row;

use super::{Store, WriteTx};
use crate::both_stores;
use crate::server::testing::uid;

async fn insert(tx: &mut WriteTx, name: &str, state: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO seed_runs (name, state, started_at) VALUES ($1, $2, 0)")
        .bind(name)
        .bind(state)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

async fn names(store: &Store) -> Vec<String> {
    sqlx::query("SELECT name FROM seed_runs ORDER BY name")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("name").unwrap())
        .collect()
}

/// Jobs running side by side: one commits, one fails a statement and is
/// dropped, one rolls back, one is dropped untouched, one commits after all
/// of them. Exactly the committed jobs' rows remain.
async fn write_jobs_stand_alone(store: Store) {
    let job = |store: Store, name: &'static str| async move {
        let mut tx = store.begin().await.unwrap();
        insert(&mut tx, name, "done").await.unwrap();
        match name {
            "a" | "e" => tx.commit().await.unwrap(),
            "b" => {
                // A CHECK violation: the statement fails, the job gives up.
                assert!(insert(&mut tx, "b2", "bogus").await.is_err());
                drop(tx);
            }
            "c" => tx.rollback().await.unwrap(),
            _ => drop(tx),
        }
    };
    let tasks: Vec<_> = ["a", "b", "c", "d"].into_iter().map(|n| tokio::spawn(job(store.clone(), n))).collect();
    for t in tasks {
        t.await.unwrap();
    }
    job(store.clone(), "e").await;
    assert_eq!(names(&store).await, ["a", "e"]);
}
both_stores!(write_jobs_stand_alone, write_jobs_stand_alone);

/// Many concurrent writers: each commit returns only once its row is
/// visible to another connection, and every row is there once.
async fn commits_are_visible_when_they_return(store: Store) {
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let name = format!("job-{i:02}");
                let mut tx = store.begin().await.unwrap();
                insert(&mut tx, &name, "done").await.unwrap();
                tx.commit().await.unwrap();
                let seen: i64 = sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM seed_runs WHERE name = $1")
                    .bind(&name)
                    .fetch_one(store.pool())
                    .await
                    .unwrap()
                    .try_get("n")
                    .unwrap();
                assert_eq!(seen, 1, "{name} was acknowledged but another connection cannot see it");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(names(&store).await, (0..64).map(|i| format!("job-{i:02}")).collect::<Vec<_>>());
}
both_stores!(commits_are_visible_when_they_return, commits_are_visible_when_they_return);

/// A job whose future is cancelled mid-way (a client hung up) leaves
/// nothing behind, and the writers after it carry on.
async fn cancelled_job_leaves_nothing(store: Store) {
    let s = store.clone();
    let stuck = tokio::spawn(async move {
        let mut tx = s.begin().await.unwrap();
        insert(&mut tx, "cancelled", "done").await.unwrap();
        std::future::pending::<()>().await;
        tx.commit().await.unwrap();
    });
    // Give it time to write, then cancel it where it waits.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stuck.abort();
    assert!(stuck.await.unwrap_err().is_cancelled());
    let mut tx = store.begin().await.unwrap();
    insert(&mut tx, "after", "done").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(names(&store).await, ["after"]);
}
both_stores!(cancelled_job_leaves_nothing, cancelled_job_leaves_nothing);

/// A write drops from the process's copies exactly what it says it changed,
/// and everything when it says nothing.
async fn a_write_drops_what_it_says_it_changed(store: Store) {
    use super::view::Affects;
    use super::view::tests::{sub, used};
    let now = chrono::Utc::now();
    let fill = |user: &str| {
        let t = store.view().ticket(&uid(user));
        store.view().fill(t, sub(user), used(1), None);
    };
    let write = |affects: Option<Affects>| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            if let Some(a) = affects {
                tx.affects(a);
            }
            tx.commit().await.unwrap();
        }
    };
    fill("u1");
    write(Some(Affects::Users(vec!["u2".into()]))).await;
    write(Some(Affects::NothingCached)).await;
    assert!(store.view().get(&uid("u1"), now).is_some(), "writes naming others leave u1's copy");
    write(Some(Affects::Users(vec!["u1".into()]))).await;
    assert!(store.view().get(&uid("u1"), now).is_none());
    fill("u1");
    write(None).await;
    assert!(store.view().get(&uid("u1"), now).is_none(), "a write that says nothing may have changed anything");
}
both_stores!(a_write_drops_what_it_says_it_changed, a_write_drops_what_it_says_it_changed);

/// Once the store is closing, nothing opens a group again: a write that
/// arrives between the group's close and the pool's (a background task, or
/// the flusher writing holds decided during the last commit) would keep a
/// connection the pool's close waits for, forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_store_opens_no_group() {
    let db = crate::server::testing::TestDb::sqlite().await;
    let store = db.store.clone();
    let w = store.group.as_ref().expect("SQLite has a write group");
    w.group.lock().await.close().await;
    assert!(w.group.lock().await.open(store.pool()).await.is_err(), "a closed group opened again");
    assert!(store.begin().await.is_err(), "a write began on a closed group");
    tokio::time::timeout(std::time::Duration::from_secs(10), store.close()).await.expect("the store closes");
    db.cleanup().await;
}
