//! Wycheproof Ed25519 and ECDSA P-256/SHA-256 (P1363, i.e. JWS `r || s`) vectors, run through
//! `verify_signature`, the primitive every token verification uses.
//!
//! The vector files are copied from Google's Wycheproof project (Apache-2.0, see
//! `vectors/LICENSE`) so these tests need nothing outside the crate.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking"
)]

use daas_token::{Alg, verify_signature};
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    #[serde(rename = "numberOfTests")]
    number_of_tests: usize,
    #[serde(rename = "testGroups")]
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    #[serde(rename = "publicKey")]
    public_key: PublicKey,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
struct PublicKey {
    /// Ed25519: the 32-byte key.
    pk: Option<String>,
    /// ECDSA: the uncompressed SEC 1 point.
    uncompressed: Option<String>,
}

#[derive(Deserialize)]
struct Case {
    #[serde(rename = "tcId")]
    id: u64,
    comment: String,
    msg: String,
    sig: String,
    result: String,
}

#[derive(Debug, Default)]
struct Counts {
    valid: usize,
    invalid: usize,
    acceptable_passed: usize,
    acceptable_failed: usize,
}

fn run(file: &str, alg: Alg) -> Counts {
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("vector file is present");
    let file: File = serde_json::from_str(&text).expect("vector file parses");
    let mut counts = Counts::default();
    let mut total = 0;
    for group in &file.groups {
        let key = group
            .public_key
            .pk
            .as_deref()
            .or(group.public_key.uncompressed.as_deref())
            .expect("group has a public key");
        let key = hex::decode(key).unwrap();
        for case in &group.tests {
            total += 1;
            let msg = hex::decode(&case.msg).unwrap();
            let sig = hex::decode(&case.sig).unwrap();
            let ok = verify_signature(alg, &key, &msg, &sig).is_ok();
            match (case.result.as_str(), ok) {
                ("valid", true) => counts.valid += 1,
                ("invalid", false) => counts.invalid += 1,
                ("acceptable", true) => counts.acceptable_passed += 1,
                ("acceptable", false) => counts.acceptable_failed += 1,
                (result, ok) => panic!(
                    "tcId {} ({}): expected {result}, verification {}",
                    case.id,
                    case.comment,
                    if ok { "passed" } else { "failed" }
                ),
            }
        }
    }
    assert_eq!(total, file.number_of_tests, "every vector ran");
    counts
}

#[test]
fn ed25519() {
    let counts = run("ed25519_test.json", Alg::EdDsa);
    // The file has 151 cases: 88 valid, 63 invalid (Wycheproof 0.9rc5).
    assert_eq!(counts.valid, 88, "{counts:?}");
    assert_eq!(counts.invalid, 63, "{counts:?}");
    assert_eq!(
        counts.acceptable_passed + counts.acceptable_failed,
        0,
        "{counts:?}"
    );
}

#[test]
fn ecdsa_p256_sha256_p1363() {
    let counts = run("ecdsa_secp256r1_sha256_p1363_test.json", Alg::Es256);
    // The file has 262 cases: 173 valid, 89 invalid (including r = 0, s = 0, r or s >= n,
    // wrong lengths and DER-looking encodings).
    assert_eq!(counts.valid, 173, "{counts:?}");
    assert_eq!(counts.invalid, 89, "{counts:?}");
    assert_eq!(
        counts.acceptable_passed + counts.acceptable_failed,
        0,
        "{counts:?}"
    );
}
