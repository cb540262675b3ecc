//! Procedures, projects, agents, resource leases and artifact metadata on PostgreSQL: the same rules as the SQLite
//! modules `procedures` and `registry`. Lease counting and insertion are serialized per resource with a
//! transaction-scoped advisory lock, so processes cannot oversubscribe a resource.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;

use super::{PgStore, ot, t};
use crate::StoreError;
use crate::procedures::{ProcedureFilter, ProcedureRecord};
use crate::registry::{AgentRow, AgentUpdate, ArtifactRow, CostSummary, LeaseRow, ProjectRow};
use crate::sqlite::ts;

const PROCEDURE_COLUMNS: &str = "id, procedure_id, version, name, status, effective_date, description, project_id,
    ckp_json, provenance, retrieval_metadata, trigger_config, release_channel, created_at";

fn procedure_row(r: &Row) -> Result<ProcedureRecord, StoreError> {
    Ok(ProcedureRecord {
        id: r.try_get(0)?,
        procedure_id: r.try_get(1)?,
        version: r.try_get(2)?,
        name: r.try_get(3)?,
        status: r.try_get(4)?,
        effective_date: r.try_get(5)?,
        description: r.try_get(6)?,
        project_id: r.try_get(7)?,
        ckp_json: r.try_get(8)?,
        provenance: r.try_get(9)?,
        retrieval_metadata: r.try_get(10)?,
        trigger_config: r.try_get(11)?,
        release_channel: r.try_get(12)?,
        created_at: t(r, 13)?,
    })
}

async fn get_procedure_in(
    c: &impl GenericClient,
    id: &str,
    version: Option<&str>,
) -> Result<Option<ProcedureRecord>, StoreError> {
    let row = match version.filter(|v| *v != "latest") {
        Some(v) => {
            let sql = format!("SELECT {PROCEDURE_COLUMNS} FROM procedures WHERE procedure_id = $1 AND version = $2");
            let stmt = c.prepare_cached(&sql).await?;
            c.query_opt(&stmt, &[&id, &v]).await?
        }
        None => {
            let sql = format!(
                "SELECT {PROCEDURE_COLUMNS} FROM procedures WHERE procedure_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1"
            );
            let stmt = c.prepare_cached(&sql).await?;
            c.query_opt(&stmt, &[&id]).await?
        }
    };
    row.as_ref().map(procedure_row).transpose()
}

const AGENT_COLUMNS: &str = "agent_id, name, channel, base_url, status, concurrency_limit, resource_key, pool_id,
    capabilities, consecutive_failures, circuit_open_at, last_heartbeat_at, updated_at";

fn agent_row(r: &Row) -> Result<AgentRow, StoreError> {
    let caps: String = r.try_get(8)?;
    Ok(AgentRow {
        agent_id: r.try_get(0)?,
        name: r.try_get(1)?,
        channel: r.try_get(2)?,
        base_url: r.try_get(3)?,
        status: r.try_get(4)?,
        concurrency_limit: r.try_get(5)?,
        resource_key: r.try_get(6)?,
        pool_id: r.try_get(7)?,
        capabilities: serde_json::from_str(&caps).unwrap_or(Value::Array(Vec::new())),
        consecutive_failures: r.try_get(9)?,
        circuit_open_at: ot(r, 10)?,
        last_heartbeat_at: ot(r, 11)?,
        updated_at: t(r, 12)?,
    })
}

async fn get_agent_in(c: &impl GenericClient, id: &str) -> Result<Option<AgentRow>, StoreError> {
    let stmt = c.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE agent_id = $1")).await?;
    c.query_opt(&stmt, &[&id]).await?.as_ref().map(agent_row).transpose()
}

fn agent_not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("Agent {id} not found"))
}

fn project_row(r: &Row) -> Result<ProjectRow, StoreError> {
    Ok(ProjectRow { project_id: r.try_get(0)?, name: r.try_get(1)?, description: r.try_get(2)?, created_at: t(r, 3)? })
}

