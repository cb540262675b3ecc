//! [`TriggerStore`] on PostgreSQL: the same rules as the SQLite store. Every write locks the registration's row
//! first (`FOR UPDATE`), so the writes and fires of one trigger, from any process, are serialized: a cause key
//! is checked and recorded, and a concurrency limit counted and respected, with no other fire in between.

use chrono::{DateTime, Utc};
use ckp_engine::effects::BoxFuture;
use deadpool_postgres::{GenericClient, Transaction};

use super::PgStore;
use super::commit::{CommitWrite, Creation, pipeline};
use crate::StoreError;
use crate::codec::{parse_time, ts};
use crate::store::{
    ACTIVE_RUNS, FIRE_COLUMNS, FireOutcome, FireRow, PRUNABLE, PruneFires, TRIGGER_COLUMNS, TriggerFire, TriggerPut,
    TriggerRow, TriggerStore, TriggerSync, fire_row, put_row, synced, trigger_not_found, trigger_row,
};

async fn get_in(c: &impl GenericClient, pid: &str, ver: &str, lock: bool) -> Result<Option<TriggerRow>, StoreError> {
    let sql = format!(
        "SELECT {TRIGGER_COLUMNS} FROM triggers WHERE procedure_id = $1 AND version = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let stmt = c.prepare_cached(&sql).await?;
    c.query_opt(&stmt, &[&pid, &ver]).await?.as_ref().map(trigger_row).transpose()
}

fn time(s: &Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.as_deref().map(parse_time).transpose()
}

/// Inserts or replaces a registration's row (the id stays).
async fn save_in(tx: &Transaction<'_>, t: &TriggerRow) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO triggers (procedure_id, version, trigger_type, config, source, enabled, disabled_by, paused,
                 pause_note, cursor_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (procedure_id, version) DO UPDATE SET trigger_type = excluded.trigger_type,
                 config = excluded.config, source = excluded.source, enabled = excluded.enabled,
                 disabled_by = excluded.disabled_by, paused = excluded.paused, pause_note = excluded.pause_note,
                 cursor_at = excluded.cursor_at, updated_at = excluded.updated_at",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &t.procedure_id,
            &t.version,
            &t.trigger_type,
            &t.config,
            &t.source,
            &t.enabled,
            &t.disabled_by,
            &t.paused,
            &t.pause_note,
            &time(&t.cursor_at)?,
            &parse_time(&t.created_at)?,
            &parse_time(&t.updated_at)?,
        ],
    )
    .await?;
    Ok(())
}

impl PgStore {
    /// Runs `change` on the locked registration (None: absent) and stores what it returns.
    async fn change_trigger(
        &self,
        pid: &str,
        ver: &str,
        change: impl FnOnce(Option<TriggerRow>) -> Option<TriggerRow>,
    ) -> Result<Option<TriggerRow>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let found = get_in(&tx, pid, ver, true).await?;
        let row = match change(found.clone()) {
            Some(row) if Some(&row) != found.as_ref() => {
                save_in(&tx, &row).await?;
                get_in(&tx, pid, ver, false).await?
            }
            same => same,
        };
        tx.commit().await?;
        Ok(row)
    }
}

