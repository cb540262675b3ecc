//! Single sign-on against a real OpenID provider: `oidc-provider` (pinned in `tests/oidc/package.json`, started by
//! `tests/oidc/provider.mjs` on 127.0.0.1) driven like a browser (its login and consent forms filled in, cookies
//! kept per origin, redirects followed by hand). The full flow provisions the user with the mapped role and signs
//! them in by cookie; a wrong state, an altered `ckp_sso` cookie and a replayed callback are refused; a disabled
//! user is refused; the status route and a server without SSO answer as LangOrch does. Node.js and the package are
//! required: a missing one fails the test with what to do, never a silent skip.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ckp_server::auth::Role;
use ckp_server::settings::RoleMapping;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::support::TestServer;

const CLIENT_ID: &str = "ckp-test";
const CLIENT_SECRET: &str = "ckp-test-secret with spaces & symbols";

/// `node` and `tests/oidc/provider.mjs`, or a panic saying how to install them.
fn node_and_script() -> (String, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc");
    let node = std::env::var("CKP_TEST_NODE").unwrap_or_else(|_| "node".into());
    match std::process::Command::new(&node).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            panic!("SSO tests need Node.js 18 or later: `{node}` cannot be run (install Node.js, or set CKP_TEST_NODE)")
        }
    }
    let package = dir.join("node_modules/oidc-provider/package.json");
    assert!(
        package.is_file(),
        "SSO tests need oidc-provider: run `npm ci --prefix {}` (scripts/test does it); {} is missing",
        dir.display(),
        package.display()
    );
    (node, dir.join("provider.mjs"))
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("addr").port()
}

/// The provider process (killed on drop) and its issuer URL.
struct Provider {
    _child: tokio::process::Child,
    issuer: String,
}

impl Provider {
    async fn start(port: u16, redirect_uri: &str, alg: &str) -> Provider {
        let (node, script) = node_and_script();
        let child = tokio::process::Command::new(node)
            .arg(script)
            .args([&port.to_string(), CLIENT_ID, CLIENT_SECRET, redirect_uri, alg])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the OpenID provider starts");
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Provider { _child: child, issuer: format!("http://127.0.0.1:{port}") };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the OpenID provider did not listen on port {port} within 15 s");
    }
}

/// A server with authentication on and SSO configured for a provider on `provider_port`, and that provider.
async fn sso_server(name: &str, alg: &str) -> (TestServer, Provider) {
    let provider_port = free_port();
    let server = TestServer::start_with(name, |c| {
        c.auth = "on".into();
        c.auth_failures_per_minute = 1000;
        c.oidc_issuer = Some(format!("http://127.0.0.1:{provider_port}"));
        c.oidc_client_id = Some(CLIENT_ID.into());
        c.oidc_client_secret = Some(CLIENT_SECRET.into());
        c.oidc_role_mapping = RoleMapping(BTreeMap::from([("ckp-admins".to_owned(), Role::Admin)]));
    })
    .await;
    // The default redirect URI: the server's own address.
    let provider = Provider::start(provider_port, &server.url("/api/auth/sso/callback"), alg).await;
    (server, provider)
}

/// A browser: cookies per origin, redirects by hand.
struct Browser {
    http: reqwest::Client,
    jar: BTreeMap<String, BTreeMap<String, String>>,
}

/// A response as the browser saw it.
struct Seen {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

fn origin(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

impl Browser {
    fn new() -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Browser { http, jar: BTreeMap::new() }
    }

    fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(url).expect("url");
        self.jar.get(&origin(&url)).and_then(|c| c.get(name)).cloned()
    }

    fn set_cookie(&mut self, url: &str, name: &str, value: &str) {
        let url = reqwest::Url::parse(url).expect("url");
        self.jar.entry(origin(&url)).or_default().insert(name.into(), value.into());
    }

