//! `ckp explain FILE` and `ckp graph FILE`: compile, then describe the procedure.

use std::io::Write;
use std::path::Path;

use super::{EXIT_ERRORS, EXIT_UNREADABLE, print_human, read_text};
use crate::{GraphFormat, OutputFormat};
use ckp_core::{Compilation, Procedure};

/// Compiles a file; on failure prints why and returns the exit status.
fn compile_file(path: &Path, err: &mut dyn Write) -> std::io::Result<Result<(Procedure, Compilation), u8>> {
    let text = match read_text(path) {
        Ok(t) => t,
        Err(e) => {
            writeln!(err, "ckp: {e}")?;
            return Ok(Err(EXIT_UNREADABLE));
        }
    };
    let mut compilation = ckp_core::compile(&text);
    match compilation.procedure.take() {
        Some(p) => Ok(Ok((p, compilation))),
        None => {
            print_human(err, &path.display().to_string(), &compilation.diagnostics)?;
            writeln!(err, "ckp: {} has errors; fix them first (`ckp validate` lists them)", path.display())?;
            Ok(Err(EXIT_ERRORS))
        }
    }
}

/// `ckp explain`.
pub fn run(path: &Path, format: OutputFormat, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<u8> {
    let (procedure, compilation) = match compile_file(path, err)? {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    let explanation = ckp_core::explain::explain(&procedure, &compilation.uses);
    match format {
        OutputFormat::Human => write!(out, "{explanation}")?,
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &explanation)?;
            writeln!(out)?;
        }
    }
    Ok(0)
}

/// `ckp graph`.
pub fn graph(path: &Path, format: GraphFormat, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<u8> {
    let (procedure, _) = match compile_file(path, err)? {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    let format = match format {
        GraphFormat::Mermaid => ckp_core::graph::GraphFormat::Mermaid,
        GraphFormat::Dot => ckp_core::graph::GraphFormat::Dot,
    };
    write!(out, "{}", ckp_core::graph::render(&procedure, format))?;
    Ok(0)
}
