//! The catalog: import with diagnostics, conflicts, versions and latest, compile-once caching.

use std::sync::Arc;

use ckp_engine::engine::Procedures;
use ckp_server::catalog::{Catalog, ImportError};
use ckp_store::{ProcedureStatus, ProcedureStore, SqliteOptions, SqliteStore};

fn catalog(name: &str) -> Catalog {
    let dir = std::env::temp_dir().join(format!("ckp-catalog-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Catalog::new(Arc::new(SqliteStore::open(dir.join("ckp.db"), SqliteOptions::default()).expect("opens")))
}

fn doc(version: &str, extra_node: &str) -> String {
    format!(
        r#"{{"procedure_id": "p", "version": "{version}", "status": "active", "workflow_graph": {{"start_node": "end", "nodes": {{"end": {{"type": "terminate"}}{extra_node}}}}}}}"#
    )
}

#[tokio::test]
async fn import_stores_versions_and_refuses_duplicates() {
    let c = catalog("import");
    let (record, warnings) = c.import(&doc("1.0.0", ""), Some("proj".into())).await.expect("imports");
    assert_eq!(
        (record.procedure_id.as_str(), record.version.as_str(), record.status.as_str()),
        ("p", "1.0.0", "active")
    );
    assert!(warnings.is_empty());
    let (_, warnings) = c.import(&doc("2.0.0", r#", "orphan": {"type": "terminate"}"#), None).await.expect("imports");
    assert_eq!(warnings.len(), 1, "warnings come back with the created procedure");
    match c.import(&doc("1.0.0", ""), None).await {
        Err(ImportError::Conflict(m)) => assert!(m.contains("already exists"), "{m}"),
        other => panic!("{other:?}"),
    }
    let latest = c.get("p", None).await.expect("reads").expect("exists");
    assert_eq!(latest.version, "2.0.0");
    assert_eq!(c.get("p", Some("latest")).await.expect("reads").map(|p| p.version.clone()), Some("2.0.0".into()));
    let v1 = c.find("p", Some("1.0.0")).await.expect("found");
    let again = c.find("p", Some("1.0.0")).await.expect("found");
    assert!(Arc::ptr_eq(&v1, &again), "compiled once, then cached");
    assert!(c.get("missing", None).await.expect("reads").is_none());
}

#[tokio::test]
async fn invalid_documents_are_refused_with_every_diagnostic() {
    let c = catalog("invalid");
    let text = r#"{"procedure_id": "p", "version": "1", "workflow_graph": {"start_node": "a", "nodes": {"a": {"type": "logic", "rules": [{"condition": "(", "next_node": "nowhere"}]}}}}"#;
    match c.import(text, None).await {
        Err(ImportError::Invalid(diags)) => {
            let codes: Vec<&str> = diags.iter().map(|d| d.code.as_str()).collect();
            assert!(codes.contains(&"condition-syntax") && codes.contains(&"edge-target-missing"), "{codes:?}");
            assert!(diags.iter().all(|d| d.pointer.starts_with("/workflow_graph/nodes/a")));
        }
        other => panic!("{other:?}"),
    }
    assert!(c.get("p", None).await.expect("reads").is_none(), "nothing was stored");
}

#[tokio::test]
async fn cached_records_and_procedures_follow_changes_made_beside_the_catalog() {
    let store = Arc::new({
        let dir = std::env::temp_dir().join(format!("ckp-catalog-{}-changes", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        SqliteStore::open(dir.join("ckp.db"), SqliteOptions::default()).expect("opens")
    });
    let c = Catalog::new(store.clone());
    c.import(&doc("1", ""), None).await.expect("imports");
    let first = c.record("p", Some("1")).await.expect("reads").expect("exists");
    assert!(Arc::ptr_eq(&first, &c.record("p", Some("1")).await.expect("reads").expect("exists")), "cached");
    // Written through the store, not the catalog (as the status route does).
    store.set_procedure_status("p", "1", ProcedureStatus::Deprecated, doc("1", "")).await.expect("sets");
    assert_eq!(c.record("p", Some("1")).await.expect("reads").expect("exists").status, ProcedureStatus::Deprecated);
    store.insert_procedure(record_of(&doc("2", ""))).await.expect("inserts");
    assert_eq!(c.record("p", None).await.expect("reads").expect("exists").version, "2", "the latest moved");
}

fn record_of(text: &str) -> ckp_store::ProcedureRecord {
    let v: serde_json::Value = serde_json::from_str(text).expect("json");
    ckp_store::ProcedureRecord {
        procedure_id: v["procedure_id"].as_str().unwrap_or_default().into(),
        version: v["version"].as_str().unwrap_or_default().into(),
        status: ProcedureStatus::Active,
        ckp_json: text.into(),
        ..ckp_store::ProcedureRecord::default()
    }
}

/// Two processes on one PostgreSQL schema: what one changes reaches the other's catalog (trigger notice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_changes_reach_the_catalog_on_postgres() {
    let url = ckp_store::PgStore::create_schema(&crate::support::pg_test_url(), "catalog_changes")
        .await
        .expect("PostgreSQL must be running on 127.0.0.1:5432 (or set CKP_TEST_DATABASE_URL)");
    let options = ckp_store::PgOptions { follow_runs: false, follow_jobs: false, ..ckp_store::PgOptions::default() };
    let a = Catalog::new(Arc::new(ckp_store::PgStore::connect(&url, options.clone()).await.expect("connects")));
    let b = Catalog::new(Arc::new(ckp_store::PgStore::connect(&url, options).await.expect("connects")));
    a.import(&doc("1", ""), None).await.expect("imports");
    assert_eq!(a.record("p", Some("1")).await.expect("reads").expect("exists").status, ProcedureStatus::Active);
    assert_eq!(a.get("p", Some("1")).await.expect("reads").expect("compiles").nodes.len(), 1);

    // Process b replaces the document of version 1 and publishes version 2.
    b.update("p", "1", &doc("1", r#", "more": {"type": "terminate"}"#)).await.expect("updates");
    b.import(&doc("2", ""), None).await.expect("imports");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let latest = a.record("p", None).await.expect("reads").expect("exists");
        let v1 = a.get("p", Some("1")).await.expect("reads").expect("compiles");
        if latest.version == "2" && v1.nodes.len() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process a still sees {} and {} node(s)",
            latest.version,
            v1.nodes.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
