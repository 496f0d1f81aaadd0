//! Shares reach the real `daas` binary without the command line: `--share-file FILE` and
//! `DAAS_SHARE` (beside the unchanged `--share S` and `operator unseal SHARE`), and a share typed
//! in the wrong place is never echoed by a usage error.
#![expect(
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]
mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, ConfigServer, DevServer, Run, run_cmd, run_env, sealed, write_file};

/// A share-shaped value whose body must never show up on stderr.
const SECRET_BODY: &str = "Zm9vYmFyU0VDUkVUc2hhcmVib2R5NDI";

fn fake_share() -> String {
    format!("daas:share:v1:{SECRET_BODY}")
}

/// Run `daas ARGS` with exactly the given DAAS_* environment (DAAS_SHARE removed unless given).
fn daas(env: &[(&str, &str)], args: &[&str], stdin: &[u8]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for var in [
        "DAAS_ADDR",
        "DAAS_TOKEN",
        "DAAS_CACERT",
        "DAAS_LOG",
        "DAAS_SHARE",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_cmd(cmd, stdin)
}

fn server_env(srv: &DevServer) -> Vec<(&'static str, String)> {
    vec![
        ("DAAS_ADDR", srv.addr.clone()),
        ("DAAS_TOKEN", srv.token.clone()),
        ("DAAS_CACERT", srv.cacert.to_string_lossy().into_owned()),
    ]
}

fn with<'a>(
    base: &'a [(&'static str, String)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra);
    env
}

#[track_caller]
fn assert_not_echoed(run: &Run, what: &str) {
    let msg = run.expect_failure(what);
    assert_eq!(run.code, Some(2), "{what}: a usage error exits 2: {msg}");
    assert!(
        !run.stderr.contains(SECRET_BODY) && !run.stderr.contains("SECRET"),
        "{what}: the typed value was echoed: {}",
        run.stderr
    );
}

