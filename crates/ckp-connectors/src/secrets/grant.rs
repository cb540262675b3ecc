//! Credential-grant tokens (CKP.md A.3, langorch.md B §7.9): what `{{secret_grants.NAME}}` renders, and what
//! `GET /api/agent-credentials/{name}` accepts. LangOrch's format, so its agents exchange them unchanged: a JWT
//! signed with HS256, claims `sub` = the run id, `aud` = `agent_credential`, `secret_name`, `iat`, and `exp` five
//! minutes after issue.
//!
//! This module signs and checks tokens only; it never sees a secret value, and its errors never quote a token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::crypto::{hmac_sha256, same};
use crate::masked::Masked;

/// The audience every grant carries.
pub const AUDIENCE: &str = "agent_credential";

/// How long a grant is valid, in seconds.
pub const LIFETIME_SECS: i64 = 5 * 60;

/// The encoded JOSE header: `{"alg":"HS256","typ":"JWT"}`.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Why a token was refused. The messages are LangOrch's answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Not a JWT, another algorithm, a bad signature, another audience, no run.
    #[error("Invalid credential grant token")]
    Invalid,
    /// Signed by this server, but past its `exp`.
    #[error("Credential grant token expired")]
    Expired,
    /// Valid, but issued for another secret.
    #[error("Token not valid for this secret")]
    OtherSecret,
}

/// What a valid grant says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The run the token was issued to (`sub`).
    pub run_id: String,
    /// The secret it may be exchanged for (`secret_name`).
    pub secret_name: String,
}

/// The key grants are signed with.
#[derive(Debug, Clone)]
pub struct GrantKey(Masked<[u8; 32]>);

impl GrantKey {
    /// A key from secret bytes of any length (ckp serve derives them from its `callback_secret`).
    pub fn new(secret: &[u8]) -> Self {
        // The NUL keeps the label from ever being a run id, whose HMAC under the same secret is a callback token.
        GrantKey(Masked(hmac_sha256(secret, b"\0ckp agent-credential grants v1")))
    }

    /// A token for `secret_name` in `run_id`, issued at `now` (Unix seconds).
    pub fn issue(&self, run_id: &str, secret_name: &str, now: i64) -> String {
        let claims = json!({"sub": run_id, "aud": AUDIENCE, "secret_name": secret_name, "iat": now,
                            "exp": now.saturating_add(LIFETIME_SECS)});
        self.sign(&claims)
    }

    /// Signs any claims (tests mint expired or altered tokens with it).
    pub fn sign(&self, claims: &Value) -> String {
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(&self.0.0, signing_input.as_bytes()));
        format!("{signing_input}.{signature}")
    }

    /// Checks `token` for the secret `secret_name` at `now` (Unix seconds), in PyJWT's order: the signature and
    /// algorithm, the expiry (`exp`, required; `nbf` when present), the audience, then the secret.
    pub fn verify(&self, token: &str, secret_name: &str, now: i64) -> Result<Grant, GrantError> {
        let (signing_input, signature) = token.trim().rsplit_once('.').ok_or(GrantError::Invalid)?;
        let (header, payload) = signing_input.split_once('.').ok_or(GrantError::Invalid)?;
        if payload.contains('.') {
            return Err(GrantError::Invalid);
        }
        let header: Map<String, Value> = decode_json(header)?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(GrantError::Invalid);
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| GrantError::Invalid)?;
        if !same(&hmac_sha256(&self.0.0, signing_input.as_bytes()), &signature) {
            return Err(GrantError::Invalid);
        }
        let claims: Map<String, Value> = decode_json(payload)?;
        let time = |name: &str| claims.get(name).map(|v| v.as_f64().ok_or(GrantError::Invalid)).transpose();
        let exp = time("exp")?.ok_or(GrantError::Invalid)?;
        // Seconds since 1970 are exact in an f64 for the next few million years.
        #[expect(clippy::cast_precision_loss, reason = "Unix seconds fit an f64's 53-bit mantissa")]
        let now = now as f64;
        if exp <= now {
            return Err(GrantError::Expired);
        }
        if time("nbf")?.is_some_and(|nbf| nbf > now) {
            return Err(GrantError::Invalid);
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == AUDIENCE,
            Some(Value::Array(list)) => list.iter().any(|a| a == AUDIENCE),
            _ => false,
        };
        let run_id = claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty());
        let (true, Some(run_id)) = (audience_ok, run_id) else {
            return Err(GrantError::Invalid);
        };
        if claims.get("secret_name").and_then(Value::as_str) != Some(secret_name) {
            return Err(GrantError::OtherSecret);
        }
        Ok(Grant { run_id: run_id.to_owned(), secret_name: secret_name.to_owned() })
    }
}

