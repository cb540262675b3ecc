//! One module per API resource.

pub mod approvals;
pub mod callbacks;
pub mod credentials;
pub mod misc;
pub mod procedures;
pub mod registry;
pub mod runs;
pub mod secrets;
