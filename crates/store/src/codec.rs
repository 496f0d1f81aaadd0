//! Backend-independent row encoding: which columns are sealed, under which `Location`, and how
//! rows are opened again.
//!
//! | table     | row id (AAD)   | sealed columns                                        | plain columns |
//! |-----------|----------------|-------------------------------------------------------|---------------|
//! | `objects` | object id hex  | share, commitment, access, owner, audience, meta      | id, created_at |
//! | `secrets` | name lookup    | name, ciphertext, owner                               | name_hash, object_id, version, updated_at |
//! | `apps`    | app id         | name, token_hash                                      | id, name_hash, created_at |
//! | `meta`    | key            | value (`key_check`)                                   | key |
//! | `identity_ca` | `1`        | material                                              | id, updated_at |
//! | `token_keys` | kid         | material (PKCS#8 private key)                         | kid, purpose, created_at, retired_at |
//! | `tokens`  | jti            | body (JSON: sub, aud, scope, jkt)                     | jti, status_idx, subject_hash, times, revoked, replaced_by |
//!
//! The workload-identity tables `entries`, `join_tokens` and `nodes` hold configuration, not
//! secrets, and are stored in plain columns; `join_tokens.token_hash` is the lowercase hex of
//! the token's SHA-256 (the token itself is never stored).
//!
//! `objects.meta` = `u32be(key_version) ‖ u8(suite) ‖ u8(mode)`; `objects.access` = JSON array.
//! Lookup hashes are `StorageKeys::lookup(domain, value)` (keyed HMAC), so equal names can be
//! found without revealing them. A sealed value copied to another row or column fails to open
//! (`StoreError::Integrity`).
use daas_crypto::secret::SecretBytes;
use daas_crypto::storage::{Location, StorageKeys};
use daas_crypto::{Key256, ObjectId};
use zeroize::{Zeroize, Zeroizing};

use crate::{
    AppRecord, EntryRecord, NodeRecord, ObjectMode, ObjectRecord, SecretRecord, SecretSummary,
    StoreError,
};

pub(crate) const OBJECTS: &str = "objects";
pub(crate) const SECRETS: &str = "secrets";
pub(crate) const APPS: &str = "apps";
pub(crate) const META: &str = "meta";
pub(crate) const IDENTITY_CA: &str = "identity_ca";
/// The only row of `identity_ca` (its AAD row id); the table allows no other.
const IDENTITY_CA_ROW: &str = "1";
const IDENTITY_CA_COLUMN: &str = "material";

/// Lookup domain of secret names (`secrets.name_hash`).
pub(crate) const SECRET_NAME_DOMAIN: &str = "secret-name";
/// Lookup domain of token subjects (`tokens.subject_hash`).
pub(crate) const TOKEN_SUBJECT_DOMAIN: &str = "token-subject";
/// Lookup domain of app names (`apps.name_hash`).
pub(crate) const APP_NAME_DOMAIN: &str = "app-name";

/// `meta` row whose sealed value proves the storage key is the one the database was made with.
pub(crate) const KEY_CHECK_ROW: &str = "key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"daas storage key check v1";

