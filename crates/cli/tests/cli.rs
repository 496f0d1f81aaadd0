//! End-to-end tests of the real `daas` binary against a real `daas server --dev`.
#![expect(
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]
mod common;

use std::path::Path;

use common::{ConfigServer, DevServer, Run, run_env, sealed, write_file};

// ------------------------------------------------------------------ without a server

fn check_snapshot(name: &str, args: &[&str]) {
    let run = run_env(args, &[], b"");
    let got = run.expect_ok(name).to_vec();
    let got = String::from_utf8(got).unwrap_or_else(|e| panic!("{name}: help is not UTF-8: {e}"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var("DAAS_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &got).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; regenerate with DAAS_UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert_eq!(
        got,
        want,
        "`daas {}` changed; if intended, regenerate with DAAS_UPDATE_SNAPSHOTS=1",
        args.join(" ")
    );
}

#[test]
fn help_snapshots() {
    check_snapshot("daas--help.txt", &["--help"]);
    check_snapshot("daas-encrypt--help.txt", &["encrypt", "--help"]);
    check_snapshot(
        "daas-entry-create--help.txt",
        &["entry", "create", "--help"],
    );
    check_snapshot("daas-sensor--help.txt", &["sensor", "--help"]);
    check_snapshot(
        "daas-identity-fetch--help.txt",
        &["identity", "fetch", "--help"],
    );
    check_snapshot(
        "daas-identity-instance--help.txt",
        &["identity", "instance", "--help"],
    );
    check_snapshot("daas-bench-token--help.txt", &["bench", "token", "--help"]);
    for sub in ["keygen", "listen", "connect"] {
        check_snapshot(
            &format!("daas-channel-{sub}--help.txt"),
            &["channel", sub, "--help"],
        );
    }
    for sub in [
        "keygen", "proof", "verify", "get", "replace", "revoke", "status", "protect",
    ] {
        check_snapshot(
            &format!("daas-token-{sub}--help.txt"),
            &["token", sub, "--help"],
        );
    }
}

#[test]
fn missing_token_is_a_clear_error() {
    let run = run_env(
        &["encrypt"],
        &[("DAAS_ADDR", "https://127.0.0.1:1")],
        b"hello",
    );
    let msg = run.expect_failure("encrypt without DAAS_TOKEN");
    assert!(msg.contains("DAAS_TOKEN is not set"), "{msg}");

    let run = run_env(&["secret", "list"], &[("DAAS_TOKEN", "t")], b"");
    let msg = run.expect_failure("secret list without DAAS_ADDR");
    assert!(msg.contains("DAAS_ADDR"), "{msg}");
}

#[test]
fn plain_http_and_unreachable_servers_are_clear_errors() {
    let run = run_env(
        &["encrypt"],
        &[("DAAS_ADDR", "http://127.0.0.1:8200"), ("DAAS_TOKEN", "t")],
        b"x",
    );
    let msg = run.expect_failure("http address");
    assert!(msg.contains("https://"), "{msg}");

    let port = common::free_port().to_string();
    let addr = format!("https://127.0.0.1:{port}");
    let run = run_env(
        &["secret", "list"],
        &[("DAAS_ADDR", &addr), ("DAAS_TOKEN", "t0psecret")],
        b"",
    );
    let msg = run.expect_failure("unreachable server");
    assert!(
        msg.starts_with(&format!("cannot connect to the daas server at {addr}: ")),
        "{msg}"
    );
    assert!(!msg.contains("t0psecret"), "{msg}");

    let run = run_env(
        &["secret", "list"],
        &[
            ("DAAS_ADDR", &addr),
            ("DAAS_TOKEN", "t"),
            ("DAAS_CACERT", "/nonexistent/ca.pem"),
        ],
        b"",
    );
    let msg = run.expect_failure("missing CA file");
    assert!(msg.contains("DAAS_CACERT"), "{msg}");
}

#[test]
fn usage_errors_are_one_line() {
    let run = run_env(&["encrypt", "--bogus"], &[], b"");
    let msg = run.expect_failure("unknown flag");
    assert_eq!(run.code, Some(2));
    assert!(msg.contains("--bogus"), "{msg}");

    let run = run_env(&["decrypt"], &[], b"");
    let msg = run.expect_failure("missing --share");
    assert!(msg.contains("--share"), "{msg}");
}

// ------------------------------------------------------------------ against a dev server

fn encrypt(srv: &DevServer, token: &str, extra: &[&str], plaintext: &[u8]) -> (String, String) {
    let mut args = vec!["encrypt"];
    args.extend_from_slice(extra);
    sealed(&srv.run_as(token, &args, plaintext))
}

fn decrypt(srv: &DevServer, token: &str, ciphertext: &str, share: &str, local: bool) -> Run {
    let mut args = vec!["decrypt", "--share", share];
    if local {
        args.push("--local");
    }
    srv.run_as(token, &args, format!("{ciphertext}\n").as_bytes())
}

/// Change one base64url character inside the 32 key bytes of a share (same object, wrong key).
fn tamper_share(share: &str) -> String {
    let mut chars: Vec<char> = share.chars().collect();
    let i = "daas:share:v1:".len() + 40;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[test]
fn roundtrip_server_and_client_mode() {
    let srv = DevServer::start();
    let t = srv.token.clone();
    let binary: Vec<u8> = (0..=255u8).chain(b"\n\r\n".iter().copied()).collect();

    for (mode, extra) in [("server", &[][..]), ("client", &["--local"][..])] {
        for plaintext in [&b"hello world\n"[..], &binary] {
            let (c, s) = encrypt(&srv, &t, extra, plaintext);
            let out = decrypt(&srv, &t, &c, &s, mode == "client");
            assert_eq!(
                out.expect_ok(mode),
                plaintext,
                "{mode} mode roundtrip, exact bytes, no added newline"
            );
        }
    }

    // Client mode is end to end: the server refuses to combine the shares of a client-mode
    // object, with a clear pointer to --local ...
    let (c, s) = encrypt(&srv, &t, &["--local", "--audience", "billing"], b"e2e");
    let msg = decrypt(&srv, &t, &c, &s, false)
        .expect_failure("server-mode decrypt of a client-mode object");
    assert!(
        msg.contains("client mode") && msg.contains("daas decrypt --local"),
        "{msg}"
    );
    assert_eq!(
        decrypt(&srv, &t, &c, &s, true).expect_ok("local decrypt with audience"),
        b"e2e"
    );
    // ... but the server share of a server-mode object is never released.
    let (c, s) = encrypt(&srv, &t, &["--audience", "billing"], b"srv");
    decrypt(&srv, &t, &c, &s, true).expect_failure("local decrypt of a server-mode object");

    // Only the given CA is trusted: the system roots do not vouch for the dev server.
    let system_roots = "/etc/ssl/certs/ca-certificates.crt";
    if Path::new(system_roots).exists() {
        let env = [
            ("DAAS_ADDR", srv.addr.as_str()),
            ("DAAS_TOKEN", t.as_str()),
            ("DAAS_CACERT", system_roots),
        ];
        let msg = run_env(&["secret", "list"], &env, b"").expect_failure("wrong CA");
        assert!(
            msg.contains("certificate") && msg.contains("DAAS_CACERT"),
            "{msg}"
        );
        assert!(!msg.contains(&t), "{msg}");
    }

    // --in FILE for both directions.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pt = write_file(dir.path(), "pt.bin", b"from a file");
    let enc = srv.run(&["encrypt", "--in", &pt.to_string_lossy()], b"");
    let (c, s) = sealed(&enc);
    let ct = write_file(dir.path(), "ct.txt", format!("  {c}\n\n").as_bytes());
    let dec = srv.run(
        &["decrypt", "--share", &s, "--in", &ct.to_string_lossy()],
        b"",
    );
    assert_eq!(dec.expect_ok("decrypt --in"), b"from a file");
}

#[test]
fn hand_off_to_another_app() {
    let srv = DevServer::start();
    let admin = srv.token.clone();
    let mut tokens = Vec::new();
    for name in ["bob", "carol"] {
        let created = srv.run(&["app", "create", name], b"").json("app create");
        assert_eq!(created["name"], name);
        assert_eq!(created["principal"], format!("app:{name}"));
        let token = created["token"].as_str().unwrap_or_default().to_owned();
        assert!(token.starts_with("daas_app_"), "{created}");
        tokens.push(token);
    }
    let (bob, carol) = (&tokens[0], &tokens[1]);

    let list = srv.run(&["app", "list"], b"").json("app list");
    let apps = list["apps"].as_array().cloned().unwrap_or_default();
    assert_eq!(apps.len(), 2, "{list}");
    assert!(
        !list.to_string().contains(bob.as_str()),
        "app list must not show tokens"
    );

    assert_eq!(
        srv.run_as(bob, &["app", "list"], b"")
            .expect_failure("app list as an app"),
        "the caller is not allowed to do this"
    );

    for local in [false, true] {
        let extra: &[&str] = if local {
            &["--local", "--access", "app:bob"]
        } else {
            &["--access", "app:bob"]
        };
        let (c, s) = encrypt(&srv, &admin, extra, b"for bob only");
        assert_eq!(
            decrypt(&srv, bob, &c, &s, local).expect_ok("bob decrypts"),
            b"for bob only"
        );
        let msg =
            decrypt(&srv, carol, &c, &s, local).expect_failure("carol is not on the access list");
        assert_eq!(msg, "the caller is not allowed to do this");
    }

    // An app seals end to end (owner = app:bob in the AAD) and hands off to carol.
    let (c, s) = encrypt(
        &srv,
        bob,
        &["--local", "--access", "app:carol"],
        b"bob to carol",
    );
    assert_eq!(
        decrypt(&srv, carol, &c, &s, true).expect_ok("carol decrypts bob's object"),
        b"bob to carol"
    );
    assert_eq!(
        decrypt(&srv, bob, &c, &s, true).expect_ok("the owner decrypts"),
        b"bob to carol"
    );

    // An unknown token is refused with the API's message.
    let msg =
        decrypt(&srv, "daas_app_not-a-real-token", &c, &s, false).expect_failure("unknown token");
    assert_eq!(msg, "missing or invalid credentials");
}

#[test]
fn secrets_lifecycle() {
    let srv = DevServer::start();
    let put = srv.run(&["secret", "put", "db/password"], b"s3cr3t\n");
    let line = put.stdout_str();
    assert!(
        line.starts_with("{\"share\": \"daas:share:v1:") && line.ends_with("\"}\n"),
        "{line:?}"
    );
    let share = put.json("secret put")["share"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let got = srv.run(&["secret", "get", "db/password", "--share", &share], b"");
    assert_eq!(got.expect_ok("secret get"), b"s3cr3t\n");

    let list = srv.run(&["secret", "list"], b"").json("secret list");
    let names: Vec<String> = list["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names, ["db/password"], "{list}");
    assert!(!list.to_string().contains("s3cr3t"));

    // A share of something else does not open it.
    let (_, other) = encrypt(&srv, &srv.token, &[], b"x");
    srv.run(&["secret", "get", "db/password", "--share", &other], b"")
        .expect_failure("secret get with a foreign share");
    srv.run(
        &[
            "secret",
            "get",
            "db/password",
            "--share",
            &tamper_share(&share),
        ],
        b"",
    )
    .expect_failure("tampered share");

    // Another app can neither read nor list it.
    let bob = srv.run(&["app", "create", "bob"], b"").json("app create")["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    srv.run_as(
        &bob,
        &["secret", "get", "db/password", "--share", &share],
        b"",
    )
    .expect_failure("bob reads admin's secret");
    let bob_list = srv
        .run_as(&bob, &["secret", "list"], b"")
        .json("bob's list");
    assert_eq!(
        bob_list["secrets"].as_array().map(Vec::len),
        Some(0),
        "{bob_list}"
    );

    // Invalid names are refused before any request.
    let msg = srv
        .run(&["secret", "put", "a/../b"], b"v")
        .expect_failure("dot segment");
    assert!(msg.contains(".."), "{msg}");

    assert!(
        srv.run(&["secret", "delete", "db/password"], b"")
            .expect_ok("secret delete")
            .is_empty()
    );
    let msg = srv
        .run(&["secret", "get", "db/password", "--share", &share], b"")
        .expect_failure("get after delete");
    assert_eq!(msg, "not found");
    let list = srv
        .run(&["secret", "list"], b"")
        .json("secret list after delete");
    assert_eq!(list["secrets"].as_array().map(Vec::len), Some(0), "{list}");
}

#[test]
fn wrong_and_foreign_shares_fail() {
    let srv = DevServer::start();
    let t = srv.token.clone();
    for local in [false, true] {
        let extra: &[&str] = if local { &["--local"] } else { &[] };
        let (ca, sa) = encrypt(&srv, &t, extra, b"object a");
        let (_cb, sb) = encrypt(&srv, &t, extra, b"object b");

        let msg = decrypt(&srv, &t, &ca, &sb, local).expect_failure("share of another object");
        assert!(msg.contains("another object"), "{msg}");

        let msg = decrypt(&srv, &t, &ca, &tamper_share(&sa), local).expect_failure("wrong share");
        assert!(msg.contains("do not decrypt together"), "{msg}");
        assert!(!msg.contains(&sa), "{msg}");

        let msg =
            decrypt(&srv, &t, &ca, "daas:share:v1:nope", local).expect_failure("malformed share");
        assert!(!msg.contains("nope") || msg.contains("malformed"), "{msg}");

        decrypt(&srv, &t, "daas:v1:AAAA", &sa, local).expect_failure("malformed ciphertext");
        decrypt(&srv, &t, "not a ciphertext", &sa, local).expect_failure("not a ciphertext");

        // And the right pair still works.
        assert_eq!(
            decrypt(&srv, &t, &ca, &sa, local).expect_ok("right pair"),
            b"object a"
        );
    }
}

#[test]
fn audit_list_and_verify() {
    let srv = DevServer::start();
    let (c, s) = encrypt(&srv, &srv.token, &[], b"audited");
    decrypt(&srv, &srv.token, &c, &s, false).expect_ok("decrypt");
    decrypt(&srv, &srv.token, &c, &tamper_share(&s), false)
        .expect_failure("failed decrypt is audited too");

    let list = srv.run(&["audit", "list"], b"");
    let text = String::from_utf8(list.expect_ok("audit list").to_vec()).unwrap_or_default();
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}"))
        })
        .collect();
    assert!(entries.len() >= 2, "{text}");
    let seqs: Vec<u64> = entries.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs.len(), entries.len(), "{text}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(
        !text.contains("audited") && !text.contains(&s),
        "the audit log must not contain secrets"
    );

    let one = srv.run(
        &[
            "audit",
            "list",
            "--after",
            &seqs[0].to_string(),
            "--limit",
            "1",
        ],
        b"",
    );
    let one_text = one.stdout_str();
    assert_eq!(one_text.lines().count(), 1, "{one_text}");
    let first: serde_json::Value = serde_json::from_str(one_text.trim()).unwrap_or_default();
    assert_eq!(first["seq"].as_u64(), Some(seqs[1]));

    let verify = srv.run(&["audit", "verify"], b"").json("audit verify");
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(
        verify["entries"].as_u64().unwrap_or(0) >= entries.len() as u64,
        "{verify}"
    );

    let bob = srv.run(&["app", "create", "bob"], b"").json("app create")["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    srv.run_as(&bob, &["audit", "verify"], b"")
        .expect_failure("apps cannot read the audit log");
    assert!(
        !srv.server_stderr().contains(&srv.token),
        "the server must not log the admin token"
    );
}

#[test]
fn operator_init_unseal_and_use() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = common::free_port();
    let data = dir.path().join("data");
    let config = write_file(
        dir.path(),
        "daas.toml",
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\n",
            data.to_string_lossy()
        )
        .as_bytes(),
    );
    let config_arg = config.to_string_lossy().into_owned();

    let bad = run_env(
        &[
            "operator",
            "init",
            "--config",
            &config_arg,
            "--shares",
            "2",
            "--threshold",
            "3",
        ],
        &[],
        b"",
    );
    bad.expect_failure("threshold above shares");

    let init = run_env(
        &[
            "operator",
            "init",
            "--config",
            &config_arg,
            "--shares",
            "3",
            "--threshold",
            "2",
        ],
        &[],
        b"",
    );
    let line = init.stdout_str();
    assert!(
        line.starts_with("{\"unseal_shares\": [\"daas:unseal:v1:"),
        "{line}"
    );
    let init = init.json("operator init");
    assert_eq!(init["threshold"], 2);
    let shares: Vec<String> = init["unseal_shares"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    assert_eq!(shares.len(), 3, "{init}");
    let token = init["admin_token"].as_str().unwrap_or_default().to_owned();
    let cacert = init["cacert"].as_str().unwrap_or_default().to_owned();
    assert!(
        !token.is_empty() && Path::new(&cacert).is_absolute(),
        "{init}"
    );

    run_env(&["operator", "init", "--config", &config_arg], &[], b"").expect_failure("second init");

    let server = ConfigServer::start(&config, port);
    let addr = format!("https://127.0.0.1:{port}");
    let env_no_token = [
        ("DAAS_ADDR", addr.as_str()),
        ("DAAS_CACERT", cacert.as_str()),
    ];
    let env_admin = [
        ("DAAS_ADDR", addr.as_str()),
        ("DAAS_CACERT", cacert.as_str()),
        ("DAAS_TOKEN", token.as_str()),
    ];

    // Sealed: requests fail with one clear line.
    run_env(&["secret", "list"], &env_admin, b"").expect_failure("sealed server");

    // One share as an argument, the next on stdin (no token needed).
    let first = run_env(&["operator", "unseal", &shares[0]], &env_no_token, b"").json("unseal 1");
    assert_eq!(
        first,
        serde_json::json!({"sealed": true, "progress": 1, "threshold": 2})
    );
    run_env(&["operator", "unseal", &shares[0]], &env_no_token, b"")
        .expect_failure("the same share twice");
    let second = run_env(
        &["operator", "unseal"],
        &env_no_token,
        format!("{}\n", shares[2]).as_bytes(),
    )
    .json("unseal 2");
    assert_eq!(
        second,
        serde_json::json!({"sealed": false, "progress": 0, "threshold": 2})
    );

    // Unsealed: the admin token from init works.
    let enc = run_env(&["encrypt", "--local"], &env_admin, b"production");
    let (c, s) = sealed(&enc);
    let dec = run_env(
        &["decrypt", "--local", "--share", &s],
        &env_admin,
        c.as_bytes(),
    );
    assert_eq!(dec.expect_ok("decrypt after unseal"), b"production");
    run_env(&["audit", "verify"], &env_admin, b"").json("audit verify");
    assert!(
        !server.server_stderr().contains(&token),
        "the server must not log the admin token"
    );
}

/// `daas bench safe` really loads a server through both clients and both modes, and its table
/// counts what happened (the figures themselves belong in BENCHMARKS.md, not in a test).
#[test]
fn bench_safe_loads_a_server_and_reports_a_table() {
    let srv = DevServer::start();
    let runs = [
        (vec!["--connections", "1,2"], "daas", 4),
        (vec!["--op", "encrypt", "--connections", "2"], "daas", 1),
        (vec!["--client", "sdk", "--connections", "2"], "daas-sdk", 2),
        (
            vec!["--local", "--client", "sdk", "--connections", "1"],
            "daas-local",
            2,
        ),
    ];
    for (extra, label, rows) in runs {
        let mut args = vec!["bench", "safe", "--duration", "300ms", "--size", "64"];
        args.extend(extra.iter().copied());
        let out = srv.run(&args, b"").stdout_str();
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("target"), "{args:?}: {out}");
        assert_eq!(lines.len(), 1 + rows, "{args:?}: {out}");
        for line in &lines[1..] {
            let cols: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cols[0], label, "{args:?}: {line}");
            let ops: f64 = cols[3].parse().unwrap();
            assert!(ops > 0.0, "{args:?}: no operation completed: {line}");
        }
        if extra.contains(&"encrypt") {
            assert!(lines[1].split_whitespace().nth(1) == Some("encrypt"));
        }
    }
    // Every encrypt the benchmark made is in the audit log (the load was real).
    let audit = srv.run(&["audit", "list"], b"").stdout_str();
    assert!(audit.lines().filter(|l| l.contains("encrypt")).count() > 8);
    // Flags that do not fit the target are clear errors.
    let run = srv.run(&["bench", "safe", "--http1"], b"");
    let err = run.expect_failure("--http1 with the raw client");
    assert!(err.contains("--client sdk"), "{err}");
}

