//! The HTTP surface: one router, JSON errors for every failure, no secret in any log line.
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};

use crate::error::ApiError;
use crate::state::AppState;
use crate::{apps, audit, identity, safe, secrets, sys, token_status, tokens};

/// Every (method, path) the router serves, in OpenAPI path syntax. `tests/openapi.rs` checks the
/// OpenAPI document against this table and that each entry is really served.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/sys/health"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/sys/whoami"),
    ("POST", "/v1/sys/unseal"),
    ("POST", "/v1/safe/encrypt"),
    ("POST", "/v1/safe/decrypt"),
    ("POST", "/v1/safe/objects"),
    ("GET", "/v1/safe/objects/{id}"),
    ("DELETE", "/v1/safe/objects/{id}"),
    ("GET", "/v1/safe/objects/{id}/share"),
    ("PUT", "/v1/safe/objects/{id}/access"),
    ("GET", "/v1/secrets"),
    ("PUT", "/v1/secrets/{name}"),
    ("GET", "/v1/secrets/{name}"),
    ("DELETE", "/v1/secrets/{name}"),
    ("POST", "/v1/apps"),
    ("GET", "/v1/apps"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/audit/verify"),
    ("GET", "/v1/identity/bundle"),
    ("POST", "/v1/identity/entries"),
    ("GET", "/v1/identity/entries"),
    ("DELETE", "/v1/identity/entries/{id}"),
    ("POST", "/v1/identity/join-tokens"),
    ("POST", "/v1/identity/nodes/attest"),
    ("GET", "/v1/identity/node/entries"),
    ("POST", "/v1/identity/node/svids"),
    ("POST", "/v1/identity/node/renew"),
    ("POST", "/v1/identity/node/denials"),
    ("POST", "/v1/identity/node/jwt-svids"),
    ("GET", "/v1/identity/node/bundle"),
    ("POST", "/v1/identity/apps"),
    ("POST", "/v1/identity/apps/{app}/instances"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("POST", "/v1/token"),
    ("POST", "/v1/token/replace"),
    ("POST", "/v1/token/revoke"),
    ("POST", "/v1/token/keys/rotate"),
    ("GET", "/v1/token/status"),
    ("GET", "/v1/token/status/jwks"),
    ("POST", "/v1/token/status/staple"),
];

pub fn router(state: AppState) -> Router {
    let max_body = state.0.max_body_bytes;
    Router::new()
        .route("/v1/sys/health", get(sys::health))
        .route("/v1/openapi.json", get(sys::openapi))
        .route("/v1/sys/whoami", get(sys::whoami))
        .route("/v1/sys/unseal", post(sys::unseal))
        .route("/v1/safe/encrypt", post(safe::encrypt))
        .route("/v1/safe/decrypt", post(safe::decrypt))
        .route("/v1/safe/objects", post(safe::deposit))
        .route(
            "/v1/safe/objects/{id}",
            get(safe::get_object).delete(safe::delete_object),
        )
        .route("/v1/safe/objects/{id}/share", get(safe::fetch_share))
        .route("/v1/safe/objects/{id}/access", put(safe::set_access))
        .route("/v1/secrets", get(secrets::list))
        .route(
            "/v1/secrets/{*name}",
            put(secrets::put).get(secrets::get).delete(secrets::delete),
        )
        .route("/v1/apps", post(apps::create).get(apps::list))
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/identity/bundle", get(identity::bundle))
        .route(
            "/v1/identity/entries",
            post(identity::create_entry).get(identity::list_entries),
        )
        .route(
            "/v1/identity/entries/{id}",
            axum::routing::delete(identity::delete_entry),
        )
        .route(
            "/v1/identity/join-tokens",
            post(identity::create_join_token),
        )
        .route("/v1/identity/nodes/attest", post(identity::attest_node))
        .route("/v1/identity/node/entries", get(identity::node_entries))
        .route(
            "/v1/identity/node/svids",
            post(identity::issue_workload_svid),
        )
        .route("/v1/identity/node/renew", post(identity::renew_node_svid))
        .route("/v1/identity/node/denials", post(identity::report_denial))
        .route(
            "/v1/identity/node/jwt-svids",
            post(identity::issue_workload_jwt_svid),
        )
        .route("/v1/identity/node/bundle", get(identity::node_bundle))
        .route("/v1/identity/apps", post(identity::register_app))
        .route(
            "/v1/identity/apps/{app}/instances",
            post(identity::issue_instance_document),
        )
        .route(tokens::JWKS_PATH, get(tokens::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(tokens::metadata),
        )
        .route(tokens::TOKEN_PATH, post(tokens::issue))
        .route(tokens::REPLACE_PATH, post(tokens::replace))
        .route("/v1/token/revoke", post(tokens::revoke))
        .route("/v1/token/keys/rotate", post(tokens::rotate_keys))
        .route(tokens::STATUS_PATH, get(tokens::status_list))
        .route(tokens::STATUS_JWKS_PATH, get(tokens::status_jwks))
        .route(token_status::STAPLE_PATH, post(token_status::staple))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

/// Logs the route template (never the concrete path: secret names live there), status and
/// latency; marks every response `no-store`.
async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |p| p.as_str().to_owned());
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let status = response.status().as_u16();
    let micros = started.elapsed().as_micros();
    if status >= 500 {
        tracing::warn!(%method, route, status, micros, "request");
    } else {
        tracing::debug!(%method, route, status, micros, "request");
    }
    response
}
