//! LDAP sign-in: [`Directory::authenticate`] finds a user's entry with the service account, binds as that entry
//! with the password given (an empty password is refused before any bind: an unauthenticated bind must never count
//! as a sign-in), reads the user's groups and maps them to a global role ([`LdapConfig::role_for`]). Creating or
//! updating the ckp user it signs in as is the sign-in route's business, not this module's.
//!
//! Two outcomes are told apart because callers answer them differently: [`LdapError::Rejected`] (no such entry,
//! several, a wrong password: the caller's mistake, answered as any failed sign-in) and
//! [`LdapError::Unavailable`] (the directory cannot be reached, answers an error, or takes longer than the timeout:
//! the operator's business, answered 503 and logged with its cause). Entries are decoded without panicking
//! whatever the directory sends. This module never logs a password.

use std::collections::HashMap;
use std::time::Duration;

use ckp_connectors::settings::Secret;
use ldap3::asn1::{PL, StructureTag};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, ResultEntry, Scope};

use super::Role;
use crate::settings::ServeConfig;

/// The provider name of users signed in through LDAP (their `sso_provider`, their sessions' `method`).
pub const PROVIDER: &str = "ldap";

/// The LDAP settings, checked at start.
#[derive(Debug, Clone)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// The service account's DN and password; None: anonymous searches.
    pub service: Option<(String, Secret<String>)>,
    /// Where users are searched (subtree).
    pub user_base: String,
    /// The user filter, with `{username}`.
    pub user_filter: String,
    /// Where groups are searched (subtree); None: the user entry's `memberOf`.
    pub group_base: Option<String>,
    /// The group filter, with `{dn}` and optionally `{username}`.
    pub group_filter: String,
    /// Global roles by group `cn` or DN, keys normalized ([`normalize`]).
    pub role_mapping: Vec<(String, Role)>,
    /// The role of a user none of whose groups is mapped; None: no global role.
    pub default_role: Option<Role>,
    /// The longest a whole sign-in exchange with the directory may take.
    pub timeout: Duration,
}

impl LdapConfig {
    /// The LDAP settings of `config`: None when `ldap_url` is unset; an error names a missing or inconsistent
    /// setting.
    pub fn from_settings(config: &ServeConfig) -> Result<Option<LdapConfig>, String> {
        let Some(url) = config.ldap_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let user_base = config
            .ldap_user_base
            .clone()
            .filter(|b| !b.trim().is_empty())
            .ok_or("ldap_url is set but ldap_user_base is not: set where users are searched (ou=people,dc=...)")?;
        let service = match (&config.ldap_bind_dn, &config.ldap_bind_password) {
            (Some(dn), Some(password)) => Some((dn.clone(), password.clone())),
            (None, None) => None,
            (Some(_), None) => return Err("ldap_bind_dn is set but ldap_bind_password is not".into()),
            (None, Some(_)) => return Err("ldap_bind_password is set but ldap_bind_dn is not".into()),
        };
        let default_role = match config.ldap_default_role.trim() {
            r if r.eq_ignore_ascii_case("none") => None,
            r => Some(Role::parse(r).ok_or_else(|| format!("ldap_default_role: {r:?} is not a role or none"))?),
        };
        Ok(Some(LdapConfig {
            url: url.to_owned(),
            service,
            user_base,
            user_filter: config.ldap_user_filter.clone(),
            group_base: config.ldap_group_base.clone().filter(|b| !b.trim().is_empty()),
            group_filter: config.ldap_group_filter.clone(),
            role_mapping: config.ldap_role_mapping.0.iter().map(|(group, role)| (normalize(group), *role)).collect(),
            default_role,
            timeout: Duration::from_millis(config.ldap_timeout_ms.max(1)),
        }))
    }

