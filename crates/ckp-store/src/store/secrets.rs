//! [`SecretStore`]: the secrets table behind the `db` provider and `/api/secrets`, and its one decoder for both
//! backends. Values arrive sealed (the server encrypts them with its key before calling the store), so the store
//! keeps and returns opaque text; a duplicate name is [`StoreError::Conflict`], an unknown one
//! [`StoreError::NotFound`].

use ckp_engine::effects::BoxFuture;

use crate::StoreError;
use crate::row::RowSource;

/// Sealed secrets by name.
pub trait SecretStore: Send + Sync {
    /// Stores a new secret (sealed value; its id and timestamps are set by the store); a taken name is a conflict.
    fn insert_secret(&self, secret: SecretRow) -> BoxFuture<'_, Result<SecretRow, StoreError>>;
    /// Secrets by name.
    fn list_secrets(&self) -> BoxFuture<'_, Result<Vec<SecretRow>, StoreError>>;
    /// One secret by name.
    fn get_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<SecretRow>, StoreError>>;
    /// Changes the given fields of a secret (not found when absent).
    fn update_secret<'a>(&'a self, name: &'a str, update: SecretUpdate)
    -> BoxFuture<'a, Result<SecretRow, StoreError>>;
    /// Deletes a secret (not found when absent).
    fn delete_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// A stored secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// Id.
    pub secret_id: String,
    /// Unique name (what `{{secrets.NAME}}` and `secret_references` look up).
    pub name: String,
    /// The value, sealed by the server (never a clear value).
    pub sealed_value: String,
    /// Description.
    pub description: Option<String>,
    /// LangOrch's `provider_hint` (kept, shown; the store always serves the value itself).
    pub provider_hint: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Who created it.
    pub created_by: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Changes to a secret; None leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretUpdate {
    /// A new sealed value.
    pub sealed_value: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Provider hint.
    pub provider_hint: Option<String>,
}

/// The columns [`secret_row`] reads, in its order.
pub(crate) const SECRET_COLUMNS: &str =
    "secret_id, name, sealed_value, description, provider_hint, tags, created_by, created_at, updated_at";

/// A secret from the columns of [`SECRET_COLUMNS`].
pub(crate) fn secret_row<R: RowSource>(r: &R) -> Result<SecretRow, R::Error> {
    let tags = r.text(5)?;
    Ok(SecretRow {
        secret_id: r.text(0)?,
        name: r.text(1)?,
        sealed_value: r.text(2)?,
        description: r.opt_text(3)?,
        provider_hint: r.text(4)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        created_by: r.opt_text(6)?,
        created_at: r.time(7)?,
        updated_at: r.time(8)?,
    })
}

/// The answer when a name names no secret.
pub(crate) fn secret_not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("Secret '{name}' not found"))
}

/// The conflict of an insert under a taken name.
pub(crate) fn duplicate_secret(name: &str) -> StoreError {
    StoreError::Conflict(format!("Secret '{name}' already exists. Use PUT to update."))
}
