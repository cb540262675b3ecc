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

/// Every operation declares what the shared machinery can answer: 503 (the store), and for a body 400, 408, 413, 415
/// and 422, and for query parameters 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_declares_the_shared_error_statuses() {
    let doc = document("ep-openapi-statuses").await;
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Some(responses) = op["responses"].as_object() else { continue };
            let mut expected = vec!["503"];
            if !op["requestBody"].is_null() {
                expected.extend(["400", "408", "413", "415", "422"]);
            }
            let query = op["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            if query {
                expected.push("422");
            }
            for status in expected {
                if !responses.contains_key(status) {
                    missing.push(format!("{method} {path}: {status}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "undeclared statuses: {missing:#?}");
}

/// Operation ids are unique: generated clients (the console's among them) key their types by them, so a shared id
/// gives one operation another's request and response types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_ids_are_unique() {
    let doc = document("ep-openapi-ids").await;
    let mut seen = std::collections::HashMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Some(id) = op["operationId"].as_str() else { continue };
            if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                panic!("operationId {id} is used by {other} and by {method} {path}");
            }
        }
    }
    assert!(seen.len() > 60, "only {} operations have an id", seen.len());
}