    /// The global role of a member of `groups`: the highest mapped one, else the default role.
    pub fn role_for(&self, groups: &[Group]) -> Option<Role> {
        let names: Vec<String> = groups
            .iter()
            .flat_map(|g| [normalize(&g.dn)].into_iter().chain(g.cn.iter().map(|c| normalize(c))))
            .collect();
        let mapped = self.role_mapping.iter().filter(|(key, _)| names.contains(key)).map(|(_, role)| *role).max();
        mapped.or(self.default_role)
    }
}

/// A directory group the user belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group's DN.
    pub dn: String,
    /// Its common names (from its entry, or the first RDN of a `memberOf` value).
    pub cn: Vec<String>,
}

/// A user the directory signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The entry's DN (the ckp user's `sso_subject`).
    pub dn: String,
    /// The first `mail` value.
    pub email: Option<String>,
    /// The first `cn` value.
    pub full_name: Option<String>,
    /// The user's groups.
    pub groups: Vec<Group>,
    /// The global role the groups map to.
    pub role: Option<Role>,
}

/// Why a sign-in through the directory failed.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// The credentials were not accepted (the reason is for the debug log only, never for the caller).
    #[error("the directory refused the sign-in: {0}")]
    Rejected(&'static str),
    /// The directory could not answer the sign-in.
    #[error("the LDAP directory at {url} failed while {stage}")]
    Unavailable {
        /// The directory.
        url: String,
        /// What was being done.
        stage: &'static str,
        /// Why.
        #[source]
        source: ldap3::LdapError,
    },
}

/// Result codes of a user's bind that mean "these credentials do not sign in" (RFC 4511 appendix A):
/// inappropriateAuthentication, invalidCredentials, insufficientAccessRights, unwillingToPerform (locked or
/// expired accounts). Any other code is the directory failing.
const REFUSED_BIND: [u32; 4] = [48, 49, 50, 53];

/// Signs users in against the directory of an [`LdapConfig`].
#[derive(Debug, Clone)]
pub struct Directory {
    config: LdapConfig,
}

impl Directory {
    /// A directory client with these settings (no connection is made before a sign-in).
    pub fn new(config: LdapConfig) -> Self {
        Directory { config }
    }

    /// The settings.
    pub fn config(&self) -> &LdapConfig {
        &self.config
    }

    /// Checks `username` and `password` against the directory and reads the user's groups and role. The whole
    /// exchange, connection included, gets the configured timeout.
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<DirectoryUser, LdapError> {
        if password.is_empty() {
            return Err(LdapError::Rejected("empty password (an unauthenticated bind is never a sign-in)"));
        }
        if username.trim().is_empty() {
            return Err(LdapError::Rejected("empty username"));
        }
        match tokio::time::timeout(self.config.timeout, self.exchange(username, password)).await {
            Ok(result) => result,
            Err(elapsed) => Err(self.unavailable("waiting for it (ldap_timeout_ms)", elapsed.into())),
        }
    }

    fn unavailable(&self, stage: &'static str, source: ldap3::LdapError) -> LdapError {
        LdapError::Unavailable { url: self.config.url.clone(), stage, source }
    }

