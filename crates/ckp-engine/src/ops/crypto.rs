//! `encrypt` / `decrypt`: AES-256-GCM with a key derived from a named secret.
//!
//! The key is SHA-256 of the secret's text, looked up through [`OpEnv::secret`] by `key_reference`; the 12-byte
//! nonce is derived from [`OpEnv::new_id`] (SHA-256 of a domain tag and the id), so a replayed step produces the same
//! ciphertext while distinct calls never reuse a nonce. The output is base64 (standard alphabet, padded) of
//! `nonce || ciphertext || tag`. This module must never put a secret's value or a derived key in a message.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Key, KeyInit, Nonce};
use base64::Engine as _;
use ckp_core::path::to_text;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{OpEnv, OpError, Params, describe};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const NONCE_DOMAIN: &[u8] = b"ckp-encrypt-nonce\0";

/// `encrypt {source | value, key_reference, algorithm = aes-256-gcm}`: encrypts the text (a non-string as its compact
/// JSON) and returns the base64 ciphertext. A missing secret is an error `secret <name> not found`.
pub(super) fn encrypt(p: &Params<'_>, env: &mut dyn OpEnv) -> Result<Value, OpError> {
    let plaintext = to_text(p.input()?).into_owned();
    let cipher = cipher(p, env)?;
    let id = env.new_id();
    let digest: [u8; 32] = Sha256::new().chain_update(NONCE_DOMAIN).chain_update(id.as_bytes()).finalize().into();
    let mut nonce_bytes = [0u8; NONCE_LEN];
    nonce_bytes.copy_from_slice(digest.get(..NONCE_LEN).unwrap_or(&[0; NONCE_LEN]));
    let nonce = Nonce::<Aes256Gcm>::from(nonce_bytes);
    let sealed = cipher.encrypt(&nonce, plaintext.as_bytes()).map_err(|_| p.err("encryption failed"))?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&sealed);
    Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(out)))
}

/// `decrypt {source | value, key_reference, algorithm = aes-256-gcm}`: reverses [`encrypt`] and returns the text
/// (a value that was JSON before encryption comes back as JSON text; use `parse_json`). A wrong key, an altered
/// ciphertext or text that `encrypt` did not produce is an error.
pub(super) fn decrypt(p: &Params<'_>, env: &mut dyn OpEnv) -> Result<Value, OpError> {
    let text = match p.input()? {
        Value::String(s) => s.trim(),
        other => {
            return Err(p.err(format!("source must be the base64 text produced by encrypt, not {}", describe(other))));
        }
    };
    let cipher = cipher(p, env)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .map_err(|_| p.err("source is not base64 text produced by encrypt"))?;
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return Err(p.err("source is too short to be a ciphertext produced by encrypt"));
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| p.err("source has no valid nonce"))?;
    let plain = cipher
        .decrypt(&nonce, sealed)
        .map_err(|_| p.err("decryption failed: wrong key, or the ciphertext was altered"))?;
    let plain = String::from_utf8(plain).map_err(|_| p.err("decrypted data is not UTF-8 text"))?;
    Ok(Value::String(plain))
}

/// The cipher for the step's algorithm and key reference.
fn cipher(p: &Params<'_>, env: &mut dyn OpEnv) -> Result<Aes256Gcm, OpError> {
    let algorithm = p.text(&["algorithm", "algo"])?.unwrap_or_default().to_ascii_lowercase().replace(['-', '_'], "");
    if !matches!(algorithm.as_str(), "" | "aes256gcm" | "aesgcm" | "aes256") {
        return Err(p.err(format!("unknown algorithm `{algorithm}`: only aes-256-gcm is supported")));
    }
    let reference = p
        .text(&["key_reference", "key_ref"])?
        .map(|r| secret_name(&r).to_owned())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| p.err("missing `key_reference`: the name of the secret holding the key"))?;
    let secret = env
        .secret(&reference)
        .ok_or_else(|| p.err(format!("secret {reference} not found: define it in the run's secrets provider")))?;
    let key: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    Ok(Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)))
}

/// `NAME` from `NAME`, `secrets.NAME` or an unrendered `{{secrets.NAME}}` (secrets are not rendered into internal
/// actions' parameters, A.3, so people who write the placeholder mean the name).
pub(crate) fn secret_name(reference: &str) -> &str {
    let r = reference.trim();
    let r = r.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")).map_or(r, str::trim);
    r.strip_prefix("secrets.").unwrap_or(r)
}
