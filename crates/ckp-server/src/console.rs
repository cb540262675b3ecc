//! The web console over HTTP: the router's fallback, so every path no API route claims. It serves the files the
//! binary carries (`ckp-console`, feature `console`) with their caching and gzip headers, answers `index.html` for
//! the single-page app's own routes (`/runs/abc`), and without a console in the build a small page saying how to
//! get one. `/api/...` paths keep the API's JSON 404. Everything here is public and holds no data: the app reads
//! the API, which checks credentials. It must not read files at run time or know any route of the app.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Where the console's files come from: the build's own table ([`Console::built`]), or a test's.
#[derive(Debug, Clone, Copy)]
pub enum Console {
    /// No console in this build: `/` answers a page saying how to get one.
    Missing,
    /// A table of files sorted by path, with `index.html` among them.
    #[cfg(feature = "console")]
    Assets(&'static [ckp_console::Asset]),
}

impl Console {
    /// The console this binary was built with (`Missing` without the feature, or when built without Node.js).
    pub fn built() -> Console {
        #[cfg(feature = "console")]
        if ckp_console::built() {
            return Console::Assets(ckp_console::ASSETS);
        }
        Console::Missing
    }
}

/// One file to answer with, whatever table it comes from.
struct File {
    content_type: &'static str,
    body: &'static [u8],
    gzip: Option<&'static [u8]>,
    etag: &'static str,
    immutable: bool,
}

impl Console {
    #[cfg_attr(not(feature = "console"), expect(unused_variables, reason = "only a table has files"))]
    fn file(self, path: &str) -> Option<File> {
        match self {
            Console::Missing => None,
            #[cfg(feature = "console")]
            Console::Assets(table) => ckp_console::find(table, path).map(|a| File {
                content_type: a.content_type,
                body: a.body,
                gzip: a.gzip,
                etag: a.etag,
                immutable: a.immutable,
            }),
        }
    }
}

/// The fallback: a console file, `index.html` for a client route, the API's JSON 404 under `/api`.
pub async fn serve(console: Console, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return crate::error::fallback().await.into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        let mut response = crate::error::method_not_allowed().await.into_response();
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let relative = path.trim_start_matches('/');
    let head = method == Method::HEAD;
    if let Some(file) = console.file(relative) {
        return answer(&file, &headers, head);
    }
    if looks_like_a_file(relative) {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "Not Found").into_response();
    }
    match console.file("index.html") {
        Some(index) => answer(&index, &headers, head),
        None => missing(relative.is_empty(), head),
    }
}

/// Whether a path names a file rather than a client route: under `assets/`, or ending in a static file's
/// extension. Client routes hold ids (`/procedures/invoice.v2`), so a dot alone does not make a file.
fn looks_like_a_file(path: &str) -> bool {
    const EXTENSIONS: &[&str] = &[
        "html",
        "htm",
        "js",
        "mjs",
        "css",
        "map",
        "json",
        "txt",
        "xml",
        "svg",
        "png",
        "jpg",
        "jpeg",
        "gif",
        "webp",
        "avif",
        "ico",
        "woff",
        "woff2",
        "ttf",
        "otf",
        "webmanifest",
        "wasm",
    ];
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    path.starts_with("assets/") || extension.is_some_and(|e| EXTENSIONS.contains(&e.as_str()))
}

/// A file with its caching and encoding headers; 304 when the client's copy is current.
fn answer(file: &File, request: &HeaderMap, head: bool) -> Response {
    let gzip = file.gzip.filter(|_| accepts_gzip(request));
    let etag = match gzip {
        Some(_) => format!("\"{}-gzip\"", file.etag),
        None => format!("\"{}\"", file.etag),
    };
    let mut headers = HeaderMap::new();
    let cache = if file.immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if file.gzip.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if not_modified(request, file.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(file.content_type));
    if gzip.is_some() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    let body = gzip.unwrap_or(file.body);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let body = if head { Body::empty() } else { Body::from(body) };
    (StatusCode::OK, headers, body).into_response()
}

/// Whether `Accept-Encoding` takes gzip (named, or `*`, with a non-zero weight).
fn accepts_gzip(request: &HeaderMap) -> bool {
    let mut named = None;
    let mut any = None;
    for value in request.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => named = Some(weight > 0.0),
                "*" => any = Some(weight > 0.0),
                _ => {}
            }
        }
    }
    named.or(any).unwrap_or(false)
}

/// Whether `If-None-Match` holds the file's tag (either encoding's: both carry the same content).
fn not_modified(request: &HeaderMap, etag: &str) -> bool {
    request.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|value| {
        value.split(',').map(str::trim).any(|tag| {
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            let inner = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"'));
            tag == "*" || inner.is_some_and(|t| t == etag || t.strip_suffix("-gzip") == Some(etag))
        })
    })
}

/// The page a build without the console answers: 200 at `/` (the server is up and says what it lacks), 404 for
/// a client route (nothing is there without the console).
fn missing(root: bool, head: bool) -> Response {
    const PAGE: &str = "<!doctype html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><title>ckp: no web console in this build</title></head>
<body style=\"font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5\">
<h1>ckp is running</h1>
<p>The web console is not in this build: it was built without Node.js and npm, with
<code>CKP_CONSOLE_SKIP=1</code>, or without the <code>console</code> feature.</p>
<p>To get it, install Node.js 20+ and npm, then build and start ckp again:
<code>cargo run --release -p ckp -- serve</code>.</p>
<p>The API works without it: its description is at <a href=\"/api/openapi.json\">/api/openapi.json</a>.</p>
</body>
</html>
";
    let status = if root { StatusCode::OK } else { StatusCode::NOT_FOUND };
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::CONTENT_LENGTH, HeaderValue::from(PAGE.len())),
    ];
    let body = if head { Body::empty() } else { Body::from(PAGE) };
    (status, headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn gzip_is_taken_only_when_accepted_with_weight() {
        let cases = [
            ("gzip", true),
            ("gzip, deflate, br, zstd", true),
            ("br;q=1.0, GZIP;q=0.5", true),
            ("x-gzip", true),
            ("*", true),
            ("gzip;q=0", false),
            ("gzip;q=0.000, *", false),
            ("*;q=0", false),
            ("identity", false),
            ("br, deflate", false),
            ("", false),
        ];
        for (value, expected) in cases {
            assert_eq!(accepts_gzip(&with(header::ACCEPT_ENCODING, value)), expected, "{value}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match_takes_either_encodings_tag() {
        let cases = [
            ("\"abc\"", true),
            ("\"abc-gzip\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abcd\"", false),
            ("abc", false),
            ("\"\"", false),
        ];
        for (value, expected) in cases {
            assert_eq!(not_modified(&with(header::IF_NONE_MATCH, value), "abc"), expected, "{value}");
        }
    }

    #[test]
    fn files_are_told_from_client_routes() {
        for file in ["assets/nope.js", "favicon.ico", "robots.txt", "assets/x", "a/b/site.webmanifest", "x.JSON"] {
            assert!(looks_like_a_file(file), "{file}");
        }
        for route in ["", "runs", "runs/abc", "procedures/invoice.v2", "runs/2026.12.05", "assets"] {
            assert!(!looks_like_a_file(route), "{route}");
        }
    }
}
