//! The trust-domain CA: self-signed ECDSA P-256 authorities whose certificates are the trust
//! bundle, and X.509-SVID issuance from PKCS#10 CSRs per the SPIFFE X.509-SVID spec.
//!
//! Design choices, and why:
//! - The signing key lives in an aws-lc-rs `EcdsaKeyPair` (key bytes in C memory, cleansed on
//!   free) behind our own rcgen `SigningKey`, rather than rcgen's `KeyPair`, which keeps a
//!   non-zeroized PKCS#8 copy. Exported material is a [`Zeroizing`] buffer with a redacted `Debug`.
//! - The CSR only proves possession of the key: its subject and requested extensions are ignored
//!   and the leaf is built entirely from our parameters, so a node cannot ask for `CA:true`, extra
//!   SANs or a longer lifetime.
//! - Rotation keeps the previous authority in the bundle until it expires, so SVIDs it issued keep
//!   verifying during the overlap (they are short-lived, the authority long-lived).
//! - Each authority generation also has two token keys, never the X.509 CA key reused across
//!   protocols: an ES256 key for JWT-SVIDs and an Ed25519 key for identity documents. They are
//!   created, rotated and pruned with the X.509 authority and have its validity window, so the
//!   JWK sets in the bundle overlap exactly as the certificates do. Their `kid` is the RFC 7638
//!   thumbprint of the public key.

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm, SigningKey,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use crate::error::{CallerError, Error, InternalError, PeerError};
use crate::spiffe_id::{SpiffeId, TrustDomain};
use crate::svid::{X509Svid, certs_to_pem};

/// Backdating of NotBefore, so a verifier whose clock is a little behind ours accepts a fresh
/// certificate.
pub const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);
/// Shortest CA lifetime: it must comfortably outlive the SVIDs it issues.
pub const MIN_CA_LIFETIME: time::Duration = time::Duration::hours(2);
/// Longest CA lifetime (ten years): beyond that, rotation discipline is lost.
pub const MAX_CA_LIFETIME: time::Duration = time::Duration::days(3650);
/// Longest SVID lifetime the CA will sign (node SVIDs may outlive workload ones, which
/// registration entries cap at 24 h).
pub const MAX_SVID_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Format tag of version-1 [`CaKeyMaterial`]: X.509 authorities only. Still imported: the token
/// keys are then generated and [`TrustDomainCa::was_upgraded`] tells the caller to store again.
const MATERIAL_MAGIC_V1: &[u8; 8] = b"DAASCA\x00\x01";
/// Format tag of version-2 [`CaKeyMaterial`]: version 1 followed by the JWT-SVID keys and the
/// identity-document keys.
const MATERIAL_MAGIC: &[u8; 8] = b"DAASCA\x00\x02";
/// Longest JWT-SVID lifetime the CA will sign.
pub const MAX_JWT_SVID_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most audience values in one JWT-SVID.
pub const MAX_JWT_AUDIENCES: usize = 16;
/// Longest audience value, in bytes.
pub const MAX_JWT_AUDIENCE_LEN: usize = 256;

/// An ECDSA P-256 signing key that rcgen can use, without rcgen holding key bytes.
struct CaSigner {
    key: EcdsaKeyPair,
    /// Uncompressed public point, cached because rcgen asks for it on every signature.
    public: Vec<u8>,
}

impl CaSigner {
    fn from_pkcs8(pkcs8: &[u8]) -> Option<Self> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8).ok()?;
        let public = key.public_key().as_ref().to_vec();
        Some(Self { key, public })
    }

    fn generate() -> Result<Self, InternalError> {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| InternalError::Crypto)?;
        let public = key.public_key().as_ref().to_vec();
        Ok(Self { key, public })
    }

    fn pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, InternalError> {
        // `Document` zeroizes itself on drop; the copy is zeroized by `Zeroizing`.
        let doc = self.key.to_pkcs8v1().map_err(|_| InternalError::Crypto)?;
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }
}

