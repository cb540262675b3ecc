//! The CKP language: the document model, the compiler (parse → validate → bind → [`Procedure`]), the template and
//! condition languages, and diagnostics that point at a JSON pointer and a line:column of the source.
//!
//! This crate is pure: no I/O, no async runtime, no database. The engine, the server and the CLI all accept CKP
//! only through [`compile()`], so every consumer sees the same checks and the same messages.

pub mod compile;
pub mod condition;
pub mod diag;
pub mod explain;
pub mod glob;
pub mod graph;
pub mod inputs;
pub mod mcp;
pub mod model;
pub mod path;
pub mod procedure;
pub mod source;
pub mod template;
pub mod testing;

pub use compile::{Compilation, compile, compile_value, compile_with};
pub use diag::{Code, Diagnostic, Severity};
pub use model::Limits;
pub use procedure::Procedure;
