//! `daas token protect`: a DPoP-protected sample service, the resource side of the token tour.
//!
//! It is [`daas_resource::DpopLayer`] in front of one handler that answers every request with
//! the identity it verified. The issuer's keys (kept fresh across rotations) and status keys
//! come from the daas server at `DAAS_ADDR` (trusting `DAAS_CACERT`); every token must carry a status reference, which is
//! checked against the server's signed status list (cached for the list's `ttl`, or at most
//! `--status-max-age`; fail closed when it cannot be refreshed past the grace). Proof replays
//! are refused by an in-process cache, tokens presented again are not re-verified (the
//! verified-token cache). It serves plain HTTP: put it behind TLS outside a demo.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use axum::Json;
use daas_resource::{
    Authenticated, DpopConfig, HttpStatusFetcher, JwksFetcher as _, RemoteKeySet, StatusChecker,
};

use crate::token_cmd::key_set_from_jwks;

/// How long one fetch from the issuer (JWK set, status list) may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// `daas token protect --aud A [--listen ADDR] [--origin URL] [--status-max-age DURATION]`
#[derive(Debug, Clone, clap::Args)]
pub struct ProtectArgs {
    /// The audience this service accepts tokens for
    #[arg(long, value_name = "A")]
    pub aud: String,
    /// Where to listen (port 0: any free port; the address is printed on stderr)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8300")]
    pub listen: SocketAddr,
    /// The origin clients address, as they put it in their proofs' htu (default: http://ADDR)
    #[arg(long, value_name = "URL")]
    pub origin: Option<String>,
    /// Fetch the token status list at least this often, even if its ttl is longer
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::parse_duration)]
    pub status_max_age: Option<Duration>,
}

/// What every authenticated request is answered with: the identity the layer verified.
async fn whoami(auth: Authenticated) -> Json<serde_json::Value> {
    let claims = auth.token().claims();
    Json(serde_json::json!({
        "sub": claims.sub,
        "client_id": claims.client_id,
        "scope": claims.scope.join(" "),
        "jti": claims.jti,
        "jkt": auth.proof().jkt(),
    }))
}

/// Builds the layer's configuration from the server at `DAAS_ADDR`.
async fn config(args: &ProtectArgs, origin: &str) -> Result<DpopConfig> {
    let issuer = daas_sdk::Client::unauthenticated_from_env()
        .context("the token issuer (DAAS_ADDR) is needed for its keys")?
        .addr()
        .to_owned();
    let fetcher = Arc::new(
        match std::env::var_os(daas_sdk::ENV_CACERT) {
            Some(path) if !path.is_empty() => {
                let pem = std::fs::read(&path).with_context(|| {
                    format!(
                        "cannot read DAAS_CACERT {}",
                        std::path::Path::new(&path).display()
                    )
                })?;
                HttpStatusFetcher::with_ca(FETCH_TIMEOUT, &pem)
            }
            _ => HttpStatusFetcher::new(FETCH_TIMEOUT),
        }
        .map_err(|e| anyhow!("cannot set up fetching from the issuer: {e}"))?,
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Issuer keys by URL, kept fresh: a key rotation at the issuer needs no restart here.
    let issuer_keys = RemoteKeySet::fetch(
        format!("{issuer}/.well-known/jwks.json"),
        Arc::clone(&fetcher) as _,
        now,
    )
    .await
    .context("cannot fetch the issuer's JWK set")?;
    let status_keys = fetcher
        .fetch_jwks(&format!("{issuer}/v1/token/status/jwks"))
        .await
        .context("cannot fetch the status list keys")?;
    let status_keys = key_set_from_jwks(&status_keys)?;
    let mut checker =
        StatusChecker::new(status_keys, [issuer.as_str()], fetcher).map_err(|e| anyhow!("{e}"))?;
    if let Some(max_age) = args.status_max_age {
        checker = checker.with_max_age(max_age.as_secs());
    }
    Ok(DpopConfig::new(
        issuer,
        args.aud.clone(),
        issuer_keys.current().as_ref().clone(),
        origin,
    )
    .map_err(|e| anyhow!("{e}"))?
    .with_remote_keys(Arc::new(issuer_keys))
    .with_status(checker))
}

/// Serves until `shutdown` completes.
pub async fn protect(
    args: &ProtectArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let origin = args
        .origin
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
    let app = axum::Router::new()
        .fallback(whoami)
        .layer(config(args, &origin).await?.into_layer());
    crate::io::write_stderr(format!("listening on {origin} (audience {})\n", args.aud).as_bytes())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("the protected service failed")
}
