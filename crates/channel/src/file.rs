//! The channel configuration file: one TOML file a team can read, naming each role, its kind,
//! where its secret comes from, and whether anonymous peers are allowed.
//!
//! ```toml
//! allow_anonymous = false              # default false
//! key_exchange = "hybrid-only"         # or "hybrid-then-classical"; default hybrid-only
//!
//! [[role]]
//! name = "payment"
//! kind = "key"                         # 256-bit+ key, hex, from secret_file or secret_env
//! secret_file = "payment.key"          # relative to this file's directory
//!
//! [[role]]
//! name = "user-info"
//! kind = "password"                    # the file's bytes (one trailing newline dropped) or env
//! secret_env = "DAAS_ROLE_USER_INFO"
//! prove = true                         # default true
//! accept = false                       # default true
//!
//! [[role]]
//! name = "shipping"
//! kind = "key"
//! secret_daas = "channel/shipping"     # a daas stored secret (`daas secret put`), fetched with
//! share_env = "DAAS_SHARE_SHIPPING"    # the caller's share (or share_file); see daas_secrets
//!
//! [[role]]
//! name = "approval"
//! kind = "certificate"
//! algorithm = "ed25519"                # or "p256"
//! public_key = "hex of the raw public key"   # to verify
//! private_key_file = "approval.pk8"    # PKCS#8, DER or PEM: to prove
//!
//! [[role]]
//! name = "payment-svc"
//! kind = "certificate"                 # X.509 form: a chain to the role's trust anchor
//! trust_anchor_file = "payment-ca.pem" # PEM CA certificates: to verify (accept)
//! certificate_chain_file = "svid.pem"  # PEM, leaf first, without the anchor: to prove
//! private_key_file = "svid.key"        # the leaf's PKCS#8 key (Ed25519 or P-256)
//! spiffe_id_prefix = "spiffe://shop.example/payment"   # optional: the chain must be an
//!                                      # X.509-SVID under this ID (or spiffe_id = exact ID)
//! ```
//!
//! Secrets never appear in the file itself, only where to find them; unknown keys are errors.
//! Parsing ([`ChannelFile::parse`]) does no I/O; [`ChannelFile::load_roles`] reads the secret
//! files and asks `env` for variables; [`load`] does both for a path.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use daas_identity::SpiffeId;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::{
    CertificateRole, KeyExchange, Role, RoleConfig, RoleKey, RoleKeyAlgorithm, RolePassword,
    RoleSecret,
};
use crate::error::ConfigError;
use crate::name::RoleName;
use crate::x509::{SpiffePin, X509Role};

