//! The store conformance suite: behaviour every [`Store`] must have, written against the trait only. Each
//! check takes a fresh, empty store; a backend's tests call every check in [`CHECKS`] (the SQLite store's in
//! `tests/it/conformance.rs`; the PostgreSQL store runs the same list). The checks of authentication are in
//! `conformance/auth.rs`, those of statistics, search and reruns in `conformance/insights.rs`, those of triggers in
//! `conformance/triggers.rs`.

mod auth;
mod insights;
mod retention;
mod triggers;

use std::sync::Arc;

use chrono::Utc;
use ckp_core::Procedure;
use ckp_engine::effects::{BoxFuture, Effects};
use ckp_engine::engine::Decision;
use ckp_engine::journal::{Commit, Journal, RunStatus};
use ckp_engine::{Engine, Event, RunOutcome};
use serde_json::{Map, Value, json};

use crate::{
    AgentRow, AgentStatus, AgentUpdate, ApprovalDecision, ApprovalStatus, DraftWrite, JobState, NewRun,
    ProcedureFilter, ProcedureRecord, ProcedureStatus, RunChange, RunFilter, SecretRow, SecretUpdate, Store,
    StoreError,
};

/// A named check.
pub type Check = (&'static str, fn(Arc<dyn Store>) -> BoxFuture<'static, ()>);

/// Every check.
pub const CHECKS: &[Check] = &[
    ("procedures_versions_and_conflicts", |s| Box::pin(procedures_versions_and_conflicts(s))),
    ("test_snapshots_are_hidden_and_versions_that_ran_are_kept", |s| {
        Box::pin(test_snapshots_are_hidden_and_versions_that_ran_are_kept(s))
    }),
    ("builder_drafts_have_revisions", |s| Box::pin(builder_drafts_have_revisions(s))),
    ("runs_are_created_with_their_job_and_read_back", |s| Box::pin(runs_are_created_with_their_job_and_read_back(s))),
    ("run_list_filters_and_pages", |s| Box::pin(run_list_filters_and_pages(s))),
    ("queue_leases_priorities_and_timers", |s| Box::pin(queue_leases_priorities_and_timers(s))),
    ("batch_claims_give_each_worker_its_own_job", |s| Box::pin(batch_claims_give_each_worker_its_own_job(s))),
    ("approvals_follow_the_run_and_one_decision_wins", |s| Box::pin(approvals_follow_the_run_and_one_decision_wins(s))),
    ("cancel_retry_delete", |s| Box::pin(cancel_retry_delete(s))),
    ("cleanup_dry_run_counts_what_cleanup_deletes", |s| Box::pin(cleanup_dry_run_counts_what_cleanup_deletes(s))),
    ("retention_deletes_only_expired_terminal_runs", |s| {
        Box::pin(retention::retention_deletes_only_expired_terminal_runs(s))
    }),
    ("retention_caps_the_run_count_with_the_oldest_terminal_runs", |s| {
        Box::pin(retention::retention_caps_the_run_count_with_the_oldest_terminal_runs(s))
    }),
    ("cleanup_takes_terminal_runs_only", |s| Box::pin(retention::cleanup_takes_terminal_runs_only(s))),
    ("incremental_vacuum_gives_free_pages_back", |s| Box::pin(retention::incremental_vacuum_gives_free_pages_back(s))),
    ("registry_tables", |s| Box::pin(registry_tables(s))),
    ("changes_are_announced_after_commit", |s| Box::pin(changes_are_announced_after_commit(s))),
    ("one_workflow_callback_resumes_a_paused_run", |s| Box::pin(one_workflow_callback_resumes_a_paused_run(s))),
    ("secrets_rows", |s| Box::pin(secrets_rows(s))),
    ("users_conflicts_and_the_last_admin", |s| Box::pin(auth::users_conflicts_and_the_last_admin(s))),
    ("grants_and_token_versions", |s| Box::pin(auth::grants_and_token_versions(s))),
    ("api_keys_rows", |s| Box::pin(auth::api_keys_rows(s))),
    ("sessions_rows", |s| Box::pin(auth::sessions_rows(s))),
    ("server_keys_are_created_once", |s| Box::pin(auth::server_keys_are_created_once(s))),
    ("audit_log_filters_pages_and_purges", |s| Box::pin(auth::audit_log_filters_pages_and_purges(s))),
    ("concurrent_changes_keep_one_admin_and_unique_names", |s| {
        Box::pin(auth::concurrent_changes_keep_one_admin_and_unique_names(s))
    }),
    ("project_filters_on_runs_procedures_and_approvals", |s| {
        Box::pin(auth::project_filters_on_runs_procedures_and_approvals(s))
    }),
    ("stats_count_buckets_gauges_and_procedures", |s| Box::pin(insights::stats_count_buckets_gauges_and_procedures(s))),
    ("search_matches_escapes_limits_and_filters", |s| Box::pin(insights::search_matches_escapes_limits_and_filters(s))),
    ("reruns_are_linked_and_listed", |s| Box::pin(insights::reruns_are_linked_and_listed(s))),
    ("a_trigger_cause_key_fires_once", |s| Box::pin(triggers::a_cause_key_fires_once(s))),
    ("an_operators_trigger_disable_survives_a_sync", |s| Box::pin(triggers::an_operators_disable_survives_a_sync(s))),
    ("trigger_dedupe_windows_retired_keys_pages_and_prunes", |s| {
        Box::pin(triggers::dedupe_windows_retired_keys_pages_and_prunes(s))
    }),
];

