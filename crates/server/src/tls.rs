//! Listener TLS: a generated trust-domain CA and a listener certificate, or operator-provided PEMs.
//! TLS 1.3 only, aws-lc-rs provider, hybrid post-quantum X25519MLKEM768 preferred.
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::ServerError;
use crate::files::{check_private, exists, read_file, write_private, write_public};

/// Paths of the generated CA and listener certificate inside a data directory.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

fn tls_err(e: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(e.to_string())
}

/// Create the CA and a listener certificate for `localhost`, `127.0.0.1`, `::1` and `extra_names`
/// if they do not exist yet. The CA private key is kept (0600) so later issues can sign SVIDs.
pub fn ensure_generated(dir: &Path, extra_names: &[String]) -> Result<TlsFiles, ServerError> {
    let files = TlsFiles::in_dir(dir);
    if exists(&files.ca_cert) && exists(&files.cert) && exists(&files.key) {
        // Our own private keys: still private files of ours, or refused.
        check_private(&files.key)?;
        if exists(&dir.join("ca.key")) {
            check_private(&dir.join("ca.key"))?;
        }
        return Ok(files);
    }
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "daas trust domain CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    ca_params.not_before = now - time::Duration::minutes(5);
    ca_params.not_after = now + time::Duration::days(3650);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;

    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(extra_names.iter().cloned());
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls_err)?;
    let mut leaf = CertificateParams::new(names).map_err(tls_err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "daas server");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.not_before = now - time::Duration::minutes(5);
    leaf.not_after = now + time::Duration::days(397);
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(tls_err)?;

    write_private(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
    write_public(&files.ca_cert, ca_cert.pem().as_bytes())?;
    write_private(&files.key, leaf_key.serialize_pem().as_bytes())?;
    write_public(&files.cert, leaf_cert.pem().as_bytes())?;
    Ok(files)
}

