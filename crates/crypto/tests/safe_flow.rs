//! End-to-end compositions of DESIGN.md §3 (server mode, client mode, escrow) and §2 (unseal).
#![expect(
    clippy::unwrap_used,
    reason = "test harness: a panic is a test failure"
)]

use daas_crypto::envelope::{self, Context, Envelope, Suite};
use daas_crypto::share::{Share, ShareIndex};
use daas_crypto::storage::{self, Location, StorageKeys};
use daas_crypto::{CryptoError, Key256, ObjectId, audit, commit, shamir, xor};
use proptest::prelude::*;

/// What the server keeps for one object.
struct Record {
    object_id: ObjectId,
    t2: Share,
    commitment: [u8; 32],
    owner: String,
    audience: String,
}

fn encrypt(suite: Suite, owner: &str, audience: &str, pt: &[u8]) -> (String, String, Record) {
    try_encrypt(suite, owner, audience, pt).unwrap()
}

fn try_encrypt(
    suite: Suite,
    owner: &str,
    audience: &str,
    pt: &[u8],
) -> Result<(String, String, Record), CryptoError> {
    let object_id = ObjectId::generate()?;
    let k = Key256::generate()?;
    let ctx = Context {
        object_id,
        key_version: 1,
        owner,
        audience,
    };
    let env = envelope::seal(&k, suite, &ctx, pt)?;
    let commitment = commit::commitment(&k, &object_id);
    let (t1, t2) = xor::split(&k)?;
    drop(k);
    let client = Share {
        object_id,
        index: ShareIndex::Client,
        key: t1,
    };
    let server = Share {
        object_id,
        index: ShareIndex::Server,
        key: t2,
    };
    let rec = Record {
        object_id,
        t2: server,
        commitment,
        owner: owner.into(),
        audience: audience.into(),
    };
    Ok((env.encode(), client.encode(), rec))
}

/// The server-side decrypt: parse, object checks before any crypto, combine, commitment, open.
fn decrypt(rec: &Record, ciphertext: &str, share: &str) -> Result<Vec<u8>, CryptoError> {
    let env = Envelope::parse(ciphertext)?;
    let share = Share::parse(share)?;
    if share.index != ShareIndex::Client {
        return Err(CryptoError::Malformed("expected the client share"));
    }
    share.check_object(&rec.object_id)?;
    if env.object_id != rec.object_id {
        return Err(CryptoError::ShareObjectMismatch);
    }
    let k = xor::combine(&share.key, &rec.t2.key);
    commit::verify(&k, &rec.object_id, &rec.commitment)?;
    let ctx = Context {
        object_id: rec.object_id,
        key_version: 1,
        owner: &rec.owner,
        audience: &rec.audience,
    };
    Ok(envelope::open(&k, &env, &ctx)?.expose().to_vec())
}

#[test]
fn server_mode_roundtrip_and_attacks() {
    for suite in [Suite::Aes256Gcm, Suite::XChaCha20Poly1305] {
        let (ct, share, rec) = encrypt(suite, "app:alice", "svc:db", b"the secret");
        assert_eq!(decrypt(&rec, &ct, &share).unwrap(), b"the secret");

        // share of another object
        let (ct2, share2, rec2) = encrypt(suite, "app:alice", "svc:db", b"other");
        assert_eq!(
            decrypt(&rec, &ct, &share2),
            Err(CryptoError::ShareObjectMismatch)
        );
        // ciphertext of another object
        assert_eq!(
            decrypt(&rec, &ct2, &share),
            Err(CryptoError::ShareObjectMismatch)
        );
        assert_eq!(decrypt(&rec2, &ct2, &share2).unwrap(), b"other");

        // wrong share bytes for the right object -> commitment mismatch (before AEAD)
        let mut forged = Share::parse(&share).unwrap();
        forged.key = Key256::generate().unwrap();
        assert_eq!(
            decrypt(&rec, &ct, &forged.encode()),
            Err(CryptoError::CommitmentMismatch)
        );

        // crypto-shredding: once t2 is gone, no t2' opens it
        let shredded = Record {
            t2: Share {
                key: Key256::generate().unwrap(),
                ..rec.t2.clone()
            },
            ..rec
        };
        assert_eq!(
            decrypt(&shredded, &ct, &share),
            Err(CryptoError::CommitmentMismatch)
        );
    }
}

