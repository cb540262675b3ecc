//! The route → permission table ([`RULES`]) and the middleware that enforces it ([`guard`]) on every route the
//! router matched. Each rule names a permission (`runs.create`, `approvals.decide`, ...: what the audit log
//! records), the role it needs and how far that role must reach:
//!
//! * [`Access::Server`]: the caller's *global* role must be at least the role (agents, secrets, users, queue);
//! * [`Access::Project`]: the caller must hold the role on some project, and the handler then checks the object's
//!   own project ([`super::Principal::require`]) or filters a list to the projects the caller may see;
//! * [`Access::Authenticated`]: any caller; the handler decides (`/api/auth/me`, a user reading themself, own keys);
//! * [`Access::Signed`]: the route checks its own signature (workflow callbacks, credential grants);
//! * [`Access::Public`]: health, the OpenAPI document, sign-in (password and single sign-on).
//!
//! A route missing from the table needs a global `admin` (fail closed) and the authorization matrix test fails;
//! `docs/auth-routes.md` is generated from the table by a test, so the documentation cannot drift.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::audit::AuditSink;
use super::principal::{Authenticator, Principal, Role, forbidden};
use crate::error::ApiError;

/// How far a rule's role must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential needed.
    Public,
    /// The route checks its own signature.
    Signed,
    /// Any authenticated caller; the handler decides the rest.
    Authenticated,
    /// The role on the object's project (the handler checks the object).
    Project(Role),
    /// The role globally.
    Server(Role),
}

/// One route's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// HTTP method.
    pub method: &'static str,
    /// Path as the router declares it.
    pub path: &'static str,
    /// Permission name (`category.action`), recorded by the audit log.
    pub permission: &'static str,
    /// Who may call it.
    pub access: Access,
}

const fn rule(method: &'static str, path: &'static str, permission: &'static str, access: Access) -> Rule {
    Rule { method, path, permission, access }
}

use Access::{Authenticated, Project, Public, Server, Signed};
use Role::{Admin, Approver, Manager, Operator, Viewer};