fn approval_procedure() -> Arc<Procedure> {
    let doc = json!({"procedure_id": "conf_gate", "version": "1", "workflow_graph": {"start_node": "a", "nodes": {
        "a": {"type": "sequence", "steps": [{"step_id": "s", "action": "set_variable", "variable": "x", "value": 1}], "next_node": "g"},
        "g": {"type": "human_approval", "prompt": "ok {{x}}?", "on_approve": "yes", "on_reject": "no"},
        "yes": {"type": "terminate", "outputs": {"result": "approved"}},
        "no": {"type": "terminate", "status": "failed"}
    }}});
    Arc::new(ckp_core::compile_value(&doc).procedure.expect("the conformance procedure compiles"))
}

fn record(id: &str, version: &str) -> ProcedureRecord {
    ProcedureRecord {
        procedure_id: id.into(),
        version: version.into(),
        name: id.into(),
        status: ProcedureStatus::Active,
        ckp_json: json!({"procedure_id": id, "version": version}).to_string(),
        ..ProcedureRecord::default()
    }
}

/// Creates a run of `p` (created, queued) the way the API does.
async fn create(store: &Arc<dyn Store>, p: &Procedure, run_id: &str, inputs: Value) -> crate::RunRow {
    let inputs: Map<String, Value> = inputs.as_object().cloned().unwrap_or_default();
    let cp = Engine::new_checkpoint(p, run_id, &inputs);
    let event = Event::of_run("run_created", json!({}));
    let meta = NewRun { run_id: run_id.into(), input_vars: Some(Value::Object(inputs)), ..NewRun::default() };
    store
        .create_run(meta, Commit { events: vec![event], steps: Vec::new(), checkpoint: cp }, true)
        .await
        .expect("created")
}

/// Executes a run once (as a worker would) with an engine over the store's journal.
async fn execute(store: &Arc<dyn Store>, p: &Arc<Procedure>, run_id: &str) -> RunOutcome {
    let journal: Arc<dyn Journal> = store.clone();
    Engine::new(journal, Effects::default()).resume(p.clone(), run_id).await.expect("executes")
}

