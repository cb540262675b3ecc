//! `global_config.secrets_config` (langorch.md B §7.9): the provider (LangOrch's aliases accepted), the alias → key
//! references, and the provider settings, each checked against what that provider understands. Values are never
//! resolved here: secrets are read only when a step is dispatched (A.3).

use std::collections::BTreeMap;

use serde_json::Value;

use super::ctx::Ctx;
use crate::diag::{Code, child};
use crate::model::SecretsConfig;
use crate::procedure::{SecretProvider, SecretsSpec};

/// How a setting's value is checked.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Any text.
    Text,
    /// An `http://` or `https://` URL.
    Url,
    /// A credential: accepted, with a warning that the document is the wrong place for it.
    Credential,
    /// Vault's KV engine version: 1 or 2.
    KvVersion,
    /// Understood by LangOrch but not by ckp: a warning.
    Unsupported,
}

/// The settings each provider understands (LangOrch's names, plus ckp's `field`, `approle_mount`, `authority_url` and
/// the AWS key pair).
fn settings_of(provider: SecretProvider) -> &'static [(&'static str, Kind)] {
    match provider {
        SecretProvider::Env => &[("prefix", Kind::Text)],
        SecretProvider::Vault => &[
            ("vault_url", Kind::Url),
            ("vault_token", Kind::Credential),
            ("mount_point", Kind::Text),
            ("path_prefix", Kind::Text),
            ("role_id", Kind::Text),
            ("secret_id", Kind::Credential),
            ("approle_mount", Kind::Text),
            ("kv_version", Kind::KvVersion),
            ("namespace", Kind::Text),
            ("field", Kind::Text),
        ],
        SecretProvider::Aws => &[
            ("region_name", Kind::Text),
            ("endpoint_url", Kind::Url),
            ("secret_field", Kind::Text),
            ("aws_access_key_id", Kind::Text),
            ("aws_secret_access_key", Kind::Credential),
            ("aws_session_token", Kind::Credential),
            ("profile_name", Kind::Unsupported),
        ],
        SecretProvider::Azure => &[
            ("vault_url", Kind::Url),
            ("tenant_id", Kind::Text),
            ("client_id", Kind::Text),
            ("client_secret", Kind::Credential),
            ("authority_url", Kind::Url),
        ],
        SecretProvider::Database => &[],
    }
}

/// Compiles `secrets_config`; every problem is reported, bad values are errors, misplaced ones warnings.
pub(super) fn secrets(cx: &mut Ctx<'_>, s: &SecretsConfig) -> Result<SecretsSpec, ()> {
    let p = "/global_config/secrets_config";
    let (field, raw) = match (&s.provider, &s.provider_type) {
        (Some(v), _) => ("provider", Some(v.as_str())),
        (None, Some(v)) => ("type", Some(v.as_str())),
        (None, None) => ("provider", None),
    };
    let mut names: Vec<(&str, SecretProvider)> = SecretProvider::NAMES.to_vec();
    names.extend([("platform", SecretProvider::Database), ("ckp", SecretProvider::Database)]);
    let provider = cx.choice(&format!("{p}/{field}"), raw, &names)?.unwrap_or(SecretProvider::Env);
    let mut ok = true;
    let mut references = Vec::new();
    for (alias, v) in s.secret_references.iter().flatten() {
        let key = match v {
            Value::String(k) => Some(k.clone()),
            Value::Object(o) => o.get("key").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        match key {
            Some(k) if !k.is_empty() => references.push((alias.clone(), k)),
            _ => {
                ok = false;
                cx.report(
                    Code::WrongType,
                    child(&format!("{p}/secret_references"), alias),
                    format!(
                        "secret reference `{alias}` must be the provider's key as a string, or {{\"key\": \"...\"}}"
                    ),
                );
            }
        }
    }
    let mut given: Vec<(&str, &Value)> = s.extra.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let vault_url = s.vault_url.clone().map(Value::String);
    if let Some(v) = &vault_url {
        given.push(("vault_url", v));
    }
    let known = settings_of(provider);
    let mut settings = BTreeMap::new();
    let mut cache_ttl_ms = None;
    for (key, value) in given {
        let pointer = child(p, key);
        if key == "cache_ttl" {
            match value.as_f64().filter(|f| f.is_finite() && *f >= 0.0) {
                Some(secs) => cache_ttl_ms = Some((secs * 1000.0).round() as u64),
                None => {
                    ok = false;
                    cx.report(
                        Code::InvalidNumber,
                        pointer,
                        format!("`cache_ttl` must be a number of seconds ≥ 0, found {value}"),
                    );
                }
            }
            continue;
        }
        let Some((_, kind)) = known.iter().find(|(k, _)| *k == key) else {
            let list: Vec<&str> = known.iter().map(|(k, _)| *k).collect();
            cx.report(
                Code::IgnoredField,
                pointer,
                format!(
                    "`{key}` is not a setting of the {} secrets provider, so it is ignored (it understands: {})",
                    provider.as_str(),
                    if list.is_empty() { "cache_ttl".to_owned() } else { format!("{}, cache_ttl", list.join(", ")) }
                ),
            );
            continue;
        };
        let text = match value {
            Value::String(t) => t.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                ok = false;
                cx.report(Code::WrongType, pointer, format!("`{key}` must be text, found {value}"));
                continue;
            }
        };
        match kind {
            Kind::Url if !(text.starts_with("http://") || text.starts_with("https://")) => {
                ok = false;
                cx.report(
                    Code::WrongType,
                    pointer,
                    format!("`{key}` must be an http:// or https:// URL, found {text:?}"),
                );
                continue;
            }
            Kind::KvVersion if text != "1" && text != "2" => {
                ok = false;
                cx.report(Code::InvalidEnum, pointer, format!("`kv_version` must be 1 or 2, found {text}"));
                continue;
            }
            Kind::Credential => cx.report(
                Code::InlineCredential,
                pointer.clone(),
                format!(
                    "`{key}` is a credential written into the procedure, where anyone who can read the procedure sees \
                     it; configure it on the server instead (README: secrets providers)"
                ),
            ),
            Kind::Unsupported => {
                cx.report(
                    Code::IgnoredField,
                    pointer,
                    format!("`{key}` is not supported by ckp (credentials come from the server's settings), so it is ignored"),
                );
                continue;
            }
            _ => {}
        }
        settings.insert(key.to_owned(), text);
    }
    if !ok {
        return Err(());
    }
    Ok(SecretsSpec { provider, references, settings, cache_ttl_ms })
}
