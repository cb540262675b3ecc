//! API keys: `ckp_<key_id>_<secret>`, 256 random bits of secret, shown once at creation and stored as the SHA-256
//! of the whole key (high-entropy keys need no slow hash: a lookup by hash is as safe and costs microseconds). The
//! visible prefix `ckp_<key_id>` names a key in lists and logs without revealing it. Also the random strings of
//! refresh tokens and signing keys.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ckp_connectors::secrets::crypto::sha256_hex;
use ring::rand::{SecureRandom, SystemRandom};

/// How every ckp API key starts.
pub const PREFIX: &str = "ckp_";

/// A new key: (key_id, the whole key, its visible prefix).
#[derive(Debug)]
pub struct NewKey {
    /// Id.
    pub key_id: String,
    /// The key, to show once.
    pub key: String,
    /// `ckp_<key_id>`.
    pub prefix: String,
}

/// A fresh API key.
pub fn generate() -> NewKey {
    let id = random_bytes::<6>();
    let key_id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let prefix = format!("{PREFIX}{key_id}");
    let key = format!("{prefix}_{}", random_token());
    NewKey { key_id, key, prefix }
}

/// What a new key is for.
#[derive(Debug, Clone, Default)]
pub struct KeySpec {
    /// A name for people.
    pub name: String,
    /// Its role.
    pub role: String,
    /// The one project it acts in.
    pub project_id: Option<String>,
    /// The user it acts for.
    pub owner: Option<String>,
    /// Refused after this instant.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Makes and stores a key: the stored row and the key itself (to show once, never again).
pub async fn issue(
    store: &dyn ckp_store::Store,
    spec: KeySpec,
) -> Result<(ckp_store::ApiKeyRow, String), ckp_store::StoreError> {
    let new = generate();
    let row = ckp_store::ApiKeyRow {
        key_id: new.key_id,
        name: spec.name,
        prefix: new.prefix,
        hash: hash(&new.key),
        owner: spec.owner,
        role: spec.role,
        project_id: spec.project_id,
        created_at: crate::auth::principal::stamp(chrono::Utc::now()),
        expires_at: spec.expires_at.map(crate::auth::principal::stamp),
        last_used_at: None,
        revoked_at: None,
    };
    let row = store.insert_api_key(row).await?;
    Ok((row, new.key))
}

/// The stored form of a key or a refresh token.
pub fn hash(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// 256 random bits as base64url text (refresh tokens, key secrets, signing keys).
pub fn random_token() -> String {
    B64.encode(random_bytes::<32>())
}

/// `N` bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The system generator fails only when the OS cannot provide randomness at all, where nothing secure can run.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        bytes = uuid_bytes();
    }
    bytes
}

/// A fallback from uuid's generator (itself the OS's; reached only if ring's call fails).
fn uuid_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(16) {
        let u = uuid::Uuid::new_v4();
        chunk.copy_from_slice(&u.as_bytes()[..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_prefixed_and_hashed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with(&format!("{}_", a.prefix)));
        assert!(a.key.len() > 50, "{}", a.key.len());
        assert_eq!(hash(&a.key).len(), 64);
        assert_ne!(hash(&a.key), hash(&b.key));
    }
}
