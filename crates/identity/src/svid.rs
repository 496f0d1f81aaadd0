//! X.509-SVIDs and their offline verification against a trust bundle.
//!
//! Verification is two steps, in this order: rustls-webpki builds and checks the path (signatures,
//! validity at `now`, CA constraints, EKU), then the leaf is checked against the SPIFFE
//! X.509-SVID spec (exactly one URI SAN that is a SPIFFE ID of the bundle's trust domain, not a
//! CA, may sign but not issue). Nothing of a certificate is trusted before the path verifies.

use base64::Engine as _;
use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use crate::error::{CallerError, Error, PeerError};
use crate::spiffe_id::{SpiffeId, TrustDomain};

/// Longest chain accepted (leaf plus intermediates); ours is a single leaf.
pub const MAX_CHAIN_LEN: usize = 8;

/// An X.509-SVID as issued: the chain (leaf first) and what it asserts. The private key stays on
/// the node that generated the CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Svid {
    chain: Vec<CertificateDer<'static>>,
    spiffe_id: SpiffeId,
    not_after: OffsetDateTime,
}

impl X509Svid {
    pub(crate) fn new(
        chain: Vec<CertificateDer<'static>>,
        spiffe_id: SpiffeId,
        not_after: OffsetDateTime,
    ) -> Self {
        Self {
            chain,
            spiffe_id,
            not_after,
        }
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The chain, consumed.
    pub fn into_chain(self) -> Vec<CertificateDer<'static>> {
        self.chain
    }

    /// The SPIFFE ID in the leaf's URI SAN.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The leaf's NotAfter (rotate at half-life, before this).
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The chain as PEM `CERTIFICATE` blocks, for apps that read files.
    pub fn chain_pem(&self) -> String {
        certs_to_pem(&self.chain)
    }
}

/// The leaf's SubjectPublicKeyInfo (DER) and NotAfter, for a node checking that an SVID it
/// received certifies the key it generated and when it really expires. Call after
/// [`verify_x509_svid`]: this parses, it does not verify.
pub fn leaf_key_and_expiry(
    leaf: &CertificateDer<'_>,
) -> Result<(Vec<u8>, OffsetDateTime), PeerError> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|_| PeerError::MalformedCertificate)?;
    if !rest.is_empty() {
        return Err(PeerError::MalformedCertificate);
    }
    let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
        .map_err(|_| PeerError::MalformedCertificate)?;
    Ok((cert.public_key().raw.to_vec(), not_after))
}

/// Split concatenated DER certificates (the Workload API's encoding of chains and bundles).
/// Each must parse as an X.509 certificate; at most `max` of them.
pub fn split_der_certificates(
    mut bytes: &[u8],
    max: usize,
) -> Result<Vec<CertificateDer<'static>>, PeerError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if out.len() == max {
            return Err(PeerError::NotSvid("too many certificates"));
        }
        let (rest, _) = x509_parser::parse_x509_certificate(bytes)
            .map_err(|_| PeerError::MalformedCertificate)?;
        let used = bytes.len() - rest.len();
        out.push(CertificateDer::from(bytes[..used].to_vec()));
        bytes = rest;
    }
    Ok(out)
}

