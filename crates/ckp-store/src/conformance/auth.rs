//! Conformance checks of [`crate::AuthStore`] (users, grants, API keys, sessions, signing keys, the audit log) and
//! of the project filters authorization relies on (runs, procedures, approvals a user may see).

use std::sync::Arc;

use chrono::{Duration, SecondsFormat, Utc};
use ckp_engine::journal::Commit;
use ckp_engine::{Engine, Event, RunOutcome};
use serde_json::{Map, json};

use super::{approval_procedure, execute, record};
use crate::{
    ApiKeyRow, ApprovalDecision, AuditFilter, AuditRow, NewRun, ProcedureFilter, RunFilter, SessionRow, Store,
    StoreError, UserRow, UserUpdate,
};

fn user(username: &str, email: Option<&str>, role: Option<&str>) -> UserRow {
    UserRow {
        username: username.into(),
        email: email.map(Into::into),
        role: role.map(Into::into),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        is_active: true,
        ..UserRow::default()
    }
}

/// The message of a conflict (and fails on anything else).
fn conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Conflict(m)) => m,
        other => format!("not a conflict: {other:?}"),
    }
}

fn is_not_found<T>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::NotFound(_)))
}

/// An RFC 3339 time `secs` from now, as the store shows times.
fn at(secs: i64) -> String {
    (Utc::now() + Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) async fn users_conflicts_and_the_last_admin(store: Arc<dyn Store>) {
    let root = store.insert_user(user("root", Some("root@x"), Some("admin"))).await.expect("insert");
    assert!(!root.user_id.is_empty() && !root.created_at.is_empty());
    assert_eq!((root.token_version, root.created_at == root.updated_at), (0, true));
    assert_eq!(store.get_user(&root.user_id).await.expect("get"), Some(root.clone()), "returned as stored");
    let ann = store.insert_user(user("ann", Some("ann@x"), Some("viewer"))).await.expect("insert");
    assert_eq!(conflict(store.insert_user(user("root", None, None)).await), "Username 'root' already exists");
    assert_eq!(conflict(store.insert_user(user("bob", Some("ann@x"), None)).await), "Email 'ann@x' already exists");
    // An empty email is no email: it is never taken.
    let carl = store.insert_user(user("carl", Some(""), None)).await.expect("insert");
    let dan = store.insert_user(user("dan", Some(""), None)).await.expect("insert");
    assert_eq!((carl.email, dan.email.clone()), (None, None));
    let sso = UserRow {
        sso_provider: Some("oidc".into()),
        sso_subject: Some("sub-1".into()),
        password_hash: None,
        ..user("erin", None, None)
    };
    let erin = store.insert_user(sso.clone()).await.expect("insert");
    assert!(conflict(store.insert_user(UserRow { username: "erin2".into(), ..sso }).await).contains("sub-1"));
    assert_eq!(store.user_by_subject("oidc", "sub-1").await.expect("get"), Some(erin.clone()));
    assert_eq!(store.user_by_subject("ldap", "sub-1").await.expect("get"), None);
    assert_eq!(store.user_by_name("ann").await.expect("get"), Some(ann.clone()));
    assert_eq!(store.user_by_name("Ann").await.expect("get"), None, "an exact match");
    assert_eq!(store.get_user("nope").await.expect("get"), None);
    let names: Vec<String> = store.list_users().await.expect("list").into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["root", "ann", "carl", "dan", "erin"], "oldest first");
    assert_eq!(store.count_admins().await.expect("count"), 1);

    // Updates change what they name; a taken email is a conflict.
    let taken = UserUpdate { email: Some("root@x".into()), ..UserUpdate::default() };
    assert_eq!(conflict(store.update_user(&ann.user_id, taken, false).await), "Email 'root@x' already exists");
    let renamed = UserUpdate { full_name: Some("Ann A".into()), ..UserUpdate::default() };
    let ann2 = store.update_user(&ann.user_id, renamed, false).await.expect("update");
    assert_eq!((ann2.full_name.as_deref(), ann2.email.as_deref()), (Some("Ann A"), Some("ann@x")));
    assert_eq!(
        (ann2.token_version, ann2.role.as_deref(), ann2.created_at.as_str()),
        (0, Some("viewer"), ann.created_at.as_str())
    );
    assert!(ann2.updated_at >= ann.updated_at);
    assert_eq!(store.get_user(&ann.user_id).await.expect("get"), Some(ann2));
    let cleared = UserUpdate { email: Some(String::new()), ..UserUpdate::default() };
    assert_eq!(store.update_user(&ann.user_id, cleared, false).await.expect("update").email, None);
    let own = UserUpdate { email: Some("dan@x".into()), ..UserUpdate::default() };
    assert_eq!(
        store.update_user(&dan.user_id, own.clone(), false).await.expect("update").email.as_deref(),
        Some("dan@x")
    );
    assert_eq!(
        store.update_user(&dan.user_id, own, false).await.expect("its own email again").email.as_deref(),
        Some("dan@x")
    );
    assert!(is_not_found(&store.update_user("nope", UserUpdate::default(), false).await));

    // The last active admin can be neither demoted, disabled nor deleted.
    let demote = UserUpdate { role: Some(None), ..UserUpdate::default() };
    let disable = UserUpdate { is_active: Some(false), ..UserUpdate::default() };
    let demote_to_viewer = UserUpdate { role: Some(Some("viewer".into())), ..UserUpdate::default() };
    for refused in [demote.clone(), disable.clone(), demote_to_viewer] {
        let m = conflict(store.update_user(&root.user_id, refused, true).await);
        assert_eq!(m, "Cannot remove the last admin user");
    }
    assert_eq!(conflict(store.delete_user(&root.user_id).await), "Cannot delete the last admin user");
    let still = store.get_user(&root.user_id).await.expect("get").expect("kept");
    assert_eq!((still.role.as_deref(), still.is_active, still.token_version), (Some("admin"), true, 0), "unchanged");
    let unchanged =
        UserUpdate { full_name: Some("Root".into()), role: Some(Some("admin".into())), ..UserUpdate::default() };
    store.update_user(&root.user_id, unchanged, false).await.expect("an admin staying admin");

    // With a second admin, the first may go; the second is then the last.
    let promote = UserUpdate { role: Some(Some("admin".into())), ..UserUpdate::default() };
    let ann3 = store.update_user(&ann.user_id, promote, true).await.expect("promote");
    assert_eq!(ann3.token_version, 1, "a role change revokes tokens");
    assert_eq!(store.count_admins().await.expect("count"), 2);
    let root2 = store.update_user(&root.user_id, demote, true).await.expect("demote");
    assert_eq!((root2.role, root2.token_version), (None, 1));
    assert_eq!(store.count_admins().await.expect("count"), 1);
    assert_eq!(conflict(store.update_user(&ann.user_id, disable, true).await), "Cannot remove the last admin user");
    // A disabled admin does not count.
    let disabled_admin =
        UserUpdate { role: Some(Some("admin".into())), is_active: Some(false), ..UserUpdate::default() };
    let root3 = store.update_user(&root.user_id, disabled_admin, true).await.expect("a disabled admin");
    assert_eq!((root3.is_active, root3.token_version), (false, 2));
    assert_eq!(store.count_admins().await.expect("count"), 1);
    assert_eq!(conflict(store.delete_user(&ann.user_id).await), "Cannot delete the last admin user");
    store.delete_user(&root.user_id).await.expect("a disabled admin can be deleted");
    store.delete_user(&carl.user_id).await.expect("delete");
    assert_eq!(store.get_user(&carl.user_id).await.expect("get"), None);
    assert!(is_not_found(&store.delete_user(&carl.user_id).await));
    assert_eq!(store.list_users().await.expect("list").len(), 3);
    // A deleted user's name and email are free again.
    store.insert_user(user("root", Some("root@x"), None)).await.expect("insert");
}

