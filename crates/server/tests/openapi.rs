//! `/v1/openapi.json` is kept true: it documents exactly the routes the router serves, and each
//! documented route is really served (an unauthenticated call reaches the handler's checks
//! instead of the router's 404/405).
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail by panicking"
)]
mod common;

use common::TestServer;
use serde_json::{Value, json};

fn documented() -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(daas_server::OPENAPI).unwrap();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            out.push((method.to_uppercase(), path.clone()));
        }
    }
    out.sort();
    out
}

#[test]
fn openapi_document_lists_exactly_the_route_table() {
    let mut served: Vec<(String, String)> = daas_server::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    served.sort();
    assert_eq!(documented(), served);
}

#[tokio::test]
async fn every_documented_route_is_served_and_the_document_is_served() {
    let s = TestServer::start().await;
    for (method, path) in documented() {
        let concrete = path
            .replace("{id}", &"0".repeat(32))
            .replace("{name}", "some/name");
        let (status, body) = s.call(&method, &concrete, None, None).await;
        let code = body["error"]["code"].as_str().unwrap_or("");
        assert!(
            status != 405 && !(status == 404 && code == "not_found"),
            "{method} {path} is not served: {status} {body}"
        );
    }
    let (status, body) = s.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["openapi"], "3.1.0");
    s.stop().await;
}

/// The documented operations that require a credential: an operation without its own
/// `security` inherits the document's (`bearer`); `security: []` means none.
fn authenticated_operations(doc: &Value) -> Vec<(String, String, bool)> {
    let global_requires = doc["security"].as_array().is_some_and(|s| !s.is_empty());
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let requires = match op.get("security") {
                Some(s) => !s.as_array().unwrap().is_empty(),
                None => global_requires,
            };
            if requires {
                out.push((
                    method.to_uppercase(),
                    path.clone(),
                    op.get("requestBody").is_some(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Fill every `{param}` of an OpenAPI path with a syntactically valid dummy.
fn concrete(path: &str) -> String {
    path.replace("{id}", &"0".repeat(32))
        .replace("{name}", "some/name")
        .replace("{app}", "some-app")
}

/// Every operation of the served document that has a security requirement answers 401 with
/// exactly our error body to no token, a well-formed but wrong admin or app token, and garbage;
/// the open endpoints (health, the document itself) answer 200 without a token.
#[tokio::test]
async fn every_authenticated_route_is_401_without_valid_credentials() {
    let s = TestServer::start().await;
    let (status, doc) = s.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, 200, "{doc}");
    let ops = authenticated_operations(&doc);
    // The document is what drives this test: make sure it really lists the guarded routes.
    for must in [
        ("POST", "/v1/safe/encrypt"),
        ("GET", "/v1/safe/objects/{id}/share"),
        ("GET", "/v1/secrets/{name}"),
        ("GET", "/v1/audit"),
        ("POST", "/v1/token"),
    ] {
        assert!(
            ops.iter().any(|(m, p, _)| (m.as_str(), p.as_str()) == must),
            "{must:?} is not documented as authenticated: {ops:?}"
        );
    }
    assert!(
        !ops.iter()
            .any(|(_, p, _)| p == "/v1/sys/health" || p == "/v1/openapi.json"),
        "{ops:?}"
    );
    // Same shape as a real admin token (`daas_admin_` + 43 base64url chars), wrong secret.
    let wrong_admin = format!("daas_admin_wrong{}", "A".repeat(43 - "wrong".len()));
    assert_eq!(wrong_admin.len(), s.token.len());
    assert!(s.token.starts_with("daas_admin_"));
    let wrong_app = "daas_app_0123456789abcdef_xyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzx";
    let credentials: [Option<&str>; 4] = [
        None,
        Some(wrong_admin.as_str()),
        Some(wrong_app),
        Some("garbage !!! not a token"),
    ];
    let unauthenticated = json!({"error": {
        "code": "unauthenticated",
        "message": "missing or invalid credentials"
    }});
    for (method, path, has_body) in &ops {
        let url = concrete(path);
        for token in credentials {
            let body = has_body.then(|| json!({}));
            let (status, resp) = s.call(method, &url, token, body).await;
            assert_eq!(
                status, 401,
                "{method} {path} with {token:?}: {status} {resp}"
            );
            assert_eq!(resp, unauthenticated, "{method} {path} with {token:?}");
        }
        // A raw `Authorization` that is not a bearer scheme at all.
        let mut req = s
            .client
            .request(method.parse().unwrap(), s.url(&url))
            .header("authorization", "Basic YWRtaW46YWRtaW4=");
        if *has_body {
            req = req.json(&json!({}));
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{method} {path} with Basic");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            unauthenticated,
            "{method} {path} with Basic"
        );
    }
    let (status, body) = s.call("GET", "/v1/sys/health", None, None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) = s.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(body, doc);
    s.stop().await;
}
