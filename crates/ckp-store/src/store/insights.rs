//! [`InsightStore`]: what the console's dashboard, metrics page and global search read across many rows. Everything
//! is aggregated or limited by the database: a statistics answer holds one row per time bucket and per top
//! procedure, a search answer at most `limit` rows per kind, whatever the number of runs. The rows and the pieces
//! of the statements both backends share are here; the statements themselves are in each backend's `insights.rs`.

use chrono::{DateTime, Utc};
use ckp_engine::effects::BoxFuture;

use crate::StoreError;
use crate::status::{AgentStatus, ProcedureStatus, RunStatus};

/// Reads for the console across runs, procedures and agents.
pub trait InsightStore: Send + Sync {
    /// Run counts per time bucket, current gauges and the busiest procedures of a window (see [`RunStats`]).
    fn run_stats(&self, query: StatsQuery) -> BoxFuture<'_, Result<RunStats, StoreError>>;
    /// Procedures (latest version), runs and agents matching a text (see [`SearchQuery`]).
    fn search(&self, query: SearchQuery) -> BoxFuture<'_, Result<SearchHits, StoreError>>;
}

/// The window and filters of [`InsightStore::run_stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsQuery {
    /// Start of the first bucket (inclusive).
    pub from: DateTime<Utc>,
    /// End of the window (exclusive): `from` plus a whole number of buckets.
    pub to: DateTime<Utc>,
    /// Width of a bucket; bucket `i` starts at `from + i * bucket_seconds`.
    pub bucket_seconds: i64,
    /// Only runs of this project.
    pub project_id: Option<String>,
    /// Only runs of this procedure.
    pub procedure_id: Option<String>,
    /// Only runs of these projects (a run with no project is left out): what a user may see. `None`: every run.
    pub projects: Option<Vec<String>>,
    /// How many procedures [`RunStats::by_procedure`] keeps.
    pub top: i64,
}

impl StatsQuery {
    /// The number of buckets covering the window.
    pub fn bucket_count(&self) -> usize {
        let span = (self.to - self.from).num_seconds().max(0);
        let width = self.bucket_seconds.max(1);
        usize::try_from((span + width - 1) / width).unwrap_or(0)
    }
}

/// Runs created and ended in one time bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketCounts {
    /// Runs created in the bucket.
    pub created: i64,
    /// Runs that completed in the bucket (by `ended_at`).
    pub completed: i64,
    /// Runs that failed in the bucket.
    pub failed: i64,
    /// Runs canceled in the bucket.
    pub canceled: i64,
}

/// One procedure's figures in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcedureStats {
    /// The procedure.
    pub procedure_id: String,
    /// Its runs created in the window (the ranking key).
    pub total: i64,
    /// Its runs that completed in the window.
    pub completed: i64,
    /// Its runs that failed in the window.
    pub failed: i64,
    /// Median of `ended_at - started_at` over its runs that ended in the window (None: none ended after starting).
    pub p50_seconds: Option<f64>,
    /// 95th percentile of the same durations (nearest rank).
    pub p95_seconds: Option<f64>,
    /// LLM cost of its runs created in the window.
    pub cost_usd: f64,
}

/// The answer of [`InsightStore::run_stats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    /// One entry per bucket of the window, in time order, zeros included.
    pub buckets: Vec<BucketCounts>,
    /// Runs running now (whenever they were created).
    pub running: i64,
    /// Runs waiting for a decision now (whenever they were created).
    pub waiting_approval: i64,
    /// The procedures with the most runs created in the window, most first (ties by id).
    pub by_procedure: Vec<ProcedureStats>,
}

/// What [`InsightStore::search`] looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The text: matched case-insensitively as a substring of procedure ids and names, run procedure ids, agent
    /// ids and names, and as a prefix of run ids. `%`, `_` and `\` match themselves.
    pub text: String,
    /// At most this many rows of each kind.
    pub limit: i64,
    /// Only procedures and runs of these projects: what a user may see. `None`: all. Agents belong to no project.
    pub projects: Option<Vec<String>>,
}

/// A procedure found by a search (its latest version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureHit {
    /// The procedure.
    pub procedure_id: String,
    /// Its latest version.
    pub version: String,
    /// That version's name.
    pub name: String,
    /// That version's status.
    pub status: ProcedureStatus,
    /// Its project.
    pub project_id: Option<String>,
}

