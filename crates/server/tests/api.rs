//! The HTTP API against the real router over TLS, one test per bad-input case of issue #2.
mod common;

use common::{TestServer, assert_error, b64, unb64};
use serde_json::json;

#[tokio::test]
async fn encrypt_then_decrypt_roundtrips_and_share_is_needed() {
    let s = TestServer::start().await;
    let token = s.token.clone();
    let (ct, share) = s.encrypt(&token, b"attack at dawn", &[]).await;
    assert!(ct.starts_with("daas:v1:") && share.starts_with("daas:share:v1:"));
    let (status, body) = s.decrypt(&token, &ct, &share).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        unb64(body["plaintext"].as_str().unwrap()),
        b"attack at dawn"
    );
    // Two encryptions of the same plaintext are unrelated.
    let (ct2, share2) = s.encrypt(&token, b"attack at dawn", &[]).await;
    assert_ne!(ct, ct2);
    assert_ne!(share, share2);
    s.stop().await;
}

#[tokio::test]
async fn wrong_share_of_the_same_object_fails_opaquely() {
    let s = TestServer::start().await;
    let t = s.token.clone();
    let (ct, share) = s.encrypt(&t, b"secret", &[]).await;
    // Same object id and index, different key bytes: passes parsing, fails the commitment.
    let mut raw = unb64(share.strip_prefix("daas:share:v1:").unwrap());
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    let forged = format!("daas:share:v1:{}", b64(&raw));
    let (status, body) = s.decrypt(&t, &ct, &forged).await;
    assert_error(status, &body, 400, "decryption_failed");
    s.stop().await;
}

#[tokio::test]
async fn share_of_another_object_is_rejected_before_crypto() {
    let s = TestServer::start().await;
    let t = s.token.clone();
    let (ct1, _) = s.encrypt(&t, b"one", &[]).await;
    let (_, share2) = s.encrypt(&t, b"two", &[]).await;
    let (status, body) = s.decrypt(&t, &ct1, &share2).await;
    assert_error(status, &body, 400, "invalid_share");
    s.stop().await;
}

#[tokio::test]
async fn truncated_and_bit_flipped_inputs_fail() {
    let s = TestServer::start().await;
    let t = s.token.clone();
    let (ct, share) = s
        .encrypt(&t, b"0123456789abcdef0123456789abcdef", &[])
        .await;

    let truncated = &ct[..ct.len() - 20];
    let (status, body) = s.decrypt(&t, truncated, &share).await;
    assert!(status == 400, "{body}");
    assert!(
        ["invalid_ciphertext", "decryption_failed"]
            .contains(&body["error"]["code"].as_str().unwrap()),
        "{body}"
    );

    let (status, body) = s.decrypt(&t, "daas:v1:", &share).await;
    assert_error(status, &body, 400, "invalid_ciphertext");

    // Flip one bit in every byte position of the body (after the header) in turn: never opens.
    let mut raw = unb64(ct.strip_prefix("daas:v1:").unwrap());
    for pos in [18usize, 20, raw.len() / 2, raw.len() - 1] {
        raw[pos] ^= 0x80;
        let flipped = format!("daas:v1:{}", b64(&raw));
        let (status, body) = s.decrypt(&t, &flipped, &share).await;
        assert_error(status, &body, 400, "decryption_failed");
        raw[pos] ^= 0x80;
    }

    let truncated_share = &share[..share.len() - 4];
    let (status, body) = s.decrypt(&t, &ct, truncated_share).await;
    assert_error(status, &body, 400, "invalid_share");
    let (status, body) = s.decrypt(&t, &ct, "not a share").await;
    assert_error(status, &body, 400, "invalid_share");
    s.stop().await;
}

#[tokio::test]
async fn unknown_envelope_version_is_reported() {
    let s = TestServer::start().await;
    let t = s.token.clone();
    let (ct, share) = s.encrypt(&t, b"v", &[]).await;
    let (status, body) = s
        .decrypt(&t, &ct.replacen("daas:v1:", "daas:v2:", 1), &share)
        .await;
    assert_error(status, &body, 400, "unsupported_version");
    let mut raw = unb64(ct.strip_prefix("daas:v1:").unwrap());
    raw[0] = 9; // version byte
    let (status, body) = s
        .decrypt(&t, &format!("daas:v1:{}", b64(&raw)), &share)
        .await;
    assert_error(status, &body, 400, "unsupported_version");
    s.stop().await;
}

