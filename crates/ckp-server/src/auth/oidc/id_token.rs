//! ID token checks: the JWS signature with a key of the provider's JWKS (RS256/384/512, PS256/384/512, ES256,
//! ES384, checked with `ring`), then the claims OpenID Connect Core §3.1.3.7 requires: `iss` is the provider's
//! issuer, `aud` holds ckp's client id (and `azp` is it when present), `exp` is ahead and `iat` not in the future
//! (one minute of clock skew either way), `nonce` is the one this browser's sign-in sent, `sub` is present.
//!
//! Pure: no I/O; the caller fetches the keys and retries with fresh ones when no key matches ([`Refusal::NoKey`]).
//! `alg: none`, HMAC algorithms and keys of another type than the algorithm are refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Clock skew allowed between ckp and the provider, in seconds.
const LEEWAY_S: i64 = 60;

/// A provider's signing keys (its `jwks_uri` document).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Jwks {
    /// The keys; entries ckp cannot use are skipped when looked up.
    #[serde(default)]
    pub keys: Vec<Jwk>,
}

/// One JSON Web Key (only the members signature checks read).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Jwk {
    /// `RSA` or `EC`.
    #[serde(default)]
    pub kty: String,
    /// The key id tokens name in their header.
    pub kid: Option<String>,
    /// `sig` (or absent) for signing keys.
    #[serde(rename = "use")]
    pub use_: Option<String>,
    /// The algorithm the key is restricted to, if any.
    pub alg: Option<String>,
    /// RSA modulus (base64url).
    pub n: Option<String>,
    /// RSA exponent (base64url).
    pub e: Option<String>,
    /// EC curve (`P-256`, `P-384`).
    pub crv: Option<String>,
    /// EC x coordinate (base64url).
    pub x: Option<String>,
    /// EC y coordinate (base64url).
    pub y: Option<String>,
}

/// What an ID token must show.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The provider's `issuer` (from its discovery document).
    pub issuer: &'a str,
    /// ckp's client id.
    pub client_id: &'a str,
    /// The nonce this sign-in sent.
    pub nonce: &'a str,
    /// The time to check `exp` and `iat` against.
    pub now: DateTime<Utc>,
}

/// Why an ID token is refused (logged; the caller sees only "Invalid ID token" or "Invalid ID token nonce").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not three base64url parts of JSON.
    #[error("the ID token is malformed")]
    Malformed,
    /// An algorithm ckp does not accept (`none`, HMAC, unknown).
    #[error("the ID token is signed with {0:?}, which is not accepted")]
    Algorithm(String),
    /// No key of the JWKS fits the token's `kid` and algorithm (the caller refreshes the keys once).
    #[error("no key of the provider's JWKS fits the ID token (kid {0:?})")]
    NoKey(Option<String>),
    /// The signature does not verify with any fitting key.
    #[error("the ID token's signature does not verify")]
    Signature,
    /// A claim is missing or wrong.
    #[error("the ID token's {0} is missing or wrong")]
    Claim(&'static str),
    /// The nonce is not this sign-in's.
    #[error("the ID token's nonce is not this sign-in's")]
    Nonce,
}

/// The key type a JWS `alg` needs, for the algorithms ckp accepts.
fn key_type(alg: &str) -> Option<&'static str> {
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => Some("RSA"),
        "ES256" | "ES384" => Some("EC"),
        _ => None,
    }
}

/// base64url, with or without padding (some providers pad their JWK members).
fn b64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.trim_end_matches('=')).ok()
}

