//! `ckp serve`: configuration (TOML file, `CKP_*` environment, flags: later wins), startup (store, catalog,
//! engine, embedded workers, reclaimer, HTTP), and graceful shutdown (stop accepting, let workers bring the runs
//! in hand to their next pause or end, release, exit).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ckp_connectors::mcp::{McpConnector, McpSettings};
use ckp_engine::effects::Effects;
use ckp_engine::{Engine, EngineConfig};
use ckp_store::{PgOptions, PgStore, SqliteOptions, SqliteStore, Store, Synchronous};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::{AppState, router};
use crate::catalog::Catalog;
use crate::worker::{WorkerConfig, run_reclaimer, run_workers};

/// The server's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address and port to listen on.
    pub bind: String,
    /// Data directory: the database (`ckp.db`) and artifact files (`artifacts/`).
    pub data_dir: PathBuf,
    /// The database file (default `<data_dir>/ckp.db`).
    pub db: Option<PathBuf>,
    /// Embedded workers (concurrent runs).
    pub workers: usize,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// SQLite `synchronous`: `normal` or `full`.
    pub synchronous: String,
    /// Job lease length (heartbeats renew it every third).
    pub lease_ms: i64,
    /// How long shutdown waits for runs in hand.
    pub shutdown_grace_ms: u64,
    /// Time between agent health checks (`GET {base_url}/health`).
    pub agent_health_ms: u64,
    /// Consecutive failed health checks before an agent goes offline (and its circuit opens).
    pub agent_offline_after: i64,
    /// How long an agent's open circuit waits before a half-open probe.
    pub agent_circuit_reset_ms: u64,
    /// An OpenAI-compatible chat-completions endpoint (`https://api.openai.com/v1`, a gateway, a local server);
    /// without it, `llm_action` steps fail with a clear message.
    pub llm_base_url: Option<String>,
    /// The model when a node names none.
    pub llm_model: String,
    /// Models tried in order when the node's keeps failing.
    pub llm_fallback_models: Vec<String>,
    /// The API key (better given as `CKP_LLM_API_KEY` in the environment than in a file).
    pub llm_api_key: Option<String>,
    /// `{{secrets.NAME}}` reads the environment variable `{secrets_env_prefix}{NAME}` (LangOrch's env provider).
    pub secrets_env_prefix: String,
    /// A PostgreSQL database (`postgres://user@host:port/db`) instead of the embedded SQLite file: several ckp
    /// processes can then share it (`ckp serve --no-workers` for API processes, `ckp worker` for workers).
    pub database_url: Option<String>,
    /// Most PostgreSQL connections this process opens (default: twice the cores, 4 to 16; more connections than
    /// the cores can serve only add context switches — measured in BENCHMARKS.md).
    pub db_pool_size: usize,
    /// Serve the HTTP API (`ckp worker` runs workers only).
    pub http: bool,
    /// The URL agents reach this server at, for workflow callback URLs (default `http://<bind address>`).
    pub public_url: Option<String>,
    /// The key of workflow callback tokens (HMAC-SHA256 of the run id); generated and kept in
    /// `<data_dir>/callback_secret` when not given.
    pub callback_secret: Option<String>,
    /// A run paused on an async workflow fails when no callback came after this many minutes.
    pub workflow_callback_timeout_minutes: f64,
    /// LLM prices per 1,000 tokens by model (name prefix), merged over the defaults.
    pub llm_prices: std::collections::BTreeMap<String, ckp_engine::pricing::ModelPrice>,
    /// Secrets providers (`[secrets]`, `[secrets.vault]`, `[secrets.aws]`, `[secrets.azure]`): the default provider,
    /// the cache, the key of ckp's own store, and each provider's address and credentials.
    pub secrets: ckp_connectors::secrets::SecretsSettings,
    /// MCP servers by name (`[mcp_servers.NAME]`: `command`/`args`/`env`/`cwd` or `url`/`headers`, `timeout_ms`);
    /// they win over a procedure's `global_config.mcp_servers` of the same name.
    pub mcp_servers: std::collections::BTreeMap<String, ckp_core::mcp::McpServer>,
    /// LangOrch's legacy MCP fallback: steps whose agent channel has no agent call `POST {mcp_base_url}/tools/{action}`.
    pub mcp_base_url: Option<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            bind: "127.0.0.1:8000".into(),
            data_dir: PathBuf::from("ckp-data"),
            db: None,
            workers: 8,
            max_body_bytes: 4 * 1024 * 1024,
            synchronous: "normal".into(),
            lease_ms: 30_000,
            shutdown_grace_ms: 30_000,
            agent_health_ms: 60_000,
            agent_offline_after: 3,
            agent_circuit_reset_ms: 300_000,
            llm_base_url: None,
            llm_model: "gpt-4o-mini".into(),
            llm_fallback_models: Vec::new(),
            llm_api_key: None,
            secrets_env_prefix: "LANGORCH_SECRET_".into(),
            database_url: None,
            db_pool_size: default_pool_size(),
            http: true,
            public_url: None,
            callback_secret: None,
            workflow_callback_timeout_minutes: 60.0,
            llm_prices: std::collections::BTreeMap::new(),
            secrets: ckp_connectors::secrets::SecretsSettings::default(),
            mcp_servers: std::collections::BTreeMap::new(),
            mcp_base_url: None,
        }
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An environment variable is not valid.
    #[error("{name}: {message}")]
    Env {
        /// Variable.
        name: String,
        /// What is wrong.
        message: String,
    },
}

