//! [`Oidc`] against a fake provider (a [`Transport`] answering from memory and signing ID tokens with a P-256
//! key): the client's credentials as discovery asks, the userinfo claims, the role mapping, a refused code, and
//! a key rotation.

use std::collections::BTreeMap;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::json;

use super::*;

const ISSUER: &str = "https://idp.example";

/// A token request as the fake provider saw it: the URL, the form and the client's credentials.
type TokenRequest = (String, Vec<(&'static str, String)>, String);

#[derive(Debug)]
struct Fake {
    key: EcdsaKeyPair,
    kid: Mutex<String>,
    auth_methods: Value,
    userinfo: Value,
    token_status: u16,
    /// (url, form, auth) of each token request.
    seen: Mutex<Vec<TokenRequest>>,
    jwks_reads: Mutex<u32>,
}

impl Fake {
    fn new(auth_methods: Value, userinfo: Value) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("key");
        Fake {
            key,
            kid: Mutex::new("k1".into()),
            auth_methods,
            userinfo,
            token_status: 200,
            seen: Mutex::default(),
            jwks_reads: Mutex::new(0),
        }
    }

    fn kid(&self) -> String {
        self.kid.lock().map(|k| k.clone()).unwrap_or_default()
    }

    fn id_token(&self, nonce: &str) -> String {
        let now = chrono::Utc::now().timestamp();
        let header = json!({"alg": "ES256", "kid": self.kid()});
        let claims = json!({"iss": ISSUER, "aud": "ckp", "sub": "u-42", "nonce": nonce, "iat": now, "exp": now + 300,
            "preferred_username": "ann"});
        let signed = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig = self.key.sign(&SystemRandom::new(), signed.as_bytes()).expect("signs");
        format!("{signed}.{}", B64.encode(sig.as_ref()))
    }
}

impl Transport for Fake {
    fn get<'a>(&'a self, url: &'a str, bearer: Option<&'a str>) -> BoxFuture<'a, Result<Answer, OidcError>> {
        Box::pin(async move {
            let body = match url {
                "https://idp.example/.well-known/openid-configuration" => {
                    let mut d = json!({"issuer": ISSUER, "authorization_endpoint": "https://idp.example/auth?tenant=t",
                        "token_endpoint": "https://idp.example/token", "jwks_uri": "https://idp.example/jwks",
                        "userinfo_endpoint": "https://idp.example/me"});
                    if !self.auth_methods.is_null() {
                        d["token_endpoint_auth_methods_supported"] = self.auth_methods.clone();
                    }
                    d
                }
                "https://idp.example/jwks" => {
                    if let Ok(mut n) = self.jwks_reads.lock() {
                        *n += 1;
                    }
                    let point = self.key.public_key().as_ref();
                    json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": self.kid(), "use": "sig",
                        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])}]})
                }
                "https://idp.example/me" if bearer == Some("at-1") => self.userinfo.clone(),
                _ => return Ok(Answer { status: 404, body: Value::Null }),
            };
            Ok(Answer { status: 200, body })
        })
    }

    fn post_form<'a>(
        &'a self,
        url: &'a str,
        form: Vec<(&'static str, String)>,
        auth: ClientAuth<'a>,
    ) -> BoxFuture<'a, Result<Answer, OidcError>> {
        Box::pin(async move {
            let code = form.iter().find(|(k, _)| *k == "code").map(|(_, v)| v.clone()).unwrap_or_default();
            if let Ok(mut seen) = self.seen.lock() {
                seen.push((url.to_owned(), form, format!("{auth:?}")));
            }
            if self.token_status != 200 {
                return Ok(Answer { status: self.token_status, body: json!({"error": "invalid_grant"}) });
            }
            // The test's codes are the nonce the ID token must carry.
            Ok(Answer { status: 200, body: json!({"access_token": "at-1", "id_token": self.id_token(&code)}) })
        })
    }
}

fn oidc(fake: Arc<Fake>, secret: Option<&str>) -> Oidc {
    let config = OidcConfig {
        issuer: format!("{ISSUER}/"),
        client_id: "ckp".into(),
        client_secret: secret.map(Secret::from),
        redirect_uri: "https://ckp.example/api/auth/sso/callback".into(),
        scopes: "openid profile email".into(),
        role_claim: "groups".into(),
        role_mapping: BTreeMap::from([("ops".into(), Role::Operator), ("admins".into(), Role::Admin)]),
        default_role: Some(Role::Viewer),
    };
    Oidc::new(config, StateKey::new(b"k".to_vec()), fake)
}

fn pending(nonce: &str) -> Pending {
    Pending { nonce: nonce.into(), ..Pending::new("/".into(), chrono::Utc::now()) }
}

