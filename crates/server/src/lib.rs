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
mod identity;
mod router;
mod safe;
mod secrets;
mod state;
mod sys;
pub mod tls;
mod token_status;
mod tokens;

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
pub use sys::{OPENAPI, unseal_share_check};
pub use tokens::{ReplayRedisUrl, TokenConfig};

/// Default request body limit (1 MiB); larger bodies get 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long in-flight requests may run after a shutdown signal.
const GRACE: Duration = Duration::from_secs(10);

/// Connection and request limits of the HTTPS listener. `Default` is what `daas server` uses;
/// tests shorten the timeouts through [`run_dev_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeLimits {
    /// Open connections at most; a connection over the cap is closed before the TLS handshake.
    pub max_connections: usize,
    /// Deadline of the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Deadline for a complete HTTP/1 request head (also between keep-alive requests, and for
    /// the first bytes after the handshake, whatever the protocol).
    pub header_read_timeout: Duration,
    /// Deadline of a whole request: reading its body, handling it, producing the response.
    pub request_timeout: Duration,
    /// Requests handled at once; more are refused at once (`503 unavailable`), not queued.
    pub max_concurrent_requests: usize,
    /// HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 keep-alive: ping an idle connection this often ...
    pub h2_keep_alive_interval: Duration,
    /// ... and close it when a ping is not answered within this.
    pub h2_keep_alive_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 1024,
            h2_max_concurrent_streams: 100,
            h2_keep_alive_interval: Duration::from_secs(20),
            h2_keep_alive_timeout: Duration::from_secs(20),
        }
    }
}

fn config_err(msg: impl Into<String>) -> ServerError {
    ServerError::Config(msg.into())
}