/// Concatenated PEM `CERTIFICATE` blocks (RFC 7468, 64-column base64).
pub fn certs_to_pem(certs: &[CertificateDer<'_>]) -> String {
    let mut out = String::new();
    for cert in certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// The URI SANs of a certificate; `None` if the SAN extension is malformed or duplicated.
fn uri_sans<'a>(x509: &'a X509Certificate<'_>) -> Option<Vec<&'a str>> {
    let san = x509.subject_alternative_name().ok()?;
    Some(
        san.map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some(*u),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default(),
    )
}

/// The trust domain the bundle is for, read from its CA certificates' `spiffe://td` URI SAN; all
/// must agree.
fn bundle_trust_domain(bundle: &[CertificateDer<'_>]) -> Result<TrustDomain, CallerError> {
    let mut td: Option<TrustDomain> = None;
    for cert in bundle {
        let (_, x509) = x509_parser::parse_x509_certificate(cert)
            .map_err(|_| CallerError::Bundle("a certificate does not parse"))?;
        let this = uri_sans(&x509)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|u| u.parse::<SpiffeId>().ok())
            .find(SpiffeId::is_trust_domain_id)
            .map(|id| id.trust_domain().clone())
            .ok_or(CallerError::Bundle(
                "a certificate does not name its trust domain",
            ))?;
        match &td {
            None => td = Some(this),
            Some(t) if *t == this => {}
            Some(_) => {
                return Err(CallerError::Bundle(
                    "certificates of different trust domains",
                ));
            }
        }
    }
    td.ok_or(CallerError::Bundle("the bundle is empty"))
}

fn chain_error(e: &webpki::Error) -> PeerError {
    use webpki::Error as W;
    PeerError::Chain(match e {
        W::CertExpired { .. } => "certificate expired",
        W::CertNotValidYet { .. } => "certificate not yet valid",
        W::UnknownIssuer => "not issued by a trusted authority",
        W::InvalidSignatureForPublicKey | W::SignatureAlgorithmMismatch => {
            "signature does not verify"
        }
        W::CaUsedAsEndEntity => "a ca certificate was presented as the leaf",
        W::RequiredEkuNotFoundContext(_) => "leaf allows neither clientauth nor serverauth",
        W::BadDer | W::BadDerTime | W::TrailingData(_) => "certificate is malformed",
        W::UnsupportedSignatureAlgorithmContext(_)
        | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "unsupported signature algorithm"
        }
        _ => "invalid certificate chain",
    })
}

/// Verifies an X.509-SVID chain (leaf first) against a trust bundle at `now` and returns the
/// SPIFFE ID it proves. The trust domain is the bundle's (from the CA certificates' SANs), so an
/// SVID naming another trust domain is rejected even if some bundle CA signed it.
pub fn verify_x509_svid(
    chain: &[CertificateDer<'_>],
    bundle: &[CertificateDer<'_>],
    now: OffsetDateTime,
) -> Result<SpiffeId, Error> {
    let td = bundle_trust_domain(bundle)?;
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(PeerError::NotSvid("the chain is empty").into());
    };
    if chain.len() > MAX_CHAIN_LEN {
        return Err(PeerError::NotSvid("the chain is too long").into());
    }
    let anchors = bundle
        .iter()
        .map(webpki::anchor_from_trusted_cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| CallerError::Bundle("a certificate is not a valid trust anchor"))?;
    let secs =
        u64::try_from(now.unix_timestamp()).map_err(|_| CallerError::Bundle("time before 1970"))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    let ee = EndEntityCert::try_from(leaf).map_err(|_| PeerError::MalformedCertificate)?;
    let verify = |usage| {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            time,
            usage,
            None,
            None,
        )
        .map(|_| ())
    };
    match verify(KeyUsage::client_auth()) {
        Ok(()) => {}
        Err(webpki::Error::RequiredEkuNotFoundContext(_)) => {
            verify(KeyUsage::server_auth()).map_err(|e| chain_error(&e))?;
        }
        Err(e) => return Err(chain_error(&e).into()),
    }

    // The path verifies; now the SPIFFE leaf rules.
    let (rest, x509) =
        x509_parser::parse_x509_certificate(leaf).map_err(|_| PeerError::MalformedCertificate)?;
    if !rest.is_empty() {
        return Err(PeerError::MalformedCertificate.into());
    }
    if x509.is_ca() {
        return Err(PeerError::NotSvid("the leaf is a ca certificate").into());
    }
    match x509.key_usage() {
        Ok(Some(ku)) => {
            if ku.value.key_cert_sign() || ku.value.crl_sign() {
                return Err(PeerError::NotSvid("the leaf may sign certificates").into());
            }
            if !ku.value.digital_signature() {
                return Err(
                    PeerError::NotSvid("the leaf lacks the digitalsignature key usage").into(),
                );
            }
        }
        Ok(None) => return Err(PeerError::NotSvid("the leaf has no key usage extension").into()),
        Err(_) => return Err(PeerError::MalformedCertificate.into()),
    }
    let uris = uri_sans(&x509).ok_or(PeerError::MalformedCertificate)?;
    let [uri] = uris.as_slice() else {
        return Err(PeerError::NotSvid("the leaf must have exactly one uri san").into());
    };
    let id: SpiffeId = uri.parse().map_err(PeerError::SpiffeId)?;
    if id.is_trust_domain_id() {
        return Err(PeerError::NotSvid("the leaf's spiffe id has no path").into());
    }
    if !id.is_member_of(&td) {
        return Err(PeerError::ForeignTrustDomain {
            expected: td.to_string(),
            found: id.trust_domain().to_string(),
        }
        .into());
    }
    Ok(id)
}
