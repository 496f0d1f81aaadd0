//! App and instance identity documents (DESIGN.md §4): compact JWS, EdDSA, signed by the trust
//! domain's document key (never the X.509 CA key nor the JWT-SVID key).
//!
//! * An **app document** (`typ: daas-app+jwt`, `sub: spiffe://<td>/app/<name>`) carries the app's
//!   static metadata (uid, name, owner, allowed binary digests, roles) and dynamic metadata
//!   (`iat`, `version`), and expires ([`DEFAULT_APP_DOCUMENT_TTL`]).
//! * An **instance document** (`typ: daas-instance+jwt`,
//!   `sub: spiffe://<td>/app/<name>/instance/<id>`) is chained to one app document: it carries
//!   that document's digest ([`app_document_digest`]), the app's SPIFFE ID and uid, the
//!   instance's static metadata (binary digest, node, optional workload SPIFFE ID) and dynamic
//!   metadata (pid, start time), and its derived ID ([`instance_id`]).
//!
//! Verification ([`verify_app_document`], [`verify_instance_document`]) is the only way to get a
//! [`VerifiedAppDocument`] / [`VerifiedInstanceDocument`]. It checks the signature under the
//! bundle's document keys (by `kid`; a key of another trust domain is unknown), `typ`, the claims
//! schema (unknown claims refused), that issuer and subject are of the bundle's trust domain,
//! `exp` (with [`LEEWAY`]) and, for an instance, the chain: digest, app ID and uid of the
//! verified app document, a binary digest the app allows, and the derived ID.
//!
//! Pure: no I/O, `now` is an argument.

use std::time::Duration;

use daas_token::{HeaderFields, JwsError, Unverified};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;

use crate::ca::TrustDomainCa;
use crate::error::{CallerError, Error, InternalError};
use crate::jwks::{self, Jwks};
use crate::spiffe_id::{SpiffeId, TrustDomain};

/// `typ` of app documents.
pub const APP_DOCUMENT_TYP: &str = "daas-app+jwt";
/// `typ` of instance documents.
pub const INSTANCE_DOCUMENT_TYP: &str = "daas-instance+jwt";
/// Default lifetime of an app document: re-register (re-issue) before it runs out.
pub const DEFAULT_APP_DOCUMENT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest lifetime of an app document.
pub const MAX_APP_DOCUMENT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Default (and longest) lifetime of an instance document.
pub const DEFAULT_INSTANCE_DOCUMENT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Clock-skew allowance for `exp` and `iat`.
pub const LEEWAY: time::Duration = time::Duration::seconds(30);
/// Most allowed binary digests per app.
pub const MAX_ALLOWED_DIGESTS: usize = 32;
/// Most roles per app.
pub const MAX_ROLES: usize = 32;
/// Prefix of a binary digest: `sha256:` and 64 lowercase hex digits.
pub const DIGEST_PREFIX: &str = "sha256:";

/// The identity-document keys of one trust domain (a JWK set with `use: "daas-document"`).
#[derive(Debug, Clone)]
pub struct DocumentBundle {
    trust_domain: TrustDomain,
    jwks: Jwks,
}

impl DocumentBundle {
    /// Parses a JWK set (`document_authorities` of the bundle).
    pub fn from_jwks_json(trust_domain: TrustDomain, bytes: &[u8]) -> Result<Self, CallerError> {
        Ok(Self {
            trust_domain,
            jwks: Jwks::parse(bytes, jwks::DOCUMENT)?,
        })
    }

    /// Like [`DocumentBundle::from_jwks_json`], from an already parsed JSON value.
    pub fn from_jwks_value(trust_domain: TrustDomain, value: &Value) -> Result<Self, CallerError> {
        let map = value
            .as_object()
            .ok_or(CallerError::Bundle("jwk set is not an object"))?;
        Ok(Self {
            trust_domain,
            jwks: Jwks::from_map(map, jwks::DOCUMENT)?,
        })
    }