pub(super) async fn grants_and_token_versions(store: Arc<dyn Store>) {
    let p1 = store.create_project("One", None).await.expect("project").project_id;
    let p2 = store.create_project("Two", None).await.expect("project").project_id;
    let u = store.insert_user(user("gus", None, None)).await.expect("insert").user_id;
    let version = |s: Arc<dyn Store>, id: String| async move {
        s.get_user(&id).await.expect("get").expect("exists").token_version
    };
    let grants = |s: Arc<dyn Store>, id: String| async move {
        s.user_grants(&id).await.expect("grants").into_iter().map(|g| (g.project_id, g.role)).collect::<Vec<_>>()
    };
    store.set_grant(&u, &p1, Some("operator".into())).await.expect("grant");
    assert_eq!(version(store.clone(), u.clone()).await, 1);
    assert_eq!(grants(store.clone(), u.clone()).await, [(p1.clone(), "operator".to_owned())]);
    let g = &store.user_grants(&u).await.expect("grants")[0];
    assert_eq!(g.user_id, u);
    store.set_grant(&u, &p1, Some("viewer".into())).await.expect("replace");
    store.set_grant(&u, &p2, Some("approver".into())).await.expect("grant");
    let mut expected = vec![(p1.clone(), "viewer".to_owned()), (p2.clone(), "approver".to_owned())];
    expected.sort();
    assert_eq!(grants(store.clone(), u.clone()).await, expected, "by project id, replaced in place");
    assert_eq!(version(store.clone(), u.clone()).await, 3);
    store.set_grant(&u, &p1, None).await.expect("remove");
    assert_eq!(grants(store.clone(), u.clone()).await, [(p2.clone(), "approver".to_owned())]);
    assert_eq!(version(store.clone(), u.clone()).await, 4);
    assert!(is_not_found(&store.set_grant("nope", &p1, Some("viewer".into())).await));
    assert!(is_not_found(&store.set_grant(&u, "nope", Some("viewer".into())).await));
    assert_eq!(grants(store.clone(), u.clone()).await.len(), 1);
    assert_eq!(version(store.clone(), u.clone()).await, 4, "a refused grant changes nothing");
    let logout = store.update_user(&u, UserUpdate::default(), true).await.expect("revoke");
    assert_eq!(logout.token_version, 5, "revoking tokens alone bumps the version");
    assert_eq!(store.update_user(&u, UserUpdate::default(), false).await.expect("update").token_version, 5);
    // Deleting a project deletes its grants; deleting a user, theirs.
    store.delete_project(&p2).await.expect("delete project");
    assert!(grants(store.clone(), u.clone()).await.is_empty());
    store.set_grant(&u, &p1, Some("viewer".into())).await.expect("grant");
    store.delete_user(&u).await.expect("delete user");
    assert!(grants(store.clone(), u.clone()).await.is_empty());
    store.delete_project(&p1).await.expect("a project whose grants went with their user");
}

