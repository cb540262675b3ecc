//! `ckp serve` and `ckp worker`: the REST API, SSE and embedded workers on the SQLite store, or any mix of API and
//! worker processes on one PostgreSQL database. Settings come from defaults, then the TOML file (`--config`), then
//! `CKP_*` environment variables (read here, once), then flags: the table is `ckp_server::settings`.

use std::io::Write;
use std::path::PathBuf;

use ckp_server::serve::{ServeConfig, start};
use ckp_server::settings::{FlagValue, Loaded};

/// Options of `ckp serve`, `ckp worker` and `ckp config`: the TOML file, and a flag for each setting of the table
/// that has one (`ckp_server::settings`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML configuration file (docs/settings.md lists its keys; `ckp config` prints the effective values).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve the API only; other processes (`ckp worker`) execute the runs (sets `workers` to 0). Needs
    /// --database-url.
    #[arg(long)]
    pub no_workers: bool,
    /// The settings' flags.
    #[command(flatten)]
    pub settings: super::settings::SettingFlags<{ super::settings::ALL }>,
}

/// What the process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `ckp serve`: the API, and workers unless `--no-workers`.
    Serve,
    /// `ckp worker`: workers only.
    Worker,
}

/// The effective settings and their origins: defaults < `--config` file < `env` < flags.
pub fn load(args: &ServeArgs, env: impl Fn(&str) -> Option<String>) -> Result<Loaded, String> {
    let mut flags = args.settings.0.clone();
    if args.no_workers {
        flags.push(FlagValue { key: "workers", flag: "no-workers", text: "0".into() });
    }
    ckp_server::settings::load(args.config.as_deref(), &env, &flags).map_err(|e| e.to_string())
}

/// The effective configuration.
pub fn config(args: &ServeArgs, env: impl Fn(&str) -> Option<String>) -> Result<ServeConfig, String> {
    load(args, env).map(|l| l.config)
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
    if let Err(e) = crate::telemetry::init(config.log_format, config.log_filter()) {
        writeln!(err, "{name}: {e}")?;
        return Ok(super::EXIT_UNREADABLE);
    }
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
