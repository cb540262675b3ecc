//! `/api/triggers`: LangOrch's trigger API (list, get — `null` when absent —, upsert, disable, fire now, sync, the
//! webhook receiver) with its paths, bodies, statuses and messages; ckp's fields (time zone, overlap, catch-up,
//! pause, following the active version, secret rotation, file watches) beside LangOrch's, a registration's fires,
//! and synchronous webhooks (`?wait=`). Every fire goes through [`crate::triggers::fire::fire_keyed`].

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use ckp_connectors::secrets::crypto::sha256_hex;
use ckp_engine::journal::RunStatus;
use ckp_store::{FireOutcome, RunRow, TriggerPut, TriggerRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::api::RunOut;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, OptionalJson, Query};
use crate::triggers::files::FileEvent;
use crate::triggers::fire::Cause;
use crate::triggers::fire::{Keys, fire, fire_keyed};
use crate::triggers::webhook::{CKP_HEADER, LANGORCH_HEADER, Refused, TOLERANCE_SECS, Verified, verify};
use crate::triggers::{MAX_DEDUPE_WINDOW_SECS, Overlap, Schedule, TriggerConfig};

/// How many upcoming ticks a schedule's registration shows.
const NEXT_FIRES: usize = 5;

/// How long an `Idempotency-Key` dedupes (then its fire may be pruned and the key starts a run again).
const IDEMPOTENCY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// The longest a synchronous webhook waits for its run (`?wait=`), in seconds.
const MAX_WAIT_SECS: u64 = 60;

