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

/// A failure already described once, handed to each caller of a group commit.
#[derive(Debug, Error)]
#[error("{0}")]
struct BatchFailure(String);

impl StoreError {
    /// A fresh copy of a batch-level error for each job of a group commit (errors are not
    /// `Clone`: `Unavailable` carries its source).
    pub(crate) fn for_each_job(&self) -> StoreError {
        match self {
            StoreError::NotFound => StoreError::NotFound,
            StoreError::Conflict => StoreError::Conflict,
            StoreError::InvalidUrl(m) => StoreError::InvalidUrl(m.clone()),
            StoreError::Unavailable(src) => {
                StoreError::Unavailable(Box::new(BatchFailure(src.to_string())))
            }
            StoreError::Integrity { table, column } => StoreError::Integrity { table, column },
            StoreError::Internal(m) => StoreError::Internal(m.clone()),
        }
    }
}
