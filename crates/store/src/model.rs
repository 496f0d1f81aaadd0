//! Records passed to and from the store. Secret fields are `Key256` (zeroized, redacted).
use daas_crypto::{Key256, ObjectId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectMode {
    /// The server encrypted (saw the plaintext briefly).
    Server,
    /// The client encrypted locally and deposited `t2`; the server never saw plaintext or `k`.
    Client,
}

/// A split-key object as stored: the server's share and the key commitment, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub id: ObjectId,
    /// Principal that created it (e.g. `admin`, `app:<id>`); bound into the envelope AAD.
    pub owner: String,
    /// Bound into the envelope AAD ("" when unused).
    pub audience: String,
    pub key_version: u32,
    /// Envelope suite byte (1 = AES-256-GCM, 2 = XChaCha20-Poly1305).
    pub suite: u8,
    pub mode: ObjectMode,
    /// `t2` — sealed at rest.
    pub server_share: Key256,
    /// `HMAC(k, "daas safe commit v1" ‖ id)` — sealed at rest.
    pub commitment: [u8; 32],
    /// Principals allowed to decrypt / fetch the share. Sealed at rest.
    pub access: Vec<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A stored secret: the ciphertext envelope text plus its object (server share).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub name: String,
    pub version: u64,
    /// `daas:v1:...` envelope text — sealed at rest.
    pub ciphertext: String,
    pub object: ObjectRecord,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSummary {
    pub name: String,
    pub version: u64,
    pub owner: String,
    pub updated_at: i64,
}

/// Application API credentials. The token itself is never stored, only its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// `app_<hex>`; the principal is `app:<name>`.
    pub id: String,
    pub name: String,
    /// `StorageKeys::lookup("app-token", secret)` — compared in constant time by the server.
    pub token_hash: String,
    pub created_at: i64,
}

/// The current identity document of an app (`app_documents`). The document is a signed,
/// public statement; it is sealed all the same, like everything the store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDocumentRecord {
    /// The app's id (`apps.id`).
    pub app_id: String,
    /// Strictly greater than the version it replaces.
    pub version: u64,
    /// The compact JWS.
    pub document: String,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// What the caller wants audited. The store adds seq, time and chain MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Principal, or `anonymous`.
    pub actor: String,
    /// e.g. `safe.encrypt`, `secret.get`, `auth.failure`.
    pub action: String,
    /// Object id, salted HMAC of a secret name, app name ... never a secret value.
    pub target: String,
    /// `ok`, `denied`, `not_found`, `invalid`, `error`.
    pub outcome: String,
    /// Free-form precise detail for operators (never secret bytes).
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    /// Unix milliseconds.
    pub time: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
    /// hex of the chain MAC.
    pub mac: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    pub entries: u64,
    /// hex of the last MAC (the chain head) when non-empty.
    pub head: Option<String>,
    /// Sequence number of the first entry whose link does not verify (or that is missing).
    pub first_broken: Option<u64>,
}

// ---------------------------------------------------------------- workload identity

/// A registration entry of the workload-identity engine: which SPIFFE ID a workload under a
/// given node may obtain. Configuration, not a secret: stored in plain columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    /// Entry id, `[A-Za-z0-9_-]{1,64}` (validated by the caller).
    pub id: String,
    /// The SPIFFE ID issued to workloads matching this entry.
    pub spiffe_id: String,
    /// The node SPIFFE ID allowed to obtain it.
    pub parent_id: String,
    /// The entry as JSON, produced and validated by the identity crate (opaque to the store).
    pub body: Vec<u8>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A single-use node join token. Only its hash is stored, so a database dump cannot be used to
/// join a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTokenRecord {
    /// A keyed hash of the token (the server uses the storage key's lookup subkey); the token
    /// itself is never stored.
    pub token_hash: [u8; 32],
    /// Unix milliseconds; the token is usable while `now < expires_at`.
    pub expires_at: i64,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A node that joined with a join token (attested agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub spiffe_id: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Outcome of [`crate::Store::consume_join_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinTokenUse {
    /// The token was valid; it is gone now and the node is registered.
    Consumed,
    /// No such token (never issued, or already used).
    Unknown,
    /// The token existed but had expired; it has been deleted.
    Expired,
}

// ---------------------------------------------------------------- proof-of-possession tokens

/// What a token signing key is for. Each purpose has at most one active key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKeyPurpose {
    /// Signs access tokens; published in the JWKS.
    Issuer,
    /// Signs Token Status Lists and status staples; never signs access tokens.
    Status,
}

impl TokenKeyPurpose {
    /// The stored (plain) spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Issuer => "issuer",
            Self::Status => "status",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "issuer" => Some(Self::Issuer),
            "status" => Some(Self::Status),
            _ => None,
        }
    }
}

/// A token signing key. The private key is sealed at rest (AAD `token_keys`, kid, `material`);
/// `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKeyRecord {
    /// The key's RFC 7638 thumbprint (chosen by the caller; unique).
    pub kid: String,
    pub purpose: TokenKeyPurpose,
    /// PKCS#8 DER of the private key, zeroized on drop.
    pub pkcs8: zeroize::Zeroizing<Vec<u8>>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds at which a newer key replaced it; `None` while it is the active key.
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for TokenKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeyRecord")
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// An issued access token (never the token itself). Subject, audience, scope and key binding
/// are sealed at rest (AAD `tokens`, jti, `body`); the subject is also kept as a keyed lookup
/// hash so that all of a subject's tokens can be revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's `jti` (unique).
    pub jti: String,
    /// `cnf.jkt`: the thumbprint of the key the token is bound to.
    pub jkt: String,
    pub subject: String,
    pub audience: String,
    /// Scope tokens (possibly none).
    pub scope: Vec<String>,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds: when the first token of this replacement chain was issued (equal to
    /// `issued_at` for a token that replaces nothing); caps the chain's total lifetime.
    pub chain_started_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// The token's index in the status list. Assigned by the store when the record is
    /// inserted (the value passed in is ignored).
    pub status_idx: u64,
    /// Revoked, or replaced (a replaced token is revoked too: one token of a chain lives).
    pub revoked: bool,
    /// The `jti` of the token that replaced this one.
    pub replaced_by: Option<String>,
}

/// Which tokens [`crate::Store::revoke_tokens`] revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSelector<'a> {
    /// The token with this `jti`.
    Jti(&'a str),
    /// Every token of this subject.
    Subject(&'a str),
}

/// The revocation state of every status index allocated so far: indexes `0..allocated`,
/// of which `revoked` (ascending) are revoked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenStatusSnapshot {
    pub allocated: u64,
    pub revoked: Vec<u64>,
}
