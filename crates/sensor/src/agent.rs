//! The node agent: joins the trust domain, keeps its node SVID renewed, mirrors this node's
//! registration entries, pre-fetches an X.509-SVID per entry (key generated here, never sent),
//! rotates each at half-life, and answers the Workload API from that cache.
//!
//! Failure behaviour (docs/identity.md):
//! - server unreachable: the cache keeps serving SVIDs until each expires; an expired SVID is
//!   never served — a workload whose entries have no valid SVID gets `Unavailable` (fail
//!   closed), and open streams receive that error and end. Retries back off exponentially;
//! - the server no longer accepts the node (401: the node was evicted) or the node SVID expired:
//!   every cached SVID is dropped at once and [`Agent::run`] returns the error (the node must
//!   join again with a new token);
//! - sensor restart: the node identity is reloaded from the data directory (the only thing
//!   written there); workload keys live in memory only, so workloads re-fetch new SVIDs.
//!
//! Nothing the server returns is taken on trust beyond the TLS connection: every SVID must
//! verify against its bundle, name the expected ID in this node's trust domain, certify the key
//! this sensor generated, and come with a bundle that shares a CA with the one already held (so
//! a rotation is accepted but a wholesale replacement of the trust anchors is not).
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use daas_identity::attest::WorkloadFacts;
use daas_identity::{Selector, SpiffeId};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use zeroize::Zeroizing;

use crate::node_store::{NodeIdentity, NodeStore, NodeStoreError};
use crate::server_client::{IssuedSvid, NodeEntry, ServerClient, ServerError};
use crate::workload_api::{
    BoxFuture, IdentitySource, InstanceDocument, JwtSvid, SourceError, ValidateError,
    X509SvidWithKey,
};

/// Denial reports waiting to be coalesced; beyond this they are dropped (and counted in the
/// log) rather than letting a misbehaving local process grow the sensor's memory.
const DENIAL_QUEUE: usize = 64;
/// Denials are coalesced per (reason, selectors) and sent at most this often...
const DENIAL_FLUSH: Duration = Duration::from_secs(1);
/// ...at most this many distinct reports per flush (the rest are counted in the log).
const DENIAL_REPORTS_PER_FLUSH: usize = 16;
/// Renew the node SVID and rotate workload SVIDs once this fraction of their life is gone.
const ROTATE_AT_FRACTION: f64 = 0.5;
/// Most JWT-SVIDs cached (per ID and audience), and per SPIFFE ID.
const MAX_CACHED_JWTS: usize = 256;
const MAX_CACHED_JWTS_PER_ID: usize = 16;
/// Instance documents kept (one per process run and entry); expired ones go first, then the
/// soonest to expire. A process past the bound gets a fresh document on its next call.
const MAX_CACHED_INSTANCES: usize = 256;
/// After the server refuses an instance document, the same (workload ID, app, binary) is not
/// asked for again this long, whatever the process run: the answer does not depend on the run,
/// and every refusal is a record in the server's audit log.
const INSTANCE_REFUSAL_BACKOFF: Duration = Duration::from_secs(10);
/// First retry after a failed sync; doubled per failure up to the sync interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// How the agent reaches its server.
#[derive(Clone)]
pub struct AgentConfig {
    /// `host:port` or `https://host:port`.
    pub server_addr: String,
    /// PEM of the CA that signed the server's TLS certificate.
    pub server_ca_pem: Vec<u8>,
    /// Where the node identity is kept (created 0700 if missing).
    pub data_dir: PathBuf,
    /// How often entries are re-read from the server.
    pub sync_interval: Duration,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("server_addr", &self.server_addr)
            .field("data_dir", &self.data_dir)
            .field("sync_interval", &self.sync_interval)
            .finish_non_exhaustive()
    }
}

/// Why the agent could not start, or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] NodeStoreError),
    #[error("joining the trust domain failed: {0}")]
    Join(#[source] ServerError),
    #[error(
        "no usable node identity in {dir} and no join token: create one with `daas node token create` and pass it in DAAS_JOIN_TOKEN"
    )]
    NeedJoinToken { dir: String },
    #[error("the server returned an invalid node SVID: {0}")]
    InvalidNodeSvid(String),
    #[error("{0}")]
    Config(#[source] ServerError),
    #[error("cannot generate a key: {0}")]
    Key(String),
    /// The server refuses this node's SVID (the node was removed): all identities were dropped.
    #[error(
        "the server no longer accepts this node ({0}); its identities were dropped — join again with a new token"
    )]
    Evicted(String),
    /// The node SVID expired before it could be renewed (the server was unreachable for half
    /// its lifetime): all identities were dropped.
    #[error(
        "the node SVID expired before it could be renewed; its identities were dropped — join again with a new token"
    )]
    NodeExpired,
}

/// A workload SVID held in memory with its key.
struct CachedSvid {
    chain: Vec<CertificateDer<'static>>,
    key_pkcs8: Zeroizing<Vec<u8>>,
    issued_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

impl CachedSvid {
    fn rotate_after(&self) -> OffsetDateTime {
        rotate_after(self.issued_at, self.expires_at)
    }
}

struct CachedEntry {
    entry: NodeEntry,
    selectors: Vec<Selector>,
    svid: Option<CachedSvid>,
}

struct State {
    node: NodeIdentity,
    node_issued_at: OffsetDateTime,
    client: ServerClient,
    bundle: Vec<CertificateDer<'static>>,
    entries: Vec<CachedEntry>,
    /// Whether the entries were read from the server at least once since start: before that,
    /// "no matching entry" is not known, so callers are told to retry rather than refused.
    synced: bool,
    /// Consecutive failed syncs (for the retry back-off and to log transitions only).
    failures: u32,
    /// The PEM directory must be (re)written: at start, after a change, after a failed write.
    pem_dirty: bool,
    /// The trust domain's JWT-SVID keys (from the node bundle endpoint).
    jwt_bundle: Option<daas_identity::JwtBundle>,
    /// JWT-SVIDs by (SPIFFE ID, sorted audience), reused until half their life is gone.
    jwt_cache: HashMap<(String, Vec<String>), CachedJwt>,
    /// Bumped when entries change or everything is forgotten: a token fetched across such a
    /// change is not cached.
    generation: u64,
    /// The trust domain's identity-document keys (from the node bundle endpoint).
    document_bundle: Option<daas_identity::DocumentBundle>,
    /// Instance documents by process run and entry, reused until half their life is gone.
    instance_cache: HashMap<InstanceKey, CachedInstance>,
    /// (workload ID, app, binary digest) the server refused, until when they are not asked for
    /// again (at most [`MAX_CACHED_INSTANCES`]).
    instance_refusals: HashMap<(String, String, String), OffsetDateTime>,
}

/// (workload ID, app, pid, start time in Unix ms, binary digest): one process run under one
/// entry. The app is part of it: entries of one workload ID may name different apps.
type InstanceKey = (String, String, u32, i64, String);

/// An instance document fetched for a process and verified against the document keys.
struct CachedInstance {
    document: InstanceDocument,
    refresh_after: OffsetDateTime,
    expires_at: OffsetDateTime,
}

/// A JWT-SVID fetched for a workload: a bearer token, kept only in memory.
struct CachedJwt {
    token: Zeroizing<String>,
    refresh_after: OffsetDateTime,
    expires_at: OffsetDateTime,
}

/// The sensor's identity cache; implements [`IdentitySource`] for the Workload API.
pub struct Agent {
    config: AgentConfig,
    store: NodeStore,
    trust_domain_id: String,
    state: RwLock<State>,
    updates: watch::Sender<u64>,
    denials: mpsc::Sender<Denial>,
    denials_rx: std::sync::Mutex<Option<mpsc::Receiver<Denial>>>,
    pem_output: Option<crate::pem_dir::PemOutput>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("config", &self.config)
            .field("trust_domain_id", &self.trust_domain_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Denial {
    reason: String,
    selectors: Vec<String>,
}

/// A fresh key: PKCS#8 (secret), a CSR for it, and its SubjectPublicKeyInfo (to check that
/// what comes back certifies this key).
pub struct NewKey {
    pub pkcs8: Zeroizing<Vec<u8>>,
    pub csr_der: Vec<u8>,
    pub spki_der: Vec<u8>,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey").finish_non_exhaustive()
    }
}

/// A fresh P-256 key and a CSR for it (the CA ignores the CSR's names; it signs the SPIFFE ID
/// the server decides).
pub fn new_key() -> Result<NewKey, String> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|params| params.serialize_request(&key))
        .map_err(|e| e.to_string())?;
    Ok(NewKey {
        pkcs8: Zeroizing::new(key.serialize_der()),
        csr_der: csr.der().to_vec(),
        spki_der: rcgen::PublicKeyData::subject_public_key_info(&key),
    })
}

