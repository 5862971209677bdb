use super::*;
use crate::both_stores;
use crate::server::store::Store;

/// The load seed records every event once, through the engine (so the
/// rollups, which every read uses, agree with the events), and a rerun
/// adds nothing.
async fn load_seed_records_each_event_once(store: Store) {
    let engine = Engine::new(store.clone(), Default::default());
    let now = Utc::now();
    let first = seed_load(&engine, 2_500, 7, 40, now, |_| ()).await.unwrap();
    assert_eq!((first.events, first.already_there, first.users), (2_500, 0, 7));
    let again = seed_load(&engine, 2_500, 7, 40, now, |_| ()).await.unwrap();
    assert_eq!((again.events, again.already_there), (0, 2_500));
    let mut conn = store.pool().acquire().await.unwrap();
    let events: i64 =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events WHERE user_id LIKE 'load-%'")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    let rolled: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) FROM usage_rollups WHERE user_id LIKE 'load-%'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!((events, rolled), (2_500, 2_500));
    // 40 days cross a period end: no batch was recorded after its
    // period had rolled over.
    let late: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events WHERE late = 1 AND user_id LIKE 'load-%'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(late, 0);
    let bad = seed_load(&engine, 10, 0, 40, now, |_| ()).await;
    assert!(matches!(bad, Err(AppError::Invalid(_))));
}
both_stores!(load_seed_records_each_event_once, load_seed_records_each_event_once);
