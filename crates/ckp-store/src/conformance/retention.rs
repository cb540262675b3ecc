//! Conformance checks of retention ([`crate::RunStore::delete_expired_runs`]) and of the history cleanup's rule:
//! only terminal top-level runs go, each status after its own cut-off and the oldest beyond the cap, with
//! everything they own and their subflow children; live runs (created, running, paused, waiting for a decision,
//! or with a live child) and children on their own never do; batches respect their limit.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use ckp_core::Procedure;
use ckp_engine::Engine;
use ckp_engine::engine::Decision;
use ckp_engine::journal::{Commit, Journal, RunStatus};
use serde_json::{Map, json};

use super::{create, execute};
use crate::{ApprovalStatus, NewRun, RetentionPolicy, Store};

/// An approval with a recorded step (`generate_id` is a step record) before it: approve → completed, reject →
/// failed.
fn gate() -> Arc<Procedure> {
    let doc = json!({"procedure_id": "conf_keep", "version": "1", "workflow_graph": {"start_node": "a", "nodes": {
        "a": {"type": "sequence", "steps": [{"step_id": "s", "action": "generate_id", "output_variable": "id"}],
              "next_node": "g"},
        "g": {"type": "human_approval", "prompt": "ok?", "on_approve": "yes", "on_reject": "no"},
        "yes": {"type": "terminate", "outputs": {"result": "approved"}},
        "no": {"type": "terminate", "status": "failed"}
    }}});
    Arc::new(ckp_core::compile_value(&doc).procedure.expect("the conformance procedure compiles"))
}

/// Claims the next job as a worker would, which must be `id`'s; its job id.
async fn claim(store: &Arc<dyn Store>, id: &str) -> i64 {
    let job = store.claim("w", 60_000, Utc::now()).await.expect("claim").expect("a queued job");
    assert_eq!(job.run_id, id, "the only ready job");
    job.job_id
}

/// Drives a new run to `status` (completed, failed, canceled or waiting_approval) as a worker would (claims, then
/// executions that release the job); its `ended_at` when it ended.
async fn drive(store: &Arc<dyn Store>, p: &Arc<Procedure>, id: &str, status: RunStatus) -> Option<String> {
    create(store, p, id, json!({})).await;
    claim(store, id).await;
    execute(store, p, id).await;
    let value = match status {
        RunStatus::WaitingApproval => return None,
        RunStatus::Canceled => {
            store.cancel_run(id, "test").await.expect("cancel");
            None
        }
        RunStatus::Completed => Some("approve"),
        _ => Some("reject"),
    };
    if let Some(value) = value {
        let d = Decision { key: None, value: json!(value), decided_by: None, comment: None };
        store.decide(id, d).await.expect("decided");
        claim(store, id).await;
        execute(store, p, id).await;
    }
    let run = store.get_run(id).await.expect("get").expect("exists");
    assert_eq!(run.status, status, "{id}");
    run.ended_at
}

/// A subflow child of `parent` (as the engine records one: `run_created` names the parent), not queued.
async fn child(store: &Arc<dyn Store>, p: &Procedure, parent: &str) -> String {
    let id = format!("{parent}:sub");
    let cp = Engine::new_checkpoint(p, &id, &Map::new());
    let event = ckp_engine::Event::of_run("run_created", json!({"parent_run_id": parent}));
    let meta = NewRun { run_id: id.clone(), ..NewRun::default() };
    store
        .create_run(meta, Commit { events: vec![event], steps: Vec::new(), checkpoint: cp }, false)
        .await
        .expect("child");
    assert_eq!(store.get_run(&id).await.expect("get").expect("child").parent_run_id.as_deref(), Some(parent));
    id
}

/// A run left by a worker with `status` after a commit of its own: `running`, its job still leased (a run being
/// executed); `paused`, its job rescheduled to tomorrow (a durable timer).
async fn left(store: &Arc<dyn Store>, p: &Procedure, id: &str, status: RunStatus) {
    create(store, p, id, json!({})).await;
    let job = claim(store, id).await;
    let mut cp = Engine::new_checkpoint(p, id, &Map::new());
    cp.status = status;
    let wake = Utc::now() + chrono::Duration::days(1);
    if status == RunStatus::Paused {
        cp.wake_at = Some(wake);
    }
    let journal: Arc<dyn Journal> = store.clone();
    journal.commit(id, Commit { events: Vec::new(), steps: Vec::new(), checkpoint: cp }).await.expect("commit");
    if status == RunStatus::Paused {
        assert!(store.reschedule(job, "w", wake).await.expect("reschedule"));
    }
}

