//! AWS Signature Version 4 for the JSON protocols' `POST /` requests (`X-Amz-Target`), written here on
//! [`crate::secrets::crypto`]'s HMAC-SHA256: Secrets Manager (the secrets provider) and SQS (event triggers).

use chrono::{DateTime, Utc};

use crate::secrets::crypto::{hex, hmac_sha256, sha256_hex};

/// A key pair, and the session token of temporary credentials.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a str,
    /// Session token.
    pub session_token: Option<&'a str>,
}

// The secret never reaches a log line.
impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// What is called: the service's signing name, the region, the `X-Amz-Target` and the content type.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Signing name (`secretsmanager`, `sqs`).
    pub service: &'a str,
    /// Region.
    pub region: &'a str,
    /// `X-Amz-Target`.
    pub target: &'a str,
    /// `Content-Type` (`application/x-amz-json-1.0` or `1.1`).
    pub content_type: &'a str,
}

/// The headers that sign a `POST` of `body` to `url` at `now`, `Authorization` included (`Host` is left to the
/// HTTP client, which sends the same value).
pub fn sign(
    c: &Credentials<'_>,
    r: &Request<'_>,
    url: &reqwest::Url,
    body: &[u8],
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = now.format("%Y%m%d").to_string();
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let mut headers: Vec<(&'static str, String)> =
        vec![("content-type", r.content_type.to_owned()), ("host", host), ("x-amz-date", amz_date.clone())];
    if let Some(t) = c.session_token {
        headers.push(("x-amz-security-token", t.to_owned()));
    }
    headers.push(("x-amz-target", r.target.to_owned()));
    let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let signed = signed.join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
    let path = if url.path().is_empty() { "/" } else { url.path() };
    let canonical =
        format!("POST\n{path}\n{}\n{canonical_headers}\n{signed}\n{}", url.query().unwrap_or(""), sha256_hex(body));
    let scope = format!("{date}/{}/{}/aws4_request", r.region, r.service);
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
    let k_date = hmac_sha256(format!("AWS4{}", c.secret_access_key).as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, r.region.as_bytes());
    let k_service = hmac_sha256(&k_region, r.service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex(&hmac_sha256(&k_signing, to_sign.as_bytes()));
    headers.retain(|(k, _)| *k != "host");
    headers.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            c.access_key_id
        ),
    ));
    headers
}
