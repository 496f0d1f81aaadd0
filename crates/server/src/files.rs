//! Files of the data directory with the right permissions (secrets 0600, public material 0644,
//! the directory 0700), written atomically and durably, read back only if still private.
//!
//! - An existing data directory must be owned by the user running the server and give no
//!   permission to group or others; otherwise the server refuses to start (like ssh).
//! - A secret file read back (storage key, admin token, TLS private keys) must be a regular file,
//!   not a symlink, owned by the directory's owner, with no group/other permission bits.
//! - Writes go to a fresh, unpredictable temporary name created with `O_EXCL` (so a planted
//!   file or symlink is never followed or reused), get their final mode explicitly (whatever the
//!   umask), are fsynced, renamed over the target, and the directory is fsynced.
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::ServerError;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn refuse_dir(dir: &Path) -> ServerError {
    ServerError::Config(format!(
        "refusing data directory {0}: it must be owned by you and not accessible to others \
         (chmod 700 {0})",
        dir.display()
    ))
}

fn refuse_file(path: &Path, why: &str) -> ServerError {
    ServerError::Config(format!(
        "refusing {0}: {why}; it must be a regular file (not a symlink) owned by you with mode \
         0600 (chmod 600 {0})",
        path.display()
    ))
}

/// Read a non-secret file (configuration, certificates, `seal.json`).
pub fn read_file(path: &Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(io_err(path))
}

/// Whether anything (a file, a directory, a symlink — even a dangling one) is at `path`.
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Check that `path` is a private file of ours: a regular file (not a symlink), owned by the
/// owner of its directory, without group/other permission bits.
pub fn check_private(path: &Path) -> Result<(), ServerError> {
    let meta = std::fs::symlink_metadata(path).map_err(io_err(path))?;
    check_private_meta(path, &meta)
}

fn check_private_meta(path: &Path, meta: &std::fs::Metadata) -> Result<(), ServerError> {
    if meta.file_type().is_symlink() {
        return Err(refuse_file(path, "it is a symlink"));
    }
    if !meta.is_file() {
        return Err(refuse_file(path, "it is not a regular file"));
    }
    let dir = parent(path);
    let owner = std::fs::metadata(dir).map_err(io_err(dir))?.uid();
    if meta.uid() != owner {
        return Err(refuse_file(path, "it is owned by another user"));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(refuse_file(
            path,
            &format!("its mode {:04o} lets others read it", meta.mode() & 0o7777),
        ));
    }
    Ok(())
}

/// Read a secret file, refusing it unless [`check_private`] holds for what was opened.
pub fn read_private(path: &Path) -> Result<Vec<u8>, ServerError> {
    // Refuse a symlink before opening, then check the opened file itself (not whatever the
    // name points to by now).
    let named = std::fs::symlink_metadata(path).map_err(io_err(path))?;
    check_private_meta(path, &named)?;
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let opened = file.metadata().map_err(io_err(path))?;
    if (opened.dev(), opened.ino()) != (named.dev(), named.ino()) {
        return Err(refuse_file(path, "it was replaced while being read"));
    }
    check_private_meta(path, &opened)?;
    // Sized up front so that no reallocation leaves an unwiped copy of the secret behind.
    let mut bytes = Vec::with_capacity(usize::try_from(opened.len()).unwrap_or(0) + 1);
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io_err(path))?;
    Ok(bytes)
}

fn random_hex() -> Result<String, ServerError> {
    Ok(hex::encode(daas_crypto::random::bytes::<12>()?))
}

/// fsync a directory, so that a rename or a creation in it survives a crash.
fn sync_dir(dir: &Path) -> Result<(), ServerError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ServerError> {
    let dir = parent(path);
    let name = path
        .file_name()
        .ok_or_else(|| ServerError::Config(format!("{} is not a file name", path.display())))?;
    let tmp: PathBuf = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), random_hex()?));
    let written = (|| {
        // O_CREAT | O_EXCL: never an existing file, never through a symlink.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have cleared bits of `mode` (0644 under umask 077): set it exactly.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(ServerError::Io { path: tmp, source });
    }
    if let Err(source) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(ServerError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    sync_dir(dir)
}

/// Write a secret file atomically with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    write_with_mode(path, bytes, 0o600)
}

/// Write a public file atomically with mode 0644.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    write_with_mode(path, bytes, 0o644)
}

/// The uid files created in `dir` get, i.e. this process's (effective) uid, learnt without
/// `libc` from a probe file created there and removed at once.
fn creator_uid(dir: &Path) -> Result<u32, ServerError> {
    let probe = dir.join(format!(".owner-probe.{}.tmp", random_hex()?));
    let file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Err(refuse_dir(dir)),
        Err(source) => {
            return Err(ServerError::Io {
                path: probe,
                source,
            });
        }
    };
    let uid = file.metadata().map(|m| m.uid());
    drop(file);
    let _ = std::fs::remove_file(&probe);
    uid.map_err(io_err(dir))
}

/// Create the data directory (and parents) with mode 0700, or accept an existing one only if
/// it is a directory owned by us with no group/other permission bits.
pub fn ensure_private_dir(path: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::metadata(path) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(ServerError::Config(format!(
                    "data directory {} is not a directory",
                    path.display()
                )));
            }
            if meta.mode() & 0o077 != 0 || creator_uid(path)? != meta.uid() {
                return Err(refuse_dir(path));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io_err(path))?;
            sync_dir(parent(path))
        }
        Err(source) => Err(ServerError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_atomic_private_or_public_and_leave_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("a.key");
        let public = dir.path().join("a.pem");
        write_private(&secret, b"one").unwrap();
        write_public(&public, b"two").unwrap();
        // Rewriting an existing file with a looser mode gets the documented mode again.
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o666)).unwrap();
        write_private(&secret, b"three").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(mode(&public), 0o644);
        assert_eq!(read_private(&secret).unwrap(), b"three");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn private_reads_refuse_symlinks_and_loose_modes() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.key");
        write_private(&real, b"k").unwrap();
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = read_private(&link).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_private(&real).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn existing_directories_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        ensure_private_dir(&data).unwrap();
        assert_eq!(std::fs::metadata(&data).unwrap().mode() & 0o777, 0o700);
        ensure_private_dir(&data).unwrap();
        for loose in [0o750, 0o705, 0o770, 0o755] {
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(loose)).unwrap();
            let err = ensure_private_dir(&data).unwrap_err().to_string();
            assert!(err.contains("chmod 700"), "{loose:o}: {err}");
        }
        // The probe leaves nothing behind.
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        ensure_private_dir(&data).unwrap();
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    }
}
