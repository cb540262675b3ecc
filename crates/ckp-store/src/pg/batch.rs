//! Group commit on PostgreSQL: journal commits (a worker's, or a new run's first) that wait while earlier ones are
//! being written go to the database together, as one pipeline in one transaction.
//!
//! Each transaction costs PostgreSQL a commit record, a WAL flush and its bookkeeping, and every transaction that
//! enqueues a job sends a wake-up `NOTIFY`, which wakes every listening session of the database (PostgreSQL
//! signals all of them, whatever their channels) and serializes commits through its lock. Under load a process's
//! commits therefore wait for each other anyway; written together, N of them cost one transaction and one wake-up
//! (identical notices of one transaction are delivered once). With nothing else waiting, a commit is written alone
//! at once, as before (one statement in a transaction of its own when it has no rarer parts).
//!
//! A batch that the database refuses (a statement fails, the transaction is rolled back) is written again one
//! commit at a time, so each commit gets its own answer. When the connection fails, the outcome of the batch is
//! unknown, and every commit of it reports the error (as a lone commit does).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ckp_engine::journal::Commit;
use deadpool_postgres::Pool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::commit::{CommitWrite, Creation, pipeline, write_commit};
use crate::StoreError;
use crate::store::{NewRun, RunRow};

/// Most commits written in one transaction.
const MAX_BATCH: usize = 64;
/// Batches written at once by one process (each on its own connection); further commits wait and join the next.
const IN_FLIGHT: usize = 2;

/// A commit waiting to be written, with where its answer goes: for a new run, the row its first commit stored.
struct PendingCommit {
    run_id: String,
    commit: Commit,
    creation: Option<(NewRun, bool)>,
    done: oneshot::Sender<Result<Option<RunRow>, StoreError>>,
}

/// This process's commit writer (see the module documentation).
pub(crate) struct Commits {
    queue: mpsc::UnboundedSender<PendingCommit>,
    writer: tokio::task::JoinHandle<()>,
    counts: Arc<Counts>,
}

impl Drop for Commits {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

/// What the writer has written: commits, and the transactions that wrote them.
#[derive(Default)]
struct Counts {
    commits: AtomicU64,
    transactions: AtomicU64,
}

impl Counts {
    fn wrote(&self, commits: usize) {
        self.commits.fetch_add(commits as u64, Ordering::Relaxed);
        self.transactions.fetch_add(1, Ordering::Relaxed);
    }
}

/// How many commits a process wrote, and in how many transactions (fewer when commits were written together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Journal commits written (a new run's first included).
    pub commits: u64,
    /// Transactions that wrote them.
    pub transactions: u64,
}

impl Commits {
    /// Starts the writer on `pool`: whatever waits is taken as one batch whenever fewer than [`IN_FLIGHT`]
    /// batches are being written.
    pub(crate) fn start(pool: Pool) -> Commits {
        let counts = Arc::new(Counts::default());
        let (queue, mut rx) = mpsc::unbounded_channel::<PendingCommit>();
        let written = counts.clone();
        let writer = tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let Some(first) = rx.recv().await else { return };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let (pool, counts) = (pool.clone(), written.clone());
                tokio::spawn(async move {
                    write_batch(&pool, batch, &counts).await;
                    drop(slot);
                });
            }
        });
        Commits { queue, writer, counts }
    }

    /// What was written so far.
    pub(crate) fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            commits: self.counts.commits.load(Ordering::Relaxed),
            transactions: self.counts.transactions.load(Ordering::Relaxed),
        }
    }

    /// Writes `commit` of `run_id` (the first of a new run when `creation` is given: its API columns, and its
    /// job when the flag is set); for a new run, the row it stored.
    pub(crate) async fn write(
        &self,
        run_id: String,
        commit: Commit,
        creation: Option<(NewRun, bool)>,
    ) -> Result<Option<RunRow>, StoreError> {
        let (done, answer) = oneshot::channel();
        self.queue.send(PendingCommit { run_id, commit, creation, done }).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// Writes `batch` and answers each of its commits.
async fn write_batch(pool: &Pool, batch: Vec<PendingCommit>, counts: &Counts) {
    let mut c = match pool.get().await {
        Ok(c) => c,
        Err(e) => {
            let e = crate::cause(e);
            for p in batch {
                let _ = p.done.send(Err(StoreError::Database(e.clone())));
            }
            return;
        }
    };
    if batch.len() > 1 {
        match together(&mut c, &batch).await {
            Ok(rows) => {
                counts.wrote(batch.len());
                for (p, row) in batch.into_iter().zip(rows) {
                    let _ = p.done.send(Ok(row));
                }
                return;
            }
            // Refused by the database: nothing of the batch was written; each commit is tried on its own below.
            Err(Refused::Database) => {}
            Err(Refused::Connection(e)) => {
                for p in batch {
                    let _ = p.done.send(Err(StoreError::Database(e.clone())));
                }
                return;
            }
        }
    }
    for p in batch {
        let answer = alone(&mut c, &p).await;
        if answer.is_ok() {
            counts.wrote(1);
        }
        let _ = p.done.send(answer);
    }
}

/// Why a batch was not written.
enum Refused {
    /// A statement or the commit failed: the transaction was rolled back.
    Database,
    /// The connection failed (why): whether the batch committed is unknown.
    Connection(crate::Cause),
}

fn refused(e: tokio_postgres::Error) -> Refused {
    if e.as_db_error().is_some() { Refused::Database } else { Refused::Connection(crate::cause(e)) }
}

/// Encodes `p` for connection `c`.
async fn encode<'p>(
    c: &impl deadpool_postgres::GenericClient,
    p: &'p PendingCommit,
) -> Result<CommitWrite<'p>, StoreError> {
    let creation = p.creation.as_ref().map(|(run, queue)| Creation::new(run, *queue));
    CommitWrite::new(c, &p.run_id, &p.commit, creation).await
}

/// Writes every commit of `batch` in one transaction, as one pipeline.
async fn together(c: &mut deadpool_postgres::Object, batch: &[PendingCommit]) -> Result<Vec<Option<RunRow>>, Refused> {
    let tx = c.transaction().await.map_err(refused)?;
    let mut writes = Vec::with_capacity(batch.len());
    for p in batch {
        // An encoding error is this commit's own: the batch is written one by one, which reports it.
        writes.push(encode(&tx, p).await.map_err(|_| Refused::Database)?);
    }
    let ops = writes.iter().flat_map(|w| w.ops(&tx)).collect();
    pipeline(ops).await.map_err(refused)?;
    tx.commit().await.map_err(refused)?;
    Ok(writes.iter().map(CommitWrite::created_row).collect())
}

/// Writes one commit as [`write_commit`] does.
async fn alone(c: &mut deadpool_postgres::Object, p: &PendingCommit) -> Result<Option<RunRow>, StoreError> {
    let w = encode(&*c, p).await?;
    let row = w.created_row();
    write_commit(c, w).await?;
    Ok(row)
}
