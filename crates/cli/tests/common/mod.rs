//! Helpers for the integration tests: start the real `daas server --dev`, run the real CLI.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_daas");

/// A running `daas server --dev` on a free port with its own data dir; killed on drop.
pub struct DevServer {
    child: Child,
    _dir: tempfile::TempDir,
    pub addr: String,
    pub token: String,
    pub cacert: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl DevServer {
    pub fn start() -> Self {
        Self::start_logging("warn")
    }

    /// Start with `DAAS_LOG=log` (e.g. `trace`, to look for leaks in the most verbose logs).
    pub fn start_logging(log: &str) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(BIN)
            .args(["server", "--dev", "--listen", &listen, "--data-dir"])
            .arg(dir.path().join("data"))
            .env_remove("DAAS_ADDR")
            .env_remove("DAAS_TOKEN")
            .env_remove("DAAS_CACERT")
            .env("DAAS_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));

        let stderr = collect_stderr(&mut child);
        let (tx, rx) = mpsc::channel::<String>();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        // Keep draining so the server never blocks on a full pipe.
                        continue;
                    }
                }
            });
        }

        let (mut addr, mut token, mut cacert) = (None, None, None);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut lines = Vec::new();
        while addr.is_none() || token.is_none() || cacert.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    lines.push(line.clone());
                    if let Some((k, v)) = parse_export(&line) {
                        match k.as_str() {
                            "DAAS_ADDR" => addr = Some(v),
                            "DAAS_TOKEN" => token = Some(v),
                            "DAAS_CACERT" => cacert = Some(PathBuf::from(v)),
                            _ => {}
                        }
                    }
                }
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        std::thread::sleep(Duration::from_millis(100));
                        let err = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                        panic!(
                            "`daas server --dev` exited early ({status}); stdout: {lines:?}; stderr: {err}"
                        );
                    }
                    if std::time::Instant::now() >= deadline {
                        let _ = child.kill();
                        let err = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                        panic!(
                            "`daas server --dev` printed no exports within 60 s; stdout: {lines:?}; stderr: {err}"
                        );
                    }
                }
            }
        }
        // The three exports come first, in this order.
        assert!(lines[0].starts_with("export DAAS_ADDR="), "{lines:?}");
        assert!(lines[1].starts_with("export DAAS_TOKEN="), "{lines:?}");
        assert!(lines[2].starts_with("export DAAS_CACERT="), "{lines:?}");

        let (Some(addr), Some(token), Some(cacert)) = (addr, token, cacert) else {
            unreachable!()
        };
        assert_eq!(addr, format!("https://127.0.0.1:{port}"));
        assert!(
            cacert.is_absolute(),
            "DAAS_CACERT must be absolute: {}",
            cacert.display()
        );
        Self {
            child,
            _dir: dir,
            addr,
            token,
            cacert,
            stderr,
        }
    }

    /// Run `daas ARGS` as the admin.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        self.run_as(&self.token, args, stdin)
    }

    /// Run `daas ARGS` with `token`.
    pub fn run_as(&self, token: &str, args: &[&str], stdin: &[u8]) -> Run {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("DAAS_ADDR", &self.addr)
            .env("DAAS_TOKEN", token)
            .env("DAAS_CACERT", &self.cacert)
            .env_remove("DAAS_LOG");
        run_cmd(cmd, stdin)
    }

    pub fn server_stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collect the child's stderr in the background (so it never blocks on a full pipe).
pub fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let stderr = Arc::new(Mutex::new(String::new()));
    if let Some(mut err) = child.stderr.take() {
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
    }
    stderr
}

/// `export KEY=VALUE` (VALUE possibly single-quoted) → (KEY, VALUE).
pub fn parse_export(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("export ")?;
    let (k, v) = rest.split_once('=')?;
    let v = match v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(q) => q.replace(r"'\''", "'"),
        None => v.to_owned(),
    };
    Some((k.to_owned(), v))
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port()
}

