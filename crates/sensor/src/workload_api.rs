//! The SPIFFE Workload API (the public `workload.proto`) over a Unix socket.
//!
//! Every call is checked, in this order:
//! 1. the `workload.spiffe.io: true` metadata header (the spec's guard against a browser or
//!    proxy being tricked into calling the socket) — `InvalidArgument` without it;
//! 2. the caller's kernel credentials from the socket (`SO_PEERCRED`) — a caller without them
//!    gets `PermissionDenied`;
//! 3. attestation of the calling process ([`daas_identity::attest`]) — the digest of the binary
//!    it runs, its uid/gid, path and cgroup;
//! 4. the identities the [`IdentitySource`] grants to those facts. No identity →
//!    `PermissionDenied`, and the denial is reported to the source (which audits it on the
//!    server).
//!
//! The daas `InstanceIdentity` service (`proto/daas_sensor.proto`) is served on the same socket
//! under the same checks.
//!
//! X.509 responses stream: the first message answers at once, later ones follow every change
//! the source announces (rotation, new bundle), until the workload hangs up.
use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use daas_identity::attest::{AttestError, Attestor, PeerCredentials, WorkloadFacts};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use crate::daas_pb::instance_identity_server::{InstanceIdentity, InstanceIdentityServer};
use crate::pb::spiffe_workload_api_server::{SpiffeWorkloadApi, SpiffeWorkloadApiServer};
use crate::{daas_pb, pb};

/// The metadata header every Workload API call must carry.
pub const SECURITY_HEADER: &str = "workload.spiffe.io";

/// One X.509-SVID with its private key, as handed to the workload that owns it.
#[derive(Clone)]
pub struct X509SvidWithKey {
    pub spiffe_id: String,
    /// DER certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8 DER private key (generated on this node; it never left it).
    pub private_key_pkcs8: Zeroizing<Vec<u8>>,
    /// The trust domain's bundle: concatenated DER CA certificates.
    pub bundle: Vec<u8>,
    /// Optional operator hint to tell several SVIDs apart.
    pub hint: String,
}

impl std::fmt::Debug for X509SvidWithKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509SvidWithKey")
            .field("spiffe_id", &self.spiffe_id)
            .field("chain_len", &self.chain.len())
            .field("private_key_pkcs8", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Why the source cannot answer right now.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Nothing valid to hand out (server unreachable and the cached SVIDs expired): fail closed.
    #[error("identities are unavailable: {0}")]
    Unavailable(String),
}

/// Where the sensor's identities come from (the server-backed cache, or a test double).
///
/// Lookups are synchronous and in memory: SVIDs are fetched and rotated in the background, so
/// a workload's call never waits for the network.
pub trait IdentitySource: Send + Sync + 'static {
    /// The X.509-SVIDs `workload` is entitled to (empty: none).
    fn x509_svids(&self, workload: &WorkloadFacts) -> Result<Vec<X509SvidWithKey>, SourceError>;
    /// Trust bundles by trust domain ID (`spiffe://td`), concatenated DER CA certificates.
    fn x509_bundles(&self) -> Result<HashMap<String, Vec<u8>>, SourceError>;
    /// Changes whenever SVIDs or bundles change (rotation): open streams send again.
    fn updates(&self) -> watch::Receiver<u64>;
    /// A workload was refused (no matching entry, failed attestation): report it for audit.
    fn report_denied(&self, workload: Option<&WorkloadFacts>, reason: &str);

    /// JWT-SVIDs `workload` is entitled to for `audience` (all of its IDs, or only
    /// `spiffe_id`); empty: none. May go to the server (tokens are audience-specific).
    fn jwt_svids<'a>(
        &'a self,
        workload: &'a WorkloadFacts,
        audience: &'a [String],
        spiffe_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<JwtSvid>, SourceError>> {
        let _ = (workload, audience, spiffe_id);
        Box::pin(async {
            Err(SourceError::Unavailable(
                "this source serves no JWT-SVIDs".into(),
            ))
        })
    }

    /// JWT bundles by trust domain ID (`spiffe://td`): JWK set JSON.
    fn jwt_bundles(&self) -> Result<HashMap<String, Vec<u8>>, SourceError> {
        Err(SourceError::Unavailable(
            "this source serves no JWT bundles".into(),
        ))
    }

    /// The instance identity documents of `workload`: one per entry it matches that names an
    /// app (empty: none). May go to the server (documents name the process run).
    fn instance_documents<'a>(
        &'a self,
        workload: &'a WorkloadFacts,
    ) -> BoxFuture<'a, Result<Vec<InstanceDocument>, SourceError>> {
        let _ = workload;
        Box::pin(async {
            Err(SourceError::Unavailable(
                "this source serves no instance documents".into(),
            ))
        })
    }

    /// Validate a JWT-SVID for `audience` against the JWT bundles this source holds.
    fn validate_jwt_svid(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<daas_identity::ValidatedJwtSvid, ValidateError> {
        let _ = (token, audience);
        Err(ValidateError::Unavailable)
    }
}

