//! Server lifecycle on the real binary: SIGTERM drains in-flight requests and exits cleanly, and
//! `daas audit verify` fails (exit ≠ 0, one stderr line) when the stored chain was tampered with.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use support::{BIN, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, conn) = start(&dir.path().join("data"));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (conn, ok) = (Arc::clone(&conn), Arc::clone(&ok));
        workers.push(tokio::spawn(async move {
            // Each worker keeps a request in flight until the server stops accepting.
            loop {
                let sent = conn
                    .client
                    .post(format!("{}/v1/safe/encrypt", conn.addr))
                    .bearer_auth(&conn.token)
                    .json(&json!({"plaintext": "aGVsbG8"}))
                    .send()
                    .await;
                match sent {
                    Ok(resp) => {
                        // A response that started must complete with a full, valid body.
                        assert_eq!(resp.status(), 200);
                        let body: serde_json::Value = resp.json().await.unwrap();
                        assert!(
                            body["share"]
                                .as_str()
                                .unwrap()
                                .starts_with("daas:share:v1:")
                        );
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => break, // connection refused/closed after shutdown began
                }
            }
        }));
    }
    while ok.load(Ordering::Relaxed) < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(
        exit.success(),
        "graceful shutdown must exit 0, got {exit:?}"
    );
    for w in workers {
        w.await.unwrap();
    }
}

/// A request the server is in the middle of reading when SIGTERM arrives is still answered in
/// full (a server that exits at once, or drops open requests, fails this), then the server exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_half_sent_when_sigterm_arrives_is_still_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, conn) = start(&data);
    let port: u16 = conn.addr.rsplit(':').next().unwrap().parse().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(data.join("ca.pem")).unwrap();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let body = br#"{"plaintext": "aGVsbG8gZHVyaW5nIHNodXRkb3du"}"#;
    let (first, rest) = body.split_at(10);
    let head = format!(
        "POST /v1/safe/encrypt HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        conn.token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    stream.flush().await.unwrap();
    // Let the server read the head (ordering only; nothing is asserted about time).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    // The server is shutting down now: it must still read the rest and answer.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stream.write_all(rest).await.unwrap();
    stream.flush().await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&response);
        if text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(
        json["share"]
            .as_str()
            .unwrap()
            .starts_with("daas:share:v1:"),
        "{json}"
    );
    assert!(
        json["ciphertext"].as_str().unwrap().starts_with("daas:v1:"),
        "{json}"
    );
    drop(stream);
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(
        exit.success(),
        "graceful shutdown must exit 0, got {exit:?}"
    );
}

#[test]
fn audit_verify_fails_on_a_tampered_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, conn) = start(&data);
    let cacert = data.join("ca.pem");
    let run = |args: &[&str], stdin: &[u8]| {
        use std::io::Write;
        use std::process::Stdio;
        let mut c = Command::new(BIN)
            .args(args)
            .env("DAAS_ADDR", &conn.addr)
            .env("DAAS_TOKEN", &conn.token)
            .env("DAAS_CACERT", &cacert)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin).unwrap();
        c.wait_with_output().unwrap()
    };
    for i in 0..3 {
        assert!(
            run(&["encrypt"], format!("message {i}").as_bytes())
                .status
                .success()
        );
    }
    let good = run(&["audit", "verify"], b"");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );

    // An operator with database access rewrites history: the outcome of the second entry.
    let db = rusqlite::Connection::open(data.join("daas.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let changed = db
        .execute("UPDATE audit SET outcome = 'denied' WHERE seq = 2", [])
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    let bad = run(&["audit", "verify"], b"");
    assert!(
        !bad.status.success(),
        "a tampered chain must fail verification"
    );
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(
        stderr.contains('2'),
        "names the first broken entry: {stderr}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
