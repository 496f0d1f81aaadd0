//! The `identity` engine (DESIGN.md §4, issue #3): the trust domain's CA, registration entries,
//! one-time join tokens and node attestation.
//!
//! The CA's keys live in the store, sealed under the storage key like every other secret; they
//! are loaded (or created, on first use) when the engine is first asked for them and kept in
//! memory. Join tokens are 256-bit random, shown once, stored as SHA-256 and consumed
//! atomically, so a token is good for exactly one node even across replicas. A node proves
//! possession of its (node-generated) key with a PKCS#10 CSR; the server ignores everything in
//! the CSR but the key and names the node itself.
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use daas_identity::{
    EntryId, NewEntry, RegistrationEntry, Selector, SpiffeId, TrustDomain, TrustDomainCa,
};
use daas_store::{EntryRecord, JoinTokenRecord, JoinTokenUse, NodeRecord};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::apps::admin_only;
use crate::auth::{Caller, audit_credential_failure};
use crate::error::{ApiError, internal};
use crate::extract::{ApiJson, b64u, now_ms};
use crate::state::{AppState, Engine, event};

/// The trust domain of a server whose configuration names none.
pub const DEFAULT_TRUST_DOMAIN: &str = "daas.local";
/// Lifetime of a trust-domain CA; it is rotated at half-life (with overlap in the bundle).
const CA_LIFETIME: time::Duration = time::Duration::days(90);
/// Lifetime of a JWT-SVID (bearer tokens: kept short).
const JWT_SVID_TTL: Duration = Duration::from_secs(300);
/// Lifetime of a node SVID; sensors renew at half-life.
const NODE_SVID_TTL: Duration = Duration::from_secs(3600);
/// Join tokens: default and longest lifetime.
const JOIN_TOKEN_DEFAULT_TTL_SECS: u64 = 600;
const JOIN_TOKEN_MAX_TTL_SECS: u64 = 24 * 3600;
/// Prefix of join tokens (so scanners and humans recognise them).
pub const JOIN_TOKEN_PREFIX: &str = "daas_join_";
/// base64url characters of the 256-bit secret after the prefix.
const JOIN_TOKEN_SECRET_CHARS: usize = 43;

/// [`DEFAULT_TRUST_DOMAIN`] as a value.
pub(crate) fn default_trust_domain() -> TrustDomain {
    // INVARIANT: the constant is a valid trust domain name (checked by a unit test).
    #[expect(clippy::expect_used, reason = "a constant, checked by a test")]
    TrustDomain::new(DEFAULT_TRUST_DOMAIN).expect("valid default trust domain")
}

/// The loaded identity state of a server.
#[derive(Debug)]
pub struct Identity {
    trust_domain: TrustDomain,
    ca: tokio::sync::RwLock<TrustDomainCa>,
}

impl Identity {
    /// Load the CA from the store, or create and store it; rotate it if past half-life.
    pub(crate) async fn load(engine: &Engine) -> Result<Self, ApiError> {
        let trust_domain = engine.trust_domain.clone();
        let now = time::OffsetDateTime::now_utc();
        let stored = engine.store.get_identity_ca().await?;
        let (mut ca, created) = match stored {
            Some(material) => {
                let material = daas_identity::CaKeyMaterial::from_bytes(material.to_vec());
                let mut ca = TrustDomainCa::import(&material, CA_LIFETIME).map_err(internal)?;
                if ca.was_upgraded() {
                    // Stored before JWT-SVID and document keys existed: store the keys just
                    // made, then use what is stored (known gap: like rotation, not yet a
                    // compare-and-swap between replicas starting at once).
                    let material = ca.export().map_err(internal)?;
                    engine
                        .store
                        .put_identity_ca(
                            material.as_bytes(),
                            &event(
                                "server",
                                "identity.ca.upgrade",
                                &trust_domain.to_string(),
                                "ok",
                                "added jwt-svid and document signing keys",
                            ),
                        )
                        .await?;
                    let material = engine
                        .store
                        .get_identity_ca()
                        .await?
                        .ok_or(ApiError::Internal)?;
                    let material = daas_identity::CaKeyMaterial::from_bytes(material.to_vec());
                    ca = TrustDomainCa::import(&material, CA_LIFETIME).map_err(internal)?;
                }
                if ca.trust_domain() != &trust_domain {
                    tracing::error!(
                        stored = %ca.trust_domain(),
                        configured = %trust_domain,
                        "the stored CA belongs to another trust domain"
                    );
                    return Err(ApiError::Internal);
                }
                (ca, false)
            }
            None => (
                TrustDomainCa::new(trust_domain.clone(), CA_LIFETIME, now).map_err(internal)?,
                true,
            ),
        };
        if created {
            // Several replicas may start at once: the first stored CA wins, the others use it.
            let material = ca.export().map_err(internal)?;
            let stored = engine
                .store
                .create_identity_ca(
                    material.as_bytes(),
                    &event(
                        "server",
                        "identity.ca.create",
                        &trust_domain.to_string(),
                        "ok",
                        "",
                    ),
                )
                .await?;
            if !stored {
                let material = engine
                    .store
                    .get_identity_ca()
                    .await?
                    .ok_or(ApiError::Internal)?;
                let material = daas_identity::CaKeyMaterial::from_bytes(material.to_vec());
                ca = TrustDomainCa::import(&material, CA_LIFETIME).map_err(internal)?;
            }
        }
        if ca.active_not_after() - now < CA_LIFETIME / 2 {
            // Known gap (docs/identity.md): rotation is not yet a compare-and-swap between
            // replicas, and activates the new CA at once.
            ca.rotate(now).map_err(internal)?;
            ca.prune(now);
            let material = ca.export().map_err(internal)?;
            engine
                .store
                .put_identity_ca(
                    material.as_bytes(),
                    &event(
                        "server",
                        "identity.ca.rotate",
                        &trust_domain.to_string(),
                        "ok",
                        "",
                    ),
                )
                .await?;
        }
        engine.bundle.set(ca.bundle(now));
        Ok(Self {
            trust_domain,
            ca: tokio::sync::RwLock::new(ca),
        })
    }
}

