//! Channel costs beside their baselines, each pair in one group so the numbers compare (issue
//! #5 performance goals):
//!
//! - `message_mode/{daas,aws_lc_chacha20poly1305}/{1024,16384}`: one record sealed and opened
//!   (sequence number, replay window, key epoch) beside a bare aws-lc-rs ChaCha20-Poly1305
//!   seal + open of the same plaintext with a fixed key: the limit;
//! - `role_exchange/{key,password,x509}`: both sides of the sans-I/O role exchange for one role
//!   (`x509`: an Ed25519 leaf under a P-256 CA, path validation included);
//! - `handshake/{rustls_mtls,daas,snow_noise_xx}`: a full connection over 127.0.0.1
//!   (`TCP_NODELAY`, or delayed ACKs add ~40 ms to all): plain rustls TLS 1.3 with
//!   client certificates and X25519MLKEM768 (the channel's own TLS configurations), the same
//!   plus the role exchange with one key role (their difference is the role layer's cost), and
//!   `snow`'s Noise_XX_25519_ChaChaPoly_BLAKE2s (three messages, u16 length-prefixed, static
//!   keys generated once; classical X25519 only, so it is a floor, not a like-for-like peer);
//! - `stream/{rustls,daas}/{1024,16384,65536}`: bulk throughput of one established connection
//!   over an in-memory duplex pipe (no TCP noise): `size` bytes written, flushed and read.
//!   Stream mode is rustls's record layer after the handshake, so the goal is equality.
//!
//! `cargo bench -p daas-channel --bench channel -- --warm-up-time 1 --measurement-time 3`
#![expect(
    clippy::unwrap_used,
    reason = "benchmark setup: a failure aborts the run"
)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use daas_channel::{
    ChannelConfig, Exporters, KeyExchange, MessageSecrets, OfferSent, Role, RoleConfig, RoleKey,
    RoleName, RolePassword, RoleSecret, Side, X509Role, accept, connect, message_keys,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, PKCS_ED25519};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn key_roles() -> RoleConfig {
    let role = Role::new(
        RoleName::new("payment").unwrap(),
        RoleSecret::Key(RoleKey::new(&[7; 32]).unwrap()),
    );
    RoleConfig::new(vec![role], false).unwrap()
}

fn password_roles() -> RoleConfig {
    let role = Role::new(
        RoleName::new("payment").unwrap(),
        RoleSecret::Password(RolePassword::new(b"correct horse battery").unwrap()),
    );
    RoleConfig::new(vec![role], false).unwrap()
}

/// One role proven and accepted with an Ed25519 leaf certified by a fresh P-256 CA.
fn x509_roles() -> RoleConfig {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let leaf = CertificateParams::new(vec!["role.example".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let role = X509Role::verifier(vec![ca.der().clone()], None)
        .unwrap()
        .with_signer(vec![leaf.der().clone()], &key.serialize_der())
        .unwrap();
    let role = Role::new(RoleName::new("payment").unwrap(), RoleSecret::X509(role));
    RoleConfig::new(vec![role], false).unwrap()
}

fn message_mode(c: &mut Criterion) {
    let mut g = c.benchmark_group("message_mode");
    for size in [1024usize, 16 * 1024] {
        g.throughput(Throughput::Bytes(size as u64));
        let plaintext = vec![0x5a; size];
        let now = Instant::now();
        let secrets = MessageSecrets::new([1; 32], [2; 32]);
        let (mut sealer, _) = message_keys(Side::Client, &secrets, now).unwrap();
        let (_, mut opener) = message_keys(Side::Server, &secrets, now).unwrap();
        let mut record = Vec::with_capacity(size + 64);
        g.bench_function(format!("daas/{size}"), |b| {
            b.iter(|| {
                sealer
                    .seal(now, black_box(&plaintext), &mut record)
                    .unwrap();
                let (_, pt) = opener.open(now, &mut record).unwrap();
                black_box(pt.len());
            });
        });
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[3; 32]).unwrap());
        let mut buf = Vec::with_capacity(size + 16);
        let mut n = 0u64;
        g.bench_function(format!("aws_lc_chacha20poly1305/{size}"), |b| {
            b.iter(|| {
                n += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&n.to_be_bytes());
                buf.clear();
                buf.extend_from_slice(black_box(&plaintext));
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::empty(),
                        &mut buf,
                    )
                    .unwrap();
                buf.extend_from_slice(tag.as_ref());
                let pt = key
                    .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
                    .unwrap();
                black_box(pt.len());
            });
        });
    }
    g.finish();
}

