//! [`RegistryStore`]: projects, agents, resource leases and artifact metadata (small tables with plain CRUD) and
//! their one decoder each for both backends. Duplicates are [`StoreError::Conflict`], unknown ids
//! [`StoreError::NotFound`]; nothing here is ever a silent overwrite.

use chrono::{DateTime, Utc};
use ckp_engine::effects::BoxFuture;
use serde_json::Value;

use crate::StoreError;
use crate::codec::ts;
use crate::row::RowSource;
use crate::status::AgentStatus;

/// Projects, agents, leases and artifacts.
pub trait RegistryStore: Send + Sync {
    /// Creates a project.
    fn create_project<'a>(
        &'a self,
        name: &'a str,
        description: Option<String>,
    ) -> BoxFuture<'a, Result<ProjectRow, StoreError>>;
    /// Projects by name.
    fn list_projects(&self) -> BoxFuture<'_, Result<Vec<ProjectRow>, StoreError>>;
    /// One project.
    fn get_project<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ProjectRow>, StoreError>>;
    /// Renames or redescribes a project.
    fn update_project<'a>(
        &'a self,
        id: &'a str,
        name: Option<String>,
        description: Option<String>,
    ) -> BoxFuture<'a, Result<ProjectRow, StoreError>>;
    /// Deletes a project and the users' grants in it; one still referenced by procedures or runs is a conflict.
    fn delete_project<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// LLM usage of the runs of a project created since `since`.
    fn project_costs<'a>(&'a self, id: &'a str, since: DateTime<Utc>)
    -> BoxFuture<'a, Result<CostSummary, StoreError>>;
    /// Registers an agent; a taken id is a conflict.
    fn insert_agent(&self, agent: AgentRow) -> BoxFuture<'_, Result<AgentRow, StoreError>>;
    /// Agents by name.
    fn list_agents(&self) -> BoxFuture<'_, Result<Vec<AgentRow>, StoreError>>;
    /// One agent.
    fn get_agent<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<AgentRow>, StoreError>>;
    /// Updates an agent. Marking it online closes its circuit and clears its failures.
    fn update_agent<'a>(&'a self, id: &'a str, update: AgentUpdate) -> BoxFuture<'a, Result<AgentRow, StoreError>>;
    /// Records a health check of an agent in one transaction. A success marks it online and resets its failures
    /// and circuit; a failure counts, and at `offline_after` consecutive failures the agent goes offline and its
    /// circuit opens (dispatch skips it; after the reset period a half-open probe may close it again).
    fn record_agent_health<'a>(
        &'a self,
        id: &'a str,
        ok: bool,
        offline_after: i64,
    ) -> BoxFuture<'a, Result<AgentRow, StoreError>>;
    /// Removes an agent.
    fn delete_agent<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Takes a lease on `resource_key` for a step if fewer than `limit` are active; None when the resource is busy.
    /// Counting and inserting are one transaction, so concurrent steps (of any process) cannot oversubscribe. The
    /// same step dispatched again (its process died mid-call) takes over its own unreleased lease.
    fn acquire_lease<'a>(
        &'a self,
        resource_key: &'a str,
        limit: i64,
        run_id: &'a str,
        node_id: Option<String>,
        step_id: Option<String>,
        ttl: chrono::Duration,
    ) -> BoxFuture<'a, Result<Option<LeaseRow>, StoreError>>;
    /// Extends an unreleased lease to `ttl` from now; false when it was released (revoked) meanwhile.
    fn renew_lease<'a>(&'a self, lease_id: &'a str, ttl: chrono::Duration) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Leases, newest first, optionally for one resource.
    fn list_leases(&self, resource_key: Option<String>) -> BoxFuture<'_, Result<Vec<LeaseRow>, StoreError>>;
    /// Unreleased leases of a run.
    fn run_leases<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Vec<LeaseRow>, StoreError>>;
    /// Releases a lease; false when it was unknown or already released.
    fn release_lease<'a>(&'a self, lease_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Artifact metadata of a run, oldest first.
    fn run_artifacts<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Vec<ArtifactRow>, StoreError>>;
}

/// A project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRow {
    /// Id.
    pub project_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Created.
    pub created_at: String,
}

/// LLM usage of a project's runs over a period.
#[derive(Debug, Clone, PartialEq)]
pub struct CostSummary {
    /// Runs created in the period.
    pub run_count: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Cost.
    pub cost_usd: f64,
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    /// Id.
    pub agent_id: String,
    /// Name.
    pub name: String,
    /// Channel (stored lower-case: matching is case-insensitive).
    pub channel: String,
    /// Base URL.
    pub base_url: String,
    /// Whether dispatch sends it steps.
    pub status: AgentStatus,
    /// Concurrent steps it accepts.
    pub concurrency_limit: i64,
    /// Lease key.
    pub resource_key: String,
    /// Pool.
    pub pool_id: Option<String>,
    /// Capabilities (a JSON array).
    pub capabilities: Value,
    /// Failed health checks in a row.
    pub consecutive_failures: i64,
    /// Circuit opened.
    pub circuit_open_at: Option<String>,
    /// Last heartbeat.
    pub last_heartbeat_at: Option<String>,
    /// Last change.
    pub updated_at: String,
}

/// Changes to an agent; None leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentUpdate {
    /// Status.
    pub status: Option<AgentStatus>,
    /// Base URL.
    pub base_url: Option<String>,
    /// Concurrency limit.
    pub concurrency_limit: Option<i64>,
    /// Capabilities (`[]` clears them).
    pub capabilities: Option<Value>,
    /// Pool.
    pub pool_id: Option<String>,
}

