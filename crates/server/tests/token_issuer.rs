//! The token endpoints as a deployment runs them: server nonces (RFC 9449 §8) derived from the
//! storage key, the SDK's nonce retry, replicas sharing one Redis replay store, and workloads
//! authenticated by their X.509-SVID.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "test helpers outside #[test] functions fail by panicking and tell a developer why a test did nothing"
)]
mod common;

use std::path::Path;

use common::{TestServer, assert_error, client_for};
use daas_crypto::Key256;
use daas_crypto::storage::StorageKeys;
use daas_server::{AppState, Engine, ReplayRedisUrl, TokenConfig};
use daas_store::{Store, StoreUrl};
use daas_token::{Alg, NonceKey, SigningKey, build_proof};
use serde_json::{Value, json};

const ADMIN: &str = "daas_admin_token-issuer-test";

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// One server process of a deployment: its own engine over the shared database file and
/// master key, served on its own port.
struct Replica {
    addr: String,
    client: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn replica(dir: &Path, master: &Key256, config: TokenConfig) -> Replica {
    let keys = StorageKeys::derive(master);
    let store = Store::open(&StoreUrl::Sqlite(dir.join("daas.db")), keys.clone())
        .await
        .unwrap();
    let engine =
        Engine::new(store, keys, daas_server::admin_token_sha256(ADMIN)).with_token_config(config);
    let state = AppState::unsealed(engine, daas_server::DEFAULT_MAX_BODY_BYTES);
    let files = daas_server::tls::ensure_generated(dir, &[]).unwrap();
    let tls = daas_server::tls::server_config(&files.cert, &files.key).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = format!("https://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        daas_server::serve_state(listener, tls, state, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Replica {
        addr,
        client: client_for(&files.ca_cert),
        stop,
        task,
    }
}

impl Replica {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    /// `POST path` with the admin token (for `/v1/token`) and one proof; status, body and the
    /// answer's `DPoP-Nonce`.
    async fn post(&self, path: &str, proof: &str, body: Value) -> (u16, Value, Option<String>) {
        let mut req = self
            .client
            .post(self.url(path))
            .header("DPoP", proof)
            .json(&body);
        if path == "/v1/token" {
            req = req.bearer_auth(ADMIN);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let nonce = resp
            .headers()
            .get("dpop-nonce")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, resp.json().await.unwrap(), nonce)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

fn nonce_key(master: &Key256) -> NonceKey {
    NonceKey::new(*StorageKeys::derive(master).dpop_nonce_key().expose())
}

fn proof(key: &SigningKey, url: &str, nonce: Option<&str>) -> String {
    build_proof(key, "POST", url, now(), None, None, nonce).unwrap()
}

fn jti(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&common::unb64(payload)).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_token_endpoints_require_a_fresh_server_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let master = Key256::generate().unwrap();
    let r = replica(dir.path(), &master, TokenConfig::default()).await;
    let ours = nonce_key(&master);
    let key = SigningKey::generate(Alg::EdDsa).unwrap();
    let url = r.url("/v1/token");
    let body = json!({"aud": "svc"});

    // No nonce, a stale one (authentic, three windows old), another server's: the same
    // challenge, each time with a fresh nonce of this deployment's key.
    let stale = ours.issue(now() - 3 * 300);
    let foreign = NonceKey::generate().unwrap().issue(now());
    for nonce in [None, Some(stale.as_str()), Some(foreign.as_str())] {
        let (status, resp, fresh) = r
            .post("/v1/token", &proof(&key, &url, nonce), body.clone())
            .await;
        assert_error(status, &resp, 400, "use_dpop_nonce");
        let fresh = fresh.expect("a use_dpop_nonce answer carries a DPoP-Nonce");
        ours.verify(&fresh, now()).unwrap();
    }
    // A broken proof is not offered the nonce round trip.
    let (status, resp, _) = r.post("/v1/token", "not a proof", body.clone()).await;
    assert_error(status, &resp, 400, "invalid_dpop_proof");

    // With the current nonce: issued, and the answer carries the next nonce.
    let (status, resp, next) = r
        .post(
            "/v1/token",
            &proof(&key, &url, Some(&ours.issue(now()))),
            body,
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    ours.verify(&next.expect("success carries a DPoP-Nonce"), now())
        .unwrap();
    let lost = jti(resp["access_token"].as_str().unwrap());

    // The replacement endpoint too.
    let replace = r.url("/v1/token/replace");
    let (status, resp, fresh) = r
        .post(
            "/v1/token/replace",
            &proof(&key, &replace, None),
            json!({"jti": lost}),
        )
        .await;
    assert_error(status, &resp, 400, "use_dpop_nonce");
    let (status, resp, next) = r
        .post(
            "/v1/token/replace",
            &proof(&key, &replace, fresh.as_deref()),
            json!({"jti": lost}),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    assert!(next.is_some());
    r.stop().await;
}

#[tokio::test]
async fn nonces_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let master = Key256::generate().unwrap();
    let config = TokenConfig {
        require_nonce: false,
        ..TokenConfig::default()
    };
    let r = replica(dir.path(), &master, config).await;
    let key = SigningKey::generate(Alg::Es256).unwrap();
    let (status, resp, nonce) = r
        .post(
            "/v1/token",
            &proof(&key, &r.url("/v1/token"), None),
            json!({"aud": "svc"}),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(nonce, None);
    r.stop().await;
}

#[tokio::test]
async fn the_sdk_retries_once_with_the_servers_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let master = Key256::generate().unwrap();
    let r = replica(dir.path(), &master, TokenConfig::default()).await;
    let ca = std::fs::read(
        daas_server::tls::ensure_generated(dir.path(), &[])
            .unwrap()
            .ca_cert,
    )
    .unwrap();
    let client = daas_sdk::Client::new(daas_sdk::ClientConfig {
        addr: r.addr.clone(),
        token: daas_sdk::SecretString::new(ADMIN.to_owned()),
        ca_cert_pem: Some(ca.clone()),
    })
    .unwrap();
    let key = SigningKey::generate(Alg::EdDsa).unwrap();
    // The first call pays the round trip; the next ones reuse the nonce of the last answer.
    let first = client
        .token_get(&key, "svc", Some("read"), Some(60))
        .await
        .unwrap();
    let second = client.token_get(&key, "svc", None, None).await.unwrap();
    assert_eq!(first.scope.as_deref(), Some("read"));
    assert_ne!(first.access_token.expose(), second.access_token.expose());
    // Replacement by key alone, from a client without credentials.
    let anonymous =
        daas_sdk::Client::unauthenticated(&r.addr, Some(&ca), &daas_sdk::ClientOptions::default())
            .unwrap();
    let replaced = anonymous
        .token_replace(&key, &jti(first.access_token.expose()))
        .await
        .unwrap();
    assert_eq!(replaced.expires_in, 60);
    r.stop().await;
}

/// `DAAS_TEST_REDIS_URL` (`scripts/test-services.sh --redis`); required in CI.
fn redis_url() -> Option<String> {
    match std::env::var("DAAS_TEST_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("DAAS_TEST_REDIS_URL must be set in CI (scripts/test-services.sh --redis)")
        }
        Err(_) => {
            eprintln!("notice: DAAS_TEST_REDIS_URL unset; skipping the shared replay store test");
            None
        }
    }
}

#[tokio::test]
async fn replicas_sharing_redis_accept_a_proof_once() {
    let Some(redis) = redis_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let master = Key256::generate().unwrap();
    let shared = TokenConfig {
        // Both replicas answer as one issuer, so one proof fits either.
        issuer: Some("https://daas.test".into()),
        replay_redis: Some(ReplayRedisUrl::new(&redis).unwrap()),
        ..TokenConfig::default()
    };
    let a = replica(dir.path(), &master, shared.clone()).await;
    let b = replica(dir.path(), &master, shared).await;
    let nonces = nonce_key(&master);
    let key = SigningKey::generate(Alg::EdDsa).unwrap();
    let url = "https://daas.test/v1/token";
    let body = json!({"aud": "svc"});

    // Sequential: accepted by one replica, refused by the other.
    let p = proof(&key, url, Some(&nonces.issue(now())));
    let (status, resp, _) = a.post("/v1/token", &p, body.clone()).await;
    assert_eq!(status, 200, "{resp}");
    let (status, resp, _) = b.post("/v1/token", &p, body.clone()).await;
    assert_error(status, &resp, 400, "invalid_dpop_proof");

    // Concurrent: of the same proof sent to both at once, exactly one is accepted.
    for _ in 0..5 {
        let p = proof(&key, url, Some(&nonces.issue(now())));
        let ((sa, ra, _), (sb, rb, _)) = tokio::join!(
            a.post("/v1/token", &p, body.clone()),
            b.post("/v1/token", &p, body.clone())
        );
        let mut statuses = [sa, sb];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 400], "{ra} {rb}");
    }
    a.stop().await;
    b.stop().await;

