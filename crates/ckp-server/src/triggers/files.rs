//! File drops. On the leader only (like the schedules), every [`SCAN`] the loop lists the folder of each enabled,
//! unpaused `file_watch` registration (not its subfolders) and fires for each file whose name matches the
//! registration's glob ([`Glob`]) once its size and modification time have stayed the same for the quiet period
//! (`file_watch_settle_ms`): a file still being written never fires.
//!
//! Every version of a file fires once. Its cause key is `file:<event>:<name>:<size>:<mtime ns>`, recorded by
//! [`fire::fire_keyed`] in the transaction of its run; the key of the version that fired last stays live (it dedupes
//! for as long as the file is unchanged) and the next version's fire retires it. So what has fired is in the store,
//! not in this process: a new leader, or this one after a restart, reads the live `file:` keys and compares them
//! with the folder — a file without a live key is `created`, one whose size or time differs from its live key is
//! `modified`, a live key without its file is `deleted` (after the same quiet period). A change of a kind the
//! registration does not fire for is recorded as skipped, so the next change compares with it.
//!
//! Safety: nothing is read unless the folder is under a directory of `file_watch_allowed_paths`
//! (`CKP_FILE_WATCH_ALLOWED_PATHS`), both resolved to their real paths (`..` and symbolic links cannot lead
//! out); entries that are not regular files (folders, symbolic links, sockets) are ignored. A registration for
//! another folder is kept but never read, and says why ([`Allowed::folder`]). This module never reads a file's
//! contents: only names, sizes and times.

use ckp_core::glob::Glob;
use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use chrono::Utc;
use ckp_engine::error::ErrorChain;
use ckp_store::{FireOutcome, StoreError, TriggerRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::TriggerConfig;
use super::fire::{Cause, Keys, fire_keyed, skip_keyed};
use crate::app::AppState;

/// How often the leader lists the watched folders.
pub const SCAN: Duration = Duration::from_millis(250);

/// The quiet period when a registration names none.
pub const DEFAULT_SETTLE_MS: u64 = 1_000;

/// The longest quiet period accepted.
const MAX_SETTLE_MS: u64 = 3_600_000;

/// How long the key of a deletion dedupes (two leaders racing at a hand-over record it once); it is pruned after.
const DELETED_DEDUPE: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// A kind of change of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileEvent {
    /// A file appeared (or is there when the registration is made).
    Created,
    /// A file that fired has another size or modification time.
    Modified,
    /// A file that fired is gone.
    Deleted,
}

impl FileEvent {
    /// The name in keys, inputs and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            FileEvent::Created => "created",
            FileEvent::Modified => "modified",
            FileEvent::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Option<FileEvent> {
        [FileEvent::Created, FileEvent::Modified, FileEvent::Deleted].into_iter().find(|e| e.as_str() == s)
    }
}

/// The changes a file watch fires for when its registration names none.
pub fn default_events() -> Vec<FileEvent> {
    vec![FileEvent::Created, FileEvent::Modified]
}

/// [`DEFAULT_SETTLE_MS`], for serde.
pub fn default_settle_ms() -> u64 {
    DEFAULT_SETTLE_MS
}

/// The event types of a CKP `file_watch_config` (the compiler refused unknown ones).
pub(super) fn events_of(watch: Option<&ckp_core::model::FileWatchConfig>) -> Vec<FileEvent> {
    match watch.and_then(|w| w.event_types.as_ref()) {
        Some(types) => types.iter().filter_map(|t| FileEvent::parse(t)).collect(),
        None => default_events(),
    }
}

/// The quiet period of a CKP trigger block: `file_watch_config.settle_ms`, else `settle_ms`.
pub(super) fn settle_of(t: &ckp_core::model::Trigger) -> u64 {
    let nested = t.file_watch_config.as_ref().and_then(|w| w.extra.get("settle_ms"));
    nested.or_else(|| t.extra.get("settle_ms")).and_then(Value::as_u64).unwrap_or(DEFAULT_SETTLE_MS)
}

/// What is wrong with a file watch's settings, in words for a 422.
pub(super) fn problem(config: &TriggerConfig) -> Option<String> {
    if config.file_watch_path.as_deref().is_none_or(|p| p.trim().is_empty()) {
        return Some("a file_watch trigger needs file_watch_path".into());
    }
    if config.file_watch_settle_ms > MAX_SETTLE_MS {
        return Some(format!("file_watch_settle_ms must be at most {MAX_SETTLE_MS}"));
    }
    if config.file_watch_event_types.is_empty() {
        return Some("file_watch_event_types needs at least one of created, modified, deleted".into());
    }
    Glob::new(config.file_watch_pattern.as_deref().unwrap_or("*")).err().map(|e| format!("file_watch_pattern: {e}"))
}

