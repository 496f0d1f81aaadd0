//! Request body limits at their exact boundary (the default 1 MiB and a configured
//! `max_body_bytes`), and plain HTTP on the HTTPS port never getting an HTTP answer.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail by panicking"
)]
mod common;

use std::time::Duration;

use common::{TestServer, client_for};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// `json` followed by JSON whitespace up to exactly `len` bytes (still valid JSON).
fn padded(json: &str, len: usize) -> Vec<u8> {
    assert!(json.len() <= len, "{} > {len}", json.len());
    let mut out = json.as_bytes().to_vec();
    out.resize(len, b' ');
    out
}

async fn post_raw(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let len = body.len();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("non-json answer to a {len}-byte body: {status} {text}"));
    (status, json)
}

fn too_large() -> Value {
    json!({"error": {"code": "payload_too_large", "message": "request body too large"}})
}

#[tokio::test]
async fn default_body_limit_is_exactly_one_mib() {
    assert_eq!(daas_server::DEFAULT_MAX_BODY_BYTES, 1024 * 1024);
    let s = TestServer::start().await;
    let limit = daas_server::DEFAULT_MAX_BODY_BYTES;
    let encrypt = r#"{"plaintext":"aGk"}"#;

    // Exactly the limit: accepted and served.
    let (status, body) = post_raw(
        &s.client,
        s.url("/v1/safe/encrypt"),
        Some(&s.token),
        padded(encrypt, limit),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["ciphertext"].as_str().unwrap().starts_with("daas:v1:"),
        "{body}"
    );
    // One byte more: 413 with exactly our JSON error.
    let (status, body) = post_raw(
        &s.client,
        s.url("/v1/safe/encrypt"),
        Some(&s.token),
        padded(encrypt, limit + 1),
    )
    .await;
    assert_eq!((status, body), (413, too_large()));
    // Same boundary on another JSON route (stored secrets).
    let put = r#"{"value":"aGk"}"#;
    let (status, body) = post_put(&s, "/v1/secrets/limit/probe", padded(put, limit)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 1, "{body}");
    let (status, body) = post_put(&s, "/v1/secrets/limit/probe", padded(put, limit + 1)).await;
    assert_eq!((status, body), (413, too_large()));
    s.stop().await;
}

async fn post_put(s: &TestServer, path: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = s
        .client
        .put(s.url(path))
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A production server (`operator init` + `run_config`) with `max_body_bytes` configured: the
/// limit holds at its exact boundary, sealed (on the unauthenticated unseal route) and unsealed.
#[tokio::test]
async fn configured_max_body_bytes_holds_at_the_boundary() {
    const LIMIT: usize = 2048;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("daas.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\nmax_body_bytes = {LIMIT}\n",
            dir.path().join("data").to_string_lossy()
        ),
    )
    .unwrap();
    let init = daas_server::operator_init(config.clone(), 3, 2).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daas_server::run_config(config, async move {
        let _ = stop_rx.await;
    }));
    let client = client_for(&init.cacert);
    let addr = format!("https://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..400 {
        if client
            .get(format!("{addr}/v1/sys/health"))
            .send()
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "the configured server did not start");
    let unseal = format!("{addr}/v1/sys/unseal");

    // Sealed: the unseal route (no token) has the configured limit.
    let share0 = json!({"share": init.unseal_shares[0]}).to_string();
    let (status, body) = post_raw(&client, unseal.clone(), None, padded(&share0, LIMIT + 1)).await;
    assert_eq!((status, body), (413, too_large()));
    let (status, body) = post_raw(&client, unseal.clone(), None, padded(&share0, LIMIT)).await;
    assert_eq!(
        (status, body),
        (200, json!({"sealed": true, "progress": 1, "threshold": 2}))
    );
    let share1 = json!({"share": init.unseal_shares[1]}).to_string();
    let (status, body) = post_raw(&client, unseal, None, share1.into_bytes()).await;
    assert_eq!(
        (status, body),
        (200, json!({"sealed": false, "progress": 0, "threshold": 2})),
    );

    // Unsealed: the same boundary on an authenticated route; the default limit is not in force.
    let encrypt = format!("{addr}/v1/safe/encrypt");
    let token = init.admin_token.clone();
    let small = r#"{"plaintext":"aGk"}"#;
    let (status, body) =
        post_raw(&client, encrypt.clone(), Some(&token), padded(small, LIMIT)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["share"]
            .as_str()
            .unwrap()
            .starts_with("daas:share:v1:"),
        "{body}"
    );
    for len in [LIMIT + 1, daas_server::DEFAULT_MAX_BODY_BYTES] {
        let (status, body) =
            post_raw(&client, encrypt.clone(), Some(&token), padded(small, len)).await;
        assert_eq!((status, body), (413, too_large()), "{len} bytes");
    }
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
}

/// Plain-text HTTP sent to the HTTPS port gets no HTTP answer: the connection is closed, at
/// most after a TLS alert record.
#[tokio::test]
async fn plain_http_is_refused() {
    let s = TestServer::start().await;
    let hostport = s.addr.strip_prefix("https://").unwrap().to_owned();
    let mut stream = tokio::net::TcpStream::connect(&hostport).await.unwrap();
    stream
        .write_all(
            format!("GET /v1/sys/health HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    // The server must close the connection itself; the guard only keeps a broken server from
    // hanging the test (the handshake and header timeouts are 10 s).
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept a plain-http connection open");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        !text.contains("HTTP/1."),
        "an http answer over plain text: {text:?}"
    );
    assert!(!text.contains("200"), "{text:?}");
    // Nothing, or TLS alert records only (content type 21, version 3.x).
    if !answer.is_empty() {
        assert_eq!(answer[0], 0x15, "not a TLS alert: {answer:?}");
        assert_eq!(answer[1], 0x03, "not a TLS record: {answer:?}");
    }
    // The server is unharmed: HTTPS on the same port still works.
    let (status, body) = s.call("GET", "/v1/sys/health", None, None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    s.stop().await;
}
