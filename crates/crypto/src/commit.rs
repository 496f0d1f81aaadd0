//! Key commitment: AEADs are not key-committing, so the server stores
//! `HMAC-SHA256(k, "daas safe commit v1" ‖ object_id)` and checks it (constant time) before opening.
use crate::{CryptoError, Key256, ObjectId, labels, prf};

pub fn commitment(k: &Key256, object_id: &ObjectId) -> [u8; 32] {
    prf::hmac_sha256(k.expose(), &[labels::SAFE_COMMIT_V1, &object_id.0])
}

/// `Err(CommitmentMismatch)` unless `commitment(k, id) == expected`, compared in constant time.
pub fn verify(k: &Key256, object_id: &ObjectId, expected: &[u8; 32]) -> Result<(), CryptoError> {
    prf::verify_hmac_sha256(
        k.expose(),
        &[labels::SAFE_COMMIT_V1, &object_id.0],
        expected,
        CryptoError::CommitmentMismatch,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commitment_matches_definition() {
        let k = Key256::from_bytes([1u8; 32]);
        let id = ObjectId([2u8; 16]);
        let mut msg = b"daas safe commit v1".to_vec();
        msg.extend_from_slice(&[2u8; 16]);
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[1u8; 32]);
        let want = aws_lc_rs::hmac::sign(&key, &msg);
        assert_eq!(&commitment(&k, &id)[..], want.as_ref());
    }

    #[test]
    fn verify_accepts_and_rejects() {
        let k = Key256::generate().unwrap();
        let id = ObjectId::generate().unwrap();
        let c = commitment(&k, &id);
        verify(&k, &id, &c).unwrap();
        // wrong key
        let other = Key256::generate().unwrap();
        assert_eq!(
            verify(&other, &id, &c),
            Err(CryptoError::CommitmentMismatch)
        );
        // another object
        let mut id2 = id;
        id2.0[15] ^= 1;
        assert_eq!(verify(&k, &id2, &c), Err(CryptoError::CommitmentMismatch));
        // tampered commitment
        let mut bad = c;
        bad[31] ^= 0x80;
        assert_eq!(verify(&k, &id, &bad), Err(CryptoError::CommitmentMismatch));
    }

    proptest! {
        #[test]
        fn any_bit_flip_of_key_or_commitment_fails(k in any::<[u8; 32]>(), id in any::<[u8; 16]>(), bit in 0usize..256) {
            let key = Key256::from_bytes(k);
            let id = ObjectId(id);
            let c = commitment(&key, &id);
            prop_assert!(verify(&key, &id, &c).is_ok());
            let mut bad = c;
            bad[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(verify(&key, &id, &bad), Err(CryptoError::CommitmentMismatch));
            let mut kb = k;
            kb[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(verify(&Key256::from_bytes(kb), &id, &c), Err(CryptoError::CommitmentMismatch));
        }
    }
}
