//! Agents over LangOrch's protocol (semantics B §6.1): the step goes to an online agent of its channel
//! (case-insensitive) that has the action among its capabilities (`*` for any; an agent registered without
//! capabilities accepts any action until capability probing arrives), chosen round-robin, as
//! `POST {base_url}/execute` with `{action, params, run_id, node_id, step_id}`, the headers `X-Run-ID`,
//! `X-Node-ID`, `X-Step-ID` and `Idempotency-Key`, and the step's time limit. The answer is LangOrch's envelope
//! `{status: "success" | "error", result, error}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ckp_core::procedure::ErrorKind;
use ckp_engine::effects::{AgentRequest, Agents, BoxFuture};
use ckp_engine::error::StepError;
use ckp_store::{AgentRow, Store};
use serde_json::{Value, json};

use crate::http::transport_error;

/// Used when a step gives no time limit.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Agents from the store's registry.
pub struct StoreAgents {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    turns: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Debug for StoreAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreAgents").finish_non_exhaustive()
    }
}

fn capable(agent: &AgentRow, action: &str) -> bool {
    match agent.capabilities.as_array() {
        Some(caps) if !caps.is_empty() => caps.iter().any(|c| {
            let name = c.get("name").and_then(Value::as_str).or_else(|| c.as_str()).unwrap_or_default();
            name == "*" || name == action
        }),
        _ => true,
    }
}

impl StoreAgents {
    /// Agents registered in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreAgents { store, client: reqwest::Client::new(), turns: Mutex::new(HashMap::new()) }
    }

    /// The agent for `req`: online, same channel, capable; round-robin among them (ordered by pool, then id).
    async fn pick(&self, req: &AgentRequest) -> Result<AgentRow, StepError> {
        let mut agents: Vec<AgentRow> = self
            .store
            .list_agents()
            .await
            .map_err(|e| StepError::new(ErrorKind::AgentUnavailable, format!("cannot read the agent registry: {e}")))?
            .into_iter()
            .filter(|a| a.channel.eq_ignore_ascii_case(&req.channel) && a.status == "online" && capable(a, &req.action))
            .collect();
        if agents.is_empty() {
            return Err(StepError::new(
                ErrorKind::AgentUnavailable,
                format!("No online agent for channel='{}' with action '{}'", req.channel, req.action),
            ));
        }
        agents.sort_by(|a, b| {
            (a.pool_id.is_none(), &a.pool_id, &a.agent_id).cmp(&(b.pool_id.is_none(), &b.pool_id, &b.agent_id))
        });
        let turn = self
            .turns
            .lock()
            .map(|mut t| {
                let n = t.entry(req.channel.to_ascii_lowercase()).or_insert(0);
                *n = n.wrapping_add(1);
                *n - 1
            })
            .unwrap_or(0);
        let n = agents.len();
        Ok(agents.swap_remove(turn % n))
    }
}

impl Agents for StoreAgents {
    fn execute(&self, req: AgentRequest) -> BoxFuture<'_, Result<Value, StepError>> {
        Box::pin(async move {
            let agent = self.pick(&req).await?;
            let url = format!("{}/execute", agent.base_url.trim_end_matches('/'));
            let body = json!({"action": req.action, "params": req.params, "run_id": req.run_id,
                              "node_id": req.node_id, "step_id": req.step_id});
            let what = format!("agent {} ({url})", agent.agent_id);
            let resp = self
                .client
                .post(&url)
                .timeout(req.timeout.unwrap_or(DEFAULT_TIMEOUT))
                .header("X-Run-ID", &req.run_id)
                .header("X-Node-ID", &req.node_id)
                .header("X-Step-ID", &req.step_id)
                .header("Idempotency-Key", &req.idempotency_key)
                .json(&body)
                .send()
                .await
                .map_err(|e| {
                    let mut err = transport_error(&e, &what);
                    if e.is_connect() {
                        err.kind = ErrorKind::AgentUnavailable;
                    }
                    err
                })?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(|e| transport_error(&e, &what))?;
            if status >= 400 {
                let mut err = StepError::new(ErrorKind::AgentError, format!("HTTP {status} from {what}"));
                err.http_status = Some(status);
                return Err(err);
            }
            let envelope: Value = serde_json::from_str(&text).map_err(|_| {
                StepError::new(ErrorKind::AgentError, format!("{what} answered with something that is not JSON"))
            })?;
            match envelope.get("status").and_then(Value::as_str) {
                Some("success") => Ok(envelope.get("result").cloned().unwrap_or(Value::Null)),
                Some("error") => {
                    let message = match envelope.get("error") {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Object(o)) => o
                            .get("message")
                            .and_then(Value::as_str)
                            .map_or_else(|| Value::Object(o.clone()).to_string(), str::to_owned),
                        _ => "the agent reported an error".to_owned(),
                    };
                    Err(StepError::new(ErrorKind::AgentError, message))
                }
                _ => Err(StepError::new(
                    ErrorKind::AgentError,
                    format!("{what} answered without LangOrch's envelope ({{status, result, error}})"),
                )),
            }
        })
    }
}