pub(crate) fn seal(
    keys: &StorageKeys,
    table: &str,
    row_id: &str,
    column: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, StoreError> {
    keys.seal(
        Location {
            table,
            row_id,
            column,
        },
        plaintext,
    )
    .map_err(|_| StoreError::Internal("sealing a stored value failed".into()))
}

pub(crate) fn open(
    keys: &StorageKeys,
    table: &'static str,
    row_id: &str,
    column: &'static str,
    sealed: &[u8],
) -> Result<SecretBytes, StoreError> {
    keys.open(
        Location {
            table,
            row_id,
            column,
        },
        sealed,
    )
    .map_err(|_| integrity(table, column))
}

pub(crate) fn integrity(table: &'static str, column: &'static str) -> StoreError {
    tracing::warn!(table, column, "stored value failed its integrity check");
    StoreError::Integrity { table, column }
}

fn open_string(
    keys: &StorageKeys,
    table: &'static str,
    row_id: &str,
    column: &'static str,
    sealed: &[u8],
) -> Result<String, StoreError> {
    let plain = open(keys, table, row_id, column, sealed)?;
    String::from_utf8(plain.expose().to_vec()).map_err(|e| {
        let mut bytes = e.into_bytes();
        bytes.zeroize();
        integrity(table, column)
    })
}

pub(crate) fn object_id_hex(id: &ObjectId) -> String {
    hex::encode(id.0)
}

fn parse_object_id(
    table: &'static str,
    column: &'static str,
    s: &str,
) -> Result<ObjectId, StoreError> {
    let mut id = [0u8; 16];
    if s.len() != 32 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(integrity(table, column));
    }
    hex::decode_to_slice(s, &mut id).map_err(|_| integrity(table, column))?;
    Ok(ObjectId(id))
}

pub(crate) fn u64_from_db(
    v: i64,
    table: &'static str,
    column: &'static str,
) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| integrity(table, column))
}

pub(crate) fn u64_to_db(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Internal("integer out of range for storage".into()))
}

// ---------------------------------------------------------------- key check

pub(crate) fn new_key_check(keys: &StorageKeys) -> Result<Vec<u8>, StoreError> {
    seal(keys, META, KEY_CHECK_ROW, "value", KEY_CHECK_PLAINTEXT)
}

/// `Integrity { table: "meta", column: "value" }` when the database was made with another key.
pub(crate) fn verify_key_check(keys: &StorageKeys, sealed: &[u8]) -> Result<(), StoreError> {
    let plain = open(keys, META, KEY_CHECK_ROW, "value", sealed)?;
    if plain.expose() == KEY_CHECK_PLAINTEXT {
        Ok(())
    } else {
        Err(integrity(META, "value"))
    }
}

// ---------------------------------------------------------------- workload identity

/// Seal the identity CA material for `identity_ca.material`.
pub(crate) fn seal_identity_ca(keys: &StorageKeys, material: &[u8]) -> Result<Vec<u8>, StoreError> {
    seal(
        keys,
        IDENTITY_CA,
        IDENTITY_CA_ROW,
        IDENTITY_CA_COLUMN,
        material,
    )
}

/// Open `identity_ca.material`; the plaintext is moved (not copied) into the returned buffer,
/// which is zeroized on drop.
pub(crate) fn open_identity_ca(
    keys: &StorageKeys,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let mut plain = open(
        keys,
        IDENTITY_CA,
        IDENTITY_CA_ROW,
        IDENTITY_CA_COLUMN,
        sealed,
    )?;
    Ok(Zeroizing::new(std::mem::take(&mut plain.0)))
}

/// `join_tokens.token_hash`: lowercase hex, so both backends key it as TEXT.
pub(crate) fn join_token_key(token_hash: &[u8; 32]) -> String {
    hex::encode(token_hash)
}

/// Lists of entries are ordered by (created_at, id) in byte order, the same on both backends
/// (PostgreSQL's text ordering depends on the database collation).
pub(crate) fn sort_entries(v: &mut [EntryRecord]) {
    v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
}

/// Nodes are ordered by (created_at, spiffe_id), in byte order.
pub(crate) fn sort_nodes(v: &mut [NodeRecord]) {
    v.sort_by(|a, b| (a.created_at, &a.spiffe_id).cmp(&(b.created_at, &b.spiffe_id)));
}

// ---------------------------------------------------------------- objects

/// An `objects` row, sealed.
#[derive(Debug, Clone)]
pub(crate) struct ObjectRow {
    pub id: String,
    pub share: Vec<u8>,
    pub commitment: Vec<u8>,
    pub access: Vec<u8>,
    pub owner: Vec<u8>,
    pub audience: Vec<u8>,
    pub meta: Vec<u8>,
    pub created_at: i64,
}

