//! The web-shop scenario of seeds/002 §6 with the real `daas channel` binaries and the
//! configurations of `examples/channel/` (four role secrets: three keys made by `daas channel
//! keygen`, one password from the environment): user-api reaches payment with the payment
//! role, the suggestion service (only the user-information role) is refused by payment, and a
//! wrong password role does not verify.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test: a failed step should panic with its location"
)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_daas");
/// The user-information role's password (example only, like the tour's).
const PASSWORD: &str = "example only: correct horse battery staple";
const PASSWORD_ENV: &str = "DAAS_ROLE_USER_INFO";

/// A copy of `examples/channel/*.toml` in a temporary directory, with the three role keys made
/// by `daas channel keygen` in `secrets/`.
fn shop() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/channel");
    let mut configs = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            configs += 1;
        }
    }
    assert_eq!(configs, 5, "one configuration per web-shop service");
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    for role in ["payment", "approval", "shipping"] {
        let out = Command::new(BIN)
            .args(["channel", "keygen", "--out"])
            .arg(dir.path().join(format!("secrets/{role}.key")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    dir
}

fn config(dir: &Path, service: &str) -> PathBuf {
    dir.join(format!("{service}.toml"))
}

fn command(dir: &Path, password: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("DAAS_LOG");
    match password {
        Some(p) => cmd.env(PASSWORD_ENV, p),
        None => cmd.env_remove(PASSWORD_ENV),
    };
    cmd
}

/// Writes `input` to the child's stdin on a thread, then closes it (EOF).
fn feed(child: &mut Child, input: Vec<u8>) -> JoinHandle<()> {
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        // The child may refuse the peer and exit before reading everything.
        let _ = stdin.write_all(&input);
    })
}

fn drain(mut r: impl std::io::Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).unwrap();
        buf
    })
}

struct Run {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

/// A `daas channel listen` on a free port, known to be listening.
struct Listener {
    child: Child,
    addr: String,
    feeder: JoinHandle<()>,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
}

impl Listener {
    /// Starts `service` listening on 127.0.0.1:0 with `input` on its stdin, and waits for its
    /// `listening on ADDR` line (no sleeping).
    fn start(dir: &Path, service: &str, password: Option<&str>, input: &[u8]) -> Self {
        Self::start_with_env(dir, service, password, input, &[])
    }

    /// [`Listener::start`] with more environment variables.
    fn start_with_env(
        dir: &Path,
        service: &str,
        password: Option<&str>,
        input: &[u8],
        env: &[(&str, &str)],
    ) -> Self {
        let mut child = command(dir, password)
            .args(["channel", "listen", "--addr", "127.0.0.1:0", "--config"])
            .arg(config(dir, service))
            .envs(env.iter().copied())
            .spawn()
            .unwrap();
        let feeder = feed(&mut child, input.to_vec());
        let stdout = drain(child.stdout.take().unwrap());
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        err.read_line(&mut first).unwrap();
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{service} did not start listening: {first:?}"))
            .trim()
            .to_owned();
        Self {
            child,
            addr,
            feeder,
            stdout,
            stderr: drain(err),
        }
    }

    fn finish(mut self) -> Run {
        let status = self.child.wait().unwrap();
        self.feeder.join().unwrap();
        Run {
            status,
            stdout: self.stdout.join().unwrap(),
            stderr: String::from_utf8(self.stderr.join().unwrap()).unwrap(),
        }
    }
}

/// `daas channel connect` as `service` to `addr` with `input` on stdin; waits for it to end.
fn connect(dir: &Path, service: &str, password: Option<&str>, addr: &str, input: &[u8]) -> Run {
    let mut child = command(dir, password)
        .args(["channel", "connect", "--addr", addr, "--config"])
        .arg(config(dir, service))
        .spawn()
        .unwrap();
    let feeder = feed(&mut child, input.to_vec());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    Run {
        status: out.status,
        stdout: out.stdout,
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Bytes that are not text, larger than one TLS record and one pipe buffer.
fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 7 + i / 251) % 256).unwrap())
        .collect()
}

