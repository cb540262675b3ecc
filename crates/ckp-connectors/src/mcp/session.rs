//! MCP sessions over the official SDK (`rmcp`): one per server declaration, opened on first use, shared by
//! concurrent calls, replaced after its transport fails, closed (child processes killed) at shutdown. A stdio
//! server runs as the leader of its own process group, so `npx`-style launchers take their children with them.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use ckp_core::mcp::{McpServer, McpTransport};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, Implementation};
use rmcp::service::{Peer, RoleClient, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Map, Value};
use tokio::io::AsyncReadExt;

use super::McpTool;

/// How much of a server's stderr is kept for error messages.
const STDERR_TAIL: usize = 2000;

/// Why a call failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The server could not be started or connected to, or its transport broke: the session is dropped and the
    /// next call reconnects.
    Transport(String),
    /// The server answered with a JSON-RPC error (unknown tool, invalid arguments, ...).
    Protocol(String),
    /// No answer in time.
    Timeout(Duration),
}

/// One server's session slot.
pub(super) struct Slot {
    server: McpServer,
    /// The policy when a procedure declared the server (None: the operator's).
    egress: Option<crate::egress::Egress>,
    live: tokio::sync::Mutex<Option<Live>>,
    generation: AtomicU64,
    closed: AtomicBool,
}

struct Live {
    peer: Peer<RoleClient>,
    service: RunningService<RoleClient, ClientConfig>,
    generation: u64,
    stderr: Arc<StdMutex<String>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("transport", &self.server.transport_name()).finish_non_exhaustive()
    }
}

