//! Small file helpers with the right permissions (secrets 0600, public material 0644).
use std::io::Write;
use std::path::Path;

use crate::ServerError;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn read_file(path: &Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(io_err(path))
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ServerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Write a secret file atomically with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    write_with_mode(path, bytes, 0o600)
}

/// Write a public file atomically with mode 0644.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    write_with_mode(path, bytes, 0o644)
}

/// Create a directory (and parents) with mode 0700.
pub fn ensure_private_dir(path: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::DirBuilderExt;
    if path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err(path))
}
