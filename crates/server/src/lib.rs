//! daas control plane: an axum router over the safe engine, stored secrets, apps and audit,
//! served on HTTPS only (rustls, aws-lc-rs).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

/// Options of `daas server --dev`.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
}

/// What `--dev` prints so a shell can use the server (`DAAS_ADDR`, `DAAS_TOKEN`, `DAAS_CACERT`).
#[derive(Debug, Clone)]
pub struct DevEnvironment {
    pub addr: String,
    /// The admin token (a secret: printed once to the operator's terminal, never logged).
    pub token: String,
    pub cacert: PathBuf,
}

/// Errors of starting or running the server (the binary wraps them in anyhow).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("i/o on {path}: {source}")]
    Io { path: PathBuf, #[source] source: std::io::Error },
    #[error("storage: {0}")]
    Store(#[from] daas_store::StoreError),
    #[error("tls: {0}")]
    Tls(String),
    #[error("crypto: {0}")]
    Crypto(#[from] daas_crypto::CryptoError),
}

/// Prepare the dev data dir (storage key, CA, listener cert, admin token — created on first run,
/// reused afterwards) and return the environment to print plus a future that serves until
/// `shutdown` resolves (graceful: in-flight requests finish).
pub async fn run_dev(
    _opts: DevOptions,
    _on_ready: impl FnOnce(&DevEnvironment) + Send,
    _shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Err(ServerError::Config("not yet built".into()))
}

/// Production: `daas server --config FILE` (TOML). Starts sealed when the storage key is
/// Shamir-split; `POST /v1/sys/unseal` takes shares until the threshold is met.
pub async fn run_config(
    _config_path: PathBuf,
    _shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Err(ServerError::Config("not yet built".into()))
}

/// `daas operator init --config FILE [--shares N --threshold T]`: generate the storage key, write
/// its key check, and return the Shamir shares (text form `daas:unseal:v1:…`) to hand to operators.
pub fn operator_init(_config_path: PathBuf, _shares: u8, _threshold: u8) -> Result<Vec<String>, ServerError> {
    Err(ServerError::Config("not yet built".into()))
}
