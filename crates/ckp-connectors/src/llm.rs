//! An OpenAI-compatible chat-completions client (the engine's `Llm`): `POST {base_url}/chat/completions` with the
//! system prompt, the user prompt (and attachments: images as `image_url` parts, text kinds appended as text
//! parts), model, temperature, max_tokens and `response_format: json_object` in json_mode; the answer's first
//! choice, model and token usage. 429 and 5xx are retried with backoff, honouring `Retry-After`; after the
//! retries, the next model of the fallback chain is tried.

use std::time::Duration;

use ckp_core::procedure::ErrorKind;
use ckp_engine::effects::{BoxFuture, Llm, LlmRequest, LlmResponse};
use ckp_engine::error::StepError;
use serde_json::{Value, json};

use crate::http::{run_headers, transport_error};
use crate::masked::debug_masking;

/// How to reach the model provider.
#[derive(Clone)]
pub struct LlmConfig {
    /// Base URL (`https://api.openai.com/v1`, a gateway, a local server).
    pub base_url: String,
    /// Bearer key (None for servers without authentication).
    pub api_key: Option<crate::settings::Secret<String>>,
    /// Model used when a node names none.
    pub default_model: String,
    /// Extra headers for gateways (their values may be credentials: `Debug` shows only the names).
    pub headers: Vec<(String, String)>,
    /// Models tried in order when one keeps failing (429/5xx after its retries).
    pub fallback_models: Vec<String>,
    /// Attempts per model for 429 and 5xx.
    pub attempts: u32,
    /// First backoff (doubled each retry) when the answer gives no `Retry-After`.
    pub backoff: Duration,
    /// Time limit of one request.
    pub timeout: Duration,
}

debug_masking!(LlmConfig { base_url, default_model, fallback_models, attempts, backoff, timeout }
    masking { api_key, headers });

impl LlmConfig {
    /// A configuration for `base_url` with `default_model` and LangOrch-like defaults: 3 attempts per model,
    /// 500 ms first backoff, 120 s per request.
    pub fn new(base_url: impl Into<String>, default_model: impl Into<String>) -> Self {
        LlmConfig {
            base_url: base_url.into(),
            api_key: None,
            default_model: default_model.into(),
            headers: Vec::new(),
            fallback_models: Vec::new(),
            attempts: 3,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(120),
        }
    }
}

/// The client.
#[derive(Debug, Clone)]
pub struct OpenAiLlm {
    config: LlmConfig,
    client: crate::http::LazyClient,
}

impl OpenAiLlm {
    /// A client for `config`.
    pub fn new(config: LlmConfig) -> Self {
        OpenAiLlm { config, client: crate::http::LazyClient::default() }
    }

    fn body(&self, req: &LlmRequest, model: &str) -> Value {
        let mut messages = Vec::new();
        if let Some(system) = req.system_prompt.as_deref().filter(|s| !s.is_empty()) {
            messages.push(json!({"role": "system", "content": system}));
        }
        if req.attachments.is_empty() {
            messages.push(json!({"role": "user", "content": req.prompt}));
        } else {
            let mut parts = vec![json!({"type": "text", "text": req.prompt})];
            for a in &req.attachments {
                if a.kind == "image" {
                    parts.push(json!({"type": "image_url", "image_url": {"url": a.content}}));
                } else {
                    let label = a.description.clone().unwrap_or_else(|| a.kind.clone());
                    parts.push(json!({"type": "text", "text": format!("{label}:\n{}", a.content)}));
                }
            }
            messages.push(json!({"role": "user", "content": parts}));
        }
        let mut body = json!({"model": model, "messages": messages});
        if let Some(o) = body.as_object_mut() {
            if let Some(t) = req.temperature {
                o.insert("temperature".into(), json!(t));
            }
            if let Some(m) = req.max_tokens {
                o.insert("max_tokens".into(), json!(m));
            }
            if req.json_mode {
                o.insert("response_format".into(), json!({"type": "json_object"}));
            }
        }
        body
    }

    /// One model, with retries on 429/5xx. `Err((error, retryable))`.
    async fn with_model(&self, req: &LlmRequest, model: &str) -> Result<LlmResponse, (StepError, bool)> {
        let url = format!("{}/chat/completions", self.config.base_url.trim_end_matches('/'));
        let body = self.body(req, model);
        let mut pause = self.config.backoff;
        let mut last = None;
        for attempt in 0..self.config.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            let mut builder = run_headers(self.client.get().post(&url), &req.run_id, &req.node_id)
                .timeout(self.config.timeout)
                .json(&body);
            if let Some(key) = crate::settings::exposed(&self.config.api_key) {
                builder = builder.bearer_auth(key);
            }
            for (k, v) in &self.config.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            if let Some(tp) = &req.traceparent {
                builder = builder.header("traceparent", tp);
            }
            let resp = match builder.send().await {
                Ok(r) => r,
                Err(e) => {
                    let mut err = transport_error(&e, &format!("LLM {model}"));
                    err.kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::LlmError };
                    last = Some(err);
                    continue;
                }
            };
            let status = resp.status().as_u16();
            if status == 429 || status >= 500 {
                if let Some(wait) = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0)
                {
                    pause = Duration::from_secs_f64(wait.min(60.0));
                }
                let mut err = StepError::new(ErrorKind::LlmError, format!("LLM {model}: HTTP {status}"));
                err.http_status = Some(status);
                last = Some(err);
                continue;
            }
            let text = resp.text().await.map_err(|e| (transport_error(&e, &format!("LLM {model}")), true))?;
            if status >= 400 {
                let mut err = StepError::new(ErrorKind::LlmError, format!("LLM {model}: HTTP {status}: {text}"));
                err.http_status = Some(status);
                return Err((err, false));
            }
            let answer: Value = serde_json::from_str(&text).map_err(|_| {
                (
                    StepError::new(
                        ErrorKind::LlmError,
                        format!("LLM {model} answered with something that is not JSON"),
                    ),
                    false,
                )
            })?;
            let content = answer.pointer("/choices/0/message/content").and_then(Value::as_str).ok_or_else(|| {
                (
                    StepError::new(
                        ErrorKind::LlmError,
                        format!("LLM {model} answered without choices[0].message.content"),
                    ),
                    false,
                )
            })?;
            let usage = |k: &str| answer.pointer(&format!("/usage/{k}")).and_then(Value::as_u64).unwrap_or(0);
            return Ok(LlmResponse {
                text: content.to_owned(),
                model: answer.get("model").and_then(Value::as_str).unwrap_or(model).to_owned(),
                prompt_tokens: usage("prompt_tokens"),
                completion_tokens: usage("completion_tokens"),
            });
        }
        Err((last.unwrap_or_else(|| StepError::new(ErrorKind::LlmError, format!("LLM {model} failed"))), true))
    }
}

impl Llm for OpenAiLlm {
    fn complete(&self, req: LlmRequest) -> BoxFuture<'_, Result<LlmResponse, StepError>> {
        Box::pin(async move {
            let first = req.model.clone().unwrap_or_else(|| self.config.default_model.clone());
            let mut models = vec![first];
            models.extend(
                self.config.fallback_models.iter().filter(|m| !models.contains(m)).cloned().collect::<Vec<_>>(),
            );
            let mut last = None;
            for model in &models {
                match self.with_model(&req, model).await {
                    Ok(r) => return Ok(r),
                    Err((e, true)) => last = Some(e),
                    Err((e, false)) => return Err(e),
                }
            }
            Err(last.unwrap_or_else(|| StepError::new(ErrorKind::LlmError, "no model to call")))
        })
    }
}
