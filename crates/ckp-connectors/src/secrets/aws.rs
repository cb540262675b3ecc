//! AWS Secrets Manager: `GetSecretValue` over the JSON 1.1 protocol (`POST /` with
//! `X-Amz-Target: secretsmanager.GetSecretValue`), signed with Signature Version 4 written here (HMAC-SHA256 from
//! [`super::crypto`]), against `https://secretsmanager.{region}.amazonaws.com` or a configured endpoint (a local
//! AWS-compatible server). `SecretString` is returned as text, `SecretBinary` as UTF-8 text;
//! `ResourceNotFoundException` is "no such secret".

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ckp_engine::effects::BoxFuture;
use serde_json::{Value, json};

use super::{AwsSettings, Fetched, Provider, ProviderError};

const SERVICE: &str = "secretsmanager";
const TARGET: &str = "secretsmanager.GetSecretValue";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// A Secrets Manager client for one configuration.
#[derive(Debug)]
pub struct AwsProvider {
    s: AwsSettings,
    endpoint: reqwest::Url,
    http: reqwest::Client,
}

impl AwsProvider {
    /// A client; the configuration must hold a key pair and a valid endpoint.
    pub fn new(s: AwsSettings, http: reqwest::Client) -> Result<Self, ProviderError> {
        if s.aws_access_key_id.is_none() || s.aws_secret_access_key.is_none() {
            return Err(ProviderError::config(
                "aws needs credentials: aws_access_key_id and aws_secret_access_key (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
            ));
        }
        let url =
            s.endpoint_url.clone().unwrap_or_else(|| format!("https://{SERVICE}.{}.amazonaws.com/", s.region_name));
        let endpoint = reqwest::Url::parse(&url)
            .ok()
            .filter(|u| u.host_str().is_some())
            .ok_or_else(|| ProviderError::config(format!("aws endpoint_url {url:?} is not a URL")))?;
        Ok(AwsProvider { s, endpoint, http })
    }
}

/// The headers that sign a `GetSecretValue` request with `body` to `url` at `now` (SigV4).
pub(crate) fn sign(
    s: &AwsSettings,
    url: &reqwest::Url,
    body: &[u8],
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let credentials = crate::sigv4::Credentials {
        access_key_id: s.aws_access_key_id.as_deref().unwrap_or_default(),
        secret_access_key: crate::settings::exposed(&s.aws_secret_access_key).unwrap_or_default(),
        session_token: crate::settings::exposed(&s.aws_session_token),
    };
    let request =
        crate::sigv4::Request { service: SERVICE, region: &s.region_name, target: TARGET, content_type: CONTENT_TYPE };
    crate::sigv4::sign(&credentials, &request, url, body, now)
}

impl Provider for AwsProvider {
    fn fetch<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Fetched>, ProviderError>> {
        Box::pin(async move {
            let body = json!({"SecretId": key}).to_string();
            let mut req = self.http.post(self.endpoint.clone());
            for (name, value) in sign(&self.s, &self.endpoint, body.as_bytes(), Utc::now()) {
                req = req.header(name, value);
            }
            let resp = req.body(body).send().await.map_err(|e| ProviderError::transport("aws secrets manager", &e))?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(|e| ProviderError::transport("aws secrets manager", &e))?;
            let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status != 200 {
                // Only the error's type and status are reported: AWS messages can echo request details.
                let kind = reply.get("__type").and_then(Value::as_str).unwrap_or("").rsplit('#').next().unwrap_or("");
                if kind == "ResourceNotFoundException" {
                    return Ok(None);
                }
                let kind = if kind.is_empty() { "no error type".to_owned() } else { kind.to_owned() };
                return Err(ProviderError::http(format!(
                    "aws secrets manager answered HTTP {status} ({kind}) for `{key}`"
                )));
            }
            if let Some(s) = reply.get("SecretString").and_then(Value::as_str) {
                return Ok(Some(Fetched::Text(s.to_owned())));
            }
            if let Some(b) = reply.get("SecretBinary").and_then(Value::as_str) {
                let bytes = base64::engine::general_purpose::STANDARD.decode(b).map_err(|_| {
                    ProviderError::http(format!("aws secret `{key}` has a SecretBinary that is not base64"))
                })?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| ProviderError::config(format!("aws secret `{key}` is binary, not UTF-8 text")))?;
                return Ok(Some(Fetched::Text(text)));
            }
            Err(ProviderError::http(format!("aws secrets manager answered without SecretString for `{key}`")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values computed with botocore's `SigV4Auth` for the same request, credentials and time.
    #[test]
    fn signatures_match_botocore() {
        let mut s = AwsSettings {
            aws_access_key_id: Some("AKIDEXAMPLE".into()),
            aws_secret_access_key: Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            ..AwsSettings::default()
        };
        let url = reqwest::Url::parse("http://127.0.0.1:5000/").expect("url");
        let body = br#"{"SecretId": "db/password"}"#;
        let now = DateTime::parse_from_rfc3339("2026-11-25T09:42:26Z").expect("time").with_timezone(&Utc);
        let auth = |h: Vec<(&str, String)>| h.into_iter().find(|(k, _)| *k == "authorization").map(|(_, v)| v);
        assert_eq!(
            auth(sign(&s, &url, body, now)).as_deref(),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/secretsmanager/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
                 Signature=8c839a18d608789374db91644a899074b1d730195d85248d98354e4502de6ca3"
            )
        );
        s.aws_session_token = Some("SESSIONTOKEN".into());
        assert_eq!(
            auth(sign(&s, &url, body, now)).as_deref(),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/secretsmanager/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, \
                 Signature=7347488bb2759c1900b8dcb76bda6bd6c141a8b51f3914c7915c9c2e2e121495"
            )
        );
    }
}