/// What a run owns, to compare before and after: (events, step records, approvals).
async fn owned(store: &Arc<dyn Store>, id: &str) -> (usize, usize, usize) {
    let events = store.events_after(id, 0, 10_000).await.expect("events").len();
    let steps = store.step_rows(id).await.expect("steps").len();
    let approvals = store.list_approvals(None, Some(id.into()), None).await.expect("approvals").len();
    (events, steps, approvals)
}

/// Every run id in the store.
async fn all_ids(store: &Arc<dyn Store>) -> BTreeSet<String> {
    let filter = crate::RunFilter { limit: 10_000, ..crate::RunFilter::default() };
    store.list_runs(filter).await.expect("list").into_iter().map(|r| r.run_id).collect()
}

/// Runs retention batches of `limit` until one takes fewer top-level runs; every id deleted.
async fn passes(store: &Arc<dyn Store>, policy: &RetentionPolicy, limit: i64) -> BTreeSet<String> {
    let mut deleted = BTreeSet::new();
    loop {
        let ids = store.delete_expired_runs(policy, limit).await.expect("retention batch");
        let top = ids.iter().filter(|id| !id.contains(':')).count();
        assert!(i64::try_from(top).expect("small") <= limit, "a batch took {top} runs: {ids:?}");
        deleted.extend(ids);
        if i64::try_from(top).expect("small") < limit {
            return deleted;
        }
    }
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

pub(super) async fn retention_deletes_only_expired_terminal_runs(store: Arc<dyn Store>) {
    let p = gate();
    // Live runs first, so they are the oldest of all (but the queued one, created last: it would be claimed).
    drive(&store, &p, "w_old", RunStatus::WaitingApproval).await;
    left(&store, &p, "p_old", RunStatus::Paused).await;
    left(&store, &p, "r_old", RunStatus::Running).await;
    // A canceled child of a waiting run never goes on its own.
    let orphan = child(&store, &p, "w_old").await;
    store.cancel_run(&orphan, "test").await.expect("cancel child");
    // Terminal runs, each ending after the one before.
    let mut ended = std::collections::BTreeMap::new();
    for (id, status) in [
        ("c1", RunStatus::Completed),
        ("f1", RunStatus::Failed),
        ("x1", RunStatus::Canceled),
        ("c2", RunStatus::Completed),
        ("f2", RunStatus::Failed),
        ("x2", RunStatus::Canceled),
        ("c3", RunStatus::Completed),
        ("c4", RunStatus::Completed),
    ] {
        let at = drive(&store, &p, id, status).await.expect("a terminal run has ended_at");
        ended.insert(id, at);
    }
    let times: Vec<&String> = ["c1", "f1", "x1", "c2", "f2", "x2", "c3", "c4"].iter().map(|id| &ended[id]).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "end times in order: {times:?}");
    // c1 has a child that ended (it goes with c1), c3 one that is still alive (c3 stays).
    let c1_child = child(&store, &p, "c1").await;
    store.cancel_run(&c1_child, "test").await.expect("cancel child");
    let c3_child = child(&store, &p, "c3").await;
    create(&store, &p, "q_old", json!({})).await;
    let before = all_ids(&store).await;
    let kept_owned = owned(&store, "x1").await;
    assert!(kept_owned.0 > 0 && kept_owned.1 > 0 && kept_owned.2 > 0, "x1 owns events, steps, approvals");
    let c1_owned = owned(&store, "c1").await;
    assert!(c1_owned.0 > 0 && c1_owned.1 > 0 && c1_owned.2 > 0, "c1 owns events, steps, approvals");

    // Nothing selected: nothing deleted.
    assert!(store.delete_expired_runs(&RetentionPolicy::default(), 10).await.expect("empty policy").is_empty());
    // Cut-offs from the runs' own end times (strictly before): completed before c4, failed before x2, canceled
    // kept; all live runs are older than every cut-off.
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let policy = RetentionPolicy {
        completed_before: Some(ended["c4"].clone()),
        failed_before: Some(ended["x2"].clone()),
        canceled_before: None,
        max_runs: None,
    };
    let deleted = passes(&store, &policy, 1).await;
    let expected = set(&["c1", "c1:sub", "c2", "f1", "f2"]);
    assert_eq!(deleted, expected, "c3 waits for its live child");
    assert_eq!(all_ids(&store).await, before.difference(&expected).cloned().collect(), "nothing else went");
    for id in &expected {
        assert!(store.get_run(id).await.expect("get").is_none(), "{id}");
        assert_eq!(owned(&store, id).await, (0, 0, 0), "{id}'s events, step records and approvals are gone");
    }
    assert_eq!(owned(&store, "x1").await, kept_owned, "a kept run keeps what it owns");
    for id in ["w_old", "p_old", "q_old", "r_old", orphan.as_str(), c3_child.as_str(), "c3", "x1", "x2", "c4"] {
        assert!(store.get_run(id).await.expect("get").is_some(), "{id} kept");
    }
    let pending = store.list_approvals(Some(ApprovalStatus::Pending), Some("w_old".into()), None).await.expect("list");
    assert_eq!(pending.len(), 1, "the waiting run's approval is intact");

    // Every status's cut-off at now: the terminal runs go, the live ones (and c3, whose child lives) stay.
    let all = RetentionPolicy {
        completed_before: Some(now.clone()),
        failed_before: Some(now.clone()),
        canceled_before: Some(now.clone()),
        max_runs: None,
    };
    let deleted = passes(&store, &all, 2).await;
    assert_eq!(deleted, set(&["c4", "x1", "x2"]));
    assert_eq!(all_ids(&store).await, set(&["w_old", "p_old", "q_old", "r_old", &orphan, "c3", &c3_child]));
}