    async fn send(&mut self, method: reqwest::Method, url: &str, form: Option<&[(String, String)]>) -> Seen {
        let parsed = reqwest::Url::parse(url).expect("url");
        let mut req = self.http.request(method, parsed.clone());
        if let Some(cookies) = self.jar.get(&origin(&parsed)).filter(|c| !c.is_empty()) {
            let header = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            req = req.header(COOKIE, header);
        }
        if let Some(form) = form {
            let body = form
                .iter()
                .map(|(k, v)| format!("{k}={}", v.replace('%', "%25").replace('&', "%26").replace('=', "%3D")))
                .collect::<Vec<_>>()
                .join("&");
            req = req.header("content-type", "application/x-www-form-urlencoded").body(body);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| parsed.join(l).expect("a location").to_string());
        let set_cookies: Vec<String> =
            resp.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
        let jar = self.jar.entry(origin(&parsed)).or_default();
        for c in &set_cookies {
            let Some((name, rest)) = c.split_once('=') else { continue };
            let value = rest.split(';').next().unwrap_or_default();
            let expired = c.to_ascii_lowercase().contains("max-age=0") || c.contains("1970");
            match expired || value.is_empty() {
                true => jar.remove(name),
                false => jar.insert(name.to_owned(), value.to_owned()),
            };
        }
        let body = resp.text().await.unwrap_or_default();
        Seen { status, location, set_cookies, body }
    }

    async fn get(&mut self, url: &str) -> Seen {
        self.send(reqwest::Method::GET, url, None).await
    }

    /// From `start`, follows redirects and fills the provider's forms (signing in as `login`) until a redirect
    /// to `stop_at`; returns that URL (not followed).
    async fn through_provider(&mut self, start: &str, login: &str, stop_at: &str) -> String {
        let mut url = start.to_owned();
        for _ in 0..20 {
            let seen = self.get(&url).await;
            let mut next = seen.location.clone();
            if seen.status == 200 && seen.body.contains("<form") {
                let (action, fields) = form(&seen.body, login);
                let action = reqwest::Url::parse(&url).expect("url").join(&action).expect("action").to_string();
                let posted = self.send(reqwest::Method::POST, &action, Some(&fields)).await;
                assert!(posted.location.is_some(), "the form at {url} answered {}: {}", posted.status, posted.body);
                next = posted.location;
            }
            let Some(next) = next else { panic!("{url} answered {} without a redirect: {}", seen.status, seen.body) };
            if next.starts_with(stop_at) {
                return next;
            }
            url = next;
        }
        panic!("the sign-in never came back to {stop_at}");
    }
}

/// The form of an interaction page: its action and fields (hidden inputs, and a login when it asks for one).
fn form(html: &str, login: &str) -> (String, Vec<(String, String)>) {
    let attr = |tag: &str, name: &str| {
        let key = format!("{name}=\"");
        tag.find(&key).map(|i| tag[i + key.len()..].split('"').next().unwrap_or_default().to_owned())
    };
    let start = html.find("<form").expect("a form");
    let form_tag = &html[start..html[start..].find('>').map_or(html.len(), |e| start + e)];
    let action = attr(form_tag, "action").expect("an action");
    let mut fields = Vec::new();
    for input in html[start..].split("<input").skip(1) {
        let tag = input.split('>').next().unwrap_or_default();
        match (attr(tag, "name").as_deref(), attr(tag, "value")) {
            (Some("login"), _) => fields.push(("login".into(), login.into())),
            (Some("password"), _) => fields.push(("password".into(), "any password".into())),
            (Some(name), Some(value)) => fields.push((name.into(), value)),
            _ => {}
        }
    }
    (action, fields)
}

