//! Agents over LangOrch's protocol (langorch.md B §6.1): the step goes to an online agent of the server's registry
//! (reached through the [`AgentRegistry`] port) of its channel (case-insensitive, fixing LangOrch's case-sensitive
//! match) whose circuit is closed (or opened over 300 s ago) and that has the action among its capabilities
//! (`name == action` or `*`; none → not capable, LangOrch's default), chosen round-robin, as
//! `POST {base_url}/execute` with `{action, params, run_id, node_id, step_id}`, the headers `X-Run-ID`,
//! `X-Node-ID`, `X-Step-ID` and `Idempotency-Key`, and the step's time limit (120 s by default). The answer is
//! LangOrch's strict envelope `{status: "success" | "error", result, error}`; errors read as LangOrch's
//! (`Agent action '<a>' failed: ...`). When no agent can take the step but the channel has agents that may come
//! online (offline, circuit open, capabilities not known yet), dispatch answers [`AgentReply::NoneOnline`] and the
//! engine waits (bounded) instead of failing the step; the health loop brings agents online and asks their
//! capabilities again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ckp_core::procedure::DispatchMode;
use ckp_core::procedure::ErrorKind;
use ckp_engine::effects::{AgentReply, AgentRequest, Agents, BoxFuture};
use ckp_engine::error::{ErrorChain, StepError};
use serde_json::{Map, Value, json};

use crate::egress::Egress;
use crate::http::{LazyClient, run_headers, transport_error};
use crate::ports::{AgentInfo, AgentRegistry, Lease, LeaseHolder};

/// Used when a step gives no time limit (LangOrch's).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// An open circuit is tried again after this long.
const CIRCUIT_RESET: chrono::Duration = chrono::Duration::seconds(300);
/// A lease lasts this long unless renewed (it is renewed every third of it while the call runs).
const LEASE_TTL: chrono::Duration = chrono::Duration::seconds(60);
/// How long a step waits for a busy resource before failing.
const LEASE_WAIT: Duration = Duration::from_secs(30);
/// Time limit of a capability probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Agents from the server's registry. Their URLs were given through the API, so calls follow the egress policy.
pub struct RegistryAgents<R> {
    registry: Arc<R>,
    client: LazyClient,
    turns: Mutex<HashMap<String, usize>>,
    /// Consecutive failed calls (transport errors, 5xx) that open an agent's circuit.
    offline_after: i64,
    /// Signs callback URLs of async workflow dispatches (none: async workflow steps fail with a clear error).
    callbacks: Option<Arc<crate::workflow::CallbackSigner>>,
}

impl<R> std::fmt::Debug for RegistryAgents<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAgents").finish_non_exhaustive()
    }
}

fn capable(agent: &AgentInfo, action: &str) -> bool {
    agent.capabilities.as_array().is_some_and(|caps| {
        caps.iter().any(|c| {
            let name = c.get("name").and_then(Value::as_str).or_else(|| c.as_str()).unwrap_or_default();
            name == "*" || name == action
        })
    })
}

/// Whether the agent's capability for `action` is a workflow (`type: "workflow"`; tool otherwise).
fn is_workflow(agent: &AgentInfo, action: &str) -> bool {
    let caps = agent.capabilities.as_array().map(Vec::as_slice).unwrap_or_default();
    let name = |c: &Value| c.get("name").and_then(Value::as_str).or_else(|| c.as_str()).unwrap_or_default().to_owned();
    let entry = caps.iter().find(|c| name(c) == action).or_else(|| caps.iter().find(|c| name(c) == "*"));
    entry.and_then(|c| c.get("type")).and_then(Value::as_str) == Some("workflow")
}

fn circuit_closed(agent: &AgentInfo, now: DateTime<Utc>) -> bool {
    circuit_closed_after(agent, now, CIRCUIT_RESET)
}

/// No open circuit, or one opened at least `reset` ago (half-open: worth a try).
fn circuit_closed_after(agent: &AgentInfo, now: DateTime<Utc>, reset: chrono::Duration) -> bool {
    agent.circuit_open_at.is_none_or(|at| now - at >= reset)
}

