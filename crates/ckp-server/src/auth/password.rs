//! Passwords: argon2id with OWASP's parameters (19 MiB, t = 2, p = 1) for every hash ckp makes; bcrypt hashes
//! imported from LangOrch are verified and replaced with argon2id at the next sign-in. Hashing runs on the
//! blocking pool (it takes tens of milliseconds by design). A sign-in for an unknown user verifies against a fixed
//! dummy hash, so its answer takes as long as a wrong password's (no user enumeration by timing).

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// What a verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The password matches an argon2id hash.
    Ok,
    /// The password matches a legacy (bcrypt) hash: store a new argon2id hash.
    OkRehash,
    /// No match, or no usable hash.
    No,
}

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 8;

/// An argon2id PHC string for `password`.
pub async fn hash(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| format!("password hashing stopped: {e}"))?
}

fn hash_now(password: &str) -> Result<String, String> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Checks `password` against a stored PHC string (argon2id, or bcrypt `$2a$`/`$2b$`/`$2y$`); None verifies
/// against the dummy hash and answers No.
pub async fn verify(password: String, stored: Option<String>) -> Verified {
    tokio::task::spawn_blocking(move || verify_now(&password, stored.as_deref())).await.unwrap_or(Verified::No)
}

fn verify_now(password: &str, stored: Option<&str>) -> Verified {
    match stored {
        Some(h) if h.starts_with("$2") => match bcrypt::verify(password, h) {
            Ok(true) => Verified::OkRehash,
            _ => Verified::No,
        },
        Some(h) if h.starts_with("$argon2") => match Argon2::default().verify_password(password.as_bytes(), h) {
            Ok(()) => Verified::Ok,
            Err(_) => Verified::No,
        },
        _ => {
            let _ = Argon2::default().verify_password(password.as_bytes(), dummy());
            Verified::No
        }
    }
}

/// A valid argon2id hash of a random password, made once.
fn dummy() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_now(&super::keys::random_token()).unwrap_or_default())
}

/// Whether `hash` is a stored form ckp can verify: bcrypt (`$2a$`, `$2b$`, `$2y$`, LangOrch's) or argon2id.
pub fn importable(hash: &str) -> bool {
    let bcrypt = ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) && hash.len() == 60;
    let argon2 = hash.starts_with("$argon2id$") && argon2::password_hash::phc::PasswordHash::new(hash).is_ok();
    bcrypt || argon2
}

/// The reason a new password is refused, if it is.
pub fn weak(password: &str) -> Option<String> {
    (password.chars().count() < MIN_LENGTH).then(|| format!("The password must have at least {MIN_LENGTH} characters"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn argon2id_and_imported_bcrypt_hashes_verify() {
        let h = hash("correct horse".into()).await.unwrap_or_default();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_eq!(verify("correct horse".into(), Some(h.clone())).await, Verified::Ok);
        assert_eq!(verify("wrong horse".into(), Some(h)).await, Verified::No);
        // A hash as LangOrch's bcrypt makes them (cost 4 to keep the test fast).
        let legacy = bcrypt::hash("langorch pw", 4).unwrap_or_default();
        assert_eq!(verify("langorch pw".into(), Some(legacy.clone())).await, Verified::OkRehash);
        assert_eq!(verify("other".into(), Some(legacy)).await, Verified::No);
        assert_eq!(verify("anything".into(), None).await, Verified::No);
        assert_eq!(verify("anything".into(), Some("plain".into())).await, Verified::No);
        assert!(importable(&bcrypt::hash("x", 4).unwrap_or_default()));
        assert!(importable(&hash("long enough".into()).await.unwrap_or_default()));
        assert!(!importable("$2b$short") && !importable("plaintext") && !importable("$argon2id$garbage"));
    }
}