/// A registration (LangOrch's `TriggerRegistrationOut`, with ckp's fields).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TriggerOut {
    /// Row id.
    pub id: i64,
    /// Procedure.
    pub procedure_id: String,
    /// The version it belongs to.
    pub version: String,
    /// `scheduled`, `webhook`, `event`, `file_watch`.
    pub trigger_type: String,
    /// Cron expression.
    pub schedule: Option<String>,
    /// IANA time zone of the schedule.
    pub timezone: Option<String>,
    /// Name of the secret holding the webhook key (never its value).
    pub webhook_secret: Option<String>,
    /// Name of the previous secret, accepted during a rotation.
    pub webhook_secret_previous: Option<String>,
    /// Event source (without credentials).
    pub event_source: Option<String>,
    /// An event trigger's filter.
    pub event_filter: Option<Value>,
    /// The event types an event trigger accepts (empty: any).
    pub event_type: Vec<String>,
    /// File watch directory.
    pub file_watch_path: Option<String>,
    /// File watch glob.
    pub file_watch_pattern: Option<String>,
    /// The changes a file watch fires for.
    pub file_watch_event_types: Vec<FileEvent>,
    /// How long a file must stay unchanged before it fires, in milliseconds.
    pub file_watch_settle_ms: u64,
    /// Why a file watch's folder is not read (not under `file_watch_allowed_paths`, missing, ...); null when it is.
    pub file_watch_refused: Option<String>,
    /// A webhook delivery whose body was seen within this many seconds is refused (409); 0: off.
    pub dedupe_window_seconds: i64,
    /// The most runs of the trigger not yet ended.
    pub max_concurrent_runs: Option<i64>,
    /// A schedule's overlap policy.
    pub overlap: Overlap,
    /// Ticks missed longer ago than this are recorded as skipped.
    pub catchup_window_seconds: i64,
    /// Each tick fires up to this many seconds late (the same offset in every process).
    pub jitter_seconds: i64,
    /// Fires start the procedure's newest active version.
    pub follow_active: bool,
    /// A webhook's largest body.
    pub max_body_bytes: i64,
    /// The addresses a webhook accepts deliveries from (empty: any).
    pub allowed_sources: Vec<String>,
    /// Whether it fires.
    pub enabled: bool,
    /// Why it is disabled: `operator`, `status`, `deleted`, `undeclared`.
    pub disabled_by: Option<String>,
    /// A paused schedule does not tick.
    pub paused: bool,
    /// Why it was paused.
    pub pause_note: Option<String>,
    /// `ckp` (the document's block) or `api` (an operator's).
    pub source: String,
    /// A schedule's next ticks (RFC 3339, UTC), when it is enabled and not paused.
    pub next_fire_times: Vec<String>,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<&TriggerRow> for TriggerOut {
    fn from(r: &TriggerRow) -> Self {
        let c = TriggerConfig::of(r);
        let next_fire_times = match (r.trigger_type.as_str(), r.enabled && !r.paused, &c.schedule) {
            ("scheduled", true, Some(s)) => Schedule::new(s, c.timezone.as_deref())
                .map(|s| s.upcoming(Utc::now(), NEXT_FIRES).iter().map(|t| t.to_rfc3339()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        TriggerOut {
            id: r.id,
            procedure_id: r.procedure_id.clone(),
            version: r.version.clone(),
            trigger_type: r.trigger_type.clone(),
            schedule: c.schedule,
            timezone: c.timezone,
            webhook_secret: c.webhook_secret,
            webhook_secret_previous: c.webhook_secret_previous,
            event_source: c.event_source.as_deref().map(redacted_source),
            event_filter: c.event_filter,
            event_type: c.event_type,
            file_watch_path: c.file_watch_path,
            file_watch_pattern: c.file_watch_pattern,
            file_watch_event_types: c.file_watch_event_types,
            file_watch_settle_ms: c.file_watch_settle_ms,
            file_watch_refused: None,
            dedupe_window_seconds: c.dedupe_window_seconds,
            max_concurrent_runs: c.max_concurrent_runs,
            overlap: c.overlap,
            catchup_window_seconds: c.catchup_window_seconds,
            jitter_seconds: c.jitter_seconds,
            follow_active: c.follow_active,
            max_body_bytes: c.max_body_bytes,
            allowed_sources: c.allowed_sources,
            enabled: r.enabled,
            disabled_by: r.disabled_by.clone(),
            paused: r.paused,
            pause_note: r.pause_note.clone(),
            source: r.source.clone(),
            next_fire_times,
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
        }
    }
}

/// LangOrch's `TriggerRegistrationCreate`, with ckp's fields.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerIn {
    /// `scheduled`, `webhook`, `event`, `file_watch`.
    pub trigger_type: String,
    /// Cron: 5 fields, 6 with seconds first, or a macro (`@daily`).
    pub schedule: Option<String>,
    /// IANA time zone (default UTC).
    pub timezone: Option<String>,
    /// Name of the secret holding the webhook key.
    pub webhook_secret: Option<String>,
    /// Name of the previous secret, accepted during a rotation.
    pub webhook_secret_previous: Option<String>,
    /// Event source (`nats://`, `amqp://`, `sqs://`, `mqtt://`; docs/triggers.md).
    pub event_source: Option<String>,
    /// An event trigger's filter: `subject` (glob), `headers`, `payload` (JSON pointer → value), or flat fields.
    pub event_filter: Option<Value>,
    /// The event types an event trigger accepts (empty: any).
    #[serde(default)]
    pub event_type: Vec<String>,
    /// File watch directory.
    pub file_watch_path: Option<String>,
    /// File watch glob (`*`, `?`, `[abc]`; default `*`).
    pub file_watch_pattern: Option<String>,
    /// The changes a file watch fires for (default `created` and `modified`).
    pub file_watch_event_types: Option<Vec<FileEvent>>,
    /// How long a file must stay unchanged before it fires, in milliseconds (default 1000).
    pub file_watch_settle_ms: Option<u64>,
    /// Refuse a webhook delivery whose body was seen within this many seconds (409); 0 (the default): off.
    #[serde(default)]
    pub dedupe_window_seconds: i64,
    /// The most runs not yet ended (1 or more).
    pub max_concurrent_runs: Option<i64>,
    /// A schedule's overlap policy (default `allow`).
    #[serde(default)]
    pub overlap: Overlap,
    /// Catch-up window in seconds (default 60).
    pub catchup_window_seconds: Option<i64>,
    /// Each tick fires up to this many seconds late (0 to 86400; default 0).
    #[serde(default)]
    pub jitter_seconds: i64,
    /// Fire the newest active version.
    #[serde(default)]
    pub follow_active: bool,
    /// A webhook's largest body (default 1 MiB).
    pub max_body_bytes: Option<i64>,
    /// The addresses a webhook accepts deliveries from (IP addresses or CIDR ranges; empty: any).
    #[serde(default)]
    pub allowed_sources: Vec<String>,
    /// Whether it fires (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Pause a schedule.
    #[serde(default)]
    pub paused: bool,
    /// Why.
    pub pause_note: Option<String>,
}

fn yes() -> bool {
    true
}

/// A fire's answer (LangOrch's shape).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FiredOut {
    /// The run started.
    pub run_id: String,
    /// Procedure.
    pub procedure_id: String,
    /// The version the run runs.
    pub procedure_version: String,
    /// `webhook`, `manual`.
    pub trigger_type: String,
    /// Who or what.
    pub triggered_by: Option<String>,
    /// `created`.
    pub status: String,
}

/// A fire's optional body.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FireIn {
    /// The run's inputs (checked against `variables_schema`).
    pub input_vars: Option<Map<String, Value>>,
}

