//! The settings table of `ckp serve`, `ckp worker`, `ckp run` and `ckp config`: every setting declared once (TOML
//! key, `CKP_*` variables, flag, default, help text, validation) in [`ServeConfig`], and [`load`], which layers
//! defaults < TOML file < environment < flags, validates each value as it is read (an error names the setting and
//! where the value came from) and remembers each value's origin for `ckp config`.
//!
//! The environment is read here once, at start, through the lookup the command passes; no other code of ckp reads
//! a setting from the environment. Credentials are [`Secret`]s (or a [`DbUrl`], whose password is never shown):
//! they are printed as `***` and never echoed in an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ckp_connectors::secrets::SecretsSettings;
use ckp_connectors::settings::{Group, Input, Json, Secret, SetError, SettingValue, Spec};
use ckp_connectors::settings_group;

settings_group! {
    /// The effective settings of a ckp process.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ServeConfig {
        /// Address and port to listen on.
        bind: String = "127.0.0.1:8000".into(), { env: &["CKP_BIND"], flag: Some("bind"), value_name: "ADDR:PORT" };
        /// Data directory: the database (`ckp.db`) and artifact files (`artifacts/`).
        data_dir: PathBuf = PathBuf::from("ckp-data"),
            { env: &["CKP_DATA_DIR"], flag: Some("data-dir"), value_name: "DIR", migrate: true };
        /// The SQLite database file (default `<data_dir>/ckp.db`). For `ckp run`: keep the run in this file (created
        /// if needed) so it survives the process and can be resumed.
        db: Option<PathBuf> = None, {
            env: &["CKP_DB"], flag: Some("db"), value_name: "FILE", run: true, migrate: true,
        };
        /// Embedded workers: runs executed concurrently (0 with `--no-workers`).
        workers: usize = 8, { env: &["CKP_WORKERS"], flag: Some("workers"), value_name: "N" };
        /// Largest request body accepted, in bytes.
        max_body_bytes: usize = 4 * 1024 * 1024, {
            env: &["CKP_MAX_BODY_BYTES"], flag: Some("max-body-bytes"), value_name: "BYTES",
            expected: "a positive integer",
        } check positive;
        /// How long a new connection may take to send a complete request head, in milliseconds; then it is closed.
        header_timeout_ms: u64 = 10_000, {
            env: &["CKP_HEADER_TIMEOUT_MS"], flag: Some("header-timeout-ms"), value_name: "MS",
            expected: "a positive integer",
        } check positive;
        /// How long a request's body may take to arrive after its head, in milliseconds; a slower one is answered
        /// 408 `request_timeout` and its connection closed.
        body_timeout_ms: u64 = 60_000, {
            env: &["CKP_BODY_TIMEOUT_MS"], flag: Some("body-timeout-ms"), value_name: "MS",
            expected: "a positive integer",
        } check positive;
        /// How long a keep-alive connection may wait after an answer for its next request (a complete head), in
        /// milliseconds; then it is closed. Never applies while an answer (an SSE stream) is being sent.
        idle_timeout_ms: u64 = 120_000, {
            env: &["CKP_IDLE_TIMEOUT_MS"], flag: Some("idle-timeout-ms"), value_name: "MS",
            expected: "a positive integer",
        } check positive;
        /// Most open HTTP connections, lowered at start to fit the open-file limit (itself raised to its hard
        /// limit). At the cap, the connection that has waited longest for a request is closed for the new one;
        /// when every connection has a request in progress, a reserve of 16 slots answers `GET /api/health` only
        /// and anything else gets 503 `too_many_connections` with `Retry-After`.
        max_connections: usize = 10_000, {
            env: &["CKP_MAX_CONNECTIONS"], flag: Some("max-connections"), value_name: "N",
            expected: "a positive integer",
        } check positive;
        /// Largest CKP document accepted, in bytes: import and update answer 413 `procedure_too_large` above it
        /// (`max_body_bytes` bounds the whole request first), `ckp validate` reports a `too-large` error.
        max_procedure_bytes: usize = ckp_core::Limits::DEFAULT.max_bytes, {
            env: &["CKP_MAX_PROCEDURE_BYTES"], flag: Some("max-procedure-bytes"), value_name: "BYTES",
            validate: true, expected: "a positive integer",
        } check positive;
        /// Most nodes in a CKP document, checked as max_procedure_bytes is.
        max_procedure_nodes: usize = ckp_core::Limits::DEFAULT.max_nodes, {
            env: &["CKP_MAX_PROCEDURE_NODES"], flag: Some("max-procedure-nodes"), value_name: "N",
            validate: true, expected: "a positive integer",
        } check positive;
        /// SQLite durability: `normal` (survives process crashes) or `full` (survives power loss).
        synchronous: String = "normal".into(),
            { env: &["CKP_SYNCHRONOUS"], flag: Some("synchronous"), value_name: "LEVEL", expected: "normal or full" }
            check synchronous;
        /// Job lease length in milliseconds (heartbeats renew it every third). A process that dies holding jobs
        /// gives them back when their leases expire; on PostgreSQL its death is seen within about 2 s (its
        /// liveness lock is gone) and they are taken back then, so a long lease only protects slow steps.
        lease_ms: i64 = 30_000, {
            env: &["CKP_LEASE_MS"], flag: Some("lease-ms"), value_name: "MS", expected: "a positive integer",
        } check positive;
        /// How long shutdown waits for runs in hand, in milliseconds.
        shutdown_grace_ms: u64 = 30_000,
            { env: &["CKP_SHUTDOWN_GRACE_MS"], flag: Some("shutdown-grace-ms"), value_name: "MS" };
        /// Time between agent health checks (`GET {base_url}/health`), in milliseconds.
        agent_health_ms: u64 = 60_000, {
            env: &["CKP_AGENT_HEALTH_MS"], flag: Some("agent-health-ms"), value_name: "MS",
            expected: "a positive integer",
        } check positive;
        /// Consecutive failed health checks before an agent goes offline (and its circuit opens).
        agent_offline_after: i64 = 3, {
            env: &["CKP_AGENT_OFFLINE_AFTER"], flag: Some("agent-offline-after"), value_name: "N",
            expected: "a positive integer",
        } check positive;
        /// How long an agent's open circuit waits before a half-open probe, in milliseconds.
        agent_circuit_reset_ms: u64 = 300_000,
            { env: &["CKP_AGENT_CIRCUIT_RESET_MS"], flag: Some("agent-circuit-reset-ms"), value_name: "MS" };
        /// How long a step waits, in milliseconds, for an agent of its channel to come online when the channel's
        /// agents are all offline (or their circuits open), before it fails; 0 fails it at once. The run shows a
        /// `step_waiting_for_agent` event and holds no worker meanwhile (it looks again every 2 s).
        agent_wait_ms: u64 = 60_000,
            { env: &["CKP_AGENT_WAIT_MS"], flag: Some("agent-wait-ms"), value_name: "MS" };
        /// An OpenAI-compatible chat-completions endpoint (`https://api.openai.com/v1`, a gateway, a local server);
        /// without it, `llm_action` steps fail with a clear message.
        llm_base_url: Option<String> = None, {
            env: &["CKP_LLM_BASE_URL"], flag: Some("llm-base-url"), value_name: "URL", run: true,
            expected: "an http(s) URL",
        } check http_url;
        /// The model when a node names none.
        llm_model: String = "gpt-4o-mini".into(),
            { env: &["CKP_LLM_MODEL"], flag: Some("llm-model"), value_name: "MODEL", run: true } check not_blank;
        /// Models tried in order when the node's keeps failing.
        llm_fallback_models: Vec<String> = Vec::new(), {
            env: &["CKP_LLM_FALLBACK_MODELS"], flag: Some("llm-fallback-models"), value_name: "MODEL,...",
            run: true,
        };
        /// The LLM endpoint's API key (better in the environment than in a file).
        llm_api_key: Option<Secret<String>> = None, { env: &["CKP_LLM_API_KEY"] };
        /// LLM prices per 1,000 tokens by model (name prefix), merged over the defaults.
        llm_prices: BTreeMap<String, ckp_engine::pricing::ModelPrice> = BTreeMap::new(),
            { env: &["CKP_LLM_PRICES"] } check prices;
        /// `{{secrets.NAME}}` reads the environment variable `{secrets_env_prefix}{NAME}` (LangOrch's env provider).
        /// A procedure's own `prefix` is taken under this one, and no secret ever reads a `CKP_*` variable.
        secrets_env_prefix: String = "LANGORCH_SECRET_".into(), { env: &["CKP_SECRETS_ENV_PREFIX"] };
        /// A PostgreSQL database (`postgres://user@host:port/db`) instead of the embedded SQLite file: several ckp
        /// processes can then share it (`ckp serve --no-workers` for API processes, `ckp worker` for workers).
        database_url: Option<DbUrl> = None,
            { env: &["CKP_DATABASE_URL"], flag: Some("database-url"), value_name: "URL", run: true, migrate: true };
        /// Most PostgreSQL connections this process opens (default: twice the cores, 4 to 16; more connections than
        /// the cores can serve only add context switches, measured in BENCHMARKS.md).
        db_pool_size: usize = default_pool_size(), {
            env: &["CKP_DB_POOL_SIZE"], flag: Some("db-pool-size"), value_name: "N",
            expected: "a positive integer",
        } check positive;
        /// The URL agents reach this server at, for workflow callback URLs (default `http://<bind address>`).
        public_url: Option<String> = None, {
            env: &["CKP_PUBLIC_URL"], flag: Some("public-url"), value_name: "URL", expected: "an http(s) URL",
        } check http_url;
        /// The key of workflow callback tokens (HMAC-SHA256 of the run id); generated and kept in
        /// `<data_dir>/callback_secret` when not given.
        callback_secret: Option<Secret<String>> = None, { env: &["CKP_CALLBACK_SECRET"] };
        /// Most node entries of one run, loop iterations and revisits included: a cycle that never exits fails the
        /// run there instead of filling the disk (a procedure's `global_config.max_node_entries` may ask for fewer).
        max_node_entries: u64 = 1_000_000, {
            env: &["CKP_MAX_NODE_ENTRIES"], flag: Some("max-node-entries"), value_name: "N", run: true,
            expected: "a positive integer",
        } check positive;
        /// Most events one run records: the node entered past it fails the run (a loop or cycle that never ends
        /// stops there instead of filling the disk).
        max_events_per_run: u64 = 5_000_000, {
            env: &["CKP_MAX_EVENTS_PER_RUN"], flag: Some("max-events-per-run"), value_name: "N", run: true,
            expected: "a positive integer",
        } check positive;
        /// Most bytes one variable may take as JSON: a step writing more fails with an error naming the variable,
        /// which keeps its previous value.
        max_variable_bytes: usize = 16 * 1024 * 1024, {
            env: &["CKP_MAX_VARIABLE_BYTES"], flag: Some("max-variable-bytes"), value_name: "BYTES", run: true,
            expected: "a positive integer",
        } check positive;
        /// Most bytes a run's variables may take together as JSON, checked after each top-level node and as a
        /// loop commits: the run fails there with an error naming the largest variables.
        max_state_bytes: usize = 64 * 1024 * 1024, {
            env: &["CKP_MAX_STATE_BYTES"], flag: Some("max-state-bytes"), value_name: "BYTES", run: true,
            expected: "a positive integer",
        } check positive;
        /// A run paused on an async workflow fails when no callback came after this many minutes.
        workflow_callback_timeout_minutes: f64 = 60.0,
            { env: &["CKP_WORKFLOW_CALLBACK_TIMEOUT_MINUTES"], expected: "a positive number" } check positive_number;
        /// MCP servers by name (`[mcp_servers.NAME]`: `command`/`args`/`env`/`cwd` or `url`/`headers`,
        /// `timeout_ms`); they win over a procedure's `global_config.mcp_servers` of the same name. The flag takes
        /// `NAME=URL` (streamable HTTP) or `NAME='COMMAND ARGS...'` (stdio), repeatable.
        mcp_servers: BTreeMap<String, ckp_core::mcp::McpServer> = BTreeMap::new(), {
            env: &["CKP_MCP_SERVERS"], flag: Some("mcp"), value_name: "NAME=URL|COMMAND", run: true,
            flag_entry: Some(mcp_flag),
        } check mcp_names;
        /// LangOrch's legacy MCP fallback: steps whose agent channel has no agent call
        /// `POST {mcp_base_url}/tools/{action}`.
        mcp_base_url: Option<String> = None, {
            env: &["CKP_MCP_BASE_URL", "MCP_BASE_URL"], flag: Some("mcp-base-url"), value_name: "URL", run: true,
            expected: "an http(s) URL",
        } check http_url;
        /// Private destinations opened to outbound calls whose address a procedure or an API caller chose
        /// (`http_request`, registered agents, MCP servers a procedure declares, secrets endpoints it names): CIDR
        /// blocks, addresses or host names, each with an optional `:port`. Loopback, link-local (cloud metadata),
        /// private, CGNAT and unspecified addresses are refused unless listed here; ckp's own address always is.
        egress_allow: Vec<String> = Vec::new(), {
            env: &["CKP_EGRESS_ALLOW"], flag: Some("egress-allow"), value_name: "ENTRY,...", run: true,
        } check egress;
        /// Where event triggers' broker consumers run: `leader` (the process holding the leader lock; on SQLite the
        /// one process) or `every` (each process, as one shared consumer per registration; MQTT stays on the leader).
        trigger_consumers: String = "leader".into(), {
            env: &["CKP_TRIGGER_CONSUMERS"], value_name: "leader|every", expected: "leader or every",
        } check trigger_consumers;
        /// The SQS endpoint of `sqs://QUEUE` event sources that name none (a local AWS-compatible server); unset:
        /// `https://sqs.REGION.amazonaws.com`. Region and credentials are the `[secrets.aws]` settings'.
        sqs_endpoint_url: Option<String> = None, {
            env: &["CKP_SQS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"], value_name: "URL", expected: "an http(s) URL",
        } check http_url;
        /// Commands a procedure's stdio MCP server (`global_config.mcp_servers` with `command`) may start on this
        /// host, written exactly as the declaration writes them; empty: none. Servers of `mcp_servers` need no entry.
        mcp_stdio_allow: Vec<String> = Vec::new(), {
            env: &["CKP_MCP_STDIO_ALLOW"], flag: Some("mcp-stdio-allow"), value_name: "COMMAND,...", run: true,
        };
        /// Authentication: `auto` (required unless `bind` is a loopback address), `on` (always required) or `off`
        /// (a request without a credential acts as `admin`; off a loopback address it also needs
        /// `allow_insecure_no_auth`). LangOrch's `AUTH_ENABLED=true|false` reads as `on|off`.
        auth: String = "auto".into(), {
            env: &["CKP_AUTH", "AUTH_ENABLED"], flag: Some("auth"), value_name: "MODE", expected: "auto, on or off",
        } check auth_mode;
        /// Lets `auth = "off"` serve a non-loopback address: anyone who reaches the port is an administrator. Logged
        /// as a warning at every start.
        allow_insecure_no_auth: bool = false, {
            env: &["CKP_ALLOW_INSECURE_NO_AUTH"], flag: Some("allow-insecure-no-auth"), value_name: "BOOL",
        };
        /// Lifetime of a session's access token in seconds (a refresh token gets a new one).
        auth_token_ttl_s: u64 = 900, {
            env: &["CKP_AUTH_TOKEN_TTL_S"], flag: Some("auth-token-ttl-s"), value_name: "SECONDS",
            expected: "a positive integer",
        } check positive;
        /// Lifetime of a session in seconds: its refresh token is refused after it (each refresh starts it again).
        auth_session_ttl_s: u64 = 7 * 24 * 3600, {
            env: &["CKP_AUTH_SESSION_TTL_S"], value_name: "SECONDS", expected: "a positive integer",
        } check positive;
        /// Enables LangOrch's `POST /api/auth/token` for administrators (a session for an existing user, with that
        /// user's roles; the body's `secret` and `roles` are ignored).
        auth_token_endpoint: bool = false, { env: &["CKP_AUTH_TOKEN_ENDPOINT"], value_name: "BOOL" };
        /// Failed sign-ins or credentials allowed per minute from one address or for one username; more are
        /// answered 429 with `Retry-After` (0: no limit).
        auth_failures_per_minute: u64 = 10, {
            env: &["CKP_AUTH_FAILURES_PER_MINUTE"], value_name: "N", expected: "a non-negative integer",
        };
        /// Marks the session cookie `Secure` (when ckp is reached over HTTPS, through a proxy that terminates TLS).
        auth_secure_cookies: bool = false, { env: &["CKP_AUTH_SECURE_COOKIES"], value_name: "BOOL" };
        /// Origins allowed to call the API from a browser page of another origin (CORS), exactly as the browser
        /// sends them (`https://console.example.com`); empty: none.
        cors_origins: Vec<String> = Vec::new(), {
            env: &["CKP_CORS_ORIGINS"], flag: Some("cors-origins"), value_name: "ORIGIN,...",
        };
        /// The four-eyes rule: with authentication on, whoever started a run cannot decide its approvals.
        approval_four_eyes: bool = false, {
            env: &["CKP_APPROVAL_FOUR_EYES"], flag: Some("approval-four-eyes"), value_name: "BOOL",
        };
        /// The LDAP directory users may sign in with (`ldap://host:389` or `ldaps://host:636`); unset: no LDAP
        /// sign-in. A username that is not a local password user is looked up there (docs/auth.md, "LDAP").
        ldap_url: Option<String> = None, {
            env: &["CKP_LDAP_URL"], value_name: "URL", expected: "an ldap:// or ldaps:// URL",
        } check ldap_url;
        /// The service account that searches the directory for users and their groups (a DN); unset: anonymous
        /// searches.
        ldap_bind_dn: Option<String> = None, { env: &["CKP_LDAP_BIND_DN"], value_name: "DN" };
        /// The password of `ldap_bind_dn` (better in the environment than in a file).
        ldap_bind_password: Option<Secret<String>> = None, { env: &["CKP_LDAP_BIND_PASSWORD"] };
        /// Where users are searched (the whole subtree), such as `ou=people,dc=example,dc=org`; required with
        /// `ldap_url`.
        ldap_user_base: Option<String> = None, { env: &["CKP_LDAP_USER_BASE"], value_name: "DN" };
        /// The filter that finds a user's entry: `{username}` is replaced by the username typed, escaped as RFC 4515
        /// requires. Exactly one entry must match.
        ldap_user_filter: String = "(uid={username})".into(), {
            env: &["CKP_LDAP_USER_FILTER"], value_name: "FILTER", expected: "an LDAP filter with {username}",
        } check ldap_user_filter;
        /// Where groups are searched (the whole subtree); unset: a user's groups are the `memberOf` values of
        /// their entry.
        ldap_group_base: Option<String> = None, { env: &["CKP_LDAP_GROUP_BASE"], value_name: "DN" };
        /// The filter that finds a user's groups under `ldap_group_base`: `{dn}` is replaced by the user's DN and
        /// `{username}` by the username, both escaped.
        ldap_group_filter: String = "(member={dn})".into(), {
            env: &["CKP_LDAP_GROUP_FILTER"], value_name: "FILTER", expected: "an LDAP filter",
        } check ldap_group_filter;
        /// A user's global role by group: `{"ckp-operators": "operator", "cn=admins,ou=groups,dc=example,dc=org":
        /// "admin"}`, a group named by its `cn` or its DN (case-insensitive); the highest role of the user's groups
        /// wins, set again at every sign-in.
        ldap_role_mapping: RoleMapping = RoleMapping::default(), { env: &["CKP_LDAP_ROLE_MAPPING"] };
        /// The global role of a user none of whose groups is mapped: a role, or `none` (no global role: only the
        /// project roles granted in ckp).
        ldap_default_role: String = "viewer".into(), {
            env: &["CKP_LDAP_DEFAULT_ROLE"], value_name: "ROLE", expected: "a role or none",
        } check role_or_none;
        /// How long a sign-in's whole exchange with the directory may take, in milliseconds; past it the sign-in
        /// is answered 503 `ldap_unavailable`.
        ldap_timeout_ms: u64 = 5_000, {
            env: &["CKP_LDAP_TIMEOUT_MS"], value_name: "MS", expected: "a positive integer",
        } check positive;
        /// Days audit events are kept; older ones are deleted hourly.
        audit_retention_days: u64 = 365, {
            env: &["CKP_AUDIT_RETENTION_DAYS"], value_name: "DAYS", expected: "a positive integer",
        } check positive;
        /// Alert webhook: a JSON POST when a run fails, a node breaches its SLA, a step error asks for a
        /// notification, an approval expires unanswered, a trigger cannot start its run or an agent's circuit opens.
        /// LangOrch's `ALERT_WEBHOOK_URL` is read too.
        alert_webhook_url: Option<String> = None, {
            env: &["CKP_ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_URL"], value_name: "URL", expected: "an http(s) URL",
        } check http_url;
        /// The key alerts are signed with (`X-Ckp-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`); without
        /// it alerts are sent unsigned, with a warning at start.
        alert_webhook_secret: Option<Secret<String>> = None, { env: &["CKP_ALERT_WEBHOOK_SECRET"] };
        /// Seconds during which the same alert (same event and subject: a run, a node, a trigger) is not sent again.
        alert_dedupe_seconds: u64 = 3_600, {
            env: &["CKP_ALERT_DEDUPE_SECONDS"], value_name: "SECONDS", expected: "a positive integer",
        } check positive;
        /// Most alerts sent per minute; more are counted (`ckp_alerts_total{outcome="rate_limited"}`) and dropped.
        alert_max_per_minute: u64 = 60, {
            env: &["CKP_ALERT_MAX_PER_MINUTE"], value_name: "N", expected: "a positive integer",
        } check positive;
        /// OpenTelemetry traces: the OTLP/HTTP base URL (`http://collector:4318`; `/v1/traces` is appended). Traces
        /// are off unless this or `otel_exporter_otlp_traces_endpoint` is set. The standard
        /// `OTEL_EXPORTER_OTLP_ENDPOINT` and LangOrch's `OTLP_ENDPOINT` are read too.
        otel_exporter_otlp_endpoint: Option<String> = None, {
            env: &["CKP_OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTLP_ENDPOINT"], value_name: "URL",
            expected: "an http(s) URL",
        } check http_url;
        /// The full OTLP/HTTP traces URL, used as it is (over `otel_exporter_otlp_endpoint`). The standard
        /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is read too.
        otel_exporter_otlp_traces_endpoint: Option<String> = None, {
            env: &["CKP_OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], value_name: "URL",
            expected: "an http(s) URL",
        } check http_url;
        /// Headers sent with each trace export, as `key=value,key2=value2` (values percent-encoded), for a
        /// collector's credentials. The standard `OTEL_EXPORTER_OTLP_HEADERS` is read too.
        otel_exporter_otlp_headers: Option<Secret<String>> = None, {
            env: &["CKP_OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"],
        };
        /// The traces' `service.name`. The standard `OTEL_SERVICE_NAME` is read too.
        otel_service_name: String = "ckp".into(), {
            env: &["CKP_OTEL_SERVICE_NAME", "OTEL_SERVICE_NAME"], value_name: "NAME",
        };
        /// Push gateway base URL (`http://host:9091`): when set, every process PUTs its metrics to
        /// `{url}/metrics/job/{metrics_push_job}/instance/{process id}` every `metrics_push_interval_ms` (its own
        /// grouping key, so processes never overwrite each other). LangOrch's `METRICS_PUSH_URL` is read too.
        metrics_push_url: Option<String> = None, {
            env: &["CKP_METRICS_PUSH_URL", "METRICS_PUSH_URL"], value_name: "URL", expected: "an http(s) URL",
        } check http_url;
        /// The `job` of pushed metrics. LangOrch's `METRICS_PUSH_JOB` is read too.
        metrics_push_job: String = "ckp".into(), {
            env: &["CKP_METRICS_PUSH_JOB", "METRICS_PUSH_JOB"], value_name: "NAME",
        };
        /// How often metrics are pushed to `metrics_push_url`, in milliseconds.
        metrics_push_interval_ms: u64 = 15_000, {
            env: &["CKP_METRICS_PUSH_INTERVAL_MS"], value_name: "MS", expected: "a positive integer",
        } check positive;
        /// Directories file-drop triggers may watch (a `file_watch` folder must be one of them or under one, both
        /// resolved to their real paths); empty: file watching is off and a file_watch registration says why.
        file_watch_allowed_paths: Vec<String> = Vec::new(), {
            env: &["CKP_FILE_WATCH_ALLOWED_PATHS"], flag: Some("file-watch-allowed-paths"), value_name: "DIR,...",
        };
        /// Fires of each trigger kept: older ones (beyond this many, or past trigger_fires_retention_days) are
        /// deleted by the leader, except those that still dedupe a cause.
        trigger_fires_keep: i64 = 10_000, {
            env: &["CKP_TRIGGER_FIRES_KEEP"], value_name: "N", expected: "a positive integer",
        } check positive;
        /// Days trigger fires are kept (even among the newest trigger_fires_keep), except those that still
        /// dedupe a cause.
        trigger_fires_retention_days: u64 = 90, {
            env: &["CKP_TRIGGER_FIRES_RETENTION_DAYS"], value_name: "DAYS", expected: "a positive integer",
        } check positive;
        /// Days a completed run is kept after it ended; then the leader deletes it with everything it owns
        /// (events, step records, approvals, artifact rows and files, subflow children). 0: kept forever.
        retention_completed_days: u64 = 30, { env: &["CKP_RETENTION_COMPLETED_DAYS"], value_name: "DAYS" };
        /// Days a failed run is kept after it ended (longer: failures are investigated). 0: kept forever.
        retention_failed_days: u64 = 90, { env: &["CKP_RETENTION_FAILED_DAYS"], value_name: "DAYS" };
        /// Days a canceled run is kept after it ended. 0: kept forever.
        retention_canceled_days: u64 = 30, { env: &["CKP_RETENTION_CANCELED_DAYS"], value_name: "DAYS" };
        /// Most runs kept (top-level, any status): beyond it the oldest ended runs are deleted, whatever their
        /// age. Runs that have not ended count but are never deleted. 0: no cap.
        retention_max_runs: u64 = 0, { env: &["CKP_RETENTION_MAX_RUNS"], value_name: "N" };
        /// Seconds between the leader's retention passes.
        retention_interval_seconds: u64 = 300, {
            env: &["CKP_RETENTION_INTERVAL_SECONDS"], value_name: "SECONDS", expected: "a positive integer",
        } check positive;
        /// Runs deleted per transaction by a retention pass (small batches keep the database's writer free).
        retention_batch: i64 = 200, {
            env: &["CKP_RETENTION_BATCH"], value_name: "N", expected: "a positive integer",
        } check positive;
        /// Single sign-on with OpenID Connect: the provider's issuer URL (its discovery document is
        /// `{issuer}/.well-known/openid-configuration`). SSO is on when this and `oidc_client_id` are set.
        /// LangOrch's `SSO_AUTHORITY` is read as the issuer.
        oidc_issuer: Option<String> = None, {
            env: &["CKP_OIDC_ISSUER", "SSO_AUTHORITY"], flag: Some("oidc-issuer"), value_name: "URL",
            expected: "an http(s) URL",
        } check http_url;
        /// The client id ckp is registered with at the OpenID provider.
        oidc_client_id: Option<String> = None, {
            env: &["CKP_OIDC_CLIENT_ID", "SSO_CLIENT_ID"], flag: Some("oidc-client-id"), value_name: "ID",
        };
        /// The client secret of `oidc_client_id` (none for a public client); sent as the provider's discovery
        /// document asks (`client_secret_basic`, else `client_secret_post`).
        oidc_client_secret: Option<Secret<String>> = None, { env: &["CKP_OIDC_CLIENT_SECRET", "SSO_CLIENT_SECRET"] };
        /// Where the provider sends the browser back (registered at the provider); default
        /// `{public_url}/api/auth/sso/callback`.
        oidc_redirect_uri: Option<String> = None, {
            env: &["CKP_OIDC_REDIRECT_URI", "SSO_REDIRECT_URI"], flag: Some("oidc-redirect-uri"), value_name: "URL",
            expected: "an http(s) URL",
        } check http_url;
        /// The scopes asked for, separated by spaces (`openid` is required).
        oidc_scopes: String = "openid profile email".into(), {
            env: &["CKP_OIDC_SCOPES"], value_name: "SCOPES", expected: "scopes separated by spaces, openid among them",
        } check openid_scope;
        /// The claim (of the ID token or the userinfo answer) whose values `oidc_role_mapping` maps to roles: a
        /// string or a list of strings. When the token has no such claim, `roles` is read (as LangOrch does).
        oidc_role_claim: String = "groups".into(), { env: &["CKP_OIDC_ROLE_CLAIM"], value_name: "CLAIM" }
            check not_blank;
        /// Roles from claim values, a JSON object `{"claim value": "role"}` (LangOrch's `SSO_ROLE_MAPPING`): the
        /// highest role among the user's values wins, at every sign-in.
        oidc_role_mapping: RoleMapping = RoleMapping::default(), {
            env: &["CKP_OIDC_ROLE_MAPPING", "SSO_ROLE_MAPPING"], value_name: "JSON",
        };
        /// The global role of a user none of whose claim values is mapped: a role name, or `none` (no global role;
        /// project grants given in ckp still apply).
        oidc_default_role: String = "viewer".into(), {
            env: &["CKP_OIDC_DEFAULT_ROLE"], value_name: "ROLE", expected: "a role name or none",
        } check role_or_none;
        /// Log line format: `text` (for a terminal) or `json` (one object per line, for collectors).
        log_format: LogFormat = LogFormat::Text,
            { env: &["CKP_LOG_FORMAT"], flag: Some("log-format"), value_name: "FORMAT", run: true };
        /// Which log lines are written, in `RUST_LOG` syntax (`info`, `ckp_server=debug,info`, ...).
        log: String = "info".into(), { env: &["CKP_LOG"], flag: Some("log"), value_name: "FILTER", run: true }
            check not_blank;
    }
    groups {
        /// Secrets providers (`[secrets]`, `[secrets.vault]`, `[secrets.aws]`, `[secrets.azure]`): the default
        /// provider, the cache, the key of ckp's own store, and each provider's address and credentials.
        secrets: SecretsSettings;
    }
    internal {
        /// Serve the HTTP API (false for `ckp worker`, which runs workers only); set by the command, not a setting.
        http: bool = true;
    }
}

