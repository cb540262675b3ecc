//! Connections of a real `ckp serve`, over raw sockets: a connection that sends no complete request head is
//! closed after the header timeout, a keep-alive one after the idle timeout, a slow body is answered 408; an SSE
//! stream outlives both timeouts; at the connection cap the connection idle longest makes room, and when every
//! connection is busy `/api/health` still answers while anything else gets 503 with `Retry-After`; 20,000 idle
//! connections (held by two helper processes, each within its file limit) leave `/api/health` answering.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a test waits for something the server should do soon (polled, so a fast server passes fast).
const PATIENCE: Duration = Duration::from_secs(30);

struct Server {
    child: Child,
    addr: SocketAddr,
    dir: std::path::PathBuf,
}

impl Server {
    fn start(name: &str, flags: &[&str]) -> Server {
        let dir = std::env::temp_dir().join(format!("ckp-conn-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ckp"))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ckp serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
        let base = line.split_whitespace().find(|w| w.starts_with("http://")).expect("the address").to_owned();
        let addr = base.trim_start_matches("http://").trim_end_matches('/').parse().expect("an address");
        Server { child, addr, dir }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connects");
        stream.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        stream
    }

    /// One request on a connection of its own: the status, the head and the body.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String, String) {
        let mut stream = self.connect();
        send(&mut stream, method, path, body, "close");
        answer(&read_until_closed(&mut stream))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn send(stream: &mut TcpStream, method: &str, path: &str, body: Option<&Value>, connection: &str) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: ckp\r\nconnection: {connection}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(format!("{head}{body}").as_bytes()).expect("sends");
}

/// Reads until the server closes the connection (a reset counts as closed); fails the test after [`PATIENCE`].
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return got,
        }
        assert!(started.elapsed() < PATIENCE, "the server did not close the connection; it sent {got:?}");
    }
}

