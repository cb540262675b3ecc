//! The engine's only ways to reach the world. Real implementations live in `ckp-connectors`; the tests and
//! `ckp run` without configuration use the in-process ones in [`crate::testing`].
//!
//! Every call is made at most once per committed intent: the engine commits the intent (with its idempotency key)
//! before calling and the result after, and never calls again for a committed result.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ErrorKind, StepError};

/// A boxed, sendable future (effect traits must be object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A step dispatched to an agent (LangOrch's `POST {base_url}/execute`, langorch.md B §6.1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRequest {
    /// Lower-cased channel (`web`, `api`, ...).
    pub channel: String,
    /// The action.
    pub action: String,
    /// Rendered parameters (secrets resolved).
    pub params: Map<String, Value>,
    /// Run id.
    pub run_id: String,
    /// Node id.
    pub node_id: String,
    /// Step id.
    pub step_id: String,
    /// Sent as `Idempotency-Key`: the same for every re-dispatch of one step visit.
    pub idempotency_key: String,
    /// The step's time limit.
    pub timeout: Option<Duration>,
    /// How to dispatch when the agent's capability for the action is of type `workflow` (langorch.md B §5.14).
    pub workflow: WorkflowDispatch,
    /// W3C `traceparent` to send with the call, when the run is traced ([`TraceContext`]).
    #[serde(skip)]
    pub traceparent: Option<String>,
}

/// What a workflow-type capability needs beside an ordinary call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowDispatch {
    /// `async` (fire, pause, resume on the callback) or `sync` (an ordinary call without a lease); resolved from
    /// the step, the node, then `global_config`, `async` by default.
    #[serde(serialize_with = "mode_name")]
    pub mode: ckp_core::procedure::DispatchMode,
    /// `_workflow_context`, added to the params (B §5.14).
    pub context: Value,
    /// False inside a subflow's child run, where an async dispatch cannot pause the parent yet: the agent
    /// refuses the step with a clear error instead of firing.
    pub allow_async: bool,
}

fn mode_name<S: serde::Serializer>(mode: &ckp_core::procedure::DispatchMode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(dispatch_mode_name(*mode))
}

/// `async` or `sync`.
pub fn dispatch_mode_name(mode: ckp_core::procedure::DispatchMode) -> &'static str {
    match mode {
        ckp_core::procedure::DispatchMode::Async => "async",
        ckp_core::procedure::DispatchMode::Sync => "sync",
    }
}

/// How an agent took a step.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentReply {
    /// The result, at once.
    Done(Value),
    /// An async workflow accepted the step; its result comes later to the run's callback URL.
    Delegated {
        /// The agent's base URL.
        agent_url: String,
        /// The callback URL given to the agent, without its token (the token is never stored).
        callback_url: String,
    },
    /// No agent can take the step now, but the channel has agents that may come online (offline, their circuit
    /// open, or their capabilities not known yet): the step waits for one, bounded by
    /// [`EngineConfig::agent_wait_ms`](crate::EngineConfig::agent_wait_ms), instead of failing at once.
    NoneOnline {
        /// Why no agent can take it now (the step's error if none comes in time).
        message: String,
    },
}

/// Executes steps on agents.
pub trait Agents: Send + Sync {
    /// Executes `req`; `Ok(result)` or a step error (`agent_unavailable` when no agent serves the channel).
    fn execute(&self, req: AgentRequest) -> BoxFuture<'_, Result<Value, StepError>>;

    /// Executes `req`, or delegates it to an async workflow capability. Agents without workflow capabilities
    /// keep this default: [`Agents::execute`].
    fn dispatch(&self, req: AgentRequest) -> BoxFuture<'_, Result<AgentReply, StepError>> {
        let call = self.execute(req);
        Box::pin(async move { call.await.map(AgentReply::Done) })
    }
}

/// An outbound HTTP request (the built-in `http_request` executor, A.2.15).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpRequest {
    /// Method, upper-case.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<Value>,
    /// Time limit.
    pub timeout: Option<Duration>,
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body: parsed JSON when it is JSON, else a string.
    pub body: Value,
}

/// Performs HTTP requests.
pub trait Http: Send + Sync {
    /// Sends `req`. Transport failures are errors; any status is a response.
    fn request(&self, req: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, StepError>>;
}

/// One chat completion request (langorch.md B §6.3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmRequest {
    /// Model (None: the provider's default).
    pub model: Option<String>,
    /// System prompt.
    pub system_prompt: Option<String>,
    /// User prompt.
    pub prompt: String,
    /// Temperature.
    pub temperature: Option<f64>,
    /// Completion token cap.
    pub max_tokens: Option<u32>,
    /// Ask for a JSON object.
    pub json_mode: bool,
    /// Attachments, already loaded: `(kind, description, content)`; images as data URLs.
    pub attachments: Vec<LlmAttachmentData>,
    /// Run id (for gateway headers and logs).
    pub run_id: String,
    /// Node id.
    pub node_id: String,
    /// W3C `traceparent` to send with the call, when the run is traced ([`TraceContext`]).
    #[serde(skip)]
    pub traceparent: Option<String>,
}

/// An attachment's content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmAttachmentData {
    /// image, csv, text or json.
    pub kind: String,
    /// Description.
    pub description: Option<String>,
    /// Text content, or a data URL for images.
    pub content: String,
}

