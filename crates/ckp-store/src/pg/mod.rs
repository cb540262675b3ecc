//! The PostgreSQL store (issue 8): the same [`crate::Store`] traits as SQLite, for several ckp processes on one
//! database. Every write is one short transaction on a pooled connection (no transaction is held across anything
//! but its own statements); claims take the best ready job with `FOR UPDATE SKIP LOCKED`; enqueues send `NOTIFY`
//! inside their transaction, so every process's idle workers hear about new jobs; run changes are announced after
//! their commits, batched ([`notices`]); one session per process listens, and holds the advisory lock that elects
//! the leader for singleton loops; a process that claims jobs holds its own liveness lock on another ([`owners`]),
//! so its death is seen at once and its jobs resume elsewhere without waiting for their leases.
//!
//! Concurrency rules: a transaction that changes a run locks its `runs` row first (the journal upsert, or
//! `SELECT … FOR UPDATE`), then its job row, so one run's commits are serialized in the order their event batch ids
//! are taken, and two processes never deadlock on a run and its job.

mod approvals;
mod auth;
mod batch;
pub use batch::GroupCommitStats;
mod commit;
mod insights;
mod notices;
mod owners;
mod procedures;
mod queue;
mod registry;
mod runs;
mod secrets;
mod triggers;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ckp_engine::effects::BoxFuture;
use ckp_engine::journal::{Checkpoint, Commit, Journal, StepRecord, Stored};
use ckp_engine::{EngineError, Event};
use deadpool_postgres::{GenericClient, Pool, Transaction};
use tokio_postgres::{AsyncMessage, NoTls, Row};

use crate::StoreError;
pub(crate) use crate::codec::parse_time;
use crate::codec::ts;
use crate::hub::Hub;
use crate::row::RowSource;
use crate::status::ApprovalStatus;
pub(crate) use commit::apply;

/// The migrations, in order; the index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_schema.sql"),
    include_str!("../../migrations/postgres/0002_secrets.sql"),
    include_str!("../../migrations/postgres/0003_commit_function.sql"),
    include_str!("../../migrations/postgres/0004_notices_after_commit.sql"),
    include_str!("../../migrations/postgres/0005_claim_batch.sql"),
    include_str!("../../migrations/postgres/0006_procedure_notices.sql"),
    include_str!("../../migrations/postgres/0007_generic_plans.sql"),
    include_str!("../../migrations/postgres/0008_owners.sql"),
    include_str!("../../migrations/postgres/0009_auth.sql"),
    include_str!("../../migrations/postgres/0010_rerun_of.sql"),
    include_str!("../../migrations/postgres/0011_triggers.sql"),
    include_str!("../../migrations/postgres/0012_trigger_fire_windows.sql"),
    include_str!("../../migrations/postgres/0013_builder_drafts.sql"),
];

/// Advisory lock held while migrating (one process migrates, the others wait); per schema.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/ckp-migrate', 0))";
/// Advisory lock held by the leader for the whole life of its listening session; per schema.
const LEADER_LOCK: &str = "SELECT pg_try_advisory_lock(hashtextextended(current_schema() || '/ckp-leader', 0))";
/// A run's event batches from batch $2 on.
const BATCHES_FROM: &str =
    "SELECT batch_id, data FROM run_event_batches WHERE run_id = $1 AND batch_id >= $2 ORDER BY batch_id";
/// Channel of run change notices (payload: run ids, see [`notices`]), suffixed with the md5 of the schema's name.
const RUNS_CHANNEL: &str = "ckp_runs_";
/// Channel of job wake-ups, suffixed like [`RUNS_CHANNEL`].
const JOBS_CHANNEL: &str = "ckp_jobs_";
/// Channel of procedure changes (sent by a trigger, migration 0006), suffixed like [`RUNS_CHANNEL`].
const PROCEDURES_CHANNEL: &str = "ckp_procs_";

