//! Secrets providers against real servers: a Vault-like server (KV v1/v2, token and AppRole), moto's AWS Secrets
//! Manager, and the cache's behaviour.

use std::collections::BTreeMap;

use ckp_connectors::egress::Egress;
use ckp_connectors::secrets::{SecretManager, SecretsSettings};
use ckp_core::procedure::{SecretProvider, SecretsSpec};
use serde_json::{Value, json};

use crate::peers::{Peer, moto, python};

const ROOT: &str = "root-t0ken-for-tests";
const ROLE_ID: &str = "role-1";
const SECRET_ID: &str = "approle-s3cret-id";

async fn vault(lease_seconds: u32) -> Peer {
    python("vault_server.py", &[ROOT, ROLE_ID, SECRET_ID, &lease_seconds.to_string()]).await
}

async fn vault_write(peer: &Peer, path: &str, body: Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/{path}", peer.base))
        .header("X-Vault-Token", ROOT)
        .json(&body)
        .send()
        .await
        .expect("write");
    assert!(resp.status().is_success(), "{}", resp.status());
}

async fn vault_stats(peer: &Peer) -> Value {
    let http = reqwest::Client::new();
    let resp = http.get(format!("{}/v1/sys/test/stats", peer.base)).header("X-Vault-Token", ROOT).send().await;
    resp.expect("stats").json().await.expect("json")
}

fn spec(provider: SecretProvider, settings: &[(&str, &str)], references: &[(&str, &str)]) -> SecretsSpec {
    SecretsSpec {
        provider,
        references: references.iter().map(|(a, k)| ((*a).to_owned(), (*k).to_owned())).collect(),
        settings: settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        cache_ttl_ms: Some(0),
    }
}

#[tokio::test]
async fn vault_kv2_and_kv1_with_a_token() {
    let peer = vault(3600).await;
    vault_write(&peer, "secret/data/langorch/api_key", json!({"data": {"value": "v-one-value"}})).await;
    vault_write(&peer, "secret/data/langorch/db", json!({"data": {"username": "app", "password": "p4ss-word"}})).await;
    vault_write(&peer, "kv/apps/token", json!({"token": "kv1-t0ken"})).await;
    let mut settings = SecretsSettings { provider: "vault".into(), cache_ttl_ms: 0, ..SecretsSettings::default() };
    settings.vault.vault_url.clone_from(&peer.base);
    settings.vault.vault_token = Some(ROOT.into());
    let m = SecretManager::new(settings, "UNUSED_").expect("settings");

    assert_eq!(m.lookup(None, "api_key").await, Ok(Some("v-one-value".into())), "field `value`");
    assert_eq!(m.lookup(None, "db#password").await, Ok(Some("p4ss-word".into())), "name#field");
    let whole: Value = serde_json::from_str(&m.lookup(None, "db").await.expect("ok").expect("found")).expect("json");
    assert_eq!(whole, json!({"username": "app", "password": "p4ss-word"}), "several fields: all of them as JSON");
    assert_eq!(m.lookup(None, "absent").await, Ok(None));
    let e = m.lookup(None, "db#nope").await.expect_err("no such field");
    assert!(e.message.contains("no field `nope`") && !e.message.contains("p4ss"), "{e:?}");
    let e = m.lookup(None, "../../sys/x").await.expect_err("a key cannot leave the prefix");
    assert!(e.message.contains("not a valid Vault secret path"), "{e:?}");

    // A procedure's settings: KV v1 at another mount, its own prefix, an alias.
    let kv1 = spec(
        SecretProvider::Vault,
        &[("mount_point", "kv"), ("kv_version", "1"), ("path_prefix", "apps")],
        &[("app_token", "token")],
    );
    assert_eq!(m.lookup(Some(&kv1), "app_token").await, Ok(Some("kv1-t0ken".into())));
}