/// `daas bench token` issues real DPoP-bound tokens from a dev server at 1 and 2 connections
/// and prints its table: a `token` row and a `proof` row (the client's proof building) per run.
/// Every token it counted is in the audit log (no timing assertions).
#[test]
fn bench_token_issues_tokens_and_reports_a_table() {
    let srv = DevServer::start();
    let out = srv
        .run(
            &[
                "bench",
                "token",
                "--duration",
                "300ms",
                "--connections",
                "1,2",
            ],
            b"",
        )
        .stdout_str();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("target"), "{out}");
    assert_eq!(lines.len(), 5, "{out}");
    let mut issued = 0.0;
    for (i, line) in lines[1..].iter().enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let expected = if i % 2 == 0 {
            ("daas", "token")
        } else {
            ("client", "proof")
        };
        assert_eq!((cols[0], cols[1]), expected, "{line}");
        assert_eq!(cols[2], if i < 2 { "1" } else { "2" }, "{line}");
        let rate: f64 = cols[3].parse().unwrap();
        assert!(rate > 0.0, "nothing measured: {line}");
        if i % 2 == 0 {
            issued += rate * 0.3;
        }
    }
    // The load was real: every issuance is audited (warm-ups included, so at least as many).
    let audit = srv
        .run(&["audit", "list", "--limit", "1000"], b"")
        .stdout_str();
    let audited = audit.lines().filter(|l| l.contains("token.issue")).count();
    assert!(audited >= 3, "{audit}");
    assert!(issued >= 1.0, "{out}");
}