fn entry_error(e: &daas_identity::EntryError) -> ApiError {
    ApiError::Malformed(e.to_string())
}

// ---------------------------------------------------------------- bundle

#[derive(Debug, Serialize)]
pub(crate) struct BundleResponse {
    trust_domain: String,
    /// DER certificates, base64url.
    authorities: Vec<String>,
    pem: String,
    /// JWT-SVID keys: a JWK set, each key with `kid` and `use: "jwt-svid"`.
    jwt_authorities: serde_json::Value,
    /// Identity-document keys: a JWK set, each key with `kid` and `use: "daas-document"`.
    document_authorities: serde_json::Value,
}

async fn bundle_response(identity: &Identity) -> BundleResponse {
    let now = time::OffsetDateTime::now_utc();
    let ca = identity.ca.read().await;
    BundleResponse {
        trust_domain: identity.trust_domain.id().to_string(),
        authorities: ca.bundle(now).iter().map(|c| b64u(c.as_ref())).collect(),
        pem: ca.bundle_pem(now),
        jwt_authorities: ca.jwt_bundle(now).to_jwks_value(),
        document_authorities: ca.document_bundle(now).to_jwks_value(),
    }
}

/// `GET /v1/identity/bundle`: the CA certificates and token keys a verifier of this trust
/// domain trusts.
pub async fn bundle(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<BundleResponse>, ApiError> {
    let engine = state.engine()?;
    let identity = engine.identity().await?;
    Ok(Json(bundle_response(identity).await))
}

/// `GET /v1/identity/node/bundle` (node): the same bundle, for a sensor (which has no bearer
/// token).
pub async fn node_bundle(
    State(state): State<AppState>,
    _node: NodeCaller,
) -> Result<Json<BundleResponse>, ApiError> {
    let engine = state.engine()?;
    let identity = engine.identity().await?;
    Ok(Json(bundle_response(identity).await))
}

// ---------------------------------------------------------------- entries

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateEntryRequest {
    spiffe_id: String,
    parent_id: String,
    selectors: Vec<String>,
    x509_ttl_secs: Option<u64>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    allow_without_digest: bool,
    /// The app whose instance documents matching workloads receive.
    app: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct EntryView {
    id: String,
    spiffe_id: String,
    parent_id: String,
    selectors: Vec<String>,
    x509_ttl_secs: u64,
    roles: Vec<String>,
    /// Set when the entry was created without the digest-and-uid rule: shown so it is noticed.
    allow_without_digest: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    app: Option<String>,
    created_at: i64,
}

impl EntryView {
    fn of(entry: &RegistrationEntry, created_at: i64) -> Self {
        Self {
            id: entry.id().as_str().to_owned(),
            spiffe_id: entry.spiffe_id().to_string(),
            parent_id: entry.parent_id().to_string(),
            selectors: entry.selectors().iter().map(ToString::to_string).collect(),
            x509_ttl_secs: entry.x509_ttl().as_secs(),
            roles: entry.roles().to_vec(),
            allow_without_digest: entry.allows_without_digest(),
            app: entry.app().map(str::to_owned),
            created_at,
        }
    }
}

fn parse_selectors(texts: &[String]) -> Result<Vec<Selector>, ApiError> {
    texts
        .iter()
        .map(|s| {
            s.parse::<Selector>()
                .map_err(|e| ApiError::Malformed(format!("selector: {e}")))
        })
        .collect()
}

fn parse_id(field: &'static str, text: &str) -> Result<SpiffeId, ApiError> {
    text.parse::<SpiffeId>()
        .map_err(|e| ApiError::Malformed(format!("{field}: {e}")))
}

/// `POST /v1/identity/entries` (admin).
pub async fn create_entry(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateEntryRequest>,
) -> Result<(StatusCode, Json<EntryView>), ApiError> {
    let engine = state.engine()?;
    admin_only(&caller)?;
    let identity = engine.identity().await?;
    let spiffe_id = parse_id("spiffe_id", &req.spiffe_id)?;
    let parent_id = parse_id("parent_id", &req.parent_id)?;
    if !spiffe_id.is_member_of(&identity.trust_domain) {
        return Err(ApiError::Malformed(format!(
            "spiffe_id: not in this server's trust domain {}",
            identity.trust_domain
        )));
    }
    let selectors = parse_selectors(&req.selectors)?;
    let mut new = NewEntry::new(spiffe_id, parent_id, selectors);
    new.x509_ttl = req.x509_ttl_secs.map(Duration::from_secs);
    new.roles = req.roles;
    new.allow_without_digest = req.allow_without_digest;
    new.app = req.app;
    let entry = RegistrationEntry::new(EntryId::random().map_err(internal)?, new)
        .map_err(|e| entry_error(&e))?;
    let record = EntryRecord {
        id: entry.id().as_str().to_owned(),
        spiffe_id: entry.spiffe_id().to_string(),
        parent_id: entry.parent_id().to_string(),
        body: serde_json::to_vec(&entry).map_err(internal)?,
        created_at: now_ms(),
    };
    engine
        .store
        .put_entry(
            &record,
            &event(
                &caller.name,
                "identity.entry.create",
                &record.spiffe_id,
                "ok",
                &format!(
                    "entry {} for node {}{}",
                    record.id,
                    record.parent_id,
                    if entry.allows_without_digest() {
                        " (without the digest and uid rule)"
                    } else {
                        ""
                    }
                ),
            ),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EntryView::of(&entry, record.created_at)),
    ))
}