    /// Reads the body of `GET /v1/identity/bundle`: its `trust_domain` (a trust domain ID,
    /// `spiffe://<td>`) and `document_authorities`.
    pub fn from_trust_bundle_json(bytes: &[u8]) -> Result<Self, CallerError> {
        let bad = CallerError::Bundle;
        let map = daas_token::parse_strict_json_object(bytes)
            .map_err(|_| bad("bundle is not a json object without duplicates"))?;
        let td = map
            .get("trust_domain")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<SpiffeId>().ok())
            .filter(SpiffeId::is_trust_domain_id)
            .ok_or(bad("bundle has no trust_domain id"))?;
        let keys = map
            .get("document_authorities")
            .ok_or(bad("bundle has no document_authorities"))?;
        Self::from_jwks_value(td.trust_domain().clone(), keys)
    }

    /// The JWK set as a JSON value.
    pub fn to_jwks_value(&self) -> Value {
        self.jwks.to_value()
    }

    /// The trust domain whose keys these are.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.jwks.len()
    }

    /// Whether the bundle holds no key.
    pub fn is_empty(&self) -> bool {
        self.jwks.len() == 0
    }
}

/// An app's static metadata, as registered by an administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppMetadata {
    /// 1..=63 characters of `[a-z0-9-]`, starting with a letter or digit (the app name rule).
    pub name: String,
    /// Who answers for the app: 1..=256 printable characters.
    pub owner: String,
    /// 1..=32 distinct `sha256:<64 lowercase hex>` digests of binaries that may run as the app.
    pub allowed_digests: Vec<String>,
    /// 0..=32 distinct role names (`[a-z0-9_-]{1,64}`).
    pub roles: Vec<String>,
}

/// Whether `name` follows the app name rule: 1..=63 characters of `[a-z0-9-]`, starting with a
/// letter or digit.
pub fn valid_app_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Whether `digest` is `sha256:` followed by 64 lowercase hex digits.
pub fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix(DIGEST_PREFIX).is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn valid_uid(uid: &str) -> bool {
    (1..=64).contains(&uid.len())
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

fn all_distinct(items: &[String]) -> bool {
    items
        .iter()
        .enumerate()
        .all(|(i, a)| items[..i].iter().all(|b| a != b))
}

impl AppMetadata {
    /// Checks every rule above.
    pub fn validate(&self) -> Result<(), CallerError> {
        let bad = CallerError::Document;
        if !valid_app_name(&self.name) {
            return Err(bad(
                "name must be 1-63 characters of [a-z0-9-], starting with a letter or digit",
            ));
        }
        if !printable(&self.owner, 256) {
            return Err(bad("owner must be 1-256 printable characters"));
        }
        if self.allowed_digests.is_empty() || self.allowed_digests.len() > MAX_ALLOWED_DIGESTS {
            return Err(bad("an app allows 1 to 32 binary digests"));
        }
        if !self.allowed_digests.iter().all(|d| valid_digest(d)) {
            return Err(bad("digests must be sha256: and 64 lowercase hex digits"));
        }
        if !all_distinct(&self.allowed_digests) {
            return Err(bad("duplicate digest"));
        }
        if self.roles.len() > MAX_ROLES {
            return Err(bad("an app has at most 32 roles"));
        }
        if self
            .roles
            .iter()
            .any(|r| crate::entry::validate_role(r).is_err())
        {
            return Err(bad("role names are 1-64 characters of [a-z0-9_-]"));
        }
        if !all_distinct(&self.roles) {
            return Err(bad("duplicate role"));
        }
        Ok(())
    }
}

/// An instance's static metadata: what it runs and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatic {
    /// `sha256:<hex>` of the running binary (the sensor's attestation).
    pub binary_digest: String,
    /// The node (sensor) that attested it.
    pub node_id: SpiffeId,
    /// The workload's SPIFFE ID, if it has one.
    pub workload_id: Option<SpiffeId>,
}

/// An instance's dynamic metadata: which run of the binary it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceDynamic {
    /// Process id on the node.
    pub pid: u32,
    /// Process start time, Unix milliseconds.
    pub started_at: i64,
}

fn push_field(h: &mut aws_lc_rs::digest::Context, field: &[u8]) {
    // Fields are bounded far below 4 GiB (validated inputs); saturate rather than panic.
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    h.update(&len.to_be_bytes());
    h.update(field);
}

