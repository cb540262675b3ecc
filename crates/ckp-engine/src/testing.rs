//! In-process effect implementations: closures standing in for agents, LLMs and MCP servers, with call
//! recording. Used by the engine's tests and by `ckp run --mock-external`-free local runs with scripted peers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::effects::{
    AgentRequest, Agents, BoxFuture, Llm, LlmRequest, LlmResponse, Mcp, McpCall, SecretScope, Secrets,
};
use crate::error::StepError;

type AgentFn = dyn Fn(&AgentRequest) -> Result<Value, StepError> + Send + Sync;
type LlmFn = dyn Fn(&LlmRequest) -> Result<LlmResponse, StepError> + Send + Sync;
type McpFn = dyn Fn(&str, &str, &Map<String, Value>) -> Result<Value, StepError> + Send + Sync;

/// Agents answered by a closure; every request is recorded.
#[derive(Clone)]
pub struct FnAgents {
    handler: Arc<AgentFn>,
    calls: Arc<Mutex<Vec<AgentRequest>>>,
}

impl std::fmt::Debug for FnAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnAgents").field("calls", &self.calls().len()).finish()
    }
}

impl FnAgents {
    /// Agents that answer with `handler`.
    pub fn new(handler: impl Fn(&AgentRequest) -> Result<Value, StepError> + Send + Sync + 'static) -> Self {
        FnAgents { handler: Arc::new(handler), calls: Arc::default() }
    }

    /// The requests received so far.
    pub fn calls(&self) -> Vec<AgentRequest> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Agents for FnAgents {
    fn execute(&self, req: AgentRequest) -> BoxFuture<'_, Result<Value, StepError>> {
        let result = (self.handler)(&req);
        if let Ok(mut c) = self.calls.lock() {
            c.push(req);
        }
        Box::pin(async move { result })
    }
}

/// An LLM answered by a closure; every request is recorded.
#[derive(Clone)]
pub struct FnLlm {
    handler: Arc<LlmFn>,
    calls: Arc<Mutex<Vec<LlmRequest>>>,
}

impl std::fmt::Debug for FnLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnLlm").field("calls", &self.calls().len()).finish()
    }
}

impl FnLlm {
    /// An LLM that answers with `handler`.
    pub fn new(handler: impl Fn(&LlmRequest) -> Result<LlmResponse, StepError> + Send + Sync + 'static) -> Self {
        FnLlm { handler: Arc::new(handler), calls: Arc::default() }
    }

    /// The requests received so far.
    pub fn calls(&self) -> Vec<LlmRequest> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Llm for FnLlm {
    fn complete(&self, req: LlmRequest) -> BoxFuture<'_, Result<LlmResponse, StepError>> {
        let result = (self.handler)(&req);
        if let Ok(mut c) = self.calls.lock() {
            c.push(req);
        }
        Box::pin(async move { result })
    }
}

/// MCP tools answered by a closure of `(server, tool, arguments)`.
pub struct FnMcp(pub Box<McpFn>);

impl std::fmt::Debug for FnMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnMcp")
    }
}

impl Mcp for FnMcp {
    fn call_tool(&self, call: McpCall) -> BoxFuture<'_, Result<Value, StepError>> {
        let result = (self.0)(&call.server, &call.tool, &call.arguments);
        Box::pin(async move { result })
    }
}

/// Secrets from a map, looked up by the provider key the run's `secrets_config` maps a name to.
#[derive(Debug, Clone, Default)]
pub struct MapSecrets(pub HashMap<String, String>);

impl Secrets for MapSecrets {
    fn get<'a>(&'a self, scope: SecretScope<'a>, name: &'a str) -> BoxFuture<'a, Result<Option<String>, StepError>> {
        let key = scope.config.map_or(name, |c| c.key_for(name));
        let v = self.0.get(key).cloned();
        Box::pin(async move { Ok(v) })
    }
}

type HttpFn = dyn Fn(&crate::effects::HttpRequest) -> Result<crate::effects::HttpResponse, StepError> + Send + Sync;

/// An HTTP executor answered by a closure; every request is recorded.
#[derive(Clone)]
pub struct FnHttp {
    handler: Arc<HttpFn>,
    calls: Arc<Mutex<Vec<crate::effects::HttpRequest>>>,
}

impl std::fmt::Debug for FnHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnHttp").field("calls", &self.calls().len()).finish()
    }
}

impl FnHttp {
    /// An HTTP executor that answers with `handler`.
    pub fn new(
        handler: impl Fn(&crate::effects::HttpRequest) -> Result<crate::effects::HttpResponse, StepError>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        FnHttp { handler: Arc::new(handler), calls: Arc::default() }
    }

    /// The requests received so far.
    pub fn calls(&self) -> Vec<crate::effects::HttpRequest> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl crate::effects::Http for FnHttp {
    fn request(
        &self,
        req: crate::effects::HttpRequest,
    ) -> BoxFuture<'_, Result<crate::effects::HttpResponse, StepError>> {
        let result = (self.handler)(&req);
        if let Ok(mut c) = self.calls.lock() {
            c.push(req);
        }
        Box::pin(async move { result })
    }
}

/// The benchmark procedure of DESIGN §6: a chain of `k` `sequence` nodes with two internal, templated
/// `set_variable` steps each, then a `logic` node and a `terminate`.
pub fn internal_chain(k: usize) -> Value {
    let mut nodes = Map::new();
    for i in 0..k {
        let next = if i + 1 == k { "route".to_owned() } else { format!("n{}", i + 1) };
        nodes.insert(
            format!("n{i}"),
            serde_json::json!({"type": "sequence", "steps": [
                {"step_id": "a", "action": "set_variable", "variable": "x", "value": "{{i}}-{{run_id}}"},
                {"step_id": "b", "action": "set_variable", "variable": format!("v{i}"), "value": {"n": "{{x}}", "k": i}}
            ], "next_node": next}),
        );
    }
    nodes.insert(
        "route".into(),
        serde_json::json!({"type": "logic", "rules": [{"condition": "{{x}} is_not_empty", "next_node": "end"}], "default_next_node": "end"}),
    );
    nodes.insert("end".into(), serde_json::json!({"type": "terminate", "status": "success"}));
    serde_json::json!({"procedure_id": "bench", "version": "1", "variables_schema": {"i": {"type": "number", "default": 1}},
                       "workflow_graph": {"start_node": "n0", "nodes": Value::Object(nodes)}})
}
