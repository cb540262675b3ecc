//! Webhook signatures. Two forms are accepted, each an HMAC-SHA256 in hex:
//!
//! * LangOrch's `X-LangOrch-Signature: sha256=<hex>` (the prefix optional) over the raw body, byte for byte as
//!   LangOrch checks it; it carries no time, so only an `Idempotency-Key` protects it from a replay;
//! * ckp's `X-Ckp-Signature: t=<unix seconds>,v1=<hex>` over `"{t}.{body}"`: refused when `t` is more than
//!   [`TOLERANCE_SECS`] away from now, and each signature is accepted once (a replay is a duplicate cause).
//!
//! During a rotation a trigger names two secrets; a signature by either is accepted. Comparisons are constant
//! time.

use ckp_connectors::secrets::crypto::{hex, hmac_sha256, same};

/// How far a timestamped signature's time may be from now.
pub const TOLERANCE_SECS: i64 = 300;

/// LangOrch's header.
pub const LANGORCH_HEADER: &str = "x-langorch-signature";
/// ckp's timestamped header.
pub const CKP_HEADER: &str = "x-ckp-signature";

/// A checked signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// LangOrch's form (no replay protection of its own).
    Plain,
    /// The timestamped form: its key for replay protection.
    Timestamped {
        /// `signature:<t>:<hex>`.
        key: String,
        /// The signature's time (unix seconds).
        t: i64,
    },
}

/// Why a delivery is refused (all 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No signature header, or one that does not parse.
    Missing,
    /// The timestamp is outside the tolerance.
    Stale,
    /// No secret's HMAC matches.
    Mismatch,
}

impl Refused {
    /// The answer's text.
    pub fn message(self) -> &'static str {
        match self {
            Refused::Missing | Refused::Mismatch => "Invalid or missing webhook signature",
            Refused::Stale => "Webhook signature timestamp is outside the 5-minute tolerance",
        }
    }
}

/// The hex HMAC of `msg` under `key`.
pub fn sign(key: &str, msg: &[u8]) -> String {
    hex(&hmac_sha256(key.as_bytes(), msg))
}

/// The `X-Ckp-Signature` value of `body` at `t` under `key`.
pub fn ckp_signature(key: &str, t: i64, body: &[u8]) -> String {
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(body);
    format!("t={t},v1={}", sign(key, &msg))
}

fn matches(secrets: &[String], msg: &[u8], given: &str) -> bool {
    let given = given.trim().to_ascii_lowercase();
    // Every secret is tried, so the time taken does not tell which one matched.
    secrets.iter().fold(false, |ok, s| same(sign(s, msg).as_bytes(), given.as_bytes()) | ok)
}

/// Checks a delivery's signature headers against `secrets` at `now` (unix seconds).
pub fn verify(
    secrets: &[String],
    ckp: Option<&str>,
    langorch: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<Verified, Refused> {
    if let Some(header) = ckp {
        let mut t = None;
        let mut v1 = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", v)) => t = v.trim().parse::<i64>().ok(),
                Some(("v1", v)) => v1.push(v.trim()),
                _ => {}
            }
        }
        let (Some(t), false) = (t, v1.is_empty()) else { return Err(Refused::Missing) };
        if (now - t).abs() > TOLERANCE_SECS {
            return Err(Refused::Stale);
        }
        let mut msg = format!("{t}.").into_bytes();
        msg.extend_from_slice(body);
        return match v1.iter().find(|v| matches(secrets, &msg, v)) {
            Some(v) => Ok(Verified::Timestamped { key: format!("signature:{t}:{}", v.to_ascii_lowercase()), t }),
            None => Err(Refused::Mismatch),
        };
    }
    let Some(header) = langorch else { return Err(Refused::Missing) };
    let given = header.trim();
    let given = given.strip_prefix("sha256=").unwrap_or(given);
    match matches(secrets, body, given) {
        true => Ok(Verified::Plain),
        false => Err(Refused::Mismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn langorch_header_with_and_without_prefix() {
        let keys = vec!["k1".to_owned()];
        let sig = sign("k1", b"{\"a\":1}");
        assert_eq!(verify(&keys, None, Some(&format!("sha256={sig}")), b"{\"a\":1}", NOW), Ok(Verified::Plain));
        assert_eq!(verify(&keys, None, Some(&sig), b"{\"a\":1}", NOW), Ok(Verified::Plain));
        assert_eq!(verify(&keys, None, Some(&sig), b"{\"a\":2}", NOW), Err(Refused::Mismatch));
        assert_eq!(verify(&keys, None, None, b"{}", NOW), Err(Refused::Missing));
    }

    #[test]
    fn timestamped_signature_tolerance_and_rotation() {
        let keys = vec!["new".to_owned(), "old".to_owned()];
        let by_old = ckp_signature("old", NOW - 10, b"x");
        assert!(matches!(verify(&keys, Some(&by_old), None, b"x", NOW), Ok(Verified::Timestamped { .. })));
        let stale = ckp_signature("new", NOW - TOLERANCE_SECS - 1, b"x");
        assert_eq!(verify(&keys, Some(&stale), None, b"x", NOW), Err(Refused::Stale));
        let other = ckp_signature("other", NOW, b"x");
        assert_eq!(verify(&keys, Some(&other), None, b"x", NOW), Err(Refused::Mismatch));
        assert_eq!(verify(&keys, Some("t=abc"), None, b"x", NOW), Err(Refused::Missing));
        // The same signature twice has the same key: the store refuses the second as a replay.
        let a = verify(&keys, Some(&by_old), None, b"x", NOW);
        assert_eq!(a, verify(&keys, Some(&by_old), None, b"x", NOW + 1));
    }
}