#[tokio::test]
async fn oversize_body_is_413_json() {
    let s = TestServer::start().await;
    let t = s.token.clone();
    let big = b64(&vec![7u8; 1024 * 1024]);
    let (status, body) = s
        .call(
            "POST",
            "/v1/safe/encrypt",
            Some(&t),
            Some(json!({"plaintext": big})),
        )
        .await;
    assert_error(status, &body, 413, "payload_too_large");
    s.stop().await;
}

#[tokio::test]
async fn malformed_json_wrong_type_and_content_type() {
    let s = TestServer::start().await;
    let t = s.token.clone();
    for raw in [
        "{",
        "[]",
        "{\"plaintext\": 5}",
        "{\"plaintext\": \"aGk\", \"extra\": 1}",
        "{\"plaintext\": \"aGk=\"}",
    ] {
        let resp = s
            .client
            .post(s.url("/v1/safe/encrypt"))
            .bearer_auth(&t)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_error(status, &body, 400, "malformed_request");
    }
    let resp = s
        .client
        .post(s.url("/v1/safe/encrypt"))
        .bearer_auth(&t)
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_error(status, &body, 415, "unsupported_media_type");
    s.stop().await;
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_and_audited_precisely() {
    let s = TestServer::start().await;
    let body = json!({"plaintext": "aGk"});
    let (status, resp) = s
        .call("POST", "/v1/safe/encrypt", None, Some(body.clone()))
        .await;
    assert_error(status, &resp, 401, "unauthenticated");
    let (status, resp) = s
        .call(
            "POST",
            "/v1/safe/encrypt",
            Some("daas_admin_wrong"),
            Some(body.clone()),
        )
        .await;
    assert_error(status, &resp, 401, "unauthenticated");
    let (status, resp) = s
        .call(
            "POST",
            "/v1/safe/encrypt",
            Some("daas_app_0123456789abcdef_xyz"),
            Some(body.clone()),
        )
        .await;
    assert_error(status, &resp, 401, "unauthenticated");
    // The three answers are identical to the client ...
    let (status, audit) = s.admin("GET", "/v1/audit?limit=1000", None).await;
    assert_eq!(status, 200);
    let details: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.failure")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    // ... but the audit log says exactly why each failed.
    assert_eq!(
        details,
        vec![
            "no bearer token",
            "token secret does not match",
            "token names an unknown app"
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn caller_not_on_access_list_is_403_and_hand_off_works() {
    let s = TestServer::start().await;
    let alice = s.create_app("alice").await;
    let bob = s.create_app("bob").await;
    let eve = s.create_app("eve").await;
    let (ct, share) = s.encrypt(&alice, b"for bob", &["app:bob"]).await;
    let (status, body) = s.decrypt(&bob, &ct, &share).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(unb64(body["plaintext"].as_str().unwrap()), b"for bob");
    // Holding ciphertext and share is not enough: eve is not on the list.
    let (status, body) = s.decrypt(&eve, &ct, &share).await;
    assert_error(status, &body, 403, "forbidden");
    // Nor is the admin, who is not on this object's list either.
    let (status, body) = s.decrypt(&s.token.clone(), &ct, &share).await;
    assert_error(status, &body, 403, "forbidden");
    // Non-admins cannot create apps or read the audit log.
    let (status, body) = s
        .call(
            "POST",
            "/v1/apps",
            Some(&alice),
            Some(json!({"name": "mallory"})),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s.call("GET", "/v1/audit", Some(&alice), None).await;
    assert_error(status, &body, 403, "forbidden");
    s.stop().await;
}

#[tokio::test]
async fn deleted_object_is_404_everywhere() {
    let s = TestServer::start().await;
    let t = s.token.clone();
    let (status, body) = s
        .call(
            "POST",
            "/v1/safe/encrypt",
            Some(&t),
            Some(json!({"plaintext": b64(b"bye")})),
        )
        .await;
    assert_eq!(status, 200);
    let (id, ct, share) = (
        body["object_id"].as_str().unwrap().to_owned(),
        body["ciphertext"].as_str().unwrap().to_owned(),
        body["share"].as_str().unwrap().to_owned(),
    );
    let (status, _) = s
        .admin("DELETE", &format!("/v1/safe/objects/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = s.decrypt(&t, &ct, &share).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s
        .admin("GET", &format!("/v1/safe/objects/{id}"), None)
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s
        .admin("DELETE", &format!("/v1/safe/objects/{id}"), None)
        .await;
    assert_error(status, &body, 404, "not_found");
    s.stop().await;
}

#[tokio::test]
async fn access_list_can_be_changed_by_owner_only() {
    let s = TestServer::start().await;
    let alice = s.create_app("alice").await;
    let bob = s.create_app("bob").await;
    let (status, body) = s
        .call(
            "POST",
            "/v1/safe/encrypt",
            Some(&alice),
            Some(json!({"plaintext": b64(b"x")})),
        )
        .await;
    assert_eq!(status, 200);
    let id = body["object_id"].as_str().unwrap().to_owned();
    let (ct, share) = (
        body["ciphertext"].as_str().unwrap().to_owned(),
        body["share"].as_str().unwrap().to_owned(),
    );
    assert_eq!(s.decrypt(&bob, &ct, &share).await.0, 403);
    let (status, body) = s
        .call(
            "PUT",
            &format!("/v1/safe/objects/{id}/access"),
            Some(&bob),
            Some(json!({"access": ["app:bob"]})),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s
        .call(
            "PUT",
            &format!("/v1/safe/objects/{id}/access"),
            Some(&alice),
            Some(json!({"access": ["app:bob"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["access"], json!(["app:alice", "app:bob"]));
    assert_eq!(s.decrypt(&bob, &ct, &share).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn stored_secrets_roundtrip_version_and_need_the_share() {
    let s = TestServer::start().await;
    let alice = s.create_app("alice").await;
    let bob = s.create_app("bob").await;
    let (status, body) = s
        .call(
            "PUT",
            "/v1/secrets/db/password",
            Some(&alice),
            Some(json!({"value": b64(b"hunter2")})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 1);
    let share1 = body["share"].as_str().unwrap().to_owned();

    let get = |token: String, share: String| {
        let req = s
            .client
            .get(s.url("/v1/secrets/db/password"))
            .bearer_auth(token)
            .header("daas-share", share);
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = get(alice.clone(), share1.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(unb64(body["value"].as_str().unwrap()), b"hunter2");
    // Bob's namespace has no db/password (see `secret_names_are_scoped_to_their_owner`).
    let (status, body) = get(bob.clone(), share1.clone()).await;
    assert_error(status, &body, 404, "not_found");

    // Replacing bumps the version and crypto-shreds the old value: the old share is useless.
    let (status, body) = s
        .call(
            "PUT",
            "/v1/secrets/db/password",
            Some(&alice),
            Some(json!({"value": b64(b"correct horse")})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 2);
    let share2 = body["share"].as_str().unwrap().to_owned();
    let (status, body) = get(alice.clone(), share1.clone()).await;
    assert_error(status, &body, 400, "invalid_share");
    let (status, body) = get(alice.clone(), share2.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(unb64(body["value"].as_str().unwrap()), b"correct horse");

    let (status, body) = s.call("GET", "/v1/secrets", Some(&alice), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["secrets"][0]["name"], "db/password");
    assert_eq!(
        s.call("GET", "/v1/secrets", Some(&bob), None).await.1["secrets"],
        json!([])
    );

    let (status, body) = s
        .call(
            "PUT",
            "/v1/secrets/..%2Fx",
            Some(&alice),
            Some(json!({"value": "aGk"})),
        )
        .await;
    assert_error(status, &body, 400, "malformed_request");
    let (status, _) = s
        .call("DELETE", "/v1/secrets/db/password", Some(&alice), None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = get(alice.clone(), share2).await;
    assert_error(status, &body, 404, "not_found");
    s.stop().await;
}

#[tokio::test]
async fn audit_chain_verifies_and_records_every_operation() {
    let s = TestServer::start().await;
    let t = s.token.clone();
    let (ct, share) = s.encrypt(&t, b"a", &[]).await;
    assert_eq!(s.decrypt(&t, &ct, &share).await.0, 200);
    let (status, body) = s.admin("GET", "/v1/audit/verify", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true, "{body}");
    let (_, audit) = s.admin("GET", "/v1/audit", None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        // The identity engine's CA creation at start is audited too, concurrently.
        .filter(|a| !a.starts_with("identity."))
        .collect();
    assert_eq!(actions, vec!["safe.encrypt", "safe.decrypt"]);
    let (status, body) = s.admin("GET", "/v1/audit?limit=0", None).await;
    assert_error(status, &body, 400, "malformed_request");
    s.stop().await;
}

/// The exact body of a 503 caused by an unwritable audit log: the generic message only, none of
/// the database's own words.
fn assert_audit_unavailable(status: u16, body: &serde_json::Value, what: &str) {
    assert_eq!(
        (status, body),
        (
            503,
            &json!({"error": {
                "code": "unavailable",
                "message": "the service is temporarily unavailable; nothing was changed"
            }})
        ),
        "{what}"
    );
    let text = body.to_string().to_lowercase();
    for internal in [
        "audit disk full",
        "sqlite",
        "trigger",
        "sql",
        "audit_broken",
    ] {
        assert!(
            !text.contains(internal),
            "{what} leaks {internal:?}: {body}"
        );
    }
}

/// Every request that returns secret material (server-mode decrypt, a stored secret's value,
/// a client-mode object's server share) fails with exactly `503 unavailable` when its audit
/// entry cannot be written, and says nothing about why; an encrypt whose audit entry fails is
/// not half-written.
#[tokio::test]
async fn audit_unwritable_fails_closed() {
    let s = TestServer::start().await;
    let t = s.token.clone();
    let (ct, share) = s.encrypt(&t, b"guarded", &[]).await;
    let (status, body) = s
        .call(
            "PUT",
            "/v1/secrets/k",
            Some(&t),
            Some(json!({"value": b64(b"stored value")})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let secret_share = body["share"].as_str().unwrap().to_owned();
    let (_, t1, deposit) = client_mode_object("admin", b"client mode");
    let (status, body) = s
        .admin("POST", "/v1/safe/objects", Some(deposit.clone()))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["object_id"].as_str().unwrap().to_owned();
    assert_eq!(
        daas_crypto::share::Share::parse(&t1)
            .unwrap()
            .object_id
            .to_hex(),
        id
    );
    let share_path = format!("/v1/safe/objects/{id}/share");
    // Each works while the audit log does.
    let (status, body) = s.admin("GET", &share_path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["share"], deposit["share"]);
    let get_secret = || {
        let req = s
            .client
            .get(s.url("/v1/secrets/k"))
            .bearer_auth(&t)
            .header("daas-share", &secret_share);
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    assert_eq!(get_secret().await.0, 200);
    let audited_before = s.audit_entries("safe.fetch_share").await.len();

    let db = rusqlite::Connection::open(s.db_path()).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    db.execute_batch("CREATE TRIGGER audit_broken BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit disk full'); END;").unwrap();
    let count_objects = || -> i64 {
        db.query_row("SELECT count(*) FROM objects", [], |r| r.get(0))
            .unwrap()
    };
    let objects_before = count_objects();

    let (status, body) = s.decrypt(&t, &ct, &share).await;
    assert_audit_unavailable(status, &body, "server-mode decrypt");
    assert!(
        !body.to_string().contains(&b64(b"guarded")),
        "no plaintext in the error"
    );
    let (status, body) = get_secret().await;
    assert_audit_unavailable(status, &body, "secret get");
    assert!(!body.to_string().contains(&b64(b"stored value")));
    let (status, body) = s.admin("GET", &share_path, None).await;
    assert_audit_unavailable(status, &body, "client-mode share fetch");
    assert!(
        !body
            .to_string()
            .contains(deposit["share"].as_str().unwrap()),
        "no share in the error"
    );
    let (status, body) = s
        .call(
            "POST",
            "/v1/safe/encrypt",
            Some(&t),
            Some(json!({"plaintext": "aGk"})),
        )
        .await;
    assert_audit_unavailable(status, &body, "encrypt");
    assert_eq!(
        objects_before,
        count_objects(),
        "an encrypt whose audit failed left an object behind"
    );

    db.execute_batch("DROP TRIGGER audit_broken;").unwrap();
    // Nothing was released unaudited, and everything works again.
    assert_eq!(
        s.audit_entries("safe.fetch_share").await.len(),
        audited_before
    );
    let (status, body) = s.admin("GET", &share_path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_secret().await.0, 200);
    assert_eq!(s.admin("GET", "/v1/audit/verify", None).await.1["ok"], true);
    s.stop().await;
}

/// Stored secrets are audited under a keyed hash of their namespaced name
/// (`HMAC(audit_value key, "{principal}|{name}")`, 16 bytes in lowercase hex), never the name.
#[tokio::test]
async fn secret_audit_targets_are_salted_hmacs_never_the_name() {
    const NAME: &str = "payroll/zebra-quokka-31337";
    let s = TestServer::start().await;
    let alice = s.create_app("alice").await;
    let bob = s.create_app("bob").await;
    let path = format!("/v1/secrets/{NAME}");
    let mut shares = Vec::new();
    for token in [&alice, &bob] {
        let (status, body) = s
            .call("PUT", &path, Some(token), Some(json!({"value": b64(b"v")})))
            .await;
        assert_eq!(status, 200, "{body}");
        shares.push(body["share"].as_str().unwrap().to_owned());
    }
    let get = |token: &str, share: &str| {
        let req = s
            .client
            .get(s.url(&path))
            .bearer_auth(token)
            .header("daas-share", share);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(&alice, &shares[0]).await, 200);
    // Same object, wrong key bytes: reaches the commitment check (audited as `invalid`).
    let mut raw = unb64(shares[0].strip_prefix("daas:share:v1:").unwrap());
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    let forged = format!("daas:share:v1:{}", b64(&raw));
    assert_eq!(get(&alice, &forged).await, 400);
    // A share of another object (bob's): refused before any key material is combined, and
    // audited all the same.
    assert_eq!(get(&alice, &shares[1]).await, 400);
    assert_eq!(get(&bob, &shares[1]).await, 200);
    let (status, _) = s.call("DELETE", &path, Some(&bob), None).await;
    assert_eq!(status, 204);
    assert_eq!(get(&bob, &shares[1]).await, 404);

    // The expected targets, from the dev server's storage key.
    let master = std::fs::read(s.dir.path().join("data").join("storage.key")).unwrap();
    let keys = daas_crypto::storage::StorageKeys::derive(
        &daas_crypto::Key256::from_slice(&master).unwrap(),
    );
    let alice_target = keys.audit_value(format!("app:alice|{NAME}").as_bytes());
    let bob_target = keys.audit_value(format!("app:bob|{NAME}").as_bytes());
    for target in [&alice_target, &bob_target] {
        assert_eq!(target.len(), 32);
        assert!(
            target
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
    assert_ne!(
        alice_target, bob_target,
        "the namespace is part of the hash"
    );
    // Keyed, not a bare hash of the name.
    for unkeyed in [NAME.to_owned(), format!("app:alice|{NAME}")] {
        let plain = hex::encode(daas_server::admin_token_sha256(&unkeyed));
        assert!(!plain.starts_with(&alice_target));
    }

    let (status, audit) = s.admin("GET", "/v1/audit?limit=1000", None).await;
    assert_eq!(status, 200);
    let entries = audit["entries"].as_array().unwrap();
    for entry in entries {
        for (field, value) in entry.as_object().unwrap() {
            let text = value.to_string();
            for needle in [NAME, "zebra-quokka", "payroll"] {
                assert!(
                    !text.contains(needle),
                    "audit {field} names the secret: {entry}"
                );
            }
        }
    }
    let secret_rows: Vec<(String, String, String, String)> = entries
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("secret."))
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let row = |actor: &str, action: &str, target: &str, outcome: &str| {
        (
            actor.to_owned(),
            action.to_owned(),
            target.to_owned(),
            outcome.to_owned(),
        )
    };
    assert_eq!(
        secret_rows,
        vec![
            row("app:alice", "secret.put", &alice_target, "ok"),
            row("app:bob", "secret.put", &bob_target, "ok"),
            row("app:alice", "secret.get", &alice_target, "ok"),
            row("app:alice", "secret.get", &alice_target, "invalid"),
            row("app:alice", "secret.get", &alice_target, "invalid"),
            row("app:bob", "secret.get", &bob_target, "ok"),
            row("app:bob", "secret.delete", &bob_target, "ok"),
            row("app:bob", "secret.get", &bob_target, "not_found"),
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let s = TestServer::start().await;
    let (status, body) = s.admin("GET", "/v1/nope", None).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s.admin("DELETE", "/v1/safe/encrypt", None).await;
    assert_error(status, &body, 405, "method_not_allowed");
    let (status, body) = s.call("GET", "/v1/sys/health", None, None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    s.stop().await;
}

#[tokio::test]
async fn client_mode_share_fetch_requires_access_and_client_mode() {
    let s = TestServer::start().await;
    let t = s.token.clone();
    let (status, body) = s
        .call(
            "POST",
            "/v1/safe/encrypt",
            Some(&t),
            Some(json!({"plaintext": "aGk"})),
        )
        .await;
    assert_eq!(status, 200);
    let id = body["object_id"].as_str().unwrap();
    // A server-mode object's share is never released.
    let (status, body) = s
        .admin("GET", &format!("/v1/safe/objects/{id}/share"), None)
        .await;
    assert_error(status, &body, 403, "forbidden");
    // A deposit must carry the server share (index 2).
    let client_share = daas_crypto::share::Share {
        object_id: daas_crypto::ObjectId::generate().unwrap(),
        index: daas_crypto::share::ShareIndex::Client,
        key: daas_crypto::Key256::generate().unwrap(),
    };
    let (status, body) = s
        .admin(
            "POST",
            "/v1/safe/objects",
            Some(
                json!({"share": client_share.encode(), "commitment": b64(&[0u8; 32]), "suite": 1}),
            ),
        )
        .await;
    assert_error(status, &body, 400, "malformed_request");
    s.stop().await;
}

// ------------------------------------------------------------------ security review regressions

/// Client-side construction of a client-mode object: (ciphertext, client share t1, deposit body).
#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failed step should panic with its location"
)]
fn client_mode_object(owner: &str, plaintext: &[u8]) -> (String, String, serde_json::Value) {
    use daas_crypto::envelope::{self, Context, Suite};
    use daas_crypto::share::{Share, ShareIndex};
    let id = daas_crypto::ObjectId::generate().unwrap();
    let k = daas_crypto::Key256::generate().unwrap();
    let ctx = Context {
        object_id: id,
        key_version: 1,
        owner,
        audience: "",
    };
    let env = envelope::seal(&k, Suite::Aes256Gcm, &ctx, plaintext).unwrap();
    let commitment = daas_crypto::commit::commitment(&k, &id);
    let (t1, t2) = daas_crypto::xor::split(&k).unwrap();
    let server = Share {
        object_id: id,
        index: ShareIndex::Server,
        key: t2,
    };
    let client = Share {
        object_id: id,
        index: ShareIndex::Client,
        key: t1,
    };
    (
        env.encode(),
        client.encode(),
        json!({"share": server.encode(), "commitment": b64(&commitment), "suite": 1}),
    )
}

#[tokio::test]
async fn admin_cannot_add_itself_to_an_access_list() {
    let s = TestServer::start().await;
    let alice = s.create_app("alice").await;
    let bob = s.create_app("bob").await;
    let (status, body) = s
        .call(
            "POST",
            "/v1/safe/encrypt",
            Some(&alice),
            Some(json!({"plaintext": b64(b"x"), "access": ["app:bob"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["object_id"].as_str().unwrap().to_owned();
    let (ct, share) = (
        body["ciphertext"].as_str().unwrap().to_owned(),
        body["share"].as_str().unwrap().to_owned(),
    );
    let path = format!("/v1/safe/objects/{id}/access");
    // Adding itself (or anyone) is the owner's call, not the admin's ...
    for access in [
        json!(["admin"]),
        json!(["app:bob", "admin"]),
        json!(["app:carol"]),
    ] {
        let (status, body) = s
            .admin("PUT", &path, Some(json!({ "access": access })))
            .await;
        assert_error(status, &body, 403, "forbidden");
    }
    let (status, body) = s.decrypt(&s.token.clone(), &ct, &share).await;
    assert_error(status, &body, 403, "forbidden");
    // ... but the admin can take principals off (and re-submitting the list unchanged is fine).
    let (status, body) = s
        .admin("PUT", &path, Some(json!({"access": ["app:bob"]})))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.admin("PUT", &path, Some(json!({"access": []}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["access"], json!(["app:alice"]));
    assert_eq!(s.decrypt(&bob, &ct, &share).await.0, 403);
    // The owner still grants.
    let (status, body) = s
        .call(
            "PUT",
            &path,
            Some(&alice),
            Some(json!({"access": ["admin"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.decrypt(&s.token.clone(), &ct, &share).await.0, 200);
    // The refusals are on the audit log.
    let (_, audit) = s.admin("GET", "/v1/audit?limit=1000", None).await;
    let denied = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "safe.set_access" && e["outcome"] == "denied")
        .count();
    assert_eq!(denied, 3, "{audit}");
    s.stop().await;
}

#[tokio::test]
async fn secret_names_are_scoped_to_their_owner() {
    let s = TestServer::start().await;
    let alice = s.create_app("alice").await;
    let bob = s.create_app("bob").await;
    let admin = s.token.clone();
    let put = |token: String, value: &[u8]| {
        let (s, body) = (&s, json!({"value": b64(value)}));
        async move {
            s.call("PUT", "/v1/secrets/db/password", Some(&token), Some(body))
                .await
        }
    };
    let get = |token: &str, share: &str| {
        let req = s
            .client
            .get(s.url("/v1/secrets/db/password"))
            .bearer_auth(token)
            .header("daas-share", share);
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = put(alice.clone(), b"alice's").await;
    assert_eq!(status, 200, "{body}");
    let alice_share = body["share"].as_str().unwrap().to_owned();

    // No existence oracle: another principal's secret is simply not found, for the admin too.
    for token in [&bob, &admin] {
        let (status, body) = get(token, &alice_share).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = s
            .call("DELETE", "/v1/secrets/db/password", Some(token), None)
            .await;
        assert_error(status, &body, 404, "not_found");
    }
    // No squatting or overwrite (nor ownership transfer): bob and the admin get their own.
    for (token, value) in [(&bob, &b"bob's"[..]), (&admin, &b"admin's"[..])] {
        let (status, body) = put(token.clone(), value).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["version"], 1, "a new secret in its own namespace");
        let share = body["share"].as_str().unwrap().to_owned();
        let (status, body) = get(token, &share).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(unb64(body["value"].as_str().unwrap()), value);
    }
    let (status, body) = get(&alice, &alice_share).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(unb64(body["value"].as_str().unwrap()), b"alice's");
    assert_eq!(body["version"], 1);

    // Each lists only its own, under the plain name.
    for (token, owner) in [(&alice, "app:alice"), (&bob, "app:bob"), (&admin, "admin")] {
        let (status, body) = s.call("GET", "/v1/secrets", Some(token), None).await;
        assert_eq!(status, 200);
        let list = body["secrets"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{body}");
        assert_eq!(list[0]["name"], "db/password");
        assert_eq!(list[0]["owner"], owner);
    }
    // Deleting one's own leaves the others alone.
    let (status, _) = s
        .call("DELETE", "/v1/secrets/db/password", Some(&bob), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(get(&alice, &alice_share).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn client_mode_object_is_refused_by_server_decrypt() {
    let s = TestServer::start().await;
    let t = s.token.clone();
    let (ct, t1, deposit) = client_mode_object("admin", b"end to end");
    let (status, body) = s.admin("POST", "/v1/safe/objects", Some(deposit)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s.decrypt(&t, &ct, &t1).await;
    assert_error(status, &body, 400, "client_mode_object");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daas decrypt --local"),
        "{body}"
    );
    assert!(!body.to_string().contains("ZW5kIHRvIGVuZA"), "no plaintext");
    // The refusal is audited; nothing was released.
    let (_, audit) = s.admin("GET", "/v1/audit?limit=1000", None).await;
    let outcomes: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "safe.decrypt")
        .map(|e| {
            (
                e["outcome"].as_str().unwrap(),
                e["detail"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![("refused", "client-mode object: decrypt locally")]
    );
    // The client-mode path (fetch t2, open locally) is unaffected.
    let id = daas_crypto::share::Share::parse(&t1)
        .unwrap()
        .object_id
        .to_hex();
    let (status, body) = s
        .admin("GET", &format!("/v1/safe/objects/{id}/share"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    s.stop().await;
}

#[tokio::test]
async fn secret_backing_objects_are_not_reachable_through_safe_routes() {
    let s = TestServer::start().await;
    let alice = s.create_app("alice").await;
    let (status, body) = s
        .call(
            "PUT",
            "/v1/secrets/db/password",
            Some(&alice),
            Some(json!({"value": b64(b"hunter2")})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let share = body["share"].as_str().unwrap().to_owned();
    let object_id = daas_crypto::share::Share::parse(&share).unwrap().object_id;
    let id = object_id.to_hex();

    // The owner itself cannot reach the backing object through /v1/safe: not found everywhere.
    for (method, path, body) in [
        ("GET", format!("/v1/safe/objects/{id}"), None),
        ("GET", format!("/v1/safe/objects/{id}/share"), None),
        (
            "PUT",
            format!("/v1/safe/objects/{id}/access"),
            Some(json!({"access": ["app:mallory"]})),
        ),
        ("DELETE", format!("/v1/safe/objects/{id}"), None),
    ] {
        let (status, resp) = s.call(method, &path, Some(&alice), body).await;
        assert_error(status, &resp, 404, "not_found");
    }
    // Nor through decrypt (an envelope naming the object id is enough to reach the lookup).
    let ctx = daas_crypto::envelope::Context {
        object_id,
        key_version: 1,
        owner: "app:alice",
        audience: "",
    };
    let env = daas_crypto::envelope::seal(
        &daas_crypto::Key256::generate().unwrap(),
        daas_crypto::envelope::Suite::Aes256Gcm,
        &ctx,
        b"x",
    )
    .unwrap();
    let (status, body) = s.decrypt(&alice, &env.encode(), &share).await;
    assert_error(status, &body, 404, "not_found");
    // The admin neither.
    let (status, body) = s
        .admin("DELETE", &format!("/v1/safe/objects/{id}"), None)
        .await;
    assert_error(status, &body, 404, "not_found");

    // The secret is intact.
    let r = s
        .client
        .get(s.url("/v1/secrets/db/password"))
        .bearer_auth(&alice)
        .header("daas-share", &share)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // `secret:` audiences are reserved: neither mode can create one.
    let (status, body) = s
        .call(
            "POST",
            "/v1/safe/encrypt",
            Some(&alice),
            Some(json!({"plaintext": "aGk", "audience": "secret:app:alice|db/password"})),
        )
        .await;
    assert_error(status, &body, 400, "malformed_request");
    let (_, _, mut deposit) = client_mode_object("app:alice", b"x");
    deposit["audience"] = json!("secret:x");
    let (status, body) = s
        .call("POST", "/v1/safe/objects", Some(&alice), Some(deposit))
        .await;
    assert_error(status, &body, 400, "malformed_request");
    s.stop().await;
}

/// Unknown app ids are remembered: a repeated bogus token does not reach the database. Proven
/// by making the apps table unreadable from outside: the remembered id still gets a plain 401.
#[tokio::test]
async fn unknown_app_ids_are_negatively_cached() {
    let s = TestServer::start().await;
    let known = "daas_app_0123456789abcdef_xyz";
    let (status, body) = s.call("GET", "/v1/sys/whoami", Some(known), None).await;
    assert_error(status, &body, 401, "unauthenticated");

    let db = rusqlite::Connection::open(s.db_path()).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    db.execute_batch("ALTER TABLE apps RENAME TO apps_gone;")
        .unwrap();

    // A fresh unknown id needs the database, which now fails: the lookup really is broken ...
    let (status, body) = s
        .call(
            "GET",
            "/v1/sys/whoami",
            Some("daas_app_fedcba9876543210_xyz"),
            None,
        )
        .await;
    assert_error(status, &body, 500, "internal");
    assert_eq!(
        body,
        json!({"error": {"code": "internal", "message": "internal error"}}),
        "the apps table is unreadable; no internal detail is returned"
    );
    // ... yet the remembered id is answered from memory.
    for _ in 0..3 {
        let (status, body) = s.call("GET", "/v1/sys/whoami", Some(known), None).await;
        assert_error(status, &body, 401, "unauthenticated");
    }
    db.execute_batch("ALTER TABLE apps_gone RENAME TO apps;")
        .unwrap();
    // An app created later is not affected by the negative cache.
    let token = s.create_app("late").await;
    let (status, body) = s.call("GET", "/v1/sys/whoami", Some(&token), None).await;
    assert_eq!((status, body), (200, json!({"principal": "app:late"})));
    s.stop().await;
}

/// A flood of bad tokens cannot write one audit row each: beyond a burst the failures are
/// counted, and the next row written says how many were not itemised. No failure goes uncounted.
#[tokio::test]
async fn auth_failure_audit_is_rate_limited_and_counts_the_rest() {
    let s = TestServer::start().await;
    const FLOOD: usize = 400;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..FLOOD {
        let req = s
            .client
            .get(s.url("/v1/sys/whoami"))
            .bearer_auth(format!("daas_admin_wrong{i}"));
        tasks.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 401);
    }
    // Let the bucket refill a little, then one more failure carries the count.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, _) = s.call("GET", "/v1/sys/whoami", None, None).await;
    assert_eq!(status, 401);

    let (status, audit) = s.admin("GET", "/v1/audit?limit=1000", None).await;
    assert_eq!(status, 200);
    let rows: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.failure")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert!(
        rows.len() >= 100 && rows.len() < FLOOD,
        "{} rows for {} failures",
        rows.len(),
        FLOOD + 1
    );
    // Each row still says precisely why its failure failed; counts ride along.
    let mut counted = 0u64;
    let mut causes = Vec::new();
    for d in &rows {
        let (cause, n) = match d.split_once(" (") {
            Some((cause, tail)) => {
                let n = tail
                    .strip_suffix(" earlier failures not itemised)")
                    .unwrap_or_else(|| panic!("unexpected detail {d:?}"));
                (cause, n.parse::<u64>().unwrap())
            }
            None => (*d, 0),
        };
        causes.push(cause);
        counted += n;
    }
    assert!(counted > 0, "{rows:?}");
    assert_eq!(
        rows.len() as u64 + counted,
        (FLOOD + 1) as u64,
        "every failure is either itemised or counted: {rows:?}"
    );
    assert_eq!(causes.pop(), Some("no bearer token"), "{rows:?}");
    assert!(
        causes.iter().all(|c| *c == "token secret does not match"),
        "{rows:?}"
    );
    s.stop().await;
}
