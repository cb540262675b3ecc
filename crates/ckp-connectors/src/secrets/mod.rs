//! Secrets providers and the engine's `Secrets` for a server or `ckp run` (CKP.md A.3, langorch.md B §7.9).
//!
//! [`SecretManager`] answers `{{secrets.NAME}}` for a run: the procedure's `secrets_config` (or the server's
//! default provider) picks the provider and maps the alias to the provider's key, the procedure's settings are laid
//! over the server's (`[secrets]` in the configuration), values are cached for a TTL (successes only), and ckp's own
//! encrypted store is consulted first when it is configured (LangOrch's composition: an entry made through
//! `/api/secrets` serves every provider). A key `name#field` selects one field of a JSON secret.
//!
//! Providers: [`env`] (LangOrch's `LANGORCH_SECRET_*`), [`vault`] (HashiCorp Vault KV v1/v2, token or AppRole),
//! [`aws`] (Secrets Manager over its JSON 1.1 protocol, SigV4 signed), [`azure`] (Key Vault REST with a
//! client-credentials token), and ckp's own store (`db`: values sealed with [`crypto::SealKey`], read through the
//! [`SealedSecrets`] port).
//!
//! With a [`grant::GrantKey`] it also issues `{{secret_grants.NAME}}`'s credential-grant tokens, which the server's
//! `/api/agent-credentials/{name}` trades for the value.
//!
//! Nothing in this module puts a secret value or a credential into an error message or a `Debug` output.

pub mod aws;
pub mod azure;
mod cache;
pub mod crypto;
pub mod env;
pub mod grant;
pub mod settings;
pub mod vault;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ckp_core::procedure::{ErrorKind, SecretProvider, SecretsSpec};
use ckp_engine::effects::{BoxFuture, SecretScope, Secrets};
use ckp_engine::error::StepError;
use serde_json::{Map, Value};

use crate::ports::SealedSecrets;

pub use crypto::SealKey;
pub use env::EnvSecrets;
pub use grant::GrantKey;
pub use settings::{AwsSettings, AzureSettings, SecretsSettings, SettingsError, VaultSettings};

/// What a provider returns: text, or the fields of a structured secret (Vault's data).
#[derive(Clone, PartialEq)]
pub enum Fetched {
    /// A text value (it may be JSON).
    Text(String),
    /// Named fields.
    Fields(Map<String, Value>),
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fetched::Text(_) => f.write_str("Text(***)"),
            Fetched::Fields(m) => f.debug_tuple("Fields").field(&m.keys().collect::<Vec<_>>()).finish(),
        }
    }
}

/// A provider failure. The message never contains a value or a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    /// `http_error` for transport and HTTP failures, `internal_error` for configuration problems.
    pub kind: ErrorKind,
    /// What happened.
    pub message: String,
}

impl ProviderError {
    /// A configuration problem.
    pub fn config(message: impl Into<String>) -> Self {
        ProviderError { kind: ErrorKind::InternalError, message: message.into() }
    }

    /// A transport or HTTP failure.
    pub fn http(message: impl Into<String>) -> Self {
        ProviderError { kind: ErrorKind::HttpError, message: message.into() }
    }

    /// From a reqwest error (the URLs asked here hold names, never values or credentials).
    pub(crate) fn transport(what: &str, e: &reqwest::Error) -> Self {
        if let Some(refused) = crate::egress::refusal(e) {
            return ProviderError { kind: ErrorKind::ValidationError, message: format!("{what}: {refused}") };
        }
        let why = if e.is_timeout() {
            "timed out".to_owned()
        } else if e.is_connect() {
            "cannot connect".to_owned()
        } else if e.is_builder() && e.to_string().contains("scheme") {
            "unsupported URL scheme (this build of ckp speaks plain http only)".to_owned()
        } else {
            e.to_string()
        };
        ProviderError::http(format!("{what}: {why}"))
    }
}

/// Sends a login (Vault's AppRole, Azure's client-credentials grant) and reads the token at `token_at` (a JSON
/// pointer) from its answer, returned with the whole answer for its lifetime fields. A refusal names `what` and the
/// status, never the body (it may echo a credential).
pub(crate) async fn login(
    req: reqwest::RequestBuilder,
    what: &str,
    token_at: &str,
) -> Result<(String, Value), ProviderError> {
    let resp = req.send().await.map_err(|e| ProviderError::transport(what, &e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ProviderError::http(format!("{what} failed: HTTP {}", status.as_u16())));
    }
    let reply: Value = resp.json().await.map_err(|e| ProviderError::transport(what, &e))?;
    let token = reply.pointer(token_at).and_then(Value::as_str).ok_or_else(|| {
        ProviderError::http(format!("{what} answered without {}", token_at.trim_start_matches('/').replace('/', ".")))
    })?;
    Ok((token.to_owned(), reply))
}

