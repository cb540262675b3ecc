//! Errors: the taxonomy every step and node error belongs to (CKP.md A.2.10), the error that fails a run, and
//! the engine's own failures (journal, missing procedure). Handlers match on [`ErrorKind`].

use ckp_core::procedure::ErrorMatch;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use ckp_core::procedure::ErrorKind;

/// The `code` of a step error that the server's policy raised (a destination the egress policy closes): the same
/// call would be refused again, so the step's retries are not spent on it (error handlers still apply).
pub const REFUSED: &str = "refused";

/// An error raised by a step or an effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    /// Its kind.
    pub kind: ErrorKind,
    /// What happened, for people.
    pub message: String,
    /// The HTTP status, for HTTP and agent errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// An error code reported by the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl StepError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StepError { kind, message: message.into(), http_status: None, code: None }
    }

    /// Whether the server's policy refused the call ([`REFUSED`]): retrying cannot help.
    pub fn is_refused(&self) -> bool {
        self.code.as_deref() == Some(REFUSED)
    }

    /// Whether an error handler's `error_type` matches this error.
    pub fn matches(&self, m: &ErrorMatch) -> bool {
        match m {
            ErrorMatch::Any => true,
            ErrorMatch::Kind(kind) => self.kind == *kind,
            ErrorMatch::MessageContains(text) => self.message.contains(text.as_str()),
        }
    }
}

/// The error that fails a run (also `vars.last_error` on the `global_config.on_failure` path, A.2.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// What happened.
    pub message: String,
    /// The node where it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The step where it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    /// The error kind (`type` in JSON).
    #[serde(rename = "type")]
    pub kind: ErrorKind,
}

impl RunError {
    /// A run error at a node.
    pub fn at(node_id: &str, step_id: Option<&str>, e: &StepError) -> Self {
        RunError {
            message: e.message.clone(),
            node_id: Some(node_id.to_owned()),
            step_id: step_id.filter(|s| !s.is_empty()).map(str::to_owned),
            kind: e.kind,
        }
    }

    /// The JSON form used in events and `vars.last_error`.
    pub fn to_value(&self) -> Value {
        json!({"message": self.message, "node_id": self.node_id, "step_id": self.step_id, "type": self.kind.as_str()})
    }
}

/// Why the engine itself could not go on (as opposed to a run failing).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The journal refused or failed a read or a commit; the run stays at its last committed checkpoint. The
    /// storage's error is kept whole, so the log shows its cause chain.
    #[error("journal: {0}")]
    Journal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No checkpoint exists for this run.
    #[error("run {0} not found")]
    RunNotFound(String),
    /// The run's checkpoint was written by an incompatible engine.
    #[error("run {run_id}: checkpoint format {found} is not supported (this engine reads format {supported})")]
    CheckpointFormat {
        /// The run.
        run_id: String,
        /// Format found.
        found: u32,
        /// Format supported.
        supported: u32,
    },
    /// The operation does not apply to the run in its current state.
    #[error("run {run_id}: {message}")]
    InvalidState {
        /// The run.
        run_id: String,
        /// Why.
        message: String,
    },
}

/// Displays an error with its whole cause chain (`outer: cause: root cause`), for the one log line that reports
/// an error where it is handled. A cause whose text its parent already shows (`"journal: {0}"` wrapping
/// `#[source]`) is not repeated.
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !shown.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            shown = text;
            next = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod chain_tests {
    use super::ErrorChain;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("reading the checkpoint")]
        Read(#[source] std::io::Error),
        #[error("journal: {0}")]
        Shown(#[source] std::io::Error),
    }

    #[test]
    fn every_cause_is_shown_once() {
        let e = Outer::Read(std::io::Error::other("disk I/O error"));
        assert_eq!(ErrorChain(&e).to_string(), "reading the checkpoint: disk I/O error");
        let e = Outer::Shown(std::io::Error::other("disk I/O error"));
        assert_eq!(ErrorChain(&e).to_string(), "journal: disk I/O error");
    }
}