fn mode_byte(mode: ObjectMode) -> u8 {
    match mode {
        ObjectMode::Server => 1,
        ObjectMode::Client => 2,
    }
}

pub(crate) fn seal_access(
    keys: &StorageKeys,
    id_hex: &str,
    access: &[String],
) -> Result<Vec<u8>, StoreError> {
    let mut json = serde_json::to_vec(access)
        .map_err(|_| StoreError::Internal("encoding an access list failed".into()))?;
    let sealed = seal(keys, OBJECTS, id_hex, "access", &json);
    json.zeroize();
    sealed
}

impl ObjectRow {
    pub(crate) fn seal(keys: &StorageKeys, o: &ObjectRecord) -> Result<Self, StoreError> {
        let id = object_id_hex(&o.id);
        let mut meta = Vec::with_capacity(6);
        meta.extend_from_slice(&o.key_version.to_be_bytes());
        meta.push(o.suite);
        meta.push(mode_byte(o.mode));
        Ok(Self {
            share: seal(keys, OBJECTS, &id, "share", o.server_share.expose())?,
            commitment: seal(keys, OBJECTS, &id, "commitment", &o.commitment)?,
            access: seal_access(keys, &id, &o.access)?,
            owner: seal(keys, OBJECTS, &id, "owner", o.owner.as_bytes())?,
            audience: seal(keys, OBJECTS, &id, "audience", o.audience.as_bytes())?,
            meta: seal(keys, OBJECTS, &id, "meta", &meta)?,
            created_at: o.created_at,
            id,
        })
    }

    pub(crate) fn open(&self, keys: &StorageKeys) -> Result<ObjectRecord, StoreError> {
        let id = parse_object_id(OBJECTS, "id", &self.id)?;
        let share = open(keys, OBJECTS, &self.id, "share", &self.share)?;
        let server_share =
            Key256::from_slice(share.expose()).map_err(|_| integrity(OBJECTS, "share"))?;
        let commitment = open(keys, OBJECTS, &self.id, "commitment", &self.commitment)?;
        let commitment: [u8; 32] = commitment
            .expose()
            .try_into()
            .map_err(|_| integrity(OBJECTS, "commitment"))?;
        let access = open(keys, OBJECTS, &self.id, "access", &self.access)?;
        let access: Vec<String> =
            serde_json::from_slice(access.expose()).map_err(|_| integrity(OBJECTS, "access"))?;
        let owner = open_string(keys, OBJECTS, &self.id, "owner", &self.owner)?;
        let audience = open_string(keys, OBJECTS, &self.id, "audience", &self.audience)?;
        let meta = open(keys, OBJECTS, &self.id, "meta", &self.meta)?;
        let (key_version, suite, mode) = match meta.expose() {
            [a, b, c, d, suite, mode] => {
                let mode = match mode {
                    1 => ObjectMode::Server,
                    2 => ObjectMode::Client,
                    _ => return Err(integrity(OBJECTS, "meta")),
                };
                (u32::from_be_bytes([*a, *b, *c, *d]), *suite, mode)
            }
            _ => return Err(integrity(OBJECTS, "meta")),
        };
        Ok(ObjectRecord {
            id,
            owner,
            audience,
            key_version,
            suite,
            mode,
            server_share,
            commitment,
            access,
            created_at: self.created_at,
        })
    }
}

// ---------------------------------------------------------------- secrets

/// A `secrets` row, sealed (the version is assigned by the backend).
#[derive(Debug, Clone)]
pub(crate) struct SecretRow {
    pub name_hash: String,
    pub name: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub object_id: String,
    pub owner: Vec<u8>,
    pub updated_at: i64,
}

pub(crate) fn secret_name_hash(keys: &StorageKeys, name: &str) -> String {
    keys.lookup(SECRET_NAME_DOMAIN, name.as_bytes())
}

