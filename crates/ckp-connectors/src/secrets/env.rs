//! LangOrch's `env` provider: the value of the environment variable `{prefix}{KEY in upper case}` (prefix
//! `LANGORCH_SECRET_` by default; `secrets_env_prefix` on the server, `prefix` in a procedure's `secrets_config`).

use ckp_engine::effects::BoxFuture;

use super::{Fetched, Provider, ProviderError};

/// Secrets read from environment variables.
#[derive(Debug, Clone)]
pub struct EnvSecrets {
    prefix: String,
    lookup: fn(&str) -> Option<String>,
}

impl EnvSecrets {
    /// Secrets named `{prefix}{NAME}` in this process's environment.
    pub fn new(prefix: impl Into<String>) -> Self {
        EnvSecrets { prefix: prefix.into(), lookup: |k| std::env::var(k).ok() }
    }

    /// Secrets read through `lookup` (for tests and embedding) instead of the process environment.
    pub fn with_lookup(prefix: impl Into<String>, lookup: fn(&str) -> Option<String>) -> Self {
        EnvSecrets { prefix: prefix.into(), lookup }
    }

    /// The variable holding `key`.
    pub fn variable(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key.to_uppercase())
    }
}

impl Default for EnvSecrets {
    fn default() -> Self {
        EnvSecrets::new("LANGORCH_SECRET_")
    }
}

impl Provider for EnvSecrets {
    fn fetch<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Fetched>, ProviderError>> {
        let value = (self.lookup)(&self.variable(key)).map(Fetched::Text);
        Box::pin(async move { Ok(value) })
    }
}
