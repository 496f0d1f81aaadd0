//! Connection hardening of the HTTPS listener, against an in-process dev server with short
//! limits (`run_dev_with`): a client that never finishes its request head, never sends anything
//! after the TLS handshake, or never finishes its body is cut off; too many requests at once are
//! shed with `503`; connections over the cap are closed.
//!
//! Every assertion is about the server's *behaviour* (the connection is closed, the answer is a
//! JSON error), never about wall-clock speed: reads wait up to `BOUND` (30 s), far longer than
//! the 1 s limits configured here, and only a server that never acts fails.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: a failed step should panic with its location"
)]
use std::sync::Arc;
use std::time::Duration;

use daas_server::{DevEnvironment, DevOptions, ServeLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const BOUND: Duration = Duration::from_secs(30);

struct Server {
    env: DevEnvironment,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(limits: ServeLimits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let opts = DevOptions {
            data_dir: dir.path().join("data"),
            listen: "127.0.0.1:0".parse().unwrap(),
        };
        let task = tokio::spawn(async move {
            daas_server::run_dev_with(
                opts,
                limits,
                move |env| {
                    let _ = ready_tx.send(env.clone());
                },
                async move {
                    let _ = stop_rx.await;
                },
            )
            .await
            .unwrap();
        });
        let env = ready_rx.await.expect("the dev server did not start");
        Self {
            env,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(BOUND, &mut self.task)
            .await
            .expect("the server did not stop")
            .unwrap();
    }

    /// A TLS 1.3 connection (ALPN `alpn`) that trusts only the dev CA.
    async fn connect(&self, alpn: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
        let pem = std::fs::read(&self.env.cacert).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = TcpStream::connect(self.env.addr.trim_start_matches("https://")).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    }

    /// One complete HTTP/1.1 request on a fresh connection; the whole response text.
    async fn request(&self, head: &str, body: &[u8]) -> String {
        let mut tls = self.connect(b"http/1.1").await.unwrap();
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(body).await.unwrap();
        tls.flush().await.unwrap();
        let bytes = read_until_closed(&mut tls)
            .await
            .expect("no complete response");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    async fn health(&self) -> String {
        self.request(
            "GET /v1/sys/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            b"",
        )
        .await
    }
}

/// Read until the server closes the connection (EOF, reset, or a TLS close); `None` if it is
/// still open after `BOUND`.
async fn read_until_closed(tls: &mut TlsStream<TcpStream>) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    closed.ok().map(|()| received)
}

fn short(header_read: Duration, request: Duration) -> ServeLimits {
    let mut limits = ServeLimits::default();
    limits.header_read_timeout = header_read;
    limits.request_timeout = request;
    limits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_request_head_is_closed() {
    let server = Server::start(short(Duration::from_secs(1), Duration::from_secs(30))).await;
    // The server answers a complete request (it is not merely closing everything).
    let ok = server.health().await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");

    let mut tls = server.connect(b"http/1.1").await.unwrap();
    tls.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let answer = read_until_closed(&mut tls).await;
    assert!(
        answer.is_some(),
        "a connection with an unfinished request head must be closed by the server"
    );
    let answer = String::from_utf8_lossy(answer.as_deref().unwrap_or_default()).into_owned();
    assert!(
        !answer.contains(" 200 "),
        "an unfinished request is not served: {answer}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_after_the_handshake_are_closed() {
    let server = Server::start(short(Duration::from_secs(1), Duration::from_secs(30))).await;
    // Nothing at all after the handshake (HTTP/1 or HTTP/2 negotiated) ...
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut tls = server.connect(alpn).await.unwrap();
        assert!(
            read_until_closed(&mut tls).await.is_some(),
            "a silent connection ({}) must be closed",
            String::from_utf8_lossy(alpn)
        );
    }
    // ... or an HTTP/2 preface that never ends.
    let mut tls = server.connect(b"h2").await.unwrap();
    tls.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    tls.flush().await.unwrap();
    assert!(
        read_until_closed(&mut tls).await.is_some(),
        "an unfinished HTTP/2 preface must be closed"
    );
    let ok = server.health().await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_body_gets_the_json_timeout_error() {
    let server = Server::start(short(Duration::from_secs(10), Duration::from_secs(1))).await;
    let head = format!(
        "POST /v1/safe/encrypt HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n",
        server.env.token
    );
    let answer = server.request(&head, b"{\"plaintext\": \"aGVs").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| {
        panic!("the timeout answer is not JSON ({e}): {answer}");
    });
    assert_eq!(
        json,
        serde_json::json!({"error": {"code": "timeout", "message": "the request took too long"}})
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("cache-control: no-store"),
        "{answer}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_concurrency_limit_are_shed() {
    let mut limits = short(Duration::from_secs(10), Duration::from_secs(60));
    limits.max_concurrent_requests = 1;
    let server = Server::start(limits).await;

    // One request holds the only slot: its body never ends.
    let mut holder = server.connect(b"http/1.1").await.unwrap();
    let head = format!(
        "POST /v1/safe/encrypt HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
        server.env.token
    );
    holder.write_all(head.as_bytes()).await.unwrap();
    holder.flush().await.unwrap();

    // Any other request is refused at once with 503 (until the holder is admitted the health
    // check may still pass: retry, but the server must start shedding).
    let shed = tokio::time::timeout(BOUND, async {
        loop {
            let answer = server.health().await;
            if answer.starts_with("HTTP/1.1 503") {
                return answer;
            }
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("no request was shed while the only slot was taken");
    let body = shed.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"]["code"], "unavailable", "{shed}");

    // The slot is free again once the holder goes away.
    drop(holder);
    let recovered = tokio::time::timeout(BOUND, async {
        loop {
            if server.health().await.starts_with("HTTP/1.1 200") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(recovered.is_ok(), "the server did not recover");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed() {
    let mut limits = short(Duration::from_secs(60), Duration::from_secs(60));
    limits.max_connections = 1;
    let server = Server::start(limits).await;

    let holder = server.connect(b"http/1.1").await.unwrap();
    // A second connection is closed before (or during) the handshake.
    let refused = tokio::time::timeout(BOUND, async {
        match server.connect(b"http/1.1").await {
            Err(_) => true,
            Ok(mut tls) => read_until_closed(&mut tls).await.is_some(),
        }
    })
    .await
    .expect("the second connection was neither refused nor closed");
    assert!(refused);

    drop(holder);
    let recovered = tokio::time::timeout(BOUND, async {
        loop {
            if let Ok(mut tls) = server.connect(b"http/1.1").await {
                let req =
                    b"GET /v1/sys/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
                if tls.write_all(req).await.is_ok() {
                    let answer = read_until_closed(&mut tls).await.unwrap_or_default();
                    if answer.starts_with(b"HTTP/1.1 200") {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(recovered.is_ok(), "the freed slot was not reused");
    server.stop().await;
}
