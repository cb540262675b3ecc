//! Triggers through a real server: registrations synced from the CKP block (and an operator's disable kept),
//! the API's shapes, a every-second schedule firing each tick once, overlap counting a run at an approval, and
//! webhooks with every answer (202, 401, 404, 409, 413, 429).

use std::time::Duration;

use ckp_server::triggers::webhook::{ckp_signature, sign};
use serde_json::{Value, json};

use crate::support::{TestServer, approval_procedure, chain_procedure};

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn with_trigger(mut doc: Value, trigger: Value) -> Value {
    doc["trigger"] = trigger;
    doc
}

async fn runs_of(server: &TestServer, pid: &str) -> Vec<Value> {
    let (_, runs) = server.call("GET", &format!("/api/runs?procedure_id={pid}&limit=1000"), None).await;
    runs.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn registrations_follow_the_document_and_keep_an_operators_disable() {
    let server = TestServer::start("trg-sync").await;
    let (_, none) = server.call("GET", "/api/triggers/nightly/1.0.0", None).await;
    assert_eq!(none, Value::Null, "no registration is null, not 404");
    let doc = with_trigger(
        chain_procedure("nightly", 1),
        json!({"type": "scheduled", "schedule": "0 9 * * 1-5", "timezone": "Europe/Paris"}),
    );
    server.import(doc.clone()).await;
    let (status, reg) = server.call("GET", "/api/triggers/nightly/1.0.0", None).await;
    assert_eq!(status, 200);
    assert_eq!((reg["trigger_type"].as_str(), reg["enabled"].as_bool()), (Some("scheduled"), Some(true)));
    assert_eq!(reg["source"], "ckp");
    let next: Vec<&str> = reg["next_fire_times"]
        .as_array()
        .expect("as the test set it up")
        .iter()
        .map(|t| t.as_str().expect("as the test set it up"))
        .collect();
    assert_eq!(next.len(), 5);
    for t in &next {
        // 09:00 in Paris is 07:00 or 08:00 UTC, Monday to Friday (POSIX weekdays: 1-5 is not Tuesday-Saturday).
        let at = chrono::DateTime::parse_from_rfc3339(t).expect("as the test set it up");
        let local = at.with_timezone(&chrono_tz::Europe::Paris);
        assert_eq!(local.format("%H:%M").to_string(), "09:00", "{t}");
        assert!(chrono::Datelike::weekday(&local).number_from_monday() <= 5, "{t}");
    }
    // An operator's disable survives an update of the document and a sync.
    assert_eq!(server.call("DELETE", "/api/triggers/nightly/1.0.0", None).await.0, 204);
    let (status, _) = server.call("PUT", "/api/procedures/nightly/1.0.0", Some(json!({"ckp_json": doc}))).await;
    assert_eq!(status, 200);
    assert_eq!(server.call("POST", "/api/triggers/sync", None).await, (200, json!({"synced": 1})));
    let (_, reg) = server.call("GET", "/api/triggers/nightly/1.0.0", None).await;
    assert_eq!((reg["enabled"].as_bool(), reg["disabled_by"].as_str()), (Some(false), Some("operator")));
    // Re-enabled by an operator; a deprecated version's trigger is disabled; deleting the version keeps it off.
    let body = json!({"trigger_type": "scheduled", "schedule": "@daily"});
    let (status, reg) = server.call("POST", "/api/triggers/nightly/1.0.0", Some(body)).await;
    assert_eq!((status, reg["enabled"].as_bool(), reg["source"].as_str()), (201, Some(true), Some("api")));
    let (status, _) =
        server.call("PATCH", "/api/procedures/nightly/1.0.0/status", Some(json!({"status": "deprecated"}))).await;
    assert_eq!(status, 200);
    let (_, reg) = server.call("GET", "/api/triggers/nightly/1.0.0", None).await;
    assert_eq!((reg["enabled"].as_bool(), reg["disabled_by"].as_str()), (Some(false), Some("status")));
    assert_eq!(reg["schedule"], "@daily", "a sync keeps an operator's settings");
    assert_eq!(server.call("DELETE", "/api/procedures/nightly/1.0.0", None).await.0, 200);
    let (_, reg) = server.call("GET", "/api/triggers/nightly/1.0.0", None).await;
    assert_eq!(reg["disabled_by"], "deleted");
    // Bad registrations: 422 with the reason, 404 for an unknown version or registration.
    server.import(chain_procedure("other", 1)).await;
    for (body, words) in [
        (json!({"trigger_type": "scheduled", "schedule": "61 * * * *"}), "not a valid cron"),
        (json!({"trigger_type": "scheduled", "schedule": "* * * * *", "timezone": "Mars/Base"}), "IANA"),
        (json!({"trigger_type": "webhook"}), "webhook_secret"),
        (json!({"trigger_type": "teleport"}), "trigger_type"),
        (json!({"trigger_type": "webhook", "webhook_secret": "s", "max_concurrent_runs": 0}), "max_concurrent_runs"),
    ] {
        let (status, answer) = server.call("POST", "/api/triggers/other/1.0.0", Some(body)).await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer["detail"].as_str().expect("as the test set it up").contains(words), "{answer}");
    }
    let body = json!({"trigger_type": "webhook", "webhook_secret": "s"});
    assert_eq!(server.call("POST", "/api/triggers/ghost/1.0.0", Some(body)).await.0, 404);
    assert_eq!(server.call("DELETE", "/api/triggers/other/1.0.0", None).await.0, 404);
    assert_eq!(server.call("POST", "/api/triggers/other/1.0.0/fire", None).await.0, 404);
    let (_, all) = server.call("GET", "/api/triggers", None).await;
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    server.stop().await;
}