/// Whether `key` verifies `signature` over `message` with `alg`'s algorithm.
fn verifies(key: &Jwk, alg: &str, message: &[u8], sig: &[u8]) -> bool {
    match key.kty.as_str() {
        "RSA" => {
            let (Some(n), Some(e)) = (key.n.as_deref().and_then(b64), key.e.as_deref().and_then(b64)) else {
                return false;
            };
            // ring wants minimal big-endian integers; some providers keep a leading zero byte.
            let n = strip_zeros(&n);
            let e = strip_zeros(&e);
            // RSA algorithms share the components; the parameters decide PKCS#1 v1.5 or PSS and the hash.
            let params: &'static signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return false,
            };
            RsaPublicKeyComponents { n, e }.verify(params, message, sig).is_ok()
        }
        "EC" => {
            let (curve, verification): (_, &'static signature::EcdsaVerificationAlgorithm) = match alg {
                "ES256" => ("P-256", &signature::ECDSA_P256_SHA256_FIXED),
                "ES384" => ("P-384", &signature::ECDSA_P384_SHA384_FIXED),
                _ => return false,
            };
            if key.crv.as_deref() != Some(curve) {
                return false;
            }
            let (Some(x), Some(y)) = (key.x.as_deref().and_then(b64), key.y.as_deref().and_then(b64)) else {
                return false;
            };
            // The uncompressed point ring reads: 0x04 || x || y.
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(verification, point).verify(message, sig).is_ok()
        }
        _ => false,
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
    &bytes[start..]
}

/// The claims of `token` when its signature verifies with a key of `jwks` and its claims are what `expected` says.
pub fn verify(token: &str, jwks: &Jwks, expected: Expected<'_>) -> Result<Map<String, Value>, Refusal> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let header: Map<String, Value> =
        serde_json::from_slice(&b64(header).ok_or(Refusal::Malformed)?).map_err(|_| Refusal::Malformed)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or_default().to_owned();
    let kty = key_type(&alg).ok_or_else(|| Refusal::Algorithm(alg.clone()))?;
    let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
    let candidates: Vec<&Jwk> = jwks
        .keys
        .iter()
        .filter(|k| k.kty == kty)
        .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == alg))
        .filter(|k| kid.is_none() || k.kid == kid)
        .collect();
    if candidates.is_empty() {
        return Err(Refusal::NoKey(kid));
    }
    let sig = b64(sig).ok_or(Refusal::Malformed)?;
    let (message, _) = token.rsplit_once('.').ok_or(Refusal::Malformed)?;
    if !candidates.iter().any(|k| verifies(k, &alg, message.as_bytes(), &sig)) {
        return Err(Refusal::Signature);
    }
    let claims: Map<String, Value> =
        serde_json::from_slice(&b64(payload).ok_or(Refusal::Malformed)?).map_err(|_| Refusal::Malformed)?;
    check_claims(&claims, expected)?;
    Ok(claims)
}

