//! Run events as batches: one row per commit holding the commit's events as a deflate-compressed JSON array
//! (migration 0005). An event's id is `(batch_id << 20) | index`, so ids are monotonic across a run (batch ids
//! only grow) and `event_id > n` starts at batch `n >> 20`. Payloads are read back as raw JSON text, never
//! re-encoded.

use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use ckp_engine::Event;
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use rusqlite::{Connection, params};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::runs::EventRow;

/// Bits of an event id that hold its index in the batch.
const INDEX_BITS: u32 = 20;
/// Most events in one batch (a commit with more is split).
const MAX_BATCH: usize = 1 << INDEX_BITS;

/// An event as stored in a batch, read without building its payload.
#[derive(Deserialize)]
struct Stored<'a> {
    #[serde(borrow)]
    event_type: std::borrow::Cow<'a, str>,
    #[serde(default)]
    node_id: Option<String>,
    #[serde(default)]
    step_id: Option<String>,
    #[serde(borrow)]
    payload: &'a RawValue,
    created_at: DateTime<Utc>,
}

/// A batch as the backends read it: `(batch_id, compressed data)`.
pub(crate) type Batch = (i64, Vec<u8>);

/// Compresses a commit's events into a batch's data.
pub(crate) fn encode(events: &[Event]) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(events).map_err(|e| e.to_string())?;
    let mut enc = DeflateEncoder::new(Vec::with_capacity(json.len() / 4), Compression::fast());
    enc.write_all(&json).and_then(|()| enc.finish()).map_err(|e| e.to_string())
}

fn decode(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len() * 6);
    DeflateDecoder::new(data).read_to_end(&mut out).map_err(|e| format!("unreadable event batch: {e}"))?;
    Ok(out)
}

/// Splits a commit's events into the chunks stored as batches (a commit with more than [`MAX_BATCH`] is split).
pub(crate) fn chunks(events: &[Event]) -> std::slice::Chunks<'_, Event> {
    events.chunks(MAX_BATCH)
}

/// The first batch that can hold an event with an id above `after`.
pub(crate) fn first_batch(after: i64) -> i64 {
    after.max(0) >> INDEX_BITS
}

/// Appends `events` to `run_id`'s log.
pub(crate) fn append(tx: &Connection, run_id: &str, events: &[Event]) -> Result<(), rusqlite::Error> {
    let mut insert = tx.prepare_cached("INSERT INTO run_event_batches (run_id, events, data) VALUES (?1, ?2, ?3)")?;
    for chunk in chunks(events) {
        let data = encode(chunk).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        insert.execute(params![run_id, chunk.len() as i64, data])?;
    }
    Ok(())
}