/// The derived instance ID, `H(app UID ‖ instance static ‖ dynamic metadata)`:
///
/// `SHA-256( lp(label) ‖ lp(app_uid) ‖ lp(binary_digest) ‖ lp(node_id) ‖ lp(workload_id or "")
/// ‖ lp(pid as u32 BE) ‖ lp(started_at as i64 BE) )`, where `lp(x)` is `x`'s length as a
/// big-endian u32 followed by `x`, text fields are their UTF-8 bytes (SPIFFE IDs in canonical
/// form) and `label` is `"daas identity instance id v1"`. Lowercase hex, 64 characters.
pub fn instance_id(app_uid: &str, s: &InstanceStatic, d: &InstanceDynamic) -> String {
    let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    push_field(&mut h, daas_crypto::labels::IDENTITY_INSTANCE_ID_V1);
    push_field(&mut h, app_uid.as_bytes());
    push_field(&mut h, s.binary_digest.as_bytes());
    push_field(&mut h, s.node_id.to_string().as_bytes());
    let workload = s.workload_id.as_ref().map(ToString::to_string);
    push_field(&mut h, workload.as_deref().unwrap_or("").as_bytes());
    push_field(&mut h, &d.pid.to_be_bytes());
    push_field(&mut h, &d.started_at.to_be_bytes());
    hex::encode(h.finish().as_ref())
}

/// The digest an instance document carries of its app document:
/// `SHA-256( lp("daas identity app document digest v1") ‖ lp(compact JWS as ASCII) )`, 32 bytes.
pub fn app_document_digest(app_document: &str) -> [u8; 32] {
    let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    push_field(&mut h, daas_crypto::labels::IDENTITY_APP_DOCUMENT_DIGEST_V1);
    push_field(&mut h, app_document.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(h.finish().as_ref());
    out
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppClaims {
    iss: String,
    sub: String,
    iat: i64,
    exp: i64,
    daas_app: AppBody,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppBody {
    uid: String,
    name: String,
    owner: String,
    allowed_digests: Vec<String>,
    roles: Vec<String>,
    version: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceClaims {
    iss: String,
    sub: String,
    iat: i64,
    exp: i64,
    daas_instance: InstanceBody,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceBody {
    app: String,
    app_uid: String,
    /// Lowercase hex of [`app_document_digest`].
    app_document_digest: String,
    instance_id: String,
    binary_digest: String,
    node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    workload: Option<String>,
    pid: u32,
    started_at: i64,
}

/// An app document whose signature, trust domain, schema and expiry were checked.
#[derive(Debug, Clone)]
pub struct VerifiedAppDocument {
    spiffe_id: SpiffeId,
    uid: String,
    metadata: AppMetadata,
    version: u64,
    issued_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    digest: [u8; 32],
}

impl VerifiedAppDocument {
    /// `spiffe://<td>/app/<name>`.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }
    /// The app's stable unique id.
    pub fn uid(&self) -> &str {
        &self.uid
    }
    /// Name, owner, allowed digests, roles.
    pub fn metadata(&self) -> &AppMetadata {
        &self.metadata
    }
    /// The document's version (dynamic metadata).
    pub fn version(&self) -> u64 {
        self.version
    }
    /// `iat`.
    pub fn issued_at(&self) -> OffsetDateTime {
        self.issued_at
    }
    /// `exp`.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
    /// [`app_document_digest`] of the verified text.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
    /// Whether `binary_digest` is one the app allows.
    pub fn allows_digest(&self, binary_digest: &str) -> bool {
        self.metadata
            .allowed_digests
            .iter()
            .any(|d| d == binary_digest)
    }
    /// A JSON summary (for the CLI).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "kind": "app",
            "spiffe_id": self.spiffe_id.to_string(),
            "uid": self.uid,
            "name": self.metadata.name,
            "owner": self.metadata.owner,
            "allowed_digests": self.metadata.allowed_digests,
            "roles": self.metadata.roles,
            "version": self.version,
            "issued_at": self.issued_at.unix_timestamp(),
            "expires_at": self.expires_at.unix_timestamp(),
            "digest": hex::encode(self.digest),
        })
    }
}

/// An instance document whose signature, trust domain, schema, expiry and chain to its app
/// document were checked.
#[derive(Debug, Clone)]
pub struct VerifiedInstanceDocument {
    spiffe_id: SpiffeId,
    app_id: SpiffeId,
    instance_id: String,
    static_metadata: InstanceStatic,
    dynamic_metadata: InstanceDynamic,
    issued_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

impl VerifiedInstanceDocument {
    /// `spiffe://<td>/app/<name>/instance/<id>`.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }
    /// The app's SPIFFE ID.
    pub fn app_id(&self) -> &SpiffeId {
        &self.app_id
    }
    /// The derived ID ([`instance_id`]).
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }
    /// Binary digest, node, workload.
    pub fn static_metadata(&self) -> &InstanceStatic {
        &self.static_metadata
    }
    /// Pid and start time.
    pub fn dynamic_metadata(&self) -> &InstanceDynamic {
        &self.dynamic_metadata
    }
    /// `iat`.
    pub fn issued_at(&self) -> OffsetDateTime {
        self.issued_at
    }
    /// `exp`.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
    /// A JSON summary (for the CLI).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "kind": "instance",
            "spiffe_id": self.spiffe_id.to_string(),
            "app": self.app_id.to_string(),
            "instance_id": self.instance_id,
            "binary_digest": self.static_metadata.binary_digest,
            "node": self.static_metadata.node_id.to_string(),
            "workload": self.static_metadata.workload_id.as_ref().map(ToString::to_string),
            "pid": self.dynamic_metadata.pid,
            "started_at": self.dynamic_metadata.started_at,
            "issued_at": self.issued_at.unix_timestamp(),
            "expires_at": self.expires_at.unix_timestamp(),
        })
    }
}