impl ServeConfig {
    /// The limits on CKP documents (`max_procedure_bytes`, `max_procedure_nodes`).
    pub fn procedure_limits(&self) -> ckp_core::Limits {
        ckp_core::Limits { max_bytes: self.max_procedure_bytes, max_nodes: self.max_procedure_nodes }
    }

    /// The log filter, in `RUST_LOG` syntax.
    pub fn log_filter(&self) -> &str {
        &self.log
    }
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// For people at a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl SettingValue for LogFormat {
    const EXPECTED: &'static str = "text or json";
    fn from_text(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".into()),
        }
    }
    fn show(&self) -> Json {
        Json::from(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// A database URL: it may hold a password, so it prints without it (`postgres://user@host/db`).
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl(Secret<String>);

impl DbUrl {
    /// The URL to connect with.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL without its password.
    pub fn redacted(&self) -> String {
        let url = self.0.expose();
        match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let user = &url[scheme + 3..at];
                let user = user.split(':').next().unwrap_or_default();
                format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
            }
            _ => url.clone(),
        }
    }
}

impl From<String> for DbUrl {
    fn from(url: String) -> Self {
        DbUrl(Secret::new(url))
    }
}

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl SettingValue for DbUrl {
    const EXPECTED: &'static str = "a postgres:// URL";
    const SECRET: bool = true;
    fn from_text(text: &str) -> Result<Self, String> {
        let url = text.trim();
        match url.starts_with("postgres://") || url.starts_with("postgresql://") {
            true => Ok(DbUrl::from(url.to_owned())),
            false => Err("expected a postgres:// URL".into()),
        }
    }
    fn show(&self) -> Json {
        Json::from(self.redacted())
    }
}

