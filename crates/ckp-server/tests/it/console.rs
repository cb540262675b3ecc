//! The web console through a real server: a table of files read from `crates/ckp-console/tests/fixture-dist` (a
//! tiny built console) handed to the server, and a server with no console.

#[cfg(feature = "console")]
use std::io::{Read, Write};

use ckp_server::console::Console;
use reqwest::header;

use crate::support::TestServer;

#[cfg(feature = "console")]
const HASHED_JS: &str = "assets/index-3f9a2c1b.js";

/// The fixture's files as the build would table them: sorted, a gzip copy for text, hashed names under `assets/`.
#[cfg(feature = "console")]
fn fixture() -> Console {
    use ckp_console::Asset;
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ckp-console/tests/fixture-dist");
    let files = [
        (HASHED_JS, "text/javascript; charset=utf-8"),
        ("assets/index-5e6f7a8b.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
        ("index.html", "text/html; charset=utf-8"),
    ];
    let table: Vec<Asset> = files
        .iter()
        .enumerate()
        .map(|(i, (path, content_type))| {
            let body: &'static [u8] = std::fs::read(dist.join(path)).expect("fixture file").leak();
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder.write_all(body).expect("gzip");
            let gzip: &'static [u8] = encoder.finish().expect("gzip").leak();
            Asset {
                path,
                content_type,
                body,
                // The stylesheet goes without a copy, as a file that does not shrink would.
                gzip: (*path != "assets/index-5e6f7a8b.css").then_some(gzip),
                etag: Box::leak(format!("e{i}{}", body.len()).into_boxed_str()),
                immutable: path.starts_with("assets/"),
            }
        })
        .collect();
    Console::Assets(table.leak())
}

#[cfg(feature = "console")]
fn fixture_file(path: &str) -> Vec<u8> {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ckp-console/tests/fixture-dist");
    std::fs::read(dist.join(path)).expect("fixture file")
}

async fn get(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = server.http.get(server.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("sent")
}

fn header_of(resp: &reqwest::Response, name: header::HeaderName) -> &str {
    resp.headers().get(&name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[cfg(feature = "console")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_routes_get_index_html_and_files_their_bytes() {
    let server = TestServer::start_console("console-routes", fixture()).await;
    let index = fixture_file("index.html");
    for path in ["/", "/runs", "/runs/abc", "/procedures/invoice.v2", "/index.html"] {
        let resp = get(&server, path, &[]).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(header_of(&resp, header::CONTENT_TYPE), "text/html; charset=utf-8", "{path}");
        assert_eq!(header_of(&resp, header::CACHE_CONTROL), "no-cache", "{path}");
        assert_eq!(header_of(&resp, header::VARY), "Accept-Encoding", "{path}");
        assert!(header_of(&resp, header::CONTENT_ENCODING).is_empty(), "not asked for gzip: {path}");
        // The same-origin content policy of every answer, which the app's own files satisfy.
        let csp = header_of(&resp, header::CONTENT_SECURITY_POLICY).to_owned();
        assert!(csp.contains("default-src 'self'") && csp.contains("img-src 'self' data: blob:"), "{csp}");
        assert_eq!(header_of(&resp, header::X_FRAME_OPTIONS), "DENY");
        assert_eq!(resp.bytes().await.expect("body").as_ref(), index.as_slice(), "{path}");
    }
    let resp = get(&server, "/favicon.svg", &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header_of(&resp, header::CONTENT_TYPE), "image/svg+xml");
    assert_eq!(header_of(&resp, header::CACHE_CONTROL), "no-cache", "an unhashed name may change content");
    assert_eq!(resp.bytes().await.expect("body").as_ref(), fixture_file("favicon.svg").as_slice());
    server.stop().await;
}

#[cfg(feature = "console")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_assets_are_cached_for_good_gzipped_on_request_and_revalidated() {
    let server = TestServer::start_console("console-assets", fixture()).await;
    let js = fixture_file(HASHED_JS);
    let plain = get(&server, &format!("/{HASHED_JS}"), &[]).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(header_of(&plain, header::CONTENT_TYPE), "text/javascript; charset=utf-8");
    assert_eq!(header_of(&plain, header::CACHE_CONTROL), "public, max-age=31536000, immutable");
    assert_eq!(header_of(&plain, header::CONTENT_LENGTH), js.len().to_string());
    let plain_tag = header_of(&plain, header::ETAG).to_owned();
    assert!(plain_tag.starts_with('"') && plain_tag.ends_with('"'), "{plain_tag}");
    assert_eq!(plain.bytes().await.expect("body").as_ref(), js.as_slice());

    let packed = get(&server, &format!("/{HASHED_JS}"), &[("accept-encoding", "br;q=1, gzip;q=0.8")]).await;
    assert_eq!(packed.status(), 200);
    assert_eq!(header_of(&packed, header::CONTENT_ENCODING), "gzip");
    assert_eq!(header_of(&packed, header::VARY), "Accept-Encoding");
    let packed_tag = header_of(&packed, header::ETAG).to_owned();
    assert_ne!(packed_tag, plain_tag, "each encoding has its own tag");
    let body = packed.bytes().await.expect("body");
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(body.as_ref()).read_to_end(&mut unpacked).expect("valid gzip");
    assert_eq!(unpacked, js);
    let refused = get(&server, &format!("/{HASHED_JS}"), &[("accept-encoding", "gzip;q=0, br")]).await;
    assert!(header_of(&refused, header::CONTENT_ENCODING).is_empty(), "gzip;q=0 refuses it");

    // A file without a gzip copy is sent as is, and says nothing about Accept-Encoding.
    let css = get(&server, "/assets/index-5e6f7a8b.css", &[("accept-encoding", "gzip")]).await;
    assert_eq!(css.status(), 200);
    assert!(header_of(&css, header::CONTENT_ENCODING).is_empty());
    assert!(header_of(&css, header::VARY).is_empty());
    assert_eq!(css.bytes().await.expect("body").as_ref(), fixture_file("assets/index-5e6f7a8b.css").as_slice());

    // The client's copy is current: 304 with no body, whichever encoding's tag it holds.
    for tag in [&plain_tag, &packed_tag, &format!("W/{plain_tag}"), &format!("\"other\", {plain_tag}")] {
        let resp = get(&server, &format!("/{HASHED_JS}"), &[("if-none-match", tag), ("accept-encoding", "gzip")]).await;
        assert_eq!(resp.status(), 304, "{tag}");
        assert_eq!(header_of(&resp, header::ETAG), packed_tag, "{tag}");
        assert!(resp.bytes().await.expect("body").is_empty());
    }
    let stale = get(&server, &format!("/{HASHED_JS}"), &[("if-none-match", "\"older\"")]).await;
    assert_eq!(stale.status(), 200);
    let index = get(&server, "/runs/abc", &[]).await;
    let index_tag = header_of(&index, header::ETAG).to_owned();
    let again = get(&server, "/runs/def", &[("if-none-match", &index_tag)]).await;
    assert_eq!(again.status(), 304, "index.html revalidates on every client route");
    server.stop().await;
}

#[cfg(feature = "console")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_files_api_paths_head_and_other_methods() {
    let server = TestServer::start_console("console-edges", fixture()).await;
    for path in ["/assets/nope.js", "/assets/nope", "/robots.txt", "/runs/favicon.ico"] {
        let (status, body) = server.call("GET", path, None).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{path}: not index.html but {body}");
    }
    for path in ["/api/nope", "/api", "/api/runs/x/nope"] {
        let (status, body) = server.call("GET", path, None).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{path}: the API's JSON 404, {body}");
    }
    // A known API path with a wrong method keeps the API's 405.
    let (status, body) = server.call("PATCH", "/api/health", None).await;
    assert_eq!((status, body["code"].as_str()), (405, Some("method_not_allowed")), "{body}");
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let resp = server
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).expect("method"), server.url("/runs/abc"))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), 405, "{method}");
        assert_eq!(header_of(&resp, header::ALLOW), "GET, HEAD");
    }
    let js = fixture_file(HASHED_JS);
    let head = server.http.head(server.url(&format!("/{HASHED_JS}"))).send().await.expect("sent");
    assert_eq!(head.status(), 200);
    assert_eq!(header_of(&head, header::CONTENT_LENGTH), js.len().to_string());
    assert_eq!(header_of(&head, header::CACHE_CONTROL), "public, max-age=31536000, immutable");
    assert!(head.bytes().await.expect("body").is_empty());
    let head = server.http.head(server.url("/runs/abc")).send().await.expect("sent");
    assert_eq!(head.status(), 200);
    assert_eq!(header_of(&head, header::CONTENT_TYPE), "text/html; charset=utf-8");
    assert!(head.bytes().await.expect("body").is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_console_the_root_says_how_to_get_one() {
    let server = TestServer::start_console("console-missing", Console::Missing).await;
    let root = get(&server, "/", &[]).await;
    assert_eq!(root.status(), 200);
    assert_eq!(header_of(&root, header::CONTENT_TYPE), "text/html; charset=utf-8");
    let page = root.text().await.expect("body");
    for needed in ["not in this build", "Node.js 20+", "cargo run --release -p ckp -- serve", "/api/openapi.json"] {
        assert!(page.contains(needed), "{needed} in {page}");
    }
    let route = get(&server, "/runs/abc", &[]).await;
    assert_eq!(route.status(), 404, "nothing is at a client route without the console");
    assert!(route.text().await.expect("body").contains("not in this build"));
    let head = server.http.head(server.url("/")).send().await.expect("sent");
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.expect("body").is_empty());
    let (status, body) = server.call("GET", "/assets/index-3f9a2c1b.js", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    let (status, body) = server.call("GET", "/api/nope", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    let (status, _) = server.call("GET", "/api/openapi.json", None).await;
    assert_eq!(status, 200, "the API works without the console");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_openapi_json_is_up_to_date() {
    let server = TestServer::start("web-openapi").await;
    let (status, doc) = server.call("GET", "/api/openapi.json", None).await;
    assert_eq!(status, 200);
    server.stop().await;
    let generated = serde_json::to_string_pretty(&doc).expect("serializes") + "\n";
    let path = format!("{}/../../web/openapi.json", env!("CARGO_MANIFEST_DIR"));
    if std::env::var("CKP_UPDATE_DOCS").is_ok() {
        std::fs::create_dir_all(format!("{}/../../web", env!("CARGO_MANIFEST_DIR"))).expect("creates web/");
        std::fs::write(&path, &generated).expect("writes web/openapi.json");
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "web/openapi.json is stale: run CKP_UPDATE_DOCS=1 cargo nextest run -p ckp-server web_openapi_json_is_up_to_date"
    );
}
