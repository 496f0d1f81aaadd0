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
/// OpenAPI document against this table and that each entry is really served; the unit test at
/// the end of this file checks that `router` registers exactly these.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `ROUTES` (which the OpenAPI test checks the document against) is exactly what `router`
    /// registers: read from this file's source, so a route added to the router and forgotten
    /// in the table (or the reverse) fails here.
    #[test]
    fn route_table_is_exactly_what_the_router_registers() {
        let src = include_str!("router.rs");
        let start = src.find("Router::new()").unwrap();
        let end = src[start..].find(".fallback(").unwrap() + start;
        let constants = [
            ("tokens::JWKS_PATH", tokens::JWKS_PATH),
            ("tokens::TOKEN_PATH", tokens::TOKEN_PATH),
            ("tokens::REPLACE_PATH", tokens::REPLACE_PATH),
            ("tokens::STATUS_PATH", tokens::STATUS_PATH),
            ("tokens::STATUS_JWKS_PATH", tokens::STATUS_JWKS_PATH),
            ("token_status::STAPLE_PATH", token_status::STAPLE_PATH),
        ];
        let mut registered = Vec::new();
        for call in src[start..end].split(".route(").skip(1) {
            let (path, handlers) = call.split_once(',').unwrap();
            let path = path.trim();
            let path = match path.strip_prefix('"') {
                Some(literal) => literal.trim_end_matches('"').to_owned(),
                None => constants
                    .iter()
                    .find(|(name, _)| *name == path)
                    .unwrap_or_else(|| panic!("add {path} to this test's constants"))
                    .1
                    .to_owned(),
            };
            // OpenAPI has no wildcard segments.
            let path = path.replace("{*", "{");
            for (function, method) in [
                ("get(", "GET"),
                ("post(", "POST"),
                ("put(", "PUT"),
                ("delete(", "DELETE"),
            ] {
                let called = handlers.match_indices(function).any(|(i, _)| {
                    !handlers[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
                });
                if called {
                    registered.push((method.to_owned(), path.clone()));
                }
            }
        }
        registered.sort();
        let mut table: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        table.sort();
        assert_eq!(registered, table);
    }
}
