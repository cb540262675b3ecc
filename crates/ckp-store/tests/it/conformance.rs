//! The store conformance suite (`ckp_store::conformance::CHECKS`) on SQLite: every check on a fresh database.

use std::sync::Arc;

use ckp_store::{SqliteOptions, SqliteStore, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_store_conformance_suite() {
    for (name, check) in ckp_store::conformance::CHECKS {
        let db = crate::temp_db(&format!("conformance-{name}"));
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db, SqliteOptions::default()).expect("opens"));
        check(store).await;
    }
}

/// The database every PostgreSQL test uses (each test creates a schema of its own there).
pub(crate) fn pg_test_url() -> String {
    std::env::var("CKP_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_store_conformance_suite() {
    for (name, check) in ckp_store::conformance::CHECKS {
        let url = ckp_store::PgStore::create_schema(&pg_test_url(), &format!("conformance_{name}"))
            .await
            .expect("PostgreSQL must be running on 127.0.0.1:5432 (or set CKP_TEST_DATABASE_URL)");
        let store: Arc<dyn Store> =
            Arc::new(ckp_store::PgStore::connect(&url, ckp_store::PgOptions::default()).await.expect("connects"));
        check(store).await;
    }
}
