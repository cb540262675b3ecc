//! LDAP sign-in against a real OpenLDAP `slapd` (Debian's package; `scripts/ensure-slapd` installs it), started by
//! the test on a free 127.0.0.1 port with its own configuration and database in a temporary directory: a group
//! member signs in with LangOrch's login request and gets the mapped role, others the default role, wrong and empty
//! passwords and disabled users are refused, failures count in the rate limiter, and a directory that is down
//! answers 503 `ldap_unavailable`. The test fails, never skips, when slapd is missing.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::TestServer;

const SUFFIX: &str = "dc=example,dc=org";
const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
const ROOT_PW: &str = "root-secret";
const READER_DN: &str = "cn=ckp-reader,dc=example,dc=org";
const READER_PW: &str = "reader-secret";

/// A `slapd` of the test's own, killed (and its directory removed) on drop.
struct Slapd {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

/// Where Debian puts a program of the `slapd` package, or its name when it is on the `PATH`.
fn program(name: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(name);
    match sbin.exists() {
        true => sbin,
        false => PathBuf::from(name),
    }
}

fn run(command: &mut Command) -> String {
    let shown = format!("{command:?}");
    let out = command.output().unwrap_or_else(|e| {
        panic!("cannot run {shown}: {e}. The LDAP tests need Debian's slapd and ldap-utils: run ./scripts/ensure-slapd")
    });
    assert!(out.status.success(), "{shown} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn hash(password: &str) -> String {
    run(Command::new(program("slappasswd")).args(["-s", password]))
}

fn person(uid: &str, cn: &str, mail: &str, password: &str) -> String {
    format!(
        "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {uid}\nmail: {mail}\n\
         userPassword: {}\n\n",
        hash(password)
    )
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

impl Slapd {
    /// Writes a configuration (mdb backend, suffix dc=example,dc=org, a root DN, access rules a real directory
    /// has), loads the entries with slapadd, starts slapd in the foreground and waits until it accepts connections.
    fn start(name: &str) -> Slapd {
        let dir = std::env::temp_dir().join(format!("ckp-slapd-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("db")).expect("slapd directory");
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             pidfile {dir}/slapd.pid\n\
             database mdb\n\
             maxsize 10485760\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PW}\n\
             directory {dir}/db\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to * by users read by * none\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("slapd.conf"), conf).expect("slapd.conf");
        let mut ldif = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
             dn: {READER_DN}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\ncn: ckp-reader\n\
             userPassword: {}\n\n",
            hash(READER_PW)
        );
        ldif.push_str(&person("alice", "Alice Liddell", "alice@example.org", "alice-pw"));
        ldif.push_str(&person("bob", "Bob Builder", "bob@example.org", "bob-pw"));
        ldif.push_str(&person("carol", "Carol Local", "carol@example.org", "carol-directory-pw"));
        ldif.push_str(&person("dave", "Dave Disabled", "dave@example.org", "dave-pw"));
        ldif.push_str(&format!(
            "dn: cn=ckp-operators,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: ckp-operators\n\
             member: uid=alice,ou=people,{SUFFIX}\n\n\
             dn: cn=ckp-admins,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: ckp-admins\n\
             member: {ROOT_DN}\n\n"
        ));
        std::fs::write(dir.join("data.ldif"), ldif).expect("data.ldif");
        let conf = dir.join("slapd.conf");
        run(Command::new(program("slapadd")).arg("-f").arg(&conf).arg("-l").arg(dir.join("data.ldif")));
        let port = free_port();
        let child = Command::new(program("slapd"))
            .arg("-f")
            .arg(&conf)
            .args(["-h", &format!("ldap://127.0.0.1:{port}/"), "-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start slapd: {e}. Run ./scripts/ensure-slapd"));
        let mut slapd = Slapd { child: Some(child), dir, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(Ok(Some(status))) = slapd.child.as_mut().map(Child::try_wait) {
                panic!("slapd exited at start ({status})");
            }
            assert!(Instant::now() < deadline, "slapd did not listen on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        slapd
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Changes the directory as its administrator would (ldapmodify of ldap-utils, over the protocol).
    fn modify(&self, ldif: &str) {
        use std::io::Write as _;
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ldapmodify: {e}. Run ./scripts/ensure-slapd"));
        child.stdin.take().expect("stdin").write_all(ldif.as_bytes()).expect("ldif written");
        let out = child.wait_with_output().expect("ldapmodify ends");
        assert!(out.status.success(), "ldapmodify: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn send(server: &TestServer, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = server.http.request(method, server.url(path));
    if let Some(k) = key {
        req = req.header("Authorization", format!("Bearer {k}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// LangOrch's login request.
async fn login(server: &TestServer, username: &str, password: &str) -> (u16, Value) {
    send(server, Method::POST, "/api/auth/login", None, Some(json!({"username": username, "password": password}))).await
}

async fn user(server: &TestServer, admin: &str, username: &str) -> Value {
    let (status, users) = send(server, Method::GET, "/api/users", Some(admin), None).await;
    assert_eq!(status, 200, "{users}");
    users.as_array().and_then(|all| all.iter().find(|u| u["username"] == username)).cloned().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_sign_in_against_slapd() {
    let mut slapd = Slapd::start("signin");
    let url = slapd.url();
    let ldap = move |c: &mut ckp_server::serve::ServeConfig| {
        c.ldap_url = Some(url.clone());
        c.ldap_bind_dn = Some(READER_DN.into());
        c.ldap_bind_password = Some(ckp_connectors::settings::Secret::new(READER_PW.into()));
        c.ldap_user_base = Some(format!("ou=people,{SUFFIX}"));
        c.ldap_group_base = Some(format!("ou=groups,{SUFFIX}"));
        c.ldap_role_mapping = ckp_server::settings::RoleMapping(
            [("ckp-operators".to_owned(), ckp_server::auth::Role::Operator)].into_iter().collect(),
        );
        c.ldap_timeout_ms = 3_000;
    };
    // An admin key and a local user made with authentication off, then authentication on, as a team secures ckp.
    let server = TestServer::start_with("ldap", ldap).await;
    let (status, key) = server.call("POST", "/api/api-keys", Some(json!({"name": "admin", "role": "admin"}))).await;
    assert_eq!(status, 201, "{key}");
    let admin = key["key"].as_str().expect("key").to_owned();
    let (status, carol) = server
        .call(
            "POST",
            "/api/users",
            Some(json!({"username": "carol", "password": "carol-local-pw", "role": "approver"})),
        )
        .await;
    assert_eq!(status, 201, "{carol}");
    let server = server
        .restart_with(|c| {
            c.auth = "on".into();
            c.auth_failures_per_minute = 1000;
        })
        .await;

    // The group member: LangOrch's TokenResponse with the mapped role; the user is made from the directory entry.
    let (status, token) = login(&server, "alice", "alice-pw").await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "bearer");
    assert_eq!(token["identity"], "alice");
    assert_eq!(token["roles"], json!(["operator"]));
    let access = token["access_token"].as_str().expect("access token");
    let (status, me) = send(&server, Method::GET, "/api/auth/me", Some(access), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!((me["identity"].as_str(), me["role"].as_str()), (Some("alice"), Some("operator")), "{me}");
    assert_eq!(me["email"], "alice@example.org");
    assert_eq!(me["full_name"], "Alice Liddell");
    let alice = user(&server, &admin, "alice").await;
    assert_eq!(alice["sso_provider"], "ldap", "{alice}");
    // The operator role works: it may start runs (422 for an unknown procedure is past the authorization check).
    let (status, _) =
        send(&server, Method::POST, "/api/runs", Some(access), Some(json!({"procedure_id": "no-such"}))).await;
    assert_ne!(status, 403);
    // The DN is the identity: the same entry typed in another case is the same ckp user.
    let (status, again) = login(&server, "ALICE", "alice-pw").await;
    assert_eq!((status, again["identity"].as_str()), (200, Some("alice")), "{again}");

    // Not in a mapped group: the default role.
    let (status, token) = login(&server, "bob", "bob-pw").await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["roles"], json!(["viewer"]));

    // Refusals: all the same 401, whatever the reason.
    for (username, password) in [("alice", "wrong"), ("alice", ""), ("nobody", "whatever"), ("*", "alice-pw")] {
        let (status, body) = login(&server, username, password).await;
        assert_eq!(status, 401, "{username}/{password:?}: {body}");
        assert_eq!(body["detail"], "Invalid username or password");
    }

    // Local users come first: carol signs in with her ckp password, not the directory's.
    let (status, body) = login(&server, "carol", "carol-directory-pw").await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = login(&server, "carol", "carol-local-pw").await;
    assert_eq!((status, body["roles"].clone()), (200, json!(["approver"])), "{body}");

    // A disabled user is refused, though the directory accepts the password; their session ends at once.
    let (status, token) = login(&server, "dave", "dave-pw").await;
    assert_eq!(status, 200, "{token}");
    let dave_session = token["access_token"].as_str().expect("access token").to_owned();
    let dave = user(&server, &admin, "dave").await;
    let path = format!("/api/users/{}", dave["user_id"].as_str().expect("dave's id"));
    let (status, body) = send(&server, Method::PUT, &path, Some(&admin), Some(json!({"is_active": false}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = login(&server, "dave", "dave-pw").await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = send(&server, Method::GET, "/api/auth/me", Some(&dave_session), None).await;
    assert_eq!(status, 401);

    // Groups are read at every sign-in: bob joins the operators, and his next sign-in makes him one.
    slapd.modify(&format!(
        "dn: cn=ckp-operators,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=bob,ou=people,{SUFFIX}\n"
    ));
    let (status, token) = login(&server, "bob", "bob-pw").await;
    assert_eq!((status, token["roles"].clone()), (200, json!(["operator"])), "{token}");
    assert_eq!(user(&server, &admin, "bob").await["role"], "operator");

    // Failed LDAP sign-ins count in the same limiter as any other.
    let server = server.restart_with(|c| c.auth_failures_per_minute = 2).await;
    for _ in 0..2 {
        assert_eq!(login(&server, "alice", "wrong").await.0, 401);
    }
    let (status, body) = login(&server, "alice", "alice-pw").await;
    assert_eq!(status, 429, "{body}");

    // The directory down: 503 ldap_unavailable, not a failed sign-in.
    let server = server.restart_with(|c| c.auth_failures_per_minute = 1000).await;
    slapd.stop();
    let (status, body) = login(&server, "alice", "alice-pw").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "ldap_unavailable");
    // Local users still sign in.
    assert_eq!(login(&server, "carol", "carol-local-pw").await.0, 200);
    server.stop().await;
}
