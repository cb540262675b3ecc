//! One module per API resource.

pub mod api_keys;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod authoring;
pub mod callbacks;
pub mod credentials;
pub mod insights;
pub mod misc;
pub mod procedures;
pub mod registry;
pub mod run_report;
pub mod runs;
pub mod secrets;
pub mod sso;
pub mod triggers;
pub mod users;