impl ServeConfig {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Invalid { path: path.to_owned(), message: e.to_string() })
    }

    /// Applies `CKP_BIND`, `CKP_DATA_DIR`, `CKP_DB`, `CKP_WORKERS`, `CKP_MAX_BODY_BYTES`, `CKP_SYNCHRONOUS`,
    /// `CKP_LEASE_MS`, `CKP_SHUTDOWN_GRACE_MS`, `CKP_AGENT_HEALTH_MS`, `CKP_AGENT_OFFLINE_AFTER`,
    /// `CKP_LLM_BASE_URL`, `CKP_LLM_MODEL`, `CKP_LLM_API_KEY`, `CKP_DATABASE_URL`, `CKP_DB_POOL_SIZE`, the workflow
    /// settings, the secrets settings ([`ckp_connectors::secrets::SecretsSettings::apply_env`]), `CKP_MCP_SERVERS`
    /// (a JSON object of servers by name, replacing the file's servers of the same names) and `CKP_MCP_BASE_URL` (or
    /// LangOrch's `MCP_BASE_URL`) from `env`.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ConfigError> {
            v.trim()
                .parse()
                .map_err(|_| ConfigError::Env { name: name.into(), message: format!("not a number: {v:?}") })
        }
        if let Some(v) = env("CKP_BIND") {
            self.bind = v;
        }
        if let Some(v) = env("CKP_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = env("CKP_DB") {
            self.db = Some(v.into());
        }
        if let Some(v) = env("CKP_WORKERS") {
            self.workers = num("CKP_WORKERS", &v)?;
        }
        if let Some(v) = env("CKP_MAX_BODY_BYTES") {
            self.max_body_bytes = num("CKP_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = env("CKP_SYNCHRONOUS") {
            self.synchronous = v;
        }
        if let Some(v) = env("CKP_LEASE_MS") {
            self.lease_ms = num("CKP_LEASE_MS", &v)?;
        }
        if let Some(v) = env("CKP_SHUTDOWN_GRACE_MS") {
            self.shutdown_grace_ms = num("CKP_SHUTDOWN_GRACE_MS", &v)?;
        }
        if let Some(v) = env("CKP_AGENT_HEALTH_MS") {
            self.agent_health_ms = num("CKP_AGENT_HEALTH_MS", &v)?;
        }
        if let Some(v) = env("CKP_AGENT_OFFLINE_AFTER") {
            self.agent_offline_after = num("CKP_AGENT_OFFLINE_AFTER", &v)?;
        }
        if let Some(v) = env("CKP_LLM_BASE_URL") {
            self.llm_base_url = Some(v);
        }
        if let Some(v) = env("CKP_LLM_MODEL") {
            self.llm_model = v;
        }
        if let Some(v) = env("CKP_LLM_API_KEY") {
            self.llm_api_key = Some(v);
        }
        if let Some(v) = env("CKP_DATABASE_URL") {
            self.database_url = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = env("CKP_DB_POOL_SIZE") {
            self.db_pool_size = num("CKP_DB_POOL_SIZE", &v)?;
        }
        crate::workflow::apply_env(self, &env)?;
        self.secrets.apply_env(&env).map_err(|e| ConfigError::Env { name: "CKP_SECRETS_*".into(), message: e.0 })?;
        if let Some(v) = env("CKP_MCP_SERVERS") {
            let servers: std::collections::BTreeMap<String, ckp_core::mcp::McpServer> = serde_json::from_str(&v)
                .map_err(|e| ConfigError::Env { name: "CKP_MCP_SERVERS".into(), message: e.to_string() })?;
            self.mcp_servers.extend(servers);
        }
        if let Some(v) = env("CKP_MCP_BASE_URL").or_else(|| env("MCP_BASE_URL")) {
            self.mcp_base_url = Some(v).filter(|v| !v.trim().is_empty());
        }
        Ok(())
    }

    /// Where the data lives, for messages: the PostgreSQL URL without its password, or the SQLite file.
    pub fn database_label(&self) -> String {
        match &self.database_url {
            Some(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    let user = &url[scheme + 3..at];
                    let user = user.split(':').next().unwrap_or_default();
                    format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
                }
                _ => url.clone(),
            },
            None => self.db_path().display().to_string(),
        }
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(|| self.data_dir.join("ckp.db"))
    }

    fn sqlite_options(&self) -> Result<SqliteOptions, ServeError> {
        let synchronous = match self.synchronous.to_ascii_lowercase().as_str() {
            "normal" => Synchronous::Normal,
            "full" => Synchronous::Full,
            other => return Err(ServeError::Config(format!("synchronous must be normal or full, not {other:?}"))),
        };
        Ok(SqliteOptions { synchronous })
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Invalid settings.
    #[error("{0}")]
    Config(String),
    /// The store could not be opened.
    #[error("cannot open the database: {0}")]
    Store(#[from] ckp_store::StoreError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on (the real port when the configuration said 0); None for a worker-only process.
    pub addr: Option<SocketAddr>,
    engine: Arc<Engine>,
    mcp: Arc<McpConnector>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    grace: Duration,
}

impl Running {
    /// Stops accepting requests and claiming jobs; executions in hand commit at their next node boundary and are
    /// released to the queue (up to the grace period); then returns.
    pub async fn shutdown(mut self) {
        tracing::info!(grace_ms = self.grace.as_millis(), "shutting down: runs in hand stop at their next node");
        self.engine.stop_at_next_node();
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(self.grace, async { while self.tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                "shutdown grace period over: runs still in hand resume from their last commit on the next start"
            );
        }
        self.mcp.shutdown().await;
        tracing::info!("ckp stopped");
    }
}

/// The MCP connector of the configured servers (started lazily) and the legacy fallback.
fn mcp_connector(config: &ServeConfig) -> Result<McpConnector, ServeError> {
    for name in config.mcp_servers.keys() {
        ckp_core::mcp::McpServer::check_name(name).map_err(ServeError::Config)?;
    }
    if let Some(url) = &config.mcp_base_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ServeError::Config(format!("mcp_base_url must start with http:// or https://, not {url:?}")));
    }
    Ok(McpConnector::new(McpSettings {
        servers: config.mcp_servers.clone(),
        legacy_base_url: config.mcp_base_url.clone(),
    }))
}

