//! A minimal Workload API client (for `daas identity fetch`): asks the sensor on a Unix socket
//! for the caller's own X.509-SVID and verifies it against the bundle that came with it; and
//! for its instance identity documents (`daas identity instance`).
use std::path::Path;

use daas_identity::SpiffeId;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::daas_pb::instance_identity_client::InstanceIdentityClient;
use crate::pb::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use crate::server_client::error_chain;
use crate::workload_api::SECURITY_HEADER;
use crate::{daas_pb, pb};

/// Most certificates accepted in one chain or bundle.
const MAX_CERTIFICATES: usize = 64;

/// Why no SVID was fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot connect to the workload api at {path}: {message}")]
    Connect { path: String, message: String },
    /// The sensor attested this process and found no identity for it.
    #[error(
        "no identity issued to this process (is a registration entry for its binary in place?)"
    )]
    Denied,
    #[error("the workload api refused the call: {0}")]
    Status(String),
    #[error("the workload api answered with an invalid SVID: {0}")]
    Invalid(String),
}

/// The caller's SVID, verified.
pub struct FetchedSvid {
    pub spiffe_id: SpiffeId,
    /// DER certificates, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 DER.
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    pub bundle: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for FetchedSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedSvid")
            .field("spiffe_id", &self.spiffe_id)
            .finish_non_exhaustive()
    }
}

/// A Workload API client on the Unix socket `socket`.
pub async fn connect(
    socket: &Path,
) -> Result<SpiffeWorkloadApiClient<tonic::transport::Channel>, FetchError> {
    Ok(SpiffeWorkloadApiClient::new(channel(socket).await?))
}

/// A client of the daas `InstanceIdentity` service on the Unix socket `socket`.
pub async fn connect_instance_identity(
    socket: &Path,
) -> Result<InstanceIdentityClient<tonic::transport::Channel>, FetchError> {
    Ok(InstanceIdentityClient::new(channel(socket).await?))
}

/// A gRPC channel to the Unix socket `socket`.
async fn channel(socket: &Path) -> Result<tonic::transport::Channel, FetchError> {
    let path = socket.to_owned();
    // The URI is required by tonic but unused: the connector always dials the socket.
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .map_err(|e| FetchError::Connect {
            path: socket.display().to_string(),
            message: error_chain(&e),
        })?;
    Ok(channel)
}

/// The instance identity documents the sensor at `socket` gives this process (one per entry
/// it matches that names an app), as the sensor sent them: verify them with
/// `daas_identity::verify_document` against the trust domain's document keys.
pub async fn fetch_instance_documents(
    socket: &Path,
) -> Result<Vec<daas_pb::InstanceDocument>, FetchError> {
    let mut client = connect_instance_identity(socket).await?;
    let mut request = tonic::Request::new(daas_pb::InstanceDocumentsRequest {});
    request.metadata_mut().insert(
        SECURITY_HEADER,
        tonic::metadata::MetadataValue::from_static("true"),
    );
    let documents = client
        .fetch_instance_documents(request)
        .await
        .map_err(status_error)?
        .into_inner()
        .documents;
    if documents.is_empty() {
        return Err(FetchError::Denied);
    }
    Ok(documents)
}

/// Fetch the first (default) X.509-SVID the sensor at `socket` grants this process.
pub async fn fetch_x509_svid(socket: &Path) -> Result<FetchedSvid, FetchError> {
    let mut client = connect(socket).await?;
    let mut request = tonic::Request::new(pb::X509svidRequest {});
    request.metadata_mut().insert(
        SECURITY_HEADER,
        tonic::metadata::MetadataValue::from_static("true"),
    );
    let mut stream = client
        .fetch_x509svid(request)
        .await
        .map_err(status_error)?
        .into_inner();
    let first = stream
        .message()
        .await
        .map_err(status_error)?
        .ok_or_else(|| FetchError::Status("the stream ended without an answer".into()))?;
    let svid = first.svids.into_iter().next().ok_or(FetchError::Denied)?;
    let key_pkcs8 = Zeroizing::new(svid.x509_svid_key);
    let chain = daas_identity::svid::split_der_certificates(&svid.x509_svid, MAX_CERTIFICATES)
        .map_err(|e| FetchError::Invalid(format!("chain: {e}")))?;
    let bundle = daas_identity::svid::split_der_certificates(&svid.bundle, MAX_CERTIFICATES)
        .map_err(|e| FetchError::Invalid(format!("bundle: {e}")))?;
    let spiffe_id = daas_identity::verify_x509_svid(&chain, &bundle, OffsetDateTime::now_utc())
        .map_err(|e| FetchError::Invalid(e.to_string()))?;
    if spiffe_id.to_string() != svid.spiffe_id {
        return Err(FetchError::Invalid(format!(
            "it claims {} but its certificate names {spiffe_id}",
            svid.spiffe_id
        )));
    }
    Ok(FetchedSvid {
        spiffe_id,
        chain,
        key_pkcs8,
        bundle,
    })
}

fn status_error(status: tonic::Status) -> FetchError {
    if status.code() == tonic::Code::PermissionDenied {
        FetchError::Denied
    } else {
        FetchError::Status(format!("{:?}: {}", status.code(), status.message()))
    }
}
