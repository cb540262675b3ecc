//! The server's secrets settings: the `[secrets]` table of the configuration file (with `[secrets.vault]`,
//! `[secrets.aws]`, `[secrets.azure]`), declared once here with their defaults and environment variables (the
//! loader in `ckp-server` reads the environment once at start and sets them; nothing here reads it). A procedure's
//! `secrets_config` settings are laid over these per run ([`VaultSettings::overlay`] and friends) under one rule: a
//! procedure that points a provider at another endpoint does not inherit the server's credentials, so they are
//! never sent to an address the server's operator did not choose. Credentials are [`Secret`]s: no `Debug` output
//! shows them.

use std::collections::BTreeMap;

use crate::settings::Secret;
use crate::settings_group;

/// A settings problem found at startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

settings_group! {
    /// `[secrets]`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct SecretsSettings {
        /// The provider of procedures without `secrets_config`: env, vault, aws, azure or db.
        provider: String = "env".into(), { env: &["CKP_SECRETS_PROVIDER"] };
        /// How long a fetched value is reused, in milliseconds; 0 disables the cache. Failures are never cached.
        cache_ttl_ms: u64 = 60_000, { env: &["CKP_SECRETS_CACHE_TTL_MS"] };
        /// The key sealing values in ckp's own store (`/api/secrets`, the `db` provider): 32 bytes as 64 hex digits
        /// or base64. Without it, `/api/secrets` writes answer 503.
        encryption_key: Option<Secret<String>> = None, { env: &["CKP_SECRETS_ENCRYPTION_KEY"] };
    }
    groups {
        /// HashiCorp Vault.
        vault: VaultSettings;
        /// AWS Secrets Manager.
        aws: AwsSettings;
        /// Azure Key Vault.
        azure: AzureSettings;
    }
}

settings_group! {
    /// `[secrets.vault]`: HashiCorp Vault (names as in LangOrch's `secrets_config`).
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub struct VaultSettings {
        /// Vault's address.
        vault_url: String = "http://127.0.0.1:8200".into(), { env: &["CKP_VAULT_ADDR", "VAULT_ADDR"] };
        /// A token; used when no AppRole is configured.
        vault_token: Option<Secret<String>> = None, { env: &["CKP_VAULT_TOKEN", "VAULT_TOKEN"] };
        /// AppRole role id.
        role_id: Option<String> = None, { env: &["CKP_VAULT_ROLE_ID", "VAULT_ROLE_ID"] };
        /// AppRole secret id.
        secret_id: Option<Secret<String>> = None, { env: &["CKP_VAULT_SECRET_ID", "VAULT_SECRET_ID"] };
        /// Where the AppRole auth method is mounted.
        approle_mount: String = "approle".into(), { env: &["CKP_VAULT_APPROLE_MOUNT", "VAULT_APPROLE_MOUNT"] };
        /// The KV engine's mount.
        mount_point: String = "secret".into(), {};
        /// Secrets live at `{path_prefix}/{key}` (LangOrch's default `langorch`; empty for none).
        path_prefix: String = "langorch".into(), {};
        /// KV engine version: 1 or 2.
        kv_version: u8 = 2, {} check |v: &u8| match v {
            1 | 2 => Ok(()),
            _ => Err("expected 1 or 2".to_owned()),
        };
        /// Enterprise namespace.
        namespace: Option<String> = None, { env: &["CKP_VAULT_NAMESPACE", "VAULT_NAMESPACE"] };
        /// The field returned (else `value`, else the only field, else the JSON of all).
        field: Option<String> = None, {};
    }
}

impl VaultSettings {
    /// These settings with a procedure's laid over them (compile-time checked names and values).
    pub fn overlay(&self, over: &BTreeMap<String, String>) -> VaultSettings {
        let mut v = self.clone();
        if let Some(url) = over.get("vault_url")
            && url.trim_end_matches('/') != self.vault_url.trim_end_matches('/')
        {
            v.vault_url.clone_from(url);
            (v.vault_token, v.role_id, v.secret_id) = (None, None, None);
        }
        set(&mut v.vault_token, over.get("vault_token"));
        set(&mut v.role_id, over.get("role_id"));
        set(&mut v.secret_id, over.get("secret_id"));
        set(&mut v.namespace, over.get("namespace"));
        set(&mut v.field, over.get("field"));
        for (name, slot) in [
            ("approle_mount", &mut v.approle_mount),
            ("mount_point", &mut v.mount_point),
            ("path_prefix", &mut v.path_prefix),
        ] {
            if let Some(x) = over.get(name) {
                slot.clone_from(x);
            }
        }
        if let Some(k) = over.get("kv_version").and_then(|k| k.parse().ok()) {
            v.kv_version = k;
        }
        v
    }
}

settings_group! {
    /// `[secrets.aws]`: AWS Secrets Manager.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub struct AwsSettings {
        /// Region.
        region_name: String = "us-east-1".into(),
            { env: &["CKP_AWS_REGION", "AWS_REGION", "CKP_AWS_DEFAULT_REGION", "AWS_DEFAULT_REGION"] };
        /// Endpoint (default `https://secretsmanager.{region}.amazonaws.com`).
        endpoint_url: Option<String> = None, { env: &["CKP_AWS_SECRETS_ENDPOINT_URL", "AWS_SECRETS_ENDPOINT_URL"] };
        /// Access key id.
        aws_access_key_id: Option<String> = None, { env: &["CKP_AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"] };
        /// Secret access key.
        aws_secret_access_key: Option<Secret<String>> = None,
            { env: &["CKP_AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"] };
        /// Session token of temporary credentials.
        aws_session_token: Option<Secret<String>> = None, { env: &["CKP_AWS_SESSION_TOKEN", "AWS_SESSION_TOKEN"] };
        /// The JSON field returned from a `SecretString` holding an object.
        secret_field: Option<String> = None, {};
    }
}

