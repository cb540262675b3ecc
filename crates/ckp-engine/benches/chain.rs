//! Engine CPU per internal node: chains of K `sequence` nodes with two internal steps each, then `logic` and
//! `terminate`, on the in-memory journal (DESIGN §6 budget: ≤ 50 µs per node including events).
//! Run: `cargo bench -p ckp-engine --bench chain`; divide the median by K + 2 nodes.

use std::sync::Arc;

use ckp_core::Procedure;
use ckp_engine::effects::Effects;
use ckp_engine::{Engine, MemoryJournal, RunOutcome};
use serde_json::Map;

fn chain(k: usize) -> Arc<Procedure> {
    let doc = ckp_engine::testing::internal_chain(k);
    Arc::new(ckp_core::compile_value(&doc).procedure.expect("bench procedure compiles"))
}

fn main() {
    divan::main();
}

#[divan::bench(args = [10, 200])]
fn run_chain(bencher: divan::Bencher, k: usize) {
    let p = chain(k);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let engine = Engine::new(Arc::new(MemoryJournal::new()), Effects::default());
    let mut n = 0u64;
    bencher.bench_local(|| {
        n += 1;
        let out = runtime.block_on(engine.start(p.clone(), &format!("r{n}"), Map::new())).expect("runs");
        assert!(matches!(out, RunOutcome::Completed { .. }));
    });
}