/// How to connect.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most pooled connections of this process.
    pub pool_size: usize,
    /// How long a caller waits for a pooled connection (or a new one) before failing.
    pub acquire_timeout: Duration,
    /// How often a process that is not the leader tries to become it.
    pub leader_poll: Duration,
    /// Whether this process follows other processes' run changes (it serves streams or waits on runs over HTTP);
    /// PostgreSQL delivers every notice to every session listening, so a process that only works leaves it off.
    pub follow_runs: bool,
    /// Whether this process's workers are woken by other processes' enqueues (off for an API-only process).
    pub follow_jobs: bool,
    /// The prefix of this process's worker ids (`{owner}-{n}`; letters, digits and `_`), when it claims jobs: the
    /// process then holds a liveness lock under it for its life, and claims only while it holds it, so that when it
    /// dies its jobs are requeued at once ([`QueueStore::reclaim_orphaned`](crate::QueueStore::reclaim_orphaned)).
    pub owner: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 16,
            acquire_timeout: Duration::from_secs(10),
            leader_poll: Duration::from_secs(1),
            follow_runs: true,
            follow_jobs: true,
            owner: None,
        }
    }
}

/// A store on PostgreSQL.
pub struct PgStore {
    pool: Pool,
    hub: Arc<Hub>,
    wake: Arc<tokio::sync::Notify>,
    leader: Arc<AtomicBool>,
    notices: Arc<notices::Notices>,
    commits: batch::Commits,
    listener: tokio::task::JoinHandle<()>,
    sender: tokio::task::JoinHandle<()>,
    /// Whether this process holds its liveness lock (None: it has no owner id and claims without one).
    owned: Option<Arc<AtomicBool>>,
    /// The liveness lock's session.
    holder: Option<tokio::task::JoinHandle<()>>,
    /// Owners whose lock was missing at the last check of [`owners`] (dead when it is still missing at the next).
    suspects: std::sync::Mutex<Vec<String>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("pool", &self.pool.status()).finish()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
        self.sender.abort();
        if let Some(holder) = &self.holder {
            holder.abort();
        }
    }
}

fn db(e: tokio_postgres::Error) -> StoreError {
    // The server's message (a constraint, a type) is more useful than the driver's "db error".
    match e.as_db_error() {
        // A value PostgreSQL cannot store (U+0000 in text, in a path or query parameter): the caller's input.
        Some(d) if *d.code() == tokio_postgres::error::SqlState::CHARACTER_NOT_IN_REPERTOIRE => {
            StoreError::Invalid(format!("a value contains a character PostgreSQL cannot store: {}", d.message()))
        }
        _ => StoreError::Database(crate::cause(e)),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        db(e)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Database(crate::cause(e))
    }
}

fn journal(e: StoreError) -> EngineError {
    EngineError::Journal(Box::new(e))
}

/// Wakes idle workers of every process when the transaction commits.
pub(crate) async fn notify_jobs(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let stmt = tx.prepare_cached("SELECT pg_notify($1 || md5(current_schema()), '')").await?;
    tx.execute(&stmt, &[&JOBS_CHANNEL]).await?;
    Ok(())
}