/// Why a document was refused. Every variant is the document's (its presenter's) fault; messages
/// never echo document content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// The JWS structure, encoding or header is not acceptable.
    #[error("malformed document: {0}")]
    Malformed(JwsError),
    /// `typ` is not the expected document type.
    #[error("not a document of the expected type")]
    WrongType,
    /// No key of the bundle has the document's `kid`: signed by another trust domain or an
    /// unknown key.
    #[error("signed by a key this trust bundle does not hold")]
    UnknownKey,
    /// The signature does not verify: forged or tampered.
    #[error("signature verification failed")]
    BadSignature,
    /// Signed with this bundle's key but naming another trust domain.
    #[error("document is not of the bundle's trust domain")]
    ForeignTrustDomain,
    /// Valid signature, but the claims do not have the documented schema.
    #[error("invalid claims: {0}")]
    InvalidClaims(&'static str),
    /// `exp` has passed (or, for an instance, its app document's).
    #[error("the document has expired")]
    Expired,
    /// `iat` is in the future.
    #[error("the document is not valid yet")]
    NotYetValid,
    /// The instance document is not chained to this app document (digest, app ID or uid).
    #[error("the instance document is not chained to this app document")]
    ChainMismatch,
    /// The instance's binary digest is not one the app allows.
    #[error("the instance's binary digest is not allowed by the app")]
    DigestNotAllowed,
    /// The instance ID is not the one derived from the document's metadata.
    #[error("the instance id does not match its metadata")]
    InstanceIdMismatch,
}

fn verify_jws<T: serde::de::DeserializeOwned>(
    doc: &str,
    bundle: &DocumentBundle,
    typ: &str,
) -> Result<T, DocumentError> {
    let unverified = Unverified::parse(doc).map_err(DocumentError::Malformed)?;
    if unverified.header().typ() != Some(typ) {
        return Err(DocumentError::WrongType);
    }
    match unverified.verify::<Value>(bundle.jwks.key_set(), Some(typ)) {
        Ok(v) => serde_json::from_value(v.into_claims())
            .map_err(|_| DocumentError::InvalidClaims("schema")),
        Err(JwsError::UnknownKey) => Err(DocumentError::UnknownKey),
        Err(JwsError::BadSignature) => Err(DocumentError::BadSignature),
        Err(JwsError::WrongType) => Err(DocumentError::WrongType),
        Err(e) => Err(DocumentError::Malformed(e)),
    }
}