async fn me(server: &TestServer, session: &str) -> (u16, Value) {
    let resp = server
        .http
        .get(server.url("/api/auth/me"))
        .header(COOKIE, format!("ckp_session={session}"))
        .send()
        .await
        .expect("sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Signs in as `login` from a fresh browser; returns the browser and the callback URL the provider sent it to.
async fn up_to_callback(server: &TestServer, login: &str, next: &str) -> (Browser, String) {
    let mut browser = Browser::new();
    let start = server.url(&format!("/api/auth/sso/login?next={next}"));
    let callback = browser.through_provider(&start, login, &server.url("/api/auth/sso/callback")).await;
    (browser, callback)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sign_in_provisions_the_user_with_the_mapped_role_and_a_session_cookie() {
    let (server, provider) = sso_server("sso-flow", "RS256").await;
    let (status, body) = server.call("GET", "/api/auth/sso/status", None).await;
    assert_eq!((status, body), (200, json!({"sso_enabled": true, "login_url": "/api/auth/sso/login"})));

    // The login redirect: to the provider, with PKCE and a state cookie of its own.
    let mut browser = Browser::new();
    let login = browser.get(&server.url("/api/auth/sso/login?next=/runs")).await;
    assert_eq!(login.status, 303);
    let to = reqwest::Url::parse(login.location.as_deref().expect("a location")).expect("url");
    assert!(to.as_str().starts_with(&format!("{}/auth?", provider.issuer)), "{to}");
    let q: BTreeMap<String, String> = to.query_pairs().into_owned().collect();
    assert_eq!((q["response_type"].as_str(), q["code_challenge_method"].as_str()), ("code", "S256"));
    assert_eq!(q["redirect_uri"], server.url("/api/auth/sso/callback"));
    let cookie = login.set_cookies.iter().find(|c| c.starts_with("ckp_sso=")).expect("the ckp_sso cookie");
    for part in ["HttpOnly", "SameSite=Lax", "Path=/api/auth/sso", "Max-Age=600"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }

    // Through the provider's forms, back to the callback.
    let callback = browser.through_provider(to.as_str(), "alice", &server.url("/api/auth/sso/callback")).await;
    let done = browser.get(&callback).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some(server.url("/runs").as_str()), "back to the page asked for");
    assert!(!done.location.as_deref().unwrap_or_default().contains("token"), "no token in the URL");
    assert!(done.set_cookies.iter().any(|c| c.starts_with("ckp_sso=;") && c.contains("Max-Age=0")), "cleared");
    let session = browser.cookie(&server.base, "ckp_session").expect("the session cookie");

    // Signed in by cookie, provisioned with the mapped role.
    let (status, me_body) = me(&server, &session).await;
    assert_eq!(status, 200, "{me_body}");
    assert_eq!(me_body["identity"], "alice");
    assert_eq!(me_body["role"], "admin", "ckp-admins maps to admin");
    assert_eq!(me_body["email"], "alice@example.com");
    assert_eq!(me_body["full_name"], "Test alice");
    let user_id = me_body["user_id"].as_str().expect("a user").to_owned();
    let admin = |req: reqwest::RequestBuilder| {
        req.header(COOKIE, format!("ckp_session={session}")).header("x-requested-with", "test")
    };
    let user: Value = admin(server.http.get(server.url(&format!("/api/users/{user_id}"))))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(user["sso_provider"], "oidc");

    // A second sign-in finds the same user (by subject) rather than making another.
    let (mut again, callback) = up_to_callback(&server, "alice", "/").await;
    assert_eq!(again.get(&callback).await.status, 303);
    let users: Value =
        admin(server.http.get(server.url("/api/users"))).send().await.expect("sent").json().await.expect("json");
    let alices = users.as_array().expect("users").iter().filter(|u| u["email"] == "alice@example.com").count();
    assert_eq!(alices, 1, "{users}");

    // A user whose groups are not mapped gets the default role (viewer); disabled, they are refused.
    let (mut plain, callback) = up_to_callback(&server, "plain-bob", "/").await;
    assert_eq!(plain.get(&callback).await.status, 303);
    let bob = plain.cookie(&server.base, "ckp_session").expect("bob's session");
    let (_, bob_me) = me(&server, &bob).await;
    assert_eq!((bob_me["identity"].as_str(), bob_me["role"].as_str()), (Some("plain-bob"), Some("viewer")));
    let bob_id = bob_me["user_id"].as_str().expect("bob").to_owned();
    let disabled = admin(server.http.put(server.url(&format!("/api/users/{bob_id}"))))
        .json(&json!({"is_active": false}))
        .send()
        .await
        .expect("sent");
    assert_eq!(disabled.status(), 200);
    let (mut plain, callback) = up_to_callback(&server, "plain-bob", "/").await;
    let refused = plain.get(&callback).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("User is disabled"), "{}", refused.body);

    // Logout ends the session at once.
    let out = admin(server.http.post(server.url("/api/auth/logout"))).send().await.expect("sent");
    assert_eq!(out.status(), 204);
    assert_eq!(me(&server, &session).await.0, 401);

    // The audit log has the sign-ins and the refusal, with their method.
    assert_eq!(plain.cookie(&server.base, "ckp_session"), None, "the disabled user got no session");
    let (mut admin_again, callback) = up_to_callback(&server, "alice", "/").await;
    assert_eq!(admin_again.get(&callback).await.status, 303);
    let s = admin_again.cookie(&server.base, "ckp_session").expect("session");
    let audit: Value = server
        .http
        .get(server.url("/api/audit?category=auth"))
        .header(COOKIE, format!("ckp_session={s}"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let events = audit["events"].as_array().expect("events");
    assert!(events.iter().any(|e| e["action"] == "login" && e["actor"] == "alice" && e["meta"]["method"] == "oidc"));
    assert!(events.iter().any(|e| e["action"] == "login_failed" && e["meta"]["method"] == "oidc"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_state_an_altered_cookie_and_a_replayed_callback_are_refused() {
    let (server, _provider) = sso_server("sso-refusals", "ES256").await;
    let invalid = |seen: &Seen| seen.status == 400 && seen.body.contains("Invalid or expired SSO state");

    // A state that is not this browser's.
    let (mut browser, callback) = up_to_callback(&server, "carol", "/").await;
    let mut url = reqwest::Url::parse(&callback).expect("url");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), if k == "state" { "not-the-state" } else { v.as_str() })));
    let seen = browser.get(url.as_str()).await;
    assert!(invalid(&seen), "{} {}", seen.status, seen.body);

    // The right state, but the cookie altered (its signature no longer matches).
    let (mut browser, callback) = up_to_callback(&server, "carol", "/").await;
    let cookie = browser.cookie(&server.base, "ckp_sso").expect("ckp_sso");
    let (body, mac) = cookie.split_once('.').expect("signed");
    let flipped = if body.ends_with('A') { 'B' } else { 'A' };
    browser.set_cookie(&server.base, "ckp_sso", &format!("{}{flipped}.{mac}", &body[..body.len() - 1]));
    let seen = browser.get(&callback).await;
    assert!(invalid(&seen), "{} {}", seen.status, seen.body);

    // The callback from another browser (no cookie): a sign-in cannot be completed elsewhere (login CSRF).
    let (_, callback) = up_to_callback(&server, "carol", "/").await;
    let seen = Browser::new().get(&callback).await;
    assert!(invalid(&seen), "{} {}", seen.status, seen.body);

    // The genuine callback works (ES256 ID tokens), once: the cookie is cleared, so a replay is refused.
    let (mut browser, callback) = up_to_callback(&server, "carol", "/").await;
    let seen = browser.get(&callback).await;
    assert_eq!(seen.status, 303, "{}", seen.body);
    let seen = browser.get(&callback).await;
    assert!(invalid(&seen), "{} {}", seen.status, seen.body);

    // A `next` outside this server is replaced by `/`.
    let (mut browser, callback) = up_to_callback(&server, "carol", "https://evil.example/").await;
    assert_eq!(browser.get(&callback).await.location.as_deref(), Some(server.url("/").as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sso_the_routes_answer_as_langorch_does() {
    let server = TestServer::start("sso-off").await;
    let (status, body) = server.call("GET", "/api/auth/sso/status", None).await;
    assert_eq!((status, body), (200, json!({"sso_enabled": false})));
    let mut browser = Browser::new();
    let login = browser.get(&server.url("/api/auth/sso/login")).await;
    assert_eq!(login.status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&login.body).ok().map(|b| b["detail"].clone()),
        Some(json!("SSO is not enabled"))
    );
    assert_eq!(browser.get(&server.url("/api/auth/sso/callback?code=c&state=s")).await.status, 400);
}
