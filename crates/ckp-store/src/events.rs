//! Run events as batches, the codec both backends share: one row per commit holding the commit's events as a
//! deflate-compressed JSON array (migration 0005). An event's id is `(batch_id << 20) | index`, so ids are monotonic across a run (batch ids
//! only grow) and `event_id > n` starts at batch `n >> 20`. Payloads are read back as raw JSON text, never
//! re-encoded.

use std::cell::RefCell;

use chrono::{DateTime, Utc};
use ckp_engine::Event;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::store::EventRow;

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

thread_local! {
    /// This thread's deflate and inflate state, reset between batches (zlib-rs: a reset clears a 64 KB hash
    /// table; miniz_oxide's rebuilt some 300 KB per reset, 18 % of the server's instructions per run).
    static DEFLATE: RefCell<Option<Compress>> = const { RefCell::new(None) };
    static INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Compresses a commit's events into a batch's data (raw deflate).
pub(crate) fn encode(events: &[Event]) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(events).map_err(|e| e.to_string())?;
    DEFLATE.with_borrow_mut(|slot| {
        // Level 2 (zlib-rs's `deflate_fast`, dynamic Huffman trees): level 1's static trees stored 13 % more.
        let c = slot.get_or_insert_with(|| Compress::new(Compression::new(2), false));
        c.reset();
        let mut out = Vec::with_capacity(json.len() / 4 + 64);
        loop {
            let rest = json.get(usize::try_from(c.total_in()).unwrap_or(usize::MAX)..).unwrap_or_default();
            match c.compress_vec(rest, &mut out, FlushCompress::Finish).map_err(|e| e.to_string())? {
                Status::StreamEnd => return Ok(out),
                // The output is full: `compress_vec` only writes into spare capacity.
                Status::Ok | Status::BufError => out.reserve(out.capacity()),
            }
        }
    })
}

fn decode(data: &[u8]) -> Result<Vec<u8>, String> {
    INFLATE.with_borrow_mut(|slot| {
        let d = slot.get_or_insert_with(|| Decompress::new(false));
        d.reset(false);
        let mut out = Vec::with_capacity(data.len() * 6 + 64);
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            }
            let before = (d.total_in(), d.total_out());
            let rest = data.get(usize::try_from(before.0).unwrap_or(usize::MAX)..).unwrap_or_default();
            // Streaming (not `Finish`, which wants all the output to fit in one call).
            match d.decompress_vec(rest, &mut out, FlushDecompress::None) {
                Ok(Status::StreamEnd) => return Ok(out),
                Err(e) => return Err(format!("unreadable event batch: {e}")),
                // No progress with room left to write: the data ends before the stream does.
                Ok(_) if before == (d.total_in(), d.total_out()) => {
                    return Err("unreadable event batch: truncated".into());
                }
                Ok(_) => {}
            }
        }
    })
}

/// Splits a commit's events into the chunks stored as batches (a commit with more than [`MAX_BATCH`] is split).
pub(crate) fn chunks(events: &[Event]) -> std::slice::Chunks<'_, Event> {
    events.chunks(MAX_BATCH)
}

/// The first batch that can hold an event with an id above `after`.
pub(crate) fn first_batch(after: i64) -> i64 {
    after.max(0) >> INDEX_BITS
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
            created_at: crate::codec::ts(e.created_at),
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn event(payload: serde_json::Value) -> Event {
        Event {
            event_type: "step_completed".into(),
            node_id: Some("n".into()),
            step_id: None,
            payload,
            created_at: Utc::now(),
        }
    }

    fn noise(len: usize) -> String {
        // Incompressible text, so the compressed batch outgrows its first buffer.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect()
    }

    #[test]
    fn batches_round_trip_whatever_their_size_and_one_state_serves_many() {
        let texts = [0, 10, 100_000, 1_500_000].map(noise).into_iter().chain(["a".repeat(3_000_000)]);
        for text in texts {
            let len = text.len();
            let events = vec![event(serde_json::json!({"text": text})), event(serde_json::json!({}))];
            let data = encode(&events).expect("encode");
            let back = events_of([Ok::<_, String>((1, data))], |e| e).expect("decode");
            assert_eq!(back.len(), 2);
            assert_eq!(back[0].payload, events[0].payload, "len {len}");
            assert_eq!(back[1].payload, serde_json::json!({}));
        }
    }

    #[test]
    fn batches_written_by_a_stream_encoder_still_read() {
        let events = vec![event(serde_json::json!({"a": 1}))];
        let json = serde_json::to_vec(&events).expect("json");
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&json).expect("write");
        let data = enc.finish().expect("finish");
        let back = events_of([Ok::<_, String>((1, data))], |e| e).expect("decode");
        assert_eq!(back[0].payload, serde_json::json!({"a": 1}));
    }

    #[test]
    fn truncated_or_garbage_batches_are_errors_and_the_next_batch_still_reads() {
        let data = encode(&[event(serde_json::json!({"text": noise(50_000)}))]).expect("encode");
        let cut = data.get(..data.len() / 2).expect("half").to_vec();
        let err = events_of([Ok::<_, String>((1, cut))], |e| e).expect_err("truncated");
        assert!(err.contains("unreadable event batch"), "{err}");
        assert!(events_of([Ok::<_, String>((1, vec![0xff; 40]))], |e| e).is_err());
        assert_eq!(events_of([Ok::<_, String>((1, data))], |e| e).expect("whole").len(), 1);
    }
}