#[tokio::test]
async fn vault_approle_logs_in_again_after_a_403_and_on_expiry() {
    let peer = vault(1).await;
    vault_write(&peer, "secret/data/langorch/k", json!({"data": {"value": "approle-value"}})).await;
    let mut settings =
        SecretsSettings { provider: "hashicorp_vault".into(), cache_ttl_ms: 0, ..SecretsSettings::default() };
    settings.vault.vault_url.clone_from(&peer.base);
    settings.vault.role_id = Some(ROLE_ID.into());
    settings.vault.secret_id = Some(SECRET_ID.into());
    let m = SecretManager::new(settings.clone(), "UNUSED_").expect("settings");
    assert_eq!(m.lookup(None, "k").await, Ok(Some("approle-value".into())));
    assert_eq!(m.lookup(None, "k").await, Ok(Some("approle-value".into())));
    assert_eq!(vault_stats(&peer).await["logins"], 1, "the token is reused while valid");

    // Revoked tokens: Vault answers 403, the provider logs in again and the read succeeds.
    let revoke = reqwest::Client::new().post(format!("{}/v1/sys/test/revoke", peer.base)).header("X-Vault-Token", ROOT);
    assert!(revoke.send().await.expect("revoke").status().is_success());
    assert_eq!(m.lookup(None, "k").await, Ok(Some("approle-value".into())));
    let stats = vault_stats(&peer).await;
    assert_eq!((stats["logins"].as_u64(), stats["denied"].as_u64()), (Some(2), Some(1)));

    // After the lease (1 s) the token is renewed before use: no 403 this time.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(m.lookup(None, "k").await, Ok(Some("approle-value".into())));
    let stats = vault_stats(&peer).await;
    assert_eq!((stats["logins"].as_u64(), stats["denied"].as_u64()), (Some(3), Some(1)));

    // A wrong secret id: a clear error that does not repeat it.
    settings.vault.secret_id = Some("wrong-s3cret-id".into());
    let m = SecretManager::new(settings, "UNUSED_").expect("settings");
    let e = m.lookup(None, "k").await.expect_err("login fails");
    assert!(e.message.contains("AppRole login failed: HTTP 400") && !e.message.contains("wrong-s3cret"), "{e:?}");
}

#[tokio::test]
async fn values_are_cached_for_the_ttl_and_failures_are_not() {
    let peer = vault(3600).await;
    let mut settings =
        SecretsSettings { provider: "vault".into(), cache_ttl_ms: 3_600_000, ..SecretsSettings::default() };
    settings.vault.vault_url.clone_from(&peer.base);
    settings.vault.vault_token = Some(ROOT.into());
    let m = SecretManager::new(settings, "UNUSED_").expect("settings");
    assert_eq!(m.lookup(None, "rotating").await, Ok(None), "absent");
    vault_write(&peer, "secret/data/langorch/rotating", json!({"data": {"value": "first-value"}})).await;
    assert_eq!(m.lookup(None, "rotating").await, Ok(Some("first-value".into())), "a miss is not cached");
    vault_write(&peer, "secret/data/langorch/rotating", json!({"data": {"value": "second-value"}})).await;
    assert_eq!(m.lookup(None, "rotating").await, Ok(Some("first-value".into())), "cached");
    let uncached = spec(SecretProvider::Vault, &[], &[]);
    assert_eq!(m.lookup(Some(&uncached), "rotating").await, Ok(Some("second-value".into())), "cache_ttl 0");
    m.invalidate();
    assert_eq!(m.lookup(None, "rotating").await, Ok(Some("second-value".into())), "after invalidation");
    let reads = vault_stats(&peer).await["reads"].as_u64();
    assert_eq!(reads, Some(4));
}

async fn moto_create(peer: &Peer, name: &str, value: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{}/", peer.base))
        .header("Content-Type", "application/x-amz-json-1.1")
        .header("X-Amz-Target", "secretsmanager.CreateSecret")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(json!({"Name": name, "SecretString": value}).to_string())
        .send()
        .await
        .expect("CreateSecret");
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap_or_default());
}

