//! Workflow-type agent capabilities (langorch.md B §5.14, A.2.6): the signed callback URL and the async "fire".
//!
//! The callback token is LangOrch's: the hex HMAC-SHA256 of the run id under a server secret, so LangOrch's
//! agents call back unchanged. The secret is ckp's own (`callback_secret`), never a public default. The fire is
//! `POST {base_url}/execute` with the ordinary body and headers, `params.callback_url` and `_workflow_context`,
//! 10 s per attempt, 3 attempts (1 s, 2 s apart); any 2xx means the workflow accepted the step.

use std::sync::OnceLock;
use std::time::Duration;

use ckp_core::procedure::ErrorKind;
use ckp_engine::effects::AgentRequest;
use ckp_engine::error::StepError;
use serde_json::Value;

use crate::secrets::crypto::{hex, hmac_sha256, same};

/// Time limit of one fire attempt.
const FIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Waits before the second and third attempts.
const FIRE_BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// Signs and checks callback URLs. The base URL is set once the server knows its address.
#[derive(Debug)]
pub struct CallbackSigner {
    secret: Vec<u8>,
    base_url: OnceLock<String>,
}

impl CallbackSigner {
    /// A signer with `secret`.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        CallbackSigner { secret: secret.into(), base_url: OnceLock::new() }
    }

    /// Sets the URL agents reach the server at (`http://host:port`); later calls are ignored.
    pub fn set_base_url(&self, url: &str) {
        let _ = self.base_url.set(url.trim_end_matches('/').to_owned());
    }

    /// The token of `run_id`: hex HMAC-SHA256 of the run id.
    pub fn token(&self, run_id: &str) -> String {
        hex(&hmac_sha256(&self.secret, run_id.as_bytes()))
    }

    /// Whether `token` is `run_id`'s (compared in constant time).
    pub fn verify(&self, run_id: &str, token: &str) -> bool {
        let expected = self.token(run_id);
        same(expected.as_bytes(), token.as_bytes())
    }

    /// The key of credential grants (`{{secret_grants.NAME}}`), derived from the same secret: every process that
    /// can check a callback can check a grant, and neither key reveals the other.
    pub fn grant_key(&self) -> crate::secrets::GrantKey {
        crate::secrets::GrantKey::new(&self.secret)
    }

    /// The callback URL of `run_id` without its token (what events show).
    pub fn url(&self, run_id: &str) -> String {
        let base = self.base_url.get().map_or("http://127.0.0.1:8000", String::as_str);
        format!("{base}/api/runs/{run_id}/callback")
    }

    /// The callback URL of `run_id` with its token (what the agent gets).
    pub fn signed_url(&self, run_id: &str) -> String {
        format!("{}?token={}", self.url(run_id), self.token(run_id))
    }
}

/// Fires an async workflow: `req` with `callback_url` and `_workflow_context` in its params, retried up to 3
/// times. Returns when the agent accepted it.
pub async fn fire(
    client: &reqwest::Client,
    base_url: &str,
    req: &AgentRequest,
    signed_callback_url: &str,
) -> Result<(), StepError> {
    let url = format!("{}/execute", base_url.trim_end_matches('/'));
    let mut params = req.params.clone();
    params.insert("callback_url".into(), Value::from(signed_callback_url));
    params.insert("_workflow_context".into(), req.workflow.context.clone());
    let mut last = String::new();
    for attempt in 0..=FIRE_BACKOFF.len() {
        if attempt > 0 {
            tokio::time::sleep(FIRE_BACKOFF[attempt - 1]).await;
        }
        let sent = crate::agents::execute_request(client, &url, req, &params).timeout(FIRE_TIMEOUT).send().await;
        match sent {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => last = format!("HTTP {}", resp.status().as_u16()),
            // The policy would refuse it again: no more tries.
            Err(e) if crate::egress::refusal(&e).is_some() => {
                return Err(crate::http::transport_error(&e, &format!("Workflow dispatch of '{}'", req.action)));
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(StepError::new(
        ErrorKind::AgentError,
        format!(
            "Workflow dispatch of '{}' to {url} failed after {} attempts: {last}",
            req.action,
            FIRE_BACKOFF.len() + 1
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::CallbackSigner;

    #[test]
    fn tokens_are_per_run_and_checked() {
        let signer = CallbackSigner::new("s3cret");
        signer.set_base_url("http://127.0.0.1:9/");
        let token = signer.token("run-1");
        assert!(signer.verify("run-1", &token));
        assert!(!signer.verify("run-2", &token));
        assert!(!signer.verify("run-1", ""));
        assert!(!signer.verify("run-1", &token[..63]));
        assert_eq!(signer.signed_url("run-1"), format!("http://127.0.0.1:9/api/runs/run-1/callback?token={token}"));
        assert!(!CallbackSigner::new("other").verify("run-1", &token));
    }
}
