//! Workers over the SQLite queue: runs created and queued, executed by two workers, approvals decided (and the
//! run requeued) in one transaction, durable timers rescheduled, and nothing executed twice.
#![expect(clippy::panic, reason = "test helpers fail by panicking")]

mod alerts;
mod api;
mod auth;
mod authoring;
mod catalog;
mod console;
mod dispatch;
mod egress;
mod endpoints;
mod file_triggers;
mod ldap;
mod mcp;
mod metrics;
mod pricing;
mod retention;
mod run_report;
mod sso;
mod support;
mod traces;
mod triggers;
mod workflow;

use std::sync::Arc;
use std::time::Duration;

use ckp_core::Procedure;
use ckp_engine::effects::Effects;
use ckp_engine::engine::ProcedureSet;
use ckp_engine::journal::{Journal, RunStatus};
use ckp_engine::{Decision, Engine, EngineConfig};
use ckp_server::worker::{WorkerConfig, run_reclaimer, run_workers};
use ckp_store::{ApprovalStore, QueueStore, SqliteOptions, SqliteStore};
use serde_json::{Map, Value, json};

fn compiled_fixture(name: &str) -> Arc<Procedure> {
    Arc::new(ckp_core::compile_value(&support::fixture(name)).procedure.unwrap_or_else(|| panic!("{name}")))
}

fn timer() -> Arc<Procedure> {
    let doc = json!({"procedure_id": "timer", "version": "1", "workflow_graph": {"start_node": "w", "nodes": {
        "w": {"type": "sequence", "steps": [{"step_id": "p", "action": "log", "message": "late", "wait_ms": 150}], "next_node": "end"},
        "end": {"type": "terminate"}
    }}});
    Arc::new(ckp_core::compile_value(&doc).procedure.expect("compiles"))
}

fn inputs(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

async fn status(store: &SqliteStore, run_id: &str) -> RunStatus {
    store.load(run_id).await.expect("load").expect("exists").checkpoint.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_execute_queued_runs_with_approvals_and_timers() {
    let dir = std::env::temp_dir().join(format!("ckp-worker-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(SqliteStore::open(dir.join("ckp.db"), SqliteOptions::default()).expect("opens"));
    let (lookup, review, timer) =
        (compiled_fixture("ticket_lookup.ckp.json"), compiled_fixture("article_review.ckp.json"), timer());
    let procedures: Arc<ProcedureSet> = Arc::new(ProcedureSet(vec![lookup.clone(), review.clone(), timer.clone()]));
    let config = EngineConfig { inline_wait_ms: 50, ..EngineConfig::default() };
    let engine = Arc::new(
        Engine::new(store.clone(), Effects::default()).with_config(config).with_procedures(procedures.clone()),
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let workers = vec![
        tokio::spawn(run_workers(
            store.clone(),
            engine.clone(),
            procedures.clone(),
            WorkerConfig { workers: 2, ..WorkerConfig::new("w") },
            shutdown.clone(),
        )),
        tokio::spawn(run_reclaimer(store.clone(), Duration::from_millis(200), shutdown.clone())),
    ];

    let mut ids = Vec::new();
    for i in 0..30 {
        let (p, input) = match i % 3 {
            0 => (&lookup, json!({"ticket_id": 1 + i})),
            1 => (&review, json!({"article_id": 1 + i})),
            _ => (&timer, json!({})),
        };
        let id = format!("run-{i}");
        assert!(engine.create(p, &id, inputs(input)).await.expect("creates").is_none());
        store.enqueue(&id, 0, None).await.expect("enqueues");
        ids.push((id, i % 3));
    }
    // Approve every paused review run as soon as it waits.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut done = 0;
        for (id, kind) in &ids {
            match status(&store, id).await {
                RunStatus::Completed => done += 1,
                RunStatus::WaitingApproval if *kind == 1 => {
                    let d =
                        Decision { key: None, value: json!("approve"), decided_by: Some("t".into()), comment: None };
                    // One transaction: decision recorded, run requeued.
                    store.decide(id, d).await.expect("decides");
                }
                RunStatus::Failed | RunStatus::Canceled => panic!("{id} ended {:?}", status(&store, id).await),
                _ => {}
            }
        }
        if done == ids.len() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "only {done} of {} runs completed", ids.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).expect("stop");
    for w in workers {
        w.await.expect("worker ends");
    }
    for (id, _) in &ids {
        let events = store.events(id).await.expect("events");
        let mut seen = std::collections::HashSet::new();
        for e in &events {
            assert!(seen.insert((e.event_type.clone(), e.node_id.clone(), e.step_id.clone())), "{id}: duplicate {e:?}");
        }
        assert_eq!(events.last().map(|e| e.event_type.as_str()), Some("run_completed"), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_stop_when_their_shutdown_signal_is_dropped() {
    let dir = std::env::temp_dir().join(format!("ckp-worker-drop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(SqliteStore::open(dir.join("ckp.db"), SqliteOptions::default()).expect("opens"));
    let procedures: Arc<ProcedureSet> = Arc::new(ProcedureSet(Vec::new()));
    let engine = Arc::new(Engine::new(store.clone(), Effects::default()).with_procedures(procedures.clone()));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(run_workers(
        store,
        engine,
        procedures,
        WorkerConfig { workers: 3, ..WorkerConfig::new("w") },
        shutdown,
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(stop);
    // Not a timing check: a generous bound on "it returns" instead of spinning on the closed channel.
    tokio::time::timeout(Duration::from_secs(20), workers).await.expect("workers returned").expect("no panic");
}
