//! Run change notices between processes, sent after the commits that made them rather than inside them.
//!
//! A PostgreSQL transaction that sends `NOTIFY` takes a database-wide lock at commit and holds it through its WAL
//! flush, so commits that notify cannot share a flush: they queue for the lock and fsync one by one. A journal
//! commit therefore sends no notice; the process gathers the ids of the runs its commits changed and sends them from
//! a session of its own, many ids per notice, as soon as the previous send is done: under load, one small
//! transaction per batch of commits; at rest, one round trip after each commit. That session runs with
//! `synchronous_commit = off`: a notice holds no data, and it is delivered when its transaction commits either way.
//!
//! A notice's payload is run ids separated by newlines; an empty payload means "anything may have changed" (sent
//! when ids were dropped). A process that dies between a commit and its notice leaves other processes' streams to
//! see the change at their next re-read (run streams re-read after each keep-alive). Job wake-ups are not sent
//! here: an enqueue notifies inside its own transaction, so a worker never misses a job it could claim.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use tokio_postgres::NoTls;

use super::RUNS_CHANNEL;

/// Most bytes of run ids in one notice (PostgreSQL's limit is 8,000 per payload).
const PAYLOAD_BYTES: usize = 7_900;
/// Most run ids kept while notices cannot be sent; beyond it they are dropped for one "anything changed" notice.
const MAX_PENDING: usize = 100_000;

/// Sends one notice per payload on the schema's runs channel.
const SEND: &str = "SELECT pg_notify($1 || md5(current_schema()), p) FROM unnest($2::text[]) AS p";

/// The run ids waiting to be announced, and the sending session's backend pid (its own notices are not news to
/// this process).
#[derive(Default)]
pub(crate) struct Notices {
    pending: Mutex<Pending>,
    ready: tokio::sync::Notify,
    sender_pid: AtomicI32,
}

#[derive(Default)]
struct Pending {
    runs: HashSet<String>,
    /// Ids were dropped: the next send says "anything may have changed".
    overflow: bool,
}

impl Notices {
    /// Announces a committed change of `run_id` to the other processes.
    pub(crate) fn push(&self, run_id: &str) {
        {
            let mut p = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if p.runs.len() >= MAX_PENDING {
                p.runs.clear();
                p.overflow = true;
            }
            if !p.overflow {
                p.runs.insert(run_id.to_owned());
            }
        }
        self.ready.notify_one();
    }

    /// Whether a notice from backend `pid` was sent by this process.
    pub(crate) fn is_own(&self, pid: i32) -> bool {
        pid != 0 && self.sender_pid.load(Ordering::Relaxed) == pid
    }

    /// Takes what is pending as payloads.
    fn take(&self) -> (Vec<String>, Pending) {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        (payloads(&taken), taken)
    }

    /// Puts back what could not be sent.
    fn restore(&self, taken: Pending) {
        let mut p = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        p.overflow |= taken.overflow;
        if p.overflow {
            p.runs.clear();
        } else {
            p.runs.extend(taken.runs);
        }
    }
}

/// The payloads announcing `p`: ids joined by newlines, each payload under [`PAYLOAD_BYTES`].
fn payloads(p: &Pending) -> Vec<String> {
    if p.overflow {
        return vec![String::new()];
    }
    let mut out: Vec<String> = Vec::new();
    for id in &p.runs {
        match out.last_mut() {
            Some(last) if last.len() + 1 + id.len() <= PAYLOAD_BYTES => {
                last.push('\n');
                last.push_str(id);
            }
            _ => out.push(id.clone()),
        }
    }
    out
}

/// The run ids a notice's payload announces; None for "anything may have changed".
pub(crate) fn announced(payload: &str) -> Option<std::str::Split<'_, char>> {
    (!payload.is_empty()).then(|| payload.split('\n'))
}

/// This process's sending session: sends what [`Notices::push`] gathered, reconnecting (with backoff) when the
/// connection is lost; unsent ids are kept for the next connection.
pub(crate) async fn send(config: tokio_postgres::Config, notices: std::sync::Arc<Notices>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if let Ok((client, conn)) = config.connect(NoTls).await {
            let driver = tokio::spawn(conn);
            let ready = async {
                client.batch_execute("SET synchronous_commit = off").await?;
                let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await?.try_get(0)?;
                Ok::<_, tokio_postgres::Error>((pid, client.prepare(SEND).await?))
            };
            if let Ok((pid, stmt)) = ready.await {
                backoff = Duration::from_millis(100);
                notices.sender_pid.store(pid, Ordering::Relaxed);
                loop {
                    notices.ready.notified().await;
                    let (payloads, taken) = notices.take();
                    if payloads.is_empty() {
                        continue;
                    }
                    if client.execute(&stmt, &[&RUNS_CHANNEL, &payloads]).await.is_err() {
                        notices.restore(taken);
                        // Sent again once reconnected.
                        notices.ready.notify_one();
                        break;
                    }
                }
                notices.sender_pid.store(0, Ordering::Relaxed);
            }
            driver.abort();
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_hold_every_id_once_and_stay_under_the_limit() {
        let n = Notices::default();
        for i in 0..1_000 {
            n.push(&format!("01a2-{i:032}"));
            n.push(&format!("01a2-{i:032}"));
        }
        let (payloads, taken) = n.take();
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| !p.is_empty() && p.len() <= PAYLOAD_BYTES));
        let ids: Vec<&str> = payloads.iter().flat_map(|p| announced(p).expect("ids")).collect();
        assert_eq!(ids.len(), 1_000);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1_000);
        assert!(n.take().0.is_empty(), "taken once");
        n.restore(taken);
        assert_eq!(n.take().1.runs.len(), 1_000, "restored after a failed send");
    }

    #[test]
    fn too_many_pending_ids_become_one_anything_changed_notice() {
        let n = Notices::default();
        for i in 0..=MAX_PENDING {
            n.push(&i.to_string());
        }
        let (payloads, _) = n.take();
        assert_eq!(payloads, vec![String::new()]);
        assert!(announced(&payloads[0]).is_none());
        n.push("a");
        assert_eq!(n.take().0, vec!["a".to_owned()]);
    }
}
