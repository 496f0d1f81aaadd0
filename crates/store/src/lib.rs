//! daas storage (DESIGN.md §2): one API over embedded SQLite (default) and PostgreSQL.
//!
//! Every secret-bearing column is sealed under the storage key (`daas_crypto::storage`) with
//! AAD = (table, row id, column), so a database dump alone reveals nothing. Searchable names are
//! stored as keyed lookup hashes. Every mutating call takes the audit event that describes it and
//! appends it to the hash-chained audit log *in the same transaction*: an operation is never
//! durable without its audit entry, and vice versa.
//!
//! - Backends: `sqlite` (WAL, single writer thread with group commit, durable against process
//!   crashes) and `postgres` (pooled, any number of replicas on one database).
//! - Schema: versioned migrations in `schema`, applied at open; the same logical tables on both.
//! - Sealing: which columns are sealed and how is described in `codec`.
//! - Workload identity: the CA (sealed), registration entries, join tokens (hashes only,
//!   single use) and attested nodes.
//! - Proof-of-possession tokens: signing keys (sealed, one active per purpose, rotation by
//!   compare-and-swap), issued-token records (sealed binding and claims) with status-list
//!   indexes, replacement and revocation.
//! - Audit: the canonical entry bytes are [`audit_entry_bytes`]; the chain is described in
//!   `audit_log`.
#![forbid(unsafe_code)]

mod audit_log;
mod codec;
mod error;
mod model;
mod postgres;
mod schema;
mod sqlite;

pub use audit_log::audit_entry_bytes;
pub use error::StoreError;
pub use model::*;

use daas_crypto::storage::StorageKeys;
use zeroize::Zeroizing;

/// Where the data lives. Parsed from `sqlite:PATH` (or `sqlite://PATH`, so `sqlite:///abs/db`
/// is `/abs/db`) or `postgres://...` / `postgresql://...` (libpq URL syntax). Schemes are
/// case-insensitive. `Debug` redacts the PostgreSQL URL (it may carry a password).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f.write_str("Postgres(<redacted>)"),
        }
    }
}

/// Strip `prefix` from `s` ignoring ASCII case.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

impl std::str::FromStr for StoreUrl {
    type Err = StoreError;
    /// Error messages never echo the input (a URL may carry a password).
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let invalid = |msg: &str| Err(StoreError::InvalidUrl(msg.to_owned()));
        if let Some(rest) = strip_prefix_ci(s, "sqlite:") {
            let path = strip_prefix_ci(rest, "//").unwrap_or(rest);
            if path.is_empty() {
                return invalid("sqlite url has an empty path");
            }
            if path.contains('\0') {
                return invalid("sqlite path contains a nul byte");
            }
            if path == ":memory:" || path.starts_with("file:") {
                return invalid("sqlite url must name a database file");
            }
            return Ok(Self::Sqlite(std::path::PathBuf::from(path)));
        }
        for scheme in ["postgres://", "postgresql://"] {
            if let Some(rest) = strip_prefix_ci(s, scheme) {
                // The driver only knows lowercase schemes.
                let url = format!("{scheme}{rest}");
                // Validate now so a bad URL fails at parse time, not at first connect.
                return match tokio_postgres::Config::from_str(&url) {
                    Ok(_) => Ok(Self::Postgres(url)),
                    Err(_) => invalid("malformed postgres url"),
                };
            }
        }
        invalid("unsupported scheme: expected sqlite:<path> or postgres://...")
    }
}

