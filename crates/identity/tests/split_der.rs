#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]
//! Splitting concatenated DER certificates (the Workload API's chain and bundle encoding).

use std::time::Duration;

use daas_identity::svid::split_der_certificates;
use daas_identity::{PeerError, TrustDomain, TrustDomainCa};
use proptest::prelude::*;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

fn certs() -> Vec<CertificateDer<'static>> {
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let ca = TrustDomainCa::new(
        TrustDomain::new("example.org").unwrap(),
        time::Duration::days(30),
        now,
    )
    .unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    let svid = ca
        .issue_x509_svid(
            csr.der(),
            &"spiffe://example.org/w".parse().unwrap(),
            Duration::from_secs(3600),
            now,
        )
        .unwrap();
    let mut all = svid.into_chain();
    all.extend(ca.bundle(now));
    all
}

#[test]
fn concatenated_certificates_split_back() {
    let certs = certs();
    let joined: Vec<u8> = certs.iter().flat_map(|c| c.iter().copied()).collect();
    assert_eq!(split_der_certificates(&joined, 8).unwrap(), certs);
    assert!(split_der_certificates(&[], 8).unwrap().is_empty());
    assert!(matches!(
        split_der_certificates(&joined, 1),
        Err(PeerError::NotSvid(_))
    ));
    assert!(matches!(
        split_der_certificates(&joined[..joined.len() - 1], 8),
        Err(PeerError::MalformedCertificate)
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes never panic, and whatever splits re-joins to the input.
    #[test]
    fn arbitrary_bytes_split_or_fail(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(parts) = split_der_certificates(&bytes, 8) {
            let joined: Vec<u8> = parts.iter().flat_map(|c| c.iter().copied()).collect();
            prop_assert_eq!(joined, bytes);
        }
    }

    /// Flipping one byte of a valid concatenation either still splits into the same number of
    /// pieces that re-join to the input, or fails; it never panics.
    #[test]
    fn corrupted_concatenations_fail_cleanly(index in any::<prop::sample::Index>(), xor in 1u8..) {
        let certs = certs();
        let mut joined: Vec<u8> = certs.iter().flat_map(|c| c.iter().copied()).collect();
        let i = index.index(joined.len());
        joined[i] ^= xor;
        if let Ok(parts) = split_der_certificates(&joined, 8) {
            let rejoined: Vec<u8> = parts.iter().flat_map(|c| c.iter().copied()).collect();
            prop_assert_eq!(rejoined, joined);
        }
    }
}
