//! The server's secrets settings: the `[secrets]` table of the configuration file (with `[secrets.vault]`,
//! `[secrets.aws]`, `[secrets.azure]`), then the environment. A procedure's `secrets_config` settings are laid over
//! these per run ([`VaultSettings::overlay`] and friends) under one rule: a procedure that points a provider at
//! another endpoint does not inherit the server's credentials, so they are never sent to an address the server's
//! operator did not choose. `Debug` output never shows a credential.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::masked::debug_masking;

/// A settings problem found at startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

/// `[secrets]`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsSettings {
    /// The provider of procedures without `secrets_config`: env, vault, aws, azure or db.
    pub provider: String,
    /// How long a fetched value is reused; 0 disables the cache. Failures are never cached.
    pub cache_ttl_ms: u64,
    /// The key sealing values in ckp's own store (`/api/secrets`, the `db` provider): 32 bytes as 64 hex digits or
    /// base64. Better given as `CKP_SECRETS_ENCRYPTION_KEY`. Without it, `/api/secrets` writes answer 503.
    pub encryption_key: Option<String>,
    /// HashiCorp Vault.
    pub vault: VaultSettings,
    /// AWS Secrets Manager.
    pub aws: AwsSettings,
    /// Azure Key Vault.
    pub azure: AzureSettings,
}

impl Default for SecretsSettings {
    fn default() -> Self {
        SecretsSettings {
            provider: "env".into(),
            cache_ttl_ms: 60_000,
            encryption_key: None,
            vault: VaultSettings::default(),
            aws: AwsSettings::default(),
            azure: AzureSettings::default(),
        }
    }
}

debug_masking!(SecretsSettings { provider, cache_ttl_ms, vault, aws, azure } masking { encryption_key });

/// `[secrets.vault]`: HashiCorp Vault (names as in LangOrch's `secrets_config`).
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultSettings {
    /// Address, e.g. `http://127.0.0.1:8200` (`VAULT_ADDR`).
    pub vault_url: String,
    /// A token (`VAULT_TOKEN`); used when no AppRole is configured.
    pub vault_token: Option<String>,
    /// AppRole role id (`VAULT_ROLE_ID`).
    pub role_id: Option<String>,
    /// AppRole secret id (`VAULT_SECRET_ID`).
    pub secret_id: Option<String>,
    /// Where the AppRole auth method is mounted (`VAULT_APPROLE_MOUNT`).
    pub approle_mount: String,
    /// The KV engine's mount.
    pub mount_point: String,
    /// Secrets live at `{path_prefix}/{key}` (LangOrch's default `langorch`; empty for none).
    pub path_prefix: String,
    /// KV engine version: 1 or 2.
    pub kv_version: u8,
    /// Enterprise namespace (`VAULT_NAMESPACE`).
    pub namespace: Option<String>,
    /// The field returned (else `value`, else the only field, else the JSON of all).
    pub field: Option<String>,
}

impl Default for VaultSettings {
    fn default() -> Self {
        VaultSettings {
            vault_url: "http://127.0.0.1:8200".into(),
            vault_token: None,
            role_id: None,
            secret_id: None,
            approle_mount: "approle".into(),
            mount_point: "secret".into(),
            path_prefix: "langorch".into(),
            kv_version: 2,
            namespace: None,
            field: None,
        }
    }
}

debug_masking!(VaultSettings {
    vault_url, role_id, approle_mount, mount_point, path_prefix, kv_version, namespace, field
} masking { vault_token, secret_id });

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

/// `[secrets.aws]`: AWS Secrets Manager.
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSettings {
    /// Region (`AWS_REGION`, `AWS_DEFAULT_REGION`).
    pub region_name: String,
    /// Endpoint (default `https://secretsmanager.{region}.amazonaws.com`; `AWS_SECRETS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// Access key id (`AWS_ACCESS_KEY_ID`).
    pub aws_access_key_id: Option<String>,
    /// Secret access key (`AWS_SECRET_ACCESS_KEY`).
    pub aws_secret_access_key: Option<String>,
    /// Session token of temporary credentials (`AWS_SESSION_TOKEN`).
    pub aws_session_token: Option<String>,
    /// The JSON field returned from a `SecretString` holding an object.
    pub secret_field: Option<String>,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            region_name: "us-east-1".into(),
            endpoint_url: None,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            aws_session_token: None,
            secret_field: None,
        }
    }
}

debug_masking!(AwsSettings { region_name, endpoint_url, aws_access_key_id, secret_field }
    masking { aws_secret_access_key, aws_session_token });

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

/// `[secrets.azure]`: Azure Key Vault with a service principal (client credentials).
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AzureSettings {
    /// The vault, e.g. `https://myvault.vault.azure.net` (`AZURE_KEY_VAULT_URL`).
    pub vault_url: Option<String>,
    /// Directory (tenant) id (`AZURE_TENANT_ID`).
    pub tenant_id: Option<String>,
    /// Application (client) id (`AZURE_CLIENT_ID`).
    pub client_id: Option<String>,
    /// Client secret (`AZURE_CLIENT_SECRET`).
    pub client_secret: Option<String>,
    /// The identity platform (`AZURE_AUTHORITY_HOST`).
    pub authority_url: String,
}