/// Whether an agent answers at all: `GET {base_url}/health`, where any HTTP answer counts (LangOrch's agents may
/// have no `/health`); a connection failure or no answer within the probe's time limit does not. Registration
/// stores an agent that does not answer `offline`, for the health loop to bring online.
pub async fn probe_reachable(egress: &Egress, base_url: &str) -> bool {
    let url = format!("{}/health", base_url.trim_end_matches('/'));
    if egress.check_url(&url).await.is_err() {
        return false;
    }
    let Ok(client) = egress.client().build() else { return false };
    client.get(&url).timeout(PROBE_TIMEOUT).send().await.is_ok()
}

/// Asks an agent for its capabilities: `GET {base_url}/capabilities` → `{"capabilities": [{name, type, ...} |
/// "name"]}`; a bare name becomes `{name, type: "tool", is_batch: false}`. The call follows `egress`.
pub async fn probe_capabilities(egress: &Egress, base_url: &str) -> Result<Vec<Value>, String> {
    capabilities_through(&LazyClient::guarded(egress.clone()), base_url).await
}

/// [`probe_capabilities`] through a client of the caller's (the health loop's, guarded by the egress policy).
async fn capabilities_through(client: &LazyClient, base_url: &str) -> Result<Vec<Value>, String> {
    let url = format!("{}/capabilities", base_url.trim_end_matches('/'));
    client.check_url(&url).await.map_err(|r| r.to_string())?;
    let resp = client
        .get()
        .get(&url)
        .timeout(PROBE_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("Could not reach agent at {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("Could not reach agent at {url}: HTTP {}", resp.status().as_u16()));
    }
    let body: Value = resp.json().await.map_err(|e| format!("{url} did not answer JSON: {e}"))?;
    let list =
        body.get("capabilities").and_then(Value::as_array).ok_or_else(|| format!("{url} gave no capabilities list"))?;
    Ok(list
        .iter()
        .filter_map(|c| match c {
            Value::String(name) => Some(json!({"name": name, "type": "tool", "is_batch": false})),
            Value::Object(o) if o.get("name").is_some_and(Value::is_string) => Some(c.clone()),
            _ => None,
        })
        .collect())
}

impl<R: AgentRegistry> RegistryAgents<R> {
    /// Agents registered in `registry`, called under `egress`.
    pub fn new(registry: Arc<R>, egress: Egress) -> Self {
        RegistryAgents {
            registry,
            client: LazyClient::guarded(egress),
            turns: Mutex::new(HashMap::new()),
            offline_after: 3,
            callbacks: None,
        }
    }

    /// Signs the callback URLs of async workflow dispatches with `signer`.
    pub fn with_callbacks(mut self, signer: Arc<crate::workflow::CallbackSigner>) -> Self {
        self.callbacks = Some(signer);
        self
    }

    /// Opens an agent's circuit after `n` consecutive failed calls (default 3).
    pub fn with_offline_after(mut self, n: i64) -> Self {
        self.offline_after = n.max(1);
        self
    }

    /// The agents for `req` in the order to try them: online, same channel, circuit closed, capable; the
    /// round-robin turn first (ordered by pool, then id), then the others. None of them, but agents of the channel
    /// that may still take the step once online (offline or with an open circuit, and capable or with unknown
    /// capabilities): [`Pick::Later`]. No agent of the channel could: an error.
    async fn candidates(&self, req: &AgentRequest) -> Result<Pick, StepError> {
        let now = Utc::now();
        let (mut agents, others): (Vec<AgentInfo>, Vec<AgentInfo>) = self
            .registry
            .agents()
            .await
            .map_err(|e| StepError::new(ErrorKind::AgentUnavailable, format!("cannot read the agent registry: {e}")))?
            .into_iter()
            .filter(|a| a.channel.eq_ignore_ascii_case(&req.channel))
            .partition(|a| a.online && circuit_closed(a, now) && capable(a, &req.action));
        if agents.is_empty() {
            let none = format!("No online agent for channel='{}' with action '{}'", req.channel, req.action);
            let later: Vec<String> = others
                .iter()
                .filter(|a| {
                    let unknown = a.capabilities.as_array().is_none_or(Vec::is_empty);
                    (!a.online || !circuit_closed(a, now)) && (unknown || capable(a, &req.action))
                })
                .map(|a| format!("{} ({})", a.agent_id, if a.online { "circuit open" } else { "offline" }))
                .collect();
            if later.is_empty() {
                return Err(StepError::new(ErrorKind::AgentUnavailable, none));
            }
            return Ok(Pick::Later(format!("{none}: {}", later.join(", "))));
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
        agents.rotate_left(turn % n);
        Ok(Pick::Now(agents))
    }

    /// A lease on one of `agents`' resources (their `resource_key`, at most `concurrency_limit` holders): the
    /// first with room, waiting up to [`LEASE_WAIT`] when all are busy instead of failing at once.
    async fn lease(&self, mut agents: Vec<AgentInfo>, req: &AgentRequest) -> Result<(AgentInfo, Lease), StepError> {
        let deadline = tokio::time::Instant::now() + LEASE_WAIT;
        let mut pause = Duration::from_millis(10);
        let holder = LeaseHolder { run_id: &req.run_id, node_id: &req.node_id, step_id: &req.step_id };
        loop {
            for (i, agent) in agents.iter().enumerate() {
                let taken = self
                    .registry
                    .acquire_lease(&agent.resource_key, agent.concurrency_limit.max(1), holder, LEASE_TTL)
                    .await
                    .map_err(|e| StepError::new(ErrorKind::AgentUnavailable, format!("cannot take a lease: {e}")))?;
                if let Some(lease) = taken {
                    return Ok((agents.swap_remove(i), lease));
                }
            }
            if tokio::time::Instant::now() + pause > deadline {
                let keys: Vec<&str> = agents.iter().map(|a| a.resource_key.as_str()).collect();
                return Err(StepError::new(
                    ErrorKind::AgentUnavailable,
                    format!(
                        "Resource busy: every agent for channel='{}' is at its concurrency limit ({})",
                        req.channel,
                        keys.join(", ")
                    ),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

/// Who can take a step.
enum Pick {
    /// These agents, in the order to try them.
    Now(Vec<AgentInfo>),
    /// None yet, but agents of the channel may come online: why none can take it now.
    Later(String),
}

/// Reads LangOrch's envelope.
fn envelope(failed: &str, text: &str) -> Result<Value, StepError> {
    let invalid =
        |why: &str| StepError::new(ErrorKind::AgentError, format!("{failed}: Invalid agent response schema: {why}"));
    let body: Value = serde_json::from_str(text).map_err(|_| invalid("the body is not JSON"))?;
    match body.get("status").and_then(Value::as_str) {
        Some("success") => Ok(match body.get("result") {
            None | Some(Value::Null) => json!({}),
            Some(v) => v.clone(),
        }),
        Some("error") => {
            let message = match body.get("error") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Object(o)) => o
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| Value::Object(o.clone()).to_string(), str::to_owned),
                _ => "Unknown agent error".to_owned(),
            };
            Err(StepError::new(ErrorKind::AgentError, format!("{failed}: {message}")))
        }
        Some(other) => Err(invalid(&format!("status must be \"success\" or \"error\", not {other:?}"))),
        None => Err(invalid("missing \"status\"")),
    }
}

impl<R: AgentRegistry> RegistryAgents<R> {
    /// A tool call on the first of `agents` with room: under a resource lease (renewed while the call runs,
    /// released after it, whatever its outcome).
    async fn call_leased(&self, agents: Vec<AgentInfo>, req: &AgentRequest) -> Result<Value, StepError> {
        let (agent, lease) = self.lease(agents, req).await?;
        let call = async {
            self.check(&agent, req).await?;
            call_agent(self.client.get(), &agent.agent_id, &agent.base_url, req).await
        };
        tokio::pin!(call);
        let every = (LEASE_TTL / 3).to_std().unwrap_or(Duration::from_secs(60));
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let result = loop {
            tokio::select! {
                r = &mut call => break r,
                _ = renew.tick() => {
                    if let Err(e) = self.registry.renew_lease(&lease, LEASE_TTL).await {
                        // The lease then expires on its own; the call goes on.
                        tracing::warn!(agent = %agent.agent_id, lease_id = %lease.lease_id,
                            error = %ErrorChain(&e), "renewing a resource lease failed");
                    }
                }
            }
        };
        if let Err(e) = self.registry.release_lease(&lease).await {
            tracing::warn!(agent = %agent.agent_id, lease_id = %lease.lease_id, error = %ErrorChain(&e),
                "releasing a resource lease failed; it frees its slot when it expires");
        }
        self.record_outcome(&agent, &result).await;
        result
    }

    /// The circuit breaker: calls that could not reach the agent or got a 5xx count as failures; after
    /// `offline_after` in a row the agent goes offline with its circuit open until a health probe succeeds. A
    /// success after failures resets the count.
    async fn record_outcome<T>(&self, agent: &AgentInfo, result: &Result<T, StepError>) {
        let unreachable = match result {
            Err(e) => {
                e.kind == ErrorKind::AgentUnavailable
                    || e.kind == ErrorKind::Timeout
                    || e.http_status.is_some_and(|s| s >= 500)
            }
            Ok(_) => false,
        };
        if unreachable || (result.is_ok() && agent.consecutive_failures > 0) {
            record_health(self.registry.as_ref(), agent, !unreachable, self.offline_after).await;
        }
    }

    /// A workflow capability (langorch.md B §5.14): `sync` is an ordinary call with `_workflow_context` and no
    /// lease; `async` fires the workflow with a signed `callback_url` and reports the step delegated.
    async fn call_workflow(&self, agent: AgentInfo, mut req: AgentRequest) -> Result<AgentReply, StepError> {
        self.check(&agent, &req).await?;
        if req.workflow.mode == DispatchMode::Sync {
            req.params.insert("_workflow_context".into(), req.workflow.context.clone());
            let result = call_agent(self.client.get(), &agent.agent_id, &agent.base_url, &req).await;
            self.record_outcome(&agent, &result).await;
            return result.map(AgentReply::Done);
        }
        if !req.workflow.allow_async {
            return Err(StepError::new(
                ErrorKind::ValidationError,
                format!(
                    "Action '{}' is an async workflow, which a subflow's child run cannot wait for yet; set workflow_dispatch_mode: sync",
                    req.action
                ),
            ));
        }
        let Some(signer) = &self.callbacks else {
            return Err(StepError::new(
                ErrorKind::AgentUnavailable,
                format!("Action '{}' is an async workflow, but this server has no callback URL configured", req.action),
            ));
        };
        let result =
            crate::workflow::fire(self.client.get(), &agent.base_url, &req, &signer.signed_url(&req.run_id)).await;
        self.record_outcome(&agent, &result).await;
        result?;
        Ok(AgentReply::Delegated { agent_url: agent.base_url, callback_url: signer.url(&req.run_id) })
    }
}

impl<R> RegistryAgents<R> {
    /// The egress policy on the agent's URL (its redirects and resolved addresses are the client's to check).
    async fn check(&self, agent: &AgentInfo, req: &AgentRequest) -> Result<(), StepError> {
        self.client.check_url(&agent.base_url).await.map_err(|r| {
            r.step_error(&format!(
                "Agent action '{}' failed: agent {} ({})",
                req.action, agent.agent_id, agent.base_url
            ))
        })
    }
}

impl<R: AgentRegistry> Agents for RegistryAgents<R> {
    fn execute(&self, req: AgentRequest) -> BoxFuture<'_, Result<Value, StepError>> {
        Box::pin(async move {
            match self.candidates(&req).await? {
                Pick::Now(agents) => self.call_leased(agents, &req).await,
                Pick::Later(why) => Err(StepError::new(ErrorKind::AgentUnavailable, why)),
            }
        })
    }

    fn dispatch(&self, req: AgentRequest) -> BoxFuture<'_, Result<AgentReply, StepError>> {
        Box::pin(async move {
            let mut agents = match self.candidates(&req).await? {
                Pick::Now(agents) => agents,
                Pick::Later(why) => return Ok(AgentReply::NoneOnline { message: why }),
            };
            if agents.first().is_some_and(|a| is_workflow(a, &req.action)) {
                return self.call_workflow(agents.swap_remove(0), req).await;
            }
            self.call_leased(agents, &req).await.map(AgentReply::Done)
        })
    }
}

/// `POST {base_url}/execute` for `req`: LangOrch's body and headers plus `Idempotency-Key`, the strict envelope.
pub async fn call_agent(
    client: &reqwest::Client,
    agent_id: &str,
    base_url: &str,
    req: &AgentRequest,
) -> Result<Value, StepError> {
    let url = format!("{}/execute", base_url.trim_end_matches('/'));
    let failed = format!("Agent action '{}' failed", req.action);
    let resp = execute_request(client, &url, req, &req.params)
        .timeout(req.timeout.unwrap_or(DEFAULT_TIMEOUT))
        .send()
        .await
        .map_err(|e| {
            let mut err = transport_error(&e, &format!("{failed}: agent {agent_id} ({url})"));
            if e.is_connect() && !err.is_refused() {
                err.kind = ErrorKind::AgentUnavailable;
            }
            err
        })?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| transport_error(&e, &failed))?;
    if !(200..300).contains(&status) {
        let mut err = StepError::new(ErrorKind::AgentError, format!("{failed}: HTTP {status}"));
        err.http_status = Some(status);
        return Err(err);
    }
    envelope(&failed, &text)
}

/// `POST {url}` of `req` with `params`: LangOrch's body (`action`, `params`, `run_id`, `node_id`, `step_id`) and
/// headers (`X-Run-ID`, `X-Node-ID`, `X-Step-ID`) plus `Idempotency-Key`. Tool calls and workflow fires both go
/// through it, so an agent sees one request shape.
pub(crate) fn execute_request(
    client: &reqwest::Client,
    url: &str,
    req: &AgentRequest,
    params: &Map<String, Value>,
) -> reqwest::RequestBuilder {
    let body = json!({"action": req.action, "params": params, "run_id": req.run_id,
                      "node_id": req.node_id, "step_id": req.step_id});
    let builder = run_headers(client.post(url), &req.run_id, &req.node_id)
        .header("X-Step-ID", &req.step_id)
        .header("Idempotency-Key", &req.idempotency_key);
    match &req.traceparent {
        Some(tp) => builder.header("traceparent", tp),
        None => builder,
    }
    .json(&body)
}

/// Agents given as a fixed list of `(channel, base_url)` (`ckp run --agent web=http://...`): no registry,
/// leases or health checks; round-robin among the channel's agents.
#[derive(Debug)]
pub struct StaticAgents {
    agents: Vec<(String, String)>,
    client: LazyClient,
    turn: std::sync::atomic::AtomicUsize,
}

impl StaticAgents {
    /// Agents by channel (matched case-insensitively).
    pub fn new(agents: Vec<(String, String)>) -> Self {
        StaticAgents { agents, client: LazyClient::default(), turn: std::sync::atomic::AtomicUsize::new(0) }
    }
}

impl Agents for StaticAgents {
    fn execute(&self, req: AgentRequest) -> BoxFuture<'_, Result<Value, StepError>> {
        Box::pin(async move {
            let mine: Vec<&(String, String)> =
                self.agents.iter().filter(|(c, _)| c.eq_ignore_ascii_case(&req.channel)).collect();
            if mine.is_empty() {
                return Err(StepError::new(
                    ErrorKind::AgentUnavailable,
                    format!("No agent for channel='{}' (give one with --agent {}=URL)", req.channel, req.channel),
                ));
            }
            let i = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % mine.len();
            let (channel, url) = mine[i];
            call_agent(self.client.get(), channel, url, &req).await
        })
    }
}

/// Health checking: `GET {base_url}/health` for every registered agent, every `every`. An agent goes offline
/// (and its circuit opens) after `offline_after` consecutive failures, not one; a later success brings it back
/// online. Agents whose circuit is open are probed again once the reset period has passed (half-open): one
/// success closes the circuit.
#[derive(Debug, Clone, Copy)]
pub struct HealthConfig {
    /// Time between rounds.
    pub every: Duration,
    /// Consecutive failures before an agent goes offline.
    pub offline_after: i64,
    /// Time limit of one check.
    pub timeout: Duration,
    /// How long an open circuit waits before a half-open probe.
    pub circuit_reset: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            every: Duration::from_secs(60),
            offline_after: 3,
            timeout: Duration::from_secs(5),
            circuit_reset: Duration::from_secs(300),
        }
    }
}

