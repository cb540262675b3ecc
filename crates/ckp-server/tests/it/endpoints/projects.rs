//! `/api/projects`: create, list, get, update, delete (refused while a procedure uses the project), cost summary;
//! runs and imports naming an unknown project.

use serde_json::{Value, json};

use super::{assert_error, column, id, store_lists, ts};
use crate::support::{TestServer, chain_procedure};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_get_update_delete() {
    let server = TestServer::start("ep-projects-crud").await;
    let (status, created) =
        server.call("POST", "/api/projects", Some(json!({"name": "Zulu", "description": "last"}))).await;
    assert_eq!(status, 201, "{created}");
    insta::assert_json_snapshot!("create_201", created, {".project_id" => id(), ".created_at" => ts()});
    let zulu = created["project_id"].as_str().expect("project_id").to_owned();
    let (_, alpha) = server.call("POST", "/api/projects", Some(json!({"name": "Alpha"}))).await;
    let alpha = alpha["project_id"].as_str().expect("project_id").to_owned();

    let before = store_lists(&server).await;
    assert_error(
        &server.call("POST", "/api/projects", Some(json!({"description": "no name"}))).await,
        422,
        "invalid_body",
    );
    assert_error(&server.call("POST", "/api/projects", Some(json!({"name": "  "}))).await, 422, "invalid_body");
    assert_error(&server.call("POST", "/api/projects", Some(json!({"name": 5}))).await, 422, "invalid_body");
    assert_eq!(store_lists(&server).await, before);

    let (status, list) = server.call("GET", "/api/projects", None).await;
    assert_eq!(status, 200);
    assert_eq!(column(&list, "name"), ["Alpha", "Zulu"], "ordered by name");
    let (status, one) = server.call("GET", &format!("/api/projects/{zulu}"), None).await;
    assert_eq!((status, &one), (200, &created));

    let (status, updated) =
        server.call("PUT", &format!("/api/projects/{zulu}"), Some(json!({"description": "renamed"}))).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!((updated["name"].as_str(), updated["description"].as_str()), (Some("Zulu"), Some("renamed")));
    let (_, renamed) = server.call("PUT", &format!("/api/projects/{zulu}"), Some(json!({"name": "Yankee"}))).await;
    assert_eq!((renamed["name"].as_str(), renamed["description"].as_str()), (Some("Yankee"), Some("renamed")));
    assert_error(
        &server.call("PUT", &format!("/api/projects/{zulu}"), Some(json!({"name": ""}))).await,
        422,
        "invalid_body",
    );

    assert_error(&server.call("GET", "/api/projects/nope", None).await, 404, "not_found");
    assert_error(&server.call("PUT", "/api/projects/nope", Some(json!({"name": "x"}))).await, 404, "not_found");
    assert_error(&server.call("DELETE", "/api/projects/nope", None).await, 404, "not_found");

    let (status, body) = server.call("DELETE", &format!("/api/projects/{alpha}"), None).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_error(&server.call("GET", &format!("/api/projects/{alpha}"), None).await, 404, "not_found");
    let (_, list) = server.call("GET", "/api/projects", None).await;
    assert_eq!(column(&list, "name"), ["Yankee"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_in_use_are_kept_and_unknown_projects_are_refused() {
    let server = TestServer::start("ep-projects-use").await;
    let (_, project) = server.call("POST", "/api/projects", Some(json!({"name": "Ops"}))).await;
    let project_id = project["project_id"].as_str().expect("project_id").to_owned();
    let (status, imported) = server
        .call(
            "POST",
            "/api/procedures",
            Some(json!({"ckp_json": chain_procedure("owned", 1), "project_id": project_id})),
        )
        .await;
    assert_eq!((status, imported["project_id"].as_str()), (201, Some(project_id.as_str())), "{imported}");
    server.import(chain_procedure("free", 1)).await;

    // Runs take the procedure's project unless told otherwise.
    let run_id = server.start_run("owned", json!({})).await;
    let run = server.wait_status(&run_id, &["completed"]).await;
    assert_eq!(run["project_id"], project_id.as_str());
    let (status, run) =
        server.call("POST", "/api/runs", Some(json!({"procedure_id": "free", "project_id": project_id}))).await;
    assert_eq!((status, run["project_id"].as_str()), (201, Some(project_id.as_str())), "{run}");
    server.wait_status(run["run_id"].as_str().expect("run_id"), &["completed"]).await;
    let (_, filtered) = server.call("GET", &format!("/api/runs?project_id={project_id}"), None).await;
    assert_eq!(filtered.as_array().map(Vec::len), Some(2));

    let (status, summary) = server.call("GET", &format!("/api/projects/{project_id}/cost-summary"), None).await;
    assert_eq!(status, 200, "{summary}");
    insta::assert_json_snapshot!("cost_summary_default", summary, {".project_id" => id()});
    let (status, week) =
        server.call("GET", &format!("/api/projects/{project_id}/cost-summary?period_days=7"), None).await;
    assert_eq!((status, week["period_days"].as_i64(), week["run_count"].as_i64()), (200, Some(7), Some(2)), "{week}");
    for bad in ["0", "366", "-1", "week"] {
        let got = server.call("GET", &format!("/api/projects/{project_id}/cost-summary?period_days={bad}"), None).await;
        assert_error(&got, 422, "invalid_query");
    }
    assert_error(&server.call("GET", "/api/projects/nope/cost-summary", None).await, 404, "not_found");

    let before = store_lists(&server).await;
    let in_use = server.call("DELETE", &format!("/api/projects/{project_id}"), None).await;
    assert_error(&in_use, 409, "conflict");
    let unknown = server.call("POST", "/api/runs", Some(json!({"procedure_id": "free", "project_id": "nope"}))).await;
    assert_error(&unknown, 404, "not_found");
    let (status, _) = server.call("GET", &format!("/api/projects/{project_id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(store_lists(&server).await, before, "refused requests changed nothing");
    server.stop().await;
}