fn check_snapshot(name: &str, args: &[&str]) {
    let run = daas(&[], args, b"");
    let got = String::from_utf8(run.expect_ok(name).to_vec())
        .unwrap_or_else(|e| panic!("{name}: help is not UTF-8: {e}"));
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

// ------------------------------------------------------------------ without a server

#[test]
fn share_help_snapshots() {
    check_snapshot("daas-decrypt--help.txt", &["decrypt", "--help"]);
    check_snapshot("daas-secret-get--help.txt", &["secret", "get", "--help"]);
    check_snapshot(
        "daas-operator-unseal--help.txt",
        &["operator", "unseal", "--help"],
    );
}

#[test]
fn stray_share_values_are_never_echoed() {
    let share = fake_share();
    let inline = format!("--shar={share}");
    let cases: Vec<Vec<&str>> = vec![
        // The case: a share given positionally to `decrypt`.
        vec!["decrypt", &share],
        vec!["decrypt", "--local", &share],
        vec!["secret", "get", "db/pw", &share],
        vec!["secret", "get", "db/pw", "--share", "x", &share],
        vec!["operator", "unseal", "daas:unseal:v1:x", &share],
        vec!["app", "create", "web", &share],
        vec![&share],
        vec!["decrypt", "--shar", &share],
        vec!["decrypt", &inline],
        vec!["bench", "safe", "--duration", &share],
        vec!["bench", "safe", "--connections", &share],
        vec!["bench", "safe", "--target", &share],
    ];
    for args in &cases {
        // Parsing fails before any environment is read: the harness's `run_env` will do.
        let run = run_env(args, &[], b"");
        assert_not_echoed(&run, &format!("{:?}", args.first()));
    }

    // Unknown option names are still shown (they are not secrets), with clap's suggestion.
    let run = daas(&[], &["decrypt", &inline], b"");
    let msg = run.expect_failure("misspelt --share");
    assert!(msg.contains("'--shar'") && msg.contains("--share"), "{msg}");
    let run = daas(&[], &["bench", "safe", "--target", "nope"], b"");
    let msg = run.expect_failure("bad --target");
    assert!(
        msg.contains("--target") && msg.contains("daas, openbao"),
        "{msg}"
    );
}

#[test]
fn share_sources_are_exclusive_and_required() {
    let share = fake_share();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = write_file(dir.path(), "share", share.as_bytes());
    let file = file.to_string_lossy().into_owned();

    for args in [
        vec!["decrypt", "--share", &share, "--share-file", &file],
        vec![
            "secret",
            "get",
            "n",
            "--share-file",
            &file,
            "--share",
            &share,
        ],
        vec!["operator", "unseal", &share, "--share-file", &file],
    ] {
        let run = daas(&[], &args, b"");
        assert_not_echoed(&run, "--share with --share-file");
        assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
    }

    // No share anywhere: a usage error naming the safe ways. An empty DAAS_SHARE is no share.
    for env in [
        &[][..],
        &[("DAAS_SHARE", "")][..],
        &[("DAAS_SHARE", "  ")][..],
    ] {
        for args in [&["decrypt"][..], &["secret", "get", "db/pw"][..]] {
            let run = daas(env, args, b"daas:v1:x");
            let msg = run.expect_failure("no share");
            assert_eq!(run.code, Some(2), "{msg}");
            assert!(
                msg.contains("--share-file") && msg.contains("DAAS_SHARE"),
                "{msg}"
            );
        }
    }

    // A share file that cannot be used is named, its content is not shown (the server address
    // is never contacted: the share is read first).
    let client = [("DAAS_ADDR", "https://127.0.0.1:1"), ("DAAS_TOKEN", "t")];
    let missing = dir.path().join("missing").to_string_lossy().into_owned();
    let env = [client[0], client[1], ("DAAS_SHARE", share.as_str())];
    let run = daas(&env, &["decrypt", "--share-file", &missing], b"");
    let msg = run.expect_failure("missing share file");
    assert!(msg.contains(&missing), "{msg}");
    let empty = write_file(dir.path(), "empty", b"\n");
    let run = daas(
        &client,
        &[
            "secret",
            "get",
            "n",
            "--share-file",
            &empty.to_string_lossy(),
        ],
        b"",
    );
    let msg = run.expect_failure("empty share file");
    assert!(msg.contains("empty"), "{msg}");
    let binary = write_file(dir.path(), "binary", &[0xff, 0x00, 0xfe]);
    let run = daas(
        &client,
        &["decrypt", "--share-file", &binary.to_string_lossy()],
        b"",
    );
    let msg = run.expect_failure("binary share file");
    assert!(msg.contains("UTF-8"), "{msg}");
}

// ------------------------------------------------------------------ against a dev server

#[test]
fn decrypt_and_secret_get_take_the_share_from_a_file_or_the_environment() {
    let srv = DevServer::start();
    let base = server_env(&srv);
    let env = with(&base, &[]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));

    for local in [false, true] {
        let mut args = vec!["encrypt"];
        if local {
            args.push("--local");
        }
        let (ciphertext, share) = sealed(&srv.run(&args, b"split key"));
        let stdin = format!("{ciphertext}\n");
        let file = write_file(dir.path(), "share", format!("{share}\n").as_bytes());
        let file = file.to_string_lossy().into_owned();
        let mode = if local { "client mode" } else { "server mode" };
        let extra: &[&str] = if local { &["--local"] } else { &[] };

        // Unchanged: --share on the command line.
        let mut args = vec!["decrypt", "--share", &share];
        args.extend_from_slice(extra);
        assert_eq!(
            daas(&env, &args, stdin.as_bytes()).expect_ok(mode),
            b"split key"
        );
        // --share-file (a trailing newline is fine).
        let mut args = vec!["decrypt", "--share-file", &file];
        args.extend_from_slice(extra);
        assert_eq!(
            daas(&env, &args, stdin.as_bytes()).expect_ok(mode),
            b"split key"
        );
        // DAAS_SHARE.
        let env_share = with(&base, &[("DAAS_SHARE", &share)]);
        let mut args = vec!["decrypt"];
        args.extend_from_slice(extra);
        assert_eq!(
            daas(&env_share, &args, stdin.as_bytes()).expect_ok(mode),
            b"split key"
        );
        // An option beats the environment.
        let wrong = with(&base, &[("DAAS_SHARE", "daas:share:v1:wrong")]);
        let mut args = vec!["decrypt", "--share-file", &file];
        args.extend_from_slice(extra);
        assert_eq!(
            daas(&wrong, &args, stdin.as_bytes()).expect_ok(mode),
            b"split key"
        );
        let mut args = vec!["decrypt", "--share", &share];
        args.extend_from_slice(extra);
        assert_eq!(
            daas(&wrong, &args, stdin.as_bytes()).expect_ok(mode),
            b"split key"
        );
        // And the environment is really used: a wrong one fails.
        let mut args = vec!["decrypt"];
        args.extend_from_slice(extra);
        daas(&wrong, &args, stdin.as_bytes()).expect_failure("wrong DAAS_SHARE");
    }

    let put = srv
        .run_as(&srv.token, &["secret", "put", "db/pw"], b"hunter2")
        .json("secret put");
    let share = put["share"].as_str().unwrap_or_default().to_owned();
    assert!(share.starts_with("daas:share:v1:"), "{put}");
    let file = write_file(dir.path(), "secret-share", share.as_bytes());
    let file = file.to_string_lossy().into_owned();
    let get = |env: &[(&str, &str)], args: &[&str]| daas(env, args, b"");
    assert_eq!(
        get(&env, &["secret", "get", "db/pw", "--share", &share]).expect_ok("--share"),
        b"hunter2"
    );
    assert_eq!(
        get(&env, &["secret", "get", "db/pw", "--share-file", &file]).expect_ok("--share-file"),
        b"hunter2"
    );
    assert_eq!(
        get(
            &with(&base, &[("DAAS_SHARE", &share)]),
            &["secret", "get", "db/pw"]
        )
        .expect_ok("DAAS_SHARE"),
        b"hunter2"
    );
    assert!(
        !srv.server_stderr().contains(&share),
        "the server must not log a share"
    );
}

