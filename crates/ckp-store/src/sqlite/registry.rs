//! [`RegistryStore`] on SQLite: projects, agents, resource leases and artifact metadata. Lease counting and
//! insertion happen in one writer transaction, so concurrent steps cannot oversubscribe a resource.

use chrono::{DateTime, Utc};
use ckp_engine::effects::BoxFuture;
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::SqliteStore;
use crate::StoreError;
use crate::codec::ts;
use crate::status::AgentStatus;
use crate::store::{
    AGENT_COLUMNS, ARTIFACT_COLUMNS, AgentRow, AgentUpdate, ArtifactRow, CostSummary, LEASE_COLUMNS, LeaseRow,
    PROJECT_COLUMNS, ProjectRow, RegistryStore, agent_not_found, agent_row, artifact_row, cost_summary, lease_row,
    project_in_use, project_not_found, project_row,
};

fn get_agent_in(c: &rusqlite::Connection, id: &str) -> Result<Option<AgentRow>, rusqlite::Error> {
    c.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE agent_id = ?1"))?
        .query_row(params![id], |r| agent_row(r))
        .optional()
}

fn get_project_in(c: &rusqlite::Connection, id: &str) -> Result<Option<ProjectRow>, rusqlite::Error> {
    c.prepare_cached(&format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE project_id = ?1"))?
        .query_row(params![id], |r| project_row(r))
        .optional()
}

impl RegistryStore for SqliteStore {
    fn create_project<'a>(
        &'a self,
        name: &'a str,
        description: Option<String>,
    ) -> BoxFuture<'a, Result<ProjectRow, StoreError>> {
        Box::pin(async move {
            let row = ProjectRow {
                project_id: uuid::Uuid::new_v4().to_string(),
                name: name.to_owned(),
                description,
                created_at: ts(Utc::now()),
            };
            let r = row.clone();
            self.write(move |tx| {
                tx.prepare_cached(
                    "INSERT INTO projects (project_id, name, description, created_at) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![r.project_id, r.name, r.description, r.created_at])
            })
            .await?;
            Ok(row)
        })
    }

    fn list_projects(&self) -> BoxFuture<'_, Result<Vec<ProjectRow>, StoreError>> {
        Box::pin(async move {
            self.read_store(|c| {
                c.prepare_cached(&format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name, project_id"))?
                    .query_map([], |r| project_row(r))?
                    .collect()
            })
            .await
        })
    }

    fn get_project<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ProjectRow>, StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            self.read_store(move |c| get_project_in(c, &id)).await
        })
    }

    fn update_project<'a>(
        &'a self,
        id: &'a str,
        name: Option<String>,
        description: Option<String>,
    ) -> BoxFuture<'a, Result<ProjectRow, StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            self.write(move |tx| {
                tx.prepare_cached(
                    "UPDATE projects SET name = coalesce(?2, name), description = coalesce(?3, description) WHERE project_id = ?1",
                )?
                .execute(params![id, name, description])?;
                get_project_in(tx, &id).map(|p| p.ok_or_else(|| project_not_found(&id)))
            })
            .await?
        })
    }

    fn delete_project<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            self.write(move |tx| {
                if get_project_in(tx, &id)?.is_none() {
                    return Ok(Err(project_not_found(&id)));
                }
                let used: i64 = tx
                    .prepare_cached(
                        "SELECT (SELECT count(*) FROM procedures WHERE project_id = ?1) + (SELECT count(*) FROM runs WHERE project_id = ?1)",
                    )?
                    .query_row(params![id], |r| r.get(0))?;
                if used > 0 {
                    return Ok(Err(project_in_use(&id, used)));
                }
                tx.prepare_cached("DELETE FROM project_grants WHERE project_id = ?1")?.execute(params![id])?;
                tx.prepare_cached("DELETE FROM projects WHERE project_id = ?1")?.execute(params![id])?;
                Ok(Ok(()))
            })
            .await?
        })
    }

    fn project_costs<'a>(
        &'a self,
        id: &'a str,
        since: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<CostSummary, StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            self.read_store(move |c| {
                c.prepare_cached(
                    "SELECT count(*), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
                            coalesce(sum(cost_usd), 0.0)
                     FROM runs WHERE project_id = ?1 AND created_at >= ?2",
                )?
                .query_row(params![id, ts(since)], |r| cost_summary(r))
            })
            .await
        })
    }

    fn insert_agent(&self, mut agent: AgentRow) -> BoxFuture<'_, Result<AgentRow, StoreError>> {
        Box::pin(async move {
            agent.updated_at = ts(Utc::now());
            let a = agent.clone();
            self.write(move |tx| {
                if get_agent_in(tx, &a.agent_id)?.is_some() {
                    return Ok(Err(StoreError::Conflict(format!("Agent {} already exists", a.agent_id))));
                }
                tx.prepare_cached(&format!(
                    "INSERT INTO agents ({AGENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, NULL, NULL, ?10)"
                ))?
                .execute(params![
                    a.agent_id,
                    a.name,
                    a.channel,
                    a.base_url,
                    a.status.as_str(),
                    a.concurrency_limit,
                    a.resource_key,
                    a.pool_id,
                    a.capabilities.to_string(),
                    a.updated_at
                ])?;
                Ok(Ok(()))
            })
            .await??;
            Ok(agent)
        })
    }

    fn list_agents(&self) -> BoxFuture<'_, Result<Vec<AgentRow>, StoreError>> {
        Box::pin(async move {
            self.read_store(|c| {
                c.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name, agent_id"))?
                    .query_map([], |r| agent_row(r))?
                    .collect()
            })
            .await
        })
    }

    fn get_agent<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<AgentRow>, StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            self.read_store(move |c| get_agent_in(c, &id)).await
        })
    }

    fn update_agent<'a>(&'a self, id: &'a str, update: AgentUpdate) -> BoxFuture<'a, Result<AgentRow, StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            self.write(move |tx| {
                let n = tx
                    .prepare_cached(
                        "UPDATE agents SET status = coalesce(?2, status), base_url = coalesce(?3, base_url),
                             concurrency_limit = coalesce(?4, concurrency_limit), capabilities = coalesce(?5, capabilities),
                             pool_id = coalesce(?6, pool_id), updated_at = ?7,
                             consecutive_failures = CASE WHEN ?2 = 'online' THEN 0 ELSE consecutive_failures END,
                             circuit_open_at = CASE WHEN ?2 = 'online' THEN NULL ELSE circuit_open_at END
                         WHERE agent_id = ?1",
                    )?
                    .execute(params![
                        id,
                        update.status.map(AgentStatus::as_str),
                        update.base_url,
                        update.concurrency_limit,
                        update.capabilities.as_ref().map(Value::to_string),
                        update.pool_id,
                        ts(Utc::now())
                    ])?;
                if n == 0 {
                    return Ok(Err(agent_not_found(&id)));
                }
                Ok(get_agent_in(tx, &id)?.ok_or_else(|| agent_not_found(&id)))
            })
            .await?
        })
    }

    fn record_agent_health<'a>(
        &'a self,
        id: &'a str,
        ok: bool,
        offline_after: i64,
    ) -> BoxFuture<'a, Result<AgentRow, StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            let now = ts(Utc::now());
            self.write(move |tx| {
                let n = if ok {
                    tx.prepare_cached(
                        "UPDATE agents SET status = 'online', consecutive_failures = 0, circuit_open_at = NULL,
                             last_heartbeat_at = ?2, updated_at = ?2 WHERE agent_id = ?1",
                    )?
                    .execute(params![id, now])?
                } else {
                    tx.prepare_cached(
                        "UPDATE agents SET consecutive_failures = consecutive_failures + 1,
                             status = CASE WHEN consecutive_failures + 1 >= ?3 THEN 'offline' ELSE status END,
                             circuit_open_at = CASE WHEN consecutive_failures + 1 >= ?3 THEN coalesce(circuit_open_at, ?2)
                                                    ELSE circuit_open_at END,
                             updated_at = ?2
                         WHERE agent_id = ?1",
                    )?
                    .execute(params![id, now, offline_after])?
                };
                if n == 0 {
                    return Ok(Err(agent_not_found(&id)));
                }
                Ok(get_agent_in(tx, &id)?.ok_or_else(|| agent_not_found(&id)))
            })
            .await?
        })
    }

    fn delete_agent<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            let n = self
                .write({
                    let id = id.clone();
                    move |tx| tx.prepare_cached("DELETE FROM agents WHERE agent_id = ?1")?.execute(params![id])
                })
                .await?;
            if n == 0 { Err(agent_not_found(&id)) } else { Ok(()) }
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
            let l = LeaseRow {
                lease_id: uuid::Uuid::new_v4().to_string(),
                resource_key: resource_key.to_owned(),
                run_id: run_id.to_owned(),
                node_id,
                step_id,
                acquired_at: ts(now),
                expires_at: ts(now + ttl),
                released_at: None,
            };
            let taken = self
                .write(move |tx| {
                    // The same step dispatched again (its process died mid-call) takes over its own unreleased lease
                    // instead of waiting for it to expire.
                    let own: Option<LeaseRow> = tx
                        .prepare_cached(&format!(
                            "SELECT {LEASE_COLUMNS} FROM leases WHERE resource_key = ?1 AND run_id = ?2 AND node_id IS ?3
                               AND step_id IS ?4 AND released_at IS NULL"
                        ))?
                        .query_row(params![l.resource_key, l.run_id, l.node_id, l.step_id], |r| lease_row(r))
                        .optional()?;
                    if let Some(own) = own {
                        tx.prepare_cached("UPDATE leases SET expires_at = ?2 WHERE lease_id = ?1")?
                            .execute(params![own.lease_id, l.expires_at])?;
                        return Ok(Some(LeaseRow { expires_at: l.expires_at.clone(), ..own }));
                    }
                    let active: i64 = tx
                        .prepare_cached(
                            "SELECT count(*) FROM leases WHERE resource_key = ?1 AND released_at IS NULL AND expires_at > ?2",
                        )?
                        .query_row(params![l.resource_key, l.acquired_at], |r| r.get(0))?;
                    if active >= limit {
                        return Ok(None);
                    }
                    tx.prepare_cached(&format!(
                        "INSERT INTO leases ({LEASE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)"
                    ))?
                    .execute(params![l.lease_id, l.resource_key, l.run_id, l.node_id, l.step_id, l.acquired_at, l.expires_at])?;
                    Ok(Some(l))
                })
                .await?;
            Ok(taken)
        })
    }

    fn renew_lease<'a>(&'a self, lease_id: &'a str, ttl: chrono::Duration) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let id = lease_id.to_owned();
            let until = ts(Utc::now() + ttl);
            let n = self
                .write(move |tx| {
                    tx.prepare_cached("UPDATE leases SET expires_at = ?2 WHERE lease_id = ?1 AND released_at IS NULL")?
                        .execute(params![id, until])
                })
                .await?;
            Ok(n == 1)
        })
    }

    fn list_leases(&self, resource_key: Option<String>) -> BoxFuture<'_, Result<Vec<LeaseRow>, StoreError>> {
        Box::pin(async move {
            self.read_store(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {LEASE_COLUMNS} FROM leases WHERE (?1 IS NULL OR resource_key = ?1) ORDER BY acquired_at DESC, lease_id"
                ))?
                .query_map(params![resource_key], |r| lease_row(r))?
                .collect()
            })
            .await
        })
    }

    fn run_leases<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Vec<LeaseRow>, StoreError>> {
        Box::pin(async move {
            let run_id = run_id.to_owned();
            self.read_store(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {LEASE_COLUMNS} FROM leases WHERE run_id = ?1 AND released_at IS NULL ORDER BY acquired_at"
                ))?
                .query_map(params![run_id], |r| lease_row(r))?
                .collect()
            })
            .await
        })
    }

    fn release_lease<'a>(&'a self, lease_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let id = lease_id.to_owned();
            let now = ts(Utc::now());
            let n = self
                .write(move |tx| {
                    tx.prepare_cached("UPDATE leases SET released_at = ?2 WHERE lease_id = ?1 AND released_at IS NULL")?
                        .execute(params![id, now])
                })
                .await?;
            Ok(n == 1)
        })
    }

    fn run_artifacts<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Vec<ArtifactRow>, StoreError>> {
        Box::pin(async move {
            let run_id = run_id.to_owned();
            self.read_store(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = ?1 ORDER BY created_at, artifact_id"
                ))?
                .query_map(params![run_id], |r| artifact_row(r))?
                .collect()
            })
            .await
        })
    }
}