fn role_exchange(c: &mut Criterion) {
    let mut g = c.benchmark_group("role_exchange");
    for (label, roles) in [
        ("key", key_roles()),
        ("password", password_roles()),
        ("x509", x509_roles()),
    ] {
        let roles = Arc::new(roles);
        g.bench_function(label, |b| {
            b.iter(|| {
                let ex = || Exporters::new([1; 32], [2; 32]);
                let (cl, c_offer) =
                    OfferSent::start(roles.clone(), Side::Client, ex(), |_| true).unwrap();
                let (sv, s_offer) =
                    OfferSent::start(roles.clone(), Side::Server, ex(), |_| true).unwrap();
                let (cl, c_proof) = cl.receive_offer(&s_offer).unwrap();
                let (sv, s_proof) = sv.receive_offer(&c_offer).unwrap();
                let a = cl.receive_proof(&s_proof).finish().unwrap();
                let b2 = sv.receive_proof(&c_proof).finish().unwrap();
                black_box((a.len(), b2.len()));
            });
        });
    }
    g.finish();
}

fn handshake(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server_cfg = ChannelConfig::new(key_roles(), KeyExchange::HybridOnly, None).unwrap();
    let client_cfg = ChannelConfig::new(key_roles(), KeyExchange::HybridOnly, None).unwrap();
    let listener = rt
        .block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = Arc::new(listener);
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);

    let mut g = c.benchmark_group("handshake");
    g.bench_function("rustls_mtls", |b| {
        b.iter(|| {
            rt.block_on(async {
                let acceptor = tokio_rustls::TlsAcceptor::from(server_cfg.tls_server_config());
                let l = listener.clone();
                let srv = tokio::spawn(async move {
                    let (sock, _) = l.accept().await.unwrap();
                    sock.set_nodelay(true).unwrap();
                    let mut tls = acceptor.accept(sock).await.unwrap();
                    let mut one = [0u8; 1];
                    tls.read_exact(&mut one).await.unwrap();
                });
                let sock = TcpStream::connect(addr).await.unwrap();
                sock.set_nodelay(true).unwrap();
                let name = rustls::pki_types::ServerName::try_from("daas-channel.invalid").unwrap();
                let mut tls = tokio_rustls::TlsConnector::from(client_cfg.tls_client_config())
                    .connect(name, sock)
                    .await
                    .unwrap();
                tls.write_all(b"x").await.unwrap();
                tls.flush().await.unwrap();
                srv.await.unwrap();
            });
        });
    });
    g.bench_function("daas", |b| {
        b.iter(|| {
            rt.block_on(async {
                let cfg = server_cfg.clone();
                let l = listener.clone();
                let srv = tokio::spawn(async move {
                    let (sock, _) = l.accept().await.unwrap();
                    sock.set_nodelay(true).unwrap();
                    let mut ch = accept(&cfg, sock, peer).await.unwrap();
                    let mut one = [0u8; 1];
                    ch.read_exact(&mut one).await.unwrap();
                });
                let sock = TcpStream::connect(addr).await.unwrap();
                sock.set_nodelay(true).unwrap();
                let mut ch = connect(&client_cfg, sock, peer).await.unwrap();
                ch.write_all(b"x").await.unwrap();
                ch.flush().await.unwrap();
                srv.await.unwrap();
            });
        });
    });
    let params: snow::params::NoiseParams = "Noise_XX_25519_ChaChaPoly_BLAKE2s".parse().unwrap();
    let server_static = snow::Builder::new(params.clone())
        .generate_keypair()
        .unwrap();
    let client_static = snow::Builder::new(params.clone())
        .generate_keypair()
        .unwrap();
    g.bench_function("snow_noise_xx", |b| {
        b.iter(|| {
            rt.block_on(async {
                let l = listener.clone();
                let (p, key) = (params.clone(), server_static.private.clone());
                let srv = tokio::spawn(async move {
                    let (mut sock, _) = l.accept().await.unwrap();
                    sock.set_nodelay(true).unwrap();
                    let mut hs = snow::Builder::new(p)
                        .local_private_key(&key)
                        .unwrap()
                        .build_responder()
                        .unwrap();
                    let mut buf = vec![0u8; 1024];
                    let mut msg = vec![0u8; 1024];
                    let m = read_frame(&mut sock, &mut msg).await;
                    hs.read_message(&msg[..m], &mut buf).unwrap();
                    let n = hs.write_message(&[], &mut buf).unwrap();
                    write_frame(&mut sock, &buf[..n]).await;
                    let m = read_frame(&mut sock, &mut msg).await;
                    hs.read_message(&msg[..m], &mut buf).unwrap();
                    let mut transport = hs.into_transport_mode().unwrap();
                    let m = read_frame(&mut sock, &mut msg).await;
                    let n = transport.read_message(&msg[..m], &mut buf).unwrap();
                    assert_eq!(&buf[..n], b"x");
                });
                let mut sock = TcpStream::connect(addr).await.unwrap();
                sock.set_nodelay(true).unwrap();
                let mut hs = snow::Builder::new(params.clone())
                    .local_private_key(&client_static.private)
                    .unwrap()
                    .build_initiator()
                    .unwrap();
                let mut buf = vec![0u8; 1024];
                let mut msg = vec![0u8; 1024];
                let n = hs.write_message(&[], &mut buf).unwrap();
                write_frame(&mut sock, &buf[..n]).await;
                let m = read_frame(&mut sock, &mut msg).await;
                hs.read_message(&msg[..m], &mut buf).unwrap();
                let n = hs.write_message(&[], &mut buf).unwrap();
                write_frame(&mut sock, &buf[..n]).await;
                let mut transport = hs.into_transport_mode().unwrap();
                let n = transport.write_message(b"x", &mut buf).unwrap();
                write_frame(&mut sock, &buf[..n]).await;
                srv.await.unwrap();
            });
        });
    });
    g.finish();
}

