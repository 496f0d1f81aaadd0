//! Role configuration: which roles a side holds, how each is proven, which it accepts.

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, UnparsedPublicKey,
};
use zeroize::Zeroizing;

use crate::error::ConfigError;
use crate::name::RoleName;
use crate::wire::{ENTRY_OVERHEAD, MAX_BODY_LEN, MAX_ENTRIES, TAG_LEN};
use crate::x509::X509Role;

/// Shortest role key: 256 bits.
pub const MIN_ROLE_KEY_LEN: usize = 32;
/// Longest role key or password.
pub const MAX_ROLE_SECRET_LEN: usize = 1024;
/// Length of an Ed25519 public key.
pub const ED25519_PUBLIC_KEY_LEN: usize = 32;
/// Length of an uncompressed P-256 public point.
pub const P256_PUBLIC_KEY_LEN: usize = 65;

/// A high-entropy pre-shared role key (at least 256 bits). Zeroized on drop.
pub struct RoleKey(Zeroizing<Vec<u8>>);

impl RoleKey {
    /// Wraps a key.
    ///
    /// # Errors
    /// [`ConfigError::BadKeyLength`] below 32 or above 1024 bytes.
    pub fn new(key: &[u8]) -> Result<Self, ConfigError> {
        if !(MIN_ROLE_KEY_LEN..=MAX_ROLE_SECRET_LEN).contains(&key.len()) {
            return Err(ConfigError::BadKeyLength);
        }
        Ok(Self(Zeroizing::new(key.to_vec())))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for RoleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoleKey(..)")
    }
}

/// A low-entropy role password, only ever used through the PAKE. Zeroized on drop (the
/// `spake2` crate keeps its own copy while a PAKE runs and does not zeroize it).
pub struct RolePassword(Zeroizing<Vec<u8>>);

impl RolePassword {
    /// Wraps a password.
    ///
    /// # Errors
    /// [`ConfigError::BadPasswordLength`] if empty or above 1024 bytes.
    pub fn new(password: &[u8]) -> Result<Self, ConfigError> {
        if password.is_empty() || password.len() > MAX_ROLE_SECRET_LEN {
            return Err(ConfigError::BadPasswordLength);
        }
        Ok(Self(Zeroizing::new(password.to_vec())))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for RolePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RolePassword(..)")
    }
}

/// The signature algorithm of a certificate role's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKeyAlgorithm {
    /// Ed25519 (RFC 8032); 32-byte public keys.
    Ed25519,
    /// ECDSA over P-256 with SHA-256, fixed-length `r ‖ s` signatures; 65-byte uncompressed
    /// public points.
    EcdsaP256,
}

enum Signer {
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair),
}

/// A certificate role in its first form: one role key (Ed25519 or P-256) pinned by the
/// configuration.
///
/// The verifier holds the public key; a prover also holds the private key. (X.509 chains to a
/// role trust anchor, e.g. SVIDs, are a later addition: see docs/channel.md.)
pub struct CertificateRole {
    algorithm: RoleKeyAlgorithm,
    public_key: Vec<u8>,
    signer: Option<Signer>,
}

impl CertificateRole {
    /// A role this side can only verify: the pinned raw public key (32 bytes for Ed25519, a
    /// 65-byte uncompressed point for P-256).
    ///
    /// # Errors
    /// [`ConfigError::InvalidRoleKey`] if the key has the wrong length or is not on the curve.
    pub fn verifier(algorithm: RoleKeyAlgorithm, public_key: &[u8]) -> Result<Self, ConfigError> {
        let ok = match algorithm {
            RoleKeyAlgorithm::Ed25519 => public_key.len() == ED25519_PUBLIC_KEY_LEN,
            RoleKeyAlgorithm::EcdsaP256 => {
                public_key.len() == P256_PUBLIC_KEY_LEN
                    && aws_lc_rs::signature::ParsedPublicKey::new(
                        &ECDSA_P256_SHA256_FIXED,
                        public_key,
                    )
                    .is_ok()
            }
        };
        if !ok {
            return Err(ConfigError::InvalidRoleKey);
        }
        Ok(Self {
            algorithm,
            public_key: public_key.to_vec(),
            signer: None,
        })
    }

