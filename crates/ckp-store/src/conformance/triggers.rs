//! Conformance checks of [`crate::TriggerStore`]: a cause key fires once (its aliases too, a skip included, and
//! under concurrent fires), a busy or disabled trigger writes nothing, a tick moves the cursor forward only; a key
//! with a dedupe window fires again after it, a retired key stops deduping, fires page newest first and a prune
//! deletes only what dedupes nothing; a sync follows the document and the version's status, and an operator's
//! disable and settings survive every sync.

use std::sync::Arc;

use ckp_engine::Engine;
use ckp_engine::journal::Commit;
use serde_json::{Map, json};

use super::approval_procedure;
use crate::{FireOutcome, NewRun, PruneFires, RunChange, Store, StoreError, TriggerFire, TriggerPut, TriggerSync};

/// A fire of `conf_gate` 1 for `key` that starts the run `run_id` (None: records a skip).
fn fire(key: &str, run_id: Option<&str>) -> TriggerFire {
    let p = approval_procedure();
    let start = run_id.map(|id| {
        let meta = NewRun {
            run_id: id.into(),
            trigger_type: Some("schedule".into()),
            triggered_by: Some("scheduler".into()),
            ..NewRun::default()
        };
        let cp = Engine::new_checkpoint(&p, id, &Map::new());
        (meta, Commit { events: Vec::new(), steps: Vec::new(), checkpoint: cp })
    });
    TriggerFire {
        procedure_id: "conf_gate".into(),
        version: "1".into(),
        cause_key: key.into(),
        aliases: Vec::new(),
        scheduled_at: None,
        max_active: None,
        skip_reason: start.is_none().then(|| "overlap".to_owned()),
        start,
        dedupe_until: Vec::new(),
        retire: Vec::new(),
    }
}

fn sync(declared: Option<&str>, blocked: Option<&'static str>) -> TriggerSync {
    TriggerSync {
        procedure_id: "conf_gate".into(),
        version: "1".into(),
        declared: declared.map(|schedule| ("scheduled".to_owned(), json!({"schedule": schedule}).to_string())),
        blocked,
    }
}