/// Read the 32-byte key at `path` (refused unless a private file of ours), or create it (0600)
/// from the CSPRNG.
fn load_or_create_key(path: &Path) -> Result<Key256, ServerError> {
    if files::exists(path) {
        let bytes = Zeroizing::new(files::read_private(path)?);
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
    if files::exists(path) {
        let bytes = Zeroizing::new(files::read_private(path)?);
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
    serve_with(listener, tls, state, &ServeLimits::default(), shutdown).await
}

/// The answer to a request that hit the request timeout or was shed under load (these never
/// reach the router, so they get its `no-store` here).
async fn limit_error(err: tower::BoxError) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let mut response = if err.is::<tower::timeout::error::Elapsed>() {
        tracing::warn!("request timed out");
        // Not `unavailable` ("nothing was changed"): a write may or may not have been applied.
        let body = serde_json::json!({
            "error": {"code": "timeout", "message": "the request took too long"}
        });
        (http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        tracing::warn!("overloaded: request refused");
        ApiError::Unavailable.into_response()
    } else {
        error::internal(err).into_response()
    };
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

async fn serve_with(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    limits: &ServeLimits,
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
    let acceptor = tls::GuardedAcceptor::new(
        tls,
        limits.max_connections,
        limits.tls_handshake_timeout,
        limits.header_read_timeout,
    );
    // Whole-router layers (one semaphore for the server, not one per route): shed when
    // `max_concurrent_requests` are in flight, bound each request's time, answer both in JSON.
    let app = tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(limit_error))
        .load_shed()
        .concurrency_limit(limits.max_concurrent_requests)
        .timeout(limits.request_timeout)
        .service(router(state));
    let mut server = axum_server::from_tcp(listener)
        .acceptor(acceptor)
        .handle(handle);
    let builder = server.http_builder();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .keep_alive_interval(limits.h2_keep_alive_interval)
        .keep_alive_timeout(limits.h2_keep_alive_timeout);
    server
        .serve(axum::ServiceExt::<axum::extract::Request>::into_make_service(app))
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
    run_dev_with(opts, ServeLimits::default(), on_ready, shutdown).await
}

/// [`run_dev`] with explicit connection and request limits.
pub async fn run_dev_with(
    opts: DevOptions,
    limits: ServeLimits,
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
    let bundle = tls::TrustBundle::default();
    let tls = tls::server_config_with_svids(&tls_files.cert, &tls_files.key, bundle.clone())?;
    let keys = StorageKeys::derive(&master);
    drop(master);
    let store = Store::open(&StoreUrl::Sqlite(data_dir.join("daas.db")), keys.clone()).await?;
    let engine = Engine::new(store, keys, auth::sha256(token.as_bytes())).with_bundle(bundle);
    let state = AppState::unsealed(engine, DEFAULT_MAX_BODY_BYTES);
    if let Ok(engine) = state.engine() {
        engine.load_identity_in_background();
    }
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
    serve_with(listener, tls, state, &limits, shutdown).await
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
    /// The SPIFFE trust domain this server is the authority of (default `daas.local`).
    pub trust_domain: Option<String>,
    /// The access-token issuer URL, `https://host[:port]` as clients reach the server
    /// (default: derived from each request's host; see docs/api.md).
    pub token_issuer: Option<String>,
    /// Whether `POST /v1/token` and `/v1/token/replace` require a DPoP server nonce
    /// (RFC 9449 §8; default true).
    pub token_dpop_nonce: Option<bool>,
    /// `redis://...`: the proof replay store of the token endpoints, shared by every replica
    /// (default: in process, which protects one replica only).
    pub token_replay_redis: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ServerError> {
        let text = files::read_file(path)?;
        let text = std::str::from_utf8(&text)
            .map_err(|_| config_err(format!("{} is not utf-8", path.display())))?;
        toml::from_str(text).map_err(|e| config_err(format!("{}: {}", path.display(), e.message())))
    }

    fn trust_domain(&self) -> Result<daas_identity::TrustDomain, ServerError> {
        match &self.trust_domain {
            Some(name) => daas_identity::TrustDomain::new(name)
                .map_err(|e| config_err(format!("trust_domain: {e}"))),
            None => Ok(identity::default_trust_domain()),
        }
    }

    fn token_config(&self) -> Result<TokenConfig, ServerError> {
        if let Some(issuer) = &self.token_issuer {
            TokenConfig::validate_issuer(issuer).map_err(config_err)?;
        }
        let replay_redis = self
            .token_replay_redis
            .as_deref()
            .map(tokens::ReplayRedisUrl::new)
            .transpose()
            .map_err(config_err)?;
        let defaults = TokenConfig::default();
        Ok(TokenConfig {
            issuer: self.token_issuer.clone(),
            require_nonce: self.token_dpop_nonce.unwrap_or(defaults.require_nonce),
            replay_redis,
            ..defaults
        })
    }

    fn store_url(&self) -> Result<StoreUrl, ServerError> {
        match &self.storage {
            Some(url) => Ok(url.parse()?),
            None => Ok(StoreUrl::Sqlite(self.data_dir.join("daas.db"))),
        }
    }

    fn tls(
        &self,
        bundle: &tls::TrustBundle,
    ) -> Result<(Arc<rustls::ServerConfig>, PathBuf), ServerError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok((
                tls::server_config_with_svids(cert, key, bundle.clone())?,
                cert.clone(),
            )),
            (None, None) => {
                let files = tls::ensure_generated(&self.data_dir, &self.tls_names)?;
                Ok((
                    tls::server_config_with_svids(&files.cert, &files.key, bundle.clone())?,
                    files.ca_cert,
                ))
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
    /// share index -> hex of `sys::unseal_share_check(share)`: each unseal share proves itself
    #[serde(default)]
    share_checks: std::collections::BTreeMap<String, String>,
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
        share_checks: sys::encode_share_checks(&parts),
    };
    let (_tls, cacert) = config.tls(&tls::TrustBundle::default())?;
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
    // The data dir holds seal.json and possibly the CA key: refuse one others can read or plant in.
    files::ensure_private_dir(&config.data_dir)?;
    let seal_path = config.data_dir.join("seal.json");
    let seal_text = files::read_file(&seal_path).map_err(|_| {
        config_err(format!(
            "{} is missing: run daas operator init first",
            seal_path.display()
        ))
    })?;
    let seal: SealFile = serde_json::from_slice(&seal_text)
        .map_err(|e| config_err(format!("{}: {e}", seal_path.display())))?;
    let bundle = tls::TrustBundle::default();
    let state = AppState::sealed(
        state::SealState {
            threshold: seal.threshold,
            key_check: hex32("key_check", &seal.key_check)?,
            store_url: config.store_url()?,
            admin_token_sha256: hex32("admin_token_sha256", &seal.admin_token_sha256)?,
            share_checks: sys::decode_share_checks(&seal.share_checks, seal.shares)
                .map_err(config_err)?,
            pending: tokio::sync::Mutex::new(Vec::new()),
            trust_domain: config.trust_domain()?,
            token_config: config.token_config()?,
            bundle: bundle.clone(),
        },
        config.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
    );
    let (tls, _cacert) = config.tls(&bundle)?;
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
