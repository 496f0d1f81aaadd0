//! Hash chain for the audit log: `mac_i = HMAC(audit_chain_key, "daas audit chain v1" ‖ mac_{i-1} ‖ lp(entry_i))`,
//! `mac_0`'s predecessor is 32 zero bytes. Any edit, deletion, reordering or insertion breaks the chain.
//! (`lp` = u32be length prefix; the entry is the last field, so the encoding is injective even
//! for entries longer than `u32::MAX`, whose prefix saturates.)
use crate::{CryptoError, Key256, labels, prf};

pub const GENESIS: [u8; 32] = [0u8; 32];

fn len_prefix(entry: &[u8]) -> [u8; 4] {
    u32::try_from(entry.len()).unwrap_or(u32::MAX).to_be_bytes()
}

pub fn chain(key: &Key256, prev: &[u8; 32], entry: &[u8]) -> [u8; 32] {
    let lp = len_prefix(entry);
    prf::hmac_sha256(key.expose(), &[labels::AUDIT_CHAIN_V1, prev, &lp, entry])
}

/// Constant-time check that `mac == chain(key, prev, entry)`.
pub fn verify_link(
    key: &Key256,
    prev: &[u8; 32],
    entry: &[u8],
    mac: &[u8; 32],
) -> Result<(), CryptoError> {
    let lp = len_prefix(entry);
    prf::verify_hmac_sha256(
        key.expose(),
        &[labels::AUDIT_CHAIN_V1, prev, &lp, entry],
        mac,
        CryptoError::AuthenticationFailed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(key: &Key256, entries: &[&[u8]]) -> Vec<[u8; 32]> {
        let mut prev = GENESIS;
        entries
            .iter()
            .map(|e| {
                prev = chain(key, &prev, e);
                prev
            })
            .collect()
    }

    fn verify_all(key: &Key256, entries: &[&[u8]], macs: &[[u8; 32]]) -> Result<(), CryptoError> {
        if entries.len() != macs.len() {
            return Err(CryptoError::AuthenticationFailed);
        }
        let mut prev = GENESIS;
        for (e, m) in entries.iter().zip(macs) {
            verify_link(key, &prev, e, m)?;
            prev = *m;
        }
        Ok(())
    }

    #[test]
    fn chain_matches_definition() {
        let key = Key256::from_bytes([9u8; 32]);
        let mut msg = b"daas audit chain v1".to_vec();
        msg.extend_from_slice(&GENESIS);
        msg.extend_from_slice(&[0, 0, 0, 3]);
        msg.extend_from_slice(b"abc");
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[9u8; 32]);
        assert_eq!(
            &chain(&key, &GENESIS, b"abc")[..],
            aws_lc_rs::hmac::sign(&k, &msg).as_ref()
        );
    }

    #[test]
    fn tampering_is_detected() {
        let key = Key256::generate().unwrap();
        let entries: Vec<&[u8]> = vec![b"one", b"two", b"three", b""];
        let macs = build(&key, &entries);
        verify_all(&key, &entries, &macs).unwrap();

        // edit
        let edited: Vec<&[u8]> = vec![b"one", b"tw0", b"three", b""];
        assert_eq!(
            verify_all(&key, &edited, &macs),
            Err(CryptoError::AuthenticationFailed)
        );
        // deletion (entry and its mac)
        let del_e: Vec<&[u8]> = vec![b"one", b"three", b""];
        let del_m = vec![macs[0], macs[2], macs[3]];
        assert_eq!(
            verify_all(&key, &del_e, &del_m),
            Err(CryptoError::AuthenticationFailed)
        );
        // reordering
        let re_e: Vec<&[u8]> = vec![b"two", b"one", b"three", b""];
        let re_m = vec![macs[1], macs[0], macs[2], macs[3]];
        assert_eq!(
            verify_all(&key, &re_e, &re_m),
            Err(CryptoError::AuthenticationFailed)
        );
        // insertion with a forged mac
        let ins_e: Vec<&[u8]> = vec![b"one", b"evil", b"two", b"three", b""];
        let ins_m = vec![macs[0], [0u8; 32], macs[1], macs[2], macs[3]];
        assert_eq!(
            verify_all(&key, &ins_e, &ins_m),
            Err(CryptoError::AuthenticationFailed)
        );
        // wrong key
        let other = Key256::generate().unwrap();
        assert_eq!(
            verify_all(&other, &entries, &macs),
            Err(CryptoError::AuthenticationFailed)
        );
        // entry boundary shift is not a collision
        assert_ne!(chain(&key, &GENESIS, b"ab"), chain(&key, &GENESIS, b"a"));
    }

    proptest! {
        #[test]
        fn link_roundtrip_and_flip(entry in proptest::collection::vec(any::<u8>(), 0..256), prev in any::<[u8; 32]>(), bit in 0usize..256) {
            let key = Key256::from_bytes([3u8; 32]);
            let mac = chain(&key, &prev, &entry);
            prop_assert!(verify_link(&key, &prev, &entry, &mac).is_ok());
            let mut bad = mac;
            bad[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_link(&key, &prev, &entry, &bad).is_err());
            let mut bad_prev = prev;
            bad_prev[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_link(&key, &bad_prev, &entry, &mac).is_err());
        }
    }
}