fn openid_scope(v: &str) -> Result<(), String> {
    match v.split_whitespace().any(|s| s == "openid") {
        true => Ok(()),
        false => Err("the scopes must include openid".into()),
    }
}

fn positive<T: Default + PartialOrd>(v: &T) -> Result<(), String> {
    match *v > T::default() {
        true => Ok(()),
        false => Err("expected a positive integer".into()),
    }
}

fn trigger_consumers(v: &str) -> Result<(), String> {
    match v {
        "leader" | "every" => Ok(()),
        _ => Err("must be leader or every".into()),
    }
}

fn auth_mode(v: &str) -> Result<(), String> {
    match auth_enabled_mode(v) {
        Some(_) => Ok(()),
        None => Err("expected auto, on or off".into()),
    }
}

/// `auth` read: `Some(None)` for auto, `Some(Some(on))` for on/off (also LangOrch's true/false), None if invalid.
pub fn auth_enabled_mode(v: &str) -> Option<Option<bool>> {
    match v.trim().to_ascii_lowercase().as_str() {
        "auto" => Some(None),
        "on" | "true" | "1" | "yes" => Some(Some(true)),
        "off" | "false" | "0" | "no" => Some(Some(false)),
        _ => None,
    }
}

fn ldap_url(v: &Option<String>) -> Result<(), String> {
    match v.as_deref().map(str::trim) {
        Some(url) if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) => {
            Err("the URL must start with ldap:// or ldaps://".into())
        }
        _ => Ok(()),
    }
}

