//! X.509 certificate roles: a side proves the role with a signature over the exporter made by
//! a key whose certificate chains to the role's trust anchor (X.509-SVIDs included).
//!
//! Path validation is rustls-webpki's (aws-lc-rs algorithms), SVID leaf rules are
//! `daas_identity::verify_x509_svid`'s; this module only composes them:
//!
//! 1. the chain (leaf first, at most [`MAX_CHAIN_CERTS`]) verifies against the role's anchors
//!    at `now` (signatures, validity, CA constraints, EKU client or server auth when present);
//! 2. if the role is pinned to a SPIFFE ID (or an ID prefix), the chain must also be a valid
//!    X.509-SVID of the anchors' trust domain and its ID must match the pin;
//! 3. the signature over `"daas channel x509 role v1" ‖ E_dir ‖ dir ‖ lp(role) ‖ scheme`
//!    verifies under the leaf's key with the announced scheme.
//!
//! Nothing of the peer's certificate is looked at before step 1 passed.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use daas_identity::SpiffeId;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use time::OffsetDateTime;
use webpki::{EndEntityCert, KeyUsage};

use crate::error::{ConfigError, WireError};
use crate::exchange::FailureReason;

/// Most certificates in a proof's chain (leaf and intermediates; the anchor is not sent).
pub const MAX_CHAIN_CERTS: usize = 4;
/// Largest DER certificate in a chain.
pub const MAX_CERT_LEN: usize = 4096;
/// Largest signature: a DER ECDSA P-256 signature is at most 72 bytes, Ed25519's is 64.
pub const MAX_X509_SIGNATURE_LEN: usize = 72;
/// Largest payload of a certificate-role proof entry.
pub const MAX_X509_PAYLOAD_LEN: usize =
    2 + MAX_CHAIN_CERTS * (2 + MAX_CERT_LEN) + 1 + MAX_X509_SIGNATURE_LEN;

/// The signature scheme of an X.509 role proof (the leaf key's algorithm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum X509Scheme {
    /// Ed25519 (RFC 8032): byte `0x01`, 64-byte signatures.
    Ed25519,
    /// ECDSA P-256 with SHA-256, DER signature: byte `0x02`.
    EcdsaP256Sha256,
}

impl X509Scheme {
    pub(crate) const fn byte(self) -> u8 {
        match self {
            Self::Ed25519 => 1,
            Self::EcdsaP256Sha256 => 2,
        }
    }

    const fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Ed25519),
            2 => Some(Self::EcdsaP256Sha256),
            _ => None,
        }
    }

    fn algorithm(self) -> &'static dyn SignatureVerificationAlgorithm {
        match self {
            Self::Ed25519 => webpki::aws_lc_rs::ED25519,
            Self::EcdsaP256Sha256 => webpki::aws_lc_rs::ECDSA_P256_SHA256,
        }
    }

    const fn signature_len_ok(self, len: usize) -> bool {
        match self {
            Self::Ed25519 => len == 64,
            // SEQUENCE { INTEGER r, INTEGER s }: at least 8 bytes, at most 72.
            Self::EcdsaP256Sha256 => len >= 8 && len <= MAX_X509_SIGNATURE_LEN,
        }
    }
}

/// The payload of a certificate-role proof entry:
///
/// ```text
/// scheme(1) ‖ count(1) ‖ (u16be(len) ‖ der){count} ‖ sig_len(1) ‖ sig
/// ```
///
/// `1 ≤ count ≤ MAX_CHAIN_CERTS`, every certificate `1..=MAX_CERT_LEN` bytes, the signature
/// length fixed by the scheme (64 for Ed25519, 8–72 for DER ECDSA). No trailing bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Proof {
    scheme: X509Scheme,
    chain: Vec<Vec<u8>>,
    signature: Vec<u8>,
}

impl X509Proof {
    /// Builds a proof, checking the same limits as the parser.
    ///
    /// # Errors
    /// [`WireError::BadPayloadLength`] if a limit is broken.
    pub fn new(
        scheme: X509Scheme,
        chain: Vec<Vec<u8>>,
        signature: Vec<u8>,
    ) -> Result<Self, WireError> {
        let ok = (1..=MAX_CHAIN_CERTS).contains(&chain.len())
            && chain.iter().all(|c| (1..=MAX_CERT_LEN).contains(&c.len()))
            && scheme.signature_len_ok(signature.len());
        if !ok {
            return Err(WireError::BadPayloadLength);
        }
        Ok(Self {
            scheme,
            chain,
            signature,
        })
    }

