//! JWT-SVIDs, the node bundle and app/instance identity documents over the real router and TLS.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]
mod common;

use common::{TestServer, assert_error, b64};
use daas_identity::{
    JwtBundle, JwtBundleSet, JwtSvidError, JwtSvidRejection, TrustDomain, validate_jwt_svid,
};
use serde_json::{Value, json};

const DIGEST_HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const UID: &str = "unix:uid:1000";

fn digest_selector() -> String {
    format!("unix:sha256:{DIGEST_HEX}")
}

fn csr() -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap();
    (key, b64(csr.der()))
}

/// A node that joined the trust domain: its ID and an mTLS client holding its SVID.
struct Node {
    id: String,
    client: reqwest::Client,
}

async fn join(s: &TestServer) -> Node {
    let (status, body) = s
        .admin("POST", "/v1/identity/join-tokens", Some(json!({})))
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (key, csr) = csr();
    let (status, joined) = s
        .call(
            "POST",
            "/v1/identity/nodes/attest",
            None,
            Some(json!({"join_token": token, "csr": csr})),
        )
        .await;
    assert_eq!(status, 200, "{joined}");
    let chain: Vec<rustls_pki_types::CertificateDer<'static>> = joined["x509_svid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| rustls_pki_types::CertificateDer::from(common::unb64(c.as_str().unwrap())))
        .collect();
    let mut pem = daas_identity::svid::certs_to_pem(&chain);
    pem.push_str(&key.serialize_pem());
    let ca = std::fs::read(&s.cacert).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
        .https_only(true)
        .build()
        .unwrap();
    Node {
        id: joined["spiffe_id"].as_str().unwrap().to_owned(),
        client,
    }
}

async fn node_call(
    node: &Node,
    s: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    s.call_with(&node.client, method, path, None, body).await
}

