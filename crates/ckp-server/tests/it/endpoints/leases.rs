//! `/api/leases`: list (with the resource filter) and revoke (idempotent).

use serde_json::{Value, json};

use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_is_empty_and_revoke_is_idempotent() {
    let server = TestServer::start("ep-leases").await;
    let (status, list) = server.call("GET", "/api/leases", None).await;
    assert_eq!((status, list), (200, json!([])));
    let (status, list) = server.call("GET", "/api/leases?resource_key=web_default", None).await;
    assert_eq!((status, list), (200, json!([])));
    // Unknown (or already released) leases: 204 all the same, with no body.
    for _ in 0..2 {
        let (status, body) = server.call("DELETE", "/api/leases/no-such-lease", None).await;
        assert_eq!((status, body), (204, Value::Null));
    }
    let (_, list) = server.call("GET", "/api/leases", None).await;
    assert_eq!(list, json!([]));
    server.stop().await;
}
