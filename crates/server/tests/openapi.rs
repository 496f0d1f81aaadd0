//! `/v1/openapi.json` is kept true: it documents exactly the routes the router serves, and each
//! documented route is really served (an unauthenticated call reaches the handler's checks
//! instead of the router's 404/405).
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail by panicking"
)]
mod common;

use common::TestServer;
use serde_json::Value;

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