#[tokio::test]
async fn the_authorization_url_carries_the_client_state_nonce_and_pkce_challenge() {
    let client = oidc(Arc::new(Fake::new(Value::Null, Value::Null)), Some("s"));
    let p = pending("n1");
    let url = client.authorization_url(&p).await.expect("url");
    let url = reqwest::Url::parse(&url).expect("a URL");
    let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(url.path(), "/auth");
    assert_eq!(q["tenant"], "t", "the endpoint's own query is kept");
    assert_eq!((q["response_type"].as_str(), q["client_id"].as_str()), ("code", "ckp"));
    assert_eq!(q["redirect_uri"], "https://ckp.example/api/auth/sso/callback");
    assert_eq!((q["scope"].as_str(), q["code_challenge_method"].as_str()), ("openid profile email", "S256"));
    assert_eq!((&q["state"], &q["nonce"], &q["code_challenge"]), (&p.state, &p.nonce, &p.challenge()));
    assert!(!url.as_str().contains(&p.verifier), "the verifier stays in the cookie");
}

#[tokio::test]
async fn a_sign_in_verifies_the_id_token_adds_userinfo_and_maps_the_highest_role() {
    let fake = Arc::new(Fake::new(
        json!(["client_secret_basic", "client_secret_post"]),
        json!({"sub": "u-42", "email": "ann@example.com", "groups": ["ops", "admins", "unknown"]}),
    ));
    let client = oidc(fake.clone(), Some("s3cret:+"));
    let identity = client.sign_in("n1", &pending("n1")).await.expect("signs in");
    assert_eq!(identity.subject, "u-42");
    assert_eq!((identity.text("preferred_username"), identity.text("email")), (Some("ann"), Some("ann@example.com")));
    assert_eq!(identity.role, Some(Role::Admin), "the highest mapped value wins");
    let seen = fake.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let (url, form, auth) = &seen[0];
    assert_eq!(url, "https://idp.example/token");
    assert_eq!(auth, r#"Basic("ckp", "s3cret:+")"#);
    assert!(form.iter().any(|(k, v)| *k == "code_verifier" && !v.is_empty()));
    assert!(!form.iter().any(|(k, _)| *k == "client_secret"), "basic: the secret is not in the form");
    // The nonce of another sign-in: refused.
    let err = client.sign_in("n1", &pending("n2")).await.unwrap_err();
    assert!(matches!(err, OidcError::IdToken(Refusal::Nonce)), "{err}");
}

#[tokio::test]
async fn post_credentials_a_refused_code_and_another_subjects_userinfo() {
    let fake = Arc::new(Fake::new(json!(["client_secret_post"]), json!({"sub": "someone-else"})));
    let client = oidc(fake.clone(), Some("s"));
    let err = client.sign_in("n1", &pending("n1")).await.unwrap_err();
    assert!(matches!(err, OidcError::UserinfoSubject), "{err}");
    let seen = fake.seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(seen[0].2, "Post");
    assert!(seen[0].1.iter().any(|(k, v)| *k == "client_secret" && v == "s"));
    let refusing = Arc::new(Fake { token_status: 400, ..Fake::new(Value::Null, Value::Null) });
    let err = oidc(refusing, Some("s")).sign_in("n1", &pending("n1")).await.unwrap_err();
    assert!(matches!(err, OidcError::Exchange { status: 400, error: Some(ref e) } if e == "invalid_grant"), "{err}");
}

#[tokio::test]
async fn the_default_role_applies_without_a_mapped_value_and_roles_stand_in_for_groups() {
    let client = oidc(Arc::new(Fake::new(Value::Null, Value::Null)), None);
    let claims = |v: Value| v.as_object().cloned().unwrap_or_default();
    assert_eq!(client.role_of(&claims(json!({"groups": ["unknown"]}))), Some(Role::Viewer));
    assert_eq!(client.role_of(&claims(json!({"groups": "ops"}))), Some(Role::Operator));
    assert_eq!(client.role_of(&claims(json!({"roles": ["admins"]}))), Some(Role::Admin));
    let none = Oidc { config: OidcConfig { default_role: None, ..client.config.clone() }, ..client };
    assert_eq!(none.role_of(&claims(json!({}))), None);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_again_once() {
    let fake = Arc::new(Fake::new(Value::Null, json!({"sub": "u-42"})));
    let client = oidc(fake.clone(), None);
    client.sign_in("n1", &pending("n1")).await.expect("signs in");
    assert_eq!(fake.jwks_reads.lock().map(|n| *n).unwrap_or_default(), 1);
    // Cached: a second sign-in reads no keys.
    client.sign_in("n2", &pending("n2")).await.expect("signs in");
    assert_eq!(fake.jwks_reads.lock().map(|n| *n).unwrap_or_default(), 1);
    // The provider rotates its key; the cache is fresh (under 10 s), so the unknown kid is refused, not refetched.
    if let Ok(mut kid) = fake.kid.lock() {
        *kid = "k2".into();
    }
    let err = client.sign_in("n3", &pending("n3")).await.unwrap_err();
    assert!(matches!(err, OidcError::IdToken(Refusal::NoKey(_))), "{err}");
    // Once the cache is older than the refresh floor, the new key is read.
    if let Some((at, _)) = client.jwks.lock().await.as_mut() {
        *at = at.checked_sub(JWKS_REFRESH_MIN).unwrap_or(*at);
    }
    client.sign_in("n4", &pending("n4")).await.expect("signs in with the new key");
    assert_eq!(fake.jwks_reads.lock().map(|n| *n).unwrap_or_default(), 2);
}