/// `POST /api/triggers/sync`'s answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Synced {
    /// Registrations after the sync.
    pub synced: usize,
}

/// An event source as answers show it: without credentials (as written when it does not parse).
fn redacted_source(url: &str) -> String {
    #[cfg(feature = "brokers")]
    if let Ok(source) = ckp_brokers::Source::parse(url) {
        return source.redacted();
    }
    // A `user:password@` part is cut from what does not parse.
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, rest))) => format!("{scheme}://{rest}"),
        _ => url.to_owned(),
    }
}

/// The event source to store: the stored one when `sent` is what answers show of it (credentials cut), else `sent`.
fn kept_source(sent: Option<String>, stored: Option<String>) -> Option<String> {
    match (sent, stored) {
        (Some(sent), Some(stored)) if sent == redacted_source(&stored) => Some(stored),
        (sent, _) => sent,
    }
}

async fn registration(state: &AppState, pid: &str, ver: &str) -> ApiResult<TriggerRow> {
    state.store.get_trigger(pid, ver).await?.ok_or_else(|| ApiError::not_found("Trigger registration"))
}

/// The answer to a fire's outcome; `what` names the trigger in the 429.
fn answer(reg: &TriggerRow, outcome: FireOutcome, limit: Option<i64>) -> ApiResult<(StatusCode, Json<FiredOut>)> {
    match outcome {
        FireOutcome::Started(run) => Ok((
            StatusCode::ACCEPTED,
            Json(FiredOut {
                run_id: run.run_id.clone(),
                procedure_id: run.procedure_id.clone(),
                procedure_version: run.procedure_version.clone(),
                trigger_type: run.trigger_type.clone().unwrap_or_default(),
                triggered_by: run.triggered_by.clone(),
                status: "created".into(),
            }),
        )),
        FireOutcome::Duplicate { run_id } => Err(ApiError::with_detail(
            StatusCode::CONFLICT,
            "duplicate_trigger",
            json!({"message": "Duplicate webhook payload within dedupe window", "existing_run_id": run_id}),
        )),
        FireOutcome::Busy { .. } => {
            let n = limit.unwrap_or(1);
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "max_concurrent_runs",
                format!(
                    "max_concurrent_runs ({n}) reached for {} v{} — trigger dropped",
                    reg.procedure_id, reg.version
                ),
            ))
        }
        FireOutcome::Disabled | FireOutcome::Skipped => Err(ApiError::not_found("Trigger registration")),
    }
}

/// A registration as the API shows it: with why a file watch's folder is not read.
fn shown(state: &AppState, row: &TriggerRow) -> TriggerOut {
    TriggerOut { file_watch_refused: state.file_watch.refusal(row), ..TriggerOut::from(row) }
}

/// Every registration, disabled ones included, by procedure id and version.
#[utoipa::path(get, path = "/api/triggers", tag = "triggers", responses((status = 200, body = Vec<TriggerOut>)))]
pub async fn list_triggers(State(state): State<AppState>) -> ApiResult<Json<Vec<TriggerOut>>> {
    Ok(Json(state.store.list_triggers().await?.iter().map(|r| shown(&state, r)).collect()))
}

/// The registration of a procedure version, with a schedule's next fire times; `null` when there is none
/// (LangOrch's answer, which its console relies on).
#[utoipa::path(get, path = "/api/triggers/{procedure_id}/{version}", tag = "triggers",
    params(("procedure_id" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = Option<TriggerOut>)))]
