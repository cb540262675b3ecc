//! LangOrch's `env` provider: the value of the environment variable `{prefix}{KEY in upper case}` (prefix
//! `LANGORCH_SECRET_` by default; `secrets_env_prefix` on the server, `prefix` in a procedure's `secrets_config`,
//! which is taken under the server's: [`procedure_prefix`]). ckp's own settings (`CKP_*`) are never read, whatever
//! the prefixes: a procedure could otherwise send the server's keys to any agent.

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

    /// The variable holding `key`; None for one of ckp's own (`CKP_*`), which no secret may read.
    pub fn variable(&self, key: &str) -> Option<String> {
        let name = format!("{}{}", self.prefix, key.to_uppercase());
        (!name.to_ascii_uppercase().starts_with("CKP_")).then_some(name)
    }
}

/// The prefix a procedure's `secrets_config` (env provider, `prefix`) reads under: its own when it already starts
/// with the server's `secrets_env_prefix`, else the server's followed by it (an empty one is the server's). A
/// procedure thus reads only variables the server's operator put under the server's prefix.
pub fn procedure_prefix(server: &str, procedure: &str) -> String {
    match procedure.starts_with(server) {
        true => procedure.to_owned(),
        false => format!("{server}{procedure}"),
    }
}

impl Default for EnvSecrets {
    fn default() -> Self {
        EnvSecrets::new("LANGORCH_SECRET_")
    }
}

impl Provider for EnvSecrets {
    fn fetch<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Fetched>, ProviderError>> {
        let value = self.variable(key).and_then(|v| (self.lookup)(&v)).map(Fetched::Text);
        Box::pin(async move { Ok(value) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_procedure_reads_under_the_servers_prefix_and_never_ckps_settings() {
        assert_eq!(procedure_prefix("LANGORCH_SECRET_", ""), "LANGORCH_SECRET_");
        assert_eq!(procedure_prefix("LANGORCH_SECRET_", "APP_"), "LANGORCH_SECRET_APP_");
        assert_eq!(procedure_prefix("LANGORCH_SECRET_", "LANGORCH_SECRET_APP_"), "LANGORCH_SECRET_APP_");
        assert_eq!(procedure_prefix("", "CKP_"), "CKP_");
        let open = EnvSecrets::new("");
        assert_eq!(open.variable("ckp_llm_api_key"), None, "whatever the prefix");
        assert_eq!(EnvSecrets::new("ckp_").variable("x"), None);
        assert_eq!(open.variable("home").as_deref(), Some("HOME"));
    }
}