#[tokio::test]
async fn an_every_second_schedule_fires_each_tick_once_and_skips_on_overlap() {
    let server = TestServer::start("trg-schedule").await;
    server
        .import(with_trigger(chain_procedure("tick", 1), json!({"type": "scheduled", "schedule": "* * * * * *"})))
        .await;
    // A run waiting at an approval counts as running: with overlap `skip`, later ticks are skipped, not fired.
    let gate = with_trigger(
        approval_procedure("gate"),
        json!({"type": "scheduled", "schedule": "* * * * * *", "overlap": "skip"}),
    );
    server.import(gate).await;
    tokio::time::sleep(Duration::from_millis(3600)).await;
    assert_eq!(server.call("DELETE", "/api/triggers/tick/1.0.0", None).await.0, 204);
    assert_eq!(server.call("DELETE", "/api/triggers/gate/1.0.0", None).await.0, 204);
    let runs = runs_of(&server, "tick").await;
    assert!((2..=5).contains(&runs.len()), "{} runs in 3.6 s of a 1 s schedule", runs.len());
    for r in &runs {
        assert_eq!((r["trigger_type"].as_str(), r["triggered_by"].as_str()), (Some("schedule"), Some("scheduler")));
    }
    let gated = runs_of(&server, "gate").await;
    assert_eq!(gated.len(), 1, "one run at its approval; the other ticks skipped");
    server.wait_status(gated[0]["run_id"].as_str().expect("as the test set it up"), &["waiting_approval"]).await;
    server.stop().await;
}

