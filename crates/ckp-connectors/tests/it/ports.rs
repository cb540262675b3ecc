//! The connectors through their own ports, implemented here in memory: agent dispatch needs nothing of the registry
//! but `AgentRegistry` (candidates, a lease held for the call and given back, the breaker's health results), and
//! the `db` secrets provider nothing but `SealedSecrets`. The store behind them is tested in ckp-server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ckp_connectors::agents::RegistryAgents;
use ckp_connectors::egress::Egress;
use ckp_connectors::ports::{AgentInfo, AgentRegistry, Lease, LeaseHolder, PortError, SealedSecrets};
use ckp_connectors::secrets::{SealKey, SecretManager, SecretsSettings};
use ckp_core::procedure::{ErrorKind, SecretProvider, SecretsSpec};
use ckp_engine::effects::{AgentRequest, Agents, BoxFuture};
use serde_json::{Value, json};

/// What the registry was asked, in order.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Acquire { resource: String, limit: i64, run: String, node: String, step: String },
    Release(String),
    Health { agent: String, ok: bool, offline_after: i64 },
    Capabilities { agent: String, capabilities: Value },
}

#[derive(Debug, Default)]
struct MemoryRegistry {
    agents: Mutex<Vec<AgentInfo>>,
    calls: Mutex<Vec<Call>>,
}

impl MemoryRegistry {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }
}

impl AgentRegistry for MemoryRegistry {
    async fn agents(&self) -> Result<Vec<AgentInfo>, PortError> {
        Ok(self.agents.lock().expect("lock").clone())
    }

    async fn record_health(&self, agent_id: &str, ok: bool, offline_after: i64) -> Result<AgentInfo, PortError> {
        self.calls.lock().expect("lock").push(Call::Health { agent: agent_id.into(), ok, offline_after });
        let mut agents = self.agents.lock().expect("lock");
        let agent = agents.iter_mut().find(|a| a.agent_id == agent_id).expect("a registered agent");
        agent.consecutive_failures = if ok { 0 } else { agent.consecutive_failures + 1 };
        agent.online = agent.consecutive_failures < offline_after;
        agent.circuit_open_at = (!agent.online).then(chrono::Utc::now);
        Ok(agent.clone())
    }

    async fn set_capabilities(&self, agent_id: &str, capabilities: Value) -> Result<(), PortError> {
        self.calls
            .lock()
            .expect("lock")
            .push(Call::Capabilities { agent: agent_id.into(), capabilities: capabilities.clone() });
        let mut agents = self.agents.lock().expect("lock");
        let agent = agents.iter_mut().find(|a| a.agent_id == agent_id).expect("a registered agent");
        agent.capabilities = capabilities;
        Ok(())
    }

    async fn acquire_lease(
        &self,
        resource_key: &str,
        limit: i64,
        holder: LeaseHolder<'_>,
        _ttl: chrono::Duration,
    ) -> Result<Option<Lease>, PortError> {
        let mut calls = self.calls.lock().expect("lock");
        calls.push(Call::Acquire {
            resource: resource_key.into(),
            limit,
            run: holder.run_id.into(),
            node: holder.node_id.into(),
            step: holder.step_id.into(),
        });
        Ok(Some(Lease { lease_id: format!("lease-{}", calls.len()) }))
    }

    async fn renew_lease(&self, _lease: &Lease, _ttl: chrono::Duration) -> Result<bool, PortError> {
        Ok(true)
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), PortError> {
        self.calls.lock().expect("lock").push(Call::Release(lease.lease_id.clone()));
        Ok(())
    }

    fn is_leader(&self) -> bool {
        true
    }
}

type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

/// An agent answering LangOrch's envelope, or HTTP 503 for the action `down`.
async fn agent() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/execute",
            post(
                |axum::extract::State(seen): axum::extract::State<Seen>,
                 headers: HeaderMap,
                 axum::Json(body): axum::Json<Value>| async move {
                    seen.lock().expect("lock").push((headers, body.clone()));
                    match body["action"].as_str() {
                        Some("down") => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({}))),
                        _ => (
                            StatusCode::OK,
                            axum::Json(json!({"status": "success", "result": {"echo": body["params"]}})),
                        ),
                    }
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/"), seen)
}