/// A run found by a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunHit {
    /// The run.
    pub run_id: String,
    /// Its procedure.
    pub procedure_id: String,
    /// The version it runs.
    pub procedure_version: String,
    /// Where it is.
    pub status: RunStatus,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// An agent found by a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentHit {
    /// The agent.
    pub agent_id: String,
    /// Its name.
    pub name: String,
    /// Whether dispatch sends it steps.
    pub status: AgentStatus,
    /// Its channel.
    pub channel: String,
}

/// The answer of [`InsightStore::search`]: procedures by id, runs newest first, agents by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchHits {
    /// Procedures.
    pub procedures: Vec<ProcedureHit>,
    /// Runs.
    pub runs: Vec<RunHit>,
    /// Agents.
    pub agents: Vec<AgentHit>,
}

/// The `LIKE` pattern of a case-insensitive prefix search (escaped as [`super::contains_pattern`] does).
pub(crate) fn prefix_pattern(search: &str) -> String {
    let mut pattern = super::contains_pattern(search);
    pattern.remove(0);
    pattern
}

/// The statuses a run can end with, in the order [`BucketCounts`] and the statements count them.
pub(crate) const ENDED: &str = "('completed', 'failed', 'canceled')";

/// The duration rows `d` (procedure, status, secs) ranked per procedure: durations in order, those without a start
/// last (`secs IS NULL` sorts false first on both backends), `n` the number with one.
pub(crate) const RANKED: &str = "SELECT procedure_id, status, secs,
        row_number() OVER (PARTITION BY procedure_id ORDER BY secs IS NULL, secs) AS rn,
        count(secs) OVER (PARTITION BY procedure_id) AS n
    FROM d";

/// Per procedure from the ranked rows `r`: completed, failed, and the nearest-rank percentiles (the duration at
/// rank ceil(p * n / 100), in integer arithmetic on both backends).
pub(crate) const PER_PROCEDURE: &str = "SELECT procedure_id,
        sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END),
        sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END),
        max(CASE WHEN rn = (50 * n + 99) / 100 THEN secs END),
        max(CASE WHEN rn = (95 * n + 99) / 100 THEN secs END)
    FROM r GROUP BY procedure_id";

/// The rows the statistics statements return, before they are assembled into [`RunStats`].
#[derive(Debug)]
pub(crate) struct StatsRows {
    /// (bucket index, runs created).
    pub created: Vec<(i64, i64)>,
    /// (bucket index, terminal status, runs that ended so).
    pub ended: Vec<(i64, RunStatus, i64)>,
    /// (running or waiting_approval, runs now).
    pub gauges: Vec<(RunStatus, i64)>,
    /// (procedure, runs created, their cost), busiest first.
    pub top: Vec<(String, i64, f64)>,
    /// The top procedures' runs that ended in the window.
    pub ended_by_procedure: Vec<EndedRow>,
}

/// (procedure, completed, failed, p50, p95 seconds) of one procedure's runs that ended in a window.
pub(crate) type EndedRow = (String, i64, i64, Option<f64>, Option<f64>);

impl StatsRows {
    /// The answer: every bucket (rows outside the window, which the statements do not return, are ignored).
    pub(crate) fn into_stats(self, buckets: usize) -> RunStats {
        let mut out = RunStats { buckets: vec![BucketCounts::default(); buckets], ..RunStats::default() };
        let index = |i: i64| usize::try_from(i).ok().filter(|i| *i < buckets);
        for (i, n) in self.created {
            if let Some(b) = index(i).map(|i| &mut out.buckets[i]) {
                b.created += n;
            }
        }
        for (i, status, n) in self.ended {
            if let Some(b) = index(i).map(|i| &mut out.buckets[i]) {
                match status {
                    RunStatus::Completed => b.completed += n,
                    RunStatus::Failed => b.failed += n,
                    RunStatus::Canceled => b.canceled += n,
                    _ => {}
                }
            }
        }
        for (status, n) in self.gauges {
            match status {
                RunStatus::Running => out.running += n,
                RunStatus::WaitingApproval => out.waiting_approval += n,
                _ => {}
            }
        }
        out.by_procedure = self
            .top
            .into_iter()
            .map(|(procedure_id, total, cost_usd)| {
                let ended = self.ended_by_procedure.iter().find(|e| e.0 == procedure_id);
                let (completed, failed, p50_seconds, p95_seconds) =
                    ended.map_or((0, 0, None, None), |e| (e.1, e.2, e.3, e.4));
                ProcedureStats { procedure_id, total, completed, failed, p50_seconds, p95_seconds, cost_usd }
            })
            .collect();
        out
    }
}