/// The configuration file or a secret it points to is unusable (the operator's fault).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (the message names the key, never a value).
    #[error("invalid channel configuration: {0}")]
    Syntax(String),
    /// A role entry breaks a rule of the schema.
    #[error("role {role}: {reason}")]
    Role {
        /// The role's name as written (or its index if the name is invalid).
        role: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An environment variable a role names is not set.
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The roles do not form a valid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    Key,
    Password,
    Certificate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Algorithm {
    Ed25519,
    P256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kx {
    #[default]
    HybridOnly,
    HybridThenClassical,
}

const fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleEntry {
    name: String,
    kind: Kind,
    #[serde(default = "yes")]
    prove: bool,
    #[serde(default = "yes")]
    accept: bool,
    secret_file: Option<PathBuf>,
    secret_env: Option<String>,
    secret_daas: Option<String>,
    share_env: Option<String>,
    share_file: Option<PathBuf>,
    algorithm: Option<Algorithm>,
    public_key: Option<String>,
    private_key_file: Option<PathBuf>,
    trust_anchor_file: Option<PathBuf>,
    certificate_chain_file: Option<PathBuf>,
    spiffe_id: Option<String>,
    spiffe_id_prefix: Option<String>,
}

impl RoleEntry {
    /// Whether the secret comes from anywhere (file, variable, daas secret).
    const fn has_secret_source(&self) -> bool {
        self.secret_file.is_some()
            || self.secret_env.is_some()
            || self.secret_daas.is_some()
            || self.share_env.is_some()
            || self.share_file.is_some()
    }

    /// Whether any field of the X.509 form is present.
    const fn x509_fields(&self) -> bool {
        self.trust_anchor_file.is_some()
            || self.certificate_chain_file.is_some()
            || self.spiffe_id.is_some()
            || self.spiffe_id_prefix.is_some()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Schema {
    #[serde(default)]
    allow_anonymous: bool,
    #[serde(default)]
    key_exchange: Kx,
    #[serde(default, rename = "role")]
    roles: Vec<RoleEntry>,
}

/// A parsed configuration file: the roles and where their secrets are, no secret yet.
#[derive(Clone)]
pub struct ChannelFile {
    schema: Schema,
}

impl fmt::Debug for ChannelFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelFile")
            .field("allow_anonymous", &self.schema.allow_anonymous)
            .field("roles", &self.schema.roles.len())
            .finish_non_exhaustive()
    }
}

/// A daas secret a role's secret comes from: its name on the server and the caller's share.
pub struct DaasSecretRef {
    /// The secret's name (`daas secret put NAME`).
    pub name: String,
    /// The caller's share of it.
    pub share: Zeroizing<String>,
}

impl fmt::Debug for DaasSecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaasSecretRef")
            .field("name", &self.name)
            .field("share", &"<redacted>")
            .finish()
    }
}

/// Reads `path`, then every secret it names (relative paths from the file's directory,
/// variables from the process environment).
///
/// # Errors
/// Any [`FileError`].
pub fn load(path: &Path) -> Result<(RoleConfig, KeyExchange), FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file = ChannelFile::parse(&text)?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let roles = file.load_roles(base, |v| std::env::var(v).ok())?;
    Ok((roles, file.key_exchange()))
}

fn read_secret(base: &Path, file: &Path) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let path = base.join(file);
    std::fs::read(&path)
        .map(Zeroizing::new)
        .map_err(|source| FileError::Read { path, source })
}

/// Decodes hex, ignoring surrounding whitespace; `None` if it is not hex.
fn decode_hex(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let text = text.trim_ascii();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Zeroizing::new(vec![0u8; text.len() / 2]);
    hex::decode_to_slice(text, out.as_mut_slice()).ok()?;
    Some(out)
}

/// PEM `CERTIFICATE` blocks, in order; `None` if there is none or one does not decode.
fn pem_certificates(bytes: &[u8]) -> Option<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    (!certs.is_empty()).then_some(certs)
}

/// PKCS#8 as DER, or as PEM (`-----BEGIN PRIVATE KEY-----`).
fn pkcs8_der(bytes: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    const BEGIN: &[u8] = b"-----BEGIN PRIVATE KEY-----";
    const END: &[u8] = b"-----END PRIVATE KEY-----";
    let trimmed = bytes.trim_ascii();
    if !trimmed.starts_with(BEGIN) {
        return Some(Zeroizing::new(bytes.to_vec()));
    }
    let body = trimmed.strip_prefix(BEGIN)?.strip_suffix(END)?;
    let b64: Zeroizing<Vec<u8>> = Zeroizing::new(
        body.iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_slice())
        .ok()
        .map(Zeroizing::new)
}

impl ChannelFile {
    /// Parses the TOML text. No I/O.
    ///
    /// # Errors
    /// [`FileError::Syntax`] for invalid TOML, unknown keys or wrong types.
    pub fn parse(text: &str) -> Result<Self, FileError> {
        let schema: Schema =
            toml::from_str(text).map_err(|e| FileError::Syntax(e.message().to_owned()))?;
        Ok(Self { schema })
    }

    /// Whether peers that verify no role may keep the channel.
    #[must_use]
    pub const fn allow_anonymous(&self) -> bool {
        self.schema.allow_anonymous
    }