async fn procedures_versions_and_conflicts(store: Arc<dyn Store>) {
    let a = store.insert_procedure(record("p", "1")).await.expect("insert");
    assert!(a.id > 0);
    store.insert_procedure(record("p", "2")).await.expect("insert v2");
    assert!(matches!(store.insert_procedure(record("p", "1")).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.get_procedure("p", None).await.expect("get").expect("latest").version, "2");
    assert_eq!(store.get_procedure("p", Some("latest")).await.expect("get").expect("latest").version, "2");
    assert_eq!(store.get_procedure("p", Some("1")).await.expect("get").expect("v1").version, "1");
    assert!(store.get_procedure("nope", None).await.expect("get").is_none());
    let versions = store
        .list_procedures(ProcedureFilter { procedure_id: Some("p".into()), ..ProcedureFilter::default() })
        .await
        .expect("list");
    assert_eq!(versions.iter().map(|r| r.version.as_str()).collect::<Vec<_>>(), ["2", "1"]);
    let mut changed = record("p", "1");
    changed.name = "renamed".into();
    assert_eq!(store.update_procedure(changed).await.expect("update").name, "renamed");
    assert!(matches!(store.update_procedure(record("q", "1")).await, Err(StoreError::NotFound(_))));
    let archived = store.set_procedure_status("p", "1", ProcedureStatus::Archived, "{}".into()).await.expect("status");
    assert_eq!(archived.status, ProcedureStatus::Archived);
    let active = store
        .list_procedures(ProcedureFilter { status: Some(ProcedureStatus::Active), ..ProcedureFilter::default() })
        .await
        .expect("list");
    assert_eq!(active.len(), 1);
    store.delete_procedure("p", "2").await.expect("delete");
    assert!(matches!(store.delete_procedure("p", "2").await, Err(StoreError::NotFound(_))));
    assert_eq!(store.get_procedure("p", None).await.expect("get").expect("v1 left").version, "1");
}

async fn test_snapshots_are_hidden_and_versions_that_ran_are_kept(store: Arc<dyn Store>) {
    store.insert_procedure(record("t", "1.0.0")).await.expect("insert");
    store.insert_procedure(record("t", "1.0.0+test.0a1b2c3d")).await.expect("insert the snapshot");
    // Only the exact version finds a snapshot: it is never the latest nor listed.
    assert_eq!(store.get_procedure("t", None).await.expect("get").expect("latest").version, "1.0.0");
    assert!(store.get_procedure("t", Some("1.0.0+test.0a1b2c3d")).await.expect("get").is_some());
    let listed = store
        .list_procedures(ProcedureFilter { procedure_id: Some("t".into()), ..ProcedureFilter::default() })
        .await
        .expect("list");
    assert_eq!(listed.iter().map(|r| r.version.as_str()).collect::<Vec<_>>(), ["1.0.0"]);
    // A version with a run (whatever its status) is never replaced.
    let doc = json!({"procedure_id": "t", "version": "1.0.0", "workflow_graph": {"start_node": "end", "nodes": {
        "end": {"type": "terminate"}}}});
    let p = ckp_core::compile_value(&doc).procedure.expect("compiles");
    let cp = Engine::new_checkpoint(&p, "tr", &Map::new());
    let event = Event::of_run("run_created", json!({}));
    let meta = NewRun { run_id: "tr".into(), ..NewRun::default() };
    store
        .create_run(meta, Commit { events: vec![event], steps: Vec::new(), checkpoint: cp }, false)
        .await
        .expect("run");
    let mut changed = record("t", "1.0.0");
    changed.name = "renamed".into();
    assert!(matches!(store.update_procedure(changed).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.get_procedure("t", Some("1.0.0")).await.expect("get").expect("kept").name, "t");
}

async fn builder_drafts_have_revisions(store: Arc<dyn Store>) {
    store.insert_procedure(record("d", "1")).await.expect("insert");
    assert!(store.get_draft("d", "1").await.expect("get").is_none());
    let write = |json: &str, expected: Option<i64>| DraftWrite {
        procedure_id: "d".into(),
        version: "1".into(),
        draft_json: json.into(),
        expected_revision: expected,
        updated_by: Some("ann".into()),
    };
    let first = store.put_draft(write(r#"{"a":1}"#, Some(0))).await.expect("first write");
    assert_eq!(
        (first.revision, first.draft_json.as_str(), first.updated_by.as_deref()),
        (1, r#"{"a":1}"#, Some("ann"))
    );
    assert_eq!(store.get_draft("d", "1").await.expect("get").expect("stored"), first);
    // A writer that read revision 0 (or any other stale one) is refused and changes nothing.
    assert!(matches!(store.put_draft(write(r#"{"a":2}"#, Some(0))).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.get_draft("d", "1").await.expect("get").expect("stored").draft_json, r#"{"a":1}"#);
    let second = store.put_draft(write(r#"{"a":3}"#, Some(1))).await.expect("second write");
    assert_eq!(second.revision, 2);
    // An unconditional write (LangOrch's clients) always lands.
    assert_eq!(store.put_draft(write(r#"{"a":4}"#, None)).await.expect("blind write").revision, 3);
    assert!(store.delete_draft("d", "1").await.expect("delete"));
    assert!(!store.delete_draft("d", "1").await.expect("delete again"));
    store.put_draft(write("{}", None)).await.expect("write");
    // Deleting the version deletes its draft.
    store.delete_procedure("d", "1").await.expect("delete the version");
    assert!(store.get_draft("d", "1").await.expect("get").is_none());
}

async fn runs_are_created_with_their_job_and_read_back(store: Arc<dyn Store>) {
    let p = approval_procedure();
    let row = create(&store, &p, "r1", json!({"k": "v"})).await;
    assert_eq!(row.status, RunStatus::Created);
    assert_eq!(row.input_vars, Some(json!({"k": "v"})));
    assert_eq!(store.get_run("r1").await.expect("get").expect("exists"), row);
    let job = store.claim("w", 10_000, Utc::now()).await.expect("claim").expect("the run is queued");
    assert_eq!(job.run_id, "r1");
    let out = execute(&store, &p, "r1").await;
    assert!(matches!(out, RunOutcome::WaitingApproval(_)), "{out:?}");
    let run = store.get_run("r1").await.expect("get").expect("exists");
    assert_eq!(run.status, RunStatus::WaitingApproval);
    // The commit that paused the run (no expiry) released its job in the same transaction.
    let stats = store.queue_stats().await.expect("stats");
    assert_eq!(stats.depth_by_status, vec![(JobState::Done, 1)], "{stats:?}");
    assert_eq!(run.last_node_id.as_deref(), Some("g"));
    assert!(run.started_at.is_some() && run.ended_at.is_none());
    let events = store.events_after("r1", 0, 1000).await.expect("events");
    assert_eq!(events.first().map(|e| e.event_type.as_str()), Some("run_created"));
    assert!(events.windows(2).all(|w| w[0].event_id < w[1].event_id));
    let tail = store.events_after("r1", events[1].event_id, 1000).await.expect("tail");
    assert_eq!(tail.len(), events.len() - 2);
    let (total, errors, retries) = store.event_counts("r1").await.expect("counts");
    assert_eq!((total, errors, retries), (events.len() as i64, 0, 0));
    assert_eq!(store.checkpoint("r1").await.expect("cp").expect("exists").status, RunStatus::WaitingApproval);
    assert!(store.get_run("nope").await.expect("get").is_none());
    // A new run's row as returned is the row as stored, whatever columns it has.
    let inputs = json!({"f": 0.1, "big": 12_345_678_901_234_i64, "nested": {"a": [1, "x", null, true]}, "s": "é\n"});
    let meta = NewRun {
        run_id: "r2".into(),
        input_vars: Some(inputs.clone()),
        project_id: Some("proj".into()),
        case_id: Some("case".into()),
        trigger_type: Some("webhook".into()),
        triggered_by: Some("hook-1".into()),
        rerun_of: Some("r1".into()),
    };
    let map = inputs.as_object().cloned().unwrap_or_default();
    let cp = Engine::new_checkpoint(&p, "r2", &map);
    let commit = Commit { events: Vec::new(), steps: Vec::new(), checkpoint: cp };
    let made = store.create_run(meta, commit, false).await.expect("created");
    assert_eq!(made.input_vars, Some(inputs));
    assert_eq!(store.get_run("r2").await.expect("get").expect("exists"), made);
}

async fn run_list_filters_and_pages(store: Arc<dyn Store>) {
    let p = approval_procedure();
    for i in 0..5 {
        create(&store, &p, &format!("run{i}"), json!({})).await;
    }
    let page = |offset, ascending| RunFilter { limit: 2, offset, ascending, ..RunFilter::default() };
    let first: Vec<String> =
        store.list_runs(page(0, true)).await.expect("list").into_iter().map(|r| r.run_id).collect();
    let second: Vec<String> =
        store.list_runs(page(2, true)).await.expect("list").into_iter().map(|r| r.run_id).collect();
    assert_eq!(first, ["run0", "run1"]);
    assert_eq!(second, ["run2", "run3"]);
    let newest = store.list_runs(page(0, false)).await.expect("list");
    assert_eq!(newest[0].run_id, "run4");
    let all = RunFilter { limit: 100, ..RunFilter::default() };
    let created = RunFilter { status: Some(RunStatus::Created), ..all.clone() };
    assert_eq!(store.list_runs(created).await.expect("list").len(), 5);
    let other = RunFilter { procedure_id: Some("other".into()), ..all.clone() };
    assert!(store.list_runs(other).await.expect("list").is_empty());
    assert_eq!(store.run_counts().await.expect("counts"), vec![(RunStatus::Created, 5)]);
    // A page can leave out large inputs (byte length, not characters: "é" is two bytes).
    create(&store, &p, "big", json!({"text": "é".repeat(50)})).await;
    let bounded = RunFilter { field_bytes: Some(100), ..all.clone() };
    let rows = store.list_runs(bounded).await.expect("list");
    let big = rows.iter().find(|r| r.run_id == "big").expect("listed");
    assert_eq!(big.input_vars, Some(json!({"_omitted": {"bytes": 111}})));
    assert_eq!(big.output_vars, None);
    let small = rows.iter().find(|r| r.run_id == "run0").expect("listed");
    assert_eq!(small.input_vars, Some(json!({})), "small fields stay whole");
    let whole = store.list_runs(all.clone()).await.expect("list");
    let big = whole.iter().find(|r| r.run_id == "big").expect("listed");
    assert_eq!(big.input_vars, Some(json!({"text": "é".repeat(50)})));
}

async fn queue_leases_priorities_and_timers(store: Arc<dyn Store>) {
    let p = approval_procedure();
    for id in ["low", "high", "later"] {
        create(&store, &p, id, json!({})).await;
    }
    store.enqueue("high", 10, None).await.expect("enqueue");
    store.enqueue("later", 0, Some(Utc::now() + chrono::Duration::hours(1))).await.expect("enqueue");
    let now = Utc::now();
    let first = store.claim("w1", 1_000, now).await.expect("claim").expect("job");
    assert_eq!(first.run_id, "high");
    let second = store.claim("w2", 1_000, now).await.expect("claim").expect("job");
    assert_eq!(second.run_id, "low");
    assert!(store.claim("w3", 1_000, now).await.expect("claim").is_none(), "the delayed job waits");
    assert!(store.next_available().await.expect("next").is_some());
    let idle = store.claim_batch(names(&["w3"]), 1_000, now).await.expect("claim");
    assert!(
        idle.jobs.is_empty() && matches!(idle.next_available, Some(at) if at > now + chrono::Duration::minutes(59)),
        "an idle worker learns when the delayed job is due: {idle:?}"
    );
    assert!(store.heartbeat(first.job_id, "w1", 1_000).await.expect("heartbeat"));
    assert!(!store.heartbeat(first.job_id, "w2", 1_000).await.expect("heartbeat"), "not w2's lease");
    assert!(store.finish(first.job_id, "w1").await.expect("finish"));
    // w2 dies: its lease expires and the job is reclaimed.
    assert_eq!(store.reclaim_expired(now + chrono::Duration::seconds(5)).await.expect("reclaim"), 1);
    let again = store.claim("w3", 1_000, Utc::now()).await.expect("claim").expect("reclaimed job");
    assert_eq!(again.run_id, "low");
    assert_eq!(again.attempts, 2);
    let at = Utc::now() + chrono::Duration::hours(2);
    assert!(store.reschedule(again.job_id, "w3", at).await.expect("reschedule"));
    assert!(store.claim("w3", 1_000, Utc::now()).await.expect("claim").is_none());
    let stats = store.queue_stats().await.expect("stats");
    assert!(stats.depth_by_status.contains(&(JobState::Queued, 2)));
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

async fn batch_claims_give_each_worker_its_own_job(store: Arc<dyn Store>) {
    let p = approval_procedure();
    // "gate" has a step record and waits for a decision, which requeues it ahead of the others.
    create(&store, &p, "gate", json!({})).await;
    execute(&store, &p, "gate").await;
    let d = Decision { key: None, value: json!("approve"), decided_by: None, comment: None };
    store.decide("gate", d).await.expect("decides");
    for id in ["p1", "p2", "later"] {
        create(&store, &p, id, json!({})).await;
    }
    store.enqueue("later", 0, Some(Utc::now() + chrono::Duration::hours(1))).await.expect("enqueue");
    let now = Utc::now();

    let workers = names(&["w1", "w2"]);
    let first = store.claim_batch(workers.clone(), 60_000, now).await.expect("claims");
    assert_eq!(first.jobs.len(), 2, "one job per worker");
    assert_eq!(first.next_available, None, "every worker got a job");
    let mut best: Vec<&str> = first.jobs.iter().map(|c| c.job.run_id.as_str()).collect();
    best.sort_unstable();
    assert_eq!(best, ["gate", "p1"], "the best jobs first (priority, then age)");
    let mut given: Vec<usize> = first.jobs.iter().map(|c| c.worker).collect();
    given.sort_unstable();
    assert_eq!(given, [0, 1], "each job to a distinct worker");
    for c in &first.jobs {
        assert_eq!(c.job.attempts, 1);
        let (mine, other) = (&workers[c.worker], &workers[1 - c.worker]);
        assert!(!store.heartbeat(c.job.job_id, other, 60_000).await.expect("heartbeat"), "not {other}'s lease");
        assert!(store.heartbeat(c.job.job_id, mine, 60_000).await.expect("heartbeat"), "{mine}'s lease");
        // A store that reads the run with the claim reads what a load reads.
        if let Some(stored) = &c.stored {
            assert_eq!(Some(stored), store.load(&c.job.run_id).await.expect("loads").as_ref());
        }
    }

    let second = store.claim_batch(names(&["w3", "w4", "w5"]), 60_000, now).await.expect("claims");
    assert_eq!(second.jobs.len(), 1, "only one more job is ready: {second:?}");
    assert_eq!(second.jobs[0].job.run_id, "p2");
    assert!(
        matches!(second.next_available, Some(at) if at > now + chrono::Duration::minutes(59)),
        "fewer jobs than workers: the claim tells when the delayed job is due: {second:?}"
    );
    let none = store.claim_batch(names(&["w6"]), 60_000, now).await.expect("claims");
    assert!(none.jobs.is_empty() && none.next_available.is_some());
    let nobody = store.claim_batch(Vec::new(), 60_000, now).await.expect("claims");
    assert!(nobody.jobs.is_empty());

    // Concurrent batch claims never share a job.
    for i in 0..30 {
        create(&store, &p, &format!("c{i}"), json!({})).await;
    }
    let mut tasks = Vec::new();
    for t in 0..3 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let workers = (0..4).map(|w| format!("t{t}w{w}")).collect();
                let claims = store.claim_batch(workers, 60_000, Utc::now()).await.expect("claims");
                if claims.jobs.is_empty() {
                    return got;
                }
                got.extend(claims.jobs.into_iter().map(|c| c.job.run_id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("claiming task"));
    }
    let unique: std::collections::HashSet<&String> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (30, 30), "{all:?}");
}

async fn approvals_follow_the_run_and_one_decision_wins(store: Arc<dyn Store>) {
    let p = approval_procedure();
    create(&store, &p, "a1", json!({})).await;
    execute(&store, &p, "a1").await;
    let pending = store.list_approvals(Some(ApprovalStatus::Pending), None, None).await.expect("list");
    assert_eq!(pending.len(), 1);
    let a = &pending[0];
    assert_eq!((a.run_id.as_str(), a.node_id.as_str(), a.prompt.as_str()), ("a1", "g", "ok 1?"));
    assert_eq!(a.run_status, Some(RunStatus::WaitingApproval));
    assert_eq!(store.get_approval(&a.approval_id).await.expect("get").expect("exists").approval_id, a.approval_id);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, id) = (store.clone(), a.approval_id.clone());
        tasks.push(tokio::spawn(async move {
            let d = ApprovalDecision {
                value: json!("approve"),
                decided_by: Some(format!("u{i}")),
                comment: None,
                payload: Map::new(),
            };
            store.decide_approval(&id, d).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("joined") {
            Ok(row) => {
                wins += 1;
                assert_eq!(row.status, ApprovalStatus::Approved);
            }
            Err(e) => assert!(matches!(e, StoreError::Conflict(_)), "unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);
    let d = Decision { key: None, value: json!("approve"), decided_by: None, comment: None };
    assert!(matches!(store.decide("a1", d.clone()).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.decide("nope", d).await, Err(StoreError::NotFound(_))));
    let missing = ApprovalDecision { value: json!("approve"), decided_by: None, comment: None, payload: Map::new() };
    assert!(matches!(store.decide_approval("nope", missing).await, Err(StoreError::NotFound(_))));
    let job = store.claim("w", 10_000, Utc::now()).await.expect("claim").expect("the decision requeued the run");
    assert_eq!(job.run_id, "a1");
    let out = execute(&store, &p, "a1").await;
    assert!(matches!(out, RunOutcome::Completed { .. }), "{out:?}");
    let run = store.get_run("a1").await.expect("get").expect("exists");
    assert_eq!(run.status, RunStatus::Completed);
    assert!(run.ended_at.is_some());
    let events = store.events_after("a1", 0, 1000).await.expect("events");
    assert_eq!(events.iter().filter(|e| e.event_type == "approval_decision_received").count(), 1);
}

async fn cancel_retry_delete(store: Arc<dyn Store>) {
    let p = approval_procedure();
    store.insert_procedure(record("conf_gate", "1")).await.expect("insert");
    create(&store, &p, "c1", json!({})).await;
    execute(&store, &p, "c1").await;
    let refused = store.delete_procedure("conf_gate", "1").await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "a version with a waiting run stays: {refused:?}");
    assert_eq!(store.cancel_run("c1", "test").await.expect("cancel"), RunChange::Done);
    let run = store.get_run("c1").await.expect("get").expect("exists");
    assert_eq!(run.status, RunStatus::Canceled);
    let approvals = store.list_approvals(None, Some("c1".into()), None).await.expect("list");
    assert_eq!(approvals[0].status, ApprovalStatus::Canceled);
    assert!(matches!(store.cancel_run("c1", "again").await, Err(StoreError::Conflict(_))));
    // Retry restarts the run from a fresh checkpoint and queues it.
    let fresh = Engine::new_checkpoint(&p, "c1", &Map::new());
    let retried = store.retry_run("c1", fresh.clone()).await.expect("retry");
    assert_eq!(retried.status, RunStatus::Created);
    assert!(retried.ended_at.is_none());
    assert!(matches!(store.retry_run("c1", fresh).await, Err(StoreError::Conflict(_))), "queued runs are not retried");
    // A run whose job a worker holds gets the request instead.
    let job = store.claim("w", 10_000, Utc::now()).await.expect("claim").expect("queued");
    assert_eq!(job.run_id, "c1");
    assert_eq!(store.cancel_run("c1", "test").await.expect("cancel"), RunChange::Executing);
    assert!(store.cancellation_requested("c1").await.expect("flag"));
    assert!(matches!(store.delete_run("c1").await, Err(StoreError::Conflict(_))), "executing runs are not deleted");
    assert!(store.finish(job.job_id, "w").await.expect("finish"));
    store.delete_run("c1").await.expect("delete");
    assert!(store.get_run("c1").await.expect("get").is_none());
    assert!(store.events_after("c1", 0, 10).await.expect("events").is_empty());
    assert!(store.list_approvals(None, Some("c1".into()), None).await.expect("list").is_empty());
    assert!(matches!(store.delete_run("c1").await, Err(StoreError::NotFound(_))));
    create(&store, &p, "old", json!({})).await;
    store.cancel_run("old", "test").await.expect("cancel");
    let cutoff = (Utc::now() + chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(store.cleanup_runs(&cutoff, Some(RunStatus::Completed), false).await.expect("cleanup"), 0);
    assert_eq!(store.cleanup_runs(&cutoff, None, false).await.expect("cleanup"), 1);
    assert!(store.get_run("old").await.expect("get").is_none());
}

async fn cleanup_dry_run_counts_what_cleanup_deletes(store: Arc<dyn Store>) {
    let p = approval_procedure();
    let ids = ["d1", "d2", "d3"];
    for id in ids {
        create(&store, &p, id, json!({})).await;
    }
    // A worker holds one of them; the others are canceled. Neither the deletion nor its dry run takes a run that
    // has not ended.
    let job = store.claim("w", 10_000, Utc::now()).await.expect("claim").expect("queued");
    for id in ids.iter().filter(|id| **id != job.run_id) {
        assert_eq!(store.cancel_run(id, "test").await.expect("cancel"), RunChange::Done);
    }
    let cutoff = (Utc::now() + chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let past = "2000-01-01T00:00:00.000000Z";
    let dry = async |before: &str, status| store.cleanup_runs(before, status, true).await.expect("dry run");
    assert_eq!(dry(&cutoff, None).await, 2);
    assert_eq!(dry(&cutoff, Some(RunStatus::Canceled)).await, 2);
    assert_eq!(dry(&cutoff, Some(RunStatus::Created)).await, 0, "a run that has not ended is never taken");
    assert_eq!(dry(&cutoff, Some(RunStatus::Completed)).await, 0);
    assert_eq!(dry(past, None).await, 0);
    for id in ids {
        assert!(store.get_run(id).await.expect("get").is_some(), "a dry run deletes nothing: {id}");
    }
    assert_eq!(store.cleanup_runs(&cutoff, None, false).await.expect("cleanup"), 2, "what the dry run counted");
    for id in ids {
        assert_eq!(store.get_run(id).await.expect("get").is_some(), id == job.run_id, "{id}");
    }
    assert_eq!(dry(&cutoff, None).await, 0);
    assert!(store.finish(job.job_id, "w").await.expect("finish"));
    assert_eq!(dry(&cutoff, None).await, 0, "released but not ended, it stays");
    assert!(store.get_run(&job.run_id).await.expect("get").is_some());
}

async fn registry_tables(store: Arc<dyn Store>) {
    let project = store.create_project("Ops", Some("d".into())).await.expect("project");
    assert_eq!(store.list_projects().await.expect("list"), vec![project.clone()]);
    let renamed = store.update_project(&project.project_id, Some("Ops2".into()), None).await.expect("update");
    assert_eq!((renamed.name.as_str(), renamed.description.as_deref()), ("Ops2", Some("d")));
    let mut proc_record = record("owned", "1");
    proc_record.project_id = Some(project.project_id.clone());
    store.insert_procedure(proc_record).await.expect("insert");
    assert!(matches!(store.delete_project(&project.project_id).await, Err(StoreError::Conflict(_))));
    store.delete_procedure("owned", "1").await.expect("delete");
    store.delete_project(&project.project_id).await.expect("delete");
    assert!(store.get_project(&project.project_id).await.expect("get").is_none());
    let costs = store.project_costs("none", Utc::now()).await.expect("costs");
    assert_eq!(costs.run_count, 0);

    let agent = AgentRow {
        agent_id: "web_a".into(),
        name: "a".into(),
        channel: "web".into(),
        base_url: "http://127.0.0.1:1".into(),
        status: AgentStatus::Online,
        concurrency_limit: 2,
        resource_key: "web_default".into(),
        pool_id: None,
        capabilities: json!([{"name": "click"}]),
        consecutive_failures: 0,
        circuit_open_at: None,
        last_heartbeat_at: None,
        updated_at: String::new(),
    };
    store.insert_agent(agent.clone()).await.expect("agent");
    assert!(matches!(store.insert_agent(agent).await, Err(StoreError::Conflict(_))));
    let update = AgentUpdate { status: Some(AgentStatus::Offline), ..AgentUpdate::default() };
    assert_eq!(store.update_agent("web_a", update).await.expect("update").status, AgentStatus::Offline);
    assert!(matches!(store.update_agent("nope", AgentUpdate::default()).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.list_agents().await.expect("list").len(), 1);
    store.delete_agent("web_a").await.expect("delete");
    assert!(matches!(store.delete_agent("web_a").await, Err(StoreError::NotFound(_))));

    let p = approval_procedure();
    create(&store, &p, "leaser", json!({})).await;
    let ttl = chrono::Duration::seconds(60);
    let step = |s: &str| Some(s.to_owned());
    let l1 = store.acquire_lease("res", 2, "leaser", None, step("s1"), ttl).await.expect("lease").expect("room");
    store.acquire_lease("res", 2, "leaser", None, step("s2"), ttl).await.expect("lease").expect("room");
    assert!(store.acquire_lease("res", 2, "leaser", None, step("s3"), ttl).await.expect("lease").is_none(), "busy");
    // The same step dispatched again (after a crash) takes over its own lease, even at the limit.
    let again = store.acquire_lease("res", 2, "leaser", Some("n".into()), Some("s".into()), ttl).await.expect("lease");
    assert!(again.is_none(), "another step waits while the resource is full");
    assert!(store.release_lease(&l1.lease_id).await.expect("release"));
    let mine = store.acquire_lease("res", 2, "leaser", Some("n".into()), Some("s".into()), ttl).await.expect("lease");
    let mine = mine.expect("room after the release");
    let taken_over =
        store.acquire_lease("res", 2, "leaser", Some("n".into()), Some("s".into()), ttl).await.expect("lease");
    assert_eq!(taken_over.map(|l| l.lease_id), Some(mine.lease_id.clone()), "its own lease, not a new one");
    assert!(store.release_lease(&mine.lease_id).await.expect("release"));
    assert!(!store.release_lease(&l1.lease_id).await.expect("release"), "released once");
    assert!(store.acquire_lease("res", 2, "leaser", None, None, ttl).await.expect("lease").is_some());
    assert_eq!(store.list_leases(Some("res".into())).await.expect("list").len(), 4);
    assert_eq!(store.run_leases("leaser").await.expect("list").len(), 2);
    assert!(store.run_artifacts("leaser").await.expect("artifacts").is_empty());
}

async fn changes_are_announced_after_commit(store: Arc<dyn Store>) {
    let mut run = store.watch_run("n1");
    let mut other = store.watch_run("n2");
    let mut all = store.watch_all();
    let p = approval_procedure();
    create(&store, &p, "n1", json!({})).await;
    let wait = std::time::Duration::from_secs(5);
    tokio::time::timeout(wait, run.changed()).await.expect("announced").expect("open");
    // Whatever is announced is already readable.
    assert!(store.get_run("n1").await.expect("get").is_some());
    tokio::time::timeout(wait, all.changed()).await.expect("announced").expect("open");
    assert!(!other.has_changed().expect("open"), "a commit wakes only its run's followers");
    execute(&store, &p, "n1").await;
    tokio::time::timeout(wait, run.changed()).await.expect("announced").expect("open");
    assert_eq!(store.get_run("n1").await.expect("get").expect("exists").status, RunStatus::WaitingApproval);
    let _ = other.borrow_and_update();
}

/// Agents whose every step is taken by an async workflow; counts the dispatches.
#[derive(Default)]
struct Delegating(std::sync::atomic::AtomicUsize);

impl ckp_engine::effects::Agents for Delegating {
    fn execute(&self, _req: ckp_engine::effects::AgentRequest) -> BoxFuture<'_, Result<Value, ckp_engine::StepError>> {
        Box::pin(async {
            Err(ckp_engine::StepError::new(ckp_engine::ErrorKind::AgentError, "tools are not used here"))
        })
    }

    fn dispatch(
        &self,
        _req: ckp_engine::effects::AgentRequest,
    ) -> BoxFuture<'_, Result<ckp_engine::effects::AgentReply, ckp_engine::StepError>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async {
            Ok(ckp_engine::effects::AgentReply::Delegated {
                agent_url: "http://agent".into(),
                callback_url: "http://ckp/callback".into(),
            })
        })
    }
}

async fn one_workflow_callback_resumes_a_paused_run(store: Arc<dyn Store>) {
    use ckp_engine::callback::{Callback, CallbackOutcome};
    let doc = json!({"procedure_id": "conf_wf", "version": "1", "workflow_graph": {"start_node": "a", "nodes": {
        "a": {"type": "sequence", "agent": "erp", "steps": [{"step_id": "s", "action": "post", "output_variable": "r"}],
              "next_node": "end"},
        "end": {"type": "terminate"}
    }}});
    let p = Arc::new(ckp_core::compile_value(&doc).procedure.expect("compiles"));
    store.insert_procedure(record("conf_wf", "1")).await.expect("insert");
    create(&store, &p, "w1", json!({})).await;
    let agents = Arc::new(Delegating::default());
    let journal: Arc<dyn Journal> = store.clone();
    let effects = Effects { agents: Some(agents.clone()), ..Effects::default() };
    let engine = Engine::new(journal, effects);
    let out = engine.resume(p.clone(), "w1").await.expect("executes");
    assert!(matches!(out, RunOutcome::AwaitingCallback(ref c) if c.len() == 1), "{out:?}");
    assert_eq!(store.get_run("w1").await.expect("get").expect("exists").status, RunStatus::Paused);
    let callback = |i: i64| Callback {
        node_id: Some("a".into()),
        step_id: Some("s".into()),
        outcome: CallbackOutcome::Success { output: json!({"n": i}).as_object().cloned().unwrap_or_default() },
    };
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        let c = callback(i);
        tasks.push(tokio::spawn(async move { store.workflow_callback("w1", c).await }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("joined") {
            Ok(queued) => {
                assert!(queued);
                wins += 1;
            }
            Err(e) => assert!(matches!(e, StoreError::Conflict(_)), "unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);
    assert!(matches!(store.workflow_callback("nope", callback(0)).await, Err(StoreError::NotFound(_))));
    let job = store.claim("w", 10_000, Utc::now()).await.expect("claim").expect("the callback queued the run");
    assert_eq!(job.run_id, "w1");
    let out = engine.resume(p, "w1").await.expect("executes");
    let outputs = match out {
        RunOutcome::Completed { outputs } => outputs,
        other => Map::from_iter([("unexpected".to_owned(), Value::String(format!("{other:?}")))]),
    };
    assert!(outputs.get("n").is_some_and(Value::is_number), "the output is merged into the variables: {outputs:?}");
    assert_eq!(outputs.get("r"), outputs.get("n").map(|n| json!({"n": n})).as_ref(), "{outputs:?}");
    assert_eq!(agents.0.load(std::sync::atomic::Ordering::SeqCst), 1, "dispatched once");
    let events = store.events_after("w1", 0, 1000).await.expect("events");
    assert_eq!(events.iter().filter(|e| e.event_type == "workflow_callback_received").count(), 1);
}

async fn secrets_rows(store: Arc<dyn Store>) {
    let new = |name: &str| SecretRow {
        secret_id: String::new(),
        name: name.into(),
        sealed_value: format!("sealed-{name}"),
        description: Some("d".into()),
        provider_hint: "db".into(),
        tags: vec!["t1".into()],
        created_by: Some("admin".into()),
        created_at: String::new(),
        updated_at: String::new(),
    };
    let b = store.insert_secret(new("b_key")).await.expect("insert");
    assert!(!b.secret_id.is_empty() && !b.created_at.is_empty());
    let a = store.insert_secret(new("a_key")).await.expect("insert");
    assert!(matches!(store.insert_secret(new("a_key")).await, Err(StoreError::Conflict(_))));
    let names: Vec<String> = store.list_secrets().await.expect("list").into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["a_key", "b_key"], "by name");
    assert_eq!(store.get_secret("a_key").await.expect("get"), Some(a.clone()));
    assert_eq!(store.get_secret("nope").await.expect("get"), None);
    let update = SecretUpdate { sealed_value: Some("sealed-2".into()), tags: Some(vec![]), ..SecretUpdate::default() };
    let changed = store.update_secret("a_key", update.clone()).await.expect("update");
    assert_eq!(
        (changed.sealed_value.as_str(), changed.tags.len(), changed.description.as_deref(), &changed.secret_id),
        ("sealed-2", 0, Some("d"), &a.secret_id),
        "only the given fields change"
    );
    assert_eq!(store.get_secret("a_key").await.expect("get"), Some(changed));
    assert!(matches!(store.update_secret("nope", update).await, Err(StoreError::NotFound(_))));
    store.delete_secret("a_key").await.expect("delete");
    assert!(matches!(store.delete_secret("a_key").await, Err(StoreError::NotFound(_))));
    assert_eq!(store.list_secrets().await.expect("list").len(), 1);
}
