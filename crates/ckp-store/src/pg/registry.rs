//! [`RegistryStore`] on PostgreSQL: projects, agents, resource leases and artifact metadata with the same rules as
//! the SQLite store. Lease counting and insertion are serialized per resource with a transaction-scoped advisory
//! lock, so processes cannot oversubscribe a resource.

use chrono::{DateTime, Utc};
use ckp_engine::effects::BoxFuture;
use deadpool_postgres::GenericClient;
use serde_json::Value;

use super::PgStore;
use crate::StoreError;
use crate::codec::ts;
use crate::status::AgentStatus;
use crate::store::{
    AGENT_COLUMNS, ARTIFACT_COLUMNS, AgentRow, AgentUpdate, ArtifactRow, CostSummary, LEASE_COLUMNS, LeaseRow,
    PROJECT_COLUMNS, ProjectRow, RegistryStore, agent_not_found, agent_row, artifact_row, cost_summary, lease_row,
    project_in_use, project_not_found, project_row,
};

async fn get_agent_in(c: &impl GenericClient, id: &str) -> Result<Option<AgentRow>, StoreError> {
    let stmt = c.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE agent_id = $1")).await?;
    c.query_opt(&stmt, &[&id]).await?.as_ref().map(agent_row).transpose()
}

async fn get_project_in(c: &impl GenericClient, id: &str) -> Result<Option<ProjectRow>, StoreError> {
    let stmt = c.prepare_cached(&format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE project_id = $1")).await?;
    c.query_opt(&stmt, &[&id]).await?.as_ref().map(project_row).transpose()
}

impl RegistryStore for PgStore {
    fn create_project<'a>(
        &'a self,
        name: &'a str,
        description: Option<String>,
    ) -> BoxFuture<'a, Result<ProjectRow, StoreError>> {
        Box::pin(async move {
            let now = Utc::now();
            let row = ProjectRow {
                project_id: uuid::Uuid::new_v4().to_string(),
                name: name.to_owned(),
                description,
                created_at: ts(now),
            };
            self.exec(
                "INSERT INTO projects (project_id, name, description, created_at) VALUES ($1, $2, $3, $4)",
                &[&row.project_id, &row.name, &row.description, &now],
            )
            .await?;
            Ok(row)
        })
    }

    fn list_projects(&self) -> BoxFuture<'_, Result<Vec<ProjectRow>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            c.query(&format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name, project_id"), &[])
                .await?
                .iter()
                .map(project_row)
                .collect()
        })
    }

    fn get_project<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ProjectRow>, StoreError>> {
        Box::pin(async move { get_project_in(&self.client().await?, id).await })
    }

    fn update_project<'a>(
        &'a self,
        id: &'a str,
        name: Option<String>,
        description: Option<String>,
    ) -> BoxFuture<'a, Result<ProjectRow, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            c.execute(
                "UPDATE projects SET name = coalesce($2, name), description = coalesce($3, description) WHERE project_id = $1",
                &[&id, &name, &description],
            )
            .await?;
            get_project_in(&c, id).await?.ok_or_else(|| project_not_found(id))
        })
    }

    fn delete_project<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            if tx.query_opt("SELECT 1 FROM projects WHERE project_id = $1 FOR UPDATE", &[&id]).await?.is_none() {
                return Err(project_not_found(id));
            }
            let used: i64 = tx
                .query_one(
                    "SELECT (SELECT count(*) FROM procedures WHERE project_id = $1) + (SELECT count(*) FROM runs WHERE project_id = $1)",
                    &[&id],
                )
                .await?
                .try_get(0)?;
            if used > 0 {
                return Err(project_in_use(id, used));
            }
            tx.execute("DELETE FROM project_grants WHERE project_id = $1", &[&id]).await?;
            tx.execute("DELETE FROM projects WHERE project_id = $1", &[&id]).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn project_costs<'a>(
        &'a self,
        id: &'a str,
        since: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<CostSummary, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let r = c
                .query_one(
                    "SELECT count(*), coalesce(sum(prompt_tokens), 0)::bigint, coalesce(sum(completion_tokens), 0)::bigint,
                            coalesce(sum(cost_usd), 0.0)::double precision
                     FROM runs WHERE project_id = $1 AND created_at >= $2",
                    &[&id, &since],
                )
                .await?;
            cost_summary(&r)
        })
    }

    fn insert_agent(&self, mut agent: AgentRow) -> BoxFuture<'_, Result<AgentRow, StoreError>> {
        Box::pin(async move {
            let now = Utc::now();
            agent.updated_at = ts(now);
            let a = &agent;
            let n = self
                .exec(
                    &format!(
                        "INSERT INTO agents ({AGENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, NULL, NULL, $10)
                         ON CONFLICT (agent_id) DO NOTHING"
                    ),
                    &[
                        &a.agent_id,
                        &a.name,
                        &a.channel,
                        &a.base_url,
                        &a.status.as_str(),
                        &a.concurrency_limit,
                        &a.resource_key,
                        &a.pool_id,
                        &a.capabilities.to_string(),
                        &now,
                    ],
                )
                .await?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("Agent {} already exists", agent.agent_id)));
            }
            Ok(agent)
        })
    }

    fn list_agents(&self) -> BoxFuture<'_, Result<Vec<AgentRow>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name, agent_id")).await?;
            c.query(&stmt, &[]).await?.iter().map(agent_row).collect()
        })
    }

    fn get_agent<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<AgentRow>, StoreError>> {
        Box::pin(async move { get_agent_in(&self.client().await?, id).await })
    }

    fn update_agent<'a>(&'a self, id: &'a str, update: AgentUpdate) -> BoxFuture<'a, Result<AgentRow, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let n = c
                .execute(
                    "UPDATE agents SET status = coalesce($2, status), base_url = coalesce($3, base_url),
                         concurrency_limit = coalesce($4, concurrency_limit), capabilities = coalesce($5, capabilities),
                         pool_id = coalesce($6, pool_id), updated_at = now(),
                         consecutive_failures = CASE WHEN $2 = 'online' THEN 0 ELSE consecutive_failures END,
                         circuit_open_at = CASE WHEN $2 = 'online' THEN NULL ELSE circuit_open_at END
                     WHERE agent_id = $1",
                    &[
                        &id,
                        &update.status.map(AgentStatus::as_str),
                        &update.base_url,
                        &update.concurrency_limit,
                        &update.capabilities.as_ref().map(Value::to_string),
                        &update.pool_id,
                    ],
                )
                .await?;
            if n == 0 {
                return Err(agent_not_found(id));
            }
            get_agent_in(&c, id).await?.ok_or_else(|| agent_not_found(id))
        })
    }

    fn record_agent_health<'a>(
        &'a self,
        id: &'a str,
        ok: bool,
        offline_after: i64,
    ) -> BoxFuture<'a, Result<AgentRow, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let n = if ok {
                c.execute(
                    "UPDATE agents SET status = 'online', consecutive_failures = 0, circuit_open_at = NULL,
                         last_heartbeat_at = now(), updated_at = now() WHERE agent_id = $1",
                    &[&id],
                )
                .await?
            } else {
                c.execute(
                    "UPDATE agents SET consecutive_failures = consecutive_failures + 1,
                         status = CASE WHEN consecutive_failures + 1 >= $2 THEN 'offline' ELSE status END,
                         circuit_open_at = CASE WHEN consecutive_failures + 1 >= $2 THEN coalesce(circuit_open_at, now())
                                                ELSE circuit_open_at END,
                         updated_at = now()
                     WHERE agent_id = $1",
                    &[&id, &offline_after],
                )
                .await?
            };
            if n == 0 {
                return Err(agent_not_found(id));
            }
            get_agent_in(&c, id).await?.ok_or_else(|| agent_not_found(id))
        })
    }

    fn delete_agent<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let n = self.exec("DELETE FROM agents WHERE agent_id = $1", &[&id]).await?;
            if n == 0 { Err(agent_not_found(id)) } else { Ok(()) }
        })
    }

    fn acquire_lease<'a>(
        &'a self,
        resource_key: &'a str,
        limit: i64,
        run_id: &'a str,
        node_id: Option<String>,
        step_id: Option<String>,
        ttl: chrono::Duration,
    ) -> BoxFuture<'a, Result<Option<LeaseRow>, StoreError>> {
        Box::pin(async move {
            let now = Utc::now();
            let until = now + ttl;
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&resource_key]).await?;
            let own = tx
                .query_opt(
                    &format!(
                        "SELECT {LEASE_COLUMNS} FROM leases WHERE resource_key = $1 AND run_id = $2
                           AND node_id IS NOT DISTINCT FROM $3 AND step_id IS NOT DISTINCT FROM $4 AND released_at IS NULL"
                    ),
                    &[&resource_key, &run_id, &node_id, &step_id],
                )
                .await?;
            if let Some(own) = own {
                let own = lease_row(&own)?;
                tx.execute("UPDATE leases SET expires_at = $2 WHERE lease_id = $1", &[&own.lease_id, &until]).await?;
                tx.commit().await?;
                return Ok(Some(LeaseRow { expires_at: ts(until), ..own }));
            }
            let active: i64 = tx
                .query_one(
                    "SELECT count(*) FROM leases WHERE resource_key = $1 AND released_at IS NULL AND expires_at > $2",
                    &[&resource_key, &now],
                )
                .await?
                .try_get(0)?;
            if active >= limit {
                return Ok(None);
            }
            let lease_id = uuid::Uuid::new_v4().to_string();
            tx.execute(
                &format!("INSERT INTO leases ({LEASE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)"),
                &[&lease_id, &resource_key, &run_id, &node_id, &step_id, &now, &until],
            )
            .await?;
            tx.commit().await?;
            Ok(Some(LeaseRow {
                lease_id,
                resource_key: resource_key.to_owned(),
                run_id: run_id.to_owned(),
                node_id,
                step_id,
                acquired_at: ts(now),
                expires_at: ts(until),
                released_at: None,
            }))
        })
    }

    fn renew_lease<'a>(&'a self, lease_id: &'a str, ttl: chrono::Duration) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let until = Utc::now() + ttl;
            let n = self
                .exec(
                    "UPDATE leases SET expires_at = $2 WHERE lease_id = $1 AND released_at IS NULL",
                    &[&lease_id, &until],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn list_leases(&self, resource_key: Option<String>) -> BoxFuture<'_, Result<Vec<LeaseRow>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            c.query(
                &format!(
                    "SELECT {LEASE_COLUMNS} FROM leases WHERE ($1::text IS NULL OR resource_key = $1)
                     ORDER BY acquired_at DESC, lease_id"
                ),
                &[&resource_key],
            )
            .await?
            .iter()
            .map(lease_row)
            .collect()
        })
    }

    fn run_leases<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Vec<LeaseRow>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            c.query(
                &format!(
                    "SELECT {LEASE_COLUMNS} FROM leases WHERE run_id = $1 AND released_at IS NULL ORDER BY acquired_at"
                ),
                &[&run_id],
            )
            .await?
            .iter()
            .map(lease_row)
            .collect()
        })
    }

    fn release_lease<'a>(&'a self, lease_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let n = self
                .exec("UPDATE leases SET released_at = now() WHERE lease_id = $1 AND released_at IS NULL", &[&lease_id])
                .await?;
            Ok(n == 1)
        })
    }

    fn run_artifacts<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Vec<ArtifactRow>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            c.query(
                &format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = $1 ORDER BY created_at, artifact_id"),
                &[&run_id],
            )
            .await?
            .iter()
            .map(artifact_row)
            .collect()
        })
    }
}
