//! The built-in HTTP executor over reqwest: any method, headers, a JSON body, the step's time limit. Transport
//! failures are step errors (`timeout`, `http_error`); every status is a response (the engine maps 4xx/5xx). The
//! destination is a procedure's choice, so it follows the egress policy (`egress.rs`): a refusal is a step error
//! naming the destination and the setting that opens it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ckp_core::procedure::ErrorKind;
use ckp_engine::effects::{BoxFuture, Http, HttpRequest, HttpResponse};
use ckp_engine::error::StepError;
use serde_json::Value;

use crate::egress::{Egress, refusal};

/// Used when a step gives no time limit.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP over a shared connection pool, to the destinations the egress policy opens (a procedure chooses them).
#[derive(Debug, Clone)]
pub struct ReqwestHttp {
    client: LazyClient,
}

impl ReqwestHttp {
    /// A client with its own pool, under `egress`.
    pub fn new(egress: Egress) -> Self {
        ReqwestHttp { client: LazyClient::guarded(egress) }
    }
}

/// A reqwest client built on its first use; clones share it (and its connection pool). Building a client loads and
/// parses the system's root certificates and wakes the TLS stack: about a fifth of an idle server's memory when
/// every connector did it at start, for a server that may never make an outbound call.
#[derive(Debug, Clone, Default)]
pub struct LazyClient {
    client: Arc<OnceLock<reqwest::Client>>,
    timeout: Option<Duration>,
    /// The policy of a client for destinations a procedure or an API caller chose (None: the operator's own).
    egress: Option<Egress>,
}

impl LazyClient {
    /// A client whose requests time out after `timeout` unless they set their own.
    pub fn with_timeout(timeout: Duration) -> Self {
        LazyClient { timeout: Some(timeout), ..LazyClient::default() }
    }

    /// A client whose connections and redirects follow `egress` (its resolver and redirect policy; the caller
    /// still checks the first URL with [`Egress::check_url`]).
    pub fn guarded(egress: Egress) -> Self {
        LazyClient { egress: Some(egress), ..LazyClient::default() }
    }

    /// The same, with a default time limit.
    pub fn guarded_with_timeout(egress: Egress, timeout: Duration) -> Self {
        LazyClient { timeout: Some(timeout), ..LazyClient::guarded(egress) }
    }

    /// [`Egress::check_url`] for a guarded client (an operator's client checks nothing).
    pub async fn check_url(&self, url: &str) -> Result<(), crate::egress::Refused> {
        match &self.egress {
            Some(egress) => egress.check_url(url).await,
            None => Ok(()),
        }
    }

    /// The client, built now if this is its first use.
    pub fn get(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            let builder = match &self.egress {
                Some(egress) => egress.client(),
                None => reqwest::Client::builder(),
            };
            let builder = match self.timeout {
                Some(t) => builder.timeout(t),
                None => builder,
            };
            builder.build().unwrap_or_default()
        })
    }
}

/// Ties an outbound call to the step that makes it, as LangOrch does: `X-Run-ID` and `X-Node-ID` (agents' calls add
/// `X-Step-ID` and `Idempotency-Key`: [`crate::agents::execute_request`]).
pub(crate) fn run_headers(builder: reqwest::RequestBuilder, run_id: &str, node_id: &str) -> reqwest::RequestBuilder {
    builder.header("X-Run-ID", run_id).header("X-Node-ID", node_id)
}

/// Maps a transport failure to a step error; the message ends with the innermost cause (a refused connection, an
/// untrusted certificate), which is what the user can act on.
pub(crate) fn transport_error(e: &reqwest::Error, what: &str) -> StepError {
    if let Some(refused) = refusal(e) {
        return refused.step_error(what);
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let detail =
        if std::ptr::addr_eq(cause, e as &dyn std::error::Error) { String::new() } else { format!(" ({cause})") };
    if e.is_timeout() {
        StepError::new(ErrorKind::Timeout, format!("{what}: timed out"))
    } else if e.is_connect() {
        StepError::new(ErrorKind::HttpError, format!("{what}: cannot connect{detail}"))
    } else {
        StepError::new(ErrorKind::HttpError, format!("{what}: {e}{detail}"))
    }
}

impl Http for ReqwestHttp {
    fn request(&self, req: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, StepError>> {
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| {
                StepError::new(ErrorKind::ValidationError, format!("invalid HTTP method {:?}", req.method))
            })?;
            let what = format!("{} {}", req.method, req.url);
            self.client.check_url(&req.url).await.map_err(|r| r.step_error(&what))?;
            let mut builder =
                self.client.get().request(method, &req.url).timeout(req.timeout.unwrap_or(DEFAULT_TIMEOUT));
            for (name, value) in &req.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            if let Some(body) = &req.body {
                builder = builder.json(body);
            }
            let resp = builder.send().await.map_err(|e| transport_error(&e, &what))?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let text = resp.text().await.map_err(|e| transport_error(&e, &what))?;
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            Ok(HttpResponse { status, headers, body })
        })
    }
}
