//! `/api/auth/sso`: sign-in with an OpenID provider (LangOrch's SSO routes, made safe). `login` sends the browser to
//! the provider with a fresh `state`, `nonce` and PKCE challenge bound to it by the signed `ckp_sso` cookie;
//! `callback` checks that cookie, trades the code, verifies the ID token ([`crate::auth::oidc`]), provisions or
//! updates the user (found by the provider's subject; the role mapped from the claims at every sign-in; a disabled
//! user refused), opens a session in the `ckp_session` cookie and sends the browser on: no token ever travels in
//! a URL. Every sign-in and failed sign-in is audited with method `oidc`.

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use ckp_connectors::secrets::crypto::same;
use ckp_store::{StoreError, UserRow, UserUpdate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::oidc::{Identity, Oidc, OidcError, Pending, Refusal, state as sso_state};
use crate::auth::principal::cookie;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Query};

/// `GET /api/auth/sso/status` (LangOrch's shape, plus where to sign in).
#[derive(Debug, Serialize, ToSchema)]
pub struct SsoStatus {
    /// Whether single sign-on is configured (`oidc_issuer` and `oidc_client_id`).
    pub sso_enabled: bool,
    /// The path that starts a sign-in, when enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_url: Option<String>,
}

/// `GET /api/auth/sso/login`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginParams {
    /// A path of this server to return to after signing in (anything else is replaced by `/`).
    pub next: Option<String>,
}

/// `GET /api/auth/sso/callback`: what the provider sends back.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// The state ckp sent (it must be the one of this browser's `ckp_sso` cookie).
    pub state: Option<String>,
    /// The provider's error code when it did not sign the user in.
    pub error: Option<String>,
    /// The issuer of the answer (RFC 9207), checked when present: an answer from another provider is refused.
    pub iss: Option<String>,
}

const LOGIN_PATH: &str = "/api/auth/sso/login";
const INVALID_STATE: &str = "Invalid or expired SSO state";

fn not_enabled() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "sso_disabled", "SSO is not enabled")
}

/// Whether single sign-on is configured, and where to start it.
#[utoipa::path(get, path = "/api/auth/sso/status", tag = "auth", responses((status = 200, body = SsoStatus)))]
pub async fn status(State(state): State<AppState>) -> Json<SsoStatus> {
    let enabled = state.sso.is_some();
    Json(SsoStatus { sso_enabled: enabled, login_url: enabled.then(|| LOGIN_PATH.to_owned()) })
}

/// Starts a sign-in: redirects to the provider's authorization endpoint (authorization code, PKCE S256, fresh
/// `state` and `nonce`) and sets the `ckp_sso` cookie that binds them to this browser for ten minutes.
#[utoipa::path(get, path = "/api/auth/sso/login", tag = "auth", params(LoginParams),
    responses((status = 303, description = "To the OpenID provider's sign-in page"),
        (status = 400, body = ErrorBody, description = "SSO is not enabled"),
        (status = 502, body = ErrorBody, description = "The OpenID provider cannot be reached")))]
pub async fn login(State(state): State<AppState>, Query(q): Query<LoginParams>) -> ApiResult<Response> {
    let sso = state.sso.as_ref().ok_or_else(not_enabled)?;
    let pending = Pending::new(sso_state::same_origin_path(q.next.as_deref()), Utc::now());
    let url = sso.authorization_url(&pending).await.map_err(provider_error)?;
    let mut response = Redirect::to(&url).into_response();
    set_cookie(&mut response, &sso_cookie(&state, &sso.state_key.seal(&pending), sso_state::TTL_S));
    Ok(response)
}

/// Completes a sign-in: checks the `ckp_sso` cookie and `state`, trades the code, verifies the ID token, provisions
/// the user (role from `oidc_role_mapping`), sets the `ckp_session` cookie and redirects to the page the sign-in
/// started from (no token in the URL). The `ckp_sso` cookie is cleared whatever the outcome.
#[utoipa::path(get, path = "/api/auth/sso/callback", tag = "auth", params(CallbackParams),
    responses((status = 303, description = "Signed in: the session cookie is set; on to the page asked for"),
        (status = 400, body = ErrorBody, description = "SSO is off, the state or cookie is wrong or expired, the code or ID token is refused"),
        (status = 403, body = ErrorBody, description = "The user is disabled"),
        (status = 409, body = ErrorBody, description = "The role from the provider would leave no administrator"),
        (status = 429, body = ErrorBody, description = "Too many failed sign-ins from this address"),
        (status = 502, body = ErrorBody, description = "The OpenID provider cannot be reached")))]