    /// The signature scheme.
    #[must_use]
    pub const fn scheme(&self) -> X509Scheme {
        self.scheme
    }

    /// The chain, leaf first (DER).
    #[must_use]
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The signature over the exporter.
    #[must_use]
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The encoded length.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        2 + self.chain.iter().map(|c| 2 + c.len()).sum::<usize>() + 1 + self.signature.len()
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.scheme.byte());
        // `new`/`parse` keep at most MAX_CHAIN_CERTS certificates of at most MAX_CERT_LEN
        // bytes and at most MAX_X509_SIGNATURE_LEN signature bytes.
        out.push(u8::try_from(self.chain.len()).unwrap_or(u8::MAX));
        for cert in &self.chain {
            out.extend_from_slice(&u16::try_from(cert.len()).unwrap_or(u16::MAX).to_be_bytes());
            out.extend_from_slice(cert);
        }
        out.push(u8::try_from(self.signature.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.signature);
    }

    /// Parses exactly one payload.
    ///
    /// # Errors
    /// [`WireError::BadPayloadLength`] for any structural fault (unknown scheme, count or
    /// length out of range, truncation, trailing bytes).
    pub fn parse(mut p: &[u8]) -> Result<Self, WireError> {
        let bad = WireError::BadPayloadLength;
        let mut take = |n: usize| -> Result<&[u8], WireError> {
            if p.len() < n {
                return Err(bad);
            }
            let (head, rest) = p.split_at(n);
            p = rest;
            Ok(head)
        };
        let scheme = X509Scheme::from_byte(take(1)?[0]).ok_or(bad)?;
        let count = usize::from(take(1)?[0]);
        if !(1..=MAX_CHAIN_CERTS).contains(&count) {
            return Err(bad);
        }
        let mut chain = Vec::with_capacity(count);
        for _ in 0..count {
            let len = take(2)?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            if !(1..=MAX_CERT_LEN).contains(&len) {
                return Err(bad);
            }
            chain.push(take(len)?.to_vec());
        }
        let sig_len = usize::from(take(1)?[0]);
        let signature = take(sig_len)?.to_vec();
        if !p.is_empty() {
            return Err(bad);
        }
        Self::new(scheme, chain, signature)
    }
}

/// Which SPIFFE IDs a role accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpiffePin {
    /// Exactly this ID.
    Exact(SpiffeId),
    /// This ID or any ID below it by whole path segments (`spiffe://td/shop` matches
    /// `spiffe://td/shop` and `spiffe://td/shop/payment`, not `spiffe://td/shopping`).
    Prefix(SpiffeId),
}

impl SpiffePin {
    fn matches(&self, id: &SpiffeId) -> bool {
        match self {
            Self::Exact(p) => p == id,
            Self::Prefix(p) => {
                p.trust_domain() == id.trust_domain()
                    && (id.path() == p.path()
                        || id
                            .path()
                            .strip_prefix(p.path())
                            .is_some_and(|rest| rest.starts_with('/')))
            }
        }
    }
}

enum Signer {
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair),
}

struct Prover {
    chain: Vec<Vec<u8>>,
    signer: Signer,
}

/// An X.509 certificate role: trust anchors (and an optional SPIFFE pin) to verify the peer,
/// and, to prove it, this side's chain and the leaf's private key.
pub struct X509Role {
    anchors_der: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
    pin: Option<SpiffePin>,
    prover: Option<Prover>,
}

impl fmt::Debug for X509Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Role")
            .field("anchors", &self.anchors.len())
            .field("pin", &self.pin)
            .field("can_sign", &self.prover.is_some())
            .finish()
    }
}

