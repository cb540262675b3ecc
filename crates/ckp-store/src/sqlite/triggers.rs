//! [`TriggerStore`] on SQLite: registrations and fires. Every write runs on the one writer thread, so a fire's
//! checks (cause known, registration enabled, runs not ended) and its writes are serialized with every other
//! write.

use chrono::Utc;
use ckp_engine::effects::BoxFuture;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::runs::create_in;
use crate::StoreError;
use crate::codec::{shown_time, ts};
use crate::store::{
    ACTIVE_RUNS, FIRE_COLUMNS, FireOutcome, FireRow, PRUNABLE, PruneFires, TRIGGER_COLUMNS, TriggerFire, TriggerPut,
    TriggerRow, TriggerStore, TriggerSync, fire_row, put_row, synced, trigger_not_found, trigger_row,
};

fn get_in(c: &rusqlite::Connection, pid: &str, ver: &str) -> Result<Option<TriggerRow>, rusqlite::Error> {
    c.prepare_cached(&format!("SELECT {TRIGGER_COLUMNS} FROM triggers WHERE procedure_id = ?1 AND version = ?2"))?
        .query_row(params![pid, ver], |r| trigger_row(r))
        .optional()
}

/// Inserts or replaces a registration's row (the id stays).
fn save_in(tx: &rusqlite::Connection, t: &TriggerRow) -> Result<(), rusqlite::Error> {
    tx.prepare_cached(
        "INSERT INTO triggers (procedure_id, version, trigger_type, config, source, enabled, disabled_by, paused,
             pause_note, cursor_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (procedure_id, version) DO UPDATE SET trigger_type = excluded.trigger_type,
             config = excluded.config, source = excluded.source, enabled = excluded.enabled,
             disabled_by = excluded.disabled_by, paused = excluded.paused, pause_note = excluded.pause_note,
             cursor_at = excluded.cursor_at, updated_at = excluded.updated_at",
    )?
    .execute(params![
        t.procedure_id,
        t.version,
        t.trigger_type,
        t.config,
        t.source,
        t.enabled,
        t.disabled_by,
        t.paused,
        t.pause_note,
        t.cursor_at,
        t.created_at,
        t.updated_at
    ])?;
    Ok(())
}

