//! The MCP reference server (`@modelcontextprotocol/server-everything`, pinned in `tests/mcp/package.json`) for
//! tests, shared by the test binaries of ckp-connectors and ckp-server (`#[path]`-included). `scripts/test`
//! installs it with `npm ci`; a missing Node.js or package fails the test with what to do, never a silent skip.

use std::path::PathBuf;
use std::time::Duration;

/// `node` and the server's entry point, or a panic saying how to install them.
pub fn everything() -> (String, PathBuf) {
    node_script("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// `node` and a script of `tests/mcp` (its packages installed), or a panic saying how to get them: the reference
/// server, or `meta-echo.mjs`, a stdio server (the official TypeScript SDK) whose tool `meta` answers the `_meta` of
/// the request that called it.
pub fn node_script(relative: &str) -> (String, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/mcp");
    let script = dir.join(relative);
    let sdk = dir.join("node_modules/@modelcontextprotocol/sdk/package.json");
    let node = std::env::var("CKP_TEST_NODE").unwrap_or_else(|_| "node".into());
    match std::process::Command::new(&node).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            panic!("MCP tests need Node.js 18 or later: `{node}` cannot be run (install Node.js, or set CKP_TEST_NODE)")
        }
    }
    assert!(
        script.is_file() && sdk.is_file(),
        "MCP tests need the reference server: run `npm ci --prefix {}` (scripts/test does it); {} is missing",
        dir.display(),
        script.display()
    );
    (node, script)
}

/// The reference server serving streamable HTTP on a free port of 127.0.0.1; the child dies with the handle.
/// Returns it and the endpoint URL (`http://127.0.0.1:<port>/mcp`) once it accepts connections.
pub async fn everything_http() -> (tokio::process::Child, String) {
    let (node, script) = everything();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("addr").port()
    };
    let child = tokio::process::Command::new(node)
        .arg(script)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the reference server starts");
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return (child, format!("http://127.0.0.1:{port}/mcp"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the reference MCP server did not listen on port {port} within 15 s");
}
