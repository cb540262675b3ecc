//! Run events on SQLite: appending a commit's batches, and reading them back through the shared codec
//! ([`crate::events`]); migration 0005's conversion of the old one-row-per-event table.

use chrono::{DateTime, Utc};
use ckp_engine::Event;
use rusqlite::{Connection, params};

use crate::events::{Batch, chunks, counts_of, encode, events_of, first_batch, rows_after};
use crate::store::EventRow;

/// Appends `events` to `run_id`'s log.
pub(crate) fn append(tx: &Connection, run_id: &str, events: &[Event]) -> Result<(), rusqlite::Error> {
    let mut insert = tx.prepare_cached("INSERT INTO run_event_batches (run_id, events, data) VALUES (?1, ?2, ?3)")?;
    for chunk in chunks(events) {
        let data = encode(chunk).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        insert.execute(params![run_id, chunk.len() as i64, data])?;
    }
    Ok(())
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
