//! Interop of daas tokens with JOSE implementations no one here wrote: DPoP proofs built by
//! Python's `jwcrypto` are accepted by `daas token verify` (and rejected when signed by
//! another key), and PyJWT verifies our access tokens against their JWK set. Proofs from
//! `daas token keygen` / `daas token proof` go through the same verifier.
//!
//! The Python peers come from `scripts/test-services.sh --python` (a venv; sets
//! `DAAS_TEST_PYTHON`). Without it the tests fail when `CI` is set and are skipped (with a
//! notice) otherwise.
#![expect(
    clippy::unwrap_used,
    reason = "a test: a failed step should panic with its location"
)]
#![expect(
    clippy::print_stderr,
    reason = "a skipped test says why on stderr (outside CI only)"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use daas_token::{AccessTokenClaims, Alg, SigningKey};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "https://api.test";
const URL: &str = "https://api.test/orders?page=2";

fn python() -> Option<PathBuf> {
    const ENV: &str = "DAAS_TEST_PYTHON";
    match std::env::var_os(ENV) {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{ENV} is not set but CI is: install the peers with `source scripts/test-services.sh --python`"
            );
            eprintln!("skipping: {ENV} is not set (source scripts/test-services.sh --python)");
            None
        }
    }
}

fn peer(python: &Path, args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/jose_peer.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "jose_peer.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn daas(args: &[&str]) -> std::process::Output {
    Command::new(support::BIN)
        .args(args)
        .env_remove("DAAS_ADDR")
        .env_remove("DAAS_TOKEN")
        .env_remove("DAAS_CACERT")
        .output()
        .unwrap()
}

/// An issuer key, its JWK set in `dir`, and a token bound to `jkt`.
struct Issuer {
    key: SigningKey,
    jwks: PathBuf,
}

impl Issuer {
    fn new(dir: &Path, alg: Alg) -> Self {
        let key = SigningKey::generate(alg).unwrap();
        let mut jwk: serde_json::Value = serde_json::from_str(&key.public_jwk().to_json()).unwrap();
        jwk["kid"] = "issuer-1".into();
        jwk["use"] = "sig".into();
        jwk["alg"] = alg.as_str().into();
        let jwks = dir.join(format!("jwks-{alg}.json"));
        std::fs::write(&jwks, serde_json::json!({"keys": [jwk]}).to_string()).unwrap();
        Self { key, jwks }
    }

    fn token_for(&self, jkt: &str) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        daas_token::issue_access_token(
            &self.key,
            "issuer-1",
            &AccessTokenClaims {
                iss: ISSUER.into(),
                sub: "spiffe://daas.local/client".into(),
                aud: vec![AUDIENCE.into()],
                exp: now + 3600,
                nbf: None,
                iat: now,
                jti: format!("t-{jkt}"),
                scope: vec!["orders:read".into()],
                jkt: jkt.into(),
                status: None,
                client_id: None,
            },
        )
        .unwrap()
    }
}

fn verify(issuer: &Issuer, token: &str, proof: &str) -> std::process::Output {
    daas(&[
        "token",
        "verify",
        "--token",
        token,
        "--proof",
        proof,
        "--method",
        "GET",
        "--url",
        URL,
        "--aud",
        AUDIENCE,
        "--jwks",
        issuer.jwks.to_str().unwrap(),
        "--iss",
        ISSUER,
    ])
}