/// Opens the store, starts the workers and the HTTP server.
pub async fn start(config: &ServeConfig) -> Result<Running, ServeError> {
    let store: Arc<dyn Store> = match &config.database_url {
        Some(url) => {
            if config.workers == 0 && !config.http {
                return Err(ServeError::Config("a process with no workers and no HTTP API has nothing to do".into()));
            }
            let options = PgOptions {
                pool_size: config.db_pool_size.max(2),
                follow_runs: config.http,
                follow_jobs: config.workers > 0,
                ..PgOptions::default()
            };
            // Other processes share the database: only leases that expired are taken back (by the reclaimer).
            Arc::new(PgStore::connect(url, options).await?)
        }
        None => {
            if config.workers == 0 || !config.http {
                return Err(ServeError::Config(
                    "the embedded SQLite database is served by one process with its workers; use database_url \
                     (PostgreSQL) to split API and workers"
                        .into(),
                ));
            }
            let store = Arc::new(SqliteStore::open(config.db_path(), config.sqlite_options()?)?);
            // One process owns an embedded database: jobs left running belong to a process that died.
            store.reclaim_expired(chrono::Utc::now() + chrono::Duration::days(36_500)).await?;
            store
        }
    };
    let catalog = Arc::new(Catalog::new(store.clone()));
    let callbacks = crate::workflow::signer(config)?;
    let ports = Arc::new(crate::ports::StorePorts::new(store.clone()));
    let secrets = Arc::new(
        ckp_connectors::secrets::SecretManager::new(config.secrets.clone(), config.secrets_env_prefix.clone())
            .map_err(|e| ServeError::Config(e.0))?
            .with_sealed(ports.clone())
            .with_grants(callbacks.grant_key()),
    );
    let mcp = Arc::new(mcp_connector(config)?);
    let engine = Arc::new(
        Engine::new(
            store.clone(),
            Effects {
                agents: Some(Arc::new(
                    ckp_connectors::agents::RegistryAgents::new(ports.clone())
                        .with_offline_after(config.agent_offline_after)
                        .with_callbacks(callbacks.clone()),
                )),
                http: Some(Arc::new(ckp_connectors::http::ReqwestHttp::new())),
                llm: config.llm_base_url.as_ref().map(|url| {
                    let mut llm = ckp_connectors::llm::LlmConfig::new(url.clone(), config.llm_model.clone());
                    llm.api_key.clone_from(&config.llm_api_key);
                    llm.fallback_models.clone_from(&config.llm_fallback_models);
                    Arc::new(ckp_connectors::llm::OpenAiLlm::new(llm)) as Arc<dyn ckp_engine::effects::Llm>
                }),
                secrets: Some(secrets.clone()),
                mcp: Some(mcp.clone()),
                ..Effects::default()
            },
        )
        .with_procedures(catalog.clone())
        .with_config(EngineConfig {
            callback_timeout_minutes: config.workflow_callback_timeout_minutes,
            prices: Arc::new(ckp_engine::pricing::PriceTable::with(&config.llm_prices).map_err(ServeError::Config)?),
            artifacts_dir: std::path::absolute(config.data_dir.join("artifacts")).ok(),
            ..EngineConfig::default()
        }),
    );
    let (shutdown, signal) = watch::channel(false);
    let state = AppState {
        store: store.clone(),
        catalog: catalog.clone(),
        engine: engine.clone(),
        artifacts_dir: config.data_dir.join("artifacts"),
        shutdown: signal.clone(),
        callbacks: callbacks.clone(),
        secrets,
        mcp: mcp.clone(),
    };
    let app = router(state, config.max_body_bytes);
    let listener = match config.http {
        true => Some(
            tokio::net::TcpListener::bind(&config.bind)
                .await
                .map_err(|source| ServeError::Bind { addr: config.bind.clone(), source })?,
        ),
        false => None,
    };
    let addr = listener
        .as_ref()
        .map(tokio::net::TcpListener::local_addr)
        .transpose()
        .map_err(|source| ServeError::Bind { addr: config.bind.clone(), source })?;
    callbacks.set_base_url(&crate::workflow::public_url(config, addr));
    let mut tasks = JoinSet::new();
    let host = uuid::Uuid::new_v4().simple().to_string();
    if config.workers > 0 {
        let wc = WorkerConfig { workers: config.workers, lease_ms: config.lease_ms, ..WorkerConfig::new(&host[..8]) };
        tasks.spawn(run_workers(store.clone(), engine.clone(), catalog.clone(), wc, signal.clone()));
    }
    let every = Duration::from_millis(u64::try_from(config.lease_ms / 2).unwrap_or(15_000).max(100));
    tasks.spawn(run_reclaimer(store.clone(), every, signal.clone()));
    let health = ckp_connectors::agents::HealthConfig {
        every: Duration::from_millis(config.agent_health_ms.max(10)),
        offline_after: config.agent_offline_after.max(1),
        timeout: Duration::from_secs(5),
        circuit_reset: Duration::from_millis(config.agent_circuit_reset_ms),
    };
    tasks.spawn(ckp_connectors::agents::run_health_loop(ports, health, signal.clone()));
    if let Some(listener) = listener {
        let mut http_signal = signal.clone();
        tasks.spawn(async move {
            let stop = async move {
                let _ = http_signal.wait_for(|s| *s).await;
            };
            // No Nagle delay: small responses (a 201, an SSE event) leave at once.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
                tracing::error!(error = %ckp_engine::error::ErrorChain(&e), "the HTTP server stopped");
            }
        });
    }
    match &config.database_url {
        // The URL may hold a password: only the kind of store is logged.
        Some(_) => tracing::info!(addr = ?addr, database = "postgresql", workers = config.workers, "ckp started"),
        None => tracing::info!(addr = ?addr, database = %config.db_path().display(), workers = config.workers,
            "ckp started"),
    }
    Ok(Running { addr, engine, mcp, shutdown, tasks, grace: Duration::from_millis(config.shutdown_grace_ms) })
}

/// Twice the cores this process may use, 4 to 16.
fn default_pool_size() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 2).clamp(4, 16)
}
