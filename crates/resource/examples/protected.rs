//! A tiny service protected by [`daas_resource::DpopLayer`]: `GET /v1/hello` answers the
//! caller's verified identity, and only to a client holding the key its token is bound to.
//!
//! ```text
//! DAAS_ISSUER=https://issuer.example.com DAAS_AUDIENCE=https://api.example.com \
//! DAAS_JWKS=issuer-jwks.json DAAS_ORIGIN=http://127.0.0.1:8080 \
//! cargo run -p daas-resource --example protected
//! ```
//!
//! Optional: `DAAS_LISTEN` (default `127.0.0.1:8080`), `DAAS_REDIS_URL` (a replay store shared
//! by replicas), `DAAS_STATUS_JWKS` + `DAAS_STATUS_ORIGIN` (check token status lists).
//! The integration tests in `tests/` serve [`app`] in-process.

use axum::routing::get;
use axum::{Json, Router};
use daas_resource::{Authenticated, DpopConfig, HttpStatusFetcher, StatusChecker};
use std::sync::Arc;

/// The example's routes behind the DPoP layer built from `config`.
pub fn app(config: DpopConfig) -> Router {
    Router::new()
        .route("/v1/hello", get(hello).post(hello))
        .layer(config.into_layer())
}

async fn hello(auth: Authenticated) -> Json<serde_json::Value> {
    let claims = auth.token().claims();
    Json(serde_json::json!({
        "sub": claims.sub,
        "scope": claims.scope.join(" "),
        "jkt": auth.proof().jkt(),
    }))
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn key_set(path: &str) -> Result<daas_token::KeySet, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    daas_resource::key_set_from_jwks(&bytes).map_err(|e| format!("{path}: {e}"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    tracing_subscriber::fmt().init();
    let mut config = DpopConfig::new(
        env("DAAS_ISSUER")?,
        env("DAAS_AUDIENCE")?,
        key_set(&env("DAAS_JWKS")?)?,
        &env("DAAS_ORIGIN")?,
    )
    .map_err(|e| e.to_string())?;
    if let Ok(url) = env("DAAS_REDIS_URL") {
        let store = daas_resource::RedisReplayStore::connect(&url)
            .await
            .map_err(|e| e.to_string())?;
        config = config.with_replay_store(Arc::new(store));
    }
    if let Ok(path) = env("DAAS_STATUS_JWKS") {
        let origin = env("DAAS_STATUS_ORIGIN")?;
        let fetcher =
            HttpStatusFetcher::new(std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let checker = StatusChecker::new(key_set(&path)?, [origin.as_str()], Arc::new(fetcher))
            .map_err(|e| e.to_string())?;
        config = config.with_status(checker);
    }
    let listen = env("DAAS_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("binding {listen}: {e}"))?;
    tracing::info!(%listen, "protected example listening");
    axum::serve(listener, app(config))
        .await
        .map_err(|e| e.to_string())
}
