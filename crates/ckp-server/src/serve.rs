//! `ckp serve`: startup from the settings ([`crate::settings`]) (store, catalog,
//! engine, embedded workers, reclaimer, HTTP through [`crate::listener`]), and graceful shutdown (stop accepting, let workers bring the runs
//! in hand to their next pause or end, release, exit).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ckp_connectors::mcp::McpConnector;
use ckp_engine::{Engine, EngineConfig};
use ckp_store::{PgOptions, PgStore, QueueStore, SqliteOptions, SqliteStore, Store, Synchronous};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::{AppState, router};
use crate::catalog::Catalog;
use crate::worker::{WorkerConfig, run_reclaimer, run_workers};

pub use crate::settings::{ConfigError, ServeConfig};

impl ServeConfig {
    /// Where the data lives, for messages: the PostgreSQL URL without its password, or the SQLite file.
    pub fn database_label(&self) -> String {
        match &self.database_url {
            Some(url) => url.redacted(),
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

/// The authentication settings, checked: `auth = "off"` off a loopback address needs `allow_insecure_no_auth`
/// (and is logged as a warning at every start).
fn auth_config(config: &ServeConfig) -> Result<crate::auth::AuthConfig, ServeError> {
    let loopback = crate::auth::is_loopback(&config.bind);
    let mode = crate::settings::auth_enabled_mode(&config.auth)
        .ok_or_else(|| ServeError::Config(format!("auth must be auto, on or off, not {:?}", config.auth)))?;
    let enabled = mode.unwrap_or(!loopback);
    if !enabled && !loopback {
        if !config.allow_insecure_no_auth {
            return Err(ServeError::Config(format!(
                "authentication is off but ckp would listen on {}, beyond this machine: anyone reaching the port \
                 would be an administrator. Remove auth = \"off\" (or bind 127.0.0.1), or set \
                 allow_insecure_no_auth (--allow-insecure-no-auth true) to accept that",
                config.bind
            )));
        }
        tracing::warn!(bind = %config.bind, "authentication is OFF on a non-loopback address: anyone who reaches the port is an administrator");
    }
    Ok(crate::auth::AuthConfig {
        enabled,
        token_ttl: Duration::from_secs(config.auth_token_ttl_s),
        session_ttl: Duration::from_secs(config.auth_session_ttl_s),
        token_endpoint: config.auth_token_endpoint,
        failures_per_minute: u32::try_from(config.auth_failures_per_minute).unwrap_or(u32::MAX),
        secure_cookies: config.auth_secure_cookies,
        cors_origins: config.cors_origins.clone(),
        four_eyes: config.approval_four_eyes,
        ldap: crate::auth::ldap::LdapConfig::from_settings(config)
            .map_err(ServeError::Config)?
            .map(crate::auth::ldap::Directory::new),
    })
}

/// Single sign-on, when `oidc_issuer` and `oidc_client_id` are set: the client, its state-cookie key (made at the
/// first start, shared through the store) and the redirect URI (`oidc_redirect_uri`, else
/// `{public_url}/api/auth/sso/callback`, known once the address is bound).
async fn sso(
    config: &ServeConfig,
    store: &Arc<dyn Store>,
    addr: Option<SocketAddr>,
) -> Result<Option<Arc<crate::auth::oidc::Oidc>>, ServeError> {
    use crate::auth::oidc::{HttpTransport, Oidc, OidcConfig, StateKey, state};
    let nonblank = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let (Some(issuer), Some(client_id)) = (nonblank(&config.oidc_issuer), nonblank(&config.oidc_client_id)) else {
        return Ok(None);
    };
    let default_role =
        match config.oidc_default_role.trim() {
            r if r.eq_ignore_ascii_case("none") => None,
            r => Some(crate::auth::Role::parse(r).ok_or_else(|| {
                ServeError::Config(format!("oidc_default_role must be a role name or none, not {r:?}"))
            })?),
        };
    let redirect_uri = nonblank(&config.oidc_redirect_uri)
        .unwrap_or_else(|| format!("{}/api/auth/sso/callback", crate::workflow::public_url(config, addr)));
    let key = store.server_key(state::KEY_NAME, &crate::auth::keys::random_token()).await?;
    let transport = HttpTransport::new().map_err(|e| ServeError::Config(format!("single sign-on: {e}")))?;
    let oidc = OidcConfig {
        issuer,
        client_id,
        client_secret: config.oidc_client_secret.clone().filter(|s| !s.expose().is_empty()),
        redirect_uri,
        scopes: config.oidc_scopes.split_whitespace().collect::<Vec<_>>().join(" "),
        role_claim: config.oidc_role_claim.trim().to_owned(),
        role_mapping: config.oidc_role_mapping.0.clone(),
        default_role,
    };
    tracing::info!(issuer = %oidc.issuer, redirect_uri = %oidc.redirect_uri, "single sign-on (OpenID Connect) is on");
    Ok(Some(Arc::new(Oidc::new(oidc, StateKey::new(key.into_bytes()), Arc::new(transport)))))
}

/// Deletes audit events older than the retention, at start and then hourly.
async fn purge_audit(store: Arc<dyn Store>, days: u64, mut stop: watch::Receiver<bool>) {
    loop {
        let before = chrono::Utc::now() - chrono::Duration::days(i64::try_from(days).unwrap_or(36_500));
        match store.purge_audit(&crate::auth::principal::stamp(before)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, retention_days = days, "old audit events deleted"),
            Err(e) => tracing::warn!(error = %e, "cannot delete old audit events"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
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
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    mcp: Arc<McpConnector>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    grace: Duration,
}

impl Running {
    /// The store it serves (for tests and embedders that act on it beside the API).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

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

/// The alert webhook, when configured.
fn alert_config(config: &ServeConfig) -> Option<crate::alerts::AlertConfig> {
    Some(crate::alerts::AlertConfig {
        url: config.alert_webhook_url.as_deref()?.trim().to_owned(),
        secret: ckp_connectors::settings::exposed(&config.alert_webhook_secret).map(str::to_owned),
        dedupe: Duration::from_secs(config.alert_dedupe_seconds),
        max_per_minute: config.alert_max_per_minute,
    })
}

/// Where traces go, when configured: the traces URL, else the base URL + `/v1/traces`.
fn otlp_config(config: &ServeConfig, owner: &str) -> Option<crate::otel::OtlpConfig> {
    let url = match (&config.otel_exporter_otlp_traces_endpoint, &config.otel_exporter_otlp_endpoint) {
        (Some(url), _) => url.trim().to_owned(),
        (None, Some(base)) => format!("{}/v1/traces", base.trim().trim_end_matches('/')),
        (None, None) => return None,
    };
    let headers = ckp_connectors::settings::exposed(&config.otel_exporter_otlp_headers)
        .map(crate::otel::parse_headers)
        .unwrap_or_default();
    Some(crate::otel::OtlpConfig {
        url,
        headers,
        service: config.otel_service_name.clone(),
        instance: owner.to_owned(),
    })
}

/// Opens the store, starts the workers and the HTTP server (with the web console this binary carries).
pub async fn start(config: &ServeConfig) -> Result<Running, ServeError> {
    start_with_console(config, crate::console::Console::built()).await
}

/// [`start`], serving `console` for every path no API route claims (tests hand it a table of their own).
pub async fn start_with_console(config: &ServeConfig, console: crate::console::Console) -> Result<Running, ServeError> {
    // This process's worker ids are `{owner}-{n}`; on PostgreSQL the owner is also its liveness lock's name.
    let host = uuid::Uuid::new_v4().simple().to_string();
    let owner = &host[..8];
    let store: Arc<dyn Store> = match &config.database_url {
        Some(url) => {
            if config.workers == 0 && !config.http {
                return Err(ServeError::Config("a process with no workers and no HTTP API has nothing to do".into()));
            }
            let options = PgOptions {
                pool_size: config.db_pool_size.max(2),
                follow_runs: config.http,
                follow_jobs: config.workers > 0,
                owner: (config.workers > 0).then(|| owner.to_owned()),
                ..PgOptions::default()
            };
            // Other processes share the database: only leases that expired are taken back (by the reclaimer).
            Arc::new(PgStore::connect(url.expose(), options).await?)
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
    let callbacks = crate::workflow::signer(config)?;
    let metrics = Arc::new(crate::metrics::Metrics::new(owner));
    let (alerts, alert_queue) = match alert_config(config) {
        Some(ac) => {
            if ac.secret.is_none() {
                tracing::warn!("alert_webhook_secret is not set: alerts are sent unsigned");
            }
            let (alerts, queue) = crate::alerts::Alerts::new(ac.clone(), metrics.clone());
            (Some(alerts), Some((ac, queue)))
        }
        None => (None, None),
    };
    // The agent registry raises `agent_circuit_open` when a failure opens an agent's circuit.
    let ports = Arc::new(crate::ports::StorePorts::new(store.clone()).with_alerts(alerts.clone()));
    let egress = crate::effects::egress(config)?;
    let agents = ckp_connectors::agents::RegistryAgents::new(ports.clone(), egress.clone())
        .with_offline_after(config.agent_offline_after)
        .with_callbacks(callbacks.clone());
    let built = crate::effects::build(config, egress.clone(), Some(Arc::new(agents)), |secrets| {
        secrets.with_sealed(ports.clone()).with_grants(callbacks.grant_key())
    })?;
    let (secrets, mcp) = (built.secrets, built.mcp);
    let catalog = Arc::new(Catalog::new(store.clone()).with_mcp(mcp.clone()).with_limits(config.procedure_limits()));
    let (tracer, spans) = match otlp_config(config, owner) {
        Some(otlp) => {
            let (tracer, spans) = crate::otel::Tracer::new();
            tracing::info!(url = %otlp.url, "traces are exported over OTLP");
            (Some(tracer), Some((otlp, spans)))
        }
        None => (None, None),
    };
    let journal = Arc::new(
        crate::metrics::journal::Metered::new(store.clone(), metrics.clone())
            .with_tracer(tracer.clone())
            .with_alerts(alerts.clone()),
    );
    let engine =
        Arc::new(Engine::new(journal, built.effects).with_procedures(catalog.clone()).with_config(EngineConfig {
            artifacts_dir: std::path::absolute(config.data_dir.join("artifacts")).ok(),
            trace: tracer.clone().map(|t| t as Arc<dyn ckp_engine::effects::TraceContext>),
            ..built.engine
        }));
    let (shutdown, signal) = watch::channel(false);
    let auth =
        crate::auth::Authenticator::new(store.clone(), auth_config(config)?, crate::auth::token_key(&store).await?);
    if auth.config.enabled
        && let Some(key) = crate::auth::bootstrap(&store).await?
    {
        // Printed once, to the terminal only (never a log line): only its hash is stored.
        eprintln!(
            "\nckp: authentication is on and no administrator exists yet. The first admin API key is\n\n    {key}\n\n\
             It is shown this once (only its hash is stored). Send it as `X-API-Key: <key>` or \
             `Authorization: Bearer <key>`;\ncreate users with POST /api/users or `ckp admin create-user`.\n"
        );
        tracing::warn!("created the first admin API key (printed once on the terminal)");
    }
    let listener = match config.http {
        true => Some(
            crate::listener::bind(&config.bind)
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
    let sso = sso(config, &store, addr).await?;
    let audit = crate::auth::audit::AuditSink::start(store.clone());
    let state = AppState {
        store: store.clone(),
        catalog: catalog.clone(),
        engine: engine.clone(),
        artifacts_dir: config.data_dir.join("artifacts"),
        shutdown: signal.clone(),
        callbacks: callbacks.clone(),
        secrets,
        mcp: mcp.clone(),
        egress: egress.clone(),
        auth,
        audit,
        sso,
        console,
        file_watch: Arc::new(crate::triggers::files::Allowed::new(&config.file_watch_allowed_paths)),
        metrics: metrics.clone(),
        alerts: alerts.clone(),
    };
    // Registrations follow the documents: a change a crash left unsynced is caught up here.
    let synced = crate::triggers::sync_all(&state).await?;
    if synced > 0 {
        tracing::info!(triggers = synced, "trigger registrations synced from the procedures");
    }
    let scheduler = state.clone();
    let app = router(state, config.max_body_bytes);
    callbacks.set_base_url(&crate::workflow::public_url(config, addr));
    if let Some(addr) = addr {
        egress.set_own_address(addr);
    }
    let mut tasks = JoinSet::new();
    if config.workers > 0 {
        let wc = WorkerConfig {
            workers: config.workers,
            lease_ms: config.lease_ms,
            metrics: metrics.clone(),
            tracer: tracer.clone(),
            alerts: alerts.clone(),
            ..WorkerConfig::new(owner)
        };
        tasks.spawn(run_workers(store.clone(), engine.clone(), catalog.clone(), wc, signal.clone()));
    }
    let every = Duration::from_millis(u64::try_from(config.lease_ms / 2).unwrap_or(15_000).max(100));
    tasks.spawn(run_reclaimer(store.clone(), every, signal.clone()));
    tasks.spawn(purge_audit(store.clone(), config.audit_retention_days, signal.clone()));
    if let Some((ac, queue)) = alert_queue {
        tasks.spawn(crate::alerts::run_delivery(ac, queue, metrics.clone(), signal.clone()));
    }
    if let Some((otlp, spans)) = spans {
        tasks.spawn(crate::otel::run_exporter(otlp, spans, signal.clone()));
    }
    if let Some(url) = &config.metrics_push_url {
        let push = crate::metrics::push::Push {
            url: url.trim().to_owned(),
            job: config.metrics_push_job.clone(),
            every: Duration::from_millis(config.metrics_push_interval_ms),
        };
        tasks.spawn(crate::metrics::push::run_push(metrics.clone(), store.clone(), push, signal.clone()));
    }
    tasks.spawn(crate::triggers::events::run_consumers(scheduler.clone(), consumer_settings(config), signal.clone()));
    tasks.spawn(crate::triggers::files::run_file_watch(scheduler.clone(), signal.clone()));
    let retention = crate::triggers::prune::Retention {
        keep: config.trigger_fires_keep,
        days: config.trigger_fires_retention_days,
    };
    tasks.spawn(crate::triggers::prune::run_prune(scheduler.clone(), retention, signal.clone()));
    let runs_retention = crate::retention::Retention::from_config(config);
    let artifacts = config.data_dir.join("artifacts");
    tasks.spawn(crate::retention::run_retention(store.clone(), artifacts, runs_retention, signal.clone()));
    tasks.spawn(crate::triggers::scheduler::run_scheduler(scheduler, signal.clone()));
    let health = ckp_connectors::agents::HealthConfig {
        every: Duration::from_millis(config.agent_health_ms.max(10)),
        offline_after: config.agent_offline_after.max(1),
        timeout: Duration::from_secs(5),
        circuit_reset: Duration::from_millis(config.agent_circuit_reset_ms),
    };
    tasks.spawn(ckp_connectors::agents::run_health_loop(ports, egress, health, signal.clone()));
    let mut max_connections = None;
    if let Some(listener) = listener {
        let file_limit = crate::listener::raise_file_limit();
        let cap = crate::listener::connection_cap(config.max_connections, file_limit);
        if cap < config.max_connections {
            tracing::info!(
                max_connections = config.max_connections,
                file_limit,
                applied = cap,
                "max_connections lowered to fit the open-file limit"
            );
        }
        max_connections = Some(cap);
        let limits = crate::listener::Limits {
            header_timeout: Duration::from_millis(config.header_timeout_ms),
            body_timeout: Duration::from_millis(config.body_timeout_ms),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            max_connections: cap,
        };
        tasks.spawn(crate::listener::serve(listener, app, limits, signal.clone()));
    }
    match &config.database_url {
        // The URL may hold a password: only the kind of store is logged.
        Some(_) => {
            tracing::info!(addr = ?addr, database = "postgresql", workers = config.workers, max_connections,
                "ckp started");
        }
        None => tracing::info!(addr = ?addr, database = %config.db_path().display(), workers = config.workers,
            max_connections, "ckp started"),
    }
    Ok(Running { addr, store, engine, mcp, shutdown, tasks, grace: Duration::from_millis(config.shutdown_grace_ms) })
}

/// The event consumers' settings of `config`.
fn consumer_settings(config: &ServeConfig) -> crate::triggers::events::ConsumerSettings {
    use crate::triggers::events::{ConsumerSettings, Placement};
    let aws = &config.secrets.aws;
    let credentials = match (&aws.aws_access_key_id, ckp_connectors::settings::exposed(&aws.aws_secret_access_key)) {
        (Some(id), Some(secret)) => Some((
            id.clone(),
            secret.to_owned(),
            ckp_connectors::settings::exposed(&aws.aws_session_token).map(str::to_owned),
        )),
        _ => None,
    };
    ConsumerSettings {
        placement: if config.trigger_consumers == "every" { Placement::Every } else { Placement::Leader },
        aws_region: aws.region_name.clone(),
        aws_credentials: credentials,
        aws_endpoint: config.sqs_endpoint_url.clone(),
    }
}