impl X509Role {
    /// A role verified against `anchors` (DER CA certificates), optionally pinned to SPIFFE
    /// IDs. With a pin, `anchors` must be the trust domain's bundle (CA certificates naming
    /// `spiffe://td`, as the daas CA issues them).
    ///
    /// # Errors
    /// [`ConfigError::InvalidCertificate`] if an anchor is not a usable trust anchor.
    pub fn verifier(
        anchors: Vec<CertificateDer<'static>>,
        pin: Option<SpiffePin>,
    ) -> Result<Self, ConfigError> {
        let parsed = anchors
            .iter()
            .map(|a| webpki::anchor_from_trusted_cert(a).map(|t| t.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ConfigError::InvalidCertificate)?;
        Ok(Self {
            anchors_der: anchors,
            anchors: parsed,
            pin,
            prover: None,
        })
    }

    /// Adds this side's chain (leaf first, DER, without the anchor) and the leaf's PKCS#8
    /// private key (Ed25519 or ECDSA P-256), so the role can be proven. The key must match the
    /// leaf (checked by signing and verifying a probe under the leaf certificate).
    ///
    /// # Errors
    /// [`ConfigError::InvalidCertificate`] for a chain outside the wire limits or a leaf that
    /// does not parse, [`ConfigError::InvalidRoleKey`] for a key aws-lc-rs refuses or that does
    /// not match the leaf.
    pub fn with_signer(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        pkcs8: &[u8],
    ) -> Result<Self, ConfigError> {
        let chain: Vec<Vec<u8>> = chain.into_iter().map(|c| c.as_ref().to_vec()).collect();
        let signer = if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8) {
            Signer::Ed25519(k)
        } else {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)
                .map(Signer::EcdsaP256)
                .map_err(|_| ConfigError::InvalidRoleKey)?
        };
        let prover = Prover { chain, signer };
        // The probe checks the limits, that the leaf parses and that the key is the leaf's.
        let probe = b"daas channel x509 role key probe";
        let proof = prover
            .sign(probe)
            .map_err(|_| ConfigError::InvalidCertificate)?;
        let leaf = CertificateDer::from(proof.chain[0].as_slice());
        let ee = EndEntityCert::try_from(&leaf).map_err(|_| ConfigError::InvalidCertificate)?;
        ee.verify_signature(proof.scheme.algorithm(), probe, &proof.signature)
            .map_err(|_| ConfigError::InvalidRoleKey)?;
        self.prover = Some(prover);
        Ok(self)
    }

    /// Whether this side can prove the role.
    #[must_use]
    pub const fn can_sign(&self) -> bool {
        self.prover.is_some()
    }

    /// Whether this side can verify the role (has at least one trust anchor).
    #[must_use]
    pub fn can_verify(&self) -> bool {
        !self.anchors.is_empty()
    }

    /// The largest proof entry payload this side sends for the role.
    pub(crate) fn max_proof_len(&self) -> usize {
        self.prover.as_ref().map_or(0, |p| {
            2 + p.chain.iter().map(|c| 2 + c.len()).sum::<usize>() + 1 + MAX_X509_SIGNATURE_LEN
        })
    }

    /// Signs `msg(scheme)`; `None` without a private key or if the crypto library fails.
    pub(crate) fn prove(&self, msg: impl Fn(X509Scheme) -> Vec<u8>) -> Option<X509Proof> {
        let p = self.prover.as_ref()?;
        let scheme = p.scheme();
        p.sign(&msg(scheme)).ok()
    }

    /// Verifies a peer's proof at `now`; `msg(scheme)` is the signed bytes.
    pub(crate) fn verify(
        &self,
        proof: &X509Proof,
        msg: impl Fn(X509Scheme) -> Vec<u8>,
        now: SystemTime,
    ) -> Result<(), FailureReason> {
        let certs: Vec<CertificateDer<'_>> = proof
            .chain
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let (leaf, intermediates) = certs.split_first().ok_or(FailureReason::InvalidChain)?;
        let since_epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let time = UnixTime::since_unix_epoch(since_epoch);
        let ee = EndEntityCert::try_from(leaf).map_err(|_| FailureReason::InvalidChain)?;
        let path = |usage| {
            ee.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                intermediates,
                time,
                usage,
                None,
                None,
            )
            .map(|_| ())
        };
        match path(KeyUsage::client_auth()) {
            Ok(()) => {}
            Err(webpki::Error::RequiredEkuNotFoundContext(_)) => {
                path(KeyUsage::server_auth()).map_err(|e| chain_failure(&e))?;
            }
            Err(e) => return Err(chain_failure(&e)),
        }
        if let Some(pin) = &self.pin {
            let id = daas_identity::verify_x509_svid(
                &certs,
                &self.anchors_der,
                OffsetDateTime::from(now),
            )
            .map_err(|_| FailureReason::NotSvid)?;
            if !pin.matches(&id) {
                return Err(FailureReason::SpiffeIdMismatch);
            }
        }
        ee.verify_signature(
            proof.scheme.algorithm(),
            &msg(proof.scheme),
            &proof.signature,
        )
        .map_err(|_| FailureReason::BadSignature)
    }
}