pub async fn get_trigger(
    State(state): State<AppState>,
    Path((pid, ver)): Path<(String, String)>,
) -> ApiResult<Json<Option<TriggerOut>>> {
    Ok(Json(state.store.get_trigger(&pid, &ver).await?.as_ref().map(|r| shown(&state, r))))
}

/// Creates or replaces the registration of a procedure version (an operator's: later syncs from the CKP keep
/// it); enabling it clears an operator's disable. The version must exist.
#[utoipa::path(post, path = "/api/triggers/{procedure_id}/{version}", tag = "triggers", request_body = TriggerIn,
    params(("procedure_id" = String, Path), ("version" = String, Path)),
    responses((status = 201, body = TriggerOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_trigger(
    State(state): State<AppState>,
    Path((pid, ver)): Path<(String, String)>,
    Json(body): Json<TriggerIn>,
) -> ApiResult<(StatusCode, Json<TriggerOut>)> {
    // Answers show an event source without its credentials: the same text sent back keeps the stored source.
    let stored = state.store.get_trigger(&pid, &ver).await?.and_then(|r| TriggerConfig::of(&r).event_source);
    let event_source = kept_source(body.event_source, stored);
    let config = TriggerConfig {
        schedule: body.schedule,
        timezone: body.timezone,
        webhook_secret: body.webhook_secret,
        webhook_secret_previous: body.webhook_secret_previous,
        event_source,
        event_filter: body.event_filter,
        event_type: body.event_type,
        file_watch_path: body.file_watch_path,
        file_watch_pattern: body.file_watch_pattern,
        file_watch_event_types: body.file_watch_event_types.unwrap_or_else(crate::triggers::files::default_events),
        file_watch_settle_ms: body.file_watch_settle_ms.unwrap_or(crate::triggers::files::DEFAULT_SETTLE_MS),
        dedupe_window_seconds: body.dedupe_window_seconds,
        max_concurrent_runs: body.max_concurrent_runs,
        overlap: body.overlap,
        catchup_window_seconds: body.catchup_window_seconds.unwrap_or(60),
        jitter_seconds: body.jitter_seconds,
        follow_active: body.follow_active,
        max_body_bytes: body.max_body_bytes.unwrap_or(1 << 20),
        allowed_sources: body.allowed_sources,
    };
    if let Some(problem) = config.problem(&body.trigger_type) {
        return Err(ApiError::invalid("invalid_trigger", problem));
    }
    if state.store.get_procedure(&pid, Some(&ver)).await?.filter(|r| r.version == ver).is_none() {
        return Err(ApiError::not_found("Procedure"));
    }
    let put = TriggerPut {
        procedure_id: pid,
        version: ver,
        trigger_type: body.trigger_type,
        config: config.to_text(),
        enabled: body.enabled,
        paused: body.paused,
        pause_note: body.pause_note,
    };
    let row = state.store.put_trigger(put).await?;
    Ok((StatusCode::CREATED, Json(shown(&state, &row))))
}

/// Disables the registration of a procedure version (an operator's disable: syncs from the CKP keep it).
#[utoipa::path(delete, path = "/api/triggers/{procedure_id}/{version}", tag = "triggers",
    params(("procedure_id" = String, Path), ("version" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn disable_trigger(
    State(state): State<AppState>,
    Path((pid, ver)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.store.disable_trigger(&pid, &ver).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a run of the registration now (`trigger_type` `manual`, `triggered_by` `api:manual`), with the
/// optional `input_vars`; an `Idempotency-Key` header makes a retry return 409 with the first run's id. Over
/// `max_concurrent_runs`: 429.
#[utoipa::path(post, path = "/api/triggers/{procedure_id}/{version}/fire", tag = "triggers",
    request_body(content = Option<FireIn>),
    params(("procedure_id" = String, Path), ("version" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key starts nothing")),
    responses((status = 202, body = FiredOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn fire_now(
    State(state): State<AppState>,
    Path((pid, ver)): Path<(String, String)>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<FireIn>,
) -> ApiResult<(StatusCode, Json<FiredOut>)> {
    let reg = registration(&state, &pid, &ver).await?;
    let config = TriggerConfig::of(&reg);
    // A fire without a key dedupes nothing: its row may be pruned at once.
    let (key, until) = match idempotency_key(&headers)? {
        Some(k) => (format!("idempotency:{k}"), Utc::now() + IDEMPOTENCY_WINDOW),
        None => (format!("manual:{}", uuid::Uuid::now_v7()), Utc::now()),
    };
    let keys = Keys::default().until(&key, until);
    let cause = Cause {
        key,
        aliases: Vec::new(),
        kind: "manual",
        by: "api:manual".into(),
        scheduled_at: None,
        inputs: body.and_then(|b| b.input_vars).unwrap_or_default(),
        max_active: config.max_concurrent_runs,
        traceparent: None,
    };
    let outcome = fire_keyed(&state, &reg, cause, keys).await?;
    answer(&reg, outcome, config.max_concurrent_runs)
}

/// The most ticks one backfill fires.
pub const MAX_BACKFILL: usize = 1000;

/// `POST .../backfill`'s body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillIn {
    /// The range's start (RFC 3339): its first tick is the first at or after it.
    pub start: String,
    /// The range's end (RFC 3339, not in the future): its last tick is the last at or before it.
    pub end: String,
    /// `allow` (default): every tick starts a run; `skip`: a tick while a run of the trigger has not ended is
    /// recorded as skipped (`overlap`); `cancel_other` reads as `allow` here (a backfill cancels nothing).
    #[serde(default)]
    pub overlap: Overlap,
}

/// `POST .../backfill`'s answer: what each tick of the range did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackfillOut {
    /// Ticks in the range.
    pub ticks: usize,
    /// Runs started.
    pub started: Vec<String>,
    /// Ticks already recorded (fired or skipped by the schedule or an earlier backfill): nothing done.
    pub already_recorded: usize,
    /// Ticks recorded as skipped now.
    pub skipped: usize,
}

/// Fires a schedule's ticks over a past time range, oldest first, each under the key the schedule itself uses: a
/// tick the schedule (or an earlier backfill) already recorded starts nothing, so a backfill can be repeated and
/// overlap the schedule safely. At most 1,000 ticks per call; a paused registration can be backfilled.
#[utoipa::path(post, path = "/api/triggers/{procedure_id}/{version}/backfill", tag = "triggers",
    request_body = BackfillIn,
    params(("procedure_id" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = BackfillOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn backfill(
    State(state): State<AppState>,
    Path((pid, ver)): Path<(String, String)>,
    Json(body): Json<BackfillIn>,
) -> ApiResult<Json<BackfillOut>> {
    let reg = registration(&state, &pid, &ver).await?;
    let config = TriggerConfig::of(&reg);
    let schedule = match (&reg.trigger_type[..], &config.schedule) {
        ("scheduled", Some(s)) => {
            Schedule::new(s, config.timezone.as_deref()).map_err(|e| ApiError::invalid("invalid_trigger", e))?
        }
        _ => return Err(ApiError::invalid("not_scheduled", "only a scheduled trigger can be backfilled")),
    };
    let parse = |name: &str, v: &str| {
        chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ApiError::invalid("invalid_range", format!("{name} `{v}` is not an RFC 3339 time")))
    };
    let (start, end) = (parse("start", &body.start)?, parse("end", &body.end)?);
    if end < start {
        return Err(ApiError::invalid("invalid_range", "end is before start"));
    }
    if end > Utc::now() {
        return Err(ApiError::invalid("invalid_range", "end is in the future: the schedule fires those ticks itself"));
    }
    let mut ticks = Vec::new();
    let mut at = start - chrono::Duration::nanoseconds(1);
    while let Some(t) = schedule.next_after(at).filter(|t| *t <= end) {
        if ticks.len() == MAX_BACKFILL {
            return Err(ApiError::invalid(
                "invalid_range",
                format!("the range holds more than {MAX_BACKFILL} ticks: backfill it in parts"),
            ));
        }
        ticks.push(t);
        at = t;
    }
    let mut out = BackfillOut { ticks: ticks.len(), started: Vec::new(), already_recorded: 0, skipped: 0 };
    for tick in ticks {
        let key = crate::triggers::scheduler::tick_key(tick);
        let max_active = match body.overlap {
            // A backfill's ticks are past: one waiting for another has nothing to wait for.
            Overlap::Skip | Overlap::BufferOne => Some(1),
            Overlap::Allow | Overlap::CancelOther => config.max_concurrent_runs,
        };
        let cause = Cause {
            key: key.clone(),
            aliases: Vec::new(),
            kind: "schedule",
            by: "backfill".into(),
            scheduled_at: Some(tick),
            inputs: Map::new(),
            max_active,
            traceparent: None,
        };
        match fire(&state, &reg, cause).await? {
            FireOutcome::Started(run) => out.started.push(run.run_id.clone()),
            FireOutcome::Duplicate { .. } => out.already_recorded += 1,
            FireOutcome::Busy { .. } => {
                crate::triggers::fire::skip(&state, &reg, key, Some(tick), "overlap".into()).await?;
                out.skipped += 1;
            }
            FireOutcome::Skipped => out.skipped += 1,
            FireOutcome::Disabled => return Err(ApiError::not_found("Trigger registration")),
        }
    }
    Ok(Json(out))
}

/// Registers, updates or disables the trigger of every procedure version from its CKP `trigger` block and
/// status (an operator's settings and disables are kept).
#[utoipa::path(post, path = "/api/triggers/sync", tag = "triggers", responses((status = 200, body = Synced)))]
pub async fn sync_triggers(State(state): State<AppState>) -> ApiResult<Json<Synced>> {
    Ok(Json(Synced { synced: crate::triggers::sync_all(&state).await? }))
}

/// The `Idempotency-Key` header (at most 200 characters).
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    match v.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 200) {
        Some(k) => Ok(Some(k.to_owned())),
        None => {
            Err(ApiError::invalid("invalid_idempotency_key", "Idempotency-Key must be 1 to 200 visible characters"))
        }
    }
}

/// `POST /api/triggers/webhook/{procedure_id}`'s query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookParams {
    /// Wait up to this many seconds (0 to 60) for the run to end: 200 with the run when it has, else 202 (also when
    /// it stops at an approval).
    pub wait: Option<u64>,
}

/// Receives a webhook for the procedure's latest enabled webhook registration. The raw body must be signed
/// (`X-LangOrch-Signature: sha256=<hex>` over the body, or `X-Ckp-Signature: t=<unix>,v1=<hex>` over
/// `"{t}.{body}"` within 5 minutes) with the secret the registration names, or its previous one. A JSON object
/// body is the run's inputs, other JSON `{"payload": ...}`, an empty or non-JSON body `{}`. A delivery with a
/// known `Idempotency-Key` (24 hours), a timestamped signature seen before, or — when the registration has a
/// `dedupe_window_seconds` and no `Idempotency-Key` is sent — a body seen within that window, is refused with 409
/// and the first run's id. A sender outside the registration's `allowed_sources` is refused with 403 before its
/// body is read. With `?wait=N` the answer waits up to N seconds for the run to end and is then 200 with the run
/// (as `GET /api/runs/{run_id}`); a run still going, or waiting at an approval, is 202 as without it.
#[utoipa::path(post, path = "/api/triggers/webhook/{procedure_id}", tag = "triggers",
    request_body(content = Value, description = "Any body, signed"),
    params(("procedure_id" = String, Path), WebhookParams,
        ("X-LangOrch-Signature" = Option<String>, Header, description = "sha256=<hex HMAC-SHA256 of the body>"),
        ("X-Ckp-Signature" = Option<String>, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of t.body>"),
        ("Idempotency-Key" = Option<String>, Header, description = "A redelivery with the same key starts nothing")),
    responses((status = 200, body = RunOut, description = "With ?wait: the run ended within the wait"),
        (status = 202, body = FiredOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "The sender's address is not in the trigger's allowed_sources"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn receive_webhook(
    State(state): State<AppState>,
    Path(pid): Path<String>,
    Query(params): Query<WebhookParams>,
    req: Request,
) -> ApiResult<Response> {
    let wait = match params.wait.unwrap_or(0) {
        w if w > MAX_WAIT_SECS => {
            return Err(ApiError::invalid("invalid_wait", format!("wait must be 0 to {MAX_WAIT_SECS} seconds")));
        }
        w => Duration::from_secs(w),
    };
    let peer_ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let peer = peer_ip.map(|ip| ip.to_canonical().to_string());
    let (parts, body) = req.into_parts();
    let reg = state
        .store
        .list_triggers()
        .await?
        .into_iter()
        .filter(|t| t.procedure_id == pid && t.trigger_type == "webhook" && t.enabled)
        .max_by_key(|t| t.id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("No active webhook trigger registration found for procedure '{pid}'"),
            )
        })?;
    let config = TriggerConfig::of(&reg);
    if !config.allows(peer_ip) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "source_not_allowed",
            format!(
                "This webhook accepts deliveries only from its allowed_sources, not from {}",
                peer.as_deref().unwrap_or("an unknown address")
            ),
        ));
    }
    let limit = usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX);
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::body_too_large())?;
    let mut secrets = Vec::new();
    for name in [&config.webhook_secret, &config.webhook_secret_previous].into_iter().flatten() {
        match state.secrets.lookup(None, name).await {
            Ok(Some(v)) if !v.is_empty() => secrets.push(v),
            Ok(_) => {}
            Err(e) => tracing::warn!(procedure_id = %pid, secret = %name, error = %e.message,
                "a webhook secret could not be read; deliveries signed with it are refused"),
        }
    }
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let now = Utc::now();
    let verified = verify(&secrets, header(CKP_HEADER), header(LANGORCH_HEADER), &body, now.timestamp())
        .map_err(|r: Refused| ApiError::unauthorized(r.message()))?;
    let (key, aliases, keys) = delivery_keys(&config, verified, idempotency_key(&parts.headers)?, &body, now);
    let inputs = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => m,
        Ok(other) => Map::from_iter([("payload".to_owned(), other)]),
        Err(_) => Map::new(),
    };
    let cause = Cause {
        key,
        aliases,
        kind: "webhook",
        by: format!("webhook:{}", peer.as_deref().unwrap_or("unknown")),
        scheduled_at: None,
        inputs,
        max_active: config.max_concurrent_runs,
        traceparent: crate::routes::runs::traceparent_of(&parts.headers),
    };
    let outcome = fire_keyed(&state, &reg, cause, keys).await?;
    if let (FireOutcome::Started(run), false) = (&outcome, wait.is_zero())
        && let Some(ended) = ended_within(&state, &run.run_id, wait).await?
    {
        return Ok((StatusCode::OK, Json(RunOut::from(&ended))).into_response());
    }
    Ok(answer(&reg, outcome, config.max_concurrent_runs)?.into_response())
}

/// A delivery's keys, the first the cause's: its timestamped signature (until it goes stale), its
/// `Idempotency-Key` (24 hours) or else, with a dedupe window, its body's hash (for the window); a delivery with
/// none of them gets a key of its own that dedupes nothing.
fn delivery_keys(
    config: &TriggerConfig,
    verified: Verified,
    idempotency: Option<String>,
    body: &[u8],
    now: chrono::DateTime<Utc>,
) -> (String, Vec<String>, Keys) {
    let mut keyed: Vec<(String, chrono::DateTime<Utc>)> = Vec::new();
    if let Verified::Timestamped { key, t } = verified {
        let stale = chrono::DateTime::from_timestamp(t.saturating_add(TOLERANCE_SECS), 0).unwrap_or(now);
        keyed.push((key, stale));
    }
    match idempotency {
        // An Idempotency-Key decides: two deliveries of one body with different keys are two causes.
        Some(k) => keyed.push((format!("idempotency:{k}"), now + IDEMPOTENCY_WINDOW)),
        None if config.dedupe_window_seconds > 0 => {
            // A document's window is not bounded at import: beyond ten years it is ten years (no overflow).
            let window = chrono::TimeDelta::seconds(config.dedupe_window_seconds.min(MAX_DEDUPE_WINDOW_SECS));
            keyed.push((format!("body:{}", sha256_hex(body)), now + window));
        }
        None => {}
    }
    if keyed.is_empty() {
        keyed.push((format!("delivery:{}", uuid::Uuid::now_v7()), now));
    }
    let keys = keyed.iter().fold(Keys::default(), |keys, (k, until)| keys.until(k, *until));
    let mut names = keyed.into_iter().map(|(k, _)| k);
    let first = names.next().unwrap_or_default();
    (first, names.collect(), keys)
}

/// The run once it has ended, if it does within `wait`; None when it is still going (or waits at an approval) then.
/// Follows the run's change notices (the SSE streams' hub), no polling.
async fn ended_within(state: &AppState, run_id: &str, wait: Duration) -> ApiResult<Option<RunRow>> {
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribed before the first read: a commit after it wakes the wait below.
    let mut changes = state.store.watch_run(run_id);
    let mut shutdown = state.shutdown.clone();
    loop {
        changes.borrow_and_update();
        let Some(run) = state.store.get_run(run_id).await? else { return Ok(None) };
        if run.status.is_terminal() {
            return Ok(Some(run));
        }
        if run.status == RunStatus::WaitingApproval {
            return Ok(None);
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return Ok(None) },
            () = tokio::time::sleep_until(deadline) => return Ok(None),
            _ = shutdown.wait_for(|s| *s) => return Ok(None),
        }
    }
}

