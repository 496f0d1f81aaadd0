//! Start the real `daas server --dev` on a data directory of the test's choosing (so a test can
//! restart it on the same data, or run the README tour beside it).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failed step should panic with its location"
)]
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of this module"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

pub const BIN: &str = env!("CARGO_BIN_EXE_daas");

/// How to talk to a running server.
pub struct Conn {
    pub addr: String,
    pub token: String,
    pub client: reqwest::Client,
}

pub fn start(data_dir: &Path) -> (Child, Arc<Conn>) {
    let mut child = Command::new(BIN)
        .args(["server", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut addr, mut token, mut cacert) = (None, None, None);
    while addr.is_none() || token.is_none() || cacert.is_none() {
        let line = lines
            .next()
            .expect("server exited before printing its exports")
            .unwrap();
        if let Some(v) = line.strip_prefix("export DAAS_ADDR=") {
            addr = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("export DAAS_TOKEN=") {
            token = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("export DAAS_CACERT=") {
            cacert = Some(PathBuf::from(v));
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let pem = std::fs::read(cacert.unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    (
        child,
        Arc::new(Conn {
            addr: addr.unwrap(),
            token: token.unwrap(),
            client,
        }),
    )
}
