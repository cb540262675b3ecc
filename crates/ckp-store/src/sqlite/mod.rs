//! The SQLite store: migrations, the writer thread with group commit, read connections, and the
//! [`Journal`] implementation; its submodules implement the store's traits in SQL. No transaction is ever held
//! across an await.
//!
//! SQLite discipline (STYLE.md): WAL, `synchronous=NORMAL` by default (`FULL` on request), foreign keys on, a busy
//! timeout, one writer thread that owns the only write connection and groups every queued write into one
//! transaction (`BEGIN IMMEDIATE`, a savepoint per write), and separate read connections.

mod approvals;
mod auth;
mod callbacks;
mod decisions;
mod events;
mod insights;
mod lock;
mod procedures;
mod queue;
mod registry;
mod runs;
mod secrets;
mod triggers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use chrono::Utc;
use ckp_engine::effects::BoxFuture;
use ckp_engine::journal::{Checkpoint, Commit, Journal, RunStatus, StepRecord, Stored};
use ckp_engine::{EngineError, Event};
use rusqlite::{Connection, OptionalExtension, params};

use crate::codec::{now, ts};
use crate::row::RowSource;
use crate::{Cause, StoreError};

/// The migrations, in order; the index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_journal.sql"),
    include_str!("../../migrations/sqlite/0002_run_jobs.sql"),
    include_str!("../../migrations/sqlite/0003_procedures.sql"),
    include_str!("../../migrations/sqlite/0004_server.sql"),
    include_str!("../../migrations/sqlite/0005_event_batches.sql"),
    include_str!("../../migrations/sqlite/0006_secrets.sql"),
    include_str!("../../migrations/sqlite/0007_auth.sql"),
    include_str!("../../migrations/sqlite/0008_rerun_of.sql"),
    include_str!("../../migrations/sqlite/0009_triggers.sql"),
    include_str!("../../migrations/sqlite/0010_trigger_fire_windows.sql"),
    include_str!("../../migrations/sqlite/0011_builder_drafts.sql"),
];

/// Most commits grouped into one transaction.
const MAX_GROUP: usize = 256;

/// SQLite's `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Durable against process crashes; a power loss may lose the last transactions (WAL default).
    #[default]
    Normal,
    /// Durable against power loss; slower.
    Full,
}

/// How to open a store.
#[derive(Debug, Clone, Default)]
pub struct SqliteOptions {
    /// The `synchronous` level.
    pub synchronous: Synchronous,
}