/// A source of secrets by key.
pub trait Provider: Send + Sync {
    /// The secret stored under `key` (None when it does not exist).
    fn fetch<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Fetched>, ProviderError>>;
}

/// One provider configuration: the cache key of provider instances and of values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ProviderKey {
    Env(String),
    Vault(VaultSettings),
    Aws(AwsSettings),
    Azure(AzureSettings),
    Db,
}

/// The engine's `Secrets` for a server or `ckp run`: provider choice, settings, cache, ckp's own store.
pub struct SecretManager {
    settings: SecretsSettings,
    env_prefix: String,
    env_lookup: fn(&str) -> Option<String>,
    default_provider: SecretProvider,
    seal: Option<SealKey>,
    grants: Option<GrantKey>,
    sealed: Option<Arc<dyn SealedSecrets>>,
    http: crate::http::LazyClient,
    /// For endpoints a procedure's `secrets_config` chose instead of the server's: under the egress policy.
    guarded: crate::http::LazyClient,
    egress: crate::egress::Egress,
    providers: Mutex<HashMap<ProviderKey, Arc<dyn Provider>>>,
    cache: cache::TtlCache<(ProviderKey, String)>,
}

impl std::fmt::Debug for SecretManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretManager")
            .field("default_provider", &self.default_provider)
            .field("env_prefix", &self.env_prefix)
            .field("store", &self.sealed.is_some())
            .field("encryption_key", &self.seal.is_some())
            .field("grants", &self.grants.is_some())
            .finish_non_exhaustive()
    }
}

impl SecretManager {
    /// A manager for `settings` (checked: the provider name and the encryption key), reading env secrets as
    /// `{env_prefix}{NAME}`.
    pub fn new(settings: SecretsSettings, env_prefix: impl Into<String>) -> Result<Self, SettingsError> {
        let default_provider = SecretProvider::parse(&settings.provider).ok_or_else(|| {
            SettingsError(format!(
                "secrets provider {:?} is unknown: use env, vault, aws, azure or db",
                settings.provider
            ))
        })?;
        let seal = match crate::settings::exposed(&settings.encryption_key).filter(|k| !k.trim().is_empty()) {
            Some(k) => Some(SealKey::parse(k).map_err(|e| SettingsError(e.to_string()))?),
            None => None,
        };
        Ok(SecretManager {
            cache: cache::TtlCache::default(),
            settings,
            env_prefix: env_prefix.into(),
            env_lookup: |k| std::env::var(k).ok(),
            default_provider,
            seal,
            grants: None,
            sealed: None,
            http: crate::http::LazyClient::with_timeout(Duration::from_secs(15)),
            guarded: crate::http::LazyClient::guarded_with_timeout(
                crate::egress::Egress::default(),
                Duration::from_secs(15),
            ),
            egress: crate::egress::Egress::default(),
            providers: Mutex::new(HashMap::new()),
        })
    }

    /// Serves the `db` provider (and entries made through `/api/secrets`) from ckp's own store.
    pub fn with_sealed(mut self, sealed: Arc<dyn SealedSecrets>) -> Self {
        self.sealed = Some(sealed);
        self
    }

    /// Issues credential-grant tokens signed with `key` (`{{secret_grants.NAME}}`); without one they are refused.
    pub fn with_grants(mut self, key: GrantKey) -> Self {
        self.grants = Some(key);
        self
    }

    /// The key credential grants are signed with, when this manager issues them.
    pub fn grant_key(&self) -> Option<&GrantKey> {
        self.grants.as_ref()
    }

    /// Calls the endpoints a procedure's `secrets_config` chooses (a Vault, AWS or Azure URL other than the
    /// server's) under `egress`; without it, only public addresses.
    pub fn with_egress(mut self, egress: crate::egress::Egress) -> Self {
        self.guarded = crate::http::LazyClient::guarded_with_timeout(egress.clone(), Duration::from_secs(15));
        self.egress = egress;
        self
    }

    /// Reads env secrets through `lookup` instead of the process environment (tests, embedding).
    pub fn with_env_lookup(mut self, lookup: fn(&str) -> Option<String>) -> Self {
        self.env_lookup = lookup;
        self
    }