fn check_issuer_and_times(
    iss: &str,
    iat: i64,
    exp: i64,
    bundle: &DocumentBundle,
    now: OffsetDateTime,
) -> Result<(OffsetDateTime, OffsetDateTime), DocumentError> {
    if iss != bundle.trust_domain.id().to_string() {
        return Err(DocumentError::ForeignTrustDomain);
    }
    let iat = OffsetDateTime::from_unix_timestamp(iat)
        .map_err(|_| DocumentError::InvalidClaims("iat"))?;
    let exp = OffsetDateTime::from_unix_timestamp(exp)
        .map_err(|_| DocumentError::InvalidClaims("exp"))?;
    if exp <= iat {
        return Err(DocumentError::InvalidClaims("exp is not after iat"));
    }
    if iat > now + LEEWAY {
        return Err(DocumentError::NotYetValid);
    }
    // `now - LEEWAY`, not `exp + LEEWAY`: a signed `exp` near the end of time must not
    // overflow (now is the real clock, far from either end).
    if now - LEEWAY >= exp {
        return Err(DocumentError::Expired);
    }
    Ok((iat, exp))
}

fn app_id(td: &TrustDomain, name: &str) -> Result<SpiffeId, DocumentError> {
    if !valid_app_name(name) {
        return Err(DocumentError::InvalidClaims("app name"));
    }
    td.spiffe_id(&format!("/app/{name}"))
        .map_err(|_| DocumentError::InvalidClaims("app name"))
}

/// Verifies an app document against `bundle` at `now`.
pub fn verify_app_document(
    doc: &str,
    bundle: &DocumentBundle,
    now: OffsetDateTime,
) -> Result<VerifiedAppDocument, DocumentError> {
    let claims: AppClaims = verify_jws(doc, bundle, APP_DOCUMENT_TYP)?;
    let (issued_at, expires_at) =
        check_issuer_and_times(&claims.iss, claims.iat, claims.exp, bundle, now)?;
    let body = claims.daas_app;
    let spiffe_id = app_id(&bundle.trust_domain, &body.name)?;
    if claims.sub != spiffe_id.to_string() {
        return Err(DocumentError::InvalidClaims("sub is not the app's id"));
    }
    if !valid_uid(&body.uid) || body.version == 0 {
        return Err(DocumentError::InvalidClaims("uid or version"));
    }
    let metadata = AppMetadata {
        name: body.name,
        owner: body.owner,
        allowed_digests: body.allowed_digests,
        roles: body.roles,
    };
    metadata
        .validate()
        .map_err(|_| DocumentError::InvalidClaims("app metadata"))?;
    Ok(VerifiedAppDocument {
        spiffe_id,
        uid: body.uid,
        metadata,
        version: body.version,
        issued_at,
        expires_at,
        digest: app_document_digest(doc),
    })
}

/// Verifies an instance document against `bundle` at `now`, chained to `app` (which must have
/// been verified against the same trust domain).
pub fn verify_instance_document(
    doc: &str,
    app: &VerifiedAppDocument,
    bundle: &DocumentBundle,
    now: OffsetDateTime,
) -> Result<VerifiedInstanceDocument, DocumentError> {
    let claims: InstanceClaims = verify_jws(doc, bundle, INSTANCE_DOCUMENT_TYP)?;
    let (issued_at, expires_at) =
        check_issuer_and_times(&claims.iss, claims.iat, claims.exp, bundle, now)?;
    if !app.spiffe_id.is_member_of(&bundle.trust_domain) {
        return Err(DocumentError::ForeignTrustDomain);
    }
    if now - LEEWAY >= app.expires_at {
        return Err(DocumentError::Expired);
    }
    let body = claims.daas_instance;
    let digest_matches: bool = hex::decode(&body.app_document_digest)
        .ok()
        .is_some_and(|d| bool::from(d.as_slice().ct_eq(app.digest.as_slice())));
    if !digest_matches || body.app != app.spiffe_id.to_string() || body.app_uid != app.uid {
        return Err(DocumentError::ChainMismatch);
    }
    if !valid_digest(&body.binary_digest) {
        return Err(DocumentError::InvalidClaims("binary digest"));
    }
    if !app.allows_digest(&body.binary_digest) {
        return Err(DocumentError::DigestNotAllowed);
    }
    let parse = |s: &str| {
        s.parse::<SpiffeId>()
            .map_err(|_| DocumentError::InvalidClaims("spiffe id"))
    };
    let static_metadata = InstanceStatic {
        binary_digest: body.binary_digest,
        node_id: parse(&body.node)?,
        workload_id: body.workload.as_deref().map(parse).transpose()?,
    };
    let dynamic_metadata = InstanceDynamic {
        pid: body.pid,
        started_at: body.started_at,
    };
    let derived = instance_id(&app.uid, &static_metadata, &dynamic_metadata);
    if derived != body.instance_id {
        return Err(DocumentError::InstanceIdMismatch);
    }
    let spiffe_id = parse(&claims.sub)?;
    if claims.sub != format!("{}/instance/{derived}", app.spiffe_id) {
        return Err(DocumentError::InstanceIdMismatch);
    }
    Ok(VerifiedInstanceDocument {
        spiffe_id,
        app_id: app.spiffe_id.clone(),
        instance_id: derived,
        static_metadata,
        dynamic_metadata,
        issued_at,
        expires_at,
    })
}

