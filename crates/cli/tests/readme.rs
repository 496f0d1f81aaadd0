//! The README's tour works verbatim: its marked shell block runs under bash against the real
//! `daas server --dev`, from a directory holding `daas-data`, exactly as a user would run it.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test: a failed step should panic with its location"
)]

mod support;

use std::process::Command;

/// The shell block between `<!-- NAME:start -->` and `<!-- NAME:end -->` in the README.
fn marked_block(name: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme.find(&format!("<!-- {name}:start -->")).unwrap();
    let end = readme.find(&format!("<!-- {name}:end -->")).unwrap();
    let block = &readme[start..end];
    let code_start = block.find("```sh\n").unwrap() + "```sh\n".len();
    let code_end = block.rfind("```").unwrap();
    block[code_start..code_end].to_owned()
}

/// The README opens with the two set-up commands, in its first code block, and nothing else:
/// command 1 is `daas server --dev` with no other flag (the defaults that
/// `defaults.rs::server_dev_without_flags_uses_daas_data_and_port_8200` pins), command 2 is the
/// test command, and `.ci/run` runs exactly that command.
#[test]
fn the_readme_opens_with_the_two_commands_and_ci_runs_the_second() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let first_section = readme.lines().find(|l| l.starts_with("## ")).unwrap();
    assert_eq!(first_section, "## The two commands");
    let block_start = readme.find("```").unwrap();
    assert!(
        readme[..block_start].contains("## The two commands"),
        "the first code block must be the two commands"
    );
    let block = &readme[block_start..];
    let block = &block[block.find('\n').unwrap() + 1..];
    let block = &block[..block.find("```").unwrap()];
    let commands: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        commands,
        [
            "cargo run --release -p daas-cli -- server --dev",
            "./scripts/test.sh"
        ]
    );
    let ci = std::fs::read_to_string(format!("{root}/.ci/run")).unwrap();
    let ci_commands: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        ci_commands,
        [
            "set -euo pipefail",
            "cd \"$(dirname \"$0\")/..\"",
            "exec ./scripts/test.sh"
        ]
    );
}

/// How long a tour may take before the test kills it: its `until` loops wait for background
/// services, and a service that never comes up must fail the test, not hang it.
const TOUR_LIMIT: std::time::Duration = std::time::Duration::from_secs(180);