/// A resource lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// Id.
    pub lease_id: String,
    /// Resource.
    pub resource_key: String,
    /// Holder.
    pub run_id: String,
    /// Node.
    pub node_id: Option<String>,
    /// Step.
    pub step_id: Option<String>,
    /// Acquired.
    pub acquired_at: String,
    /// Expires unless renewed.
    pub expires_at: String,
    /// Released.
    pub released_at: Option<String>,
}

impl LeaseRow {
    /// Unreleased and unexpired at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.released_at.is_none() && self.expires_at.as_str() > ts(now).as_str()
    }
}

/// Artifact metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRow {
    /// Id.
    pub artifact_id: String,
    /// Run.
    pub run_id: String,
    /// Node.
    pub node_id: Option<String>,
    /// Step.
    pub step_id: Option<String>,
    /// screenshot, artifact, ...
    pub kind: String,
    /// Where it is.
    pub uri: String,
    /// Name.
    pub name: Option<String>,
    /// MIME type.
    pub mime_type: Option<String>,
    /// Size.
    pub size_bytes: Option<i64>,
    /// Recorded.
    pub created_at: String,
}

/// The columns [`agent_row`] reads, in its order.
pub(crate) const AGENT_COLUMNS: &str = "agent_id, name, channel, base_url, status, concurrency_limit, resource_key,
    pool_id, capabilities, consecutive_failures, circuit_open_at, last_heartbeat_at, updated_at";

/// An agent from the columns of [`AGENT_COLUMNS`].
pub(crate) fn agent_row<R: RowSource>(r: &R) -> Result<AgentRow, R::Error> {
    let caps = r.text(8)?;
    Ok(AgentRow {
        agent_id: r.text(0)?,
        name: r.text(1)?,
        channel: r.text(2)?,
        base_url: r.text(3)?,
        status: r.parsed(4)?,
        concurrency_limit: r.int(5)?,
        resource_key: r.text(6)?,
        pool_id: r.opt_text(7)?,
        capabilities: serde_json::from_str(&caps).unwrap_or(Value::Array(Vec::new())),
        consecutive_failures: r.int(9)?,
        circuit_open_at: r.opt_time(10)?,
        last_heartbeat_at: r.opt_time(11)?,
        updated_at: r.time(12)?,
    })
}

/// The answer when an agent id names no agent.
pub(crate) fn agent_not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("Agent {id} not found"))
}

/// The columns [`project_row`] reads, in its order.
pub(crate) const PROJECT_COLUMNS: &str = "project_id, name, description, created_at";

/// A project from the columns of [`PROJECT_COLUMNS`].
pub(crate) fn project_row<R: RowSource>(r: &R) -> Result<ProjectRow, R::Error> {
    Ok(ProjectRow { project_id: r.text(0)?, name: r.text(1)?, description: r.opt_text(2)?, created_at: r.time(3)? })
}

/// The answer when a project id names no project.
pub(crate) fn project_not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("Project {id} not found"))
}

/// The conflict of a delete of a project still used by `used` procedures or runs.
pub(crate) fn project_in_use(id: &str, used: i64) -> StoreError {
    StoreError::Conflict(format!("Project {id} is still used by {used} procedure(s) or run(s)"))
}

/// The columns [`lease_row`] reads, in its order.
pub(crate) const LEASE_COLUMNS: &str =
    "lease_id, resource_key, run_id, node_id, step_id, acquired_at, expires_at, released_at";

/// A lease from the columns of [`LEASE_COLUMNS`].
pub(crate) fn lease_row<R: RowSource>(r: &R) -> Result<LeaseRow, R::Error> {
    Ok(LeaseRow {
        lease_id: r.text(0)?,
        resource_key: r.text(1)?,
        run_id: r.text(2)?,
        node_id: r.opt_text(3)?,
        step_id: r.opt_text(4)?,
        acquired_at: r.time(5)?,
        expires_at: r.time(6)?,
        released_at: r.opt_time(7)?,
    })
}

/// The columns [`artifact_row`] reads, in its order.
pub(crate) const ARTIFACT_COLUMNS: &str =
    "artifact_id, run_id, node_id, step_id, kind, uri, name, mime_type, size_bytes, created_at";

/// Artifact metadata from the columns of [`ARTIFACT_COLUMNS`].
pub(crate) fn artifact_row<R: RowSource>(r: &R) -> Result<ArtifactRow, R::Error> {
    Ok(ArtifactRow {
        artifact_id: r.text(0)?,
        run_id: r.text(1)?,
        node_id: r.opt_text(2)?,
        step_id: r.opt_text(3)?,
        kind: r.text(4)?,
        uri: r.text(5)?,
        name: r.opt_text(6)?,
        mime_type: r.opt_text(7)?,
        size_bytes: r.opt_int(8)?,
        created_at: r.time(9)?,
    })
}

/// The cost summary of a project's runs: count, prompt tokens, completion tokens, cost.
pub(crate) fn cost_summary<R: RowSource>(r: &R) -> Result<CostSummary, R::Error> {
    Ok(CostSummary {
        run_count: r.int(0)?,
        prompt_tokens: r.int(1)?,
        completion_tokens: r.int(2)?,
        cost_usd: r.float(3)?,
    })
}
