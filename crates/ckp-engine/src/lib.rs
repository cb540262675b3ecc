//! The engine: executes compiled CKP procedures ([`ckp_core::Procedure`]) durably.
//!
//! It reaches the world only through the effect traits of [`effects`] and persists only through the
//! [`journal::Journal`] trait, so the CLI, the server and the tests drive the same code. See `docs/ARCHITECTURE.md`
//! ("Durable execution") for the commit points and how a run is recovered.

pub mod callback;
pub mod effects;
pub mod engine;
pub mod error;
pub mod events;
pub mod journal;
mod nodes;
pub mod ops;
pub mod pricing;
pub mod redact;
mod run;
pub mod size;
pub mod testing;

pub use engine::{Decision, Engine, EngineConfig, RunOutcome};
pub use error::{EngineError, ErrorKind, RunError, StepError};
pub use events::{Event, EventSink};
pub use journal::{Checkpoint, Journal, MemoryJournal, RunStatus};