/// What a refusal of an instance document depends on: workload ID, app, binary digest.
fn refusal_key(key: &InstanceKey) -> (String, String, String) {
    (key.0.clone(), key.1.clone(), key.4.clone())
}

fn rotate_after(issued_at: OffsetDateTime, expires_at: OffsetDateTime) -> OffsetDateTime {
    issued_at + (expires_at - issued_at) * ROTATE_AT_FRACTION
}

/// What an SVID answer must satisfy before the sensor uses it.
struct Expect<'a> {
    /// The SPIFFE ID asked for (`None` when joining: the server names the node).
    spiffe_id: Option<&'a SpiffeId>,
    /// The trust domain it must belong to (`None` when joining: the first bundle is trusted
    /// on the strength of the join token and the pinned server CA).
    trust_domain: Option<&'a daas_identity::TrustDomain>,
    /// The key generated for it.
    spki_der: &'a [u8],
    /// The bundle held now: the new one must share a CA with it.
    current_bundle: Option<&'a [CertificateDer<'static>]>,
}

/// A checked SVID: its proven ID, chain, bundle and the leaf's real expiry.
struct CheckedSvid {
    spiffe_id: SpiffeId,
    chain: Vec<CertificateDer<'static>>,
    bundle: Vec<CertificateDer<'static>>,
    expires_at: OffsetDateTime,
}

fn check_svid(
    issued: IssuedSvid,
    expect: &Expect<'_>,
    now: OffsetDateTime,
) -> Result<CheckedSvid, String> {
    let proven = daas_identity::verify_x509_svid(&issued.chain, &issued.bundle, now)
        .map_err(|e| e.to_string())?;
    if proven.to_string() != issued.spiffe_id {
        return Err(format!(
            "it claims {} but certifies {proven}",
            issued.spiffe_id
        ));
    }
    if let Some(wanted) = expect.spiffe_id
        && proven != *wanted
    {
        return Err(format!("asked for {wanted} and got {proven}"));
    }
    if let Some(td) = expect.trust_domain
        && proven.trust_domain() != td
    {
        return Err(format!("{proven} is not in the trust domain {td}"));
    }
    let leaf = issued
        .chain
        .first()
        .ok_or_else(|| "an empty chain".to_owned())?;
    let (spki, not_after) =
        daas_identity::svid::leaf_key_and_expiry(leaf).map_err(|e| e.to_string())?;
    if spki != expect.spki_der {
        return Err("it certifies another key than the one this node generated".to_owned());
    }
    if let Some(current) = expect.current_bundle
        && !issued.bundle.iter().any(|c| current.contains(c))
    {
        return Err("its bundle shares no CA with the bundle this node holds".to_owned());
    }
    Ok(CheckedSvid {
        spiffe_id: proven,
        chain: issued.chain,
        bundle: issued.bundle,
        expires_at: not_after,
    })
}

/// A fatal condition of the sync loop.
enum Fatal {
    Evicted(String),
    NodeExpired,
}

impl Agent {
    /// Load the node identity from the data directory, or join with `join_token` when there is
    /// none (or it expired). A stored identity wins over a token: restarting a sensor with the
    /// command line it was started with must not need a fresh token.
    pub async fn start(
        config: AgentConfig,
        join_token: Option<&str>,
        pem_output: Option<crate::pem_dir::PemOutput>,
    ) -> Result<Arc<Self>, AgentError> {
        let store = NodeStore::open(&config.data_dir)?;
        let now = OffsetDateTime::now_utc();
        let stored = store.load(now)?;
        let (node, node_issued_at) = match stored {
            Some((node, issued_at)) => (node, issued_at),
            None => {
                let Some(token) = join_token else {
                    return Err(AgentError::NeedJoinToken {
                        dir: config.data_dir.display().to_string(),
                    });
                };
                let anonymous = ServerClient::anonymous(&config.server_addr, &config.server_ca_pem)
                    .map_err(AgentError::Config)?;
                let key = new_key().map_err(AgentError::Key)?;
                let issued = anonymous
                    .attest(token, &key.csr_der)
                    .await
                    .map_err(AgentError::Join)?;
                let expect = Expect {
                    spiffe_id: None,
                    trust_domain: None,
                    spki_der: &key.spki_der,
                    current_bundle: None,
                };
                let checked =
                    check_svid(issued, &expect, now).map_err(AgentError::InvalidNodeSvid)?;
                if !daas_identity::entry::is_node_id(&checked.spiffe_id) {
                    return Err(AgentError::InvalidNodeSvid(format!(
                        "{} is not a node ID",
                        checked.spiffe_id
                    )));
                }
                let node = NodeIdentity {
                    spiffe_id: checked.spiffe_id,
                    chain: checked.chain,
                    key_pkcs8: key.pkcs8,
                    bundle: checked.bundle,
                    expires_at: checked.expires_at,
                };
                store.save(&node, now)?;
                tracing::info!(node = %node.spiffe_id, "joined the trust domain");
                (node, now)
            }
        };
        let client = ServerClient::as_node(
            &config.server_addr,
            &config.server_ca_pem,
            &node.identity_pem(),
        )
        .map_err(AgentError::Config)?;
        let trust_domain_id = node.spiffe_id.trust_domain().id().to_string();
        let (denials, denials_rx) = mpsc::channel(DENIAL_QUEUE);
        let bundle = node.bundle.clone();
        Ok(Arc::new(Self {
            config,
            store,
            trust_domain_id,
            state: RwLock::new(State {
                node,
                node_issued_at,
                client,
                bundle,
                entries: Vec::new(),
                synced: false,
                failures: 0,
                pem_dirty: true,
                jwt_bundle: None,
                jwt_cache: HashMap::new(),
                generation: 0,
                document_bundle: None,
                instance_cache: HashMap::new(),
                instance_refusals: HashMap::new(),
            }),
            updates: watch::channel(0).0,
            denials,
            denials_rx: std::sync::Mutex::new(Some(denials_rx)),
            pem_output,
        }))
    }

