//! Secret-bearing types: zeroized on drop, never printed.
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::CryptoError;

/// A 256-bit secret key (object key `k`, share `t1`/`t2`, storage key ...).
/// `Debug` prints `Key256(<redacted>)`; equality is constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key256(pub(crate) [u8; 32]);

impl Key256 {
    /// Fresh key from the OS CSPRNG.
    pub fn generate() -> Result<Self, CryptoError> {
        // Fill in place so that no un-zeroized copy of the key is left on the stack.
        let mut key = Self([0u8; 32]);
        crate::random::fill(&mut key.0)?;
        Ok(key)
    }
    /// Wrap existing bytes (takes ownership; caller should zeroize its copy).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// From a slice of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError::InvalidParameter(
                "key must be exactly 32 bytes",
            ));
        }
        let mut key = Self([0u8; 32]);
        key.0.copy_from_slice(bytes);
        Ok(key)
    }
    /// Borrow the bytes (for feeding a primitive; never log them).
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl core::fmt::Debug for Key256 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Key256(<redacted>)")
    }
}

impl PartialEq for Key256 {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into()
    }
}
impl Eq for Key256 {}

/// 16-byte object identifier (not secret). Text form: 32 lowercase hex chars.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub [u8; 16]);

impl ObjectId {
    /// A new identifier: 48 bits of Unix milliseconds (big-endian) then 80 random bits, the
    /// layout of a UUIDv7 without its version bits.
    ///
    /// Why time-ordered: the id is the storage key of the object, and random keys make every
    /// insert dirty a different B-tree page (a full 4 KiB page written to the WAL per object
    /// under load, most of the write bandwidth of an encrypt). Ids that grow with time append to
    /// the same pages. The id is not a secret and not a capability (decryption needs the share
    /// and the access list); the creation time it reveals is in the audit log anyway, and 80
    /// random bits keep ids unguessable and collision-free (a collision is also refused by the
    /// store's unique key).
    pub fn generate() -> Result<Self, CryptoError> {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Ok(Self::from_parts(millis, crate::random::bytes()?))
    }

    fn from_parts(unix_millis: u128, random: [u8; 10]) -> Self {
        let mut id = [0u8; 16];
        // Keep the low 48 bits (wraps in the year 10889).
        id[..6].copy_from_slice(&unix_millis.to_be_bytes()[10..]);
        id[6..].copy_from_slice(&random);
        Self(id)
    }
    pub fn to_hex(&self) -> String {
        hex_lower(&self.0)
    }
    /// Strict: exactly 32 lowercase hex characters.
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        let s = s.as_bytes();
        if s.len() != 32 {
            return Err(CryptoError::Malformed(
                "object id: expected 32 lowercase hex characters",
            ));
        }
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            let (Some(hi), Some(lo)) = (lower_hex_value(pair[0]), lower_hex_value(pair[1])) else {
                return Err(CryptoError::Malformed(
                    "object id: expected 32 lowercase hex characters",
                ));
            };
            *o = (hi << 4) | lo;
        }
        Ok(Self(out))
    }
}
impl core::fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ObjectId({})", self.to_hex())
    }
}
impl core::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Owned secret bytes of any length (plaintexts, tokens). Zeroized on drop, `Debug` redacted.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(pub Vec<u8>);

