//! Pushing metrics to a Prometheus push gateway (`metrics_push_url`), for processes a scraper cannot reach.
//! Each process pushes under its own grouping key (`job`, `instance` = its process id): LangOrch's replicas all
//! PUT to one key and overwrote each other.

use std::sync::Arc;
use std::time::Duration;

use ckp_engine::error::ErrorChain;
use ckp_store::Store;
use tokio::sync::watch;

use super::Metrics;

/// Where and how often to push.
#[derive(Debug, Clone)]
pub struct Push {
    /// The gateway's base URL.
    pub url: String,
    /// The `job` label.
    pub job: String,
    /// How often.
    pub every: Duration,
}

impl Push {
    /// The grouping key's URL for `process`.
    pub fn target(&self, process: &str) -> String {
        format!(
            "{}/metrics/job/{}/instance/{}",
            self.url.trim_end_matches('/'),
            path_segment(&self.job),
            path_segment(process)
        )
    }
}

/// A grouping key value in a URL path: anything but `[A-Za-z0-9_.-]` percent-encoded.
fn path_segment(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Pushes every `push.every` until `shutdown`, then once more (the final counts), logging failures without
/// stopping.
pub async fn run_push(metrics: Arc<Metrics>, store: Arc<dyn Store>, push: Push, mut shutdown: watch::Receiver<bool>) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %ErrorChain(&e), "metrics push: no HTTP client; metrics are not pushed");
            return;
        }
    };
    let target = push.target(&metrics.process);
    let mut tick = tokio::time::interval(push.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.changed() => true,
        };
        let body = metrics.render(store.as_ref()).await;
        let sent = client
            .put(&target)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(status = r.status().as_u16(), target = %target, "metrics push refused"),
            Err(e) => tracing::warn!(error = %ErrorChain(&e), target = %target, "metrics push failed"),
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_process_pushes_under_its_own_key() {
        let push = Push { url: "http://gw:9091/".into(), job: "ckp prod".into(), every: Duration::from_secs(1) };
        assert_eq!(push.target("ab12cd34"), "http://gw:9091/metrics/job/ckp%20prod/instance/ab12cd34");
    }
}
