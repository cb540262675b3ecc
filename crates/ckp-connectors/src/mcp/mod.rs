//! MCP tools (the engine's `Mcp`): `mcp:<server>/<tool>` steps call a tool of a named MCP server through the
//! official SDK (`rmcp`, cargo feature `mcp`), over stdio (a child process) or streamable HTTP; and LangOrch's
//! legacy fallback (`legacy.rs`) for steps whose agent channel has no agent.
//!
//! Servers come from the runner's configuration (`ckp serve`'s `[mcp_servers.NAME]`, `ckp run --mcp`) or from the
//! procedure's `global_config.mcp_servers`; **the runner's configuration wins** when both name the same server, so
//! an operator decides what a name means on their machine. A procedure's own declarations are fenced: a stdio
//! server only when its command is on the server's `mcp_stdio_allow` list ([`McpConnector::refusal`], checked at
//! import and again before each call), an HTTP server under the egress policy. One session per distinct
//! declaration, opened on first use and reused; a transport failure drops it and the next call reconnects.
//! [`McpConnector::shutdown`] closes every session and kills stdio servers.
//!
//! Result mapping ([`map_result`]): `structuredContent` when the tool returns it; else the content list, where a
//! single text item becomes its text parsed as JSON when it is JSON and the text itself otherwise, no item
//! becomes null, and several items stay the list of MCP content objects. `isError: true` and JSON-RPC errors
//! (unknown tool, invalid arguments) are step errors of kind `mcp_error` (error handlers: `MCPToolError`) whose
//! message carries the tool's text.

pub mod legacy;
#[cfg(feature = "mcp")]
mod session;

use std::collections::BTreeMap;
#[cfg(feature = "mcp")]
use std::collections::HashMap;
#[cfg(feature = "mcp")]
use std::sync::Arc;
use std::time::Duration;

use ckp_core::mcp::{McpServer, McpTransport};
use ckp_core::procedure::ErrorKind;
use ckp_engine::effects::{AgentRequest, BoxFuture, Mcp, McpCall};
use ckp_engine::error::StepError;
use serde_json::{Map, Value};

/// Limit of one tool call (and of connecting) unless the server's declaration says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A tool as its server lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct McpTool {
    /// Name (the `<tool>` of `mcp:<server>/<tool>`).
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    pub input_schema: Value,
}

/// One configured server's tools, or why they could not be listed.
#[derive(Debug, Clone)]
pub struct ServerTools {
    /// The server's name.
    pub server: String,
    /// `stdio` or `http`.
    pub transport: &'static str,
    /// Its tools, or the error text.
    pub tools: Result<Vec<McpTool>, String>,
}

/// What the connector needs to know.
#[derive(Debug, Clone, Default)]
pub struct McpSettings {
    /// Servers by name (they win over a procedure's declarations of the same name).
    pub servers: BTreeMap<String, McpServer>,
    /// LangOrch's `MCP_BASE_URL`: the legacy `POST {base}/tools/{action}` fallback.
    pub legacy_base_url: Option<String>,
    /// Commands a procedure-declared stdio server may run (exact names or paths; `mcp_stdio_allow`).
    pub stdio_allow: Vec<String>,
    /// The policy of procedure-declared HTTP servers.
    pub egress: crate::egress::Egress,
}

/// The setting that lets a procedure start a stdio MCP server, as messages name it.
pub const STDIO_SETTING: &str = "mcp_stdio_allow (CKP_MCP_STDIO_ALLOW)";

/// The engine's `Mcp`.
#[derive(Debug)]
pub struct McpConnector {
    servers: BTreeMap<String, McpServer>,
    stdio_allow: Vec<String>,
    #[cfg_attr(not(feature = "mcp"), expect(dead_code, reason = "only the rmcp sessions connect"))]
    egress: crate::egress::Egress,
    #[cfg(feature = "mcp")]
    slots: std::sync::Mutex<HashMap<(String, McpServer), Arc<session::Slot>>>,
    #[cfg(feature = "mcp")]
    closed: std::sync::atomic::AtomicBool,
    legacy: Option<legacy::LegacyMcp>,
}