    /// This node's SPIFFE ID.
    pub fn node_id(&self) -> SpiffeId {
        self.read().node.spiffe_id.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave the cache half-updated in a way that
        // matters (every update replaces whole values), so a poisoned lock is still usable.
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn client(&self) -> ServerClient {
        self.read().client.clone()
    }

    fn notify(&self) {
        self.updates.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Keep the cache current until `shutdown` resolves: sync now, then at every interval, at
    /// the next rotation or expiry, or after a back-off when the last sync failed. Returns an
    /// error when the node can no longer get identities (evicted, node SVID expired): all
    /// identities have then been dropped, and the caller should stop serving.
    pub async fn run(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), AgentError> {
        let reporter = self
            .denials_rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .map(|rx| tokio::spawn(Arc::clone(&self).report_denials(rx)));
        tokio::pin!(shutdown);
        let result = loop {
            if let Err(e) = self.sync().await {
                break Err(e);
            }
            let wait = self.next_wake(OffsetDateTime::now_utc());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => break Ok(()),
            }
        };
        if let Some(reporter) = reporter {
            reporter.abort();
        }
        result
    }

    /// One sync round now (also what [`Agent::run`] repeats). Errors as for [`Agent::run`].
    pub async fn sync(&self) -> Result<(), AgentError> {
        self.sync_once().await.map_err(|fatal| {
            self.forget_everything();
            match fatal {
                Fatal::Evicted(why) => AgentError::Evicted(why),
                Fatal::NodeExpired => AgentError::NodeExpired,
            }
        })
    }

    /// Time until the next thing to do: the sync interval, the next rotation or expiry still
    /// ahead, or — after failures — an exponential back-off (a due rotation that failed must
    /// not make the loop retry at once, and a fleet must not hammer a recovering server).
    fn next_wake(&self, now: OffsetDateTime) -> Duration {
        let state = self.read();
        let interval = self.config.sync_interval;
        let mut next = now + interval;
        let node_rotate = rotate_after(state.node_issued_at, state.node.expires_at);
        let mut deadlines = vec![node_rotate, state.node.expires_at];
        for cached in &state.entries {
            if let Some(svid) = &cached.svid {
                deadlines.push(svid.rotate_after());
                deadlines.push(svid.expires_at);
            }
        }
        for deadline in deadlines {
            if deadline > now {
                next = next.min(deadline);
            }
        }
        if state.failures > 0 {
            let exponent = (state.failures - 1).min(16);
            let backoff = FIRST_RETRY.saturating_mul(1 << exponent).min(interval);
            next = next.min(now + backoff);
        }
        let wait = (next - now).max(time::Duration::milliseconds(100));
        Duration::try_from(wait).unwrap_or(interval)
    }

    /// One round: renew the node SVID if due, refresh entries, fetch missing or half-expired
    /// workload SVIDs, drop expired ones. Failures are logged and retried later; the cache
    /// keeps what it has. Only eviction and node expiry are fatal.
    async fn sync_once(&self) -> Result<(), Fatal> {
        let now = OffsetDateTime::now_utc();
        if now >= self.read().node.expires_at {
            return Err(Fatal::NodeExpired);
        }
        let mut changed = false;
        let mut ok = true;
        match self.renew_node_if_due(now).await {
            Ok(renewed) => changed |= renewed,
            Err(e) => ok &= self.failed(&e, "renewing the node SVID")?,
        }
        match self.client().entries().await {
            Ok(entries) => {
                changed |= self.apply_entries(entries);
                let (fetched, fetch_ok) = self.fetch_due_svids(now).await?;
                changed |= fetched;
                ok &= fetch_ok;
            }
            Err(e) => ok &= self.failed(&e, "reading registration entries")?,
        }
        match self.refresh_jwt_bundle().await {
            Ok(refreshed) => changed |= refreshed,
            Err(e) => ok &= self.failed(&e, "reading the JWT bundle")?,
        }
        changed |= self.drop_expired(OffsetDateTime::now_utc());
        {
            let mut state = self.write();
            if ok {
                if state.failures > 0 {
                    tracing::info!("the server is reachable again");
                }
                state.failures = 0;
            } else {
                state.failures = state.failures.saturating_add(1);
            }
            state.pem_dirty |= changed;
        }
        if changed {
            self.notify();
        }
        self.write_pem_output();
        Ok(())
    }

    /// Log a failed call (once per outage for an unreachable server); `Ok(false)` means "retry
    /// later", `Err` that the node was evicted.
    fn failed(&self, e: &ServerError, doing: &str) -> Result<bool, Fatal> {
        if e.is_unauthenticated() {
            return Err(Fatal::Evicted(e.to_string()));
        }
        let first = self.read().failures == 0;
        if first {
            if matches!(e, ServerError::Unreachable(_)) {
                tracing::warn!(error = %e, "{doing}: serving cached SVIDs until they expire");
            } else {
                tracing::warn!(error = %e, "{doing} failed");
            }
        } else {
            tracing::debug!(error = %e, "{doing} failed again");
        }
        Ok(false)
    }

    /// Drop every SVID and entry (eviction, node expiry): open streams fail, PEM files go.
    fn forget_everything(&self) {
        {
            let mut state = self.write();
            state.entries.clear();
            state.jwt_cache.clear();
            state.instance_cache.clear();
            state.instance_refusals.clear();
            state.generation = state.generation.wrapping_add(1);
            state.pem_dirty = true;
        }
        self.notify();
        self.write_pem_output();
    }

    async fn renew_node_if_due(&self, now: OffsetDateTime) -> Result<bool, ServerError> {
        let (due, client) = {
            let state = self.read();
            (
                now >= rotate_after(state.node_issued_at, state.node.expires_at),
                state.client.clone(),
            )
        };
        if !due {
            return Ok(false);
        }
        let key = new_key().map_err(ServerError::Config)?;
        let issued = client.renew(&key.csr_der).await?;
        let checked = {
            let state = self.read();
            let expect = Expect {
                spiffe_id: Some(&state.node.spiffe_id),
                trust_domain: Some(state.node.spiffe_id.trust_domain()),
                spki_der: &key.spki_der,
                current_bundle: Some(&state.bundle),
            };
            check_svid(issued, &expect, now)
                .map_err(|e| ServerError::Malformed(format!("renewed node SVID: {e}")))?
        };
        let node = NodeIdentity {
            spiffe_id: checked.spiffe_id,
            chain: checked.chain,
            key_pkcs8: key.pkcs8,
            bundle: checked.bundle,
            expires_at: checked.expires_at,
        };
        let client = ServerClient::as_node(
            &self.config.server_addr,
            &self.config.server_ca_pem,
            &node.identity_pem(),
        )?;
        // Persist before switching: a crash between the two leaves the new identity on disk,
        // which the server accepts as well as the old one.
        if let Err(e) = self.store.save(&node, now) {
            tracing::error!(error = %e, "cannot store the renewed node SVID");
        }
        let mut state = self.write();
        state.bundle.clone_from(&node.bundle);
        state.node = node;
        state.node_issued_at = now;
        state.client = client;
        tracing::info!("node SVID renewed");
        Ok(true)
    }

    /// Replace the entry list, keeping the SVIDs of entries that did not change. Entries for
    /// another trust domain or for a node ID are ignored (the server should never send them).
    fn apply_entries(&self, entries: Vec<NodeEntry>) -> bool {
        let node_td = self.read().node.spiffe_id.trust_domain().clone();
        let mut state = self.write();
        state.synced = true;
        let mut old: HashMap<String, CachedEntry> = state
            .entries
            .drain(..)
            .map(|c| (c.entry.id.clone(), c))
            .collect();
        let mut changed = false;
        let mut fresh = Vec::with_capacity(entries.len());
        for entry in entries {
            let previous = old.remove(&entry.id);
            if let Some(previous) = previous {
                if previous.entry == entry {
                    fresh.push(previous);
                    continue;
                }
                // Changed: its old SVID goes, whatever happens to the new version below.
                changed = true;
            }
            let usable = entry.spiffe_id.parse::<SpiffeId>().ok().filter(|id| {
                id.trust_domain() == &node_td && !daas_identity::entry::is_node_id(id)
            });
            let selectors: Result<Vec<Selector>, _> =
                entry.selectors.iter().map(|s| s.parse()).collect();
            let (Some(_), Ok(selectors)) = (usable, selectors) else {
                tracing::warn!(entry = %entry.id, "ignoring an entry this sensor cannot serve (unknown selector, or an ID outside its trust domain)");
                continue;
            };
            changed = true;
            fresh.push(CachedEntry {
                entry,
                selectors,
                svid: None,
            });
        }
        changed |= !old.is_empty();
        fresh.sort_by(|a, b| {
            (a.entry.spiffe_id.as_str(), a.entry.id.as_str())
                .cmp(&(b.entry.spiffe_id.as_str(), b.entry.id.as_str()))
        });
        if changed {
            // JWT-SVIDs of IDs no entry grants any more go now, not at their expiry.
            state
                .jwt_cache
                .retain(|(id, _), _| fresh.iter().any(|c| c.entry.spiffe_id == *id));
            // Instance documents are re-checked against the new entries (app, digest).
            state.instance_cache.clear();
            state.instance_refusals.clear();
            state.generation = state.generation.wrapping_add(1);
        }
        state.entries = fresh;
        changed
    }

    /// Fetch an SVID for every entry that has none or is past half-life. Returns whether
    /// anything changed and whether every fetch succeeded.
    async fn fetch_due_svids(&self, now: OffsetDateTime) -> Result<(bool, bool), Fatal> {
        let (client, due): (ServerClient, Vec<NodeEntry>) = {
            let state = self.read();
            let due = state
                .entries
                .iter()
                .filter(|c| c.svid.as_ref().is_none_or(|s| now >= s.rotate_after()))
                .map(|c| c.entry.clone())
                .collect();
            (state.client.clone(), due)
        };
        let mut changed = false;
        let mut ok = true;
        for entry in due {
            match self.fetch_svid(&client, &entry, now).await {
                Ok((svid, bundle)) => {
                    let mut state = self.write();
                    if let Some(cached) = state.entries.iter_mut().find(|c| c.entry == entry) {
                        cached.svid = Some(svid);
                        changed = true;
                    }
                    if state.bundle != bundle {
                        state.bundle = bundle;
                        changed = true;
                    }
                }
                Err(e) => ok &= self.failed(&e, "fetching a workload SVID")?,
            }
        }
        Ok((changed, ok))
    }

    async fn fetch_svid(
        &self,
        client: &ServerClient,
        entry: &NodeEntry,
        now: OffsetDateTime,
    ) -> Result<(CachedSvid, Vec<CertificateDer<'static>>), ServerError> {
        let wanted: SpiffeId = entry
            .spiffe_id
            .parse()
            .map_err(|_| ServerError::Malformed(format!("entry ID {}", entry.spiffe_id)))?;
        let key = new_key().map_err(ServerError::Config)?;
        // The entry's own selectors: the server grants the ID only if this node is a parent of
        // an entry they match; the workload's actual selectors are matched here, per call.
        let issued = client
            .workload_svid(&entry.spiffe_id, &entry.selectors, &key.csr_der)
            .await?;
        let checked = {
            let state = self.read();
            let expect = Expect {
                spiffe_id: Some(&wanted),
                trust_domain: Some(state.node.spiffe_id.trust_domain()),
                spki_der: &key.spki_der,
                current_bundle: Some(&state.bundle),
            };
            check_svid(issued, &expect, now)
                .map_err(|e| ServerError::Malformed(format!("workload SVID: {e}")))?
        };
        Ok((
            CachedSvid {
                chain: checked.chain,
                key_pkcs8: key.pkcs8,
                issued_at: now,
                expires_at: checked.expires_at,
            },
            checked.bundle,
        ))
    }

    /// [`Self::refresh_jwt_bundle`] outside the sync loop (a workload's call met an unknown
    /// key): a change must wake open `FetchJWTBundles` streams here, because the next sync
    /// will see no change.
    async fn refresh_bundle_on_demand(&self) -> Result<bool, ServerError> {
        let changed = self.refresh_jwt_bundle().await?;
        if changed {
            self.notify();
        }
        Ok(changed)
    }

    /// Read the trust domain's JWT-SVID and identity-document keys; only a bundle of this
    /// node's trust domain is accepted. Returns whether the JWT keys changed.
    async fn refresh_jwt_bundle(&self) -> Result<bool, ServerError> {
        let body = self.client().bundle().await?;
        let bundle = daas_identity::JwtBundle::from_trust_bundle_json(&body)
            .map_err(|e| ServerError::Malformed(format!("jwt bundle: {e}")))?;
        let documents = daas_identity::DocumentBundle::from_trust_bundle_json(&body)
            .map_err(|e| ServerError::Malformed(format!("document keys: {e}")))?;
        let mut state = self.write();
        if bundle.trust_domain() != state.node.spiffe_id.trust_domain()
            || documents.trust_domain() != state.node.spiffe_id.trust_domain()
        {
            return Err(ServerError::Malformed(format!(
                "the bundle is for {}, not this node's trust domain",
                bundle.trust_domain()
            )));
        }
        state.document_bundle = Some(documents);
        let unchanged = state
            .jwt_bundle
            .as_ref()
            .is_some_and(|held| held.to_jwks_json() == bundle.to_jwks_json());
        if unchanged {
            return Ok(false);
        }
        state.jwt_bundle = Some(bundle);
        Ok(true)
    }

    /// The entries `workload` matches (all, or those for `spiffe_id`), one per SPIFFE ID.
    fn matching_entries(
        &self,
        workload: &WorkloadFacts,
        spiffe_id: Option<&str>,
    ) -> Result<Vec<NodeEntry>, SourceError> {
        let selectors = workload.selectors();
        let state = self.read();
        if !state.synced {
            return Err(SourceError::Unavailable(
                "registration entries not read from the server yet".to_owned(),
            ));
        }
        let mut out: Vec<NodeEntry> = Vec::new();
        for cached in &state.entries {
            let wanted = spiffe_id.is_none_or(|id| id == cached.entry.spiffe_id);
            if wanted
                && cached.selectors.iter().all(|s| selectors.contains(s))
                && !out.iter().any(|e| e.spiffe_id == cached.entry.spiffe_id)
            {
                out.push(cached.entry.clone());
            }
        }
        Ok(out)
    }

    async fn jwt_svids_at(
        &self,
        workload: &WorkloadFacts,
        audience: &[String],
        spiffe_id: Option<&str>,
    ) -> Result<Vec<JwtSvid>, SourceError> {
        let entries = self.matching_entries(workload, spiffe_id)?;
        let mut audience = audience.to_vec();
        audience.sort();
        audience.dedup();
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = (entry.spiffe_id.clone(), audience.clone());
            let now = OffsetDateTime::now_utc();
            let cached = self
                .read()
                .jwt_cache
                .get(&key)
                .filter(|c| now < c.refresh_after)
                .map(|c| c.token.clone());
            let token = match cached {
                Some(token) => token,
                None => self.fetch_jwt(&entry, &audience, key, now).await?,
            };
            out.push(JwtSvid {
                spiffe_id: entry.spiffe_id,
                token,
            });
        }
        Ok(out)
    }