fn ldap_user_filter(v: &str) -> Result<(), String> {
    match v.contains("{username}") {
        true => crate::auth::ldap::check_filter(v),
        false => Err("the filter must contain {username}".into()),
    }
}

fn ldap_group_filter(v: &str) -> Result<(), String> {
    crate::auth::ldap::check_filter(v)
}

fn role_or_none(v: &str) -> Result<(), String> {
    match v.trim().eq_ignore_ascii_case("none") || crate::auth::Role::parse(v).is_some() {
        true => Ok(()),
        false => Err("expected viewer, approver, operator, manager, admin or none".into()),
    }
}

/// `ldap_role_mapping` and `oidc_role_mapping`: global roles by directory group (its `cn` or DN) or by claim value,
/// roles checked as they are read. A later source adds entries and replaces those of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleMapping(pub BTreeMap<String, crate::auth::Role>);

impl SettingValue for RoleMapping {
    const EXPECTED: &'static str = "roles by group or claim value (a JSON object in the environment)";
    fn from_text(text: &str) -> Result<Self, String> {
        match text.trim() {
            "" => Ok(RoleMapping::default()),
            t => Self::from_json(serde_json::from_str(t).map_err(|e| format!("expected a JSON object: {e}"))?),
        }
    }
    fn from_json(value: Json) -> Result<Self, String> {
        let Json::Object(entries) = value else { return Err("expected a table of roles by group".into()) };
        let mut mapping = BTreeMap::new();
        for (group, role) in entries {
            let role = role.as_str().and_then(crate::auth::Role::parse).ok_or_else(|| {
                format!("the role of {group:?} must be viewer, approver, operator, manager or admin, not {role}")
            })?;
            if group.trim().is_empty() {
                return Err("a group or claim value is empty".into());
            }
            mapping.insert(group, role);
        }
        Ok(RoleMapping(mapping))
    }
    fn layer(&mut self, over: Self) {
        self.0.extend(over.0);
    }
    fn show(&self) -> Json {
        self.0
            .iter()
            .map(|(group, role)| (group.clone(), Json::from(role.as_str())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

fn positive_number(v: &f64) -> Result<(), String> {
    match *v > 0.0 {
        true => Ok(()),
        false => Err("expected a positive number".into()),
    }
}

fn not_blank(v: &str) -> Result<(), String> {
    match v.trim().is_empty() {
        true => Err("must not be empty".into()),
        false => Ok(()),
    }
}

fn synchronous(v: &str) -> Result<(), String> {
    match v.to_ascii_lowercase().as_str() {
        "normal" | "full" => Ok(()),
        _ => Err("synchronous must be normal or full".into()),
    }
}

fn http_url(v: &Option<String>) -> Result<(), String> {
    match v.as_deref().map(str::trim) {
        Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            Err("the URL must start with http:// or https://".into())
        }
        _ => Ok(()),
    }
}

fn prices(v: &BTreeMap<String, ckp_engine::pricing::ModelPrice>) -> Result<(), String> {
    ckp_engine::pricing::PriceTable::with(v).map(drop)
}

fn egress(v: &[String]) -> Result<(), String> {
    ckp_connectors::egress::Egress::new(v).map(drop)
}

fn mcp_names(v: &BTreeMap<String, ckp_core::mcp::McpServer>) -> Result<(), String> {
    v.keys().try_for_each(|name| ckp_core::mcp::McpServer::check_name(name))
}

/// `--mcp NAME=URL|COMMAND` as the one-entry table the setting reads.
fn mcp_flag(text: &str) -> Result<Json, String> {
    let (name, server) = ckp_core::mcp::McpServer::from_flag(text)?;
    let mut one = serde_json::Map::new();
    one.insert(name, ckp_connectors::settings::mcp_server_json(&server, false));
    Ok(Json::Object(one))
}

/// Twice the cores this process may use, 4 to 16.
fn default_pool_size() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 2).clamp(4, 16)
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The table's default.
    Default,
    /// The TOML file.
    File(PathBuf),
    /// An environment variable (its name).
    Env(String),
    /// A flag (its name, without `--`).
    Flag(String),
}

impl Origin {
    /// `default`, `file`, `environment` or `flag`.
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::File(_) => "file",
            Origin::Env(_) => "environment",
            Origin::Flag(_) => "flag",
        }
    }

    /// The file, variable or flag (None for a default).
    pub fn detail(&self) -> Option<String> {
        match self {
            Origin::Default => None,
            Origin::File(p) => Some(p.display().to_string()),
            Origin::Env(name) => Some(name.clone()),
            Origin::Flag(name) => Some(format!("--{name}")),
        }
    }
}

