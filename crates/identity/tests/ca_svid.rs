#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]
//! The trust-domain CA and X.509-SVID verification, end to end: CSR → SVID → offline verify.

use std::time::Duration;

use daas_identity::error::{CallerError, Error, PeerError};
use daas_identity::svid::certs_to_pem;
use daas_identity::{CaKeyMaterial, SpiffeId, TrustDomain, TrustDomainCa, verify_x509_svid};
use rcgen::{CertificateParams, IsCa, KeyPair, SanType, SignatureAlgorithm};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

const HOUR: Duration = Duration::from_secs(3600);

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).unwrap()
}

fn id(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

fn ca(name: &str, now: OffsetDateTime) -> TrustDomainCa {
    TrustDomainCa::new(td(name), time::Duration::days(30), now).unwrap()
}

fn csr_with(alg: &'static SignatureAlgorithm, params: &CertificateParams) -> Vec<u8> {
    let key = KeyPair::generate_for(alg).unwrap();
    params.serialize_request(&key).unwrap().der().to_vec()
}

fn csr(alg: &'static SignatureAlgorithm) -> Vec<u8> {
    csr_with(alg, &CertificateParams::default())
}

fn p256_csr() -> Vec<u8> {
    csr(&rcgen::PKCS_ECDSA_P256_SHA256)
}

#[test]
fn valid_svid_verifies_p256_and_ed25519() {
    let now = t0();
    let ca = ca("example.org", now);
    let app = id("spiffe://example.org/app/web");
    for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ED25519] {
        let svid = ca.issue_x509_svid(&csr(alg), &app, HOUR, now).unwrap();
        assert_eq!(svid.spiffe_id(), &app);
        assert_eq!(svid.not_after(), now + time::Duration::hours(1));
        assert_eq!(svid.chain().len(), 1);
        let got = verify_x509_svid(svid.chain(), &ca.bundle(now), now).unwrap();
        assert_eq!(got, app);
        // Still valid just before expiry, not at it.
        let late = now + time::Duration::minutes(59);
        assert_eq!(
            verify_x509_svid(svid.chain(), &ca.bundle(late), late).unwrap(),
            app
        );
    }
}

#[test]
fn leaf_follows_the_x509_svid_spec_whatever_the_csr_asks() {
    let now = t0();
    let ca = ca("example.org", now);
    // A greedy CSR: CA:true, a DNS SAN and a foreign URI SAN, all to be ignored.
    let mut params = CertificateParams::new(vec!["evil.example.com".to_owned()]).unwrap();
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.subject_alt_names.push(SanType::URI(
        "spiffe://example.org/admin".try_into().unwrap(),
    ));
    let csr = csr_with(&rcgen::PKCS_ECDSA_P256_SHA256, &params);
    let app = id("spiffe://example.org/app");
    let svid = ca.issue_x509_svid(&csr, &app, HOUR, now).unwrap();
    let (_, x) = x509_parser::parse_x509_certificate(&svid.chain()[0]).unwrap();
    assert!(!x.is_ca());
    let bc = x.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca);
    let names = &x
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert_eq!(names.len(), 1);
    assert!(matches!(
        names[0],
        GeneralName::URI("spiffe://example.org/app")
    ));
    let ku = x.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign());
    let eku = x.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert_eq!(
        x.validity().not_before.to_datetime(),
        now - time::Duration::minutes(5)
    );
    // Random serials differ.
    let other = ca.issue_x509_svid(&p256_csr(), &app, HOUR, now).unwrap();
    let (_, y) = x509_parser::parse_x509_certificate(&other.chain()[0]).unwrap();
    assert_ne!(x.raw_serial(), y.raw_serial());
    assert_eq!(
        verify_x509_svid(svid.chain(), &ca.bundle(now), now).unwrap(),
        app
    );
}

#[test]
fn ca_certificate_shape() {
    let now = t0();
    let ca = ca("example.org", now);
    let (_, x) = x509_parser::parse_x509_certificate(ca.active_certificate()).unwrap();
    let bc = x.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = x.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    let names = &x
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert!(matches!(
        names[..],
        [GeneralName::URI("spiffe://example.org")]
    ));
    assert_eq!(
        x.validity().not_before.to_datetime(),
        now - time::Duration::minutes(5)
    );
    assert_eq!(
        x.validity().not_after.to_datetime(),
        now + time::Duration::days(30)
    );
    assert_eq!(ca.active_not_after(), now + time::Duration::days(30));
    let pem = ca.bundle_pem(now);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 1);
}

