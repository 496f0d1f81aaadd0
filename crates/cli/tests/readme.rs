//! The README's tour works verbatim: its marked shell block runs under bash against the real
//! `daas server --dev`, from a directory holding `daas-data`, exactly as a user would run it.
#![expect(
    clippy::unwrap_used,
    reason = "a test: a failed step should panic with its location"
)]

mod support;

use std::process::Command;

fn tour() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme.find("<!-- tour:start -->").unwrap();
    let end = readme.find("<!-- tour:end -->").unwrap();
    let block = &readme[start..end];
    let code_start = block.find("```sh\n").unwrap() + "```sh\n".len();
    let code_end = block.rfind("```").unwrap();
    block[code_start..code_end].to_owned()
}

#[test]
fn readme_tour_runs_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _conn) = support::start(&dir.path().join("daas-data"));
    let bin_dir = std::path::Path::new(support::BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(tour())
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("DAAS_ADDR")
        .env_remove("DAAS_TOKEN")
        .env_remove("DAAS_CACERT")
        .output()
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the tour failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
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