/// A flag given on the command line: the setting's key, the flag's name and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagValue {
    /// The setting's key.
    pub key: &'static str,
    /// The flag's name without `--` (`no-workers` for the shortcut that sets `workers` to 0).
    pub flag: &'static str,
    /// The value as typed.
    pub text: String,
}

/// A configuration problem found at start.
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
    /// The file is not valid TOML.
    #[error("{path}: {message}")]
    Syntax {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file names a setting that does not exist (often a typo).
    #[error("{path}: unknown setting `{key}` (`ckp config` and docs/settings.md list them)")]
    Unknown {
        /// File.
        path: PathBuf,
        /// The dotted key.
        key: String,
    },
    /// A value does not fit its setting. `value` is `***` for credentials.
    #[error("{}: {message}", describe(key, value, origin))]
    Invalid {
        /// The dotted key.
        key: String,
        /// The value as given (masked for credentials).
        value: String,
        /// Where it came from.
        origin: Origin,
        /// What was expected.
        message: String,
    },
}

fn describe(key: &str, value: &str, origin: &Origin) -> String {
    match origin {
        Origin::Env(name) => format!("{name}={value} (environment)"),
        Origin::File(path) => format!("{key} = {value} (file {})", path.display()),
        Origin::Flag(flag) => format!("--{flag} {value} (flag)"),
        Origin::Default => format!("{key} = {value} (default)"),
    }
}