/// The trust domain's current CA certificates, shared between the identity engine (which sets
/// them when it loads or rotates the CA) and the TLS listener (which verifies node client
/// certificates against them at handshake time).
#[derive(Debug, Clone, Default)]
pub struct TrustBundle(Arc<std::sync::RwLock<Vec<CertificateDer<'static>>>>);

impl TrustBundle {
    pub fn get(&self) -> Vec<CertificateDer<'static>> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
    pub fn set(&self, certs: Vec<CertificateDer<'static>>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = certs;
    }
}

/// Client certificates are optional (admins and apps use bearer tokens); a client that presents
/// one must present a valid X.509-SVID of this trust domain, else the handshake fails. Whether
/// the SVID is a *node's* is decided per request (`identity::NodeCaller`).
#[derive(Debug)]
struct SvidClientVerifier {
    bundle: TrustBundle,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::server::danger::ClientCertVerifier for SvidClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let bundle = self.bundle.get();
        let now = i64::try_from(now.as_secs())
            .ok()
            .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
            .ok_or(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            ))?;
        let chain: Vec<CertificateDer<'static>> = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        daas_identity::verify_x509_svid(&chain, &bundle, now)
            .map(|_| rustls::server::danger::ClientCertVerified::assertion())
            .map_err(|_| {
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                )
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// rustls server configuration: TLS 1.3 only, ALPN h2 + http/1.1, no client certificates.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    server_config_inner(cert, key, None)
}

/// [`server_config`] that also accepts X.509-SVIDs of the trust domain as client certificates
/// (how sensors authenticate as nodes).
pub fn server_config_with_svids(
    cert: &Path,
    key: &Path,
    bundle: TrustBundle,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    server_config_inner(cert, key, Some(bundle))
}

fn server_config_inner(
    cert: &Path,
    key: &Path,
    bundle: Option<TrustBundle>,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let cert_pem = read_file(cert)?;
    let key_pem = read_file(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| ServerError::Tls(format!("reading {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{} holds no certificate",
            cert.display()
        )));
    }
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| ServerError::Tls(format!("reading {}: {e}", key.display())))?
        .ok_or_else(|| ServerError::Tls(format!("{} holds no private key", key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?;
    let builder = match bundle {
        Some(bundle) => {
            builder.with_client_cert_verifier(Arc::new(SvidClientVerifier { bundle, algorithms }))
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key_der).map_err(tls_err)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

// ---------------------------------------------------------------- accepting connections

/// The first 24 bytes of every HTTP/2 connection; anything else is HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The listener's acceptor: the TLS handshake (under its own deadline) behind a cap on open
/// connections, and a deadline for the first bytes of HTTP once the handshake is done.
///
/// A connection over the cap is closed at once, before the handshake. The first-bytes deadline
/// closes the gap before hyper's header-read timeout starts: hyper first reads until it can tell
/// HTTP/1 from the HTTP/2 preface, without any timer, so a client that completes the handshake
/// and then sends nothing (or a never-finished prefix of the preface) would otherwise hold its
/// connection forever.
#[derive(Clone)]
pub(crate) struct GuardedAcceptor {
    tls: axum_server::tls_rustls::RustlsAcceptor,
    permits: Arc<tokio::sync::Semaphore>,
    first_bytes: std::time::Duration,
    last_warning: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for GuardedAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedAcceptor")
            .field("available", &self.permits.available_permits())
            .field("first_bytes", &self.first_bytes)
            .finish_non_exhaustive()
    }
}

impl GuardedAcceptor {
    pub(crate) fn new(
        config: Arc<rustls::ServerConfig>,
        max_connections: usize,
        handshake_timeout: std::time::Duration,
        first_bytes: std::time::Duration,
    ) -> Self {
        let tls = axum_server::tls_rustls::RustlsAcceptor::new(
            axum_server::tls_rustls::RustlsConfig::from_config(config),
        )
        .handshake_timeout(handshake_timeout);
        Self {
            tls,
            permits: Arc::new(tokio::sync::Semaphore::new(max_connections)),
            first_bytes,
            last_warning: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// At most one warning per 10 s about refused connections (an attack must not flood logs).
    fn warn_refused(&self) {
        use std::sync::atomic::Ordering;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last.saturating_add(10)
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!("connection limit reached: closing new connections");
        }
    }
}

type AcceptFuture<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<T>> + Send>>;
type RustlsAccept<S> = <axum_server::tls_rustls::RustlsAcceptor as axum_server::accept::Accept<
    tokio::net::TcpStream,
    S,
>>::Stream;

impl<S> axum_server::accept::Accept<tokio::net::TcpStream, S> for GuardedAcceptor
where
    S: Send + 'static,
{
    type Stream = Guarded<RustlsAccept<S>>;
    type Service = tower_http::add_extension::AddExtension<S, PeerCertificates>;
    type Future = AcceptFuture<(Self::Stream, Self::Service)>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            self.warn_refused();
            drop(stream);
            return Box::pin(std::future::ready(Err(std::io::Error::other(
                "connection limit reached",
            ))));
        };
        let handshake = self.tls.accept(stream, service);
        let first_bytes = self.first_bytes;
        Box::pin(async move {
            let (stream, service) = handshake.await?;
            // What the client proved in the handshake travels with each of its requests.
            let peer =
                PeerCertificates(
                    stream.get_ref().1.peer_certificates().map(|certs| {
                        Arc::new(certs.iter().map(|c| c.clone().into_owned()).collect())
                    }),
                );
            let service = tower_http::add_extension::AddExtension::new(service, peer);
            Ok((Guarded::new(stream, permit, first_bytes), service))
        })
    }
}

/// The client certificate chain of a connection (verified as an SVID of the trust domain by the
/// handshake), if the client presented one.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates(pub Option<Arc<Vec<CertificateDer<'static>>>>);

/// An accepted connection: holds its slot under the connection cap until it is dropped, and fails
/// reads once the first-bytes deadline passed before the HTTP version could be told.
pub(crate) struct Guarded<S> {
    inner: S,
    first_bytes: Option<FirstBytes>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl<S> std::fmt::Debug for Guarded<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("awaiting_first_bytes", &self.first_bytes.is_some())
            .finish_non_exhaustive()
    }
}

struct FirstBytes {
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// Bytes read so far, all matching the HTTP/2 preface.
    seen: usize,
}

impl FirstBytes {
    /// Feed newly read bytes; true once they tell HTTP/1 (a byte off the preface) from HTTP/2
    /// (the whole preface), i.e. once hyper's own timers take over.
    fn settled_by(&mut self, bytes: &[u8]) -> bool {
        for byte in bytes {
            if H2_PREFACE.get(self.seen) != Some(byte) {
                return true;
            }
            self.seen += 1;
        }
        self.seen >= H2_PREFACE.len()
    }
}

impl<S> Guarded<S> {
    fn new(
        inner: S,
        permit: tokio::sync::OwnedSemaphorePermit,
        first_bytes: std::time::Duration,
    ) -> Self {
        Self {
            inner,
            first_bytes: Some(FirstBytes {
                deadline: Box::pin(tokio::time::sleep(first_bytes)),
                seen: 0,
            }),
            _permit: permit,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Guarded<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future as _;
        use std::task::Poll;
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some(first) = &mut this.first_bytes {
            match &polled {
                Poll::Ready(Ok(())) => {
                    if first.settled_by(buf.filled().get(before..).unwrap_or_default()) {
                        this.first_bytes = None;
                    }
                }
                Poll::Ready(Err(_)) => {}
                Poll::Pending => {
                    if first.deadline.as_mut().poll(cx).is_ready() {
                        tracing::debug!("closing a connection that sent no request in time");
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no request within the header read timeout",
                        )));
                    }
                }
            }
        }
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Guarded<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_bytes() -> FirstBytes {
        FirstBytes {
            deadline: Box::pin(tokio::time::sleep(std::time::Duration::from_secs(60))),
            seen: 0,
        }
    }

    #[tokio::test]
    async fn http1_is_settled_by_its_first_byte() {
        assert!(first_bytes().settled_by(b"G"));
        assert!(first_bytes().settled_by(b"GET / HTTP/1.1\r\n"));
        // "P" could still be the preface; "PO" cannot.
        let mut f = first_bytes();
        assert!(!f.settled_by(b"P"));
        assert!(f.settled_by(b"OST / HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn http2_is_settled_by_the_whole_preface() {
        let mut f = first_bytes();
        assert!(!f.settled_by(b""));
        assert!(!f.settled_by(&H2_PREFACE[..10]));
        assert!(!f.settled_by(&H2_PREFACE[10..23]));
        assert!(f.settled_by(&H2_PREFACE[23..]));
    }
}