#[test]
fn user_api_reaches_payment_with_the_payment_role() {
    let shop = shop();
    let order = payload(300 * 1024);
    let receipt = b"payment accepted: order 42\n";
    let payment = Listener::start(shop.path(), "payment", None, receipt);
    let user_api = connect(
        shop.path(),
        "user-api",
        Some(PASSWORD),
        &payment.addr,
        &order,
    );
    let payment = payment.finish();

    assert!(user_api.status.success(), "user-api: {}", user_api.stderr);
    assert!(payment.status.success(), "payment: {}", payment.stderr);
    // Each side learns exactly the roles the other proved: payment is the only one they share.
    assert_eq!(payment.stderr, "verified roles: payment\n");
    assert_eq!(user_api.stderr, "verified roles: payment\n");
    // Both directions, every byte, each ended by the sender's EOF (half-close).
    assert!(payment.stdout == order, "payment received other bytes");
    assert_eq!(user_api.stdout, receipt);
}

/// Payment's role key kept as a daas stored secret (`secret_daas` + the caller's share) instead
/// of a file: `daas channel` fetches it from the server, which adds its share; a wrong share
/// gets nothing and the channel does not start.
#[test]
fn a_role_key_can_come_from_a_daas_secret() {
    let shop = shop();
    let (mut server, _conn) = support::start(&shop.path().join("daas-data"));
    let env_file = std::fs::read_to_string(shop.path().join("daas-data/env")).unwrap();
    let mut env: Vec<(String, String)> = env_file
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| {
            (
                k.to_owned(),
                v.trim_matches(|c| c == '\'' || c == '"').to_owned(),
            )
        })
        .collect();
    assert_eq!(env.len(), 3, "{env_file}");
    let key = std::fs::read(shop.path().join("secrets/payment.key")).unwrap();
    let mut put = Command::new(BIN)
        .args(["secret", "put", "channel/payment"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    put.stdin.take().unwrap().write_all(&key).unwrap();
    let out = put.wait_with_output().unwrap();
    assert!(out.status.success());
    let stored: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let share = stored["share"].as_str().unwrap().to_owned();
    // The key file is gone: only the server (with the share) can give it back.
    std::fs::remove_file(shop.path().join("secrets/payment.key")).unwrap();
    let text = std::fs::read_to_string(config(shop.path(), "payment")).unwrap();
    let text = text.replace(
        "secret_file = \"secrets/payment.key\"",
        "secret_daas = \"channel/payment\"\nshare_env = \"DAAS_SHARE_PAYMENT\"",
    );
    std::fs::write(config(shop.path(), "payment-daas"), text).unwrap();
    // user-api keeps its file copy of the same key.
    std::fs::write(shop.path().join("secrets/payment.key"), &key).unwrap();

    env.push(("DAAS_SHARE_PAYMENT".to_owned(), share.clone()));
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let payment = Listener::start_with_env(shop.path(), "payment-daas", None, b"paid\n", &envs);
    let user_api = connect(
        shop.path(),
        "user-api",
        Some(PASSWORD),
        &payment.addr,
        b"order 7\n",
    );
    let payment = payment.finish();
    assert!(payment.status.success(), "payment: {}", payment.stderr);
    assert_eq!(payment.stderr, "verified roles: payment\n");
    assert_eq!(user_api.stderr, "verified roles: payment\n");
    assert_eq!(payment.stdout, b"order 7\n");

    // Another share of the right length is refused by the server; the channel never starts.
    let mut wrong = share.into_bytes();
    let last = wrong.len() - 2;
    wrong[last] = if wrong[last] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    let env_wrong: Vec<(&str, &str)> = envs
        .iter()
        .map(|&(k, v)| {
            if k == "DAAS_SHARE_PAYMENT" {
                (k, wrong.as_str())
            } else {
                (k, v)
            }
        })
        .collect();
    let out = command(shop.path(), None)
        .args(["channel", "listen", "--addr", "127.0.0.1:0", "--config"])
        .arg(config(shop.path(), "payment-daas"))
        .envs(env_wrong.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("error: ") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn suggestion_is_refused_by_payment() {
    let shop = shop();
    let payment = Listener::start(shop.path(), "payment", None, b"card data\n");
    let payment_addr = payment.addr.clone();
    let suggestion = connect(
        shop.path(),
        "suggestion",
        Some(PASSWORD),
        &payment.addr,
        b"charge order 43\n",
    );
    let payment = payment.finish();

    assert!(!payment.status.success(), "payment accepted suggestion");
    assert!(payment.stdout.is_empty(), "bytes reached payment");
    assert_eq!(payment.stderr.lines().count(), 1, "{}", payment.stderr);
    assert!(
        payment.stderr.starts_with("error: refused peer 127.0.0.1:")
            && payment.stderr.ends_with(
                ": none of its roles verified and anonymous peers are not allowed; failed \
                 roles: user-info (role not accepted by this side)\n"
            ),
        "{}",
        payment.stderr
    );
    // Suggestion cannot verify payment either, and receives nothing.
    assert!(!suggestion.status.success());
    assert!(suggestion.stdout.is_empty(), "bytes reached suggestion");
    assert_eq!(
        suggestion.stderr.lines().count(),
        1,
        "{}",
        suggestion.stderr
    );
    assert_eq!(
        suggestion.stderr,
        format!(
            "error: refused peer {payment_addr}: none of its roles verified and anonymous peers \
             are not allowed; failed roles: approval (role not accepted by this side), payment \
             (role not accepted by this side)\n"
        )
    );
}

#[test]
fn a_wrong_password_role_is_not_verified() {
    let shop = shop();
    // Shipping shares only the user-information role (a password) with user-api.
    let user_api = Listener::start(shop.path(), "user-api", Some(PASSWORD), b"hello\n");
    let shipping = connect(
        shop.path(),
        "shipping",
        Some("example only: a wrong password"),
        &user_api.addr,
        b"order 44 shipped\n",
    );
    let user_api = user_api.finish();

    assert!(!user_api.status.success());
    assert!(user_api.stdout.is_empty(), "bytes reached user-api");
    assert_eq!(user_api.stderr.lines().count(), 1, "{}", user_api.stderr);
    assert!(
        user_api
            .stderr
            .contains("user-info (password role confirmation mismatch)"),
        "{}",
        user_api.stderr
    );
    assert!(!shipping.status.success());
    assert!(shipping.stdout.is_empty());
    assert!(
        shipping
            .stderr
            .contains("user-info (password role confirmation mismatch)"),
        "{}",
        shipping.stderr
    );

    // The right password verifies, both ways.
    let user_api = Listener::start(shop.path(), "user-api", Some(PASSWORD), b"hello\n");
    let shipping = connect(
        shop.path(),
        "shipping",
        Some(PASSWORD),
        &user_api.addr,
        b"order 44 shipped\n",
    );
    let user_api = user_api.finish();
    assert!(user_api.status.success(), "{}", user_api.stderr);
    assert!(shipping.status.success(), "{}", shipping.stderr);
    assert_eq!(user_api.stderr, "verified roles: user-info\n");
    assert_eq!(shipping.stderr, "verified roles: user-info\n");
    assert_eq!(user_api.stdout, b"order 44 shipped\n");
    assert_eq!(shipping.stdout, b"hello\n");
}

#[test]
fn an_anonymous_peer_is_reported_as_none_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("open.toml"), "allow_anonymous = true\n").unwrap();
    let listener = Listener::start(dir.path(), "open", None, b"");
    let client = connect(dir.path(), "open", None, &listener.addr, b"anyone\n");
    let listener = listener.finish();
    assert!(listener.status.success(), "{}", listener.stderr);
    assert!(client.status.success(), "{}", client.stderr);
    assert_eq!(listener.stderr, "verified roles: (none)\n");
    assert_eq!(client.stderr, "verified roles: (none)\n");
    assert_eq!(listener.stdout, b"anyone\n");
    assert!(client.stdout.is_empty());
}

#[test]
fn keygen_writes_a_private_256_bit_key_and_never_overwrites_by_accident() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("role.key");
    let keygen = |force: bool| {
        let mut cmd = Command::new(BIN);
        cmd.args(["channel", "keygen", "--out"]).arg(&path);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let read = || {
        let text = std::fs::read_to_string(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        (text, mode)
    };

    let out = keygen(false);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    let (first, mode) = read();
    assert_eq!(mode, 0o600);
    let hex = first.strip_suffix('\n').unwrap();
    assert_eq!(hex.len(), 64);
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));

    let out = keygen(false);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        format!(
            "error: {} already exists (use --force to replace the key)\n",
            path.display()
        )
    );
    assert_eq!(read().0, first, "the key was overwritten");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = keygen(true);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    let (second, mode) = read();
    assert_eq!(mode, 0o600, "--force kept the old file's mode");
    assert_ne!(second, first);
    assert_eq!(second.len(), 65);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temp file left"
    );
}

#[test]
fn an_unusable_configuration_is_one_clear_line() {
    let shop = shop();
    // The user-information password comes from the environment; without it nothing starts.
    let out = command(shop.path(), None)
        .args(["channel", "connect", "--addr", "127.0.0.1:1", "--config"])
        .arg(config(shop.path(), "suggestion"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("environment variable DAAS_ROLE_USER_INFO is not set"),
        "{err}"
    );
}
