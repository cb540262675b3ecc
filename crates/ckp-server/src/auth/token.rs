//! Session access tokens: JWTs signed with HMAC-SHA256 (`alg: HS256`, the shape LangOrch's clients decode) with
//! `iss`, `aud`, `exp` and `jti` (the session id). The signing key is ckp's own (`server_keys` row `session`,
//! shared by every process of a deployment), used for nothing else, and never accepted as a password. A valid
//! signature is not enough: the session must also be live in the store (see `principal.rs`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use ckp_connectors::secrets::crypto::{hmac_sha256, same};
use serde::{Deserialize, Serialize};

/// `iss` of ckp's tokens.
pub const ISSUER: &str = "ckp";
/// `aud` of ckp's tokens.
pub const AUDIENCE: &str = "ckp-api";
/// The name of the signing key in the store.
pub const KEY_NAME: &str = "session-signing-key";

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The username (LangOrch's `sub`).
    pub sub: String,
    /// The user id.
    pub uid: String,
    /// LangOrch's `roles` (informative: the store decides).
    pub roles: Vec<String>,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expires at (seconds).
    pub exp: i64,
    /// The session id.
    pub jti: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
}

/// Why a token is refused (never shown to the caller beyond "invalid or expired").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, or not JSON.
    #[error("malformed token")]
    Malformed,
    /// Not `HS256`, or the signature does not match.
    #[error("bad signature")]
    Signature,
    /// Past `exp`, or not ckp's issuer and audience.
    #[error("expired or not for ckp")]
    Claims,
}

/// The HMAC key of session tokens.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl TokenKey {
    /// A key from its bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        TokenKey(bytes)
    }

    /// A signed token.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signed = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
        let signature = B64.encode(hmac_sha256(&self.0, signed.as_bytes()));
        format!("{signed}.{signature}")
    }

    /// The claims of a token signed with this key, for ckp, not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, payload) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        let header: serde_json::Value = serde_json::from_slice(&B64.decode(header).map_err(|_| TokenError::Malformed)?)
            .map_err(|_| TokenError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(TokenError::Signature);
        }
        let signature = B64.decode(signature).map_err(|_| TokenError::Malformed)?;
        if !same(&signature, &hmac_sha256(&self.0, signed.as_bytes())) {
            return Err(TokenError::Signature);
        }
        let claims: Claims = serde_json::from_slice(&B64.decode(payload).map_err(|_| TokenError::Malformed)?)
            .map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now.timestamp() || claims.iss != ISSUER || claims.aud != AUDIENCE {
            return Err(TokenError::Claims);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "ann".into(),
            uid: "u1".into(),
            roles: vec!["viewer".into()],
            iat: 0,
            exp,
            jti: "s1".into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        }
    }

    #[test]
    fn a_token_verifies_with_its_key_only_and_until_it_expires() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let now = Utc::now();
        let token = key.sign(&claims(now.timestamp() + 60));
        assert_eq!(key.verify(&token, now).map(|c| c.jti), Ok("s1".into()));
        let other = TokenKey::new(b"another key, just as long as it...".to_vec());
        assert_eq!(other.verify(&token, now), Err(TokenError::Signature));
        assert_eq!(key.verify(&token, now + chrono::Duration::seconds(61)), Err(TokenError::Claims));
        assert_eq!(key.verify("a.b", now), Err(TokenError::Malformed));
        // The same claims with alg "none" and no signature are refused.
        let (signed, _) = token.rsplit_once('.').unwrap_or_default();
        let (_, payload) = signed.split_once('.').unwrap_or_default();
        let none = format!("{}.{payload}.", B64.encode(r#"{"alg":"none"}"#));
        assert_eq!(key.verify(&none, now), Err(TokenError::Signature));
    }
}