fn key(id: &str, owner: Option<&str>, created_at: &str) -> ApiKeyRow {
    ApiKeyRow {
        key_id: id.into(),
        name: format!("{id} key"),
        prefix: format!("ckp_{id}"),
        hash: format!("hash-{id}"),
        owner: owner.map(Into::into),
        role: "operator".into(),
        project_id: None,
        created_at: created_at.into(),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    }
}

pub(super) async fn api_keys_rows(store: Arc<dyn Store>) {
    let kim = store.insert_user(user("kim", None, Some("operator"))).await.expect("insert");
    let mut first = key("k1", Some(&kim.user_id), "2020-01-01T00:00:00Z");
    first.expires_at = Some("2027-01-01T01:00:00+01:00".into());
    first.project_id = Some("proj".into());
    let k1 = store.insert_api_key(first).await.expect("insert");
    assert_eq!(k1.created_at, "2020-01-01T00:00:00.000000Z", "times as the store shows them");
    assert_eq!(k1.expires_at.as_deref(), Some("2027-01-01T00:00:00.000000Z"));
    assert_eq!(store.get_api_key("k1").await.expect("get"), Some(k1.clone()), "returned as stored");
    let k2 = store.insert_api_key(key("k2", None, "2020-01-02T00:00:00Z")).await.expect("insert");
    let k3 = store.insert_api_key(key("k3", Some(&kim.user_id), "")).await.expect("an empty created_at is now");
    assert!(k3.created_at > k2.created_at);
    assert_eq!(conflict(store.insert_api_key(key("k1", None, "")).await), "API key 'k1' already exists");
    let same_hash = ApiKeyRow { hash: "hash-k2".into(), ..key("k4", None, "") };
    assert!(matches!(store.insert_api_key(same_hash).await, Err(StoreError::Conflict(_))));
    let bad_time = key("k5", None, "yesterday");
    assert!(matches!(store.insert_api_key(bad_time).await, Err(StoreError::Invalid(_))));
    let ids = |keys: Vec<ApiKeyRow>| keys.into_iter().map(|k| k.key_id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_api_keys(None).await.expect("list")), ["k3", "k2", "k1"], "newest first");
    assert_eq!(ids(store.list_api_keys(Some(kim.user_id.clone())).await.expect("list")), ["k3", "k1"]);
    assert!(store.list_api_keys(Some("nobody".into())).await.expect("list").is_empty());

    let (found, owner) = store.api_key_by_hash("hash-k1").await.expect("by hash").expect("found");
    assert_eq!((found, owner), (k1.clone(), Some(kim.clone())), "with its owner");
    let (found, owner) = store.api_key_by_hash("hash-k2").await.expect("by hash").expect("found");
    assert_eq!((found, owner), (k2.clone(), None), "a key without owner");
    assert!(store.api_key_by_hash("hash-none").await.expect("by hash").is_none());

    store.touch_api_key("k1", "2026-03-01T12:00:00+00:00").await.expect("touch");
    let touched = store.get_api_key("k1").await.expect("get").expect("exists");
    assert_eq!(touched.last_used_at.as_deref(), Some("2026-03-01T12:00:00.000000Z"));
    store.touch_api_key("nope", "2026-03-01T12:00:00Z").await.expect("an unknown key is left alone");
    assert!(store.revoke_api_key("k1").await.expect("revoke"));
    assert!(!store.revoke_api_key("k1").await.expect("revoke"), "once");
    assert!(!store.revoke_api_key("nope").await.expect("revoke"));
    let (revoked, _) = store.api_key_by_hash("hash-k1").await.expect("by hash").expect("revoked keys are found");
    assert!(revoked.revoked_at.is_some());

    // Deleting the owner revokes their keys (the rows stay), and leaves the others alone.
    store.delete_user(&kim.user_id).await.expect("delete");
    let (orphan, owner) = store.api_key_by_hash("hash-k3").await.expect("by hash").expect("kept");
    assert!(orphan.revoked_at.is_some() && owner.is_none(), "{orphan:?} {owner:?}");
    assert_eq!(store.get_api_key("k1").await.expect("get").map(|k| k.revoked_at), Some(revoked.revoked_at));
    assert_eq!(store.get_api_key("k2").await.expect("get"), Some(k2));
}

