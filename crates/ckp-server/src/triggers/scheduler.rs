//! The schedule loop. On the leader only (SQLite: the one process; PostgreSQL: the holder of the leader lock),
//! every [`TICK`] it walks each enabled, unpaused scheduled registration from its cursor (the last tick recorded)
//! to now, and records every due tick under the key `schedule:<tick in UTC>`: fired (a run), or skipped with why
//! (`overlap`, `max_concurrent_runs`, `missed_catchup_window` when the tick is older than the catch-up window, or
//! the procedure cannot run); with overlap `buffer_one` the latest due tick is left unrecorded while a run is active,
//! and fires at the first pass after that run ends. The key is unique per registration and the cursor moves in the same transaction,
//! so a tick fires once across processes, restarts and leader changes: a new leader resumes from the cursor and a
//! tick another process already recorded is a duplicate that starts nothing.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use ckp_engine::error::ErrorChain;
use ckp_store::{FireOutcome, TriggerRow};
use tokio::sync::watch;

use super::fire::{Cause, fire, skip};
use super::{Overlap, Schedule, TriggerConfig};
use crate::app::AppState;

/// How often the leader looks for due ticks.
pub const TICK: Duration = Duration::from_millis(250);

/// The most ticks of one registration handled in one pass (a long downtime of a frequent schedule is recorded
/// over several passes).
const MAX_PER_PASS: usize = 500;