/// An app document, or an instance document with the app document it is chained to.
#[derive(Debug, Clone)]
pub enum VerifiedDocument {
    /// An app document.
    App(VerifiedAppDocument),
    /// An instance document and its app's document.
    Instance {
        /// The app document the instance is chained to.
        app: VerifiedAppDocument,
        /// The instance document.
        instance: Box<VerifiedInstanceDocument>,
    },
}

impl VerifiedDocument {
    /// A JSON summary: `{"valid": true, "kind": "app" | "instance", ...}` (for the CLI).
    pub fn to_json(&self) -> Value {
        let mut out = match self {
            Self::App(app) => app.to_json(),
            Self::Instance { app, instance } => {
                let mut v = instance.to_json();
                if let Value::Object(map) = &mut v {
                    map.insert("app_document".into(), app.to_json());
                }
                v
            }
        };
        if let Value::Object(map) = &mut out {
            map.insert("valid".into(), Value::Bool(true));
        }
        out
    }
}

/// Verifies `doc` offline: an app document if `app_document` is `None`, otherwise an instance
/// document chained to `app_document` (which is verified first).
pub fn verify_document(
    doc: &str,
    app_document: Option<&str>,
    bundle: &DocumentBundle,
    now: OffsetDateTime,
) -> Result<VerifiedDocument, DocumentError> {
    match app_document {
        None => verify_app_document(doc, bundle, now).map(VerifiedDocument::App),
        Some(app_doc) => {
            let app = verify_app_document(app_doc, bundle, now)?;
            let instance = verify_instance_document(doc, &app, bundle, now)?;
            Ok(VerifiedDocument::Instance {
                app,
                instance: Box::new(instance),
            })
        }
    }
}

impl TrustDomainCa {
    /// The document keys not expired at `now`, as a bundle.
    pub fn document_bundle(&self, now: OffsetDateTime) -> DocumentBundle {
        let mut jwks = Jwks::new(jwks::DOCUMENT);
        for key in self.document_keys().iter().filter(|k| now < k.not_after) {
            // Our own keys: distinct thumbprints of valid Ed25519 keys, so this cannot fail.
            if jwks.insert(&key.kid, key.key.public_jwk().clone()).is_err() {
                tracing::error!(kid = %key.kid, "document key not publishable");
            }
        }
        DocumentBundle {
            trust_domain: self.trust_domain().clone(),
            jwks,
        }
    }

    fn sign_document<C: Serialize>(
        &self,
        typ: &str,
        claims: &C,
        now: OffsetDateTime,
    ) -> Result<String, Error> {
        let key = self.document_keys().last().ok_or(CallerError::NoValidCa)?;
        if !key.valid_at(now) {
            return Err(CallerError::NoValidCa.into());
        }
        daas_token::sign(
            &HeaderFields {
                kid: Some(&key.kid),
                typ: Some(typ),
                embed_jwk: false,
            },
            claims,
            &key.key,
        )
        .map_err(|_| InternalError::Crypto.into())
    }

    /// `exp` for a document: min(now + ttl, the signing key's expiry), whole seconds.
    fn document_expiry(&self, ttl: Duration, now: OffsetDateTime) -> Result<i64, Error> {
        let key_not_after = self
            .document_keys()
            .last()
            .map(|k| k.not_after)
            .ok_or(CallerError::NoValidCa)?;
        let ttl = time::Duration::try_from(ttl).map_err(|_| CallerError::Ttl("out of range"))?;
        let exp = (now + ttl).min(key_not_after).unix_timestamp();
        if exp <= now.unix_timestamp() {
            return Err(CallerError::NoValidCa.into());
        }
        Ok(exp)
    }

