//! `ckp config`: the effective settings with their origins (golden output), credentials never printed, errors naming
//! the setting and its source; and `docs/settings.md` in step with the settings table.

use ckp::cmd::config::{ConfigArgs, run};

fn config_args(flags: &[&str]) -> ConfigArgs {
    use clap::Parser;
    match ckp::Cli::try_parse_from(["ckp", "config"].iter().chain(flags)).expect("valid flags").command {
        ckp::Command::Config(args) => args,
        other => panic!("not config: {other:?}"),
    }
}

fn print(flags: &[&str], env: impl Fn(&str) -> Option<String>) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(&config_args(flags), env, &mut out, &mut err).expect("writes");
    (code, String::from_utf8(out).expect("utf-8"), String::from_utf8(err).expect("utf-8"))
}

/// The pool size's default depends on the cores; every other value is fixed.
fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| {
        pairs.iter().find(|(name, _)| *name == k).map(|(_, v)| (*v).to_owned()).or_else(|| match k {
            "CKP_DB_POOL_SIZE" => Some("8".to_owned()),
            _ => None,
        })
    }
}

#[test]
fn config_prints_each_setting_with_its_origin() {
    let dir = std::env::temp_dir().join(format!("ckp-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("ckp.toml");
    std::fs::write(
        &file,
        "workers = 3\nsynchronous = \"full\"\n[secrets]\nprovider = \"vault\"\n[secrets.vault]\nkv_version = 1\n\
         [mcp_servers.web]\nurl = \"http://mcp.example/mcp\"\nheaders = { Authorization = \"Bearer file-t0ken\" }\n",
    )
    .expect("write");
    let env = env_of(&[
        ("CKP_WORKERS", "5"),
        ("MCP_BASE_URL", "http://langorch.example"),
        ("CKP_LOG_FORMAT", "json"),
        ("VAULT_TOKEN", "hvs.env-t0ken"),
        ("CKP_DATABASE_URL", "postgres://ckp:db-passw0rd@db.example:5432/ckp"),
    ]);
    let (code, _, err) = print(&["--config", "no/such/ckp.toml"], &env);
    assert_eq!(
        (code, err.trim()),
        (2, "ckp config: cannot read no/such/ckp.toml: No such file or directory (os error 2)")
    );
    let path = file.display().to_string();
    let (code, text_out, err) = print(&["--config", &path, "--bind", "0.0.0.0:9000", "--log", "ckp=debug"], &env);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!("config_text", text_out.replace(&path, "[FILE]"));
    let (code, json, _) =
        print(&["--format", "json", "--config", &path, "--bind", "0.0.0.0:9000", "--log", "ckp=debug"], &env);
    assert_eq!(code, 0);
    let rows: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let row = |key: &str| rows.as_array().and_then(|r| r.iter().find(|r| r["key"] == key)).cloned();
    assert_eq!(
        row("bind"),
        Some(serde_json::json!({"key": "bind", "value": "0.0.0.0:9000", "source": "flag", "from": "--bind"}))
    );
    assert_eq!(
        row("workers").map(|r| (r["value"].clone(), r["source"].clone())),
        Some((5.into(), "environment".into()))
    );
    assert_eq!(row("synchronous").map(|r| r["source"].clone()), Some("file".into()));
    assert_eq!(row("lease_ms").map(|r| r["source"].clone()), Some("default".into()));
    assert_eq!(row("secrets.vault.vault_token").map(|r| r["value"].clone()), Some("***".into()));
    assert_eq!(row("database_url").map(|r| r["value"].clone()), Some("postgres://ckp@db.example:5432/ckp".into()));
    for secret in ["hvs.env-t0ken", "db-passw0rd", "file-t0ken"] {
        assert!(!text_out.contains(secret) && !json.contains(secret), "{secret} printed");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_secret_from_the_environment_never_reaches_the_output() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["config", "--format", "json"])
        .env("CKP_LLM_API_KEY", "sk-n3ver-printed")
        .env("CKP_CALLBACK_SECRET", "cb-n3ver-printed")
        .env("CKP_SECRETS_ENCRYPTION_KEY", "k3y-n3ver-printed")
        .env("AWS_SECRET_ACCESS_KEY", "aws-n3ver-printed")
        .env("AZURE_CLIENT_SECRET", "azure-n3ver-printed")
        .output()
        .expect("ckp config runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CKP_LLM_API_KEY"), "the key is listed with its origin: {stdout}");
    assert!(!stdout.contains("n3ver-printed"), "{stdout}");
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_ckp"))
        .args(["config", "--workers", "many"])
        .env("CKP_LLM_API_KEY", "sk-n3ver-printed")
        .output()
        .expect("ckp config runs");
    assert!(!String::from_utf8_lossy(&text.stdout).contains("n3ver-printed"));
    assert!(!String::from_utf8_lossy(&text.stderr).contains("n3ver-printed"));
}

#[test]
fn an_invalid_value_names_the_setting_and_its_source() {
    let (code, _, err) = print(&[], env_of(&[("CKP_WORKERS", "abc")]));
    assert_eq!(code, 2);
    assert_eq!(err.trim(), r#"ckp config: CKP_WORKERS="abc" (environment): expected a non-negative integer"#);
    let (_, _, err) = print(&["--log-format", "xml"], env_of(&[]));
    assert_eq!(err.trim(), r#"ckp config: --log-format "xml" (flag): expected text or json"#);
    let (_, _, err) = print(&["--lease-ms", "0"], env_of(&[]));
    assert_eq!(err.trim(), r#"ckp config: --lease-ms "0" (flag): expected a positive integer"#);
    let (_, _, err) = print(&[], env_of(&[("CKP_DATABASE_URL", "mysql://u:pw@h/db")]));
    assert!(err.contains("CKP_DATABASE_URL=\"***\"") && !err.contains("pw"), "{err}");
    const SERVERS: &str =
        r#"{"web": {"url": "http://x", "command": "y", "headers": {"Authorization": "Bearer tok3n"}}}"#;
    let (_, _, err) = print(&[], env_of(&[("CKP_MCP_SERVERS", SERVERS)]));
    assert!(err.contains("CKP_MCP_SERVERS=… (environment)") && !err.contains("tok3n"), "{err}");
    let (_, _, err) = print(&[], env_of(&[("VAULT_ADDR", "http://v"), ("CKP_SECRETS_CACHE_TTL_MS", "soon")]));
    assert!(err.contains("CKP_SECRETS_CACHE_TTL_MS=\"soon\" (environment)"), "{err}");
}

#[test]
fn log_settings_are_exposed() {
    let c = ckp::cmd::serve::config(
        &super::serve::serve_args(&["--log", "ckp_server=debug"]),
        env_of(&[("CKP_LOG_FORMAT", "json")]),
    )
    .expect("valid");
    assert_eq!((c.log_format, c.log_filter()), (ckp_server::settings::LogFormat::Json, "ckp_server=debug"));
    let c = ckp::cmd::serve::config(&super::serve::serve_args(&[]), |_| None).expect("valid");
    assert_eq!((c.log_format, c.log_filter()), (ckp_server::settings::LogFormat::Text, "info"), "the defaults");
}

#[test]
fn secrets_providers_read_their_usual_variables_ckp_names_first() {
    let env = env_of(&[
        ("CKP_SECRETS_PROVIDER", "vault"),
        ("VAULT_ADDR", "http://v:1"),
        ("CKP_VAULT_ADDR", "http://ckp:2"),
        ("AWS_DEFAULT_REGION", "eu-west-3"),
        ("CKP_SECRETS_CACHE_TTL_MS", "5"),
    ]);
    let s = ckp::cmd::serve::config(&super::serve::serve_args(&[]), env).expect("valid").secrets;
    assert_eq!(
        (s.provider.as_str(), s.vault.vault_url.as_str(), s.aws.region_name.as_str()),
        ("vault", "http://ckp:2", "eu-west-3")
    );
    assert_eq!(s.cache_ttl_ms, 5);
}

/// `docs/settings.md` is generated from the table; `CKP_UPDATE_DOCS=1` rewrites it.
#[test]
fn docs_settings_md_is_up_to_date() {
    let path = super::root().join("docs/settings.md");
    let generated = ckp_server::settings::markdown();
    if std::env::var_os("CKP_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).expect("write docs/settings.md");
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "docs/settings.md is stale: run `CKP_UPDATE_DOCS=1 cargo nextest run -p ckp docs_settings_md_is_up_to_date`"
    );
}