/// Applies the migrations this ckp knows, under an advisory lock (concurrent starts migrate once).
async fn migrate(client: &mut deadpool_postgres::Object) -> Result<i64, StoreError> {
    let tx = client.transaction().await?;
    tx.execute(MIGRATION_LOCK, &[]).await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS ckp_schema (version bigint NOT NULL)").await?;
    let version: Option<i64> = tx.query_opt("SELECT version FROM ckp_schema", &[]).await?.map(|r| r.get(0));
    let known = MIGRATIONS.len() as i64;
    let found = version.unwrap_or(0);
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    for sql in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        tx.batch_execute(sql).await?;
    }
    if version.is_none() {
        tx.execute("INSERT INTO ckp_schema (version) VALUES ($1)", &[&known]).await?;
    } else {
        tx.execute("UPDATE ckp_schema SET version = $1", &[&known]).await?;
    }
    tx.commit().await?;
    Ok(known)
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), applies migrations, and starts this process's
    /// listening session (notices from other processes, leader election).
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Invalid(format!("bad database URL: {e}")))?;
        if let Some(owner) = &options.owner {
            owners::check_owner(owner)?;
        }
        let manager = deadpool_postgres::Manager::from_config(
            config.clone(),
            NoTls,
            deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.acquire_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Invalid(format!("database pool: {e}")))?;
        let mut client = pool.get().await?;
        migrate(&mut client).await?;
        drop(client);
        let hub = Arc::new(Hub::new());
        let wake = Arc::new(tokio::sync::Notify::new());
        let leader = Arc::new(AtomicBool::new(false));
        let notices = Arc::new(notices::Notices::default());
        let sender = tokio::spawn(notices::send(config.clone(), notices.clone()));
        let listening = Listening {
            hub: hub.clone(),
            wake: wake.clone(),
            leader: leader.clone(),
            notices: notices.clone(),
            runs: options.follow_runs,
            jobs: options.follow_jobs,
        };
        let listener = tokio::spawn(listen(config.clone(), listening, options.leader_poll));
        let commits = batch::Commits::start(pool.clone());
        let (owned, holder) = match options.owner {
            Some(owner) => {
                let live = Arc::new(AtomicBool::new(false));
                let taken = Arc::new(tokio::sync::Notify::new());
                let holder =
                    tokio::spawn(owners::hold(config.clone(), owner, live.clone(), wake.clone(), taken.clone()));
                // The first claims wait for the lock (up to the acquire timeout; after it, claims start once the
                // lock session gets it).
                let deadline = tokio::time::Instant::now() + options.acquire_timeout;
                loop {
                    let notified = taken.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if live.load(Ordering::Acquire) || tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    let _ = tokio::time::timeout_at(deadline, notified).await;
                }
                (Some(live), Some(holder))
            }
            None => (None, None),
        };
        Ok(PgStore {
            pool,
            hub,
            wake,
            leader,
            notices,
            commits,
            listener,
            sender,
            owned,
            holder,
            suspects: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Applies the migrations and returns the schema version (for `ckp migrate`).
    pub async fn migrate(url: &str) -> Result<i64, StoreError> {
        let store = PgStore::connect(url, PgOptions { pool_size: 2, ..PgOptions::default() }).await?;
        Ok(store.schema_version())
    }

    /// Creates an empty schema `name` (dropping one of that name first) in the database of `url`, and returns a URL
    /// whose sessions work in it. For tests (each gets a schema of its own) and for several ckp deployments
    /// sharing one database: tables, notices and the leader election are all per schema.
    pub async fn create_schema(url: &str, name: &str) -> Result<String, StoreError> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(StoreError::Invalid(format!("`{name}` is not a plain schema name (a-z, 0-9, _)")));
        }
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Invalid(format!("bad database URL: {e}")))?;
        let (client, conn) = config.connect(NoTls).await?;
        let driver = tokio::spawn(conn);
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")).await?;
        drop(client);
        let _ = driver.await;
        let sep = if url.contains('?') { '&' } else { '?' };
        Ok(format!("{url}{sep}options=-c%20search_path%3D{name}"))
    }

    /// The schema version this ckp writes.
    pub fn schema_version(&self) -> i64 {
        MIGRATIONS.len() as i64
    }

    /// How many journal commits this process wrote, and in how many transactions (group commit, [`batch`]).
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.commits.stats()
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Announces a committed change of procedures in this process (others hear the trigger's notice).
    pub(crate) fn publish_procedures(&self) {
        self.hub.publish_procedures();
    }

    /// Announces a committed change of `run_id`: in this process at once, to the others by a notice.
    pub(crate) fn publish(&self, run_id: &str) {
        self.hub.publish(run_id);
        self.notices.push(run_id);
    }

    /// Wakes one idle worker of this process.
    pub(crate) fn notify_work(&self) {
        self.wake.notify_one();
    }

    /// Every event of a run, as the engine wrote them.
    pub async fn events(&self, run_id: &str) -> Result<Vec<Event>, StoreError> {
        let batches = self.batches(run_id, 0).await?;
        crate::events::events_of(batches.into_iter().map(Ok), |m| StoreError::Read(crate::cause(m)))
    }

    /// A run's event batches from batch `from` on.
    pub(crate) async fn batches(&self, run_id: &str, from: i64) -> Result<Vec<crate::events::Batch>, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(BATCHES_FROM).await?;
        let rows = c.query(&stmt, &[&run_id, &from]).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }
}