    // The control: replicas with in-process stores both accept the proof.
    let dir = tempfile::tempdir().unwrap();
    let alone = TokenConfig {
        issuer: Some("https://daas.test".into()),
        ..TokenConfig::default()
    };
    let a = replica(dir.path(), &master, alone.clone()).await;
    let b = replica(dir.path(), &master, alone).await;
    let p = proof(&key, url, Some(&nonces.issue(now())));
    assert_eq!(a.post("/v1/token", &p, body.clone()).await.0, 200);
    assert_eq!(b.post("/v1/token", &p, body).await.0, 200);
    a.stop().await;
    b.stop().await;
}

// ---------------------------------------------------------------- X.509-SVID clients

const DIGEST: &str = "unix:sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const UID: &str = "unix:uid:1000";

fn csr() -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap();
    (key, common::b64(csr.der()))
}

/// PEM of an issued chain (`x509_svid`, base64 DER, leaf first) and its key.
fn svid_pem(chain: &Value, key: &rcgen::KeyPair) -> Vec<u8> {
    let ders: Vec<rustls_pki_types::CertificateDer<'static>> = chain
        .as_array()
        .unwrap()
        .iter()
        .map(|c| rustls_pki_types::CertificateDer::from(common::unb64(c.as_str().unwrap())))
        .collect();
    let mut pem = daas_identity::svid::certs_to_pem(&ders);
    pem.push_str(&key.serialize_pem());
    pem.into_bytes()
}