type Reply = tokio::sync::oneshot::Sender<Result<(), Cause>>;
type AfterCommit = Box<dyn FnOnce() + Send>;
type TxFn = Box<dyn FnOnce(&rusqlite::Transaction<'_>) -> Result<AfterCommit, rusqlite::Error> + Send>;

enum WriteJob {
    /// A journal commit (grouped with its neighbours into one transaction).
    Commit { run_id: String, commit: Box<Commit>, reply: Reply },
    /// Any other write, in a transaction of its own; its result is delivered after the commit.
    Run { f: TxFn, on_error: Box<dyn FnOnce(Cause) + Send> },
}

/// An embedded SQLite store.
pub struct SqliteStore {
    /// Wakes this process's workers when a job is enqueued or rescheduled (pushed, not polled).
    pub(crate) wake: tokio::sync::Notify,
    /// Change notices, sent after the commit (SSE streams listen).
    hub: Arc<crate::hub::Hub>,
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<WriteJob>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    options: SqliteOptions,
    /// Held for the store's life: no other process opens this database meanwhile.
    _lock: Arc<lock::DbLock>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

fn configure(conn: &Connection, options: &SqliteOptions) -> Result<(), rusqlite::Error> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match options.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Every statement the store runs stays prepared (rusqlite keeps 16 by default; the store has more).
    conn.set_prepared_statement_cache_capacity(256);
    // Query planner stability: a cached statement keeps its plan whatever values are bound. Without it, SQLite
    // re-prepares a statement at every execution whose bound value it compared while planning (a partial index's
    // condition, LIKE prefixes): that was a third of the cost of an API key's lookup, and 4 % of a run's.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::SchemaTooNew { found: version, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        if i + 1 == 5 {
            events::convert_legacy_rows(&tx)?;
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Reads a stored checkpoint.
pub(crate) fn parse_checkpoint(text: &str) -> Result<Checkpoint, rusqlite::Error> {
    serde_json::from_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn json_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

pub(crate) fn apply(tx: &rusqlite::Transaction<'_>, run_id: &str, commit: &Commit) -> Result<(), rusqlite::Error> {
    let at = now();
    let cp = &commit.checkpoint;
    let checkpoint = serde_json::to_string(cp).map_err(json_err)?;
    // The run row and the columns the API reads (outputs, timings, usage, the node it waits at) in one write.
    let outputs = match (cp.status, &cp.outputs) {
        (RunStatus::Completed, Some(o)) => Some(serde_json::to_string(o).map_err(json_err)?),
        _ => None,
    };
    let error = cp.error.as_ref().filter(|_| cp.status == RunStatus::Failed).map(|e| e.message.as_str());
    let terminal = cp.status.is_terminal();
    tx.prepare_cached(
        "INSERT INTO runs (run_id, procedure_id, procedure_version, status, checkpoint, created_at, updated_at,
                           output_vars, started_at, ended_at, error_message, last_node_id, prompt_tokens,
                           completion_tokens, cost_usd, commits)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, CASE WHEN ?9 THEN ?6 END, ?10, ?11, ?12, ?13, ?14, 1)
         ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, checkpoint = excluded.checkpoint,
             updated_at = excluded.updated_at, output_vars = excluded.output_vars, started_at = excluded.started_at,
             ended_at = CASE WHEN ?9 THEN coalesce(runs.ended_at, excluded.updated_at) END,
             error_message = excluded.error_message, last_node_id = coalesce(excluded.last_node_id, runs.last_node_id),
             prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
             cost_usd = excluded.cost_usd, commits = runs.commits + 1",
    )?
    .execute(params![
        run_id,
        cp.procedure_id,
        cp.procedure_version,
        cp.status.as_str(),
        checkpoint,
        at,
        outputs,
        opt_ts(cp.started_at),
        terminal,
        error,
        cp.pending.first().map(|a| a.node_id.as_str()),
        i64::try_from(cp.usage.prompt_tokens).unwrap_or(i64::MAX),
        i64::try_from(cp.usage.completion_tokens).unwrap_or(i64::MAX),
        cp.usage.cost_usd,
    ])?;
    if !commit.events.is_empty() {
        events::append(tx, run_id, &commit.events)?;
    }
    derive(tx, run_id, commit, &at)?;
    let mut upsert_step = tx.prepare_cached(
        "INSERT INTO step_results (run_id, key, record, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (run_id, key) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at",
    )?;
    for (key, record) in &commit.steps {
        let record = serde_json::to_string(record).map_err(json_err)?;
        upsert_step.execute(params![run_id, key, record, at])?;
    }
    Ok(())
}

fn opt_ts(t: Option<chrono::DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

/// Keeps what the API reads beside the run row (approvals, artifacts, the run's job) in step with the commit,
/// inside its transaction.
fn derive(tx: &rusqlite::Transaction<'_>, run_id: &str, commit: &Commit, at: &str) -> Result<(), rusqlite::Error> {
    let cp = &commit.checkpoint;
    for e in &commit.events {
        match e.event_type.as_str() {
            "run_created" => {
                if let Some(parent) = e.payload.get("parent_run_id").and_then(|v| v.as_str()) {
                    tx.prepare_cached("UPDATE runs SET parent_run_id = ?2 WHERE run_id = ?1")?
                        .execute(params![run_id, parent])?;
                }
            }
            "approval_decision_received" => {
                let d = crate::derived::decision_row(e);
                tx.prepare_cached(
                    "UPDATE approvals SET status = ?2, decided_by = ?3, decision_payload = ?4, decided_at = ?5, updated_at = ?5
                     WHERE approval_id = ?1 AND status = 'pending'",
                )?
                .execute(params![d.approval_id, d.status.as_str(), d.decided_by, d.payload, at])?;
            }
            "artifact_created" => {
                let Some(a) = crate::derived::artifact_fields(e) else { continue };
                tx.prepare_cached(
                    "INSERT INTO artifacts (artifact_id, run_id, node_id, step_id, kind, uri, name, mime_type, size_bytes, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (artifact_id) DO NOTHING",
                )?
                .execute(params![
                    a.artifact_id,
                    run_id,
                    e.node_id,
                    e.step_id,
                    a.kind,
                    a.uri,
                    a.name,
                    a.mime_type,
                    a.size_bytes,
                    ts(e.created_at)
                ])?;
            }
            _ => {}
        }
    }
    if crate::derived::releases_job(cp) {
        tx.prepare_cached(
            "UPDATE run_jobs SET state = CASE WHEN rerun = 1 THEN 'queued' ELSE 'done' END, rerun = 0,
                 locked_by = NULL, locked_until = NULL, updated_at = ?2
             WHERE run_id = ?1 AND state = 'running'",
        )?
        .execute(params![run_id, at])?;
    }
    // Approvals are listed for top-level runs; a subflow child's approval appears on its top-level run.
    if cp.call_stack.is_empty() {
        let mut ask = tx.prepare_cached(
            "INSERT INTO approvals (approval_id, run_id, approval_key, node_id, node_name, prompt, decision_type, options,
                                    context_data, status, created_at, expires_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?11, ?10)
             ON CONFLICT (run_id, approval_key) DO UPDATE SET status = 'pending', decided_by = NULL,
                 decision_payload = NULL, decided_at = NULL, prompt = excluded.prompt, options = excluded.options,
                 context_data = excluded.context_data, created_at = excluded.created_at,
                 expires_at = excluded.expires_at, updated_at = excluded.updated_at
             WHERE approvals.status != 'pending'",
        )?;
        for a in &cp.pending {
            let json_or_null = crate::derived::json_or_null;
            ask.execute(params![
                ckp_engine::journal::approval_id(run_id, &a.key),
                run_id,
                a.key,
                a.node_id,
                a.node_name,
                a.prompt,
                a.decision_type,
                json_or_null(&a.options),
                json_or_null(&a.context_data),
                at,
                opt_ts(a.expires_at)
            ])?;
        }
        if cp.status.is_terminal() {
            tx.prepare_cached(
                "UPDATE approvals SET status = 'canceled', updated_at = ?2 WHERE run_id = ?1 AND status = 'pending'",
            )?
            .execute(params![run_id, at])?;
        }
    }
    Ok(())
}

/// The writer thread: takes one job, then every job already queued (up to [`MAX_GROUP`]), and writes them in one
/// transaction (group commit: one WAL append for many writers). Each job runs inside its own savepoint, so a
/// failing job is rolled back alone and reported to its caller while the others commit. Results (replies, change
/// notices) are delivered only after the transaction committed.
fn writer_loop(mut conn: Connection, jobs: mpsc::Receiver<WriteJob>, hub: Arc<crate::hub::Hub>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        write_group(&mut conn, group, &hub);
    }
}

