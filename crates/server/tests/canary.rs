//! Canary: known secret bytes pushed through every endpoint must not appear in any log line
//! (at TRACE), audit entry, error body, or the database file — in raw, hex or base64 form.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail by panicking"
)]
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use common::{TestServer, b64};
use serde_json::json;

const CANARY: &[u8] = b"CANARY-7f3a9c-do-not-leak-0123456789";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn forms(secret: &[u8]) -> Vec<String> {
    vec![
        String::from_utf8_lossy(secret).into_owned(),
        hex::encode(secret),
        b64(secret),
        base64::engine::general_purpose::STANDARD.encode(secret),
        // A distinctive middle slice catches partial leaks and other alignments of base64.
        String::from_utf8_lossy(&secret[7..20]).into_owned(),
    ]
}

/// Change the last character (always a real change, unlike `replace`).
fn mutate(text: &str) -> String {
    let mut out = text.to_owned();
    let last = out.pop().unwrap();
    out.push(if last == 'A' { 'B' } else { 'A' });
    out
}

fn assert_clean(what: &str, haystack: &str, needles: &[String]) {
    for n in needles {
        assert!(
            !haystack.contains(n.as_str()),
            "{what} leaks secret material ({n})"
        );
    }
}

/// The process-wide TRACE log capture (one subscriber per test binary, shared by its tests:
/// each test checks the whole capture for its own needles).
fn capture() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let sink = captured.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || sink.clone())
                .with_ansi(false)
                .init();
            captured
        })
        .clone()
}

#[tokio::test]
async fn canary_never_leaks() {
    let captured = capture();

    let s = TestServer::start().await;
    let t = s.token.clone();
    let app = s.create_app("canary-app").await;
    let mut bodies = String::new();

    // Server-mode encrypt/decrypt, including failing decrypts.
    let (ct, share) = s.encrypt(&t, CANARY, &["app:canary-app"]).await;
    let (status, body) = s.decrypt(&t, &ct, &share).await;
    assert_eq!(status, 200);
    assert_eq!(common::unb64(body["plaintext"].as_str().unwrap()), CANARY);
    for (c, sh) in [
        (ct.clone(), mutate(&share)),
        (mutate(&ct), share.clone()),
        (ct[..40].to_owned(), share.clone()),
    ] {
        bodies.push_str(&s.decrypt(&t, &c, &sh).await.1.to_string());
    }
    // Secrets: put, get with right and wrong shares, replace, list, delete.
    let (_, put) = s
        .call(
            "PUT",
            "/v1/secrets/db/password",
            Some(&app),
            Some(json!({"value": b64(CANARY)})),
        )
        .await;
    let secret_share = put["share"].as_str().unwrap().to_owned();
    for sh in [
        secret_share.clone(),
        mutate(&secret_share),
        "junk".to_owned(),
    ] {
        let r = s
            .client
            .get(s.url("/v1/secrets/db/password"))
            .bearer_auth(&app)
            .header("daas-share", sh)
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        if !text.contains("\"value\"") {
            bodies.push_str(&text);
        }
    }
    bodies.push_str(
        &s.call("GET", "/v1/secrets", Some(&app), None)
            .await
            .1
            .to_string(),
    );
    // Bad requests carrying the canary in every field.
    let canary_text = String::from_utf8_lossy(CANARY).into_owned();
    for body in [
        json!({"plaintext": canary_text}),
        json!({"plaintext": b64(CANARY), "audience": canary_text.repeat(20)}),
        json!({"plaintext": b64(CANARY), "access": [canary_text]}),
    ] {
        bodies.push_str(
            &s.call("POST", "/v1/safe/encrypt", Some(&t), Some(body))
                .await
                .1
                .to_string(),
        );
    }
    bodies.push_str(
        &s.call(
            "POST",
            "/v1/safe/decrypt",
            Some(&t),
            Some(json!({"ciphertext": canary_text, "share": canary_text})),
        )
        .await
        .1
        .to_string(),
    );
    bodies.push_str(
        &s.call(
            "POST",
            "/v1/apps",
            Some(&t),
            Some(json!({"name": canary_text})),
        )
        .await
        .1
        .to_string(),
    );
    bodies.push_str(
        &s.call("GET", "/v1/sys/whoami", Some(&canary_text), None)
            .await
            .1
            .to_string(),
    );
    bodies.push_str(
        &s.call(
            "PUT",
            "/v1/secrets/x",
            Some(&t),
            Some(json!({"value": canary_text})),
        )
        .await
        .1
        .to_string(),
    );
    let (status, _) = s
        .call("DELETE", "/v1/secrets/db/password", Some(&app), None)
        .await;
    assert_eq!(status, 204);

    let (_, audit) = s.admin("GET", "/v1/audit?limit=1000", None).await;
    let audit_text = audit.to_string();
    assert!(
        audit_text.contains("safe.decrypt") && audit_text.contains("secret.get"),
        "audit is recording"
    );
    let db_path = s.db_path();
    let _kept_until_the_end = s.stop().await;

    let mut needles = forms(CANARY);
    // The shares are secrets too: the server must never log or audit them.
    needles.push(share.clone());
    needles.push(secret_share.clone());
    needles.push(t.clone());
    needles.push(app.clone());
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(logs.contains("request"), "the capture saw the access log");
    assert_clean("the server log", &logs, &needles);
    assert_clean("the audit log", &audit_text, &needles);
    assert_clean("an error body", &bodies, &needles);
    // At rest: the database (and its WAL) never hold the canary or the shares' key bytes.
    let mut at_rest = Vec::new();
    for suffix in ["", "-wal"] {
        if let Ok(bytes) = std::fs::read(format!("{}{suffix}", db_path.display())) {
            at_rest.extend(bytes);
        }
    }
    assert!(!at_rest.is_empty());
    assert!(
        !at_rest.windows(CANARY.len()).any(|w| w == CANARY),
        "plaintext canary found in the database file"
    );
    assert!(
        !at_rest.windows(9).any(|w| w == b"db/passwo"),
        "secret names are sealed at rest"
    );
}