impl PublicKeyData for CaSigner {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl SigningKey for CaSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig = self
            .key
            .sign(&SystemRandom::new(), msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        Ok(sig.as_ref().to_vec())
    }
}

/// The public key of a CSR, in the form rcgen needs to write the leaf's SubjectPublicKeyInfo.
struct CsrPublicKey {
    raw: Vec<u8>,
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for CsrPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// One CA key pair and its self-signed certificate.
struct Authority {
    issuer: Issuer<'static, CaSigner>,
    cert: CertificateDer<'static>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Whole seconds: X.509 times have second precision, and stored bounds must equal encoded ones.
fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// A random positive 128-bit serial (RFC 5280 §4.1.2.2: unique, ≤ 20 octets, positive); the
/// fixed high bit keeps the DER encoding at 16 bytes.
fn random_serial() -> Result<SerialNumber, InternalError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| InternalError::Crypto)?;
    b[0] = (b[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&b))
}

fn uri_san(id: &SpiffeId) -> Result<SanType, InternalError> {
    // A valid SpiffeId is ASCII, so this cannot fail; map rather than panic anyway.
    Ia5String::try_from(id.to_string())
        .map(SanType::URI)
        .map_err(|_| InternalError::CertificateGeneration)
}

/// A token-signing key (JWT-SVID or identity document) with the validity window of the X.509
/// authority it was created with.
pub(crate) struct TokenKey {
    pub(crate) key: daas_token::SigningKey,
    pub(crate) kid: String,
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("kid", &self.kid)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    fn generate(
        alg: daas_token::Alg,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Self, InternalError> {
        let key = daas_token::SigningKey::generate(alg).map_err(|_| InternalError::Crypto)?;
        Ok(Self::with_window(key, not_before, not_after))
    }

    fn with_window(
        key: daas_token::SigningKey,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Self {
        let kid = key.public_jwk().thumbprint();
        Self {
            key,
            kid,
            not_before,
            not_after,
        }
    }

    pub(crate) fn valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now < self.not_after
    }

    fn export(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let pkcs8 = self.key.to_pkcs8().map_err(|_| InternalError::Crypto)?;
        push_chunk(out, &pkcs8)?;
        push_chunk(out, &self.not_before.unix_timestamp().to_be_bytes())?;
        push_chunk(out, &self.not_after.unix_timestamp().to_be_bytes())?;
        Ok(())
    }

    fn import(r: &mut Reader<'_>, alg: daas_token::Alg) -> Result<Self, CallerError> {
        let bad = CallerError::KeyMaterial;
        let pkcs8 = r.chunk().ok_or(bad("truncated"))?;
        let key = daas_token::SigningKey::from_pkcs8(alg, pkcs8)
            .map_err(|_| bad("token key is not a pkcs#8 key of its algorithm"))?;
        let mut time = || {
            r.chunk()
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(i64::from_be_bytes)
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
                .ok_or(bad("token key validity is malformed"))
        };
        let not_before = time()?;
        let not_after = time()?;
        if not_before >= not_after {
            return Err(bad("token key validity is empty"));
        }
        Ok(Self::with_window(key, not_before, not_after))
    }
}

/// Reads a `u32` count chunk and checks it is in `1..=64`.
fn read_count(r: &mut Reader<'_>) -> Result<u32, CallerError> {
    let bad = CallerError::KeyMaterial;
    let count = r
        .chunk()
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or(bad("truncated"))?;
    if count == 0 || count > 64 {
        return Err(bad("key count out of range"));
    }
    Ok(count)
}

fn push_count(out: &mut Vec<u8>, n: usize) -> Result<(), InternalError> {
    push_chunk(out, &u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes())
}

/// Removes expired keys except the last (active) one.
fn prune_keys<T>(keys: &mut Vec<T>, now: OffsetDateTime, not_after: impl Fn(&T) -> OffsetDateTime) {
    let last = keys.len().saturating_sub(1);
    let mut i = 0;
    keys.retain(|k| {
        let keep = i == last || now < not_after(k);
        i += 1;
        keep
    });
}

impl Authority {
    fn generate(
        td: &TrustDomain,
        lifetime: time::Duration,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        let signer = CaSigner::generate()?;
        let mut params = CertificateParams::default();
        params.not_before = truncate(now - CLOCK_SKEW);
        params.not_after = truncate(now + lifetime);
        params.serial_number = Some(random_serial()?);
        params.subject_alt_names = vec![uri_san(&td.id())?];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "daas");
        // Distinct subject per authority, so path building never confuses two generations.
        let kid = params.key_identifier(&signer);
        dn.push(
            DnType::CommonName,
            format!("daas ca {}", hex::encode(kid.get(..8).unwrap_or(&kid))),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params
            .self_signed(&signer)
            .map_err(|_| InternalError::CertificateGeneration)?;
        Ok(Self {
            not_before: params.not_before,
            not_after: params.not_after,
            cert: cert.der().clone(),
            issuer: Issuer::new(params, signer),
        })
    }