/// Every setting: its dotted key and declaration, in table order.
pub fn specs() -> Vec<(String, &'static Spec)> {
    let mut all = Vec::new();
    ServeConfig::default().visit("", &mut |key, spec, _| all.push((key.to_owned(), spec)));
    all
}

/// The effective settings and where each came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The settings.
    pub config: ServeConfig,
    /// The origin of each value not at its default, by dotted key.
    pub origins: BTreeMap<String, Origin>,
}

/// One printed setting of `ckp config`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Shown {
    /// The dotted key (TOML).
    pub key: String,
    /// The value (credentials as `***`).
    pub value: Json,
    /// `default`, `file`, `environment` or `flag`.
    pub source: &'static str,
    /// The file, variable or flag it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl Loaded {
    /// Every setting with its value (credentials masked) and origin, in table order.
    pub fn shown(&self) -> Vec<Shown> {
        let mut rows = Vec::new();
        self.config.visit("", &mut |key, _, value| {
            let origin = self.origins.get(key).unwrap_or(&Origin::Default);
            rows.push(Shown { key: key.to_owned(), value, source: origin.kind(), from: origin.detail() });
        });
        rows
    }
}

/// Layers defaults < the TOML `file` < the environment (read through `env`, once) < `flags`, validating every value
/// as it is read.
pub fn load(
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &[FlagValue],
) -> Result<Loaded, ConfigError> {
    let specs: BTreeMap<String, &'static Spec> = specs().into_iter().collect();
    let mut loaded = Loaded { config: ServeConfig::default(), origins: BTreeMap::new() };
    if let Some(path) = file {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| ConfigError::Syntax { path: path.to_owned(), message: e.to_string() })?;
        let json = serde_json::to_value(table)
            .map_err(|e| ConfigError::Syntax { path: path.to_owned(), message: e.to_string() })?;
        let Json::Object(entries) = json else { return Ok(loaded) };
        file_entries(&mut loaded, &specs, path, "", entries)?;
    }
    for (key, spec) in &specs {
        if let Some((name, text)) = spec.env.iter().find_map(|name| env(name).map(|v| (*name, v))) {
            loaded.put(key, spec, Input::Text(&text), Origin::Env(name.to_owned()), || format!("{text:?}"))?;
        }
    }
    for flag in flags {
        let Some(spec) = specs.get(flag.key) else {
            return Err(ConfigError::Invalid {
                key: flag.key.to_owned(),
                value: format!("{:?}", flag.text),
                origin: Origin::Flag(flag.flag.to_owned()),
                message: "no such setting".into(),
            });
        };
        let origin = Origin::Flag(flag.flag.to_owned());
        let quoted = || format!("{:?}", flag.text);
        let input = match spec.flag_entry {
            Some(entry) => Input::Json(entry(&flag.text).map_err(|message| ConfigError::Invalid {
                key: flag.key.to_owned(),
                value: mask(spec, quoted()),
                origin: origin.clone(),
                message,
            })?),
            None => Input::Text(&flag.text),
        };
        loaded.put(flag.key, spec, input, origin, quoted)?;
    }
    Ok(loaded)
}