    /// The key sealing values in ckp's store, when one is configured.
    pub fn seal_key(&self) -> Option<&SealKey> {
        self.seal.as_ref()
    }

    /// The server's settings.
    pub fn settings(&self) -> &SecretsSettings {
        &self.settings
    }

    /// Forgets every cached value (after a write through `/api/secrets`).
    pub fn invalidate(&self) {
        self.cache.clear();
    }

    /// The value of `name` for a run whose procedure declares `spec`.
    pub async fn lookup(&self, spec: Option<&SecretsSpec>, name: &str) -> Result<Option<String>, ProviderError> {
        let kind = spec.map_or(self.default_provider, |s| s.provider);
        let key = spec.map_or(name, |s| s.key_for(name));
        let (base, selector) = match key.rsplit_once('#') {
            Some((b, f)) if !b.is_empty() && !f.is_empty() && kind != SecretProvider::Env => (b, Some(f)),
            _ => (key, None),
        };
        let pkey = self.provider_key(kind, spec)?;
        let ttl = Duration::from_millis(spec.and_then(|s| s.cache_ttl_ms).unwrap_or(self.settings.cache_ttl_ms));
        let cache_key = (pkey.clone(), key.to_owned());
        if !ttl.is_zero()
            && let Some(v) = self.cache.get(&cache_key)
        {
            return Ok(Some(v));
        }
        let fetched = match self.stored(kind, base).await? {
            Some(f) => Some(f),
            None if kind == SecretProvider::Database => None,
            None => {
                let chosen = self.procedure_endpoints(&pkey);
                for url in &chosen {
                    self.egress
                        .check_url(url)
                        .await
                        .map_err(|r| ProviderError { kind: ErrorKind::ValidationError, message: r.to_string() })?;
                }
                self.provider(&pkey, !chosen.is_empty())?.fetch(base).await?
            }
        };
        let default_field = match &pkey {
            ProviderKey::Vault(v) => v.field.as_deref(),
            ProviderKey::Aws(a) => a.secret_field.as_deref(),
            _ => None,
        };
        let value = match fetched {
            Some(f) => select(f, base, selector, default_field)?,
            None => None,
        };
        if let Some(v) = &value
            && !ttl.is_zero()
        {
            self.cache.put(cache_key, v.clone(), ttl);
        }
        Ok(value)
    }

    /// An entry of ckp's store: always for the db provider, first for the others when an encryption key is set.
    async fn stored(&self, kind: SecretProvider, name: &str) -> Result<Option<Fetched>, ProviderError> {
        let db = kind == SecretProvider::Database;
        let (sealed, seal) = match (&self.sealed, &self.seal) {
            (Some(store), Some(seal)) => (store, seal),
            (None, _) if db => {
                return Err(ProviderError::config("the db secrets provider needs ckp serve's store"));
            }
            (Some(_), None) if db => {
                return Err(ProviderError::config(
                    "the db secrets provider needs secrets_encryption_key (CKP_SECRETS_ENCRYPTION_KEY)",
                ));
            }
            _ => return Ok(None),
        };
        let value = sealed.sealed(name).await.map_err(|e| ProviderError::config(format!("store: {e}")))?;
        match value {
            Some(v) => {
                seal.open(name, &v).map(|v| Some(Fetched::Text(v))).map_err(|e| ProviderError::config(e.to_string()))
            }
            None => Ok(None),
        }
    }

    /// The effective configuration of `kind`: the procedure's settings over the server's. A procedure that points a
    /// provider at another endpoint does not get the server's credentials sent there.
    fn provider_key(&self, kind: SecretProvider, spec: Option<&SecretsSpec>) -> Result<ProviderKey, ProviderError> {
        let empty = std::collections::BTreeMap::new();
        let over = spec.map_or(&empty, |s| &s.settings);
        Ok(match kind {
            SecretProvider::Env => ProviderKey::Env(match over.get("prefix") {
                Some(p) => env::procedure_prefix(&self.env_prefix, p),
                None => self.env_prefix.clone(),
            }),
            SecretProvider::Vault => ProviderKey::Vault(self.settings.vault.overlay(over)),
            SecretProvider::Aws => ProviderKey::Aws(self.settings.aws.overlay(over)),
            SecretProvider::Azure => ProviderKey::Azure(self.settings.azure.overlay(over)),
            SecretProvider::Database => ProviderKey::Db,
        })
    }

