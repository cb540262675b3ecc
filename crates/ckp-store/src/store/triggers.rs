//! [`TriggerStore`]: trigger registrations (one per procedure version, synced from the CKP `trigger` block or
//! written by an operator) and their fires, with the one rule of a sync ([`synced`]) and the one decoder of each
//! row for both backends. A fire is the only way a trigger starts a run: the cause's row (unique per trigger and
//! cause key) and the run are written in one transaction, under a lock on the registration, so a cause replayed
//! by a crash, a retry or another process starts nothing and a concurrency limit cannot be raced past. The store
//! keeps a registration's settings as opaque JSON (`config`): reading them is the server's business.

use ckp_engine::effects::BoxFuture;
use ckp_engine::journal::Commit;

use crate::StoreError;
use crate::row::RowSource;
use crate::store::{NewRun, RunRow};

/// Trigger registrations and fires.
pub trait TriggerStore: Send + Sync {
    /// Every registration, disabled ones included, by procedure id and version.
    fn list_triggers(&self) -> BoxFuture<'_, Result<Vec<TriggerRow>, StoreError>>;
    /// The registration of one procedure version.
    fn get_trigger<'a>(
        &'a self,
        procedure_id: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<Option<TriggerRow>, StoreError>>;
    /// Creates or replaces a registration as an operator writes it (`source` = `api`, which a later sync keeps);
    /// enabling it clears an operator's disable. A schedule's cursor starts now when it has none.
    fn put_trigger(&self, put: TriggerPut) -> BoxFuture<'_, Result<TriggerRow, StoreError>>;
    /// An operator's disable (`disabled_by` = `operator`, which a sync keeps); not found when absent.
    fn disable_trigger<'a>(
        &'a self,
        procedure_id: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<TriggerRow, StoreError>>;
    /// Brings a version's registration in line with its document and status ([`synced`]), in one transaction;
    /// the registration afterwards (None: the version declares no trigger and has none).
    fn sync_trigger(&self, sync: TriggerSync) -> BoxFuture<'_, Result<Option<TriggerRow>, StoreError>>;
    /// Records a cause of a trigger and, with `start`, creates and queues its run, in one transaction under a lock
    /// on the registration: a known cause key is [`FireOutcome::Duplicate`] (nothing written), a registration
    /// absent or disabled [`FireOutcome::Disabled`], `max_active` or more of the trigger's runs not yet ended
    /// [`FireOutcome::Busy`] (nothing written). A `scheduled_at` later than the registration's cursor moves it.
    fn fire_trigger(&self, fire: TriggerFire) -> BoxFuture<'_, Result<FireOutcome, StoreError>>;
    /// The latest fires of a registration, newest first, at most `limit`.
    fn trigger_fires<'a>(
        &'a self,
        procedure_id: &'a str,
        version: &'a str,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<FireRow>, StoreError>> {
        self.trigger_fires_before(procedure_id, version, limit, None)
    }
    /// A page of a registration's fires, newest first: at most `limit`, those recorded before the fire `before`
    /// ([`FireRow::seq`]) when given.
    fn trigger_fires_before<'a>(
        &'a self,
        procedure_id: &'a str,
        version: &'a str,
        limit: i64,
        before: Option<i64>,
    ) -> BoxFuture<'a, Result<Vec<FireRow>, StoreError>>;
    /// The recorded keys of a registration that start with `prefix` and still dedupe (their `dedupe_until` is
    /// unset or later than now): for a file watch, the file versions it has fired and not yet seen change or go.
    fn live_fire_keys<'a>(
        &'a self,
        procedure_id: &'a str,
        version: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;
    /// Deletes up to `prune.limit` fires of a registration that are beyond its newest `prune.keep` or recorded
    /// before `prune.older_than`, and that dedupe nothing any more: a key past its `dedupe_until`, or a schedule
    /// tick behind the registration's cursor (the scheduler never walks back to it). Returns how many.
    fn prune_trigger_fires<'a>(
        &'a self,
        procedure_id: &'a str,
        version: &'a str,
        prune: PruneFires,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
}

