//! The job queue: order, leases, heartbeats, reclaim, durable timers, requeue while running, concurrent claims.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use ckp_store::{QueueStore, SqliteOptions, SqliteStore};

use crate::temp_db;

fn store(name: &str) -> SqliteStore {
    SqliteStore::open(temp_db(name), SqliteOptions::default()).expect("opens")
}

#[tokio::test]
async fn priority_then_availability() {
    let s = store("q-order");
    let now = Utc::now();
    s.enqueue("low", 0, None).await.expect("enqueue");
    s.enqueue("high", 10, None).await.expect("enqueue");
    s.enqueue("later", 100, Some(now + Duration::seconds(60))).await.expect("enqueue");
    let t = now + Duration::seconds(1);
    assert_eq!(s.claim("w", 1000, t).await.expect("claim").map(|j| j.run_id), Some("high".into()));
    assert_eq!(s.claim("w", 1000, t).await.expect("claim").map(|j| j.run_id), Some("low".into()));
    assert_eq!(s.claim("w", 1000, t).await.expect("claim"), None, "a durable timer is not due yet");
    assert!(s.next_available().await.expect("next").is_some_and(|at| at > t));
    let later = s.claim("w", 1000, now + Duration::seconds(61)).await.expect("claim").expect("due now");
    assert_eq!(later.run_id, "later");
}

#[tokio::test]
async fn expired_leases_are_reclaimed_and_the_old_worker_loses_the_job() {
    let s = store("q-lease");
    s.enqueue("r", 0, None).await.expect("enqueue");
    let now = Utc::now() + Duration::seconds(1);
    let first = s.claim("w1", 50, now).await.expect("claim").expect("job");
    assert_eq!(first.attempts, 1);
    assert_eq!(s.reclaim_expired(now).await.expect("reclaim"), 0, "the lease still holds");
    assert_eq!(s.reclaim_expired(now + Duration::seconds(1)).await.expect("reclaim"), 1);
    let second = s.claim("w2", 60_000, now + Duration::seconds(1)).await.expect("claim").expect("job");
    assert_eq!((second.job_id, second.attempts), (first.job_id, 2));
    assert!(!s.heartbeat(first.job_id, "w1", 60_000).await.expect("heartbeat"), "w1 lost it");
    assert!(!s.finish(first.job_id, "w1").await.expect("finish"));
    assert!(s.heartbeat(second.job_id, "w2", 60_000).await.expect("heartbeat"));
    assert!(s.finish(second.job_id, "w2").await.expect("finish"));
    assert_eq!(s.claim("w3", 1000, now + Duration::seconds(2)).await.expect("claim"), None, "done jobs stay done");
}

#[tokio::test]
async fn reschedule_is_a_durable_timer_and_a_requeue_while_running_is_not_lost() {
    let s = store("q-timer");
    s.enqueue("r", 0, None).await.expect("enqueue");
    let now = Utc::now() + Duration::seconds(1);
    let job = s.claim("w", 60_000, now).await.expect("claim").expect("job");
    assert!(s.reschedule(job.job_id, "w", now + Duration::seconds(30)).await.expect("reschedule"));
    assert_eq!(s.claim("w", 60_000, now + Duration::seconds(29)).await.expect("claim"), None);
    let job = s.claim("w", 60_000, now + Duration::seconds(31)).await.expect("claim").expect("due");
    // A decision arrives while the worker still holds the job: finishing must requeue it, not drop it.
    s.enqueue("r", 10, None).await.expect("requeue");
    assert!(s.finish(job.job_id, "w").await.expect("finish"));
    let again = s.claim("w", 60_000, Utc::now() + Duration::seconds(40)).await.expect("claim").expect("requeued");
    assert_eq!(again.run_id, "r");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_workers_never_share_a_job() {
    let s = Arc::new(store("q-concurrent"));
    for i in 0..60 {
        s.enqueue(&format!("run-{i}"), i % 3, None).await.expect("enqueue");
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(job) =
                s.claim(&format!("w{w}"), 60_000, Utc::now() + Duration::seconds(1)).await.expect("claim")
            {
                got.push(job.run_id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 60);
    assert_eq!(unique.len(), 60);
}

#[tokio::test]
async fn enqueue_wakes_a_waiting_worker() {
    let s = Arc::new(store("q-wake"));
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            s.wait_for_work(std::time::Duration::from_secs(30)).await;
            started.elapsed()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    s.enqueue("r", 0, None).await.expect("enqueue");
    let waited = waiter.await.expect("task");
    assert!(waited < std::time::Duration::from_secs(30), "woken by the enqueue, not by the timeout");
}