#[test]
fn client_mode_server_never_sees_k() {
    // client: seal locally, deposit t2 + commitment
    let (ct, share, rec) = encrypt(Suite::XChaCha20Poly1305, "app:bob", "", b"e2e");
    let deposited = rec.t2.encode();
    // server: only parses and stores the deposit
    let t2 = Share::parse(&deposited).unwrap();
    assert_eq!(t2.index, ShareIndex::Server);
    // later the client fetches t2 and opens locally
    let t1 = Share::parse(&share).unwrap();
    t1.check_object(&t2.object_id).unwrap();
    let k = xor::combine(&t1.key, &t2.key);
    commit::verify(&k, &t2.object_id, &rec.commitment).unwrap();
    let env = Envelope::parse(&ct).unwrap();
    let ctx = Context {
        object_id: t2.object_id,
        key_version: 1,
        owner: "app:bob",
        audience: "",
    };
    assert_eq!(envelope::open(&k, &env, &ctx).unwrap().expose(), b"e2e");
}

#[test]
fn escrow_of_server_share_with_shamir() {
    let (ct, share, rec) = encrypt(Suite::Aes256Gcm, "app:carol", "svc:x", b"escrowed");
    let escrow: Vec<String> = shamir::split(&rec.t2.key, 3, 5)
        .unwrap()
        .iter()
        .map(shamir::ShamirShare::encode)
        .collect();
    let picked: Vec<_> = [4usize, 1, 3]
        .iter()
        .map(|&i| shamir::ShamirShare::parse(&escrow[i]).unwrap())
        .collect();
    let t2 = shamir::combine(&picked).unwrap();
    let recovered = Record {
        t2: Share {
            key: t2,
            ..rec.t2.clone()
        },
        ..rec
    };
    assert_eq!(decrypt(&recovered, &ct, &share).unwrap(), b"escrowed");
}

#[test]
fn operator_unseal_flow() {
    // `daas operator init`: storage key split 3-of-5, key check stored
    let master = Key256::generate().unwrap();
    let check = storage::key_check(&master);
    let texts: Vec<String> = shamir::split(&master, 3, 5)
        .unwrap()
        .iter()
        .map(|s| s.encode())
        .collect();
    let keys = StorageKeys::derive(&master);
    let at = Location {
        table: "objects",
        row_id: "abc",
        column: "t2",
    };
    let sealed = keys.seal(at, b"row value").unwrap();
    drop(keys);
    drop(master);

    // unseal with shares 2, 3, 5
    let shares: Vec<_> = [1usize, 2, 4]
        .iter()
        .map(|&i| shamir::ShamirShare::parse(&texts[i]).unwrap())
        .collect();
    let master = shamir::combine(&shares).unwrap();
    storage::verify_key_check(&master, &check).unwrap();
    let keys = StorageKeys::derive(&master);
    assert_eq!(keys.open(at, &sealed).unwrap().expose(), b"row value");

    // a corrupted share is caught by the key check, not silently accepted
    let mut bad = shares.clone();
    bad[2].value = Key256::from_bytes([0u8; 32]);
    let wrong = shamir::combine(&bad).unwrap();
    assert_eq!(
        storage::verify_key_check(&wrong, &check),
        Err(CryptoError::CommitmentMismatch)
    );

    // the audit chain key from the unsealed storage key verifies links written before
    let mac = audit::chain(keys.audit_chain_key(), &audit::GENESIS, b"unsealed");
    audit::verify_link(keys.audit_chain_key(), &audit::GENESIS, b"unsealed", &mac).unwrap();
}

#[test]
fn secrets_never_in_debug_or_errors() {
    let k = Key256::from_bytes([0xC3; 32]);
    let share = Share {
        object_id: ObjectId([1; 16]),
        index: ShareIndex::Client,
        key: k.clone(),
    };
    let keys = StorageKeys::derive(&k);
    let s = shamir::split(&k, 2, 2).unwrap();
    let dbg = format!("{k:?} {share:?} {keys:?} {s:?}");
    assert!(!dbg.contains("195"), "{dbg}"); // 0xC3
    assert!(!dbg.to_lowercase().contains("c3c3"), "{dbg}");
    let errs = [
        CryptoError::UnsupportedFormat("x"),
        CryptoError::Malformed("x"),
        CryptoError::ShareObjectMismatch,
        CryptoError::CommitmentMismatch,
        CryptoError::AuthenticationFailed,
        CryptoError::InvalidShares("x"),
        CryptoError::InvalidParameter("x"),
        CryptoError::Internal,
    ];
    for e in errs {
        let m = e.to_string();
        assert_eq!(m, m.to_lowercase());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn composition_roundtrip(
        pt in proptest::collection::vec(any::<u8>(), 0..300),
        owner in "[a-z:]{0,16}",
        audience in "[a-z:]{0,16}",
        aes in any::<bool>(),
    ) {
        let suite = if aes { Suite::Aes256Gcm } else { Suite::XChaCha20Poly1305 };
        let (ct, share, rec) = encrypt(suite, &owner, &audience, &pt);
        prop_assert_eq!(decrypt(&rec, &ct, &share).unwrap(), pt);
    }
}
