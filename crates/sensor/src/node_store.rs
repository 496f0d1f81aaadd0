//! The node identity on disk: the only file the sensor writes on its own (the operator asked
//! for it with `--data-dir`).
//!
//! `DIR/node-identity.json`, mode 0600 in a 0700 directory, replaced atomically (write to a
//! temporary file, fsync, rename, fsync the directory). It holds the node SVID, its private key
//! (PKCS#8) and the trust bundle. The key is in the clear, protected by file permissions only,
//! as SPIRE's agent keeps its key: there is no local secret to seal it with. Workload keys are
//! never written here.
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use daas_identity::SpiffeId;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

const FILE_NAME: &str = "node-identity.json";
const FORMAT_VERSION: u32 = 1;
/// Anything larger is not a node identity file.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why the data directory or the node identity cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NodeStoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is accessible to other users (mode {mode:o}); use chmod {expected:o}")]
    TooOpen {
        path: String,
        mode: u32,
        expected: u32,
    },
    #[error("{path} belongs to uid {owner}, not to the user running the sensor")]
    NotOwned { path: String, owner: u32 },
    #[error("{path} is not a node identity file ({reason}); remove it to join again")]
    Corrupt { path: String, reason: String },
}

/// The node's credentials.
pub struct NodeIdentity {
    pub spiffe_id: SpiffeId,
    /// DER certificates, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 DER.
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    pub bundle: Vec<CertificateDer<'static>>,
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("spiffe_id", &self.spiffe_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// The chain and the key in PEM, as a TLS client identity.
    pub fn identity_pem(&self) -> Zeroizing<Vec<u8>> {
        let mut pem = Zeroizing::new(daas_identity::svid::certs_to_pem(&self.chain).into_bytes());
        pem.extend_from_slice(pem_block("PRIVATE KEY", &self.key_pkcs8).as_bytes());
        pem
    }
}

/// PEM armour (RFC 7468) of `der`.
pub fn pem_block(label: &str, der: &[u8]) -> Zeroizing<String> {
    use base64::engine::general_purpose::STANDARD;
    let body = Zeroizing::new(STANDARD.encode(der));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for line in body.as_bytes().chunks(64) {
        // INVARIANT: base64 output is ASCII, so every 64-byte chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    spiffe_id: String,
    x509_svid: Vec<String>,
    bundle: Vec<String>,
    key_pkcs8: String,
    /// Unix seconds.
    issued_at: i64,
    /// Unix seconds.
    expires_at: i64,
}

/// The node identity file of `data_dir`.
pub fn identity_path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// The data directory.
#[derive(Debug)]
pub struct NodeStore {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeStoreError + '_ {
    move |source| NodeStoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// This process's effective uid (from `/proc/self/status`: std has no safe getter).
pub fn effective_uid() -> std::io::Result<u32> {
    let status = fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .ok_or_else(|| std::io::Error::other("no effective uid in /proc/self/status"))
}

/// Owned by us and inaccessible to others: otherwise another user could have planted or could
/// read what is in it.
fn check_private(path: &Path, meta: &fs::Metadata, expected: u32) -> Result<(), NodeStoreError> {
    use std::os::unix::fs::MetadataExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(NodeStoreError::TooOpen {
            path: path.display().to_string(),
            mode,
            expected,
        });
    }
    let me = effective_uid().map_err(io(path))?;
    if meta.uid() != me {
        return Err(NodeStoreError::NotOwned {
            path: path.display().to_string(),
            owner: meta.uid(),
        });
    }
    Ok(())
}

impl NodeStore {
    /// Open (or create, 0700) the data directory; refuse one other users can read or write.
    pub fn open(dir: &Path) -> Result<Self, NodeStoreError> {
        match fs::symlink_metadata(dir) {
            Ok(meta) => {
                if !meta.is_dir() {
                    return Err(NodeStoreError::Io {
                        path: dir.display().to_string(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotADirectory,
                            "not a directory",
                        ),
                    });
                }
                check_private(dir, &meta, 0o700)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io(dir))?;
            }
            Err(e) => return Err(io(dir)(e)),
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The stored identity and when it was issued, if there is one that verifies against its
    /// own bundle at `now` (an expired one is `None`: the node must join again).
    pub fn load(
        &self,
        now: OffsetDateTime,
    ) -> Result<Option<(NodeIdentity, OffsetDateTime)>, NodeStoreError> {
        let path = identity_path(&self.dir);
        // Not through a symlink, and everything checked and read through one descriptor: the
        // path's own metadata must be a regular file that is the inode we opened.
        use std::os::unix::fs::MetadataExt as _;
        let linked = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let file = fs::File::open(&path).map_err(io(&path))?;
        let meta = file.metadata().map_err(io(&path))?;
        if !linked.is_file() || (linked.dev(), linked.ino()) != (meta.dev(), meta.ino()) {
            return Err(corrupt(&path, "not a regular file"));
        }
        check_private(&path, &meta, 0o600)?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(corrupt(&path, "too large"));
        }
        let mut bytes = Zeroizing::new(Vec::new());
        std::io::Read::read_to_end(&mut std::io::Read::take(&file, MAX_FILE_BYTES), &mut bytes)
            .map_err(io(&path))?;
        let stored: FileFormat =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, &e.to_string()))?;
        let key_text = Zeroizing::new(stored.key_pkcs8);
        if stored.version != FORMAT_VERSION {
            return Err(corrupt(&path, "unknown format version"));
        }
        let ders = |texts: &[String]| -> Result<Vec<CertificateDer<'static>>, NodeStoreError> {
            texts
                .iter()
                .map(|t| {
                    B64U.decode(t)
                        .map(CertificateDer::from)
                        .map_err(|_| corrupt(&path, "a certificate is not base64url"))
                })
                .collect()
        };
        let chain = ders(&stored.x509_svid)?;
        let bundle = ders(&stored.bundle)?;
        let key_pkcs8 = Zeroizing::new(
            B64U.decode(key_text.as_bytes())
                .map_err(|_| corrupt(&path, "the key is not base64url"))?,
        );
        let issued_at = OffsetDateTime::from_unix_timestamp(stored.issued_at)
            .map_err(|_| corrupt(&path, "issued_at out of range"))?;
        let expires_at = OffsetDateTime::from_unix_timestamp(stored.expires_at)
            .map_err(|_| corrupt(&path, "expires_at out of range"))?;
        let spiffe_id = match daas_identity::verify_x509_svid(&chain, &bundle, now) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "the stored node identity is no longer valid; joining again");
                return Ok(None);
            }
        };
        if spiffe_id.to_string() != stored.spiffe_id {
            return Err(corrupt(
                &path,
                "the SPIFFE ID does not match the certificate",
            ));
        }
        Ok(Some((
            NodeIdentity {
                spiffe_id,
                chain,
                key_pkcs8,
                bundle,
                expires_at,
            },
            issued_at,
        )))
    }

    /// Replace the stored identity atomically.
    pub fn save(
        &self,
        node: &NodeIdentity,
        issued_at: OffsetDateTime,
    ) -> Result<(), NodeStoreError> {
        let path = identity_path(&self.dir);
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let b64s = |certs: &[CertificateDer<'static>]| -> Vec<String> {
            certs.iter().map(|c| B64U.encode(c.as_ref())).collect()
        };
        let key_text = Zeroizing::new(B64U.encode(node.key_pkcs8.as_slice()));
        let stored = FileFormat {
            version: FORMAT_VERSION,
            spiffe_id: node.spiffe_id.to_string(),
            x509_svid: b64s(&node.chain),
            bundle: b64s(&node.bundle),
            key_pkcs8: key_text.to_string(),
            issued_at: issued_at.unix_timestamp(),
            expires_at: node.expires_at.unix_timestamp(),
        };
        let json = serde_json::to_vec(&stored).map(Zeroizing::new);
        // The serialized struct holds a copy of the key text: erase it too.
        drop(Zeroizing::new(stored.key_pkcs8));
        let json = json.map_err(|e| corrupt(&path, &e.to_string()))?;
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&tmp)(e)),
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(&json).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(())
    }
}