/// An instance identity document for the calling process, with the app document it is
/// chained to (both are signed statements the workload may show to others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceDocument {
    /// The entry's SPIFFE ID.
    pub workload_id: String,
    /// `spiffe://<td>/app/<name>/instance/<id>`.
    pub spiffe_id: String,
    pub instance_id: String,
    pub document: String,
    pub app_document: String,
    /// Unix milliseconds.
    pub expires_at_ms: i64,
}

/// A future borrowed from the source.
pub type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// One JWT-SVID for the workload.
#[derive(Clone)]
pub struct JwtSvid {
    pub spiffe_id: String,
    /// The compact JWS: a bearer token.
    pub token: Zeroizing<String>,
}

impl std::fmt::Debug for JwtSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSvid")
            .field("spiffe_id", &self.spiffe_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Why a JWT-SVID did not validate.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The token is not a valid JWT-SVID for the audience (the reason, for the caller).
    #[error("{0}")]
    Invalid(String),
    /// No JWT bundle to validate against yet.
    #[error("no JWT bundle available")]
    Unavailable,
}

/// Concurrent calls (and streams) one connection may have open.
const MAX_STREAMS_PER_CONNECTION: u32 = 16;
/// Attestations running at once (each may hash a binary): more callers wait, briefly.
const MAX_CONCURRENT_ATTESTATIONS: usize = 4;
/// How long a caller waits for an attestation slot before getting `ResourceExhausted`.
const ATTESTATION_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The gRPC service.
#[derive(Debug)]
pub struct WorkloadApi<S> {
    source: Arc<S>,
    attestor: Arc<Attestor>,
    attestations: Arc<tokio::sync::Semaphore>,
}

impl<S> Clone for WorkloadApi<S> {
    fn clone(&self) -> Self {
        Self {
            source: Arc::clone(&self.source),
            attestor: Arc::clone(&self.attestor),
            attestations: Arc::clone(&self.attestations),
        }
    }
}

impl<S: IdentitySource> WorkloadApi<S> {
    pub fn new(source: Arc<S>, attestor: Arc<Attestor>) -> Self {
        Self {
            source,
            attestor,
            attestations: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_ATTESTATIONS)),
        }
    }

    /// The tonic service to mount.
    pub fn into_service(self) -> SpiffeWorkloadApiServer<Self> {
        SpiffeWorkloadApiServer::new(self)
    }

    /// The daas `InstanceIdentity` service, served next to the Workload API.
    pub fn instance_identity_service(&self) -> InstanceIdentityServer<Self> {
        InstanceIdentityServer::new(self.clone())
    }

    /// Steps 1–3 of the module docs; also returns the credentials, to attest again later.
    async fn attest<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(PeerCredentials, WorkloadFacts), Status> {
        let header_ok = request
            .metadata()
            .get(SECURITY_HEADER)
            .is_some_and(|v| v.as_bytes() == b"true");
        if !header_ok {
            return Err(Status::invalid_argument(
                "security header missing from request",
            ));
        }
        let Some(peer) = request
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|info| info.peer_cred)
            .and_then(|cred| {
                let pid = u32::try_from(cred.pid()?).ok()?;
                Some(PeerCredentials {
                    pid,
                    uid: cred.uid(),
                    gid: cred.gid(),
                })
            })
        else {
            self.source
                .report_denied(None, "caller without kernel credentials");
            return Err(denied());
        };
        let facts = self.attest_peer(peer).await?;
        Ok((peer, facts))
    }

    /// Attest the process behind `peer` (again, for stream updates: a process that exec'd
    /// another binary since its call must not keep receiving rotated SVIDs).
    async fn attest_peer(&self, peer: PeerCredentials) -> Result<WorkloadFacts, Status> {
        let Ok(Ok(_slot)) = tokio::time::timeout(
            ATTESTATION_QUEUE_WAIT,
            Arc::clone(&self.attestations).acquire_owned(),
        )
        .await
        else {
            return Err(Status::resource_exhausted("attestation is busy; retry"));
        };
        let attestor = Arc::clone(&self.attestor);
        let attested = tokio::task::spawn_blocking(move || attestor.attest(peer))
            .await
            .map_err(|_| Status::internal("attestation failed"))?;
        attested.map_err(|e| {
            let reason = match &e {
                AttestError::ProcessGone { .. } => "caller exited during attestation",
                AttestError::ProcessChanged { .. } => "caller changed during attestation",
                AttestError::TooLarge { .. } => "caller's binary is too large to attest",
                AttestError::Io { .. } | AttestError::Format { .. } => {
                    tracing::warn!(error = %e, "workload attestation failed");
                    "attestation could not read the caller"
                }
            };
            self.source.report_denied(
                None,
                &format!(
                    "{reason} (pid {}, uid {}, gid {})",
                    peer.pid, peer.uid, peer.gid
                ),
            );
            denied()
        })
    }

    fn x509_response(&self, workload: &WorkloadFacts) -> Result<pb::X509svidResponse, Status> {
        let svids = self.source.x509_svids(workload).map_err(unavailable)?;
        if svids.is_empty() {
            self.source
                .report_denied(Some(workload), "no registration entry matches");
            return Err(denied());
        }
        Ok(pb::X509svidResponse {
            svids: svids
                .into_iter()
                .map(|s| pb::X509svid {
                    spiffe_id: s.spiffe_id,
                    x509_svid: s.chain.concat(),
                    x509_svid_key: s.private_key_pkcs8.to_vec(),
                    bundle: s.bundle,
                    hint: s.hint,
                })
                .collect(),
            crl: Vec::new(),
            federated_bundles: HashMap::new(),
        })
    }
}

