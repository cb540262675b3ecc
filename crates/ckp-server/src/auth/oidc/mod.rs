//! Single sign-on with OpenID Connect (authorization code flow with PKCE): [`Oidc`] reads the provider's
//! discovery document and keys, builds the authorization URL, trades a code for tokens, verifies the ID token
//! ([`id_token`]) and reads the user's claims; [`state`] is the signed cookie that binds a sign-in to its browser.
//! The provider is reached through a small port, [`Transport`] ([`HttpTransport`] in production, a fake in unit
//! tests), at the URLs the operator configured: these calls are not subject to the egress policy of procedures,
//! and each has a 10 s timeout.
//!
//! This module decides nothing about users: it answers verified claims and the role they map to; the route
//! (`routes/sso.rs`) provisions the user and opens the session. It never logs a code, token or secret.

pub mod id_token;
pub mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ckp_connectors::settings::Secret;
use ckp_engine::effects::BoxFuture;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::Role;
pub use id_token::{Jwk, Jwks, Refusal};
pub use state::{Pending, StateKey};

/// How single sign-on is configured.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The provider's issuer URL (discovery at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// ckp's client id.
    pub client_id: String,
    /// ckp's client secret (None for a public client: PKCE only).
    pub client_secret: Option<Secret<String>>,
    /// Where the provider sends the browser back.
    pub redirect_uri: String,
    /// The scopes asked for, separated by spaces.
    pub scopes: String,
    /// The claim whose values map to roles (`roles` is read when it is absent).
    pub role_claim: String,
    /// Roles by claim value.
    pub role_mapping: std::collections::BTreeMap<String, Role>,
    /// The role of a user none of whose values is mapped (None: no global role).
    pub default_role: Option<Role>,
}

/// What ckp reads of the provider's discovery document.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// The issuer ID tokens must name.
    pub issuer: String,
    /// Where the browser signs in.
    pub authorization_endpoint: String,
    /// Where codes are traded for tokens.
    pub token_endpoint: String,
    /// The provider's signing keys.
    pub jwks_uri: String,
    /// The user's claims, read with the access token.
    pub userinfo_endpoint: Option<String>,
    /// How the client may authenticate at the token endpoint (absent: `client_secret_basic`).
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// The client's credentials on a token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth<'a> {
    /// `Authorization: Basic` with the form-encoded id and secret.
    Basic(&'a str, &'a str),
    /// `client_id` and `client_secret` in the form (already in the form given).
    Post,
}

/// An answer of the provider: its status and its JSON body (`Value::Null` when not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON.
    pub body: Value,
}

/// The provider's HTTP endpoints, as a port: the production one is [`HttpTransport`].
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// `GET url` (with a bearer token when given).
    fn get<'a>(&'a self, url: &'a str, bearer: Option<&'a str>) -> BoxFuture<'a, Result<Answer, OidcError>>;
    /// `POST url` with a form body.
    fn post_form<'a>(
        &'a self,
        url: &'a str,
        form: Vec<(&'static str, String)>,
        auth: ClientAuth<'a>,
    ) -> BoxFuture<'a, Result<Answer, OidcError>>;
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached or answered something unusable (a 502 for the caller; the cause is
    /// logged).
    #[error("the OpenID provider {what}")]
    Provider {
        /// What failed, for the log.
        what: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The token endpoint refused the code (expired, replayed, another verifier): LangOrch's 400.
    #[error("the token endpoint refused the code (status {status}, error {error:?})")]
    Exchange {
        /// The provider's status.
        status: u16,
        /// The provider's `error` code, if any.
        error: Option<String>,
    },
    /// The ID token is missing or refused.
    #[error("the ID token is refused: {0}")]
    IdToken(#[from] Refusal),
    /// The userinfo answer is for another subject.
    #[error("the userinfo answer names another subject than the ID token")]
    UserinfoSubject,
}

impl OidcError {
    fn provider(what: impl Into<String>) -> Self {
        OidcError::Provider { what: what.into(), source: None }
    }
}

/// A verified sign-in: the user's claims (the ID token's, completed by the userinfo answer) and their role.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The provider's subject (stable user id).
    pub subject: String,
    /// Every claim.
    pub claims: Map<String, Value>,
    /// The global role the claims map to (None: no role).
    pub role: Option<Role>,
}

impl Identity {
    /// A text claim, when present and not empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
    }
}

/// How long discovery documents and keys are kept before being read again.
const CACHE_TTL: Duration = Duration::from_secs(3600);
/// The least time between two reads of the keys forced by an unknown key id (a token naming random key ids must
/// not make ckp hammer the provider).
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(10);

