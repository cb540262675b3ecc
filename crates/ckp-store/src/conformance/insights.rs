//! Conformance checks of [`crate::InsightStore`] and of reruns: statistics per bucket, gauges, the busiest
//! procedures with percentiles, visibility; search matching, escaping, limits and visibility; the `rerun_of` link
//! and its list filter.

use std::sync::Arc;

use chrono::{Duration, Utc};
use ckp_core::Procedure;
use ckp_engine::Engine;
use ckp_engine::journal::{Commit, RunStatus};
use serde_json::{Map, json};

use super::{approval_procedure, execute, record};
use crate::{AgentRow, AgentStatus, NewRun, ProcedureRecord, RunFilter, SearchQuery, StatsQuery, Store};

fn ends(id: &str, status: &str) -> Arc<Procedure> {
    let doc = json!({"procedure_id": id, "version": "1", "workflow_graph": {"start_node": "end", "nodes": {
        "end": {"type": "terminate", "status": status}
    }}});
    Arc::new(ckp_core::compile_value(&doc).procedure.expect("the conformance procedure compiles"))
}

/// Creates a run of `p` in `project` (not queued), linked to `rerun_of`.
async fn run(store: &Arc<dyn Store>, p: &Procedure, run_id: &str, project: Option<&str>, rerun_of: Option<&str>) {
    let cp = Engine::new_checkpoint(p, run_id, &Map::new());
    let meta = NewRun {
        run_id: run_id.into(),
        project_id: project.map(Into::into),
        rerun_of: rerun_of.map(Into::into),
        ..NewRun::default()
    };
    let made = store
        .create_run(meta, Commit { events: Vec::new(), steps: Vec::new(), checkpoint: cp }, false)
        .await
        .expect("created");
    assert_eq!(made.rerun_of.as_deref(), rerun_of, "the row as created");
}

fn window(hours: i64) -> StatsQuery {
    let to = Utc::now() + Duration::seconds(1);
    StatsQuery {
        from: to - Duration::hours(hours),
        to,
        bucket_seconds: 3600,
        project_id: None,
        procedure_id: None,
        projects: None,
        top: 20,
    }
}

pub(super) async fn stats_count_buckets_gauges_and_procedures(store: Arc<dyn Store>) {
    let (done, fail, gate) = (ends("conf_done", "success"), ends("conf_fail", "failed"), approval_procedure());
    for (i, project) in [Some("A"), Some("A"), Some("B")].into_iter().enumerate() {
        let id = format!("d{i}");
        run(&store, &done, &id, project, None).await;
        execute(&store, &done, &id).await;
    }
    run(&store, &fail, "f0", Some("A"), None).await;
    execute(&store, &fail, "f0").await;
    run(&store, &gate, "g0", Some("A"), None).await;
    execute(&store, &gate, "g0").await;
    run(&store, &gate, "g1", Some("B"), None).await;
    store.cancel_run("g1", "test").await.expect("canceled");
    run(&store, &gate, "g2", None, None).await;

    let stats = store.run_stats(window(24)).await.expect("stats");
    assert_eq!(stats.buckets.len(), 24, "{stats:?}");
    let last = stats.buckets.last().copied().expect("a bucket");
    assert_eq!((last.created, last.completed, last.failed, last.canceled), (7, 3, 1, 1), "{stats:?}");
    assert!(stats.buckets[..23].iter().all(|b| *b == crate::BucketCounts::default()), "{stats:?}");
    assert_eq!((stats.running, stats.waiting_approval), (0, 1));
    let ids: Vec<&str> = stats.by_procedure.iter().map(|p| p.procedure_id.as_str()).collect();
    assert_eq!(ids, ["conf_done", "conf_gate", "conf_fail"], "busiest first, ties by id");
    let d = &stats.by_procedure[0];
    assert_eq!((d.total, d.completed, d.failed), (3, 3, 0));
    let (p50, p95) = (d.p50_seconds.expect("p50"), d.p95_seconds.expect("p95"));
    assert!((0.0..60.0).contains(&p50) && p50 <= p95, "{d:?}");
    let g = &stats.by_procedure[1];
    assert_eq!((g.total, g.completed, g.failed), (3, 0, 0));
    assert_eq!(g.p50_seconds, None, "a run canceled before it started has no duration: {g:?}");
    assert_eq!(stats.by_procedure[2].failed, 1);

    // Filters and visibility.
    let only_a = store.run_stats(StatsQuery { projects: Some(vec!["A".into()]), ..window(24) }).await.expect("stats");
    let last = only_a.buckets.last().copied().expect("a bucket");
    assert_eq!((last.created, last.completed, last.failed, last.canceled), (4, 2, 1, 0), "{only_a:?}");
    assert_eq!(only_a.waiting_approval, 1);
    let fails = StatsQuery { procedure_id: Some("conf_fail".into()), ..window(24) };
    let fails = store.run_stats(fails).await.expect("stats");
    assert_eq!(fails.by_procedure.len(), 1);
    assert_eq!(fails.buckets.iter().map(|b| b.created).sum::<i64>(), 1);
    let top1 = store.run_stats(StatsQuery { top: 1, ..window(24) }).await.expect("stats");
    assert_eq!(top1.by_procedure.len(), 1);
    // A window that ended before the runs counts none of them (the gauges are of now).
    let mut past = window(24);
    past.to -= Duration::hours(2);
    past.from -= Duration::hours(2);
    let past = store.run_stats(past).await.expect("stats");
    assert!(past.buckets.iter().all(|b| b.created == 0 && b.completed == 0) && past.by_procedure.is_empty());
    assert_eq!(past.waiting_approval, 1);
    // Day buckets.
    let days = store.run_stats(StatsQuery { bucket_seconds: 86_400, ..window(24 * 90) }).await.expect("stats");
    assert_eq!(days.buckets.len(), 90);
    assert_eq!(days.buckets.iter().map(|b| b.created).sum::<i64>(), 7);
}

