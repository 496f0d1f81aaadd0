//! Request options and response types of the daas API (`docs/api.md`).
use core::fmt;

use daas_crypto::ObjectId;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::SecretString;

/// `GET /v1/sys/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
}

/// Options of [`crate::Client::encrypt`] and [`crate::Client::encrypt_local`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptOptions {
    /// Bound into the ciphertext's associated data; `None` = empty audience.
    pub audience: Option<String>,
    /// Principals allowed to decrypt (`"admin"`, `"app:<name>"`), besides the caller (always added).
    pub access: Vec<String>,
}

impl EncryptOptions {
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }
    pub fn allow(mut self, principal: impl Into<String>) -> Self {
        self.access.push(principal.into());
        self
    }
}

/// The result of an encryption: the ciphertext (safe to store anywhere) and the caller's share,
/// which is a capability — keep it like a key. Both are needed to decrypt.
#[derive(Debug, Clone)]
pub struct Encrypted {
    pub object_id: ObjectId,
    /// `daas:v1:…`
    pub ciphertext: String,
    /// `daas:share:v1:…` (the client half `t1`; redacted in `Debug`).
    pub share: SecretString,
}

/// How an object was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ObjectMode {
    /// The server encrypted (and saw the plaintext briefly).
    Server,
    /// The client encrypted locally and deposited the server share (end-to-end).
    Client,
    /// A mode this SDK version does not know.
    #[serde(other)]
    Unknown,
}

/// `GET /v1/safe/objects/{id}` metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    pub object_id: String,
    pub owner: String,
    pub audience: String,
    pub mode: ObjectMode,
    pub access: Vec<String>,
    /// Unix time in milliseconds.
    pub created_at: i64,
}

/// `PUT /v1/secrets/{name}`: the stored version and the caller's share (needed to read it back).
#[derive(Debug, Clone)]
pub struct SecretStored {
    pub name: String,
    pub version: u64,
    /// `daas:share:v1:…` (redacted in `Debug`).
    pub share: SecretString,
}

/// `GET /v1/secrets/{name}`: the value, zeroized on drop and redacted in `Debug`.
#[derive(Clone)]
pub struct SecretValue {
    pub name: String,
    pub version: u64,
    pub value: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValue")
            .field("name", &self.name)
            .field("version", &self.version)
            .field(
                "value",
                &format_args!("<{} bytes redacted>", self.value.len()),
            )
            .finish()
    }
}

/// An entry of `GET /v1/secrets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    pub name: String,
    pub version: u64,
    pub owner: String,
    /// Unix time in milliseconds.
    pub updated_at: i64,
}

/// `POST /v1/apps`: the new app and its token (shown once; redacted in `Debug`).
#[derive(Debug, Clone)]
pub struct AppCreated {
    pub id: String,
    pub name: String,
    pub principal: String,
    pub token: SecretString,
}

/// An entry of `GET /v1/apps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    pub id: String,
    pub name: String,
    pub principal: String,
    /// Unix time in milliseconds.
    pub created_at: i64,
}

/// An entry of the hash-chained audit log. Never contains secret values (only salted MACs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    /// Unix time in milliseconds.
    pub time: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    pub mac: String,
}

/// `GET /v1/audit/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    pub entries: u64,
    pub head: Option<String>,
    pub first_broken: Option<u64>,
    pub ok: bool,
}

/// `POST /v1/sys/unseal`: unseal progress of a production server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealStatus {
    pub sealed: bool,
    pub progress: u32,
    pub threshold: u32,
}

/// `POST /v1/identity/join-tokens`: a one-time token a sensor joins with (redacted in `Debug`).
#[derive(Debug, Clone)]
pub struct JoinToken {
    pub token: SecretString,
    /// Unix time in milliseconds.
    pub expires_at: i64,
}

/// A registration entry: which workloads (selectors) on which node (parent) get a SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    pub id: String,
    pub spiffe_id: String,
    pub parent_id: String,
    pub selectors: Vec<String>,
    pub x509_ttl_secs: u64,
    pub roles: Vec<String>,
    /// The entry was created without the digest-and-uid rule.
    pub allow_without_digest: bool,
    /// The app whose instance documents matching workloads receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Unix time in milliseconds.
    pub created_at: i64,
}