/// Records where a needle was found instead of stopping at the first leak, so one run reports
/// every leaking place.
#[derive(Default)]
struct Leaks(Vec<String>);

impl Leaks {
    fn check(&mut self, what: &str, haystack: &str, needles: &[String]) {
        for n in needles {
            if let Some(at) = haystack.find(n.as_str()) {
                // Show the surroundings of the first hit (bounded; on char boundaries).
                let start = haystack.floor_char_boundary(at.saturating_sub(80));
                let end = haystack.ceil_char_boundary((at + n.len() + 80).min(haystack.len()));
                self.0
                    .push(format!("{what} leaks {n:?}: …{}…", &haystack[start..end]));
            }
        }
    }
}

/// One raw request; returns (status, body text).
async fn raw(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    share_header: Option<&str>,
    json_body: Option<&str>,
) -> (u16, String) {
    let mut req = s.client.request(method.parse().unwrap(), s.url(path));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(sh) = share_header {
        req = req.header("daas-share", sh);
    }
    if let Some(b) = json_body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn sdk(s: &TestServer, token: &str) -> daas_sdk::Client {
    daas_sdk::Client::new(daas_sdk::ClientConfig {
        addr: s.addr.clone(),
        token: daas_sdk::SecretString::new(token.to_owned()),
        ca_cert_pem: Some(std::fs::read(&s.cacert).unwrap()),
    })
    .unwrap()
}

/// The endpoints the first canary test does not reach: client-mode deposit and share fetch
/// (through the SDK's local encrypt/decrypt), object metadata/access/delete, the app list, the
/// audit list and verify, unseal (dev and Shamir-sealed), and every wrong-credential variant
/// with the canary as the bearer token, a share, a secret name and value, and inside malformed
/// JSON. The canary (and the shares and tokens) must appear in no log line, audit entry, error
/// body, or `Debug` of the SDK and crypto types that hold them.
#[tokio::test]
async fn canary_never_leaks_through_client_mode_admin_routes_and_bad_input() {
    let captured = capture();
    let s = TestServer::start().await;
    let admin_token = s.token.clone();
    let app_token = s.create_app("canary-client").await;
    let other_token = s.create_app("canary-other").await;
    let app = sdk(&s, &app_token);
    let admin = sdk(&s, &admin_token);
    let canary_text = String::from_utf8_lossy(CANARY).into_owned();
    let mut bodies: Vec<(String, String)> = Vec::new();
    let mut debugs: Vec<(String, String)> = Vec::new();
    let mut secret_needles: Vec<String> = vec![admin_token.clone(), app_token.clone()];

    // --- client mode: deposit (POST /v1/safe/objects) and share fetch (GET .../share).
    let enc = app
        .encrypt_local(
            CANARY,
            &daas_sdk::EncryptOptions::default().allow("app:canary-other"),
        )
        .await
        .unwrap();
    secret_needles.push(enc.share.expose().to_owned());
    debugs.push(("sdk Encrypted (client mode)".into(), format!("{enc:?}")));
    let id = enc.object_id;
    let id_hex = id.to_hex();
    let plain = app
        .decrypt_local(&enc.ciphertext, &enc.share)
        .await
        .unwrap();
    assert_eq!(plain.as_slice(), CANARY);
    let plain = sdk(&s, &other_token)
        .decrypt_local(&enc.ciphertext, &enc.share)
        .await
        .unwrap();
    assert_eq!(plain.as_slice(), CANARY);
    // The server's half, as fetched: a secret too.
    let (status, fetched) = raw(
        &s,
        "GET",
        &format!("/v1/safe/objects/{id_hex}/share"),
        Some(&app_token),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{fetched}");
    let fetched: serde_json::Value = serde_json::from_str(&fetched).unwrap();
    let server_share = fetched["share"].as_str().unwrap().to_owned();
    secret_needles.push(server_share.clone());
    // The crypto types holding both halves never print their key bytes.
    for (what, text) in [
        ("client share", enc.share.expose()),
        ("server share", &server_share),
    ] {
        let parsed = daas_crypto::share::Share::parse(text).unwrap();
        let key = parsed.key.expose();
        secret_needles.extend([
            hex::encode(key),
            b64(key),
            format!("{:?}", &key[..]),
            format!("{:?}", &key[..8]).trim_end_matches(']').to_owned(),
        ]);
        debugs.push((format!("daas_crypto Share ({what})"), format!("{parsed:?}")));
        debugs.push((
            format!("daas_crypto Key256 ({what})"),
            format!("{:?}", parsed.key),
        ));
    }
    debugs.push((
        "daas_crypto Envelope".into(),
        format!(
            "{:?}",
            daas_crypto::envelope::Envelope::parse(&enc.ciphertext).unwrap()
        ),
    ));
    // Wrong callers and wrong shares on the client-mode routes.
    for (token, path) in [
        (
            admin_token.as_str(),
            format!("/v1/safe/objects/{id_hex}/share"),
        ),
        (
            app_token.as_str(),
            format!("/v1/safe/objects/{}/share", "f".repeat(32)),
        ),
        (
            app_token.as_str(),
            "/v1/safe/objects/not-an-id/share".to_owned(),
        ),
    ] {
        let (status, body) = raw(&s, "GET", &path, Some(token), None, None).await;
        assert!((400..500).contains(&status), "{path}: {status} {body}");
        bodies.push((format!("GET {path}"), body));
    }
    let mut tampered = enc.share.expose().to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let err = app
        .decrypt_local(&enc.ciphertext, &daas_sdk::SecretString::new(tampered))
        .await
        .unwrap_err();
    debugs.push((
        "sdk Error (tampered local decrypt)".into(),
        format!("{err:?} / {err}"),
    ));

    // --- object metadata, access, delete (through the SDK and raw).
    let info = app.object(&id).await.unwrap();
    debugs.push(("sdk ObjectInfo".into(), format!("{info:?}")));
    let info = app
        .set_access(&id, &["app:canary-other".to_owned(), "admin".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        info.access,
        ["app:canary-client", "app:canary-other", "admin"]
    );
    let err = app
        .set_access(&id, std::slice::from_ref(&canary_text))
        .await
        .unwrap_err();
    debugs.push((
        "sdk Error (bad access entry)".into(),
        format!("{err:?} / {err}"),
    ));
    for body in [
        json!({"access": [canary_text]}).to_string(),
        format!("{{\"access\": [\"{canary_text}\""),
    ] {
        let path = format!("/v1/safe/objects/{id_hex}/access");
        let (status, text) = raw(&s, "PUT", &path, Some(&app_token), None, Some(&body)).await;
        assert_eq!(status, 400, "{body}: {text}");
        bodies.push((format!("PUT access {body}"), text));
    }
    let (status, text) = raw(
        &s,
        "PUT",
        &format!("/v1/safe/objects/{id_hex}/access"),
        Some(&other_token),
        None,
        Some(r#"{"access": []}"#),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    bodies.push(("PUT access by a reader".into(), text));

    // --- server mode and stored secrets through the SDK (Debug of what they return).
    let enc2 = app
        .encrypt(CANARY, &daas_sdk::EncryptOptions::default())
        .await
        .unwrap();
    secret_needles.push(enc2.share.expose().to_owned());
    debugs.push(("sdk Encrypted (server mode)".into(), format!("{enc2:?}")));
    assert_eq!(
        app.decrypt(&enc2.ciphertext, &enc2.share)
            .await
            .unwrap()
            .as_slice(),
        CANARY
    );
    let stored = app.secret_put("sdk/secret", CANARY).await.unwrap();
    secret_needles.push(stored.share.expose().to_owned());
    debugs.push(("sdk SecretStored".into(), format!("{stored:?}")));
    let value = app.secret_get("sdk/secret", &stored.share).await.unwrap();
    assert_eq!(value.value.as_slice(), CANARY);
    debugs.push(("sdk SecretValue".into(), format!("{value:?}")));
    let created = admin.app_create("canary-third").await.unwrap();
    secret_needles.push(created.token.expose().to_owned());
    debugs.push(("sdk AppCreated".into(), format!("{created:?}")));
    debugs.push(("sdk Client".into(), format!("{app:?} {admin:?}")));
    debugs.push((
        "sdk ClientConfig".into(),
        format!(
            "{:?}",
            daas_sdk::ClientConfig {
                addr: s.addr.clone(),
                token: daas_sdk::SecretString::new(app_token.clone()),
                ca_cert_pem: None,
            }
        ),
    ));

    // --- the canary as a secret's name and value, and as the share of a read.
    let canary_path = format!("/v1/secrets/{canary_text}");
    let put_body = json!({"value": b64(CANARY)}).to_string();
    let (status, text) = raw(
        &s,
        "PUT",
        &canary_path,
        Some(&app_token),
        None,
        Some(&put_body),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let canary_share = serde_json::from_str::<serde_json::Value>(&text).unwrap()["share"]
        .as_str()
        .unwrap()
        .to_owned();
    secret_needles.push(canary_share.clone());
    let (status, _) = raw(
        &s,
        "GET",
        &canary_path,
        Some(&app_token),
        Some(&canary_share),
        None,
    )
    .await;
    assert_eq!(status, 200);
    for share in [
        canary_text.as_str(),
        &format!("daas:share:v1:{}", b64(CANARY)),
        &server_share,
    ] {
        let (status, text) =
            raw(&s, "GET", &canary_path, Some(&app_token), Some(share), None).await;
        assert_eq!(status, 400, "{text}");
        bodies.push(("GET secret with a bad share".into(), text));
    }
    for path in [
        format!("/v1/secrets/{canary_text}%7Cx"),
        format!("/v1/secrets/{canary_text}/"),
        format!("/v1/secrets/{}", canary_text.repeat(4)),
    ] {
        let (status, text) = raw(&s, "PUT", &path, Some(&app_token), None, Some(&put_body)).await;
        assert_eq!(status, 400, "{path}: {text}");
        bodies.push((format!("PUT {path}"), text));
    }
    for body in [
        // (The canary text alone is valid base64url: `=` makes it invalid.)
        json!({"value": format!("{canary_text}=")}).to_string(),
        json!({"value": [canary_text]}).to_string(),
        format!("{{\"value\": \"{}", b64(CANARY)),
        format!("{{\"value\": {canary_text}}}"),
    ] {
        let (status, text) = raw(
            &s,
            "PUT",
            "/v1/secrets/x",
            Some(&app_token),
            None,
            Some(&body),
        )
        .await;
        assert_eq!(status, 400, "{body}: {text}");
        bodies.push((format!("PUT secret {body}"), text));
    }
    let (status, text) = raw(
        &s,
        "GET",
        &canary_path,
        Some(&other_token),
        Some(&canary_share),
        None,
    )
    .await;
    assert_eq!(status, 404, "{text}");
    bodies.push(("GET another's secret".into(), text));
    let (status, _) = raw(&s, "DELETE", &canary_path, Some(&app_token), None, None).await;
    assert_eq!(status, 204);

    // --- client-mode deposits carrying the canary in every field, and malformed JSON.
    let deposit_bodies = [
        json!({"share": canary_text, "commitment": b64(&[0; 32]), "suite": 1}).to_string(),
        json!({"share": format!("daas:share:v1:{}", b64(&CANARY[..36])), "commitment": b64(&[0; 32]), "suite": 1}).to_string(),
        json!({"share": server_share, "commitment": b64(CANARY), "suite": 1}).to_string(),
        json!({"share": server_share, "commitment": canary_text, "suite": 1}).to_string(),
        json!({"share": server_share, "commitment": b64(&[0; 32]), "suite": 1, "audience": canary_text.repeat(10)}).to_string(),
        json!({"share": server_share, "commitment": b64(&[0; 32]), "suite": 1, "access": [canary_text]}).to_string(),
        json!({"share": [canary_text], "commitment": 1, "suite": 1}).to_string(),
        format!("{{\"share\": \"{canary_text}\", "),
        format!("{{\"share\": {canary_text}}}"),
    ];
    for body in &deposit_bodies {
        let (status, text) = raw(
            &s,
            "POST",
            "/v1/safe/objects",
            Some(&app_token),
            None,
            Some(body),
        )
        .await;
        assert!((400..500).contains(&status), "{body}: {status} {text}");
        bodies.push((format!("POST deposit {body}"), text));
    }
    for body in [
        json!({"plaintext": b64(CANARY), "audience": [canary_text]}).to_string(),
        json!({"plaintext": CANARY}).to_string(),
    ] {
        let (status, text) = raw(
            &s,
            "POST",
            "/v1/safe/encrypt",
            Some(&app_token),
            None,
            Some(&body),
        )
        .await;
        assert_eq!(status, 400, "{body}: {text}");
        bodies.push((format!("POST encrypt {body}"), text));
    }
    let (status, text) = raw(
        &s,
        "POST",
        "/v1/safe/decrypt",
        Some(&app_token),
        None,
        Some(&json!({"ciphertext": enc.ciphertext, "share": enc.share.expose()}).to_string()),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    bodies.push(("server decrypt of a client-mode object".into(), text));

    // --- unseal on the dev server (not Shamir-sealed) with the canary as the share.
    for body in [
        json!({"share": canary_text}).to_string(),
        format!("{{\"share\": \"{canary_text}"),
    ] {
        let (status, text) = raw(&s, "POST", "/v1/sys/unseal", None, None, Some(&body)).await;
        assert_eq!(status, 400, "{body}: {text}");
        bodies.push((format!("dev unseal {body}"), text));
    }

    // --- the canary as a bearer token, on every kind of route.
    let bad_tokens = [
        canary_text.clone(),
        format!("daas_admin_{}", b64(CANARY)),
        format!("daas_app_{canary_text}"),
        format!("daas_app_{}_{}", hex::encode(&CANARY[..8]), b64(CANARY)),
        format!("daas_app_{}_{canary_text}", canary_text),
    ];
    let routes: [(&str, String, Option<String>); 10] = [
        ("GET", "/v1/sys/whoami".into(), None),
        ("GET", "/v1/apps".into(), None),
        ("GET", "/v1/audit".into(), None),
        ("GET", "/v1/audit/verify".into(), None),
        ("GET", format!("/v1/safe/objects/{id_hex}"), None),
        ("GET", format!("/v1/safe/objects/{id_hex}/share"), None),
        (
            "PUT",
            format!("/v1/safe/objects/{id_hex}/access"),
            Some(r#"{"access": []}"#.into()),
        ),
        ("DELETE", format!("/v1/safe/objects/{id_hex}"), None),
        (
            "POST",
            "/v1/safe/objects".into(),
            Some(deposit_bodies[2].clone()),
        ),
        ("GET", canary_path.clone(), None),
    ];
    for token in &bad_tokens {
        for (method, path, body) in &routes {
            let (status, text) = raw(
                &s,
                method,
                path,
                Some(token),
                Some(&canary_text),
                body.as_deref(),
            )
            .await;
            assert_eq!(status, 401, "{method} {path}: {text}");
            bodies.push((format!("{method} {path} with a canary token"), text));
        }
    }
    // Non-admins on the admin routes.
    for path in ["/v1/apps", "/v1/audit", "/v1/audit/verify"] {
        let (status, text) = raw(&s, "GET", path, Some(&app_token), None, None).await;
        assert_eq!(status, 403, "{text}");
        bodies.push((format!("GET {path} by an app"), text));
    }

    // --- admin reads through the SDK.
    let apps = admin.app_list().await.unwrap();
    assert!(apps.iter().any(|a| a.name == "canary-client"));
    debugs.push(("sdk AppInfo list".into(), format!("{apps:?}")));
    let report = admin.audit_verify().await.unwrap();
    debugs.push(("sdk AuditReport".into(), format!("{report:?}")));
    let entries = admin.audit_list(None, Some(1000)).await.unwrap();
    debugs.push(("sdk AuditEntry list".into(), format!("{entries:?}")));
    let (status, verify) = s.admin("GET", "/v1/audit/verify", None).await;
    assert_eq!(status, 200);
    assert_eq!(verify["ok"], true, "{verify}");

    // --- delete the object, then every route of it is a clean 404.
    admin.delete_object(&id).await.unwrap();
    let err = app
        .decrypt_local(&enc.ciphertext, &enc.share)
        .await
        .unwrap_err();
    debugs.push((
        "sdk Error (deleted object)".into(),
        format!("{err:?} / {err}"),
    ));
    let (status, text) = raw(
        &s,
        "DELETE",
        &format!("/v1/safe/objects/{id_hex}"),
        Some(&app_token),
        None,
        None,
    )
    .await;
    assert_eq!(status, 404, "{text}");
    bodies.push(("DELETE a deleted object".into(), text));

    // --- a Shamir-sealed server: unseal with the canary and with real shares.
    let sealed_dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = sealed_dir.path().join("daas.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\n",
            sealed_dir.path().join("data").to_string_lossy()
        ),
    )
    .unwrap();
    let init = daas_server::operator_init(config.clone(), 3, 2).unwrap();
    secret_needles.extend(init.unseal_shares.iter().cloned());
    secret_needles.push(init.admin_token.clone());
    for share in &init.unseal_shares {
        let parsed = daas_crypto::shamir::ShamirShare::parse(share).unwrap();
        secret_needles.push(hex::encode(parsed.value.expose()));
        secret_needles.push(b64(parsed.value.expose()));
        debugs.push(("daas_crypto ShamirShare".into(), format!("{parsed:?}")));
    }
    debugs.push((
        "InitOutput".into(),
        format!("{:?}", init.unseal_shares.len()),
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sealed_task = tokio::spawn(daas_server::run_config(config, async move {
        let _ = stop_rx.await;
    }));
    let sealed_client = common::client_for(&init.cacert);
    let unseal_url = format!("https://127.0.0.1:{port}/v1/sys/unseal");
    let mut up = false;
    for _ in 0..400 {
        if sealed_client
            .get(format!("https://127.0.0.1:{port}/v1/sys/health"))
            .send()
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(up, "the sealed server did not start");
    let mut forged_raw = vec![2u8, 1];
    forged_raw.extend_from_slice(&CANARY[..32]);
    for body in [
        json!({"share": canary_text}).to_string(),
        json!({"share": format!("daas:unseal:v1:{}", b64(&forged_raw))}).to_string(),
        json!({"share": format!("daas:unseal:v1:{}", b64(CANARY))}).to_string(),
        json!({"share": [canary_text]}).to_string(),
        format!("{{\"share\": \"{canary_text}"),
    ] {
        let r = sealed_client
            .post(&unseal_url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(status, 400, "{body}: {text}");
        bodies.push((format!("sealed unseal {body}"), text));
    }
    for (i, share) in init.unseal_shares[..2].iter().enumerate() {
        let r = sealed_client
            .post(&unseal_url)
            .json(&json!({ "share": share }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "share {i}");
    }
    let r = sealed_client
        .get(format!("https://127.0.0.1:{port}/v1/audit"))
        .bearer_auth(&init.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let sealed_audit = r.text().await.unwrap();
    let _ = stop_tx.send(());
    sealed_task.await.unwrap().unwrap();

    let (_, audit) = s.admin("GET", "/v1/audit?limit=1000", None).await;
    let audit_text = audit.to_string();
    for action in [
        "safe.deposit",
        "safe.fetch_share",
        "safe.set_access",
        "safe.delete",
        "secret.put",
        "secret.get",
        "auth.failure",
    ] {
        assert!(audit_text.contains(action), "audit is recording {action}");
    }
    let db_path = s.db_path();
    let _kept_until_the_end = s.stop().await;

    let mut needles = forms(CANARY);
    // Some error paths lowercase what they echo.
    needles.push(canary_text.to_lowercase());
    needles.extend(secret_needles);
    let mut leaks = Leaks::default();
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(logs.contains("request"), "the capture saw the access log");
    leaks.check("the server log", &logs, &needles);
    leaks.check("the audit log", &audit_text, &needles);
    leaks.check("the sealed server's audit log", &sealed_audit, &needles);
    for (what, body) in &bodies {
        assert!(
            body.contains("\"error\""),
            "{what}: not an error body: {body}"
        );
        leaks.check(&format!("the error body of {what}"), body, &needles);
    }
    for (what, text) in &debugs {
        leaks.check(&format!("the Debug of {what}"), text, &needles);
    }
    let mut at_rest = Vec::new();
    for suffix in ["", "-wal"] {
        if let Ok(bytes) = std::fs::read(format!("{}{suffix}", db_path.display())) {
            at_rest.extend(bytes);
        }
    }
    assert!(!at_rest.is_empty());
    if at_rest.windows(CANARY.len()).any(|w| w == CANARY) {
        leaks.0.push("the database file holds the canary".into());
    }
    assert!(
        leaks.0.is_empty(),
        "{} leaks:\n{}",
        leaks.0.len(),
        leaks.0.join("\n")
    );
}

/// Malformed-JSON errors name the problem, never the caller's data: the canary sent as a value
/// of the wrong type or as an unknown field name, to every JSON route, comes back as exactly
/// `400 malformed_request` with a message that holds no form of it (in any letter case).
#[tokio::test]
async fn malformed_json_errors_do_not_echo_values_or_field_names() {
    let s = TestServer::start().await;
    let t = s.token.clone();
    let canary_text = String::from_utf8_lossy(CANARY).into_owned();
    let id = "0".repeat(32);
    let access_path = format!("/v1/safe/objects/{id}/access");
    let cases: Vec<(&str, &str, serde_json::Value)> = vec![
        (
            "POST",
            "/v1/safe/encrypt",
            json!({"plaintext": "aGk", "access": canary_text}),
        ),
        (
            "POST",
            "/v1/safe/encrypt",
            json!({"plaintext": "aGk", canary_text.clone(): 1}),
        ),
        (
            "POST",
            "/v1/safe/decrypt",
            json!({"ciphertext": 1, "share": canary_text, "x": canary_text}),
        ),
        (
            "POST",
            "/v1/safe/decrypt",
            json!({"ciphertext": [], "share": canary_text}),
        ),
        (
            "POST",
            "/v1/safe/objects",
            json!({"share": "s", "commitment": "c", "suite": canary_text}),
        ),
        (
            "POST",
            "/v1/safe/objects",
            json!({"share": "s", "commitment": "c", "suite": 1, canary_text.clone(): 1}),
        ),
        ("PUT", &access_path, json!({"access": canary_text})),
        (
            "PUT",
            &access_path,
            json!({"access": [], canary_text.clone(): 1}),
        ),
        (
            "PUT",
            "/v1/secrets/x",
            json!({"value": "aGk", canary_text.clone(): canary_text}),
        ),
        (
            "POST",
            "/v1/apps",
            json!({"name": ["x"], canary_text.clone(): 1}),
        ),
        (
            "POST",
            "/v1/sys/unseal",
            json!({"share": 7, canary_text.clone(): 1}),
        ),
    ];
    let mut needles = forms(CANARY);
    needles.push(canary_text.to_lowercase());
    needles.push(canary_text.to_uppercase());
    let mut leaks = Leaks::default();
    for (method, path, body) in cases {
        let (status, resp) = s.call(method, path, Some(&t), Some(body.clone())).await;
        common::assert_error(status, &resp, 400, "malformed_request");
        leaks.check(
            &format!("{method} {path} {body}"),
            &resp.to_string(),
            &needles,
        );
    }
    s.stop().await;
    assert!(
        leaks.0.is_empty(),
        "{} leaks:\n{}",
        leaks.0.len(),
        leaks.0.join("\n")
    );
}
