//! The statuses that cross the store boundary, as enums: each name a backend writes, a filter matches and the API
//! shows is written once here (`as_str` and `FromStr`), and serde uses the same names, so the API's JSON is the
//! text the database holds. A run's status is the engine's [`RunStatus`] (LangOrch's names).

use std::fmt;
use std::str::FromStr;

pub use ckp_engine::journal::{RunStatus, UnknownRunStatus};

/// A text that names no status of its kind (a query filter, a row written by something else than ckp).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not {kind}")]
pub struct UnknownStatus {
    /// What was expected (`a job state`, ...).
    pub kind: &'static str,
    /// The text given.
    pub value: String,
}

/// Writes `as_str`, `Display`, `FromStr` and string serde for a status enum whose variants are all plain names.
macro_rules! named_status {
    ($ty:ident, $kind:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The stored and shown name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl FromStr for $ty {
            type Err = UnknownStatus;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(UnknownStatus { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Where a run's job is in the queue (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    /// Waiting to be claimed (from its `available_at`).
    Queued,
    /// Leased by a worker.
    Running,
    /// Released: the run ended or waits for something the queue does not time.
    Done,
}

named_status!(JobState, "a job state", { Queued => "queued", Running => "running", Done => "done" });

/// A procedure version's lifecycle status (the CKP document's `status`; draft when it says nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProcedureStatus {
    /// Runnable.
    Active,
    /// Runnable, not yet released (the default).
    #[default]
    Draft,
    /// Reviewed.
    Approved,
    /// Switched off by its authors.
    Inactive,
    /// Kept for history; runs cannot start.
    Deprecated,
    /// Kept for history; runs cannot start.
    Archived,
}

named_status!(ProcedureStatus, "a procedure status", {
    Active => "active",
    Draft => "draft",
    Approved => "approved",
    Inactive => "inactive",
    Deprecated => "deprecated",
    Archived => "archived",
});

impl ProcedureStatus {
    /// Whether runs of the version may start.
    pub fn is_runnable(self) -> bool {
        !matches!(self, ProcedureStatus::Deprecated | ProcedureStatus::Archived)
    }
}

/// A registered agent's status: dispatch sends steps to online agents only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AgentStatus {
    /// Receives steps (a successful health check, or set by hand).
    #[default]
    Online,
    /// Receives none (failed health checks, or set by hand).
    Offline,
}

named_status!(AgentStatus, "an agent status", { Online => "online", Offline => "offline" });

/// An approval's status: pending until decided, then the decision (LangOrch writes the option chosen, or the text
/// answered, as the status).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ApprovalStatus {
    /// Waiting for a decision.
    Pending,
    /// Approved.
    Approved,
    /// Rejected.
    Rejected,
    /// Expired (the engine's `timed_out` decision).
    Timeout,
    /// Its run ended first.
    Canceled,
    /// Decided with a value that is not text (an input object, a number).
    Answered,
    /// The option chosen, or the text answered.
    Chosen(String),
}

impl ApprovalStatus {
    /// The stored and shown name.
    pub fn as_str(&self) -> &str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Timeout => "timeout",
            ApprovalStatus::Canceled => "canceled",
            ApprovalStatus::Answered => "answered",
            ApprovalStatus::Chosen(s) => s,
        }
    }

    /// The status a decision event's `decision` value settles an approval with.
    pub(crate) fn of_decision(decision: &serde_json::Value) -> ApprovalStatus {
        match decision.as_str() {
            Some("timed_out") => ApprovalStatus::Timeout,
            Some(s) => ApprovalStatus::from_name(s),
            None => ApprovalStatus::Answered,
        }
    }

    /// The status named `s` (any other text is an option chosen or a text answered).
    fn from_name(s: &str) -> ApprovalStatus {
        match s {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "rejected" => ApprovalStatus::Rejected,
            "timeout" => ApprovalStatus::Timeout,
            "canceled" => ApprovalStatus::Canceled,
            "answered" => ApprovalStatus::Answered,
            other => ApprovalStatus::Chosen(other.to_owned()),
        }
    }
}

impl FromStr for ApprovalStatus {
    type Err = std::convert::Infallible;

    /// Every text is a status: the names above, else an option chosen or a text answered.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ApprovalStatus::from_name(s))
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ApprovalStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ApprovalStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ApprovalStatus::from_name(&std::borrow::Cow::<'de, str>::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_name_round_trips_and_serde_writes_the_same_text() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(json!(s.as_str())));
        }
        for s in [JobState::Queued, JobState::Running, JobState::Done] {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(json!(s.as_str())));
        }
        for s in [AgentStatus::Online, AgentStatus::Offline] {
            assert_eq!(s.as_str().parse::<AgentStatus>(), Ok(s));
            assert_eq!(serde_json::from_value::<AgentStatus>(json!(s.as_str())).ok(), Some(s));
        }
        let procedures = [
            ProcedureStatus::Active,
            ProcedureStatus::Draft,
            ProcedureStatus::Approved,
            ProcedureStatus::Inactive,
            ProcedureStatus::Deprecated,
            ProcedureStatus::Archived,
        ];
        for s in procedures {
            assert_eq!(s.as_str().parse::<ProcedureStatus>(), Ok(s));
        }
        for name in ["pending", "approved", "rejected", "timeout", "canceled", "answered", "option_b"] {
            let s: ApprovalStatus = name.parse().unwrap_or(ApprovalStatus::Answered);
            assert_eq!(s.as_str(), name);
            assert_eq!(serde_json::to_value(&s).ok(), Some(json!(name)));
        }
    }

    #[test]
    fn unknown_names_are_errors_that_say_what_was_expected() {
        assert_eq!("bogus".parse::<RunStatus>(), Err(UnknownRunStatus("bogus".into())));
        let err = "Active".parse::<ProcedureStatus>().err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("`Active` is not a procedure status"));
        assert!("busy".parse::<AgentStatus>().is_err());
        assert!(serde_json::from_value::<JobState>(json!("later")).is_err());
    }

    #[test]
    fn a_decision_settles_an_approval_with_its_value() {
        assert_eq!(ApprovalStatus::of_decision(&json!("timed_out")), ApprovalStatus::Timeout);
        assert_eq!(ApprovalStatus::of_decision(&json!("approved")), ApprovalStatus::Approved);
        assert_eq!(ApprovalStatus::of_decision(&json!("b")), ApprovalStatus::Chosen("b".into()));
        assert_eq!(ApprovalStatus::of_decision(&json!({"x": 1})), ApprovalStatus::Answered);
        assert_eq!(ApprovalStatus::of_decision(&serde_json::Value::Null), ApprovalStatus::Answered);
    }
}