async fn create_entry(s: &TestServer, spiffe_id: &str, parent: &str) {
    let (status, body) = s
        .admin(
            "POST",
            "/v1/identity/entries",
            Some(json!({"spiffe_id": spiffe_id, "parent_id": parent, "selectors": [digest_selector(), UID]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn audit_details(s: &TestServer, action: &str) -> Vec<String> {
    let (status, body) = s.admin("GET", "/v1/audit?limit=1000", None).await;
    assert_eq!(status, 200, "{body}");
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| {
            format!(
                "{} {}",
                e["outcome"].as_str().unwrap(),
                e["detail"].as_str().unwrap()
            )
        })
        .collect()
}

fn jwt_bundles(bundle: &Value) -> JwtBundleSet {
    let td: daas_identity::SpiffeId = bundle["trust_domain"].as_str().unwrap().parse().unwrap();
    let mut set = JwtBundleSet::new();
    set.insert(
        JwtBundle::from_jwks_value(td.trust_domain().clone(), &bundle["jwt_authorities"]).unwrap(),
    );
    set
}

#[tokio::test]
async fn a_node_gets_jwt_svids_that_validate_against_its_bundle_and_nothing_else() {
    let s = TestServer::start().await;
    let node = join(&s).await;
    let other = join(&s).await;
    create_entry(&s, "spiffe://daas.local/web", &node.id).await;
    create_entry(&s, "spiffe://daas.local/db", &other.id).await;

    // The node bundle is the admin bundle, with both JWK sets.
    let (status, node_bundle) = node_call(&node, &s, "GET", "/v1/identity/node/bundle", None).await;
    assert_eq!(status, 200, "{node_bundle}");
    let (status, admin_bundle) = s.admin("GET", "/v1/identity/bundle", None).await;
    assert_eq!(status, 200, "{admin_bundle}");
    assert_eq!(node_bundle, admin_bundle);
    for (set, use_) in [
        ("jwt_authorities", "jwt-svid"),
        ("document_authorities", "daas-document"),
    ] {
        let keys = node_bundle[set]["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{node_bundle}");
        assert_eq!(keys[0]["use"], use_);
        assert!(keys[0]["kid"].as_str().is_some_and(|k| k.len() == 43));
        assert!(keys[0].get("d").is_none());
    }

    let request = |id: &str, selectors: Value, audience: Value| json!({"spiffe_id": id, "selectors": selectors, "audience": audience});
    let path = "/v1/identity/node/jwt-svids";
    let (status, issued) = node_call(
        &node,
        &s,
        "POST",
        path,
        Some(request(
            "spiffe://daas.local/web",
            json!([digest_selector(), UID, "unix:gid:5"]),
            json!(["spiffe://daas.local/db", "reports"]),
        )),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["spiffe_id"], "spiffe://daas.local/web");
    let token = issued["token"].as_str().unwrap();
    let bundles = jwt_bundles(&node_bundle);
    let now = time::OffsetDateTime::now_utc();
    let valid = validate_jwt_svid(token, "reports", &bundles, now).unwrap();
    assert_eq!(valid.spiffe_id().to_string(), "spiffe://daas.local/web");
    assert_eq!(
        issued["expires_at"].as_i64().unwrap(),
        valid.expires_at().unix_timestamp() * 1000
    );
    // Five minutes, give or take the time this test took.
    let lifetime = valid.expires_at() - now;
    assert!(
        lifetime <= time::Duration::minutes(5) && lifetime > time::Duration::minutes(4),
        "{lifetime}"
    );
    assert!(matches!(
        validate_jwt_svid(token, "billing", &bundles, now),
        Err(JwtSvidError::Rejected(JwtSvidRejection::AudienceMismatch))
    ));
    // A token of this trust domain does not validate against another trust domain's keys.
    let foreign = daas_identity::TrustDomainCa::new(
        TrustDomain::new("daas.local").unwrap(),
        time::Duration::days(1),
        now,
    )
    .unwrap();
    let mut rogue = JwtBundleSet::new();
    rogue.insert(foreign.jwt_bundle(now));
    assert!(matches!(
        validate_jwt_svid(token, "reports", &rogue, now),
        Err(JwtSvidError::Rejected(JwtSvidRejection::UnknownKey))
    ));

    // Refused like X.509-SVIDs: wrong digest, wrong uid, another node's entry, unknown ID.
    let other_digest = format!("unix:sha256:{}", "f".repeat(64));
    for (id, selectors) in [
        ("spiffe://daas.local/web", json!([other_digest, UID])),
        (
            "spiffe://daas.local/web",
            json!([digest_selector(), "unix:uid:0"]),
        ),
        ("spiffe://daas.local/db", json!([digest_selector(), UID])),
        (
            "spiffe://daas.local/nobody",
            json!([digest_selector(), UID]),
        ),
    ] {
        let (status, body) = node_call(
            &node,
            &s,
            "POST",
            path,
            Some(request(id, selectors, json!(["reports"]))),
        )
        .await;
        assert_error(status, &body, 403, "forbidden");
    }
    let details = audit_details(&s, "identity.jwt_svid.issue").await;
    assert_eq!(
        details.iter().filter(|d| d.starts_with("denied")).count(),
        4,
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.starts_with("ok entry ")
            && d.ends_with("audience spiffe://daas.local/db,reports")),
        "{details:?}"
    );

    // Bad audience input: 400, before any authorisation.
    for audience in [
        json!([]),
        json!([""]),
        json!(["x".repeat(257)]),
        json!(["a\u{7}b"]),
        Value::Array((0..17).map(|i| json!(i.to_string())).collect()),
        json!("reports"),
    ] {
        let (status, body) = node_call(
            &node,
            &s,
            "POST",
            path,
            Some(request(
                "spiffe://daas.local/web",
                json!([digest_selector(), UID]),
                audience.clone(),
            )),
        )
        .await;
        assert_error(status, &body, 400, "malformed_request");
        let _ = audience;
    }
    // Missing field, unknown field.
    let (status, body) = node_call(
        &node,
        &s,
        "POST",
        path,
        Some(json!({"spiffe_id": "spiffe://daas.local/web", "selectors": []})),
    )
    .await;
    assert_error(status, &body, 400, "malformed_request");

    // Not a node: no client certificate, or an admin bearer token.
    let body = request(
        "spiffe://daas.local/web",
        json!([digest_selector(), UID]),
        json!(["reports"]),
    );
    let (status, resp) = s.call("POST", path, None, Some(body.clone())).await;
    assert_error(status, &resp, 401, "unauthenticated");
    let (status, resp) = s.admin("POST", path, Some(body)).await;
    assert_error(status, &resp, 401, "unauthenticated");
    let (status, resp) = s.call("GET", "/v1/identity/node/bundle", None, None).await;
    assert_error(status, &resp, 401, "unauthenticated");
    s.stop().await;
}

#[tokio::test]
async fn token_keys_survive_a_restart() {
    let s = TestServer::start().await;
    let (_, first) = s.admin("GET", "/v1/identity/bundle", None).await;
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let (_, second) = s.admin("GET", "/v1/identity/bundle", None).await;
    assert_eq!(first["jwt_authorities"], second["jwt_authorities"]);
    assert_eq!(
        first["document_authorities"],
        second["document_authorities"]
    );
    s.stop().await;
}
