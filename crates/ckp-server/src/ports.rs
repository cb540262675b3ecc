//! The connectors' ports over the store: [`StorePorts`] is the agent registry with its leases and the sealed secrets
//! of `ckp_connectors::ports`, mapping store rows to the connectors' own types. It holds no rule of its own: which
//! agent gets a step and how a secret is unsealed are the connectors'; what a health result does to an agent's row
//! is the store's. It raises the `agent_circuit_open` alert when a health result opened a circuit.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ckp_connectors::ports::{AgentInfo, AgentRegistry, Lease, LeaseHolder, PortError, SealedSecrets};
use ckp_engine::effects::BoxFuture;
use ckp_store::{AgentRow, AgentStatus, AgentUpdate, Store};

/// The store as the connectors' ports.
#[derive(Clone)]
pub struct StorePorts {
    store: Arc<dyn Store>,
    alerts: Option<Arc<crate::alerts::Alerts>>,
}

impl std::fmt::Debug for StorePorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorePorts").finish_non_exhaustive()
    }
}

impl StorePorts {
    /// The ports over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        StorePorts { store, alerts: None }
    }

    /// Raises `agent_circuit_open` on `alerts` when a failure opens an agent's circuit.
    pub fn with_alerts(mut self, alerts: Option<Arc<crate::alerts::Alerts>>) -> Self {
        self.alerts = alerts;
        self
    }
}

/// An agent row as the connectors see it. A circuit time that does not parse counts as closed, so a damaged row
/// is probed and dispatched to rather than shut out for good.
fn agent_info(row: AgentRow) -> AgentInfo {
    AgentInfo {
        online: row.status == AgentStatus::Online,
        circuit_open_at: row
            .circuit_open_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        agent_id: row.agent_id,
        channel: row.channel,
        base_url: row.base_url,
        concurrency_limit: row.concurrency_limit,
        resource_key: row.resource_key,
        pool_id: row.pool_id,
        capabilities: row.capabilities,
        consecutive_failures: row.consecutive_failures,
    }
}

impl AgentRegistry for StorePorts {
    async fn agents(&self) -> Result<Vec<AgentInfo>, PortError> {
        let rows = self.store.list_agents().await.map_err(PortError::new)?;
        Ok(rows.into_iter().map(agent_info).collect())
    }

    async fn record_health(&self, agent_id: &str, ok: bool, offline_after: i64) -> Result<AgentInfo, PortError> {
        let row = self.store.record_agent_health(agent_id, ok, offline_after).await.map_err(PortError::new)?;
        // The failure that opened the circuit (the `offline_after`-th in a row): once per opening.
        if let Some(alerts) = &self.alerts
            && !ok
            && row.circuit_open_at.is_some()
            && row.consecutive_failures == offline_after
        {
            let fields = serde_json::json!({"agent_id": row.agent_id, "agent_name": row.name, "channel": row.channel,
                "consecutive_failures": row.consecutive_failures, "circuit_open_at": row.circuit_open_at});
            alerts.raise("agent_circuit_open", &row.agent_id, fields);
        }
        Ok(agent_info(row))
    }

    async fn set_capabilities(&self, agent_id: &str, capabilities: serde_json::Value) -> Result<(), PortError> {
        let update = AgentUpdate { capabilities: Some(capabilities), ..AgentUpdate::default() };
        self.store.update_agent(agent_id, update).await.map(drop).map_err(PortError::new)
    }

    async fn acquire_lease(
        &self,
        resource_key: &str,
        limit: i64,
        holder: LeaseHolder<'_>,
        ttl: chrono::Duration,
    ) -> Result<Option<Lease>, PortError> {
        let (node, step) = (Some(holder.node_id.to_owned()), Some(holder.step_id.to_owned()));
        let row = self
            .store
            .acquire_lease(resource_key, limit, holder.run_id, node, step, ttl)
            .await
            .map_err(PortError::new)?;
        Ok(row.map(|r| Lease { lease_id: r.lease_id }))
    }

    async fn renew_lease(&self, lease: &Lease, ttl: chrono::Duration) -> Result<bool, PortError> {
        self.store.renew_lease(&lease.lease_id, ttl).await.map_err(PortError::new)
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), PortError> {
        self.store.release_lease(&lease.lease_id).await.map(drop).map_err(PortError::new)
    }

    fn is_leader(&self) -> bool {
        self.store.is_leader()
    }
}

impl SealedSecrets for StorePorts {
    fn sealed<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>, PortError>> {
        Box::pin(async move {
            let row = self.store.get_secret(name).await.map_err(PortError::new)?;
            Ok(row.map(|r| r.sealed_value))
        })
    }
}