    /// Issues an app document for `metadata` under the app's stable `uid` (1..=64 of
    /// `[A-Za-z0-9_-]`), and returns it with its verified form (the new document is verified
    /// against this CA's own bundle before it is handed out).
    pub fn issue_app_document(
        &self,
        uid: &str,
        metadata: &AppMetadata,
        version: u64,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<(String, VerifiedAppDocument), Error> {
        metadata.validate()?;
        if !valid_uid(uid) {
            return Err(
                CallerError::Document("uid must be 1-64 characters of [A-Za-z0-9_-]").into(),
            );
        }
        if version == 0 {
            return Err(CallerError::Document("version starts at 1").into());
        }
        if ttl < Duration::from_secs(60) || ttl > MAX_APP_DOCUMENT_TTL {
            return Err(CallerError::Ttl("app documents live 1 minute to 90 days").into());
        }
        let td = self.trust_domain();
        let claims = AppClaims {
            iss: td.id().to_string(),
            sub: td
                .spiffe_id(&format!("/app/{}", metadata.name))
                .map_err(CallerError::SpiffeId)?
                .to_string(),
            iat: now.unix_timestamp(),
            exp: self.document_expiry(ttl, now)?,
            daas_app: AppBody {
                uid: uid.to_owned(),
                name: metadata.name.clone(),
                owner: metadata.owner.clone(),
                allowed_digests: metadata.allowed_digests.clone(),
                roles: metadata.roles.clone(),
                version,
            },
        };
        let doc = self.sign_document(APP_DOCUMENT_TYP, &claims, now)?;
        let verified = verify_app_document(&doc, &self.document_bundle(now), now)
            .map_err(|_| InternalError::Crypto)?;
        Ok((doc, verified))
    }

    /// Issues an instance document chained to `app` (the verified text `app_document`), if the
    /// instance's binary digest is one the app allows; `exp` never passes the app document's.
    pub fn issue_instance_document(
        &self,
        app_document: &str,
        app: &VerifiedAppDocument,
        instance: &InstanceStatic,
        dynamic: &InstanceDynamic,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<(String, VerifiedInstanceDocument), Error> {
        let td = self.trust_domain();
        if !app.spiffe_id.is_member_of(td) || !instance.node_id.is_member_of(td) {
            return Err(CallerError::NotInTrustDomain {
                trust_domain: td.to_string(),
            }
            .into());
        }
        if app_document_digest(app_document) != app.digest {
            return Err(CallerError::Document("app document text does not match").into());
        }
        if !valid_digest(&instance.binary_digest) {
            return Err(CallerError::Document(
                "digest must be sha256: and 64 lowercase hex digits",
            )
            .into());
        }
        if !app.allows_digest(&instance.binary_digest) {
            return Err(CallerError::Document("binary digest not allowed by the app").into());
        }
        if ttl < Duration::from_secs(60) || ttl > DEFAULT_INSTANCE_DOCUMENT_TTL {
            return Err(CallerError::Ttl("instance documents live 1 minute to 24 hours").into());
        }
        let id = instance_id(&app.uid, instance, dynamic);
        let exp = self
            .document_expiry(ttl, now)?
            .min(app.expires_at.unix_timestamp());
        if exp <= now.unix_timestamp() {
            return Err(CallerError::Document("the app document has expired").into());
        }
        let claims = InstanceClaims {
            iss: td.id().to_string(),
            sub: format!("{}/instance/{id}", app.spiffe_id),
            iat: now.unix_timestamp(),
            exp,
            daas_instance: InstanceBody {
                app: app.spiffe_id.to_string(),
                app_uid: app.uid.clone(),
                app_document_digest: hex::encode(app.digest),
                instance_id: id,
                binary_digest: instance.binary_digest.clone(),
                node: instance.node_id.to_string(),
                workload: instance.workload_id.as_ref().map(ToString::to_string),
                pid: dynamic.pid,
                started_at: dynamic.started_at,
            },
        };
        let doc = self.sign_document(INSTANCE_DOCUMENT_TYP, &claims, now)?;
        let verified = verify_instance_document(&doc, app, &self.document_bundle(now), now)
            .map_err(|_| InternalError::Crypto)?;
        Ok((doc, verified))
    }
}

#[cfg(test)]
#[path = "document_tests.rs"]
mod tests;