/// Runs the schedules until `shutdown`.
pub async fn run_scheduler(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if state.store.is_leader()
                    && let Err(e) = pass(&state, Utc::now()).await
                {
                    tracing::error!(error = %ErrorChain(&e), "the schedule pass failed; the next one retries");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// One pass over every schedule at `now`.
pub async fn pass(state: &AppState, now: DateTime<Utc>) -> Result<(), ckp_store::StoreError> {
    for reg in state.store.list_triggers().await? {
        if reg.trigger_type != "scheduled" || !reg.enabled || reg.paused {
            continue;
        }
        due(state, &reg, now).await?;
    }
    Ok(())
}

/// The tick's key.
pub fn tick_key(t: DateTime<Utc>) -> String {
    format!("schedule:{}", t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// How many of a registration's latest fires `cancel_other` looks through for runs that have not ended (each tick
/// cancels the earlier ones, so few can be running).
const CANCEL_LOOKBACK: i64 = 50;

/// Cancels the registration's runs that have not ended (overlap `cancel_other`): a waiting run at once, an
/// executing one at its next step. Failures are logged; the tick fires anyway.
async fn cancel_active(state: &AppState, reg: &TriggerRow) {
    let fires = match state.store.trigger_fires(&reg.procedure_id, &reg.version, CANCEL_LOOKBACK).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(procedure_id = %reg.procedure_id, error = %ErrorChain(&e), "cancel_other: fires unreadable");
            return;
        }
    };
    for run_id in fires.into_iter().filter_map(|f| f.run_id) {
        let active = matches!(state.store.get_run(&run_id).await, Ok(Some(r)) if !r.status.is_terminal());
        if !active {
            continue;
        }
        match state.store.cancel_run(&run_id, "canceled_by_schedule").await {
            Ok(change) => {
                if change == ckp_store::RunChange::Done {
                    state.metrics.run_canceled(&reg.procedure_id);
                }
                state.engine.cancel(&run_id);
                tracing::info!(procedure_id = %reg.procedure_id, run.id = %run_id,
                    "schedule tick canceled an earlier run (overlap cancel_other)");
            }
            Err(e) => tracing::warn!(procedure_id = %reg.procedure_id, run.id = %run_id, error = %ErrorChain(&e),
                "cancel_other: the earlier run could not be canceled"),
        }
    }
}

/// A tick's jitter: an offset in `0..=max` seconds derived from the registration and the tick, so every process
/// (and every pass) computes the same one.
pub fn jitter(reg: &TriggerRow, tick: DateTime<Utc>, max: i64) -> chrono::Duration {
    if max <= 0 {
        return chrono::Duration::zero();
    }
    let seed = format!("{}\n{}\n{}", reg.procedure_id, reg.version, tick.timestamp());
    let digest = ckp_connectors::secrets::crypto::sha256_hex(seed.as_bytes());
    let n = u64::from_str_radix(&digest[..12], 16).unwrap_or(0);
    chrono::Duration::seconds((n % (max as u64 + 1)) as i64)
}

async fn due(state: &AppState, reg: &TriggerRow, now: DateTime<Utc>) -> Result<(), ckp_store::StoreError> {
    let config = TriggerConfig::of(reg);
    let Some(schedule) = config.schedule.as_deref().and_then(|s| Schedule::new(s, config.timezone.as_deref()).ok())
    else {
        return Ok(());
    };
    let cursor = reg
        .cursor_at
        .as_deref()
        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        .map_or(now, |c| c.with_timezone(&Utc));
    let window = chrono::Duration::seconds(config.catchup_window_seconds);
    let mut at = cursor;
    for _ in 0..MAX_PER_PASS {
        let Some(tick) = schedule.next_after(at).filter(|t| *t + jitter(reg, *t, config.jitter_seconds) <= now) else {
            break;
        };
        at = tick;
        let key = tick_key(tick);
        let late = now - tick - jitter(reg, tick, config.jitter_seconds);
        let outcome = if late > window {
            tracing::warn!(procedure_id = %reg.procedure_id, version = %reg.version, tick = %tick,
                "schedule tick missed beyond the catch-up window: recorded as skipped");
            skip(state, reg, key, Some(tick), "missed_catchup_window".into()).await
        } else {
            let max_active = match config.overlap {
                Overlap::Skip | Overlap::BufferOne => Some(1),
                Overlap::Allow => config.max_concurrent_runs,
                Overlap::CancelOther => {
                    cancel_active(state, reg).await;
                    config.max_concurrent_runs
                }
            };
            let cause = Cause {
                key: key.clone(),
                aliases: Vec::new(),
                kind: "schedule",
                by: "scheduler".into(),
                scheduled_at: Some(tick),
                inputs: serde_json::Map::new(),
                max_active: max_active.map(|m| m.min(config.max_concurrent_runs.unwrap_or(i64::MAX))),
                traceparent: None,
            };
            match fire(state, reg, cause).await {
                // Buffer one: the latest due tick waits (unrecorded, so the next pass tries it again) until the
                // run ends; an earlier one is superseded by the later tick.
                Ok(FireOutcome::Busy { .. })
                    if config.overlap == Overlap::BufferOne
                        && schedule
                            .next_after(tick)
                            .is_none_or(|t| t + jitter(reg, t, config.jitter_seconds) > now) =>
                {
                    break;
                }
                Ok(FireOutcome::Busy { active }) => {
                    let why = match config.overlap {
                        Overlap::Skip | Overlap::BufferOne => "overlap",
                        Overlap::Allow | Overlap::CancelOther => "max_concurrent_runs",
                    };
                    tracing::info!(procedure_id = %reg.procedure_id, version = %reg.version, tick = %tick, active,
                        reason = why, "schedule tick skipped");
                    skip(state, reg, key, Some(tick), why.into()).await
                }
                Ok(other) => Ok(other),
                // The version cannot run (deleted, deprecated, not effective, bad inputs): the tick is recorded
                // as skipped with the reason, and the schedule goes on.
                Err(e) if e.status.is_client_error() => {
                    let why = format!("not_runnable: {}", e.detail.as_str().unwrap_or(e.code));
                    skip(state, reg, key, Some(tick), why).await
                }
                Err(e) => Err(e),
            }
        };
        if let Err(e) = outcome {
            tracing::error!(procedure_id = %reg.procedure_id, version = %reg.version, tick = %tick, error = ?e.detail,
                "a schedule tick could not be recorded; the next pass retries it");
            break;
        }
    }
    Ok(())
}