fn corrupt(path: &Path, reason: &str) -> NodeStoreError {
    NodeStoreError::Corrupt {
        path: path.display().to_string(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daas_identity::{TrustDomain, TrustDomainCa};

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
    }

    fn node() -> NodeIdentity {
        let ca = TrustDomainCa::new(
            TrustDomain::new("example.org").unwrap(),
            time::Duration::days(30),
            t(0),
        )
        .unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        let id: SpiffeId = "spiffe://example.org/daas/node/n1".parse().unwrap();
        let svid = ca
            .issue_x509_svid(csr.der(), &id, std::time::Duration::from_secs(3600), t(0))
            .unwrap();
        NodeIdentity {
            spiffe_id: id,
            expires_at: svid.not_after(),
            chain: svid.into_chain(),
            key_pkcs8: Zeroizing::new(key.serialize_der()),
            bundle: ca.bundle(t(0)),
        }
    }

    #[test]
    fn the_identity_round_trips_privately_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = NodeStore::open(&data).unwrap();
        assert_eq!(
            fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(store.load(t(1)).unwrap().is_none());
        let node = node();
        store.save(&node, t(0)).unwrap();
        let path = identity_path(&data);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (loaded, issued_at) = store.load(t(1)).unwrap().unwrap();
        assert_eq!(issued_at, t(0));
        assert_eq!(loaded.spiffe_id, node.spiffe_id);
        assert_eq!(loaded.chain, node.chain);
        assert_eq!(*loaded.key_pkcs8, *node.key_pkcs8);
        assert_eq!(loaded.bundle, node.bundle);
        assert_eq!(loaded.expires_at, node.expires_at);
        // Saving again replaces the file (no stale temporary file left behind).
        store.save(&node, t(5)).unwrap();
        let names: Vec<_> = fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME]);
        // Expired: as if there were none (the node must join again).
        assert!(store.load(t(3601)).unwrap().is_none());
    }

    #[test]
    fn open_permissions_and_corrupt_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = NodeStore::open(&data).unwrap();
        store.save(&node(), t(0)).unwrap();
        let path = identity_path(&data);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            store.load(t(1)),
            Err(NodeStoreError::TooOpen { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, b"{\"version\": 1}").unwrap();
        assert!(matches!(
            store.load(t(1)),
            Err(NodeStoreError::Corrupt { .. })
        ));
        fs::set_permissions(&data, fs::Permissions::from_mode(0o750)).unwrap();
        assert!(matches!(
            NodeStore::open(&data),
            Err(NodeStoreError::TooOpen { .. })
        ));
    }

    #[test]
    fn a_key_in_the_identity_pem_follows_the_chain() {
        let node = node();
        let pem = node.identity_pem();
        let text = std::str::from_utf8(&pem).unwrap();
        let cert = text.find("-----BEGIN CERTIFICATE-----").unwrap();
        let key = text.find("-----BEGIN PRIVATE KEY-----").unwrap();
        assert!(cert < key);
        assert!(text.ends_with("-----END PRIVATE KEY-----\n"));
    }
}