    /// The key exchange policy.
    #[must_use]
    pub const fn key_exchange(&self) -> KeyExchange {
        match self.schema.key_exchange {
            Kx::HybridOnly => KeyExchange::HybridOnly,
            Kx::HybridThenClassical => KeyExchange::HybridThenClassical,
        }
    }

    /// Reads every role's secret (files relative to `base`, variables through `env`) and
    /// builds the [`RoleConfig`].
    ///
    /// # Errors
    /// Any [`FileError`].
    pub fn load_roles(
        &self,
        base: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<RoleConfig, FileError> {
        self.load_roles_with(base, env, |_| None)
    }

    /// The daas secrets the roles name (`secret_daas`), each with the caller's share read from
    /// `share_env` (through `env`) or `share_file` (relative to `base`), for the caller to
    /// fetch from a daas server (`daas secret get NAME --share S`) before
    /// [`ChannelFile::load_roles_with`]: this crate does no network I/O.
    ///
    /// # Errors
    /// [`FileError`] for a role without a share source, or whose share cannot be read.
    pub fn daas_secrets(
        &self,
        base: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<DaasSecretRef>, FileError> {
        let mut out = Vec::new();
        for entry in &self.schema.roles {
            let Some(name) = &entry.secret_daas else {
                continue;
            };
            let fail = |reason| FileError::Role {
                role: entry.name.clone(),
                reason,
            };
            let raw = match (&entry.share_env, &entry.share_file) {
                (Some(v), None) => env(v)
                    .map(|s| Zeroizing::new(s.into_bytes()))
                    .ok_or_else(|| FileError::MissingEnv(v.clone()))?,
                (None, Some(f)) => read_secret(base, f)?,
                (None, None) => return Err(fail("secret_daas needs share_env or share_file")),
                (Some(_), Some(_)) => return Err(fail("give share_env or share_file, not both")),
            };
            let share = core::str::from_utf8(&raw)
                .map_err(|_| fail("the share is not text"))?
                .trim()
                .to_owned();
            if share.is_empty() {
                return Err(fail("the share is empty"));
            }
            out.push(DaasSecretRef {
                name: name.clone(),
                share: Zeroizing::new(share),
            });
        }
        Ok(out)
    }

    /// As [`ChannelFile::load_roles`], with the values of the daas secrets the roles name
    /// (`secret_daas`) from `daas`, by secret name (see [`ChannelFile::daas_secrets`]).
    ///
    /// # Errors
    /// As [`ChannelFile::load_roles`]; a role whose daas secret `daas` does not give is an
    /// error.
    pub fn load_roles_with(
        &self,
        base: &Path,
        env: impl Fn(&str) -> Option<String>,
        daas: impl Fn(&str) -> Option<Zeroizing<Vec<u8>>>,
    ) -> Result<RoleConfig, FileError> {
        let mut roles = Vec::with_capacity(self.schema.roles.len());
        for entry in &self.schema.roles {
            let fail = |reason| FileError::Role {
                role: entry.name.clone(),
                reason,
            };
            let name = RoleName::new(&entry.name).map_err(|_| FileError::Role {
                role: format!("{:?}", entry.name.escape_default().to_string()),
                reason: "invalid role name (1-64 of a-z 0-9 . _ -)",
            })?;
            let secret_source = || -> Result<Zeroizing<Vec<u8>>, FileError> {
                if (entry.share_env.is_some() || entry.share_file.is_some())
                    && entry.secret_daas.is_none()
                {
                    return Err(fail("share_env and share_file go with secret_daas"));
                }
                match (&entry.secret_file, &entry.secret_env, &entry.secret_daas) {
                    (Some(f), None, None) => read_secret(base, f),
                    (None, Some(v), None) => env(v)
                        .map(|s| Zeroizing::new(s.into_bytes()))
                        .ok_or_else(|| FileError::MissingEnv(v.clone())),
                    (None, None, Some(name)) => daas(name).ok_or_else(|| {
                        fail("its daas secret was not fetched (see ChannelFile::daas_secrets)")
                    }),
                    (None, None, None) => Err(fail("needs secret_file, secret_env or secret_daas")),
                    _ => Err(fail("give one of secret_file, secret_env or secret_daas")),
                }
            };
            let cert_keys_absent = entry.algorithm.is_none()
                && entry.public_key.is_none()
                && entry.private_key_file.is_none()
                && !entry.x509_fields();
            let secret = match entry.kind {
                Kind::Key => {
                    if !cert_keys_absent {
                        return Err(fail("certificate fields on a key role"));
                    }
                    let raw = secret_source()?;
                    let key = decode_hex(&raw).ok_or_else(|| fail("role key is not hex"))?;
                    RoleSecret::Key(RoleKey::new(&key)?)
                }
                Kind::Password => {
                    if !cert_keys_absent {
                        return Err(fail("certificate fields on a password role"));
                    }
                    let raw = secret_source()?;
                    let pw = raw
                        .strip_suffix(b"\r\n")
                        .or_else(|| raw.strip_suffix(b"\n"))
                        .unwrap_or(&raw);
                    RoleSecret::Password(RolePassword::new(pw)?)
                }
                Kind::Certificate if entry.x509_fields() => {
                    if entry.has_secret_source() {
                        return Err(fail(
                            "certificate roles use certificate and key files, not secret_file or secret_env",
                        ));
                    }
                    RoleSecret::X509(Self::x509_role(entry, base, &fail)?)
                }
                Kind::Certificate => {
                    if entry.has_secret_source() {
                        return Err(fail(
                            "certificate roles use public_key and private_key_file",
                        ));
                    }
                    let alg = match entry.algorithm {
                        Some(Algorithm::Ed25519) => RoleKeyAlgorithm::Ed25519,
                        Some(Algorithm::P256) => RoleKeyAlgorithm::EcdsaP256,
                        None => return Err(fail("certificate role needs an algorithm")),
                    };
                    let cert = match (&entry.private_key_file, &entry.public_key) {
                        (Some(f), pinned) => {
                            let raw = read_secret(base, f)?;
                            let der =
                                pkcs8_der(&raw).ok_or_else(|| fail("private key is not pkcs#8"))?;
                            let c = CertificateRole::signer(alg, &der)?;
                            if let Some(pk) = pinned {
                                let pk = decode_hex(pk.as_bytes())
                                    .ok_or_else(|| fail("public key is not hex"))?;
                                if pk.as_slice() != c.public_key() {
                                    return Err(fail("public_key does not match private_key_file"));
                                }
                            }
                            c
                        }
                        (None, Some(pk)) => {
                            let pk = decode_hex(pk.as_bytes())
                                .ok_or_else(|| fail("public key is not hex"))?;
                            CertificateRole::verifier(alg, &pk)?
                        }
                        (None, None) => {
                            return Err(fail(
                                "certificate role needs public_key or private_key_file",
                            ));
                        }
                    };
                    RoleSecret::Certificate(cert)
                }
            };
            roles.push(
                Role::new(name, secret)
                    .with_prove(entry.prove)
                    .with_accept(entry.accept),
            );
        }
        Ok(RoleConfig::new(roles, self.schema.allow_anonymous)?)
    }

    /// The X.509 form of a certificate role: anchors to verify, chain and key to prove.
    fn x509_role(
        entry: &RoleEntry,
        base: &Path,
        fail: &impl Fn(&'static str) -> FileError,
    ) -> Result<X509Role, FileError> {
        if entry.algorithm.is_some() || entry.public_key.is_some() {
            return Err(fail(
                "algorithm and public_key belong to pinned-key certificate roles, not to chains",
            ));
        }
        let id = |s: &String| s.parse::<SpiffeId>().map_err(|_| fail("invalid spiffe id"));
        let pin = match (&entry.spiffe_id, &entry.spiffe_id_prefix) {
            (Some(_), Some(_)) => return Err(fail("give spiffe_id or spiffe_id_prefix, not both")),
            (Some(s), None) => Some(SpiffePin::Exact(id(s)?)),
            (None, Some(s)) => Some(SpiffePin::Prefix(id(s)?)),
            (None, None) => None,
        };
        let anchors = match &entry.trust_anchor_file {
            Some(f) => pem_certificates(&read_secret(base, f)?)
                .ok_or_else(|| fail("trust_anchor_file holds no pem certificate"))?,
            None => Vec::new(),
        };
        if pin.is_some() && anchors.is_empty() {
            return Err(fail("a spiffe pin needs trust_anchor_file"));
        }
        let role = X509Role::verifier(anchors, pin)?;
        match (&entry.certificate_chain_file, &entry.private_key_file) {
            (Some(c), Some(k)) => {
                let chain = pem_certificates(&read_secret(base, c)?)
                    .ok_or_else(|| fail("certificate_chain_file holds no pem certificate"))?;
                let raw = read_secret(base, k)?;
                let der = pkcs8_der(&raw).ok_or_else(|| fail("private key is not pkcs#8"))?;
                Ok(role.with_signer(chain, &der)?)
            }
            (None, None) => Ok(role),
            _ => Err(fail(
                "certificate_chain_file and private_key_file go together",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn daas_secret_roles_name_the_secret_and_the_share_and_take_the_fetched_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("info.share"), "daas:share:v1:info\n").unwrap();
        let text = r#"
            [[role]]
            name = "payment"
            kind = "key"
            secret_daas = "channel/payment"
            share_env = "PAY_SHARE"

            [[role]]
            name = "user-info"
            kind = "password"
            secret_daas = "channel/user-info"
            share_file = "info.share"
            "#;
        let file = ChannelFile::parse(text).unwrap();
        let env = |v: &str| (v == "PAY_SHARE").then(|| "daas:share:v1:pay".to_owned());
        let refs = file.daas_secrets(dir.path(), env).unwrap();
        let pairs: Vec<(&str, &str)> = refs
            .iter()
            .map(|r| (r.name.as_str(), r.share.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("channel/payment", "daas:share:v1:pay"),
                ("channel/user-info", "daas:share:v1:info")
            ]
        );
        assert!(
            !format!("{refs:?}").contains("daas:share"),
            "shares are redacted"
        );

        let fetched = |name: &str| match name {
            "channel/payment" => Some(Zeroizing::new("cd".repeat(32).into_bytes())),
            "channel/user-info" => Some(Zeroizing::new(b"correct horse\n".to_vec())),
            _ => None,
        };
        let roles = file.load_roles_with(dir.path(), env, fetched).unwrap();
        let RoleSecret::Password(pw) = roles
            .role(&RoleName::new("user-info").unwrap())
            .unwrap()
            .secret()
        else {
            panic!("user-info is a password role");
        };
        assert_eq!(pw.bytes(), b"correct horse");
        assert!(matches!(
            roles
                .role(&RoleName::new("payment").unwrap())
                .unwrap()
                .secret(),
            RoleSecret::Key(_)
        ));

        // Not fetched: the role cannot be built, and says why.
        assert!(matches!(
            file.load_roles(dir.path(), env),
            Err(FileError::Role { role, reason }) if role == "payment" && reason.contains("not fetched")
        ));
        // A share source is required, and shares go only with secret_daas.
        let no_share =
            ChannelFile::parse("[[role]]\nname = \"a\"\nkind = \"key\"\nsecret_daas = \"s\"")
                .unwrap();
        assert!(matches!(
            no_share.daas_secrets(dir.path(), no_env),
            Err(FileError::Role { reason, .. }) if reason == "secret_daas needs share_env or share_file"
        ));
        let missing = file.daas_secrets(dir.path(), no_env);
        assert!(matches!(missing, Err(FileError::MissingEnv(v)) if v == "PAY_SHARE"));
        let stray = ChannelFile::parse(
            "[[role]]\nname = \"a\"\nkind = \"key\"\nsecret_env = \"K\"\nshare_env = \"S\"",
        )
        .unwrap();
        assert!(matches!(
            stray.load_roles(dir.path(), |_| Some("ab".repeat(32))),
            Err(FileError::Role { reason, .. }) if reason == "share_env and share_file go with secret_daas"
        ));
        let two = ChannelFile::parse(
            "[[role]]\nname = \"a\"\nkind = \"key\"\nsecret_env = \"K\"\nsecret_daas = \"s\"\nshare_env = \"S\"",
        )
        .unwrap();
        assert!(matches!(
            two.load_roles_with(dir.path(), |_| Some("ab".repeat(32)), fetched),
            Err(FileError::Role { reason, .. }) if reason == "give one of secret_file, secret_env or secret_daas"
        ));
    }

    #[test]
    fn web_shop_user_api() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("payment.key"),
            format!("{}\n", "ab".repeat(32)),
        )
        .unwrap();
        std::fs::write(dir.path().join("info.pw"), "correct horse\n").unwrap();
        let pk8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        std::fs::write(dir.path().join("approval.pk8"), pk8.as_ref()).unwrap();
        let public = hex::encode(
            Ed25519KeyPair::from_pkcs8(pk8.as_ref())
                .unwrap()
                .public_key()
                .as_ref(),
        );
        let text = format!(
            r#"
            key_exchange = "hybrid-then-classical"

            [[role]]
            name = "payment"
            kind = "key"
            secret_file = "payment.key"
            accept = false

            [[role]]
            name = "user-info"
            kind = "password"
            secret_file = "info.pw"

            [[role]]
            name = "shipping"
            kind = "password"
            secret_env = "SHIP"

            [[role]]
            name = "approval"
            kind = "certificate"
            algorithm = "ed25519"
            public_key = "{public}"
            private_key_file = "approval.pk8"

            [[role]]
            name = "audit"
            kind = "certificate"
            algorithm = "ed25519"
            public_key = "{public}"
            prove = false
            "#
        );
        let file = ChannelFile::parse(&text).unwrap();
        assert_eq!(file.key_exchange(), KeyExchange::HybridThenClassical);
        assert!(!file.allow_anonymous());
        let env = |v: &str| (v == "SHIP").then(|| "ship-pw".to_owned());
        let roles = file.load_roles(dir.path(), env).unwrap();
        let names: Vec<_> = roles.roles().map(|r| r.name().to_string()).collect();
        assert_eq!(
            names,
            ["approval", "audit", "payment", "shipping", "user-info"]
        );
        let payment = roles.role(&RoleName::new("payment").unwrap()).unwrap();
        assert!(payment.proves() && !payment.accepts());
        let RoleSecret::Password(pw) = roles
            .role(&RoleName::new("user-info").unwrap())
            .unwrap()
            .secret()
        else {
            panic!("user-info is a password role");
        };
        assert_eq!(pw.bytes(), b"correct horse");

        // The same file without the variable.
        assert!(matches!(
            file.load_roles(dir.path(), no_env),
            Err(FileError::MissingEnv(v)) if v == "SHIP"
        ));
        // The private key and a different pinned key.
        let other = text.replace(
            &format!("public_key = \"{public}\"\n            private_key_file"),
            &format!(
                "public_key = \"{}\"\n            private_key_file",
                "00".repeat(32)
            ),
        );
        assert!(matches!(
            ChannelFile::parse(&other)
                .unwrap()
                .load_roles(dir.path(), env),
            Err(FileError::Role {
                reason: "public_key does not match private_key_file",
                ..
            })
        ));
    }

    fn pem(certs: &[CertificateDer<'_>]) -> String {
        certs
            .iter()
            .map(|c| {
                let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
                format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n")
            })
            .collect()
    }

    #[test]
    fn x509_certificate_roles() {
        use crate::x509::testutil::{Ca, t0};
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new();
        let (leaf, key) = ca.leaf();
        std::fs::write(dir.path().join("ca.pem"), pem(&[ca.der()])).unwrap();
        std::fs::write(dir.path().join("chain.pem"), pem(&[leaf])).unwrap();
        std::fs::write(dir.path().join("leaf.key"), &key).unwrap();
        let role = |extra: &str| {
            format!("[[role]]\nname = \"approval\"\nkind = \"certificate\"\n{extra}\n")
        };
        let load = |text: &str| {
            ChannelFile::parse(text)
                .unwrap()
                .load_roles(dir.path(), no_env)
        };
        let full = role(
            "trust_anchor_file = \"ca.pem\"\ncertificate_chain_file = \"chain.pem\"\nprivate_key_file = \"leaf.key\"",
        );
        let both = load(&full).unwrap();
        // A side loaded from the file proves the role to a side loaded from the same file.
        let cfg = std::sync::Arc::new(both);
        let ex = || crate::Exporters::new([3; 32], [4; 32]);
        let (c, c_offer) =
            crate::OfferSent::start(cfg.clone(), crate::Side::Client, ex(), |_| true).unwrap();
        let (s, s_offer) =
            crate::OfferSent::start(cfg, crate::Side::Server, ex(), |_| true).unwrap();
        let (c, c_proof) = c.receive_offer(&s_offer).unwrap();
        let (s, s_proof) = s.receive_offer(&c_offer).unwrap();
        let now: std::time::SystemTime = t0().into();
        assert_eq!(
            s.receive_proof_at(&c_proof, now)
                .finish()
                .unwrap()
                .to_string(),
            "approval"
        );
        assert_eq!(
            c.receive_proof_at(&s_proof, now)
                .finish()
                .unwrap()
                .to_string(),
            "approval"
        );
        // Verify-only and prove-only forms.
        let verify_only = role(
            "trust_anchor_file = \"ca.pem\"\nspiffe_id_prefix = \"spiffe://shop.example/payment\"\nprove = false",
        );
        assert!(load(&verify_only).is_ok());
        let prove_only = role(
            "certificate_chain_file = \"chain.pem\"\nprivate_key_file = \"leaf.key\"\naccept = false",
        );
        assert!(load(&prove_only).is_ok());
        let reason = |text: &str| match load(text) {
            Err(FileError::Role { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(&role(
                "trust_anchor_file = \"ca.pem\"\nalgorithm = \"ed25519\"\nprove = false"
            )),
            "algorithm and public_key belong to pinned-key certificate roles, not to chains"
        );
        assert_eq!(
            reason(&role(
                "trust_anchor_file = \"ca.pem\"\nspiffe_id = \"spiffe://a/b\"\nspiffe_id_prefix = \"spiffe://a\"\nprove = false"
            )),
            "give spiffe_id or spiffe_id_prefix, not both"
        );
        assert_eq!(
            reason(&role(
                "trust_anchor_file = \"ca.pem\"\nspiffe_id = \"https://a/b\"\nprove = false"
            )),
            "invalid spiffe id"
        );
        assert_eq!(
            reason(&role("trust_anchor_file = \"leaf.key\"\nprove = false")),
            "trust_anchor_file holds no pem certificate"
        );
        assert_eq!(
            reason(&role(
                "certificate_chain_file = \"chain.pem\"\naccept = false"
            )),
            "certificate_chain_file and private_key_file go together"
        );
        // Accepting without an anchor, proving without a chain.
        assert!(matches!(
            load(&role(
                "certificate_chain_file = \"chain.pem\"\nprivate_key_file = \"leaf.key\""
            )),
            Err(FileError::Config(ConfigError::MissingTrustAnchor))
        ));
        assert!(matches!(
            load(&role("trust_anchor_file = \"ca.pem\"")),
            Err(FileError::Config(ConfigError::MissingSigningKey))
        ));
        // The key must be the leaf's.
        let (_, other_key) = ca.leaf();
        std::fs::write(dir.path().join("leaf.key"), &other_key).unwrap();
        assert!(matches!(
            load(&full),
            Err(FileError::Config(ConfigError::InvalidRoleKey))
        ));
    }

    #[test]
    fn schema_errors() {
        let bad = |t: &str| {
            ChannelFile::parse(t)
                .unwrap()
                .load_roles(Path::new("/nonexistent"), |_| Some("00".repeat(32)))
        };
        assert!(matches!(
            ChannelFile::parse("allow_anon = true"),
            Err(FileError::Syntax(_))
        ));
        assert!(matches!(
            ChannelFile::parse("[[role]]\nname = \"a\"\nkind = \"key\"\nsecret = \"x\""),
            Err(FileError::Syntax(_))
        ));
        assert!(matches!(
            ChannelFile::parse("[[role]]\nname = \"a\"\nkind = \"token\""),
            Err(FileError::Syntax(_))
        ));
        assert!(matches!(
            bad("[[role]]\nname = \"a\"\nkind = \"key\""),
            Err(FileError::Role {
                reason: "needs secret_file, secret_env or secret_daas",
                ..
            })
        ));
        assert!(matches!(
            bad("[[role]]\nname = \"a\"\nkind = \"key\"\nsecret_env = \"K\"\nsecret_file = \"k\""),
            Err(FileError::Role {
                reason: "give one of secret_file, secret_env or secret_daas",
                ..
            })
        ));
        assert!(matches!(
            bad("[[role]]\nname = \"A\"\nkind = \"key\"\nsecret_env = \"K\""),
            Err(FileError::Role { .. })
        ));
        assert!(bad("[[role]]\nname = \"a\"\nkind = \"key\"\nsecret_env = \"K\"").is_ok());
        let short =
            ChannelFile::parse("[[role]]\nname = \"a\"\nkind = \"key\"\nsecret_env = \"K\"")
                .unwrap()
                .load_roles(Path::new("."), |_| Some("00".repeat(16)));
        assert!(matches!(
            short,
            Err(FileError::Config(ConfigError::BadKeyLength))
        ));
        let not_hex =
            ChannelFile::parse("[[role]]\nname = \"a\"\nkind = \"key\"\nsecret_env = \"K\"")
                .unwrap()
                .load_roles(Path::new("."), |_| Some("zz".repeat(32)));
        assert!(matches!(
            not_hex,
            Err(FileError::Role {
                reason: "role key is not hex",
                ..
            })
        ));
        assert!(matches!(
            bad("[[role]]\nname = \"a\"\nkind = \"certificate\"\nalgorithm = \"p256\""),
            Err(FileError::Role { .. })
        ));
        assert!(matches!(
            bad("[[role]]\nname = \"a\"\nkind = \"key\"\nsecret_env = \"K\"\nalgorithm = \"p256\""),
            Err(FileError::Role {
                reason: "certificate fields on a key role",
                ..
            })
        ));
        assert!(matches!(
            bad("[[role]]\nname = \"a\"\nkind = \"key\"\nsecret_file = \"missing\""),
            Err(FileError::Read { .. })
        ));
    }

    #[test]
    fn pem_private_keys() {
        let pk8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(pk8.as_ref());
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
        assert_eq!(pkcs8_der(pem.as_bytes()).unwrap().as_slice(), pk8.as_ref());
        assert_eq!(pkcs8_der(pk8.as_ref()).unwrap().as_slice(), pk8.as_ref());
        assert!(pkcs8_der(b"-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----").is_none());
    }
}