/// Every route of the API.
pub const RULES: &[Rule] = &[
    rule("GET", "/api/health", "health.read", Public),
    rule("GET", "/api/openapi.json", "openapi.read", Public),
    rule("GET", "/api/metrics", "metrics.read", Server(Viewer)),
    rule("GET", "/api/actions", "actions.read", Project(Viewer)),
    // Sign-in and identity.
    rule("POST", "/api/auth/login", "auth.login", Public),
    rule("POST", "/api/auth/refresh", "auth.refresh", Public),
    rule("POST", "/api/auth/logout", "auth.logout", Authenticated),
    rule("GET", "/api/auth/me", "auth.me", Authenticated),
    rule("POST", "/api/auth/token", "auth.token", Server(Admin)),
    rule("GET", "/api/auth/sso/status", "auth.sso", Public),
    rule("GET", "/api/auth/sso/login", "auth.sso", Public),
    rule("GET", "/api/auth/sso/callback", "auth.sso", Public),
    rule("GET", "/api/users", "users.read", Server(Manager)),
    rule("POST", "/api/users", "users.create", Server(Admin)),
    rule("GET", "/api/users/{user_id}", "users.read", Authenticated),
    rule("PUT", "/api/users/{user_id}", "users.update", Server(Admin)),
    rule("DELETE", "/api/users/{user_id}", "users.delete", Server(Admin)),
    rule("PUT", "/api/users/{user_id}/projects/{project_id}", "users.grant", Server(Admin)),
    rule("DELETE", "/api/users/{user_id}/projects/{project_id}", "users.grant", Server(Admin)),
    rule("GET", "/api/api-keys", "api_keys.read", Authenticated),
    rule("POST", "/api/api-keys", "api_keys.create", Authenticated),
    rule("DELETE", "/api/api-keys/{key_id}", "api_keys.revoke", Authenticated),
    rule("GET", "/api/audit", "audit.read", Server(Manager)),
    // Procedures.
    rule("POST", "/api/procedures", "procedures.write", Project(Operator)),
    rule("GET", "/api/procedures", "procedures.read", Project(Viewer)),
    rule("GET", "/api/procedures/{procedure_id}/versions", "procedures.read", Project(Viewer)),
    rule("GET", "/api/procedures/{procedure_id}/{version}", "procedures.read", Project(Viewer)),
    rule("PUT", "/api/procedures/{procedure_id}/{version}", "procedures.write", Project(Operator)),
    rule("DELETE", "/api/procedures/{procedure_id}/{version}", "procedures.delete", Project(Operator)),
    rule("PATCH", "/api/procedures/{procedure_id}/{version}/status", "procedures.status", Project(Operator)),
    rule("GET", "/api/procedures/{procedure_id}/{version}/graph", "procedures.read", Project(Viewer)),
    rule("POST", "/api/procedures/{procedure_id}/{version}/explain", "procedures.read", Project(Viewer)),
    rule("POST", "/api/procedures/validate", "procedures.validate", Authenticated),
    rule("GET", "/api/procedures/{procedure_id}/{version}/builder-draft", "procedures.read", Project(Viewer)),
    rule("PUT", "/api/procedures/{procedure_id}/{version}/builder-draft", "procedures.draft", Project(Operator)),
    rule("DELETE", "/api/procedures/{procedure_id}/{version}/builder-draft", "procedures.draft", Project(Operator)),
    rule("POST", "/api/procedures/{procedure_id}/{version}/test-runs", "runs.create", Project(Operator)),
    // Runs.
    rule("POST", "/api/runs", "runs.create", Project(Operator)),
    rule("GET", "/api/runs", "runs.read", Project(Viewer)),
    rule("GET", "/api/runs/metrics/summary", "runs.read", Server(Viewer)),
    rule("GET", "/api/runs/{run_id}/timeline", "runs.read", Project(Viewer)),
    rule("GET", "/api/runs/{run_id}/cost", "runs.read", Project(Viewer)),
    rule("GET", "/api/runs/queue", "runs.read", Server(Viewer)),
    rule("GET", "/api/runs/stats", "runs.read", Project(Viewer)),
    rule("GET", "/api/search", "search.read", Project(Viewer)),
    rule("DELETE", "/api/runs/cleanup/history", "runs.cleanup", Server(Admin)),
    rule("GET", "/api/runs/{run_id}", "runs.read", Project(Viewer)),
    rule("DELETE", "/api/runs/{run_id}", "runs.delete", Project(Operator)),
    rule("GET", "/api/runs/{run_id}/events", "runs.read", Project(Viewer)),
    rule("GET", "/api/runs/{run_id}/stream", "runs.read", Project(Viewer)),
    rule("GET", "/api/runs/{run_id}/artifacts", "runs.read", Project(Viewer)),
    rule("GET", "/api/runs/{run_id}/diagnostics", "runs.read", Project(Viewer)),
    rule("GET", "/api/runs/{run_id}/checkpoints", "runs.read", Project(Viewer)),
    rule("GET", "/api/runs/{run_id}/checkpoints/{checkpoint_id}", "runs.read", Project(Viewer)),
    rule("POST", "/api/runs/{run_id}/cancel", "runs.cancel", Project(Operator)),
    rule("POST", "/api/runs/{run_id}/retry", "runs.retry", Project(Operator)),
    rule("POST", "/api/runs/{run_id}/callback", "runs.callback", Signed),
    rule("GET", "/api/artifacts/{*path}", "runs.read", Project(Viewer)),
    // Approvals.
    rule("GET", "/api/approvals", "approvals.read", Project(Viewer)),
    rule("GET", "/api/approvals/stream", "approvals.read", Project(Viewer)),
    rule("GET", "/api/approvals/{approval_id}", "approvals.read", Project(Viewer)),
    rule("POST", "/api/approvals/{approval_id}/decision", "approvals.decide", Project(Approver)),
    // Agents and leases (shared by every project).
    rule("GET", "/api/agents", "agents.read", Project(Viewer)),
    rule("POST", "/api/agents", "agents.write", Server(Operator)),
    rule("GET", "/api/agents/{agent_id}", "agents.read", Project(Viewer)),
    rule("PUT", "/api/agents/{agent_id}", "agents.write", Server(Operator)),
    rule("DELETE", "/api/agents/{agent_id}", "agents.delete", Server(Operator)),
    rule("GET", "/api/leases", "leases.read", Project(Viewer)),
    rule("DELETE", "/api/leases/{lease_id}", "leases.revoke", Server(Operator)),
    // Projects.
    rule("GET", "/api/projects", "projects.read", Project(Viewer)),
    rule("POST", "/api/projects", "projects.create", Server(Manager)),
    rule("GET", "/api/projects/{project_id}", "projects.read", Project(Viewer)),
    rule("PUT", "/api/projects/{project_id}", "projects.write", Project(Manager)),
    rule("DELETE", "/api/projects/{project_id}", "projects.delete", Server(Manager)),
    rule("GET", "/api/projects/{project_id}/cost-summary", "projects.read", Project(Viewer)),
    // Secrets (values never leave the server).
    rule("GET", "/api/secrets", "secrets.read", Server(Operator)),
    rule("POST", "/api/secrets", "secrets.write", Server(Admin)),
    rule("GET", "/api/secrets/{name}", "secrets.read", Server(Operator)),
    rule("PUT", "/api/secrets/{name}", "secrets.write", Server(Admin)),
    rule("DELETE", "/api/secrets/{name}", "secrets.delete", Server(Admin)),
    rule("GET", "/api/agent-credentials/{secret_name}", "secrets.grant", Signed),
    // Triggers: registrations span projects, so their roles are global (LangOrch's operator and manager).
    rule("GET", "/api/triggers", "triggers.read", Server(Operator)),
    rule("POST", "/api/triggers/sync", "triggers.write", Server(Manager)),
    rule("POST", "/api/triggers/webhook/{procedure_id}", "triggers.webhook", Signed),
    rule("GET", "/api/triggers/{procedure_id}/{version}", "triggers.read", Server(Operator)),
    rule("POST", "/api/triggers/{procedure_id}/{version}", "triggers.write", Server(Manager)),
    rule("DELETE", "/api/triggers/{procedure_id}/{version}", "triggers.write", Server(Manager)),
    rule("POST", "/api/triggers/{procedure_id}/{version}/fire", "triggers.fire", Server(Operator)),
    rule("POST", "/api/triggers/{procedure_id}/{version}/backfill", "triggers.fire", Server(Manager)),
    rule("GET", "/api/triggers/{procedure_id}/{version}/fires", "triggers.read", Server(Operator)),
];

