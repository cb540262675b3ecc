//! The SQLite store under the engine: persistence across reopen, concurrent runs (group commit), crashes around
//! commits, migrations.
#![expect(clippy::panic, reason = "test helpers fail by panicking")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod conformance;
mod pg;
mod queue;

use ckp_core::Procedure;
use ckp_engine::effects::{BoxFuture, Effects};
use ckp_engine::journal::{Commit, Journal, Stored};
use ckp_engine::{Decision, Engine, EngineError, RunOutcome};
use ckp_store::{ApprovalStore, QueueStore, RunStore, SqliteOptions, SqliteStore, StoreError, Synchronous};
use serde_json::{Map, Value, json};

/// A fixture procedure of the repository's `tests/fixtures/`, compiled.
fn fixture(name: &str) -> Arc<Procedure> {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Arc::new(ckp_core::compile(&text).procedure.unwrap_or_else(|| panic!("{name} does not compile")))
}

pub(crate) fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ckp-store-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("ckp.db")
}

fn inputs(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_paused_run_survives_closing_the_database() {
    let db = temp_db("reopen");
    let p = fixture("article_review.ckp.json");
    {
        let store = Arc::new(SqliteStore::open(&db, SqliteOptions::default()).expect("opens"));
        let out = Engine::new(store, Effects::default())
            .start(p.clone(), "r1", inputs(json!({"article_id": 3})))
            .await
            .expect("runs");
        assert!(matches!(out, RunOutcome::WaitingApproval(_)), "{out:?}");
    }
    let store = Arc::new(SqliteStore::open(&db, SqliteOptions { synchronous: Synchronous::Full }).expect("reopens"));
    let engine = Engine::new(store.clone(), Effects::default());
    let d = Decision { key: None, value: json!("approve"), decided_by: Some("ann".into()), comment: None };
    let out = engine.decide(p, "r1", d).await.expect("decides");
    let RunOutcome::Completed { outputs } = out else { panic!("{out:?}") };
    assert_eq!(outputs["publication"]["status"], "published");
    let events = store.events("r1").await.expect("events");
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types.first(), Some(&"run_created"));
    assert_eq!(types.last(), Some(&"run_completed"));
    assert_eq!(types.iter().filter(|t| **t == "approval_decision_received").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_share_one_writer() {
    let db = temp_db("concurrent");
    let store = Arc::new(SqliteStore::open(&db, SqliteOptions::default()).expect("opens"));
    let engine = Arc::new(Engine::new(store.clone(), Effects::default()));
    let p = fixture("ticket_lookup.ckp.json");
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (engine, p) = (engine.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            engine.start(p, &format!("run-{i}"), inputs(json!({"ticket_id": i % 100 + 1}))).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let out = t.await.expect("task").expect("runs");
        let RunOutcome::Completed { outputs } = out else { panic!("{out:?}") };
        assert_eq!(outputs["ticket"]["id"], i % 100 + 1);
    }
    for i in [0, 50, 99] {
        let events = store.events(&format!("run-{i}")).await.expect("events");
        assert_eq!(events.first().map(|e| e.event_type.as_str()), Some("run_created"));
        assert_eq!(events.last().map(|e| e.event_type.as_str()), Some("run_completed"));
    }
}

/// Forwards to a store and fails the n-th commit, before or after it is durable.
struct Crashing {
    inner: Arc<SqliteStore>,
    countdown: AtomicUsize,
    after: bool,
}

impl Journal for Crashing {
    fn load(&self, run_id: &str) -> BoxFuture<'_, Result<Option<Stored>, EngineError>> {
        self.inner.load(run_id)
    }

    fn commit(&self, run_id: &str, commit: Commit) -> BoxFuture<'_, Result<(), EngineError>> {
        let hit = self.countdown.fetch_sub(1, Ordering::SeqCst) == 1;
        if hit && !self.after {
            return Box::pin(async { Err(EngineError::Journal("crash before commit".into())) });
        }
        let fut = self.inner.commit(run_id, commit);
        Box::pin(async move {
            fut.await?;
            if hit { Err(EngineError::Journal("crash after commit".into())) } else { Ok(()) }
        })
    }
}

#[tokio::test]
async fn crashes_around_every_commit_leave_one_clean_history() {
    let p = fixture("article_review.ckp.json");
    for n in 1..=5 {
        for after in [false, true] {
            let db = temp_db(&format!("crash-{n}-{after}"));
            let store = Arc::new(SqliteStore::open(&db, SqliteOptions::default()).expect("opens"));
            let crashing = Arc::new(Crashing { inner: store.clone(), countdown: AtomicUsize::new(n), after });
            let first =
                Engine::new(crashing, Effects::default()).start(p.clone(), "r", inputs(json!({"article_id": 1}))).await;
            let engine = Engine::new(store.clone(), Effects::default());
            let mut out = match first {
                Ok(o) => o,
                Err(EngineError::Journal(_)) => match engine.resume(p.clone(), "r").await {
                    Err(EngineError::RunNotFound(_)) => {
                        engine.start(p.clone(), "r", inputs(json!({"article_id": 1}))).await.expect("starts")
                    }
                    other => other.expect("resumes"),
                },
                Err(e) => panic!("{e}"),
            };
            if let RunOutcome::WaitingApproval(_) = out {
                let d = Decision { key: None, value: json!("approve"), decided_by: None, comment: None };
                out = engine.decide(p.clone(), "r", d).await.expect("decides");
            }
            assert!(matches!(out, RunOutcome::Completed { .. }), "n={n} after={after}: {out:?}");
            let events = store.events("r").await.expect("events");
            let mut seen = std::collections::HashSet::new();
            for e in &events {
                let key = format!("{} {:?} {:?} {}", e.event_type, e.node_id, e.step_id, e.payload);
                assert!(
                    seen.insert(key.clone()) || e.event_type == "loop_iteration",
                    "n={n} after={after}: duplicate {key}"
                );
            }
        }
    }
}

