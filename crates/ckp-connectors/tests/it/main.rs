//! ckp-connectors against real peer processes on 127.0.0.1: secrets providers (a Vault-like and an Azure-like
//! server in python3, moto's AWS server), the MCP reference server (`@modelcontextprotocol/server-everything`,
//! installed by `scripts/test` into `tests/mcp/node_modules`) over stdio and streamable HTTP, and LangOrch's legacy
//! MCP fallback against a small HTTP server; agent dispatch and the `db` secrets provider through in-memory ports.
#![expect(clippy::panic, reason = "test helpers fail by panicking")]

use ckp_engine::effects::AgentRequest;
use serde_json::Value;

mod legacy;
#[cfg(feature = "mcp")]
mod mcp;
mod peers;
mod ports;
mod secrets;

/// A synchronous step of run `run-1`, node `n1`, whose `Idempotency-Key` is `key-{step_id}`.
fn agent_request(channel: &str, action: &str, params: Value, step_id: &str) -> AgentRequest {
    AgentRequest {
        channel: channel.into(),
        action: action.into(),
        params: params.as_object().cloned().unwrap_or_default(),
        run_id: "run-1".into(),
        node_id: "n1".into(),
        step_id: step_id.into(),
        idempotency_key: format!("key-{step_id}"),
        timeout: None,
        workflow: ckp_engine::effects::WorkflowDispatch {
            mode: ckp_core::procedure::DispatchMode::Sync,
            context: Value::Null,
            allow_async: false,
        },
        traceparent: None,
    }
}
