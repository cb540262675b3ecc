//! The `ckp_sso` cookie: what binds a sign-in to the browser that started it. It holds the `state` sent to the
//! provider, the ID token's expected `nonce`, the PKCE verifier and where to go afterwards, signed with HMAC-SHA256
//! under a key used for nothing else (`server_keys` row `sso-state-key`) and valid ten minutes. A callback whose
//! `state` is not the one of the cookie its browser sends is refused: a sign-in started elsewhere (login CSRF) or
//! replayed cannot complete. The cookie is not secret from its browser (it is the browser's own sign-in), only
//! unforgeable; it is HttpOnly all the same.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use ckp_connectors::secrets::crypto::{hmac_sha256, same};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::auth::keys::random_token;

/// The cookie's name.
pub const COOKIE: &str = "ckp_sso";
/// The cookie's path: it goes to the sign-in routes only.
pub const COOKIE_PATH: &str = "/api/auth/sso";
/// The name of its signing key in the store.
pub const KEY_NAME: &str = "sso-state-key";
/// How long a sign-in may take, in seconds.
pub const TTL_S: i64 = 600;

/// One sign-in in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The `state` parameter sent to the provider.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier (its S256 challenge went to the provider).
    pub verifier: String,
    /// Where the browser goes after signing in (a same-origin path).
    pub next: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
}

impl Pending {
    /// A new sign-in: fresh random state, nonce and verifier (256 bits each), valid [`TTL_S`] from `now`.
    pub fn new(next: String, now: DateTime<Utc>) -> Self {
        Pending {
            state: random_token(),
            nonce: random_token(),
            verifier: random_token(),
            next,
            exp: now.timestamp() + TTL_S,
        }
    }

    /// The PKCE S256 challenge of the verifier: base64url(SHA-256(verifier)).
    pub fn challenge(&self) -> String {
        B64.encode(sha2::Sha256::digest(self.verifier.as_bytes()))
    }
}

/// The signing key of `ckp_sso` cookies.
#[derive(Clone)]
pub struct StateKey(Vec<u8>);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(***)")
    }
}

impl StateKey {
    /// A key from its bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        StateKey(bytes)
    }

    /// The cookie value of `pending`: base64url(JSON) `.` base64url(HMAC).
    pub fn seal(&self, pending: &Pending) -> String {
        let body = B64.encode(serde_json::to_vec(pending).unwrap_or_default());
        let mac = B64.encode(self.mac(&body));
        format!("{body}.{mac}")
    }

    /// The sign-in a cookie value holds, when this key signed it and it has not expired at `now`.
    pub fn open(&self, value: &str, now: DateTime<Utc>) -> Option<Pending> {
        let (body, mac) = value.split_once('.')?;
        if !same(&B64.decode(mac).ok()?, &self.mac(body)) {
            return None;
        }
        let pending: Pending = serde_json::from_slice(&B64.decode(body).ok()?).ok()?;
        (pending.exp > now.timestamp()).then_some(pending)
    }

    fn mac(&self, body: &str) -> [u8; 32] {
        // The purpose is part of the signed text: this key signs nothing else, and says so.
        hmac_sha256(&self.0, format!("ckp-sso-state.{body}").as_bytes())
    }
}

/// `next` when it is a path of this server (`/…`, not `//host` nor `/\host`, no control characters), else `/`:
/// the sign-in never sends the browser to another site.
pub fn same_origin_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= 2048
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_sign_in_opens_with_its_key_until_it_expires() {
        let key = StateKey::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let now = Utc::now();
        let pending = Pending::new("/runs".into(), now);
        let sealed = key.seal(&pending);
        assert_eq!(key.open(&sealed, now).as_ref(), Some(&pending));
        assert_eq!(key.open(&sealed, now + chrono::Duration::seconds(TTL_S)), None, "expired");
        assert_eq!(StateKey::new(b"another key".to_vec()).open(&sealed, now), None);
        // A cookie whose content was changed (another state) keeps its old signature: refused.
        let forged = Pending { state: "chosen by an attacker".into(), ..pending.clone() };
        let (_, mac) = sealed.split_once('.').unwrap_or_default();
        let (body, _) =
            key.seal(&forged).split_once('.').map(|(b, m)| (b.to_owned(), m.to_owned())).unwrap_or_default();
        assert_eq!(key.open(&format!("{body}.{mac}"), now), None);
        assert_eq!(key.open("garbage", now), None);
        assert_ne!(Pending::new("/".into(), now).state, pending.state, "fresh randomness each time");
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        let pending = Pending {
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
            ..Pending::new("/".into(), Utc::now())
        };
        assert_eq!(pending.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn only_paths_of_this_server_are_kept_as_the_next_page() {
        assert_eq!(same_origin_path(Some("/runs/r1?tab=events")), "/runs/r1?tab=events");
        for outside in ["https://evil.example/", "//evil.example", "/\\evil.example", "runs", "/a\nb", ""] {
            assert_eq!(same_origin_path(Some(outside)), "/", "{outside:?}");
        }
        assert_eq!(same_origin_path(None), "/");
    }
}