async fn get_project_in(c: &impl GenericClient, id: &str) -> Result<Option<ProjectRow>, StoreError> {
    let stmt = c
        .prepare_cached("SELECT project_id, name, description, created_at FROM projects WHERE project_id = $1")
        .await?;
    c.query_opt(&stmt, &[&id]).await?.as_ref().map(project_row).transpose()
}

const LEASE_COLUMNS: &str = "lease_id, resource_key, run_id, node_id, step_id, acquired_at, expires_at, released_at";

fn lease_row(r: &Row) -> Result<LeaseRow, StoreError> {
    Ok(LeaseRow {
        lease_id: r.try_get(0)?,
        resource_key: r.try_get(1)?,
        run_id: r.try_get(2)?,
        node_id: r.try_get(3)?,
        step_id: r.try_get(4)?,
        acquired_at: t(r, 5)?,
        expires_at: t(r, 6)?,
        released_at: ot(r, 7)?,
    })
}

impl PgStore {
    /// Stores a new procedure version; a duplicate id and version is a conflict.
    pub async fn insert_procedure(&self, mut record: ProcedureRecord) -> Result<ProcedureRecord, StoreError> {
        let now = Utc::now();
        record.created_at = ts(now);
        let r = &record;
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO procedures (procedure_id, version, name, status, effective_date, description, project_id,
                     ckp_json, provenance, retrieval_metadata, trigger_config, release_channel, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
                 ON CONFLICT (procedure_id, version) DO NOTHING RETURNING id",
            )
            .await?;
        let row = c
            .query_opt(
                &stmt,
                &[
                    &r.procedure_id,
                    &r.version,
                    &r.name,
                    &r.status,
                    &r.effective_date,
                    &r.description,
                    &r.project_id,
                    &r.ckp_json,
                    &r.provenance,
                    &r.retrieval_metadata,
                    &r.trigger_config,
                    &r.release_channel,
                    &now,
                ],
            )
            .await?;
        self.publish_procedures();
        match row {
            Some(row) => Ok(ProcedureRecord { id: row.try_get(0)?, ..record }),
            None => Err(StoreError::Conflict(format!(
                "Procedure {} version {} already exists",
                record.procedure_id, record.version
            ))),
        }
    }

    /// One version of a procedure, or the latest imported one.
    pub async fn get_procedure(&self, id: &str, version: Option<&str>) -> Result<Option<ProcedureRecord>, StoreError> {
        get_procedure_in(&self.client().await?, id, version).await
    }

