//! The defaults users and scripts rely on, on the real binary: `daas server --dev` with no flags
//! (`./daas-data`, `127.0.0.1:8200`), `daas operator init` with no flags (3 of 5 unseal shares),
//! and a production config file whose `storage` is a PostgreSQL URL.
#![expect(
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]
#[expect(
    dead_code,
    reason = "this test binary uses a subset of the shared helpers"
)]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{BIN, ConfigServer, run_env, sealed, write_file};

/// With no flags the dev server keeps its data in `./daas-data` (relative to where it runs) and
/// listens on 127.0.0.1:8200, and says so in its exports. The only test that uses port 8200.
#[test]
fn server_dev_without_flags_uses_daas_data_and_port_8200() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(BIN)
        .args(["server", "--dev"])
        .current_dir(dir.path())
        .env_remove("DAAS_ADDR")
        .env_remove("DAAS_TOKEN")
        .env_remove("DAAS_CACERT")
        .env("DAAS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let first: Vec<String> = BufReader::new(stdout)
        .lines()
        .take(3)
        .map(|l| l.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    let data = dir
        .path()
        .canonicalize()
        .unwrap_or_else(|e| panic!("{e}"))
        .join("daas-data");
    assert_eq!(
        first,
        [
            "export DAAS_ADDR=https://127.0.0.1:8200".to_owned(),
            format!(
                "export DAAS_TOKEN={}",
                std::fs::read_to_string(data.join("admin.token"))
                    .unwrap_or_else(|e| panic!("admin.token in ./daas-data: {e}"))
                    .trim()
            ),
            format!("export DAAS_CACERT={}", data.join("ca.pem").display()),
        ]
    );
    for file in ["ca.pem", "storage.key", "daas.db", "env"] {
        assert!(data.join(file).is_file(), "./daas-data/{file} is missing");
    }
}

/// `daas operator init` with no `--shares`/`--threshold` gives five unseal shares of which any
/// three unseal the server, and two do not.
#[test]
fn operator_init_defaults_to_three_of_five() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = common::free_port();
    let config = write_file(
        dir.path(),
        "daas.toml",
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\n",
            dir.path().join("data").to_string_lossy()
        )
        .as_bytes(),
    );
    let config = config.to_string_lossy().into_owned();
    let init = run_env(&["operator", "init", "--config", &config], &[], b"").json("operator init");
    assert_eq!(init["threshold"], 3, "{init}");
    let shares = unseal_shares(&init);
    assert_eq!(shares.len(), 5, "{init}");
    let server = ConfigServer::start(Path::new(&config), port);
    let env = server_env(port, &init);
    let env = pairs(&env);
    // Shares 5, 2 and 4 (any three) in that order: sealed until the third.
    for (n, i) in [4usize, 1, 3].into_iter().enumerate() {
        let answer =
            run_env(&["operator", "unseal", &shares[i]], &env[..2], b"").json("operator unseal");
        let sealed_now = n < 2;
        assert_eq!(
            answer,
            serde_json::json!({
                "sealed": sealed_now,
                "progress": if sealed_now { n + 1 } else { 0 },
                "threshold": 3
            })
        );
    }
    let enc = run_env(&["encrypt"], &env, b"three of five");
    let (c, s) = sealed(&enc);
    let dec = run_env(&["decrypt", "--share", &s], &env, c.as_bytes());
    assert_eq!(dec.expect_ok("decrypt"), b"three of five");
    drop(server);
}

/// `storage = "postgres://…"` in the config file: the server keeps its objects, secrets and
/// audit log in PostgreSQL (nothing in a local SQLite file), and after a restart and a new
/// unseal everything written before is readable and the audit chain verifies.
#[test]
fn a_postgres_config_file_keeps_everything_in_postgres_across_a_restart() {
    let Some(base) = postgres_url() else { return };
    let database = format!("daas_cli_{}_{}", std::process::id(), common::free_port());
    psql(&base, &format!("CREATE DATABASE {database}"));
    let url = format!(
        "{}/{database}",
        base.rsplit_once('/').map_or(&*base, |(b, _)| b)
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let port = common::free_port();
    let config = write_file(
        dir.path(),
        "daas.toml",
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\nstorage = {url:?}\n",
            data.to_string_lossy()
        )
        .as_bytes(),
    );
    let config_arg = config.to_string_lossy().into_owned();
    let init =
        run_env(&["operator", "init", "--config", &config_arg], &[], b"").json("operator init");
    let shares = unseal_shares(&init);
    let env = server_env(port, &init);
    let env = pairs(&env);
    let unseal = |env: &[(&str, &str)]| {
        for share in &shares[..3] {
            run_env(&["operator", "unseal", share], &env[..2], b"").json("operator unseal");
        }
    };

    let server = ConfigServer::start(&config, port);
    unseal(&env);
    let (c, s) = sealed(&run_env(&["encrypt"], &env, b"kept in postgres"));
    let put = run_env(&["secret", "put", "db/password"], &env, b"pg-secret").json("secret put");
    let secret_share = put["share"].as_str().unwrap_or_default().to_owned();
    drop(server);

    assert!(
        !data.join("daas.db").exists(),
        "a postgres config must not create a local SQLite database"
    );
    let server = ConfigServer::start(&config, port);
    run_env(&["decrypt", "--share", &s], &env, c.as_bytes()).expect_failure("sealed after restart");
    unseal(&env);
    let dec = run_env(&["decrypt", "--share", &s], &env, c.as_bytes());
    assert_eq!(dec.expect_ok("decrypt after restart"), b"kept in postgres");
    let get = run_env(
        &["secret", "get", "db/password", "--share", &secret_share],
        &env,
        b"",
    );
    assert_eq!(get.expect_ok("secret get after restart"), b"pg-secret");
    let verify = run_env(&["audit", "verify"], &env, b"").json("audit verify");
    assert_eq!(verify["first_broken"], serde_json::Value::Null, "{verify}");
    assert!(
        verify["entries"].as_u64().unwrap_or_default() >= 4,
        "{verify}"
    );
    drop(server);
    psql(&base, &format!("DROP DATABASE {database} WITH (FORCE)"));
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn unseal_shares(init: &serde_json::Value) -> Vec<String> {
    init["unseal_shares"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// `DAAS_ADDR`, `DAAS_CACERT` (the first two: enough to unseal) and `DAAS_TOKEN`.
fn server_env(port: u16, init: &serde_json::Value) -> [(&'static str, String); 3] {
    let field = |k: &str| init[k].as_str().unwrap_or_default().to_owned();
    [
        ("DAAS_ADDR", format!("https://127.0.0.1:{port}")),
        ("DAAS_CACERT", field("cacert")),
        ("DAAS_TOKEN", field("admin_token")),
    ]
}

/// The PostgreSQL the test command started; required when `CI` is set.
#[expect(
    clippy::print_stderr,
    reason = "the skip notice of a PostgreSQL test run without a database"
)]
fn postgres_url() -> Option<String> {
    const ENV: &str = "DAAS_TEST_POSTGRES_URL";
    match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{ENV} is not set but CI is: run the tests with scripts/test.sh"
            );
            eprintln!("notice: {ENV} is not set; skipping this PostgreSQL test");
            None
        }
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-qc", sql])
        .output()
        .unwrap_or_else(|e| panic!("psql: {e}"));
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
