//! Peer processes for tests: the Vault-like and Azure-like servers under `tests/` (python3, standard library only)
//! and moto's AWS server (installed by `scripts/test`, found through `CKP_MOTO_SERVER`). Each is killed on drop.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running peer.
pub struct Peer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: Child,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join(name)
}

/// Starts `tests/<name>` with `args`; it prints `PORT <n>` once listening.
pub async fn python(name: &str, args: &[&str]) -> Peer {
    let mut child = Command::new("python3")
        .arg(script(name))
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).await.expect("the peer prints its port");
    let port = line.trim().strip_prefix("PORT ").expect("PORT line").to_owned();
    Peer { base: format!("http://127.0.0.1:{port}"), child }
}

/// Starts moto's server on a free port and waits until it answers.
pub async fn moto() -> Peer {
    let program = std::env::var("CKP_MOTO_SERVER").unwrap_or_else(|_| {
        let cache = std::env::var("XDG_CACHE_HOME")
            .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap_or_default()));
        format!("{cache}/ckp-moto-5.1.22/bin/moto_server")
    });
    assert!(
        std::path::Path::new(&program).exists(),
        "moto_server not found at {program}: run ./scripts/test once (it installs moto[server] into a venv)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let child = Command::new(&program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("moto_server starts");
    let peer = Peer { base: format!("http://127.0.0.1:{port}"), child };
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http.get(format!("{}/moto-api/", peer.base)).send().await.is_ok() {
            return peer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto_server did not answer on port {port}");
}
