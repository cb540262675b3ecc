//! One module per subcommand, plus the pieces they share (reading a CKP file, printing diagnostics).

pub mod admin;
pub mod bench;
pub mod config;
pub mod explain;
pub mod run;
pub mod serve;
pub mod settings;
pub mod validate;

use std::io::Write;
use std::path::Path;

use ckp_core::Diagnostic;

/// Exit status when an input cannot be read.
pub const EXIT_UNREADABLE: u8 = 2;
/// Exit status when an input has errors.
pub const EXIT_ERRORS: u8 = 1;

/// Reads a file as UTF-8 text, or explains why not.
pub fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        format!("{}: not UTF-8 text (byte {}): a CKP file is JSON text", path.display(), e.utf8_error().valid_up_to())
    })
}

/// Prints diagnostics the way rustc does: `file:line:col: severity[code]: message`, then the JSON pointer.
pub fn print_human(out: &mut dyn Write, file: &str, diags: &[Diagnostic]) -> std::io::Result<()> {
    for d in diags {
        writeln!(out, "{file}:{}:{}: {}[{}]: {}", d.line, d.column, d.severity.as_str(), d.code, d.message)?;
        let pointer = if d.pointer.is_empty() { "(document root)" } else { d.pointer.as_str() };
        writeln!(out, "    at {pointer}")?;
    }
    Ok(())
}

/// `ckp migrate`: opening the store applies every pending migration (SQLite file, or PostgreSQL with
/// `database_url`).
pub fn migrate(db: &Path, database_url: Option<&str>, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<u8> {
    let result = match database_url {
        Some(url) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(ckp_store::PgStore::migrate(url)).map(|v| (redacted_url(url), v))
        }
        None => ckp_store::SqliteStore::open(db, ckp_store::SqliteOptions::default())
            .map(|_| (db.display().to_string(), ckp_store::SqliteStore::SCHEMA_VERSION)),
    };
    match result {
        Ok((label, version)) => {
            writeln!(out, "{label}: schema at version {version}")?;
            Ok(0)
        }
        Err(e) => {
            writeln!(err, "ckp migrate: {e}")?;
            Ok(EXIT_ERRORS)
        }
    }
}

/// A database URL without its password, for messages.
pub fn redacted_url(url: &str) -> String {
    ckp_server::settings::DbUrl::from(url.to_owned()).redacted()
}