impl McpConnector {
    /// A connector; nothing is started until a tool is called or listed.
    pub fn new(settings: McpSettings) -> Self {
        McpConnector {
            servers: settings.servers,
            stdio_allow: settings.stdio_allow,
            egress: settings.egress,
            #[cfg(feature = "mcp")]
            slots: std::sync::Mutex::new(HashMap::new()),
            #[cfg(feature = "mcp")]
            closed: std::sync::atomic::AtomicBool::new(false),
            legacy: settings.legacy_base_url.map(legacy::LegacyMcp::new),
        }
    }

    /// The configured servers.
    pub fn servers(&self) -> &BTreeMap<String, McpServer> {
        &self.servers
    }

    /// Why a procedure may not declare server `name` as `declared`, naming the setting that would allow it: a stdio
    /// server whose command is not on `mcp_stdio_allow`. None when it may, or when the server's own configuration
    /// defines `name` (that one is used instead).
    pub fn refusal(&self, name: &str, declared: &McpServer) -> Option<String> {
        let McpTransport::Stdio { command, .. } = &declared.transport else { return None };
        if self.servers.contains_key(name) || self.stdio_allow.iter().any(|c| c == command) {
            return None;
        }
        Some(format!(
            "MCP server `{name}` declared by the procedure runs the command `{command}` on the server's host, which \
             the server's setting {STDIO_SETTING} does not list"
        ))
    }

    /// Calls `tool` on server `name` (the configured one, else `declared`) with `arguments`; the mapped result.
    pub async fn call(
        &self,
        name: &str,
        declared: Option<&McpServer>,
        tool: &str,
        arguments: Map<String, Value>,
        traceparent: Option<&str>,
    ) -> Result<Value, StepError> {
        if let Some(why) = declared.and_then(|d| self.refusal(name, d)) {
            let mut e = StepError::new(ErrorKind::McpError, why);
            e.code = Some(ckp_engine::error::REFUSED.into());
            return Err(e);
        }
        let Some(server) = self.servers.get(name).or(declared) else {
            return Err(StepError::new(
                ErrorKind::McpError,
                format!(
                    "MCP server `{name}` is not configured: declare it in the procedure's global_config.mcp_servers, in ckp serve's [mcp_servers.{name}], or with ckp run --mcp {name}=..."
                ),
            ));
        };
        let what = format!("MCP tool '{name}/{tool}'");
        let result =
            self.call_on(name, server, tool, arguments, traceparent).await.map_err(|e| e.into_step_error(&what))?;
        map_result(&what, result)
    }

    /// Every configured server's tools (servers that cannot be reached carry their error).
    pub async fn list_tools(&self) -> Vec<ServerTools> {
        let all = self.servers.iter().map(|(name, server)| async move {
            let tools = self.tools_on(name, server).await.map_err(|e| e.text(&format!("MCP server `{name}`")));
            ServerTools { server: name.clone(), transport: server.transport_name(), tools }
        });
        futures_util::future::join_all(all).await
    }

    /// Closes every session; stdio servers are stopped (stdin closed, then SIGTERM, then SIGKILL).
    pub async fn shutdown(&self) {
        #[cfg(feature = "mcp")]
        {
            // Slots stay, closed: a late call gets an error instead of starting a server again.
            let slots: Vec<Arc<session::Slot>> = match self.slots.lock() {
                Ok(m) => {
                    self.closed.store(true, std::sync::atomic::Ordering::Release);
                    m.values().cloned().collect()
                }
                Err(_) => Vec::new(),
            };
            futures_util::future::join_all(slots.iter().map(|s| s.shutdown())).await;
        }
    }