impl Prover {
    const fn scheme(&self) -> X509Scheme {
        match self.signer {
            Signer::Ed25519(_) => X509Scheme::Ed25519,
            Signer::EcdsaP256(_) => X509Scheme::EcdsaP256Sha256,
        }
    }

    fn sign(&self, msg: &[u8]) -> Result<X509Proof, WireError> {
        let signature = match &self.signer {
            Signer::Ed25519(k) => k.sign(msg).as_ref().to_vec(),
            Signer::EcdsaP256(k) => k
                .sign(&SystemRandom::new(), msg)
                .map_err(|_| WireError::BadPayloadLength)?
                .as_ref()
                .to_vec(),
        };
        X509Proof::new(self.scheme(), self.chain.clone(), signature)
    }
}

fn chain_failure(e: &webpki::Error) -> FailureReason {
    use webpki::Error as W;
    match e {
        W::CertExpired { .. } => FailureReason::CertificateExpired,
        W::CertNotValidYet { .. } => FailureReason::CertificateNotYetValid,
        // No anchor or intermediate by the issuer's name, or one by that name whose key did
        // not sign the certificate: either way not issued under the role's anchor.
        W::UnknownIssuer | W::InvalidSignatureForPublicKey => FailureReason::UntrustedChain,
        _ => FailureReason::InvalidChain,
    }
}