fn session(id: &str, user_id: &str, refresh: &str, expires_at: &str) -> SessionRow {
    SessionRow {
        session_id: id.into(),
        user_id: user_id.into(),
        token_version: 3,
        refresh_hash: refresh.into(),
        method: "password".into(),
        created_at: String::new(),
        expires_at: expires_at.into(),
        revoked_at: None,
    }
}

pub(super) async fn sessions_rows(store: Arc<dyn Store>) {
    let sam = store.insert_user(user("sam", None, Some("viewer"))).await.expect("insert");
    let expires = at(3600);
    store.insert_session(session("s1", &sam.user_id, "h1", &expires)).await.expect("insert");
    let (s1, owner) = store.session("s1").await.expect("get").expect("exists");
    assert_eq!((s1.user_id.as_str(), s1.token_version, s1.refresh_hash.as_str()), (sam.user_id.as_str(), 3, "h1"));
    assert_eq!(
        (s1.expires_at.as_str(), s1.method.as_str(), s1.revoked_at.is_none()),
        (expires.as_str(), "password", true)
    );
    assert!(!s1.created_at.is_empty());
    assert_eq!(owner, sam, "with its user");
    assert!(store.session("nope").await.expect("get").is_none());
    assert!(is_not_found(&store.insert_session(session("s9", "nobody", "h", &expires)).await));
    assert!(matches!(
        store.insert_session(session("s1", &sam.user_id, "h", &expires)).await,
        Err(StoreError::Conflict(_))
    ));

    let later = at(7200);
    assert!(!store.rotate_session("s1", "wrong", "h2", &later).await.expect("rotate"), "a wrong hash");
    assert!(store.rotate_session("s1", "h1", "h2", &later).await.expect("rotate"));
    let (rotated, _) = store.session("s1").await.expect("get").expect("exists");
    assert_eq!((rotated.refresh_hash.as_str(), rotated.expires_at.as_str()), ("h2", later.as_str()));
    assert!(!store.rotate_session("s1", "h1", "h3", &later).await.expect("rotate"), "a replayed refresh token");
    assert!(!store.rotate_session("nope", "h1", "h3", &later).await.expect("rotate"));
    store.insert_session(session("s2", &sam.user_id, "old", &at(-60))).await.expect("insert");
    assert!(!store.rotate_session("s2", "old", "new", &later).await.expect("rotate"), "an expired session");

    assert!(store.revoke_session("s1").await.expect("revoke"));
    assert!(!store.revoke_session("s1").await.expect("revoke"), "once");
    assert!(!store.revoke_session("nope").await.expect("revoke"));
    assert!(!store.rotate_session("s1", "h2", "h3", &later).await.expect("rotate"), "a revoked session");
    let (revoked, _) = store.session("s1").await.expect("get").expect("revoked sessions are read");
    assert!(revoked.revoked_at.is_some());
    assert_eq!(revoked.refresh_hash, "h2");
    store.delete_user(&sam.user_id).await.expect("delete");
    assert!(store.session("s1").await.expect("get").is_none(), "a user's sessions go with them");
}

