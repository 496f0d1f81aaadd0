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
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Store(#[from] daas_store::StoreError),
    #[error("tls: {0}")]
    Tls(String),
    #[error("crypto: {0}")]
    Crypto(#[from] daas_crypto::CryptoError),
}

mod apps;
mod audit;
mod auth;
mod error;
mod extract;
mod files;
mod router;
mod safe;
mod secrets;
mod state;
mod sys;
pub mod tls;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use daas_crypto::Key256;
use daas_crypto::storage::{self, StorageKeys};
use daas_store::{Store, StoreUrl};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use error::ApiError;
pub use router::{ROUTES, router};
pub use state::{AppState, Engine};
pub use sys::OPENAPI;

/// Default request body limit (1 MiB); larger bodies get 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long in-flight requests may run after a shutdown signal.
const GRACE: Duration = Duration::from_secs(10);

fn config_err(msg: impl Into<String>) -> ServerError {
    ServerError::Config(msg.into())
}

/// Read the 32-byte key at `path`, or create it (0600) from the CSPRNG.
fn load_or_create_key(path: &Path) -> Result<Key256, ServerError> {
    if path.exists() {
        let bytes = Zeroizing::new(files::read_file(path)?);
        return Key256::from_slice(&bytes)
            .map_err(|_| config_err(format!("{} is not a 32-byte key", path.display())));
    }
    let key = Key256::generate()?;
    files::write_private(path, key.expose())?;
    Ok(key)
}

fn new_admin_token() -> Result<Zeroizing<String>, ServerError> {
    let secret: [u8; 32] = daas_crypto::random::bytes()?;
    Ok(Zeroizing::new(format!(
        "{}{}",
        auth::ADMIN_TOKEN_PREFIX,
        extract::b64u(&secret)
    )))
}

fn load_or_create_admin_token(path: &Path) -> Result<Zeroizing<String>, ServerError> {
    if path.exists() {
        let bytes = Zeroizing::new(files::read_file(path)?);
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| config_err(format!("{} is not utf-8", path.display())))?;
        return Ok(Zeroizing::new(text.trim().to_owned()));
    }
    let token = new_admin_token()?;
    files::write_private(path, token.as_bytes())?;
    Ok(token)
}

fn bind(listen: SocketAddr) -> Result<std::net::TcpListener, ServerError> {
    let listener = std::net::TcpListener::bind(listen).map_err(|source| ServerError::Io {
        path: PathBuf::from(listen.to_string()),
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServerError::Io {
            path: PathBuf::from(listen.to_string()),
            source,
        })?;
    Ok(listener)
}

/// The address clients should use: the bound one, with an unspecified IP replaced by loopback.
fn client_addr(bound: SocketAddr) -> String {
    let ip = if bound.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        bound.ip()
    };
    format!("https://{}", SocketAddr::new(ip, bound.port()))
}

async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let handle = axum_server::Handle::new();
    let on_signal = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        on_signal.graceful_shutdown(Some(GRACE));
    });
    let local = listener.local_addr().map_err(|source| ServerError::Io {
        path: PathBuf::from("listener"),
        source,
    })?;
    tracing::info!(addr = %local, "listening (https only)");
    axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )
    .handle(handle)
    .serve(router(state).into_make_service())
    .await
    .map_err(|source| ServerError::Io {
        path: PathBuf::from(local.to_string()),
        source,
    })
}

/// Prepare the dev data dir (storage key, CA, listener cert, admin token — created on first run,
/// reused afterwards), call `on_ready` with the environment to print once the port is bound,
/// and serve until `shutdown` resolves (graceful: in-flight requests finish).
pub async fn run_dev(
    opts: DevOptions,
    on_ready: impl FnOnce(&DevEnvironment) + Send,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    files::ensure_private_dir(&opts.data_dir)?;
    let data_dir = opts
        .data_dir
        .canonicalize()
        .map_err(|source| ServerError::Io {
            path: opts.data_dir.clone(),
            source,
        })?;
    let master = load_or_create_key(&data_dir.join("storage.key"))?;
    let token = load_or_create_admin_token(&data_dir.join("admin.token"))?;
    let tls_files = tls::ensure_generated(&data_dir, &[])?;
    let tls = tls::server_config(&tls_files.cert, &tls_files.key)?;
    let keys = StorageKeys::derive(&master);
    drop(master);
    let store = Store::open(&StoreUrl::Sqlite(data_dir.join("daas.db")), keys.clone()).await?;
    let engine = Engine::new(store, keys, auth::sha256(token.as_bytes()));
    let state = AppState::unsealed(engine, DEFAULT_MAX_BODY_BYTES);
    let listener = bind(opts.listen)?;
    let bound = listener.local_addr().map_err(|source| ServerError::Io {
        path: PathBuf::from("listener"),
        source,
    })?;
    let env = DevEnvironment {
        addr: client_addr(bound),
        token: token.to_string(),
        cacert: tls_files.ca_cert.clone(),
    };
    // `source <data-dir>/env` sets up a second shell (0600: it holds the dev admin token).
    let exports = Zeroizing::new(format!(
        "export DAAS_ADDR={}\nexport DAAS_TOKEN={}\nexport DAAS_CACERT={}\n",
        env.addr,
        env.token,
        env.cacert.display()
    ));
    files::write_private(&data_dir.join("env"), exports.as_bytes())?;
    on_ready(&env);
    serve(listener, tls, state, shutdown).await
}

