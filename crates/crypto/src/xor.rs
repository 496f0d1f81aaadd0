//! 2-of-2 XOR secret sharing: `k = t1 ⊕ t2`, t1 and t2 uniform. Information-theoretically hiding.
use crate::{CryptoError, Key256};

/// Split `k` into `(t1, t2)` with `t1` fresh uniform and `t2 = k ⊕ t1`.
pub fn split(k: &Key256) -> Result<(Key256, Key256), CryptoError> {
    let t1 = Key256::generate()?;
    let t2 = combine(k, &t1);
    Ok((t1, t2))
}

/// Recombine: `t1 ⊕ t2`. Constant time.
pub fn combine(t1: &Key256, t2: &Key256) -> Key256 {
    let mut out = Key256([0u8; 32]);
    for ((o, a), b) in out.0.iter_mut().zip(t1.0.iter()).zip(t2.0.iter()) {
        *o = a ^ b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn split_combine_roundtrip() {
        let k = Key256::generate().unwrap();
        let (t1, t2) = split(&k).unwrap();
        assert_eq!(combine(&t1, &t2), k);
        assert_eq!(combine(&t2, &t1), k);
        assert_ne!(t1, k);
        assert_ne!(t2, k);
    }

    #[test]
    fn split_is_randomised() {
        let k = Key256::from_bytes([0x5a; 32]);
        let (a, _) = split(&k).unwrap();
        let (b, _) = split(&k).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_share_gives_wrong_key() {
        let k = Key256::generate().unwrap();
        let (t1, mut t2) = split(&k).unwrap();
        t2.0[0] ^= 1;
        assert_ne!(combine(&t1, &t2), k);
    }

    proptest! {
        #[test]
        fn roundtrip_any_key(bytes in any::<[u8; 32]>()) {
            let k = Key256::from_bytes(bytes);
            let (t1, t2) = split(&k).unwrap();
            prop_assert_eq!(combine(&t1, &t2), k);
        }
    }
}
