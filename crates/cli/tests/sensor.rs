#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking"
)]
//! `daas sensor` end to end on the real binaries: a dev server, a sensor that joins it with a
//! one-time token, and workloads asking the sensor's Workload API for their identity — with the
//! `spiffe` crate from crates.io (the sensor crate's `workload_client` example) and with
//! `daas identity fetch`.

#[expect(dead_code, reason = "shared helpers: this file uses a subset")]
mod common;

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BIN, DevServer, Run, collect_stderr, run_cmd};

/// Upper bound for anything this file waits for (a bound, not a measured time).
const PATIENCE: Duration = Duration::from_secs(90);

/// A running `daas sensor`; killed on drop.
struct Sensor {
    child: Child,
    node_id: String,
    socket: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Sensor {
    /// Start `daas sensor` against `server` and wait for its node ID and socket.
    fn start(server: &DevServer, dir: &Path, join_token: Option<&str>, extra: &[&str]) -> Self {
        match Self::try_start(server, dir, join_token, extra) {
            Ok(sensor) => sensor,
            Err(err) => panic!("sensor failed to start: {err}"),
        }
    }

    fn try_start(
        server: &DevServer,
        dir: &Path,
        join_token: Option<&str>,
        extra: &[&str],
    ) -> Result<Self, String> {
        let socket = dir.join("agent.sock");
        let mut cmd = Command::new(BIN);
        cmd.args(["sensor", "--server", &server.addr, "--socket"])
            .arg(&socket)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--sync-interval", "200ms"])
            .args(extra)
            .env("DAAS_CACERT", &server.cacert)
            .env("DAAS_LOG", "info")
            .env_remove("DAAS_ADDR")
            .env_remove("DAAS_JOIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = join_token {
            // The environment, not argv: what an operator should do with a credential.
            cmd.env("DAAS_JOIN_TOKEN", token);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = collect_stderr(&mut child);
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let node_id = match rx.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                return Err(stderr.lock().unwrap().clone());
            }
        };
        let deadline = Instant::now() + PATIENCE;
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "no socket at {}",
                socket.display()
            );
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited {status}: {}", stderr.lock().unwrap()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            child,
            node_id,
            socket,
            stderr,
        })
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `workload_client` example of the sensor crate (a Workload API client built on the
/// `spiffe` crate), built by `cargo test --workspace` into the target directory.
fn spiffe_workload() -> PathBuf {
    let path = Path::new(BIN)
        .parent()
        .unwrap()
        .join("examples")
        .join("workload_client");
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace` or `cargo build -p daas-sensor --example workload_client`",
        path.display()
    );
    path
}

/// Copy `binary` to `to` (mode 0755), optionally with one byte appended (another digest).
fn copy_binary(binary: &Path, to: &Path, change_one_byte: bool) -> PathBuf {
    let mut bytes = std::fs::read(binary).unwrap();
    if change_one_byte {
        bytes.push(0);
    }
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::write(to, &bytes).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
    to.to_owned()
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

fn uid() -> String {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The verdict line of the `spiffe`-crate workload at `binary`.
fn verdict(binary: &Path, socket: &Path) -> String {
    let out = Command::new(binary)
        .arg(format!("unix:{}", socket.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Poll until `check` returns `Some` (entries reach the sensor within a sync interval).
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn join_token(server: &DevServer, ttl: &str) -> String {
    let run = server.run(&["node", "token", "create", "--ttl", ttl], b"");
    String::from_utf8(run.expect_ok("token").to_vec())
        .unwrap()
        .trim()
        .to_owned()
}

fn create_entry(server: &DevServer, id: &str, selectors: &[String], extra: &[&str]) {
    let mut args = vec!["entry", "create", "--id", id];
    for s in selectors {
        args.extend(["--selector", s.as_str()]);
    }
    args.extend(extra);
    server.run(&args, b"").json("entry create");
}

/// Audit records of `action` whose target contains `needle`.
fn audited(server: &DevServer, action: &str, needle: &str) -> Vec<serde_json::Value> {
    let run = server.run(&["audit", "list", "--limit", "1000"], b"");
    run.stdout_str()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["action"] == action && r["target"].as_str().unwrap_or("").contains(needle))
        .collect()
}

fn identity_fetch(socket: &Path, out: Option<&Path>) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(["identity", "fetch", "--socket"]).arg(socket);
    if let Some(out) = out {
        cmd.arg("--out").arg(out);
    }
    cmd.env_remove("DAAS_LOG");
    run_cmd(cmd, b"")
}

/// The acceptance scenario on the real binaries: a registered binary gets its
/// X.509-SVID through `daas sensor`'s Workload API with the `spiffe` crate; a byte-different
/// copy at the same kind of path does not, and the refusal is audited on the server.
#[test]
fn a_registered_binary_gets_its_svid_from_daas_sensor_and_a_changed_copy_does_not() {
    let server = DevServer::start();
    let dir = tempfile::tempdir().unwrap();
    let token = join_token(&server, "10m");
    let sensor = Sensor::start(&server, dir.path(), Some(&token), &[]);
    assert!(
        sensor.node_id.starts_with("spiffe://daas.local/daas/node/"),
        "{}",
        sensor.node_id
    );

    let workload = copy_binary(&spiffe_workload(), &dir.path().join("bin/workload"), false);
    let changed = copy_binary(&workload, &dir.path().join("bin2/workload"), true);
    create_entry(
        &server,
        "spiffe://daas.local/web",
        &[
            format!("unix:sha256:{}", sha256_hex(&workload)),
            format!("unix:uid:{}", uid()),
        ],
        &[],
    );
    // Until the entry and its SVID reach the sensor the workload is refused or told to retry.
    eventually("the entry reaches the sensor", || {
        (verdict(&workload, &sensor.socket) == "verdict: spiffe://daas.local/web").then_some(())
    });
    assert_eq!(verdict(&changed, &sensor.socket), "verdict: denied");

    // The server audited the refusal with the copy's digest (reported asynchronously).
    let changed_digest = sha256_hex(&changed);
    let records = eventually("the denial is audited", || {
        let r = audited(&server, "identity.workload.denied", &changed_digest);
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(records[0]["actor"], sensor.node_id.as_str());
    assert_eq!(records[0]["outcome"], "denied");
    assert_eq!(records[0]["detail"], "no registration entry matches");
    // And the issuance to this node was audited too.
    assert!(!audited(&server, "identity.svid.issue", "spiffe://daas.local/web").is_empty());
}

/// An entry that pins the binary's path: the same bytes copied elsewhere are refused.
#[test]
fn a_path_pinned_entry_refuses_an_identical_copy_elsewhere() {
    let server = DevServer::start();
    let dir = tempfile::tempdir().unwrap();
    let token = join_token(&server, "10m");
    let sensor = Sensor::start(&server, dir.path(), Some(&token), &[]);
    // A digest of its own (one byte appended), so no other entry can match it.
    let pinned = copy_binary(
        &spiffe_workload(),
        &dir.path().join("opt/app/workload"),
        true,
    );
    let elsewhere = copy_binary(&pinned, &dir.path().join("tmp/workload"), false);
    assert_eq!(sha256_hex(&pinned), sha256_hex(&elsewhere));
    create_entry(
        &server,
        "spiffe://daas.local/pinned",
        &[
            format!("unix:sha256:{}", sha256_hex(&pinned)),
            format!("unix:uid:{}", uid()),
            format!("unix:path:{}", pinned.canonicalize().unwrap().display()),
        ],
        &[],
    );
    eventually("the pinned binary gets its SVID", || {
        (verdict(&pinned, &sensor.socket) == "verdict: spiffe://daas.local/pinned").then_some(())
    });
    assert_eq!(verdict(&elsewhere, &sensor.socket), "verdict: denied");
}

/// `daas identity fetch` as the attested workload; the sensor restarted from its data directory
/// (no new token) serves again; nothing but the node identity is on disk.
#[test]
fn identity_fetch_through_the_sensor_and_a_restart_without_a_new_token() {
    let server = DevServer::start();
    let dir = tempfile::tempdir().unwrap();
    let token = join_token(&server, "10m");
    let sensor = Sensor::start(&server, dir.path(), Some(&token), &[]);
    let node_id = sensor.node_id.clone();
    create_entry(
        &server,
        "spiffe://daas.local/cli",
        &[
            format!("unix:sha256:{}", sha256_hex(Path::new(BIN))),
            format!("unix:uid:{}", uid()),
        ],
        &[],
    );
    let out = dir.path().join("out");
    let fetched = eventually("daas identity fetch succeeds", || {
        let run = identity_fetch(&sensor.socket, Some(&out));
        run.ok().then_some(run)
    });
    assert_eq!(
        fetched.expect_ok("identity fetch"),
        b"spiffe://daas.local/cli\n"
    );
    for (name, mode) in [
        ("svid.pem", 0o644),
        ("svid_key.pem", 0o600),
        ("bundle.pem", 0o644),
    ] {
        let meta = std::fs::metadata(out.join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}");
    }
    let svid_pem = std::fs::read_to_string(out.join("svid.pem")).unwrap();
    assert!(svid_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    let key_pem = std::fs::read_to_string(out.join("svid_key.pem")).unwrap();
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));

    // Restart: same data directory, no token (it was used up) — same node, serving again.
    sensor.stop();
    let data: Vec<String> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        data,
        ["node-identity.json"],
        "only the node identity is stored"
    );
    let meta = std::fs::metadata(dir.path().join("data/node-identity.json")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let data_meta = std::fs::metadata(dir.path().join("data")).unwrap();
    assert_eq!(data_meta.permissions().mode() & 0o777, 0o700);

    let sensor = Sensor::start(&server, dir.path(), None, &[]);
    assert_eq!(sensor.node_id, node_id);
    let again = eventually("fetch after restart", || {
        let run = identity_fetch(&sensor.socket, None);
        run.ok().then_some(run)
    });
    assert_eq!(again.stdout_str(), "spiffe://daas.local/cli\n");
}

/// Join tokens are one-time and short-lived; a sensor without identity or token, without the
/// server CA, or with a data directory others can read refuses to start, with one clear line.
#[test]
fn replayed_and_expired_join_tokens_and_bad_setups_are_refused() {
    let server = DevServer::start();
    let dir = tempfile::tempdir().unwrap();
    let token = join_token(&server, "10m");
    let first = Sensor::start(&server, &dir.path().join("a"), Some(&token), &[]);

    let sensor_run = |sub: &str, token: Option<&str>, cacert: Option<&Path>| -> Run {
        let mut cmd = Command::new(BIN);
        cmd.args(["sensor", "--server", &server.addr, "--socket"])
            .arg(dir.path().join(sub).join("agent.sock"))
            .arg("--data-dir")
            .arg(dir.path().join(sub).join("data"))
            .env_remove("DAAS_CACERT")
            .env_remove("DAAS_JOIN_TOKEN")
            .env("DAAS_LOG", "off");
        if let Some(token) = token {
            cmd.env("DAAS_JOIN_TOKEN", token);
        }
        if let Some(ca) = cacert {
            cmd.env("DAAS_CACERT", ca);
        }
        run_cmd(cmd, b"")
    };
    let cacert = Some(server.cacert.as_path());
    let replayed = sensor_run("b", Some(&token), cacert).expect_failure("replayed token");
    assert!(
        replayed.starts_with("joining the trust domain failed"),
        "{replayed}"
    );
    assert!(!replayed.contains(&token), "the token is not echoed");

    let short = join_token(&server, "1s");
    std::thread::sleep(Duration::from_millis(2100));
    let expired = sensor_run("c", Some(&short), cacert).expect_failure("expired token");
    assert!(
        expired.starts_with("joining the trust domain failed"),
        "{expired}"
    );
    // Both failures are in the audit log with their precise reason.
    let details: Vec<String> = {
        let run = server.run(&["audit", "list", "--limit", "1000"], b"");
        run.stdout_str()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["action"] == "identity.node.attest" && r["outcome"] != "ok")
            .map(|r| r["detail"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert!(
        details
            .iter()
            .any(|d| d.contains("unknown or already used")),
        "{details:?}"
    );
    assert!(details.iter().any(|d| d.contains("expired")), "{details:?}");

    let no_token = sensor_run("d", None, cacert).expect_failure("no token");
    assert!(no_token.contains("no usable node identity"), "{no_token}");
    let no_ca = sensor_run("e", Some("daas_join_x"), None).expect_failure("no CA");
    assert!(no_ca.contains("DAAS_CACERT"), "{no_ca}");

    // A data directory other users can read: refused before anything is read from it.
    first.stop();
    std::fs::set_permissions(
        dir.path().join("a/data"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let open = sensor_run("a", None, cacert).expect_failure("open data dir");
    assert!(open.contains("accessible to other users"), "{open}");
}

/// The server goes away: the sensor keeps serving the SVIDs it holds, rotates nothing, and once
/// they expire fails closed — over the Workload API and in the PEM directory. Before that, the
/// SVID was rotated at half-life while the server was up.
#[test]
fn with_the_server_gone_cached_svids_are_served_until_they_expire_then_refused() {
    let server = DevServer::start();
    let dir = tempfile::tempdir().unwrap();
    let token = join_token(&server, "10m");
    let pem_dir = dir.path().join("pem");
    std::fs::create_dir(&pem_dir).unwrap();
    let pem_arg = pem_dir.display().to_string();
    let sensor = Sensor::start(
        &server,
        dir.path(),
        Some(&token),
        &[
            "--pem-dir",
            &pem_arg,
            "--pem-id",
            "spiffe://daas.local/short",
        ],
    );
    let workload = copy_binary(&spiffe_workload(), &dir.path().join("bin/workload"), true);
    // The shortest TTL an entry may have: one minute, rotated at 30 s.
    create_entry(
        &server,
        "spiffe://daas.local/short",
        &[
            format!("unix:sha256:{}", sha256_hex(&workload)),
            format!("unix:uid:{}", uid()),
        ],
        &["--ttl", "60s"],
    );
    eventually("the SVID arrives", || {
        (verdict(&workload, &sensor.socket) == "verdict: spiffe://daas.local/short").then_some(())
    });
    let first_pem = eventually("the PEM directory is written", || {
        std::fs::read_to_string(pem_dir.join("svid.pem")).ok()
    });
    // Rotation at half-life (30 s) while the server is up: a new certificate in the directory.
    let rotated_pem = eventually("rotation at half-life", || {
        std::fs::read_to_string(pem_dir.join("svid.pem"))
            .ok()
            .filter(|pem| *pem != first_pem)
    });
    assert!(rotated_pem.starts_with("-----BEGIN CERTIFICATE-----"));

    // The server goes away. The cached SVID is still served.
    drop(server);
    assert_eq!(
        verdict(&workload, &sensor.socket),
        "verdict: spiffe://daas.local/short"
    );
    // Until it expires (≤ 60 s after its rotation): then the workload gets an error, not an
    // expired SVID, and the PEM directory no longer holds the SVID or its key.
    let refused = eventually("the cached SVID expires", || {
        let v = verdict(&workload, &sensor.socket);
        (v != "verdict: spiffe://daas.local/short").then_some(v)
    });
    assert!(refused.starts_with("verdict: error"), "{refused}");
    // The sync loop wakes at the expiry and removes the files (the API check is per call).
    eventually("the expired SVID leaves the PEM directory", || {
        (!pem_dir.join("svid.pem").exists() && !pem_dir.join("svid_key.pem").exists()).then_some(())
    });
    let log = sensor.stderr.lock().unwrap().clone();
    assert!(
        log.contains("serving cached SVIDs until they expire"),
        "{log}"
    );
}

/// JWT-SVIDs through the Workload API: this test process is the registered workload; it fetches
/// an audience-bound token, has the sensor validate it (and refuse it for another audience or
/// tampered), and reads the JWT bundle it verifies against.
#[test]
fn jwt_svids_are_fetched_validated_and_refused_when_tampered() {
    use daas_sensor::pb;
    let server = DevServer::start();
    let dir = tempfile::tempdir().unwrap();
    let token = join_token(&server, "10m");
    let sensor = Sensor::start(&server, dir.path(), Some(&token), &[]);
    let me = std::env::current_exe().unwrap();
    create_entry(
        &server,
        "spiffe://daas.local/jwt-client",
        &[
            format!("unix:sha256:{}", sha256_hex(&me)),
            format!("unix:uid:{}", uid()),
        ],
        &[],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = daas_sensor::workload_client::connect(&sensor.socket)
            .await
            .unwrap();
        fn with_header<T>(message: T) -> tonic::Request<T> {
            let mut request = tonic::Request::new(message);
            request
                .metadata_mut()
                .insert("workload.spiffe.io", "true".parse().unwrap());
            request
        }
        let deadline = Instant::now() + PATIENCE;
        let svid = loop {
            let answer = client
                .fetch_jwtsvid(with_header(pb::JwtsvidRequest {
                    audience: vec!["https://api.example".to_owned()],
                    spiffe_id: String::new(),
                }))
                .await;
            match answer {
                Ok(answer) => break answer.into_inner().svids.remove(0),
                Err(status) => {
                    assert!(Instant::now() < deadline, "no JWT-SVID: {status:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        assert_eq!(svid.spiffe_id, "spiffe://daas.local/jwt-client");

        let validated = client
            .validate_jwtsvid(with_header(pb::ValidateJwtsvidRequest {
                audience: "https://api.example".to_owned(),
                svid: svid.svid.clone(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(validated.spiffe_id, "spiffe://daas.local/jwt-client");
        let claims = validated.claims.unwrap().fields;
        assert!(claims.contains_key("exp") && claims.contains_key("aud"));

        // Another audience, or one byte of the signature changed: InvalidArgument.
        let mut tampered = svid.svid.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        for (audience, token) in [
            ("https://other.example", svid.svid.clone()),
            ("https://api.example", String::from_utf8(tampered).unwrap()),
        ] {
            let status = client
                .validate_jwtsvid(with_header(pb::ValidateJwtsvidRequest {
                    audience: audience.to_owned(),
                    svid: token,
                }))
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        }

        // The JWT bundle: a JWK set with the key that signed the token.
        let mut bundles = client
            .fetch_jwt_bundles(with_header(pb::JwtBundlesRequest {}))
            .await
            .unwrap()
            .into_inner();
        let first = bundles.message().await.unwrap().unwrap();
        let jwks: serde_json::Value =
            serde_json::from_slice(&first.bundles["spiffe://daas.local"]).unwrap();
        assert!(!jwks["keys"].as_array().unwrap().is_empty(), "{jwks}");

        // An ID this process is not entitled to: PermissionDenied.
        let status = client
            .fetch_jwtsvid(with_header(pb::JwtsvidRequest {
                audience: vec!["https://api.example".to_owned()],
                spiffe_id: "spiffe://daas.local/someone-else".to_owned(),
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
    });
}

/// An entry naming an app the server will not issue for (here: the app has no document yet):
/// the server refuses, and audits, the first process run only; further runs of the same
/// binary are not sent to it for a while, so a workload in a retry loop cannot flood the
/// audit log. Registering the document and waiting out the back-off gets the document.
#[test]
fn a_refused_instance_document_is_not_asked_for_again_by_every_process_run() {
    let server = DevServer::start();
    let dir = tempfile::tempdir().unwrap();
    let token = join_token(&server, "10m");
    let sensor = Sensor::start(&server, dir.path(), Some(&token), &[]);
    server
        .run(&["app", "create", "demo"], b"")
        .expect_ok("app create");
    let digest = sha256_hex(Path::new(BIN));
    create_entry(
        &server,
        "spiffe://daas.local/demo",
        &[
            format!("unix:sha256:{digest}"),
            format!("unix:uid:{}", uid()),
        ],
        &["--app", "demo"],
    );
    eventually("the entry reaches the sensor", || {
        identity_fetch(&sensor.socket, None).ok().then_some(())
    });
    let instance = || {
        let mut cmd = Command::new(BIN);
        cmd.args(["identity", "instance", "--socket"])
            .arg(&sensor.socket)
            .env_remove("DAAS_LOG");
        run_cmd(cmd, b"")
    };
    for _ in 0..3 {
        assert!(!instance().ok());
    }
    let refusals = audited(&server, "identity.instance.issue", "app:demo");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["outcome"], "denied");
    server
        .run(
            &[
                "app",
                "register",
                "demo",
                "--owner",
                "team demo",
                "--digest",
                &format!("sha256:{digest}"),
            ],
            b"",
        )
        .expect_ok("app register");
    let issued = eventually("the back-off ends", || {
        let run = instance();
        run.ok().then(|| run.stdout_str())
    });
    assert!(
        issued.contains("spiffe://daas.local/app/demo/instance/"),
        "{issued}"
    );
    sensor.stop();
}
