//! The identity engine over the real router and TLS: the trust bundle, registration entries,
//! one-time join tokens and node attestation (issue #3).
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]
mod common;

use common::{TestServer, assert_error, b64, unb64};
use daas_identity::TrustDomainCa;
use serde_json::{Value, json};

const DIGEST: &str = "unix:sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A node-generated key and a CSR for it (what a sensor sends when it joins).
fn csr() -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::new(vec!["ignored.example".to_owned()])
        .unwrap()
        .serialize_request(&key)
        .unwrap();
    (key, b64(csr.der()))
}

fn ders(v: &Value) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| rustls_pki_types::CertificateDer::from(unb64(c.as_str().unwrap())))
        .collect()
}

async fn join_token(s: &TestServer, body: Value) -> String {
    let (status, body) = s
        .admin("POST", "/v1/identity/join-tokens", Some(body))
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("daas_join_"), "{token}");
    token
}

async fn attest(s: &TestServer, token: &str, csr: &str) -> (u16, Value) {
    s.call(
        "POST",
        "/v1/identity/nodes/attest",
        None,
        Some(json!({"join_token": token, "csr": csr})),
    )
    .await
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

#[tokio::test]
async fn a_join_token_attests_one_node_whose_svid_verifies_against_the_bundle() {
    let s = TestServer::start().await;
    let token = join_token(&s, json!({})).await;
    let (_key, csr) = csr();
    let (status, body) = attest(&s, &token, &csr).await;
    assert_eq!(status, 200, "{body}");
    let node_id = body["spiffe_id"].as_str().unwrap();
    assert!(
        node_id.starts_with("spiffe://daas.local/daas/node/"),
        "{node_id}"
    );

    // The node SVID verifies offline against the bundle, and names the node (not what the CSR
    // asked for).
    let chain = ders(&body["x509_svid"]);
    let bundle = ders(&body["bundle"]);
    let verified =
        daas_identity::verify_x509_svid(&chain, &bundle, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(verified.to_string(), node_id);

    // The published bundle is the same CA.
    let (status, published) = s.admin("GET", "/v1/identity/bundle", None).await;
    assert_eq!(status, 200, "{published}");
    assert_eq!(published["trust_domain"], "spiffe://daas.local");
    assert_eq!(ders(&published["authorities"]), bundle);
    assert!(
        published["pem"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );

    let details = audit_details(&s, "identity.node.attest").await;
    assert_eq!(details.len(), 1, "{details:?}");
    assert!(details[0].starts_with("ok join token "), "{details:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_replayed_join_token_is_refused_opaquely_and_audited_precisely() {
    let s = TestServer::start().await;
    let token = join_token(&s, json!({"ttl_secs": 60})).await;
    let (_k1, csr1) = csr();
    let (status, body) = attest(&s, &token, &csr1).await;
    assert_eq!(status, 200, "{body}");
    let (_k2, csr2) = csr();
    let (status, body) = attest(&s, &token, &csr2).await;
    assert_error(status, &body, 401, "unauthenticated");
    // Unknown and malformed tokens look the same to the caller.
    let unknown_token = format!("daas_join_{}", "A".repeat(43));
    let (status, unknown) = attest(&s, &unknown_token, &csr2).await;
    assert_error(status, &unknown, 401, "unauthenticated");
    assert_eq!(body, unknown);
    let (status, malformed) = attest(&s, "not-a-token", &csr2).await;
    assert_error(status, &malformed, 401, "unauthenticated");
    assert_eq!(body, malformed);

    let details = audit_details(&s, "identity.node.attest").await;
    assert!(
        details
            .iter()
            .any(|d| d == "denied join token unknown or already used"),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d == "denied malformed join token"),
        "{details:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_expired_join_token_is_refused() {
    let s = TestServer::start().await;
    let token = join_token(&s, json!({"ttl_secs": 1})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_k, csr) = csr();
    let (status, body) = attest(&s, &token, &csr).await;
    assert_error(status, &body, 401, "unauthenticated");
    let details = audit_details(&s, "identity.node.attest").await;
    assert_eq!(details, ["denied join token expired"]);
    s.stop().await;
}

#[tokio::test]
async fn a_bad_csr_does_not_burn_the_join_token() {
    let s = TestServer::start().await;
    let token = join_token(&s, json!({})).await;
    let (_k, good) = csr();
    let mut raw = unb64(&good);
    let last = raw.len() - 1;
    raw[last] ^= 0x01; // breaks the CSR's self-signature
    let (status, body) = attest(&s, &token, &b64(&raw)).await;
    assert_error(status, &body, 400, "malformed_request");
    let (status, body) = attest(&s, &token, "%%%").await;
    assert_error(status, &body, 400, "malformed_request");
    // The token still works.
    let (status, body) = attest(&s, &token, &good).await;
    assert_eq!(status, 200, "{body}");
    s.stop().await;
}

#[tokio::test]
async fn join_tokens_and_entries_are_admin_only_and_validated() {
    let s = TestServer::start().await;
    let app = s.create_app("web").await;
    let (status, body) = s
        .call(
            "POST",
            "/v1/identity/join-tokens",
            Some(&app),
            Some(json!({})),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s
        .call("GET", "/v1/identity/entries", Some(&app), None)
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s.call("GET", "/v1/identity/bundle", None, None).await;
    assert_error(status, &body, 401, "unauthenticated");
    for ttl in [0, 86_401] {
        let (status, body) = s
            .admin(
                "POST",
                "/v1/identity/join-tokens",
                Some(json!({"ttl_secs": ttl})),
            )
            .await;
        assert_error(status, &body, 400, "malformed_request");
    }

    let bad_entries = [
        (
            json!({"spiffe_id": "spiffe://other.org/web", "parent_id": "spiffe://daas.local/daas/node/a", "selectors": [DIGEST]}),
            "trust domain",
        ),
        (
            json!({"spiffe_id": "spiffe://daas.local/web", "parent_id": "spiffe://daas.local/daas/node/a", "selectors": ["unix:uid:1000"]}),
            "sha256",
        ),
        (
            json!({"spiffe_id": "spiffe://daas.local/web", "parent_id": "spiffe://daas.local/daas/node/a", "selectors": ["unix:sha256:XYZ"]}),
            "selector",
        ),
        (
            json!({"spiffe_id": "spiffe://Daas.local/web", "parent_id": "spiffe://daas.local/daas/node/a", "selectors": [DIGEST]}),
            "spiffe_id",
        ),
        (
            json!({"spiffe_id": "spiffe://daas.local/web", "parent_id": "spiffe://daas.local/daas/node/a", "selectors": [DIGEST, "unix:uid:1"], "x509_ttl_secs": 5}),
            "ttl",
        ),
        (
            json!({"spiffe_id": "spiffe://daas.local/web", "parent_id": "spiffe://daas.local/daas/node/a", "selectors": [DIGEST], "extra": 1}),
            "unknown field",
        ),
        (
            json!({"spiffe_id": "spiffe://daas.local/web", "parent_id": "spiffe://daas.local/daas/node/a", "selectors": [DIGEST]}),
            "uid",
        ),
        (
            json!({"spiffe_id": "spiffe://daas.local/daas/node/x", "parent_id": "spiffe://daas.local/daas/node/a", "selectors": [DIGEST, "unix:uid:1"]}),
            "reserved",
        ),
        (
            json!({"spiffe_id": "spiffe://daas.local/web", "parent_id": "spiffe://daas.local/db", "selectors": [DIGEST, "unix:uid:1"]}),
            "parent",
        ),
    ];
    for (entry, why) in bad_entries {
        let (status, body) = s
            .admin("POST", "/v1/identity/entries", Some(entry.clone()))
            .await;
        assert_error(status, &body, 400, "malformed_request");
        let message = body["error"]["message"].as_str().unwrap().to_lowercase();
        assert!(message.contains(why), "{entry}: {message}");
    }
    s.stop().await;
}

#[tokio::test]
async fn entries_are_created_listed_and_deleted() {
    let s = TestServer::start().await;
    let (status, created) = s
        .admin(
            "POST",
            "/v1/identity/entries",
            Some(json!({
                "spiffe_id": "spiffe://daas.local/web",
                "parent_id": "spiffe://daas.local/daas/node/n1",
                "selectors": [DIGEST, "unix:uid:1000"],
                "roles": ["frontend"],
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["x509_ttl_secs"], 3600);
    assert_eq!(created["allow_without_digest"], false);
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, list) = s.admin("GET", "/v1/identity/entries", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["entries"].as_array().unwrap().len(), 1);
    assert_eq!(list["entries"][0], created);

    let path = format!("/v1/identity/entries/{id}");
    let (status, _) = s.admin("DELETE", &path, None).await;
    assert_eq!(status, 204);
    let (status, body) = s.admin("DELETE", &path, None).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s
        .admin("DELETE", "/v1/identity/entries/..%2F..", None)
        .await;
    assert!(status == 400 || status == 404, "{status} {body}");
    let (status, list) = s.admin("GET", "/v1/identity/entries", None).await;
    assert_eq!(status, 200);
    assert!(list["entries"].as_array().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn the_ca_survives_a_restart_and_its_key_is_sealed_at_rest() {
    let s = TestServer::start().await;
    let (_, first) = s.admin("GET", "/v1/identity/bundle", None).await;
    let db = s.db_path();
    let dir = s.stop().await;
    // The CA private key is not in the database file in the clear: search for the PKCS#8
    // header of an EC key (the sealed column is ciphertext).
    let bytes = std::fs::read(&db).unwrap();
    let pkcs8_ec_prefix = [0x30u8, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07];
    assert!(
        !bytes
            .windows(pkcs8_ec_prefix.len())
            .any(|w| w == pkcs8_ec_prefix)
    );

    let s = TestServer::start_in(dir).await;
    let (_, second) = s.admin("GET", "/v1/identity/bundle", None).await;
    assert_eq!(
        first["authorities"], second["authorities"],
        "same CA after restart"
    );
    s.stop().await;
}

/// PEM of a DER chain (base64url in the API) and of a PKCS#8 key, for a reqwest identity.
fn identity_pem(chain: &Value, key: &rcgen::KeyPair) -> Vec<u8> {
    let mut pem = daas_identity::svid::certs_to_pem(&ders(chain));
    pem.push_str(&key.serialize_pem());
    pem.into_bytes()
}

/// A client that authenticates with an X.509-SVID (as a sensor does) and trusts the server CA.
fn svid_client(s: &TestServer, chain: &Value, key: &rcgen::KeyPair) -> reqwest::Client {
    let ca = std::fs::read(&s.cacert).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .identity(reqwest::Identity::from_pem(&identity_pem(chain, key)).unwrap())
        .https_only(true)
        .build()
        .unwrap()
}

async fn node_call(
    client: &reqwest::Client,
    s: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    s.call_with(client, method, path, None, body).await
}

#[tokio::test]
async fn an_attested_node_gets_svids_for_its_workloads_and_nothing_else() {
    let s = TestServer::start().await;
    // The node joins.
    let token = join_token(&s, json!({})).await;
    let (node_key, node_csr) = csr();
    let (status, joined) = attest(&s, &token, &node_csr).await;
    assert_eq!(status, 200, "{joined}");
    let node_id = joined["spiffe_id"].as_str().unwrap().to_owned();
    let node = svid_client(&s, &joined["x509_svid"], &node_key);

    // Entries: one for this node, one for any node, one for another node.
    let uid = "unix:uid:1000";
    for (id, parent) in [
        ("spiffe://daas.local/web", node_id.as_str()),
        ("spiffe://daas.local/shared", "spiffe://daas.local"),
        (
            "spiffe://daas.local/db",
            "spiffe://daas.local/daas/node/someoneelse",
        ),
    ] {
        let (status, body) = s
            .admin(
                "POST",
                "/v1/identity/entries",
                Some(json!({"spiffe_id": id, "parent_id": parent, "selectors": [DIGEST, uid]})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, mine) = node_call(&node, &s, "GET", "/v1/identity/node/entries", None).await;
    assert_eq!(status, 200, "{mine}");
    let mut ids: Vec<&str> = mine["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["spiffe_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["spiffe://daas.local/shared", "spiffe://daas.local/web"]
    );

    // A workload SVID for matching selectors.
    let (workload_key, workload_csr) = csr();
    let request = |id: &str, selectors: Value| json!({"spiffe_id": id, "selectors": selectors, "csr": workload_csr.clone()});
    let (status, issued) = node_call(
        &node,
        &s,
        "POST",
        "/v1/identity/node/svids",
        Some(request(
            "spiffe://daas.local/web",
            json!([DIGEST, uid, "unix:gid:5"]),
        )),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let verified = daas_identity::verify_x509_svid(
        &ders(&issued["x509_svid"]),
        &ders(&issued["bundle"]),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(verified.to_string(), "spiffe://daas.local/web");

    // Refused: wrong digest (same path, changed binary), another node's entry, unknown ID.
    let other_digest = format!("unix:sha256:{}", "f".repeat(64));
    for (id, selectors) in [
        ("spiffe://daas.local/web", json!([other_digest, uid])),
        ("spiffe://daas.local/web", json!([DIGEST, "unix:uid:0"])),
        ("spiffe://daas.local/db", json!([DIGEST, uid])),
        ("spiffe://daas.local/nobody", json!([DIGEST, uid])),
    ] {
        let (status, body) = node_call(
            &node,
            &s,
            "POST",
            "/v1/identity/node/svids",
            Some(request(id, selectors)),
        )
        .await;
        assert_error(status, &body, 403, "forbidden");
    }
    let denied = audit_details(&s, "identity.svid.issue").await;
    assert_eq!(
        denied.iter().filter(|d| d.starts_with("denied")).count(),
        4,
        "{denied:?}"
    );

    // A workload's SVID is not a node credential; no certificate is not one either.
    let workload = svid_client(&s, &issued["x509_svid"], &workload_key);
    let (status, body) = node_call(&workload, &s, "GET", "/v1/identity/node/entries", None).await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = s.call("GET", "/v1/identity/node/entries", None, None).await;
    assert_error(status, &body, 401, "unauthenticated");
    let auth = audit_details(&s, "identity.node.auth").await;
    assert!(auth.iter().any(|d| d.contains("not a node")), "{auth:?}");
    assert!(
        auth.iter().any(|d| d.contains("no client certificate")),
        "{auth:?}"
    );

    // Renewal: a new key, the same node ID, and the new SVID works.
    let (new_key, new_csr) = csr();
    let (status, renewed) = node_call(
        &node,
        &s,
        "POST",
        "/v1/identity/node/renew",
        Some(json!({"csr": new_csr})),
    )
    .await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["spiffe_id"], node_id);
    let renewed_node = svid_client(&s, &renewed["x509_svid"], &new_key);
    let (status, _) = node_call(&renewed_node, &s, "GET", "/v1/identity/node/entries", None).await;
    assert_eq!(status, 200);

    // Denials reported by the sensor land in the audit log.
    let (status, _) = node_call(
        &node,
        &s,
        "POST",
        "/v1/identity/node/denials",
        Some(json!({"reason": "no registration entry matches\n",
                    "selectors": [other_digest, "unix:path:/tmp/a unix:uid:0"]})),
    )
    .await;
    assert_eq!(status, 204);
    let reports = audit_details(&s, "identity.workload.denied").await;
    assert_eq!(reports, ["denied no registration entry matches"]);
    // The selectors are recorded as a JSON array: a path with spaces cannot pose as more
    // selectors.
    let (_, audit) = s.admin("GET", "/v1/audit?limit=1000", None).await;
    let target = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "identity.workload.denied")
        .unwrap()["target"]
        .as_str()
        .unwrap()
        .to_owned();
    let recorded: Vec<String> = serde_json::from_str(&target).unwrap();
    assert_eq!(
        recorded,
        [other_digest.as_str(), "unix:path:/tmp/a unix:uid:0"]
    );
    s.stop().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_the_handshake() {
    let s = TestServer::start().await;
    // Wait until the identity engine has published its bundle.
    let (status, _) = s.admin("GET", "/v1/identity/bundle", None).await;
    assert_eq!(status, 200);
    let rogue = TrustDomainCa::new(
        "daas.local".parse().unwrap(),
        time::Duration::days(1),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let (key, csr_b64) = csr();
    let svid = rogue
        .issue_x509_svid(
            &unb64(&csr_b64),
            &"spiffe://daas.local/daas/node/rogue".parse().unwrap(),
            std::time::Duration::from_secs(600),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    let chain = Value::Array(
        svid.chain()
            .iter()
            .map(|c| Value::String(b64(c.as_ref())))
            .collect(),
    );
    let client = svid_client(&s, &chain, &key);
    let result = client.get(s.url("/v1/identity/node/entries")).send().await;
    assert!(
        result.is_err(),
        "a forged node certificate must not complete the handshake"
    );
    // Bearer-token clients are unaffected.
    let (status, _) = s.admin("GET", "/v1/identity/entries", None).await;
    assert_eq!(status, 200);
    s.stop().await;
}