#[test]
fn operator_unseal_takes_a_share_file() {
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
    let init = daas(
        &[],
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
        b"",
    )
    .json("operator init");
    let shares: Vec<String> = init["unseal_shares"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    assert_eq!(shares.len(), 3, "{init}");
    let cacert = init["cacert"].as_str().unwrap_or_default().to_owned();
    let server = ConfigServer::start(&config, port);
    let addr = format!("https://127.0.0.1:{port}");
    let env = [
        ("DAAS_ADDR", addr.as_str()),
        ("DAAS_CACERT", cacert.as_str()),
    ];

    // From a file (with a trailing newline); stdin is not read.
    let file = write_file(
        dir.path(),
        "unseal-1",
        format!("{}\n", shares[0]).as_bytes(),
    );
    let first = daas(
        &env,
        &[
            "operator",
            "unseal",
            "--share-file",
            &file.to_string_lossy(),
        ],
        b"not a share",
    )
    .json("unseal from a file");
    assert_eq!(
        first,
        serde_json::json!({"sealed": true, "progress": 1, "threshold": 2})
    );
    // Unchanged: the positional SHARE.
    let second = daas(&env, &["operator", "unseal", &shares[1]], b"").json("unseal positional");
    assert_eq!(
        second,
        serde_json::json!({"sealed": false, "progress": 0, "threshold": 2})
    );
    for share in &shares {
        assert!(
            !server.server_stderr().contains(share.as_str()),
            "the server must not log an unseal share"
        );
    }
}
