//! The server on PostgreSQL: storage going away answers 503 and leaves nothing half-written.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "test helpers outside #[test] functions fail by panicking and tell a developer why a test did nothing"
)]
mod common;

use common::{assert_error, b64, client_for};
use daas_crypto::Key256;
use daas_crypto::storage::StorageKeys;
use daas_server::{AppState, Engine};
use daas_store::{Store, StoreUrl};
use serde_json::{Value, json};

/// `DAAS_TEST_POSTGRES_URL` points at a server where we may create databases. In CI it must be
/// set (the test command starts PostgreSQL); a developer without PostgreSQL sees a notice.
fn admin_url() -> Option<String> {
    match std::env::var("DAAS_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("DAAS_TEST_POSTGRES_URL must be set in CI (run scripts/test.sh)")
        }
        Err(_) => {
            eprintln!(
                "notice: DAAS_TEST_POSTGRES_URL unset; skipping postgres server test (scripts/test.sh sets it)"
            );
            None
        }
    }
}

async fn admin_conn(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

fn with_db(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{db}")
}

#[tokio::test]
async fn storage_unavailable_is_503_and_nothing_half_written() {
    let Some(url) = admin_url() else { return };
    let admin = admin_conn(&url).await;
    let db = format!(
        "daas_srv_{}",
        daas_crypto::ObjectId::generate().unwrap().to_hex()
    );
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let db_url = with_db(&url, &db);

    let keys = StorageKeys::derive(&Key256::generate().unwrap());
    let store = Store::open(&StoreUrl::Postgres(db_url.clone()), keys.clone())
        .await
        .unwrap();
    let token = "daas_admin_test-token-for-postgres";
    let state = AppState::unsealed(
        Engine::new(store, keys, daas_server::admin_token_sha256(token)),
        daas_server::DEFAULT_MAX_BODY_BYTES,
    );
    let dir = tempfile::tempdir().unwrap();
    let files = daas_server::tls::ensure_generated(dir.path(), &[]).unwrap();
    let tls = daas_server::tls::server_config(&files.cert, &files.key).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = format!("https://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(daas_server::serve_state(listener, tls, state, async move {
        let _ = stop_rx.await;
    }));
    let client = client_for(&files.ca_cert);
    let call = |method: &'static str, path: &'static str, body: Option<Value>| {
        let mut req = client
            .request(method.parse().unwrap(), format!("{addr}{path}"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    let (status, ok) = call(
        "POST",
        "/v1/safe/encrypt",
        Some(json!({"plaintext": b64(b"before")})),
    )
    .await;
    assert_eq!(status, 200, "{ok}");
    let decrypt_body = json!({"ciphertext": ok["ciphertext"], "share": ok["share"]});

    // Take the database away: refuse new connections and kill the pooled ones.
    admin
        .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    admin
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", &[&db])
        .await
        .unwrap();

    for _ in 0..3 {
        let (status, body) = call(
            "POST",
            "/v1/safe/encrypt",
            Some(json!({"plaintext": b64(b"during")})),
        )
        .await;
        assert_error(status, &body, 503, "unavailable");
        let (status, body) = call("POST", "/v1/safe/decrypt", Some(decrypt_body.clone())).await;
        assert_error(status, &body, 503, "unavailable");
    }
    let (status, body) = call("GET", "/v1/sys/health", None).await;
    assert_error(status, &body, 503, "unavailable");

    // Back again: the old object still opens, nothing from the outage exists, the chain is whole.
    admin
        .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        if call("GET", "/v1/sys/health", None).await.0 == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "server did not recover after the database came back"
    );
    let (status, body) = call("POST", "/v1/safe/decrypt", Some(decrypt_body)).await;
    assert_eq!(status, 200, "{body}");
    let direct = admin_conn(&db_url).await;
    let objects: i64 = direct
        .query_one("SELECT count(*) FROM objects", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(objects, 1, "an encrypt during the outage left state behind");
    let (status, body) = call("GET", "/v1/audit/verify", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true, "{body}");

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    drop(direct);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
}