/// `GET /api/triggers/{procedure_id}/{version}/fires`'s query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FiresParams {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// Only fires recorded before this one (its `id`): the next page after a page's last fire.
    pub before: Option<i64>,
}

/// Whether a cause started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FireKind {
    /// It started a run.
    Fired,
    /// It was recorded without a run (`reason` says why).
    Skipped,
}

/// A recorded cause of a trigger.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FireOut {
    /// Increasing in the order causes are recorded; `before` of the next page.
    pub id: i64,
    /// The cause: `schedule:<tick>`, `idempotency:<key>`, `signature:<t>:<hex>`, `body:<sha256>`,
    /// `file:<event>:<name>:<size>:<mtime ns>`, `manual:<id>`, `delivery:<id>`.
    pub key: String,
    /// Whether it started a run.
    pub outcome: FireKind,
    /// Why it started none (`overlap`, `missed_catchup_window`, `event_type_not_watched: ...`, ...).
    pub reason: Option<String>,
    /// The run it started.
    pub run_id: Option<String>,
    /// A schedule's tick (RFC 3339, UTC).
    pub scheduled_at: Option<String>,
    /// When it was recorded.
    pub created_at: String,
    /// Until when the key refuses the same cause again (null: as long as the record is kept).
    pub dedupe_until: Option<String>,
}