#[test]
fn svid_not_after_is_capped_by_the_ca() {
    let now = t0();
    let ca = TrustDomainCa::new(td("example.org"), time::Duration::hours(2), now).unwrap();
    let later = now + time::Duration::minutes(90);
    let svid = ca
        .issue_x509_svid(&p256_csr(), &id("spiffe://example.org/a"), HOUR, later)
        .unwrap();
    assert_eq!(svid.not_after(), now + time::Duration::hours(2));
    // Once the CA has expired nothing is issued.
    let after = now + time::Duration::hours(3);
    assert_eq!(
        ca.issue_x509_svid(&p256_csr(), &id("spiffe://example.org/a"), HOUR, after),
        Err(Error::Caller(CallerError::NoValidCa))
    );
}

#[test]
fn svid_from_another_trust_domain_fails() {
    let now = t0();
    let ours = ca("example.org", now);
    let theirs = ca("other.org", now);
    let svid = theirs
        .issue_x509_svid(&p256_csr(), &id("spiffe://other.org/app"), HOUR, now)
        .unwrap();
    assert_eq!(
        verify_x509_svid(svid.chain(), &ours.bundle(now), now),
        Err(Error::Peer(PeerError::Chain(
            "not issued by a trusted authority"
        )))
    );
    // A rogue CA claiming our trust domain is just as unknown.
    let rogue = ca("example.org", now);
    let svid = rogue
        .issue_x509_svid(&p256_csr(), &id("spiffe://example.org/app"), HOUR, now)
        .unwrap();
    assert!(matches!(
        verify_x509_svid(svid.chain(), &ours.bundle(now), now),
        Err(Error::Peer(PeerError::Chain(_)))
    ));
    // A bundle mixing trust domains is a configuration error, not a pass.
    let mut mixed = ours.bundle(now);
    mixed.extend(theirs.bundle(now));
    assert_eq!(
        verify_x509_svid(svid.chain(), &mixed, now),
        Err(Error::Caller(CallerError::Bundle(
            "certificates of different trust domains"
        )))
    );
    assert!(matches!(
        verify_x509_svid(svid.chain(), &[], now),
        Err(Error::Caller(CallerError::Bundle(_)))
    ));
}

#[test]
fn expired_and_not_yet_valid_fail() {
    let now = t0();
    let ca = ca("example.org", now);
    let svid = ca
        .issue_x509_svid(&p256_csr(), &id("spiffe://example.org/app"), HOUR, now)
        .unwrap();
    let later = now + time::Duration::hours(2);
    assert_eq!(
        verify_x509_svid(svid.chain(), &ca.bundle(later), later),
        Err(Error::Peer(PeerError::Chain("certificate expired")))
    );
    let earlier = now - time::Duration::hours(1);
    assert!(matches!(
        verify_x509_svid(svid.chain(), &ca.bundle(now), earlier),
        Err(Error::Peer(PeerError::Chain(_)))
    ));
}

#[test]
fn ca_certificate_as_leaf_fails() {
    let now = t0();
    let ca = ca("example.org", now);
    let bundle = ca.bundle(now);
    assert_eq!(
        verify_x509_svid(&bundle, &bundle, now),
        Err(Error::Peer(PeerError::Chain(
            "a ca certificate was presented as the leaf"
        )))
    );
    assert_eq!(
        verify_x509_svid(&[], &bundle, now),
        Err(Error::Peer(PeerError::NotSvid("the chain is empty")))
    );
}

