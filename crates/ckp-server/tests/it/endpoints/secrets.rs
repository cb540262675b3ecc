//! `/api/secrets`: create, list, get, update, delete in LangOrch's shapes (never a value), the errors (409, 404, 422,
//! 503 without an encryption key), and values kept sealed in the database file.

use serde_json::{Value, json};

use super::{assert_error, column, id, store_lists, ts};
use crate::support::TestServer;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const VALUE: &str = "db-st0red-secret-value";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_get_update_delete() {
    let server = TestServer::start_with("ep-secrets-crud", |c| c.secrets.encryption_key = Some(KEY.into())).await;
    let (status, created) = server
        .call(
            "POST",
            "/api/secrets",
            Some(json!({"name": "payments/api_key", "value": VALUE, "description": "PSP key", "tags": ["psp"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    insta::assert_json_snapshot!("create_201", created, {".secret_id" => id(), ".created_at" => ts(), ".updated_at" => ts()});
    server.call("POST", "/api/secrets", Some(json!({"name": "a_first", "value": "another-value"}))).await;

    let before = store_lists(&server).await;
    let dup = server.call("POST", "/api/secrets", Some(json!({"name": "a_first", "value": "x-value"}))).await;
    assert_error(&dup, 409, "conflict");
    assert_eq!(dup.1["detail"], "Secret 'a_first' already exists. Use PUT to update.");
    for bad in [
        json!({"name": "has space", "value": "v"}),
        json!({"name": "sel#ector", "value": "v"}),
        json!({"name": "", "value": "v"}),
        json!({"name": "n", "value": ""}),
        json!({"name": "n"}),
        json!({"name": "n", "value": 5}),
    ] {
        assert_error(&server.call("POST", "/api/secrets", Some(bad)).await, 422, "invalid_body");
    }
    assert_eq!(store_lists(&server).await, before, "refused requests change nothing");

    let (status, list) = server.call("GET", "/api/secrets", None).await;
    assert_eq!(status, 200);
    assert_eq!(column(&list, "name"), ["a_first", "payments/api_key"], "ordered by name");
    let (status, one) = server.call("GET", "/api/secrets/payments%2Fapi_key", None).await;
    assert_eq!((status, &one), (200, &created));

    let (status, updated) =
        server.call("PUT", "/api/secrets/a_first", Some(json!({"value": "rotated-value", "tags": ["t"]}))).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!((updated["tags"].clone(), updated["provider_hint"].clone()), (json!(["t"]), json!("db")));
    assert_error(&server.call("PUT", "/api/secrets/nope", Some(json!({"value": "x-value"}))).await, 404, "not_found");
    assert_error(&server.call("GET", "/api/secrets/nope", None).await, 404, "not_found");
    assert_error(&server.call("DELETE", "/api/secrets/nope", None).await, 404, "not_found");
    let (status, body) = server.call("DELETE", "/api/secrets/a_first", None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (_, list) = server.call("GET", "/api/secrets", None).await;
    assert_eq!(column(&list, "name"), ["payments/api_key"]);

    let everything = format!("{list} {created} {updated} {one}");
    assert!(!everything.contains(VALUE) && !everything.contains("rotated-value"), "{everything}");
    // The database and its WAL hold only sealed values.
    for entry in std::fs::read_dir(&server.dir).expect("data dir").flatten() {
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains(VALUE), "{} holds the clear value", entry.path().display());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_an_encryption_key() {
    let server = TestServer::start("ep-secrets-nokey").await;
    let answer = server.call("POST", "/api/secrets", Some(json!({"name": "k", "value": "v-value"}))).await;
    assert_error(&answer, 503, "secrets_key_missing");
    assert!(answer.1["detail"].as_str().is_some_and(|d| d.contains("SECRETS_ENCRYPTION_KEY")), "{}", answer.1);
    let (status, list) = server.call("GET", "/api/secrets", None).await;
    assert_eq!((status, list), (200, json!([])));
    server.stop().await;
}
