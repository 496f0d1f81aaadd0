//! Project Wycheproof vectors (tests/vectors, Apache-2.0) run through daas-crypto's own code
//! paths: `envelope::raw_seal`/`raw_open` (the AEAD path used by `envelope::seal/open` and
//! `storage`), `prf::hmac_sha256`/`verify_hmac_sha256` (used by commitments, audit chain, lookups,
//! key checks) and `prf::hkdf_sha256` (used for the storage subkeys).
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test harness: a panic is a test failure"
)]

use daas_crypto::envelope::{self, Suite};
use daas_crypto::{CryptoError, Key256, prf};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File<G> {
    number_of_tests: usize,
    test_groups: Vec<G>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AeadGroup {
    iv_size: usize,
    key_size: usize,
    tag_size: usize,
    tests: Vec<AeadTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AeadTest {
    tc_id: usize,
    key: String,
    iv: String,
    aad: String,
    msg: String,
    ct: String,
    tag: String,
    result: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MacGroup {
    tag_size: usize,
    tests: Vec<MacTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MacTest {
    tc_id: usize,
    key: String,
    msg: String,
    tag: String,
    result: String,
}

#[derive(Deserialize)]
struct HkdfGroup {
    tests: Vec<HkdfTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HkdfTest {
    tc_id: usize,
    ikm: String,
    salt: String,
    info: String,
    size: usize,
    okm: String,
    result: String,
}

fn load<G: for<'de> Deserialize<'de>>(name: &str) -> File<G> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[derive(Default, Debug)]
struct Counts {
    valid: usize,
    invalid: usize,
    skipped: usize,
}

/// Runs one AEAD file. Groups whose parameters daas does not use (key != 256 bits, tag != 128
/// bits, nonce length other than the suite's) are skipped explicitly and counted.
fn run_aead(file: &str, suite: Suite) -> Counts {
    let f: File<AeadGroup> = load(file);
    let mut c = Counts::default();
    let mut total = 0;
    for g in &f.test_groups {
        total += g.tests.len();
        let applies = g.key_size == 256 && g.tag_size == 128 && g.iv_size == suite.nonce_len() * 8;
        if !applies {
            if suite == Suite::XChaCha20Poly1305 && g.key_size == 256 && g.tag_size == 128 {
                // XChaCha20-Poly1305 is only defined with 192-bit nonces: our raw path must
                // refuse other lengths (these groups are all `invalid`).
                for t in &g.tests {
                    assert_eq!(t.result, "invalid", "tc {}", t.tc_id);
                    let key = Key256::from_slice(&unhex(&t.key)).unwrap();
                    let sealed = [unhex(&t.ct), unhex(&t.tag)].concat();
                    assert!(
                        envelope::raw_open(suite, &key, &unhex(&t.iv), &unhex(&t.aad), &sealed)
                            .is_err(),
                        "tc {}",
                        t.tc_id
                    );
                    c.invalid += 1;
                }
            } else {
                c.skipped += g.tests.len();
            }
            continue;
        }
        for t in &g.tests {
            let key = Key256::from_slice(&unhex(&t.key)).unwrap();
            let (iv, aad, msg) = (unhex(&t.iv), unhex(&t.aad), unhex(&t.msg));
            let sealed = [unhex(&t.ct), unhex(&t.tag)].concat();
            let opened = envelope::raw_open(suite, &key, &iv, &aad, &sealed);
            match t.result.as_str() {
                "valid" => {
                    assert_eq!(
                        envelope::raw_seal(suite, &key, &iv, &aad, &msg).unwrap(),
                        sealed,
                        "tc {}",
                        t.tc_id
                    );
                    assert_eq!(opened.unwrap().expose(), &msg[..], "tc {}", t.tc_id);
                    c.valid += 1;
                }
                "invalid" => {
                    assert_eq!(
                        opened,
                        Err(CryptoError::AuthenticationFailed),
                        "tc {}",
                        t.tc_id
                    );
                    c.invalid += 1;
                }
                other => panic!("tc {}: unexpected result {other}", t.tc_id),
            }
        }
    }
    assert_eq!(total, f.number_of_tests);
    assert_eq!(c.valid + c.invalid + c.skipped, total);
    c
}

#[test]
fn aes_256_gcm() {
    let c = run_aead("aes_gcm_test.json", Suite::Aes256Gcm);
    eprintln!("aes-256-gcm: {c:?}");
    assert!(c.valid > 0 && c.invalid > 0 && c.skipped > 0, "{c:?}");
    assert_eq!((c.valid, c.invalid), (39, 27));
}

#[test]
fn xchacha20_poly1305() {
    let c = run_aead("xchacha20_poly1305_test.json", Suite::XChaCha20Poly1305);
    eprintln!("xchacha20-poly1305: {c:?}");
    assert!(c.valid > 0 && c.invalid > 0, "{c:?}");
    assert_eq!((c.valid, c.invalid, c.skipped), (246, 69, 0));
}

#[test]
fn hmac_sha256() {
    let f: File<MacGroup> = load("hmac_sha256_test.json");
    let mut c = Counts::default();
    let mut truncated_rejected = 0;
    for g in &f.test_groups {
        for t in &g.tests {
            let (key, msg, tag) = (unhex(&t.key), unhex(&t.msg), unhex(&t.tag));
            let verdict =
                prf::verify_hmac_sha256(&key, &[&msg], &tag, CryptoError::AuthenticationFailed);
            if g.tag_size != 256 {
                // daas only ever verifies full-length tags: truncated ones are always refused.
                assert!(verdict.is_err(), "tc {}", t.tc_id);
                truncated_rejected += 1;
                continue;
            }
            match t.result.as_str() {
                "valid" => {
                    verdict.unwrap();
                    // split the message to exercise the multi-part path too
                    let mid = msg.len() / 2;
                    assert_eq!(
                        prf::hmac_sha256(&key, &[&msg[..mid], &msg[mid..]]).to_vec(),
                        tag
                    );
                    c.valid += 1;
                }
                "invalid" => {
                    assert_eq!(
                        verdict,
                        Err(CryptoError::AuthenticationFailed),
                        "tc {}",
                        t.tc_id
                    );
                    c.invalid += 1;
                }
                other => panic!("tc {}: unexpected result {other}", t.tc_id),
            }
        }
    }
    eprintln!("hmac-sha256: {c:?}, truncated-tag tests refused: {truncated_rejected}");
    assert!(c.valid > 0 && c.invalid > 0, "{c:?}");
    assert_eq!(c.valid + c.invalid + truncated_rejected, f.number_of_tests);
}

#[test]
fn hkdf_sha256() {
    let f: File<HkdfGroup> = load("hkdf_sha256_test.json");
    let mut c = Counts::default();
    for g in &f.test_groups {
        for t in &g.tests {
            let mut out = vec![0u8; t.size];
            let r = prf::hkdf_sha256(&unhex(&t.salt), &unhex(&t.ikm), &unhex(&t.info), &mut out);
            match t.result.as_str() {
                "valid" => {
                    r.unwrap();
                    assert_eq!(out, unhex(&t.okm), "tc {}", t.tc_id);
                    c.valid += 1;
                }
                "invalid" => {
                    assert!(r.is_err(), "tc {}", t.tc_id);
                    c.invalid += 1;
                }
                other => panic!("tc {}: unexpected result {other}", t.tc_id),
            }
        }
    }
    eprintln!("hkdf-sha256: {c:?}");
    assert!(c.valid > 0 && c.invalid > 0, "{c:?}");
    assert_eq!(c.valid + c.invalid, f.number_of_tests);
}