#[test]
fn tampered_certificate_fails() {
    let now = t0();
    let ca = ca("example.org", now);
    let svid = ca
        .issue_x509_svid(&p256_csr(), &id("spiffe://example.org/app"), HOUR, now)
        .unwrap();
    let der = svid.chain()[0].to_vec();
    let pos = der
        .windows(b"example.org/app".len())
        .position(|w| w == b"example.org/app")
        .unwrap();
    let mut forged = der.clone();
    forged[pos + b"example.org/".len()] = b'b'; // spiffe://example.org/bpp
    let forged = CertificateDer::from(forged);
    assert_eq!(
        verify_x509_svid(&[forged], &ca.bundle(now), now),
        Err(Error::Peer(PeerError::Chain("signature does not verify")))
    );
    // Flipping a bit of the signature.
    let mut flipped = der;
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(verify_x509_svid(&[CertificateDer::from(flipped)], &ca.bundle(now), now).is_err());
    // Garbage.
    assert!(
        verify_x509_svid(
            &[CertificateDer::from(vec![0x30, 0x00])],
            &ca.bundle(now),
            now
        )
        .is_err()
    );
}

#[test]
fn rotation_keeps_previous_ca_until_pruned() {
    let now = t0();
    let mut ca = ca("example.org", now);
    let app = id("spiffe://example.org/app");
    let old_svid = ca.issue_x509_svid(&p256_csr(), &app, HOUR, now).unwrap();

    let rot = now + time::Duration::days(15);
    ca.rotate(rot).unwrap();
    assert_eq!(ca.authority_count(), 2);
    assert_eq!(ca.bundle(rot).len(), 2);
    assert_eq!(ca.prune(rot), 0);
    let new_svid = ca.issue_x509_svid(&p256_csr(), &app, HOUR, rot).unwrap();
    // New SVIDs come from the new authority: the old one alone does not verify them.
    let old_only = vec![ca.bundle(rot)[0].clone()];
    assert!(verify_x509_svid(new_svid.chain(), &old_only, rot).is_err());
    assert_eq!(
        verify_x509_svid(new_svid.chain(), &ca.bundle(rot), rot).unwrap(),
        app
    );
    // An SVID of the previous authority still verifies during the overlap.
    let old_time = now + time::Duration::minutes(30);
    assert_eq!(
        verify_x509_svid(old_svid.chain(), &ca.bundle(rot), old_time).unwrap(),
        app
    );
    // Near the end of the old authority's life, a fresh SVID from the new one.
    let svid_late = ca
        .issue_x509_svid(&p256_csr(), &app, HOUR, now + time::Duration::days(29))
        .unwrap();

    // Once the old authority has expired it leaves the bundle and prune removes it.
    let past = now + time::Duration::days(31);
    assert_eq!(ca.bundle(past).len(), 1);
    assert_eq!(ca.prune(past), 1);
    assert_eq!(ca.authority_count(), 1);
    assert!(matches!(
        verify_x509_svid(old_svid.chain(), &ca.bundle(past), old_time),
        Err(Error::Peer(PeerError::Chain(
            "not issued by a trusted authority"
        )))
    ));
    let late_time = now + time::Duration::days(29) + time::Duration::minutes(1);
    assert_eq!(
        verify_x509_svid(svid_late.chain(), &ca.bundle(past), late_time).unwrap(),
        app
    );
    // Pruning never removes the active authority.
    let far = now + time::Duration::days(400);
    assert_eq!(ca.prune(far), 0);
    assert_eq!(ca.authority_count(), 1);
}

#[test]
fn csr_with_bad_signature_is_rejected() {
    let now = t0();
    let ca = ca("example.org", now);
    let mut der = p256_csr();
    let last = der.len() - 1;
    der[last] ^= 1;
    let err = ca
        .issue_x509_svid(&der, &id("spiffe://example.org/app"), HOUR, now)
        .unwrap_err();
    assert!(
        err == Error::Peer(PeerError::CsrSignature) || err == Error::Peer(PeerError::MalformedCsr),
        "{err:?}"
    );
    // Signature over one key, public key swapped for another: no proof of possession.
    let a = p256_csr();
    let b = p256_csr();
    let (_, ca_req) = X509CertificationRequest::from_der(&a).unwrap();
    let (_, cb_req) = X509CertificationRequest::from_der(&b).unwrap();
    let pk_a = ca_req
        .certification_request_info
        .subject_pki
        .subject_public_key
        .data
        .to_vec();
    let pk_b = cb_req
        .certification_request_info
        .subject_pki
        .subject_public_key
        .data
        .to_vec();
    let pos = a
        .windows(pk_a.len())
        .position(|w| w == pk_a.as_slice())
        .unwrap();
    let mut swapped = a.clone();
    swapped[pos..pos + pk_a.len()].copy_from_slice(&pk_b);
    assert_eq!(
        ca.issue_x509_svid(&swapped, &id("spiffe://example.org/app"), HOUR, now),
        Err(Error::Peer(PeerError::CsrSignature))
    );
    assert_eq!(
        ca.issue_x509_svid(b"not a csr", &id("spiffe://example.org/app"), HOUR, now),
        Err(Error::Peer(PeerError::MalformedCsr))
    );
}