/// Certificate factories for the tests of this crate (rcgen, aws-lc-rs).
#[cfg(test)]
pub(crate) mod testutil {
    use std::sync::atomic::{AtomicU32, Ordering};

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, PKCS_ED25519,
        SignatureAlgorithm,
    };
    use rustls_pki_types::CertificateDer;
    use time::OffsetDateTime;

    /// A CA whose validity runs from `from` to `until`.
    pub(crate) struct Ca {
        pub(crate) issuer: CertifiedIssuer<'static, KeyPair>,
    }

    fn validity(p: &mut CertificateParams, from: OffsetDateTime, until: OffsetDateTime) {
        p.not_before = from;
        p.not_after = until;
    }

    /// CA parameters with a name of their own (webpki finds issuers by name).
    fn ca_params() -> CertificateParams {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        p.distinguished_name
            .push(DnType::CommonName, format!("test role ca {n}"));
        validity(
            &mut p,
            t0() - time::Duration::days(10),
            t0() + time::Duration::days(365),
        );
        p
    }

    pub(crate) fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    impl Ca {
        pub(crate) fn new() -> Self {
            Self {
                issuer: CertifiedIssuer::self_signed(ca_params(), KeyPair::generate().unwrap())
                    .unwrap(),
            }
        }

        /// An intermediate CA signed by this one.
        pub(crate) fn intermediate(&self) -> Self {
            Self {
                issuer: CertifiedIssuer::signed_by(
                    ca_params(),
                    KeyPair::generate().unwrap(),
                    &self.issuer,
                )
                .unwrap(),
            }
        }

        pub(crate) fn der(&self) -> CertificateDer<'static> {
            self.issuer.der().clone()
        }

        /// A leaf of `alg` valid from `from` to `until`; returns its DER and PKCS#8 key.
        pub(crate) fn leaf_valid(
            &self,
            alg: &'static SignatureAlgorithm,
            from: OffsetDateTime,
            until: OffsetDateTime,
        ) -> (CertificateDer<'static>, Vec<u8>) {
            let key = KeyPair::generate_for(alg).unwrap();
            let mut p = CertificateParams::new(vec!["role.example".to_owned()]).unwrap();
            validity(&mut p, from, until);
            let cert = p.signed_by(&key, &self.issuer).unwrap();
            (cert.der().clone(), key.serialize_der())
        }

        /// An Ed25519 leaf valid for a day around [`t0`].
        pub(crate) fn leaf(&self) -> (CertificateDer<'static>, Vec<u8>) {
            self.leaf_valid(
                &PKCS_ED25519,
                t0() - time::Duration::hours(12),
                t0() + time::Duration::hours(12),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use daas_identity::{TrustDomain, TrustDomainCa};
    use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};

    use super::testutil::{Ca, t0};
    use super::*;
    use crate::config::{Role, RoleConfig, RoleSecret};
    use crate::error::{ConfigError, RoleError};
    use crate::exchange::{Exporters, OfferSent, RoleOutcome, Side};
    use crate::name::RoleName;
    use crate::wire::{Entry, MessageType, RoleMessage};

    fn name(s: &str) -> RoleName {
        RoleName::new(s).unwrap()
    }

    fn at(t: OffsetDateTime) -> SystemTime {
        t.into()
    }

    /// A side that proves `role` with `chain`/`key` and accepts nothing.
    fn prover(role: &str, chain: Vec<CertificateDer<'static>>, key: &[u8]) -> Arc<RoleConfig> {
        let x = X509Role::verifier(vec![], None)
            .unwrap()
            .with_signer(chain, key)
            .unwrap();
        let r = Role::new(name(role), RoleSecret::X509(x)).with_accept(false);
        Arc::new(RoleConfig::new(vec![r], true).unwrap())
    }

    /// A side that accepts `role` from chains to `anchor`, optionally pinned.
    fn verifier(
        role: &str,
        anchor: CertificateDer<'static>,
        pin: Option<SpiffePin>,
    ) -> Arc<RoleConfig> {
        let x = X509Role::verifier(vec![anchor], pin).unwrap();
        let r = Role::new(name(role), RoleSecret::X509(x)).with_prove(false);
        Arc::new(RoleConfig::new(vec![r], false).unwrap())
    }

    /// Runs client (prover) against server (verifier) with the given exporters, at `now`;
    /// returns the server's outcome and the client's proof bytes.
    fn run(
        client: Arc<RoleConfig>,
        server: Arc<RoleConfig>,
        ex: (u8, u8),
        now: SystemTime,
    ) -> (RoleOutcome, Vec<u8>) {
        let exp = |s: u8| Exporters::new([s; 32], [s ^ 0x55; 32]);
        let (c, c_offer) = OfferSent::start(client, Side::Client, exp(ex.0), |_| true).unwrap();
        let (s, s_offer) = OfferSent::start(server, Side::Server, exp(ex.1), |_| true).unwrap();
        let (_, c_proof) = c.receive_offer(&s_offer).unwrap();
        let (s, _) = s.receive_offer(&c_offer).unwrap();
        (s.receive_proof_at(&c_proof, now), c_proof)
    }

    fn reasons(o: &RoleOutcome) -> Vec<FailureReason> {
        o.failures().iter().map(|f| f.reason).collect()
    }

    #[test]
    fn valid_chain_verifies_for_both_schemes_and_through_an_intermediate() {
        let root = Ca::new();
        let mid = root.intermediate();
        for alg in [&PKCS_ED25519, &PKCS_ECDSA_P256_SHA256] {
            let (leaf, key) = mid.leaf_valid(
                alg,
                t0() - time::Duration::hours(1),
                t0() + time::Duration::hours(1),
            );
            let (o, _) = run(
                prover("approval", vec![leaf, mid.der()], &key),
                verifier("approval", root.der(), None),
                (1, 1),
                at(t0()),
            );
            assert!(o.failures().is_empty(), "{:?}", o.failures());
            assert_eq!(o.finish().unwrap().to_string(), "approval");
        }
        // The intermediate is needed: the leaf alone does not lead to the root.
        let (leaf, key) = mid.leaf();
        let (o, _) = run(
            prover("approval", vec![leaf], &key),
            verifier("approval", root.der(), None),
            (1, 1),
            at(t0()),
        );
        assert_eq!(reasons(&o), vec![FailureReason::UntrustedChain]);
        assert_eq!(o.finish(), Err(RoleError::NoVerifiedRoles));
    }

    #[test]
    fn chain_to_another_anchor_is_refused() {
        let ours = Ca::new();
        let theirs = Ca::new();
        let (leaf, key) = theirs.leaf();
        let (o, _) = run(
            prover("approval", vec![leaf, theirs.der()], &key),
            verifier("approval", ours.der(), None),
            (1, 1),
            at(t0()),
        );
        assert_eq!(reasons(&o), vec![FailureReason::UntrustedChain]);
        assert!(o.finish().is_err());
    }

    #[test]
    fn impostor_ca_with_the_anchors_name_is_refused() {
        use rcgen::{BasicConstraints, CertifiedIssuer, DnType, IsCa};
        let named = || {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name
                .push(DnType::CommonName, "shop role ca");
            p.not_before = t0() - time::Duration::days(1);
            p.not_after = t0() + time::Duration::days(1);
            Ca {
                issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
            }
        };
        let (real, impostor) = (named(), named());
        let (leaf, key) = impostor.leaf();
        let (o, _) = run(
            prover("approval", vec![leaf], &key),
            verifier("approval", real.der(), None),
            (1, 1),
            at(t0()),
        );
        assert_eq!(reasons(&o), vec![FailureReason::UntrustedChain]);
    }

    #[test]
    fn proof_from_another_session_or_direction_is_refused() {
        let ca = Ca::new();
        let (leaf, key) = ca.leaf();
        let client = prover("approval", vec![leaf], &key);
        // The proof made on connection 1 ...
        let (o, proof) = run(
            client.clone(),
            verifier("approval", ca.der(), None),
            (1, 1),
            at(t0()),
        );
        assert!(o.finish().is_ok());
        // ... replayed on connection 2 (a MITM relaying it, or a recorded transcript).
        let exp2 = Exporters::new([2; 32], [2 ^ 0x55; 32]);
        let server = verifier("approval", ca.der(), None);
        let (s, _) = OfferSent::start(server.clone(), Side::Server, exp2, |_| true).unwrap();
        let empty_offer = RoleMessage::new(MessageType::Offer, vec![])
            .unwrap()
            .encode();
        let (s, _) = s.receive_offer(&empty_offer).unwrap();
        let o = s.receive_proof_at(&proof, at(t0()));
        assert_eq!(reasons(&o), vec![FailureReason::BadSignature]);
        assert!(o.finish().is_err());
        // ... and reflected to a client of connection 1 (wrong direction byte and exporter).
        let exp1 = Exporters::new([1; 32], [1 ^ 0x55; 32]);
        let x = X509Role::verifier(vec![ca.der()], None).unwrap();
        let cfg = Arc::new(
            RoleConfig::new(
                vec![Role::new(name("approval"), RoleSecret::X509(x)).with_prove(false)],
                false,
            )
            .unwrap(),
        );
        let (c, _) = OfferSent::start(cfg, Side::Client, exp1, |_| true).unwrap();
        let (c, _) = c.receive_offer(&empty_offer).unwrap();
        let o = c.receive_proof_at(&proof, at(t0()));
        assert_eq!(reasons(&o), vec![FailureReason::BadSignature]);
    }

    #[test]
    fn expired_and_not_yet_valid_certificates_are_refused() {
        let ca = Ca::new();
        let (leaf, key) = ca.leaf();
        let client = prover("approval", vec![leaf], &key);
        let server = || verifier("approval", ca.der(), None);
        let (o, _) = run(
            client.clone(),
            server(),
            (1, 1),
            at(t0() + time::Duration::hours(13)),
        );
        assert_eq!(reasons(&o), vec![FailureReason::CertificateExpired]);
        assert!(o.finish().is_err());
        let (o, _) = run(
            client.clone(),
            server(),
            (1, 1),
            at(t0() - time::Duration::hours(13)),
        );
        assert_eq!(reasons(&o), vec![FailureReason::CertificateNotYetValid]);
        // The same proof inside the validity period verifies.
        let (o, _) = run(
            client,
            server(),
            (1, 1),
            at(t0() + time::Duration::hours(11)),
        );
        assert!(o.finish().is_ok());
    }

    #[test]
    fn truncated_oversized_and_forged_proof_entries() {
        let ca = Ca::new();
        let (leaf, key) = ca.leaf();
        let (_, proof) = run(
            prover("approval", vec![leaf.clone()], &key),
            verifier("approval", ca.der(), None),
            (1, 1),
            at(t0()),
        );
        let verify = |bytes: &[u8]| {
            let (s, _) = OfferSent::start(
                verifier("approval", ca.der(), None),
                Side::Server,
                Exporters::new([1; 32], [1 ^ 0x55; 32]),
                |_| true,
            )
            .unwrap();
            let offer = RoleMessage::new(MessageType::Offer, vec![])
                .unwrap()
                .encode();
            let (s, _) = s.receive_offer(&offer).unwrap();
            s.receive_proof_at(bytes, at(t0()))
        };
        assert!(verify(&proof).finish().is_ok());
        // Every truncation is a malformed message, never a verified role.
        for len in 0..proof.len() {
            assert!(verify(&proof[..len]).finish().is_err(), "prefix {len}");
        }
        let mut long = proof.clone();
        long.push(0);
        assert!(verify(&long).finish().is_err());
        // Every single-byte change of the entry fails (chain, scheme or signature), and none
        // panics.
        for i in 4..proof.len() {
            let mut m = proof.clone();
            m[i] ^= 0x01;
            assert!(verify(&m).finish().is_err(), "byte {i}");
        }
        // A signature by another key under the genuine chain is refused.
        let other = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        let other = Ed25519KeyPair::from_pkcs8(&other.serialize_der()).unwrap();
        let msg = x509_test_message("approval", 1);
        let forged = X509Proof::new(
            X509Scheme::Ed25519,
            vec![leaf.as_ref().to_vec()],
            other.sign(&msg).as_ref().to_vec(),
        )
        .unwrap();
        let m = RoleMessage::new(
            MessageType::Proof,
            vec![(name("approval"), Entry::X509(forged))],
        )
        .unwrap()
        .encode();
        let o = verify(&m);
        assert_eq!(reasons(&o), vec![FailureReason::BadSignature]);
    }

    /// What a client proving `role` signs on the connection with exporter seed `seed`.
    fn x509_test_message(role: &str, seed: u8) -> Vec<u8> {
        let mut m = crate::labels::CERT_ROLE_X509_V1.to_vec();
        m.extend_from_slice(&[seed; 32]);
        m.push(0);
        crate::labels::push_lp(&mut m, role.as_bytes());
        m.push(X509Scheme::Ed25519.byte());
        m
    }

    fn svid_ca(td: &str) -> TrustDomainCa {
        TrustDomainCa::new(
            TrustDomain::new(td).unwrap(),
            time::Duration::days(30),
            t0(),
        )
        .unwrap()
    }

    fn svid(ca: &TrustDomainCa, id: &str) -> (Vec<CertificateDer<'static>>, Vec<u8>) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .der()
            .to_vec();
        let s = ca
            .issue_x509_svid(
                &csr,
                &id.parse().unwrap(),
                std::time::Duration::from_secs(3600),
                t0(),
            )
            .unwrap();
        (s.into_chain(), key.serialize_der())
    }

    #[test]
    fn svids_as_role_certificates_with_spiffe_pins() {
        let ca = svid_ca("shop.example");
        let anchor = ca.bundle(t0())[0].clone();
        let (chain, key) = svid(&ca, "spiffe://shop.example/payment/api");
        let client = prover("payment", chain, &key);
        let id = |s: &str| s.parse::<SpiffeId>().unwrap();
        let check = |pin: SpiffePin| {
            let (o, _) = run(
                client.clone(),
                verifier("payment", anchor.clone(), Some(pin)),
                (1, 1),
                at(t0() + time::Duration::minutes(1)),
            );
            reasons(&o)
        };
        assert!(check(SpiffePin::Exact(id("spiffe://shop.example/payment/api"))).is_empty());
        assert!(check(SpiffePin::Prefix(id("spiffe://shop.example/payment"))).is_empty());
        assert!(check(SpiffePin::Prefix(id("spiffe://shop.example"))).is_empty());
        assert_eq!(
            check(SpiffePin::Exact(id("spiffe://shop.example/payment"))),
            vec![FailureReason::SpiffeIdMismatch]
        );
        // Prefixes match whole path segments only.
        assert_eq!(
            check(SpiffePin::Prefix(id("spiffe://shop.example/pay"))),
            vec![FailureReason::SpiffeIdMismatch]
        );
        // A chain that verifies to the anchor but is not an SVID is refused by a pinned role.
        let plain = Ca::new();
        let (leaf, key) = plain.leaf();
        let (o, _) = run(
            prover("payment", vec![leaf], &key),
            verifier(
                "payment",
                plain.der(),
                Some(SpiffePin::Prefix(id("spiffe://shop.example"))),
            ),
            (1, 1),
            at(t0()),
        );
        assert_eq!(reasons(&o), vec![FailureReason::NotSvid]);
        // An SVID of another trust domain's CA is not trusted at all.
        let other = svid_ca("other.example");
        let (chain, key) = svid(&other, "spiffe://other.example/payment/api");
        let (o, _) = run(
            prover("payment", chain, &key),
            verifier(
                "payment",
                anchor,
                Some(SpiffePin::Prefix(id("spiffe://shop.example"))),
            ),
            (1, 1),
            at(t0() + time::Duration::minutes(1)),
        );
        assert_eq!(reasons(&o), vec![FailureReason::UntrustedChain]);
    }

    #[test]
    fn configuration_rules() {
        let ca = Ca::new();
        let (leaf, key) = ca.leaf();
        let (_, other_key) = ca.leaf();
        // The key must be the leaf's.
        assert_eq!(
            X509Role::verifier(vec![], None)
                .unwrap()
                .with_signer(vec![leaf.clone()], &other_key)
                .err(),
            Some(ConfigError::InvalidRoleKey)
        );
        assert_eq!(
            X509Role::verifier(vec![], None)
                .unwrap()
                .with_signer(vec![leaf.clone()], b"not a key")
                .err(),
            Some(ConfigError::InvalidRoleKey)
        );
        // Chains outside the wire limits, leaves that do not parse, bad anchors.
        assert_eq!(
            X509Role::verifier(vec![], None)
                .unwrap()
                .with_signer(vec![leaf.clone(); MAX_CHAIN_CERTS + 1], &key)
                .err(),
            Some(ConfigError::InvalidCertificate)
        );
        assert_eq!(
            X509Role::verifier(vec![], None)
                .unwrap()
                .with_signer(vec![CertificateDer::from(vec![0x30, 0])], &key)
                .err(),
            Some(ConfigError::InvalidCertificate)
        );
        assert_eq!(
            X509Role::verifier(vec![CertificateDer::from(vec![1, 2, 3])], None).err(),
            Some(ConfigError::InvalidCertificate)
        );
        // Proving needs the key, accepting needs an anchor.
        let role = |x: X509Role| Role::new(name("a"), RoleSecret::X509(x));
        assert_eq!(
            RoleConfig::new(
                vec![role(X509Role::verifier(vec![ca.der()], None).unwrap())],
                false
            )
            .err(),
            Some(ConfigError::MissingSigningKey)
        );
        let prove_only = X509Role::verifier(vec![], None)
            .unwrap()
            .with_signer(vec![leaf.clone()], &key)
            .unwrap();
        assert_eq!(
            RoleConfig::new(vec![role(prove_only)], false).err(),
            Some(ConfigError::MissingTrustAnchor)
        );
        // Proofs that would not fit one message: four roles with the largest chains.
        let big_leaf = {
            let k = KeyPair::generate_for(&PKCS_ED25519).unwrap();
            let mut p = CertificateParams::new(vec!["x".repeat(60); 55]).unwrap();
            p.not_before = t0();
            p.not_after = t0() + time::Duration::hours(1);
            (
                p.signed_by(&k, &ca.issuer).unwrap().der().clone(),
                k.serialize_der(),
            )
        };
        assert!(big_leaf.0.len() > 3000 && big_leaf.0.len() <= MAX_CERT_LEN);
        let roles = (0..6)
            .map(|i| {
                let x = X509Role::verifier(vec![ca.der()], None)
                    .unwrap()
                    .with_signer(vec![big_leaf.0.clone(); MAX_CHAIN_CERTS], &big_leaf.1)
                    .unwrap();
                Role::new(name(&format!("r{i}")), RoleSecret::X509(x))
            })
            .collect();
        assert_eq!(
            RoleConfig::new(roles, false).err(),
            Some(ConfigError::ProofTooLarge)
        );
    }
}