    /// Ask the server for a JWT-SVID and validate it (ID, audience, signature by this trust
    /// domain's keys) before handing it out or caching it.
    async fn fetch_jwt(
        &self,
        entry: &NodeEntry,
        audience: &[String],
        key: (String, Vec<String>),
        now: OffsetDateTime,
    ) -> Result<Zeroizing<String>, SourceError> {
        let unavailable = |why: String| SourceError::Unavailable(why);
        let generation = self.read().generation;
        let (_, token) = self
            .client()
            .jwt_svid(&entry.spiffe_id, &entry.selectors, audience)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let first_audience = audience
            .first()
            .ok_or_else(|| unavailable("no audience".to_owned()))?;
        let valid = match self.validate_at(&token, first_audience, now) {
            Ok(valid) => valid,
            // Signed by a key this sensor has not seen yet (the server rotated): read the
            // bundle again, once, and retry.
            Err(_) => {
                if let Err(e) = self.refresh_bundle_on_demand().await {
                    return Err(unavailable(format!("cannot refresh the JWT bundle: {e}")));
                }
                self.validate_at(&token, first_audience, now).map_err(|e| {
                    unavailable(format!("the server's JWT-SVID does not validate: {e}"))
                })?
            }
        };
        if valid.spiffe_id().to_string() != entry.spiffe_id {
            return Err(unavailable(format!(
                "asked for a JWT-SVID of {} and got {}",
                entry.spiffe_id,
                valid.spiffe_id()
            )));
        }
        // Exactly the audience asked for (the cache is keyed by it).
        let mut granted: Vec<String> = match valid.claims().get("aud") {
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            Some(serde_json::Value::Array(many)) => many
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        granted.sort();
        granted.dedup();
        if granted != audience {
            return Err(unavailable(
                "the server's JWT-SVID is for another audience".to_owned(),
            ));
        }
        let expires_at = valid.expires_at();
        let mut state = self.write();
        // Entries changed or the node was evicted meanwhile: hand it out once, cache nothing.
        if state.generation != generation {
            return Ok(token);
        }
        insert_jwt(
            &mut state.jwt_cache,
            key,
            CachedJwt {
                token: token.clone(),
                refresh_after: rotate_after(now, expires_at),
                expires_at,
            },
            now,
        );
        Ok(token)
    }

    /// The instance documents of `workload`: one per matching entry that names an app, from
    /// the cache or the server, each verified (chain to the app document, this node, this
    /// process, this binary) before it is handed out.
    async fn instance_documents_at(
        &self,
        workload: &WorkloadFacts,
    ) -> Result<Vec<InstanceDocument>, SourceError> {
        let entries = self.instance_entries(workload)?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let Some(started_at) = workload.started_at_ms else {
            return Err(SourceError::Unavailable(
                "the process start time is unknown (no /proc/stat boot time)".into(),
            ));
        };
        let digest = format!("sha256:{}", workload.binary_sha256_hex());
        let mut out = Vec::with_capacity(entries.len());
        for (entry, app) in entries {
            let key: InstanceKey = (
                entry.spiffe_id.clone(),
                app,
                workload.pid,
                started_at,
                digest.clone(),
            );
            let now = OffsetDateTime::now_utc();
            let cached = self
                .read()
                .instance_cache
                .get(&key)
                .filter(|c| now < c.refresh_after)
                .map(|c| c.document.clone());
            let document = match cached {
                Some(document) => document,
                None => {
                    let refused_until = self
                        .read()
                        .instance_refusals
                        .get(&refusal_key(&key))
                        .copied()
                        .filter(|until| now < *until);
                    if let Some(until) = refused_until {
                        return Err(SourceError::Unavailable(format!(
                            "the server refused an instance document of {} for this binary; \
                             not asking again before {until}",
                            key.0
                        )));
                    }
                    self.fetch_instance(key, now).await?
                }
            };
            out.push(document);
        }
        Ok(out)
    }

    /// The entries `workload` matches that name a valid app, one per (SPIFFE ID, app), with
    /// that app. Entries without an app do not hide an entry of the same ID that names one.
    fn instance_entries(
        &self,
        workload: &WorkloadFacts,
    ) -> Result<Vec<(NodeEntry, String)>, SourceError> {
        let selectors = workload.selectors();
        let state = self.read();
        if !state.synced {
            return Err(SourceError::Unavailable(
                "registration entries not read from the server yet".to_owned(),
            ));
        }
        let mut out: Vec<(NodeEntry, String)> = Vec::new();
        for cached in &state.entries {
            // Validated here: the app name goes into the URL of the server call.
            let Some(app) = cached
                .entry
                .app
                .as_deref()
                .filter(|a| daas_identity::document::valid_app_name(a))
            else {
                continue;
            };
            if cached.selectors.iter().all(|s| selectors.contains(s))
                && !out
                    .iter()
                    .any(|(e, a)| e.spiffe_id == cached.entry.spiffe_id && a == app)
            {
                out.push((cached.entry.clone(), app.to_owned()));
            }
        }
        Ok(out)
    }

    async fn fetch_instance(
        &self,
        key: InstanceKey,
        now: OffsetDateTime,
    ) -> Result<InstanceDocument, SourceError> {
        let unavailable = |why: String| SourceError::Unavailable(why);
        let (workload_id, app, pid, started_at, digest) = &key;
        let generation = self.read().generation;
        let request = crate::server_client::InstanceRequest {
            binary_digest: digest,
            pid: *pid,
            started_at: *started_at,
            workload_id,
        };
        let issued = match self.client().instance_document(app, &request).await {
            Ok(issued) => issued,
            Err(e) => {
                if matches!(e, ServerError::Refused { status: 403, .. }) {
                    self.note_instance_refusal(&key, now, generation);
                }
                return Err(unavailable(e.to_string()));
            }
        };
        if self.read().document_bundle.is_none() {
            self.refresh_bundle_on_demand()
                .await
                .map_err(|e| unavailable(format!("cannot read the document keys: {e}")))?;
        }
        let verified = match self.verify_instance(&issued, &key, now) {
            Ok(verified) => verified,
            // Signed by a key this sensor has not seen yet (the server rotated): read the
            // bundle again, once, and retry.
            Err(_) => {
                self.refresh_bundle_on_demand()
                    .await
                    .map_err(|e| unavailable(format!("cannot refresh the document keys: {e}")))?;
                self.verify_instance(&issued, &key, now)
                    .map_err(|e| unavailable(format!("the server's instance document: {e}")))?
            }
        };
        let expires_at = verified.expires_at();
        let document = InstanceDocument {
            workload_id: workload_id.clone(),
            spiffe_id: verified.spiffe_id().to_string(),
            instance_id: verified.instance_id().to_owned(),
            document: issued.document,
            app_document: issued.app_document,
            expires_at_ms: expires_at.unix_timestamp().saturating_mul(1000),
        };
        let mut state = self.write();
        if state.generation == generation {
            let cache = &mut state.instance_cache;
            cache.retain(|_, c| now < c.expires_at);
            if cache.len() >= MAX_CACHED_INSTANCES && !cache.contains_key(&key) {
                let victim = cache
                    .iter()
                    .min_by_key(|(_, c)| c.expires_at)
                    .map(|(k, _)| k.clone());
                if let Some(victim) = victim {
                    cache.remove(&victim);
                }
            }
            cache.insert(
                key,
                CachedInstance {
                    document: document.clone(),
                    refresh_after: rotate_after(now, expires_at),
                    expires_at,
                },
            );
        }
        Ok(document)
    }

    /// Remember that the server refused `key`'s workload, app and binary (unless the entries
    /// changed meanwhile), evicting the refusal that ends soonest when full.
    fn note_instance_refusal(&self, key: &InstanceKey, now: OffsetDateTime, generation: u64) {
        let mut state = self.write();
        if state.generation != generation {
            return;
        }
        let refusals = &mut state.instance_refusals;
        refusals.retain(|_, until| now < *until);
        let refused = refusal_key(key);
        if refusals.len() >= MAX_CACHED_INSTANCES && !refusals.contains_key(&refused) {
            let victim = refusals
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(k, _)| k.clone());
            if let Some(victim) = victim {
                refusals.remove(&victim);
            }
        }
        refusals.insert(refused, now + INSTANCE_REFUSAL_BACKOFF);
    }

