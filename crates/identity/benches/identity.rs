//! Identity hot paths with their physical limits beside them:
//! - X.509-SVID issuance (CSR check + certificate build + P-256 signature) vs the bare P-256
//!   signature it cannot be faster than, and vs verifying the CSR alone;
//! - workload attestation of a running process, cold (hash the binary) and cached.
//!
//! `cargo bench -p daas-identity --bench identity -- --quick`
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup: a failure aborts the run"
)]

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use criterion::{Criterion, criterion_group, criterion_main};
use daas_identity::attest::{Attestor, PeerCredentials};
use daas_identity::{SpiffeId, TrustDomainCa};

fn bench_issuance(c: &mut Criterion) {
    let now = time::OffsetDateTime::now_utc();
    let ca = TrustDomainCa::new(
        "example.org".parse().unwrap(),
        time::Duration::days(30),
        now,
    )
    .unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap();
    let id: SpiffeId = "spiffe://example.org/bench/workload".parse().unwrap();

    let mut g = c.benchmark_group("x509_svid");
    g.bench_function("issue_from_csr", |b| {
        b.iter(|| {
            ca.issue_x509_svid(black_box(csr.der()), &id, Duration::from_secs(3600), now)
                .unwrap()
        })
    });
    // The limit: one P-256 signature over a certificate-sized message with the same library.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let signer = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let tbs = vec![0x5a_u8; 450];
    g.bench_function("raw_p256_sign_450B", |b| {
        b.iter(|| signer.sign(&rng, black_box(&tbs)).unwrap())
    });
    g.finish();
}

fn bench_attestation(c: &mut Criterion) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let id = |prefix: &str| -> u32 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("uid/gid in /proc/self/status")
    };
    // A long-lived process of an unchanged binary (so its digest is cacheable).
    let mut child = std::process::Command::new("/bin/sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let peer = PeerCredentials {
        pid: child.id(),
        uid: id("Uid:"),
        gid: id("Gid:"),
    };
    let size = std::fs::metadata("/bin/sleep").map_or(0, |m| m.len());
    let mut g = c.benchmark_group("attest");
    g.bench_function(format!("cold_{}KiB_binary", size / 1024), |b| {
        b.iter(|| Attestor::new().attest(black_box(peer)).unwrap())
    });
    let warm = Attestor::new();
    warm.attest(peer).unwrap();
    g.bench_function("cached_digest", |b| {
        b.iter(|| warm.attest(black_box(peer)).unwrap())
    });
    g.finish();
    let _ = child.kill();
    let _ = child.wait();
}

criterion_group!(benches, bench_issuance, bench_attestation);
criterion_main!(benches);
