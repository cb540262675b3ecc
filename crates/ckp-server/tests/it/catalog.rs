//! The catalog: import with diagnostics, conflicts, versions and latest, compile-once caching.

use std::sync::Arc;

use ckp_engine::engine::Procedures;
use ckp_server::catalog::{Catalog, ImportError};
use ckp_store::{SqliteOptions, SqliteStore};

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