/// The OpenID Connect client of a deployment.
#[derive(Debug)]
pub struct Oidc {
    /// The settings.
    pub config: OidcConfig,
    /// Signs the `ckp_sso` cookie.
    pub state_key: StateKey,
    transport: Arc<dyn Transport>,
    discovery: tokio::sync::Mutex<Option<(Instant, Arc<Discovery>)>>,
    jwks: tokio::sync::Mutex<Option<(Instant, Arc<Jwks>)>>,
}

impl Oidc {
    /// A client for `config` reaching the provider through `transport`.
    pub fn new(config: OidcConfig, state_key: StateKey, transport: Arc<dyn Transport>) -> Self {
        Oidc { config, state_key, transport, discovery: Default::default(), jwks: Default::default() }
    }

    /// The provider's discovery document (read at most hourly).
    pub async fn discovery(&self) -> Result<Arc<Discovery>, OidcError> {
        let mut cached = self.discovery.lock().await;
        if let Some((_, d)) = cached.as_ref().filter(|(at, _)| at.elapsed() < CACHE_TTL) {
            return Ok(d.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let answer = self.transport.get(&url, None).await?;
        if answer.status != 200 {
            return Err(OidcError::provider(format!("answered {} for its discovery document {url}", answer.status)));
        }
        let discovery: Discovery = serde_json::from_value(answer.body).map_err(|e| OidcError::Provider {
            what: format!("discovery document {url} is not usable"),
            source: Some(Box::new(e)),
        })?;
        let discovery = Arc::new(discovery);
        *cached = Some((Instant::now(), discovery.clone()));
        Ok(discovery)
    }

    /// The provider's keys: the cached ones, or fresh ones when `refresh` and the cache is older than
    /// [`JWKS_REFRESH_MIN`] (or older than an hour in any case).
    async fn keys(&self, jwks_uri: &str, refresh: bool) -> Result<Arc<Jwks>, OidcError> {
        let mut cached = self.jwks.lock().await;
        if let Some((at, keys)) = cached.as_ref() {
            let fresh_enough = at.elapsed() < CACHE_TTL && !(refresh && at.elapsed() >= JWKS_REFRESH_MIN);
            if fresh_enough {
                return Ok(keys.clone());
            }
        }
        let answer = self.transport.get(jwks_uri, None).await?;
        if answer.status != 200 {
            return Err(OidcError::provider(format!("answered {} for its keys {jwks_uri}", answer.status)));
        }
        let keys: Jwks = serde_json::from_value(answer.body).map_err(|e| OidcError::Provider {
            what: format!("keys document {jwks_uri} is not a JWKS"),
            source: Some(Box::new(e)),
        })?;
        let keys = Arc::new(keys);
        *cached = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// Where to send the browser to sign in for `pending`: the authorization endpoint with `response_type=code`,
    /// the client, redirect URI and scopes, `state`, `nonce` and the PKCE S256 challenge.
    pub async fn authorization_url(&self, pending: &Pending) -> Result<String, OidcError> {
        let discovery = self.discovery().await?;
        let mut url = reqwest::Url::parse(&discovery.authorization_endpoint).map_err(|e| OidcError::Provider {
            what: "authorization endpoint is not a URL".into(),
            source: Some(Box::new(e)),
        })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_uri)
            .append_pair("scope", &self.config.scopes)
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &pending.challenge())
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Completes a sign-in: trades `code` (with the PKCE verifier and the client's credentials) for tokens,
    /// verifies the ID token against `pending`'s nonce, adds the userinfo claims, and maps the role.
    pub async fn sign_in(&self, code: &str, pending: &Pending) -> Result<Identity, OidcError> {
        let discovery = self.discovery().await?;
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", self.config.redirect_uri.clone()),
            ("code_verifier", pending.verifier.clone()),
        ];
        let secret = self.config.client_secret.as_ref().map(|s| s.expose().as_str());
        let auth = match (secret, self.basic_supported(&discovery)) {
            (Some(secret), true) => ClientAuth::Basic(&self.config.client_id, secret),
            (Some(secret), false) => {
                form.push(("client_id", self.config.client_id.clone()));
                form.push(("client_secret", secret.to_owned()));
                ClientAuth::Post
            }
            (None, _) => {
                form.push(("client_id", self.config.client_id.clone()));
                ClientAuth::Post
            }
        };
        let answer = self.transport.post_form(&discovery.token_endpoint, form, auth).await?;
        if !(200..300).contains(&answer.status) {
            let error = answer.body.get("error").and_then(Value::as_str).map(str::to_owned);
            return Err(OidcError::Exchange { status: answer.status, error });
        }
        let id_token = answer.body.get("id_token").and_then(Value::as_str).ok_or(Refusal::Malformed)?;
        let mut claims = self.verified(id_token, &discovery, &pending.nonce).await?;
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_owned();
        let access_token = answer.body.get("access_token").and_then(Value::as_str);
        if let (Some(endpoint), Some(token)) = (discovery.userinfo_endpoint.as_deref(), access_token) {
            let info = self.transport.get(endpoint, Some(token)).await?;
            match (info.status, info.body) {
                (200, Value::Object(info)) => {
                    if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                        return Err(OidcError::UserinfoSubject);
                    }
                    for (name, value) in info {
                        claims.entry(name).or_insert(value);
                    }
                }
                (status, _) => tracing::warn!(
                    status,
                    "the OpenID provider's userinfo answer is not a JSON object: the ID token's claims alone are used"
                ),
            }
        }
        let role = self.role_of(&claims);
        Ok(Identity { subject, claims, role })
    }

    /// Whether the client authenticates with HTTP Basic: the default of OpenID Connect, unless discovery lists
    /// methods without it.
    fn basic_supported(&self, discovery: &Discovery) -> bool {
        match &discovery.token_endpoint_auth_methods_supported {
            None => true,
            Some(methods) => {
                methods.iter().any(|m| m == "client_secret_basic") || !methods.iter().any(|m| m == "client_secret_post")
            }
        }
    }

    /// The ID token's claims, checked with the provider's keys (read again once when none fits its key id).
    async fn verified(&self, token: &str, discovery: &Discovery, nonce: &str) -> Result<Map<String, Value>, OidcError> {
        let expected = id_token::Expected {
            issuer: &discovery.issuer,
            client_id: &self.config.client_id,
            nonce,
            now: chrono::Utc::now(),
        };
        let keys = self.keys(&discovery.jwks_uri, false).await?;
        match id_token::verify(token, &keys, expected) {
            Err(Refusal::NoKey(_)) => {
                let keys = self.keys(&discovery.jwks_uri, true).await?;
                Ok(id_token::verify(token, &keys, expected)?)
            }
            other => Ok(other?),
        }
    }

    /// The highest role mapped from the values of the role claim (a string or a list of strings; `roles` when
    /// the configured claim is absent), else the default role.
    pub fn role_of(&self, claims: &Map<String, Value>) -> Option<Role> {
        let values = claims.get(&self.config.role_claim).or_else(|| claims.get("roles"));
        let values: Vec<&str> = match values {
            Some(Value::String(v)) => vec![v.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        values.iter().filter_map(|v| self.config.role_mapping.get(*v).copied()).max().or(self.config.default_role)
    }
}

/// The production [`Transport`]: reqwest with rustls, a 10 s timeout, no redirects followed (the operator gave
/// the exact URLs).
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A transport with a 10 s timeout per call.
    pub fn new() -> Result<Self, OidcError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ckp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OidcError::Provider { what: "client cannot be built".into(), source: Some(Box::new(e)) })?;
        Ok(HttpTransport { client })
    }

