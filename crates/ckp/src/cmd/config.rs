//! `ckp config`: the effective settings of `ckp serve` given the same `--config` file, environment and flags, each
//! with where its value came from (default, file, environment, flag); credentials print as `***`.

use std::io::Write;

use super::serve::ServeArgs;

/// How `ckp config` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ConfigFormat {
    /// `key = value  # source (from)` lines.
    #[default]
    Text,
    /// A JSON array of `{key, value, source, from}`.
    Json,
}

/// Options of `ckp config`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ConfigFormat::Text)]
    pub format: ConfigFormat,
    /// The settings as `ckp serve` takes them.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Prints the settings `env` and the arguments give; exit status 2 with the error when one is invalid.
pub fn run(
    args: &ConfigArgs,
    env: impl Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let loaded = match super::serve::load(&args.serve, env) {
        Ok(l) => l,
        Err(e) => {
            writeln!(err, "ckp config: {e}")?;
            return Ok(super::EXIT_UNREADABLE);
        }
    };
    let rows = loaded.shown();
    match args.format {
        ConfigFormat::Text => write!(out, "{}", ckp_server::settings::render_text(&rows))?,
        ConfigFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            writeln!(out)?;
        }
    }
    Ok(0)
}