    /// A role this side can prove (and verify): a PKCS#8 private key of `algorithm`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidRoleKey`] if aws-lc-rs refuses the document.
    pub fn signer(algorithm: RoleKeyAlgorithm, pkcs8: &[u8]) -> Result<Self, ConfigError> {
        let bad = |_| ConfigError::InvalidRoleKey;
        let (signer, public_key) = match algorithm {
            RoleKeyAlgorithm::Ed25519 => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(bad)?;
                let pk = pair.public_key().as_ref().to_vec();
                (Signer::Ed25519(pair), pk)
            }
            RoleKeyAlgorithm::EcdsaP256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(bad)?;
                let pk = pair.public_key().as_ref().to_vec();
                (Signer::EcdsaP256(pair), pk)
            }
        };
        Ok(Self {
            algorithm,
            public_key,
            signer: Some(signer),
        })
    }

    /// The key's algorithm.
    #[must_use]
    pub const fn algorithm(&self) -> RoleKeyAlgorithm {
        self.algorithm
    }

    /// The pinned public key.
    #[must_use]
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    pub(crate) const fn can_sign(&self) -> bool {
        self.signer.is_some()
    }

    /// Signs `msg`; `None` without a private key or if the crypto library fails. The signature
    /// is 64 bytes for both algorithms.
    pub(crate) fn sign(&self, msg: &[u8]) -> Option<[u8; 64]> {
        let sig = match self.signer.as_ref()? {
            Signer::Ed25519(pair) => pair.sign(msg),
            Signer::EcdsaP256(pair) => pair.sign(&SystemRandom::new(), msg).ok()?,
        };
        sig.as_ref().try_into().ok()
    }

    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn aws_lc_rs::signature::VerificationAlgorithm = match self.algorithm {
            RoleKeyAlgorithm::Ed25519 => &ED25519,
            RoleKeyAlgorithm::EcdsaP256 => &ECDSA_P256_SHA256_FIXED,
        };
        UnparsedPublicKey::new(alg, &self.public_key)
            .verify(msg, sig)
            .is_ok()
    }
}

impl fmt::Debug for CertificateRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateRole")
            .field("algorithm", &self.algorithm)
            .field("public_key", &self.public_key)
            .field("can_sign", &self.signer.is_some())
            .finish()
    }
}

/// How a role is proven.
#[derive(Debug)]
pub enum RoleSecret {
    /// A pre-shared key: HMAC over the exporter.
    Key(RoleKey),
    /// A password: SPAKE2 bound to both exporters, then key confirmation. Password roles are
    /// mutual: when both sides offer one, both send a confirmation.
    Password(RolePassword),
    /// A pinned role key: a signature over the exporter.
    Certificate(CertificateRole),
    /// A key certified by the role's trust anchor (X.509 chain, SVIDs included): a signature
    /// over the exporter, sent with the chain.
    X509(X509Role),
}

/// One role of a side.
#[derive(Debug)]
pub struct Role {
    name: RoleName,
    secret: RoleSecret,
    prove: bool,
    accept: bool,
}

impl Role {
    /// A role that this side both proves and accepts from the peer.
    #[must_use]
    pub const fn new(name: RoleName, secret: RoleSecret) -> Self {
        Self {
            name,
            secret,
            prove: true,
            accept: true,
        }
    }

    /// Whether this side proves the role to its peer.
    #[must_use]
    pub const fn with_prove(mut self, prove: bool) -> Self {
        self.prove = prove;
        self
    }