/// The result of one CLI run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Assert success and return stdout.
    #[track_caller]
    pub fn expect_ok(&self, what: &str) -> &[u8] {
        assert!(
            self.ok(),
            "{what}: exit {:?}, stderr: {}",
            self.code,
            self.stderr
        );
        assert!(
            self.stderr.is_empty(),
            "{what}: unexpected stderr: {}",
            self.stderr
        );
        &self.stdout
    }

    /// Assert the one-line failure contract: exit ≠ 0, exactly one `error: …` line on stderr,
    /// nothing on stdout, no Rust type names. Returns the message.
    #[track_caller]
    pub fn expect_failure(&self, what: &str) -> String {
        assert!(
            !self.ok(),
            "{what}: expected failure, got success; stdout: {}",
            self.stdout_str()
        );
        assert!(self.code.is_some(), "{what}: killed by a signal");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{what}: want exactly one stderr line, got: {:?}",
            self.stderr
        );
        let line = lines[0];
        assert!(line.starts_with("error: "), "{what}: {line}");
        for smell in [
            "Error {",
            "Error(",
            "::",
            "panicked",
            "RUST_BACKTRACE",
            "Some(",
            "kind:",
        ] {
            assert!(
                !line.contains(smell),
                "{what}: looks like a Rust type leaked ({smell}): {line}"
            );
        }
        assert!(
            self.stdout.is_empty(),
            "{what}: stdout should be empty on failure: {}",
            self.stdout_str()
        );
        line["error: ".len()..].to_owned()
    }

    #[track_caller]
    pub fn json(&self, what: &str) -> serde_json::Value {
        let out = self.expect_ok(what);
        serde_json::from_slice(out)
            .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}): {}", self.stdout_str()))
    }
}

pub fn run_cmd(mut cmd: Command, stdin: &[u8]) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
    let input = stdin.to_vec();
    let writer = child.stdin.take().map(|mut w| {
        std::thread::spawn(move || {
            let _ = w.write_all(&input);
        })
    });
    let out: Output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait: {e}"));
    if let Some(w) = writer {
        let _ = w.join();
    }
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run the CLI with an explicit environment (no server).
pub fn run_env(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("DAAS_ADDR")
        .env_remove("DAAS_TOKEN")
        .env_remove("DAAS_CACERT")
        .env_remove("DAAS_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_cmd(cmd, stdin)
}

/// `{"ciphertext": …, "share": …}` from `daas encrypt`.
#[track_caller]
pub fn sealed(run: &Run) -> (String, String) {
    let line = run.stdout_str();
    assert!(
        line.ends_with('\n') && line.matches('\n').count() == 1,
        "one line of JSON expected: {line:?}"
    );
    assert!(line.starts_with("{\"ciphertext\": \"daas:v1:"), "{line}");
    let v = run.json("encrypt");
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("object expected: {v}"));
    assert_eq!(obj.len(), 2, "exactly ciphertext and share: {v}");
    let c = obj["ciphertext"].as_str().unwrap_or_default().to_owned();
    let s = obj["share"].as_str().unwrap_or_default().to_owned();
    assert!(c.starts_with("daas:v1:"), "{c}");
    assert!(s.starts_with("daas:share:v1:"), "{s}");
    (c, s)
}

pub fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

/// A `daas server --config FILE` process (production mode, starts sealed); killed on drop.
pub struct ConfigServer {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl ConfigServer {
    /// Start and wait until the listener accepts TCP connections.
    pub fn start(config: &Path, port: u16) -> Self {
        let mut child = Command::new(BIN)
            .args(["server", "--config"])
            .arg(config)
            .env_remove("DAAS_ADDR")
            .env_remove("DAAS_TOKEN")
            .env_remove("DAAS_CACERT")
            .env("DAAS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        let stderr = collect_stderr(&mut child);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                let err = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                panic!("`daas server --config` exited early ({status}): {err}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "`daas server --config` did not listen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, stderr }
    }

    pub fn server_stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for ConfigServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