pub(super) async fn a_cause_key_fires_once(store: Arc<dyn Store>) {
    assert_eq!(store.fire_trigger(fire("manual:a", Some("t0"))).await.expect("fire"), FireOutcome::Disabled);
    assert!(store.get_run("t0").await.expect("get").is_none(), "no registration: no run");
    store.sync_trigger(sync(Some("* * * * * *"), None)).await.expect("sync").expect("registered");
    // A tick starts its run, once; the same key again starts nothing and names the first run.
    let mut tick = fire("schedule:2030-01-01T00:00:05Z", Some("t1"));
    tick.scheduled_at = Some("2030-01-01T01:00:05+01:00".into());
    assert!(
        matches!(store.fire_trigger(tick.clone()).await.expect("fire"), FireOutcome::Started(r) if r.run_id == "t1")
    );
    let run = store.get_run("t1").await.expect("get").expect("created");
    assert_eq!((run.trigger_type.as_deref(), run.triggered_by.as_deref()), (Some("schedule"), Some("scheduler")));
    let mut again = fire("schedule:2030-01-01T00:00:05Z", Some("t1-again"));
    again.scheduled_at = tick.scheduled_at.clone();
    let duplicate = FireOutcome::Duplicate { run_id: Some("t1".into()) };
    assert_eq!(store.fire_trigger(again).await.expect("fire"), duplicate);
    assert!(store.get_run("t1-again").await.expect("get").is_none(), "a duplicate creates no run");
    let reg = store.get_trigger("conf_gate", "1").await.expect("get").expect("registered");
    let cursor = reg.cursor_at.expect("a cursor");
    assert!(cursor.starts_with("2030-01-01T00:00:05"), "the tick moved the cursor: {cursor}");
    // An earlier tick (a catch-up) never moves the cursor back.
    let mut earlier = fire("schedule:2030-01-01T00:00:04Z", None);
    earlier.scheduled_at = Some("2030-01-01T00:00:04Z".into());
    assert_eq!(store.fire_trigger(earlier.clone()).await.expect("fire"), FireOutcome::Skipped);
    assert_eq!(store.fire_trigger(earlier).await.expect("fire"), FireOutcome::Duplicate { run_id: None });
    let reg = store.get_trigger("conf_gate", "1").await.expect("get").expect("registered");
    assert_eq!(reg.cursor_at.as_deref(), Some(cursor.as_str()), "the cursor only moves forward");
    // Any one known key of a cause makes it a duplicate.
    let mut signed = fire("signature:1:aa", Some("t2"));
    signed.aliases = vec!["idempotency:k".into()];
    assert!(matches!(store.fire_trigger(signed).await.expect("fire"), FireOutcome::Started(_)));
    let mut redelivered = fire("signature:2:bb", Some("t3"));
    redelivered.aliases = vec!["idempotency:k".into()];
    assert_eq!(
        store.fire_trigger(redelivered).await.expect("fire"),
        FireOutcome::Duplicate { run_id: Some("t2".into()) }
    );
    assert!(store.get_run("t3").await.expect("get").is_none());
    // Over the limit of runs not ended: busy, and nothing is recorded (the same key fires once there is room).
    let mut busy = fire("manual:b", Some("t4"));
    busy.max_active = Some(2);
    assert_eq!(store.fire_trigger(busy.clone()).await.expect("fire"), FireOutcome::Busy { active: 2 });
    assert!(store.get_run("t4").await.expect("get").is_none());
    assert_eq!(store.cancel_run("t1", "test").await.expect("cancel"), RunChange::Done);
    assert!(matches!(store.fire_trigger(busy).await.expect("fire"), FireOutcome::Started(r) if r.run_id == "t4"));
    // Many processes firing one cause at once: one run.
    let mut racing = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        racing
            .push(tokio::spawn(async move { store.fire_trigger(fire("schedule:race", Some(&format!("r{i}")))).await }));
    }
    let mut outcomes = Vec::new();
    for r in racing {
        outcomes.push(r.await.expect("task").expect("fire"));
    }
    let started: Vec<String> = outcomes
        .iter()
        .filter_map(|o| if let FireOutcome::Started(row) = o { Some(row.run_id.clone()) } else { None })
        .collect();
    assert_eq!(started.len(), 1, "one of the racing fires starts a run: {outcomes:?}");
    let duplicate = FireOutcome::Duplicate { run_id: started.first().cloned() };
    assert!(
        outcomes.iter().all(|o| matches!(o, FireOutcome::Started(_)) || *o == duplicate),
        "the others are duplicates naming it: {outcomes:?}"
    );
    // The fires as recorded, newest first; a disabled trigger fires nothing.
    let fires = store.trigger_fires("conf_gate", "1", 100).await.expect("fires");
    let keys: Vec<&str> = fires.iter().map(|f| f.cause_key.as_str()).collect();
    assert_eq!(fires.len(), 6, "{keys:?}");
    let skipped = fires.iter().find(|f| f.cause_key == "schedule:2030-01-01T00:00:04Z").expect("the skip");
    assert_eq!(
        (skipped.outcome.as_str(), skipped.reason.as_deref(), &skipped.run_id),
        ("skipped", Some("overlap"), &None)
    );
    let ticked = fires.iter().find(|f| f.cause_key == "schedule:2030-01-01T00:00:05Z").expect("the tick");
    assert_eq!((ticked.outcome.as_str(), ticked.run_id.as_deref()), ("started", Some("t1")));
    assert!(ticked.scheduled_at.as_deref().is_some_and(|t| t.starts_with("2030-01-01T00:00:05")), "{ticked:?}");
    assert!(fires.windows(2).all(|w| w[0].created_at >= w[1].created_at), "newest first: {keys:?}");
    assert_eq!(store.trigger_fires("conf_gate", "1", 2).await.expect("fires").len(), 2);
    store.disable_trigger("conf_gate", "1").await.expect("disable");
    assert_eq!(store.fire_trigger(fire("manual:c", Some("t5"))).await.expect("fire"), FireOutcome::Disabled);
    assert!(store.get_run("t5").await.expect("get").is_none());
}