async fn write_frame(sock: &mut TcpStream, frame: &[u8]) {
    let len = u16::try_from(frame.len()).unwrap().to_be_bytes();
    let mut out = Vec::with_capacity(2 + frame.len());
    out.extend_from_slice(&len);
    out.extend_from_slice(frame);
    sock.write_all(&out).await.unwrap();
}

async fn read_frame(sock: &mut TcpStream, buf: &mut [u8]) -> usize {
    let mut len = [0u8; 2];
    sock.read_exact(&mut len).await.unwrap();
    let len = usize::from(u16::from_be_bytes(len));
    sock.read_exact(&mut buf[..len]).await.unwrap();
    len
}

/// Writes `chunk` on `tx`, reads as many bytes on `rx`, concurrently.
async fn pump<W, R>(tx: &mut W, rx: &mut R, chunk: &[u8], sink: &mut [u8])
where
    W: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + Unpin,
{
    let ((), r) = tokio::join!(
        async {
            tx.write_all(chunk).await.unwrap();
            tx.flush().await.unwrap();
        },
        rx.read_exact(sink)
    );
    r.unwrap();
}

fn stream_mode(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server_cfg = ChannelConfig::new(key_roles(), KeyExchange::HybridOnly, None).unwrap();
    let client_cfg = ChannelConfig::new(key_roles(), KeyExchange::HybridOnly, None).unwrap();
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let pipe = 1 << 20;

    let (mut rustls_client, mut rustls_server) = rt.block_on(async {
        let (a, b) = tokio::io::duplex(pipe);
        let acceptor = tokio_rustls::TlsAcceptor::from(server_cfg.tls_server_config());
        let name = rustls::pki_types::ServerName::try_from("daas-channel.invalid").unwrap();
        let connector = tokio_rustls::TlsConnector::from(client_cfg.tls_client_config());
        let (c, s) = tokio::join!(connector.connect(name, a), acceptor.accept(b));
        (c.unwrap(), s.unwrap())
    });
    let (mut daas_client, mut daas_server) = rt.block_on(async {
        let (a, b) = tokio::io::duplex(pipe);
        let (c, s) = tokio::join!(connect(&client_cfg, a, peer), accept(&server_cfg, b, peer));
        (c.unwrap(), s.unwrap())
    });

    let mut g = c.benchmark_group("stream");
    for size in [1024usize, 16 * 1024, 64 * 1024] {
        g.throughput(Throughput::Bytes(size as u64));
        let chunk = vec![0x5a; size];
        let mut sink = vec![0u8; size];
        g.bench_function(format!("rustls/{size}"), |b| {
            b.iter(|| {
                rt.block_on(pump(
                    &mut rustls_client,
                    &mut rustls_server,
                    black_box(&chunk),
                    &mut sink,
                ));
            });
        });
        g.bench_function(format!("daas/{size}"), |b| {
            b.iter(|| {
                rt.block_on(pump(
                    &mut daas_client,
                    &mut daas_server,
                    black_box(&chunk),
                    &mut sink,
                ));
            });
        });
    }
    g.finish();
}

criterion_group!(benches, message_mode, role_exchange, handshake, stream_mode);
criterion_main!(benches);