/// Overlap `buffer_one`: while a run waits at its approval, ticks are skipped except the latest, which waits
/// unrecorded and fires as soon as the run ends; one run follows, not one per tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_one_keeps_the_latest_tick_and_fires_it_when_the_run_ends() {
    let server = TestServer::start("trg-buffer-one").await;
    let trigger = json!({"type": "scheduled", "schedule": "* * * * * *", "overlap": "buffer_one", "catchup_window_seconds": 3600});
    server.import(with_trigger(approval_procedure("buffered"), trigger)).await;
    tokio::time::sleep(Duration::from_millis(3600)).await;
    let first = runs_of(&server, "buffered").await;
    assert_eq!(first.len(), 1, "one run at its approval: {first:?}");
    let first_id = first[0]["run_id"].as_str().expect("run_id").to_owned();
    server.wait_status(&first_id, &["waiting_approval"]).await;
    let (_, fires) = server.call("GET", "/api/triggers/buffered/1.0.0/fires", None).await;
    let fires = fires.as_array().cloned().unwrap_or_default();
    let skipped: Vec<&Value> = fires.iter().filter(|f| f["outcome"] == "skipped").collect();
    assert!(!skipped.is_empty(), "the superseded ticks are recorded: {fires:?}");
    assert!(skipped.iter().all(|f| f["reason"] == "overlap"), "{fires:?}");
    assert_eq!(fires.iter().filter(|f| f["outcome"] == "fired").count(), 1, "{fires:?}");

    // The run ends: the buffered tick fires at the next pass, and is the latest tick, not the first skipped.
    server.decide(&first_id, "approved").await;
    server.wait_status(&first_id, &["completed"]).await;
    let mut second = None;
    for _ in 0..100 {
        let runs = runs_of(&server, "buffered").await;
        if let Some(r) = runs.iter().find(|r| r["run_id"] != first_id.as_str()) {
            second = Some(r.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = second.expect("the buffered tick started a run once the first ended");
    let (_, fires) = server.call("GET", "/api/triggers/buffered/1.0.0/fires", None).await;
    assert_eq!(server.call("DELETE", "/api/triggers/buffered/1.0.0", None).await.0, 204);
    let fires = fires.as_array().cloned().unwrap_or_default();
    let fired: Vec<&Value> = fires.iter().filter(|f| f["outcome"] == "fired").collect();
    assert_eq!(fired.len(), 2, "{fires:?}");
    let buffered = fired.iter().find(|f| f["run_id"] == second["run_id"]).expect("the second run's fire");
    let latest_skip = skipped_ticks(&fires).into_iter().max().unwrap_or_default();
    assert!(
        buffered["scheduled_at"].as_str().unwrap_or_default() > latest_skip.as_str(),
        "the buffered tick is later than every skipped one: {fires:?}"
    );
    assert_eq!(runs_of(&server, "buffered").await.len(), 2);
    server.stop().await;
}

fn skipped_ticks(fires: &[Value]) -> Vec<String> {
    fires
        .iter()
        .filter(|f| f["outcome"] == "skipped")
        .filter_map(|f| f["scheduled_at"].as_str().map(str::to_owned))
        .collect()
}

async fn webhook_server(name: &str) -> TestServer {
    let server = TestServer::start_with(name, |c| c.secrets.encryption_key = Some(KEY.into())).await;
    for (secret, value) in [("hook_key", "k-new"), ("hook_old", "k-old")] {
        let (status, _) = server.call("POST", "/api/secrets", Some(json!({"name": secret, "value": value}))).await;
        assert_eq!(status, 201);
    }
    let trigger = json!({"type": "webhook", "webhook_secret": "hook_key", "webhook_secret_previous": "hook_old",
        "max_concurrent_runs": 2, "max_body_bytes": 2048});
    server.import(with_trigger(approval_procedure("hook"), trigger)).await;
    server
}

async fn deliver(server: &TestServer, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
    let mut req = server.http.post(server.url("/api/triggers/webhook/hook")).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.expect("as the test set it up");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn webhooks_answer_every_status() {
    let server = webhook_server("trg-webhook").await;
    let body = br#"{"order": 7}"#;
    let now = chrono::Utc::now().timestamp();
    // LangOrch's header, byte for byte: 202 with the run, its inputs the body.
    let (status, fired) =
        deliver(&server, &[("X-LangOrch-Signature", format!("sha256={}", sign("k-new", body)))], body).await;
    assert_eq!(status, 202, "{fired}");
    assert_eq!((fired["trigger_type"].as_str(), fired["status"].as_str()), (Some("webhook"), Some("created")));
    let run_id = fired["run_id"].as_str().expect("as the test set it up").to_owned();
    let (_, run) = server.call("GET", &format!("/api/runs/{run_id}"), None).await;
    assert_eq!(run["input_vars"], json!({"order": 7}));
    assert!(run["triggered_by"].as_str().expect("as the test set it up").starts_with("webhook:127.0.0.1"), "{run}");
    // Bad signature, no signature, stale timestamp: 401.
    for headers in [
        vec![("X-LangOrch-Signature", format!("sha256={}", sign("wrong", body)))],
        vec![],
        vec![("X-Ckp-Signature", ckp_signature("k-new", now - 301, body))],
    ] {
        let (status, answer) = deliver(&server, &headers, body).await;
        assert_eq!(status, 401, "{answer}");
    }
    // The previous secret during a rotation, timestamped: 202; the same delivery again is a replay: 409.
    let signed = vec![("X-Ckp-Signature", ckp_signature("k-old", now, body))];
    let (status, first) = deliver(&server, &signed, body).await;
    assert_eq!(status, 202, "{first}");
    let (status, replay) = deliver(&server, &signed, body).await;
    assert_eq!(status, 409, "{replay}");
    assert_eq!(replay["detail"]["existing_run_id"], first["run_id"]);
    // Two runs wait at their approval: the limit of 2 is reached, 429.
    let (status, busy) = deliver(&server, &[("X-Ckp-Signature", ckp_signature("k-new", now + 1, body))], body).await;
    assert_eq!(status, 429, "{busy}");
    assert!(
        busy["detail"].as_str().expect("as the test set it up").contains("max_concurrent_runs (2) reached"),
        "{busy}"
    );
    // Over the body limit: 413, nothing started.
    let big = vec![b'x'; 4096];
    let (status, _) = deliver(&server, &[("X-LangOrch-Signature", sign("k-new", &big))], &big).await;
    assert_eq!(status, 413);
    assert_eq!(runs_of(&server, "hook").await.len(), 2);
    // An unknown procedure: 404 with LangOrch's text.
    let (status, answer) = server.call("POST", "/api/triggers/webhook/nobody", Some(json!({}))).await;
    assert_eq!(status, 404);
    assert_eq!(answer["detail"], "No active webhook trigger registration found for procedure 'nobody'");
    server.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_starts_one_run() {
    let server = webhook_server("trg-idem").await;
    let body = b"[1, 2]";
    let headers = [("X-LangOrch-Signature", sign("k-new", body)), ("Idempotency-Key", "delivery-1".to_owned())];
    let (status, first) = deliver(&server, &headers, body).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = deliver(&server, &headers, body).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["detail"]["existing_run_id"], first["run_id"]);
    let (_, run) = server
        .call("GET", &format!("/api/runs/{}", first["run_id"].as_str().expect("as the test set it up")), None)
        .await;
    assert_eq!(run["input_vars"], json!({"payload": [1, 2]}));
    // Fire now through the API, with the same kind of key.
    let fire = |key: &'static str| {
        server.http.post(server.url("/api/triggers/hook/1.0.0/fire")).header("Idempotency-Key", key).send()
    };
    let r = fire("f-1").await.expect("as the test set it up");
    assert_eq!(r.status().as_u16(), 202);
    let fired: Value = r.json().await.expect("as the test set it up");
    assert_eq!((fired["trigger_type"].as_str(), fired["triggered_by"].as_str()), (Some("manual"), Some("api:manual")));
    assert_eq!(fire("f-1").await.expect("as the test set it up").status().as_u16(), 409);
    let r = fire("f-2").await.expect("as the test set it up");
    assert_eq!(r.status().as_u16(), 429, "the two runs at their approval fill the limit");
    assert_eq!(runs_of(&server, "hook").await.len(), 2, "the 409 and the 429 started nothing");
    server.stop().await;
}

/// `webhook_config.allowed_sources`: a delivery from outside the listed ranges is refused with 403 before anything is
/// read or started; an address in them (IPv4 seen over IPv6 included) is served.
#[tokio::test]
async fn webhooks_accept_only_their_allowed_sources() {
    let server = TestServer::start_with("trg-sources", |c| c.secrets.encryption_key = Some(KEY.into())).await;
    let (status, _) = server.call("POST", "/api/secrets", Some(json!({"name": "hook_key", "value": "k-new"}))).await;
    assert_eq!(status, 201);
    let fenced = json!({"type": "webhook", "webhook_secret": "hook_key",
        "webhook_config": {"allowed_sources": ["10.0.0.0/8", "192.0.2.7"]}});
    server.import(with_trigger(approval_procedure("hook"), fenced)).await;
    let body = br#"{"order": 1}"#;
    let signed = [("X-LangOrch-Signature", sign("k-new", body))];
    let (status, answer) = deliver(&server, &signed, body).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["code"], "source_not_allowed");
    assert!(answer["detail"].as_str().expect("a text").contains("127.0.0.1"), "{answer}");
    assert!(runs_of(&server, "hook").await.is_empty());
    // The same procedure with loopback allowed (a new version; the newest webhook registration serves).
    let open = json!({"type": "webhook", "webhook_secret": "hook_key",
        "webhook_config": {"allowed_sources": ["10.0.0.0/8", "127.0.0.0/8"]}});
    let mut v2 = with_trigger(approval_procedure("hook"), open);
    v2["version"] = json!("2.0.0");
    server.import(v2).await;
    let (status, answer) = deliver(&server, &signed, body).await;
    assert_eq!(status, 202, "{answer}");
    // A bad entry is refused when an operator writes the registration.
    let (status, answer) = server
        .call(
            "POST",
            "/api/triggers/hook/2.0.0",
            Some(json!({"trigger_type": "webhook", "webhook_secret": "hook_key",
            "allowed_sources": ["not-an-address"]})),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["detail"].to_string().contains("not-an-address"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn backfill_fires_each_past_tick_once_and_repeats_safely() {
    let server = TestServer::start("trg-backfill").await;
    let doc = with_trigger(chain_procedure("daily", 1), json!({"type": "scheduled", "schedule": "0 6 * * *"}));
    server.import(doc).await;
    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::days(3)).date_naive().and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let range = json!({"start": start.to_rfc3339(), "end": now.to_rfc3339()});
    let (status, first) = server.call("POST", "/api/triggers/daily/1.0.0/backfill", Some(range.clone())).await;
    assert_eq!(status, 200, "{first}");
    // 06:00 UTC on each of the three days before today, and today's if it has passed.
    let expected = 3 + usize::from(now.time() >= chrono::NaiveTime::from_hms_opt(6, 0, 0).expect("six"));
    assert_eq!(first["ticks"], expected, "{first}");
    assert_eq!(first["started"].as_array().map(Vec::len), Some(expected), "{first}");
    let runs = runs_of(&server, "daily").await;
    assert_eq!(runs.len(), expected);
    assert!(runs.iter().all(|r| r["triggered_by"] == "backfill" && r["trigger_type"] == "schedule"));
    // Again: every tick is already recorded, nothing starts.
    let (_, again) = server.call("POST", "/api/triggers/daily/1.0.0/backfill", Some(range)).await;
    assert_eq!(
        (again["already_recorded"].as_u64(), again["started"].as_array().map(Vec::len)),
        (Some(expected as u64), Some(0))
    );
    assert_eq!(runs_of(&server, "daily").await.len(), expected);
    // Ranges that cannot be backfilled.
    let future = json!({"start": now.to_rfc3339(), "end": (now + chrono::Duration::days(1)).to_rfc3339()});
    let many = json!({"start": (now - chrono::Duration::days(1200)).to_rfc3339(), "end": now.to_rfc3339()});
    let reversed = json!({"start": now.to_rfc3339(), "end": start.to_rfc3339()});
    for (body, words) in [
        (future, "future"),
        (many, "more than 1000"),
        (reversed, "before start"),
        (json!({"start": "yesterday", "end": "now"}), "RFC 3339"),
    ] {
        let (status, answer) = server.call("POST", "/api/triggers/daily/1.0.0/backfill", Some(body)).await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer["detail"].as_str().is_some_and(|d| d.contains(words)), "{answer}");
    }
    server.import(with_trigger(chain_procedure("hook", 1), json!({"type": "webhook", "webhook_secret": "s"}))).await;
    let body = json!({"start": start.to_rfc3339(), "end": now.to_rfc3339()});
    assert_eq!(server.call("POST", "/api/triggers/hook/1.0.0/backfill", Some(body)).await.0, 422);
    server.stop().await;
}

#[tokio::test]
async fn event_sources_are_checked_and_shown_without_credentials() {
    let server = TestServer::start("trg-event-api").await;
    server.import(chain_procedure("evt", 1)).await;
    for (source, words) in [
        ("kafka://orders", "not supported"),
        ("orders", "names no broker"),
        ("nats://127.0.0.1/orders", "?stream="),
        ("amqp://127.0.0.1/?queue=q&prefetch=0", "prefetch"),
    ] {
        let body = json!({"trigger_type": "event", "event_source": source});
        let (status, answer) = server.call("POST", "/api/triggers/evt/1.0.0", Some(body)).await;
        assert_eq!(status, 422, "{source}: {answer}");
        assert!(answer["detail"].as_str().is_some_and(|d| d.contains(words)), "{source}: {answer}");
    }
    let body = json!({"trigger_type": "event", "event_source": "amqp://svc:pa55word@127.0.0.1/?queue=q",
        "event_filter": {"payload": "x"}});
    let (status, answer) = server.call("POST", "/api/triggers/evt/1.0.0", Some(body)).await;
    assert_eq!(status, 422, "a filter that does not read is refused: {answer}");
    let body = json!({"trigger_type": "event", "event_source": "amqp://svc:pa55word@127.0.0.1/?queue=q",
        "event_filter": {"status": "paid"}, "event_type": ["order.paid"], "jitter_seconds": 0});
    let (status, reg) = server.call("POST", "/api/triggers/evt/1.0.0", Some(body)).await;
    assert_eq!(status, 201, "{reg}");
    assert_eq!(reg["event_source"], "amqp://127.0.0.1:5672/?queue=q&prefetch=32");
    assert_eq!(reg["event_type"], json!(["order.paid"]));
    let (_, all) = server.call("GET", "/api/triggers", None).await;
    assert!(!all.to_string().contains("pa55word"), "{all}");
    // What GET shows, sent back (the console's save), keeps the stored credentials.
    let mut again = reg.clone();
    for key in [
        "id",
        "procedure_id",
        "version",
        "disabled_by",
        "source",
        "next_fire_times",
        "created_at",
        "updated_at",
        "file_watch_refused",
    ] {
        again.as_object_mut().map(|o| o.remove(key));
    }
    let (status, answer) = server.call("POST", "/api/triggers/evt/1.0.0", Some(again)).await;
    assert_eq!((status, &answer["event_source"]), (201, &reg["event_source"]), "{answer}");
    let body = json!({"trigger_type": "scheduled", "schedule": "@daily", "jitter_seconds": 100_000});
    let (status, answer) = server.call("POST", "/api/triggers/evt/1.0.0", Some(body)).await;
    assert_eq!(status, 422, "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn cancel_other_keeps_only_the_latest_ticks_run() {
    let server = TestServer::start("trg-cancel-other").await;
    // Each run waits at an approval: every new tick cancels the one before.
    let gate = with_trigger(
        approval_procedure("latest"),
        json!({"type": "scheduled", "schedule": "* * * * * *", "overlap": "cancel_other"}),
    );
    server.import(gate).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let runs = loop {
        let runs = runs_of(&server, "latest").await;
        if runs.len() >= 3 {
            break runs;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} runs after 20 s", runs.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(server.call("DELETE", "/api/triggers/latest/1.0.0", None).await.0, 204);
    // Newest first: the runs after the newest are canceled, or will be within a moment.
    let newest_created = runs[0]["created_at"].as_str().unwrap_or_default().to_owned();
    for r in runs.iter().skip(1) {
        let id = r["run_id"].as_str().unwrap_or_default();
        assert!(r["created_at"].as_str().unwrap_or_default() <= newest_created.as_str());
        server.wait_status(id, &["canceled"]).await;
    }
    server.stop().await;
}

/// A server with a webhook on `chain` (ends at once) with a 2-second body window, and one on `gate` (stops at an
/// approval).
async fn dedupe_server(name: &str) -> TestServer {
    let server = TestServer::start_with(name, |c| c.secrets.encryption_key = Some(KEY.into())).await;
    let (status, _) = server.call("POST", "/api/secrets", Some(json!({"name": "hook_key", "value": "k-new"}))).await;
    assert_eq!(status, 201);
    let windowed = json!({"type": "webhook", "webhook_secret": "hook_key", "dedupe_window_seconds": 2});
    server.import(with_trigger(chain_procedure("chain", 2), windowed)).await;
    server
        .import(with_trigger(approval_procedure("gate"), json!({"type": "webhook", "webhook_secret": "hook_key"})))
        .await;
    server
}

async fn post_hook(server: &TestServer, path: &str, idem: Option<&str>, body: &[u8]) -> (u16, Value) {
    let mut req = server
        .http
        .post(server.url(path))
        .header("X-LangOrch-Signature", format!("sha256={}", sign("k-new", body)))
        .body(body.to_vec());
    if let Some(k) = idem {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.expect("as the test set it up");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `dedupe_window_seconds`: the same body within the window is a 409 naming the first run (LangOrch's shape), after
/// it a new run; an Idempotency-Key decides instead of the body; the window is the registration's, not the
/// procedure's. Without a window, the same body twice is two runs.
#[tokio::test]
async fn webhook_bodies_dedupe_within_their_window_per_registration() {
    let server = dedupe_server("trg-body").await;
    let body = br#"{"ping": true}"#;
    let (status, first) = post_hook(&server, "/api/triggers/webhook/chain", None, body).await;
    assert_eq!(status, 202, "{first}");
    let (status, dup) = post_hook(&server, "/api/triggers/webhook/chain", None, body).await;
    assert_eq!(status, 409, "{dup}");
    assert_eq!(
        dup["detail"],
        json!({"message": "Duplicate webhook payload within dedupe window", "existing_run_id": first["run_id"]})
    );
    // Another body, and the same body under Idempotency-Keys, are other causes.
    assert_eq!(post_hook(&server, "/api/triggers/webhook/chain", None, br#"{"ping": 2}"#).await.0, 202);
    assert_eq!(post_hook(&server, "/api/triggers/webhook/chain", Some("k1"), body).await.0, 202);
    assert_eq!(post_hook(&server, "/api/triggers/webhook/chain", Some("k2"), body).await.0, 202);
    assert_eq!(post_hook(&server, "/api/triggers/webhook/chain", Some("k2"), body).await.0, 409);
    // The window is the registration's: a new version's registration serves the procedure with its own.
    let windowed = json!({"type": "webhook", "webhook_secret": "hook_key", "dedupe_window_seconds": 2});
    let mut v2 = with_trigger(chain_procedure("chain", 2), windowed);
    v2["version"] = json!("2.0.0");
    server.import(v2).await;
    let (status, second) = post_hook(&server, "/api/triggers/webhook/chain", None, body).await;
    assert_eq!((status, second["procedure_version"].as_str()), (202, Some("2.0.0")), "{second}");
    assert_eq!(post_hook(&server, "/api/triggers/webhook/chain", None, body).await.0, 409);
    // After the window, the same body starts a run again.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, again) = post_hook(&server, "/api/triggers/webhook/chain", None, body).await;
    assert_eq!(status, 202, "{again}");
    assert_ne!(again["run_id"], second["run_id"]);
    assert_eq!(runs_of(&server, "chain").await.len(), 6);
    // No window: the same body twice is two causes.
    assert_eq!(post_hook(&server, "/api/triggers/webhook/gate", None, body).await.0, 202);
    assert_eq!(post_hook(&server, "/api/triggers/webhook/gate", None, body).await.0, 202);
    // A document's enormous window is ten years (no overflow); the API refuses one beyond that.
    let huge = json!({"type": "webhook", "webhook_secret": "hook_key", "dedupe_window_seconds": i64::MAX});
    server.import(with_trigger(chain_procedure("huge", 1), huge)).await;
    assert_eq!(post_hook(&server, "/api/triggers/webhook/huge", None, body).await.0, 202);
    assert_eq!(post_hook(&server, "/api/triggers/webhook/huge", None, body).await.0, 409);
    let too_long = json!({"trigger_type": "webhook", "webhook_secret": "hook_key", "dedupe_window_seconds": i64::MAX});
    let (status, answer) = server.call("POST", "/api/triggers/huge/1.0.0", Some(too_long)).await;
    assert_eq!(status, 422, "{answer}");
    // Each delivery is in the fires list: fired, or not recorded at all when refused as a duplicate.
    let (_, fires) = server.call("GET", "/api/triggers/chain/2.0.0/fires", None).await;
    let keys: Vec<&str> = fires.as_array().expect("a list").iter().filter_map(|f| f["key"].as_str()).collect();
    assert_eq!(keys.len(), 1, "the expired body's row is replaced by the new fire: {keys:?}");
    assert!(keys[0].starts_with("body:"));
    server.stop().await;
}

/// `?wait=N`: 200 with the run when it ends within the wait (its outputs), 202 when it stops at an approval; over 60
/// seconds is refused.
#[tokio::test]
async fn a_synchronous_webhook_answers_with_the_ended_run() {
    let server = dedupe_server("trg-wait").await;
    let (status, run) = post_hook(&server, "/api/triggers/webhook/chain?wait=30", None, br#"{"n": 1}"#).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!((run["status"].as_str(), run["trigger_type"].as_str()), (Some("completed"), Some("webhook")));
    assert_eq!(run["output_vars"]["last"], "n1", "{run}");
    assert_eq!(run["input_vars"], json!({"n": 1}));
    let (status, fired) = post_hook(&server, "/api/triggers/webhook/gate?wait=30", None, b"{}").await;
    assert_eq!(status, 202, "{fired}");
    server.wait_status(fired["run_id"].as_str().expect("a run"), &["waiting_approval"]).await;
    let (status, answer) = post_hook(&server, "/api/triggers/webhook/chain?wait=61", None, br#"{"n": 2}"#).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(post_hook(&server, "/api/triggers/webhook/chain?wait=soon", None, b"{}").await.0, 422);
    // A duplicate within the window is a 409 with or without a wait.
    assert_eq!(post_hook(&server, "/api/triggers/webhook/chain?wait=5", None, br#"{"n": 1}"#).await.0, 409);
    assert_eq!(runs_of(&server, "chain").await.len(), 1, "the refused deliveries started nothing");
    server.stop().await;
}