/// The rule of a route, or None when the table does not have it.
pub fn lookup(method: &Method, path: &str) -> Option<&'static Rule> {
    static INDEX: std::sync::OnceLock<HashMap<(&'static str, &'static str), &'static Rule>> =
        std::sync::OnceLock::new();
    INDEX.get_or_init(|| RULES.iter().map(|r| ((r.method, r.path), r)).collect()).get(&(method.as_str(), path)).copied()
}

/// The rule of a route missing from the table: global admin only.
const UNLISTED: Rule = rule("*", "*", "unlisted", Server(Admin));

/// What the guard needs.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Resolves callers.
    pub auth: Authenticator,
    /// Records mutations.
    pub audit: AuditSink,
}

/// The middleware: resolves the caller, enforces the route's rule, hands the [`Principal`] to the handler, and
/// records every request that changes something (allowed or not) in the audit log.
pub async fn guard(State(g): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let rule = matched.as_deref().and_then(|p| lookup(req.method(), p)).unwrap_or_else(|| {
        tracing::warn!(method = %req.method(), path = ?matched, "route missing from the permission table: admin only");
        &UNLISTED
    });
    let source = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
    let mutation = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let decided = authorize(&g.auth, rule, &method, req.headers(), source.as_deref()).await;
    let (principal, response) = match decided {
        Ok(principal) => {
            req.extensions_mut().insert(principal.clone());
            (Some(principal), next.run(req).await)
        }
        Err(e) => (None, e.into_response()),
    };
    // Login and refresh audit themselves (they know who tried); callbacks and grants are the engine's business.
    if mutation && matches!(rule.access, Access::Authenticated | Access::Project(_) | Access::Server(_)) {
        g.audit.record_request(rule, &method, &path, principal.as_ref(), source, response.status());
    }
    response
}

