//! Shamir unseal of a production (`operator init` + `run_config`) server, in process over TLS.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail by panicking"
)]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::assert_error;
use daas_crypto::shamir::ShamirShare;
use serde_json::{Value, json};

struct Sealed {
    addr: String,
    client: reqwest::Client,
    shares: Vec<String>,
    token: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), daas_server::ServerError>>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `operator init` a 2-of-3 deployment in a temp dir; returns (dir, config path, port, init).
fn init() -> (tempfile::TempDir, PathBuf, u16, daas_server::InitOutput) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("daas.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\n",
            dir.path().join("data").to_string_lossy()
        ),
    )
    .unwrap();
    let out = daas_server::operator_init(config.clone(), 3, 2).unwrap();
    (dir, config, port, out)
}

fn seal_json(dir: &Path) -> PathBuf {
    dir.join("data").join("seal.json")
}

impl Sealed {
    async fn start(
        dir: tempfile::TempDir,
        config: PathBuf,
        port: u16,
        out: daas_server::InitOutput,
    ) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(daas_server::run_config(config, async move {
            let _ = rx.await;
        }));
        let s = Self {
            addr: format!("https://127.0.0.1:{port}"),
            client: common::client_for(&out.cacert),
            shares: out.unseal_shares,
            token: out.admin_token,
            shutdown: Some(tx),
            task,
            _dir: dir,
        };
        for _ in 0..200 {
            if s.client.get(s.url("/v1/sys/health")).send().await.is_ok() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the sealed server did not start");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    async fn unseal(&self, share: &str) -> (u16, Value) {
        let r = self
            .client
            .post(self.url("/v1/sys/unseal"))
            .json(&json!({ "share": share }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn whoami(&self) -> u16 {
        self.client
            .get(self.url("/v1/sys/whoami"))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

fn progress(sealed: bool, progress: u64) -> Value {
    json!({"sealed": sealed, "progress": progress, "threshold": 2})
}

/// A well-formed share that is not one of the deployment's.
fn forged(index: u8) -> String {
    ShamirShare {
        threshold: 2,
        index,
        value: daas_crypto::Key256::generate().unwrap(),
    }
    .encode()
}

#[tokio::test]
async fn forged_unseal_share_is_rejected_and_keeps_progress() {
    let (dir, config, port, out) = init();
    let seal: Value =
        serde_json::from_slice(&std::fs::read(seal_json(dir.path())).unwrap()).unwrap();
    assert_eq!(
        seal["share_checks"].as_object().map(|m| m.len()),
        Some(3),
        "{seal}"
    );
    let s = Sealed::start(dir, config, port, out).await;

    assert_eq!(s.unseal(&s.shares[0]).await, (200, progress(true, 1)));
    // Anyone can reach this endpoint: forged shares (a free index, an unknown index, the index
    // already given) are refused without touching the operators' progress.
    for forged in [forged(3), forged(9), forged(1)] {
        let (status, body) = s.unseal(&forged).await;
        assert_error(status, &body, 400, "invalid_share");
    }
    assert_eq!(s.whoami().await, 503, "still sealed");
    // The legitimate second share completes the unseal: progress survived.
    assert_eq!(s.unseal(&s.shares[2]).await, (200, progress(false, 0)));
    assert_eq!(s.whoami().await, 200);
    s.stop().await;
}

/// Every share passes its own check, yet they do not give the key the key check describes: only
/// possible with a corrupt seal.json. That is an internal error, and progress starts over.
#[tokio::test]
async fn unseal_with_inconsistent_seal_json_is_internal_and_resets() {
    let (dir, config, port, out) = init();
    let path = seal_json(dir.path());
    let mut seal: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    seal["key_check"] = json!(hex::encode([7u8; 32]));
    std::fs::write(&path, serde_json::to_vec(&seal).unwrap()).unwrap();
    let s = Sealed::start(dir, config, port, out).await;

    assert_eq!(s.unseal(&s.shares[0]).await, (200, progress(true, 1)));
    let (status, body) = s.unseal(&s.shares[1]).await;
    assert_error(status, &body, 500, "internal");
    // Reset: the first share counts as the first again.
    assert_eq!(s.unseal(&s.shares[0]).await, (200, progress(true, 1)));
    s.stop().await;
}

/// A seal.json without per-share checks (written before they existed) is refused at startup
/// rather than served with unverifiable shares.
#[tokio::test]
async fn seal_json_without_share_checks_is_refused_at_startup() {
    let (dir, config, _port, _out) = init();
    let path = seal_json(dir.path());
    let mut seal: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    seal.as_object_mut().unwrap().remove("share_checks");
    std::fs::write(&path, serde_json::to_vec(&seal).unwrap()).unwrap();
    let err = daas_server::run_config(config, async {})
        .await
        .expect_err("must refuse to start");
    assert!(err.to_string().contains("share_checks"), "{err}");
}
