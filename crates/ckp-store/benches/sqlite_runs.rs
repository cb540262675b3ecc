//! Whole runs on the SQLite store: a K=10 chain of internal `sequence` nodes (two steps each) + logic +
//! terminate, created and executed by the engine, with every commit durable in SQLite (WAL). Compares
//! `synchronous=NORMAL` with `FULL` in the same run, sequential and with 32 runs in flight (group commit).
//! Run: `cargo bench -p ckp-store --bench sqlite_runs`.

use std::sync::Arc;

use ckp_core::Procedure;
use ckp_engine::effects::Effects;
use ckp_engine::{Engine, RunOutcome};
use ckp_store::{SqliteOptions, SqliteStore, Synchronous};
use serde_json::Map;

fn chain(k: usize) -> Arc<Procedure> {
    let doc = ckp_engine::testing::internal_chain(k);
    Arc::new(ckp_core::compile_value(&doc).procedure.expect("bench procedure compiles"))
}

fn main() {
    divan::main();
}

fn engine(sync: Synchronous, name: &str) -> Arc<Engine> {
    let dir = std::env::temp_dir().join(format!("ckp-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(dir.join("ckp.db"), SqliteOptions { synchronous: sync }).expect("opens");
    Arc::new(Engine::new(Arc::new(store), Effects::default()))
}

const SYNC: [(&str, Synchronous); 2] = [("normal", Synchronous::Normal), ("full", Synchronous::Full)];

/// One run at a time (latency-bound: two commits per run).
#[divan::bench(args = SYNC)]
fn sequential_k10(bencher: divan::Bencher, sync: (&str, Synchronous)) {
    let p = chain(10);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let engine = engine(sync.1, &format!("seq-{}", sync.0));
    let mut n = 0u64;
    bencher.bench_local(|| {
        n += 1;
        let out = runtime.block_on(engine.start(p.clone(), &format!("r{n}"), Map::new())).expect("runs");
        assert!(matches!(out, RunOutcome::Completed { .. }));
    });
}

/// 32 runs in flight (their commits share transactions); one sample = 32 runs.
#[divan::bench(args = SYNC)]
fn concurrent32_k10(bencher: divan::Bencher, sync: (&str, Synchronous)) {
    let p = chain(10);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let engine = engine(sync.1, &format!("conc-{}", sync.0));
    let mut n = 0u64;
    bencher.counter(divan::counter::ItemsCount::new(32usize)).bench_local(|| {
        n += 1;
        runtime.block_on(async {
            let mut tasks = Vec::with_capacity(32);
            for j in 0..32 {
                let (engine, p) = (engine.clone(), p.clone());
                let id = format!("c{n}-{j}");
                tasks.push(tokio::spawn(async move { engine.start(p, &id, Map::new()).await }));
            }
            for t in tasks {
                assert!(matches!(t.await.expect("task").expect("runs"), RunOutcome::Completed { .. }));
            }
        });
    });
}
