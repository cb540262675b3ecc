//! The application: shared state, the router with every route (the OpenAPI document is generated from the
//! handlers as they are registered), the body limit, JSON 404/405 for the API, and the web console for every
//! other path (`console.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use ckp_engine::Engine;
use ckp_store::Store;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::catalog::Catalog;
use crate::routes;

/// What every handler sees.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Compiled procedures.
    pub catalog: Arc<Catalog>,
    /// The engine (cancellation of runs executing in this process).
    pub engine: Arc<Engine>,
    /// Where run-scoped artifact files live (`<data_dir>/artifacts/<run_id>/...`).
    pub artifacts_dir: PathBuf,
    /// Turns true when the server shuts down: open streams end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Signs and checks workflow callback URLs.
    pub callbacks: Arc<ckp_connectors::workflow::CallbackSigner>,
    /// Secrets providers: the key sealing `/api/secrets` values, cache invalidation, credential grants.
    pub secrets: Arc<ckp_connectors::secrets::SecretManager>,
    /// MCP servers (their tools are listed by `GET /api/actions`; a procedure's declarations are checked at import).
    pub mcp: Arc<ckp_connectors::mcp::McpConnector>,
    /// The egress policy (an agent's URL is checked when it is registered or changed).
    pub egress: ckp_connectors::egress::Egress,
    /// Resolves callers (API keys, session tokens) and holds the authentication settings.
    pub auth: crate::auth::Authenticator,
    /// The audit log's writer.
    pub audit: crate::auth::audit::AuditSink,
    /// Single sign-on with OpenID Connect, when configured.
    pub sso: Option<Arc<crate::auth::oidc::Oidc>>,
    /// The web console's files, served for every path no API route claims.
    pub console: crate::console::Console,
    /// The folders file-drop triggers may read.
    pub file_watch: Arc<crate::triggers::files::Allowed>,
    /// This process's metrics (`GET /api/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Alert webhooks, when configured (`trigger_failed` is raised by the triggers).
    pub alerts: Option<Arc<crate::alerts::Alerts>>,
}

