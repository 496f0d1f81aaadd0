//! The transport over 127.0.0.1: TLS 1.3 with the hybrid group, the role exchange, stream and
//! message mode, and the attacks the role layer exists for.
#![expect(
    clippy::unwrap_used,
    reason = "a test: a failed step should panic with its location"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daas_channel::{
    Channel, ChannelConfig, ChannelError, FailureReason, KeyExchange, RateLimit, RateLimiter, Role,
    RoleConfig, RoleKey, RoleName, RolePassword, RoleSecret, Side, accept, connect, message_keys,
};
use rustls::NamedGroup;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn key_role(name: &str, key: u8) -> Role {
    Role::new(
        RoleName::new(name).unwrap(),
        RoleSecret::Key(RoleKey::new(&[key; 32]).unwrap()),
    )
}

fn pw_role(name: &str, pw: &str) -> Role {
    Role::new(
        RoleName::new(name).unwrap(),
        RoleSecret::Password(RolePassword::new(pw.as_bytes()).unwrap()),
    )
}

fn config(roles: Vec<Role>) -> ChannelConfig {
    ChannelConfig::new(
        RoleConfig::new(roles, false).unwrap(),
        KeyExchange::HybridOnly,
        None,
    )
    .unwrap()
}

type ServerResult = Result<Channel<TcpStream>, ChannelError>;

async fn server(cfg: ChannelConfig) -> (std::net::SocketAddr, JoinHandle<ServerResult>) {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (sock, peer) = listener.accept().await.unwrap();
        accept(&cfg, sock, peer.ip()).await
    });
    (addr, task)
}

async fn client(cfg: &ChannelConfig, addr: std::net::SocketAddr) -> ServerResult {
    let sock = TcpStream::connect(addr).await.unwrap();
    connect(cfg, sock, addr.ip()).await
}

#[tokio::test]
async fn shared_key_role_verifies_both_ways_with_hybrid_kx() {
    let (addr, srv) = server(config(vec![key_role("payment", 1)])).await;
    let mut c = client(
        &config(vec![key_role("payment", 1), key_role("user-info", 2)]),
        addr,
    )
    .await
    .unwrap();
    let mut s = srv.await.unwrap().unwrap();
    assert_eq!(c.verified_roles().to_string(), "payment");
    assert_eq!(s.verified_roles().to_string(), "payment");
    assert_eq!(
        s.role_failures().len(),
        1,
        "user-info is not accepted by the server"
    );
    assert_eq!(c.key_exchange_group(), Some(NamedGroup::X25519MLKEM768));
    assert_eq!(s.key_exchange_group(), Some(NamedGroup::X25519MLKEM768));

    // Stream mode.
    c.write_all(b"ping").await.unwrap();
    c.flush().await.unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    s.write_all(b"pong").await.unwrap();
    s.flush().await.unwrap();
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");

    // Message mode keys from the same connection agree per direction.
    let now = Instant::now();
    let (mut c_seal, mut c_open) =
        message_keys(Side::Client, &c.message_secrets().unwrap(), now).unwrap();
    let (mut s_seal, mut s_open) =
        message_keys(s.side(), &s.message_secrets().unwrap(), now).unwrap();
    let mut rec = Vec::new();
    c_seal.seal(now, b"datagram", &mut rec).unwrap();
    assert_eq!(s_open.open(now, &mut rec.clone()).unwrap().1, b"datagram");
    // Reflected back to the client: refused.
    assert!(c_open.open(now, &mut rec).is_err());
    s_seal.seal(now, b"reply", &mut rec).unwrap();
    assert_eq!(c_open.open(now, &mut rec).unwrap().1, b"reply");
}

#[tokio::test]
async fn wrong_key_closes_the_channel() {
    let (addr, srv) = server(config(vec![key_role("payment", 1)])).await;
    let c = client(&config(vec![key_role("payment", 9)]), addr).await;
    let s = srv.await.unwrap();
    match s {
        Err(ChannelError::NoVerifiedRoles { failures }) => {
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].reason, FailureReason::BadKeyTag);
        }
        other => panic!("server: {other:?}"),
    }
    assert!(
        matches!(c, Err(ChannelError::NoVerifiedRoles { .. })),
        "{c:?}"
    );
}