/// Creates the database file readable and writable by its owner only, when it does not exist yet: it holds every
/// run's variables. SQLite gives its `-wal` and `-shm` files the database file's permissions.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// What a job left to do once the group's transaction is settled.
enum Settled {
    /// A journal commit of this run applied.
    Committed(Arc<str>, Reply),
    /// A write applied; its result is delivered by the closure (or the error, if the transaction fails).
    Wrote(AfterCommit, Box<dyn FnOnce(Cause) + Send>),
    /// The job failed (already rolled back); tell its caller.
    Failed(Box<dyn FnOnce(Cause) + Send>, Cause),
}

fn in_savepoint<T>(
    tx: &rusqlite::Transaction<'_>,
    f: impl FnOnce() -> Result<T, rusqlite::Error>,
) -> Result<T, rusqlite::Error> {
    // Cached statements: parsing these three for every job costs more than running them.
    tx.prepare_cached("SAVEPOINT job")?.execute([])?;
    match f() {
        Ok(v) => {
            tx.prepare_cached("RELEASE job")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
            tx.prepare_cached("RELEASE job")?.execute([])?;
            Err(e)
        }
    }
}

fn write_group(conn: &mut Connection, group: Vec<WriteJob>, hub: &crate::hub::Hub) {
    let fail = |job: WriteJob, message: Cause| match job {
        WriteJob::Commit { reply, .. } => {
            let _ = reply.send(Err(message));
        }
        WriteJob::Run { on_error, .. } => on_error(message),
    };
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let e = crate::cause(e);
            for job in group {
                fail(job, e.clone());
            }
            return;
        }
    };
    let mut settled = Vec::with_capacity(group.len());
    for job in group {
        settled.push(match job {
            WriteJob::Commit { run_id, commit, reply } => match in_savepoint(&tx, || apply(&tx, &run_id, &commit)) {
                Ok(()) => Settled::Committed(Arc::from(run_id.as_str()), reply),
                Err(e) => Settled::Failed(
                    Box::new(move |m| {
                        let _ = reply.send(Err(m));
                    }),
                    crate::cause(e),
                ),
            },
            WriteJob::Run { f, on_error } => match in_savepoint(&tx, || f(&tx)) {
                Ok(after) => Settled::Wrote(after, on_error),
                Err(e) => Settled::Failed(on_error, crate::cause(e)),
            },
        });
    }
    let committed = tx.commit().map_err(crate::cause);
    for s in settled {
        match (s, &committed) {
            (Settled::Committed(id, reply), Ok(())) => {
                hub.publish(&id);
                let _ = reply.send(Ok(()));
            }
            (Settled::Wrote(after, _), Ok(())) => after(),
            (Settled::Failed(tell, message), _) => tell(message),
            (Settled::Committed(_, reply), Err(e)) => {
                let _ = reply.send(Err(e.clone()));
            }
            (Settled::Wrote(_, tell), Err(e)) => tell(e.clone()),
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let lock = lock::lock(&path)?;
        create_private(&path)?;
        let mut conn = Connection::open(&path)?;
        // Free pages can be given back after deletions (retention): this takes effect on a new database only,
        // before its first table; an older one keeps its mode until a VACUUM (docs/operations.md).
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        configure(&conn, &options)?;
        migrate(&mut conn)?;
        let (tx, rx) = mpsc::channel();
        let hub = Arc::new(crate::hub::Hub::new());
        let sender = hub.clone();
        std::thread::Builder::new().name("ckp-sqlite-writer".into()).spawn(move || writer_loop(conn, rx, sender))?;
        Ok(SqliteStore {
            wake: tokio::sync::Notify::new(),
            hub,
            path,
            writer: Mutex::new(Some(tx)),
            readers: Arc::default(),
            options,
            _lock: lock,
        })
    }

    /// The schema version this ckp writes (the number of migrations).
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Announces a committed change of procedures.
    pub(crate) fn publish_procedures(&self) {
        self.hub.publish_procedures();
    }

    /// Announces a committed change of `run_id`.
    pub(crate) fn publish(&self, run_id: &str) {
        self.hub.publish(run_id);
    }

    /// Wakes one idle worker of this process: a job became ready (waking them all would have each of them try a
    /// claim transaction for the one job).
    pub(crate) fn notify_work(&self) {
        self.wake.notify_one();
    }

    /// Runs `f` in a write transaction of its own on the writer thread; its result arrives after the commit.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (sender, receiver) = tokio::sync::oneshot::channel::<Result<T, Cause>>();
        let slot = Arc::new(Mutex::new(Some(sender)));
        let on_err = slot.clone();
        let job = WriteJob::Run {
            f: Box::new(move |tx| {
                let value = f(tx)?;
                Ok(Box::new(move || {
                    if let Some(s) = slot.lock().ok().and_then(|mut s| s.take()) {
                        let _ = s.send(Ok(value));
                    }
                }) as AfterCommit)
            }),
            on_error: Box::new(move |e| {
                if let Some(s) = on_err.lock().ok().and_then(|mut s| s.take()) {
                    let _ = s.send(Err(e));
                }
            }),
        };
        let sent = self.writer.lock().ok().and_then(|w| w.as_ref().map(|w| w.send(job).is_ok()));
        if sent != Some(true) {
            return Err(StoreError::Closed);
        }
        match receiver.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Write(e)),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Runs `f` on a read connection, off the async runtime.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, EngineError> {
        // Reads run inline: they are short point or page queries on WAL snapshots that never wait for the writer,
        // and a hop to the blocking pool costs more (two thread wake-ups) than the query itself. Running inline
        // also keeps the pool at one connection per runtime thread (each holds its own page cache).
        let pooled = self.readers.lock().ok().and_then(|mut r| r.pop());
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open(&self.path).map_err(|e| EngineError::Journal(Box::new(e)))?;
                configure(&c, &self.options).map_err(|e| EngineError::Journal(Box::new(e)))?;
                c
            }
        };
        let result = f(&conn);
        if let Ok(mut r) = self.readers.lock() {
            r.push(conn);
        }
        result.map_err(|e| EngineError::Journal(Box::new(e)))
    }

    /// [`SqliteStore::read`] with the store's error type.
    pub(crate) async fn read_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.read(f).await.map_err(|e| StoreError::Read(crate::cause(e)))
    }

    /// The events of a run, in order.
    pub async fn events(&self, run_id: &str) -> Result<Vec<Event>, EngineError> {
        let run_id = run_id.to_owned();
        self.read(move |c| events::all(c, &run_id)).await
    }
}