/// `daas node token create` and `daas entry create|list|delete` (issue #3 interface).
#[test]
fn node_tokens_and_registration_entries() {
    let srv = DevServer::start();
    let token = srv
        .run(&["node", "token", "create", "--ttl", "5m"], b"")
        .stdout_str();
    let token = token.trim();
    assert!(token.starts_with("daas_join_"), "{token}");
    assert_eq!(token.lines().count(), 1);
    let err = srv
        .run(&["node", "token", "create", "--ttl", "25h"], b"")
        .expect_failure("a join token over 24 h");
    assert!(err.contains("ttl"), "{err}");

    let digest = format!("unix:sha256:{}", "ab".repeat(32));
    let created = srv
        .run(
            &[
                "entry",
                "create",
                "--id",
                "spiffe://daas.local/web",
                "--selector",
                &digest,
                "--selector",
                "unix:uid:1000",
                "--role",
                "frontend",
            ],
            b"",
        )
        .json("entry create");
    assert_eq!(created["spiffe_id"], "spiffe://daas.local/web");
    assert_eq!(
        created["parent_id"], "spiffe://daas.local",
        "any node by default"
    );
    assert_eq!(created["roles"][0], "frontend");
    let pinned = srv
        .run(
            &[
                "entry",
                "create",
                "--id",
                "spiffe://daas.local/db",
                "--selector",
                &digest,
                "--selector",
                "unix:uid:1000",
                "--node",
                "spiffe://daas.local/daas/node/n1",
                "--ttl",
                "10m",
            ],
            b"",
        )
        .json("entry create --node");
    assert_eq!(pinned["parent_id"], "spiffe://daas.local/daas/node/n1");
    assert_eq!(pinned["x509_ttl_secs"], 600);

    let list = srv.run(&["entry", "list"], b"").json("entry list");
    assert_eq!(list["entries"].as_array().unwrap().len(), 2);

    let id = created["id"].as_str().unwrap();
    srv.run(&["entry", "delete", id], b"")
        .expect_ok("entry delete");
    let err = srv
        .run(&["entry", "delete", id], b"")
        .expect_failure("deleting a deleted entry");
    assert!(err.contains("not found"), "{err}");
    let list = srv.run(&["entry", "list"], b"").json("entry list");
    assert_eq!(list["entries"].as_array().unwrap().len(), 1);

    // Bad input: one clear line each.
    for (args, want) in [
        (
            vec![
                "entry",
                "create",
                "--id",
                "web",
                "--selector",
                digest.as_str(),
            ],
            "spiffe id",
        ),
        (
            vec![
                "entry",
                "create",
                "--id",
                "spiffe://daas.local/x",
                "--selector",
                "unix:uid:1",
            ],
            "sha256",
        ),
        (
            vec![
                "entry",
                "create",
                "--id",
                "spiffe://other.org/x",
                "--selector",
                digest.as_str(),
            ],
            "trust domain",
        ),
        (vec!["entry", "delete", "../x"], "entry ids"),
    ] {
        let err = srv.run(&args, b"").expect_failure(&format!("{args:?}"));
        assert!(err.to_lowercase().contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    // Apps may not manage identities.
    let app = srv.run(&["app", "create", "web"], b"").json("app create");
    let app_token = app["token"].as_str().unwrap();
    let err = srv
        .run_as(app_token, &["node", "token", "create"], b"")
        .expect_failure("an app creating a join token");
    assert!(
        err.contains("forbidden") || err.contains("not allowed"),
        "{err}"
    );
}