impl Slot {
    pub(super) fn new(server: McpServer, egress: Option<crate::egress::Egress>) -> Slot {
        Slot {
            server,
            egress,
            live: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// The live session's peer, connecting first when there is none or the last one closed.
    async fn peer(&self, connect_timeout: Duration) -> Result<(Peer<RoleClient>, u64), Failure> {
        let mut live = self.live.lock().await;
        if self.closed.load(Ordering::Acquire) {
            return Err(Failure::Transport("ckp is shutting down".into()));
        }
        if let Some(l) = live.as_ref()
            && !l.service.is_closed()
            && !l.peer.is_transport_closed()
        {
            return Ok((l.peer.clone(), l.generation));
        }
        if let Some(old) = live.take() {
            close(old).await;
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let fresh = match tokio::time::timeout(connect_timeout, connect(&self.server, self.egress.as_ref(), generation))
            .await
        {
            Ok(r) => r?,
            Err(_) => {
                return Err(Failure::Transport(format!("no MCP handshake within {} s", connect_timeout.as_secs_f64())));
            }
        };
        tracing::info!(transport = self.server.transport_name(), generation, "MCP session opened");
        let out = (fresh.peer.clone(), generation);
        *live = Some(fresh);
        Ok(out)
    }

    /// Forgets session `generation` after a transport failure (a newer session is kept).
    async fn discard(&self, generation: u64) -> Option<String> {
        let mut live = self.live.lock().await;
        if live.as_ref().is_some_and(|l| l.generation == generation) {
            let old = live.take()?;
            let tail = stderr_tail(&old.stderr);
            close(old).await;
            return tail;
        }
        None
    }

    /// Closes the session, if any (stdio: stdin closed, then SIGTERM, then SIGKILL to the process group).
    pub(super) async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(old) = self.live.lock().await.take() {
            close(old).await;
        }
    }

    /// Calls `tool`; the result as the MCP JSON object (`content`, `structuredContent`, `isError`).
    pub(super) async fn call(
        &self,
        tool: &str,
        arguments: Map<String, Value>,
        traceparent: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let (peer, generation) = self.peer(timeout).await?;
        let mut params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        // The W3C trace context travels in the request's `_meta` (SEP-414), per call on a shared session.
        if let Some(tp) = traceparent {
            let mut meta = rmcp::model::MetaObject::new();
            meta.set_traceparent(tp);
            params.meta = Some(rmcp::model::RequestMetaObject(meta));
        }
        let result = match tokio::time::timeout(timeout, peer.call_tool(params)).await {
            Ok(r) => r,
            Err(_) => return Err(Failure::Timeout(timeout)),
        };
        match result {
            Ok(r) => serde_json::to_value(r).map_err(|e| Failure::Protocol(format!("unreadable tool result: {e}"))),
            Err(e) => Err(self.failure(e, generation).await),
        }
    }

    /// Lists every tool (all pages).
    pub(super) async fn tools(&self, timeout: Duration) -> Result<Vec<McpTool>, Failure> {
        let (peer, generation) = self.peer(timeout).await?;
        let tools = match tokio::time::timeout(timeout, peer.list_all_tools()).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(self.failure(e, generation).await),
            Err(_) => return Err(Failure::Timeout(timeout)),
        };
        Ok(tools
            .into_iter()
            .map(|t| McpTool {
                name: t.name.into_owned(),
                description: t.description.map(|d| d.into_owned()),
                input_schema: Value::Object((*t.input_schema).clone()),
            })
            .collect())
    }

    async fn failure(&self, e: ServiceError, generation: u64) -> Failure {
        match e {
            ServiceError::McpError(data) => Failure::Protocol(data.message.into_owned()),
            ServiceError::Timeout { timeout } => Failure::Timeout(timeout),
            ServiceError::TransportSend(_) | ServiceError::TransportClosed => {
                let tail = self.discard(generation).await;
                tracing::warn!(transport = self.server.transport_name(), error = %e,
                    "MCP session lost; the next call opens a new one");
                Failure::Transport(with_tail(e.to_string(), tail))
            }
            other => Failure::Protocol(other.to_string()),
        }
    }
}

fn client_config() -> ClientConfig {
    let mut info = ClientConfig::default();
    info.client_info = Implementation::new("ckp", env!("CARGO_PKG_VERSION"));
    info
}

async fn connect(server: &McpServer, egress: Option<&crate::egress::Egress>, generation: u64) -> Result<Live, Failure> {
    let stderr = Arc::new(StdMutex::new(String::new()));
    let mut reader = None;
    let service = match &server.transport {
        McpTransport::Stdio { command, args, env, cwd } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).envs(env);
            if let Some(dir) = cwd {
                cmd.current_dir(dir);
            }
            let mut wrapped = process_wrap::tokio::CommandWrap::from(cmd);
            wrapped.wrap(process_wrap::tokio::ProcessGroup::leader()).wrap(process_wrap::tokio::KillOnDrop);
            let (transport, err) = TokioChildProcess::builder(wrapped)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| Failure::Transport(format!("cannot start `{command}`: {e}")))?;
            if let Some(mut err) = err {
                let sink = stderr.clone();
                reader = Some(tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = err.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if let Ok(mut s) = sink.lock() {
                            s.push_str(&String::from_utf8_lossy(&buf[..n]));
                            if s.len() > STDERR_TAIL * 2 {
                                let cut = s.len() - STDERR_TAIL;
                                let cut = (cut..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(s.len());
                                s.drain(..cut);
                            }
                        }
                    }
                }));
            }
            client_config().serve(transport).await
        }
        McpTransport::Http { url, headers } => {
            let mut custom = std::collections::HashMap::new();
            for (k, v) in headers {
                let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| Failure::Transport(format!("header name {k:?} is not valid")))?;
                let value = reqwest::header::HeaderValue::from_str(v)
                    .map_err(|_| Failure::Transport(format!("the value of header {k:?} is not valid")))?;
                custom.insert(name, value);
            }
            let client = match egress {
                Some(egress) => {
                    egress.check_url(url).await.map_err(|r| Failure::Transport(r.to_string()))?;
                    egress.client().build().map_err(|e| Failure::Transport(format!("no HTTP client: {e}")))?
                }
                None => reqwest::Client::new(),
            };
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(custom);
            let transport = StreamableHttpClientTransport::with_client(client, config);
            client_config().serve(transport).await
        }
    };
    let service = match service {
        Ok(s) => s,
        Err(e) => {
            // A server that exits at once has usually said why on stderr: let the reader catch up.
            if let Some(r) = reader {
                let _ = tokio::time::timeout(Duration::from_secs(1), r).await;
            }
            return Err(Failure::Transport(with_tail(format!("MCP handshake failed: {e}"), stderr_tail(&stderr))));
        }
    };
    Ok(Live { peer: service.peer().clone(), service, generation, stderr })
}

async fn close(mut live: Live) {
    let _ = live.service.close_with_timeout(Duration::from_secs(10)).await;
}

fn stderr_tail(s: &StdMutex<String>) -> Option<String> {
    let s = s.lock().ok()?;
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    let start = t.len().saturating_sub(STDERR_TAIL);
    let start = (start..t.len()).find(|i| t.is_char_boundary(*i)).unwrap_or(0);
    Some(t[start..].to_owned())
}

fn with_tail(message: String, tail: Option<String>) -> String {
    match tail {
        Some(t) => format!("{message} (server stderr: {t})"),
        None => message,
    }
}