/// Every run's variables are in the database: its file and the WAL beside it are for their owner only, whatever
/// the process's umask.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_and_its_wal_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let db = temp_db("private");
    let store = Arc::new(SqliteStore::open(&db, SqliteOptions::default()).expect("opens"));
    let p = fixture("article_review.ckp.json");
    let engine = Engine::new(store.clone(), Effects::default());
    engine.start(p, "r", inputs(json!({"article_id": 2}))).await.expect("runs");
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    for file in [db.clone(), std::path::PathBuf::from(wal)] {
        let mode = std::fs::metadata(&file).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
    }
}

#[test]
fn a_database_from_a_newer_ckp_is_refused() {
    let db = temp_db("newer");
    drop(SqliteStore::open(&db, SqliteOptions::default()).expect("opens"));
    let conn = rusqlite::Connection::open(&db).expect("raw open");
    conn.pragma_update(None, "user_version", 99).expect("set version");
    drop(conn);
    match SqliteStore::open(&db, SqliteOptions::default()) {
        Err(StoreError::SchemaTooNew { found: 99, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_decisions_one_winner() {
    let db = temp_db("decisions");
    let store = Arc::new(SqliteStore::open(&db, SqliteOptions::default()).expect("opens"));
    let p = fixture("article_review.ckp.json");
    let engine = Engine::new(store.clone(), Effects::default());
    let out = engine.start(p.clone(), "r", inputs(json!({"article_id": 2}))).await.expect("runs");
    assert!(matches!(out, RunOutcome::WaitingApproval(_)));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let d = Decision {
                key: None,
                value: json!(if i % 2 == 0 { "approve" } else { "reject" }),
                decided_by: Some(format!("u{i}")),
                comment: None,
            };
            store.decide("r", d).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(pending) => {
                assert!(pending.is_empty());
                wins += 1;
            }
            Err(StoreError::Conflict(m)) => assert!(m.contains("not waiting"), "{m}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(wins, 1);
    let decisions = store
        .events("r")
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.event_type == "approval_decision_received")
        .count();
    assert_eq!(decisions, 1);
    let job = store
        .claim("w", 60_000, chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .expect("claim")
        .expect("queued once");
    assert_eq!(job.run_id, "r");
    assert!(
        store.claim("w", 60_000, chrono::Utc::now() + chrono::Duration::seconds(1)).await.expect("claim").is_none()
    );
    let out = engine.resume(p, "r").await.expect("resumes");
    assert!(matches!(out, RunOutcome::Completed { .. } | RunOutcome::Failed { .. }), "{out:?}");
    match store
        .decide("missing", Decision { key: None, value: json!("approve"), decided_by: None, comment: None })
        .await
    {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn migration_5_moves_event_rows_into_batches_in_order() {
    let db = temp_db("migrate-events");
    std::fs::create_dir_all(db.parent().expect("dir")).expect("dir");
    {
        // A database as schema 4 left it, with two runs' events as rows.
        let c = rusqlite::Connection::open(&db).expect("opens");
        for sql in [
            include_str!("../../migrations/sqlite/0001_journal.sql"),
            include_str!("../../migrations/sqlite/0002_run_jobs.sql"),
            include_str!("../../migrations/sqlite/0003_procedures.sql"),
            include_str!("../../migrations/sqlite/0004_server.sql"),
        ] {
            c.execute_batch(sql).expect("old migration");
        }
        c.pragma_update(None, "user_version", 4).expect("version");
        for run in ["a", "b"] {
            c.execute(
                "INSERT INTO runs (run_id, procedure_id, procedure_version, status, checkpoint, created_at, updated_at)
                 VALUES (?1, 'p', '1', 'completed', '{}', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                [run],
            )
            .expect("run");
        }
        for (run, t, payload) in [
            ("a", "run_created", "{}"),
            ("b", "run_created", "{}"),
            ("a", "step_log", "{\"message\":\"hi\"}"),
            ("a", "run_completed", "{\"outputs\":{}}"),
        ] {
            c.execute(
                "INSERT INTO run_events (run_id, event_type, node_id, step_id, payload, created_at)
                 VALUES (?1, ?2, NULL, NULL, ?3, '2026-01-01T00:00:01.000000Z')",
                [run, t, payload],
            )
            .expect("event");
        }
    }
    let store = SqliteStore::open(&db, SqliteOptions::default()).expect("migrates");
    let a: Vec<String> = store.events("a").await.expect("events").into_iter().map(|e| e.event_type).collect();
    assert_eq!(a, ["run_created", "step_log", "run_completed"]);
    let rows = store.events_after("a", 0, 100).await.expect("rows");
    assert_eq!(rows[1].payload.as_deref(), Some("{\"message\":\"hi\"}"));
    assert!(rows.windows(2).all(|w| w[0].event_id < w[1].event_id));
    assert_eq!(store.events_after("a", rows[1].event_id, 100).await.expect("tail").len(), 1);
    assert_eq!(store.events("b").await.expect("events").len(), 1);
    let c = rusqlite::Connection::open(&db).expect("opens");
    let old: i64 =
        c.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'run_events'", [], |r| r.get(0)).expect("query");
    assert_eq!(old, 0, "the old table is gone");
}