/// Builds the router, with its OpenAPI document at `/api/openapi.json`.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let guard = Arc::new(crate::auth::policy::Guard { auth: state.auth.clone(), audit: state.audit.clone() });
    let cors_origins = Arc::new(state.auth.config.cors_origins.clone());
    let console = state.console;
    let metrics = state.metrics.clone();
    let (router, mut api) = OpenApiRouter::new()
        .routes(routes!(routes::misc::health))
        .routes(routes!(routes::misc::metrics))
        .routes(routes!(routes::auth::login))
        .routes(routes!(routes::auth::refresh))
        .routes(routes!(routes::auth::logout))
        .routes(routes!(routes::auth::me))
        .routes(routes!(routes::auth::token))
        .routes(routes!(routes::sso::status))
        .routes(routes!(routes::sso::login))
        .routes(routes!(routes::sso::callback))
        .routes(routes!(routes::users::list, routes::users::create))
        .routes(routes!(routes::users::get, routes::users::update, routes::users::delete))
        .routes(routes!(routes::users::grant, routes::users::revoke_grant))
        .routes(routes!(routes::api_keys::list, routes::api_keys::create))
        .routes(routes!(routes::api_keys::revoke))
        .routes(routes!(routes::audit::list))
        .routes(routes!(routes::misc::actions))
        .routes(routes!(routes::procedures::import, routes::procedures::list))
        .routes(routes!(routes::procedures::versions))
        .routes(routes!(routes::procedures::get, routes::procedures::update, routes::procedures::delete))
        .routes(routes!(routes::procedures::set_status))
        .routes(routes!(routes::procedures::graph))
        .routes(routes!(routes::procedures::explain))
        .routes(routes!(routes::authoring::validate))
        .routes(routes!(routes::authoring::get_draft, routes::authoring::put_draft, routes::authoring::delete_draft))
        .routes(routes!(routes::authoring::test_run))
        .routes(routes!(routes::runs::create, routes::runs::list))
        .routes(routes!(routes::runs::metrics_summary))
        .routes(routes!(routes::run_report::timeline))
        .routes(routes!(routes::run_report::cost))
        .routes(routes!(routes::insights::stats))
        .routes(routes!(routes::insights::search))
        .routes(routes!(routes::runs::queue))
        .routes(routes!(routes::runs::cleanup))
        .routes(routes!(routes::runs::get, routes::runs::delete))
        .routes(routes!(routes::runs::events))
        .routes(routes!(crate::sse::run_stream))
        .routes(routes!(routes::runs::artifacts))
        .routes(routes!(routes::runs::diagnostics))
        .routes(routes!(routes::runs::checkpoints))
        .routes(routes!(routes::runs::checkpoint))
        .routes(routes!(routes::runs::cancel))
        .routes(routes!(routes::runs::retry))
        .routes(routes!(routes::callbacks::callback))
        .routes(routes!(routes::approvals::list))
        .routes(routes!(crate::sse::approval_stream))
        .routes(routes!(routes::approvals::get))
        .routes(routes!(routes::approvals::decide))
        .routes(routes!(routes::registry::list_agents, routes::registry::create_agent))
        .routes(routes!(routes::registry::get_agent, routes::registry::update_agent, routes::registry::delete_agent))
        .routes(routes!(routes::registry::list_leases))
        .routes(routes!(routes::registry::revoke_lease))
        .routes(routes!(routes::registry::list_projects, routes::registry::create_project))
        .routes(routes!(
            routes::registry::get_project,
            routes::registry::update_project,
            routes::registry::delete_project
        ))
        .routes(routes!(routes::registry::cost_summary))
        .routes(routes!(routes::secrets::list, routes::secrets::create))
        .routes(routes!(routes::secrets::get, routes::secrets::update, routes::secrets::delete))
        .routes(routes!(routes::credentials::exchange))
        .routes(routes!(routes::triggers::list_triggers))
        .routes(routes!(routes::triggers::sync_triggers))
        .routes(routes!(routes::triggers::receive_webhook))
        .routes(routes!(
            routes::triggers::get_trigger,
            routes::triggers::put_trigger,
            routes::triggers::disable_trigger
        ))
        .routes(routes!(routes::triggers::fire_now))
        .routes(routes!(routes::triggers::backfill))
        .routes(routes!(routes::triggers::list_fires))
        .route("/api/artifacts/{*path}", axum::routing::get(routes::registry::artifact_file))
        .with_state(state)
        .split_for_parts();
    api.info.title = "ckp".into();
    api.info.contact = None;
    api.info.license = Some(utoipa::openapi::License::new("Apache-2.0"));
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description =
        Some("ckp's REST API: LangOrch-compatible paths, fields and statuses, with its defects fixed.".into());
    declare_common_errors(&mut api);
    unique_operation_ids(&mut api);
    // Served as serialized once: the document's tree is ~a megabyte of maps the process need not keep.
    let doc = axum::body::Bytes::from(document(&api));
    drop(api);
    router
        .route(
            "/api/openapi.json",
            axum::routing::get(move || async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], doc) }),
        )
        .route_layer(axum::middleware::from_fn_with_state(guard, crate::auth::policy::guard))
        // Outside the guard: refused requests are counted too.
        .route_layer(axum::middleware::from_fn_with_state(metrics, track_http))
        .fallback(move |method, uri, headers| crate::console::serve(console, method, uri, headers))
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
            refuse_declared_oversize(req, next, max_body_bytes)
        }))
        .layer(axum::middleware::from_fn_with_state(cors_origins, crate::auth::policy::cors))
        .layer(axum::middleware::from_fn(crate::auth::policy::security_headers))
}

/// Counts a routed request by its declared route (never the raw path: bounded labels) and status, and times it to
/// its response head.
async fn track_http(
    axum::extract::State(metrics): axum::extract::State<Arc<crate::metrics::Metrics>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let route = req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_owned());
    let method = req.method().clone();
    let response = next.run(req).await;
    if let Some(route) = route {
        metrics.http_request(method.as_str(), &route, response.status().as_u16(), started.elapsed());
    }
    response
}