pub(super) async fn an_operators_disable_survives_a_sync(store: Arc<dyn Store>) {
    assert_eq!(store.sync_trigger(sync(None, None)).await.expect("sync"), None, "nothing declared, nothing stored");
    assert!(matches!(store.disable_trigger("conf_gate", "1").await, Err(StoreError::NotFound(_))));
    let reg = store.sync_trigger(sync(Some("0 9 * * *"), None)).await.expect("sync").expect("registered");
    assert_eq!((reg.source.as_str(), reg.enabled, reg.disabled_by.as_deref()), ("ckp", true, None));
    assert!(reg.cursor_at.is_some(), "a schedule starts from its sync");
    assert_eq!(store.list_triggers().await.expect("list"), vec![reg.clone()]);
    let off = store.disable_trigger("conf_gate", "1").await.expect("disable");
    assert_eq!((off.enabled, off.disabled_by.as_deref(), off.id), (false, Some("operator"), reg.id));
    // The document changes, the version is deprecated then active again: the operator's disable stays.
    let changed = store.sync_trigger(sync(Some("0 10 * * *"), None)).await.expect("sync").expect("kept");
    assert_eq!((changed.enabled, changed.disabled_by.as_deref()), (false, Some("operator")));
    assert!(changed.config.contains("0 10 * * *"), "a document's registration takes the document's settings");
    for blocked in [Some("status"), None] {
        let row = store.sync_trigger(sync(Some("0 10 * * *"), blocked)).await.expect("sync").expect("kept");
        assert_eq!((row.enabled, row.disabled_by.as_deref()), (false, Some("operator")), "{blocked:?}");
    }
    let read = store.get_trigger("conf_gate", "1").await.expect("get").expect("kept");
    assert_eq!((read.enabled, read.disabled_by.as_deref()), (false, Some("operator")));
    // An operator's enable clears it; then a status block disables and a return to active enables again.
    let put = TriggerPut {
        procedure_id: "conf_gate".into(),
        version: "1".into(),
        trigger_type: "scheduled".into(),
        config: json!({"schedule": "@daily"}).to_string(),
        enabled: true,
        paused: true,
        pause_note: Some("maintenance".into()),
    };
    let on = store.put_trigger(put).await.expect("put");
    assert_eq!((on.source.as_str(), on.enabled, on.disabled_by.as_deref()), ("api", true, None));
    assert_eq!((on.paused, on.pause_note.as_deref()), (true, Some("maintenance")));
    let blocked = store.sync_trigger(sync(Some("0 11 * * *"), Some("status"))).await.expect("sync").expect("kept");
    assert_eq!((blocked.enabled, blocked.disabled_by.as_deref()), (false, Some("status")));
    assert!(blocked.config.contains("@daily"), "an operator's settings survive a sync: {}", blocked.config);
    let back = store.sync_trigger(sync(Some("0 11 * * *"), None)).await.expect("sync").expect("kept");
    assert_eq!((back.enabled, back.disabled_by.as_deref(), back.paused), (true, None, true));
    // A document's registration the document no longer declares is disabled as such.
    let mut other = sync(Some("0 9 * * *"), None);
    other.version = "2".into();
    store.sync_trigger(other.clone()).await.expect("sync").expect("registered");
    other.declared = None;
    let gone = store.sync_trigger(other).await.expect("sync").expect("kept");
    assert_eq!((gone.enabled, gone.disabled_by.as_deref()), (false, Some("undeclared")));
    let versions: Vec<String> = store.list_triggers().await.expect("list").into_iter().map(|t| t.version).collect();
    assert_eq!(versions, ["1", "2"], "every registration, disabled ones too");
}

/// RFC 3339 for now + `secs`.
fn in_secs(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339()
}

