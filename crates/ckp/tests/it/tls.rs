//! HTTPS for real effects: `ckp run` reaches an HTTPS server (a Python `ssl` server on 127.0.0.1 with a
//! certificate from a test CA made with the `openssl` command) and verifies its certificate against the system's
//! trust store, extended here through `SSL_CERT_FILE`; without the CA the step fails with a certificate error.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl command is installed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=ckp test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

#[test]
fn ckp_run_calls_https_endpoints_and_verifies_their_certificates() {
    let dir = std::env::temp_dir().join(format!("ckp-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    certificates(&dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls/https_server.py");
    let mut server = Command::new("python3")
        .arg(script)
        .arg(dir.join("server.pem"))
        .arg(dir.join("server.key"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut port = String::new();
    BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut port).expect("the port");
    let url = format!("https://127.0.0.1:{}/ping", port.trim());
    let file = dir.join("tls.ckp.json");
    let doc = json!({"procedure_id": "tls", "version": "1", "workflow_graph": {"start_node": "go", "nodes": {
        "go": {"type": "sequence", "steps": [
            {"step_id": "get", "action": "http_request", "method": "GET", "url": url, "output_variable": "reply"}],
            "next_node": "end"},
        "end": {"type": "terminate"}}}});
    std::fs::write(&file, doc.to_string()).expect("write");
    let run = |ca: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ckp"));
        cmd.arg("run").arg(&file).args(["--egress-allow", "127.0.0.1"]);
        cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
        if let Some(ca) = ca {
            cmd.env("SSL_CERT_FILE", ca);
        }
        cmd.output().expect("ckp runs")
    };
    let trusted = run(Some(&dir.join("ca.pem")));
    let untrusted = run(None);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(trusted.status.code(), Some(0), "{}", String::from_utf8_lossy(&trusted.stderr));
    let outputs: Value = serde_json::from_slice(&trusted.stdout).expect("outputs");
    assert_eq!(outputs["reply"]["status"], 200, "{outputs}");
    assert_eq!(outputs["reply"]["body"], json!({"ok": true, "path": "/ping"}), "{outputs}");
    assert_ne!(untrusted.status.code(), Some(0), "a certificate from an unknown CA is refused");
    let err = String::from_utf8_lossy(&untrusted.stderr).to_lowercase();
    assert!(err.contains("certificate") || err.contains("unknownissuer") || err.contains("tls"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
