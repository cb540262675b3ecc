//! Workflow callbacks' keys and addresses: the callback signer (the `callback_secret` setting, or a secret generated
//! once and kept in the data directory so tokens survive restarts) and the public URL agents call back at.

use std::net::SocketAddr;
use std::sync::Arc;

use ckp_connectors::workflow::CallbackSigner;

use crate::serve::{ServeConfig, ServeError};

/// The file in the data directory holding a generated callback secret.
const SECRET_FILE: &str = "callback_secret";

/// The callback signer: the configured secret, else the one kept in the data directory, else a new one written
/// there (readable by the owner only).
pub(crate) fn signer(config: &ServeConfig) -> Result<Arc<CallbackSigner>, ServeError> {
    let minutes = config.workflow_callback_timeout_minutes;
    if !(minutes.is_finite() && minutes > 0.0) {
        return Err(ServeError::Config(format!(
            "workflow_callback_timeout_minutes must be a positive number, not {minutes}"
        )));
    }
    if let Some(secret) = ckp_connectors::settings::exposed(&config.callback_secret) {
        if secret.trim().is_empty() {
            return Err(ServeError::Config("callback_secret must not be empty".into()));
        }
        return Ok(Arc::new(CallbackSigner::new(secret.as_bytes())));
    }
    let path = config.data_dir.join(SECRET_FILE);
    let unreadable =
        |e: std::io::Error| ServeError::Config(format!("cannot keep the callback secret in {}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(Arc::new(CallbackSigner::new(s.trim().as_bytes()))),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(unreadable(e)),
    }
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    std::fs::create_dir_all(&config.data_dir).map_err(unreadable)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(unreadable)?;
    std::io::Write::write_all(&mut file, secret.as_bytes()).map_err(unreadable)?;
    file.sync_all().map_err(unreadable)?;
    Ok(Arc::new(CallbackSigner::new(secret.as_bytes())))
}

/// `public_url`, else `http://<address listened on>` (a wildcard address becomes 127.0.0.1); a worker-only process
/// (no address) falls back to `http://<bind>`, the API's address when API and workers share a host and settings.
pub(crate) fn public_url(config: &ServeConfig, addr: Option<SocketAddr>) -> String {
    if let Some(url) = config.public_url.as_deref().filter(|u| !u.trim().is_empty()) {
        return url.trim().trim_end_matches('/').to_owned();
    }
    let Some(mut addr) = addr else { return format!("http://{}", config.bind) };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

#[cfg(test)]
mod tests {
    use crate::serve::ServeConfig;
    use crate::settings::load;

    #[test]
    fn settings_come_from_the_environment() {
        let env = |name: &str| {
            match name {
                "CKP_PUBLIC_URL" => Some("https://ckp.example.com/"),
                "CKP_CALLBACK_SECRET" => Some("s"),
                "CKP_WORKFLOW_CALLBACK_TIMEOUT_MINUTES" => Some("2.5"),
                "CKP_LLM_PRICES" => Some(r#"{"m": {"prompt": 1, "completion": 2}}"#),
                _ => None,
            }
            .map(str::to_owned)
        };
        let mut config = load(None, &env, &[]).expect("valid").config;
        assert_eq!(config.public_url.as_deref(), Some("https://ckp.example.com/"));
        assert_eq!(ckp_connectors::settings::exposed(&config.callback_secret), Some("s"));
        assert!((config.workflow_callback_timeout_minutes - 2.5).abs() < f64::EPSILON);
        assert_eq!(config.llm_prices.get("m").map(|p| (p.prompt, p.completion)), Some((1.0, 2.0)));
        let addr = Some("0.0.0.0:8000".parse().expect("addr"));
        assert_eq!(super::public_url(&config, addr), "https://ckp.example.com");
        config.public_url = None;
        assert_eq!(super::public_url(&config, addr), "http://127.0.0.1:8000");
        config.bind = "10.0.0.5:9000".into();
        assert_eq!(super::public_url(&config, None), "http://10.0.0.5:9000", "a worker-only process");
        let bad = |name: &str| (name == "CKP_LLM_PRICES").then(|| "{".to_owned());
        assert!(load(None, &bad, &[]).is_err());
        let bad = |name: &str| (name == "CKP_WORKFLOW_CALLBACK_TIMEOUT_MINUTES").then(|| "soon".to_owned());
        assert!(load(None, &bad, &[]).is_err());
    }
    #[test]
    fn a_generated_secret_is_kept_and_bad_settings_are_refused() {
        let dir = std::env::temp_dir().join(format!("ckp-callback-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = ServeConfig { data_dir: dir.clone(), ..ServeConfig::default() };
        let first = super::signer(&config).expect("generated").token("r");
        assert_eq!(super::signer(&config).expect("read back").token("r"), first, "the same secret after a restart");
        let zero = ServeConfig { workflow_callback_timeout_minutes: 0.0, ..config.clone() };
        assert!(super::signer(&zero).is_err());
        let empty = ServeConfig { callback_secret: Some(" ".into()), ..config };
        assert!(super::signer(&empty).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