/// The caller of a request under `rule`, or the error to answer.
async fn authorize(
    auth: &Authenticator,
    rule: &Rule,
    method: &Method,
    headers: &axum::http::HeaderMap,
    source: Option<&str>,
) -> Result<Principal, ApiError> {
    if matches!(rule.access, Access::Public | Access::Signed) {
        return Ok(Principal::nobody());
    }
    // Guessing is possible only for API keys (session tokens are signed): wrong keys are counted per source, and a
    // source over its allowance gets 429 for keys until the window moves on.
    let source_key = source.filter(|_| presents_api_key(headers)).map(|s| format!("ip:{s}"));
    if let Some(wait) = source_key.as_ref().and_then(|k| auth.limiter.blocked(std::slice::from_ref(k))) {
        return Err(ApiError::too_many_attempts(wait));
    }
    let resolved = auth.resolve(method, headers).await;
    let principal = match resolved {
        Ok(Some(p)) => p,
        Ok(None) if auth.config.enabled => return Err(ApiError::unauthorized("Authentication required")),
        Ok(None) => Principal::anonymous_admin(),
        Err(e) => {
            if e.status == StatusCode::UNAUTHORIZED {
                auth.limiter.fail(&source_key.into_iter().collect::<Vec<_>>());
            }
            return Err(e);
        }
    };
    match rule.access {
        Access::Server(role) if principal.global.is_none_or(|g| g < role) => Err(forbidden(role)),
        Access::Project(role) if principal.highest().is_none_or(|r| r < role) => Err(forbidden(role)),
        _ => Ok(principal),
    }
}

fn presents_api_key(h: &axum::http::HeaderMap) -> bool {
    let bearer_key = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.get(7..).is_some_and(|t| t.trim_start().starts_with(super::keys::PREFIX)));
    h.contains_key("x-api-key") || bearer_key
}

/// Security headers on every answer: no sniffing, no framing, no referrer, a same-origin content policy.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; \
             base-uri 'self'; form-action 'self'",
    ));
    if api && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// CORS for the configured origins only (none by default: a browser page of another origin gets no answer it
/// may read). A preflight from an allowed origin is answered here, before authentication.
pub async fn cors(State(origins): State<Arc<Vec<String>>>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_owned);
    let allowed = origin.filter(|o| origins.iter().any(|a| a == o || a == "*"));
    let Some(origin) = allowed else { return next.run(req).await };
    let Ok(value) = HeaderValue::from_str(&origin) else { return next.run(req).await };
    let preflight = req.method() == Method::OPTIONS && req.headers().contains_key("access-control-request-method");
    let mut response = match preflight {
        true => StatusCode::NO_CONTENT.into_response(),
        false => next.run(req).await,
    };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    if preflight {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, x-api-key, x-requested-with, idempotency-key"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
    response
}

/// The table as Markdown (`docs/auth-routes.md`).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Who may call what\n\nGenerated from `crates/ckp-server/src/auth/policy.rs` by the test \
         `docs_auth_routes_md_is_up_to_date` (`CKP_UPDATE_DOCS=1 cargo nextest run -p ckp-server \
         docs_auth_routes_md_is_up_to_date` rewrites it). Roles: viewer < approver < operator < manager < admin, \
         held globally or per project ([docs/auth.md](auth.md)).\n\n\
         * **project:R**: role R on the object's project (lists show only the projects where the caller holds R; \
         an object of another project answers 404);\n\
         * **server:R**: role R held globally;\n\
         * **signed in**: any caller with a valid credential (the handler limits what it shows);\n\
         * **signature**: the request carries its own signature (a callback URL's token, a credential grant);\n\
         * **public**: no credential.\n\n\
         With authentication off (the loopback default), a request without a credential acts as `admin`. \
         Paths outside `/api/` are the web console's files (GET and HEAD, public: they hold no data; the console \
         reads the API with the caller's credential).\n\n\
         | method | path | permission | who |\n|---|---|---|---|\n",
    );
    for r in RULES {
        let who = match r.access {
            Access::Public => "public".to_owned(),
            Access::Signed => "signature".to_owned(),
            Access::Authenticated => "signed in".to_owned(),
            Access::Project(role) => format!("project:{role}"),
            Access::Server(role) => format!("server:{role}"),
        };
        out.push_str(&format!("| {} | `{}` | `{}` | {who} |\n", r.method, r.path, r.permission));
    }
    out
}