pub(super) async fn dedupe_windows_retired_keys_pages_and_prunes(store: Arc<dyn Store>) {
    store.sync_trigger(sync(Some("* * * * * *"), None)).await.expect("sync").expect("registered");
    // A key whose window is over is no duplicate: the new fire replaces its row; one within its window is.
    let mut body = fire("body:aa", Some("w1"));
    body.dedupe_until = vec![("body:aa".into(), in_secs(-1))];
    assert!(matches!(store.fire_trigger(body).await.expect("fire"), FireOutcome::Started(_)));
    let mut again = fire("body:aa", Some("w2"));
    again.dedupe_until = vec![("body:aa".into(), in_secs(3600))];
    assert!(matches!(store.fire_trigger(again).await.expect("fire"), FireOutcome::Started(r) if r.run_id == "w2"));
    let mut third = fire("body:aa", Some("w3"));
    third.dedupe_until = vec![("body:aa".into(), in_secs(3600))];
    assert_eq!(store.fire_trigger(third).await.expect("fire"), FireOutcome::Duplicate { run_id: Some("w2".into()) });
    let fires = store.trigger_fires("conf_gate", "1", 10).await.expect("fires");
    assert_eq!(fires.len(), 1, "the expired row was replaced: {fires:?}");
    assert_eq!(fires[0].run_id.as_deref(), Some("w2"));
    assert!(fires[0].dedupe_until.is_some());
    // Live keys: a file version dedupes (and is listed) until a later fire retires it.
    for (key, retire) in [
        ("file:created:a:1:1", None),
        ("file:created:b:1:1", None),
        ("file:modified:a:2:2", Some("file:created:a:1:1")),
    ] {
        let mut f = fire(key, None);
        f.retire = retire.into_iter().map(str::to_owned).collect();
        assert_eq!(store.fire_trigger(f).await.expect("fire"), FireOutcome::Skipped);
    }
    let live = store.live_fire_keys("conf_gate", "1", "file:").await.expect("live");
    assert_eq!(live, ["file:created:b:1:1", "file:modified:a:2:2"]);
    assert_eq!(store.live_fire_keys("conf_gate", "1", "file:created:").await.expect("live"), ["file:created:b:1:1"]);
    // A retired key fires again (a file back to an earlier version is a change), retiring the one it supersedes.
    let mut back = fire("file:created:a:1:1", None);
    back.retire = vec!["file:modified:a:2:2".into()];
    assert_eq!(store.fire_trigger(back).await.expect("fire"), FireOutcome::Skipped);
    let live = store.live_fire_keys("conf_gate", "1", "file:").await.expect("live");
    assert_eq!(live, ["file:created:b:1:1", "file:created:a:1:1"]);
    // Pages, newest first, by seq.
    let all = store.trigger_fires("conf_gate", "1", 100).await.expect("fires");
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first: {all:?}");
    assert_eq!(all[0].cause_key, "file:created:a:1:1");
    let page = store.trigger_fires_before("conf_gate", "1", 2, Some(all[1].seq)).await.expect("page");
    assert_eq!(page, all[2..4].to_vec());
    assert!(store.trigger_fires_before("conf_gate", "1", 2, Some(all[3].seq)).await.expect("page").is_empty());
    // Ticks: one behind the cursor dedupes nothing more; the cursor's own does.
    for (i, at) in ["2030-01-01T00:00:01Z", "2030-01-01T00:00:02Z"].iter().enumerate() {
        let mut tick = fire(&format!("schedule:{at}"), Some(&format!("k{i}")));
        tick.scheduled_at = Some((*at).to_owned());
        assert!(matches!(store.fire_trigger(tick).await.expect("fire"), FireOutcome::Started(_)));
    }
    // Keep the newest one: of the others, only those that dedupe nothing go: the tick behind the cursor and the
    // retired file version.
    let far = PruneFires { keep: 1, older_than: "2000-01-01T00:00:00Z".into(), limit: 100 };
    assert_eq!(store.prune_trigger_fires("conf_gate", "1", far).await.expect("prune"), 2);
    let left: Vec<String> =
        store.trigger_fires("conf_gate", "1", 100).await.expect("fires").into_iter().map(|f| f.cause_key).collect();
    assert_eq!(
        left,
        ["schedule:2030-01-01T00:00:02Z", "file:created:a:1:1", "file:created:b:1:1", "body:aa"],
        "the cursor's tick, the files on disk and a body within its window are kept"
    );
    // In small batches: an age limit over everything deletes, one row per call, only what dedupes nothing.
    let mut ended = fire("manual:x", Some("m1"));
    ended.dedupe_until = vec![("manual:x".into(), in_secs(0))];
    assert!(matches!(store.fire_trigger(ended).await.expect("fire"), FireOutcome::Started(_)));
    let mut ended = fire("manual:y", Some("m2"));
    ended.dedupe_until = vec![("manual:y".into(), in_secs(0))];
    assert!(matches!(store.fire_trigger(ended).await.expect("fire"), FireOutcome::Started(_)));
    let all_old = || PruneFires { keep: 1_000, older_than: in_secs(60), limit: 1 };
    assert_eq!(store.prune_trigger_fires("conf_gate", "1", all_old()).await.expect("prune"), 1);
    assert_eq!(store.prune_trigger_fires("conf_gate", "1", all_old()).await.expect("prune"), 1);
    assert_eq!(store.prune_trigger_fires("conf_gate", "1", all_old()).await.expect("prune"), 0);
    assert_eq!(store.trigger_fires("conf_gate", "1", 100).await.expect("fires").len(), 4);
}