pub(super) async fn server_keys_are_created_once(store: Arc<dyn Store>) {
    assert_eq!(store.server_key("jwt", "first").await.expect("key"), "first");
    assert_eq!(store.server_key("jwt", "second").await.expect("key"), "first", "the first candidate forever");
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.server_key("race", &format!("c{i}")).await }));
    }
    let mut values = Vec::new();
    for t in tasks {
        values.push(t.await.expect("joined").expect("key"));
    }
    values.dedup();
    assert_eq!(values.len(), 1, "every caller reads the same value: {values:?}");
    assert_eq!(store.server_key("race", "late").await.expect("key"), values[0]);
}

fn event(ts: &str, category: &str, action: &str, actor: &str, description: &str) -> AuditRow {
    AuditRow {
        event_id: 0,
        ts: ts.into(),
        category: category.into(),
        action: action.into(),
        actor: actor.into(),
        credential: Some("session:s1".into()),
        source_ip: Some("10.0.0.1".into()),
        resource_type: Some("run".into()),
        resource_id: Some("r1".into()),
        outcome: 200,
        description: description.into(),
        meta: json!({"method": "POST", "path": "/api/runs"}),
    }
}

pub(super) async fn audit_log_filters_pages_and_purges(store: Arc<dyn Store>) {
    store.append_audit(Vec::new()).await.expect("nothing to append");
    store
        .append_audit(vec![
            event("2026-01-01T00:00:00Z", "auth", "login", "ann", "Ann logged in from a-b.example"),
            event("2026-01-02T00:00:00Z", "auth", "login_failed", "bob", "Bob failed to LOG IN"),
            event("2026-01-03T00:00:00+01:00", "run", "create", "ann", "Run 100% done"),
        ])
        .await
        .expect("append");
    store
        .append_audit(vec![
            event("2026-01-04T00:00:00Z", "run", "cancel", "bob", "Run 1000 done_early"),
            event("2026-01-05T00:00:00Z", "secret", "create", "ann", "Secret a_b created"),
        ])
        .await
        .expect("append");
    let list = |filter: AuditFilter| {
        let store = store.clone();
        async move {
            let rows = store.list_audit(filter).await.expect("list");
            rows.into_iter().map(|e| e.description).collect::<Vec<_>>()
        }
    };
    let all = store.list_audit(AuditFilter::default()).await.expect("list");
    assert_eq!(all.len(), 5, "a limit of 0 is every event");
    assert!(all.windows(2).all(|w| w[0].event_id > w[1].event_id), "newest first by id");
    let first = &all[4];
    assert_eq!((first.ts.as_str(), first.outcome, first.actor.as_str()), ("2026-01-01T00:00:00.000000Z", 200, "ann"));
    assert_eq!(first.meta, json!({"method": "POST", "path": "/api/runs"}));
    assert_eq!((first.credential.as_deref(), first.source_ip.as_deref()), (Some("session:s1"), Some("10.0.0.1")));
    assert_eq!((first.resource_type.as_deref(), first.resource_id.as_deref()), (Some("run"), Some("r1")));
    assert_eq!(all[2].ts, "2026-01-02T23:00:00.000000Z", "stored in UTC");

    let f = AuditFilter::default;
    assert_eq!(
        list(AuditFilter { category: Some("auth".into()), ..f() }).await,
        ["Bob failed to LOG IN", "Ann logged in from a-b.example"]
    );
    assert_eq!(
        list(AuditFilter { actor: Some("bob".into()), ..f() }).await,
        ["Run 1000 done_early", "Bob failed to LOG IN"]
    );
    assert_eq!(
        list(AuditFilter { action: Some("create".into()), ..f() }).await,
        ["Secret a_b created", "Run 100% done"]
    );
    assert_eq!(
        list(AuditFilter {
            action: Some("create".into()),
            actor: Some("ann".into()),
            category: Some("run".into()),
            ..f()
        })
        .await,
        ["Run 100% done"],
        "filters are and-ed"
    );
    assert_eq!(
        list(AuditFilter { search: Some("log".into()), ..f() }).await,
        ["Bob failed to LOG IN", "Ann logged in from a-b.example"],
        "case-insensitive"
    );
    assert_eq!(list(AuditFilter { search: Some("0%".into()), ..f() }).await, ["Run 100% done"], "% is itself");
    assert_eq!(list(AuditFilter { search: Some("a_b".into()), ..f() }).await, ["Secret a_b created"], "_ is itself");
    assert!(list(AuditFilter { search: Some("nothing".into()), ..f() }).await.is_empty());
    let window =
        AuditFilter { since: Some("2026-01-02T00:00:00Z".into()), until: Some("2026-01-04T00:00:00Z".into()), ..f() };
    assert_eq!(list(window).await, ["Run 1000 done_early", "Run 100% done", "Bob failed to LOG IN"], "bounds included");
    let page = AuditFilter { limit: 2, offset: 1, ..f() };
    assert_eq!(list(page).await, ["Run 1000 done_early", "Run 100% done"]);
    assert!(matches!(
        store.list_audit(AuditFilter { since: Some("soon".into()), ..f() }).await,
        Err(StoreError::Invalid(_))
    ));

    assert_eq!(store.purge_audit("2026-01-03T00:00:00Z").await.expect("purge"), 3, "strictly older");
    assert_eq!(list(f()).await, ["Secret a_b created", "Run 1000 done_early"]);
    assert_eq!(store.purge_audit("2026-01-03T00:00:00Z").await.expect("purge"), 0);
    // An empty time is now; ids keep increasing.
    store.append_audit(vec![event("", "auth", "logout", "ann", "Ann logged out")]).await.expect("append");
    let newest = store.list_audit(AuditFilter { limit: 1, ..f() }).await.expect("list");
    assert_eq!(newest[0].description, "Ann logged out");
    assert!(newest[0].event_id > all[0].event_id && newest[0].ts.starts_with(&Utc::now().format("%Y-").to_string()));
}