    async fn exchange(&self, username: &str, password: &str) -> Result<DirectoryUser, LdapError> {
        let settings = LdapConnSettings::new().set_conn_timeout(self.config.timeout);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.config.url)
            .await
            .map_err(|e| self.unavailable("connecting", e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended with an error");
            }
        });
        let result = self.sign_in(&mut ldap, username, password).await;
        // The answer is known; a failed unbind only means the connection is already gone.
        let _ = ldap.unbind().await;
        result
    }

    async fn sign_in(&self, ldap: &mut Ldap, username: &str, password: &str) -> Result<DirectoryUser, LdapError> {
        self.bind_service(ldap).await?;
        let filter = self.config.user_filter.replace("{username}", &ldap3::ldap_escape(username));
        let (entries, _) = ldap
            .search(&self.config.user_base, Scope::Subtree, &filter, vec!["cn", "mail", "memberOf"])
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| self.unavailable("searching for the user", e))?;
        let mut entries = entries.into_iter().filter_map(decode);
        let user = match (entries.next(), entries.next()) {
            (Some(user), None) => user,
            (None, _) => return Err(LdapError::Rejected("no entry matches the user filter")),
            (Some(_), Some(_)) => {
                tracing::warn!(
                    filter = %filter,
                    "several LDAP entries match the user filter: sign-in refused (make ldap_user_filter match one)"
                );
                return Err(LdapError::Rejected("several entries match the user filter"));
            }
        };
        if user.dn.is_empty() {
            return Err(LdapError::Rejected("the entry has an empty DN"));
        }
        let bound =
            ldap.simple_bind(&user.dn, password).await.map_err(|e| self.unavailable("binding as the user", e))?;
        match bound.rc {
            0 => {}
            rc if REFUSED_BIND.contains(&rc) => return Err(LdapError::Rejected("the user's bind was refused")),
            _ => return Err(self.unavailable("binding as the user", bound.into())),
        }
        let mut groups: Vec<Group> = first_rdn_groups(user.attrs.get("memberof").map(Vec::as_slice).unwrap_or(&[]));
        if let Some(base) = &self.config.group_base {
            // Back to the service account: the user may not be allowed to read groups.
            self.bind_service(ldap).await?;
            let filter = self
                .config
                .group_filter
                .replace("{dn}", &ldap3::ldap_escape(user.dn.as_str()))
                .replace("{username}", &ldap3::ldap_escape(username));
            let (entries, _) = ldap
                .search(base, Scope::Subtree, &filter, vec!["cn"])
                .await
                .and_then(ldap3::SearchResult::success)
                .map_err(|e| self.unavailable("searching for the user's groups", e))?;
            for entry in entries.into_iter().filter_map(decode) {
                if !groups.iter().any(|g| normalize(&g.dn) == normalize(&entry.dn)) {
                    let cn = entry.attrs.get("cn").cloned().unwrap_or_default();
                    groups.push(Group { dn: entry.dn, cn });
                }
            }
        }
        let first = |attr: &str| user.attrs.get(attr).and_then(|v| v.first()).filter(|v| !v.trim().is_empty()).cloned();
        Ok(DirectoryUser {
            email: first("mail"),
            full_name: first("cn"),
            role: self.config.role_for(&groups),
            groups,
            dn: user.dn,
        })
    }

    /// Binds as the service account, or anonymously when none is configured.
    async fn bind_service(&self, ldap: &mut Ldap) -> Result<(), LdapError> {
        let (dn, password) = match &self.config.service {
            Some((dn, password)) => (dn.as_str(), password.expose().as_str()),
            None => ("", ""),
        };
        ldap.simple_bind(dn, password)
            .await
            .and_then(ldap3::LdapResult::success)
            .map(drop)
            .map_err(|e| self.unavailable("binding as the service account (ldap_bind_dn)", e))
    }
}

/// Groups named by DN (`memberOf` values), their `cn` taken from the first RDN when it is one.
fn first_rdn_groups(dns: &[String]) -> Vec<Group> {
    dns.iter()
        .map(|dn| {
            let rdn = dn.split(',').next().unwrap_or_default();
            let cn = match rdn.split_once('=') {
                Some((attr, value)) if attr.trim().eq_ignore_ascii_case("cn") => vec![value.trim().to_owned()],
                _ => Vec::new(),
            };
            Group { dn: dn.clone(), cn }
        })
        .collect()
}