/// Which fires [`TriggerStore::prune_trigger_fires`] may delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneFires {
    /// The newest this many fires of the registration are kept.
    pub keep: i64,
    /// Fires recorded before this time (RFC 3339) go, even among the newest `keep`.
    pub older_than: String,
    /// The most rows deleted by one call (one short transaction).
    pub limit: i64,
}

/// A registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerRow {
    /// Row id (LangOrch's integer `id`).
    pub id: i64,
    /// Procedure.
    pub procedure_id: String,
    /// The version it belongs to.
    pub version: String,
    /// `scheduled`, `webhook`, `event`, `file_watch` (a `manual` trigger is not registered).
    pub trigger_type: String,
    /// The settings as JSON text (the server's type).
    pub config: String,
    /// `ckp` (the document's block) or `api` (an operator's; a sync leaves its settings alone).
    pub source: String,
    /// Whether it fires.
    pub enabled: bool,
    /// Why it is disabled: `operator` (kept by syncs), `status`, `deleted`, `undeclared`.
    pub disabled_by: Option<String>,
    /// A paused schedule does not tick (fires through the API still start runs).
    pub paused: bool,
    /// Why it was paused.
    pub pause_note: Option<String>,
    /// A schedule's last evaluated tick (RFC 3339): ticks after it are due.
    pub cursor_at: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// An operator's registration ([`TriggerStore::put_trigger`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerPut {
    /// Procedure.
    pub procedure_id: String,
    /// Version.
    pub version: String,
    /// Type.
    pub trigger_type: String,
    /// Settings (JSON text).
    pub config: String,
    /// Whether it fires.
    pub enabled: bool,
    /// Paused.
    pub paused: bool,
    /// Why.
    pub pause_note: Option<String>,
}

/// What a version's document and status say about its registration ([`TriggerStore::sync_trigger`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerSync {
    /// Procedure.
    pub procedure_id: String,
    /// Version.
    pub version: String,
    /// The declared trigger's type and settings (JSON text); None when the document declares none (or only
    /// `manual`) or the version was deleted.
    pub declared: Option<(String, String)>,
    /// Why the version cannot fire: `status` (deprecated or archived), `deleted`; None when it can.
    pub blocked: Option<&'static str>,
}

/// The state a sync leaves a registration in, given the one it found (None: absent) — the one rule of syncs.
/// Returns None when there is nothing to store. The settings are the document's unless an operator wrote them;
/// an operator's disable stays; a blocked version, or a document that no longer declares a trigger, disables.
pub fn synced(found: Option<&TriggerRow>, sync: &TriggerSync, now: &str) -> Option<TriggerRow> {
    let mut row = match (found, &sync.declared) {
        (None, None) => return None,
        (Some(f), _) => f.clone(),
        (None, Some((kind, config))) => TriggerRow {
            id: 0,
            procedure_id: sync.procedure_id.clone(),
            version: sync.version.clone(),
            trigger_type: kind.clone(),
            config: config.clone(),
            source: "ckp".into(),
            enabled: true,
            disabled_by: None,
            paused: false,
            pause_note: None,
            cursor_at: None,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
        },
    };
    if row.source == "ckp"
        && let Some((kind, config)) = &sync.declared
    {
        row.trigger_type.clone_from(kind);
        row.config.clone_from(config);
    }
    let off = match (sync.blocked, &sync.declared) {
        (Some(why), _) => Some(why),
        (None, None) if row.source == "ckp" => Some("undeclared"),
        _ => None,
    };
    if row.disabled_by.as_deref() != Some("operator") {
        row.enabled = off.is_none();
        row.disabled_by = off.map(str::to_owned);
    }
    if row.cursor_at.is_none() || !row.enabled {
        // Ticks while a registration is off are not owed: a schedule (re)starts from the sync.
        row.cursor_at = Some(now.to_owned());
    }
    if found.is_some_and(|f| *f == row) {
        return found.cloned();
    }
    row.updated_at = now.to_owned();
    Some(row)
}