    /// Whether this side accepts the role from its peer (puts it in [`crate::VerifiedRoles`]).
    #[must_use]
    pub const fn with_accept(mut self, accept: bool) -> Self {
        self.accept = accept;
        self
    }

    /// The role's name.
    #[must_use]
    pub const fn name(&self) -> &RoleName {
        &self.name
    }

    /// The role's secret.
    #[must_use]
    pub const fn secret(&self) -> &RoleSecret {
        &self.secret
    }

    /// Whether this side proves it.
    #[must_use]
    pub const fn proves(&self) -> bool {
        self.prove
    }

    /// Whether this side accepts it.
    #[must_use]
    pub const fn accepts(&self) -> bool {
        self.accept
    }
}

/// The roles of one side and whether it talks to peers that verify no role.
#[derive(Debug)]
pub struct RoleConfig {
    roles: BTreeMap<RoleName, Role>,
    allow_anonymous: bool,
}

impl RoleConfig {
    /// Checks and builds a configuration.
    ///
    /// # Errors
    /// [`ConfigError::DuplicateRole`], [`ConfigError::TooManyRoles`] (above
    /// [`MAX_ENTRIES`]), [`ConfigError::MissingSigningKey`] (a proving certificate role
    /// without a private key), [`ConfigError::MissingTrustAnchor`] (an accepting X.509 role
    /// without an anchor), [`ConfigError::ProofTooLarge`] (the proof would not fit one role
    /// message), [`ConfigError::UselessRole`] (neither proves nor accepts).
    pub fn new(roles: Vec<Role>, allow_anonymous: bool) -> Result<Self, ConfigError> {
        if roles.len() > MAX_ENTRIES {
            return Err(ConfigError::TooManyRoles);
        }
        let mut map = BTreeMap::new();
        for role in roles {
            if !role.prove && !role.accept {
                return Err(ConfigError::UselessRole);
            }
            if let RoleSecret::Certificate(c) = &role.secret
                && role.prove
                && !c.can_sign()
            {
                return Err(ConfigError::MissingSigningKey);
            }
            if let RoleSecret::X509(x) = &role.secret {
                if role.prove && !x.can_sign() {
                    return Err(ConfigError::MissingSigningKey);
                }
                if role.accept && !x.can_verify() {
                    return Err(ConfigError::MissingTrustAnchor);
                }
            }
            if map.contains_key(&role.name) {
                return Err(ConfigError::DuplicateRole);
            }
            map.insert(role.name.clone(), role);
        }
        // Worst case of our proof: every proven role's entry at its largest (a password
        // confirmation is sent for every password role, proven or not).
        let proof_body = 1 + map
            .values()
            .map(|r| {
                let payload = match &r.secret {
                    RoleSecret::X509(x) if r.prove => x.max_proof_len(),
                    RoleSecret::Key(_) | RoleSecret::Certificate(_) if r.prove => 2 * TAG_LEN,
                    RoleSecret::Password(_) => TAG_LEN,
                    _ => 0,
                };
                ENTRY_OVERHEAD + r.name.as_str().len() + payload
            })
            .sum::<usize>();
        if proof_body > MAX_BODY_LEN {
            return Err(ConfigError::ProofTooLarge);
        }
        Ok(Self {
            roles: map,
            allow_anonymous,
        })
    }

    /// The roles, by name.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// The role named `name`.
    #[must_use]
    pub fn role(&self, name: &RoleName) -> Option<&Role> {
        self.roles.get(name)
    }

    /// Whether a peer that verifies no role may keep the channel.
    #[must_use]
    pub const fn allow_anonymous(&self) -> bool {
        self.allow_anonymous
    }
}

/// Which key exchange groups TLS may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyExchange {
    /// X25519MLKEM768 only: a peer without it cannot connect.
    #[default]
    HybridOnly,
    /// X25519MLKEM768 first; classical X25519 only if the peer does not offer the hybrid group
    /// at all (opt-in per configuration, never an automatic fallback).
    HybridThenClassical,
}
