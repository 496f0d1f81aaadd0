//! Everything the identity engine parses from untrusted peers, on arbitrary input: SPIFFE IDs
//! and selectors (API bodies), PKCS#10 CSRs (nodes), X.509-SVID chains (TLS client
//! certificates), and stored CA material (the database). Never panics; never issues an SVID for
//! a CSR whose signature does not verify; never verifies a chain the fixed CA did not sign.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use daas_identity::{CaKeyMaterial, Selector, SpiffeId, TrustDomainCa, verify_x509_svid};
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
    match selector % 5 {
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
        _ => {
            let _ = TrustDomainCa::import(
                &CaKeyMaterial::from_bytes(rest.to_vec()),
                time::Duration::days(30),
            );
        }
    }
});