impl Journal for SqliteStore {
    fn load(&self, run_id: &str) -> BoxFuture<'_, Result<Option<Stored>, EngineError>> {
        let run_id = run_id.to_owned();
        Box::pin(async move {
            let loaded = self
                .read(move |c| {
                    let checkpoint: Option<String> = c
                        .prepare_cached("SELECT checkpoint FROM runs WHERE run_id = ?1")?
                        .query_row(params![run_id], |r| r.get(0))
                        .optional()?;
                    let Some(checkpoint) = checkpoint else { return Ok(None) };
                    let mut stmt = c.prepare_cached("SELECT key, record FROM step_results WHERE run_id = ?1")?;
                    let steps = stmt
                        .query_map(params![run_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Some((checkpoint, steps)))
                })
                .await?;
            let Some((checkpoint, steps)) = loaded else { return Ok(None) };
            let checkpoint: Checkpoint = serde_json::from_str(&checkpoint)
                .map_err(|e| EngineError::Journal(format!("unreadable checkpoint: {e}").into()))?;
            let mut map = HashMap::with_capacity(steps.len());
            for (key, record) in steps {
                let record: StepRecord = serde_json::from_str(&record)
                    .map_err(|e| EngineError::Journal(format!("unreadable step record {key}: {e}").into()))?;
                map.insert(key, record);
            }
            Ok(Some(Stored { checkpoint, steps: map }))
        })
    }