/// The value as an error may quote it: `"***"` for a credential, `…` for a table that may hold tokens.
fn mask(spec: &Spec, shown: String) -> String {
    match (spec.secret, spec.echo) {
        (true, _) => "\"***\"".into(),
        (false, false) => "…".into(),
        (false, true) => shown,
    }
}

impl Loaded {
    fn put(
        &mut self,
        key: &str,
        spec: &Spec,
        input: Input<'_>,
        origin: Origin,
        value: impl FnOnce() -> String,
    ) -> Result<(), ConfigError> {
        match self.config.set(key, input) {
            Ok(()) => {
                self.origins.insert(key.to_owned(), origin);
                Ok(())
            }
            Err(SetError::Invalid { message, .. }) => {
                Err(ConfigError::Invalid { key: key.to_owned(), value: mask(spec, value()), origin, message })
            }
            Err(SetError::Unknown(key)) => {
                Err(ConfigError::Invalid { key, value: mask(spec, value()), origin, message: "no such setting".into() })
            }
        }
    }
}

/// Sets the file's values, descending into nested tables (`[secrets.vault]`) until a key names a setting.
fn file_entries(
    loaded: &mut Loaded,
    specs: &BTreeMap<String, &'static Spec>,
    path: &Path,
    prefix: &str,
    entries: serde_json::Map<String, Json>,
) -> Result<(), ConfigError> {
    for (k, v) in entries {
        let key = if prefix.is_empty() { k } else { format!("{prefix}.{k}") };
        match (specs.get(&key), v) {
            (Some(spec), v) => {
                let shown = v.to_string();
                loaded.put(&key, spec, Input::Json(v), Origin::File(path.to_owned()), || shown)?;
            }
            (None, Json::Object(inner)) if specs.keys().any(|s| s.starts_with(&format!("{key}."))) => {
                file_entries(loaded, specs, path, &key, inner)?;
            }
            (None, _) => return Err(ConfigError::Unknown { path: path.to_owned(), key }),
        }
    }
    Ok(())
}

/// `ckp config`'s text: one `key = value  # source (from)` line per setting, credentials masked.
pub fn render_text(rows: &[Shown]) -> String {
    let lines: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            let origin = match &r.from {
                Some(from) => format!("# {} ({from})", r.source),
                None => format!("# {}", r.source),
            };
            (format!("{} = {}", r.key, r.value), origin)
        })
        .collect();
    let width = lines.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0).min(60);
    lines.iter().map(|(l, o)| format!("{l:<width$}  {o}\n")).collect()
}