pub(super) async fn search_matches_escapes_limits_and_filters(store: Arc<dyn Store>) {
    let named = |id: &str, version: &str, name: &str, project: Option<&str>| ProcedureRecord {
        name: name.into(),
        project_id: project.map(Into::into),
        ..record(id, version)
    };
    store.insert_procedure(named("invoice_flow", "1", "Old name", Some("A"))).await.expect("insert");
    store.insert_procedure(named("invoice_flow", "2", "Invoices", Some("A"))).await.expect("insert");
    store.insert_procedure(named("payroll", "1", "Pay 100% of INVOICE", Some("B"))).await.expect("insert");
    store.insert_procedure(named("under_score", "1", "x", None)).await.expect("insert");
    let done = ends("invoice_flow", "success");
    run(&store, &done, "abc-1", Some("A"), None).await;
    run(&store, &done, "abd-2", Some("B"), None).await;
    for (id, name) in [("invoice-agent", "Agent Smith"), ("other", "Invoice bot")] {
        let agent = AgentRow {
            agent_id: id.into(),
            name: name.into(),
            channel: "web".into(),
            base_url: "http://127.0.0.1:1".into(),
            status: AgentStatus::Online,
            concurrency_limit: 1,
            resource_key: id.into(),
            pool_id: None,
            capabilities: json!([]),
            consecutive_failures: 0,
            circuit_open_at: None,
            last_heartbeat_at: None,
            updated_at: String::new(),
        };
        store.insert_agent(agent).await.expect("agent");
    }
    let search = |text: &str, limit: i64, projects: Option<Vec<String>>| {
        let store = store.clone();
        let q = SearchQuery { text: text.into(), limit, projects };
        async move { store.search(q).await.expect("search") }
    };

    let hits = search("INVOICE", 10, None).await;
    let procs: Vec<(&str, &str)> =
        hits.procedures.iter().map(|p| (p.procedure_id.as_str(), p.version.as_str())).collect();
    assert_eq!(procs, [("invoice_flow", "2"), ("payroll", "1")], "id or name, latest version: {hits:?}");
    assert_eq!(hits.procedures[0].name, "Invoices");
    let runs: Vec<&str> = hits.runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(runs, ["abd-2", "abc-1"], "by procedure id, newest first");
    assert_eq!(hits.runs[0].status, RunStatus::Created);
    let agents: Vec<&str> = hits.agents.iter().map(|a| a.agent_id.as_str()).collect();
    assert_eq!(agents, ["invoice-agent", "other"], "by id or name, ordered by name");

    // Run ids match as a prefix only.
    let runs = search("AB", 10, None).await.runs;
    assert_eq!(runs.len(), 2);
    assert!(search("bc-1", 10, None).await.runs.is_empty());
    // LIKE wildcards match themselves.
    assert_eq!(search("100%", 10, None).await.procedures.len(), 1);
    let percent = search("%", 10, None).await;
    assert_eq!(percent.procedures.iter().map(|p| p.procedure_id.as_str()).collect::<Vec<_>>(), ["payroll"]);
    assert!(percent.runs.is_empty() && percent.agents.is_empty(), "`%` is not a wildcard: {percent:?}");
    let underscore = search("_", 10, None).await.procedures;
    let ids: Vec<&str> = underscore.iter().map(|p| p.procedure_id.as_str()).collect();
    assert_eq!(ids, ["invoice_flow", "under_score"], "`_` is not a wildcard");
    assert!(search("a%b", 10, None).await.runs.is_empty());
    // Limits and visibility.
    let one = search("invoice", 1, None).await;
    assert_eq!((one.procedures.len(), one.runs.len(), one.agents.len()), (1, 1, 1));
    let only_b = search("invoice", 10, Some(vec!["B".into()])).await;
    assert_eq!(only_b.procedures.iter().map(|p| p.procedure_id.as_str()).collect::<Vec<_>>(), ["payroll"]);
    assert_eq!(only_b.runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), ["abd-2"]);
    assert_eq!(only_b.agents.len(), 2, "agents belong to no project");
    let none = search("invoice", 10, Some(Vec::new())).await;
    assert!(none.procedures.is_empty() && none.runs.is_empty());
}

pub(super) async fn reruns_are_linked_and_listed(store: Arc<dyn Store>) {
    let done = ends("conf_done", "success");
    run(&store, &done, "orig", None, None).await;
    run(&store, &done, "again-1", None, Some("orig")).await;
    run(&store, &done, "again-2", None, Some("orig")).await;
    run(&store, &done, "other", None, None).await;
    let got = store.get_run("again-1").await.expect("get").expect("exists");
    assert_eq!(got.rerun_of.as_deref(), Some("orig"));
    assert_eq!(store.get_run("orig").await.expect("get").expect("exists").rerun_of, None);
    let filter = RunFilter { limit: 100, ascending: true, rerun_of: Some("orig".into()), ..RunFilter::default() };
    let ids: Vec<String> = store.list_runs(filter).await.expect("list").into_iter().map(|r| r.run_id).collect();
    assert_eq!(ids, ["again-1", "again-2"]);
    // Deleting the original leaves the link as it was.
    store.delete_run("orig").await.expect("deleted");
    let got = store.get_run("again-2").await.expect("get").expect("exists");
    assert_eq!(got.rerun_of.as_deref(), Some("orig"));
}
