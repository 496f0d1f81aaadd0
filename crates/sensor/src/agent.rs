//! The node agent: joins the trust domain, keeps its node SVID renewed, mirrors this node's
//! registration entries, pre-fetches an X.509-SVID per entry (key generated here, never sent),
//! rotates each at half-life, and answers the Workload API from that cache.
//!
//! Failure behaviour (docs/identity.md):
//! - server unreachable: the cache keeps serving SVIDs until each expires; an expired SVID is
//!   never served — a workload whose entries have no valid SVID gets `Unavailable` (fail
//!   closed), and open streams receive that error and end;
//! - sensor restart: the node identity is reloaded from the data directory (the only thing
//!   written there); workload keys live in memory only, so workloads re-fetch new SVIDs.
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
use crate::workload_api::{IdentitySource, SourceError, X509SvidWithKey};

/// Denial reports waiting to be sent; beyond this they are dropped (and counted in the log)
/// rather than letting a misbehaving local process grow the sensor's memory.
const DENIAL_QUEUE: usize = 64;
/// Renew the node SVID and rotate workload SVIDs once this fraction of their life is gone.
const ROTATE_AT_FRACTION: f64 = 0.5;

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

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] NodeStoreError),
    #[error("joining the trust domain failed: {0}")]
    Join(#[source] ServerError),
    #[error(
        "no usable node identity in {dir} and no join token: create one with `daas node token create` and pass --join-token"
    )]
    NeedJoinToken { dir: String },
    #[error("the server returned an invalid node SVID: {0}")]
    InvalidNodeSvid(String),
    #[error("{0}")]
    Config(#[source] ServerError),
    #[error("cannot generate a key: {0}")]
    Key(String),
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
    /// Whether the last call to the server failed (to log transitions, not every retry).
    server_down: bool,
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

#[derive(Debug)]
struct Denial {
    reason: String,
    selectors: Vec<String>,
}

/// A fresh P-256 key and a CSR for it (the CA ignores the CSR's names; it signs the SPIFFE ID
/// the server decides).
pub fn key_and_csr() -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), String> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|params| params.serialize_request(&key))
        .map_err(|e| e.to_string())?;
    Ok((Zeroizing::new(key.serialize_der()), csr.der().to_vec()))
}

fn rotate_after(issued_at: OffsetDateTime, expires_at: OffsetDateTime) -> OffsetDateTime {
    issued_at + (expires_at - issued_at) * ROTATE_AT_FRACTION
}

fn ms_to_time(ms: i64) -> Result<OffsetDateTime, String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| format!("expiry {ms} is out of range"))
}