    /// Rebuilds an authority from stored material, checking that the key matches the certificate
    /// and that the certificate is a CA of `td`.
    fn restore(td: &TrustDomain, pkcs8: &[u8], cert_der: &[u8]) -> Result<Self, CallerError> {
        let bad = CallerError::KeyMaterial;
        let signer =
            CaSigner::from_pkcs8(pkcs8).ok_or(bad("ca private key is not a p-256 pkcs#8 key"))?;
        let (rest, x509) = x509_parser::parse_x509_certificate(cert_der)
            .map_err(|_| bad("ca certificate does not parse"))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes after ca certificate"));
        }
        if x509.public_key().subject_public_key.data.as_ref() != signer.public.as_slice() {
            return Err(bad("ca private key does not match its certificate"));
        }
        if !x509.is_ca() {
            return Err(bad("certificate is not a ca"));
        }
        let td_id = td.id().to_string();
        let names_td = x509
            .subject_alternative_name()
            .ok()
            .flatten()
            .is_some_and(|san| {
                san.value.general_names.iter().any(
                    |n| matches!(n, x509_parser::extensions::GeneralName::URI(u) if *u == td_id),
                )
            });
        if !names_td {
            return Err(bad("ca certificate does not name the trust domain"));
        }
        let not_before = x509.validity().not_before.to_datetime();
        let not_after = x509.validity().not_after.to_datetime();
        let cert = CertificateDer::from(cert_der.to_vec());
        let issuer = Issuer::from_ca_cert_der(&cert, signer)
            .map_err(|_| bad("ca certificate does not parse"))?;
        Ok(Self {
            issuer,
            cert,
            not_before,
            not_after,
        })
    }

    fn valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

/// Serialized CA key material (every authority's PKCS#8 key and certificate), for the server to
/// store sealed under its storage key. Zeroized on drop; `Debug` shows only the length.
pub struct CaKeyMaterial(Zeroizing<Vec<u8>>);

impl CaKeyMaterial {
    /// Wraps bytes read back from storage (taking ownership so no unzeroized copy remains).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }
    /// The bytes to seal.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for CaKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaKeyMaterial([redacted; {} bytes])", self.0.len())
    }
}

/// A bounds-checked reader over [`CaKeyMaterial`].
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u32(&mut self) -> Option<usize> {
        let b: [u8; 4] = self.take(4)?.try_into().ok()?;
        usize::try_from(u32::from_be_bytes(b)).ok()
    }
    fn chunk(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(n)
    }
}