#[test]
fn unsupported_csr_keys_are_rejected() {
    let now = t0();
    let ca = ca("example.org", now);
    assert_eq!(
        ca.issue_x509_svid(
            &csr(&rcgen::PKCS_ECDSA_P384_SHA384),
            &id("spiffe://example.org/app"),
            HOUR,
            now
        ),
        Err(Error::Peer(PeerError::UnsupportedKey))
    );
}

#[test]
fn issuance_argument_checks() {
    let now = t0();
    let ca = ca("example.org", now);
    let csr = p256_csr();
    assert!(matches!(
        ca.issue_x509_svid(&csr, &id("spiffe://other.org/app"), HOUR, now),
        Err(Error::Caller(CallerError::NotInTrustDomain { .. }))
    ));
    assert_eq!(
        ca.issue_x509_svid(&csr, &id("spiffe://example.org"), HOUR, now),
        Err(Error::Caller(CallerError::NoPath))
    );
    assert!(matches!(
        ca.issue_x509_svid(&csr, &id("spiffe://example.org/a"), Duration::ZERO, now),
        Err(Error::Caller(CallerError::Ttl(_)))
    ));
    assert!(matches!(
        ca.issue_x509_svid(
            &csr,
            &id("spiffe://example.org/a"),
            Duration::from_secs(8 * 86_400),
            now
        ),
        Err(Error::Caller(CallerError::Ttl(_)))
    ));
    assert!(matches!(
        TrustDomainCa::new(td("example.org"), time::Duration::minutes(10), now),
        Err(Error::Caller(CallerError::CaLifetime(_)))
    ));
}

#[test]
fn key_material_roundtrip_and_redaction() {
    let now = t0();
    let mut ca = ca("example.org", now);
    ca.rotate(now + time::Duration::days(1)).unwrap();
    let material = ca.export().unwrap();
    let debug = format!("{material:?} {ca:?}");
    assert!(debug.contains("redacted"), "{debug}");
    let hex_prefix = hex::encode(&material.as_bytes()[40..56]);
    assert!(!debug.contains(&hex_prefix));
    assert!(!debug.to_lowercase().contains(&hex_prefix));

    let restored = TrustDomainCa::import(
        &CaKeyMaterial::from_bytes(material.as_bytes().to_vec()),
        time::Duration::days(30),
    )
    .unwrap();
    assert_eq!(restored.trust_domain(), ca.trust_domain());
    assert_eq!(restored.authority_count(), 2);
    let at = now + time::Duration::days(2);
    assert_eq!(restored.bundle(at), ca.bundle(at));
    assert_eq!(restored.active_not_after(), ca.active_not_after());
    // The restored CA signs SVIDs the original bundle trusts.
    let app = id("spiffe://example.org/app");
    let svid = restored
        .issue_x509_svid(&p256_csr(), &app, HOUR, at)
        .unwrap();
    assert_eq!(
        verify_x509_svid(svid.chain(), &ca.bundle(at), at).unwrap(),
        app
    );
    // And can rotate.
    let mut restored = restored;
    restored.rotate(at).unwrap();
    assert_eq!(restored.authority_count(), 3);
}

