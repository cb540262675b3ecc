//! Logs: the process's one `tracing` subscriber, set up at start by `ckp serve`, `ckp worker` and `ckp run` from
//! their `log_format` and `log` settings.
//!
//! Lines go to stderr (stdout belongs to the commands' own output, `ckp run`'s timeline), as text for a terminal
//! or one JSON object per line for a log pipeline. The filter uses `RUST_LOG` syntax (`info`,
//! `ckp_server=debug,info`). Fields are flat and named alike everywhere (`run_id`, `job_id`, `procedure_id`,
//! `node_id`, `step_id`, `agent`, `attempt`, `error_id`), so a pipeline can search by them.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written: the `log_format` setting (`ckp_server::settings`), with the filter `log`.
pub use ckp_server::settings::LogFormat;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("log filter {filter:?} is not valid (RUST_LOG syntax, e.g. `info` or `ckp_server=debug,info`): {source}")]
pub struct FilterError {
    filter: String,
    #[source]
    source: tracing_subscriber::filter::ParseError,
}

/// Installs the subscriber. A second call in one process (tests run commands in process) keeps the first.
pub fn init(format: LogFormat, filter: &str) -> Result<(), FilterError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|source| FilterError { filter: filter.to_owned(), source })?;
    let builder = tracing_subscriber::fmt().with_env_filter(env_filter).with_writer(std::io::stderr);
    // Already set (a second command in one test process): the first subscriber stays. In JSON, the fields of the
    // span a line was logged in (a worker's `run` span: `run_id`, `job_id`) are under `span`.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_filter_is_refused_with_the_syntax_to_use() {
        let e = init(LogFormat::Text, "ckp_server=loud").expect_err("refused");
        assert!(e.to_string().contains("RUST_LOG syntax"), "{e}");
    }
}
