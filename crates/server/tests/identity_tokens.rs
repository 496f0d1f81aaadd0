//! JWT-SVIDs, the node bundle and app/instance identity documents over the real router and TLS.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]
mod common;

use common::{TestServer, assert_error, b64};
use daas_identity::{
    AppMetadata, DocumentBundle, DocumentError, JwtBundle, JwtBundleSet, JwtSvidError,
    JwtSvidRejection, TrustDomain, TrustDomainCa, validate_jwt_svid, verify_app_document,
    verify_instance_document,
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

/// What a sensor does with the body of `GET /v1/identity/node/bundle`.
fn jwt_bundles(bundle: &Value) -> JwtBundleSet {
    let mut set = JwtBundleSet::new();
    set.insert(JwtBundle::from_trust_bundle_json(&serde_json::to_vec(bundle).unwrap()).unwrap());
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
            && d.ends_with(r#"audience ["spiffe://daas.local/db","reports"]"#)),
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

fn sha(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// The body of a valid instance request for `app_document`.
fn instance_request(app_document: &str, digest: &str) -> Value {
    json!({
        "app_document": app_document,
        "binary_digest": digest,
        "pid": 4242,
        "started_at": 1_800_000_000_000_i64,
        "workload_id": "spiffe://daas.local/web",
    })
}

#[tokio::test]
async fn app_document_versions_past_the_stored_range_are_refused_not_internal_errors() {
    let s = TestServer::start().await;
    s.create_app("web").await;
    let register = |version: Option<u64>| {
        let mut body = json!({"name": "web", "owner": "o", "allowed_digests": [sha('a')]});
        if let Some(v) = version {
            body["version"] = json!(v);
        }
        body
    };
    // Beyond what the store can keep: the caller's mistake, not a server error.
    for v in [u64::MAX, 1 << 63] {
        let (status, body) = s
            .admin("POST", "/v1/identity/apps", Some(register(Some(v))))
            .await;
        assert_error(status, &body, 400, "malformed_request");
    }
    // The last storable version is accepted; the implicit next one is a conflict.
    let last = i64::MAX.unsigned_abs();
    let (status, body) = s
        .admin("POST", "/v1/identity/apps", Some(register(Some(last))))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], last);
    let (status, body) = s
        .admin("POST", "/v1/identity/apps", Some(register(None)))
        .await;
    assert_error(status, &body, 409, "conflict");
    s.stop().await;
}

#[tokio::test]
async fn app_and_instance_documents_are_issued_chained_and_verify_offline() {
    let s = TestServer::start().await;
    let node = join(&s).await;
    let register = json!({
        "name": "web",
        "owner": "team web",
        "allowed_digests": [sha('a'), sha('b')],
        "roles": ["frontend"],
    });
    // The app must exist (its id is the document's uid).
    let (status, body) = s
        .admin("POST", "/v1/identity/apps", Some(register.clone()))
        .await;
    assert_error(status, &body, 404, "not_found");
    s.create_app("web").await;
    let (status, issued) = s
        .admin("POST", "/v1/identity/apps", Some(register.clone()))
        .await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued["spiffe_id"], "spiffe://daas.local/app/web");
    assert_eq!(issued["version"], 1);
    let uid = issued["uid"].as_str().unwrap().to_owned();
    assert!(uid.starts_with("app_"), "{uid}");
    let app_doc = issued["document"].as_str().unwrap().to_owned();

    // Offline verification against the published bundle.
    let (_, bundle_json) = s.admin("GET", "/v1/identity/bundle", None).await;
    let bundle =
        DocumentBundle::from_trust_bundle_json(&serde_json::to_vec(&bundle_json).unwrap()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let app = verify_app_document(&app_doc, &bundle, now).unwrap();
    assert_eq!(app.uid(), uid);
    assert_eq!(
        app.metadata(),
        &AppMetadata {
            name: "web".into(),
            owner: "team web".into(),
            allowed_digests: vec![sha('a'), sha('b')],
            roles: vec!["frontend".into()],
        }
    );
    assert_eq!(
        issued["expires_at"].as_i64().unwrap(),
        app.expires_at().unix_timestamp() * 1000
    );

    // The node gets an instance document for an allowed binary, naming a workload ID that an
    // entry of this node grants to that very binary and that names this app. An entry
    // granting the ID without naming the app is not enough.
    let (status, body) = s
        .admin(
            "POST",
            "/v1/identity/entries",
            Some(
                json!({"spiffe_id": "spiffe://daas.local/web", "parent_id": "spiffe://daas.local",
                        "selectors": [format!("unix:sha256:{}", "b".repeat(64)), "unix:uid:1000"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let path = "/v1/identity/apps/web/instances";
    let (status, body) = node_call(
        &node,
        &s,
        "POST",
        path,
        Some(instance_request(&app_doc, &sha('b'))),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s
        .admin(
            "POST",
            "/v1/identity/entries",
            Some(
                json!({"spiffe_id": "spiffe://daas.local/web", "parent_id": "spiffe://daas.local",
                        "selectors": [format!("unix:sha256:{}", "b".repeat(64)), "unix:uid:1000"],
                        "app": "web"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["app"], "web");
    // A workload ID no entry grants to that digest: refused (a node must not name others).
    for (workload, digest) in [
        ("spiffe://daas.local/payments", sha('b')),
        ("spiffe://daas.local/web", sha('a')),
    ] {
        let mut request = instance_request(&app_doc, &digest);
        request["workload_id"] = json!(workload);
        let (status, body) = node_call(&node, &s, "POST", path, Some(request)).await;
        assert_error(status, &body, 403, "forbidden");
    }
    let (status, inst) = node_call(
        &node,
        &s,
        "POST",
        path,
        Some(instance_request(&app_doc, &sha('b'))),
    )
    .await;
    assert_eq!(status, 200, "{inst}");
    let inst_doc = inst["document"].as_str().unwrap();
    let verified = verify_instance_document(inst_doc, &app, &bundle, now).unwrap();
    assert_eq!(
        verified.instance_id(),
        inst["instance_id"].as_str().unwrap()
    );
    assert_eq!(
        verified.spiffe_id().to_string(),
        inst["spiffe_id"].as_str().unwrap()
    );
    assert_eq!(verified.static_metadata().node_id.to_string(), node.id);
    assert_eq!(verified.static_metadata().binary_digest, sha('b'));
    // The answer carries the app document it is chained to.
    assert_eq!(inst["app_document"], app_doc.as_str());

    // A disallowed digest: 403, audited.
    let (status, body) = node_call(
        &node,
        &s,
        "POST",
        path,
        Some(instance_request(&app_doc, &sha('c'))),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");
    // A tampered app document, one of another trust domain, garbage, or an app that does not
    // exist: 403 (only the app's current document is ever used), audited.
    // One character of the signature changed (not the last, so the base64url stays canonical).
    let mut tampered = app_doc.clone().into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let foreign = TrustDomainCa::new(
        TrustDomain::new("daas.local").unwrap(),
        time::Duration::days(1),
        now,
    )
    .unwrap();
    let (foreign_doc, _) = foreign
        .issue_app_document(
            &uid,
            &AppMetadata {
                name: "web".into(),
                owner: "mallory".into(),
                allowed_digests: vec![sha('c')],
                roles: vec![],
            },
            1,
            std::time::Duration::from_secs(3600),
            now,
        )
        .unwrap();
    for (bad, app_path) in [
        (tampered.as_str(), path),
        (foreign_doc.as_str(), path),
        ("not.a.jws", path),
        (app_doc.as_str(), "/v1/identity/apps/db/instances"),
    ] {
        let (status, body) = node_call(
            &node,
            &s,
            "POST",
            app_path,
            Some(instance_request(bad, &sha('b'))),
        )
        .await;
        assert_error(status, &body, 403, "forbidden");
    }
    // Offline, the foreign document fails against our bundle, and ours against theirs.
    assert_eq!(
        verify_app_document(&foreign_doc, &bundle, now).unwrap_err(),
        DocumentError::UnknownKey
    );
    assert_eq!(
        verify_app_document(&app_doc, &foreign.document_bundle(now), now).unwrap_err(),
        DocumentError::UnknownKey
    );
    let details = audit_details(&s, "identity.instance.issue").await;
    assert_eq!(
        details.iter().filter(|d| d.starts_with("ok")).count(),
        1,
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.ends_with("not allowed by the app")),
        "{details:?}"
    );
    assert_eq!(
        details
            .iter()
            .filter(|d| d.starts_with("denied the presented app document is not the current one"))
            .count(),
        3,
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d == "denied no such app"),
        "{details:?}"
    );
    assert!(
        details.iter().any(
            |d| d.starts_with("denied no entry of this node grants that workload id to binary")
        ),
        "{details:?}"
    );

    // Re-registration: the version moves forward (by default one more), a stale explicit
    // version is a 409, and the new document is the only one instances are issued under.
    let narrowed = json!({
        "name": "web",
        "owner": "team web",
        "allowed_digests": [sha('a')],
    });
    let (status, reissued) = s
        .admin("POST", "/v1/identity/apps", Some(narrowed.clone()))
        .await;
    assert_eq!(status, 201, "{reissued}");
    assert_eq!(reissued["version"], 2);
    let new_doc = reissued["document"].as_str().unwrap().to_owned();
    for stale in [1, 2] {
        let mut again = narrowed.clone();
        again["version"] = json!(stale);
        let (status, body) = s.admin("POST", "/v1/identity/apps", Some(again)).await;
        assert_error(status, &body, 409, "conflict");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not greater than the current document's version 2"),
            "{body}"
        );
    }
    // The old document is superseded; without a document the current one is used, and it no
    // longer allows binary b.
    let (status, body) = node_call(
        &node,
        &s,
        "POST",
        path,
        Some(instance_request(&app_doc, &sha('b'))),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");
    let mut without_doc = instance_request(&new_doc, &sha('b'));
    without_doc.as_object_mut().unwrap().remove("app_document");
    let (status, body) = node_call(&node, &s, "POST", path, Some(without_doc)).await;
    assert_error(status, &body, 403, "forbidden");
    let details = audit_details(&s, "identity.instance.issue").await;
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("denied binary digest") && d.ends_with("not allowed by the app")),
        "{details:?}"
    );

    // Bad input to the admin endpoint; non-admin and non-node callers.
    for bad in [
        json!({"name": "web", "owner": "o", "allowed_digests": []}),
        json!({"name": "web", "owner": "o", "allowed_digests": ["sha256:XYZ"]}),
        json!({"name": "web", "owner": "", "allowed_digests": [sha('a')]}),
        json!({"name": "Web", "owner": "o", "allowed_digests": [sha('a')]}),
        json!({"name": "web", "owner": "o", "allowed_digests": [sha('a')], "version": 0}),
        json!({"name": "web", "owner": "o", "allowed_digests": [sha('a')], "ttl_secs": 1}),
        json!({"name": "web", "owner": "o", "allowed_digests": [sha('a')], "extra": 1}),
    ] {
        let (status, body) = s
            .admin("POST", "/v1/identity/apps", Some(bad.clone()))
            .await;
        assert_error(status, &body, 400, "malformed_request");
    }
    let app_token = s.create_app("other").await;
    let (status, body) = s
        .call(
            "POST",
            "/v1/identity/apps",
            Some(&app_token),
            Some(register),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s
        .call(
            "POST",
            path,
            None,
            Some(instance_request(&app_doc, &sha('b'))),
        )
        .await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = node_call(
        &node,
        &s,
        "POST",
        path,
        Some(
            json!({"app_document": app_doc, "binary_digest": "sha256:x", "pid": 1, "started_at": 0,
                    "workload_id": "spiffe://daas.local/web"}),
        ),
    )
    .await;
    assert_error(status, &body, 400, "malformed_request");
    // The workload ID is required.
    let (status, body) = node_call(
        &node,
        &s,
        "POST",
        path,
        Some(json!({"binary_digest": sha('a'), "pid": 1, "started_at": 0})),
    )
    .await;
    assert_error(status, &body, 400, "malformed_request");
    s.stop().await;
}
