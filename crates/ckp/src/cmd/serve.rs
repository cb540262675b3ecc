//! `ckp serve` and `ckp worker`: the REST API, SSE and embedded workers on the SQLite store, or any mix of API and
//! worker processes on one PostgreSQL database. Settings come from defaults, then the TOML file (`--config`), then
//! `CKP_*` environment variables, then flags.

use std::io::Write;
use std::path::PathBuf;

use ckp_server::serve::{ServeConfig, start};

/// Options of `ckp serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML configuration file (keys: bind, data_dir, db, workers, max_body_bytes, synchronous, lease_ms,
    /// shutdown_grace_ms, ..., mcp_base_url, and `[mcp_servers.NAME]` tables; see the README).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:8000].
    #[arg(long, value_name = "ADDR:PORT")]
    pub bind: Option<String>,
    /// Data directory [default: ./ckp-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The SQLite database file [default: <data-dir>/ckp.db].
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Embedded workers: runs executed concurrently [default: 8].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Largest request body in bytes [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// SQLite durability: normal (survives process crashes) or full (survives power loss) [default: normal].
    #[arg(long, value_name = "LEVEL")]
    pub synchronous: Option<String>,
    /// PostgreSQL instead of the SQLite file (`postgres://user@host:port/db`), shared by every ckp process.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Most PostgreSQL connections of this process [default: 16].
    #[arg(long, value_name = "N")]
    pub db_pool_size: Option<usize>,
    /// Serve the API only; other processes (`ckp worker`) execute the runs. Needs --database-url.
    #[arg(long)]
    pub no_workers: bool,
    /// An MCP server for `mcp:NAME/<tool>` steps: `NAME=URL` (streamable HTTP) or `NAME='COMMAND ARGS...'` (stdio).
    /// Repeatable; replaces a server of the same name from the file or `CKP_MCP_SERVERS`.
    #[arg(long = "mcp", value_name = "NAME=URL|COMMAND")]
    pub mcp: Vec<String>,
    /// LangOrch's legacy MCP fallback: `POST {URL}/tools/{action}` for steps whose agent channel has no agent.
    #[arg(long, value_name = "URL")]
    pub mcp_base_url: Option<String>,
}

/// What the process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `ckp serve`: the API, and workers unless `--no-workers`.
    Serve,
    /// `ckp worker`: workers only.
    Worker,
}

/// The effective configuration.
pub fn config(args: &ServeArgs, env: impl Fn(&str) -> Option<String>) -> Result<ServeConfig, String> {
    let mut c = match &args.config {
        Some(path) => ServeConfig::from_file(path).map_err(|e| e.to_string())?,
        None => ServeConfig::default(),
    };
    c.apply_env(env).map_err(|e| e.to_string())?;
    if let Some(v) = &args.bind {
        c.bind.clone_from(v);
    }
    if let Some(v) = &args.data_dir {
        c.data_dir.clone_from(v);
    }
    if let Some(v) = &args.db {
        c.db = Some(v.clone());
    }
    if let Some(v) = args.workers {
        c.workers = v;
    }
    if let Some(v) = args.max_body_bytes {
        c.max_body_bytes = v;
    }
    if let Some(v) = &args.synchronous {
        c.synchronous.clone_from(v);
    }
    if let Some(v) = &args.database_url {
        c.database_url = Some(v.clone());
    }
    if let Some(v) = args.db_pool_size {
        c.db_pool_size = v;
    }
    if args.no_workers {
        c.workers = 0;
    }
    for flag in &args.mcp {
        let (name, server) = ckp_core::mcp::McpServer::from_flag(flag).map_err(|e| format!("--mcp {e}"))?;
        c.mcp_servers.insert(name, server);
    }
    if let Some(v) = &args.mcp_base_url {
        c.mcp_base_url = Some(v.clone());
    }
    Ok(c)
}

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully.
pub fn run(args: &ServeArgs, role: Role, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<u8> {
    let name = match role {
        Role::Serve => "ckp serve",
        Role::Worker => "ckp worker",
    };
    let config = match config(args, |k| std::env::var(k).ok()) {
        Ok(mut c) => {
            c.http = role == Role::Serve;
            c
        }
        Err(e) => {
            writeln!(err, "{name}: {e}")?;
            return Ok(super::EXIT_UNREADABLE);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_unpark(crate::trim::on_unpark)
        .on_thread_park(crate::trim::on_park)
        .build()?;
    let threads = runtime.metrics().num_workers();
    runtime.spawn(crate::trim::watch(threads));
    runtime.block_on(async {
        let server = match start(&config).await {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(err, "{name}: {e}");
                return Ok(super::EXIT_UNREADABLE);
            }
        };
        let listening = match server.addr {
            Some(addr) => format!("listening on http://{addr}"),
            None => "executing runs".to_owned(),
        };
        let _ = writeln!(out, "{name}: {listening} (database {}, {} workers)", config.database_label(), config.workers);
        let _ = out.flush();
        shutdown_signal().await;
        let _ = writeln!(out, "{name}: shutting down");
        server.shutdown().await;
        Ok(0)
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
