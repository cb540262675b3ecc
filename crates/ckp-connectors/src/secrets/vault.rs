//! HashiCorp Vault: KV v2 (`GET /v1/{mount}/data/{prefix}/{key}` → `data.data`) or KV v1
//! (`GET /v1/{mount}/{prefix}/{key}` → `data`), authenticated by a token or by AppRole login
//! (`POST /v1/auth/{approle_mount}/login`). An AppRole token is renewed by logging in again before its lease runs
//! out, and once more when Vault answers 403 (revoked or expired early). A 404 is "no such secret".

use std::time::{Duration, Instant};

use ckp_engine::effects::BoxFuture;
use serde_json::{Value, json};

use super::{Fetched, Provider, ProviderError, VaultSettings};
use crate::masked::Masked;

/// A Vault client for one configuration.
#[derive(Debug)]
pub struct VaultProvider {
    s: VaultSettings,
    http: reqwest::Client,
    /// The AppRole token and when to log in again.
    login: tokio::sync::Mutex<Option<(Masked<String>, Option<Instant>)>>,
}

impl VaultProvider {
    /// A client; the configuration must name a way to authenticate.
    pub fn new(s: VaultSettings, http: reqwest::Client) -> Result<Self, ProviderError> {
        if !matches!(s.kv_version, 1 | 2) {
            return Err(ProviderError::config(format!("vault kv_version must be 1 or 2, not {}", s.kv_version)));
        }
        if s.vault_token.is_none() && !(s.role_id.is_some() && s.secret_id.is_some()) {
            return Err(ProviderError::config(
                "vault needs a token (vault_token, VAULT_TOKEN) or an AppRole (role_id and secret_id)",
            ));
        }
        Ok(VaultProvider { s, http, login: tokio::sync::Mutex::new(None) })
    }

    fn approle(&self) -> Option<(&str, &str)> {
        self.s.role_id.as_deref().zip(crate::settings::exposed(&self.s.secret_id))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.s.vault_url.trim_end_matches('/'))
    }

    fn request(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(ns) = &self.s.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        req
    }

    /// The token to use: the configured one, or an AppRole login's (logging in when there is none, it is about to
    /// expire, or `renew`).
    async fn token(&self, renew: bool) -> Result<String, ProviderError> {
        let Some((role_id, secret_id)) = self.approle() else {
            return crate::settings::exposed(&self.s.vault_token)
                .map(str::to_owned)
                .ok_or_else(|| ProviderError::config("vault has no token"));
        };
        let mut login = self.login.lock().await;
        if !renew
            && let Some((token, until)) = login.as_ref()
            && until.is_none_or(|u| Instant::now() < u)
        {
            return Ok(token.0.clone());
        }
        let path = format!("auth/{}/login", self.s.approle_mount.trim_matches('/'));
        let req =
            self.request(reqwest::Method::POST, &path, None).json(&json!({"role_id": role_id, "secret_id": secret_id}));
        let (token, body) = super::login(req, "vault AppRole login", "/auth/client_token").await?;
        // Log in again when 90% of the lease has passed (a lease of 0 never expires).
        let lease = body.pointer("/auth/lease_duration").and_then(Value::as_u64).unwrap_or(0);
        let until = (lease > 0).then(|| Instant::now() + Duration::from_millis(lease * 900));
        *login = Some((Masked(token.clone()), until));
        Ok(token)
    }

    /// The API path of `key` (each segment checked, so a key cannot climb out of the prefix).
    fn path_of(&self, key: &str) -> Result<String, ProviderError> {
        let mut segments: Vec<&str> = self.s.path_prefix.split('/').filter(|s| !s.is_empty()).collect();
        for seg in key.split('/') {
            let valid = !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+' | '='));
            if !valid {
                return Err(ProviderError::config(format!(
                    "`{key}` is not a valid Vault secret path (letters, digits, - _ . @ + = and / between segments)"
                )));
            }
            segments.push(seg);
        }
        let mount = self.s.mount_point.trim_matches('/');
        let rest = segments.join("/");
        Ok(if self.s.kv_version == 2 { format!("{mount}/data/{rest}") } else { format!("{mount}/{rest}") })
    }
}

impl Provider for VaultProvider {
    fn fetch<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Fetched>, ProviderError>> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            let mut renewed = false;
            loop {
                let token = self.token(renewed).await?;
                let resp = self
                    .request(reqwest::Method::GET, &path, Some(&token))
                    .send()
                    .await
                    .map_err(|e| ProviderError::transport("vault", &e))?;
                let status = resp.status().as_u16();
                match status {
                    200 => {
                        let body: Value = resp.json().await.map_err(|e| ProviderError::transport("vault", &e))?;
                        let data = if self.s.kv_version == 2 { body.pointer("/data/data") } else { body.get("data") };
                        return match data {
                            Some(Value::Object(m)) => Ok(Some(Fetched::Fields(m.clone()))),
                            Some(Value::Null) => Ok(None),
                            _ => Err(ProviderError::http(format!("vault answered without data for `{key}`"))),
                        };
                    }
                    404 => return Ok(None),
                    403 if self.approle().is_some() && !renewed => renewed = true,
                    403 => return Err(ProviderError::http(format!("vault denied access to `{key}` (HTTP 403)"))),
                    _ => return Err(ProviderError::http(format!("vault answered HTTP {status} for `{key}`"))),
                }
            }
        })
    }
}