/// `docs/settings.md`, generated from the table (a test keeps the file in step with it).
pub fn markdown() -> String {
    let defaults = ServeConfig::default();
    let mut shown = BTreeMap::new();
    defaults.visit("", &mut |key, _, value| {
        shown.insert(key.to_owned(), value);
    });
    let mut out = String::from(
        "# Settings\n\n\
         <!-- Generated from crates/ckp-server/src/settings.rs and crates/ckp-connectors/src/secrets/settings.rs by \
         the test `docs_settings_md_is_up_to_date`; run it with CKP_UPDATE_DOCS=1 to rewrite this file. -->\n\n\
         `ckp serve`, `ckp worker` and `ckp config` read every setting below; `ckp run` reads them too (for its \
         LLM, MCP servers, secrets providers and logs) and takes the flags marked *run*; `ckp migrate` takes \
         those marked *migrate*, `ckp validate` those marked *validate* (with `--config`). Each value comes from, in increasing priority: the default, the TOML file given \
         with `--config` (a dotted key is a nested table: \
         `secrets.vault.vault_url` is `vault_url` in `[secrets.vault]`), the environment (the first variable \
         listed that is set), then the flag. `ckp config` prints the effective value of each and where it came \
         from, credentials masked; an invalid value stops the process at start with a message naming the setting \
         and its source.\n\n\
         | Key | Environment | Flag | Default | Description |\n|---|---|---|---|---|\n",
    );
    for (key, spec) in specs() {
        let env = spec.env.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ");
        let also: Vec<&str> = [(spec.run, "*run*"), (spec.migrate, "*migrate*"), (spec.validate, "*validate*")]
            .into_iter()
            .filter_map(|(taken, name)| taken.then_some(name))
            .collect();
        let flag = match (spec.flag, also.is_empty()) {
            (Some(f), true) => format!("`--{f} {}`", spec.value_name),
            (Some(f), false) => format!("`--{f} {}` ({})", spec.value_name, also.join(", ")),
            (None, _) => String::new(),
        };
        let default = match shown.get(&key) {
            Some(Json::Null) | None => "—".to_owned(),
            Some(_) if key == "db_pool_size" => "2 × cores, 4 to 16".to_owned(),
            Some(v) => format!("`{v}`"),
        };
        let mut text = spec.text();
        if spec.secret {
            text.push_str(" *A credential: never printed.*");
        }
        out.push_str(&format!(
            "| `{key}` | {env} | {flag} | {default} | {} ({}) |\n",
            text.replace('|', "\\|"),
            spec.expected
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{ServeConfig, load, specs};

    #[test]
    fn every_setting_has_its_ckp_variable_and_top_level_flags_match_their_keys() {
        for spec in ServeConfig::SPECS {
            assert_eq!(
                spec.env.first().copied(),
                Some(format!("CKP_{}", spec.key.to_uppercase()).as_str()),
                "{}",
                spec.key
            );
            if let Some(flag) = spec.flag.filter(|_| spec.flag_entry.is_none()) {
                assert_eq!(flag, spec.key.replace('_', "-"), "the flag of {}", spec.key);
            }
            assert!(!spec.summary().is_empty(), "{} has help text", spec.key);
        }
        let all = specs();
        let mut keys: Vec<_> = all.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), all.len(), "keys are unique");
    }

    #[test]
    fn credentials_from_the_environment_never_reach_debug_output() {
        let env = |k: &str| {
            match k {
                "CKP_LLM_API_KEY" => Some("sk-d3bug"),
                "CKP_CALLBACK_SECRET" => Some("cb-d3bug"),
                "CKP_DATABASE_URL" => Some("postgres://u:pw-d3bug@h/db"),
                "CKP_SECRETS_ENCRYPTION_KEY" => Some("key-d3bug"),
                "CKP_LDAP_BIND_PASSWORD" => Some("ldap-d3bug"),
                "VAULT_TOKEN" => Some("vault-d3bug"),
                "AWS_SECRET_ACCESS_KEY" => Some("aws-d3bug"),
                "AZURE_CLIENT_SECRET" => Some("azure-d3bug"),
                "SSO_CLIENT_SECRET" => Some("sso-d3bug"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let loaded = load(None, &env, &[]).expect("valid");
        let text = format!("{loaded:?} {:?}", loaded.shown());
        assert!(!text.contains("d3bug"), "{text}");
        assert_eq!(loaded.config.database_url.as_ref().map(super::DbUrl::expose), Some("postgres://u:pw-d3bug@h/db"));
        assert_eq!(ckp_connectors::settings::exposed(&loaded.config.oidc_client_secret), Some("sso-d3bug"));
    }

    #[test]
    fn langorchs_sso_variables_configure_single_sign_on_and_bad_roles_are_refused() {
        use crate::auth::Role;
        let env = |k: &str| {
            match k {
                "SSO_AUTHORITY" => Some("https://login.example.com/tenant/v2.0"),
                "SSO_CLIENT_ID" => Some("ckp"),
                "SSO_ROLE_MAPPING" => Some(r#"{"g-ops": "operator", "g-admins": "Admin"}"#),
                _ => None,
            }
            .map(str::to_owned)
        };
        let config = load(None, &env, &[]).expect("valid").config;
        assert_eq!(config.oidc_issuer.as_deref(), Some("https://login.example.com/tenant/v2.0"));
        assert_eq!(config.oidc_client_id.as_deref(), Some("ckp"));
        assert_eq!(config.oidc_role_mapping.0.get("g-admins"), Some(&Role::Admin));
        assert_eq!(config.oidc_role_mapping.0.get("g-ops"), Some(&Role::Operator));
        for (name, value) in [
            ("CKP_OIDC_ROLE_MAPPING", r#"{"g": "root"}"#),
            ("CKP_OIDC_ROLE_MAPPING", "[1]"),
            ("CKP_OIDC_DEFAULT_ROLE", "superuser"),
            ("CKP_OIDC_SCOPES", "profile email"),
            ("CKP_OIDC_ISSUER", "login.example.com"),
        ] {
            let bad = |k: &str| (k == name).then(|| value.to_owned());
            let err = load(None, &bad, &[]).expect_err(value).to_string();
            assert!(err.starts_with(name), "{err}");
        }
        let none = |k: &str| (k == "CKP_OIDC_DEFAULT_ROLE").then(|| "none".to_owned());
        assert_eq!(load(None, &none, &[]).expect("valid").config.oidc_default_role, "none");
    }

    #[test]
    fn ldap_settings_are_checked_as_they_are_read() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(name, _)| *name == k).map(|(_, v)| (*v).to_owned())
        };
        let ok = load(
            None,
            &env(&[
                ("CKP_LDAP_URL", "ldaps://ldap.example.org"),
                ("CKP_LDAP_ROLE_MAPPING", r#"{"ckp-operators": "Operator", "cn=admins,dc=example,dc=org": "admin"}"#),
                ("CKP_LDAP_DEFAULT_ROLE", "none"),
            ]),
            &[],
        )
        .expect("valid");
        let mapping = &ok.config.ldap_role_mapping.0;
        assert_eq!(mapping.get("ckp-operators"), Some(&crate::auth::Role::Operator));
        assert_eq!(mapping.get("cn=admins,dc=example,dc=org"), Some(&crate::auth::Role::Admin));
        for (name, value) in [
            ("CKP_LDAP_URL", "http://ldap.example.org"),
            ("CKP_LDAP_ROLE_MAPPING", r#"{"ckp-operators": "root"}"#),
            ("CKP_LDAP_ROLE_MAPPING", r#"["operator"]"#),
            ("CKP_LDAP_DEFAULT_ROLE", "superuser"),
            ("CKP_LDAP_USER_FILTER", "(uid=alice)"),
            ("CKP_LDAP_USER_FILTER", "(uid={username}"),
            ("CKP_LDAP_GROUP_FILTER", "member={dn})"),
        ] {
            let lookup = move |k: &str| (k == name).then(|| value.to_owned());
            let err = load(None, &lookup, &[]).map(drop).expect_err(value);
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
