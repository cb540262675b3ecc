//! [`RowSource`]: one result row as both backends hand it to the shared decoders (`run_row`, `approval_row`, ...),
//! so a row type is read from its columns in one place. The backends differ only in how a column is fetched:
//! SQLite stores times as text, PostgreSQL as `timestamptz`; statuses are text in both and parsed here.

use std::str::FromStr;

/// A result row of either backend. The decoders are generic over it (no dynamic dispatch).
pub(crate) trait RowSource {
    /// The backend's error.
    type Error;

    /// A text column.
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    /// A nullable text column.
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    /// An integer column.
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    /// A nullable integer column.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    /// A boolean column (SQLite stores 0 or 1, PostgreSQL a `boolean`).
    fn flag(&self, i: usize) -> Result<bool, Self::Error>;
    /// A floating-point column.
    fn float(&self, i: usize) -> Result<f64, Self::Error>;
    /// A time column, as the API shows it ([`crate::codec::ts`]).
    fn time(&self, i: usize) -> Result<String, Self::Error>;
    /// A nullable time column.
    fn opt_time(&self, i: usize) -> Result<Option<String>, Self::Error>;
    /// A text column parsed (a status), without copying the text.
    fn parsed<T: FromStr>(&self, i: usize) -> Result<T, Self::Error>
    where
        T::Err: std::error::Error + Send + Sync + 'static;
    /// A nullable text column parsed.
    fn opt_parsed<T: FromStr>(&self, i: usize) -> Result<Option<T>, Self::Error>
    where
        T::Err: std::error::Error + Send + Sync + 'static;
}