/// Creates a run of the approval procedure in `project` (not queued), triggered by `by`.
async fn run_in(store: &Arc<dyn Store>, run_id: &str, project: Option<&str>, by: Option<&str>) {
    let p = approval_procedure();
    let cp = Engine::new_checkpoint(&p, run_id, &Map::new());
    let meta = NewRun {
        run_id: run_id.into(),
        project_id: project.map(Into::into),
        triggered_by: by.map(Into::into),
        ..NewRun::default()
    };
    let event = Event::of_run("run_created", json!({}));
    store
        .create_run(meta, Commit { events: vec![event], steps: Vec::new(), checkpoint: cp }, false)
        .await
        .expect("created");
    let out = execute(store, &p, run_id).await;
    assert!(matches!(out, RunOutcome::WaitingApproval(_)), "{out:?}");
}

pub(super) async fn project_filters_on_runs_procedures_and_approvals(store: Arc<dyn Store>) {
    run_in(&store, "ra", Some("A"), Some("alice")).await;
    run_in(&store, "rb", Some("B"), None).await;
    run_in(&store, "rn", None, None).await;
    let only = |ids: &[&str]| Some(ids.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>());

    let runs = |projects: Option<Vec<String>>| {
        let store = store.clone();
        async move {
            let filter = RunFilter { limit: 100, ascending: true, projects, ..RunFilter::default() };
            store.list_runs(filter).await.expect("list").into_iter().map(|r| r.run_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(runs(None).await, ["ra", "rb", "rn"]);
    assert_eq!(runs(only(&["A"])).await, ["ra"]);
    assert_eq!(runs(only(&["A", "B", "C"])).await, ["ra", "rb"], "a run with no project is left out");
    assert!(runs(only(&[])).await.is_empty());
    let both = RunFilter { limit: 100, project_id: Some("B".into()), projects: only(&["A"]), ..RunFilter::default() };
    assert!(store.list_runs(both).await.expect("list").is_empty(), "and-ed with the other filters");

    for (id, project) in [("pa", Some("A")), ("pb", Some("B")), ("pn", None)] {
        let mut r = record(id, "1");
        r.project_id = project.map(Into::into);
        store.insert_procedure(r).await.expect("insert");
    }
    let procedures = |projects: Option<Vec<String>>| {
        let store = store.clone();
        async move {
            let filter = ProcedureFilter { projects, ..ProcedureFilter::default() };
            let mut ids: Vec<String> =
                store.list_procedures(filter).await.expect("list").into_iter().map(|r| r.procedure_id).collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(procedures(None).await, ["pa", "pb", "pn"]);
    assert_eq!(procedures(only(&["B"])).await, ["pb"]);
    assert_eq!(procedures(only(&["A", "B"])).await, ["pa", "pb"]);
    assert!(procedures(only(&[])).await.is_empty());

    let approvals = |projects: Option<Vec<String>>| {
        let store = store.clone();
        async move {
            let mut rows = store.list_approvals(None, None, projects).await.expect("list");
            rows.sort_by(|a, b| a.run_id.cmp(&b.run_id));
            rows
        }
    };
    let all = approvals(None).await;
    assert_eq!(all.iter().map(|a| a.run_id.as_str()).collect::<Vec<_>>(), ["ra", "rb", "rn"]);
    let a = &all[0];
    assert_eq!((a.run_project_id.as_deref(), a.run_triggered_by.as_deref()), (Some("A"), Some("alice")));
    assert_eq!((all[2].run_project_id.as_deref(), all[2].run_triggered_by.as_deref()), (None, None));
    let only_a = approvals(only(&["A"])).await;
    assert_eq!(only_a.iter().map(|a| a.run_id.as_str()).collect::<Vec<_>>(), ["ra"]);
    let ab = approvals(only(&["A", "B"])).await;
    assert_eq!(ab.iter().map(|a| a.run_id.as_str()).collect::<Vec<_>>(), ["ra", "rb"]);
    assert!(approvals(only(&[])).await.is_empty());
    let by_run = store.list_approvals(None, Some("rb".into()), only(&["A"])).await.expect("list");
    assert!(by_run.is_empty(), "and-ed with the run filter");
    let got = store.get_approval(&a.approval_id).await.expect("get").expect("exists");
    assert_eq!(&got, a);
    let d =
        ApprovalDecision { value: json!("approve"), decided_by: Some("u".into()), comment: None, payload: Map::new() };
    let decided = store.decide_approval(&a.approval_id, d).await.expect("decide");
    assert_eq!((decided.run_project_id.as_deref(), decided.run_triggered_by.as_deref()), (Some("A"), Some("alice")));
}

/// Two admins demoting (or deleting) each other at once: one wins, one admin is left. Users taking one name at
/// once: one wins, the others are told the name is taken.
pub(super) async fn concurrent_changes_keep_one_admin_and_unique_names(store: Arc<dyn Store>) {
    let mut survivor: Option<String> = None;
    for round in 0..5 {
        let a = store.insert_user(user(&format!("a{round}"), None, Some("admin"))).await.expect("insert").user_id;
        let b = store.insert_user(user(&format!("b{round}"), None, Some("admin"))).await.expect("insert").user_id;
        // The last round's survivor steps down: the two new admins are the only ones.
        if let Some(last) = survivor.take() {
            let demote = UserUpdate { role: Some(None), ..UserUpdate::default() };
            store.update_user(&last, demote, true).await.expect("demote");
        }
        assert_eq!(store.count_admins().await.expect("count"), 2);
        let mut tasks = Vec::new();
        for (i, id) in [a, b].into_iter().enumerate() {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                if (round + i) % 2 == 0 {
                    let demote = UserUpdate { role: Some(Some("viewer".into())), ..UserUpdate::default() };
                    store.update_user(&id, demote, true).await.map(drop)
                } else {
                    store.delete_user(&id).await
                }
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.expect("joined") {
                Ok(()) => won += 1,
                Err(e) => {
                    assert!(matches!(&e, StoreError::Conflict(m) if m.contains("last admin")), "round {round}: {e}")
                }
            }
        }
        assert_eq!(won, 1, "round {round}");
        assert_eq!(store.count_admins().await.expect("count"), 1, "round {round}");
        let admins = store.list_users().await.expect("list");
        survivor = admins.into_iter().find(|u| u.is_active && u.role.as_deref() == Some("admin")).map(|u| u.user_id);
    }
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let email = format!("same{i}@x");
        tasks.push(tokio::spawn(async move { store.insert_user(user("same", Some(&email), None)).await }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.expect("joined") {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(conflict::<()>(Err(e)), "Username 'same' already exists"),
        }
    }
    assert_eq!(won, 1);
}