#[tokio::test]
async fn mitm_terminating_tls_on_both_sides_fails_every_role() {
    let roles = || {
        vec![
            key_role("payment", 1),
            pw_role("user-info", "correct horse"),
        ]
    };
    let (server_addr, srv) = server(config(roles())).await;

    // The MITM: a TLS server towards the client and a TLS client towards the server (it
    // accepts any certificate, as the channel does), relaying plaintext both ways.
    let mitm_cfg = config(vec![key_role("unrelated", 7)]);
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let mitm_addr = listener.local_addr().unwrap();
    let relay = tokio::spawn(async move {
        let (down, _) = listener.accept().await.unwrap();
        let down = tokio_rustls::TlsAcceptor::from(mitm_cfg.tls_server_config())
            .accept(down)
            .await
            .unwrap();
        let up = TcpStream::connect(server_addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("daas-channel.invalid").unwrap();
        let up = tokio_rustls::TlsConnector::from(mitm_cfg.tls_client_config())
            .connect(name, up)
            .await
            .unwrap();
        let (mut down, mut up) = (down, up);
        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
    });

    let c = client(&config(roles()), mitm_addr).await;
    let s = srv.await.unwrap();
    match s {
        Err(ChannelError::NoVerifiedRoles { failures }) => {
            let mut reasons: Vec<_> = failures.iter().map(|f| f.reason).collect();
            reasons.sort();
            assert_eq!(
                reasons,
                vec![FailureReason::BadKeyTag, FailureReason::WrongPassword]
            );
        }
        other => panic!("server: {other:?}"),
    }
    assert!(
        matches!(c, Err(ChannelError::NoVerifiedRoles { .. })),
        "{c:?}"
    );
    relay.abort();
}

#[tokio::test]
async fn offer_stripped_of_the_hybrid_group_is_refused() {
    let (addr, srv) = server(config(vec![key_role("payment", 1)])).await;
    // A client (or a downgrading middlebox) offering only classical X25519.
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    let stripped = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let sock = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("daas-channel.invalid").unwrap();
    let res = tokio_rustls::TlsConnector::from(Arc::new(stripped))
        .connect(name, sock)
        .await;
    assert!(res.is_err());
    assert!(matches!(srv.await.unwrap(), Err(ChannelError::Io(_))));
}

#[tokio::test]
async fn classical_allowed_still_negotiates_the_hybrid_group() {
    let (addr, srv) = server(config(vec![key_role("payment", 1)])).await;
    let cfg = ChannelConfig::new(
        RoleConfig::new(vec![key_role("payment", 1)], false).unwrap(),
        KeyExchange::HybridThenClassical,
        None,
    )
    .unwrap();
    let c = client(&cfg, addr).await.unwrap();
    srv.await.unwrap().unwrap();
    assert_eq!(c.key_exchange_group(), Some(NamedGroup::X25519MLKEM768));
}

/// The web-shop scenario (seed 002 §6) with key roles: the user API reaches payment with the
/// payment role; the suggestion service, holding only user-info, is refused by payment.
#[tokio::test]
async fn web_shop_payment_refuses_the_suggestion_service() {
    let payment_service = || {
        config(vec![
            key_role("payment", 0xa1),
            key_role("approval", 0xa2).with_accept(false),
        ])
    };
    let user_api = config(vec![key_role("payment", 0xa1), key_role("user-info", 0xa3)]);
    let suggestion = config(vec![key_role("user-info", 0xa3)]);

    let (addr, srv) = server(payment_service()).await;
    let c = client(&user_api, addr).await.unwrap();
    let s = srv.await.unwrap().unwrap();
    assert_eq!(s.verified_roles().to_string(), "payment");
    assert_eq!(c.verified_roles().to_string(), "payment");

    let (addr, srv) = server(payment_service()).await;
    let c = client(&suggestion, addr).await;
    match srv.await.unwrap() {
        Err(ChannelError::NoVerifiedRoles { failures }) => {
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].role.as_str(), "user-info");
            assert_eq!(failures[0].reason, FailureReason::NotAccepted);
        }
        other => panic!("payment accepted the suggestion service: {other:?}"),
    }
    assert!(c.is_err());
}

