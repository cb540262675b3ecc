//! File-drop triggers through a real server and real files: a hundred files dropped at once, some written slowly,
//! start a hundred runs, each with its complete file, and a restart starts none again; created, modified and deleted
//! files, a change of a kind not watched recorded as skipped, the fires list; a folder outside
//! `file_watch_allowed_paths` (or reached through a link) never read, and the registration says why.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestServer, chain_procedure};

/// A fresh folder for a test's files.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ckp-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp folder");
    dir
}

fn text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

async fn runs_of(server: &TestServer, pid: &str) -> Vec<Value> {
    let (_, runs) = server.call("GET", &format!("/api/runs?procedure_id={pid}&limit=1000"), None).await;
    runs.as_array().cloned().unwrap_or_default()
}

/// Waits (30 s at most) until `pid` has `n` runs; returns them.
async fn wait_runs(server: &TestServer, pid: &str, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        let runs = runs_of(server, pid).await;
        if runs.len() >= n {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{pid} never had {n} runs (it has {})", runs_of(server, pid).await.len());
}

fn watching(pid: &str, config: Value) -> Value {
    let mut doc = chain_procedure(pid, 1);
    doc["trigger"] = json!({"type": "file_watch", "file_watch_config": config});
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_dropped_files_start_a_hundred_complete_runs_once_across_a_restart() {
    let root = folder("hundred");
    let inbox = root.join("inbox");
    std::fs::create_dir_all(&inbox).expect("the inbox");
    let allowed = vec![text(&root)];
    let server = TestServer::start_with("files-hundred", |c| c.file_watch_allowed_paths = allowed).await;
    let config = json!({"path": text(&inbox), "pattern": "*.csv", "event_types": ["created"], "settle_ms": 1500});
    server.import(watching("drop", config)).await;
    let (_, reg) = server.call("GET", "/api/triggers/drop/1.0.0", None).await;
    assert_eq!(reg["file_watch_refused"], Value::Null, "{reg}");
    assert_eq!(reg["file_watch_settle_ms"], 1500);
    // 80 files written at once, 20 written in 8 chunks a quarter of a second apart (2 s: longer than the quiet
    // period, so a watcher that did not wait for the end would fire them early), and files the glob excludes.
    let mut expected = std::collections::BTreeMap::new();
    let mut slow = Vec::new();
    for i in 0..100 {
        let name = format!("order-{i:03}.csv");
        if i % 5 == 0 {
            let path = inbox.join(&name);
            expected.insert(name, 8 * 1000);
            slow.push(tokio::task::spawn_blocking(move || {
                let mut f = std::fs::File::create(&path).expect("create");
                for chunk in 0..8u8 {
                    f.write_all(&[b'a' + chunk; 1000]).expect("write");
                    f.flush().expect("flush");
                    std::thread::sleep(Duration::from_millis(250));
                }
            }));
        } else {
            let body = format!("id,amount\n{i},{}\n", i * 7);
            expected.insert(name.clone(), body.len());
            std::fs::write(inbox.join(&name), body).expect("write");
        }
    }
    std::fs::write(inbox.join("notes.txt"), "not a csv").expect("write");
    std::fs::create_dir_all(inbox.join("sub.csv")).expect("a folder named like a match");
    for s in slow {
        s.await.expect("the slow writer");
    }
    let runs = wait_runs(&server, "drop", 100).await;
    // Time for anything extra to show up: a second fire of a file, a fire of an excluded entry.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let runs_after = runs_of(&server, "drop").await;
    assert_eq!(runs_after.len(), 100, "exactly one run per file");
    let mut seen = std::collections::BTreeMap::new();
    for r in &runs {
        let inputs = &r["input_vars"];
        let name = inputs["file_name"].as_str().expect("file_name").to_owned();
        assert_eq!((r["trigger_type"].as_str(), inputs["file_event"].as_str()), (Some("file_watch"), Some("created")));
        let path = text(&inbox.join(&name));
        assert_eq!((inputs["file_watch_path"].as_str(), r["triggered_by"].as_str()), (Some(&*path), Some(&*path)));
        assert!(inputs["file_mtime"].as_f64().is_some_and(|t| t > 1.0e9), "{inputs}");
        // Fired only once complete: the size the run saw is the file's final size.
        assert_eq!(inputs["file_size"].as_u64(), expected.get(&name).map(|n| *n as u64), "{name}");
        assert!(seen.insert(name.clone(), ()).is_none(), "{name} fired twice");
    }
    assert_eq!(seen.len(), 100);
    // A restart (a new process state on the same database): what fired is in the store, nothing fires again.
    let server = server.restart().await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(runs_of(&server, "drop").await.len(), 100, "a restart fires no file twice");
    let (status, fires) = server.call("GET", "/api/triggers/drop/1.0.0/fires?limit=1000", None).await;
    assert_eq!(status, 200, "{fires}");
    let fires = fires.as_array().expect("a list");
    assert_eq!(fires.len(), 100);
    assert!(fires.iter().all(|f| f["outcome"] == "fired" && f["key"].as_str().is_some_and(|k| k.starts_with("file:created:order-"))));
    server.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn changes_deletions_skips_and_folders_outside_the_allowed_paths() {
    let root = folder("changes");
    let (inbox, outside) = (root.join("allowed/in"), root.join("elsewhere"));
    std::fs::create_dir_all(&inbox).expect("the inbox");
    std::fs::create_dir_all(&outside).expect("the other folder");
    let allowed = vec![text(&root.join("allowed"))];
    let server = TestServer::start_with("files-changes", |c| c.file_watch_allowed_paths = allowed).await;
    let all = json!({"path": text(&inbox), "event_types": ["created", "modified", "deleted"], "settle_ms": 300});
    server.import(watching("watch", all)).await;
    // A folder outside the allowed ones, directly or through a link inside them: registered, never read, and why.
    server.import(watching("outside", json!({"path": text(&outside), "settle_ms": 100}))).await;
    let link = root.join("allowed/link");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&outside, &link).expect("a link");
    server.import(watching("linked", json!({"path": text(&link), "settle_ms": 100}))).await;
    server.import(watching("relative", json!({"path": "allowed/../elsewhere"}))).await;
    for (pid, words) in [("outside", "not under"), ("linked", "resolves to"), ("relative", "absolute")] {
        let (_, reg) = server.call("GET", &format!("/api/triggers/{pid}/1.0.0"), None).await;
        assert!(reg["file_watch_refused"].as_str().is_some_and(|w| w.contains(words)), "{pid}: {reg}");
        assert_eq!(reg["enabled"], true, "accepted, only not read");
    }
    std::fs::write(outside.join("secret.txt"), "never read").expect("write");

    std::fs::write(inbox.join("a.txt"), "one").expect("write");
    let runs = wait_runs(&server, "watch", 1).await;
    assert_eq!(runs[0]["input_vars"]["file_event"], "created");
    std::fs::write(inbox.join("a.txt"), "one and two").expect("rewrite");
    let runs = wait_runs(&server, "watch", 2).await;
    let modified = runs.iter().find(|r| r["input_vars"]["file_event"] == "modified").expect("a modified run");
    assert_eq!(modified["input_vars"]["file_size"], 11);
    std::fs::remove_file(inbox.join("a.txt")).expect("delete");
    let runs = wait_runs(&server, "watch", 3).await;
    let deleted = runs.iter().find(|r| r["input_vars"]["file_event"] == "deleted").expect("a deleted run");
    assert_eq!(deleted["input_vars"]["file_size"], 11, "the version that went");
    // The same name again is a new file.
    std::fs::write(inbox.join("a.txt"), "back").expect("write");
    let runs = wait_runs(&server, "watch", 4).await;
    assert_eq!(runs.iter().filter(|r| r["input_vars"]["file_event"] == "created").count(), 2);

    // Only `created` watched: a change is recorded as skipped (and compared with from then on), not fired.
    let body = json!({"trigger_type": "file_watch", "file_watch_path": text(&inbox), "file_watch_pattern": "b*",
        "file_watch_event_types": ["created"], "file_watch_settle_ms": 200});
    let (status, reg) = server.call("POST", "/api/triggers/watch/1.0.0", Some(body)).await;
    assert_eq!(status, 201, "{reg}");
    std::fs::write(inbox.join("b.txt"), "b").expect("write");
    wait_runs(&server, "watch", 5).await;
    std::fs::write(inbox.join("b.txt"), "b, changed").expect("rewrite");
    let mut skipped = None;
    for _ in 0..100 {
        let (_, fires) = server.call("GET", "/api/triggers/watch/1.0.0/fires", None).await;
        skipped = fires.as_array().and_then(|f| f.iter().find(|f| f["outcome"] == "skipped").cloned());
        if skipped.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let skipped = skipped.expect("the change is recorded");
    assert_eq!(skipped["reason"], "event_type_not_watched: modified", "{skipped}");
    assert!(skipped["key"].as_str().is_some_and(|k| k.starts_with("file:modified:b.txt:10:")), "{skipped}");
    assert_eq!(skipped["run_id"], Value::Null);
    // The fires list, newest first, a page at a time.
    let (_, fires) = server.call("GET", "/api/triggers/watch/1.0.0/fires", None).await;
    let fires = fires.as_array().cloned().expect("a list");
    assert_eq!(fires.len(), 6, "{fires:?}");
    let (_, page) = server.call("GET", "/api/triggers/watch/1.0.0/fires?limit=2", None).await;
    assert_eq!(page.as_array().map(Vec::as_slice), Some(&fires[..2]));
    let before = fires[1]["id"].as_i64().expect("an id");
    let (_, next) = server.call("GET", &format!("/api/triggers/watch/1.0.0/fires?limit=2&before={before}"), None).await;
    assert_eq!(next.as_array().map(Vec::as_slice), Some(&fires[2..4]));
    assert_eq!(server.call("GET", "/api/triggers/watch/1.0.0/fires?limit=0", None).await.0, 422);
    assert_eq!(server.call("GET", "/api/triggers/ghost/1.0.0/fires", None).await.0, 404);
    // Bad settings are refused.
    for (body, words) in [
        (json!({"trigger_type": "file_watch", "file_watch_path": "/x", "file_watch_pattern": "[ab"}), "not closed"),
        (json!({"trigger_type": "file_watch", "file_watch_path": "/x", "file_watch_event_types": []}), "at least one"),
        (json!({"trigger_type": "file_watch", "file_watch_path": "/x", "file_watch_settle_ms": 3_600_001}), "at most"),
        (json!({"trigger_type": "file_watch"}), "file_watch_path"),
    ] {
        let (status, answer) = server.call("POST", "/api/triggers/watch/1.0.0", Some(body)).await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer["detail"].as_str().is_some_and(|d| d.contains(words)), "{answer}");
    }
    for pid in ["outside", "linked", "relative"] {
        assert!(runs_of(&server, pid).await.is_empty(), "{pid} never read its folder");
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}
