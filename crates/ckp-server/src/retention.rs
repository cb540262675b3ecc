//! Retention of runs (docs/operations.md). On the leader only, every `retention_interval_seconds`, a pass deletes
//! the ended runs the settings no longer keep, in batches of `retention_batch` top-level runs, each one short
//! transaction ([`ckp_store::RunStore::delete_expired_runs`]: completed, failed and canceled runs past their
//! status's number of days, then the oldest ended runs beyond `retention_max_runs`; a run that has not ended is
//! never deleted), until nothing is left; then the deleted runs' artifact folders (`<data_dir>/artifacts/<run_id>`)
//! and, on SQLite, the freed pages ([`ckp_store::RunStore::reclaim_space`]).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ckp_engine::error::ErrorChain;
use ckp_store::{RetentionPolicy, SpaceReclaimed, Store, StoreError};
use tokio::sync::watch;

use crate::settings::ServeConfig;

/// Pages given back to the file system by one write (about 8 MB with 4 KB pages).
const RECLAIM_PAGES: i64 = 2_000;

/// The most reclaim writes after one pass (the rest waits for the next pass).
const RECLAIM_STEPS: usize = 64;

/// What the settings keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days completed runs are kept after they ended (0: forever).
    pub completed_days: u64,
    /// Days failed runs are kept (0: forever).
    pub failed_days: u64,
    /// Days canceled runs are kept (0: forever).
    pub canceled_days: u64,
    /// Most top-level runs kept (0: no cap).
    pub max_runs: u64,
    /// Time between passes.
    pub every: Duration,
    /// Top-level runs deleted per transaction.
    pub batch: i64,
}

impl Retention {
    /// The retention settings of `config`.
    pub fn from_config(config: &ServeConfig) -> Retention {
        Retention {
            completed_days: config.retention_completed_days,
            failed_days: config.retention_failed_days,
            canceled_days: config.retention_canceled_days,
            max_runs: config.retention_max_runs,
            every: Duration::from_secs(config.retention_interval_seconds.max(1)),
            batch: config.retention_batch.max(1),
        }
    }