/// One round of health checks through `client` (guarded by the egress policy: an agent whose URL it refuses fails
/// its checks); returns how many agents answered.
pub async fn check_health_once(registry: &impl AgentRegistry, client: &LazyClient, config: HealthConfig) -> usize {
    let agents = match registry.agents().await {
        Ok(agents) => agents,
        Err(e) => {
            tracing::error!(error = %ErrorChain(&e), "health checks skipped: the agent registry cannot be read");
            return 0;
        }
    };
    let now = Utc::now();
    let mut healthy = 0;
    for agent in agents {
        // An open circuit stays open (no probe) until the reset period has passed: then one half-open probe.
        let reset = chrono::Duration::from_std(config.circuit_reset).unwrap_or(CIRCUIT_RESET);
        if agent.circuit_open_at.is_some() && !circuit_closed_after(&agent, now, reset) {
            continue;
        }
        let url = format!("{}/health", agent.base_url.trim_end_matches('/'));
        let ok = client.check_url(&url).await.is_ok()
            && matches!(client.get().get(&url).timeout(config.timeout).send().await, Ok(r) if r.status().is_success());
        healthy += usize::from(ok);
        if record_health(registry, &agent, ok, config.offline_after).await {
            reprobe_capabilities(registry, client, &agent).await;
        }
    }
    healthy
}