/// The folders file watches may read: `file_watch_allowed_paths`. Resolved at each check, so a folder created
/// after the start counts, and a link swapped later cannot lead out.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    roots: Vec<PathBuf>,
}

impl Allowed {
    /// The allowed directories as the setting lists them.
    pub fn new(roots: &[String]) -> Allowed {
        Allowed { roots: roots.iter().map(|r| r.trim()).filter(|r| !r.is_empty()).map(PathBuf::from).collect() }
    }

    /// The real path of the folder a registration names, or why it is not read.
    pub fn folder(&self, path: &str) -> Result<PathBuf, String> {
        if self.roots.is_empty() {
            return Err("file watching is off: file_watch_allowed_paths (CKP_FILE_WATCH_ALLOWED_PATHS) lists no \
                        directory"
                .into());
        }
        let given = Path::new(path);
        if !given.is_absolute() {
            return Err(format!("file_watch_path `{path}` is not an absolute path"));
        }
        if given.components().any(|c| c == Component::ParentDir) {
            return Err(format!("file_watch_path `{path}` contains `..`"));
        }
        let real = std::fs::canonicalize(given).map_err(|e| format!("the folder `{path}` cannot be opened: {e}"))?;
        if !real.is_dir() {
            return Err(format!("`{path}` is not a folder"));
        }
        let inside = self.roots.iter().filter_map(|r| std::fs::canonicalize(r).ok()).any(|r| real.starts_with(r));
        match inside {
            true => Ok(real),
            false => Err(format!(
                "`{path}` is not under a directory of file_watch_allowed_paths (CKP_FILE_WATCH_ALLOWED_PATHS){}",
                if real == given { String::new() } else { format!(": it resolves to `{}`", real.display()) }
            )),
        }
    }

    /// Why a registration's folder is not read (None: it is, or the registration is not a file watch).
    pub fn refusal(&self, reg: &TriggerRow) -> Option<String> {
        if reg.trigger_type != "file_watch" {
            return None;
        }
        let config = TriggerConfig::of(reg);
        self.folder(config.file_watch_path.as_deref().unwrap_or_default()).err()
    }
}

/// A version of a file: its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    size: u64,
    mtime_ns: i128,
}

/// The matching regular files of `folder` by name.
fn scan(folder: &Path, glob: &Glob) -> std::io::Result<HashMap<String, Version>> {
    let mut files = HashMap::new();
    for entry in std::fs::read_dir(folder)? {
        let Ok(entry) = entry else { continue };
        // `file_type` and `metadata` of an entry do not follow symbolic links.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else { continue };
        if !glob.matches(&name) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let mtime_ns = match meta.modified().map(|t| t.duration_since(UNIX_EPOCH)) {
            Ok(Ok(d)) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
            Ok(Err(before)) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
            Err(_) => 0,
        };
        files.insert(name, Version { size: meta.len(), mtime_ns });
    }
    Ok(files)
}

/// A file's cause key.
fn key(event: FileEvent, name: &str, v: Version) -> String {
    format!("file:{}:{name}:{}:{}", event.as_str(), v.size, v.mtime_ns)
}

/// The name and version of a live key (names may hold `:`: the numbers are read from the right).
fn parse_key(key: &str) -> Option<(String, Version)> {
    let mut parts = key.rsplitn(3, ':');
    let mtime_ns = parts.next()?.parse().ok()?;
    let size = parts.next()?.parse().ok()?;
    let (_, name) = parts.next()?.strip_prefix("file:")?.split_once(':')?;
    Some((name.to_owned(), Version { size, mtime_ns }))
}

/// What has fired for a name: the version and the live keys to retire when it changes.
#[derive(Debug)]
struct Fired {
    version: Version,
    keys: Vec<String>,
}

/// A change seen and not fired yet: what the folder shows (None: gone) and since when unchanged.
#[derive(Debug)]
struct Pending {
    seen: Option<Version>,
    since: Instant,
}

/// One registration's state on the leader: rebuilt from the store when the registration changes or this process
/// becomes leader again.
#[derive(Debug)]
struct Watch {
    stamp: String,
    fired: Option<HashMap<String, Fired>>,
    pending: HashMap<String, Pending>,
    refused: Option<String>,
}