/// A group name or DN as compared: lowercase, without spaces around the separators of a DN.
pub fn normalize(name: &str) -> String {
    name.split(',')
        .map(|rdn| match rdn.split_once('=') {
            Some((attr, value)) => format!("{}={}", attr.trim(), value.trim()),
            None => rdn.trim().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// A search filter as the settings check it: the placeholders filled with a sample value, then parsed.
pub fn check_filter(filter: &str) -> Result<(), String> {
    let sample = filter.replace("{username}", "user").replace("{dn}", "cn=user,dc=example,dc=org");
    ldap3::parse_filter(&sample).map(drop).map_err(|()| format!("{filter:?} is not a valid LDAP filter (RFC 4515)"))
}

/// A search result entry: its DN and its text attributes by lowercase name.
#[derive(Debug)]
struct Entry {
    dn: String,
    attrs: HashMap<String, Vec<String>>,
}

/// Decodes a search result entry (RFC 4511 `SearchResultEntry`, application tag 4); None for a referral, an
/// intermediate message or anything malformed (ldap3's own decoder panics on those).
fn decode(entry: ResultEntry) -> Option<Entry> {
    let mut parts = entry.0.match_id(4)?.expect_constructed()?.into_iter();
    let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
    let mut attrs: HashMap<String, Vec<String>> = HashMap::new();
    for attribute in parts.next()?.expect_constructed()? {
        let mut attribute = attribute.expect_constructed()?.into_iter();
        let name = String::from_utf8(attribute.next()?.expect_primitive()?).ok()?.to_ascii_lowercase();
        let values = attribute.next()?.expect_constructed()?;
        attrs.entry(name).or_default().extend(values.into_iter().filter_map(text));
    }
    Some(Entry { dn, attrs })
}

fn text(value: StructureTag) -> Option<String> {
    match value.payload {
        PL::P(bytes) => String::from_utf8(bytes).ok(),
        PL::C(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mapping: &[(&str, Role)], default_role: Option<Role>) -> LdapConfig {
        LdapConfig {
            url: "ldap://127.0.0.1:1".into(),
            service: None,
            user_base: "ou=people,dc=example,dc=org".into(),
            user_filter: "(uid={username})".into(),
            group_base: None,
            group_filter: "(member={dn})".into(),
            role_mapping: mapping.iter().map(|(g, r)| (normalize(g), *r)).collect(),
            default_role,
            timeout: Duration::from_millis(500),
        }
    }

    #[test]
    fn the_highest_mapped_role_wins_by_cn_or_dn_else_the_default() {
        let c = config(
            &[("ckp-operators", Role::Operator), ("CN=Admins, OU=Groups,DC=example,DC=org", Role::Admin)],
            Some(Role::Viewer),
        );
        let ops = Group { dn: "cn=ckp-operators,ou=groups,dc=example,dc=org".into(), cn: vec!["ckp-operators".into()] };
        let admins = Group { dn: "cn=admins,ou=groups,dc=example,dc=org".into(), cn: vec!["admins".into()] };
        let other = Group { dn: "cn=other,ou=groups,dc=example,dc=org".into(), cn: vec!["other".into()] };
        assert_eq!(c.role_for(std::slice::from_ref(&ops)), Some(Role::Operator));
        assert_eq!(c.role_for(&[ops.clone(), admins.clone()]), Some(Role::Admin), "matched by DN, highest wins");
        assert_eq!(c.role_for(std::slice::from_ref(&other)), Some(Role::Viewer));
        assert_eq!(c.role_for(&[]), Some(Role::Viewer));
        assert_eq!(config(&[], None).role_for(&[ops]), None, "default none: no global role");
        let from_member_of = first_rdn_groups(&["CN=ckp-operators,ou=groups,dc=example,dc=org".into()]);
        assert_eq!(c.role_for(&from_member_of), Some(Role::Operator), "memberOf values give their cn");
    }

    #[test]
    fn settings_need_a_user_base_and_a_whole_service_account() {
        let mut c = ServeConfig::default();
        assert!(matches!(LdapConfig::from_settings(&c), Ok(None)), "no ldap_url: no LDAP");
        c.ldap_url = Some("ldap://ldap.example.org".into());
        let err = LdapConfig::from_settings(&c).map(drop).err().unwrap_or_default();
        assert!(err.contains("ldap_user_base"), "{err}");
        c.ldap_user_base = Some("ou=people,dc=example,dc=org".into());
        c.ldap_bind_dn = Some("cn=reader,dc=example,dc=org".into());
        let err = LdapConfig::from_settings(&c).map(drop).err().unwrap_or_default();
        assert!(err.contains("ldap_bind_password"), "{err}");
        c.ldap_bind_password = Some(Secret::new("pw".into()));
        c.ldap_default_role = "none".into();
        let ldap = LdapConfig::from_settings(&c).ok().flatten().map(|l| (l.service.is_some(), l.default_role));
        assert_eq!(ldap, Some((true, None)));
    }

    #[test]
    fn filters_are_checked_and_usernames_escaped() {
        assert!(check_filter("(uid={username})").is_ok());
        assert!(check_filter("(&(objectClass=groupOfNames)(member={dn}))").is_ok());
        assert!(check_filter("(uid={username}").is_err());
        let filter = "(uid={username})".replace("{username}", &ldap3::ldap_escape("*)(uid=admin"));
        assert_eq!(filter, "(uid=\\2a\\29\\28uid=admin)", "a username cannot widen the filter");
    }

    #[test]
    fn entries_are_decoded_and_malformed_ones_skipped_without_a_panic() {
        use ldap3::asn1::TagClass;
        let tag = |id, payload| StructureTag { class: TagClass::Application, id, payload };
        let octets =
            |s: &str| StructureTag { class: TagClass::Universal, id: 4, payload: PL::P(s.as_bytes().to_vec()) };
        let seq = |inner| StructureTag { class: TagClass::Universal, id: 16, payload: PL::C(inner) };
        let attribute = seq(vec![octets("mail"), seq(vec![octets("a@example.org")])]);
        let good = tag(4, PL::C(vec![octets("uid=a,dc=example,dc=org"), seq(vec![attribute])]));
        let entry = decode(ResultEntry::new(good)).expect("an entry");
        assert_eq!(entry.dn, "uid=a,dc=example,dc=org");
        assert_eq!(entry.attrs.get("mail"), Some(&vec!["a@example.org".to_owned()]));
        for bad in [
            tag(4, PL::P(vec![1, 2])),
            tag(4, PL::C(vec![])),
            tag(4, PL::C(vec![octets("uid=a"), octets("not attributes")])),
            tag(4, PL::C(vec![StructureTag { payload: PL::P(vec![0xff]), ..octets("") }, seq(vec![])])),
            tag(19, PL::C(vec![octets("ldap://elsewhere/")])),
        ] {
            assert!(decode(ResultEntry::new(bad)).is_none());
        }
    }

    #[tokio::test]
    async fn an_empty_password_is_refused_before_any_connection() {
        // The URL points nowhere: reaching the network would be Unavailable, not Rejected.
        let directory = Directory::new(config(&[], Some(Role::Viewer)));
        assert!(matches!(directory.authenticate("ann", "").await, Err(LdapError::Rejected(_))));
        assert!(matches!(directory.authenticate("", "pw").await, Err(LdapError::Rejected(_))));
    }

    #[tokio::test]
    async fn a_closed_port_or_a_server_that_is_not_ldap_is_unavailable() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        let mut c = config(&[], Some(Role::Viewer));
        c.url = format!("ldap://127.0.0.1:{port}");
        let err = Directory::new(c.clone()).authenticate("ann", "pw").await;
        assert!(matches!(err, Err(LdapError::Unavailable { stage: "connecting", .. })), "{err:?}");
        // A server that accepts and says nothing: ldaps:// (the TLS handshake) times out, no panic.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        c.url = format!("ldaps://127.0.0.1:{}", silent.local_addr().expect("addr").port());
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                open.push(socket);
            }
        });
        let err = Directory::new(c).authenticate("ann", "pw").await;
        assert!(matches!(err, Err(LdapError::Unavailable { .. })), "{err:?}");
        held.abort();
    }
}