fn decode_entry(record: &EntryRecord) -> Result<RegistrationEntry, ApiError> {
    // Entries are validated again on load: a row edited behind our back cannot smuggle in a
    // selector or TTL the API would refuse.
    serde_json::from_slice(&record.body).map_err(|e| {
        tracing::error!(entry = %record.id, error = %e, "stored registration entry is invalid");
        ApiError::Internal
    })
}

#[derive(Debug, Serialize)]
pub(crate) struct EntryList {
    entries: Vec<EntryView>,
}

/// `GET /v1/identity/entries` (admin).
pub async fn list_entries(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<EntryList>, ApiError> {
    let engine = state.engine()?;
    admin_only(&caller)?;
    let entries = engine
        .store
        .list_entries()
        .await?
        .iter()
        .map(|r| decode_entry(r).map(|e| EntryView::of(&e, r.created_at)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(EntryList { entries }))
}

/// `DELETE /v1/identity/entries/{id}` (admin).
pub async fn delete_entry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let engine = state.engine()?;
    admin_only(&caller)?;
    let id: EntryId = id
        .parse()
        .map_err(|e: daas_identity::EntryError| entry_error(&e))?;
    engine
        .store
        .delete_entry(
            id.as_str(),
            &event(&caller.name, "identity.entry.delete", id.as_str(), "ok", ""),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- join tokens

/// A keyed hash (the storage key's lookup subkey), not a bare SHA-256: someone who can write to
/// the database but lacks the storage key cannot plant a join token they know.
fn join_token_hash(engine: &Engine, token: &str) -> Result<[u8; 32], ApiError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(engine.keys.lookup("join-token", token.as_bytes()), &mut out)
        .map_err(internal)?;
    Ok(out)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinTokenRequest {
    ttl_secs: Option<u64>,
}

/// Holds the token: no `Debug`.
#[derive(Serialize)]
pub(crate) struct JoinTokenResponse {
    token: String,
    expires_at: i64,
}

/// `POST /v1/identity/join-tokens` (admin): a one-time token a sensor joins with.
pub async fn create_join_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<JoinTokenRequest>,
) -> Result<(StatusCode, Json<JoinTokenResponse>), ApiError> {
    let engine = state.engine()?;
    admin_only(&caller)?;
    let ttl = req.ttl_secs.unwrap_or(JOIN_TOKEN_DEFAULT_TTL_SECS);
    if ttl == 0 || ttl > JOIN_TOKEN_MAX_TTL_SECS {
        return Err(ApiError::Malformed(format!(
            "ttl_secs must be between 1 and {JOIN_TOKEN_MAX_TTL_SECS}"
        )));
    }
    let secret: Zeroizing<[u8; 32]> =
        Zeroizing::new(daas_crypto::random::bytes().map_err(internal)?);
    let token = Zeroizing::new(format!("{JOIN_TOKEN_PREFIX}{}", b64u(&secret[..])));
    let token_hash = join_token_hash(&engine, &token)?;
    let created_at = now_ms();
    let ttl_ms = i64::try_from(ttl.saturating_mul(1000)).map_err(internal)?;
    let record = JoinTokenRecord {
        token_hash,
        expires_at: created_at.saturating_add(ttl_ms),
        created_at,
    };
    engine
        .store
        .put_join_token(
            &record,
            &event(
                &caller.name,
                "identity.join_token.create",
                &hex::encode(&token_hash[..8]),
                "ok",
                &format!("ttl {ttl} s"),
            ),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(JoinTokenResponse {
            token: token.to_string(),
            expires_at: record.expires_at,
        }),
    ))
}

// ---------------------------------------------------------------- node attestation

/// Holds a credential: no `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttestRequest {
    join_token: String,
    /// PKCS#10 CSR (DER, base64url) for the node's key.
    csr: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct NodeSvidResponse {
    spiffe_id: String,
    /// DER certificates, leaf first, base64url.
    x509_svid: Vec<String>,
    /// The trust bundle: DER CA certificates, base64url.
    bundle: Vec<String>,
    expires_at: i64,
}

/// `POST /v1/identity/nodes/attest` (no bearer token: the join token is the credential).
///
/// The CSR is checked and the node SVID signed *before* the token is consumed, so a malformed
/// CSR does not burn the token; the token is consumed atomically with the node's record, so two
/// sensors racing with one token get one node between them.
pub async fn attest_node(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<AttestRequest>,
) -> Result<Json<NodeSvidResponse>, ApiError> {
    let engine = state.engine()?;
    let identity = engine.identity().await?;
    let route = "/v1/identity/nodes/attest";
    let join_token = Zeroizing::new(req.join_token);
    // Cheap checks first: an anonymous caller must not get CSR verification and a signature
    // for a string that cannot be a token.
    let well_formed = join_token
        .strip_prefix(JOIN_TOKEN_PREFIX)
        .is_some_and(|rest| {
            rest.len() == JOIN_TOKEN_SECRET_CHARS
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !well_formed {
        audit_credential_failure(
            &engine,
            "identity.node.attest",
            route,
            "malformed join token",
        )
        .await;
        return Err(ApiError::Unauthenticated);
    }
    let csr = crate::extract::b64u_secret("csr", &req.csr)?;
    let node_suffix: [u8; 16] = daas_crypto::random::bytes().map_err(internal)?;
    let node_id = identity
        .trust_domain
        .spiffe_id(&format!("/daas/node/{}", hex::encode(node_suffix)))
        .map_err(internal)?;
    let now = time::OffsetDateTime::now_utc();
    let svid = {
        let ca = identity.ca.read().await;
        let svid = ca
            .issue_x509_svid(&csr, &node_id, NODE_SVID_TTL, now)
            .map_err(|e| match e {
                daas_identity::Error::Peer(p) => ApiError::Malformed(format!("csr: {p}")),
                other => internal(other),
            })?;
        (svid, ca.bundle(now))
    };
    let token_hash = join_token_hash(&engine, &join_token)?;
    let used = engine
        .store
        .consume_join_token(
            &token_hash,
            now_ms(),
            &NodeRecord {
                spiffe_id: node_id.to_string(),
                created_at: now_ms(),
            },
            &event(
                &node_id.to_string(),
                "identity.node.attest",
                &node_id.to_string(),
                "ok",
                &format!("join token {}", hex::encode(&token_hash[..8])),
            ),
        )
        .await?;
    let detail = match used {
        JoinTokenUse::Consumed => None,
        JoinTokenUse::Unknown => Some("join token unknown or already used"),
        JoinTokenUse::Expired => Some("join token expired"),
    };
    if let Some(detail) = detail {
        // Opaque to the peer, precise in the audit log.
        audit_credential_failure(&engine, "identity.node.attest", route, detail).await;
        return Err(ApiError::Unauthenticated);
    }
    let (svid, bundle) = svid;
    Ok(Json(NodeSvidResponse {
        spiffe_id: node_id.to_string(),
        x509_svid: svid.chain().iter().map(|c| b64u(c.as_ref())).collect(),
        bundle: bundle.iter().map(|c| b64u(c.as_ref())).collect(),
        expires_at: svid.not_after().unix_timestamp().saturating_mul(1000),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_trust_domain_is_valid() {
        assert_eq!(default_trust_domain().to_string(), DEFAULT_TRUST_DOMAIN);
    }
}

// ---------------------------------------------------------------- node-authenticated calls

/// A request from an attested node: its connection presented a valid X.509-SVID of this trust
/// domain (checked in the TLS handshake and again here against the current bundle) whose ID is
/// a node ID that this server attested (present in the `nodes` table).
#[derive(Debug)]
pub struct NodeCaller {
    pub id: SpiffeId,
}

impl axum::extract::FromRequestParts<AppState> for NodeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let engine = state.engine()?;
        engine.identity().await?;
        let route = parts.uri.path().to_owned();
        let chain = parts
            .extensions
            .get::<crate::tls::PeerCertificates>()
            .and_then(|p| p.0.clone());
        let verdict = match chain {
            None => Err("no client certificate"),
            Some(chain) => match daas_identity::verify_x509_svid(
                &chain,
                &engine.bundle.get(),
                time::OffsetDateTime::now_utc(),
            ) {
                Err(_) => Err("client certificate is not a valid svid of this trust domain"),
                Ok(id) if !daas_identity::entry::is_node_id(&id) => {
                    Err("client svid is not a node's")
                }
                Ok(id) => match engine.store.get_node(&id.to_string()).await {
                    Ok(_) => Ok(id),
                    Err(daas_store::StoreError::NotFound) => Err("node is not registered"),
                    Err(e) => return Err(e.into()),
                },
            },
        };
        match verdict {
            Ok(id) => Ok(Self { id }),
            Err(detail) => {
                audit_credential_failure(&engine, "identity.node.auth", &route, detail).await;
                Err(ApiError::Unauthenticated)
            }
        }
    }
}

/// The decoded entries `node` may obtain SVIDs for.
async fn entries_of(
    engine: &Engine,
    node: &SpiffeId,
) -> Result<Vec<(RegistrationEntry, i64)>, ApiError> {
    let mut out = Vec::new();
    for record in engine.store.list_entries().await? {
        let entry = decode_entry(&record)?;
        if entry.is_parent(node) {
            out.push((entry, record.created_at));
        }
    }
    Ok(out)
}

/// `GET /v1/identity/node/entries` (node): the entries this node serves.
pub async fn node_entries(
    State(state): State<AppState>,
    node: NodeCaller,
) -> Result<Json<EntryList>, ApiError> {
    let engine = state.engine()?;
    let entries = entries_of(&engine, &node.id)
        .await?
        .iter()
        .map(|(e, created_at)| EntryView::of(e, *created_at))
        .collect();
    Ok(Json(EntryList { entries }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkloadSvidRequest {
    spiffe_id: String,
    /// What the node's attestation of the workload found.
    selectors: Vec<String>,
    /// PKCS#10 CSR (DER, base64url) for a key the node generated.
    csr: String,
}

fn issue_error(e: daas_identity::Error) -> ApiError {
    match e {
        daas_identity::Error::Peer(p) => ApiError::Malformed(format!("csr: {p}")),
        other => internal(other),
    }
}

fn svid_response(
    svid: &daas_identity::X509Svid,
    bundle: &[rustls::pki_types::CertificateDer<'static>],
) -> NodeSvidResponse {
    NodeSvidResponse {
        spiffe_id: svid.spiffe_id().to_string(),
        x509_svid: svid.chain().iter().map(|c| b64u(c.as_ref())).collect(),
        bundle: bundle.iter().map(|c| b64u(c.as_ref())).collect(),
        expires_at: svid.not_after().unix_timestamp().saturating_mul(1000),
    }
}

/// `POST /v1/identity/node/svids` (node): an X.509-SVID for a workload the node attested, if an
/// entry of this node grants that ID to those selectors.
pub async fn issue_workload_svid(
    State(state): State<AppState>,
    node: NodeCaller,
    ApiJson(req): ApiJson<WorkloadSvidRequest>,
) -> Result<Json<NodeSvidResponse>, ApiError> {
    let engine = state.engine()?;
    let identity = engine.identity().await?;
    let requested = parse_id("spiffe_id", &req.spiffe_id)?;
    let selectors = parse_selectors(&req.selectors)?;
    let csr = crate::extract::b64u_secret("csr", &req.csr)?;
    let entries: Vec<RegistrationEntry> = entries_of(&engine, &node.id)
        .await?
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    let node_name = node.id.to_string();
    let entry =
        match daas_identity::authorize_svid_request(&entries, &node.id, &requested, &selectors) {
            Ok(entry) => entry,
            Err(reason) => {
                engine
                    .audit(
                        &node_name,
                        "identity.svid.issue",
                        &requested.to_string(),
                        "denied",
                        &reason.to_string(),
                    )
                    .await?;
                return Err(ApiError::Forbidden);
            }
        };
    let now = time::OffsetDateTime::now_utc();
    let (svid, bundle) = {
        let ca = identity.ca.read().await;
        let svid = ca
            .issue_x509_svid(&csr, &requested, entry.x509_ttl(), now)
            .map_err(issue_error)?;
        (svid, ca.bundle(now))
    };
    engine
        .audit(
            &node_name,
            "identity.svid.issue",
            &requested.to_string(),
            "ok",
            &format!("entry {}", entry.id().as_str()),
        )
        .await?;
    Ok(Json(svid_response(&svid, &bundle)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtSvidRequest {
    spiffe_id: String,
    /// What the node's attestation of the workload found.
    selectors: Vec<String>,
    /// 1..=16 values, each 1..=256 printable characters.
    audience: Vec<String>,
}

/// Holds a bearer token: no `Debug`.
#[derive(Serialize)]
pub(crate) struct JwtSvidResponse {
    spiffe_id: String,
    token: String,
    expires_at: i64,
}

/// `POST /v1/identity/node/jwt-svids` (node): a JWT-SVID for a workload the node attested,
/// authorised exactly like an X.509-SVID.
pub async fn issue_workload_jwt_svid(
    State(state): State<AppState>,
    node: NodeCaller,
    ApiJson(req): ApiJson<JwtSvidRequest>,
) -> Result<Json<JwtSvidResponse>, ApiError> {
    let engine = state.engine()?;
    let identity = engine.identity().await?;
    let requested = parse_id("spiffe_id", &req.spiffe_id)?;
    let selectors = parse_selectors(&req.selectors)?;
    daas_identity::jwt_svid::check_audiences(&req.audience)
        .map_err(|e| ApiError::Malformed(format!("audience: {e}")))?;
    let entries: Vec<RegistrationEntry> = entries_of(&engine, &node.id)
        .await?
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    let node_name = node.id.to_string();
    let action = "identity.jwt_svid.issue";
    let entry =
        match daas_identity::authorize_svid_request(&entries, &node.id, &requested, &selectors) {
            Ok(entry) => entry,
            Err(reason) => {
                engine
                    .audit(
                        &node_name,
                        action,
                        &requested.to_string(),
                        "denied",
                        &reason.to_string(),
                    )
                    .await?;
                return Err(ApiError::Forbidden);
            }
        };
    let now = time::OffsetDateTime::now_utc();
    let (token, expires_at) = identity
        .ca
        .read()
        .await
        .issue_jwt_svid_with_expiry(&requested, &req.audience, JWT_SVID_TTL, now)
        .map_err(|e| match e {
            daas_identity::Error::Caller(daas_identity::CallerError::Audience(m)) => {
                ApiError::Malformed(format!("audience: {m}"))
            }
            other => internal(other),
        })?;
    // A JSON array, not comma-joined: an audience value may itself contain ", ".
    let audience = serde_json::to_string(&req.audience).map_err(internal)?;
    engine
        .audit(
            &node_name,
            action,
            &requested.to_string(),
            "ok",
            &format!("entry {}, audience {audience}", entry.id().as_str()),
        )
        .await?;
    Ok(Json(JwtSvidResponse {
        spiffe_id: requested.to_string(),
        token,
        expires_at: expires_at.unix_timestamp().saturating_mul(1000),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenewRequest {
    csr: String,
}

/// `POST /v1/identity/node/renew` (node): a fresh node SVID for the same node (new key).
pub async fn renew_node_svid(
    State(state): State<AppState>,
    node: NodeCaller,
    ApiJson(req): ApiJson<RenewRequest>,
) -> Result<Json<NodeSvidResponse>, ApiError> {
    let engine = state.engine()?;
    let identity = engine.identity().await?;
    let csr = crate::extract::b64u_secret("csr", &req.csr)?;
    let now = time::OffsetDateTime::now_utc();
    let (svid, bundle) = {
        let ca = identity.ca.read().await;
        let svid = ca
            .issue_x509_svid(&csr, &node.id, NODE_SVID_TTL, now)
            .map_err(issue_error)?;
        (svid, ca.bundle(now))
    };
    engine
        .audit(
            &node.id.to_string(),
            "identity.node.renew",
            &node.id.to_string(),
            "ok",
            "",
        )
        .await?;
    Ok(Json(svid_response(&svid, &bundle)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DenialReport {
    /// Why the sensor refused a workload (no matching entry, attestation failed, ...).
    reason: String,
    /// The workload's selectors, when attestation got that far.
    #[serde(default)]
    selectors: Vec<String>,
}

/// `POST /v1/identity/node/denials` (node): a refused workload, for the audit log.
pub async fn report_denial(
    State(state): State<AppState>,
    node: NodeCaller,
    ApiJson(req): ApiJson<DenialReport>,
) -> Result<StatusCode, ApiError> {
    let engine = state.engine()?;
    // The detail is node-supplied text: keep it bounded and printable.
    let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).take(256).collect() };
    if req.selectors.len() > 32 {
        return Err(ApiError::Malformed("at most 32 selectors".into()));
    }
    let selectors: Vec<String> = req.selectors.iter().map(|s| clean(s)).collect();
    // A JSON array, not space-joined: a `unix:path:` may contain spaces, and must not be able
    // to pass for extra selectors in the audit record.
    let target = serde_json::to_string(&selectors).map_err(internal)?;
    engine
        .audit(
            &node.id.to_string(),
            "identity.workload.denied",
            &target,
            "denied",
            &clean(&req.reason),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- identity documents

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterAppRequest {
    /// An app created with `POST /v1/apps`: its id is the document's stable uid.
    name: String,
    owner: String,
    /// `sha256:<64 lowercase hex>` digests of the binaries that may run as the app.
    allowed_digests: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    /// Default: one more than the current document's (1 for the first). An explicit version
    /// must be greater than the current one.
    version: Option<u64>,
    /// Default 30 days, at most 90.
    ttl_secs: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AppDocumentResponse {
    spiffe_id: String,
    uid: String,
    version: u64,
    document: String,
    expires_at: i64,
}

fn document_error(e: daas_identity::Error) -> ApiError {
    match e {
        daas_identity::Error::Caller(
            c @ (daas_identity::CallerError::Document(_) | daas_identity::CallerError::Ttl(_)),
        ) => ApiError::Malformed(c.to_string()),
        other => internal(other),
    }
}

/// The greatest app document version: the store keeps versions as signed 64-bit integers.
const MAX_APP_DOCUMENT_VERSION: u64 = i64::MAX.unsigned_abs();

/// The version of the app's current document, if it has one.
async fn current_app_document(
    engine: &Engine,
    app_id: &str,
) -> Result<Option<daas_store::AppDocumentRecord>, ApiError> {
    match engine.store.get_app_document(app_id).await {
        Ok(doc) => Ok(Some(doc)),
        Err(daas_store::StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `POST /v1/identity/apps` (admin): issues (or re-issues) the identity document of an app
/// created with `POST /v1/apps`. The new document becomes the app's current one: instance
/// documents are issued only under it from now on.
pub async fn register_app(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RegisterAppRequest>,
) -> Result<(StatusCode, Json<AppDocumentResponse>), ApiError> {
    let engine = state.engine()?;
    admin_only(&caller)?;
    let identity = engine.identity().await?;
    let metadata = daas_identity::AppMetadata {
        name: req.name,
        owner: req.owner,
        allowed_digests: req.allowed_digests,
        roles: req.roles,
    };
    metadata
        .validate()
        .map_err(|e| ApiError::Malformed(e.to_string()))?;
    let ttl = req.ttl_secs.map_or(
        daas_identity::document::DEFAULT_APP_DOCUMENT_TTL,
        Duration::from_secs,
    );
    let app = match engine.store.get_app_by_name(&metadata.name).await {
        Ok(app) => app,
        Err(daas_store::StoreError::NotFound) => return Err(ApiError::NotFound),
        Err(e) => return Err(e.into()),
    };
    let current = current_app_document(&engine, &app.id)
        .await?
        .map(|doc| doc.version);
    let version = match (req.version, current) {
        (Some(0), _) => return Err(ApiError::Malformed("version: must be at least 1".into())),
        (Some(v), _) if v > MAX_APP_DOCUMENT_VERSION => {
            return Err(ApiError::Malformed(format!(
                "version: must be at most {MAX_APP_DOCUMENT_VERSION}"
            )));
        }
        (Some(v), Some(c)) if v <= c => {
            return Err(ApiError::ConflictBecause(format!(
                "version {v} is not greater than the current document's version {c}"
            )));
        }
        (Some(v), _) => v,
        (None, Some(c)) => c
            .checked_add(1)
            .filter(|v| *v <= MAX_APP_DOCUMENT_VERSION)
            .ok_or_else(|| {
                ApiError::ConflictBecause("the current document has the last version".into())
            })?,
        (None, None) => 1,
    };
    let now = time::OffsetDateTime::now_utc();
    let (document, verified) = identity
        .ca
        .read()
        .await
        .issue_app_document(&app.id, &metadata, version, ttl, now)
        .map_err(document_error)?;
    let record = daas_store::AppDocumentRecord {
        app_id: app.id.clone(),
        version,
        document: document.clone(),
        updated_at: now_ms(),
    };
    let audit = event(
        &caller.name,
        "identity.app.register",
        &verified.spiffe_id().to_string(),
        "ok",
        &format!(
            "version {version}, {} allowed digests, expires {}",
            metadata.allowed_digests.len(),
            verified.expires_at().unix_timestamp()
        ),
    );
    match engine.store.put_app_document(&record, &audit).await {
        Ok(()) => {}
        // A concurrent registration took this version first.
        Err(daas_store::StoreError::Conflict) => {
            return Err(ApiError::ConflictBecause(format!(
                "version {version} was registered concurrently; retry"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    Ok((
        StatusCode::CREATED,
        Json(AppDocumentResponse {
            spiffe_id: verified.spiffe_id().to_string(),
            uid: verified.uid().to_owned(),
            version,
            document,
            expires_at: verified.expires_at().unix_timestamp().saturating_mul(1000),
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InstanceDocumentRequest {
    /// Optional: if given, it must be the app's current document (a node holding an older
    /// one learns that it was superseded).
    app_document: Option<String>,
    /// `sha256:<hex>` of the instance's binary (the sensor's attestation).
    binary_digest: String,
    /// Process id and start time (Unix ms) of the instance on the node.
    pid: u32,
    started_at: i64,
    /// The workload's SPIFFE ID: an entry of this node must grant it to this binary digest
    /// and name this app.
    workload_id: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct InstanceDocumentResponse {
    spiffe_id: String,
    instance_id: String,
    document: String,
    /// The app document the instance document is chained to (to verify it offline).
    app_document: String,
    expires_at: i64,
}

/// `POST /v1/identity/apps/{app}/instances` (node): an instance document for a workload the
/// node attested, chained to the app's current document, if an entry of the node grants the
/// workload ID to that binary digest and names this app, and the app allows the digest.
pub async fn issue_instance_document(
    State(state): State<AppState>,
    node: NodeCaller,
    Path(app_name): Path<String>,
    ApiJson(req): ApiJson<InstanceDocumentRequest>,
) -> Result<Json<InstanceDocumentResponse>, ApiError> {
    let engine = state.engine()?;
    let identity = engine.identity().await?;
    let node_name = node.id.to_string();
    let action = "identity.instance.issue";
    if !daas_identity::document::valid_digest(&req.binary_digest) {
        return Err(ApiError::Malformed(
            "binary_digest: must be sha256: and 64 lowercase hex digits".into(),
        ));
    }
    let workload_id = parse_id("workload_id", &req.workload_id)?;
    if !workload_id.is_member_of(&identity.trust_domain) {
        return Err(ApiError::Malformed(
            "workload_id: not in this server's trust domain".into(),
        ));
    }
    if !daas_identity::document::valid_app_name(&app_name) {
        return Err(ApiError::Malformed("app: not an app name".into()));
    }
    // Every refusal below is the same 403 to the node and precise in the audit log.
    let deny = |target: String, detail: String| {
        let engine = engine.clone();
        let node_name = node_name.clone();
        async move {
            engine
                .audit(&node_name, action, &target, "denied", &detail)
                .await?;
            Err::<Json<InstanceDocumentResponse>, ApiError>(ApiError::Forbidden)
        }
    };
    let app_target = format!("app:{app_name}");
    // Re-read at every issuance: a deleted app, or one never registered, gets nothing.
    let app = match engine.store.get_app_by_name(&app_name).await {
        Ok(app) => app,
        Err(daas_store::StoreError::NotFound) => {
            return deny(app_target, "no such app".into()).await;
        }
        Err(e) => return Err(e.into()),
    };
    let Some(current) = current_app_document(&engine, &app.id).await? else {
        return deny(app_target, "the app has no identity document".into()).await;
    };
    if req
        .app_document
        .as_ref()
        .is_some_and(|presented| *presented != current.document)
    {
        return deny(
            app_target,
            format!(
                "the presented app document is not the current one (version {})",
                current.version
            ),
        )
        .await;
    }
    // A node may name only a workload it could obtain an SVID for, and only for the app its
    // entry names: an entry of this node for that ID that pins this very binary digest.
    let entries: Vec<RegistrationEntry> = entries_of(&engine, &node.id)
        .await?
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    let digest_selector = req
        .binary_digest
        .strip_prefix("sha256:")
        .map(|hex| format!("unix:sha256:{hex}"))
        .and_then(|s| s.parse::<Selector>().ok());
    let entitled = digest_selector.is_some_and(|digest| {
        entries.iter().any(|e| {
            e.is_parent(&node.id)
                && e.spiffe_id() == &workload_id
                && e.app() == Some(app_name.as_str())
                && e.selectors().contains(&digest)
        })
    });
    // (Read before the CA lock is taken; acted on after the app's own checks.)
    let now = time::OffsetDateTime::now_utc();
    let ca = identity.ca.read().await;
    let app_doc = match daas_identity::verify_app_document(
        &current.document,
        &ca.document_bundle(now),
        now,
    ) {
        Ok(doc)
            if doc.metadata().name == app_name
                && doc.uid() == app.id
                && doc.version() == current.version =>
        {
            doc
        }
        verdict => {
            drop(ca);
            let detail = match verdict {
                Ok(_) => "the stored app document does not match its app".to_owned(),
                Err(e) => format!("the current app document is not valid: {e}"),
            };
            return deny(app_target, detail).await;
        }
    };
    if !app_doc.allows_digest(&req.binary_digest) {
        drop(ca);
        return deny(
            app_doc.spiffe_id().to_string(),
            format!("binary digest {} not allowed by the app", req.binary_digest),
        )
        .await;
    }
    if !entitled {
        drop(ca);
        return deny(
            workload_id.to_string(),
            format!(
                "no entry of this node grants that workload id to binary {} for app {app_name}",
                req.binary_digest
            ),
        )
        .await;
    }
    let instance = daas_identity::InstanceStatic {
        binary_digest: req.binary_digest,
        node_id: node.id.clone(),
        workload_id: Some(workload_id),
    };
    let dynamic = daas_identity::InstanceDynamic {
        pid: req.pid,
        started_at: req.started_at,
    };
    let (document, verified) = ca
        .issue_instance_document(
            &current.document,
            &app_doc,
            &instance,
            &dynamic,
            daas_identity::document::DEFAULT_INSTANCE_DOCUMENT_TTL,
            now,
        )
        .map_err(document_error)?;
    drop(ca);
    engine
        .audit(
            &node_name,
            action,
            &verified.spiffe_id().to_string(),
            "ok",
            &format!(
                "app version {}, binary {}",
                app_doc.version(),
                instance.binary_digest
            ),
        )
        .await?;
    Ok(Json(InstanceDocumentResponse {
        spiffe_id: verified.spiffe_id().to_string(),
        instance_id: verified.instance_id().to_owned(),
        document,
        app_document: current.document,
        expires_at: verified.expires_at().unix_timestamp().saturating_mul(1000),
    }))
}
