//! The tokio transport: TLS 1.3 (rustls + aws-lc-rs, X25519MLKEM768 first), the role exchange
//! over the TLS stream, then a stream-mode [`Channel`] (and, on request, message-mode keys).
//!
//! Both sides present a certificate: an SVID when the caller has one, otherwise an ephemeral
//! self-signed one made by `rcgen`. The certificate verifiers accept any certificate (they
//! still check the TLS 1.3 `CertificateVerify` signature, so the peer holds the certificate's
//! key): trust comes only from the roles, which is why the role layer must verify at least one
//! role unless anonymous peers are allowed.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, NamedGroup, ProtocolVersion,
    ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use crate::config::{KeyExchange, RoleConfig};
use crate::error::{Fault, RoleError};
use crate::exchange::{
    Direction, EXPORTER_LEN, Exporters, OfferSent, RoleFailure, Side, VerifiedRoles,
};
use crate::labels::{EXPORTER_MESSAGE, EXPORTER_ROLES};
use crate::name::RoleName;
use crate::ratelimit::RateLimiter;
use crate::record::{MESSAGE_SECRET_LEN, MessageSecrets};
use crate::wire::{HEADER_LEN, MAX_MESSAGE_LEN, parse_header};

/// The name the client asks for and the ephemeral certificates carry. It is never checked:
/// trust comes from the roles.
pub const CHANNEL_SERVER_NAME: &str = "daas-channel.invalid";
/// Default bound on TLS handshake plus role exchange.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS certificate and key a side presents (an SVID).
pub struct TlsIdentity {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// The transport failed; the connection is closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// Reading or writing the socket failed (including the TLS handshake's alerts).
    #[error("channel i/o failed: {0}")]
    Io(#[from] io::Error),
    /// The negotiated TLS parameters break the policy (version, key exchange group).
    #[error("tls policy violated: {0}")]
    Policy(&'static str),
    /// The role exchange failed.
    #[error(transparent)]
    Role(#[from] RoleError),
    /// No role of the peer verified and anonymous peers are not allowed. `failures` says why
    /// each claimed role failed, for the audit log.
    #[error("no role verified and anonymous peers are not allowed")]
    NoVerifiedRoles {
        /// The peer's roles that failed, with reasons.
        failures: Vec<RoleFailure>,
    },
    /// The handshake and role exchange took longer than the configured bound.
    #[error("channel handshake timed out")]
    Timeout,
    /// The TLS configuration could not be built (certificate generation, bad SVID key).
    #[error("tls configuration failed: {0}")]
    Config(&'static str),
    /// Exporting keying material from the TLS connection failed.
    #[error("tls exporter failed")]
    Exporter,
}

impl ChannelError {
    /// Who caused the error.
    #[must_use]
    pub const fn fault(&self) -> Fault {
        match self {
            Self::Io(_) | Self::Policy(_) | Self::NoVerifiedRoles { .. } | Self::Timeout => {
                Fault::Peer
            }
            Self::Role(e) => e.fault(),
            Self::Config(_) => Fault::Caller,
            Self::Exporter => Fault::Internal,
        }
    }
}

/// The rustls provider: aws-lc-rs, TLS 1.3 suites only, the allowed groups in order.
fn provider(kx: KeyExchange) -> CryptoProvider {
    let mut p = aws_lc_rs::default_provider();
    p.cipher_suites
        .retain(|s| s.version() == &rustls::version::TLS13);
    p.kx_groups = match kx {
        KeyExchange::HybridOnly => vec![aws_lc_rs::kx_group::X25519MLKEM768],
        KeyExchange::HybridThenClassical => vec![
            aws_lc_rs::kx_group::X25519MLKEM768,
            aws_lc_rs::kx_group::X25519,
        ],
    };
    p
}

/// Accepts any certificate but checks the handshake signature made with its key.
#[derive(Debug)]
struct RolesOnlyVerifier {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RolesOnlyVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ClientCertVerifier for RolesOnlyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn ephemeral_identity() -> Result<TlsIdentity, ChannelError> {
    let ck = rcgen::generate_simple_self_signed(vec![CHANNEL_SERVER_NAME.to_owned()])
        .map_err(|_| ChannelError::Config("ephemeral certificate generation"))?;
    Ok(TlsIdentity {
        chain: vec![ck.cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der())),
    })
}

/// A per-peer-address password attempt limiter shared by the connections of a process.
pub type SharedRateLimiter = Arc<Mutex<RateLimiter<IpAddr>>>;

/// Everything one side needs to open channels: its roles, the TLS configurations built from
/// them, and the password rate limiter.
#[derive(Clone)]
pub struct ChannelConfig {
    roles: Arc<RoleConfig>,
    kx: KeyExchange,
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    limiter: Option<SharedRateLimiter>,
    handshake_timeout: Duration,
}

impl fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelConfig")
            .field("roles", &self.roles)
            .field("kx", &self.kx)
            .field("rate_limited", &self.limiter.is_some())
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl ChannelConfig {
    /// Builds the TLS client and server configurations: TLS 1.3 only, the groups of `kx`, no
    /// session resumption or tickets, mandatory client certificates, and `identity` (or a fresh
    /// self-signed certificate) as this side's certificate.
    ///
    /// # Errors
    /// [`ChannelError::Config`] if rustls refuses the configuration or the key.
    pub fn new(
        roles: RoleConfig,
        kx: KeyExchange,
        identity: Option<TlsIdentity>,
    ) -> Result<Self, ChannelError> {
        let identity = match identity {
            Some(i) => i,
            None => ephemeral_identity()?,
        };
        let provider = Arc::new(provider(kx));
        let verifier = Arc::new(RolesOnlyVerifier {
            algs: provider.signature_verification_algorithms,
        });
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|_| ChannelError::Config("tls client protocol versions"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(|_| ChannelError::Config("tls client certificate"))?;
        client.resumption = rustls::client::Resumption::disabled();
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|_| ChannelError::Config("tls server protocol versions"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(identity.chain, identity.key)
            .map_err(|_| ChannelError::Config("tls server certificate"))?;
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        Ok(Self {
            roles: Arc::new(roles),
            kx,
            client: Arc::new(client),
            server: Arc::new(server),
            limiter: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Consults `limiter` before every password-role PAKE.
    #[must_use]
    pub fn with_rate_limiter(mut self, limiter: SharedRateLimiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Bounds the TLS handshake plus role exchange.
    #[must_use]
    pub const fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The rustls client configuration (for tests and benchmarks against plain TLS).
    #[must_use]
    pub fn tls_client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }

    /// The rustls server configuration.
    #[must_use]
    pub fn tls_server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }
}

/// An established channel: TLS 1.3 whose peer proved [`Channel::verified_roles`].
/// Reading and writing it is stream mode.
pub struct Channel<S> {
    stream: TlsStream<S>,
    side: Side,
    roles: VerifiedRoles,
    failures: Vec<RoleFailure>,
}

impl<S> fmt::Debug for Channel<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("side", &self.side)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

fn export<S>(
    stream: &TlsStream<S>,
    label: &[u8],
    dir: Direction,
) -> Result<[u8; 32], ChannelError> {
    let mut out = [0u8; EXPORTER_LEN];
    let ctx = [dir.byte()];
    let r = match stream {
        TlsStream::Client(s) => s
            .get_ref()
            .1
            .export_keying_material(&mut out, label, Some(&ctx)),
        TlsStream::Server(s) => s
            .get_ref()
            .1
            .export_keying_material(&mut out, label, Some(&ctx)),
    };
    r.map_err(|_| ChannelError::Exporter)?;
    Ok(out)
}

impl<S> Channel<S> {
    /// The peer's verified roles.
    #[must_use]
    pub const fn verified_roles(&self) -> &VerifiedRoles {
        &self.roles
    }

    /// The roles the peer claimed that did not verify, with reasons (for the audit log).
    #[must_use]
    pub fn role_failures(&self) -> &[RoleFailure] {
        &self.failures
    }

    /// Which end of the TLS connection this side is.
    #[must_use]
    pub const fn side(&self) -> Side {
        self.side
    }

    /// The negotiated key exchange group.
    #[must_use]
    pub fn key_exchange_group(&self) -> Option<NamedGroup> {
        self.stream
            .get_ref()
            .1
            .negotiated_key_exchange_group()
            .map(|g| g.name())
    }

    /// The per-direction message-mode secrets of this connection (use with
    /// [`crate::message_keys`] and [`Channel::side`]).
    ///
    /// # Errors
    /// [`ChannelError::Exporter`] if rustls refuses to export.
    pub fn message_secrets(&self) -> Result<MessageSecrets, ChannelError> {
        let c2s: [u8; MESSAGE_SECRET_LEN] =
            export(&self.stream, EXPORTER_MESSAGE, Direction::ClientToServer)?;
        let s2c = export(&self.stream, EXPORTER_MESSAGE, Direction::ServerToClient)?;
        Ok(MessageSecrets::new(c2s, s2c))
    }

    /// The TLS stream.
    pub fn into_inner(self) -> TlsStream<S> {
        self.stream
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Channel<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Channel<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Opens a channel as the TLS client over `stream`. `peer` keys the password rate limiter.
///
/// # Errors
/// Any [`ChannelError`]; the stream is dropped (closed).
pub async fn connect<S>(
    config: &ChannelConfig,
    stream: S,
    peer: IpAddr,
) -> Result<Channel<S>, ChannelError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let fut = async {
        let name = ServerName::try_from(CHANNEL_SERVER_NAME)
            .map_err(|_| ChannelError::Config("server name"))?;
        let tls = TlsConnector::from(config.client.clone())
            .connect(name, stream)
            .await?;
        establish(config, TlsStream::Client(tls), Side::Client, peer).await
    };
    tokio::time::timeout(config.handshake_timeout, fut)
        .await
        .map_err(|_| ChannelError::Timeout)?
}

/// Accepts a channel as the TLS server over `stream`. `peer` keys the password rate limiter.
///
/// # Errors
/// Any [`ChannelError`]; the stream is dropped (closed).
pub async fn accept<S>(
    config: &ChannelConfig,
    stream: S,
    peer: IpAddr,
) -> Result<Channel<S>, ChannelError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let fut = async {
        let tls = TlsAcceptor::from(config.server.clone())
            .accept(stream)
            .await?;
        establish(config, TlsStream::Server(tls), Side::Server, peer).await
    };
    tokio::time::timeout(config.handshake_timeout, fut)
        .await
        .map_err(|_| ChannelError::Timeout)?
}

fn check_policy<S>(stream: &TlsStream<S>, kx: KeyExchange) -> Result<(), ChannelError> {
    let state = stream.get_ref().1;
    if state.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
        return Err(ChannelError::Policy("protocol version is not tls 1.3"));
    }
    match (state.negotiated_key_exchange_group().map(|g| g.name()), kx) {
        (Some(NamedGroup::X25519MLKEM768), _)
        | (Some(NamedGroup::X25519), KeyExchange::HybridThenClassical) => Ok(()),
        _ => Err(ChannelError::Policy("key exchange group not allowed")),
    }
}

async fn read_role_message<S: AsyncRead + Unpin>(s: &mut S) -> Result<Vec<u8>, ChannelError> {
    let mut header = [0u8; HEADER_LEN];
    s.read_exact(&mut header).await?;
    let (_, total) = parse_header(&header).map_err(RoleError::from)?;
    debug_assert!(total <= MAX_MESSAGE_LEN);
    let mut msg = vec![0u8; total];
    msg[..HEADER_LEN].copy_from_slice(&header);
    s.read_exact(&mut msg[HEADER_LEN..]).await?;
    Ok(msg)
}

async fn write_role_message<S: AsyncWrite + Unpin>(
    s: &mut S,
    msg: &[u8],
) -> Result<(), ChannelError> {
    s.write_all(msg).await?;
    s.flush().await?;
    Ok(())
}

/// Permits taken from the rate limiter during one exchange; settled at the end.
struct Permits<'a> {
    limiter: Option<&'a SharedRateLimiter>,
    peer: IpAddr,
    taken: Vec<RoleName>,
}

impl Permits<'_> {
    fn acquire(&mut self, role: &RoleName) -> bool {
        let Some(limiter) = self.limiter else {
            return true;
        };
        let ok = limiter
            .lock()
            .is_ok_and(|mut l| l.try_acquire(&self.peer, role, Instant::now()).is_ok());
        if ok {
            self.taken.push(role.clone());
        }
        ok
    }

    /// Gives back every permit except `keep` (failed attempts stay charged).
    fn settle(self, keep: &[RoleName]) {
        let Some(limiter) = self.limiter else {
            return;
        };
        if let Ok(mut l) = limiter.lock() {
            for role in self.taken.iter().filter(|r| !keep.contains(r)) {
                l.refund(&self.peer, role);
            }
        }
    }
}

async fn establish<S>(
    config: &ChannelConfig,
    mut stream: TlsStream<S>,
    side: Side,
    peer: IpAddr,
) -> Result<Channel<S>, ChannelError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    check_policy(&stream, config.kx)?;
    let exporters = Exporters::new(
        export(&stream, EXPORTER_ROLES, Direction::ClientToServer)?,
        export(&stream, EXPORTER_ROLES, Direction::ServerToClient)?,
    );
    let mut permits = Permits {
        limiter: config.limiter.as_ref(),
        peer,
        taken: Vec::new(),
    };
    let (state, offer) = OfferSent::start(config.roles.clone(), side, exporters, |r| {
        permits.acquire(r)
    })?;
    // Until our proof (with its confirmations) is written, no password guess was tested:
    // failures up to there refund every permit.
    let early = async {
        write_role_message(&mut stream, &offer).await?;
        let peer_offer = read_role_message(&mut stream).await?;
        let (state, proof) = state.receive_offer(&peer_offer)?;
        Ok::<_, ChannelError>((state, proof))
    }
    .await;
    let (state, proof) = match early {
        Ok(v) => v,
        Err(e) => {
            permits.settle(&[]);
            return Err(e);
        }
    };
    // From here on, failures keep every permit charged.
    write_role_message(&mut stream, &proof).await?;
    let peer_proof = read_role_message(&mut stream).await?;
    let outcome = state.receive_proof(&peer_proof);
    permits.settle(outcome.failed_password_attempts());
    let failures = outcome.failures().to_vec();
    match outcome.finish() {
        Ok(roles) => Ok(Channel {
            stream,
            side,
            roles,
            failures,
        }),
        Err(RoleError::NoVerifiedRoles) => {
            // Close politely; the peer learns nothing but that the channel ended.
            let _ = stream.shutdown().await;
            Err(ChannelError::NoVerifiedRoles { failures })
        }
        Err(e) => Err(e.into()),
    }
}