impl Default for AzureSettings {
    fn default() -> Self {
        AzureSettings {
            vault_url: None,
            tenant_id: None,
            client_id: None,
            client_secret: None,
            authority_url: "https://login.microsoftonline.com".into(),
        }
    }
}

debug_masking!(AzureSettings { vault_url, tenant_id, client_id, authority_url } masking { client_secret });

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

fn set(slot: &mut Option<String>, v: Option<&String>) {
    if let Some(v) = v {
        *slot = Some(v.clone());
    }
}

impl SecretsSettings {
    /// Applies the environment: `CKP_SECRETS_PROVIDER`, `CKP_SECRETS_CACHE_TTL_MS`, `CKP_SECRETS_ENCRYPTION_KEY`,
    /// and the providers' usual variables (`VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_ROLE_ID`, `VAULT_SECRET_ID`,
    /// `VAULT_NAMESPACE`, `VAULT_APPROLE_MOUNT`; `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_SECRETS_ENDPOINT_URL`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; `AZURE_KEY_VAULT_URL`/`AZURE_KEYVAULT_URL`,
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_AUTHORITY_HOST`), each also accepted with
    /// a `CKP_` prefix, which wins.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), SettingsError> {
        let get = |names: &[&str]| {
            names.iter().find_map(|n| env(&format!("CKP_{n}")).or_else(|| env(n))).filter(|v| !v.is_empty())
        };
        if let Some(v) = env("CKP_SECRETS_PROVIDER") {
            self.provider = v;
        }
        if let Some(v) = env("CKP_SECRETS_CACHE_TTL_MS") {
            self.cache_ttl_ms = v
                .trim()
                .parse()
                .map_err(|_| SettingsError(format!("CKP_SECRETS_CACHE_TTL_MS: not a number: {v:?}")))?;
        }
        if let Some(v) = env("CKP_SECRETS_ENCRYPTION_KEY") {
            self.encryption_key = Some(v);
        }
        let vault = &mut self.vault;
        if let Some(v) = get(&["VAULT_ADDR"]) {
            vault.vault_url = v;
        }
        set(&mut vault.vault_token, get(&["VAULT_TOKEN"]).as_ref());
        set(&mut vault.role_id, get(&["VAULT_ROLE_ID"]).as_ref());
        set(&mut vault.secret_id, get(&["VAULT_SECRET_ID"]).as_ref());
        set(&mut vault.namespace, get(&["VAULT_NAMESPACE"]).as_ref());
        if let Some(v) = get(&["VAULT_APPROLE_MOUNT"]) {
            vault.approle_mount = v;
        }
        let aws = &mut self.aws;
        if let Some(v) = get(&["AWS_REGION", "AWS_DEFAULT_REGION"]) {
            aws.region_name = v;
        }
        set(&mut aws.endpoint_url, get(&["AWS_SECRETS_ENDPOINT_URL"]).as_ref());
        set(&mut aws.aws_access_key_id, get(&["AWS_ACCESS_KEY_ID"]).as_ref());
        set(&mut aws.aws_secret_access_key, get(&["AWS_SECRET_ACCESS_KEY"]).as_ref());
        set(&mut aws.aws_session_token, get(&["AWS_SESSION_TOKEN"]).as_ref());
        let azure = &mut self.azure;
        set(&mut azure.vault_url, get(&["AZURE_KEY_VAULT_URL", "AZURE_KEYVAULT_URL"]).as_ref());
        set(&mut azure.tenant_id, get(&["AZURE_TENANT_ID"]).as_ref());
        set(&mut azure.client_id, get(&["AZURE_CLIENT_ID"]).as_ref());
        set(&mut azure.client_secret, get(&["AZURE_CLIENT_SECRET"]).as_ref());
        if let Some(v) = get(&["AZURE_AUTHORITY_HOST"]) {
            azure.authority_url = v;
        }
        Ok(())
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
        assert_eq!((v.vault_token.as_deref(), v.mount_point.as_str()), (Some("server-token"), "kv"));
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

    #[test]
    fn environment_names() {
        let mut s = SecretsSettings::default();
        s.apply_env(&|k| match k {
            "CKP_SECRETS_PROVIDER" => Some("vault".into()),
            "VAULT_ADDR" => Some("http://v:1".into()),
            "CKP_VAULT_ADDR" => Some("http://ckp:2".into()),
            "AWS_DEFAULT_REGION" => Some("eu-west-3".into()),
            "CKP_SECRETS_CACHE_TTL_MS" => Some("5".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(
            (s.provider.as_str(), s.vault.vault_url.as_str(), s.aws.region_name.as_str()),
            ("vault", "http://ckp:2", "eu-west-3")
        );
        assert_eq!(s.cache_ttl_ms, 5);
        assert!(s.apply_env(&|k| (k == "CKP_SECRETS_CACHE_TTL_MS").then(|| "soon".into())).is_err());
    }
}
