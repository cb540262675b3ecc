//! How both backends write values the API reads back as text: times (RFC 3339 UTC with microseconds and `Z`, so
//! text order is time order), JSON columns, tags. Written once here so a row reads the same from either backend.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::StoreError;

/// A time as the store shows it.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses a time given by a caller (RFC 3339, any offset).
pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| StoreError::Invalid(format!("`{s}` is not an RFC 3339 time: {e}")))
}

/// A time given by a caller as the store shows it (and the SQLite store stores it, so that text order is time
/// order whatever offset or precision the caller wrote); a malformed time is [`StoreError::Invalid`].
pub(crate) fn shown_time(s: &str) -> Result<String, StoreError> {
    parse_time(s).map(ts)
}

/// The current time as the store shows it.
pub(crate) fn now() -> String {
    ts(Utc::now())
}

/// A JSON text column (None when absent or unreadable).
pub(crate) fn json_col(s: Option<String>) -> Option<serde_json::Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

/// A secret's tags as stored (a JSON array).
pub(crate) fn tags_text(tags: &[String]) -> String {
    string_list(tags)
}

/// Strings as a JSON array: how the SQLite store binds a list as one parameter (read back with `json_each`, so a
/// statement keeps one text whatever the list's length).
pub(crate) fn string_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}
