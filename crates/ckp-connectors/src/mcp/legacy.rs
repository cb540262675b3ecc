//! LangOrch's legacy MCP fallback (langorch.md B §6.2): when a step's agent channel has no agent and `mcp_base_url`
//! is set, `POST {base}/tools/{action}` with `{"arguments": params}` and `X-Run-ID`/`X-Node-ID`/`X-Step-ID` (each
//! only when non-empty), 30 s. `{"isError": true, "error"?}` → `MCP tool '<t>' failed: <error or "Unknown MCP
//! error">`; non-2xx → `... failed: HTTP <code>`; otherwise the result is `result` or, without it, the whole body.
//!
//! One circuit breaker per process: 5 consecutive failures open it for 300 s, then one call goes through (a
//! success closes it, a failure opens it again). Failures are the peer's: transport errors, non-2xx, bodies that
//! are not JSON. A well-formed answer, including `isError`, shows the server works and resets the count.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ckp_core::procedure::ErrorKind;
use ckp_engine::effects::AgentRequest;
use ckp_engine::error::StepError;
use serde_json::{Value, json};

/// The fallback client.
#[derive(Debug)]
pub struct LegacyMcp {
    base_url: String,
    client: crate::http::LazyClient,
    timeout: Duration,
    threshold: u32,
    open_for: Duration,
    breaker: Mutex<Breaker>,
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    opened_at: Option<Instant>,
}

impl LegacyMcp {
    /// The fallback for `base_url` with LangOrch's settings: 30 s per call, breaker 5 failures / 300 s.
    pub fn new(base_url: String) -> Self {
        LegacyMcp {
            base_url,
            client: crate::http::LazyClient::default(),
            timeout: Duration::from_secs(30),
            threshold: 5,
            open_for: Duration::from_secs(300),
            breaker: Mutex::new(Breaker::default()),
        }
    }

    /// The same with another breaker window (tests).
    pub fn with_breaker_window(mut self, open_for: Duration) -> Self {
        self.open_for = open_for;
        self
    }

    /// Calls tool `req.action` with `req.params`.
    pub async fn call(&self, req: &AgentRequest) -> Result<Value, StepError> {
        let tool = &req.action;
        let fail = |m: String| StepError::new(ErrorKind::McpError, format!("MCP tool '{tool}' failed: {m}"));
        self.admit()?;
        let mut url =
            reqwest::Url::parse(&self.base_url).map_err(|e| fail(format!("mcp_base_url is not a URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| fail("mcp_base_url cannot take a path".into()))?
            .pop_if_empty()
            .extend(["tools", tool.as_str()]);
        let mut http = self.client.get().post(url).timeout(self.timeout).json(&json!({"arguments": req.params}));
        for (name, value) in [("X-Run-ID", &req.run_id), ("X-Node-ID", &req.node_id), ("X-Step-ID", &req.step_id)] {
            if !value.is_empty() {
                http = http.header(name, value.as_str());
            }
        }
        if let Some(tp) = &req.traceparent {
            http = http.header("traceparent", tp.as_str());
        }
        let resp = match http.send().await {
            Ok(r) => r,
            Err(e) => {
                self.record(false);
                let m = if e.is_timeout() {
                    format!("timed out after {} s", self.timeout.as_secs())
                } else {
                    e.to_string()
                };
                return Err(fail(m));
            }
        };
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            self.record(false);
            let mut e = fail(format!("HTTP {status}"));
            e.http_status = Some(status);
            return Err(e);
        }
        let body: Value = match resp.json().await {
            Ok(b) => b,
            Err(e) => {
                self.record(false);
                return Err(fail(format!("the answer is not JSON: {e}")));
            }
        };
        self.record(true);
        if body.get("isError").and_then(Value::as_bool).unwrap_or(false) {
            let error = match body.get("error") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(v) if !v.is_null() => v.to_string(),
                _ => "Unknown MCP error".into(),
            };
            return Err(fail(error));
        }
        Ok(match body {
            Value::Object(mut o) if o.contains_key("result") => o.remove("result").unwrap_or(Value::Null),
            other => other,
        })
    }

    /// Refuses the call while the breaker is open.
    fn admit(&self) -> Result<(), StepError> {
        let Ok(b) = self.breaker.lock() else { return Ok(()) };
        match b.opened_at {
            Some(at) if at.elapsed() < self.open_for => {
                let left = self.open_for.saturating_sub(at.elapsed()).as_secs_f64().ceil();
                Err(StepError::new(
                    ErrorKind::McpError,
                    format!("MCP circuit breaker open (failed {}× consecutively; resets in {left}s)", self.threshold),
                ))
            }
            _ => Ok(()),
        }
    }

    fn record(&self, ok: bool) {
        let Ok(mut b) = self.breaker.lock() else { return };
        if ok {
            *b = Breaker::default();
        } else {
            b.failures += 1;
            if b.failures >= self.threshold {
                b.opened_at = Some(Instant::now());
            }
        }
    }
}