fn denied() -> Status {
    // Opaque on purpose: the workload learns nothing about which check failed (the audit
    // log on the server has the reason).
    Status::permission_denied("no identity issued")
}

fn unavailable(e: SourceError) -> Status {
    tracing::warn!(error = %e, "workload api cannot serve identities");
    Status::unavailable("identities are temporarily unavailable")
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

type Next<T> = Pin<Box<dyn std::future::Future<Output = Result<T, Status>> + Send>>;

/// Send `first` now and `make()` after every update, until the receiver hangs up or `make`
/// fails (the failure is sent, then the stream ends).
fn stream_updates<T: Send + 'static>(
    mut updates: watch::Receiver<u64>,
    first: T,
    make: impl Fn() -> Next<T> + Send + 'static,
) -> ResponseStream<T> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        updates.mark_unchanged();
        loop {
            tokio::select! {
                changed = updates.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let next = make().await;
                    let failed = next.is_err();
                    if tx.send(next).await.is_err() || failed {
                        return;
                    }
                }
                () = tx.closed() => return,
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

#[tonic::async_trait]
impl<S: IdentitySource> SpiffeWorkloadApi for WorkloadApi<S> {
    type FetchX509SVIDStream = ResponseStream<pb::X509svidResponse>;
    type FetchX509BundlesStream = ResponseStream<pb::X509BundlesResponse>;
    type FetchJWTBundlesStream = ResponseStream<pb::JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<pb::X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let (peer, workload) = self.attest(&request).await?;
        let first = self.x509_response(&workload)?;
        let this = self.clone();
        let make = move || -> Next<pb::X509svidResponse> {
            let this = this.clone();
            Box::pin(async move {
                let workload = this.attest_peer(peer).await?;
                this.x509_response(&workload)
            })
        };
        Ok(Response::new(stream_updates(
            self.source.updates(),
            first,
            make,
        )))
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<pb::X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        // Bundles are public, but the spec still requires the header; attestation is not needed
        // to read them, yet only attested workloads may use the socket at all.
        self.attest(&request).await?;
        let source = Arc::clone(&self.source);
        let bundles = move || {
            source
                .x509_bundles()
                .map(|bundles| pb::X509BundlesResponse {
                    crl: Vec::new(),
                    bundles,
                })
                .map_err(unavailable)
        };
        let first = bundles()?;
        let make = move || -> Next<pb::X509BundlesResponse> {
            let next = bundles();
            Box::pin(async move { next })
        };
        Ok(Response::new(stream_updates(
            self.source.updates(),
            first,
            make,
        )))
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<pb::JwtsvidRequest>,
    ) -> Result<Response<pb::JwtsvidResponse>, Status> {
        let (_, workload) = self.attest(&request).await?;
        let request = request.into_inner();
        if request.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        // The server's limits, checked here first: a bad request costs it nothing.
        if let Err(e) = daas_identity::jwt_svid::check_audiences(&request.audience) {
            return Err(Status::invalid_argument(e.to_string()));
        }
        let spiffe_id = Some(request.spiffe_id.as_str()).filter(|id| !id.is_empty());
        let svids = self
            .source
            .jwt_svids(&workload, &request.audience, spiffe_id)
            .await
            .map_err(unavailable)?;
        if svids.is_empty() {
            self.source
                .report_denied(Some(&workload), "no registration entry matches (jwt-svid)");
            return Err(denied());
        }
        Ok(Response::new(pb::JwtsvidResponse {
            svids: svids
                .into_iter()
                .map(|s| pb::Jwtsvid {
                    spiffe_id: s.spiffe_id,
                    svid: s.token.to_string(),
                    hint: String::new(),
                })
                .collect(),
        }))
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<pb::JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        self.attest(&request).await?;
        let source = Arc::clone(&self.source);
        let bundles = move || {
            source
                .jwt_bundles()
                .map(|bundles| pb::JwtBundlesResponse { bundles })
                .map_err(unavailable)
        };
        let first = bundles()?;
        let make = move || -> Next<pb::JwtBundlesResponse> {
            let next = bundles();
            Box::pin(async move { next })
        };
        Ok(Response::new(stream_updates(
            self.source.updates(),
            first,
            make,
        )))
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<pb::ValidateJwtsvidRequest>,
    ) -> Result<Response<pb::ValidateJwtsvidResponse>, Status> {
        self.attest(&request).await?;
        let request = request.into_inner();
        if request.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        if request.svid.is_empty() {
            return Err(Status::invalid_argument("svid must be specified"));
        }
        match self
            .source
            .validate_jwt_svid(&request.svid, &request.audience)
        {
            Ok(valid) => Ok(Response::new(pb::ValidateJwtsvidResponse {
                spiffe_id: valid.spiffe_id().to_string(),
                claims: Some(json_object_to_struct(valid.claims())),
            })),
            Err(ValidateError::Invalid(why)) => Err(Status::invalid_argument(format!(
                "the JWT-SVID is not valid: {why}"
            ))),
            Err(ValidateError::Unavailable) => {
                Err(Status::unavailable("no JWT bundle is available yet; retry"))
            }
        }
    }
}