fn push_chunk(out: &mut Vec<u8>, data: &[u8]) -> Result<(), InternalError> {
    let len = u32::try_from(data.len()).map_err(|_| InternalError::CertificateGeneration)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// The CA of one trust domain: one or more authorities, the last being the active one that
/// signs; all non-expired ones form the trust bundle.
#[derive(Debug)]
pub struct TrustDomainCa {
    trust_domain: TrustDomain,
    ca_lifetime: time::Duration,
    /// Oldest first; never empty.
    authorities: Vec<Authority>,
    /// ES256 JWT-SVID keys, oldest first; never empty.
    jwt_keys: Vec<TokenKey>,
    /// Ed25519 identity-document keys, oldest first; never empty.
    document_keys: Vec<TokenKey>,
    /// Imported from version-1 material: the token keys are new and must be stored.
    upgraded: bool,
}

fn check_lifetime(lifetime: time::Duration) -> Result<(), CallerError> {
    if lifetime < MIN_CA_LIFETIME {
        return Err(CallerError::CaLifetime("must be at least 2 hours"));
    }
    if lifetime > MAX_CA_LIFETIME {
        return Err(CallerError::CaLifetime("must be at most 3650 days"));
    }
    Ok(())
}

impl TrustDomainCa {
    /// A new CA for `trust_domain` with one fresh authority valid from `now - CLOCK_SKEW` to
    /// `now + ca_lifetime`.
    pub fn new(
        trust_domain: TrustDomain,
        ca_lifetime: time::Duration,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        check_lifetime(ca_lifetime)?;
        let first = Authority::generate(&trust_domain, ca_lifetime, now)?;
        let (jwt, document) = token_keys_for(&first)?;
        Ok(Self {
            trust_domain,
            ca_lifetime,
            authorities: vec![first],
            jwt_keys: vec![jwt],
            document_keys: vec![document],
            upgraded: false,
        })
    }

    /// Whether this CA was imported from material of an older format and got new keys on the
    /// way (JWT-SVID and document keys): store [`TrustDomainCa::export`] again, or every
    /// replica would generate different ones.
    pub fn was_upgraded(&self) -> bool {
        self.upgraded
    }

    /// The trust domain this CA is authoritative for.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// NotAfter of the active authority: rotate well before it (e.g. at half-life), since no SVID
    /// can outlive it.
    pub fn active_not_after(&self) -> OffsetDateTime {
        self.active().not_after
    }

    /// The active authority's certificate.
    pub fn active_certificate(&self) -> &CertificateDer<'static> {
        &self.active().cert
    }

    /// How many authorities are held (active plus those kept for the overlap window).
    pub fn authority_count(&self) -> usize {
        self.authorities.len()
    }

    #[expect(clippy::expect_used, reason = "invariant documented below")]
    fn active(&self) -> &Authority {
        // INVARIANT: `authorities` is never empty: constructors push one and `prune` keeps the last.
        self.authorities
            .last()
            .expect("a ca always has an active authority")
    }

    /// The JWT-SVID keys, oldest first (the last one signs); never empty.
    pub(crate) fn jwt_keys(&self) -> &[TokenKey] {
        &self.jwt_keys
    }

    /// The identity-document keys, oldest first (the last one signs); never empty.
    pub(crate) fn document_keys(&self) -> &[TokenKey] {
        &self.document_keys
    }

    /// Creates a new active authority; previous ones stay in the bundle until they expire, so
    /// SVIDs they issued keep verifying.
    pub fn rotate(&mut self, now: OffsetDateTime) -> Result<(), Error> {
        let next = Authority::generate(&self.trust_domain, self.ca_lifetime, now)?;
        let (jwt, document) = token_keys_for(&next)?;
        self.authorities.push(next);
        self.jwt_keys.push(jwt);
        self.document_keys.push(document);
        tracing::info!(trust_domain = %self.trust_domain, "rotated trust domain ca");
        Ok(())
    }

    /// Removes expired authorities except the active one (which is kept so the CA stays
    /// well-formed; issuing with it fails until the next rotation). Returns how many were removed.
    pub fn prune(&mut self, now: OffsetDateTime) -> usize {
        let before = self.authorities.len();
        prune_keys(&mut self.authorities, now, |a| a.not_after);
        prune_keys(&mut self.jwt_keys, now, |k| k.not_after);
        prune_keys(&mut self.document_keys, now, |k| k.not_after);
        before - self.authorities.len()
    }

    /// The trust bundle: certificates of every authority not expired at `now`.
    pub fn bundle(&self, now: OffsetDateTime) -> Vec<CertificateDer<'static>> {
        self.authorities
            .iter()
            .filter(|a| now < a.not_after)
            .map(|a| a.cert.clone())
            .collect()
    }

    /// The trust bundle as concatenated PEM `CERTIFICATE` blocks.
    pub fn bundle_pem(&self, now: OffsetDateTime) -> String {
        certs_to_pem(&self.bundle(now))
    }

    /// Serializes every authority (key and certificate) for sealed storage.
    pub fn export(&self) -> Result<CaKeyMaterial, Error> {
        // Reserve generously up front: a reallocation would free a copy of the keys unwiped.
        let mut out = Zeroizing::new(Vec::with_capacity(
            256 + self
                .authorities
                .iter()
                .map(|a| a.cert.len() + 512)
                .sum::<usize>()
                + 256 * (self.jwt_keys.len() + self.document_keys.len()),
        ));
        out.extend_from_slice(MATERIAL_MAGIC);
        push_chunk(&mut out, self.trust_domain.as_str().as_bytes())?;
        push_chunk(
            &mut out,
            &u32::try_from(self.authorities.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        )?;
        for a in &self.authorities {
            let pkcs8 = a.issuer.key().pkcs8()?;
            push_chunk(&mut out, &pkcs8)?;
            push_chunk(&mut out, &a.cert)?;
        }
        for keys in [&self.jwt_keys, &self.document_keys] {
            push_count(&mut out, keys.len())?;
            for k in keys {
                k.export(&mut out)?;
            }
        }
        Ok(CaKeyMaterial(out))
    }

    /// Restores a CA from [`TrustDomainCa::export`] output, checking every key against its
    /// certificate and every certificate against the trust domain.
    pub fn import(material: &CaKeyMaterial, ca_lifetime: time::Duration) -> Result<Self, Error> {
        check_lifetime(ca_lifetime)?;
        let bad = |m| Error::Caller(CallerError::KeyMaterial(m));
        let mut r = Reader(material.as_bytes());
        let magic = r.take(MATERIAL_MAGIC.len());
        let v1 = magic == Some(MATERIAL_MAGIC_V1.as_slice());
        if !v1 && magic != Some(MATERIAL_MAGIC.as_slice()) {
            return Err(bad("unknown format"));
        }
        let td = r
            .chunk()
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or(bad("truncated"))?;
        let trust_domain = TrustDomain::new(td).map_err(|_| bad("invalid trust domain"))?;
        let count = read_count(&mut r)?;
        let mut authorities = Vec::new();
        for _ in 0..count {
            let key = r.chunk().ok_or(bad("truncated"))?;
            let cert = r.chunk().ok_or(bad("truncated"))?;
            authorities.push(Authority::restore(&trust_domain, key, cert)?);
        }
        let (jwt_keys, document_keys) = if v1 {
            // Version 1 had no token keys: create them for the active authority's window.
            let active = authorities.last().ok_or(bad("no authority"))?;
            let (jwt, document) = token_keys_for(active)?;
            (vec![jwt], vec![document])
        } else {
            let mut sets = [Vec::new(), Vec::new()];
            for (keys, alg) in sets
                .iter_mut()
                .zip([daas_token::Alg::Es256, daas_token::Alg::EdDsa])
            {
                for _ in 0..read_count(&mut r)? {
                    let key = TokenKey::import(&mut r, alg)?;
                    if keys.iter().any(|k: &TokenKey| k.kid == key.kid) {
                        return Err(bad("duplicate token key"));
                    }
                    keys.push(key);
                }
            }
            let [jwt, document] = sets;
            (jwt, document)
        };
        if !r.0.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            trust_domain,
            ca_lifetime,
            authorities,
            jwt_keys,
            document_keys,
            upgraded: v1,
        })
    }

    /// Issues an X.509-SVID for `spiffe_id` to the holder of the key in the PKCS#10 `csr_der`.
    ///
    /// The CSR's signature is verified (proof of possession) and its key must be ECDSA P-256 or
    /// Ed25519; everything else in it is ignored. The leaf has exactly one URI SAN (the SPIFFE ID),
    /// `CA:false`, keyUsage digitalSignature, extendedKeyUsage serverAuth+clientAuth, a random
    /// serial, NotBefore backdated by [`CLOCK_SKEW`] and NotAfter = min(now + ttl, CA NotAfter).
    ///
    /// The caller must first check that the requesting node may obtain `spiffe_id`
    /// ([`crate::entry::authorize_svid_request`]); the CA only checks the trust domain.
    pub fn issue_x509_svid(
        &self,
        csr_der: &[u8],
        spiffe_id: &SpiffeId,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<X509Svid, Error> {
        if !spiffe_id.is_member_of(&self.trust_domain) {
            return Err(CallerError::NotInTrustDomain {
                trust_domain: self.trust_domain.to_string(),
            }
            .into());
        }
        if spiffe_id.is_trust_domain_id() {
            return Err(CallerError::NoPath.into());
        }
        if ttl < Duration::from_secs(1) {
            return Err(CallerError::Ttl("must be at least one second").into());
        }
        if ttl > MAX_SVID_TTL {
            return Err(CallerError::Ttl("must be at most 7 days").into());
        }
        let public_key = parse_csr(csr_der)?;
        let ca = self.active();
        if !ca.valid_at(now) {
            return Err(CallerError::NoValidCa.into());
        }
        let ttl = time::Duration::try_from(ttl).map_err(|_| CallerError::Ttl("out of range"))?;
        let not_after = truncate((now + ttl).min(ca.not_after));
        let not_before = truncate((now - CLOCK_SKEW).max(ca.not_before));
        if not_after <= now {
            return Err(CallerError::NoValidCa.into());
        }
        let mut params = CertificateParams::default();
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(random_serial()?);
        params.subject_alt_names = vec![uri_san(spiffe_id)?];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "daas");
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&public_key, &ca.issuer)
            .map_err(|_| InternalError::CertificateGeneration)?;
        Ok(X509Svid::new(
            vec![cert.der().clone()],
            spiffe_id.clone(),
            not_after,
        ))
    }
}