/// Answers 413 before routing when the declared `Content-Length` is over the limit, so a client announcing a huge
/// body gets its answer at once instead of after sending it (the body limit still cuts bodies sent without one).
async fn refuse_declared_oversize(
    req: axum::extract::Request,
    next: axum::middleware::Next,
    max_body_bytes: usize,
) -> axum::response::Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(max_body_bytes).unwrap_or(u64::MAX)) {
        return axum::response::IntoResponse::into_response(crate::error::ApiError::body_too_large());
    }
    next.run(req).await
}

/// Makes every operation id unique: utoipa names an operation after its handler, and several modules have a `list`
/// or a `get`. Generated clients key their types by operation id, so a shared one gives an operation another's
/// types. A unique handler name stays as it is; a shared one is prefixed with the operation's tag (`secrets_list`),
/// and with its method too when that still collides.
fn unique_operation_ids(api: &mut OpenApi) {
    use std::collections::HashMap;
    let mut uses: HashMap<String, usize> = HashMap::new();
    for item in api.paths.paths.values() {
        for op in [&item.get, &item.put, &item.post, &item.delete, &item.patch].into_iter().flatten() {
            if let Some(id) = &op.operation_id {
                *uses.entry(id.clone()).or_default() += 1;
            }
        }
    }
    let mut taken: std::collections::HashSet<String> =
        uses.iter().filter(|(_, n)| **n == 1).map(|(id, _)| id.clone()).collect();
    for item in api.paths.paths.values_mut() {
        let operations = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ];
        for (method, op) in operations {
            let Some(op) = op else { continue };
            let Some(id) = op.operation_id.clone() else { continue };
            if uses.get(&id).copied().unwrap_or(0) < 2 {
                continue;
            }
            let tag = op.tags.as_ref().and_then(|t| t.first()).cloned().unwrap_or_default();
            let mut fresh = format!("{tag}_{id}").replace('-', "_");
            if !taken.insert(fresh.clone()) {
                fresh = format!("{tag}_{method}_{id}").replace('-', "_");
                taken.insert(fresh.clone());
            }
            op.operation_id = Some(fresh);
        }
    }
}

/// Declares, on every operation, the error statuses the shared machinery answers whatever the handler (the
/// extractors of `error.rs`, the body limit, the store): written once here from what each operation takes, so the
/// document cannot miss one. Statuses a handler declares itself keep their description.
fn declare_common_errors(api: &mut OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
        RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
    };
    use crate::auth::policy::{Access, lookup};
    for (path, item) in api.paths.paths.iter_mut() {
        let operations = [
            (axum::http::Method::GET, &mut item.get),
            (axum::http::Method::PUT, &mut item.put),
            (axum::http::Method::POST, &mut item.post),
            (axum::http::Method::DELETE, &mut item.delete),
            (axum::http::Method::PATCH, &mut item.patch),
        ];
        for (method, op) in operations {
            let Some(op) = op else { continue };
            let access = lookup(&method, path).map_or(Access::Server(crate::auth::Role::Admin), |r| r.access);
            let has_body = op.request_body.is_some();
            let has_query = op
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
            let mut statuses = vec![("503", "The store is unavailable: the body holds an error_id, the log its cause")];
            if has_body {
                statuses.extend([
                    ("400", "The body is not valid JSON (malformed_json)"),
                    ("408", "The body did not arrive within body_timeout_ms (request_timeout)"),
                    ("413", "The body is over max_body_bytes (body_too_large)"),
                    ("415", "The body is not sent as application/json (unsupported_media_type)"),
                    ("422", "The body or a value in it is not valid"),
                ]);
            }
            if has_query {
                statuses.push(("422", "A query parameter is not valid (invalid_query)"));
            }
            if !matches!(access, Access::Public | Access::Signed) {
                statuses.extend([
                    ("401", "No valid credential (authentication on): an API key (X-API-Key or Bearer) or a session"),
                    ("403", "The caller's role is not enough for this operation"),
                    ("429", "Too many failed credentials from this address: retry after Retry-After seconds"),
                ]);
            }
            for (status, description) in statuses {
                op.responses.responses.entry(status.to_owned()).or_insert_with(|| error(description));
            }
        }
    }
}

/// The OpenAPI document as JSON.
fn document(api: &OpenApi) -> String {
    api.to_json().unwrap_or_else(|e| serde_json::json!({"detail": format!("no OpenAPI document: {e}")}).to_string())
}