/// The node's identity as the server issued it, checked: the chain verifies against the bundle
/// that came with it and names a node of that trust domain.
fn node_identity_from(
    issued: IssuedSvid,
    key_pkcs8: Zeroizing<Vec<u8>>,
    now: OffsetDateTime,
) -> Result<NodeIdentity, AgentError> {
    let proven = daas_identity::verify_x509_svid(&issued.chain, &issued.bundle, now)
        .map_err(|e| AgentError::InvalidNodeSvid(e.to_string()))?;
    if proven.to_string() != issued.spiffe_id || !daas_identity::entry::is_node_id(&proven) {
        return Err(AgentError::InvalidNodeSvid(format!(
            "it names {proven}, not a node ID"
        )));
    }
    let expires_at = ms_to_time(issued.expires_at_ms).map_err(AgentError::InvalidNodeSvid)?;
    Ok(NodeIdentity {
        spiffe_id: proven,
        chain: issued.chain,
        key_pkcs8,
        bundle: issued.bundle,
        expires_at,
    })
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
                let (key, csr) = key_and_csr().map_err(AgentError::Key)?;
                let issued = anonymous
                    .attest(token, &csr)
                    .await
                    .map_err(AgentError::Join)?;
                let node = node_identity_from(issued, key, now)?;
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
                server_down: false,
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

    /// Keep the cache current until `shutdown` resolves: sync now, then at every interval or
    /// when the next rotation or expiry is due, whichever comes first.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let reporter = self
            .denials_rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .map(|rx| tokio::spawn(Arc::clone(&self).report_denials(rx)));
        tokio::pin!(shutdown);
        loop {
            self.sync_once().await;
            let wait = self.next_wake(OffsetDateTime::now_utc());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => break,
            }
        }
        if let Some(reporter) = reporter {
            reporter.abort();
        }
    }

    /// Time until the next thing to do (bounded by the sync interval, at least 100 ms so a
    /// clock jump cannot make the loop spin).
    fn next_wake(&self, now: OffsetDateTime) -> Duration {
        let state = self.read();
        let mut next = now + self.config.sync_interval;
        let node_rotate = rotate_after(state.node_issued_at, state.node.expires_at);
        next = next.min(node_rotate);
        for cached in &state.entries {
            if let Some(svid) = &cached.svid {
                next = next.min(svid.rotate_after()).min(svid.expires_at);
            }
        }
        let wait = (next - now).max(time::Duration::milliseconds(100));
        Duration::try_from(wait).unwrap_or(self.config.sync_interval)
    }

    /// One round: renew the node SVID if due, refresh entries, fetch missing or half-expired
    /// workload SVIDs, drop expired ones. Failures are logged; the cache keeps what it has.
    pub async fn sync_once(&self) {
        let now = OffsetDateTime::now_utc();
        let mut changed = false;
        match self.renew_node_if_due(now).await {
            Ok(renewed) => changed |= renewed,
            Err(e) => self.server_failed(&e, "renewing the node SVID"),
        }
        match self.client().entries().await {
            Ok(entries) => {
                self.server_ok();
                changed |= self.apply_entries(entries);
                changed |= self.fetch_due_svids(now).await;
            }
            Err(e) => self.server_failed(&e, "reading registration entries"),
        }
        changed |= self.drop_expired(OffsetDateTime::now_utc());
        if changed {
            self.notify();
            self.write_pem_output();
        }
    }

    fn server_ok(&self) {
        let mut state = self.write();
        if state.server_down {
            tracing::info!("the server is reachable again");
            state.server_down = false;
        }
    }

    fn server_failed(&self, e: &ServerError, doing: &str) {
        let mut state = self.write();
        if matches!(e, ServerError::Unreachable(_)) {
            if !state.server_down {
                tracing::warn!(error = %e, "{doing}: serving cached SVIDs until they expire");
            }
            state.server_down = true;
        } else {
            tracing::warn!(error = %e, "{doing} failed");
        }
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
        let (key, csr) = key_and_csr().map_err(|e| ServerError::Config(e.to_string()))?;
        let issued = client.renew(&csr).await?;
        let node = node_identity_from(issued, key, now)
            .map_err(|e| ServerError::Malformed(e.to_string()))?;
        {
            let state = self.read();
            if node.spiffe_id != state.node.spiffe_id {
                return Err(ServerError::Malformed(format!(
                    "renewal named {} instead of {}",
                    node.spiffe_id, state.node.spiffe_id
                )));
            }
        }
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

    /// Replace the entry list, keeping the SVIDs of entries that did not change.
    fn apply_entries(&self, entries: Vec<NodeEntry>) -> bool {
        let mut state = self.write();
        let mut old: HashMap<String, CachedEntry> = state
            .entries
            .drain(..)
            .map(|c| (c.entry.id.clone(), c))
            .collect();
        let mut changed = false;
        let mut fresh = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Some(previous) = old.remove(&entry.id)
                && previous.entry == entry
            {
                fresh.push(previous);
                continue;
            }
            let selectors: Result<Vec<Selector>, _> =
                entry.selectors.iter().map(|s| s.parse()).collect();
            let Ok(selectors) = selectors else {
                tracing::warn!(entry = %entry.id, "ignoring an entry with an unknown selector");
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
        state.entries = fresh;
        changed
    }

    /// Fetch an SVID for every entry that has none or is past half-life.
    async fn fetch_due_svids(&self, now: OffsetDateTime) -> bool {
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
        for entry in due {
            let fetched = self.fetch_svid(&client, &entry, now).await;
            match fetched {
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
                Err(e) => self.server_failed(&e, "fetching a workload SVID"),
            }
        }
        changed
    }

    async fn fetch_svid(
        &self,
        client: &ServerClient,
        entry: &NodeEntry,
        now: OffsetDateTime,
    ) -> Result<(CachedSvid, Vec<CertificateDer<'static>>), ServerError> {
        let (key, csr) = key_and_csr().map_err(ServerError::Config)?;
        // The entry's own selectors: the server grants the ID only if this node is a parent of
        // an entry they match; the workload's actual selectors are matched here, per call.
        let issued = client
            .workload_svid(&entry.spiffe_id, &entry.selectors, &csr)
            .await?;
        let proven = daas_identity::verify_x509_svid(&issued.chain, &issued.bundle, now)
            .map_err(|e| ServerError::Malformed(format!("workload SVID: {e}")))?;
        if proven.to_string() != entry.spiffe_id {
            return Err(ServerError::Malformed(format!(
                "asked for {} and got {proven}",
                entry.spiffe_id
            )));
        }
        let expires_at = ms_to_time(issued.expires_at_ms).map_err(ServerError::Malformed)?;
        Ok((
            CachedSvid {
                chain: issued.chain,
                key_pkcs8: key,
                issued_at: now,
                expires_at,
            },
            issued.bundle,
        ))
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

    fn write_pem_output(&self) {
        let Some(output) = &self.pem_output else {
            return;
        };
        let now = OffsetDateTime::now_utc();
        let state = self.read();
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
        if let Err(e) = output.write(svid) {
            tracing::error!(error = %e, "cannot write the PEM directory");
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

    async fn report_denials(self: Arc<Self>, mut rx: mpsc::Receiver<Denial>) {
        while let Some(denial) = rx.recv().await {
            let client = self.client();
            if let Err(e) = client
                .report_denial(&denial.reason, &denial.selectors)
                .await
            {
                tracing::warn!(error = %e, reason = %denial.reason, "cannot report a denied workload");
            }
        }
    }
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

    fn report_denied(&self, workload: Option<&WorkloadFacts>, reason: &str) {
        let selectors = workload
            .map(|w| w.selectors().iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        tracing::info!(reason, "workload denied");
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
                server_down: false,
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
        // Past the expiry the wake-up is bounded below, never zero or negative.
        assert_eq!(agent.next_wake(t(100)), Duration::from_millis(100));
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
