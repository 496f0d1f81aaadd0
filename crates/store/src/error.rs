use thiserror::Error;

/// Store errors, grouped by who is at fault. Messages never contain secret values or SQL.
#[derive(Debug, Error)]
pub enum StoreError {
    // caller
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Conflict,
    #[error("invalid storage url: {0}")]
    InvalidUrl(String),
    // environment
    /// The database cannot be reached or refused the write. Maps to 503.
    #[error("storage unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    // internal
    /// A sealed value failed to open (wrong storage key or tampered database).
    #[error("stored data failed integrity check at {table}/{column}")]
    Integrity {
        table: &'static str,
        column: &'static str,
    },
    #[error("internal storage error: {0}")]
    Internal(String),
}