impl SecretRow {
    pub(crate) fn seal(keys: &StorageKeys, s: &SecretRecord) -> Result<Self, StoreError> {
        let name_hash = secret_name_hash(keys, &s.name);
        Ok(Self {
            name: seal(keys, SECRETS, &name_hash, "name", s.name.as_bytes())?,
            ciphertext: seal(
                keys,
                SECRETS,
                &name_hash,
                "ciphertext",
                s.ciphertext.as_bytes(),
            )?,
            owner: seal(
                keys,
                SECRETS,
                &name_hash,
                "owner",
                s.object.owner.as_bytes(),
            )?,
            object_id: object_id_hex(&s.object.id),
            updated_at: s.updated_at,
            name_hash,
        })
    }
}

/// Open a stored secret joined with its object.
pub(crate) fn open_secret(
    keys: &StorageKeys,
    name_hash: &str,
    name: &[u8],
    ciphertext: &[u8],
    version: i64,
    updated_at: i64,
    object: &ObjectRow,
) -> Result<SecretRecord, StoreError> {
    Ok(SecretRecord {
        name: open_string(keys, SECRETS, name_hash, "name", name)?,
        version: u64_from_db(version, SECRETS, "version")?,
        ciphertext: open_string(keys, SECRETS, name_hash, "ciphertext", ciphertext)?,
        object: object.open(keys)?,
        updated_at,
    })
}

pub(crate) fn open_summary(
    keys: &StorageKeys,
    name_hash: &str,
    name: &[u8],
    version: i64,
    owner: &[u8],
    updated_at: i64,
) -> Result<SecretSummary, StoreError> {
    Ok(SecretSummary {
        name: open_string(keys, SECRETS, name_hash, "name", name)?,
        version: u64_from_db(version, SECRETS, "version")?,
        owner: open_string(keys, SECRETS, name_hash, "owner", owner)?,
        updated_at,
    })
}

// ---------------------------------------------------------------- apps

/// An `apps` row, sealed.
#[derive(Debug, Clone)]
pub(crate) struct AppRow {
    pub id: String,
    pub name_hash: String,
    pub name: Vec<u8>,
    pub token_hash: Vec<u8>,
    pub created_at: i64,
}

pub(crate) fn app_name_hash(keys: &StorageKeys, name: &str) -> String {
    keys.lookup(APP_NAME_DOMAIN, name.as_bytes())
}

impl AppRow {
    pub(crate) fn seal(keys: &StorageKeys, a: &AppRecord) -> Result<Self, StoreError> {
        Ok(Self {
            name_hash: app_name_hash(keys, &a.name),
            name: seal(keys, APPS, &a.id, "name", a.name.as_bytes())?,
            token_hash: seal(keys, APPS, &a.id, "token_hash", a.token_hash.as_bytes())?,
            created_at: a.created_at,
            id: a.id.clone(),
        })
    }

    pub(crate) fn open(&self, keys: &StorageKeys) -> Result<AppRecord, StoreError> {
        Ok(AppRecord {
            id: self.id.clone(),
            name: open_string(keys, APPS, &self.id, "name", &self.name)?,
            token_hash: open_string(keys, APPS, &self.id, "token_hash", &self.token_hash)?,
            created_at: self.created_at,
        })
    }
}

/// Sort helpers: lists are ordered by their decrypted name (names are sealed, so the database
/// cannot order them).
pub(crate) fn sort_summaries(v: &mut [SecretSummary]) {
    v.sort_by(|a, b| a.name.cmp(&b.name));
}

pub(crate) fn sort_apps(v: &mut [AppRecord]) {
    v.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
}

const ENTRIES: &str = "entries";
const ENTRY_BODY: &str = "body";