/// The registration after an operator's write.
pub(crate) fn put_row(found: Option<TriggerRow>, put: TriggerPut, now: &str) -> TriggerRow {
    let mut row = found.unwrap_or_else(|| TriggerRow {
        id: 0,
        procedure_id: put.procedure_id.clone(),
        version: put.version.clone(),
        trigger_type: String::new(),
        config: String::new(),
        source: String::new(),
        enabled: true,
        disabled_by: None,
        paused: false,
        pause_note: None,
        cursor_at: None,
        created_at: now.to_owned(),
        updated_at: now.to_owned(),
    });
    let resumed = (row.paused && !put.paused) || (!row.enabled && put.enabled);
    row.trigger_type = put.trigger_type;
    row.config = put.config;
    row.source = "api".into();
    row.enabled = put.enabled;
    row.disabled_by = (!put.enabled).then(|| "operator".to_owned());
    row.paused = put.paused;
    row.pause_note = put.pause_note;
    if row.cursor_at.is_none() || resumed {
        // Ticks while paused or disabled are not owed: the schedule starts again from now.
        row.cursor_at = Some(now.to_owned());
    }
    row.updated_at = now.to_owned();
    row
}

/// A cause of a trigger ([`TriggerStore::fire_trigger`]).
#[derive(Debug, Clone)]
pub struct TriggerFire {
    /// The registration's procedure.
    pub procedure_id: String,
    /// The registration's version.
    pub version: String,
    /// Unique per registration: `schedule:<time>`, `idempotency:<key>`, `signature:<t>:<hex>`, `manual:<uuid>`,
    /// a broker's message id, a file's identity.
    pub cause_key: String,
    /// Other keys of the same cause (a webhook's `Idempotency-Key` beside its signature): any one known makes the
    /// fire a duplicate, and each is recorded with the run.
    pub aliases: Vec<String>,
    /// A schedule's tick (RFC 3339).
    pub scheduled_at: Option<String>,
    /// Refuse when this many of the trigger's runs have not ended (queued, running, at an approval or a timer).
    pub max_active: Option<i64>,
    /// The run to create and queue; None records the cause as skipped with `skip_reason`.
    pub start: Option<(NewRun, Commit)>,
    /// Why the cause starts no run (`overlap`, `missed_catchup_window`, ...).
    pub skip_reason: Option<String>,
    /// Keys (of `cause_key` and `aliases`) that dedupe only until a time (RFC 3339): a webhook body's hash, a
    /// timestamped signature, an `Idempotency-Key`. A key not listed dedupes as long as its row is kept. A known key
    /// past its time is no duplicate: the fire replaces its row.
    pub dedupe_until: Vec<(String, String)>,
    /// Keys recorded earlier whose cause this one supersedes (a file's previous version): in the same transaction
    /// they stop deduping, so a later prune may delete them.
    pub retire: Vec<String>,
}

impl TriggerFire {
    /// Until when `key` dedupes (None: as long as its row is kept).
    pub(crate) fn until(&self, key: &str) -> Option<&str> {
        self.dedupe_until.iter().find(|(k, _)| k == key).map(|(_, t)| t.as_str())
    }
}

/// What a fire did.
#[derive(Debug, Clone, PartialEq)]
pub enum FireOutcome {
    /// The run was created and queued with its fire row.
    Started(Box<RunRow>),
    /// The cause was recorded as skipped.
    Skipped,
    /// The cause was already recorded (by an earlier attempt or another process): its run, if it started one.
    Duplicate {
        /// The run the first fire started.
        run_id: Option<String>,
    },
    /// The registration is absent or disabled.
    Disabled,
    /// `max_active` runs of the trigger have not ended.
    Busy {
        /// How many.
        active: i64,
    },
}

