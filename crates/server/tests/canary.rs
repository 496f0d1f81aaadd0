//! Canary: known secret bytes pushed through every endpoint must not appear in any log line
//! (at TRACE), audit entry, error body, or the database file — in raw, hex or base64 form.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail by panicking"
)]
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

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

#[tokio::test]
async fn canary_never_leaks() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

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