fn info(id: &str, base_url: &str, online: bool) -> AgentInfo {
    AgentInfo {
        agent_id: id.into(),
        channel: "web".into(),
        base_url: base_url.into(),
        online,
        concurrency_limit: 2,
        resource_key: format!("res-{id}"),
        pool_id: None,
        capabilities: json!(["*"]),
        consecutive_failures: 0,
        circuit_open_at: None,
    }
}

fn req(action: &str, step_id: &str) -> AgentRequest {
    crate::agent_request("WEB", action, json!({"q": 1}), step_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_goes_through_the_registry_port() {
    let (base, seen) = agent().await;
    let registry = Arc::new(MemoryRegistry::default());
    *registry.agents.lock().expect("lock") =
        vec![info("a-offline", "http://127.0.0.1:9", false), info("a-online", &base, true)];
    let agents = RegistryAgents::new(registry.clone(), Egress::new(&["127.0.0.1".to_owned()]).expect("valid"))
        .with_offline_after(2);

    let out = agents.execute(req("lookup", "s1")).await.expect("answered");
    assert_eq!(out, json!({"echo": {"q": 1}}), "the online agent of the channel (matched case-insensitively)");
    {
        let seen = seen.lock().expect("lock");
        let (headers, body) = &seen[0];
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(
            [header("x-run-id"), header("x-node-id"), header("x-step-id"), header("idempotency-key")],
            [Some("run-1".into()), Some("n1".into()), Some("s1".into()), Some("key-s1".into())]
        );
        assert_eq!(
            *body,
            json!({"action": "lookup", "params": {"q": 1}, "run_id": "run-1", "node_id": "n1", "step_id": "s1"})
        );
    }
    let acquire = Call::Acquire {
        resource: "res-a-online".into(),
        limit: 2,
        run: "run-1".into(),
        node: "n1".into(),
        step: "s1".into(),
    };
    assert_eq!(registry.calls(), [acquire, Call::Release("lease-1".into())], "a lease held for the call only");

    // Two 5xx in a row take the agent offline through the port; then no agent is left for the channel.
    for step in ["s2", "s3"] {
        let e = agents.execute(req("down", step)).await.expect_err("503");
        assert_eq!(e.http_status, Some(503), "{e:?}");
    }
    let health: Vec<Call> = registry.calls().into_iter().filter(|c| matches!(c, Call::Health { .. })).collect();
    let failed = Call::Health { agent: "a-online".into(), ok: false, offline_after: 2 };
    assert_eq!(health, [failed.clone(), failed]);
    let releases = registry.calls().iter().filter(|c| matches!(c, Call::Release(_))).count();
    assert_eq!(releases, 3, "every lease given back, whatever the outcome");
    let e = agents.execute(req("lookup", "s4")).await.expect_err("none online");
    assert_eq!(e.kind, ErrorKind::AgentUnavailable);
    assert!(e.message.contains("No online agent for channel='WEB'"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_at_a_closed_address_is_refused_without_a_call_or_a_failure_counted() {
    let (base, seen) = agent().await;
    let registry = Arc::new(MemoryRegistry::default());
    // Registered while the setting allowed it; the setting no longer does.
    *registry.agents.lock().expect("lock") = vec![info("a", &base, true)];
    let agents = RegistryAgents::new(registry.clone(), Egress::default());
    for step in ["s1", "s2", "s3"] {
        let e = agents.execute(req("lookup", step)).await.expect_err("refused");
        assert!(e.is_refused(), "{e:?}");
        assert!(
            e.message.contains(&format!("egress to {}", base.trim_start_matches("http://").trim_end_matches('/'))),
            "{e:?}"
        );
        assert!(e.message.contains("egress_allow (CKP_EGRESS_ALLOW)"), "{e:?}");
    }
    assert!(seen.lock().expect("lock").is_empty(), "the agent was never called");
    assert!(
        !registry.calls().iter().any(|c| matches!(c, Call::Health { .. })),
        "a refusal is not the agent's failure: its circuit stays closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_agents_make_a_step_wait_and_one_back_online_is_asked_its_capabilities() {
    use ckp_connectors::agents::{HealthConfig, check_health_once};
    use ckp_engine::effects::AgentReply;
    let app = Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route("/capabilities", axum::routing::get(|| async { axum::Json(json!({"capabilities": ["lookup"]})) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // Registered while unreachable: offline, its capabilities unknown.
    let registry = Arc::new(MemoryRegistry::default());
    let mut offline = info("a", &base, false);
    offline.capabilities = json!([]);
    *registry.agents.lock().expect("lock") = vec![offline];
    let loopback = || Egress::new(&["127.0.0.1".to_owned()]).expect("valid");
    let agents = RegistryAgents::new(registry.clone(), loopback());

    // No agent can take the step now, but one may once online: the engine is told to wait (dispatch); a plain
    // execute has no wait and fails.
    match agents.dispatch(req("lookup", "s1")).await {
        Ok(AgentReply::NoneOnline { message }) => {
            assert!(
                message.contains("No online agent for channel='WEB'") && message.contains("a (offline)"),
                "{message}"
            );
        }
        other => panic!("expected a wait, got {other:?}"),
    }
    let e = agents.execute(req("lookup", "s1")).await.expect_err("none online");
    assert_eq!(e.kind, ErrorKind::AgentUnavailable);

    // A health check passes: online, and its capabilities are asked again and stored.
    let client = ckp_connectors::http::LazyClient::guarded(loopback());
    assert_eq!(check_health_once(registry.as_ref(), &client, HealthConfig::default()).await, 1);
    let probed = json!([{"name": "lookup", "type": "tool", "is_batch": false}]);
    assert!(
        registry.calls().contains(&Call::Capabilities { agent: "a".into(), capabilities: probed.clone() }),
        "{:?}",
        registry.calls()
    );
    assert_eq!(registry.agents.lock().expect("lock")[0].capabilities, probed);
    // Online now, but not capable of this action: waiting would not help, the step fails at once.
    let e = agents.dispatch(req("other", "s2")).await.expect_err("not capable");
    assert_eq!(e.kind, ErrorKind::AgentUnavailable);
}

/// Sealed values by name.
#[derive(Debug, Default)]
struct MemorySecrets(HashMap<String, String>);

impl SealedSecrets for MemorySecrets {
    fn sealed<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>, PortError>> {
        Box::pin(async move { Ok(self.0.get(name).cloned()) })
    }
}

#[tokio::test]
async fn the_db_provider_reads_sealed_values_through_its_port() {
    let key = "00".repeat(32);
    let seal = SealKey::parse(&key).expect("key");
    let mut sealed = HashMap::new();
    sealed.insert("api".to_owned(), seal.seal("api", "db-v4lue"));
    // Sealed for another name: the name is bound into the seal, so moving a value to another name breaks it.
    sealed.insert("moved".to_owned(), seal.seal("api", "db-v4lue"));
    let settings =
        SecretsSettings { provider: "db".into(), encryption_key: Some(key.into()), ..SecretsSettings::default() };
    let m = SecretManager::new(settings, "UNUSED_").expect("settings").with_sealed(Arc::new(MemorySecrets(sealed)));

    assert_eq!(m.lookup(None, "api").await, Ok(Some("db-v4lue".into())));
    assert_eq!(m.lookup(None, "absent").await, Ok(None));
    let e = m.lookup(None, "moved").await.expect_err("sealed for another name");
    assert!(!e.message.contains("db-v4lue"), "{e:?}");
    let env = SecretsSpec {
        provider: SecretProvider::Env,
        references: Default::default(),
        settings: Default::default(),
        cache_ttl_ms: Some(0),
    };
    assert_eq!(m.lookup(Some(&env), "api").await, Ok(Some("db-v4lue".into())), "ckp's store first for every provider");
}
