//! Projects, agents, resource leases and artifact metadata: small tables with plain CRUD. Duplicates are
//! [`StoreError::Conflict`], unknown ids [`StoreError::NotFound`]; nothing here is ever a silent overwrite.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use crate::StoreError;
use crate::sqlite::{SqliteStore, ts};

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
    /// online, offline, ...
    pub status: String,
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
    pub status: Option<String>,
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

const AGENT_COLUMNS: &str = "agent_id, name, channel, base_url, status, concurrency_limit, resource_key, pool_id,
    capabilities, consecutive_failures, circuit_open_at, last_heartbeat_at, updated_at";

fn agent_row(r: &rusqlite::Row<'_>) -> Result<AgentRow, rusqlite::Error> {
    let caps: String = r.get(8)?;
    Ok(AgentRow {
        agent_id: r.get(0)?,
        name: r.get(1)?,
        channel: r.get(2)?,
        base_url: r.get(3)?,
        status: r.get(4)?,
        concurrency_limit: r.get(5)?,
        resource_key: r.get(6)?,
        pool_id: r.get(7)?,
        capabilities: serde_json::from_str(&caps).unwrap_or(Value::Array(Vec::new())),
        consecutive_failures: r.get(9)?,
        circuit_open_at: r.get(10)?,
        last_heartbeat_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

fn get_agent_in(c: &rusqlite::Connection, id: &str) -> Result<Option<AgentRow>, rusqlite::Error> {
    c.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE agent_id = ?1"))?
        .query_row(params![id], agent_row)
        .optional()
}

fn project_row(r: &rusqlite::Row<'_>) -> Result<ProjectRow, rusqlite::Error> {
    Ok(ProjectRow { project_id: r.get(0)?, name: r.get(1)?, description: r.get(2)?, created_at: r.get(3)? })
}

fn get_project_in(c: &rusqlite::Connection, id: &str) -> Result<Option<ProjectRow>, rusqlite::Error> {
    c.prepare_cached("SELECT project_id, name, description, created_at FROM projects WHERE project_id = ?1")?
        .query_row(params![id], project_row)
        .optional()
}

fn lease_row(r: &rusqlite::Row<'_>) -> Result<LeaseRow, rusqlite::Error> {
    Ok(LeaseRow {
        lease_id: r.get(0)?,
        resource_key: r.get(1)?,
        run_id: r.get(2)?,
        node_id: r.get(3)?,
        step_id: r.get(4)?,
        acquired_at: r.get(5)?,
        expires_at: r.get(6)?,
        released_at: r.get(7)?,
    })
}

const LEASE_COLUMNS: &str = "lease_id, resource_key, run_id, node_id, step_id, acquired_at, expires_at, released_at";

impl SqliteStore {
    /// Creates a project.
    pub async fn create_project(&self, name: &str, description: Option<String>) -> Result<ProjectRow, StoreError> {
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
    }

    /// Projects by name.
    pub async fn list_projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        self.read_store(|c| {
            c.prepare_cached(
                "SELECT project_id, name, description, created_at FROM projects ORDER BY name, project_id",
            )?
            .query_map([], project_row)?
            .collect()
        })
        .await
    }

    /// One project.
    pub async fn get_project(&self, id: &str) -> Result<Option<ProjectRow>, StoreError> {
        let id = id.to_owned();
        self.read_store(move |c| get_project_in(c, &id)).await
    }

    /// Renames or redescribes a project.
    pub async fn update_project(
        &self,
        id: &str,
        name: Option<String>,
        description: Option<String>,
    ) -> Result<ProjectRow, StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE projects SET name = coalesce(?2, name), description = coalesce(?3, description) WHERE project_id = ?1",
            )?
            .execute(params![id, name, description])?;
            get_project_in(tx, &id).map(|p| p.ok_or_else(|| StoreError::NotFound(format!("Project {id} not found"))))
        })
        .await?
    }

    /// Deletes a project. One still referenced by procedures or runs is a conflict.
    pub async fn delete_project(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            if get_project_in(tx, &id)?.is_none() {
                return Ok(Err(StoreError::NotFound(format!("Project {id} not found"))));
            }
            let used: i64 = tx
                .prepare_cached(
                    "SELECT (SELECT count(*) FROM procedures WHERE project_id = ?1) + (SELECT count(*) FROM runs WHERE project_id = ?1)",
                )?
                .query_row(params![id], |r| r.get(0))?;
            if used > 0 {
                return Ok(Err(StoreError::Conflict(format!(
                    "Project {id} is still used by {used} procedure(s) or run(s)"
                ))));
            }
            tx.prepare_cached("DELETE FROM projects WHERE project_id = ?1")?.execute(params![id])?;
            Ok(Ok(()))
        })
        .await?
    }

    /// LLM usage of the runs of a project created since `since`.
    pub async fn project_costs(&self, id: &str, since: DateTime<Utc>) -> Result<CostSummary, StoreError> {
        let id = id.to_owned();
        self.read_store(move |c| {
            c.prepare_cached(
                "SELECT count(*), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
                        coalesce(sum(cost_usd), 0.0)
                 FROM runs WHERE project_id = ?1 AND created_at >= ?2",
            )?
            .query_row(params![id, ts(since)], |r| {
                Ok(CostSummary {
                    run_count: r.get(0)?,
                    prompt_tokens: r.get(1)?,
                    completion_tokens: r.get(2)?,
                    cost_usd: r.get(3)?,
                })
            })
        })
        .await
    }

    /// Registers an agent; a taken id is a conflict.
    pub async fn insert_agent(&self, mut agent: AgentRow) -> Result<AgentRow, StoreError> {
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
                a.status,
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
    }

    /// Agents by name.
    pub async fn list_agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        self.read_store(|c| {
            c.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name, agent_id"))?
                .query_map([], agent_row)?
                .collect()
        })
        .await
    }

    /// One agent.
    pub async fn get_agent(&self, id: &str) -> Result<Option<AgentRow>, StoreError> {
        let id = id.to_owned();
        self.read_store(move |c| get_agent_in(c, &id)).await
    }

    /// Updates an agent. Marking it online closes its circuit and clears its failures.
    pub async fn update_agent(&self, id: &str, update: AgentUpdate) -> Result<AgentRow, StoreError> {
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
                    update.status,
                    update.base_url,
                    update.concurrency_limit,
                    update.capabilities.as_ref().map(Value::to_string),
                    update.pool_id,
                    ts(Utc::now())
                ])?;
            if n == 0 {
                return Ok(Err(StoreError::NotFound(format!("Agent {id} not found"))));
            }
            Ok(get_agent_in(tx, &id)?.ok_or_else(|| StoreError::NotFound(format!("Agent {id} not found"))))
        })
        .await?
    }

    /// Records a health check of an agent in one transaction. A success marks it online and resets its failures
    /// and circuit; a failure counts, and at `offline_after` consecutive failures the agent goes offline and its
    /// circuit opens (dispatch skips it; after the reset period a half-open probe may close it again).
    pub async fn record_agent_health(&self, id: &str, ok: bool, offline_after: i64) -> Result<AgentRow, StoreError> {
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
                return Ok(Err(StoreError::NotFound(format!("Agent {id} not found"))));
            }
            Ok(get_agent_in(tx, &id)?.ok_or_else(|| StoreError::NotFound(format!("Agent {id} not found"))))
        })
        .await?
    }

    /// Removes an agent.
    pub async fn delete_agent(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        let n = self
            .write({
                let id = id.clone();
                move |tx| tx.prepare_cached("DELETE FROM agents WHERE agent_id = ?1")?.execute(params![id])
            })
            .await?;
        if n == 0 { Err(StoreError::NotFound(format!("Agent {id} not found"))) } else { Ok(()) }
    }

    /// Takes a lease on `resource_key` for a step if fewer than `limit` are active; None when the resource is busy.
    /// Counting and inserting happen in one writer transaction, so concurrent steps cannot oversubscribe.
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
                    .query_row(params![l.resource_key, l.run_id, l.node_id, l.step_id], lease_row)
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
    }

    /// Extends an unreleased lease to `ttl` from now. False when it was released (revoked) meanwhile.
    pub async fn renew_lease(&self, lease_id: &str, ttl: chrono::Duration) -> Result<bool, StoreError> {
        let id = lease_id.to_owned();
        let until = ts(Utc::now() + ttl);
        let n = self
            .write(move |tx| {
                tx.prepare_cached("UPDATE leases SET expires_at = ?2 WHERE lease_id = ?1 AND released_at IS NULL")?
                    .execute(params![id, until])
            })
            .await?;
        Ok(n == 1)
    }

    /// Leases, newest first, optionally for one resource.
    pub async fn list_leases(&self, resource_key: Option<String>) -> Result<Vec<LeaseRow>, StoreError> {
        self.read_store(move |c| {
            c.prepare_cached(&format!(
                "SELECT {LEASE_COLUMNS} FROM leases WHERE (?1 IS NULL OR resource_key = ?1) ORDER BY acquired_at DESC, lease_id"
            ))?
            .query_map(params![resource_key], lease_row)?
            .collect()
        })
        .await
    }

    /// Unreleased leases of a run.
    pub async fn run_leases(&self, run_id: &str) -> Result<Vec<LeaseRow>, StoreError> {
        let run_id = run_id.to_owned();
        self.read_store(move |c| {
            c.prepare_cached(&format!(
                "SELECT {LEASE_COLUMNS} FROM leases WHERE run_id = ?1 AND released_at IS NULL ORDER BY acquired_at"
            ))?
            .query_map(params![run_id], lease_row)?
            .collect()
        })
        .await
    }

    /// Releases a lease. False when it was unknown or already released.
    pub async fn release_lease(&self, lease_id: &str) -> Result<bool, StoreError> {
        let id = lease_id.to_owned();
        let now = ts(Utc::now());
        let n = self
            .write(move |tx| {
                tx.prepare_cached("UPDATE leases SET released_at = ?2 WHERE lease_id = ?1 AND released_at IS NULL")?
                    .execute(params![id, now])
            })
            .await?;
        Ok(n == 1)
    }

    /// Artifact metadata of a run, oldest first.
    pub async fn run_artifacts(&self, run_id: &str) -> Result<Vec<ArtifactRow>, StoreError> {
        let run_id = run_id.to_owned();
        self.read_store(move |c| {
            c.prepare_cached(
                "SELECT artifact_id, run_id, node_id, step_id, kind, uri, name, mime_type, size_bytes, created_at
                 FROM artifacts WHERE run_id = ?1 ORDER BY created_at, artifact_id",
            )?
            .query_map(params![run_id], |r| {
                Ok(ArtifactRow {
                    artifact_id: r.get(0)?,
                    run_id: r.get(1)?,
                    node_id: r.get(2)?,
                    step_id: r.get(3)?,
                    kind: r.get(4)?,
                    uri: r.get(5)?,
                    name: r.get(6)?,
                    mime_type: r.get(7)?,
                    size_bytes: r.get(8)?,
                    created_at: r.get(9)?,
                })
            })?
            .collect()
        })
        .await
    }
}