    /// The server's instance document must verify against the document keys, chain to the
    /// app document that came with it, and name exactly this node, workload, process and
    /// binary.
    fn verify_instance(
        &self,
        issued: &crate::server_client::IssuedInstanceDocument,
        key: &InstanceKey,
        now: OffsetDateTime,
    ) -> Result<daas_identity::VerifiedInstanceDocument, String> {
        let (workload_id, app_name, pid, started_at, digest) = key;
        let state = self.read();
        let bundle = state
            .document_bundle
            .as_ref()
            .ok_or_else(|| "no document keys yet".to_owned())?;
        let app = daas_identity::verify_app_document(&issued.app_document, bundle, now)
            .map_err(|e| format!("app document: {e}"))?;
        let instance = daas_identity::verify_instance_document(&issued.document, &app, bundle, now)
            .map_err(|e| format!("instance document: {e}"))?;
        let meta = instance.static_metadata();
        let run = instance.dynamic_metadata();
        let matches = app.metadata().name == *app_name
            && meta.node_id == state.node.spiffe_id
            && meta
                .workload_id
                .as_ref()
                .map(ToString::to_string)
                .as_deref()
                == Some(workload_id.as_str())
            && meta.binary_digest == *digest
            && run.pid == *pid
            && run.started_at == *started_at
            && instance.spiffe_id().to_string() == issued.spiffe_id
            && instance.instance_id() == issued.instance_id;
        if matches {
            Ok(instance)
        } else {
            Err("it names another app, node, workload, process or binary".to_owned())
        }
    }

    fn validate_at(
        &self,
        token: &str,
        audience: &str,
        now: OffsetDateTime,
    ) -> Result<daas_identity::ValidatedJwtSvid, ValidateError> {
        let mut set = daas_identity::JwtBundleSet::new();
        match &self.read().jwt_bundle {
            Some(bundle) => set.insert(bundle.clone()),
            None => return Err(ValidateError::Unavailable),
        };
        daas_identity::validate_jwt_svid(token, audience, &set, now)
            .map_err(|e| ValidateError::Invalid(e.to_string()))
    }

    /// Forget SVIDs past their expiry (they are never served either way; forgetting them
    /// erases their keys and wakes open streams so they fail closed).
    fn drop_expired(&self, now: OffsetDateTime) -> bool {
        let mut state = self.write();
        let mut changed = false;
        for cached in &mut state.entries {
            if cached.svid.as_ref().is_some_and(|s| now >= s.expires_at) {
                cached.svid = None;
                changed = true;
            }
        }
        changed
    }

    /// Bring the PEM directory in line with the cache when it is marked dirty (a failed write
    /// stays dirty and is retried at the next wake-up).
    fn write_pem_output(&self) {
        let Some(output) = &self.pem_output else {
            return;
        };
        let now = OffsetDateTime::now_utc();
        let mut state = self.write();
        if !state.pem_dirty {
            return;
        }
        let result = {
            let svid = state
                .entries
                .iter()
                .filter(|c| c.entry.spiffe_id == output.spiffe_id())
                .find_map(|c| c.svid.as_ref().filter(|s| now < s.expires_at))
                .map(|s| crate::pem_dir::PemIdentity {
                    chain: &s.chain,
                    key_pkcs8: &s.key_pkcs8,
                    bundle: &state.bundle,
                });
            output.write(svid)
        };
        match result {
            Ok(()) => state.pem_dirty = false,
            Err(e) => tracing::error!(error = %e, "cannot write the PEM directory"),
        }
    }

