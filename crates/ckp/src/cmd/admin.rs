//! `ckp admin`: users and API keys from the command line, on the database the settings name (the SQLite file of
//! a stopped server, or PostgreSQL at any time). What `POST /api/users` and `POST /api/api-keys` do, for the
//! first administrator of a server or when no one can sign in. A new key is printed once; passwords are read
//! from standard input (never an argument, which other users of the machine can see).

use std::io::{BufRead, Write};
use std::sync::Arc;

use ckp_server::auth::keys::{self, KeySpec};
use ckp_server::auth::{Role, password};
use ckp_store::{Store, UserRow};

/// What `ckp admin` does.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Create a local user; the password is read from the first line of standard input.
    CreateUser {
        /// Login name.
        #[arg(long)]
        username: String,
        /// Global role: viewer, approver, operator, manager, admin, or none (project roles only).
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Email.
        #[arg(long)]
        email: Option<String>,
        /// Display name.
        #[arg(long)]
        full_name: Option<String>,
        /// A role in one project, `PROJECT_ID=ROLE` (repeatable).
        #[arg(long = "project", value_name = "PROJECT_ID=ROLE")]
        projects: Vec<String>,
    },
    /// Create an API key and print it (once; only its hash is stored).
    CreateKey {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// Role: viewer, approver, operator, manager or admin.
        #[arg(long)]
        role: String,
        /// The one project the key may act in.
        #[arg(long)]
        project: Option<String>,
        /// The user the key acts for (its rights never exceed theirs).
        #[arg(long)]
        owner: Option<String>,
        /// Days until it expires.
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// Revoke an API key by its id (the part after `ckp_` in its prefix).
    RevokeKey {
        /// Key id.
        key_id: String,
    },
    /// List API keys (never the keys themselves).
    ListKeys,
}

/// `ckp admin ...` on `store`; `input` is standard input.
pub fn run(
    store: Arc<dyn Store>,
    command: AdminCommand,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    match runtime.block_on(execute(store, command, input, out)) {
        Ok(()) => Ok(0),
        Err(e) => {
            writeln!(err, "ckp admin: {e}")?;
            Ok(super::EXIT_ERRORS)
        }
    }
}

async fn execute(
    store: Arc<dyn Store>,
    command: AdminCommand,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), String> {
    match command {
        AdminCommand::CreateUser { username, role, email, full_name, projects } => {
            let role = match role.trim().eq_ignore_ascii_case("none") {
                true => None,
                false => Some(parse_role(&role)?.as_str().to_owned()),
            };
            let mut grants = Vec::new();
            for p in projects {
                let (project, r) =
                    p.split_once('=').ok_or_else(|| format!("--project {p:?}: expected PROJECT_ID=ROLE"))?;
                grants.push((project.to_owned(), parse_role(r)?));
            }
            let mut line = String::new();
            input.read_line(&mut line).map_err(|e| format!("cannot read the password from standard input: {e}"))?;
            let secret = line.trim_end_matches(['\r', '\n']).to_owned();
            if let Some(why) = password::weak(&secret) {
                return Err(format!("{why} (give it on standard input)"));
            }
            let hash = password::hash(secret).await?;
            let user = UserRow {
                username,
                email: email.filter(|e| !e.trim().is_empty()),
                full_name,
                password_hash: Some(hash),
                role,
                is_active: true,
                ..UserRow::default()
            };
            let user = store.insert_user(user).await.map_err(|e| e.to_string())?;
            for (project, r) in grants {
                store
                    .set_grant(&user.user_id, &project, Some(r.as_str().to_owned()))
                    .await
                    .map_err(|e| format!("user created, but project {project}: {e}"))?;
            }
            writeln!(out, "created user {} ({})", user.username, user.user_id).map_err(|e| e.to_string())
        }
        AdminCommand::CreateKey { name, role, project, owner, expires_days } => {
            let role = parse_role(&role)?;
            let owner = match owner {
                Some(name) => Some(
                    store
                        .user_by_name(&name)
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| format!("no user named {name:?}"))?
                        .user_id,
                ),
                None => None,
            };
            if let Some(p) = &project {
                store.get_project(p).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("no project {p:?}"))?;
            }
            let expires_at = expires_days.map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d.max(1))));
            let spec = KeySpec { name, role: role.as_str().into(), project_id: project, owner, expires_at };
            let (row, key) = keys::issue(store.as_ref(), spec).await.map_err(|e| e.to_string())?;
            writeln!(out, "{key}").map_err(|e| e.to_string())?;
            // The id on stderr-free stdout's second line would mix with the key in scripts: the key alone is line 1.
            writeln!(
                out,
                "# key id {} ({}), role {}; shown once, only its hash is stored",
                row.key_id, row.name, row.role
            )
            .map_err(|e| e.to_string())
        }
        AdminCommand::RevokeKey { key_id } => match store.revoke_api_key(&key_id).await.map_err(|e| e.to_string())? {
            true => writeln!(out, "revoked {key_id}").map_err(|e| e.to_string()),
            false => Err(format!("no live key with id {key_id:?}")),
        },
        AdminCommand::ListKeys => {
            for k in store.list_api_keys(None).await.map_err(|e| e.to_string())? {
                let state = if k.revoked_at.is_some() { "revoked" } else { "live" };
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    k.key_id,
                    k.prefix,
                    k.name,
                    k.role,
                    k.project_id.as_deref().unwrap_or("*"),
                    state
                )
                .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
    }
}

fn parse_role(name: &str) -> Result<Role, String> {
    Role::parse(name).ok_or_else(|| format!("unknown role {name:?}: one of viewer, approver, operator, manager, admin"))
}

/// Opens the store the settings name (applying migrations).
pub fn open_store(config: &ckp_server::settings::ServeConfig) -> Result<Arc<dyn Store>, String> {
    match &config.database_url {
        Some(url) => {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            let options =
                ckp_store::PgOptions { follow_runs: false, follow_jobs: false, owner: None, ..Default::default() };
            let store =
                runtime.block_on(ckp_store::PgStore::connect(url.expose(), options)).map_err(|e| e.to_string())?;
            Ok(Arc::new(store))
        }
        None => ckp_store::SqliteStore::open(config.db_path(), ckp_store::SqliteOptions::default())
            .map(|s| Arc::new(s) as Arc<dyn Store>)
            .map_err(|e| {
                format!("{}: {e} (a running `ckp serve` holds it: use the API instead)", config.db_path().display())
            }),
    }
}
