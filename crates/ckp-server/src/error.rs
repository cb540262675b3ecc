//! API errors: every 4xx/5xx body is JSON `{"detail": <string or object>, "code": "<stable_snake_case>"}`
//! (LangOrch's `detail` kept, `code` added). Extractors that reject input (malformed JSON, wrong types, bodies
//! over the limit, bad query strings) answer in the same shape.
//!
//! # Error policy
//!
//! * **4xx** say what the caller did wrong, in words the caller can act on: which field, which value, what is
//!   expected. They are not logged above DEBUG: they are the caller's business, not the operator's.
//! * **5xx** answer a fixed text and a short error id, nothing else:
//!   `{"detail": "Internal error (error id 3f9a2c1b7e4d); the server log has the cause", "code": "...",
//!   "error_id": "3f9a2c1b7e4d"}`. The cause, with its whole chain, is logged once at ERROR with the same
//!   `error_id` ([`ApiError::internal`]), so an operator finds it from what the user reports.
//! * No internal text in any response: no SQL, no file path, no library message, no secret. Only
//!   [`ApiError::internal`] builds a 5xx from an error, and it never puts the error's text in the body.
//! * Error types keep their causes (`#[source]`), not their text, so the log line shows the root cause.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use ckp_engine::error::ErrorChain;
use ckp_store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An API error.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable detail (a string, or an object with more structure).
    pub detail: Value,
    /// For a 5xx, the id its cause was logged under.
    pub error_id: Option<Box<str>>,
    /// For a 429: seconds until a retry may succeed (`Retry-After`).
    pub retry_after: Option<u32>,
}

/// The error body, for the OpenAPI document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong: a message, or an object (`{message, errors}` for invalid input, diagnostics for CKP).
    pub detail: Value,
    /// Stable snake_case code.
    pub code: String,
    /// For a 5xx: the id under which the server logged the cause (give it to the operator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
}

impl ApiError {
    /// An error with a text detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError { status, code, detail: Value::String(detail.into()), error_id: None, retry_after: None }
    }

    /// A 4xx with a structured detail (`{message, errors}`: every problem of the input at once).
    pub fn with_detail(status: StatusCode, code: &'static str, detail: Value) -> Self {
        ApiError { status, code, detail, error_id: None, retry_after: None }
    }

    /// A 5xx caused by `cause`: logs the cause with its whole chain under a fresh error id, once, and answers
    /// only a fixed text with that id (the error policy above).
    pub fn internal(status: StatusCode, code: &'static str, cause: &(dyn std::error::Error + 'static)) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        tracing::error!(error_id = %id, code, status = status.as_u16(), error = %ErrorChain(cause), "request failed");
        ApiError {
            status,
            code,
            detail: Value::String(format!("Internal error (error id {id}); the server log has the cause")),
            error_id: Some(id.into()),
            retry_after: None,
        }
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 413: the body is over `max_body_bytes` (declared or sent).
    pub fn body_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "The body is larger than the server accepts (the max_body_bytes setting)",
        )
    }

    /// 408: the body did not arrive within `body_timeout_ms`.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The body did not arrive in the time the server allows (the body_timeout_ms setting)",
        )
    }

    /// 401 (LangOrch's texts: "Authentication required", "Invalid API key", "Invalid or expired token"); the
    /// answer carries `WWW-Authenticate: Bearer`.
    pub fn unauthorized(detail: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 429 after too many failed sign-ins or keys, with `Retry-After`.
    pub fn too_many_attempts(retry_after: u64) -> Self {
        let retry_after = u32::try_from(retry_after).unwrap_or(u32::MAX);
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("Too many failed attempts; retry in {retry_after} s"),
            )
        }
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 422 with a text detail.
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.error_id {
            Some(id) => json!({"detail": self.detail, "code": self.code, "error_id": id}),
            None => json!({"detail": self.detail, "code": self.code}),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::Invalid(m) => ApiError::invalid("invalid_value", m),
            other => ApiError::internal(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", &other),
        }
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Bodies are JSON objects: serde would otherwise read an array as the struct's fields in order.
        let axum::Json(value) = axum::Json::<Value>::from_request(req, state).await.map_err(json_rejection)?;
        if !value.is_object() {
            return Err(ApiError::invalid("invalid_body", "The body must be a JSON object"));
        }
        // PostgreSQL cannot store U+0000 in text; refused the same way on every backend.
        if has_nul(&value) {
            return Err(ApiError::invalid(
                "invalid_body",
                "Text in the body must not contain the NUL character (U+0000)",
            ));
        }
        serde_json::from_value(value)
            .map(Json)
            .map_err(|e| ApiError::invalid("invalid_body", format!("The body does not match the expected shape: {e}")))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON body that may be absent: an empty body (whatever its Content-Type) or the JSON `null` (what the OpenAPI
/// document's optional body allows) is `None`; any other body is read as [`Json`] reads it, with the same
/// rejections.
#[derive(Debug, Clone, Default)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| json_rejection(JsonRejection::from(e)))?;
        if bytes.is_empty() || bytes.trim_ascii() == b"null" {
            return Ok(OptionalJson(None));
        }
        let Json(value) = Json::from_request(Request::from_parts(parts, axum::body::Body::from(bytes)), state).await?;
        Ok(OptionalJson(Some(value)))
    }
}

/// Whether a key or a string anywhere in `v` contains U+0000.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => {
            ApiError::invalid("invalid_body", format!("The body does not match the expected shape: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("The body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Expected a body with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::body_too_large(),
        JsonRejection::BytesRejection(e) if crate::listener::is_body_timeout(&e) => ApiError::request_timeout(),
        other => ApiError::new(other.status(), "bad_request", other.body_text()),
    }
}

/// A query string whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::invalid("invalid_query", format!("Invalid query string: {}", e.body_text())))
            }
            Err(other) => Err(ApiError::new(other.status(), "bad_request", other.body_text())),
        }
    }
}

/// Answers unknown routes with the JSON error shape.
pub async fn fallback() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "Not Found")
}

/// Answers a known path with the wrong method in the JSON error shape.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method Not Allowed")
}
