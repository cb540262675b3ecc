//! Health and the actions catalog.

use axum::extract::State;
use serde_json::{Map, Value};

use crate::api::Health;
use crate::app::AppState;
use crate::error::{ApiResult, Json};

/// Liveness.
#[utoipa::path(get, path = "/api/health", tag = "health", responses((status = 200, body = Health)))]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health { status: "ok".into(), leader: state.store.is_leader() })
}

/// Actions by channel: `internal` (ckp's built-in actions, run in-process) and, per registered agent channel,
/// the capabilities of its agents.
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
    Ok(Json(Value::Object(out)))
}
