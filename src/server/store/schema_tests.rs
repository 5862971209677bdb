//! The two migration sets must build the same tables with the same
//! columns (one query set serves both stores): compared after migrating a
//! fresh SQLite file and a fresh Postgres schema.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::server::testing::TestDb;

type Tables = BTreeMap<String, Vec<(String, bool)>>;

/// Table → (column, nullable), columns sorted by name; sqlx's own
/// bookkeeping table left out.
async fn sqlite_tables(db: &TestDb) -> Tables {
    let names = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
    )
    .fetch_all(db.store.pool())
    .await
    .unwrap();
    let mut out = Tables::new();
    for n in names {
        let table: String = n.try_get("name").unwrap();
        let cols = sqlx::query(&format!("SELECT name, \"notnull\" AS nn, pk FROM pragma_table_info('{table}')"))
            .fetch_all(db.store.pool())
            .await
            .unwrap();
        let mut cols: Vec<(String, bool)> = cols
            .iter()
            .map(|c| {
                let nn: i64 = c.try_get("nn").unwrap();
                let pk: i64 = c.try_get("pk").unwrap();
                (c.try_get::<String, _>("name").unwrap(), nn == 0 && pk == 0)
            })
            .collect();
        cols.sort();
        out.insert(table, cols);
    }
    out
}

async fn postgres_tables(db: &TestDb, schema: &str) -> Tables {
    let rows = sqlx::query(
        "SELECT CAST(table_name AS TEXT) AS table_name, CAST(column_name AS TEXT) AS column_name,
         CAST(is_nullable AS TEXT) AS is_nullable FROM information_schema.columns
         WHERE table_schema = $1 AND table_name NOT LIKE '_sqlx%' ORDER BY table_name, column_name",
    )
    .bind(schema)
    .fetch_all(db.store.pool())
    .await
    .unwrap();
    let mut out = Tables::new();
    for r in rows {
        let t: String = r.try_get("table_name").unwrap();
        let c: String = r.try_get("column_name").unwrap();
        let nullable: String = r.try_get("is_nullable").unwrap();
        out.entry(t).or_default().push((c, nullable == "YES"));
    }
    for cols in out.values_mut() {
        cols.sort();
    }
    out
}

#[tokio::test]
async fn both_migration_sets_build_the_same_tables_and_columns() {
    let lite = TestDb::sqlite().await;
    let sqlite = sqlite_tables(&lite).await;
    lite.cleanup().await;
    let Some(pg) = TestDb::postgres().await else { return };
    let schema = pg.schema().expect("a postgres test db has a schema").to_string();
    let postgres = postgres_tables(&pg, &schema).await;
    pg.cleanup().await;
    assert!(sqlite.len() >= 15, "{sqlite:?}");
    assert_eq!(sqlite.keys().collect::<Vec<_>>(), postgres.keys().collect::<Vec<_>>(), "the same tables");
    for (table, cols) in &sqlite {
        assert_eq!(Some(cols), postgres.get(table), "columns (name, nullable) of `{table}`");
    }
}

/// The lookups of unpriced events read the partial index that holds only
/// them (migration 0014), not the table of every event.
#[tokio::test]
async fn the_unpriced_lookups_read_the_index_of_unpriced_events() {
    use crate::server::store::events::{UNPRICED_LEFT_SQL, UNPRICED_MODELS_SQL, unpriced_events_sql};
    let db = TestDb::sqlite().await;
    for sql in [UNPRICED_MODELS_SQL.to_string(), UNPRICED_LEFT_SQL.to_string(), unpriced_events_sql()] {
        let plan = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}")).fetch_all(db.store.pool()).await.unwrap();
        let steps: Vec<String> = plan.iter().map(|r| r.try_get("detail").unwrap()).collect();
        assert!(steps.iter().any(|s| s.contains("usage_events_unpriced_only")), "{sql}\n{steps:?}");
    }
    db.cleanup().await;
}