/// A recorded fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireRow {
    /// Increasing in the order fires are recorded: the fires list's page cursor.
    pub seq: i64,
    /// The cause.
    pub cause_key: String,
    /// The run it started.
    pub run_id: Option<String>,
    /// `started` or `skipped`.
    pub outcome: String,
    /// Why it was skipped.
    pub reason: Option<String>,
    /// A schedule's tick.
    pub scheduled_at: Option<String>,
    /// Recorded.
    pub created_at: String,
    /// When the key stops deduping (None: as long as the row is kept).
    pub dedupe_until: Option<String>,
}

/// The columns [`trigger_row`] reads, in its order.
pub(crate) const TRIGGER_COLUMNS: &str =
    "id, procedure_id, version, trigger_type, config, source, enabled, disabled_by,
    paused, pause_note, cursor_at, created_at, updated_at";

/// A registration from the columns of [`TRIGGER_COLUMNS`].
pub(crate) fn trigger_row<R: RowSource>(r: &R) -> Result<TriggerRow, R::Error> {
    Ok(TriggerRow {
        id: r.int(0)?,
        procedure_id: r.text(1)?,
        version: r.text(2)?,
        trigger_type: r.text(3)?,
        config: r.text(4)?,
        source: r.text(5)?,
        enabled: r.flag(6)?,
        disabled_by: r.opt_text(7)?,
        paused: r.flag(8)?,
        pause_note: r.opt_text(9)?,
        cursor_at: r.opt_time(10)?,
        created_at: r.time(11)?,
        updated_at: r.time(12)?,
    })
}

/// The columns [`fire_row`] reads, in its order.
pub(crate) const FIRE_COLUMNS: &str = "seq, cause_key, run_id, outcome, reason, scheduled_at, created_at, dedupe_until";

/// A fire from the columns of [`FIRE_COLUMNS`].
pub(crate) fn fire_row<R: RowSource>(r: &R) -> Result<FireRow, R::Error> {
    Ok(FireRow {
        seq: r.int(0)?,
        cause_key: r.text(1)?,
        run_id: r.opt_text(2)?,
        outcome: r.text(3)?,
        reason: r.opt_text(4)?,
        scheduled_at: r.opt_time(5)?,
        created_at: r.time(6)?,
        dedupe_until: r.opt_time(7)?,
    })
}

/// The fires [`TriggerStore::prune_trigger_fires`] deletes, as a condition on `f` (a `trigger_fires` row) with
/// `{1}` procedure id, `{2}` version, `{3}` the age limit, `{4}` how many to keep, `{5}` now: beyond the newest
/// `keep` or older than the limit, and deduping nothing any more.
pub(crate) const PRUNABLE: &str = "f.procedure_id = {1} AND f.version = {2}
    AND (f.created_at < {3} OR f.seq <= (SELECT k.seq FROM trigger_fires k WHERE k.procedure_id = {1}
        AND k.version = {2} ORDER BY k.seq DESC LIMIT 1 OFFSET {4}))
    AND ((f.dedupe_until IS NOT NULL AND f.dedupe_until <= {5})
        OR (f.dedupe_until IS NULL AND f.scheduled_at IS NOT NULL AND f.scheduled_at < (SELECT t.cursor_at
            FROM triggers t WHERE t.procedure_id = {1} AND t.version = {2})))";

/// The trigger's runs that have not ended: those its fires started, in a status before the end. Distinct runs: a
/// cause recorded under several keys (a signature and an `Idempotency-Key`) has one fire row per key.
pub(crate) const ACTIVE_RUNS: &str = "SELECT count(DISTINCT f.run_id) FROM trigger_fires f JOIN runs r ON r.run_id = f.run_id
    WHERE f.procedure_id = {1} AND f.version = {2} AND r.status IN ('created', 'running', 'waiting_approval', 'paused')";

/// The answer when a procedure version has no registration.
pub(crate) fn trigger_not_found() -> StoreError {
    StoreError::NotFound("Trigger registration not found".into())
}