#[test]
fn corrupted_key_material_is_rejected() {
    let now = t0();
    let ca = ca("example.org", now);
    let bytes = ca.export().unwrap().as_bytes().to_vec();
    let life = time::Duration::days(30);
    let import = |b: Vec<u8>| TrustDomainCa::import(&CaKeyMaterial::from_bytes(b), life);
    assert!(import(bytes.clone()).is_ok());
    assert!(matches!(
        import(Vec::new()),
        Err(Error::Caller(CallerError::KeyMaterial(_)))
    ));
    assert!(matches!(
        import(bytes[..bytes.len() - 1].to_vec()),
        Err(Error::Caller(CallerError::KeyMaterial(_)))
    ));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        import(trailing),
        Err(Error::Caller(CallerError::KeyMaterial(_)))
    ));
    // Every single-byte corruption is either rejected or (in unchecked DER slack such as a
    // signature byte) still yields a CA whose key matches its certificate; it never panics.
    for i in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[i] ^= 0x55;
        let _ = import(b);
    }
    // Key of one CA with the certificate of another: mismatch detected.
    let other = self::ca("example.org", now);
    let other_cert = other.active_certificate();
    let cert: &[u8] = ca.active_certificate();
    let at = bytes.windows(cert.len()).position(|w| w == cert).unwrap();
    let mut spliced = bytes[..at - 4].to_vec();
    spliced.extend_from_slice(&u32::try_from(other_cert.len()).unwrap().to_be_bytes());
    spliced.extend_from_slice(other_cert);
    spliced.extend_from_slice(&bytes[at + cert.len()..]);
    let res = import(spliced);
    assert!(
        matches!(res, Err(Error::Caller(CallerError::KeyMaterial(_)))),
        "{res:?}"
    );
}

/// Version-1 material (before JWT-SVID and document keys): the prefix of version 2 up to the
/// end of the X.509 authorities, under the old format tag.
fn as_version_1(v2: &[u8]) -> Vec<u8> {
    let mut at = 8;
    let chunk = |at: &mut usize| {
        let n = u32::from_be_bytes(v2[*at..*at + 4].try_into().unwrap()) as usize;
        *at += 4 + n;
        n
    };
    chunk(&mut at); // trust domain
    let count_at = at + 4;
    chunk(&mut at);
    let count = u32::from_be_bytes(v2[count_at..count_at + 4].try_into().unwrap());
    for _ in 0..2 * count {
        chunk(&mut at);
    }
    let mut v1 = b"DAASCA\x00\x01".to_vec();
    v1.extend_from_slice(&v2[8..at]);
    v1
}

#[test]
fn version_1_material_imports_with_new_token_keys_to_store() {
    let now = t0();
    let mut ca = ca("example.org", now);
    ca.rotate(now + time::Duration::days(1)).unwrap();
    let v2 = ca.export().unwrap().as_bytes().to_vec();
    assert_eq!(&v2[..8], b"DAASCA\x00\x02");
    let life = time::Duration::days(30);
    let upgraded =
        TrustDomainCa::import(&CaKeyMaterial::from_bytes(as_version_1(&v2)), life).unwrap();
    assert!(upgraded.was_upgraded());
    let at = now + time::Duration::days(2);
    assert_eq!(upgraded.bundle(at), ca.bundle(at));
    assert_eq!(upgraded.authority_count(), 2);
    // New token keys (one generation, for the active authority), kept by the next export.
    let jwt = upgraded.jwt_bundle(at);
    assert_eq!(jwt.len(), 1);
    assert!(jwt.kids().all(|k| ca.jwt_bundle(at).kids().all(|o| o != k)));
    let stored = TrustDomainCa::import(&upgraded.export().unwrap(), life).unwrap();
    assert!(!stored.was_upgraded());
    assert_eq!(stored.jwt_bundle(at).to_jwks_json(), jwt.to_jwks_json());
    // A v1 prefix with v2's tag is truncated, and v2 with v1's tag has trailing bytes.
    let mut bad = as_version_1(&v2);
    bad[7] = 2;
    assert!(TrustDomainCa::import(&CaKeyMaterial::from_bytes(bad), life).is_err());
    let mut bad = v2.clone();
    bad[7] = 1;
    assert!(TrustDomainCa::import(&CaKeyMaterial::from_bytes(bad), life).is_err());
}

#[test]
fn pem_encoding_is_standard() {
    let now = t0();
    let ca = ca("example.org", now);
    let svid = ca
        .issue_x509_svid(&p256_csr(), &id("spiffe://example.org/app"), HOUR, now)
        .unwrap();
    let pem = svid.chain_pem();
    assert_eq!(pem, certs_to_pem(svid.chain()));
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    assert_eq!(parsed.contents, svid.chain()[0].to_vec());
    assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
}
