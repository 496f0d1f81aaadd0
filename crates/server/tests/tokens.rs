//! The tokens engine over the real router and TLS: DPoP-bound issuance, the JWKS and metadata,
//! replacement by proof of possession, revocation and key rotation. Clients build their proofs
//! and verify tokens with `daas_token`, as a real client and resource server would.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]
mod common;

use common::{TestServer, assert_error};
use daas_token::{Alg, KeySet, PublicJwk, SigningKey, build_proof, verify_access_token};
use serde_json::{Value, json};

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A server nonce of `s` (RFC 9449 §8; required by default at the token endpoints), got the
/// way a client gets its first one: a valid proof without a nonce is answered
/// `use_dpop_nonce` with a `DPoP-Nonce` header. Cached per server.
async fn nonce(s: &TestServer) -> String {
    static NONCES: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    if let Some((_, n)) = NONCES.lock().unwrap().iter().find(|(a, _)| *a == s.addr) {
        return n.clone();
    }
    let key = SigningKey::generate(Alg::EdDsa).unwrap();
    let p = build_proof(&key, "POST", &s.url("/v1/token"), now(), None, None, None).unwrap();
    let resp = s
        .client
        .post(s.url("/v1/token"))
        .bearer_auth(&s.token)
        .header("DPoP", p)
        .json(&json!({"aud": "svc"}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let n = resp.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_error(status, &body, 400, "use_dpop_nonce");
    NONCES.lock().unwrap().push((s.addr.clone(), n.clone()));
    n
}

/// A proof for `method url` carrying `s`'s current nonce.
async fn proof(s: &TestServer, key: &SigningKey, method: &str, url: &str) -> String {
    let n = nonce(s).await;
    build_proof(key, method, url, now(), None, None, Some(&n)).unwrap()
}

/// `POST path` with an optional bearer token, any number of `DPoP` headers and a JSON body.
async fn post(
    s: &TestServer,
    path: &str,
    bearer: Option<&str>,
    proofs: &[&str],
    body: Value,
) -> (u16, Value) {
    let mut req = s.client.post(s.url(path)).json(&body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// A token for `aud` bound to `key`, requested with `credential`.
async fn get_token(s: &TestServer, credential: &str, key: &SigningKey, body: Value) -> String {
    let p = proof(s, key, "POST", &s.url("/v1/token")).await;
    let (status, resp) = post(s, "/v1/token", Some(credential), &[&p], body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["token_type"], "DPoP", "{resp}");
    resp["access_token"].as_str().unwrap().to_owned()
}

async fn replace(s: &TestServer, key: &SigningKey, jti: &str) -> (u16, Value) {
    let p = proof(s, key, "POST", &s.url("/v1/token/replace")).await;
    post(s, "/v1/token/replace", None, &[&p], json!({ "jti": jti })).await
}

/// The published issuer keys, parsed strictly, and their kids.
async fn jwks(s: &TestServer) -> (KeySet, Vec<String>) {
    let (status, body) = s.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(status, 200, "{body}");
    let mut kids = Vec::new();
    for jwk in body["keys"].as_array().unwrap() {
        let key = PublicJwk::from_json(jwk.to_string().as_bytes()).unwrap();
        assert_eq!(
            jwk["kid"],
            key.thumbprint(),
            "kid is the RFC 7638 thumbprint"
        );
        kids.push(key.thumbprint());
    }
    (key_set(&body), kids)
}

async fn verify(s: &TestServer, token: &str, aud: &str) -> daas_token::VerifiedAccessToken {
    let (keys, _) = jwks(s).await;
    verify_access_token(token, &keys, &s.addr, aud, now(), 0).unwrap()
}

/// Audit entries of `action`, as (outcome, detail).
async fn audited(s: &TestServer, action: &str) -> Vec<(String, String)> {
    s.audit_entries(action)
        .await
        .iter()
        .map(|e| {
            let text = |field: &str| e[field].as_str().unwrap().to_owned();
            (text("outcome"), text("detail"))
        })
        .collect()
}

#[tokio::test]
async fn issuance_binds_the_proof_key_and_verifies_against_the_published_jwks() {
    let s = TestServer::start().await;
    let app = s.create_app("billing").await;
    let mut tokens = Vec::new();
    for alg in [Alg::EdDsa, Alg::Es256] {
        let key = SigningKey::generate(alg).unwrap();
        let p = proof(&s, &key, "POST", &s.url("/v1/token")).await;
        let (status, resp) = post(
            &s,
            "/v1/token",
            Some(&app),
            &[&p],
            json!({"aud": "https://api.example", "scope": "read write", "ttl_secs": 3600}),
        )
        .await;
        assert_eq!(status, 200, "{resp}");
        assert_eq!(resp["token_type"], "DPoP");
        assert_eq!(resp["expires_in"], 3600);
        assert_eq!(resp["scope"], "read write");
        let token = resp["access_token"].as_str().unwrap();
        tokens.push(token.to_owned());
        let verified = verify(&s, token, "https://api.example").await;
        let claims = verified.claims();
        assert_eq!(verified.jkt(), key.public_jwk().thumbprint());
        assert_eq!(claims.sub, "app:billing");
        assert_eq!(claims.client_id.as_deref(), Some("app:billing"));
        assert_eq!(claims.scope, ["read", "write"]);
        assert_eq!(claims.exp - claims.iat, 3600);
        let status = claims.status.as_ref().unwrap();
        assert_eq!(status.uri, s.url("/v1/token/status"));
        // The token is bound: a resource server accepts it only with a proof by that key.
        let at = daas_token::verify_dpop_request(
            &daas_token::DpopRequest {
                access_token: token,
                proof_headers: &[&build_proof(
                    &key,
                    "GET",
                    "https://api.example/x",
                    now(),
                    None,
                    Some(token),
                    None,
                )
                .unwrap()],
                method: "GET",
                uri: "https://api.example/x",
            },
            &daas_token::DpopPolicy {
                keys: &jwks(&s).await.0,
                issuer: &s.addr,
                audience: "https://api.example",
                token_leeway_secs: 0,
                proof: daas_token::ProofPolicy::default(),
                nonce_key: None,
                token_cache: None,
            },
            &daas_token::MemoryReplayCache::new(16),
            now(),
        );
        assert!(at.is_ok(), "{at:?}");
    }
    // Status indexes grow by one per token; the admin can get tokens too.
    let key = SigningKey::generate(Alg::EdDsa).unwrap();
    let token = get_token(&s, &s.token.clone(), &key, json!({"aud": "svc"})).await;
    tokens.push(token.clone());
    let claims = verify(&s, &token, "svc").await.claims().clone();
    assert_eq!(claims.sub, "admin");
    assert_eq!(claims.status.unwrap().idx, 2);
    assert!(claims.scope.is_empty());
    assert_eq!(claims.exp - claims.iat, 24 * 3600, "default lifetime");

    // The metadata document points at all of it.
    let (status, meta) = s
        .call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["issuer"], s.addr);
    assert_eq!(meta["token_endpoint"], s.url("/v1/token"));
    assert_eq!(meta["jwks_uri"], s.url("/.well-known/jwks.json"));
    assert_eq!(
        meta["dpop_signing_alg_values_supported"],
        json!(["EdDSA", "ES256"])
    );
    let issued = audited(&s, "token.issue").await;
    assert_eq!(issued.len(), 3);
    assert!(issued.iter().all(|(outcome, _)| outcome == "ok"));
    let (_, log) = s.admin("GET", "/v1/audit?limit=1000", None).await;
    for token in &tokens {
        assert!(
            !log.to_string().contains(token.as_str()),
            "a token is in the audit log"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn bad_proofs_and_requests_are_refused_and_nothing_is_issued() {
    let s = TestServer::start().await;
    let app = s.create_app("client").await;
    let key = SigningKey::generate(Alg::EdDsa).unwrap();
    let body = json!({"aud": "svc"});
    let url = s.url("/v1/token");

    let (status, resp) = post(&s, "/v1/token", Some(&app), &[], body.clone()).await;
    assert_error(status, &resp, 400, "invalid_dpop_proof");
    let other_url = proof(&s, &key, "POST", &s.url("/v1/token/replace")).await;
    let other_host = proof(&s, &key, "POST", "https://elsewhere.example/v1/token").await;
    let other_method = proof(&s, &key, "PUT", &url).await;
    let with_ath = build_proof(&key, "POST", &url, now(), None, Some("t"), None).unwrap();
    let stale = build_proof(&key, "POST", &url, now() - 600, None, None, None).unwrap();
    let (a, b) = (
        proof(&s, &key, "POST", &url).await,
        proof(&s, &key, "POST", &url).await,
    );
    for bad in [
        vec![other_url.as_str()],
        vec![other_host.as_str()],
        vec![other_method.as_str()],
        vec![with_ath.as_str()],
        vec![stale.as_str()],
        vec!["not a proof"],
        vec![a.as_str(), b.as_str()],
    ] {
        let (status, resp) = post(&s, "/v1/token", Some(&app), &bad, body.clone()).await;
        assert_error(status, &resp, 400, "invalid_dpop_proof");
    }
    // A replayed proof: the first use issues, the second is refused.
    let once = proof(&s, &key, "POST", &url).await;
    let (status, resp) = post(&s, "/v1/token", Some(&app), &[&once], body.clone()).await;
    assert_eq!(status, 200, "{resp}");
    let (status, resp) = post(&s, "/v1/token", Some(&app), &[&once], body.clone()).await;
    assert_error(status, &resp, 400, "invalid_dpop_proof");

    // No credential: 401 before the proof is looked at.
    let (status, resp) = post(
        &s,
        "/v1/token",
        None,
        &[&proof(&s, &key, "POST", &url).await],
        body,
    )
    .await;
    assert_error(status, &resp, 401, "unauthenticated");
    // Bad bodies.
    for bad in [
        json!({"aud": "svc", "ttl_secs": 0}),
        json!({"aud": "svc", "ttl_secs": 30 * 24 * 3600 + 1}),
        json!({"aud": ""}),
        json!({"aud": "svc", "scope": "a  b"}),
        json!({"aud": "svc", "scope": "a\"b"}),
        json!({"aud": "svc", "extra": 1}),
        json!({"scope": "a"}),
    ] {
        let p = proof(&s, &key, "POST", &url).await;
        let (status, resp) = post(&s, "/v1/token", Some(&app), &[&p], bad.clone()).await;
        assert_error(status, &resp, 400, "malformed_request");
    }

    let issued = audited(&s, "token.issue").await;
    let ok = issued.iter().filter(|(o, _)| o == "ok").count();
    assert_eq!(
        ok, 1,
        "only the first use of the one good proof issued: {issued:?}"
    );
    let reasons: Vec<&str> = issued
        .iter()
        .filter(|(o, _)| o == "denied")
        .map(|(_, d)| d.as_str())
        .collect();
    assert_eq!(reasons.len(), 9, "{reasons:?}");
    for (got, want) in reasons.iter().zip([
        "dpop proof is missing",
        "dpop proof htu does not match the request uri",
        "dpop proof htu does not match the request uri",
        "dpop proof htm does not match the request method",
        "dpop proof claim ath is present without an access token",
        "dpop proof iat is outside the accepted window",
        "invalid dpop proof: ",
        "more than one dpop proof",
        "dpop proof was replayed",
    ]) {
        assert!(got.starts_with(want), "{got:?} is not {want:?}");
    }
    s.stop().await;
}

fn jti(token: &str) -> String {
    // Reading a claim without verifying is fine here: the test verifies tokens elsewhere.
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&common::unb64(payload)).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn replacement_needs_the_bound_key_and_respects_the_chain_cap() {
    let s = TestServer::start().await;
    let app = s.create_app("client").await;
    let key = SigningKey::generate(Alg::Es256).unwrap();
    let thief = SigningKey::generate(Alg::Es256).unwrap();
    let first = get_token(
        &s,
        &app,
        &key,
        json!({"aud": "svc", "scope": "read", "ttl_secs": 600}),
    )
    .await;
    let first_jti = jti(&first);

    // Another key, a missing proof, an unknown jti: refused alike.
    let (status, resp) = replace(&s, &thief, &first_jti).await;
    assert_error(status, &resp, 400, "invalid_grant");
    let (status, resp) = post(
        &s,
        "/v1/token/replace",
        None,
        &[],
        json!({"jti": first_jti}),
    )
    .await;
    assert_error(status, &resp, 400, "invalid_dpop_proof");
    let (status, resp) = replace(&s, &key, "unknown").await;
    assert_error(status, &resp, 400, "invalid_grant");
    // A proof for the token endpoint is not one for the replacement endpoint.
    let wrong = proof(&s, &key, "POST", &s.url("/v1/token")).await;
    let (status, resp) = post(
        &s,
        "/v1/token/replace",
        None,
        &[&wrong],
        json!({"jti": first_jti}),
    )
    .await;
    assert_error(status, &resp, 400, "invalid_dpop_proof");

    // The key holder gets a new token: same binding and claims, new jti and status index.
    let (status, resp) = replace(&s, &key, &first_jti).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["expires_in"], 600);
    let second = resp["access_token"].as_str().unwrap().to_owned();
    let old = verify(&s, &first, "svc").await.claims().clone();
    let new = verify(&s, &second, "svc").await.claims().clone();
    assert_eq!(new.jkt, old.jkt);
    assert_eq!(
        (&new.sub, &new.aud, &new.scope),
        (&old.sub, &old.aud, &old.scope)
    );
    assert_ne!(new.jti, old.jti);
    assert_eq!(new.status.unwrap().idx, old.status.unwrap().idx + 1);
    // Only one token of the chain lives: the replaced one cannot be replaced again.
    let (status, resp) = replace(&s, &key, &first_jti).await;
    assert_error(status, &resp, 400, "invalid_grant");

    // The total lifetime is capped from the first token of the chain (90 days by default):
    // move the chain's start back and the next replacement is cut at the cap ...
    let second_jti = jti(&second);
    let db = rusqlite::Connection::open(s.db_path()).unwrap();
    let cap = 90 * 24 * 3600;
    let started = now() - cap + 100;
    db.execute(
        "UPDATE tokens SET chain_started_at = ?1 WHERE jti = ?2",
        rusqlite::params![started, second_jti],
    )
    .unwrap();
    let (status, resp) = replace(&s, &key, &second_jti).await;
    assert_eq!(status, 200, "{resp}");
    let third = resp["access_token"].as_str().unwrap().to_owned();
    let claims = verify(&s, &third, "svc").await.claims().clone();
    assert_eq!(claims.exp, started + cap, "cut at the cap");
    // ... and once the cap has passed there is no replacement.
    let third_jti = jti(&third);
    db.execute(
        "UPDATE tokens SET chain_started_at = ?1 WHERE jti = ?2",
        rusqlite::params![now() - cap, third_jti],
    )
    .unwrap();
    let (status, resp) = replace(&s, &key, &third_jti).await;
    assert_error(status, &resp, 400, "invalid_grant");

    let reasons: Vec<String> = audited(&s, "token.replace")
        .await
        .into_iter()
        .map(|(outcome, detail)| format!("{outcome}: {detail}"))
        .collect();
    assert!(reasons[0].contains("denied: the proof key is not the key the token is bound to"));
    assert!(reasons[1].starts_with("denied: dpop proof is missing"));
    assert!(reasons[2].starts_with("denied: no token has this jti"));
    assert!(reasons[3].starts_with("denied: dpop proof htu does not match"));
    assert!(reasons[4].starts_with("ok: replaced by"));
    assert!(reasons[5].starts_with("denied: the token was already replaced"));
    assert!(reasons[6].starts_with("ok: replaced by"));
    assert!(reasons[7].starts_with("denied: the replacement chain reached its total lifetime"));
    s.stop().await;
}

#[tokio::test]
async fn revoked_tokens_cannot_be_replaced() {
    let s = TestServer::start().await;
    let app = s.create_app("client").await;
    let key = SigningKey::generate(Alg::EdDsa).unwrap();
    let a = jti(&get_token(&s, &app, &key, json!({"aud": "svc"})).await);
    let b = jti(&get_token(&s, &app, &key, json!({"aud": "other"})).await);
    let c = jti(&get_token(&s, &app, &key, json!({"aud": "third"})).await);

    let (status, resp) = post(&s, "/v1/token/revoke", Some(&app), &[], json!({"jti": a})).await;
    assert_error(status, &resp, 403, "forbidden");
    let (status, resp) = s
        .admin("POST", "/v1/token/revoke", Some(json!({"jti": a})))
        .await;
    assert_eq!((status, &resp), (200, &json!({"revoked": 1})));
    let (status, resp) = replace(&s, &key, &a).await;
    assert_error(status, &resp, 400, "invalid_grant");
    assert!(
        audited(&s, "token.replace").await[0]
            .1
            .contains("the token was revoked")
    );

    // By subject: every token of the app, counting only those still live.
    let (status, resp) = s
        .admin(
            "POST",
            "/v1/token/revoke",
            Some(json!({"subject": "app:client"})),
        )
        .await;
    assert_eq!((status, &resp), (200, &json!({"revoked": 2})));
    for jti in [&b, &c] {
        let (status, resp) = replace(&s, &key, jti).await;
        assert_error(status, &resp, 400, "invalid_grant");
    }
    let (status, resp) = s
        .admin("POST", "/v1/token/revoke", Some(json!({"jti": "nope"})))
        .await;
    assert_error(status, &resp, 404, "not_found");
    for bad in [
        json!({}),
        json!({"jti": a, "subject": "x"}),
        json!({"jti": ""}),
    ] {
        let (status, resp) = s.admin("POST", "/v1/token/revoke", Some(bad)).await;
        assert_error(status, &resp, 400, "malformed_request");
    }
    assert_eq!(audited(&s, "token.revoke").await.len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_verifiable_and_keys_survive_a_restart() {
    let s = TestServer::start().await;
    let app = s.create_app("client").await;
    let key = SigningKey::generate(Alg::EdDsa).unwrap();
    let before = get_token(&s, &app, &key, json!({"aud": "svc"})).await;
    let (_, kids) = jwks(&s).await;
    assert_eq!(kids.len(), 1, "only the issuer key is published");
    let old_kid = kids[0].clone();
    assert_eq!(verify(&s, &before, "svc").await.kid(), old_kid);

    let (status, resp) = post(&s, "/v1/token/keys/rotate", Some(&app), &[], json!({})).await;
    assert_error(status, &resp, 403, "forbidden");
    let (status, resp) = s
        .admin("POST", "/v1/token/keys/rotate", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["retired"], old_kid.as_str());
    let new_kid = resp["kid"].as_str().unwrap().to_owned();
    let (_, mut kids) = jwks(&s).await;
    kids.sort();
    let mut both = [old_kid.clone(), new_kid.clone()];
    both.sort();
    assert_eq!(kids, both);
    // The old token still verifies; new tokens are signed with the new key.
    assert_eq!(verify(&s, &before, "svc").await.kid(), old_kid);
    let after = get_token(&s, &app, &key, json!({"aud": "svc"})).await;
    assert_eq!(verify(&s, &after, "svc").await.kid(), new_kid);
    // The status key rotates separately and is never published as an issuer key.
    let (status, resp) = s
        .admin(
            "POST",
            "/v1/token/keys/rotate",
            Some(json!({"purpose": "status"})),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(jwks(&s).await.1.len(), 2);
    let (status, resp) = s
        .admin(
            "POST",
            "/v1/token/keys/rotate",
            Some(json!({"purpose": "other"})),
        )
        .await;
    assert_error(status, &resp, 400, "malformed_request");
    assert_eq!(audited(&s, "token.key.rotate").await.len(), 2);

    // Keys are stored (sealed), not regenerated at start. (The restarted server listens on
    // another port, so its Host-derived issuer differs: verify against the old one.)
    let old_issuer = s.addr.clone();
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let (keys, mut kids) = jwks(&s).await;
    kids.sort();
    assert_eq!(kids, both);
    for token in [&before, &after] {
        verify_access_token(token, &keys, &old_issuer, "svc", now(), 0).unwrap();
    }
    s.stop().await;
}

/// A JWK set as a strict key set.
fn key_set(jwks: &Value) -> KeySet {
    let mut set = KeySet::new();
    for jwk in jwks["keys"].as_array().unwrap() {
        let key = PublicJwk::from_json(jwk.to_string().as_bytes()).unwrap();
        set.insert(jwk["kid"].as_str().unwrap(), key.verifying_key().unwrap())
            .unwrap();
    }
    set
}

#[tokio::test]
async fn the_status_list_marks_revoked_and_replaced_tokens_under_the_status_key() {
    use std::io::Read as _;

    let s = TestServer::start().await;
    let app = s.create_app("client").await;
    let key = SigningKey::generate(Alg::EdDsa).unwrap();
    let mut jtis = Vec::new();
    for aud in ["a", "b", "c"] {
        jtis.push(jti(&get_token(&s, &app, &key, json!({ "aud": aud })).await));
    }
    // idx 0 is replaced (by idx 3), idx 2 revoked; 1 and 3 live.
    let (status, resp) = replace(&s, &key, &jtis[0]).await;
    assert_eq!(status, 200, "{resp}");
    let (status, resp) = s
        .admin("POST", "/v1/token/revoke", Some(json!({"jti": jtis[2]})))
        .await;
    assert_eq!(status, 200, "{resp}");

    let resp = s
        .client
        .get(s.url("/v1/token/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/statuslist+jwt");
    let jwt = resp.text().await.unwrap();
    let (status, status_jwks) = s.call("GET", "/v1/token/status/jwks", None, None).await;
    assert_eq!(status, 200, "{status_jwks}");
    let status_keys = key_set(&status_jwks);
    let verified = daas_token::Unverified::parse(&jwt)
        .unwrap()
        .verify::<serde_json::Map<String, Value>>(&status_keys, Some("statuslist+jwt"))
        .unwrap();
    let claims = verified.claims();
    assert_eq!(claims["sub"], s.url("/v1/token/status").as_str());
    assert_eq!(claims["ttl"], 60);
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    assert_eq!(claims["status_list"]["bits"], 1);
    let lst = common::unb64(claims["status_list"]["lst"].as_str().unwrap());
    let mut bits = Vec::new();
    flate2::read::ZlibDecoder::new(lst.as_slice())
        .read_to_end(&mut bits)
        .unwrap();
    assert_eq!(bits, [0b0000_0101]);
    // The verifier of crates/token (what crates/resource uses) reads the same statuses.
    let list = daas_token::status::verify_status_list(
        &jwt,
        &status_keys,
        s.url("/v1/token/status").as_str(),
        now(),
    )
    .unwrap();
    assert_eq!(list.ttl(), Some(60));
    use daas_token::status::TokenStatus;
    let statuses: Vec<TokenStatus> = (0..4).map(|i| list.status_of(i).unwrap()).collect();
    assert_eq!(
        statuses,
        [
            TokenStatus::Invalid,
            TokenStatus::Valid,
            TokenStatus::Invalid,
            TokenStatus::Valid
        ]
    );

    // The two keys are not interchangeable: the status key verifies no access token and the
    // issuer keys verify no status list.
    let (issuer_keys, _) = jwks(&s).await;
    assert!(
        daas_token::Unverified::parse(&jwt)
            .unwrap()
            .verify::<Value>(&issuer_keys, Some("statuslist+jwt"))
            .is_err()
    );
    let token = get_token(&s, &app, &key, json!({"aud": "d"})).await;
    assert!(verify_access_token(&token, &status_keys, &s.addr, "d", now(), 0).is_err());
    let (_, meta) = s
        .call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await;
    assert_eq!(
        meta["daas_token_status_jwks_uri"],
        s.url("/v1/token/status/jwks")
    );
    s.stop().await;
}

/// Fetches the server's status list with the test client (which trusts the test CA).
#[derive(Debug)]
struct ServerStatus(reqwest::Client);

impl daas_resource::StatusFetcher for ServerStatus {
    fn fetch<'a>(
        &'a self,
        uri: &'a str,
    ) -> daas_resource::BoxFuture<'a, Result<String, daas_resource::FetchError>> {
        Box::pin(async move {
            let resp = self
                .0
                .get(uri)
                .send()
                .await
                .map_err(|_| daas_resource::FetchError::Unreachable)?;
            if resp.status() != 200 {
                return Err(daas_resource::FetchError::HttpStatus(
                    resp.status().as_u16(),
                ));
            }
            resp.text()
                .await
                .map_err(|_| daas_resource::FetchError::Unreachable)
        })
    }
}

/// Issue #4's scenario end to end: a sample service protected by the resource layer, fed by
/// this server's JWKS and status list, accepts the legitimate client, refuses the same token
/// with a proof by anyone else, accepts the replacement of a "lost" token, and refuses a
/// revoked token once the cached status list is older than its ttl.
#[tokio::test]
async fn a_protected_service_accepts_the_key_holder_a_replacement_and_refuses_thieves_and_revoked_tokens()
 {
    use daas_resource::{Clock as _, DpopConfig, ManualClock, StatusChecker};
    use std::sync::Arc;

    const AUDIENCE: &str = "https://orders.example";
    let s = TestServer::start().await;
    let app = s.create_app("client").await;
    let key = SigningKey::generate(Alg::EdDsa).unwrap();
    let token = get_token(
        &s,
        &app,
        &key,
        json!({"aud": AUDIENCE, "scope": "orders:read"}),
    )
    .await;

    // The protected service: issuer keys and status keys as published by the server.
    let (issuer_keys, _) = jwks(&s).await;
    let (status, status_jwks) = s.call("GET", "/v1/token/status/jwks", None, None).await;
    assert_eq!(status, 200, "{status_jwks}");
    let clock = Arc::new(ManualClock::new(now()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let checker = StatusChecker::new(
        key_set(&status_jwks),
        [s.addr.as_str()],
        Arc::new(ServerStatus(s.client.clone())),
    )
    .unwrap();
    let config = DpopConfig::new(s.addr.clone(), AUDIENCE, issuer_keys, &origin)
        .unwrap()
        .with_clock(Arc::clone(&clock) as _)
        .with_status(checker);
    let router = axum::Router::new()
        .route(
            "/orders",
            axum::routing::get(|auth: daas_resource::Authenticated| async move {
                auth.token().claims().sub.clone()
            }),
        )
        .layer(config.into_layer());
    let service = tokio::spawn(async move { axum::serve(listener, router).await });
    let http = reqwest::Client::new();
    let url = format!("{origin}/orders");
    let call = |token: &str, signer: &SigningKey| {
        let proof = build_proof(signer, "GET", &url, clock.now(), None, Some(token), None).unwrap();
        let request = http
            .get(&url)
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof);
        async move { request.send().await.unwrap().status().as_u16() }
    };

    // The key holder is served; the same token with another process's key is not.
    assert_eq!(call(&token, &key).await, 200);
    let thief = SigningKey::generate(Alg::EdDsa).unwrap();
    assert_eq!(call(&token, &thief).await, 401);

    // The token is "lost": the key holder gets a replacement by proving possession only.
    let (status, resp) = replace(&s, &key, &jti(&token)).await;
    assert_eq!(status, 200, "{resp}");
    let replacement = resp["access_token"].as_str().unwrap().to_owned();
    assert_eq!(call(&replacement, &key).await, 200);
    assert_eq!(call(&replacement, &thief).await, 401);

    // Revoked: refused once the status list the service cached is past its ttl.
    let (status, resp) = s
        .admin(
            "POST",
            "/v1/token/revoke",
            Some(json!({"jti": jti(&replacement)})),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    clock.advance(61);
    assert_eq!(call(&replacement, &key).await, 401);
    // The replaced (lost) token is dead too: replacement invalidated it.
    assert_eq!(call(&token, &key).await, 401);
    service.abort();
    s.stop().await;
}

/// The token's `status.status_list` reference, read from a token this test got from the server.
fn status_ref(token: &str) -> (u64, String) {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&common::unb64(payload)).unwrap();
    let list = &claims["status"]["status_list"];
    (
        list["idx"].as_u64().unwrap(),
        list["uri"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn staples_answer_the_verifiers_nonce_under_the_status_key_and_follow_revocation() {
    use daas_token::status::{StapleExpectation, StatusError, TokenStatus, verify_status_staple};

    let s = TestServer::start().await;
    let app = s.create_app("client").await;
    let key = SigningKey::generate(Alg::EdDsa).unwrap();
    // Another token first, so that the staple's idx is not 0 by accident.
    get_token(&s, &app, &key, json!({"aud": "other"})).await;
    let token = get_token(&s, &app, &key, json!({"aud": "api"})).await;
    let (idx, uri) = status_ref(&token);
    assert_eq!(uri, s.url("/v1/token/status"));
    assert_eq!(idx, 1);
    let (_, status_jwks) = s.call("GET", "/v1/token/status/jwks", None, None).await;
    let status_keys = key_set(&status_jwks);
    let (issuer_keys, _) = jwks(&s).await;

    let staple = |nonce: &'static str| {
        let s = &s;
        let jti = jti(&token);
        async move {
            post(
                s,
                "/v1/token/status/staple",
                None,
                &[],
                json!({"jti": jti, "nonce": nonce}),
            )
            .await
        }
    };
    let (status, resp) = staple("challenge-1").await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["status_list"]["idx"], idx);
    assert_eq!(resp["status_list"]["uri"], uri.as_str());
    let jwt = resp["staple"].as_str().unwrap();
    let expect = StapleExpectation {
        sub: &uri,
        idx,
        nonce: "challenge-1",
    };
    let verified = verify_status_staple(jwt, &status_keys, &expect, now()).unwrap();
    assert_eq!(verified.status(), TokenStatus::Valid);
    let claims = verified.claims();
    assert!(claims.exp > claims.iat && claims.exp - claims.iat <= 60);
    // Another verifier's nonce, another token's index, or the issuer keys: refused.
    let other_nonce = StapleExpectation {
        nonce: "challenge-2",
        ..expect
    };
    assert_eq!(
        verify_status_staple(jwt, &status_keys, &other_nonce, now()),
        Err(StatusError::NonceMismatch)
    );
    let other_idx = StapleExpectation { idx: 0, ..expect };
    assert_eq!(
        verify_status_staple(jwt, &status_keys, &other_idx, now()),
        Err(StatusError::StapleMismatch)
    );
    assert!(verify_status_staple(jwt, &issuer_keys, &expect, now()).is_err());

    // After revocation the next staple says invalid.
    let (status, resp) = s
        .admin(
            "POST",
            "/v1/token/revoke",
            Some(json!({"jti": jti(&token)})),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    let (status, resp) = staple("challenge-3").await;
    assert_eq!(status, 200, "{resp}");
    let revoked = verify_status_staple(
        resp["staple"].as_str().unwrap(),
        &status_keys,
        &StapleExpectation {
            nonce: "challenge-3",
            ..expect
        },
        now(),
    )
    .unwrap();
    assert_eq!(revoked.status(), TokenStatus::Invalid);

    // Bad requests: JSON errors, nothing signed.
    let unknown = json!({"jti": "no-such-jti", "nonce": "n"});
    let (status, body) = post(&s, "/v1/token/status/staple", None, &[], unknown).await;
    assert_error(status, &body, 404, "not_found");
    let unknown_audit = audited(&s, "token.status.staple").await;
    assert_eq!(
        unknown_audit,
        [("denied".to_owned(), "no token has this jti".to_owned())]
    );
    for bad in [
        json!({"jti": jti(&token), "nonce": ""}),
        json!({"jti": jti(&token), "nonce": "n".repeat(257)}),
        json!({"jti": jti(&token), "nonce": "with space"}),
        json!({"jti": "", "nonce": "n"}),
        json!({"jti": jti(&token)}),
        json!({"jti": jti(&token), "nonce": "n", "idx": 0}),
    ] {
        let (status, body) = post(&s, "/v1/token/status/staple", None, &[], bad.clone()).await;
        assert_error(status, &body, 400, "malformed_request");
    }
    let (_, meta) = s
        .call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await;
    assert_eq!(
        meta["daas_token_status_staple_endpoint"],
        s.url("/v1/token/status/staple")
    );
    s.stop().await;
}
