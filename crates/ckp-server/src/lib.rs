//! The ckp server: the LangOrch-compatible REST API and SSE over the store, the procedure catalog (compile once
//! per version), embedded workers executing queued runs (DESIGN §4), and `ckp serve`'s startup and shutdown.
//! Authentication and authorization (`auth`). The web console's files (`console`). Triggers (`triggers`). Metrics (`metrics`).

pub mod alerts;
pub mod api;
pub mod app;
pub mod auth;
pub mod catalog;
pub mod console;
pub mod effects;
pub mod error;
pub mod explain;
pub mod listener;
pub mod metrics;
pub mod otel;
pub mod ports;
pub mod retention;
pub mod routes;
pub mod serve;
pub mod settings;
pub mod sse;
pub mod triggers;
pub mod worker;
mod workflow;
