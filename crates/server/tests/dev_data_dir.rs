//! The dev data directory is trusted only if it is ours: an existing directory open to group or
//! others (or owned by someone else) is refused, secret files read back must be private regular
//! files (no symlinks), and writes never follow a planted file or symlink.
#![expect(
    clippy::unwrap_used,
    reason = "test harness: a failed step should panic with its location"
)]
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use daas_server::{DevOptions, ServerError};

/// Start `daas server --dev` on `data`, and stop it as soon as it is ready. `Err` if it refused
/// to start.
async fn start_and_stop(data: &Path) -> Result<(), ServerError> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = DevOptions {
        data_dir: data.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let task = tokio::spawn(daas_server::run_dev(
        opts,
        move |_env| {
            let _ = ready_tx.send(());
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    if ready_rx.await.is_ok() {
        let _ = stop_tx.send(());
    }
    task.await.unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A fresh, populated data directory.
async fn populated() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    start_and_stop(&data).await.unwrap();
    (dir, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_have_the_documented_modes() {
    let (_dir, data) = populated().await;
    assert_eq!(mode(&data), 0o700);
    for secret in [
        "storage.key",
        "admin.token",
        "env",
        "ca.key",
        "server.key",
        "daas.db",
    ] {
        assert_eq!(mode(&data.join(secret)), 0o600, "{secret}");
    }
    for public in ["ca.pem", "server.pem"] {
        assert_eq!(mode(&data.join(public)), 0o644, "{public}");
    }
    let names = entries(&data);
    assert!(
        !names.iter().any(|n| n.ends_with(".tmp")),
        "temporary files were left behind: {names:?}"
    );
    // A second start reuses everything and rewrites `env` with its mode, whatever the mode of
    // the old file or of temporary files a crash may have left behind.
    chmod(&data.join("env"), 0o644);
    for stale in ["env.tmp", ".env.tmp"] {
        std::fs::write(data.join(stale), b"").unwrap();
        chmod(&data.join(stale), 0o666);
    }
    start_and_stop(&data).await.unwrap();
    assert_eq!(mode(&data.join("env")), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_directory_open_to_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for loose in [0o750, 0o740, 0o705, 0o755, 0o777, 0o701] {
        chmod(&data, loose);
        let err = start_and_stop(&data)
            .await
            .expect_err("a data directory open to others must be refused")
            .to_string();
        assert!(
            err.contains("refusing data directory")
                && err.contains("owned by you and not accessible to others")
                && err.contains("chmod 700"),
            "{loose:o}: {err}"
        );
        assert_eq!(entries(&data), Vec::<String>::new(), "nothing is written");
    }
    // Once private, it is used.
    chmod(&data, 0o700);
    start_and_stop(&data).await.unwrap();
    assert!(data.join("storage.key").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_directory_of_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o700);
    // Giving a directory away needs root; elsewhere this case cannot be set up.
    if std::os::unix::fs::chown(&data, Some(65534), Some(65534)).is_err() {
        return;
    }
    let err = start_and_stop(&data)
        .await
        .expect_err("a directory owned by someone else must be refused")
        .to_string();
    assert!(err.contains("refusing data directory"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinked_secret_files_are_refused() {
    for name in ["storage.key", "admin.token", "server.key"] {
        let (dir, data) = populated().await;
        // The same bytes, private, but reached through a symlink.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        chmod(&elsewhere, 0o700);
        let target = elsewhere.join(name);
        std::fs::rename(data.join(name), &target).unwrap();
        std::os::unix::fs::symlink(&target, data.join(name)).unwrap();
        let err = start_and_stop(&data)
            .await
            .expect_err("a symlinked secret file must be refused")
            .to_string();
        assert!(
            err.contains(name) && err.contains("symlink"),
            "{name}: {err}"
        );

        // A dangling symlink is refused too (never replaced behind the operator's back).
        std::fs::remove_file(&target).unwrap();
        let err = start_and_stop(&data)
            .await
            .expect_err("a dangling symlink must be refused")
            .to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_files_readable_by_others_are_refused() {
    let (_dir, data) = populated().await;
    for name in ["storage.key", "admin.token", "server.key", "ca.key"] {
        let path = data.join(name);
        for loose in [0o640, 0o604, 0o644] {
            chmod(&path, loose);
            let err = start_and_stop(&data)
                .await
                .expect_err("a secret file readable by others must be refused")
                .to_string();
            assert!(
                err.contains(name) && err.contains("chmod 600"),
                "{name} {loose:o}: {err}"
            );
        }
        chmod(&path, 0o600);
    }
    start_and_stop(&data).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_temporary_files_are_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o700);
    let victims = dir.path().join("victims");
    std::fs::create_dir(&victims).unwrap();
    // Symlinks at the names a predictable temp-file scheme would use (`X.tmp` beside `X.key`,
    // `.X.tmp`, ...), pointing at files outside the data directory.
    let planted = [
        "storage.tmp",
        "admin.tmp",
        "server.tmp",
        "ca.tmp",
        "env.tmp",
        ".storage.key.tmp",
        ".admin.token.tmp",
    ];
    for name in planted {
        let victim = victims.join(name);
        std::fs::write(&victim, b"").unwrap();
        std::os::unix::fs::symlink(&victim, data.join(name)).unwrap();
    }
    start_and_stop(&data).await.unwrap();
    for name in planted {
        let victim = victims.join(name);
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"",
            "a secret was written through the planted symlink {name}"
        );
        assert!(
            std::fs::symlink_metadata(data.join(name))
                .unwrap()
                .file_type()
                .is_symlink(),
            "{name} was replaced"
        );
    }
    for name in ["storage.key", "admin.token", "server.key", "ca.key", "env"] {
        let meta = std::fs::symlink_metadata(data.join(name)).unwrap();
        assert!(meta.is_file(), "{name} is not a regular file");
        assert_eq!(meta.mode() & 0o777, 0o600, "{name}");
    }
}
