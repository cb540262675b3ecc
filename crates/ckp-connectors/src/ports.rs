//! The ports the connectors own: what they need from the server's database, in their own types, so that this crate
//! depends on no store. [`AgentRegistry`] gives the agents a channel may use, records health results (the circuit
//! breaker) and holds resource leases; [`SealedSecrets`] reads the sealed values of ckp's own secrets. The server
//! implements both over its store (`ckp_server::ports`); a test implements them in memory. Nothing here decides
//! anything: selection, the breaker's use and unsealing stay in `agents.rs` and `secrets/`.

use chrono::{DateTime, Utc};
use ckp_engine::effects::BoxFuture;
use serde_json::Value;

/// A failure behind a port (the server's database), kept whole so its cause chain reaches the log.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PortError(Box<dyn std::error::Error + Send + Sync>);

impl PortError {
    /// Wraps the implementation's error.
    pub fn new(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        PortError(Box::new(source))
    }
}

/// A registered agent as dispatch and the health loop see it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentInfo {
    /// The registry's id; also what errors and the breaker name it by.
    pub agent_id: String,
    /// Matched case-insensitively against a step's channel.
    pub channel: String,
    /// Where `/execute`, `/health` and `/capabilities` are.
    pub base_url: String,
    /// Only an online agent gets steps (any other status of the registry keeps it out).
    pub online: bool,
    /// At most this many steps hold a lease on its resource at once.
    pub concurrency_limit: i64,
    /// The resource its leases are taken on (agents sharing one share the limit).
    pub resource_key: String,
    /// Agents of a pool come first, ordered by pool, in the round-robin.
    pub pool_id: Option<String>,
    /// A JSON array of `{name, type, ...}` or bare names; `*` is every action.
    pub capabilities: Value,
    /// Failed health checks or calls in a row; a success after failures is recorded to reset it.
    pub consecutive_failures: i64,
    /// When its circuit opened (None: closed).
    pub circuit_open_at: Option<DateTime<Utc>>,
}

/// A held resource lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What renewing and releasing name it by.
    pub lease_id: String,
}

/// The step that takes a lease, recorded with it (the registry's lease list shows who holds a resource).
#[derive(Debug, Clone, Copy)]
pub struct LeaseHolder<'a> {
    pub run_id: &'a str,
    pub node_id: &'a str,
    pub step_id: &'a str,
}

/// The agent registry and its resource leases. It is asked on every agent dispatch, so its methods return plain
/// futures and its users are generic over it: no box per call on top of what the implementation does.
pub trait AgentRegistry: Send + Sync + 'static {
    /// Every registered agent; dispatch filters them by channel, status, circuit and capability.
    fn agents(&self) -> impl Future<Output = Result<Vec<AgentInfo>, PortError>> + Send;

    /// Records a health result of `agent_id` (a probe or a call): a success brings it online with its circuit
    /// closed; the `offline_after`-th failure in a row takes it offline with its circuit open. Returns the agent as
    /// it is afterwards.
    fn record_health(
        &self,
        agent_id: &str,
        ok: bool,
        offline_after: i64,
    ) -> impl Future<Output = Result<AgentInfo, PortError>> + Send;

    /// Replaces `agent_id`'s capabilities (a JSON array, as [`AgentInfo::capabilities`]): the health loop probes
    /// them again when the agent comes back online.
    fn set_capabilities(
        &self,
        agent_id: &str,
        capabilities: Value,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// A lease on `resource_key` for `holder` lasting `ttl`, if fewer than `limit` unexpired leases are held on it
    /// (None: the resource is busy).
    fn acquire_lease(
        &self,
        resource_key: &str,
        limit: i64,
        holder: LeaseHolder<'_>,
        ttl: chrono::Duration,
    ) -> impl Future<Output = Result<Option<Lease>, PortError>> + Send;

    /// Extends `lease` to `ttl` from now; false when it is gone (released, or expired and taken back).
    fn renew_lease(&self, lease: &Lease, ttl: chrono::Duration)
    -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Gives `lease` back.
    fn release_lease(&self, lease: &Lease) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Whether this process runs the health checks: on a database shared by several processes, only the leader.
    fn is_leader(&self) -> bool;
}

/// ckp's own secrets store (`/api/secrets`, the `db` provider): values sealed by the server. Read once per cached
/// value, so a `dyn` port ([`crate::secrets::SecretManager`] is not generic over it).
pub trait SealedSecrets: Send + Sync {
    /// The sealed value stored under `name` (None when there is no such secret).
    fn sealed<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>, PortError>>;
}