pub(super) async fn retention_caps_the_run_count_with_the_oldest_terminal_runs(store: Arc<dyn Store>) {
    let p = gate();
    drive(&store, &p, "a_wait", RunStatus::WaitingApproval).await;
    for id in ["b", "c", "d", "e", "f"] {
        drive(&store, &p, id, RunStatus::Completed).await;
    }
    drive(&store, &p, "g_wait", RunStatus::WaitingApproval).await;
    // 7 top-level runs (and a child, which does not count), at most 4 kept: the 3 oldest terminal ones go.
    let sub = child(&store, &p, "g_wait").await;
    let cap = RetentionPolicy { max_runs: Some(4), ..RetentionPolicy::default() };
    let first = store.delete_expired_runs(&cap, 2).await.expect("batch");
    assert_eq!(first, ["b", "c"], "oldest first, at most the limit");
    let second = store.delete_expired_runs(&cap, 2).await.expect("batch");
    assert_eq!(second, ["d"], "only as many as the cap asks");
    assert!(store.delete_expired_runs(&cap, 2).await.expect("batch").is_empty());
    assert_eq!(all_ids(&store).await, set(&["a_wait", "e", "f", "g_wait", &sub]));
    // A cap below the live runs takes every terminal run and no live one.
    let tight = RetentionPolicy { max_runs: Some(0), ..RetentionPolicy::default() };
    assert_eq!(passes(&store, &tight, 10).await, set(&["e", "f"]));
    assert_eq!(all_ids(&store).await, set(&["a_wait", "g_wait", &sub]));
}

pub(super) async fn cleanup_takes_terminal_runs_only(store: Arc<dyn Store>) {
    let p = gate();
    drive(&store, &p, "waits", RunStatus::WaitingApproval).await;
    left(&store, &p, "paused", RunStatus::Paused).await;
    drive(&store, &p, "done", RunStatus::Completed).await;
    drive(&store, &p, "gone", RunStatus::Canceled).await;
    create(&store, &p, "queued", json!({})).await;
    let cutoff = (Utc::now() + chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(store.cleanup_runs(&cutoff, None, true).await.expect("dry run"), 2);
    let waiting = Some(RunStatus::WaitingApproval);
    assert_eq!(store.cleanup_runs(&cutoff, waiting, false).await.expect("cleanup"), 0, "a waiting run stays");
    assert_eq!(store.cleanup_runs(&cutoff, None, false).await.expect("cleanup"), 2);
    assert_eq!(all_ids(&store).await, set(&["waits", "queued", "paused"]));
    let d = Decision { key: None, value: json!("approve"), decided_by: None, comment: None };
    assert!(store.decide("waits", d).await.is_ok(), "its approval can still be decided");
    assert!(matches!(store.get_run("gone").await, Ok(None)));
}

pub(super) async fn incremental_vacuum_gives_free_pages_back(store: Arc<dyn Store>) {
    let p = gate();
    let big = "x".repeat(200_000);
    for i in 0..4 {
        let id = format!("big{i}");
        create(&store, &p, &id, json!({"blob": big})).await;
        store.cancel_run(&id, "test").await.expect("cancel");
    }
    let before = store.reclaim_space(0).await.expect("reclaim nothing");
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let policy = RetentionPolicy { canceled_before: Some(now), ..RetentionPolicy::default() };
    assert_eq!(passes(&store, &policy, 10).await.len(), 4);
    let freed = store.reclaim_space(100_000).await.expect("reclaim");
    if freed.enabled {
        // SQLite: the deleted inputs' pages were free, and are given back.
        assert_eq!(before.free_before, before.free_after, "max_pages 0 gives nothing back");
        assert!(freed.free_before > 40, "{freed:?}");
        assert_eq!(freed.free_after, 0, "{freed:?}");
    } else {
        assert_eq!(freed, crate::SpaceReclaimed::default(), "PostgreSQL leaves it to autovacuum");
    }
}