    #[cfg(feature = "mcp")]
    fn slot(&self, name: &str, server: &McpServer) -> Result<Arc<session::Slot>, CallError> {
        let mut slots = self.slots.lock().map_err(|_| CallError::Transport("session table poisoned".into()))?;
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(CallError::Transport("ckp is shutting down".into()));
        }
        // A declaration the operator did not make goes through the egress policy.
        let egress = (self.servers.get(name) != Some(server)).then(|| self.egress.clone());
        let slot = slots
            .entry((name.to_owned(), server.clone()))
            .or_insert_with(|| Arc::new(session::Slot::new(server.clone(), egress)));
        Ok(slot.clone())
    }

    #[cfg(feature = "mcp")]
    async fn call_on(
        &self,
        name: &str,
        server: &McpServer,
        tool: &str,
        arguments: Map<String, Value>,
        traceparent: Option<&str>,
    ) -> Result<Value, CallError> {
        let timeout = server.timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        Ok(self.slot(name, server)?.call(tool, arguments, traceparent, timeout).await?)
    }

    #[cfg(feature = "mcp")]
    async fn tools_on(&self, name: &str, server: &McpServer) -> Result<Vec<McpTool>, CallError> {
        let timeout = server.timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        Ok(self.slot(name, server)?.tools(timeout).await?)
    }

    #[cfg(not(feature = "mcp"))]
    async fn call_on(
        &self,
        _: &str,
        _: &McpServer,
        _: &str,
        _: Map<String, Value>,
        _: Option<&str>,
    ) -> Result<Value, CallError> {
        Err(CallError::Disabled)
    }

    #[cfg(not(feature = "mcp"))]
    async fn tools_on(&self, _: &str, _: &McpServer) -> Result<Vec<McpTool>, CallError> {
        Err(CallError::Disabled)
    }
}

/// Why a call failed, before it becomes a step error.
#[derive(Debug)]
#[cfg_attr(not(feature = "mcp"), expect(dead_code, reason = "only the rmcp sessions produce these"))]
enum CallError {
    /// Not started, not reachable, or the transport broke.
    Transport(String),
    /// A JSON-RPC error from the server.
    Protocol(String),
    /// No answer in time.
    Timeout(Duration),
    /// Built without the `mcp` feature.
    #[cfg(not(feature = "mcp"))]
    Disabled,
}

#[cfg(feature = "mcp")]
impl From<session::Failure> for CallError {
    fn from(f: session::Failure) -> Self {
        match f {
            session::Failure::Transport(m) => CallError::Transport(m),
            session::Failure::Protocol(m) => CallError::Protocol(m),
            session::Failure::Timeout(d) => CallError::Timeout(d),
        }
    }
}

impl CallError {
    fn text(&self, what: &str) -> String {
        match self {
            CallError::Transport(m) => format!("{what} is unreachable: {m}"),
            CallError::Protocol(m) => format!("{what} failed: {m}"),
            CallError::Timeout(d) => format!("{what} did not answer within {} s", d.as_secs_f64()),
            #[cfg(not(feature = "mcp"))]
            CallError::Disabled => format!("{what} cannot be used: this ckp was built without the `mcp` feature"),
        }
    }

    fn into_step_error(self, what: &str) -> StepError {
        StepError::new(ErrorKind::McpError, self.text(what))
    }
}

