//! The identity of one registration entry as PEM files, for apps that cannot speak gRPC
//! (`daas sensor --pem-dir DIR --pem-id SPIFFE-ID`).
//!
//! `DIR/svid.pem` (chain, leaf first), `DIR/svid_key.pem` (PKCS#8, mode 0600) and
//! `DIR/bundle.pem`, rewritten at every rotation, each replaced atomically (temporary file +
//! rename). When the SVID expires without a replacement (server unreachable), `svid.pem` and
//! `svid_key.pem` are removed: an app must not keep presenting an expired identity.
//!
//! There is no attestation of who reads these files: the directory's permissions are the
//! access control, so the operator chooses the directory (and its owner) deliberately.
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;

use crate::node_store::pem_block;

pub const SVID_FILE: &str = "svid.pem";
pub const KEY_FILE: &str = "svid_key.pem";
pub const BUNDLE_FILE: &str = "bundle.pem";

/// One identity to write.
#[derive(Debug, Clone, Copy)]
pub struct PemIdentity<'a> {
    /// DER certificates, leaf first.
    pub chain: &'a [CertificateDer<'static>],
    /// PKCS#8 DER.
    pub key_pkcs8: &'a [u8],
    pub bundle: &'a [CertificateDer<'static>],
}

/// Where and which identity to write.
#[derive(Debug, Clone)]
pub struct PemOutput {
    dir: PathBuf,
    spiffe_id: String,
}

impl PemOutput {
    /// `dir` must exist (the operator creates it with the owner and mode the app needs).
    /// `dir` must be a real directory (not a symlink) owned by the user running the sensor and
    /// writable by no one else: otherwise another user could swap the files the app trusts.
    pub fn new(dir: PathBuf, spiffe_id: String) -> std::io::Result<Self> {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let meta = fs::symlink_metadata(&dir)?;
        let refuse = |why: String| {
            Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                why,
            ))
        };
        if !meta.is_dir() {
            return refuse(format!("{} is not a directory", dir.display()));
        }
        if meta.uid() != crate::node_store::effective_uid()? {
            return refuse(format!(
                "{} belongs to uid {}, not to the user running this command",
                dir.display(),
                meta.uid()
            ));
        }
        if meta.permissions().mode() & 0o022 != 0 {
            return refuse(format!(
                "{} is writable by other users (mode {:o})",
                dir.display(),
                meta.permissions().mode() & 0o777
            ));
        }
        Ok(Self { dir, spiffe_id })
    }

    pub fn spiffe_id(&self) -> &str {
        &self.spiffe_id
    }

    /// Write `svid` (or remove the SVID files when there is none).
    pub fn write(&self, svid: Option<PemIdentity<'_>>) -> std::io::Result<()> {
        let Some(svid) = svid else {
            for name in [SVID_FILE, KEY_FILE] {
                match fs::remove_file(self.dir.join(name)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        };
        let certs = |ders: &[CertificateDer<'static>]| -> String {
            ders.iter()
                .map(|d| pem_block("CERTIFICATE", d).to_string())
                .collect()
        };
        let chain = certs(svid.chain);
        let bundle = certs(svid.bundle);
        // Bundle first (it holds the old and the new CA during a rotation), then the key, then
        // the certificate: an app that reloads when `svid.pem` changes finds the rest in place.
        write_atomic(&self.dir, BUNDLE_FILE, bundle.as_bytes(), 0o644)?;
        write_atomic(
            &self.dir,
            KEY_FILE,
            pem_block("PRIVATE KEY", svid.key_pkcs8).as_bytes(),
            0o600,
        )?;
        write_atomic(&self.dir, SVID_FILE, chain.as_bytes(), 0o644)
    }
}

fn write_atomic(dir: &Path, name: &str, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(name))
}