    fn commit(&self, run_id: &str, commit: Commit) -> BoxFuture<'_, Result<(), EngineError>> {
        let (reply, done) = tokio::sync::oneshot::channel();
        let sent = self.writer.lock().ok().and_then(|w| {
            w.as_ref().map(|w| {
                w.send(WriteJob::Commit { run_id: run_id.to_owned(), commit: Box::new(commit), reply }).is_ok()
            })
        });
        Box::pin(async move {
            match sent {
                Some(true) => match done.await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(EngineError::Journal(Box::new(e))),
                    Err(_) => Err(EngineError::Journal("the writer thread stopped".into())),
                },
                _ => Err(EngineError::Journal("the store is closed".into())),
            }
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer thread once it has written what it holds.
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
    }
}

impl RowSource for rusqlite::Row<'_> {
    type Error = rusqlite::Error;

    fn text(&self, i: usize) -> Result<String, rusqlite::Error> {
        self.get(i)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, rusqlite::Error> {
        self.get(i)
    }

    fn int(&self, i: usize) -> Result<i64, rusqlite::Error> {
        self.get(i)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, rusqlite::Error> {
        self.get(i)
    }

    fn flag(&self, i: usize) -> Result<bool, rusqlite::Error> {
        self.get(i)
    }

    fn float(&self, i: usize) -> Result<f64, rusqlite::Error> {
        self.get(i)
    }

    /// Times are stored as the API shows them.
    fn time(&self, i: usize) -> Result<String, rusqlite::Error> {
        self.get(i)
    }

    fn opt_time(&self, i: usize) -> Result<Option<String>, rusqlite::Error> {
        self.get(i)
    }

    fn parsed<T: std::str::FromStr>(&self, i: usize) -> Result<T, rusqlite::Error>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        let text = self.get_ref(i)?.as_str()?;
        text.parse().map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
    }

    fn opt_parsed<T: std::str::FromStr>(&self, i: usize) -> Result<Option<T>, rusqlite::Error>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match self.get_ref(i)?.as_str_or_null()? {
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))),
            None => Ok(None),
        }
    }
}
