//! [`InsightStore`] on PostgreSQL: the same statements as the SQLite store's (`GROUP BY` per bucket, window
//! functions for the percentiles) over `timestamptz` columns, and the same bounded search. Aggregation happens in
//! PostgreSQL; this process receives one row per bucket and per top procedure.

use ckp_engine::effects::BoxFuture;

use super::PgStore;
use crate::StoreError;
use crate::row::RowSource;
use crate::store::{
    AgentHit, ENDED, InsightStore, PER_PROCEDURE, ProcedureHit, RANKED, RunHit, RunStats, SearchHits, SearchQuery,
    StatsQuery, StatsRows, contains_pattern, count_of, prefix_pattern,
};

/// The filters every statistics statement applies: $1 project, $2 procedure, $3 visible projects. The window's
/// parameters follow them.
const FILTER: &str = "($1::text IS NULL OR project_id = $1) AND ($2::text IS NULL OR procedure_id = $2)
    AND ($3::text[] IS NULL OR project_id = ANY($3))";

/// A time column's bucket: $6 is the window's start in Unix seconds, $7 the bucket width.
fn bucket(col: &str) -> String {
    format!("(floor(extract(epoch FROM {col}))::bigint - $6::bigint) / $7::bigint")
}

impl InsightStore for PgStore {
    fn run_stats(&self, q: StatsQuery) -> BoxFuture<'_, Result<RunStats, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let (start, width) = (q.from.timestamp(), q.bucket_seconds.max(1));
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {} AS i, count(*) FROM runs WHERE created_at >= $4 AND created_at < $5 AND {FILTER}
                     GROUP BY i",
                    bucket("created_at")
                ))
                .await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
                [&q.project_id, &q.procedure_id, &q.projects, &q.from, &q.to, &start, &width];
            let created: Vec<_> = c
                .query(&stmt, &params)
                .await?
                .iter()
                .map(|r| Ok((r.int(0)?, r.int(1)?)))
                .collect::<Result<_, StoreError>>()?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {} AS i, status, count(*) FROM runs
                     WHERE ended_at >= $4 AND ended_at < $5 AND status IN {ENDED} AND {FILTER} GROUP BY i, status",
                    bucket("ended_at")
                ))
                .await?;
            let ended: Vec<_> = c
                .query(&stmt, &params)
                .await?
                .iter()
                .map(|r| Ok((r.int(0)?, r.parsed(1)?, r.int(2)?)))
                .collect::<Result<_, StoreError>>()?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT status, count(*) FROM runs WHERE status IN ('running', 'waiting_approval') AND {FILTER}
                     GROUP BY status"
                ))
                .await?;
            let gauges: Vec<_> =
                c.query(&stmt, &params[..3]).await?.iter().map(count_of).collect::<Result<_, StoreError>>()?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT procedure_id, count(*) AS total, coalesce(sum(cost_usd), 0)::float8 FROM runs
                     WHERE created_at >= $4 AND created_at < $5 AND {FILTER}
                     GROUP BY procedure_id ORDER BY total DESC, procedure_id LIMIT $6"
                ))
                .await?;
            let top: Vec<_> = c
                .query(&stmt, &[&q.project_id, &q.procedure_id, &q.projects, &q.from, &q.to, &q.top])
                .await?
                .iter()
                .map(|r| Ok((r.text(0)?, r.int(1)?, r.float(2)?)))
                .collect::<Result<_, StoreError>>()?;
            let top_ids: Vec<String> = top.iter().map(|t| t.0.clone()).collect();
            let stmt = c
                .prepare_cached(&format!(
                    "WITH d AS (
                         SELECT procedure_id, status, extract(epoch FROM ended_at - started_at)::float8 AS secs
                         FROM runs
                         WHERE ended_at >= $4 AND ended_at < $5 AND status IN {ENDED} AND {FILTER}
                           AND procedure_id = ANY($6)
                     ), r AS ({RANKED})
                     {PER_PROCEDURE}"
                ))
                .await?;
            let ended_by_procedure: Vec<_> = c
                .query(&stmt, &[&q.project_id, &q.procedure_id, &q.projects, &q.from, &q.to, &top_ids])
                .await?
                .iter()
                .map(|r| Ok((r.text(0)?, r.int(1)?, r.int(2)?, r.try_get(3)?, r.try_get(4)?)))
                .collect::<Result<_, StoreError>>()?;
            Ok(StatsRows { created, ended, gauges, top, ended_by_procedure }.into_stats(q.bucket_count()))
        })
    }

    fn search(&self, q: SearchQuery) -> BoxFuture<'_, Result<SearchHits, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let contains = contains_pattern(&q.text);
            let stmt = c
                .prepare_cached(
                    "SELECT procedure_id, version, name, status, project_id FROM procedures p
                     WHERE id = (SELECT id FROM procedures l WHERE l.procedure_id = p.procedure_id
                                 ORDER BY created_at DESC, id DESC LIMIT 1)
                       AND (lower(procedure_id) LIKE lower($1) ESCAPE '\\' OR lower(name) LIKE lower($1) ESCAPE '\\')
                       AND ($3::text[] IS NULL OR project_id = ANY($3))
                     ORDER BY procedure_id LIMIT $2",
                )
                .await?;
            let procedures = c
                .query(&stmt, &[&contains, &q.limit, &q.projects])
                .await?
                .iter()
                .map(|r| {
                    Ok(ProcedureHit {
                        procedure_id: r.text(0)?,
                        version: r.text(1)?,
                        name: r.text(2)?,
                        status: r.parsed(3)?,
                        project_id: r.opt_text(4)?,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            let stmt = c
                .prepare_cached(
                    "SELECT run_id, procedure_id, procedure_version, status, created_at FROM runs
                     WHERE (lower(run_id) LIKE lower($1) ESCAPE '\\' OR lower(procedure_id) LIKE lower($2) ESCAPE '\\')
                       AND ($4::text[] IS NULL OR project_id = ANY($4))
                     ORDER BY created_at DESC, run_id DESC LIMIT $3",
                )
                .await?;
            let runs = c
                .query(&stmt, &[&prefix_pattern(&q.text), &contains, &q.limit, &q.projects])
                .await?
                .iter()
                .map(|r| {
                    Ok(RunHit {
                        run_id: r.text(0)?,
                        procedure_id: r.text(1)?,
                        procedure_version: r.text(2)?,
                        status: r.parsed(3)?,
                        created_at: r.time(4)?,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            let stmt = c
                .prepare_cached(
                    "SELECT agent_id, name, status, channel FROM agents
                     WHERE lower(agent_id) LIKE lower($1) ESCAPE '\\' OR lower(name) LIKE lower($1) ESCAPE '\\'
                     ORDER BY name, agent_id LIMIT $2",
                )
                .await?;
            let agents = c
                .query(&stmt, &[&contains, &q.limit])
                .await?
                .iter()
                .map(|r| {
                    Ok(AgentHit { agent_id: r.text(0)?, name: r.text(1)?, status: r.parsed(2)?, channel: r.text(3)? })
                })
                .collect::<Result<_, StoreError>>()?;
            Ok(SearchHits { procedures, runs, agents })
        })
    }
}