impl AwsSettings {
    /// These settings with a procedure's laid over them.
    pub fn overlay(&self, over: &BTreeMap<String, String>) -> AwsSettings {
        let mut a = self.clone();
        if let Some(url) = over.get("endpoint_url")
            && Some(url.trim_end_matches('/')) != self.endpoint_url.as_deref().map(|u| u.trim_end_matches('/'))
        {
            a.endpoint_url = Some(url.clone());
            (a.aws_access_key_id, a.aws_secret_access_key, a.aws_session_token) = (None, None, None);
        }
        if let Some(r) = over.get("region_name") {
            a.region_name.clone_from(r);
        }
        set(&mut a.aws_access_key_id, over.get("aws_access_key_id"));
        set(&mut a.aws_secret_access_key, over.get("aws_secret_access_key"));
        set(&mut a.aws_session_token, over.get("aws_session_token"));
        set(&mut a.secret_field, over.get("secret_field"));
        a
    }
}

settings_group! {
    /// `[secrets.azure]`: Azure Key Vault with a service principal (client credentials).
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub struct AzureSettings {
        /// The vault, e.g. `https://myvault.vault.azure.net`.
        vault_url: Option<String> = None, {
            env: &["CKP_AZURE_KEY_VAULT_URL", "AZURE_KEY_VAULT_URL", "CKP_AZURE_KEYVAULT_URL", "AZURE_KEYVAULT_URL"]
        };
        /// Directory (tenant) id.
        tenant_id: Option<String> = None, { env: &["CKP_AZURE_TENANT_ID", "AZURE_TENANT_ID"] };
        /// Application (client) id.
        client_id: Option<String> = None, { env: &["CKP_AZURE_CLIENT_ID", "AZURE_CLIENT_ID"] };
        /// Client secret.
        client_secret: Option<Secret<String>> = None, { env: &["CKP_AZURE_CLIENT_SECRET", "AZURE_CLIENT_SECRET"] };
        /// The identity platform.
        authority_url: String = "https://login.microsoftonline.com".into(),
            { env: &["CKP_AZURE_AUTHORITY_HOST", "AZURE_AUTHORITY_HOST"] };
    }
}

impl AzureSettings {
    /// These settings with a procedure's laid over them.
    pub fn overlay(&self, over: &BTreeMap<String, String>) -> AzureSettings {
        let mut a = self.clone();
        let moved = |key: &str, current: Option<&str>| {
            over.get(key).is_some_and(|u| Some(u.trim_end_matches('/')) != current.map(|c| c.trim_end_matches('/')))
        };
        if moved("vault_url", self.vault_url.as_deref()) || moved("authority_url", Some(&self.authority_url)) {
            a.client_secret = None;
        }
        set(&mut a.vault_url, over.get("vault_url"));
        if let Some(x) = over.get("authority_url") {
            a.authority_url.clone_from(x);
        }
        set(&mut a.tenant_id, over.get("tenant_id"));
        set(&mut a.client_id, over.get("client_id"));
        set(&mut a.client_secret, over.get("client_secret"));
        a
    }
}

fn set<T: From<String>>(slot: &mut Option<T>, v: Option<&String>) {
    if let Some(v) = v {
        *slot = Some(T::from(v.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_procedure_pointing_elsewhere_gets_no_server_credentials() {
        let server = VaultSettings { vault_token: Some("server-token".into()), ..VaultSettings::default() };
        let same: BTreeMap<String, String> = [
            ("vault_url".to_owned(), "http://127.0.0.1:8200/".to_owned()),
            ("mount_point".to_owned(), "kv".to_owned()),
        ]
        .into();
        let v = server.overlay(&same);
        assert_eq!(
            (v.vault_token.as_ref().map(|t| t.expose().as_str()), v.mount_point.as_str()),
            (Some("server-token"), "kv")
        );
        let elsewhere: BTreeMap<String, String> = [("vault_url".to_owned(), "http://evil.example".to_owned())].into();
        assert_eq!(server.overlay(&elsewhere).vault_token, None);
        let aws = AwsSettings { aws_secret_access_key: Some("k".into()), ..AwsSettings::default() };
        let moved: BTreeMap<String, String> = [("endpoint_url".to_owned(), "http://x".to_owned())].into();
        assert_eq!(aws.overlay(&moved).aws_secret_access_key, None);
        let azure = AzureSettings { client_secret: Some("c".into()), ..AzureSettings::default() };
        let moved: BTreeMap<String, String> = [("authority_url".to_owned(), "http://x".to_owned())].into();
        assert_eq!(azure.overlay(&moved).client_secret, None);
    }

    #[test]
    fn debug_never_shows_credentials() {
        let mut s = SecretsSettings { encryption_key: Some("k3y-material".into()), ..SecretsSettings::default() };
        s.vault.vault_token = Some("hvs.t0ken".into());
        s.vault.secret_id = Some("s3cret-id".into());
        s.aws.aws_secret_access_key = Some("aws-s3cret".into());
        s.aws.aws_session_token = Some("aws-sess1on".into());
        s.azure.client_secret = Some("azure-s3cret".into());
        let text = format!("{s:?}");
        for v in ["k3y-material", "hvs.t0ken", "s3cret-id", "aws-s3cret", "aws-sess1on", "azure-s3cret"] {
            assert!(!text.contains(v), "{v} in {text}");
        }
    }
}