    /// What `workload` is entitled to at `now` (see [`IdentitySource::x509_svids`]).
    fn svids_at(
        &self,
        workload: &WorkloadFacts,
        now: OffsetDateTime,
    ) -> Result<Vec<X509SvidWithKey>, SourceError> {
        let selectors = workload.selectors();
        let state = self.read();
        if !state.synced {
            return Err(SourceError::Unavailable(
                "registration entries not read from the server yet".to_owned(),
            ));
        }
        let matching: Vec<&CachedEntry> = state
            .entries
            .iter()
            .filter(|c| c.selectors.iter().all(|s| selectors.contains(s)))
            .collect();
        if matching.is_empty() {
            return Ok(Vec::new());
        }
        let valid: Vec<X509SvidWithKey> = matching
            .iter()
            .filter_map(|c| {
                c.svid
                    .as_ref()
                    .filter(|s| now < s.expires_at)
                    .map(|s| to_api(&c.entry, s, &state.bundle))
            })
            .collect();
        if valid.is_empty() {
            return Err(SourceError::Unavailable(format!(
                "{} matching entries, none with a valid SVID (server unreachable?)",
                matching.len()
            )));
        }
        Ok(valid)
    }

    /// Coalesce denials per (reason, selectors) and send one report per distinct denial per
    /// flush, with its count: a local process calling in a loop costs the server a bounded
    /// number of audit records, not one per call.
    async fn report_denials(self: Arc<Self>, mut rx: mpsc::Receiver<Denial>) {
        let mut pending: HashMap<Denial, u64> = HashMap::new();
        let mut flush = tokio::time::interval(DENIAL_FLUSH);
        loop {
            tokio::select! {
                denial = rx.recv() => {
                    let Some(denial) = denial else { return };
                    if pending.len() < DENIAL_QUEUE || pending.contains_key(&denial) {
                        *pending.entry(denial).or_insert(0) += 1;
                    }
                }
                _ = flush.tick() => {
                    let batch: Vec<(Denial, u64)> = pending.drain().collect();
                    if batch.len() > DENIAL_REPORTS_PER_FLUSH {
                        tracing::warn!(
                            distinct = batch.len(),
                            "too many distinct denials; reporting the first {DENIAL_REPORTS_PER_FLUSH}"
                        );
                    }
                    let client = self.client();
                    for (denial, count) in batch.into_iter().take(DENIAL_REPORTS_PER_FLUSH) {
                        let reason = if count > 1 {
                            format!("{} ({count} times)", denial.reason)
                        } else {
                            denial.reason.clone()
                        };
                        if let Err(e) = client.report_denial(&reason, &denial.selectors).await {
                            tracing::warn!(error = %e, "cannot report a denied workload");
                        }
                    }
                }
            }
        }
    }
}

type JwtCache = HashMap<(String, Vec<String>), CachedJwt>;

/// Cache a JWT-SVID, bounded per SPIFFE ID (a workload choosing audiences freely must not push
/// out everyone else's tokens) and overall; expired tokens go first, then the soonest to expire.
fn insert_jwt(
    cache: &mut JwtCache,
    key: (String, Vec<String>),
    jwt: CachedJwt,
    now: OffsetDateTime,
) {
    cache.retain(|_, c| now < c.expires_at);
    let evict = |cache: &mut JwtCache, only: Option<&str>| {
        let victim = cache
            .iter()
            .filter(|((id, _), _)| only.is_none_or(|o| o == id))
            .min_by_key(|(_, c)| c.expires_at)
            .map(|(k, _)| k.clone());
        if let Some(victim) = victim {
            cache.remove(&victim);
        }
    };
    if !cache.contains_key(&key) {
        let same_id = cache.keys().filter(|(id, _)| *id == key.0).count();
        if same_id >= MAX_CACHED_JWTS_PER_ID {
            evict(cache, Some(&key.0));
        }
        if cache.len() >= MAX_CACHED_JWTS {
            evict(cache, None);
        }
    }
    cache.insert(key, jwt);
}

