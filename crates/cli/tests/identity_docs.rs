#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]
//! App identity documents on the real binary: `daas app register` issues one, `daas identity
//! bundle` exports the trust bundle, `daas identity verify` checks a document offline — and
//! refuses a tampered one and one signed by another server's trust domain key.

#[expect(dead_code, reason = "shared helpers: this file uses a subset")]
mod common;

use common::{BIN, DevServer, Run, run_cmd};

fn verify(dir: &std::path::Path, doc: &str, bundle: &str) -> Run {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["identity", "verify"])
        .arg(dir.join(doc))
        .arg("--bundle")
        .arg(dir.join(bundle))
        .env_remove("DAAS_ADDR")
        .env_remove("DAAS_TOKEN")
        .env_remove("DAAS_CACERT");
    run_cmd(cmd, b"")
}

#[test]
fn app_documents_verify_offline_and_forgeries_are_refused() {
    let server = DevServer::start();
    let other = DevServer::start();
    let dir = tempfile::tempdir().unwrap();
    server
        .run(&["app", "create", "web"], b"")
        .json("app create");
    let digest = format!("sha256:{}", "ab".repeat(32));
    let doc_path = dir.path().join("web.jws");
    let out = doc_path.display().to_string();
    let issued = server
        .run(
            &[
                "app", "register", "web", "--owner", "team-web", "--digest", &digest, "--role",
                "reader", "--out", &out,
            ],
            b"",
        )
        .json("app register");
    assert_eq!(issued["spiffe_id"], "spiffe://daas.local/app/web");
    let document = issued["document"].as_str().unwrap().to_owned();
    assert_eq!(std::fs::read_to_string(&doc_path).unwrap().trim(), document);

    for (srv, name) in [(&server, "bundle.json"), (&other, "other-bundle.json")] {
        let run = srv.run(&["identity", "bundle"], b"");
        std::fs::write(dir.path().join(name), run.expect_ok("identity bundle")).unwrap();
    }
    let verified = verify(dir.path(), "web.jws", "bundle.json").json("verify");
    assert_eq!(verified["kind"], "app");
    assert_eq!(verified["valid"], true);
    assert!(verified.to_string().contains("team-web"), "{verified}");

    // One character of the payload changed: refused, one clear line.
    let mut tampered = document.clone().into_bytes();
    let dot = document.find('.').unwrap();
    tampered[dot + 5] = if tampered[dot + 5] == b'A' {
        b'B'
    } else {
        b'A'
    };
    std::fs::write(dir.path().join("tampered.jws"), &tampered).unwrap();
    let msg = verify(dir.path(), "tampered.jws", "bundle.json").expect_failure("tampered");
    assert!(msg.starts_with("document rejected"), "{msg}");

    // Another server (its own trust-domain keys, even under the same name): refused.
    let msg = verify(dir.path(), "web.jws", "other-bundle.json").expect_failure("other domain");
    assert!(msg.starts_with("document rejected"), "{msg}");

    // An app that does not exist: a helpful error.
    let run = server.run(
        &[
            "app", "register", "nope", "--owner", "x", "--digest", &digest,
        ],
        b"",
    );
    let msg = run.expect_failure("unknown app");
    assert!(msg.contains("daas app create nope"), "{msg}");
}