/// A chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmResponse {
    /// The text of the first choice.
    pub text: String,
    /// The model that answered.
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

/// Calls chat models.
pub trait Llm: Send + Sync {
    /// Completes `req`.
    fn complete(&self, req: LlmRequest) -> BoxFuture<'_, Result<LlmResponse, StepError>>;
}

/// One MCP tool call: a step whose action is `mcp:<server>/<tool>`.
#[derive(Debug, Clone, PartialEq)]
pub struct McpCall {
    /// The server's name.
    pub server: String,
    /// The tool.
    pub tool: String,
    /// Rendered parameters (secrets resolved), sent as the tool's arguments.
    pub arguments: Map<String, Value>,
    /// The procedure's own declaration of `server` (`global_config.mcp_servers`), if it has one.
    pub declared: Option<ckp_core::mcp::McpServer>,
    /// Run id.
    pub run_id: String,
    /// Node id.
    pub node_id: String,
    /// Step id.
    pub step_id: String,
    /// W3C `traceparent` to send in the request's `_meta` (SEP-414), when the run is traced ([`TraceContext`]).
    pub traceparent: Option<String>,
}

/// Calls MCP tools.
pub trait Mcp: Send + Sync {
    /// Calls the tool; its result, or a step error (`mcp_error`, LangOrch's `MCPToolError`).
    fn call_tool(&self, call: McpCall) -> BoxFuture<'_, Result<Value, StepError>>;

    /// LangOrch's legacy fallback (langorch.md B §6.2) for a step whose node names an agent channel that no agent
    /// serves: `None` when no fallback is configured, so dispatch goes on to the built-in executors.
    fn fallback(&self, req: &AgentRequest) -> Option<BoxFuture<'_, Result<Value, StepError>>> {
        let _ = req;
        None
    }
}

/// W3C trace context for the calls a run makes (agents, LLMs, MCP servers), given by the server when it exports
/// traces. Asked after the call's intent is committed, so the span of its step (or LLM node) is known.
pub trait TraceContext: Send + Sync + std::fmt::Debug {
    /// The `traceparent` header for a call of `run_id` at `node_id` and `step_id` (empty for an LLM node), if the
    /// run is traced.
    fn traceparent(&self, run_id: &str, node_id: &str, step_id: &str) -> Option<String>;
}

/// Which run asks for a secret, and the provider configuration its procedure declares.
#[derive(Debug, Clone, Copy)]
pub struct SecretScope<'a> {
    /// The run.
    pub run_id: &'a str,
    /// The procedure's `global_config.secrets_config`; None: the server's default provider.
    pub config: Option<&'a ckp_core::procedure::SecretsSpec>,
}

/// Reads secrets.
pub trait Secrets: Send + Sync {
    /// The value of secret `name` (an alias of `scope.config`, or a key) for `scope`'s run, if it exists. Errors
    /// never contain a value or a credential.
    fn get<'a>(&'a self, scope: SecretScope<'a>, name: &'a str) -> BoxFuture<'a, Result<Option<String>, StepError>>;

    /// A credential-grant token for secret `name` in `scope`'s run, issued at `now` (`{{secret_grants.NAME}}`): the
    /// executor trades it for the value at the server's `GET /api/agent-credentials/{name}`. The default refuses,
    /// for runners that serve no such endpoint.
    fn grant(&self, scope: SecretScope<'_>, name: &str, now: DateTime<Utc>) -> Result<String, StepError> {
        let _ = (scope, now);
        refuse_grant(name)
    }
}

/// The step error of a `{{secret_grants.NAME}}` that this runner cannot issue.
pub fn refuse_grant<T>(name: &str) -> Result<T, StepError> {
    Err(StepError::new(
        ErrorKind::InternalError,
        format!(
            "`{{{{secret_grants.{name}}}}}` needs a server that exchanges credential grants (ckp serve's \
             /api/agent-credentials); use `{{{{secrets.{name}}}}}` here"
        ),
    ))
}

/// Time: now and sleeping (tests use tokio's paused clock).
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Sleeps for `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()>;
}

/// The real clock: system time and tokio sleeps.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// The set of effects an engine uses. Absent ones make the matching steps fail with a clear message.
#[derive(Clone)]
pub struct Effects {
    /// Agents.
    pub agents: Option<Arc<dyn Agents>>,
    /// Built-in HTTP executor.
    pub http: Option<Arc<dyn Http>>,
    /// LLM.
    pub llm: Option<Arc<dyn Llm>>,
    /// MCP.
    pub mcp: Option<Arc<dyn Mcp>>,
    /// Secrets.
    pub secrets: Option<Arc<dyn Secrets>>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
}

impl Default for Effects {
    fn default() -> Self {
        Effects { agents: None, http: None, llm: None, mcp: None, secrets: None, clock: Arc::new(SystemClock) }
    }
}

impl std::fmt::Debug for Effects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Effects")
            .field("agents", &self.agents.is_some())
            .field("http", &self.http.is_some())
            .field("llm", &self.llm.is_some())
            .field("mcp", &self.mcp.is_some())
            .field("secrets", &self.secrets.is_some())
            .finish()
    }
}
