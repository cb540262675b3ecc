//! Small cryptographic helpers the providers share: HMAC-SHA256 (RFC 2104, for AWS SigV4 and grant tokens), hex,
//! and the AES-256-GCM sealing of ckp's own store. Nothing here ever formats a key or a value into a message.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Key, KeyInit, Nonce, Payload};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::masked::Masked;

const BLOCK: usize = 64;
const NONCE_LEN: usize = 12;

/// HMAC-SHA256 (RFC 2104) of `msg` under `key`: AWS SigV4, grant tokens and workflow callback tokens.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(msg).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Constant-time equality (for signatures).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The key that seals values in ckp's store: 32 bytes given as 64 hex digits or as base64 (standard or URL-safe,
/// padded or not, which also accepts a LangOrch Fernet key's text).
#[derive(Debug, Clone)]
pub struct SealKey(Masked<Aes256Gcm>);

/// Why a key or a sealed value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The configured key is not 32 bytes.
    #[error(
        "secrets_encryption_key must be 32 bytes written as 64 hex digits or as base64 (for example the output of `openssl rand -hex 32`)"
    )]
    BadKey,
    /// The sealed text was not made with this key for this name, or was altered.
    #[error("the stored value cannot be opened: it was sealed with another secrets_encryption_key, or altered")]
    Open,
}

impl SealKey {
    /// Parses a configured key.
    pub fn parse(text: &str) -> Result<SealKey, SealError> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32).map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| SealError::BadKey)).collect()
        } else {
            let unpadded = t.trim_end_matches('=');
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(unpadded)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded))
                .map_err(|_| SealError::BadKey)
        }?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(SealKey(Masked(Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)))))
    }

    /// Seals `value` for the secret `name` (the name is authenticated: a sealed value copied to another name does
    /// not open). base64 of `nonce || ciphertext || tag`, with a random nonce.
    pub fn seal(&self, name: &str, value: &str) -> String {
        let random = uuid::Uuid::new_v4();
        let mut nonce_bytes = [0u8; NONCE_LEN];
        nonce_bytes.copy_from_slice(&random.as_bytes()[..NONCE_LEN]);
        let nonce = Nonce::<Aes256Gcm>::from(nonce_bytes);
        let sealed = self
            .0
            .0
            .encrypt(&nonce, Payload { msg: value.as_bytes(), aad: name.as_bytes() })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    /// Opens what [`SealKey::seal`] produced for `name`.
    pub fn open(&self, name: &str, sealed: &str) -> Result<String, SealError> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(sealed.trim()).map_err(|_| SealError::Open)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SealError::Open);
        }
        let (nonce, ct) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| SealError::Open)?;
        let plain = self.0.0.decrypt(&nonce, Payload { msg: ct, aad: name.as_bytes() }).map_err(|_| SealError::Open)?;
        String::from_utf8(plain).map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 1, 2 and 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn sealed_values_open_only_with_the_key_and_the_name() {
        let key = SealKey::parse(&"ab".repeat(32)).expect("hex key");
        let sealed = key.seal("api", "v4lue");
        assert!(!sealed.contains("v4lue"));
        assert_ne!(sealed, key.seal("api", "v4lue"), "a fresh nonce each time");
        assert_eq!(key.open("api", &sealed).as_deref(), Ok("v4lue"));
        assert_eq!(key.open("other", &sealed), Err(SealError::Open), "bound to the name");
        let other = SealKey::parse("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=").expect("base64 key");
        assert_eq!(other.open("api", &sealed), Err(SealError::Open));
        assert_eq!(key.open("api", "bm9wZQ=="), Err(SealError::Open));
        for bad in ["", "short", &"ab".repeat(31), "not base64 at all!"] {
            assert_eq!(SealKey::parse(bad).err(), Some(SealError::BadKey), "{bad}");
        }
    }
}