/// Fresh JWT-SVID and document keys with the validity window of `authority`.
fn token_keys_for(authority: &Authority) -> Result<(TokenKey, TokenKey), InternalError> {
    Ok((
        TokenKey::generate(
            daas_token::Alg::Es256,
            authority.not_before,
            authority.not_after,
        )?,
        TokenKey::generate(
            daas_token::Alg::EdDsa,
            authority.not_before,
            authority.not_after,
        )?,
    ))
}

/// Parses a DER PKCS#10 CSR, verifies its self-signature and returns its public key if it is
/// ECDSA P-256 or Ed25519.
fn parse_csr(csr_der: &[u8]) -> Result<CsrPublicKey, PeerError> {
    let (rest, csr) =
        X509CertificationRequest::from_der(csr_der).map_err(|_| PeerError::MalformedCsr)?;
    if !rest.is_empty() {
        return Err(PeerError::MalformedCsr);
    }
    let spki = &csr.certification_request_info.subject_pki;
    let alg: &'static SignatureAlgorithm = if spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
    {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        if curve != Some(OID_EC_P256) {
            return Err(PeerError::UnsupportedKey);
        }
        &rcgen::PKCS_ECDSA_P256_SHA256
    } else if spki.algorithm.algorithm == OID_SIG_ED25519 {
        if spki.algorithm.parameters.is_some() || spki.subject_public_key.data.len() != 32 {
            return Err(PeerError::UnsupportedKey);
        }
        &rcgen::PKCS_ED25519
    } else {
        return Err(PeerError::UnsupportedKey);
    };
    csr.verify_signature()
        .map_err(|_| PeerError::CsrSignature)?;
    Ok(CsrPublicKey {
        raw: spki.subject_public_key.data.to_vec(),
        alg,
    })
}