/// The registration's recorded causes, newest first: fired (with the run) or skipped (with why), a page at a
/// time (`before` = the last `id` of the previous page). Old ones are pruned (`trigger_fires_keep`,
/// `trigger_fires_retention_days`) unless they still dedupe a cause.
#[utoipa::path(get, path = "/api/triggers/{procedure_id}/{version}/fires", tag = "triggers",
    params(("procedure_id" = String, Path), ("version" = String, Path), FiresParams),
    responses((status = 200, body = Vec<FireOut>), (status = 404, body = ErrorBody)))]
pub async fn list_fires(
    State(state): State<AppState>,
    Path((pid, ver)): Path<(String, String)>,
    Query(q): Query<FiresParams>,
) -> ApiResult<Json<Vec<FireOut>>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("invalid_query", "limit must be 1 to 1000"));
    }
    registration(&state, &pid, &ver).await?;
    let rows = state.store.trigger_fires_before(&pid, &ver, limit, q.before).await?;
    Ok(Json(
        rows.into_iter()
            .map(|f| FireOut {
                id: f.seq,
                key: f.cause_key,
                outcome: if f.run_id.is_some() { FireKind::Fired } else { FireKind::Skipped },
                reason: f.reason,
                run_id: f.run_id,
                scheduled_at: f.scheduled_at,
                created_at: f.created_at,
                dedupe_until: f.dedupe_until,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_sent_back_as_shown_keeps_its_credentials() {
        let stored = Some("amqp://svc:pw@rabbit/?queue=q".to_owned());
        let shown = redacted_source("amqp://svc:pw@rabbit/?queue=q");
        assert!(!shown.contains("pw"));
        assert_eq!(kept_source(Some(shown), stored.clone()), stored);
        let other = Some("amqp://rabbit/?queue=other".to_owned());
        assert_eq!(kept_source(other.clone(), stored.clone()), other);
        assert_eq!(kept_source(None, stored), None);
    }
}