fn mtls_client(s: &TestServer, pem: &[u8]) -> reqwest::Client {
    let ca = std::fs::read(&s.cacert).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .identity(reqwest::Identity::from_pem(pem).unwrap())
        .https_only(true)
        .build()
        .unwrap()
}

/// Through the real flow: a node joins, the admin registers `spiffe://daas.local/web` under
/// it, the node gets that workload's SVID. Returns (node PEM, workload PEM).
async fn workload_svid(s: &TestServer) -> (Vec<u8>, Vec<u8>) {
    let (status, body) = s
        .admin("POST", "/v1/identity/join-tokens", Some(json!({})))
        .await;
    assert_eq!(status, 201, "{body}");
    let (node_key, node_csr) = csr();
    let (status, joined) = s
        .call(
            "POST",
            "/v1/identity/nodes/attest",
            None,
            Some(json!({"join_token": body["token"], "csr": node_csr})),
        )
        .await;
    assert_eq!(status, 200, "{joined}");
    let node_pem = svid_pem(&joined["x509_svid"], &node_key);
    let (status, body) = s
        .admin(
            "POST",
            "/v1/identity/entries",
            Some(json!({"spiffe_id": "spiffe://daas.local/web", "parent_id": joined["spiffe_id"], "selectors": [DIGEST, UID]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (key, workload_csr) = csr();
    let (status, issued) = s
        .call_with(
            &mtls_client(s, &node_pem),
            "POST",
            "/v1/identity/node/svids",
            None,
            Some(json!({"spiffe_id": "spiffe://daas.local/web", "selectors": [DIGEST, UID], "csr": workload_csr})),
        )
        .await;
    assert_eq!(status, 200, "{issued}");
    (node_pem, svid_pem(&issued["x509_svid"], &key))
}

async fn verified_claims(s: &TestServer, token: &str, aud: &str) -> daas_token::AccessTokenClaims {
    let (status, body) = s.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(status, 200, "{body}");
    let mut keys = daas_token::KeySet::new();
    for jwk in body["keys"].as_array().unwrap() {
        let key = daas_token::PublicJwk::from_json(jwk.to_string().as_bytes()).unwrap();
        keys.insert(jwk["kid"].as_str().unwrap(), key.verifying_key().unwrap())
            .unwrap();
    }
    daas_token::verify_access_token(token, &keys, &s.addr, aud, now(), 0)
        .unwrap()
        .claims()
        .clone()
}

#[tokio::test]
async fn a_workload_gets_a_token_with_its_x509_svid() {
    let s = TestServer::start().await;
    let (node_pem, workload_pem) = workload_svid(&s).await;
    let key = SigningKey::generate(Alg::EdDsa).unwrap();

    // Through the SDK: no bearer token, the SVID in the handshake; sub is the SPIFFE ID.
    let ca = std::fs::read(&s.cacert).unwrap();
    let workload = daas_sdk::Client::with_svid(
        &s.addr,
        &workload_pem,
        Some(&ca),
        &daas_sdk::ClientOptions::default(),
    )
    .unwrap();
    let issued = workload
        .token_get(&key, "svc", Some("read"), None)
        .await
        .unwrap();
    let claims = verified_claims(&s, issued.access_token.expose(), "svc").await;
    assert_eq!(claims.sub, "spiffe://daas.local/web");
    assert_eq!(claims.client_id.as_deref(), Some("spiffe://daas.local/web"));
    assert_eq!(claims.jkt, key.public_jwk().thumbprint());

    // A node's SVID is not a workload credential, and no credential at all is refused: one
    // opaque 401 each, and the audit log says why.
    let node = daas_sdk::Client::with_svid(
        &s.addr,
        &node_pem,
        Some(&ca),
        &daas_sdk::ClientOptions::default(),
    )
    .unwrap();
    let anonymous =
        daas_sdk::Client::unauthenticated(&s.addr, Some(&ca), &daas_sdk::ClientOptions::default())
            .unwrap();
    for client in [&node, &anonymous] {
        let err = client.token_get(&key, "svc", None, None).await.unwrap_err();
        assert_eq!(err.status(), Some(401), "{err}");
        assert_eq!(err.code(), Some("unauthenticated"), "{err}");
    }
    let details: Vec<String> = s
        .audit_entries("auth.failure")
        .await
        .iter()
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    for want in [
        "client svid is a node's, not a workload's",
        "no bearer token and no client certificate",
    ] {
        assert!(details.iter().any(|d| d == want), "{want}: {details:?}");
    }

    // A bearer credential still works.
    let bearer = daas_sdk::Client::new(daas_sdk::ClientConfig {
        addr: s.addr.clone(),
        token: daas_sdk::SecretString::new(s.token.clone()),
        ca_cert_pem: Some(ca),
    })
    .unwrap();
    let issued = bearer.token_get(&key, "svc", None, None).await.unwrap();
    assert_eq!(
        verified_claims(&s, issued.access_token.expose(), "svc")
            .await
            .sub,
        "admin"
    );
    s.stop().await;
}