fn to_api(
    entry: &NodeEntry,
    svid: &CachedSvid,
    bundle: &[CertificateDer<'static>],
) -> X509SvidWithKey {
    X509SvidWithKey {
        spiffe_id: entry.spiffe_id.clone(),
        chain: svid.chain.iter().map(|c| c.to_vec()).collect(),
        private_key_pkcs8: svid.key_pkcs8.clone(),
        bundle: bundle.iter().flat_map(|c| c.iter().copied()).collect(),
        hint: String::new(),
    }
}

impl IdentitySource for Agent {
    fn x509_svids(&self, workload: &WorkloadFacts) -> Result<Vec<X509SvidWithKey>, SourceError> {
        self.svids_at(workload, OffsetDateTime::now_utc())
    }

    fn x509_bundles(&self) -> Result<HashMap<String, Vec<u8>>, SourceError> {
        let state = self.read();
        Ok(HashMap::from([(
            self.trust_domain_id.clone(),
            state
                .bundle
                .iter()
                .flat_map(|c| c.iter().copied())
                .collect(),
        )]))
    }

    fn updates(&self) -> watch::Receiver<u64> {
        self.updates.subscribe()
    }

    fn jwt_svids<'a>(
        &'a self,
        workload: &'a WorkloadFacts,
        audience: &'a [String],
        spiffe_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<JwtSvid>, SourceError>> {
        Box::pin(self.jwt_svids_at(workload, audience, spiffe_id))
    }

    fn jwt_bundles(&self) -> Result<HashMap<String, Vec<u8>>, SourceError> {
        let state = self.read();
        let bundle = state.jwt_bundle.as_ref().ok_or_else(|| {
            SourceError::Unavailable("the JWT bundle was not read from the server yet".into())
        })?;
        Ok(HashMap::from([(
            self.trust_domain_id.clone(),
            bundle.to_jwks_json().into_bytes(),
        )]))
    }

    fn validate_jwt_svid(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<daas_identity::ValidatedJwtSvid, ValidateError> {
        self.validate_at(token, audience, OffsetDateTime::now_utc())
    }

    fn instance_documents<'a>(
        &'a self,
        workload: &'a WorkloadFacts,
    ) -> BoxFuture<'a, Result<Vec<InstanceDocument>, SourceError>> {
        Box::pin(self.instance_documents_at(workload))
    }

    fn report_denied(&self, workload: Option<&WorkloadFacts>, reason: &str) {
        let selectors = workload
            .map(|w| w.selectors().iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        tracing::debug!(reason, "workload denied");
        if self
            .denials
            .try_send(Denial {
                reason: reason.to_owned(),
                selectors,
            })
            .is_err()
        {
            tracing::warn!("denial reports are backing up; dropping one");
        }
    }
}

/// The data directory path of the node identity file (for operators and tests).
pub fn node_identity_path(data_dir: &Path) -> PathBuf {
    crate::node_store::identity_path(data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
    }

    fn test_agent(dir: &Path) -> Agent {
        let ca = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ca_pem = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&ca)
            .unwrap()
            .pem();
        let config = AgentConfig {
            server_addr: "127.0.0.1:1".to_owned(),
            server_ca_pem: ca_pem.into_bytes(),
            data_dir: dir.to_path_buf(),
            sync_interval: Duration::from_secs(5),
        };
        let client = ServerClient::anonymous(&config.server_addr, &config.server_ca_pem).unwrap();
        let (denials, rx) = mpsc::channel(DENIAL_QUEUE);
        Agent {
            store: NodeStore::open(dir).unwrap(),
            trust_domain_id: "spiffe://example.org".to_owned(),
            state: RwLock::new(State {
                node: NodeIdentity {
                    spiffe_id: "spiffe://example.org/daas/node/n1".parse().unwrap(),
                    chain: Vec::new(),
                    key_pkcs8: Zeroizing::new(Vec::new()),
                    bundle: Vec::new(),
                    expires_at: t(3600),
                },
                node_issued_at: t(0),
                client,
                bundle: vec![CertificateDer::from(vec![0x30, 0x00])],
                entries: Vec::new(),
                synced: false,
                failures: 0,
                pem_dirty: false,
                jwt_bundle: None,
                jwt_cache: HashMap::new(),
                generation: 0,
                document_bundle: None,
                instance_cache: HashMap::new(),
                instance_refusals: HashMap::new(),
            }),
            config,
            updates: watch::channel(0).0,
            denials,
            denials_rx: std::sync::Mutex::new(Some(rx)),
            pem_output: None,
        }
    }

    fn facts(digest: u8, uid: u32) -> WorkloadFacts {
        WorkloadFacts {
            pid: 1,
            uid,
            gid: 0,
            binary_sha256: [digest; 32],
            binary_path: PathBuf::from("/usr/bin/app"),
            cgroup: None,
            started_at_ms: Some(1_800_000_000_000),
        }
    }

    fn entry(id: &str, spiffe_id: &str, digest: u8, uid: u32) -> NodeEntry {
        NodeEntry {
            id: id.to_owned(),
            spiffe_id: spiffe_id.to_owned(),
            selectors: vec![
                format!("unix:sha256:{}", hex_digest(digest)),
                format!("unix:uid:{uid}"),
            ],
            app: None,
        }
    }

    fn hex_digest(byte: u8) -> String {
        format!("{byte:02x}").repeat(32)
    }

    fn svid(issued: i64, expires: i64) -> CachedSvid {
        CachedSvid {
            chain: vec![CertificateDer::from(vec![0x30, 0x01, issued as u8])],
            key_pkcs8: Zeroizing::new(vec![1, 2, 3]),
            issued_at: t(issued),
            expires_at: t(expires),
        }
    }

    fn give_svid(agent: &Agent, entry_id: &str, svid: CachedSvid) {
        let mut state = agent.write();
        let cached = state
            .entries
            .iter_mut()
            .find(|c| c.entry.id == entry_id)
            .unwrap();
        cached.svid = Some(svid);
    }

    #[test]
    fn only_matching_entries_with_unexpired_svids_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(&dir.path().join("data"));
        // Before the first successful read of the entries nothing is known: retry, not refuse.
        assert!(matches!(
            agent.svids_at(&facts(9, 1000), t(10)),
            Err(SourceError::Unavailable(_))
        ));
        assert!(agent.apply_entries(vec![
            entry("e1", "spiffe://example.org/web", 7, 1000),
            entry("e2", "spiffe://example.org/db", 8, 1000),
        ]));
        // No entry matches: empty (the Workload API turns that into PermissionDenied).
        assert!(agent.svids_at(&facts(9, 1000), t(10)).unwrap().is_empty());
        assert!(agent.svids_at(&facts(7, 0), t(10)).unwrap().is_empty());
        // An entry matches but its SVID has not arrived: fail closed, retryable.
        assert!(matches!(
            agent.svids_at(&facts(7, 1000), t(10)),
            Err(SourceError::Unavailable(_))
        ));
        give_svid(&agent, "e1", svid(0, 60));
        let served = agent.svids_at(&facts(7, 1000), t(59)).unwrap();
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].spiffe_id, "spiffe://example.org/web");
        assert_eq!(served[0].bundle, vec![0x30, 0x00]);
        // At and after expiry the SVID is never served, even before the sync loop drops it.
        assert!(matches!(
            agent.svids_at(&facts(7, 1000), t(60)),
            Err(SourceError::Unavailable(_))
        ));
        // The other workload is unaffected by e1's SVID.
        assert!(matches!(
            agent.svids_at(&facts(8, 1000), t(10)),
            Err(SourceError::Unavailable(_))
        ));
    }

    #[test]
    fn unchanged_entries_keep_their_svids_and_changed_ones_lose_them() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(&dir.path().join("data"));
        let e1 = entry("e1", "spiffe://example.org/web", 7, 1000);
        let e2 = entry("e2", "spiffe://example.org/db", 8, 1000);
        agent.apply_entries(vec![e1.clone(), e2.clone()]);
        give_svid(&agent, "e1", svid(0, 60));
        give_svid(&agent, "e2", svid(0, 60));
        // Same list again: nothing changes.
        assert!(!agent.apply_entries(vec![e2.clone(), e1.clone()]));
        assert_eq!(agent.svids_at(&facts(7, 1000), t(1)).unwrap().len(), 1);
        // e2's selectors change (same entry id): its old SVID must not be served for the new
        // selectors, nor for the old ones.
        let e2_changed = entry("e2", "spiffe://example.org/db", 9, 1000);
        assert!(agent.apply_entries(vec![e1.clone(), e2_changed]));
        assert!(agent.svids_at(&facts(8, 1000), t(1)).unwrap().is_empty());
        assert!(matches!(
            agent.svids_at(&facts(9, 1000), t(1)),
            Err(SourceError::Unavailable(_))
        ));
        // e1 deleted on the server: gone from the sensor too.
        assert!(agent.apply_entries(Vec::new()));
        assert!(agent.svids_at(&facts(7, 1000), t(1)).unwrap().is_empty());
    }

    #[test]
    fn entries_with_unknown_selectors_are_ignored_not_matched_loosely() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(&dir.path().join("data"));
        let mut odd = entry("e1", "spiffe://example.org/web", 7, 1000);
        odd.selectors.push("k8s:ns:default".to_owned());
        agent.apply_entries(vec![odd]);
        assert!(agent.read().entries.is_empty());
        assert!(agent.svids_at(&facts(7, 1000), t(1)).unwrap().is_empty());
    }

    #[test]
    fn entries_outside_the_trust_domain_or_for_nodes_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(&dir.path().join("data"));
        agent.apply_entries(vec![
            entry("e1", "spiffe://other.org/web", 7, 1000),
            entry("e2", "spiffe://example.org/daas/node/n2", 7, 1000),
        ]);
        assert!(agent.read().entries.is_empty());
    }

    #[test]
    fn an_entry_changed_into_one_the_sensor_cannot_serve_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(&dir.path().join("data"));
        agent.apply_entries(vec![entry("e1", "spiffe://example.org/web", 7, 1000)]);
        give_svid(&agent, "e1", svid(0, 60));
        let mut odd = entry("e1", "spiffe://example.org/web", 7, 1000);
        odd.selectors.push("k8s:ns:default".to_owned());
        // The old version and its SVID are gone, and that is reported as a change (so open
        // streams and the PEM directory follow).
        assert!(agent.apply_entries(vec![odd]));
        assert!(agent.svids_at(&facts(7, 1000), t(1)).unwrap().is_empty());
    }

    #[test]
    fn a_refused_node_is_evicted_and_forgets_everything() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(&dir.path().join("data"));
        agent.apply_entries(vec![entry("e1", "spiffe://example.org/web", 7, 1000)]);
        give_svid(&agent, "e1", svid(0, 60));
        let mut updates = agent.updates();
        updates.mark_unchanged();
        // Unreachable or refused for another reason: retry later.
        assert!(matches!(
            agent.failed(&ServerError::Unreachable("down".into()), "x"),
            Ok(false)
        ));
        let forbidden = ServerError::Refused {
            status: 403,
            code: "forbidden".into(),
            message: "no".into(),
        };
        assert!(matches!(agent.failed(&forbidden, "x"), Ok(false)));
        // 401: the server no longer knows this node.
        let refused = ServerError::Refused {
            status: 401,
            code: "unauthenticated".into(),
            message: "no".into(),
        };
        assert!(matches!(
            agent.failed(&refused, "x"),
            Err(Fatal::Evicted(_))
        ));
        agent.forget_everything();
        assert!(agent.read().entries.is_empty());
        assert!(updates.has_changed().unwrap(), "open streams are woken");
    }

    #[test]
    fn the_jwt_cache_is_bounded_per_id_and_overall() {
        let jwt = |expires: i64| CachedJwt {
            token: Zeroizing::new(format!("t{expires}")),
            refresh_after: t(expires / 2),
            expires_at: t(expires),
        };
        let key = |id: &str, aud: usize| (id.to_owned(), vec![format!("aud-{aud}")]);
        let mut cache = JwtCache::new();
        // One workload asking for ever new audiences only churns its own tokens.
        insert_jwt(&mut cache, key("victim", 0), jwt(300), t(0));
        for aud in 0..100 {
            insert_jwt(&mut cache, key("greedy", aud), jwt(100 + aud as i64), t(0));
        }
        assert!(cache.contains_key(&key("victim", 0)));
        let greedy = cache.keys().filter(|(id, _)| id == "greedy").count();
        assert_eq!(greedy, MAX_CACHED_JWTS_PER_ID);
        // The newest survive (the soonest to expire were evicted).
        assert!(cache.contains_key(&key("greedy", 99)));
        assert!(!cache.contains_key(&key("greedy", 0)));
        // Overall bound across many IDs.
        for n in 0..(MAX_CACHED_JWTS * 2) {
            insert_jwt(&mut cache, key(&format!("id{n}"), 0), jwt(200), t(0));
        }
        assert_eq!(cache.len(), MAX_CACHED_JWTS);
        // Expired tokens are dropped on the next insert.
        insert_jwt(&mut cache, key("late", 0), jwt(1000), t(250));
        assert!(cache.values().all(|c| c.expires_at > t(250)));
    }

    fn app_entry(id: &str, spiffe_id: &str, app: Option<&str>, uid: u32) -> NodeEntry {
        NodeEntry {
            app: app.map(str::to_owned),
            ..entry(id, spiffe_id, 7, uid)
        }
    }

    /// Put a document for `(workload ID, app)` and the process of `facts(7, _)` in the cache.
    fn cache_instance(agent: &Agent, workload_id: &str, app: &str) {
        let now = OffsetDateTime::now_utc();
        let f = facts(7, 0);
        let key: InstanceKey = (
            workload_id.to_owned(),
            app.to_owned(),
            f.pid,
            f.started_at_ms.unwrap(),
            format!("sha256:{}", f.binary_sha256_hex()),
        );
        let document = InstanceDocument {
            workload_id: workload_id.to_owned(),
            spiffe_id: format!("spiffe://example.org/app/{app}/instance/x"),
            instance_id: "x".to_owned(),
            document: format!("doc-of-{app}"),
            app_document: format!("app-doc-of-{app}"),
            expires_at_ms: (now + Duration::from_secs(3600)).unix_timestamp() * 1000,
        };
        agent.write().instance_cache.insert(
            key,
            CachedInstance {
                document,
                refresh_after: now + Duration::from_secs(1800),
                expires_at: now + Duration::from_secs(3600),
            },
        );
    }

    #[tokio::test]
    async fn an_instance_document_cached_for_one_app_is_not_served_for_another() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(&dir.path().join("data"));
        // One workload ID, two entries naming different apps, told apart by uid.
        agent.apply_entries(vec![
            app_entry("e1", "spiffe://example.org/web", Some("web"), 1000),
            app_entry("e2", "spiffe://example.org/web", Some("api"), 2000),
        ]);
        cache_instance(&agent, "spiffe://example.org/web", "web");
        let served = agent.instance_documents_at(&facts(7, 1000)).await.unwrap();
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].document, "doc-of-web");
        // The same process run after setuid(2000) matches only the entry naming `api`: the
        // `web` document is not its answer (the server, unreachable here, would be asked).
        assert!(matches!(
            agent.instance_documents_at(&facts(7, 2000)).await,
            Err(SourceError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn an_entry_without_an_app_does_not_hide_one_that_names_an_app() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(&dir.path().join("data"));
        // Same workload ID; the entry without an app sorts first.
        agent.apply_entries(vec![
            app_entry("a-plain", "spiffe://example.org/web", None, 1000),
            app_entry("b-app", "spiffe://example.org/web", Some("web"), 1000),
        ]);
        cache_instance(&agent, "spiffe://example.org/web", "web");
        let served = agent.instance_documents_at(&facts(7, 1000)).await.unwrap();
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].document, "doc-of-web");
    }

    #[tokio::test]
    async fn a_refused_instance_document_is_not_asked_for_again_by_any_run_for_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(&dir.path().join("data"));
        let web = app_entry("e1", "spiffe://example.org/web", Some("web"), 1000);
        agent.apply_entries(vec![web.clone()]);
        let run = |pid: u32| WorkloadFacts {
            pid,
            ..facts(7, 1000)
        };
        let key_of = |f: &WorkloadFacts| -> InstanceKey {
            (
                web.spiffe_id.clone(),
                "web".to_owned(),
                f.pid,
                f.started_at_ms.unwrap(),
                format!("sha256:{}", f.binary_sha256_hex()),
            )
        };
        let now = OffsetDateTime::now_utc();
        let generation = agent.read().generation;
        agent.note_instance_refusal(&key_of(&run(1)), now, generation);
        // Another process run of the same binary and entry: not sent to the server.
        let Err(SourceError::Unavailable(why)) = agent.instance_documents_at(&run(2)).await else {
            panic!("served");
        };
        assert!(why.contains("not asking again"), "{why}");
        // Another binary is asked for (the server, unreachable here, fails differently).
        let other = WorkloadFacts {
            binary_sha256: [8; 32],
            ..run(1)
        };
        let mut other_entry = app_entry("e2", "spiffe://example.org/web", Some("web"), 1000);
        other_entry.selectors[0] = format!("unix:sha256:{}", hex_digest(8));
        agent.apply_entries(vec![web.clone(), other_entry]);
        // (Entries changed: refusals were forgotten; refuse run 1 again under the new ones.)
        let generation = agent.read().generation;
        agent.note_instance_refusal(&key_of(&run(1)), now, generation);
        let Err(SourceError::Unavailable(why)) = agent.instance_documents_at(&other).await else {
            panic!("served");
        };
        assert!(!why.contains("not asking again"), "{why}");
        // A refusal noted across an entries change is dropped; refusals end; they are bounded.
        let mut stale = key_of(&run(1));
        stale.0 = "spiffe://example.org/stale".to_owned();
        agent.note_instance_refusal(&stale, now, generation.wrapping_sub(1));
        assert_eq!(agent.read().instance_refusals.len(), 1);
        agent.apply_entries(vec![web.clone()]);
        assert!(agent.read().instance_refusals.is_empty());
        let generation = agent.read().generation;
        agent.note_instance_refusal(&key_of(&run(1)), now - INSTANCE_REFUSAL_BACKOFF, generation);
        let Err(SourceError::Unavailable(why)) = agent.instance_documents_at(&run(3)).await else {
            panic!("served");
        };
        assert!(!why.contains("not asking again"), "{why}");
        for n in 0..(MAX_CACHED_INSTANCES * 2) {
            let mut key = key_of(&run(1));
            key.0 = format!("spiffe://example.org/w{n}");
            agent.note_instance_refusal(&key, now, generation);
        }
        assert_eq!(agent.read().instance_refusals.len(), MAX_CACHED_INSTANCES);
    }

    #[test]
    fn expired_svids_are_dropped_and_rotation_is_due_at_half_life() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(&dir.path().join("data"));
        agent.apply_entries(vec![entry("e1", "spiffe://example.org/web", 7, 1000)]);
        give_svid(&agent, "e1", svid(0, 60));
        assert_eq!(rotate_after(t(0), t(60)), t(30));
        // The loop wakes at the sync interval (5 s) or the rotation, whichever is first: at
        // 0 s the interval, at 28 s the rotation 2 s away.
        assert_eq!(agent.next_wake(t(0)), Duration::from_secs(5));
        assert_eq!(agent.next_wake(t(28)), Duration::from_secs(2));
        // Deadlines already past (a rotation that failed) do not make the loop spin: the
        // interval applies, or the back-off after failures (1 s, 2 s, 4 s, ... ≤ interval).
        assert_eq!(agent.next_wake(t(100)), Duration::from_secs(5));
        agent.write().failures = 1;
        assert_eq!(agent.next_wake(t(100)), Duration::from_secs(1));
        agent.write().failures = 3;
        assert_eq!(agent.next_wake(t(100)), Duration::from_secs(4));
        agent.write().failures = 30;
        assert_eq!(agent.next_wake(t(100)), Duration::from_secs(5));
        agent.write().failures = 0;
        assert!(!agent.drop_expired(t(59)));
        assert!(agent.drop_expired(t(60)));
        assert!(agent.read().entries[0].svid.is_none());
    }

    #[test]
    fn denials_are_queued_with_selectors_and_never_block() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(&dir.path().join("data"));
        let mut rx = agent.denials_rx.lock().unwrap().take().unwrap();
        agent.report_denied(Some(&facts(7, 1000)), "no registration entry matches");
        agent.report_denied(None, "caller without kernel credentials");
        let first = rx.try_recv().unwrap();
        assert_eq!(first.reason, "no registration entry matches");
        assert!(
            first
                .selectors
                .contains(&format!("unix:sha256:{}", hex_digest(7)))
        );
        assert!(
            first
                .selectors
                .contains(&"unix:path:/usr/bin/app".to_owned())
        );
        assert!(rx.try_recv().unwrap().selectors.is_empty());
        // A flood beyond the queue is dropped, not buffered without bound, and never blocks.
        for _ in 0..(DENIAL_QUEUE * 4) {
            agent.report_denied(None, "flood");
        }
        let mut queued = 0;
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, DENIAL_QUEUE);
    }
}