/// Seal a registration entry's JSON body, bound to its row: the plain `spiffe_id` and
/// `parent_id` columns are only for lookups; consumers act on the opened body, so editing the
/// database cannot grant an identity.
pub(crate) fn seal_entry(
    keys: &StorageKeys,
    entry: &EntryRecord,
) -> Result<EntryRecord, StoreError> {
    Ok(EntryRecord {
        body: seal(keys, ENTRIES, &entry.id, ENTRY_BODY, &entry.body)?,
        ..entry.clone()
    })
}

/// Open what [`seal_entry`] sealed (`Integrity` if it was edited or moved to another row).
pub(crate) fn open_entry(
    keys: &StorageKeys,
    mut entry: EntryRecord,
) -> Result<EntryRecord, StoreError> {
    entry.body = open(keys, ENTRIES, &entry.id, ENTRY_BODY, &entry.body)?
        .expose()
        .to_vec();
    Ok(entry)
}

const APP_DOCUMENTS: &str = "app_documents";
const APP_DOCUMENT_COLUMN: &str = "document";

/// Seal an app document bound to its app's row.
pub(crate) fn seal_app_document(
    keys: &StorageKeys,
    record: &crate::AppDocumentRecord,
) -> Result<Vec<u8>, StoreError> {
    seal(
        keys,
        APP_DOCUMENTS,
        &record.app_id,
        APP_DOCUMENT_COLUMN,
        record.document.as_bytes(),
    )
}

/// Open what [`seal_app_document`] sealed.
pub(crate) fn open_app_document(
    keys: &StorageKeys,
    app_id: String,
    version: i64,
    sealed: &[u8],
    updated_at: i64,
) -> Result<crate::AppDocumentRecord, StoreError> {
    let document = open_string(keys, APP_DOCUMENTS, &app_id, APP_DOCUMENT_COLUMN, sealed)?;
    Ok(crate::AppDocumentRecord {
        app_id,
        version: u64_from_db(version, APP_DOCUMENTS, "version")?,
        document,
        updated_at,
    })
}

// ---------------------------------------------------------------- tokens

const TOKEN_KEYS: &str = "token_keys";
const TOKEN_KEY_MATERIAL: &str = "material";
const TOKENS: &str = "tokens";
const TOKEN_BODY: &str = "body";

/// A `token_keys` row, sealed.
#[derive(Debug, Clone)]
pub(crate) struct TokenKeyRow {
    pub kid: String,
    pub purpose: String,
    pub material: Vec<u8>,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl TokenKeyRow {
    pub(crate) fn seal(keys: &StorageKeys, k: &crate::TokenKeyRecord) -> Result<Self, StoreError> {
        Ok(Self {
            kid: k.kid.clone(),
            purpose: k.purpose.as_str().to_owned(),
            material: seal(keys, TOKEN_KEYS, &k.kid, TOKEN_KEY_MATERIAL, &k.pkcs8)?,
            created_at: k.created_at,
            retired_at: k.retired_at,
        })
    }

    pub(crate) fn open(self, keys: &StorageKeys) -> Result<crate::TokenKeyRecord, StoreError> {
        let purpose = crate::TokenKeyPurpose::parse(&self.purpose)
            .ok_or_else(|| integrity(TOKEN_KEYS, "purpose"))?;
        let mut plain = open(
            keys,
            TOKEN_KEYS,
            &self.kid,
            TOKEN_KEY_MATERIAL,
            &self.material,
        )?;
        Ok(crate::TokenKeyRecord {
            kid: self.kid,
            purpose,
            pkcs8: Zeroizing::new(std::mem::take(&mut plain.0)),
            created_at: self.created_at,
            retired_at: self.retired_at,
        })
    }
}

/// The sealed part of a token record.
#[derive(serde::Serialize, serde::Deserialize)]
struct TokenBody {
    sub: String,
    aud: String,
    scope: Vec<String>,
    jkt: String,
}

/// A `tokens` row, sealed.
#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    pub jti: String,
    pub status_idx: i64,
    pub subject_hash: String,
    pub body: Vec<u8>,
    pub issued_at: i64,
    pub chain_started_at: i64,
    pub expires_at: i64,
    pub revoked: bool,
    pub replaced_by: Option<String>,
}