    /// The store's policy at `now`: each status's cut-off `days` before it.
    pub fn policy(&self, now: DateTime<Utc>) -> RetentionPolicy {
        let before = |days: u64| {
            (days > 0).then(|| {
                let days = i64::try_from(days).unwrap_or(36_500).min(36_500);
                (now - chrono::Duration::days(days)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            })
        };
        RetentionPolicy {
            completed_before: before(self.completed_days),
            failed_before: before(self.failed_days),
            canceled_before: before(self.canceled_days),
            max_runs: (self.max_runs > 0).then(|| i64::try_from(self.max_runs).unwrap_or(i64::MAX)),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Ids of the runs deleted (top-level runs and their subflow children).
    pub runs: Vec<String>,
    /// Transactions that deleted runs.
    pub batches: usize,
    /// Artifact folders (or files) removed.
    pub artifact_dirs: usize,
    /// Free pages of the database file before and after reclaiming them (all zeros on PostgreSQL).
    pub space: SpaceReclaimed,
}

/// Runs a pass every `retention.every` on the leader until `shutdown`.
pub async fn run_retention(
    store: Arc<dyn Store>,
    artifacts_dir: PathBuf,
    retention: Retention,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut told_vacuum = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(retention.every) => {}
            _ = shutdown.changed() => return,
        }
        let policy = retention.policy(Utc::now());
        if !store.is_leader() || !policy.is_active() {
            continue;
        }
        match pass(store.as_ref(), &artifacts_dir, &policy, retention.batch).await {
            Ok(report) => {
                tracing::info!(
                    runs = report.runs.len(),
                    batches = report.batches,
                    artifact_dirs = report.artifact_dirs,
                    free_pages_before = report.space.free_before,
                    free_pages_after = report.space.free_after,
                    "retention pass"
                );
                if !report.space.enabled && report.space.free_before > 0 && !told_vacuum {
                    told_vacuum = true;
                    tracing::info!(
                        free_pages = report.space.free_before,
                        "the SQLite database predates incremental auto_vacuum: freed pages are reused, the file does \
                         not shrink until a VACUUM (docs/operations.md)"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %ErrorChain(&e), "retention pass failed; the next pass retries"),
        }
    }
}

/// One pass: batches of at most `batch` top-level runs until none is selected, their artifact folders, then the
/// freed pages.
pub async fn pass(
    store: &dyn Store,
    artifacts_dir: &Path,
    policy: &RetentionPolicy,
    batch: i64,
) -> Result<PassReport, StoreError> {
    let mut report = PassReport::default();
    loop {
        let ids = store.delete_expired_runs(policy, batch).await?;
        if ids.is_empty() {
            break;
        }
        report.batches += 1;
        report.artifact_dirs += remove_artifacts(artifacts_dir, &ids).await;
        report.runs.extend(ids);
        // Other writers get the store between batches.
        tokio::task::yield_now().await;
    }
    if !report.runs.is_empty() {
        report.space = reclaim(store).await?;
    }
    Ok(report)
}

/// Gives free pages back in writes of [`RECLAIM_PAGES`] while they shrink the free list.
async fn reclaim(store: &dyn Store) -> Result<SpaceReclaimed, StoreError> {
    let first = store.reclaim_space(RECLAIM_PAGES).await?;
    let mut last = first;
    for _ in 1..RECLAIM_STEPS {
        if !last.enabled || last.free_after == 0 || last.free_after >= last.free_before {
            break;
        }
        last = store.reclaim_space(RECLAIM_PAGES).await?;
    }
    Ok(SpaceReclaimed { enabled: first.enabled, free_before: first.free_before, free_after: last.free_after })
}

/// Removes the artifact folders of `run_ids` on a blocking thread; how many were removed.
async fn remove_artifacts(dir: &Path, run_ids: &[String]) -> usize {
    let (dir, ids) = (dir.to_path_buf(), run_ids.to_vec());
    let removed = tokio::task::spawn_blocking(move || {
        ids.iter()
            .filter(|id| match remove_run_artifacts(&dir, id) {
                Ok(removed) => removed,
                Err(e) => {
                    tracing::warn!(run_id = %id, error = %e, "cannot remove a deleted run's artifact files");
                    false
                }
            })
            .count()
    })
    .await;
    removed.unwrap_or(0)
}

/// Removes `<dir>/<run_id>`: a folder with everything in it (symbolic links inside are removed, never followed),
/// or a file or link of that name. Nothing outside `dir` is touched: a run id that is not one plain path component
/// is refused. False when there was nothing to remove.
pub fn remove_run_artifacts(dir: &Path, run_id: &str) -> std::io::Result<bool> {
    let mut parts = Path::new(run_id).components();
    let plain = matches!((parts.next(), parts.next()), (Some(Component::Normal(c)), None) if c == run_id);
    if !plain || run_id.contains(['/', '\\']) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a plain folder name"));
    }
    let path = dir.join(run_id);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        // std's remove_dir_all removes the links it meets without following them.
        std::fs::remove_dir_all(&path)?;
    } else {
        std::fs::remove_file(&path)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ckp-retention-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn artifact_folders_are_removed_without_leaving_the_folder() {
        let root = temp("artifacts");
        let (artifacts, outside) = (root.join("artifacts"), root.join("outside"));
        std::fs::create_dir_all(artifacts.join("r1/sub")).expect("run folder");
        std::fs::create_dir_all(&outside).expect("outside");
        std::fs::write(artifacts.join("r1/sub/a.txt"), "a").expect("file");
        std::fs::write(outside.join("keep.txt"), "keep").expect("file");
        // Links inside a run's folder and a run "folder" that is a link lead out: only the links go.
        std::os::unix::fs::symlink(&outside, artifacts.join("r1/link")).expect("link");
        std::os::unix::fs::symlink(&outside, artifacts.join("r2")).expect("link");
        std::fs::create_dir_all(artifacts.join("r3")).expect("kept run");
        assert!(remove_run_artifacts(&artifacts, "r1").expect("removed"));
        assert!(remove_run_artifacts(&artifacts, "r2").expect("removed"));
        assert!(!remove_run_artifacts(&artifacts, "r4").expect("nothing there"));
        for bad in ["..", ".", "", "../outside", "a/b", "/etc"] {
            assert!(remove_run_artifacts(&artifacts, bad).is_err(), "{bad:?}");
        }
        assert!(!artifacts.join("r1").exists() && std::fs::symlink_metadata(artifacts.join("r2")).is_err());
        assert!(artifacts.join("r3").is_dir(), "another run's folder stays");
        assert_eq!(std::fs::read_to_string(outside.join("keep.txt")).expect("kept"), "keep");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn zero_days_keeps_a_status_and_zero_runs_is_no_cap() {
        let r = Retention {
            completed_days: 30,
            failed_days: 0,
            canceled_days: 1,
            max_runs: 0,
            every: Duration::from_secs(1),
            batch: 10,
        };
        let now = DateTime::parse_from_rfc3339("2024-03-31T12:00:00Z").expect("time").with_timezone(&Utc);
        let p = r.policy(now);
        assert_eq!(p.completed_before.as_deref(), Some("2024-03-01T12:00:00.000000Z"));
        assert_eq!(p.failed_before, None);
        assert_eq!(p.canceled_before.as_deref(), Some("2024-03-30T12:00:00.000000Z"));
        assert_eq!(p.max_runs, None);
        let off = Retention { completed_days: 0, canceled_days: 0, ..r };
        assert!(!off.policy(now).is_active());
        assert_eq!(Retention { max_runs: 5, ..off }.policy(now).max_runs, Some(5));
    }
}