pub async fn callback(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Query(q): Query<CallbackParams>,
) -> Response {
    let source = peer.map(|p| p.0.0.ip());
    let mut response = match complete(&state, source, &headers, q).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    if state.sso.is_some() {
        set_cookie(&mut response, &sso_cookie(&state, "", 0));
    }
    response
}

async fn complete(
    state: &AppState,
    source: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    q: CallbackParams,
) -> ApiResult<Response> {
    let sso = state.sso.as_ref().ok_or_else(not_enabled)?;
    let limit_keys: Vec<String> = source.map(|s| format!("ip:{s}")).into_iter().collect();
    if let Some(wait) = state.auth.limiter.blocked(&limit_keys) {
        return Err(ApiError::too_many_attempts(wait));
    }
    let failed = |actor: &str, reason: String, error: ApiError| {
        if error.status.is_client_error() {
            state.auth.limiter.fail(&limit_keys);
        }
        state.audit.event(
            "auth",
            "login_failed",
            actor,
            None,
            source,
            error.status,
            format!("Failed single sign-on for {actor:?}"),
            json!({"method": "oidc", "reason": reason}),
        );
        error
    };
    let pending = cookie(headers, sso_state::COOKIE).and_then(|v| sso.state_key.open(v, Utc::now()));
    let state_matches = match (&pending, q.state.as_deref()) {
        (Some(p), Some(s)) => same(p.state.as_bytes(), s.as_bytes()),
        _ => false,
    };
    let Some(pending) = pending.filter(|_| state_matches) else {
        let reason = "the state is not the one of this browser's ckp_sso cookie (missing, altered or expired)";
        return Err(failed(
            "anonymous",
            reason.into(),
            ApiError::new(StatusCode::BAD_REQUEST, "sso_state", INVALID_STATE),
        ));
    };
    if let Some(error) = q.error {
        // The provider's code (`access_denied`, ...) is echoed only when it is one (letters and underscores).
        let shown = match error.len() <= 64 && error.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            true => error,
            false => "unknown_error".into(),
        };
        let message = format!("The identity provider did not sign the user in ({shown})");
        return Err(failed(
            "anonymous",
            message.clone(),
            ApiError::new(StatusCode::BAD_REQUEST, "sso_refused", message),
        ));
    }
    if let Some(iss) = q.iss.as_deref() {
        let discovery = sso.discovery().await.map_err(provider_error)?;
        if iss != discovery.issuer {
            let error = ApiError::new(StatusCode::BAD_REQUEST, "sso_issuer", "The answer comes from another issuer");
            return Err(failed("anonymous", format!("iss {iss:?} is not the provider's issuer"), error));
        }
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        let error = ApiError::new(StatusCode::BAD_REQUEST, "sso_code", "The callback carries no authorization code");
        return Err(failed("anonymous", "no code".into(), error));
    };
    let identity = match sso.sign_in(&code, &pending).await {
        Ok(identity) => identity,
        Err(e) => {
            let reason = e.to_string();
            return Err(failed("anonymous", reason, sign_in_error(e)));
        }
    };
    let user = match provision(state, sso, &identity).await {
        Ok(user) => user,
        Err(e) => return Err(failed(&identity.subject, e.detail.as_str().unwrap_or_default().to_owned(), e)),
    };
    let session = crate::routes::auth::open_session(state, &user, "oidc").await?;
    let mut response = Redirect::to(&pending.next).into_response();
    for cookie in session.headers().get_all(header::SET_COOKIE) {
        response.headers_mut().append(header::SET_COOKIE, cookie.clone());
    }
    state.audit.event(
        "auth",
        "login",
        &user.username,
        None,
        source,
        StatusCode::OK,
        format!("{} signed in with single sign-on", user.username),
        json!({"method": "oidc", "role": user.role}),
    );
    Ok(response)
}