/// Reads until `needle` arrives; fails the test after [`PATIENCE`] or if the connection closes first.
fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&got).contains(needle) {
        match stream.read(&mut buf) {
            Ok(0) => panic!("closed before {needle:?}: {}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("{e} before {needle:?}: {}", String::from_utf8_lossy(&got)),
        }
        assert!(started.elapsed() < PATIENCE, "no {needle:?} in {}", String::from_utf8_lossy(&got));
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The status, the head and the body of one answer.
fn answer(bytes: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no answer in {text:?}"));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn connections_sending_no_complete_head_are_closed_after_the_header_timeout_and_idle_ones_after_the_idle_timeout() {
    let server = Server::start("timeouts", &["--header-timeout-ms", "1000", "--idle-timeout-ms", "1000"]);
    let mut silent = server.connect();
    let mut partial = server.connect();
    partial.write_all(b"GET /api/health HTTP/1.1\r\nhost: ckp\r\n").expect("sends");
    let mut kept = server.connect();
    send(&mut kept, "GET", "/api/health", None, "keep-alive");
    let first = read_until(&mut kept, "\"ok\"");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert_eq!(read_until_closed(&mut silent), b"", "closed without an answer");
    assert_eq!(read_until_closed(&mut partial), b"", "closed without an answer");
    assert_eq!(read_until_closed(&mut kept), b"", "closed after the idle timeout, nothing more sent");
}

#[test]
fn a_slow_body_is_answered_408_and_its_connection_closed() {
    let server = Server::start("body", &["--body-timeout-ms", "1000"]);
    let mut slow = server.connect();
    slow.write_all(
        b"POST /api/procedures HTTP/1.1\r\nhost: ckp\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n\
          {\"ckp_json\": ",
    )
    .expect("sends");
    let (status, _, body) = answer(&read_until_closed(&mut slow));
    assert_eq!(status, 408, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON")["code"], "request_timeout", "{body}");
    let (status, _, body) = server.request("GET", "/api/procedures", None);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn an_sse_stream_outlives_the_header_idle_and_body_timeouts() {
    let timeouts = ["--header-timeout-ms", "500", "--idle-timeout-ms", "500", "--body-timeout-ms", "500"];
    let server = Server::start("sse", &timeouts);
    let mut stream = server.connect();
    send(&mut stream, "GET", "/api/approvals/stream", None, "keep-alive");
    read_until(&mut stream, "approval_snapshot");
    // Several times every timeout, with nothing sent either way (the stream's keep-alive comment comes every 15 s).
    std::thread::sleep(Duration::from_secs(3));
    let gate = json!({"procedure_id": "conn_gate", "version": "1", "workflow_graph": {"start_node": "g", "nodes": {
        "g": {"type": "human_approval", "prompt": "still there?", "on_approve": "end", "on_reject": "end"},
        "end": {"type": "terminate"}}}});
    let (status, _, body) = server.request("POST", "/api/procedures", Some(&json!({"ckp_json": gate})));
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = server.request("POST", "/api/runs", Some(&json!({"procedure_id": "conn_gate"})));
    assert_eq!(status, 201, "{body}");
    assert!(read_until(&mut stream, "still there?").contains("approval_update"));
}

#[test]
fn at_the_cap_the_connection_idle_longest_makes_room() {
    let server = Server::start("evict", &["--max-connections", "3", "--header-timeout-ms", "600000"]);
    let mut idle: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    // Each is accepted before the next one is opened: the first has waited longest.
    for conn in &mut idle[1..] {
        send(conn, "GET", "/api/health", None, "keep-alive");
        read_until(conn, "\"ok\"");
    }
    let (status, _, body) = server.request("GET", "/api/health", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(read_until_closed(&mut idle[0]), b"", "the oldest idle connection was closed for the new one");
}

#[test]
fn when_every_connection_is_busy_health_still_answers_and_anything_else_gets_503() {
    let server = Server::start("busy", &["--max-connections", "3"]);
    let mut streams: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    for stream in &mut streams {
        send(stream, "GET", "/api/approvals/stream", None, "keep-alive");
        read_until(stream, "approval_snapshot");
    }
    let (status, head, body) = server.request("GET", "/api/runs", None);
    assert_eq!(status, 503, "{body}");
    assert!(head.contains("retry-after: "), "{head}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON")["code"], "too_many_connections", "{body}");
    for _ in 0..3 {
        let (status, _, body) = server.request("GET", "/api/health", None);
        assert_eq!(status, 200, "{body}");
    }
    drop(streams);
    let started = Instant::now();
    while server.request("GET", "/api/runs", None).0 != 200 {
        assert!(started.elapsed() < PATIENCE, "the streams' slots were never given back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A helper process holding `count` idle connections to `addr`.
struct Holder(Child);

impl Holder {
    fn start(addr: SocketAddr, count: usize) -> Holder {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/connections/hold.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([addr.ip().to_string(), addr.port().to_string(), count.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("a line");
        assert_eq!(line.trim(), format!("ready {count}"), "the holder opened its connections");
        Holder(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Files the process holds open.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[test]
fn twenty_thousand_idle_connections_leave_health_answering() {
    let mut server = Server::start("20k", &[]);
    let holders: Vec<Holder> = (0..2).map(|_| Holder::start(server.addr, 10_000)).collect();
    for _ in 0..5 {
        let (status, _, body) = server.request("GET", "/api/health", None);
        assert_eq!(status, 200, "{body}");
    }
    assert!(server.child.try_wait().expect("status").is_none(), "the server is running");
    // The default cap (10,000) bounds the server's files; the connections over it were closed.
    let started = Instant::now();
    while open_files(server.child.id()) > 10_000 + 200 {
        assert!(started.elapsed() < PATIENCE, "{} files open", open_files(server.child.id()));
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(holders);
    let (status, _, body) = server.request("GET", "/api/health", None);
    assert_eq!(status, 200, "{body}");
}