/// Maps a `tools/call` result (MCP JSON: `content`, `structuredContent`, `isError`) to a step result, as the module
/// documentation describes; `what` names the tool in error messages.
pub fn map_result(what: &str, result: Value) -> Result<Value, StepError> {
    let Value::Object(mut r) = result else {
        return Err(StepError::new(ErrorKind::McpError, format!("{what} returned {result}, not a tool result")));
    };
    let content = match r.remove("content") {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let structured = r.remove("structuredContent").filter(|v| !v.is_null());
    if r.get("isError").and_then(Value::as_bool).unwrap_or(false) {
        let texts: Vec<&str> = content.iter().filter_map(|c| c.get("text").and_then(Value::as_str)).collect();
        let message = if !texts.is_empty() {
            texts.join("\n")
        } else if let Some(s) = structured {
            s.to_string()
        } else {
            "Unknown MCP error".into()
        };
        return Err(StepError::new(ErrorKind::McpError, format!("{what} failed: {message}")));
    }
    if let Some(s) = structured {
        return Ok(s);
    }
    match <[Value; 1]>::try_from(content) {
        Ok([item]) => match (item.get("type").and_then(Value::as_str), item.get("text").and_then(Value::as_str)) {
            (Some("text"), Some(text)) => Ok(serde_json::from_str(text).unwrap_or_else(|_| Value::from(text))),
            _ => Ok(Value::Array(vec![item])),
        },
        Err(items) if items.is_empty() => Ok(Value::Null),
        Err(items) => Ok(Value::Array(items)),
    }
}

impl Mcp for McpConnector {
    fn call_tool(&self, call: McpCall) -> BoxFuture<'_, Result<Value, StepError>> {
        Box::pin(async move {
            self.call(&call.server, call.declared.as_ref(), &call.tool, call.arguments, call.traceparent.as_deref())
                .await
        })
    }

    fn fallback(&self, req: &AgentRequest) -> Option<BoxFuture<'_, Result<Value, StepError>>> {
        let legacy = self.legacy.as_ref()?;
        let req = req.clone();
        Some(Box::pin(async move { legacy.call(&req).await }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn results_map_as_documented() {
        let ok = |v: Value| map_result("t", v).expect("ok");
        assert_eq!(ok(json!({"content": [{"type": "text", "text": "Echo: hi"}]})), json!("Echo: hi"));
        assert_eq!(ok(json!({"content": [{"type": "text", "text": "{\"a\": 1}"}]})), json!({"a": 1}));
        assert_eq!(
            ok(json!({"content": [{"type": "text", "text": "x"}], "structuredContent": {"n": 2}})),
            json!({"n": 2})
        );
        assert_eq!(ok(json!({"content": []})), Value::Null);
        let two = json!([{"type": "text", "text": "a"}, {"type": "image", "data": "AA==", "mimeType": "image/png"}]);
        assert_eq!(ok(json!({"content": two.clone()})), two);
        let e = map_result("MCP tool 's/t'", json!({"content": [{"type": "text", "text": "boom"}], "isError": true}))
            .expect_err("error");
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::McpError, "MCP tool 's/t' failed: boom"));
        let e = map_result("t", json!({"isError": true})).expect_err("error");
        assert!(e.message.ends_with("Unknown MCP error"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_procedures_stdio_server_runs_only_a_listed_command() {
        let stdio = |command: &str| McpServer {
            transport: McpTransport::Stdio {
                command: command.into(),
                args: Vec::new(),
                env: BTreeMap::new(),
                cwd: None,
            },
            timeout_ms: None,
        };
        let c = McpConnector::new(McpSettings {
            servers: BTreeMap::from([("ops".to_owned(), stdio("/opt/ops-mcp"))]),
            stdio_allow: vec!["/usr/bin/fs-mcp".into()],
            ..McpSettings::default()
        });
        // Checked again at call time (the setting may have changed since the import): nothing is started.
        let e = c.call("sh", Some(&stdio("/bin/sh")), "echo", Map::new(), None).await.expect_err("refused");
        assert!(e.is_refused() && e.message.contains("mcp_stdio_allow (CKP_MCP_STDIO_ALLOW)"), "{}", e.message);
        assert!(e.message.contains("`/bin/sh`"), "{}", e.message);
        assert_eq!(c.refusal("fs", &stdio("/usr/bin/fs-mcp")), None, "listed");
        assert!(c.refusal("fs", &stdio("fs-mcp")).is_some(), "exactly as listed");
        assert_eq!(c.refusal("ops", &stdio("/bin/sh")), None, "the operator's server of that name is used instead");
        let http = McpServer {
            transport: McpTransport::Http { url: "https://mcp.example/mcp".into(), headers: BTreeMap::new() },
            timeout_ms: None,
        };
        assert_eq!(c.refusal("web", &http), None, "HTTP servers go through the egress policy instead");
    }

    #[tokio::test]
    async fn an_unknown_server_is_a_clear_step_error() {
        let c = McpConnector::new(McpSettings::default());
        let e = c.call("nowhere", None, "echo", Map::new(), None).await.expect_err("unknown");
        assert_eq!(e.kind, ErrorKind::McpError);
        assert!(e.message.contains("MCP server `nowhere` is not configured"), "{}", e.message);
    }
}
