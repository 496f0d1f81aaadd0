//! Everything the identity engine parses from untrusted peers, on arbitrary input: SPIFFE IDs
//! and selectors (API bodies), PKCS#10 CSRs (nodes), X.509-SVID chains (TLS client
//! certificates), stored CA material (the database), JWT-SVIDs and JWK sets (relying parties,
//! sensors) and identity documents and trust bundle files (`daas identity verify`). Never panics;
//! never issues an SVID for a CSR whose signature does not verify; never verifies a chain, a
//! JWT-SVID or a document the fixed CA did not sign.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use daas_identity::{
    CaKeyMaterial, DocumentBundle, JwtBundle, JwtBundleSet, Selector, SpiffeId, TrustDomainCa,
    validate_jwt_svid, verify_app_document, verify_x509_svid,
};
use libfuzzer_sys::fuzz_target;
use rustls_pki_types::CertificateDer;

fn ca() -> &'static (TrustDomainCa, Vec<CertificateDer<'static>>) {
    static CA: OnceLock<(TrustDomainCa, Vec<CertificateDer<'static>>)> = OnceLock::new();
    CA.get_or_init(|| {
        let now = time::OffsetDateTime::now_utc();
        let ca = TrustDomainCa::new(
            "fuzz.example".parse().expect("trust domain"),
            time::Duration::days(30),
            now,
        )
        .expect("ca");
        let bundle = ca.bundle(now);
        (ca, bundle)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let now = time::OffsetDateTime::now_utc();
    match selector % 10 {
        0 => {
            if let Ok(id) = String::from_utf8_lossy(rest).parse::<SpiffeId>() {
                // Canonical: what parses prints back identically and parses again.
                assert_eq!(id.to_string().parse::<SpiffeId>().ok(), Some(id));
            }
        }
        1 => {
            if let Ok(s) = String::from_utf8_lossy(rest).parse::<Selector>() {
                assert_eq!(s.to_string().parse::<Selector>().ok(), Some(s));
            }
        }
        2 => {
            let (ca, bundle) = ca();
            let id: SpiffeId = "spiffe://fuzz.example/w".parse().expect("id");
            // Arbitrary bytes are (almost surely) not a validly self-signed CSR; if one is, the
            // SVID issued for it must verify against the bundle.
            if let Ok(svid) = ca.issue_x509_svid(rest, &id, Duration::from_secs(60), now) {
                assert!(verify_x509_svid(svid.chain(), bundle, now).is_ok());
            }
        }
        3 => {
            let (_, bundle) = ca();
            let chain: Vec<CertificateDer<'static>> = rest
                .split(|b| *b == 0xff)
                .take(4)
                .map(|c| CertificateDer::from(c.to_vec()))
                .collect();
            assert!(
                verify_x509_svid(&chain, bundle, now).is_err(),
                "a chain the fuzzer made verified against a CA it does not have"
            );
        }
        5 => {
            let (ca, _) = ca();
            let mut set = JwtBundleSet::new();
            set.insert(ca.jwt_bundle(now));
            assert!(
                validate_jwt_svid(&String::from_utf8_lossy(rest), "aud", &set, now).is_err(),
                "a jwt-svid the fuzzer made validated against a key it does not have"
            );
        }
        6 => {
            if let Ok(b) = JwtBundle::from_jwks_json("fuzz.example".parse().expect("td"), rest) {
                // What parses serializes to a set that parses to the same keys.
                let again = JwtBundle::from_jwks_json(
                    "fuzz.example".parse().expect("td"),
                    b.to_jwks_json().as_bytes(),
                )
                .expect("round trip");
                assert!(again.kids().eq(b.kids()));
            }
        }
        7 => {
            let (ca, _) = ca();
            assert!(
                verify_app_document(&String::from_utf8_lossy(rest), &ca.document_bundle(now), now)
                    .is_err(),
                "a document the fuzzer made verified against a key it does not have"
            );
        }
        8 => {
            let _ = DocumentBundle::from_trust_bundle_json(rest);
        }
        _ => {
            let _ = TrustDomainCa::import(
                &CaKeyMaterial::from_bytes(rest.to_vec()),
                time::Duration::days(30),
            );
        }
    }
});