impl TriggerStore for PgStore {
    fn list_triggers(&self) -> BoxFuture<'_, Result<Vec<TriggerRow>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!("SELECT {TRIGGER_COLUMNS} FROM triggers ORDER BY procedure_id, version"))
                .await?;
            c.query(&stmt, &[]).await?.iter().map(trigger_row).collect()
        })
    }

    fn get_trigger<'a>(&'a self, pid: &'a str, ver: &'a str) -> BoxFuture<'a, Result<Option<TriggerRow>, StoreError>> {
        Box::pin(async move { get_in(&self.client().await?, pid, ver, false).await })
    }

    fn put_trigger(&self, put: TriggerPut) -> BoxFuture<'_, Result<TriggerRow, StoreError>> {
        Box::pin(async move {
            let (pid, ver) = (put.procedure_id.clone(), put.version.clone());
            let now = ts(Utc::now());
            self.change_trigger(&pid, &ver, |found| Some(put_row(found, put, &now)))
                .await?
                .ok_or_else(trigger_not_found)
        })
    }

    fn disable_trigger<'a>(&'a self, pid: &'a str, ver: &'a str) -> BoxFuture<'a, Result<TriggerRow, StoreError>> {
        Box::pin(async move {
            let now = ts(Utc::now());
            let mut absent = false;
            let row = self
                .change_trigger(pid, ver, |found| {
                    absent = found.is_none();
                    found.map(|mut row| {
                        row.enabled = false;
                        row.disabled_by = Some("operator".into());
                        row.updated_at = now;
                        row
                    })
                })
                .await?;
            row.filter(|_| !absent).ok_or_else(trigger_not_found)
        })
    }

    fn sync_trigger(&self, sync: TriggerSync) -> BoxFuture<'_, Result<Option<TriggerRow>, StoreError>> {
        Box::pin(async move {
            let now = ts(Utc::now());
            self.change_trigger(&sync.procedure_id, &sync.version, |found| synced(found.as_ref(), &sync, &now)).await
        })
    }

    fn fire_trigger(&self, fire: TriggerFire) -> BoxFuture<'_, Result<FireOutcome, StoreError>> {
        Box::pin(async move {
            let (pid, ver) = (fire.procedure_id.as_str(), fire.version.as_str());
            let scheduled_at = time(&fire.scheduled_at)?;
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let registration = get_in(&tx, pid, ver, true).await?;
            let keys: Vec<&str> =
                std::iter::once(fire.cause_key.as_str()).chain(fire.aliases.iter().map(String::as_str)).collect();
            // A key past its dedupe_until is no duplicate: its row is replaced below.
            let known = tx
                .query_opt(
                    "SELECT run_id FROM trigger_fires WHERE procedure_id = $1 AND version = $2
                       AND cause_key = ANY($3) AND (dedupe_until IS NULL OR dedupe_until > now()) LIMIT 1",
                    &[&pid, &ver, &keys],
                )
                .await?;
            if let Some(row) = known {
                return Ok(FireOutcome::Duplicate { run_id: row.try_get(0)? });
            }
            if !registration.is_some_and(|t| t.enabled) {
                return Ok(FireOutcome::Disabled);
            }
            if let (Some(max), Some(_)) = (fire.max_active, &fire.start) {
                let sql = ACTIVE_RUNS.replace("{1}", "$1").replace("{2}", "$2");
                let active: i64 = tx.query_one(&sql, &[&pid, &ver]).await?.try_get(0)?;
                if active >= max {
                    return Ok(FireOutcome::Busy { active });
                }
            }
            let (run_id, outcome) = match &fire.start {
                Some((run, commit)) => {
                    let w = CommitWrite::new(&tx, &run.run_id, commit, Some(Creation::new(run, true))).await?;
                    let row = w.created_row().ok_or_else(|| StoreError::Write(crate::cause("no run row")))?;
                    pipeline(w.ops(&tx)).await?;
                    (Some(run.run_id.clone()), FireOutcome::Started(Box::new(row)))
                }
                None => (None, FireOutcome::Skipped),
            };
            tx.execute(
                "DELETE FROM trigger_fires WHERE procedure_id = $1 AND version = $2 AND cause_key = ANY($3)",
                &[&pid, &ver, &keys],
            )
            .await?;
            if !fire.retire.is_empty() {
                tx.execute(
                    "UPDATE trigger_fires SET dedupe_until = now() WHERE procedure_id = $1 AND version = $2
                       AND cause_key = ANY($3) AND (dedupe_until IS NULL OR dedupe_until > now())",
                    &[&pid, &ver, &fire.retire],
                )
                .await?;
            }
            let until: Vec<Option<DateTime<Utc>>> =
                keys.iter().map(|k| fire.until(k).map(parse_time).transpose()).collect::<Result<_, _>>()?;
            tx.execute(
                "INSERT INTO trigger_fires (procedure_id, version, cause_key, run_id, outcome, reason, scheduled_at,
                     created_at, dedupe_until)
                 SELECT $1, $2, k.key, $4, $5, $6, $7, now(), k.until
                 FROM unnest($3::text[], $8::timestamptz[]) WITH ORDINALITY AS k(key, until, n) ORDER BY k.n",
                &[
                    &pid,
                    &ver,
                    &keys,
                    &run_id,
                    &if run_id.is_some() { "started" } else { "skipped" },
                    &fire.skip_reason,
                    &scheduled_at,
                    &until,
                ],
            )
            .await?;
            if scheduled_at.is_some() {
                tx.execute(
                    "UPDATE triggers SET cursor_at = $3 WHERE procedure_id = $1 AND version = $2
                       AND (cursor_at IS NULL OR cursor_at < $3)",
                    &[&pid, &ver, &scheduled_at],
                )
                .await?;
            }
            tx.commit().await?;
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
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {FIRE_COLUMNS} FROM trigger_fires WHERE procedure_id = $1 AND version = $2 AND seq < $4
                     ORDER BY seq DESC LIMIT $3"
                ))
                .await?;
            let before = before.unwrap_or(i64::MAX);
            c.query(&stmt, &[&pid, &ver, &limit.max(0), &before]).await?.iter().map(fire_row).collect()
        })
    }

    fn live_fire_keys<'a>(
        &'a self,
        pid: &'a str,
        ver: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "SELECT cause_key FROM trigger_fires WHERE procedure_id = $1 AND version = $2
                       AND starts_with(cause_key, $3) AND (dedupe_until IS NULL OR dedupe_until > now())
                     ORDER BY seq",
                )
                .await?;
            let rows = c.query(&stmt, &[&pid, &ver, &prefix]).await?;
            rows.iter().map(|r| r.try_get(0).map_err(StoreError::from)).collect()
        })
    }

    fn prune_trigger_fires<'a>(
        &'a self,
        pid: &'a str,
        ver: &'a str,
        prune: PruneFires,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let older_than = parse_time(&prune.older_than)?;
            let prunable = PRUNABLE.replace("{1}", "$1").replace("{2}", "$2").replace("{3}", "$3");
            let prunable = prunable.replace("{4}", "$4").replace("{5}", "now()");
            let sql = format!(
                "DELETE FROM trigger_fires WHERE procedure_id = $1 AND version = $2 AND cause_key IN
                   (SELECT f.cause_key FROM trigger_fires f WHERE {prunable} LIMIT $5)"
            );
            self.exec(&sql, &[&pid, &ver, &older_than, &prune.keep.max(0), &prune.limit.max(0)]).await
        })
    }
}