pub(crate) fn token_subject_hash(keys: &StorageKeys, subject: &str) -> String {
    keys.lookup(TOKEN_SUBJECT_DOMAIN, subject.as_bytes())
}

impl TokenRow {
    pub(crate) fn seal(keys: &StorageKeys, t: &crate::TokenRecord) -> Result<Self, StoreError> {
        let body = serde_json::to_vec(&TokenBody {
            sub: t.subject.clone(),
            aud: t.audience.clone(),
            scope: t.scope.clone(),
            jkt: t.jkt.clone(),
        })
        .map_err(|_| StoreError::Internal("encoding a token record failed".into()))?;
        Ok(Self {
            jti: t.jti.clone(),
            status_idx: u64_to_db(t.status_idx)?,
            subject_hash: token_subject_hash(keys, &t.subject),
            body: seal(keys, TOKENS, &t.jti, TOKEN_BODY, &body)?,
            issued_at: t.issued_at,
            chain_started_at: t.chain_started_at,
            expires_at: t.expires_at,
            revoked: t.revoked,
            replaced_by: t.replaced_by.clone(),
        })
    }

    pub(crate) fn open(self, keys: &StorageKeys) -> Result<crate::TokenRecord, StoreError> {
        let plain = open(keys, TOKENS, &self.jti, TOKEN_BODY, &self.body)?;
        let body: TokenBody =
            serde_json::from_slice(plain.expose()).map_err(|_| integrity(TOKENS, TOKEN_BODY))?;
        if token_subject_hash(keys, &body.sub) != self.subject_hash {
            return Err(integrity(TOKENS, "subject_hash"));
        }
        Ok(crate::TokenRecord {
            jti: self.jti,
            jkt: body.jkt,
            subject: body.sub,
            audience: body.aud,
            scope: body.scope,
            issued_at: self.issued_at,
            chain_started_at: self.chain_started_at,
            expires_at: self.expires_at,
            status_idx: u64_from_db(self.status_idx, TOKENS, "status_idx")?,
            revoked: self.revoked,
            replaced_by: self.replaced_by,
        })
    }
}

/// Status indexes as read from the database, checked.
pub(crate) fn status_snapshot(
    allocated: i64,
    mut revoked: Vec<i64>,
) -> Result<crate::TokenStatusSnapshot, StoreError> {
    revoked.sort_unstable();
    let allocated = u64_from_db(allocated, "token_status_counter", "next_idx")?;
    let revoked = revoked
        .into_iter()
        .map(|i| u64_from_db(i, TOKENS, "status_idx"))
        .collect::<Result<Vec<_>, _>>()?;
    if revoked.last().is_some_and(|&i| i >= allocated) {
        return Err(integrity(TOKENS, "status_idx"));
    }
    Ok(crate::TokenStatusSnapshot { allocated, revoked })
}

/// [`crate::TokenSelector`] as the backends see it: the subject only as its lookup hash.
#[derive(Debug, Clone)]
pub(crate) enum RevokeBy {
    Jti(String),
    SubjectHash(String),
}

impl RevokeBy {
    pub(crate) fn new(keys: &StorageKeys, selector: crate::TokenSelector<'_>) -> Self {
        match selector {
            crate::TokenSelector::Jti(jti) => Self::Jti(jti.to_owned()),
            crate::TokenSelector::Subject(sub) => Self::SubjectHash(token_subject_hash(keys, sub)),
        }
    }
}

pub(crate) const TOKEN_COLUMNS: &str = "jti, status_idx, subject_hash, body, issued_at, \
     chain_started_at, expires_at, revoked, replaced_by";
pub(crate) const TOKEN_KEY_COLUMNS: &str = "kid, purpose, material, created_at, retired_at";
