//! `ckp serve`'s settings for workflow callbacks, kept out of `serve.rs`: the public URL agents call back at, the
//! callback secret (given, or generated once and kept in the data directory so tokens survive restarts), and the
//! callback timeout.

use std::net::SocketAddr;
use std::sync::Arc;

use ckp_connectors::workflow::CallbackSigner;

use crate::serve::{ConfigError, ServeConfig, ServeError};

/// The file in the data directory holding a generated callback secret.
const SECRET_FILE: &str = "callback_secret";

/// Applies `CKP_PUBLIC_URL`, `CKP_CALLBACK_SECRET`, `CKP_WORKFLOW_CALLBACK_TIMEOUT_MINUTES`.
pub(crate) fn apply_env(config: &mut ServeConfig, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    if let Some(v) = env("CKP_PUBLIC_URL") {
        config.public_url = Some(v);
    }
    if let Some(v) = env("CKP_CALLBACK_SECRET") {
        config.callback_secret = Some(v);
    }
    if let Some(v) = env("CKP_WORKFLOW_CALLBACK_TIMEOUT_MINUTES") {
        config.workflow_callback_timeout_minutes = v.trim().parse().map_err(|_| ConfigError::Env {
            name: "CKP_WORKFLOW_CALLBACK_TIMEOUT_MINUTES".into(),
            message: format!("not a number: {v:?}"),
        })?;
    }
    Ok(())
}

/// The callback signer: the configured secret, else the one kept in the data directory, else a new one written
/// there (readable by the owner only).
pub(crate) fn signer(config: &ServeConfig) -> Result<Arc<CallbackSigner>, ServeError> {
    let minutes = config.workflow_callback_timeout_minutes;
    if !(minutes.is_finite() && minutes > 0.0) {
        return Err(ServeError::Config(format!(
            "workflow_callback_timeout_minutes must be a positive number, not {minutes}"
        )));
    }
    if let Some(secret) = config.callback_secret.as_deref() {
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

/// `public_url`, else `http://<address listened on>` (a wildcard address becomes 127.0.0.1).
pub(crate) fn public_url(config: &ServeConfig, addr: SocketAddr) -> String {
    if let Some(url) = config.public_url.as_deref().filter(|u| !u.trim().is_empty()) {
        return url.trim().trim_end_matches('/').to_owned();
    }
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}