#[test]
fn jwcrypto_proofs_are_accepted_and_pyjwt_verifies_our_tokens() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (issuer_alg, client_alg) in [(Alg::EdDsa, "EdDSA"), (Alg::Es256, "ES256")] {
        let issuer = Issuer::new(dir.path(), issuer_alg);
        let key_file = dir.path().join(format!("client-{client_alg}.jwk"));
        let jkt = peer(&python, &["keygen", client_alg, key_file.to_str().unwrap()]);
        let token = issuer.token_for(&jkt);

        // A proof built by jwcrypto for this request is accepted by our verifier.
        let proof = peer(
            &python,
            &["proof", key_file.to_str().unwrap(), "GET", URL, &token],
        );
        let out = verify(&issuer, &token, &proof);
        assert!(
            out.status.success(),
            "{client_alg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(claims["valid"], true);
        assert_eq!(claims["cnf"]["jkt"], jkt.as_str());
        assert_eq!(claims["sub"], "spiffe://daas.local/client");
        assert_eq!(claims["proof"]["htu"], "https://api.test/orders");

        // A proof by another key (the token thief's) is refused with the precise reason.
        let other_file = dir.path().join(format!("thief-{client_alg}.jwk"));
        peer(
            &python,
            &["keygen", client_alg, other_file.to_str().unwrap()],
        );
        let stolen = peer(
            &python,
            &["proof", other_file.to_str().unwrap(), "GET", URL, &token],
        );
        let out = verify(&issuer, &token, &stolen);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: rejected: "), "{stderr}");
        assert!(
            stderr.contains("dpop proof key does not match the access token binding"),
            "{stderr}"
        );

        // PyJWT verifies our token against the JWK set.
        let verified = peer(
            &python,
            &[
                "verify-at",
                issuer.jwks.to_str().unwrap(),
                &token,
                ISSUER,
                AUDIENCE,
            ],
        );
        let claims: serde_json::Value = serde_json::from_str(&verified).unwrap();
        assert_eq!(claims["cnf"]["jkt"], jkt.as_str());
        assert_eq!(claims["scope"], "orders:read");
    }
}

