//! Health and the actions catalog.

use axum::extract::State;
use serde_json::{Map, Value, json};

use crate::api::Health;
use crate::app::AppState;
use crate::error::{ApiResult, Json};

/// Liveness.
#[utoipa::path(get, path = "/api/health", tag = "health", responses((status = 200, body = Health)))]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health { status: "ok".into(), leader: state.store.is_leader() })
}

/// Metrics in the Prometheus text format (version 0.0.4): LangOrch's `langorch_*` families and ckp's `ckp_*`
/// ones (docs/observability.md lists them). Each process answers for itself; the leader adds the gauges read
/// from the database (runs by status, queue, agents).
#[utoipa::path(get, path = "/api/metrics", tag = "health",
    responses((status = 200, description = "The Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let text = state.metrics.render(state.store.as_ref()).await;
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

/// Actions by channel: `internal` (ckp's built-in actions, run in-process), per registered agent channel the
/// capabilities of its agents, and, when MCP servers are configured, `mcp_servers`: per server its transport and
/// its tools keyed by the action to write (`mcp:<server>/<tool>`, with description and input schema), or the
/// `error` that kept them from being listed.
#[utoipa::path(get, path = "/api/actions", tag = "health", responses((status = 200, body = Object)))]
pub async fn actions(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let mut out = Map::new();
    let internal: Vec<Value> =
        ckp_core::procedure::InternalAction::ALL.iter().map(|a| Value::from(a.as_str())).collect();
    out.insert("internal".into(), Value::Array(internal));
    for agent in state.store.list_agents().await? {
        let entry = out.entry(agent.channel.clone()).or_insert_with(|| Value::Array(Vec::new()));
        if let (Value::Array(list), Some(caps)) = (entry, agent.capabilities.as_array()) {
            for cap in caps {
                if let Some(name) = cap.get("name").filter(|n| !list.contains(n)) {
                    list.push(name.clone());
                }
            }
        }
    }
    if !state.mcp.servers().is_empty() {
        out.insert("mcp_servers".into(), mcp_tools(&state.mcp).await);
    }
    Ok(Json(Value::Object(out)))
}

async fn mcp_tools(mcp: &ckp_connectors::mcp::McpConnector) -> Value {
    let mut servers = Map::new();
    for s in mcp.list_tools().await {
        let entry = match s.tools {
            Ok(tools) => {
                let tools: Map<String, Value> = tools
                    .into_iter()
                    .map(|t| {
                        let action = format!("mcp:{}/{}", s.server, t.name);
                        (action, json!({"tool": t.name, "description": t.description, "input_schema": t.input_schema}))
                    })
                    .collect();
                json!({"transport": s.transport, "tools": tools})
            }
            Err(error) => json!({"transport": s.transport, "error": error}),
        };
        servers.insert(s.server, entry);
    }
    Value::Object(servers)
}
