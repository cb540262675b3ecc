//! Helpers: compile a CKP value, run it on a memory journal with scripted effects, read the trace.

use std::sync::Arc;

use ckp_core::Procedure;
use ckp_engine::effects::{Effects, LlmResponse};
use ckp_engine::testing::{FnAgents, FnLlm};
use ckp_engine::{Engine, Event, MemoryJournal, RunOutcome};
use serde_json::{Map, Value, json};

pub fn procedure(doc: &Value) -> Arc<Procedure> {
    let c = ckp_core::compile_value(doc);
    match c.procedure {
        Some(p) => Arc::new(p),
        None => panic!("does not compile: {:#?}", c.diagnostics),
    }
}

/// A fixture procedure of the repository's `tests/fixtures/`, compiled.
pub fn fixture(name: &str) -> Arc<Procedure> {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let c = ckp_core::compile(&text);
    Arc::new(c.procedure.unwrap_or_else(|| panic!("{:#?}", c.diagnostics)))
}

pub fn inputs(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// An agent that echoes `{action, params}` back, and an LLM that answers `{"answer": 42}`.
pub fn echo_effects() -> (Effects, FnAgents, FnLlm) {
    let agents = FnAgents::new(|req| Ok(json!({"action": req.action, "params": req.params})));
    let llm = FnLlm::new(|_| {
        Ok(LlmResponse {
            text: r#"{"answer": 42}"#.into(),
            model: "gpt-4o".into(),
            prompt_tokens: 100,
            completion_tokens: 20,
        })
    });
    let effects =
        Effects { agents: Some(Arc::new(agents.clone())), llm: Some(Arc::new(llm.clone())), ..Effects::default() };
    (effects, agents, llm)
}

pub struct Harness {
    pub journal: Arc<MemoryJournal>,
    pub effects: Effects,
}

impl Harness {
    pub fn new(effects: Effects) -> Self {
        Harness { journal: Arc::new(MemoryJournal::new()), effects }
    }

    pub fn engine(&self) -> Engine {
        Engine::new(self.journal.clone(), self.effects.clone())
    }

    pub async fn start(&self, p: &Arc<Procedure>, inputs: Map<String, Value>) -> RunOutcome {
        self.engine().start(p.clone(), "run-1", inputs).await.unwrap_or_else(|e| panic!("engine error: {e}"))
    }

    pub fn events(&self) -> Vec<Event> {
        self.journal.events("run-1")
    }

    /// `type node step` per event, for golden traces.
    pub fn trace(&self) -> String {
        trace(&self.events())
    }
}

pub fn trace(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| {
            let mut line = e.event_type.clone();
            for part in [&e.node_id, &e.step_id].into_iter().flatten() {
                line.push(' ');
                line.push_str(part);
            }
            for key in ["loop_index", "branch_id", "decision", "reason", "resume_reason", "cached"] {
                if let Some(v) = e.payload.get(key).filter(|v| !v.is_null()) {
                    line.push_str(&format!(" {key}={v}"));
                }
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Events without timestamps and timing-dependent payload keys, for equality across runs.
pub fn comparable(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut p = e.payload.clone();
            if let Value::Object(m) = &mut p {
                m.remove("duration_ms");
                m.remove("elapsed_ms");
            }
            json!({"type": e.event_type, "node": e.node_id, "step": e.step_id, "payload": p})
        })
        .collect()
}

pub fn completed(outcome: &RunOutcome) -> &Map<String, Value> {
    match outcome {
        RunOutcome::Completed { outputs } => outputs,
        other => panic!("expected completed, got {other:?}"),
    }
}
