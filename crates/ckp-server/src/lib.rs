//! The ckp server. Today: the procedure catalog (import, compile once per version, cache) and the workers that
//! execute queued runs (DESIGN §4). The REST API, SSE hub, scheduler
//! (cron, approval expiry, lease reclaim as a singleton loop), authentication and metrics arrive with the server
//! issues and live beside them (one file per API resource under `routes/`).

pub mod catalog;
pub mod worker;