    async fn answer(request: reqwest::RequestBuilder, url: &str) -> Result<Answer, OidcError> {
        let response = request.send().await.map_err(|e| OidcError::Provider {
            what: format!("cannot be reached at {url}"),
            source: Some(Box::new(e.without_url())),
        })?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| OidcError::Provider {
            what: format!("answer from {url} could not be read"),
            source: Some(Box::new(e.without_url())),
        })?;
        Ok(Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) })
    }
}

impl Transport for HttpTransport {
    fn get<'a>(&'a self, url: &'a str, bearer: Option<&'a str>) -> BoxFuture<'a, Result<Answer, OidcError>> {
        Box::pin(async move {
            let mut request = self.client.get(url).header(reqwest::header::ACCEPT, "application/json");
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            Self::answer(request, url).await
        })
    }

    fn post_form<'a>(
        &'a self,
        url: &'a str,
        form: Vec<(&'static str, String)>,
        auth: ClientAuth<'a>,
    ) -> BoxFuture<'a, Result<Answer, OidcError>> {
        Box::pin(async move {
            let body = form_encode(form.iter().map(|(k, v)| (*k, v.as_str())));
            let mut request = self
                .client
                .post(url)
                .header(reqwest::header::ACCEPT, "application/json")
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body);
            if let ClientAuth::Basic(id, secret) = auth {
                // RFC 6749 §2.3.1: the id and secret are form-encoded before they are joined.
                let pair = format!("{}:{}", form_component(id), form_component(secret));
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                request = request.header(reqwest::header::AUTHORIZATION, format!("Basic {encoded}"));
            }
            Self::answer(request, url).await
        })
    }
}

/// One `application/x-www-form-urlencoded` component.
fn form_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A form body.
fn form_encode<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    pairs.map(|(k, v)| format!("{}={}", form_component(k), form_component(v))).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests;
