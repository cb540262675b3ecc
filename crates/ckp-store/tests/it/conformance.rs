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