// Hand-written instead of derived: `Vec<u8>::zeroize` wipes element by element with volatile
// writes (~1 ms per MiB), while the slice impls below use one `memset` plus an optimisation
// barrier. Both the initialised bytes and the spare capacity are wiped, then the length is reset.
impl Zeroize for SecretBytes {
    fn zeroize(&mut self) {
        self.0.spare_capacity_mut().zeroize();
        self.0.as_mut_slice().zeroize();
        self.0.clear();
    }
}
impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.zeroize();
    }
}
impl ZeroizeOnDrop for SecretBytes {}
impl SecretBytes {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}
impl core::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// Lowercase hex of public bytes (ids, lookup hashes). Not for secrets: not constant time.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn lower_hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_generate_is_random_and_redacted() {
        let a = Key256::generate().unwrap();
        let b = Key256::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "Key256(<redacted>)");
        assert_eq!(a, a.clone());
    }

    #[test]
    fn key_from_slice_exact_length() {
        let k = Key256::from_slice(&[7u8; 32]).unwrap();
        assert_eq!(k.expose(), &[7u8; 32]);
        assert_eq!(k, Key256::from_bytes([7u8; 32]));
        for len in [0, 1, 31, 33, 64] {
            assert_eq!(
                Key256::from_slice(&vec![0u8; len]),
                Err(CryptoError::InvalidParameter(
                    "key must be exactly 32 bytes"
                ))
            );
        }
    }

    #[test]
    fn key_zeroize_clears() {
        let mut k = Key256::from_bytes([0xAA; 32]);
        k.zeroize();
        assert_eq!(k.expose(), &[0u8; 32]);
    }

    #[test]
    fn secret_bytes_debug_redacted() {
        let s = SecretBytes(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "SecretBytes(<7 bytes redacted>)");
        assert_eq!(s.expose(), b"hunter2");
        let mut s = s;
        s.zeroize();
        assert!(s.expose().is_empty());
    }

    #[test]
    fn secret_bytes_zeroize_clears_len_and_keeps_working() {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&[0xAB; 40]);
        let mut s = SecretBytes(v);
        s.zeroize();
        assert!(s.0.is_empty());
        assert!(s.0.capacity() >= 64);
        s.0.resize(64, 1);
        assert!(s.0.iter().all(|&b| b == 1));
        drop(s);
        drop(SecretBytes::default());
    }

    #[test]
    fn object_id_hex() {
        let id = ObjectId([
            0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xff, 0x10, 0x20, 0x30, 0x40,
            0x50, 0x60,
        ]);
        let hex = "000123456789abcdefff102030405060";
        assert_eq!(id.to_hex(), hex);
        assert_eq!(id.to_string(), hex);
        assert_eq!(format!("{id:?}"), format!("ObjectId({hex})"));
        assert_eq!(ObjectId::from_hex(hex).unwrap(), id);
        let g1 = ObjectId::generate().unwrap();
        let g2 = ObjectId::generate().unwrap();
        assert_ne!(g1, g2);
    }

    #[test]
    fn object_ids_are_time_ordered_with_random_tails() {
        let early = ObjectId::from_parts(0x0123_4567_89ab, [0xff; 10]);
        assert_eq!(early.to_hex(), "0123456789abffffffffffffffffffff");
        let later = ObjectId::from_parts(0x0123_4567_89ac, [0; 10]);
        assert!(
            later > early,
            "a later millisecond sorts after, whatever the random tail"
        );
        assert!(
            later.to_hex() > early.to_hex(),
            "and so does the stored text form"
        );
        let before = ObjectId::generate().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let after = ObjectId::generate().unwrap();
        assert!(after > before);
        // The random tail differs between two ids of the same millisecond.
        let ids: Vec<_> = (0..64).map(|_| ObjectId::generate().unwrap()).collect();
        let tails: std::collections::HashSet<_> = ids.iter().map(|id| id.0[6..].to_vec()).collect();
        assert_eq!(tails.len(), ids.len());
    }

    #[test]
    fn object_id_rejects_non_strict_hex() {
        let good = "000123456789abcdefff102030405060";
        let bad = [
            "",
            "0001234567890abcdef",
            "0001234567890ABCDEFFF102030405060",
            "0001234567890ABCDEFF102030405060",
            "0001234567890abcdeff10203040506",
            "0001234567890abcdeff1020304050600",
            "0001234567890abcdeff10203040506g",
            " 001234567890abcdeff102030405060",
            "+001234567890abcdeff102030405060",
            "0x01234567890abcdeff102030405060",
            "00012345é7890abcdeff10203040506",
        ];
        assert!(ObjectId::from_hex(good).is_ok());
        for b in bad {
            assert!(
                matches!(ObjectId::from_hex(b), Err(CryptoError::Malformed(_))),
                "accepted {b:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn object_id_roundtrip(bytes in any::<[u8; 16]>()) {
            let id = ObjectId(bytes);
            prop_assert_eq!(ObjectId::from_hex(&id.to_hex()).unwrap(), id);
        }

        #[test]
        fn object_id_parser_never_panics(s in ".*") {
            if let Ok(id) = ObjectId::from_hex(&s) {
                prop_assert_eq!(id.to_hex(), s);
            }
        }
    }
}
