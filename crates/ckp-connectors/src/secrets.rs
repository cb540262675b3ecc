//! Secrets providers (the engine's `Secrets`). Today: the environment, as LangOrch's `env` provider (the value of
//! `{prefix}{NAME in upper case}`, prefix `LANGORCH_SECRET_` by default). The engine resolves
//! `{{secrets.NAME}}` only when a step is dispatched; values never enter variables, checkpoints or events.

use ckp_engine::effects::{BoxFuture, Secrets};
use ckp_engine::error::StepError;

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
}

impl Default for EnvSecrets {
    fn default() -> Self {
        EnvSecrets::new("LANGORCH_SECRET_")
    }
}

impl Secrets for EnvSecrets {
    fn get(&self, name: &str) -> BoxFuture<'_, Result<Option<String>, StepError>> {
        let key = format!("{}{}", self.prefix, name.to_uppercase());
        let value = (self.lookup)(&key);
        Box::pin(async move { Ok(value) })
    }
}