/// An agent back online may have changed (or, registered while unreachable, never told) its capabilities: they are
/// asked again and stored when it lists some; otherwise the ones it has are kept.
async fn reprobe_capabilities(registry: &impl AgentRegistry, client: &LazyClient, agent: &AgentInfo) {
    match capabilities_through(client, &agent.base_url).await {
        Ok(list) if !list.is_empty() => {
            if let Err(e) = registry.set_capabilities(&agent.agent_id, Value::Array(list)).await {
                tracing::error!(agent = %agent.agent_id, error = %ErrorChain(&e),
                    "storing an agent's capabilities failed");
            }
        }
        Ok(_) => {}
        Err(why) => tracing::info!(agent = %agent.agent_id, reason = %why,
            "agent back online without a capabilities list: its capabilities are kept"),
    }
}

/// Records a health result (a probe or a call) and logs the agent's state change, if any, once: offline with its
/// circuit open, or back online. True when the agent came back online.
async fn record_health(registry: &impl AgentRegistry, before: &AgentInfo, ok: bool, offline_after: i64) -> bool {
    match registry.record_health(&before.agent_id, ok, offline_after).await {
        Ok(after) => match (before.online && before.circuit_open_at.is_none(), after.online, after.circuit_open_at) {
            (true, _, Some(_)) | (true, false, None) => {
                tracing::warn!(agent = %after.agent_id, channel = %after.channel,
                    failures = after.consecutive_failures,
                    "agent offline: its circuit is open until a health check passes");
                false
            }
            (false, true, None) => {
                tracing::info!(agent = %after.agent_id, channel = %after.channel, "agent back online");
                true
            }
            _ => false,
        },
        Err(e) => {
            tracing::error!(agent = %before.agent_id, error = %ErrorChain(&e), "recording an agent's health failed");
            false
        }
    }
}

/// Runs [`check_health_once`] every `config.every` until `stop` turns true, under `egress`.
pub async fn run_health_loop(
    registry: Arc<impl AgentRegistry>,
    egress: Egress,
    config: HealthConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let client = LazyClient::guarded(egress);
    loop {
        tokio::select! {
            () = tokio::time::sleep(config.every) => {
                // On a shared database the leader checks for every process.
                if registry.is_leader() {
                    check_health_once(registry.as_ref(), &client, config).await;
                }
            }
            _ = stop.changed() => return,
        }
    }
}