    /// Procedure versions matching `filter`, newest first.
    pub async fn list_procedures(&self, filter: ProcedureFilter) -> Result<Vec<ProcedureRecord>, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {PROCEDURE_COLUMNS} FROM procedures
                 WHERE ($1::text IS NULL OR project_id = $1) AND ($2::text IS NULL OR status = $2)
                   AND ($3::text IS NULL OR procedure_id = $3)
                 ORDER BY created_at DESC, id DESC"
            ))
            .await?;
        c.query(&stmt, &[&filter.project_id, &filter.status, &filter.procedure_id])
            .await?
            .iter()
            .map(procedure_row)
            .collect()
    }

    /// Replaces the document and derived fields of an existing version.
    pub async fn update_procedure(&self, record: ProcedureRecord) -> Result<ProcedureRecord, StoreError> {
        let r = &record;
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE procedures SET name = $3, status = $4, effective_date = $5, description = $6, ckp_json = $7,
                     provenance = $8, retrieval_metadata = $9, trigger_config = $10, updated_at = now()
                 WHERE procedure_id = $1 AND version = $2",
                &[
                    &r.procedure_id,
                    &r.version,
                    &r.name,
                    &r.status,
                    &r.effective_date,
                    &r.description,
                    &r.ckp_json,
                    &r.provenance,
                    &r.retrieval_metadata,
                    &r.trigger_config,
                ],
            )
            .await?;
        self.publish_procedures();
        if n == 0 {
            return Err(StoreError::NotFound("Procedure not found".into()));
        }
        get_procedure_in(&c, &r.procedure_id, Some(&r.version))
            .await?
            .ok_or_else(|| StoreError::NotFound("Procedure not found".into()))
    }

    /// Sets the lifecycle status of a version (row and stored document).
    pub async fn set_procedure_status(
        &self,
        id: &str,
        version: &str,
        status: &str,
        ckp_json: String,
    ) -> Result<ProcedureRecord, StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE procedures SET status = $3, ckp_json = $4, updated_at = now() WHERE procedure_id = $1 AND version = $2",
            &[&id, &version, &status, &ckp_json],
        )
        .await?;
        self.publish_procedures();
        get_procedure_in(&c, id, Some(version)).await?.ok_or_else(|| StoreError::NotFound("Procedure not found".into()))
    }

    /// Deletes one version; one with runs in progress is a conflict.
    pub async fn delete_procedure(&self, id: &str, version: &str) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Serialized with concurrent changes of the same version.
        tx.execute("SELECT 1 FROM procedures WHERE procedure_id = $1 AND version = $2 FOR UPDATE", &[&id, &version])
            .await?;
        let active: i64 = tx
            .query_one(
                "SELECT count(*) FROM runs WHERE procedure_id = $1 AND procedure_version = $2
                   AND status NOT IN ('completed', 'failed', 'canceled')",
                &[&id, &version],
            )
            .await?
            .try_get(0)?;
        if active > 0 {
            return Err(StoreError::Conflict(format!(
                "Procedure {id} version {version} has {active} run(s) in progress; cancel them or let them finish first"
            )));
        }
        let n = tx.execute("DELETE FROM procedures WHERE procedure_id = $1 AND version = $2", &[&id, &version]).await?;
        tx.commit().await?;
        self.publish_procedures();
        if n == 0 { Err(StoreError::NotFound("Procedure not found".into())) } else { Ok(()) }
    }

    /// Creates a project.
    pub async fn create_project(&self, name: &str, description: Option<String>) -> Result<ProjectRow, StoreError> {
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
    }

    /// Projects by name.
    pub async fn list_projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        let c = self.client().await?;
        c.query("SELECT project_id, name, description, created_at FROM projects ORDER BY name, project_id", &[])
            .await?
            .iter()
            .map(project_row)
            .collect()
    }

    /// One project.
    pub async fn get_project(&self, id: &str) -> Result<Option<ProjectRow>, StoreError> {
        get_project_in(&self.client().await?, id).await
    }

    /// Renames or redescribes a project.
    pub async fn update_project(
        &self,
        id: &str,
        name: Option<String>,
        description: Option<String>,
    ) -> Result<ProjectRow, StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE projects SET name = coalesce($2, name), description = coalesce($3, description) WHERE project_id = $1",
            &[&id, &name, &description],
        )
        .await?;
        get_project_in(&c, id).await?.ok_or_else(|| StoreError::NotFound(format!("Project {id} not found")))
    }

    /// Deletes a project; one still referenced by procedures or runs is a conflict.
    pub async fn delete_project(&self, id: &str) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        if tx.query_opt("SELECT 1 FROM projects WHERE project_id = $1 FOR UPDATE", &[&id]).await?.is_none() {
            return Err(StoreError::NotFound(format!("Project {id} not found")));
        }
        let used: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM procedures WHERE project_id = $1) + (SELECT count(*) FROM runs WHERE project_id = $1)",
                &[&id],
            )
            .await?
            .try_get(0)?;
        if used > 0 {
            return Err(StoreError::Conflict(format!("Project {id} is still used by {used} procedure(s) or run(s)")));
        }
        tx.execute("DELETE FROM projects WHERE project_id = $1", &[&id]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// LLM usage of the runs of a project created since `since`.
    pub async fn project_costs(&self, id: &str, since: DateTime<Utc>) -> Result<CostSummary, StoreError> {
        let c = self.client().await?;
        let r = c
            .query_one(
                "SELECT count(*), coalesce(sum(prompt_tokens), 0)::bigint, coalesce(sum(completion_tokens), 0)::bigint,
                        coalesce(sum(cost_usd), 0.0)::double precision
                 FROM runs WHERE project_id = $1 AND created_at >= $2",
                &[&id, &since],
            )
            .await?;
        Ok(CostSummary {
            run_count: r.try_get(0)?,
            prompt_tokens: r.try_get(1)?,
            completion_tokens: r.try_get(2)?,
            cost_usd: r.try_get(3)?,
        })
    }

    /// Registers an agent; a taken id is a conflict.
    pub async fn insert_agent(&self, mut agent: AgentRow) -> Result<AgentRow, StoreError> {
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
                    &a.status,
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
    }

    /// Agents by name.
    pub async fn list_agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name, agent_id")).await?;
        c.query(&stmt, &[]).await?.iter().map(agent_row).collect()
    }

    /// One agent.
    pub async fn get_agent(&self, id: &str) -> Result<Option<AgentRow>, StoreError> {
        get_agent_in(&self.client().await?, id).await
    }

    /// Updates an agent; marking it online closes its circuit and clears its failures.
    pub async fn update_agent(&self, id: &str, update: AgentUpdate) -> Result<AgentRow, StoreError> {
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
                    &update.status,
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
    }

    /// Records a health check of an agent (see the SQLite store).
    pub async fn record_agent_health(&self, id: &str, ok: bool, offline_after: i64) -> Result<AgentRow, StoreError> {
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
    }

    /// Removes an agent.
    pub async fn delete_agent(&self, id: &str) -> Result<(), StoreError> {
        let n = self.exec("DELETE FROM agents WHERE agent_id = $1", &[&id]).await?;
        if n == 0 { Err(agent_not_found(id)) } else { Ok(()) }
    }

    /// Takes a lease on `resource_key` if fewer than `limit` are active; None when the resource is busy.
    pub async fn acquire_lease(
        &self,
        resource_key: &str,
        limit: i64,
        run_id: &str,
        node_id: Option<String>,
        step_id: Option<String>,
        ttl: chrono::Duration,
    ) -> Result<Option<LeaseRow>, StoreError> {
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
    }

    /// Extends an unreleased lease to `ttl` from now; false when it was released meanwhile.
    pub async fn renew_lease(&self, lease_id: &str, ttl: chrono::Duration) -> Result<bool, StoreError> {
        let until = Utc::now() + ttl;
        let n = self
            .exec("UPDATE leases SET expires_at = $2 WHERE lease_id = $1 AND released_at IS NULL", &[&lease_id, &until])
            .await?;
        Ok(n == 1)
    }

    /// Leases, newest first, optionally for one resource.
    pub async fn list_leases(&self, resource_key: Option<String>) -> Result<Vec<LeaseRow>, StoreError> {
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
    }

    /// Unreleased leases of a run.
    pub async fn run_leases(&self, run_id: &str) -> Result<Vec<LeaseRow>, StoreError> {
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
    }

    /// Releases a lease; false when it was unknown or already released.
    pub async fn release_lease(&self, lease_id: &str) -> Result<bool, StoreError> {
        let n = self
            .exec("UPDATE leases SET released_at = now() WHERE lease_id = $1 AND released_at IS NULL", &[&lease_id])
            .await?;
        Ok(n == 1)
    }

    /// Artifact metadata of a run, oldest first.
    pub async fn run_artifacts(&self, run_id: &str) -> Result<Vec<ArtifactRow>, StoreError> {
        let c = self.client().await?;
        c.query(
            "SELECT artifact_id, run_id, node_id, step_id, kind, uri, name, mime_type, size_bytes, created_at
             FROM artifacts WHERE run_id = $1 ORDER BY created_at, artifact_id",
            &[&run_id],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(ArtifactRow {
                artifact_id: r.try_get(0)?,
                run_id: r.try_get(1)?,
                node_id: r.try_get(2)?,
                step_id: r.try_get(3)?,
                kind: r.try_get(4)?,
                uri: r.try_get(5)?,
                name: r.try_get(6)?,
                mime_type: r.try_get(7)?,
                size_bytes: r.try_get(8)?,
                created_at: t(r, 9)?,
            })
        })
        .collect()
    }
}