/// Watches the folders until `shutdown`.
pub async fn run_file_watch(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(SCAN);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watches: HashMap<i64, Watch> = HashMap::new();
    loop {
        tokio::select! {
            _ = every.tick() => {
                if !state.store.is_leader() {
                    // Another process may fire meanwhile: a return to leadership reads the store again.
                    watches.clear();
                    continue;
                }
                if let Err(e) = pass(&state, &mut watches).await {
                    tracing::error!(error = %ErrorChain(&e), "the file watch pass failed; the next one retries");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn pass(state: &AppState, watches: &mut HashMap<i64, Watch>) -> Result<(), StoreError> {
    let regs: Vec<TriggerRow> = state
        .store
        .list_triggers()
        .await?
        .into_iter()
        .filter(|t| t.trigger_type == "file_watch" && t.enabled && !t.paused)
        .collect();
    let ids: HashSet<i64> = regs.iter().map(|r| r.id).collect();
    watches.retain(|id, _| ids.contains(id));
    for reg in &regs {
        let stamp = format!("{}|{}", reg.updated_at, reg.config);
        let w = watches.entry(reg.id).or_insert_with(|| Watch {
            stamp: stamp.clone(),
            fired: None,
            pending: HashMap::new(),
            refused: None,
        });
        if w.stamp != stamp {
            *w = Watch { stamp, fired: None, pending: HashMap::new(), refused: w.refused.take() };
        }
        watch_one(state, reg, w).await?;
    }
    Ok(())
}

async fn watch_one(state: &AppState, reg: &TriggerRow, w: &mut Watch) -> Result<(), StoreError> {
    let config = TriggerConfig::of(reg);
    let path = config.file_watch_path.clone().unwrap_or_default();
    let Ok(glob) = Glob::new(config.file_watch_pattern.as_deref().unwrap_or("*")) else { return Ok(()) };
    let allowed = state.file_watch.clone();
    let by = glob.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let folder = allowed.folder(&path)?;
        scan(&folder, &by).map_err(|e| format!("the folder `{path}` cannot be listed: {e}"))
    })
    .await
    .unwrap_or_else(|e| Err(format!("the folder scan stopped: {e}")));
    let files = match listed {
        Ok(files) => {
            if w.refused.take().is_some() {
                tracing::info!(procedure_id = %reg.procedure_id, version = %reg.version, "file watch: the folder is read");
            }
            files
        }
        Err(why) => {
            // Logged once per reason; nothing is fired or recorded as deleted while the folder cannot be read.
            if w.refused.as_deref() != Some(why.as_str()) {
                tracing::warn!(procedure_id = %reg.procedure_id, version = %reg.version, reason = %why,
                    "file watch: the folder is not read");
                w.refused = Some(why);
            }
            return Ok(());
        }
    };
    if w.fired.is_none() {
        let mut fired: HashMap<String, Fired> = HashMap::new();
        for k in state.store.live_fire_keys(&reg.procedure_id, &reg.version, "file:").await? {
            let Some((name, version)) = parse_key(&k) else { continue };
            let f = fired.entry(name).or_insert(Fired { version, keys: Vec::new() });
            // Keys come oldest first: the last one is the version that fired last.
            f.version = version;
            f.keys.push(k);
        }
        w.fired = Some(fired);
    }
    let Some(fired) = w.fired.as_mut() else { return Ok(()) };
    let now = Instant::now();
    let settle = Duration::from_millis(config.file_watch_settle_ms);
    let mut names: Vec<&String> = files.keys().collect();
    // A fired file whose name no longer matches the pattern (the pattern changed) is not gone.
    names.extend(fired.keys().filter(|n| !files.contains_key(*n) && glob.matches(n)));
    names.sort();
    let mut ready = Vec::new();
    for name in names {
        let seen = files.get(name).copied();
        if seen == fired.get(name).map(|f| f.version) {
            w.pending.remove(name);
            continue;
        }
        match w.pending.get(name) {
            Some(p) if p.seen == seen => {
                if now.duration_since(p.since) >= settle {
                    ready.push((name.clone(), seen));
                }
            }
            _ => {
                w.pending.insert(name.clone(), Pending { seen, since: now });
            }
        }
    }
    w.pending.retain(|n, _| files.contains_key(n) || fired.contains_key(n));
    for (name, seen) in ready {
        let before = fired.get(&name);
        let (event, version) = match (before, seen) {
            (None, Some(v)) => (FileEvent::Created, v),
            (Some(_), Some(v)) => (FileEvent::Modified, v),
            (Some(f), None) => (FileEvent::Deleted, f.version),
            (None, None) => continue,
        };
        let cause_key = key(event, &name, version);
        let mut keys = Keys { until: Vec::new(), retire: before.map(|f| f.keys.clone()).unwrap_or_default() };
        if event == FileEvent::Deleted {
            keys = keys.until(&cause_key, Utc::now() + DELETED_DEDUPE);
        }
        let file = Path::new(config.file_watch_path.as_deref().unwrap_or_default()).join(&name);
        let file = file.to_string_lossy().into_owned();
        let outcome = match config.file_watch_event_types.contains(&event) {
            true => {
                let cause = Cause {
                    key: cause_key.clone(),
                    aliases: Vec::new(),
                    kind: "file_watch",
                    by: file.clone(),
                    scheduled_at: None,
                    inputs: inputs(&file, &name, event, version),
                    max_active: config.max_concurrent_runs,
                    traceparent: None,
                };
                match fire_keyed(state, reg, cause, keys.clone()).await {
                    // The version cannot run (deleted, deprecated, inputs refused): recorded as skipped with why.
                    Err(e) if e.status.is_client_error() => {
                        let why = format!("not_runnable: {}", e.detail.as_str().unwrap_or(e.code));
                        skip_keyed(state, reg, cause_key.clone(), None, why, keys).await
                    }
                    other => other,
                }
            }
            false => {
                let why = format!("event_type_not_watched: {}", event.as_str());
                skip_keyed(state, reg, cause_key.clone(), None, why, keys).await
            }
        };
        match outcome {
            Ok(FireOutcome::Started(_) | FireOutcome::Skipped) => {
                tracing::debug!(procedure_id = %reg.procedure_id, version = %reg.version, file = %name,
                    event = event.as_str(), "file watch fired");
                w.pending.remove(&name);
                match event {
                    FileEvent::Deleted => fired.remove(&name),
                    _ => fired.insert(name, Fired { version, keys: vec![cause_key] }),
                };
            }
            Ok(FireOutcome::Duplicate { .. }) => {
                // Another process recorded it: read the store again.
                w.fired = None;
                return Ok(());
            }
            // At max_concurrent_runs the file waits (it is still there) and fires when a run ends.
            Ok(FireOutcome::Busy { .. } | FireOutcome::Disabled) => return Ok(()),
            Err(e) => {
                tracing::error!(procedure_id = %reg.procedure_id, version = %reg.version, file = %name,
                    error = ?e.detail, "a file could not be recorded; the next pass retries it");
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A file's run inputs: LangOrch's `{file_watch_path, file_mtime}` (the file's path and its modification time in
/// seconds since the epoch) and ckp's name, size and event.
fn inputs(file: &str, name: &str, event: FileEvent, v: Version) -> Map<String, Value> {
    #[expect(clippy::cast_precision_loss, reason = "seconds as a float, as LangOrch gives them")]
    let mtime = v.mtime_ns as f64 / 1e9;
    let inputs = json!({"file_watch_path": file, "file_mtime": mtime, "file_name": name, "file_size": v.size,
        "file_event": event.as_str()});
    inputs.as_object().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_with_colons_in_names() {
        let v = Version { size: 12, mtime_ns: 1_700_000_000_123_456_789 };
        let k = key(FileEvent::Modified, "a:b.csv", v);
        assert_eq!(k, "file:modified:a:b.csv:12:1700000000123456789");
        assert_eq!(parse_key(&k), Some(("a:b.csv".to_owned(), v)));
        assert_eq!(parse_key("file:created:x:y"), None);
    }

    #[test]
    fn folders_outside_the_allowed_ones_are_refused() {
        let root = std::env::temp_dir().join(format!("ckp-allowed-{}", std::process::id()));
        let inside = root.join("in");
        let outside = std::env::temp_dir().join(format!("ckp-outside-{}", std::process::id()));
        std::fs::create_dir_all(&inside).expect("a temp folder");
        std::fs::create_dir_all(&outside).expect("a temp folder");
        let allowed = Allowed::new(&[root.to_string_lossy().into_owned()]);
        let text = |p: &Path| p.to_string_lossy().into_owned();
        assert!(allowed.folder(&text(&inside)).is_ok());
        assert!(allowed.folder(&text(&outside)).is_err_and(|e| e.contains("not under")));
        assert!(allowed.folder(&format!("{}/../ckp-outside-{}", text(&root), std::process::id())).is_err());
        assert!(allowed.folder("relative/dir").is_err_and(|e| e.contains("absolute")));
        #[cfg(unix)]
        {
            let link = inside.join("escape");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&outside, &link).expect("a link");
            assert!(allowed.folder(&text(&link)).is_err_and(|e| e.contains("resolves to")));
        }
        assert!(Allowed::new(&[]).folder(&text(&inside)).is_err_and(|e| e.contains("off")));
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&outside);
    }
}
