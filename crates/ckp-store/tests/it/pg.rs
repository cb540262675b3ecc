//! PostgreSQL-only behaviour: group commit; a dead process's jobs reclaimed through its liveness lock.

use std::sync::Arc;

use ckp_engine::effects::Effects;
use ckp_engine::journal::Commit;
use ckp_engine::{Engine, Event, RunOutcome};
use ckp_store::{JobState, NewRun, PgOptions, PgStore, QueueStore, RunStore, StoreError};
use serde_json::{Map, json};

use crate::conformance::pg_test_url;

/// Commits that wait while others are written go together, in one transaction; one that PostgreSQL refuses fails
/// alone, with its own error and nothing written, and the others of its batch are written one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_share_transactions_and_a_refused_one_fails_alone() {
    let url = PgStore::create_schema(&pg_test_url(), "group_commit")
        .await
        .expect("PostgreSQL must be running on 127.0.0.1:5432 (or set CKP_TEST_DATABASE_URL)");
    let store = Arc::new(PgStore::connect(&url, PgOptions::default()).await.expect("connects"));
    let doc = json!({"procedure_id": "gc", "version": "1", "workflow_graph": {"start_node": "a", "nodes": {
        "a": {"type": "sequence", "steps": [
            {"step_id": "s1", "action": "set_variable", "variable": "x", "value": 1},
            {"step_id": "s2", "action": "set_variable", "variable": "y", "value": "{{x}}"}], "next_node": "end"},
        "end": {"type": "terminate", "outputs": {"y": "{{y}}"}}
    }}});
    let p = Arc::new(ckp_core::compile_value(&doc).procedure.expect("compiles"));
    let (runs, refused) = (64, 17);
    let mut tasks = Vec::new();
    for i in 0..runs {
        let (store, p) = (store.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            let run_id = format!("run-{i:02}");
            let cp = Engine::new_checkpoint(&p, &run_id, &Map::new());
            let event = Event::of_run("run_created", json!({}));
            // PostgreSQL refuses a NUL character in text.
            let project = if i == refused { "bad\u{0}project" } else { "proj" };
            let meta = NewRun { run_id, project_id: Some(project.into()), ..NewRun::default() };
            store.create_run(meta, Commit { events: vec![event], steps: Vec::new(), checkpoint: cp }, true).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("task") {
            Ok(row) if i != refused => assert_eq!(row.run_id, format!("run-{i:02}")),
            Err(StoreError::Invalid(m)) if i == refused => assert!(m.contains("0x00"), "{m}"),
            other => panic!("run {i}: {other:?}"),
        }
    }
    let bad = format!("run-{refused:02}");
    assert!(store.get_run(&bad).await.expect("reads").is_none(), "nothing of the refused commit was written");
    let depth = store.queue_stats().await.expect("stats").depth_by_status;
    assert_eq!(depth, vec![(JobState::Queued, runs as i64 - 1)]);

    // The workers' side: every run executed at once, each commit its own answer.
    let engine = Arc::new(Engine::new(store.clone(), Effects::default()));
    let mut tasks = Vec::new();
    for i in (0..runs).filter(|&i| i != refused) {
        let (engine, p) = (engine.clone(), p.clone());
        tasks.push(tokio::spawn(async move { engine.resume(p, &format!("run-{i:02}")).await }));
    }
    for t in tasks {
        let out = t.await.expect("task").expect("executes");
        let RunOutcome::Completed { outputs } = out else { panic!("{out:?}") };
        assert_eq!(outputs["y"], 1);
    }
    for i in (0..runs).filter(|&i| i != refused) {
        let events = store.events(&format!("run-{i:02}")).await.expect("events");
        assert_eq!(events.first().map(|e| e.event_type.as_str()), Some("run_created"));
        assert_eq!(events.last().map(|e| e.event_type.as_str()), Some("run_completed"));
        assert_eq!(events.iter().filter(|e| e.event_type == "run_completed").count(), 1);
    }
    let stats = store.group_commit_stats();
    assert!(stats.commits >= 2 * (runs as u64 - 1), "{stats:?}");
    assert!(stats.transactions < stats.commits, "some commits were written together: {stats:?}");
}

/// A process that holds its liveness lock keeps its jobs however long their leases; once its sessions end (the
/// store dropped, as a killed process's are), its jobs are back in the queue after two checks, long before their
/// leases expire. A worker of a process that took no lock is left to its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owners_jobs_are_reclaimed_before_their_leases_expire() {
    let url = PgStore::create_schema(&pg_test_url(), "owners")
        .await
        .expect("PostgreSQL must be running on 127.0.0.1:5432 (or set CKP_TEST_DATABASE_URL)");
    let owned = |owner: &str| PgOptions { owner: Some(owner.into()), ..PgOptions::default() };
    assert!(matches!(PgStore::connect(&url, owned("a-1")).await, Err(StoreError::Invalid(_))), "no `-` in an owner");
    let leader = PgStore::connect(&url, PgOptions::default()).await.expect("connects");
    let alive = PgStore::connect(&url, owned("alive")).await.expect("connects");
    let dying = PgStore::connect(&url, owned("dying")).await.expect("connects");
    let lease = 600_000;
    for run in ["r1", "r2", "r3", "r4"] {
        leader.enqueue(run, 0, None).await.expect("enqueue");
    }
    let now = chrono::Utc::now() + chrono::Duration::seconds(1);
    let kept = alive.claim("alive-0", lease, now).await.expect("claim").expect("a job");
    let lost = dying.claim_batch(vec!["dying-0".into(), "dying-1".into()], lease, now).await.expect("claim");
    assert_eq!(lost.jobs.len(), 2);
    let unowned = leader.claim("w-0", lease, now).await.expect("claim").expect("a job");
    // Everyone alive: nothing to reclaim, however often it is checked.
    for _ in 0..3 {
        assert_eq!(leader.reclaim_orphaned().await.expect("check"), 0);
    }
    drop(dying);
    // Its sessions end shortly after; the first check that misses its lock suspects it, the next reclaims.
    let mut reclaimed = 0;
    for _ in 0..50 {
        reclaimed += leader.reclaim_orphaned().await.expect("check");
        if reclaimed > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(reclaimed, 2, "exactly the dead owner's jobs");
    assert_eq!(leader.reclaim_orphaned().await.expect("check"), 0, "once");
    let again = leader.claim_batch(vec!["w-1".into(), "w-2".into()], lease, now).await.expect("claim");
    let mut ids: Vec<i64> = again.jobs.iter().map(|c| c.job.job_id).collect();
    let mut expected: Vec<i64> = lost.jobs.iter().map(|c| c.job.job_id).collect();
    ids.sort_unstable();
    expected.sort_unstable();
    assert_eq!(ids, expected, "the dead owner's jobs are claimable again");
    assert!(alive.heartbeat(kept.job_id, "alive-0", lease).await.expect("heartbeat"), "the live owner kept its job");
    assert!(
        leader.heartbeat(unowned.job_id, "w-0", lease).await.expect("heartbeat"),
        "a lockless worker is left alone"
    );
}
