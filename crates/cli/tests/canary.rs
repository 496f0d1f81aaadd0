//! Known secret bytes pushed through every CLI command that carries a secret, against the real
//! server logging at `trace`: they come back where they belong (stdout of `decrypt` and
//! `secret get`) and nowhere else: not in the server's log, not in any command's stderr (failures
//! included), not in the audit log, not in any file of the server's data directory.
#![expect(
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]
#[expect(
    dead_code,
    reason = "this test binary uses a subset of the shared helpers"
)]
mod common;

use base64::Engine as _;
use common::{DevServer, Run, sealed};

const CANARY: &[u8] = b"cli canary 9d4e1f7a63b2c580 must stay secret";
const SECRET_NAME: &str = "canary-app/db-password-31c7";

/// Every encoding in which a secret could leak.
fn encodings(secret: &[u8]) -> Vec<(&'static str, String)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    vec![
        ("raw", String::from_utf8_lossy(secret).into_owned()),
        ("hex", hex::encode(secret)),
        ("base64", STANDARD.encode(secret)),
        ("base64 unpadded", STANDARD_NO_PAD.encode(secret)),
        ("base64url", URL_SAFE.encode(secret)),
        ("base64url unpadded", URL_SAFE_NO_PAD.encode(secret)),
    ]
}

fn assert_absent(what: &str, haystack: &[u8], needles: &[(String, String)]) {
    for (name, needle) in needles {
        assert!(
            !haystack
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            "{name} found in {what}"
        );
    }
}

#[test]
fn secret_bytes_appear_only_where_they_belong() {
    let srv = DevServer::start_logging("trace");
    let mut runs: Vec<(String, Run)> = Vec::new();
    let mut shares = Vec::new();

    // Server mode and client mode round trips.
    for local in [false, true] {
        let mode = if local { &["--local"][..] } else { &[][..] };
        let enc = srv.run(&[&["encrypt"][..], mode].concat(), CANARY);
        let (ciphertext, share) = sealed(&enc);
        let dec = srv.run(
            &[&["decrypt", "--share", &share][..], mode].concat(),
            ciphertext.as_bytes(),
        );
        assert_eq!(dec.expect_ok("decrypt"), CANARY);
        // A wrong share (of another object) fails, without echoing anything secret.
        let (_, other_share) = sealed(&srv.run(&[&["encrypt"][..], mode].concat(), b"other"));
        let wrong = srv.run(
            &[&["decrypt", "--share", &other_share][..], mode].concat(),
            ciphertext.as_bytes(),
        );
        wrong.expect_failure("decrypt with another object's share");
        shares.extend([share, other_share]);
        runs.extend([
            ("encrypt".to_owned(), enc),
            ("wrong decrypt".to_owned(), wrong),
        ]);
    }

    // A stored secret under a distinctive name.
    let put = srv.run(&["secret", "put", SECRET_NAME], CANARY);
    let share = put.json("secret put")["share"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let get = srv.run(&["secret", "get", SECRET_NAME, "--share", &share], b"");
    assert_eq!(get.expect_ok("secret get"), CANARY);
    let wrong = srv.run(&["secret", "get", SECRET_NAME, "--share", &shares[0]], b"");
    wrong.expect_failure("secret get with another object's share");
    // A bad token: the error names no secret.
    let bad_token = srv.run_as(
        "daas_admin_0000000000000000000000000000000000000000000",
        &["encrypt"],
        CANARY,
    );
    bad_token.expect_failure("encrypt with a wrong token");
    let audit = srv.run(&["audit", "list"], b"");
    audit.expect_ok("audit list");
    shares.push(share);
    runs.extend([
        ("secret put".to_owned(), put),
        ("wrong secret get".to_owned(), wrong),
        ("bad token".to_owned(), bad_token),
    ]);
    let delete = srv.run(&["secret", "delete", SECRET_NAME], b"");
    delete.expect_ok("secret delete");
    runs.push(("secret delete".to_owned(), delete));

    let mut needles: Vec<(String, String)> = encodings(CANARY)
        .into_iter()
        .map(|(e, n)| (format!("the canary ({e})"), n))
        .collect();
    let secret_name_leaks = [("the secret name".to_owned(), SECRET_NAME.to_owned())];
    for (i, s) in shares.iter().enumerate() {
        needles.push((format!("client share {i}"), s.clone()));
    }
    needles.push(("the admin token".to_owned(), srv.token.clone()));

    for (what, run) in &runs {
        assert_absent(
            &format!("the stderr of `{what}`"),
            run.stderr.as_bytes(),
            &needles,
        );
    }
    assert_absent("`audit list`", &audit.stdout, &needles);
    assert_absent("`audit list`", &audit.stdout, &secret_name_leaks);
    let log = srv.server_stderr();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the server really logged verbosely: {log}"
    );
    assert_absent("the server's trace log", log.as_bytes(), &needles);
    assert_absent("the server's trace log", log.as_bytes(), &secret_name_leaks);
    // DAAS_CACERT is the CA certificate in the server's data directory.
    let data_dir = srv.cacert.parent().unwrap_or_else(|| panic!("no data dir"));
    for entry in std::fs::read_dir(data_dir).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
            let canary_only: Vec<_> = needles.iter().take(6).cloned().collect();
            assert_absent(&path.display().to_string(), &bytes, &canary_only);
        }
    }
}
