//! The `ckp` command line: subcommands, their options, and how their results are printed.
//!
//! `main.rs` only parses arguments and calls [`run`]; every subcommand lives in `cmd/` and writes to the writers
//! it is given, so tests drive the same code the binary runs.

pub mod cmd;
pub mod telemetry;
pub mod trim;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// ckp — a durable orchestrator for CKP workflows.
#[derive(Debug, Parser)]
#[command(name = "ckp", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile CKP files and report every error and warning with its JSON pointer and line:column.
    ///
    /// Exit status: 0 when no file has errors, 1 when some file has errors, 2 when a file cannot be read.
    Validate {
        /// CKP files to check.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<std::path::PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
        /// A TOML configuration file (its `max_procedure_bytes` and `max_procedure_nodes`, the server's limits).
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// The limits' flags.
        #[command(flatten)]
        settings: cmd::settings::SettingFlags<{ cmd::settings::VALIDATE }>,
    },
    /// Static analysis of a procedure: start, terminals, nodes, edges, external actions, LLM calls, approvals,
    /// variables read and written, unreachable nodes.
    Explain {
        /// The CKP file.
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
    },
    /// Run a procedure locally with a live timeline; exit 0 only when it completes.
    ///
    /// External steps need an executor: without agents configured they fail with a clear message unless
    /// `--mock-external` is given.
    Run(cmd::run::RunArgs),
    /// Serve the REST API, SSE streams and embedded workers on the SQLite database (default ./ckp-data/ckp.db), or
    /// on PostgreSQL with --database-url (then --no-workers serves the API only).
    Serve(cmd::serve::ServeArgs),
    /// Print the effective settings (the same `--config` file, environment and flags as `ckp serve`) and where each
    /// value came from: default, file, environment or flag. Credentials print as `***`.
    Config(cmd::config::ConfigArgs),
    /// Execute runs of a shared PostgreSQL database (workers only, no HTTP API); start as many as needed.
    Worker(cmd::serve::ServeArgs),
    /// Load-test a running server over HTTP: N runs at concurrency C; throughput, latency percentiles, server CPU
    /// and memory.
    Bench(cmd::bench::BenchArgs),
    /// Users and API keys from the command line (the first administrator; when no one can sign in).
    Admin {
        /// A TOML configuration file (its `data_dir`, `db` and `database_url`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<std::path::PathBuf>,
        /// The database settings' flags.
        #[command(flatten)]
        settings: cmd::settings::SettingFlags<{ cmd::settings::MIGRATE }>,
        /// What to do.
        #[command(subcommand)]
        command: cmd::admin::AdminCommand,
    },
    /// Create the database or bring its schema up to date (append-only migrations).
    Migrate {
        /// A TOML configuration file (its `data_dir`, `db` and `database_url`).
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// The database settings' flags.
        #[command(flatten)]
        settings: cmd::settings::SettingFlags<{ cmd::settings::MIGRATE }>,
    },
    /// Print the procedure graph as Mermaid or Graphviz DOT.
    Graph {
        /// The CKP file.
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
        /// Graph language.
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
}

/// Output formats of validate and explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people (rustc-like diagnostics).
    Human,
    /// For programs.
    Json,
}

/// Graph languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// Runs a parsed command line against stdout and stderr.
pub fn run(cli: Cli) -> ExitCode {
    let stdout = std::io::stdout();
    // Not locked for the whole command: log lines are written to stderr from every thread.
    let code = execute(cli, &mut stdout.lock(), &mut std::io::stderr());
    ExitCode::from(code)
}

/// Runs a parsed command line; returns the exit status.
pub fn execute(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let result = match cli.command {
        Command::Validate { files, format, config, settings } => {
            match ckp_server::settings::load(config.as_deref(), &|k| std::env::var(k).ok(), &settings.0) {
                Ok(l) => cmd::validate::run(&files, format, l.config.procedure_limits(), out, err),
                Err(e) => writeln!(err, "ckp validate: {e}").map(|()| cmd::EXIT_UNREADABLE),
            }
        }
        Command::Explain { file, format } => cmd::explain::run(&file, format, out, err),
        Command::Graph { file, format } => cmd::explain::graph(&file, format, out, err),
        Command::Run(args) => cmd::run::run(&args, out, err),
        Command::Migrate { config, settings } => {
            match ckp_server::settings::load(config.as_deref(), &|k| std::env::var(k).ok(), &settings.0) {
                Ok(l) => {
                    cmd::migrate(&l.config.db_path(), l.config.database_url.as_ref().map(|u| u.expose()), out, err)
                }
                Err(e) => writeln!(err, "ckp migrate: {e}").map(|()| cmd::EXIT_UNREADABLE),
            }
        }
        Command::Serve(args) => cmd::serve::run(&args, cmd::serve::Role::Serve, out, err),
        Command::Admin { config, settings, command } => {
            match ckp_server::settings::load(config.as_deref(), &|k| std::env::var(k).ok(), &settings.0) {
                Ok(l) => match cmd::admin::open_store(&l.config) {
                    Ok(store) => cmd::admin::run(store, command, &mut std::io::stdin().lock(), out, err),
                    Err(e) => writeln!(err, "ckp admin: {e}").map(|()| cmd::EXIT_UNREADABLE),
                },
                Err(e) => writeln!(err, "ckp admin: {e}").map(|()| cmd::EXIT_UNREADABLE),
            }
        }
        Command::Config(args) => cmd::config::run(&args, |k| std::env::var(k).ok(), out, err),
        Command::Worker(args) => cmd::serve::run(&args, cmd::serve::Role::Worker, out, err),
        Command::Bench(args) => cmd::bench::run(&args, out, err),
    };
    result.unwrap_or_else(|e| {
        let _ = writeln!(err, "ckp: {e}");
        2
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