/// The claim checks of OpenID Connect Core §3.1.3.7 (the signature is checked before).
fn check_claims(claims: &Map<String, Value>, expected: Expected<'_>) -> Result<(), Refusal> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(expected.issuer) {
        return Err(Refusal::Claim("iss"));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(Refusal::Claim("aud"));
    }
    let azp = text("azp");
    if azp.is_some_and(|a| a != expected.client_id) || (audiences.len() > 1 && azp.is_none()) {
        return Err(Refusal::Claim("azp"));
    }
    let now = expected.now.timestamp();
    let time = |name: &str| claims.get(name).and_then(Value::as_f64).map(|t| t as i64);
    if time("exp").is_none_or(|exp| exp + LEEWAY_S <= now) {
        return Err(Refusal::Claim("exp"));
    }
    if time("iat").is_none_or(|iat| iat - LEEWAY_S > now) {
        return Err(Refusal::Claim("iat"));
    }
    if text("sub").is_none_or(str::is_empty) {
        return Err(Refusal::Claim("sub"));
    }
    match text("nonce") {
        Some(nonce) if ckp_connectors::secrets::crypto::same(nonce.as_bytes(), expected.nonce.as_bytes()) => Ok(()),
        _ => Err(Refusal::Nonce),
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    use super::*;

    /// A P-256 key pair and its JWK.
    fn es256_key(kid: &str) -> (EcdsaKeyPair, Jwk) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("key");
        let point = pair.public_key().as_ref();
        let jwk = Jwk {
            kty: "EC".into(),
            kid: Some(kid.into()),
            crv: Some("P-256".into()),
            x: Some(B64.encode(&point[1..33])),
            y: Some(B64.encode(&point[33..65])),
            ..Jwk::default()
        };
        (pair, jwk)
    }

    fn sign(pair: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
        let signed = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig = pair.sign(&SystemRandom::new(), signed.as_bytes()).expect("signs");
        format!("{signed}.{}", B64.encode(sig.as_ref()))
    }

    fn claims(now: i64) -> Value {
        json!({"iss": "https://idp.example", "aud": "ckp", "sub": "s1", "nonce": "n1", "iat": now, "exp": now + 300})
    }

    fn expected(now: DateTime<Utc>) -> Expected<'static> {
        Expected { issuer: "https://idp.example", client_id: "ckp", nonce: "n1", now }
    }

    #[test]
    fn a_token_signed_by_a_provider_key_with_the_right_claims_verifies() {
        let (pair, jwk) = es256_key("k1");
        let jwks = Jwks { keys: vec![jwk] };
        let now = Utc::now();
        let token = sign(&pair, &json!({"alg": "ES256", "kid": "k1"}), &claims(now.timestamp()));
        let verified = verify(&token, &jwks, expected(now)).expect("verifies");
        assert_eq!(verified.get("sub"), Some(&json!("s1")));
    }

    #[test]
    fn forged_foreign_expired_and_replayed_tokens_are_refused() {
        let (pair, jwk) = es256_key("k1");
        let jwks = Jwks { keys: vec![jwk] };
        let now = Utc::now();
        let t = now.timestamp();
        let header = json!({"alg": "ES256", "kid": "k1"});
        let refused = |claims: Value| verify(&sign(&pair, &header, &claims), &jwks, expected(now)).unwrap_err();
        let with = |k: &str, v: Value| {
            let mut c = claims(t);
            c[k] = v;
            c
        };
        assert_eq!(refused(with("iss", json!("https://evil.example"))), Refusal::Claim("iss"));
        assert_eq!(refused(with("aud", json!("another-client"))), Refusal::Claim("aud"));
        assert_eq!(refused(with("aud", json!(["ckp", "other"]))), Refusal::Claim("azp"));
        assert_eq!(refused(with("exp", json!(t - 120))), Refusal::Claim("exp"));
        assert_eq!(refused(with("iat", json!(t + 600))), Refusal::Claim("iat"));
        assert_eq!(refused(with("nonce", json!("another sign-in"))), Refusal::Nonce);
        let mut no_sub = claims(t);
        no_sub.as_object_mut().map(|c| c.remove("sub"));
        assert_eq!(refused(no_sub), Refusal::Claim("sub"));
        // Another key under the same kid: the signature fails.
        let (other, _) = es256_key("k1");
        let forged = sign(&other, &header, &claims(t));
        assert_eq!(verify(&forged, &jwks, expected(now)), Err(Refusal::Signature));
        // A key id the JWKS does not have (the caller refreshes the keys once).
        let unknown = sign(&pair, &json!({"alg": "ES256", "kid": "k2"}), &claims(t));
        assert_eq!(verify(&unknown, &jwks, expected(now)), Err(Refusal::NoKey(Some("k2".into()))));
        // alg none, or HMAC with the public key as the secret: never.
        let good = sign(&pair, &header, &claims(t));
        let payload = good.split('.').nth(1).unwrap_or_default();
        let none = format!("{}.{payload}.", B64.encode(r#"{"alg":"none"}"#));
        assert_eq!(verify(&none, &jwks, expected(now)), Err(Refusal::Algorithm("none".into())));
        let hs = format!("{}.{payload}.AAAA", B64.encode(r#"{"alg":"HS256","kid":"k1"}"#));
        assert_eq!(verify(&hs, &jwks, expected(now)), Err(Refusal::Algorithm("HS256".into())));
        // A changed payload under the original signature.
        let (h, _) = good.split_once('.').unwrap_or_default();
        let s = good.rsplit('.').next().unwrap_or_default();
        let tampered = format!("{h}.{}.{s}", B64.encode(with("sub", json!("admin")).to_string()));
        assert_eq!(verify(&tampered, &jwks, expected(now)), Err(Refusal::Signature));
        assert_eq!(verify("a.b", &jwks, expected(now)), Err(Refusal::Malformed));
    }
}