    /// The endpoints of `key` that a procedure chose (other than the server's settings): the egress policy's.
    fn procedure_endpoints<'k>(&self, key: &'k ProviderKey) -> Vec<&'k str> {
        let moved = |theirs: Option<&'k str>, ours: Option<&str>| {
            theirs.filter(|t| Some(t.trim_end_matches('/')) != ours.map(|o| o.trim_end_matches('/')))
        };
        let server = &self.settings;
        match key {
            ProviderKey::Vault(v) => moved(Some(&v.vault_url), Some(&server.vault.vault_url)).into_iter().collect(),
            ProviderKey::Aws(a) => {
                moved(a.endpoint_url.as_deref(), server.aws.endpoint_url.as_deref()).into_iter().collect()
            }
            ProviderKey::Azure(a) => [
                moved(a.vault_url.as_deref(), server.azure.vault_url.as_deref()),
                moved(Some(&a.authority_url), Some(&server.azure.authority_url)),
            ]
            .into_iter()
            .flatten()
            .collect(),
            ProviderKey::Env(_) | ProviderKey::Db => Vec::new(),
        }
    }

    /// The provider instance for a configuration (kept, so tokens and connections are reused); `guarded` when a
    /// procedure chose its endpoint.
    fn provider(&self, key: &ProviderKey, guarded: bool) -> Result<Arc<dyn Provider>, ProviderError> {
        let http = match guarded {
            true => self.guarded.get(),
            false => self.http.get(),
        };
        let mut providers = self.providers.lock().map_err(|_| ProviderError::config("secrets providers poisoned"))?;
        if let Some(p) = providers.get(key) {
            return Ok(p.clone());
        }
        let p: Arc<dyn Provider> = match key {
            ProviderKey::Env(prefix) => Arc::new(EnvSecrets::with_lookup(prefix.clone(), self.env_lookup)),
            ProviderKey::Vault(v) => Arc::new(vault::VaultProvider::new(v.clone(), http.clone())?),
            ProviderKey::Aws(a) => Arc::new(aws::AwsProvider::new(a.clone(), http.clone())?),
            ProviderKey::Azure(a) => Arc::new(azure::AzureProvider::new(a.clone(), http.clone())?),
            ProviderKey::Db => return Err(ProviderError::config("the db provider is the store")),
        };
        if providers.len() > 256 {
            providers.clear();
        }
        providers.insert(key.clone(), p.clone());
        Ok(p)
    }
}

/// The text of a fetched secret: the selected field (`name#field`, or the provider's default field), else Vault's
/// field `value`, else its only field, else the whole value (structured values as compact JSON).
fn select(
    f: Fetched,
    base: &str,
    selector: Option<&str>,
    default_field: Option<&str>,
) -> Result<Option<String>, ProviderError> {
    let field = selector.or(default_field);
    let fields = match (f, field) {
        (Fetched::Text(t), None) => return Ok(Some(t)),
        (Fetched::Text(t), Some(field)) => match serde_json::from_str::<Value>(&t) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(ProviderError::config(format!(
                    "secret `{base}` is not a JSON object, so its field `{field}` cannot be selected"
                )));
            }
        },
        (Fetched::Fields(m), _) => m,
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if let Some(field) = field {
        return match fields.get(field) {
            Some(v) => Ok(Some(text(v))),
            None => Err(ProviderError::config(format!("secret `{base}` has no field `{field}`"))),
        };
    }
    if let Some(v) = fields.get("value") {
        return Ok(Some(text(v)));
    }
    if fields.len() == 1 {
        return Ok(fields.values().next().map(text));
    }
    Ok(Some(Value::Object(fields).to_string()))
}

impl Secrets for SecretManager {
    fn get<'a>(&'a self, scope: SecretScope<'a>, name: &'a str) -> BoxFuture<'a, Result<Option<String>, StepError>> {
        Box::pin(async move {
            self.lookup(scope.config, name).await.map_err(|e| {
                let provider = scope.config.map_or(self.default_provider, |s| s.provider).as_str();
                StepError::new(
                    e.kind,
                    format!("secret `{name}` could not be read from the {provider} provider: {}", e.message),
                )
            })
        })
    }

    fn grant(
        &self,
        scope: SecretScope<'_>,
        name: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, StepError> {
        match &self.grants {
            Some(key) => Ok(key.issue(scope.run_id, name, now.timestamp())),
            None => ckp_engine::effects::refuse_grant(name),
        }
    }
}