/// Where the listening session delivers what it hears.
struct Listening {
    hub: Arc<Hub>,
    wake: Arc<tokio::sync::Notify>,
    leader: Arc<AtomicBool>,
    notices: Arc<notices::Notices>,
    /// Whether to listen for run change notices.
    runs: bool,
    /// Whether to listen for job wake-ups.
    jobs: bool,
}

/// This process's listening session: turns NOTIFYs into local wake-ups and change notices, and competes for the
/// leader lock. Reconnects (with backoff) when the connection is lost; after a gap every follower re-reads, since
/// notices may have been missed.
async fn listen(config: tokio_postgres::Config, to: Listening, poll: Duration) {
    let Listening { hub, wake, leader, notices, runs: follow_runs, jobs: follow_jobs } = to;
    let mut backoff = Duration::from_millis(100);
    let mut reconnect = false;
    loop {
        let connected = config.connect(NoTls).await;
        if let Err(e) = &connected {
            tracing::warn!(error = %ckp_engine::error::ErrorChain(e), retry_ms = backoff.as_millis(),
                "the listening session cannot reach PostgreSQL: no notices, no leadership until it can");
        }
        if let Ok((client, mut conn)) = connected {
            backoff = Duration::from_millis(100);
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                while let Some(msg) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                    match msg {
                        Ok(AsyncMessage::Notification(n)) => {
                            if tx.send(n).is_err() {
                                break;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            });
            let schema = match client.query_one("SELECT md5(current_schema())", &[]).await {
                Ok(row) => row.try_get::<_, String>(0).unwrap_or_default(),
                Err(_) => String::new(),
            };
            let (runs, jobs) = (format!("{RUNS_CHANNEL}{schema}"), format!("{JOBS_CHANNEL}{schema}"));
            let procedures = format!("{PROCEDURES_CHANNEL}{schema}");
            let listen: String = [(follow_runs, &runs), (follow_jobs, &jobs), (true, &procedures)]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, channel)| format!("LISTEN \"{}\";", channel.replace('"', "")))
                .collect();
            if !schema.is_empty() && client.batch_execute(&listen).await.is_ok() {
                // Notices sent before LISTEN took effect were missed. After a gap, everything that follows changes
                // re-reads. At the first start, a catalog may already have cached a procedure that another process
                // changed before this LISTEN: procedure caches are dropped (run streams re-read at each keep-alive).
                if reconnect {
                    hub.publish_everything();
                } else {
                    hub.publish_procedures();
                }
                wake.notify_waiters();
                reconnect = true;
                let mut tick = tokio::time::interval(poll);
                loop {
                    tokio::select! {
                        n = rx.recv() => match n {
                            Some(n) if n.channel() == jobs => wake.notify_one(),
                            Some(n) if n.channel() == procedures => hub.publish_procedures(),
                            Some(n) if notices.is_own(n.process_id()) => {}
                            Some(n) => match notices::announced(n.payload()) {
                                Some(runs) => runs.for_each(|run| hub.publish(run)),
                                None => hub.publish_everything(),
                            },
                            None => break,
                        },
                        _ = tick.tick() => {
                            if client.is_closed() {
                                break;
                            }
                            if !leader.load(Ordering::Relaxed) {
                                let won = client
                                    .query_one(LEADER_LOCK, &[])
                                    .await
                                    .map(|r| r.get::<_, bool>(0));
                                match won {
                                    Ok(won) => {
                                        if won {
                                            tracing::info!("leader: this process now runs lease reclaim and agent health checks");
                                        }
                                        leader.store(won, Ordering::Relaxed);
                                    }
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                }
            }
            if leader.swap(false, Ordering::Relaxed) {
                tracing::warn!("leadership lost with the listening session; another process takes over");
            }
            driver.abort();
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Builds a [`Stored`] run from rows read from `runs` (the checkpoint, key None) and `step_results`.
#[derive(Default)]
pub(crate) struct StoredReader {
    checkpoint: Option<Checkpoint>,
    steps: HashMap<String, StepRecord>,
}

impl StoredReader {
    /// Takes one row: the checkpoint when `key` is None, else the step record under `key`.
    pub(crate) fn add(&mut self, key: Option<String>, text: &str) -> Result<(), EngineError> {
        match key {
            None => {
                let checkpoint = serde_json::from_str(text)
                    .map_err(|e| EngineError::Journal(format!("unreadable checkpoint: {e}").into()))?;
                self.checkpoint = Some(checkpoint);
            }
            Some(key) => {
                let record: StepRecord = serde_json::from_str(text)
                    .map_err(|e| EngineError::Journal(format!("unreadable step record {key}: {e}").into()))?;
                self.steps.insert(key, record);
            }
        }
        Ok(())
    }

    /// The run, or None when no checkpoint was read (the run does not exist).
    pub(crate) fn finish(self) -> Option<Stored> {
        self.checkpoint.map(|checkpoint| Stored { checkpoint, steps: self.steps })
    }
}

impl Journal for PgStore {
    fn load(&self, run_id: &str) -> BoxFuture<'_, Result<Option<Stored>, EngineError>> {
        let run_id = run_id.to_owned();
        Box::pin(async move {
            let c = self.client().await.map_err(journal)?;
            // The checkpoint (key NULL) and the step records in one statement.
            let stmt = c
                .prepare_cached(
                    "SELECT NULL::text, checkpoint FROM runs WHERE run_id = $1
                     UNION ALL SELECT key, record FROM step_results WHERE run_id = $1",
                )
                .await
                .map_err(|e| journal(db(e)))?;
            let rows = c.query(&stmt, &[&run_id]).await.map_err(|e| journal(db(e)))?;
            let mut read = StoredReader::default();
            for r in &rows {
                let (key, text): (Option<String>, String) =
                    (r.try_get(0).map_err(|e| journal(db(e)))?, r.try_get(1).map_err(|e| journal(db(e)))?);
                read.add(key, &text)?;
            }
            Ok(read.finish())
        })
    }

    fn commit(&self, run_id: &str, commit: Commit) -> BoxFuture<'_, Result<(), EngineError>> {
        let run_id = run_id.to_owned();
        Box::pin(async move {
            self.commits.write(run_id.clone(), commit, None).await.map_err(journal)?;
            self.publish(&run_id);
            Ok(())
        })
    }
}

impl RowSource for Row {
    type Error = StoreError;

    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn float(&self, i: usize) -> Result<f64, StoreError> {
        Ok(self.try_get(i)?)
    }

    /// Times are `timestamptz`, shown as the SQLite store stores them.
    fn time(&self, i: usize) -> Result<String, StoreError> {
        Ok(ts(self.try_get::<_, DateTime<Utc>>(i)?))
    }

    fn opt_time(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get::<_, Option<DateTime<Utc>>>(i)?.map(ts))
    }

    fn parsed<T: std::str::FromStr>(&self, i: usize) -> Result<T, StoreError>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        self.try_get::<_, &str>(i)?.parse().map_err(|e: T::Err| StoreError::Read(crate::cause(e.to_string())))
    }

    fn opt_parsed<T: std::str::FromStr>(&self, i: usize) -> Result<Option<T>, StoreError>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        self.try_get::<_, Option<&str>>(i)?
            .map(str::parse)
            .transpose()
            .map_err(|e: T::Err| StoreError::Read(crate::cause(e.to_string())))
    }
}

/// An approval status is bound as its name (a decision settling an approval in a commit's pipeline).
impl tokio_postgres::types::ToSql for ApprovalStatus {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.as_str().to_sql(ty, out)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <&str as tokio_postgres::types::ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}