/// The production configuration file (TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// e.g. `0.0.0.0:8200`
    pub listen: SocketAddr,
    /// Holds `seal.json` and, when no certificate is configured, the generated CA and certificate.
    pub data_dir: PathBuf,
    /// `sqlite:/path/daas.db` or `postgres://user:pass@host/db`; default `sqlite:<data_dir>/daas.db`.
    pub storage: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Extra DNS names / IPs for the generated listener certificate.
    #[serde(default)]
    pub tls_names: Vec<String>,
    pub max_body_bytes: Option<usize>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ServerError> {
        let text = files::read_file(path)?;
        let text = std::str::from_utf8(&text)
            .map_err(|_| config_err(format!("{} is not utf-8", path.display())))?;
        toml::from_str(text).map_err(|e| config_err(format!("{}: {}", path.display(), e.message())))
    }

    fn store_url(&self) -> Result<StoreUrl, ServerError> {
        match &self.storage {
            Some(url) => Ok(url.parse()?),
            None => Ok(StoreUrl::Sqlite(self.data_dir.join("daas.db"))),
        }
    }

    fn tls(&self) -> Result<(Arc<rustls::ServerConfig>, PathBuf), ServerError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok((tls::server_config(cert, key)?, cert.clone())),
            (None, None) => {
                let files = tls::ensure_generated(&self.data_dir, &self.tls_names)?;
                Ok((tls::server_config(&files.cert, &files.key)?, files.ca_cert))
            }
            _ => Err(config_err("tls_cert and tls_key go together")),
        }
    }
}

/// What `daas operator init` writes beside the data: never the key or a share.
#[derive(Debug, Serialize, Deserialize)]
struct SealFile {
    threshold: u8,
    shares: u8,
    /// hex of `storage::key_check(master)`
    key_check: String,
    /// hex SHA-256 of the admin token
    admin_token_sha256: String,
}

fn hex32(field: &str, text: &str) -> Result<[u8; 32], ServerError> {
    let bytes =
        hex::decode(text).map_err(|_| config_err(format!("seal.json: {field} is not hex")))?;
    bytes
        .try_into()
        .map_err(|_| config_err(format!("seal.json: {field} is not 32 bytes")))
}

/// Output of `daas operator init`: shown once, then gone.
#[derive(Debug, Serialize)]
pub struct InitOutput {
    pub unseal_shares: Vec<String>,
    pub threshold: u8,
    pub admin_token: String,
    pub cacert: PathBuf,
}

/// `daas operator init --config FILE [--shares N --threshold T]`: generate the storage key, split
/// it into Shamir shares, write the key check (`seal.json`), and return the shares and the admin
/// token. The storage key itself is never written anywhere.
pub fn operator_init(
    config_path: PathBuf,
    shares: u8,
    threshold: u8,
) -> Result<InitOutput, ServerError> {
    let config = FileConfig::load(&config_path)?;
    files::ensure_private_dir(&config.data_dir)?;
    let seal_path = config.data_dir.join("seal.json");
    if seal_path.exists() {
        return Err(config_err(format!(
            "{} exists: this deployment is already initialised",
            seal_path.display()
        )));
    }
    let master = Key256::generate()?;
    let parts = daas_crypto::shamir::split(&master, threshold, shares)?;
    let token = new_admin_token()?;
    let seal = SealFile {
        threshold,
        shares,
        key_check: hex::encode(storage::key_check(&master)),
        admin_token_sha256: hex::encode(auth::sha256(token.as_bytes())),
    };
    let (_tls, cacert) = config.tls()?;
    let json = serde_json::to_vec_pretty(&seal).map_err(|e| config_err(e.to_string()))?;
    files::write_public(&seal_path, &json)?;
    Ok(InitOutput {
        unseal_shares: parts.iter().map(|s| s.encode()).collect(),
        threshold,
        admin_token: token.to_string(),
        cacert,
    })
}

/// Production: `daas server --config FILE`. Starts sealed; `POST /v1/sys/unseal` takes Shamir
/// shares until the threshold is met, then the store opens and requests are served.
pub async fn run_config(
    config_path: PathBuf,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let config = FileConfig::load(&config_path)?;
    let seal_path = config.data_dir.join("seal.json");
    let seal_text = files::read_file(&seal_path).map_err(|_| {
        config_err(format!(
            "{} is missing: run daas operator init first",
            seal_path.display()
        ))
    })?;
    let seal: SealFile = serde_json::from_slice(&seal_text)
        .map_err(|e| config_err(format!("{}: {e}", seal_path.display())))?;
    let state = AppState::sealed(
        state::SealState {
            threshold: seal.threshold,
            key_check: hex32("key_check", &seal.key_check)?,
            store_url: config.store_url()?,
            admin_token_sha256: hex32("admin_token_sha256", &seal.admin_token_sha256)?,
            pending: tokio::sync::Mutex::new(Vec::new()),
        },
        config.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
    );
    let (tls, _cacert) = config.tls()?;
    let listener = bind(config.listen)?;
    tracing::info!(
        threshold = seal.threshold,
        "server is sealed: provide unseal shares with daas operator unseal"
    );
    serve(listener, tls, state, shutdown).await
}

/// Serve an already-built state on a listener (used by in-process tests and `--dev`).
pub async fn serve_state(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    serve(listener, tls, state, shutdown).await
}

/// The hash under which an admin token is recognised (for embedding the server in tests/tools).
pub fn admin_token_sha256(token: &str) -> [u8; 32] {
    auth::sha256(token.as_bytes())
}