#[test]
fn cli_keys_and_proofs_verify_and_a_proof_for_another_request_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(dir.path(), Alg::EdDsa);
    for alg in ["EdDSA", "ES256"] {
        let key = dir.path().join(format!("{alg}.pem"));
        let out = daas(&[
            "token",
            "keygen",
            "--out",
            key.to_str().unwrap(),
            "--alg",
            alg,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let jkt = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert_eq!(jkt.len(), 43, "{jkt}");
        let token = issuer.token_for(&jkt);
        let proof_for = |method: &str, url: &str| {
            let out = daas(&[
                "token",
                "proof",
                "--key",
                key.to_str().unwrap(),
                "--method",
                method,
                "--url",
                url,
                "--token",
                &token,
            ]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let out = verify(&issuer, &token, &proof_for("GET", URL));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (method, url) in [("POST", URL), ("GET", "https://api.test/admin")] {
            let out = verify(&issuer, &token, &proof_for(method, url));
            assert!(!out.status.success(), "{method} {url}");
        }
        // The same token as its own proof (typ confusion) is refused.
        let out = verify(&issuer, &token, &token);
        assert!(!out.status.success());
    }
}

/// The CLI against a real dev server: `get` binds a token to the key, `verify` (keys and
/// issuer from DAAS_ADDR) accepts the key holder's proof and refuses a thief's, `replace`
/// gets a new token for a lost one with the key alone, `status` reads the verified status list
/// (or a staple) before and after `revoke` ends it, and a revoked token cannot be replaced.
#[test]
fn cli_get_verify_replace_revoke_against_a_dev_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("daas-data");
    let (mut server, _conn) = support::start(&data);
    let env: Vec<(String, String)> = std::fs::read_to_string(data.join("env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect();
    let run = |args: &[&str]| {
        Command::new(support::BIN)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap()
    };
    let stdout = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let key = dir.path().join("client.pem");
    let thief = dir.path().join("thief.pem");
    stdout(run(&["token", "keygen", "--out", key.to_str().unwrap()]));
    stdout(run(&["token", "keygen", "--out", thief.to_str().unwrap()]));
    let token = stdout(run(&[
        "token",
        "get",
        "--key",
        key.to_str().unwrap(),
        "--aud",
        AUDIENCE,
        "--scope",
        "orders:read",
    ]));
    let verify_with = |token: &str, key: &Path| {
        let proof = stdout(run(&[
            "token",
            "proof",
            "--key",
            key.to_str().unwrap(),
            "--method",
            "GET",
            "--url",
            URL,
            "--token",
            token,
        ]));
        run(&[
            "token", "verify", "--token", token, "--proof", &proof, "--method", "GET", "--url",
            URL, "--aud", AUDIENCE,
        ])
    };
    let claims: serde_json::Value =
        serde_json::from_str(&stdout(verify_with(&token, &key))).unwrap();
    assert_eq!(claims["sub"], "admin");
    assert_eq!(claims["scope"], "orders:read");
    assert!(!verify_with(&token, &thief).status.success());

    // PyJWT's PyJWKClient fetches the server's published JWK set over HTTPS (trusting only
    // the server's CA) and verifies the token with it.
    if let Some(python) = python() {
        let var = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let addr = var("DAAS_ADDR");
        let verified = peer(
            &python,
            &[
                "verify-at-url",
                &format!("{addr}/.well-known/jwks.json"),
                &var("DAAS_CACERT"),
                &token,
                &addr,
                AUDIENCE,
            ],
        );
        let by_pyjwt: serde_json::Value = serde_json::from_str(&verified).unwrap();
        assert_eq!(by_pyjwt["sub"], "admin");
        assert_eq!(by_pyjwt["jti"], claims["jti"]);
        assert_eq!(by_pyjwt["cnf"], claims["cnf"]);
    }

    // Lost: replaced with the key alone (the thief's key gets nothing).
    let out = run(&[
        "token",
        "replace",
        "--key",
        thief.to_str().unwrap(),
        "--token",
        &token,
    ]);
    assert!(!out.status.success());
    let replacement = stdout(run(&[
        "token",
        "replace",
        "--key",
        key.to_str().unwrap(),
        "--token",
        &token,
    ]));
    assert_ne!(replacement, token);
    let claims: serde_json::Value =
        serde_json::from_str(&stdout(verify_with(&replacement, &key))).unwrap();
    let jti = claims["jti"].as_str().unwrap().to_owned();

    // `token status`: from the verified list by token or jti, or from a verified staple.
    let status = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["token", "status"];
        all.extend_from_slice(args);
        serde_json::from_str(&stdout(run(&all))).unwrap()
    };
    let live = status(&["--token", &replacement]);
    assert_eq!(live["jti"], jti.as_str());
    assert_eq!(live["status"], "valid", "{live}");
    assert_eq!(live["source"], "list");
    let idx = live["idx"].as_u64().unwrap();
    // The lost token was replaced: the list marks it invalid.
    let lost = status(&["--token", &token]);
    assert_eq!(lost["status"], "invalid", "{lost}");
    assert_ne!(lost["idx"].as_u64().unwrap(), idx);
    let by_jti = status(&["--jti", &jti]);
    assert_eq!(by_jti["idx"].as_u64(), Some(idx));
    assert_eq!(by_jti["status"], "valid", "{by_jti}");
    let stapled = status(&["--jti", &jti, "--staple", "--nonce", "verifier-nonce-1"]);
    assert_eq!(stapled["source"], "staple");
    assert_eq!(stapled["status"], "valid", "{stapled}");
    assert_eq!(stapled["nonce"], "verifier-nonce-1");
    assert_eq!(stapled["idx"].as_u64(), Some(idx));

    let revoked = stdout(run(&["token", "revoke", &jti]));
    assert_eq!(revoked, r#"{"revoked": 1}"#);
    for args in [
        vec!["--token", replacement.as_str()],
        vec!["--jti", jti.as_str()],
        vec!["--token", replacement.as_str(), "--staple"],
    ] {
        let after = status(&args);
        assert_eq!(after["status"], "invalid", "{args:?}: {after}");
        assert_eq!(after["idx"].as_u64(), Some(idx));
    }
    // A token the issuer did not sign, or an unknown jti: refused with the reason.
    let mut forged = replacement.clone();
    forged.pop();
    forged.push(if replacement.ends_with('A') { 'B' } else { 'A' });
    let out = run(&["token", "status", "--token", &forged]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--token does not verify against the issuer keys"),
        "{stderr}"
    );
    let out = run(&["token", "status", "--jti", "no-such-jti"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot get a status staple"), "{stderr}");
    let out = run(&[
        "token",
        "replace",
        "--key",
        key.to_str().unwrap(),
        "--jti",
        &jti,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "error: the token cannot be replaced",
        "{stderr}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