/// Runs `bash` in a process group of its own and collects its output; after [`TOUR_LIMIT`]
/// the whole group (the tour and the services it started in the background, which would keep
/// its stdout open) is killed and the test fails with what was printed so far.
fn run_bounded(mut bash: Command, name: &str) -> std::process::Output {
    use std::io::Read as _;
    use std::os::unix::process::CommandExt as _;
    use std::process::Stdio;
    let mut child = bash
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let collect = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TOUR_LIMIT {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let status = child.wait().unwrap();
            let out = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
            let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!(
                "the {name} block ran over {TOUR_LIMIT:?} ({status}):\nstdout:\n{out}\nstderr:\n{err}"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // The tour is over; background jobs it left behind must not keep the pipes open.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Run the README block `name` under `bash -euo pipefail` beside a real dev server whose data
/// directory is `daas-data`, with the freshly built `daas` first on PATH.
fn run_block(name: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _conn) = support::start(&dir.path().join("daas-data"));
    let bin_dir = std::path::Path::new(support::BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut bash = Command::new("bash");
    bash.arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(marked_block(name))
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("DAAS_ADDR")
        .env_remove("DAAS_TOKEN")
        .env_remove("DAAS_CACERT")
        .env_remove("DAAS_JOIN_TOKEN");
    let out = run_bounded(bash, name);
    server.kill().unwrap();
    server.wait().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the {name} block failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn readme_tour_runs_verbatim() {
    let (stdout, stderr) = run_block("tour");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "attack at dawn");
    assert_eq!(lines[1], "end to end");
    assert_eq!(lines[2], "hunter2");
    assert!(lines[3].contains("db/password"), "{stdout}");
    assert!(stdout.contains("secret.get"), "{stdout}");
    assert!(
        lines.last().unwrap().contains("true"),
        "audit verify: {stdout}"
    );
    assert!(stderr.is_empty(), "the tour printed errors: {stderr}");
}

#[test]
fn readme_identity_tour_runs_verbatim() {
    let (stdout, stderr) = run_block("identity-tour");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("spiffe://daas.local/daas/node/"),
        "{stdout}"
    );
    assert_eq!(lines[1], "spiffe://daas.local/demo", "{stdout}");
    assert_eq!(&lines[2..5], ["bundle.pem", "svid.pem", "svid_key.pem"]);
    assert_eq!(
        lines[5],
        "error: no identity issued to this process (is a registration entry for its binary in place?)"
    );
    // The same copy gets no instance document either; this process run gets one, chained to
    // the app's, that verifies offline against the bundle.
    assert_eq!(
        lines[6],
        "error: no identity issued to this process (is a registration entry for its binary in place?)"
    );
    assert_eq!(
        &lines[7..9],
        ["spiffe://daas.local/app/demo/instance/", "\"valid\": true"],
        "{stdout}"
    );
    assert_eq!(lines.len(), 9, "{stdout}");
    assert!(
        stderr.is_empty(),
        "the identity tour printed errors: {stderr}"
    );
}

/// Issue #4's "done when", with the real binaries: a protected service accepts the key holder,
/// refuses the same token from a process without the key (and as a plain bearer), accepts a
/// replacement after the first token is "lost", and refuses it within the status list's
/// refresh after revocation.
#[test]
fn readme_token_tour_runs_verbatim() {
    let (stdout, stderr) = run_block("token-tour");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{stdout}");
    // keygen prints the thumbprint, which the protected service reports as the proof's key.
    let thumbprint = lines[0];
    assert_eq!(thumbprint.len(), 43, "{stdout}");
    assert!(
        lines[1].starts_with(r#"{"client_id":"app:shop","jkt":""#)
            && lines[1].contains(thumbprint)
            && lines[1].contains(r#""scope":"orders:read","sub":"app:shop""#)
            && lines[1].ends_with(" 200"),
        "{stdout}"
    );
    assert!(
        lines[2].contains(r#""code":"invalid_dpop_proof""#) && lines[2].ends_with(" 401"),
        "the thief: {stdout}"
    );
    assert_eq!(lines[3], "401", "plain bearer: {stdout}");
    assert!(
        lines[4].contains(r#""sub":"app:shop""#) && lines[4].ends_with(" 200"),
        "the replacement: {stdout}"
    );
    assert_eq!(lines[5], r#"{"revoked": 1}"#, "{stdout}");
    assert!(
        lines[6].contains(r#""code":"invalid_token""#) && lines[6].ends_with(" 401"),
        "after revocation: {stdout}"
    );
    assert!(stderr.is_empty(), "the token tour printed errors: {stderr}");
}

/// The channel tour needs no server: it runs from a directory holding a copy of
/// `examples/channel/*.toml` (so the keys it generates stay out of the repository), as a user
/// runs it from the repository root.
#[test]
fn readme_channel_tour_runs_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let examples = dir.path().join("examples/channel");
    std::fs::create_dir_all(&examples).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/channel");
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, examples.join(path.file_name().unwrap())).unwrap();
        }
    }
    let bin_dir = std::path::Path::new(support::BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut bash = Command::new("bash");
    bash.arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(marked_block("channel-tour"))
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("DAAS_ROLE_USER_INFO")
        .env_remove("DAAS_LOG");
    let out = run_bounded(bash, "channel-tour");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the channel tour failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 8, "{stdout}");
    assert_eq!(lines[0], "payment accepted", "{stdout}");
    assert_eq!(lines[1], "charge order 42", "{stdout}");
    assert!(lines[2].starts_with("listening on 127.0.0.1:"), "{stdout}");
    assert_eq!(lines[3], "verified roles: payment", "{stdout}");
    assert_eq!(&lines[4..6], ["suggestion: exit 1", "payment: exit 1"]);
    assert!(lines[6].starts_with("listening on 127.0.0.1:"), "{stdout}");
    assert!(
        lines[7].starts_with("error: refused peer 127.0.0.1:")
            && lines[7].ends_with(
                ": none of its roles verified and anonymous peers are not allowed; failed roles: \
                 user-info (role not accepted by this side)"
            ),
        "{stdout}"
    );
    // stderr: user-api's verified roles, then suggestion's refusal of payment.
    let err: Vec<&str> = stderr.lines().collect();
    assert_eq!(err.len(), 2, "{stderr}");
    assert_eq!(err[0], "verified roles: payment");
    assert!(
        err[1].starts_with("error: refused peer 127.0.0.1:"),
        "{stderr}"
    );
    // The keys were generated, private.
    for role in ["payment", "approval", "shipping"] {
        let meta = std::fs::metadata(examples.join(format!("secrets/{role}.key"))).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600
        );
    }
}