#[tokio::test]
async fn aws_secrets_manager_through_moto() {
    let peer = moto().await;
    moto_create(&peer, "plain", "aws-plain-value").await;
    moto_create(&peer, "prod/db", r#"{"user": "app", "password": "aws-pw-123"}"#).await;
    let mut settings =
        SecretsSettings { provider: "aws_secrets_manager".into(), cache_ttl_ms: 0, ..SecretsSettings::default() };
    settings.aws.endpoint_url = Some(peer.base.clone());
    settings.aws.aws_access_key_id = Some("testing".into());
    settings.aws.aws_secret_access_key = Some("testing-secret".into());
    let m = SecretManager::new(settings, "UNUSED_").expect("settings");
    assert_eq!(m.lookup(None, "plain").await, Ok(Some("aws-plain-value".into())));
    assert_eq!(m.lookup(None, "prod/db#password").await, Ok(Some("aws-pw-123".into())));
    assert_eq!(m.lookup(None, "absent").await, Ok(None), "ResourceNotFoundException");
    let with_field = spec(SecretProvider::Aws, &[("secret_field", "user")], &[("db_user", "prod/db")]);
    assert_eq!(m.lookup(Some(&with_field), "db_user").await, Ok(Some("app".into())));
    let e = m.lookup(None, "plain#x").await.expect_err("not JSON");
    assert!(e.message.contains("not a JSON object") && !e.message.contains("aws-plain"), "{e:?}");

    // A procedure pointing at another endpoint: that address follows the egress policy (the server's own endpoint
    // does not), and it does not get the server's key pair.
    let elsewhere = spec(SecretProvider::Aws, &[("endpoint_url", "http://127.0.0.1:9")], &[]);
    let e = m.lookup(Some(&elsewhere), "plain").await.expect_err("refused");
    assert!(e.message.contains("egress to 127.0.0.1:9 is refused") && e.message.contains("egress_allow"), "{e:?}");
    let m = m.with_egress(Egress::new(&["127.0.0.1".to_owned()]).expect("valid"));
    let e = m.lookup(Some(&elsewhere), "plain").await.expect_err("no credentials");
    assert!(e.message.contains("aws needs credentials"), "{e:?}");
}

#[tokio::test]
async fn env_provider_with_a_procedure_prefix() {
    let m =
        SecretManager::new(SecretsSettings::default(), "IT_SECRET_").expect("settings").with_env_lookup(|k| match k {
            "IT_SECRET_API" => Some("env-value".into()),
            "IT_SECRET_OTHER_TOKEN" => Some("other-value".into()),
            "OUTSIDE" | "CKP_LLM_API_KEY" => Some("outside".into()),
            _ => None,
        });
    assert_eq!(m.lookup(None, "api").await, Ok(Some("env-value".into())), "upper-cased under the server's prefix");
    // A procedure's prefix is taken under the server's; an empty one cannot reach anything else.
    let s = spec(SecretProvider::Env, &[("prefix", "OTHER_")], &[("tok", "token")]);
    assert_eq!(m.lookup(Some(&s), "tok").await, Ok(Some("other-value".into())));
    let s = spec(SecretProvider::Env, &[("prefix", "IT_SECRET_OTHER_")], &[("tok", "token")]);
    assert_eq!(m.lookup(Some(&s), "tok").await, Ok(Some("other-value".into())), "already under it");
    let empty = spec(SecretProvider::Env, &[("prefix", "")], &[]);
    assert_eq!(m.lookup(Some(&empty), "ckp_llm_api_key").await, Ok(None));
    assert_eq!(m.lookup(Some(&empty), "outside").await, Ok(None));
    assert_eq!(m.lookup(None, "nope").await, Ok(None));
    let db = spec(SecretProvider::Database, &[], &[]);
    let e = m.lookup(Some(&db), "x").await.expect_err("no store");
    assert!(e.message.contains("needs ckp serve's store"), "{e:?}");
}

#[tokio::test]
async fn azure_key_vault_with_a_client_credentials_token() {
    let peer = python("azure_server.py", &["tenant-1", "client-1", "client-s3cret", "api-key=azure-value-1"]).await;
    let mut settings =
        SecretsSettings { provider: "azure_key_vault".into(), cache_ttl_ms: 0, ..SecretsSettings::default() };
    settings.azure.vault_url = Some(peer.base.clone());
    settings.azure.authority_url.clone_from(&peer.base);
    settings.azure.tenant_id = Some("tenant-1".into());
    settings.azure.client_id = Some("client-1".into());
    settings.azure.client_secret = Some("client-s3cret".into());
    let m = SecretManager::new(settings.clone(), "UNUSED_").expect("settings");
    assert_eq!(m.lookup(None, "api_key").await, Ok(Some("azure-value-1".into())), "`_` becomes `-`");
    assert_eq!(m.lookup(None, "absent").await, Ok(None));
    let stats = |p: &Peer| {
        let url = format!("{}/test/stats", p.base);
        async move { reqwest::get(url).await.expect("stats").json::<Value>().await.expect("json") }
    };
    assert_eq!(stats(&peer).await["tokens"], 1, "the token is reused");
    // A revoked token: 401, a new token, success.
    reqwest::Client::new().post(format!("{}/test/revoke", peer.base)).send().await.expect("revoke");
    assert_eq!(m.lookup(None, "api_key").await, Ok(Some("azure-value-1".into())));
    assert_eq!(
        (stats(&peer).await["tokens"].as_u64(), stats(&peer).await["unauthorized"].as_u64()),
        (Some(2), Some(1))
    );
    let e = m.lookup(None, "bad name!").await.expect_err("invalid name");
    assert!(e.message.contains("not a valid Key Vault secret name"), "{e:?}");

    settings.azure.client_secret = Some("wrong-s3cret".into());
    let m = SecretManager::new(settings, "UNUSED_").expect("settings");
    let e = m.lookup(None, "api_key").await.expect_err("token refused");
    assert!(e.message.contains("azure token request failed: HTTP 401") && !e.message.contains("wrong-s3cret"), "{e:?}");
}