#[tonic::async_trait]
impl<S: IdentitySource> InstanceIdentity for WorkloadApi<S> {
    async fn fetch_instance_documents(
        &self,
        request: Request<daas_pb::InstanceDocumentsRequest>,
    ) -> Result<Response<daas_pb::InstanceDocumentsResponse>, Status> {
        let (_, workload) = self.attest(&request).await?;
        let documents = self
            .source
            .instance_documents(&workload)
            .await
            .map_err(unavailable)?;
        if documents.is_empty() {
            self.source.report_denied(
                Some(&workload),
                "no registration entry naming an app matches (instance document)",
            );
            return Err(denied());
        }
        Ok(Response::new(daas_pb::InstanceDocumentsResponse {
            documents: documents
                .into_iter()
                .map(|d| daas_pb::InstanceDocument {
                    workload_id: d.workload_id,
                    spiffe_id: d.spiffe_id,
                    instance_id: d.instance_id,
                    document: d.document,
                    app_document: d.app_document,
                    expires_at: d.expires_at_ms,
                })
                .collect(),
        }))
    }
}

/// JSON claims as the protobuf `Struct` the Workload API returns.
fn json_object_to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_to_prost(v)))
            .collect(),
    }
}

fn json_to_prost(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    use serde_json::Value as J;
    let kind = match value {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        // protobuf's Struct has only doubles (as JSON in JavaScript).
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_prost).collect(),
        }),
        J::Object(map) => Kind::StructValue(json_object_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Why the Workload API could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The socket path is taken by something that is not a socket: refuse to delete it.
    #[error("{path} exists and is not a socket")]
    NotASocket { path: String },
    #[error("cannot listen on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the workload api server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serve the Workload API on `socket` until `shutdown` resolves.
///
/// A stale socket left by a previous run is replaced; any other file at that path is an error.
/// The socket is world-connectable on purpose: who may get what is decided by attestation, not
/// by file permissions (as in SPIRE).
pub async fn serve<S: IdentitySource>(
    socket: &Path,
    api: WorkloadApi<S>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let io = |source| ServeError::Io {
        path: socket.display().to_string(),
        source,
    };
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(socket).map_err(io)?,
        Ok(_) => {
            return Err(ServeError::NotASocket {
                path: socket.display().to_string(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = tokio::net::UnixListener::bind(socket).map_err(io)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
    tracing::info!(socket = %socket.display(), "workload api listening");
    tonic::transport::Server::builder()
        // Bounds on what one local client can hold open (streams are long-lived by design).
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .concurrency_limit_per_connection(MAX_STREAMS_PER_CONNECTION as usize)
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .add_service(api.instance_identity_service())
        .add_service(api.into_service())
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::UnixListenerStream::new(listener),
            shutdown,
        )
        .await?;
    Ok(())
}
