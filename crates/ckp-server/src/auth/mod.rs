//! Authentication and authorization: who is calling ([`Principal`], resolved from an API key, a session token or
//! the session cookie by [`Authenticator`]), what each route needs ([`policy`]: the one route → permission table,
//! enforced by its middleware and published in `docs/auth-routes.md`), and the pieces they use: passwords
//! ([`password`]), API keys ([`keys`]), signed session tokens ([`token`]), single sign-on with OpenID Connect
//! ([`oidc`]) and through an LDAP directory ([`ldap`]), the audit log ([`audit`]) and the failure rate limiter
//! ([`limit`]).
//!
//! Roles are LangOrch's five, ordered `viewer < approver < operator < manager < admin`, held globally (a user's
//! `role`) or per project (grants). A route's permission names the role it needs and whether it applies to one
//! project's objects (the handler then checks the object's project with [`Principal::require`]) or to the whole
//! server. Objects of a project the caller may not see answer 404, as if absent.
//!
//! This module must not read settings from the environment (it gets an [`AuthConfig`]) and never logs or returns a
//! key, token, password or hash.

pub mod audit;
pub mod keys;
pub mod ldap;
pub mod limit;
pub mod oidc;
pub mod password;
pub mod policy;
pub mod principal;
pub mod token;

pub use principal::{AuthConfig, Authenticator, Principal, Role};

use std::sync::Arc;

use ckp_store::{Store, StoreError};

/// Whether `bind` (`host:port`) listens on a loopback address only.
pub fn is_loopback(bind: &str) -> bool {
    let host = bind.rsplit_once(':').map_or(bind, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The first start of a server with authentication on: when no active administrator and no live admin key
/// exist, makes an admin API key and returns it (to print once; only its hash is stored).
pub async fn bootstrap(store: &Arc<dyn Store>) -> Result<Option<String>, StoreError> {
    if store.count_admins().await? > 0 {
        return Ok(None);
    }
    let now = chrono::Utc::now();
    let live_admin_key = store.list_api_keys(None).await?.iter().any(|k| {
        k.role == Role::Admin.as_str()
            && k.project_id.is_none()
            && k.owner.is_none()
            && k.revoked_at.is_none()
            && k.expires_at.as_deref().and_then(principal::parse_time).is_none_or(|t| t > now)
    });
    if live_admin_key {
        return Ok(None);
    }
    let spec =
        keys::KeySpec { name: "first-admin".into(), role: Role::Admin.as_str().into(), ..keys::KeySpec::default() };
    let (_, key) = keys::issue(store.as_ref(), spec).await?;
    Ok(Some(key))
}

/// The session signing key of the deployment (made at the first start, shared by every process through the store).
pub async fn token_key(store: &Arc<dyn Store>) -> Result<token::TokenKey, StoreError> {
    let value = store.server_key(token::KEY_NAME, &keys::random_token()).await?;
    Ok(token::TokenKey::new(value.into_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_addresses() {
        for bind in ["127.0.0.1:8000", "localhost:80", "[::1]:8000", "127.3.4.5:1"] {
            assert!(super::is_loopback(bind), "{bind}");
        }
        for bind in ["0.0.0.0:8000", "[::]:8000", "10.1.2.3:80", "example.com:80"] {
            assert!(!super::is_loopback(bind), "{bind}");
        }
    }
}