impl TriggerStore for SqliteStore {
    fn list_triggers(&self) -> BoxFuture<'_, Result<Vec<TriggerRow>, StoreError>> {
        Box::pin(self.read_store(|c| {
            c.prepare_cached(&format!("SELECT {TRIGGER_COLUMNS} FROM triggers ORDER BY procedure_id, version"))?
                .query_map([], |r| trigger_row(r))?
                .collect()
        }))
    }

    fn get_trigger<'a>(&'a self, pid: &'a str, ver: &'a str) -> BoxFuture<'a, Result<Option<TriggerRow>, StoreError>> {
        let (pid, ver) = (pid.to_owned(), ver.to_owned());
        Box::pin(self.read_store(move |c| get_in(c, &pid, &ver)))
    }

    fn put_trigger(&self, put: TriggerPut) -> BoxFuture<'_, Result<TriggerRow, StoreError>> {
        Box::pin(async move {
            let row = self
                .write(move |tx| {
                    let found = get_in(tx, &put.procedure_id, &put.version)?;
                    let (pid, ver) = (put.procedure_id.clone(), put.version.clone());
                    save_in(tx, &put_row(found, put, &ts(Utc::now())))?;
                    get_in(tx, &pid, &ver)
                })
                .await?;
            row.ok_or_else(trigger_not_found)
        })
    }

    fn disable_trigger<'a>(&'a self, pid: &'a str, ver: &'a str) -> BoxFuture<'a, Result<TriggerRow, StoreError>> {
        let (pid, ver) = (pid.to_owned(), ver.to_owned());
        Box::pin(async move {
            let row = self
                .write(move |tx| {
                    let Some(mut row) = get_in(tx, &pid, &ver)? else { return Ok(None) };
                    row.enabled = false;
                    row.disabled_by = Some("operator".into());
                    row.updated_at = ts(Utc::now());
                    save_in(tx, &row)?;
                    get_in(tx, &pid, &ver)
                })
                .await?;
            row.ok_or_else(trigger_not_found)
        })
    }

    fn sync_trigger(&self, sync: TriggerSync) -> BoxFuture<'_, Result<Option<TriggerRow>, StoreError>> {
        Box::pin(self.write(move |tx| {
            let found = get_in(tx, &sync.procedure_id, &sync.version)?;
            match synced(found.as_ref(), &sync, &ts(Utc::now())) {
                Some(row) if Some(&row) != found.as_ref() => {
                    save_in(tx, &row)?;
                    get_in(tx, &sync.procedure_id, &sync.version)
                }
                same => Ok(same),
            }
        }))
    }

    fn fire_trigger(&self, fire: TriggerFire) -> BoxFuture<'_, Result<FireOutcome, StoreError>> {
        Box::pin(async move {
            let mut fire = fire;
            fire.scheduled_at = fire.scheduled_at.as_deref().map(shown_time).transpose()?;
            for (_, until) in &mut fire.dedupe_until {
                *until = shown_time(until)?;
            }
            let outcome = self
                .write(move |tx| {
                    let (pid, ver) = (&fire.procedure_id, &fire.version);
                    let now = ts(Utc::now());
                    let keys: Vec<&String> = std::iter::once(&fire.cause_key).chain(&fire.aliases).collect();
                    let mut expired = Vec::new();
                    for key in &keys {
                        let known: Option<(Option<String>, Option<String>)> = tx
                            .prepare_cached(
                                "SELECT run_id, dedupe_until FROM trigger_fires WHERE procedure_id = ?1
                                   AND version = ?2 AND cause_key = ?3",
                            )?
                            .query_row(params![pid, ver, key], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()?;
                        match known {
                            Some((_, Some(until))) if until <= now => expired.push(*key),
                            Some((run_id, _)) => return Ok(FireOutcome::Duplicate { run_id }),
                            None => {}
                        }
                    }
                    if !get_in(tx, pid, ver)?.is_some_and(|t| t.enabled) {
                        return Ok(FireOutcome::Disabled);
                    }
                    if let (Some(max), Some(_)) = (fire.max_active, &fire.start) {
                        let active: i64 = tx
                            .prepare_cached(&ACTIVE_RUNS.replace("{1}", "?1").replace("{2}", "?2"))?
                            .query_row(params![pid, ver], |r| r.get(0))?;
                        if active >= max {
                            return Ok(FireOutcome::Busy { active });
                        }
                    }
                    let (run_id, outcome) = match &fire.start {
                        Some((run, commit)) => {
                            let row = create_in(tx, run, commit, true)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                            (Some(run.run_id.clone()), FireOutcome::Started(Box::new(row)))
                        }
                        None => (None, FireOutcome::Skipped),
                    };
                    for key in expired {
                        tx.prepare_cached(
                            "DELETE FROM trigger_fires WHERE procedure_id = ?1 AND version = ?2 AND cause_key = ?3",
                        )?
                        .execute(params![pid, ver, key])?;
                    }
                    for key in &fire.retire {
                        tx.prepare_cached(
                            "UPDATE trigger_fires SET dedupe_until = ?4 WHERE procedure_id = ?1 AND version = ?2
                               AND cause_key = ?3 AND (dedupe_until IS NULL OR dedupe_until > ?4)",
                        )?
                        .execute(params![pid, ver, key, now])?;
                    }
                    for key in keys {
                        tx.prepare_cached(
                            "INSERT INTO trigger_fires (procedure_id, version, cause_key, run_id, outcome, reason,
                                 scheduled_at, created_at, dedupe_until, seq)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
                                 (SELECT coalesce(max(seq), 0) + 1 FROM trigger_fires))",
                        )?
                        .execute(params![
                            pid,
                            ver,
                            key,
                            run_id,
                            if run_id.is_some() { "started" } else { "skipped" },
                            fire.skip_reason,
                            fire.scheduled_at,
                            now,
                            fire.until(key),
                        ])?;
                    }
                    if let Some(at) = &fire.scheduled_at {
                        // Text times of one format compare in time order.
                        tx.prepare_cached(
                            "UPDATE triggers SET cursor_at = ?3 WHERE procedure_id = ?1 AND version = ?2
                               AND (cursor_at IS NULL OR cursor_at < ?3)",
                        )?
                        .execute(params![pid, ver, at])?;
                    }
                    Ok(outcome)
                })
                .await?;
            if let FireOutcome::Started(row) = &outcome {
                self.notify_work();
                self.publish(&row.run_id);
            }
            Ok(outcome)
        })
    }

    fn trigger_fires_before<'a>(
        &'a self,
        pid: &'a str,
        ver: &'a str,
        limit: i64,
        before: Option<i64>,
    ) -> BoxFuture<'a, Result<Vec<FireRow>, StoreError>> {
        let (pid, ver) = (pid.to_owned(), ver.to_owned());
        Box::pin(self.read_store(move |c| {
            c.prepare_cached(&format!(
                "SELECT {FIRE_COLUMNS} FROM trigger_fires WHERE procedure_id = ?1 AND version = ?2 AND seq < ?4
                 ORDER BY seq DESC LIMIT ?3"
            ))?
            .query_map(params![pid, ver, limit.max(0), before.unwrap_or(i64::MAX)], |r| fire_row(r))?
            .collect()
        }))
    }

    fn live_fire_keys<'a>(
        &'a self,
        pid: &'a str,
        ver: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        let (pid, ver, prefix) = (pid.to_owned(), ver.to_owned(), prefix.to_owned());
        Box::pin(self.read_store(move |c| {
            // A range on the primary key's last column instead of LIKE, whose wildcards a prefix might hold.
            c.prepare_cached(
                "SELECT cause_key FROM trigger_fires WHERE procedure_id = ?1 AND version = ?2
                   AND cause_key >= ?3 AND substr(cause_key, 1, length(?3)) = ?3
                   AND (dedupe_until IS NULL OR dedupe_until > ?4)
                 ORDER BY seq",
            )?
            .query_map(params![pid, ver, prefix, ts(Utc::now())], |r| r.get(0))?
            .collect()
        }))
    }

    fn prune_trigger_fires<'a>(
        &'a self,
        pid: &'a str,
        ver: &'a str,
        prune: PruneFires,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let (pid, ver) = (pid.to_owned(), ver.to_owned());
        Box::pin(async move {
            let older_than = shown_time(&prune.older_than)?;
            let prunable = PRUNABLE.replace("{1}", "?1").replace("{2}", "?2").replace("{3}", "?3");
            let prunable = prunable.replace("{4}", "?4").replace("{5}", "?5");
            self.write(move |tx| {
                tx.prepare_cached(&format!(
                    "DELETE FROM trigger_fires WHERE procedure_id = ?1 AND version = ?2 AND cause_key IN
                       (SELECT f.cause_key FROM trigger_fires f WHERE {prunable} LIMIT ?6)"
                ))?
                .execute(params![pid, ver, older_than, prune.keep.max(0), ts(Utc::now()), prune.limit.max(0)])
                .map(|n| u64::try_from(n).unwrap_or(u64::MAX))
            })
            .await
        })
    }
}
