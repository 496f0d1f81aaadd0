//! SDK client mode keeps the plaintext in the process: every byte the SDK sends to the real
//! `daas server --dev` (and every byte it gets back) passes through a recording TLS proxy here,
//! and neither the plaintext (in any encoding), nor the client share, nor even the ciphertext
//! appears in that traffic; the same recording sees the plaintext of a server-mode encrypt,
//! so the recording works.
#![expect(
    clippy::unwrap_used,
    reason = "a test: a failed step should panic with its location"
)]

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use daas_sdk::{Client, ClientConfig, EncryptOptions, SecretString};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes seen by the proxy: client to server, and server to client (after TLS, so HTTP/1.1).
#[derive(Default)]
struct Recording {
    sent: Mutex<Vec<u8>>,
    received: Mutex<Vec<u8>>,
}

/// A TLS-terminating proxy in front of the server at `upstream_port`, presenting the dev
/// server's own certificate (so a client that trusts the dev CA trusts it) and speaking
/// HTTP/1.1 on both sides so the recorded bytes are readable.
async fn start_recording_proxy(data: &Path, upstream_port: u16) -> (u16, Arc<Recording>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = rustls_pemfile::certs(&mut &std::fs::read(data.join("server.pem")).unwrap()[..])
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key =
        rustls_pemfile::private_key(&mut &std::fs::read(data.join("server.key")).unwrap()[..])
            .unwrap()
            .unwrap();
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &std::fs::read(data.join("ca.pem")).unwrap()[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (acceptor, connector) = (
        tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        tokio_rustls::TlsConnector::from(Arc::new(client)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let recording = Arc::new(Recording::default());
    let rec = Arc::clone(&recording);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, connector, rec) =
                (acceptor.clone(), connector.clone(), Arc::clone(&rec));
            tokio::spawn(async move {
                let Ok(down) = acceptor.accept(tcp).await else {
                    return;
                };
                let up = tokio::net::TcpStream::connect(("127.0.0.1", upstream_port))
                    .await
                    .unwrap();
                let up = connector
                    .connect("127.0.0.1".try_into().unwrap(), up)
                    .await
                    .unwrap();
                let (down_r, down_w) = tokio::io::split(down);
                let (up_r, up_w) = tokio::io::split(up);
                let rec2 = Arc::clone(&rec);
                let to_server = tokio::spawn(pump(down_r, up_w, move |b| {
                    rec2.sent.lock().unwrap().extend_from_slice(b);
                }));
                pump(up_r, down_w, move |b| {
                    rec.received.lock().unwrap().extend_from_slice(b);
                })
                .await;
                let _ = to_server.await;
            });
        }
    });
    (port, recording)
}

/// Copy `from` to `to`, showing every chunk to `record`, until either side closes.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    record: impl Fn(&[u8]),
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                record(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Every encoding in which a request or response could carry `secret`.
fn encodings(secret: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    vec![
        ("raw", secret.to_vec()),
        ("hex", hex::encode(secret).into_bytes()),
        ("base64", STANDARD.encode(secret).into_bytes()),
        (
            "base64 unpadded",
            STANDARD_NO_PAD.encode(secret).into_bytes(),
        ),
        ("base64url", URL_SAFE.encode(secret).into_bytes()),
        (
            "base64url unpadded",
            URL_SAFE_NO_PAD.encode(secret).into_bytes(),
        ),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_mode_sends_neither_plaintext_nor_client_share_nor_ciphertext() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, conn) = support::start(&data);
    let upstream: u16 = conn.addr.rsplit(':').next().unwrap().parse().unwrap();
    let (port, recording) = start_recording_proxy(&data, upstream).await;
    let client = Client::new(ClientConfig {
        addr: format!("https://127.0.0.1:{port}"),
        token: SecretString::from(conn.token.as_str()),
        ca_cert_pem: Some(std::fs::read(data.join("ca.pem")).unwrap()),
    })
    .unwrap();

    // Long enough that no encoding of it can appear by chance.
    let secret = b"client-mode canary 7f3a9c41e2d85b60 never leaves this process";
    let sealed = client
        .encrypt_local(secret, &EncryptOptions::default())
        .await
        .unwrap();
    let opened = client
        .decrypt_local(&sealed.ciphertext, &sealed.share)
        .await
        .unwrap();
    assert_eq!(&opened[..], &secret[..]);

    // Control: server mode through the same proxy does send its plaintext, and the recording
    // sees it (base64url, as the API carries it).
    let control = b"server-mode control 0b1d2e3f4a5b6c7d goes to the server";
    client
        .encrypt(control, &EncryptOptions::default())
        .await
        .unwrap();

    let sent = recording.sent.lock().unwrap().clone();
    let received = recording.received.lock().unwrap().clone();
    let sent_text = String::from_utf8_lossy(&sent);
    assert!(
        sent_text.contains("POST /v1/safe/objects ")
            && sent_text.contains(&format!(
                "GET /v1/safe/objects/{}/share ",
                sealed.object_id.to_hex()
            )),
        "the client-mode calls went through the proxy: {sent_text}"
    );
    let control_b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(control);
    assert!(
        contains(&sent, control_b64.as_bytes()),
        "the recording must see a server-mode plaintext"
    );
    for (what, bytes) in [("sent", &sent), ("received", &received)] {
        for (encoding, needle) in encodings(secret) {
            assert!(
                !contains(bytes, &needle),
                "the client-mode plaintext ({encoding}) was {what} over the wire"
            );
        }
        assert!(
            !contains(bytes, sealed.share.expose().as_bytes()),
            "the client share was {what} over the wire"
        );
        assert!(
            !contains(bytes, sealed.ciphertext.as_bytes()),
            "the client-mode ciphertext was {what} over the wire"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