/// The store: an enum over the two backends (no dyn, no async-trait).
///
/// Errors: `Unavailable` when the database cannot be reached or refuses work (retryable, 503),
/// `Conflict` on a unique or reference violation, `NotFound`, `Integrity` when a sealed value or
/// the audit chain head fails to verify (wrong storage key or tampered database; `open` checks
/// the key first). A mutating call that returns `Ok` has committed its data and its audit entry.
/// The returned futures are `Send`.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Open (creating and migrating as needed).
    pub async fn open(url: &StoreUrl, keys: StorageKeys) -> Result<Self, StoreError> {
        match url {
            StoreUrl::Sqlite(path) => {
                Ok(Self::Sqlite(sqlite::SqliteStore::open(path, keys).await?))
            }
            StoreUrl::Postgres(url) => {
                Ok(Self::Postgres(postgres::PgStore::open(url, keys).await?))
            }
        }
    }

    /// Cheap liveness check (used by health and to map failures to 503).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.ping().await,
            Self::Postgres(s) => s.ping().await,
        }
    }

    // ---- safe objects ----
    /// Insert a new object; `Conflict` if the id exists.
    pub async fn put_object(
        &self,
        obj: &ObjectRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.put_object(obj, audit).await,
            Self::Postgres(s) => s.put_object(obj, audit).await,
        }
    }
    /// `NotFound` if absent or deleted.
    pub async fn get_object(&self, id: &daas_crypto::ObjectId) -> Result<ObjectRecord, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_object(id).await,
            Self::Postgres(s) => s.get_object(id).await,
        }
    }
    /// Replace the access list; `NotFound` if absent.
    pub async fn set_object_access(
        &self,
        id: &daas_crypto::ObjectId,
        access: &[String],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.set_object_access(id, access, audit).await,
            Self::Postgres(s) => s.set_object_access(id, access, audit).await,
        }
    }
    /// Delete (crypto-shred: the server share is gone); `NotFound` if absent, `Conflict` if it
    /// holds a stored secret's share (delete the secret instead).
    pub async fn delete_object(
        &self,
        id: &daas_crypto::ObjectId,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.delete_object(id, audit).await,
            Self::Postgres(s) => s.delete_object(id, audit).await,
        }
    }

    // ---- stored secrets (name -> ciphertext + object record holding the server share) ----
    /// Create or replace `name`; returns the new version (1 for a new secret). The previous
    /// version's object (and so its share) is deleted in the same transaction.
    /// `secret.version` is ignored (the store assigns it); `Conflict` if `secret.object.id`
    /// already exists.
    pub async fn put_secret(
        &self,
        secret: &SecretRecord,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.put_secret(secret, audit).await,
            Self::Postgres(s) => s.put_secret(secret, audit).await,
        }
    }
    /// `NotFound` if absent.
    pub async fn get_secret(&self, name: &str) -> Result<SecretRecord, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_secret(name).await,
            Self::Postgres(s) => s.get_secret(name).await,
        }
    }
    /// Delete the secret and its object (crypto-shred); `NotFound` if absent.
    pub async fn delete_secret(&self, name: &str, audit: &AuditEvent) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.delete_secret(name, audit).await,
            Self::Postgres(s) => s.delete_secret(name, audit).await,
        }
    }
    /// Names (decrypted) and versions, sorted by name.
    pub async fn list_secrets(&self) -> Result<Vec<SecretSummary>, StoreError> {
        match self {
            Self::Sqlite(s) => s.list_secrets().await,
            Self::Postgres(s) => s.list_secrets().await,
        }
    }

    // ---- application credentials ----
    /// `Conflict` if the id or the name is taken.
    pub async fn put_app(&self, app: &AppRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.put_app(app, audit).await,
            Self::Postgres(s) => s.put_app(app, audit).await,
        }
    }
    /// `NotFound` if absent.
    pub async fn get_app(&self, id: &str) -> Result<AppRecord, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_app(id).await,
            Self::Postgres(s) => s.get_app(id).await,
        }
    }
    /// `NotFound` if absent.
    pub async fn get_app_by_name(&self, name: &str) -> Result<AppRecord, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_app_by_name(name).await,
            Self::Postgres(s) => s.get_app_by_name(name).await,
        }
    }
    /// Sorted by name.
    pub async fn list_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        match self {
            Self::Sqlite(s) => s.list_apps().await,
            Self::Postgres(s) => s.list_apps().await,
        }
    }

    /// Make `doc` the app's current identity document. `Conflict` unless its version is
    /// greater than the stored one's (then nothing is written, the audit event included);
    /// `NotFound` if the app does not exist.
    pub async fn put_app_document(
        &self,
        doc: &AppDocumentRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.put_app_document(doc, audit).await,
            Self::Postgres(s) => s.put_app_document(doc, audit).await,
        }
    }
    /// The app's current identity document; `NotFound` if none was issued.
    pub async fn get_app_document(&self, app_id: &str) -> Result<AppDocumentRecord, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_app_document(app_id).await,
            Self::Postgres(s) => s.get_app_document(app_id).await,
        }
    }

    // ---- workload identity ----
    /// The identity CA material (opaque to the store: the identity crate's serialised CA key
    /// and certificate), or `None` before the CA was created. The buffer is zeroized on drop;
    /// callers must not log it (`Zeroizing`'s `Debug` shows the bytes).
    pub async fn get_identity_ca(&self) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_identity_ca().await,
            Self::Postgres(s) => s.get_identity_ca().await,
        }
    }
    /// Insert or replace the one CA record (sealed with the storage key, AAD table
    /// `identity_ca`, row `1`, column `material`), with its audit entry in the same transaction.
    pub async fn put_identity_ca(
        &self,
        material: &[u8],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.put_identity_ca(material, audit).await,
            Self::Postgres(s) => s.put_identity_ca(material, audit).await,
        }
    }
    /// Store the first CA record unless one exists (several replicas may start at once):
    /// `true` if this call stored it (with its audit entry), `false` if a CA was already there
    /// (nothing written; read it with [`Store::get_identity_ca`] and use that one).
    pub async fn create_identity_ca(
        &self,
        material: &[u8],
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.create_identity_ca(material, audit).await,
            Self::Postgres(s) => s.create_identity_ca(material, audit).await,
        }
    }
    /// Insert a registration entry; `Conflict` if the id exists.
    fn keys(&self) -> &StorageKeys {
        match self {
            Self::Sqlite(s) => s.keys(),
            Self::Postgres(s) => s.keys(),
        }
    }

    fn open_entries(&self, entries: Vec<EntryRecord>) -> Result<Vec<EntryRecord>, StoreError> {
        entries
            .into_iter()
            .map(|e| codec::open_entry(self.keys(), e))
            .collect()
    }

    pub async fn put_entry(
        &self,
        entry: &EntryRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let sealed = codec::seal_entry(self.keys(), entry)?;
        match self {
            Self::Sqlite(s) => s.put_entry(&sealed, audit).await,
            Self::Postgres(s) => s.put_entry(&sealed, audit).await,
        }
    }
    /// Delete a registration entry; `NotFound` if absent (and then nothing is written, not even
    /// the audit entry: the caller audits failures itself with [`Store::append_audit`]).
    pub async fn delete_entry(&self, id: &str, audit: &AuditEvent) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.delete_entry(id, audit).await,
            Self::Postgres(s) => s.delete_entry(id, audit).await,
        }
    }
    /// `NotFound` if absent.
    pub async fn get_entry(&self, id: &str) -> Result<EntryRecord, StoreError> {
        let entry = match self {
            Self::Sqlite(s) => s.get_entry(id).await,
            Self::Postgres(s) => s.get_entry(id).await,
        }?;
        codec::open_entry(self.keys(), entry)
    }
    /// All entries, ordered by (created_at, id) (ids in byte order).
    pub async fn list_entries(&self) -> Result<Vec<EntryRecord>, StoreError> {
        let entries = match self {
            Self::Sqlite(s) => s.list_entries(None).await,
            Self::Postgres(s) => s.list_entries(None).await,
        }?;
        self.open_entries(entries)
    }
    /// Entries whose `parent_id` equals `parent` (exact, case-sensitive), ordered like
    /// [`Store::list_entries`].
    pub async fn list_entries_for_parent(
        &self,
        parent: &str,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        let entries = match self {
            Self::Sqlite(s) => s.list_entries(Some(parent)).await,
            Self::Postgres(s) => s.list_entries(Some(parent)).await,
        }?;
        self.open_entries(entries)
    }
    /// Store a new join token (its hash only); `Conflict` if the hash exists.
    pub async fn put_join_token(
        &self,
        token: &JoinTokenRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.put_join_token(token, audit).await,
            Self::Postgres(s) => s.put_join_token(token, audit).await,
        }
    }
    /// Use a join token, once, atomically:
    ///
    /// - it exists and `expires_at > now_ms`: delete it, insert `node`, write `audit`, return
    ///   `Consumed`. If the node id exists the whole transaction is rolled back (the token is
    ///   *not* consumed) and the call fails with `Conflict`.
    /// - it exists but has expired: delete it (it can never be used) and return `Expired`
    ///   without writing `audit`.
    /// - absent (never issued or already used): return `Unknown`, writing nothing.
    ///
    /// Of concurrent consumers of one token (on any number of replicas) exactly one gets
    /// `Consumed`. Failures other than `Consumed` are for the caller to audit.
    pub async fn consume_join_token(
        &self,
        token_hash: &[u8; 32],
        now_ms: i64,
        node: &NodeRecord,
        audit: &AuditEvent,
    ) -> Result<JoinTokenUse, StoreError> {
        match self {
            Self::Sqlite(s) => s.consume_join_token(token_hash, now_ms, node, audit).await,
            Self::Postgres(s) => s.consume_join_token(token_hash, now_ms, node, audit).await,
        }
    }
    /// `NotFound` if the node never joined.
    pub async fn get_node(&self, spiffe_id: &str) -> Result<NodeRecord, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_node(spiffe_id).await,
            Self::Postgres(s) => s.get_node(spiffe_id).await,
        }
    }
    /// All nodes, ordered by (created_at, spiffe_id) (ids in byte order).
    pub async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        match self {
            Self::Sqlite(s) => s.list_nodes().await,
            Self::Postgres(s) => s.list_nodes().await,
        }
    }

    // ---- proof-of-possession tokens ----
    /// Every token signing key (active and retired), ordered by (created_at, kid).
    pub async fn list_token_keys(&self) -> Result<Vec<TokenKeyRecord>, StoreError> {
        let rows = match self {
            Self::Sqlite(s) => s.list_token_keys().await,
            Self::Postgres(s) => s.list_token_keys().await,
        }?;
        rows.into_iter().map(|r| r.open(self.keys())).collect()
    }
    /// Store `key` as the active key of its purpose unless that purpose has one already
    /// (several replicas may start at once): `true` if this call stored it (with its audit
    /// entry), `false` if another active key exists (nothing written). `key.retired_at` must
    /// be `None`.
    pub async fn create_token_key(
        &self,
        key: &TokenKeyRecord,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        if key.retired_at.is_some() {
            return Err(StoreError::Internal(
                "a new token key cannot be retired".into(),
            ));
        }
        let row = codec::TokenKeyRow::seal(self.keys(), key)?;
        match self {
            Self::Sqlite(s) => s.create_token_key(row, audit).await,
            Self::Postgres(s) => s.create_token_key(row, audit).await,
        }
    }
    /// Compare-and-swap rotation: retire `current_kid` (at `key.created_at`) and make `key` the
    /// active key of its purpose, in one transaction. `Conflict` (nothing written) unless
    /// `current_kid` is the purpose's active key, e.g. because another replica rotated first.
    pub async fn rotate_token_key(
        &self,
        current_kid: &str,
        key: &TokenKeyRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        if key.retired_at.is_some() {
            return Err(StoreError::Internal(
                "a new token key cannot be retired".into(),
            ));
        }
        let row = codec::TokenKeyRow::seal(self.keys(), key)?;
        match self {
            Self::Sqlite(s) => s.rotate_token_key(current_kid, row, audit).await,
            Self::Postgres(s) => s.rotate_token_key(current_kid, row, audit).await,
        }
    }
    /// Record an issued token under the next status index, which is returned (indexes start at
    /// 0 and grow by one per token, never reused). `Conflict` if the jti exists.
    pub async fn insert_token(
        &self,
        token: &TokenRecord,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let row = codec::TokenRow::seal(self.keys(), token)?;
        let idx = match self {
            Self::Sqlite(s) => s.insert_token(row, audit).await,
            Self::Postgres(s) => s.insert_token(row, audit).await,
        }?;
        codec::u64_from_db(idx, "token_status_counter", "next_idx")
    }
    /// Replace token `old_jti` by `token` atomically: mark the old one revoked and replaced by
    /// `token.jti`, and insert `token` under the next status index (returned). `Conflict`
    /// (nothing written) if the old token is absent or already revoked or replaced, so of
    /// concurrent replacements of one token exactly one succeeds.
    pub async fn replace_token(
        &self,
        old_jti: &str,
        token: &TokenRecord,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let row = codec::TokenRow::seal(self.keys(), token)?;
        let idx = match self {
            Self::Sqlite(s) => s.replace_token(old_jti, row, audit).await,
            Self::Postgres(s) => s.replace_token(old_jti, row, audit).await,
        }?;
        codec::u64_from_db(idx, "token_status_counter", "next_idx")
    }
    /// `NotFound` if no token has this jti.
    pub async fn get_token(&self, jti: &str) -> Result<TokenRecord, StoreError> {
        let row = match self {
            Self::Sqlite(s) => s.get_token(jti).await,
            Self::Postgres(s) => s.get_token(jti).await,
        }?;
        row.open(self.keys())
    }
    /// Revoke the selected tokens; returns how many were revoked by this call (already revoked
    /// ones are not counted). `NotFound` (nothing written, not even the audit entry) if no
    /// token matches.
    pub async fn revoke_tokens(
        &self,
        selector: TokenSelector<'_>,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let by = codec::RevokeBy::new(self.keys(), selector);
        match self {
            Self::Sqlite(s) => s.revoke_tokens(by, audit).await,
            Self::Postgres(s) => s.revoke_tokens(by, audit).await,
        }
    }
    /// The status indexes allocated so far and which of them are revoked (replaced tokens
    /// included), read in one snapshot: what a Token Status List is built from.
    pub async fn revoked_status_indexes(&self) -> Result<TokenStatusSnapshot, StoreError> {
        let (allocated, revoked) = match self {
            Self::Sqlite(s) => s.token_status().await,
            Self::Postgres(s) => s.token_status().await,
        }?;
        codec::status_snapshot(allocated, revoked)
    }

    // ---- audit ----
    /// Append a standalone audit entry (reads, denials). Returns its sequence number.
    pub async fn append_audit(&self, audit: &AuditEvent) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.append_audit(audit).await,
            Self::Postgres(s) => s.append_audit(audit).await,
        }
    }
    /// Entries with seq > after, ascending, at most `limit`.
    pub async fn list_audit(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        match self {
            Self::Sqlite(s) => s.list_audit(after, limit).await,
            Self::Postgres(s) => s.list_audit(after, limit).await,
        }
    }
    /// Walk the whole chain; `Ok(report)` with the first broken link if any.
    ///
    /// An edited, inserted or reordered entry reports its own seq; a deleted one (a gap) the
    /// missing seq; entries removed from the end (or a forged chain head) report last seq + 1,
    /// found through the MAC'd chain head. `entries` counts the rows present. Rolling the whole
    /// database back to an older state is only visible against an exported `head`.
    pub async fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        match self {
            Self::Sqlite(s) => s.verify_audit().await,
            Self::Postgres(s) => s.verify_audit().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn parse(s: &str) -> Result<StoreUrl, StoreError> {
        s.parse()
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            parse("sqlite:data/daas.db").unwrap(),
            StoreUrl::Sqlite("data/daas.db".into())
        );
        assert_eq!(
            parse("sqlite://data/daas.db").unwrap(),
            StoreUrl::Sqlite("data/daas.db".into())
        );
        assert_eq!(
            parse("sqlite:///var/lib/daas.db").unwrap(),
            StoreUrl::Sqlite("/var/lib/daas.db".into())
        );
        assert_eq!(
            parse("sqlite:/var/lib/daas.db").unwrap(),
            StoreUrl::Sqlite("/var/lib/daas.db".into())
        );
        assert_eq!(
            parse("SQLite:x.db").unwrap(),
            StoreUrl::Sqlite(PathBuf::from("x.db"))
        );
        for bad in [
            "sqlite:",
            "sqlite://",
            "sqlite::memory:",
            "sqlite:file:x.db?mode=memory",
            "sqlite:a\0b",
        ] {
            assert!(
                matches!(parse(bad), Err(StoreError::InvalidUrl(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn postgres_urls() {
        for ok in [
            "postgres://daas:daas@127.0.0.1:5432/postgres",
            "postgresql://u@db.internal/daas?connect_timeout=5",
            "POSTGRES://localhost/daas",
            "postgresql://%2Fvar%2Frun%2Fpostgresql/daas",
        ] {
            let StoreUrl::Postgres(url) = parse(ok).unwrap() else {
                panic!("{ok}")
            };
            assert_eq!(
                url.replacen("POSTGRES", "postgres", 1),
                ok.replacen("POSTGRES", "postgres", 1)
            );
        }
        assert!(matches!(
            parse("postgres://h/db?bogus_option=1"),
            Err(StoreError::InvalidUrl(_))
        ));
    }

    #[test]
    fn other_schemes_are_rejected_without_echo() {
        for bad in [
            "",
            "mysql://root:hunter2@h/db",
            "sqlite",
            "/var/lib/daas.db",
            "redis://h",
            "postgres:/x",
        ] {
            let err = parse(bad).unwrap_err();
            let StoreError::InvalidUrl(msg) = &err else {
                panic!("{bad:?}: {err:?}")
            };
            assert!(!msg.is_empty() && msg == &msg.to_lowercase(), "{msg}");
            assert!(!err.to_string().contains("hunter2"));
        }
        let err = parse("postgres://u:hunter2@h:notaport/db").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn debug_redacts_postgres_credentials() {
        let url = parse("postgres://daas:hunter2@127.0.0.1/db").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn futures_are_send() {
        fn send<T: Send>(_: T) {}
        #[expect(dead_code, reason = "only type-checked: the futures are never polled")]
        fn check(store: &Store, id: &daas_crypto::ObjectId, e: &AuditEvent, s: &SecretRecord) {
            send(store.put_object(&s.object, e));
            send(store.get_object(id));
            send(store.put_secret(s, e));
            send(store.list_secrets());
            send(store.verify_audit());
            send(store.put_identity_ca(&[], e));
            send(store.get_identity_ca());
            send(store.list_entries_for_parent("spiffe://x/node"));
            send(store.consume_join_token(
                &[0; 32],
                0,
                &NodeRecord {
                    spiffe_id: String::new(),
                    created_at: 0,
                },
                e,
            ));
            send(Store::open(
                &StoreUrl::Postgres(String::new()),
                daas_crypto::storage::StorageKeys::derive(&daas_crypto::Key256::from_bytes(
                    [0; 32],
                )),
            ));
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn parsing_never_panics_on_url_like_input(
            scheme in prop::sample::select(vec!["sqlite:", "sqlite://", "postgres://", "postgresql://", "SQLITE:", "pg://"]),
            rest in "[\\PC\\x00/:@?&=%\\[\\]]{0,40}",
        ) {
            let s = format!("{scheme}{rest}");
            if let Ok(StoreUrl::Sqlite(p)) = parse(&s) {
                prop_assert!(!p.as_os_str().is_empty());
            }
        }

        #[test]
        fn sqlite_paths_roundtrip(path in "[a-zA-Z0-9_./-]{1,30}") {
            prop_assume!(!path.starts_with("//"));
            prop_assert_eq!(parse(&format!("sqlite:{path}")).unwrap(), StoreUrl::Sqlite(path.clone().into()));
        }
    }
}
