//! In-process test server: the real router over real TLS on a loopback port, in a temp dir.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness: a failed step should panic with its location"
)]
#![expect(
    dead_code,
    reason = "each test binary uses a different subset of the harness"
)]

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub struct TestServer {
    pub addr: String,
    pub token: String,
    pub cacert: PathBuf,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub fn client_for(cacert: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read(cacert).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .https_only(true)
        .build()
        .unwrap()
}

impl TestServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let opts = daas_server::DevOptions {
            data_dir: dir.path().join("data"),
            listen: "127.0.0.1:0".parse().unwrap(),
        };
        let task = tokio::spawn(async move {
            let result = daas_server::run_dev(
                opts,
                move |env| {
                    let _ = tx.send(env.clone());
                },
                async move {
                    let _ = stop_rx.await;
                },
            )
            .await;
            result.unwrap();
        });
        let env = rx.await.expect("server did not start");
        let client = client_for(&env.cacert);
        Self {
            addr: env.addr,
            token: env.token,
            cacert: env.cacert,
            dir,
            client,
            shutdown: Some(stop_tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.addr, path)
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data").join("daas.db")
    }

    /// Send a request and return (status, json body).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_with(&self.client, method, path, token, body)
            .await
    }

    /// [`Self::call`] through another client (one with a TLS client certificate, say).
    pub async fn call_with(
        &self,
        client: &reqwest::Client,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = client.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        // Bodies of another declared type (e.g. `application/statuslist+jwt`) come back as a
        // JSON string; anything else must be JSON.
        let other_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| !t.starts_with("application/json"));
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else if other_type {
            Value::String(text)
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-json body: {text}"))
        };
        (status, json)
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, Some(&self.token.clone()), body)
            .await
    }

    pub async fn encrypt(
        &self,
        token: &str,
        plaintext: &[u8],
        access: &[&str],
    ) -> (String, String) {
        let (status, body) = self
            .call(
                "POST",
                "/v1/safe/encrypt",
                Some(token),
                Some(json!({"plaintext": b64(plaintext), "access": access})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        (
            body["ciphertext"].as_str().unwrap().to_owned(),
            body["share"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn decrypt(&self, token: &str, ciphertext: &str, share: &str) -> (u16, Value) {
        self.call(
            "POST",
            "/v1/safe/decrypt",
            Some(token),
            Some(json!({"ciphertext": ciphertext, "share": share})),
        )
        .await
    }

    /// The audit entries of `action` (the first 1000 entries of the log), oldest first.
    pub async fn audit_entries(&self, action: &str) -> Vec<Value> {
        let (status, body) = self.admin("GET", "/v1/audit?limit=1000", None).await;
        assert_eq!(status, 200, "{body}");
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    }

    pub async fn create_app(&self, name: &str) -> String {
        let (status, body) = self
            .admin("POST", "/v1/apps", Some(json!({"name": name})))
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// Assert the body is our JSON error with this code and nothing else.
pub fn assert_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
}