/// Calls `each` with every event whose id is above `after` in `batches` (in batch order), until it returns false.
fn scan<E>(
    batches: impl IntoIterator<Item = Result<Batch, E>>,
    after: i64,
    err: fn(String) -> E,
    mut each: impl FnMut(i64, Stored<'_>) -> bool,
) -> Result<(), E> {
    for batch in batches {
        let (batch, data) = batch?;
        let json = decode(&data).map_err(err)?;
        let events: Vec<Stored<'_>> = serde_json::from_slice(&json).map_err(|e| err(e.to_string()))?;
        for (i, e) in events.into_iter().enumerate() {
            let id = (batch << INDEX_BITS) | i as i64;
            if id > after && !each(id, e) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The rows of the events above `after` in `batches`, at most `limit`.
pub(crate) fn rows_after<E>(
    batches: impl IntoIterator<Item = Result<Batch, E>>,
    err: fn(String) -> E,
    run_id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<EventRow>, E> {
    let mut out = Vec::new();
    let limit = usize::try_from(limit).unwrap_or(0);
    if limit == 0 {
        return Ok(out);
    }
    scan(batches, after, err, |event_id, e| {
        let payload = e.payload.get();
        out.push(EventRow {
            event_id,
            run_id: run_id.to_owned(),
            event_type: e.event_type.into_owned(),
            node_id: e.node_id,
            step_id: e.step_id,
            payload: (!matches!(payload, "{}" | "null" | "")).then(|| payload.to_owned()),
            created_at: crate::sqlite::ts(e.created_at),
        });
        out.len() < limit
    })?;
    Ok(out)
}

/// Every event in `batches`, as the engine wrote them.
pub(crate) fn events_of<E>(
    batches: impl IntoIterator<Item = Result<Batch, E>>,
    err: fn(String) -> E,
) -> Result<Vec<Event>, E> {
    let mut out = Vec::new();
    let mut failed = None;
    scan(batches, -1, err, |_, e| match serde_json::from_str(e.payload.get()) {
        Ok(payload) => {
            out.push(Event {
                event_type: e.event_type.into_owned(),
                node_id: e.node_id,
                step_id: e.step_id,
                payload,
                created_at: e.created_at,
            });
            true
        }
        Err(e) => {
            failed = Some(err(e.to_string()));
            false
        }
    })?;
    failed.map_or(Ok(out), Err)
}

/// (total, `error` + `run_failed`, `run_retry_requested`) counts of the events in `batches`.
pub(crate) fn counts_of<E>(
    batches: impl IntoIterator<Item = Result<Batch, E>>,
    err: fn(String) -> E,
) -> Result<(i64, i64, i64), E> {
    let (mut total, mut errors, mut retries) = (0, 0, 0);
    scan(batches, -1, err, |_, e| {
        total += 1;
        match e.event_type.as_ref() {
            "error" | "run_failed" => errors += 1,
            "run_retry_requested" => retries += 1,
            _ => {}
        }
        true
    })?;
    Ok((total, errors, retries))
}

fn sqlite_err(e: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, e.into())
}

/// Reads `run_id`'s batches from `from` on and hands them to `f`.
fn with_batches<T>(
    c: &Connection,
    run_id: &str,
    from: i64,
    f: impl FnOnce(&mut dyn Iterator<Item = Result<Batch, rusqlite::Error>>) -> Result<T, rusqlite::Error>,
) -> Result<T, rusqlite::Error> {
    let mut stmt = c.prepare_cached(
        "SELECT batch_id, data FROM run_event_batches WHERE run_id = ?1 AND batch_id >= ?2 ORDER BY batch_id",
    )?;
    let mut rows = stmt.query_map(params![run_id, from], |r| Ok((r.get(0)?, r.get(1)?)))?;
    f(&mut rows)
}

/// Events of `run_id` after `after`, at most `limit`.
pub(crate) fn after(c: &Connection, run_id: &str, after: i64, limit: i64) -> Result<Vec<EventRow>, rusqlite::Error> {
    with_batches(c, run_id, first_batch(after), |b| rows_after(b, sqlite_err, run_id, after, limit))
}

/// Every event of `run_id`, as the engine wrote them.
pub(crate) fn all(c: &Connection, run_id: &str) -> Result<Vec<Event>, rusqlite::Error> {
    with_batches(c, run_id, 0, |b| events_of(b, sqlite_err))
}

/// (total, `error` + `run_failed`, `run_retry_requested`) counts of `run_id`'s events.
pub(crate) fn counts(c: &Connection, run_id: &str) -> Result<(i64, i64, i64), rusqlite::Error> {
    with_batches(c, run_id, 0, |b| counts_of(b, sqlite_err))
}

/// Migration 0005: moves the rows of the old `run_events` table into batches (one per run, in event order) and
/// drops the table.
pub(crate) fn convert_legacy_rows(tx: &Connection) -> Result<(), rusqlite::Error> {
    let runs: Vec<String> = tx
        .prepare("SELECT DISTINCT run_id FROM run_events ORDER BY run_id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut read = tx.prepare(
        "SELECT event_type, node_id, step_id, payload, created_at FROM run_events WHERE run_id = ?1 ORDER BY event_id",
    )?;
    for run in runs {
        let events = read
            .query_map(params![run], |r| {
                let payload: String = r.get(3)?;
                let created: String = r.get(4)?;
                Ok(Event {
                    event_type: r.get(0)?,
                    node_id: r.get(1)?,
                    step_id: r.get(2)?,
                    payload: serde_json::from_str(&payload).unwrap_or_default(),
                    created_at: DateTime::parse_from_rfc3339(&created)
                        .map(|d| d.with_timezone(&Utc))
                        .unwrap_or_default(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        append(tx, &run, &events)?;
    }
    drop(read);
    tx.execute_batch("DROP TABLE run_events")
}