fn decode_json(part: &str) -> Result<Map<String, Value>, GrantError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| GrantError::Invalid)?;
    serde_json::from_slice(&bytes).map_err(|_| GrantError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_760_000_000;

    fn claims(token: &str) -> Value {
        let payload = token.split('.').nth(1).expect("payload");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json")
    }

    #[test]
    fn issued_tokens_carry_langorchs_claims_and_verify() {
        let key = GrantKey::new(b"server secret");
        let token = key.issue("run-1", "api_key", NOW);
        assert!(!token.contains('=') && !token.contains('+') && !token.contains('/'), "base64url without padding");
        let header = token.split('.').next().expect("header");
        assert_eq!(URL_SAFE_NO_PAD.decode(header).expect("b64"), HEADER.as_bytes());
        assert_eq!(
            claims(&token),
            json!({"sub": "run-1", "aud": "agent_credential", "secret_name": "api_key", "iat": NOW, "exp": NOW + 300})
        );
        let grant = key.verify(&token, "api_key", NOW + 299).expect("valid");
        assert_eq!(grant, Grant { run_id: "run-1".into(), secret_name: "api_key".into() });
        assert_eq!(key.verify(&token, "api_key", NOW + 300), Err(GrantError::Expired));
        assert_eq!(key.verify(&token, "other", NOW), Err(GrantError::OtherSecret));
        assert_eq!(GrantKey::new(b"another").verify(&token, "api_key", NOW), Err(GrantError::Invalid));
    }

    #[test]
    fn a_token_made_elsewhere_verifies() {
        // Made with Python's hmac, hashlib and base64 (another header key order than ours): the key is
        // HMAC-SHA256(b"s", b"\0ckp agent-credential grants v1"), the claims those of LangOrch's grants.
        let token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyIiwiYXVkIjoiYWdlbnRfY3JlZGVudGlhbCIsInNlY3JldF9uYW1lIjoiayIsImlhdCI6MTc2MDAwMDAwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.3-MI6lQnVjK6V7AcS9U_Jt6eD_dssq-tFMxopPB_epY";
        let grant = GrantKey::new(b"s").verify(token, "k", NOW).expect("valid");
        assert_eq!(grant, Grant { run_id: "r".into(), secret_name: "k".into() });
        assert_eq!(GrantKey::new(b"t").verify(token, "k", NOW), Err(GrantError::Invalid));
    }

    #[test]
    fn altered_and_malformed_tokens_are_invalid() {
        let key = GrantKey::new(b"server secret");
        let token = key.issue("run-1", "api_key", NOW);
        let [h, p, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().expect("three parts");
        let other_run = URL_SAFE_NO_PAD.encode(
            json!({"sub": "run-2", "aud": "agent_credential", "secret_name": "api_key", "exp": NOW + 300}).to_string(),
        );
        let none_alg = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let mut flipped = s.to_owned();
        flipped.replace_range(0..1, if s.starts_with('A') { "B" } else { "A" });
        for bad in [
            format!("{h}.{other_run}.{s}"),
            format!("{none_alg}.{p}."),
            format!("{none_alg}.{p}.{s}"),
            format!("{h}.{p}.{flipped}"),
            format!("{h}.{p}"),
            format!("{h}.{p}.{s}.x"),
            format!("{h}.{p}.{s}="),
            "not a token".to_owned(),
            String::new(),
            "..".to_owned(),
        ] {
            assert_eq!(key.verify(&bad, "api_key", NOW), Err(GrantError::Invalid), "{bad}");
        }
        let signed = |c: Value| key.sign(&c);
        for c in [
            json!({"sub": "r", "aud": "other", "secret_name": "api_key", "exp": NOW + 60}),
            json!({"sub": "r", "secret_name": "api_key", "exp": NOW + 60}),
            json!({"aud": "agent_credential", "secret_name": "api_key", "exp": NOW + 60}),
            json!({"sub": "r", "aud": "agent_credential", "secret_name": "api_key"}),
            json!({"sub": "r", "aud": "agent_credential", "secret_name": "api_key", "exp": "later"}),
            json!({"sub": "r", "aud": "agent_credential", "secret_name": "api_key", "exp": NOW + 60, "nbf": NOW + 30}),
        ] {
            assert_eq!(key.verify(&signed(c.clone()), "api_key", NOW), Err(GrantError::Invalid), "{c}");
        }
        let listed = json!({"sub": "r", "aud": ["x", "agent_credential"], "secret_name": "api_key", "exp": NOW + 60});
        assert!(key.verify(&signed(listed), "api_key", NOW).is_ok(), "an audience list naming ours");
        let expired = json!({"sub": "r", "aud": "agent_credential", "secret_name": "api_key", "exp": NOW - 1});
        assert_eq!(key.verify(&signed(expired), "api_key", NOW), Err(GrantError::Expired));
    }
}