#[tokio::test]
async fn wrong_password_engages_the_rate_limiter() {
    let limiter = Arc::new(Mutex::new(RateLimiter::new(RateLimit {
        burst: 2,
        refill_every: Duration::from_secs(3600),
        max_buckets: 16,
    })));
    let server_cfg =
        || config(vec![pw_role("payment", "right")]).with_rate_limiter(limiter.clone());
    let attacker = config(vec![pw_role("payment", "guess")]);
    let mut reasons = Vec::new();
    for _ in 0..3 {
        let (addr, srv) = server(server_cfg()).await;
        let _ = client(&attacker, addr).await;
        match srv.await.unwrap() {
            Err(ChannelError::NoVerifiedRoles { failures }) => reasons.push(failures[0].reason),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        reasons,
        vec![
            FailureReason::WrongPassword,
            FailureReason::WrongPassword,
            FailureReason::RateLimited
        ]
    );
    // The right password from the same address is now refused too, until the bucket refills.
    let (addr, srv) = server(server_cfg()).await;
    let _ = client(&config(vec![pw_role("payment", "right")]), addr).await;
    assert!(srv.await.unwrap().is_err());

    // A fresh limiter: the right password verifies on both sides, and the permit is refunded.
    let fresh = Arc::new(Mutex::new(RateLimiter::new(RateLimit::default())));
    let (addr, srv) =
        server(config(vec![pw_role("payment", "right")]).with_rate_limiter(fresh.clone())).await;
    let c = client(&config(vec![pw_role("payment", "right")]), addr)
        .await
        .unwrap();
    let s = srv.await.unwrap().unwrap();
    assert_eq!(c.verified_roles().to_string(), "payment");
    assert_eq!(s.verified_roles().to_string(), "payment");
    let remaining = fresh.lock().unwrap().remaining(
        &LOCALHOST,
        &RoleName::new("payment").unwrap(),
        Instant::now(),
    );
    assert_eq!(remaining, RateLimit::default().burst);
}

#[tokio::test]
async fn anonymous_peer_only_when_allowed() {
    let open = ChannelConfig::new(
        RoleConfig::new(vec![key_role("payment", 1)], true).unwrap(),
        KeyExchange::HybridOnly,
        None,
    )
    .unwrap();
    let (addr, srv) = server(open).await;
    // The client accepts anonymous servers too.
    let anon_client = ChannelConfig::new(
        RoleConfig::new(vec![key_role("other", 2)], true).unwrap(),
        KeyExchange::HybridOnly,
        None,
    )
    .unwrap();
    let c = client(&anon_client, addr).await.unwrap();
    let s = srv.await.unwrap().unwrap();
    assert!(s.verified_roles().is_empty());
    assert!(c.verified_roles().is_empty());
}

/// A TLS client that speaks raw bytes instead of role messages.
async fn raw_peer(addr: std::net::SocketAddr, bytes: &'static [u8]) {
    let cfg = config(vec![key_role("x", 1)]);
    let sock = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("daas-channel.invalid").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(cfg.tls_client_config())
        .connect(name, sock)
        .await
        .unwrap();
    tls.write_all(bytes).await.unwrap();
    tls.flush().await.unwrap();
    let _ = tls.shutdown().await;
    // Drain whatever the server sends until it closes.
    let mut sink = Vec::new();
    let _ = tls.read_to_end(&mut sink).await;
}

#[tokio::test]
async fn oversized_and_truncated_role_messages_close_the_channel() {
    use daas_channel::{RoleError, WireError};

    // The largest header the u16 length can say is the limit (65 539 bytes): announcing it and
    // then closing is a truncated message, not an allocation beyond the limit.
    let (addr, srv) = server(config(vec![key_role("payment", 1)])).await;
    raw_peer(addr, &[2, 1, 0xff, 0xff]).await;
    match srv.await.unwrap() {
        Err(ChannelError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
        other => panic!("{other:?}"),
    }
    // Version 1 (one-byte payload lengths) is refused from the header alone.
    let (addr, srv) = server(config(vec![key_role("payment", 1)])).await;
    raw_peer(addr, &[1, 1, 0xff, 0xff]).await;
    match srv.await.unwrap() {
        Err(ChannelError::Role(RoleError::Wire(WireError::UnsupportedVersion))) => {}
        other => panic!("{other:?}"),
    }
    // A wrong version.
    let (addr, srv) = server(config(vec![key_role("payment", 1)])).await;
    raw_peer(addr, &[9, 1, 0, 1, 0]).await;
    match srv.await.unwrap() {
        Err(ChannelError::Role(RoleError::Wire(WireError::UnsupportedVersion))) => {}
        other => panic!("{other:?}"),
    }
    // A body cut short by the end of the stream.
    let (addr, srv) = server(config(vec![key_role("payment", 1)])).await;
    raw_peer(addr, &[2, 1, 0, 10, 0]).await;
    match srv.await.unwrap() {
        Err(ChannelError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn silent_peer_times_out() {
    let cfg =
        config(vec![key_role("payment", 1)]).with_handshake_timeout(Duration::from_millis(300));
    let (addr, srv) = server(cfg).await;
    let _sock = TcpStream::connect(addr).await.unwrap();
    assert!(matches!(srv.await.unwrap(), Err(ChannelError::Timeout)));
}
