//! daas storage (DESIGN.md §2): one API over embedded SQLite (default) and PostgreSQL.
//!
//! Every secret-bearing column is sealed under the storage key (`daas_crypto::storage`) with
//! AAD = (table, row id, column), so a database dump alone reveals nothing. Searchable names are
//! stored as keyed lookup hashes. Every mutating call takes the audit event that describes it and
//! appends it to the hash-chained audit log *in the same transaction*: an operation is never
//! durable without its audit entry, and vice versa.
#![forbid(unsafe_code)]

mod error;
mod model;
mod postgres;
mod sqlite;

pub use error::StoreError;
pub use model::*;

use daas_crypto::storage::StorageKeys;

/// Where the data lives. Parsed from `sqlite:PATH` or `postgres://...` / `postgresql://...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl std::str::FromStr for StoreUrl {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> { todo!() }
}

/// The store: an enum over the two backends (no dyn, no async-trait).
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Open (creating and migrating as needed).
    pub async fn open(url: &StoreUrl, keys: StorageKeys) -> Result<Self, StoreError> { todo!() }

    /// Cheap liveness check (used by health and to map failures to 503).
    pub async fn ping(&self) -> Result<(), StoreError> { todo!() }

    // ---- safe objects ----
    /// Insert a new object; `Conflict` if the id exists.
    pub async fn put_object(&self, obj: &ObjectRecord, audit: &AuditEvent) -> Result<(), StoreError> { todo!() }
    /// `NotFound` if absent or deleted.
    pub async fn get_object(&self, id: &daas_crypto::ObjectId) -> Result<ObjectRecord, StoreError> { todo!() }
    /// Replace the access list; `NotFound` if absent.
    pub async fn set_object_access(&self, id: &daas_crypto::ObjectId, access: &[String], audit: &AuditEvent) -> Result<(), StoreError> { todo!() }
    /// Delete (crypto-shred: the server share is gone); `NotFound` if absent.
    pub async fn delete_object(&self, id: &daas_crypto::ObjectId, audit: &AuditEvent) -> Result<(), StoreError> { todo!() }

    // ---- stored secrets (name -> ciphertext + object record holding the server share) ----
    /// Create or replace `name`; returns the new version (1 for a new secret). The previous
    /// version's object (and so its share) is deleted in the same transaction.
    pub async fn put_secret(&self, secret: &SecretRecord, audit: &AuditEvent) -> Result<u64, StoreError> { todo!() }
    pub async fn get_secret(&self, name: &str) -> Result<SecretRecord, StoreError> { todo!() }
    pub async fn delete_secret(&self, name: &str, audit: &AuditEvent) -> Result<(), StoreError> { todo!() }
    /// Names (decrypted) and versions, sorted by name.
    pub async fn list_secrets(&self) -> Result<Vec<SecretSummary>, StoreError> { todo!() }

    // ---- application credentials ----
    pub async fn put_app(&self, app: &AppRecord, audit: &AuditEvent) -> Result<(), StoreError> { todo!() }
    pub async fn get_app(&self, id: &str) -> Result<AppRecord, StoreError> { todo!() }
    pub async fn get_app_by_name(&self, name: &str) -> Result<AppRecord, StoreError> { todo!() }
    pub async fn list_apps(&self) -> Result<Vec<AppRecord>, StoreError> { todo!() }

    // ---- audit ----
    /// Append a standalone audit entry (reads, denials). Returns its sequence number.
    pub async fn append_audit(&self, audit: &AuditEvent) -> Result<u64, StoreError> { todo!() }
    /// Entries with seq > after, ascending, at most `limit`.
    pub async fn list_audit(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> { todo!() }
    /// Walk the whole chain; `Ok(report)` with the first broken link if any.
    pub async fn verify_audit(&self) -> Result<AuditReport, StoreError> { todo!() }
}
