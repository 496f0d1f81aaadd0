//! Listener TLS: a generated trust-domain CA and a listener certificate, or operator-provided PEMs.
//! TLS 1.3 only, aws-lc-rs provider, hybrid post-quantum X25519MLKEM768 preferred.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::ServerError;
use crate::files::{read_file, write_private, write_public};

/// Paths of the generated CA and listener certificate inside a data directory.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

fn tls_err(e: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(e.to_string())
}

/// Create the CA and a listener certificate for `localhost`, `127.0.0.1`, `::1` and `extra_names`
/// if they do not exist yet. The CA private key is kept (0600) so later issues can sign SVIDs.
pub fn ensure_generated(dir: &Path, extra_names: &[String]) -> Result<TlsFiles, ServerError> {
    let files = TlsFiles::in_dir(dir);
    if files.ca_cert.exists() && files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "daas trust domain CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    ca_params.not_before = now - time::Duration::minutes(5);
    ca_params.not_after = now + time::Duration::days(3650);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;

    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(extra_names.iter().cloned());
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls_err)?;
    let mut leaf = CertificateParams::new(names).map_err(tls_err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "daas server");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.not_before = now - time::Duration::minutes(5);
    leaf.not_after = now + time::Duration::days(397);
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(tls_err)?;

    write_private(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
    write_public(&files.ca_cert, ca_cert.pem().as_bytes())?;
    write_private(&files.key, leaf_key.serialize_pem().as_bytes())?;
    write_public(&files.cert, leaf_cert.pem().as_bytes())?;
    Ok(files)
}

/// rustls server configuration: TLS 1.3 only, ALPN h2 + http/1.1.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let cert_pem = read_file(cert)?;
    let key_pem = read_file(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| ServerError::Tls(format!("reading {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{} holds no certificate",
            cert.display()
        )));
    }
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| ServerError::Tls(format!("reading {}: {e}", key.display())))?
        .ok_or_else(|| ServerError::Tls(format!("{} holds no private key", key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
