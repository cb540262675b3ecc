//! MCP from the command line: `ckp run --mcp NAME=COMMAND...` and `--mcp NAME=URL` against the reference server
//! (stdio servers end with the run), and `ckp serve`'s MCP settings from file, environment and flags.

use std::process::Command;

use ckp_core::mcp::McpTransport;
use serde_json::Value;

#[path = "../../../../tests/mcp/support.rs"]
mod reference;

fn demo(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let doc = serde_json::json!({"procedure_id": "mcp-cli", "version": "1", "workflow_graph": {"start_node": "call", "nodes": {
        "call": {"type": "sequence", "steps": [
            {"step_id": "e", "action": format!("mcp:{server}/echo"), "message": "hello {{who}}", "output_variable": "echoed"},
            {"step_id": "a", "action": format!("mcp:{server}/get-sum"), "a": 2, "b": 40, "output_variable": "sum"}
        ], "next_node": "end"},
        "end": {"type": "terminate", "status": "success", "outputs": {"echoed": "{{echoed}}", "sum": "{{sum}}"}}
    }}});
    let path = dir.join(format!("{server}.ckp.json"));
    std::fs::write(&path, doc.to_string()).expect("write");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_calls_tools_of_mcp_servers_given_by_flags() {
    let (node, script) = reference::everything();
    let (_web, url) = reference::everything_http().await;
    let dir = std::env::temp_dir().join(format!("ckp-run-mcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (name, flag) in
        [("local", format!("local={node} '{}' stdio", script.display())), ("remote", format!("remote={url}"))]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_ckp"))
            .arg("run")
            .arg(demo(&dir, name))
            .args(["--input", "who=world", "--mcp", &flag])
            .output()
            .expect("ckp runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let outputs: Value = serde_json::from_slice(&out.stdout).expect("outputs as JSON");
        assert_eq!(outputs["echoed"], "Echo: hello world", "{outputs}");
        assert_eq!(outputs["sum"], "The sum of 2 and 40 is 42.", "{outputs}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ckp"))
        .arg("run")
        .arg(demo(&dir, "local"))
        .args(["--mcp", "local"])
        .output()
        .expect("ckp runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected NAME=URL or NAME=COMMAND"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_mcp_settings_layer_file_environment_and_flags() {
    use super::serve::serve_args;
    use ckp::cmd::serve::config;
    let dir = std::env::temp_dir().join(format!("ckp-serve-mcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("ckp.toml");
    let toml = r#"
mcp_base_url = "http://file.example"
[mcp_servers.fs]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "/data"]
env = { NODE_ENV = "production" }
[mcp_servers.web]
url = "http://file.example/mcp"
headers = { Authorization = "Bearer t" }
"#;
    std::fs::write(&file, toml).expect("write");
    let env = |k: &str| match k {
        "CKP_MCP_SERVERS" => Some(r#"{"web": {"url": "http://env.example/mcp"}}"#.to_owned()),
        "MCP_BASE_URL" => Some("http://langorch.example".to_owned()),
        _ => None,
    };
    let args = serve_args(&["--config", &file.display().to_string(), "--mcp", "cli=http://cli.example/mcp"]);
    let c = config(&args, env).expect("valid");
    assert_eq!(c.mcp_servers.keys().collect::<Vec<_>>(), ["cli", "fs", "web"]);
    let McpTransport::Stdio { command, args, env, .. } = &c.mcp_servers["fs"].transport else { panic!("stdio") };
    assert_eq!((command.as_str(), args.len(), env["NODE_ENV"].as_str()), ("npx", 3, "production"));
    assert!(
        matches!(&c.mcp_servers["web"].transport, McpTransport::Http { url, .. } if url == "http://env.example/mcp")
    );
    assert_eq!(c.mcp_base_url.as_deref(), Some("http://langorch.example"), "LangOrch's MCP_BASE_URL is read");
    let both = |k: &str| match k {
        "CKP_MCP_BASE_URL" => Some("http://ckp.example".to_owned()),
        "MCP_BASE_URL" => Some("http://langorch.example".to_owned()),
        _ => None,
    };
    assert_eq!(config(&serve_args(&[]), both).expect("valid").mcp_base_url.as_deref(), Some("http://ckp.example"));

    std::fs::write(&file, "[mcp_servers.fs]\ncommand = \"npx\"\nurl = \"http://x\"\n").expect("write");
    let err = config(&serve_args(&["--config", &file.display().to_string()]), |_| None).expect_err("bad");
    assert!(err.contains("not both"), "{err}");
    let bad = |k: &str| (k == "CKP_MCP_SERVERS").then(|| r#"{"x": {"command": 1}}"#.to_owned());
    let err = config(&serve_args(&[]), bad).expect_err("bad env");
    assert!(err.contains("CKP_MCP_SERVERS") && err.contains("`command` must be a string"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
