//! Azure Key Vault: `GET {vault_url}/secrets/{name}?api-version=7.4` with a bearer token obtained by the OAuth 2.0
//! client-credentials grant (`POST {authority_url}/{tenant_id}/oauth2/v2.0/token`, scope
//! `https://vault.azure.net/.default`). The token is reused until a minute before it expires, and fetched again
//! once when the vault answers 401. Key Vault names allow only letters, digits and `-`, so `_` in a key becomes
//! `-` (as LangOrch does). A 404 is "no such secret".

use std::time::{Duration, Instant};

use ckp_engine::effects::BoxFuture;
use serde_json::Value;

use super::{AzureSettings, Fetched, Provider, ProviderError};
use crate::masked::Masked;

const SCOPE: &str = "https://vault.azure.net/.default";
const API_VERSION: &str = "7.4";

/// A Key Vault client for one configuration.
#[derive(Debug)]
pub struct AzureProvider {
    s: AzureSettings,
    vault: String,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<(Masked<String>, Instant)>>,
}

impl AzureProvider {
    /// A client; the configuration must name the vault and a service principal.
    pub fn new(s: AzureSettings, http: reqwest::Client) -> Result<Self, ProviderError> {
        let vault = s
            .vault_url
            .clone()
            .ok_or_else(|| ProviderError::config("azure needs vault_url (AZURE_KEY_VAULT_URL)"))?
            .trim_end_matches('/')
            .to_owned();
        if s.tenant_id.is_none() || s.client_id.is_none() || s.client_secret.is_none() {
            return Err(ProviderError::config(
                "azure needs a service principal: tenant_id, client_id and client_secret (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)",
            ));
        }
        Ok(AzureProvider { s, vault, http, token: tokio::sync::Mutex::new(None) })
    }

    async fn token(&self, renew: bool) -> Result<String, ProviderError> {
        let mut cached = self.token.lock().await;
        if !renew
            && let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.0.clone());
        }
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.s.authority_url.trim_end_matches('/'),
            form_encode(self.s.tenant_id.as_deref().unwrap_or_default())
        );
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.s.client_id.as_deref().unwrap_or_default()),
            ("client_secret", crate::settings::exposed(&self.s.client_secret).unwrap_or_default()),
            ("scope", SCOPE),
        ];
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={}", form_encode(v))).collect();
        let req = self.http.post(url).header("content-type", "application/x-www-form-urlencoded").body(body.join("&"));
        let (token, reply) = super::login(req, "azure token request", "/access_token").await?;
        let lifetime =
            reply.get("expires_in").and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())).unwrap_or(300);
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60).max(1));
        *cached = Some((Masked(token.clone()), until));
        Ok(token)
    }
}

impl Provider for AzureProvider {
    fn fetch<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Fetched>, ProviderError>> {
        Box::pin(async move {
            let name = key.replace('_', "-");
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(ProviderError::config(format!(
                    "`{key}` is not a valid Key Vault secret name (letters, digits and -)"
                )));
            }
            let url = format!("{}/secrets/{name}?api-version={API_VERSION}", self.vault);
            let mut renewed = false;
            loop {
                let token = self.token(renewed).await?;
                let resp = self
                    .http
                    .get(&url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .map_err(|e| ProviderError::transport("azure key vault", &e))?;
                match resp.status().as_u16() {
                    200 => {
                        let reply: Value =
                            resp.json().await.map_err(|e| ProviderError::transport("azure key vault", &e))?;
                        return match reply.get("value").and_then(Value::as_str) {
                            Some(v) => Ok(Some(Fetched::Text(v.to_owned()))),
                            None => Err(ProviderError::http(format!(
                                "azure key vault answered without a value for `{name}`"
                            ))),
                        };
                    }
                    404 => return Ok(None),
                    401 if !renewed => renewed = true,
                    status => {
                        return Err(ProviderError::http(format!(
                            "azure key vault answered HTTP {status} for `{name}`"
                        )));
                    }
                }
            }
        })
    }
}

/// `application/x-www-form-urlencoded` text of a value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
