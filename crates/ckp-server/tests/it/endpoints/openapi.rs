//! `GET /api/openapi.json`: the operations it documents, all under `/api/`.

use serde_json::Value;

use crate::support::TestServer;

async fn document(name: &str) -> Value {
    let server = TestServer::start(name).await;
    let (status, doc) = server.call("GET", "/api/openapi.json", None).await;
    assert_eq!(status, 200);
    server.stop().await;
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_every_api_operation_under_api() {
    let doc = document("ep-openapi").await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "ckp");
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        assert!(path.starts_with("/api/"), "{path} is not under /api/");
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options", "trace"].contains(&method.as_str()) {
                operations.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    operations.sort();
    insta::assert_json_snapshot!("operations", operations);
}

/// The document's `info` must describe ckp, not the crate that generated it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_describes_ckp() {
    let doc = document("ep-openapi-info").await;
    let contact = doc["info"]["contact"].to_string();
    assert!(!contact.contains("Kukkonen"), "contact is not ckp's: {contact}");
    let license = &doc["info"]["license"];
    assert!(license.is_null() || license["name"] == "Apache-2.0", "license is not ckp's: {license}");
}
