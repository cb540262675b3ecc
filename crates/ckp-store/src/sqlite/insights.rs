//! [`InsightStore`] on SQLite: statistics aggregated by SQLite (`GROUP BY` per bucket, window functions for the
//! percentiles) on one read connection, and a bounded search. Times are RFC 3339 text, so a window is a text range
//! and a bucket index is computed from `strftime('%s', ...)`, whole seconds (bucket bounds are whole seconds).

use ckp_engine::effects::BoxFuture;
use rusqlite::params;

use super::SqliteStore;
use crate::StoreError;
use crate::codec::{string_list, ts};
use crate::row::RowSource;
use crate::store::{
    AgentHit, ENDED, InsightStore, PER_PROCEDURE, ProcedureHit, RANKED, RunHit, RunStats, SearchHits, SearchQuery,
    StatsQuery, StatsRows, contains_pattern, count_of, prefix_pattern,
};

/// The filters every statistics statement applies: ?1 project, ?2 procedure, ?3 visible projects (a JSON list).
/// The window's parameters follow them.
const FILTER: &str = "(?1 IS NULL OR project_id = ?1) AND (?2 IS NULL OR procedure_id = ?2)
    AND (?3 IS NULL OR project_id IN (SELECT value FROM json_each(?3)))";

/// A time column's bucket: ?6 is the window's start in Unix seconds, ?7 the bucket width.
fn bucket(col: &str) -> String {
    format!("(CAST(strftime('%s', {col}) AS INTEGER) - ?6) / ?7")
}

impl InsightStore for SqliteStore {
    fn run_stats(&self, q: StatsQuery) -> BoxFuture<'_, Result<RunStats, StoreError>> {
        Box::pin(self.read_store(move |c| {
            let projects = q.projects.as_deref().map(string_list);
            let (from, to) = (ts(q.from), ts(q.to));
            let (start, width) = (q.from.timestamp(), q.bucket_seconds.max(1));
            let created: Vec<_> = c
                .prepare_cached(&format!(
                    "SELECT {} AS i, count(*) FROM runs WHERE created_at >= ?4 AND created_at < ?5 AND {FILTER}
                     GROUP BY i",
                    bucket("created_at")
                ))?
                .query_map(params![q.project_id, q.procedure_id, projects, from, to, start, width], |r| {
                    Ok((r.int(0)?, r.int(1)?))
                })?
                .collect::<Result<_, _>>()?;
            let ended: Vec<_> = c
                .prepare_cached(&format!(
                    "SELECT {} AS i, status, count(*) FROM runs
                     WHERE ended_at >= ?4 AND ended_at < ?5 AND status IN {ENDED} AND {FILTER} GROUP BY i, status",
                    bucket("ended_at")
                ))?
                .query_map(params![q.project_id, q.procedure_id, projects, from, to, start, width], |r| {
                    Ok((r.int(0)?, r.parsed(1)?, r.int(2)?))
                })?
                .collect::<Result<_, _>>()?;
            let gauges: Vec<_> = c
                .prepare_cached(&format!(
                    "SELECT status, count(*) FROM runs WHERE status IN ('running', 'waiting_approval') AND {FILTER}
                     GROUP BY status"
                ))?
                .query_map(params![q.project_id, q.procedure_id, projects], |r| count_of(r))?
                .collect::<Result<_, _>>()?;
            let top: Vec<_> = c
                .prepare_cached(&format!(
                    "SELECT procedure_id, count(*) AS total, coalesce(sum(cost_usd), 0.0) FROM runs
                     WHERE created_at >= ?4 AND created_at < ?5 AND {FILTER}
                     GROUP BY procedure_id ORDER BY total DESC, procedure_id LIMIT ?6"
                ))?
                .query_map(params![q.project_id, q.procedure_id, projects, from, to, q.top], |r| {
                    Ok((r.text(0)?, r.int(1)?, r.float(2)?))
                })?
                .collect::<Result<_, _>>()?;
            let top_ids: Vec<String> = top.iter().map(|t| t.0.clone()).collect();
            let ended_by_procedure: Vec<_> = c
                .prepare_cached(&format!(
                    "WITH d AS (
                         SELECT procedure_id, status, (julianday(ended_at) - julianday(started_at)) * 86400.0 AS secs
                         FROM runs
                         WHERE ended_at >= ?4 AND ended_at < ?5 AND status IN {ENDED} AND {FILTER}
                           AND procedure_id IN (SELECT value FROM json_each(?6))
                     ), r AS ({RANKED})
                     {PER_PROCEDURE}"
                ))?
                .query_map(params![q.project_id, q.procedure_id, projects, from, to, string_list(&top_ids)], |r| {
                    Ok((r.text(0)?, r.int(1)?, r.int(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<_, _>>()?;
            Ok(StatsRows { created, ended, gauges, top, ended_by_procedure }.into_stats(q.bucket_count()))
        }))
    }

    fn search(&self, q: SearchQuery) -> BoxFuture<'_, Result<SearchHits, StoreError>> {
        Box::pin(self.read_store(move |c| {
            let contains = contains_pattern(&q.text);
            let projects = q.projects.as_deref().map(string_list);
            let procedures = c
                .prepare_cached(
                    "SELECT procedure_id, version, name, status, project_id FROM procedures p
                     WHERE rowid = (SELECT rowid FROM procedures l WHERE l.procedure_id = p.procedure_id
                                    ORDER BY created_at DESC, rowid DESC LIMIT 1)
                       AND (lower(procedure_id) LIKE lower(?1) ESCAPE '\\' OR lower(name) LIKE lower(?1) ESCAPE '\\')
                       AND (?3 IS NULL OR project_id IN (SELECT value FROM json_each(?3)))
                     ORDER BY procedure_id LIMIT ?2",
                )?
                .query_map(params![contains, q.limit, projects], |r| {
                    Ok(ProcedureHit {
                        procedure_id: r.text(0)?,
                        version: r.text(1)?,
                        name: r.text(2)?,
                        status: r.parsed(3)?,
                        project_id: r.opt_text(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let runs = c
                .prepare_cached(
                    "SELECT run_id, procedure_id, procedure_version, status, created_at FROM runs
                     WHERE (lower(run_id) LIKE lower(?1) ESCAPE '\\' OR lower(procedure_id) LIKE lower(?2) ESCAPE '\\')
                       AND (?4 IS NULL OR project_id IN (SELECT value FROM json_each(?4)))
                     ORDER BY created_at DESC, run_id DESC LIMIT ?3",
                )?
                .query_map(params![prefix_pattern(&q.text), contains, q.limit, projects], |r| {
                    Ok(RunHit {
                        run_id: r.text(0)?,
                        procedure_id: r.text(1)?,
                        procedure_version: r.text(2)?,
                        status: r.parsed(3)?,
                        created_at: r.time(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let agents = c
                .prepare_cached(
                    "SELECT agent_id, name, status, channel FROM agents
                     WHERE lower(agent_id) LIKE lower(?1) ESCAPE '\\' OR lower(name) LIKE lower(?1) ESCAPE '\\'
                     ORDER BY name, agent_id LIMIT ?2",
                )?
                .query_map(params![contains, q.limit], |r| {
                    Ok(AgentHit { agent_id: r.text(0)?, name: r.text(1)?, status: r.parsed(2)?, channel: r.text(3)? })
                })?
                .collect::<Result<_, _>>()?;
            Ok(SearchHits { procedures, runs, agents })
        }))
    }
}