/// What `POST /v1/identity/entries` takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NewEntry {
    pub spiffe_id: String,
    pub parent_id: String,
    pub selectors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x509_ttl_secs: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_without_digest: bool,
    /// The app whose instance documents matching workloads receive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// `GET /v1/identity/bundle`: the trust domain's CA certificates and token keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustBundle {
    /// `spiffe://<trust domain>`.
    pub trust_domain: String,
    /// DER certificates, base64url.
    pub authorities: Vec<String>,
    pub pem: String,
    /// JWT-SVID keys: a JWK set (`{"keys": [...]}`, each with `kid` and `use: "jwt-svid"`).
    #[serde(default)]
    pub jwt_authorities: serde_json::Value,
    /// Identity-document keys: a JWK set (each with `kid` and `use: "daas-document"`).
    #[serde(default)]
    pub document_authorities: serde_json::Value,
}

/// What `POST /v1/identity/apps` takes: an app's identity-document metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppIdentityRequest {
    /// An app created with [`crate::Client::app_create`].
    pub name: String,
    pub owner: String,
    /// `sha256:<64 lowercase hex>` digests of the binaries allowed to run as the app.
    pub allowed_digests: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

/// `POST /v1/identity/apps`: the app's signed identity document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppIdentityDocument {
    /// `spiffe://<trust domain>/app/<name>`.
    pub spiffe_id: String,
    /// The app's stable id (its id from `POST /v1/apps`).
    pub uid: String,
    pub version: u64,
    /// Compact JWS (EdDSA, `typ: daas-app+jwt`).
    pub document: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_bearing_types_redact_debug() {
        let v = SecretValue {
            name: "db/password".into(),
            version: 3,
            value: Zeroizing::new(b"hunter2".to_vec()),
        };
        let dbg = format!("{v:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("104"), "{dbg}");
        assert!(dbg.contains("7 bytes redacted"));

        let s = SecretStored {
            name: "n".into(),
            version: 1,
            share: SecretString::from("daas:share:v1:AAAAsecret"),
        };
        assert!(!format!("{s:?}").contains("AAAAsecret"));

        let a = AppCreated {
            id: "1".into(),
            name: "billing".into(),
            principal: "app:billing".into(),
            token: SecretString::from("daas_app_xyzsecret"),
        };
        assert!(!format!("{a:?}").contains("xyzsecret"));

        let e = Encrypted {
            object_id: ObjectId([7; 16]),
            ciphertext: "daas:v1:abc".into(),
            share: SecretString::from("daas:share:v1:t1secret"),
        };
        let dbg = format!("{:?}", e.share);
        assert!(!dbg.contains("t1secret"));
    }

    #[test]
    fn unknown_object_mode_is_tolerated() {
        let info: ObjectInfo = serde_json::from_str(
            r#"{"object_id":"00","owner":"admin","audience":"","mode":"future","access":["admin"],"created_at":1,"extra":true}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(info.mode, ObjectMode::Unknown);
    }
}

/// `POST /v1/token` / `POST /v1/token/replace`: a DPoP-bound access token (redacted in
/// `Debug`; useless without the key it is bound to, but not logged either way).
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: SecretString,
    /// Seconds.
    pub expires_in: u64,
    pub scope: Option<String>,
}

/// What `POST /v1/token/revoke` revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRevocation {
    /// One token, by its `jti`.
    Jti(String),
    /// Every token of a subject (e.g. `app:billing`).
    Subject(String),
}

/// A status staple as served by `POST /v1/token/status/staple`: the signed staple (verify it
/// with the status keys before believing it) and, in clear, where the token sits in the status
/// list, to build the expectation it is verified against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusStaple {
    /// The compact JWS (`typ: daas-status+jwt`).
    pub staple: String,
    /// The token's index in the status list (unverified until the staple is).
    pub idx: u64,
    /// The status list's URI (unverified until the staple is).
    pub uri: String,
}