/// The answer to a failed sign-in: LangOrch's texts for the caller's side, 502 (cause logged) for the provider's.
fn sign_in_error(e: OidcError) -> ApiError {
    match e {
        OidcError::Exchange { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "sso_code", "Failed to exchange authorization code")
        }
        OidcError::IdToken(Refusal::Nonce) => {
            ApiError::new(StatusCode::BAD_REQUEST, "sso_id_token", "Invalid ID token nonce")
        }
        OidcError::IdToken(_) | OidcError::UserinfoSubject => {
            ApiError::new(StatusCode::BAD_REQUEST, "sso_id_token", "Invalid ID token")
        }
        provider @ OidcError::Provider { .. } => provider_error(provider),
    }
}

fn provider_error(e: OidcError) -> ApiError {
    ApiError::internal(StatusCode::BAD_GATEWAY, "sso_provider_unavailable", &e)
}

/// The user of `identity`: found by the provider's subject (a disabled one refused), else created; their global
/// role set to the one the claims map to when it changed (which ends their other sessions).
async fn provision(state: &AppState, sso: &Oidc, identity: &Identity) -> ApiResult<UserRow> {
    let role = identity.role.map(|r| r.as_str().to_owned());
    let user = match state.store.user_by_subject(PROVIDER, &identity.subject).await? {
        Some(user) => user,
        None => create(state, identity, role.clone()).await?,
    };
    if !user.is_active {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "user_disabled", "User is disabled"));
    }
    if user.role == role {
        return Ok(user);
    }
    tracing::info!(user = %user.username, from = ?user.role, to = ?role, issuer = %sso.config.issuer,
        "single sign-on changed the user's role");
    let update = UserUpdate { role: Some(role), ..UserUpdate::default() };
    Ok(state.store.update_user(&user.user_id, update, true).await?)
}

/// `sso_provider` of users made by OpenID Connect.
const PROVIDER: &str = "oidc";

/// Creates the user of `identity`: username from `preferred_username`, else `email`, else `<sub>@oidc` (made valid
/// and unique with `-2`, `-3`, ...), email, full name, no password. A taken email is left out (accounts are never
/// joined by email: the provider's subject is the identity). A concurrent first sign-in of the same subject wins
/// the race and its user is used.
async fn create(state: &AppState, identity: &Identity, role: Option<String>) -> ApiResult<UserRow> {
    let base = username_base(
        identity.text("preferred_username").or(identity.text("email")).unwrap_or(&format!("{}@oidc", identity.subject)),
    );
    let mut email = identity.text("email").map(str::to_owned);
    let mut suffix = 1u32;
    for _ in 0..50 {
        let username = match suffix {
            1 => base.clone(),
            n => format!("{base}-{n}"),
        };
        if state.store.user_by_name(&username).await?.is_some() {
            suffix += 1;
            continue;
        }
        let row = UserRow {
            username,
            email: email.clone(),
            full_name: identity.text("name").map(str::to_owned),
            role: role.clone(),
            is_active: true,
            sso_provider: Some(PROVIDER.into()),
            sso_subject: Some(identity.subject.clone()),
            ..UserRow::default()
        };
        match state.store.insert_user(row).await {
            Ok(user) => return Ok(user),
            Err(StoreError::Conflict(message)) => {
                if let Some(user) = state.store.user_by_subject(PROVIDER, &identity.subject).await? {
                    return Ok(user);
                }
                if message.starts_with("Email") {
                    email = None;
                } else {
                    suffix += 1;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(format!("No free username for single sign-on user {base:?}")))
}

/// A valid username from a claim: characters other than letters, digits, `.`, `_`, `-`, `@` become `_`, at most
/// 120 characters (room for a suffix).
fn username_base(claim: &str) -> String {
    let cleaned: String = claim
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') { c } else { '_' })
        .take(120)
        .collect();
    match cleaned.is_empty() {
        true => "user".into(),
        false => cleaned,
    }
}

/// The `ckp_sso` cookie: HttpOnly, SameSite=Lax (it must come back on the provider's top-level redirect), sent to
/// the sign-in routes only.
fn sso_cookie(state: &AppState, value: &str, max_age: i64) -> String {
    let secure = if state.auth.config.secure_cookies { "; Secure" } else { "" };
    format!(
        "{}={value}; Path={}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        sso_state::COOKIE,
        sso_state::COOKIE_PATH
    )
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn usernames_from_claims_are_valid() {
        assert_eq!(super::username_base("ann@example.com"), "ann@example.com");
        assert_eq!(super::username_base("Ann Lee/ops"), "Ann_Lee_ops");
        assert_eq!(super::username_base(&"x".repeat(300)).len(), 120);
    }
}
