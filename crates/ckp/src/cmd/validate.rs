//! `ckp validate FILE...`: compile each file and report its diagnostics.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::{EXIT_ERRORS, EXIT_UNREADABLE, print_human, read_text};
use crate::OutputFormat;
use ckp_core::{Diagnostic, Limits};

#[derive(Serialize)]
struct FileReport<'a> {
    file: String,
    ok: bool,
    errors: usize,
    warnings: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    unreadable: Option<String>,
    diagnostics: &'a [Diagnostic],
}

/// Validates every file within `limits` (the server's, so a file that passes here is not refused as too large at
/// import); exit status 2 if one is unreadable, else 1 if one has errors, else 0.
pub fn run(
    files: &[PathBuf],
    format: OutputFormat,
    limits: Limits,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let mut status = 0u8;
    let mut reports = Vec::new();
    let mut all_diags = Vec::new();
    for path in files {
        let name = path.display().to_string();
        match read_text(path) {
            Err(e) => {
                status = EXIT_UNREADABLE;
                all_diags.push((name, Vec::new(), Some(e)));
            }
            Ok(text) => {
                let compilation = ckp_core::compile_with(&text, limits);
                if compilation.has_errors() && status == 0 {
                    status = EXIT_ERRORS;
                }
                all_diags.push((name, compilation.diagnostics, None));
            }
        }
    }
    for (name, diags, unreadable) in &all_diags {
        let errors = diags.iter().filter(|d| d.is_error()).count();
        match format {
            OutputFormat::Human => {
                if let Some(e) = unreadable {
                    writeln!(err, "ckp: {e}")?;
                    continue;
                }
                print_human(out, name, diags)?;
                let warnings = diags.len() - errors;
                match (errors, warnings) {
                    (0, 0) => writeln!(out, "{name}: ok")?,
                    (0, w) => writeln!(out, "{name}: ok, {w} warning{}", plural(w))?,
                    (e, w) => writeln!(out, "{name}: {e} error{}, {w} warning{}", plural(e), plural(w))?,
                }
            }
            OutputFormat::Json => reports.push(FileReport {
                file: name.clone(),
                ok: unreadable.is_none() && errors == 0,
                errors,
                warnings: diags.len() - errors,
                unreadable: unreadable.clone(),
                diagnostics: diags,
            }),
        }
    }
    if format == OutputFormat::Json {
        serde_json::to_writer_pretty(&mut *out, &reports)?;
        writeln!(out)?;
    }
    Ok(status)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
