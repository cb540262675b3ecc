//! The one function that turns settings into the engine's effects (HTTP, LLM, MCP, secrets, agents) and the
//! engine settings that come from them (LLM prices, the workflow callback timeout). `ckp serve`, `ckp worker` and
//! `ckp run` all build through [`build`]; they differ only in the agents they pass (the store's registry, or
//! `ckp run --agent` addresses) and in what backs the `db` secrets provider.

use std::sync::Arc;

use ckp_connectors::egress::Egress;
use ckp_connectors::mcp::{McpConnector, McpSettings};
use ckp_connectors::secrets::SecretManager;
use ckp_engine::EngineConfig;
use ckp_engine::effects::{Agents, Effects, Llm};

use crate::serve::ServeError;
use crate::settings::ServeConfig;

/// What [`build`] made: the effects, the pieces the caller also keeps (to serve `/api/secrets`, to stop stdio MCP
/// servers), and the engine settings derived from the settings (the caller adds its own, like `mock_external`).
#[derive(Debug)]
pub struct Built {
    /// For `Engine::new`.
    pub effects: Effects,
    /// The MCP connector in `effects`, to shut its stdio servers down.
    pub mcp: Arc<McpConnector>,
    /// The secrets manager in `effects`.
    pub secrets: Arc<SecretManager>,
    /// LLM prices and the callback timeout; the rest at their defaults.
    pub engine: EngineConfig,
}

/// Builds the effects of `config` with `agents` (made with [`egress`]'s policy when their URLs are not the
/// operator's); `back_secrets` attaches what the secrets manager needs from the process (the store of the `db`
/// provider, the credential-grant key).
pub fn build(
    config: &ServeConfig,
    egress: Egress,
    agents: Option<Arc<dyn Agents>>,
    back_secrets: impl FnOnce(SecretManager) -> SecretManager,
) -> Result<Built, ServeError> {
    let secrets = SecretManager::new(config.secrets.clone(), config.secrets_env_prefix.clone())
        .map_err(|e| ServeError::Config(e.0))?
        .with_egress(egress.clone());
    let secrets = Arc::new(back_secrets(secrets));
    let mcp = Arc::new(McpConnector::new(McpSettings {
        servers: config.mcp_servers.clone(),
        legacy_base_url: config.mcp_base_url.clone().filter(|u| !u.trim().is_empty()),
        stdio_allow: config.mcp_stdio_allow.clone(),
        egress: egress.clone(),
    }));
    let llm = config.llm_base_url.as_ref().map(|url| {
        let mut llm = ckp_connectors::llm::LlmConfig::new(url.clone(), config.llm_model.clone());
        llm.api_key.clone_from(&config.llm_api_key);
        llm.fallback_models.clone_from(&config.llm_fallback_models);
        Arc::new(ckp_connectors::llm::OpenAiLlm::new(llm)) as Arc<dyn Llm>
    });
    let prices = ckp_engine::pricing::PriceTable::with(&config.llm_prices).map_err(ServeError::Config)?;
    Ok(Built {
        effects: Effects {
            agents,
            http: Some(Arc::new(ckp_connectors::http::ReqwestHttp::new(egress.clone()))),
            llm,
            secrets: Some(secrets.clone()),
            mcp: Some(mcp.clone()),
            ..Effects::default()
        },
        mcp,
        secrets,
        engine: EngineConfig {
            callback_timeout_minutes: config.workflow_callback_timeout_minutes,
            max_node_entries: config.max_node_entries,
            max_events_per_run: config.max_events_per_run,
            max_variable_bytes: config.max_variable_bytes,
            max_state_bytes: config.max_state_bytes,
            agent_wait_ms: config.agent_wait_ms,
            prices: Arc::new(prices),
            ..EngineConfig::default()
        },
    })
}

/// The egress policy of `config` (`egress_allow`), shared by every connector that reaches a destination a procedure
/// or an API caller chose.
pub fn egress(config: &ServeConfig) -> Result<Egress, ServeError> {
    Egress::new(&config.egress_allow).map_err(ServeError::Config)
}
