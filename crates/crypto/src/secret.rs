//! Secret-bearing types: zeroized on drop, never printed.
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A 256-bit secret key (object key `k`, share `t1`/`t2`, storage key ...).
/// `Debug` prints `Key256(<redacted>)`; equality is constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key256(pub(crate) [u8; 32]);

impl Key256 {
    /// Fresh key from the OS CSPRNG.
    pub fn generate() -> Result<Self, crate::CryptoError> { todo!() }
    /// Wrap existing bytes (takes ownership; caller should zeroize its copy).
    pub fn from_bytes(bytes: [u8; 32]) -> Self { Self(bytes) }
    /// From a slice of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, crate::CryptoError> { todo!() }
    /// Borrow the bytes (for feeding a primitive; never log them).
    pub fn expose(&self) -> &[u8; 32] { &self.0 }
}

impl core::fmt::Debug for Key256 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result { f.write_str("Key256(<redacted>)") }
}

impl PartialEq for Key256 {
    fn eq(&self, other: &Self) -> bool { subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into() }
}
impl Eq for Key256 {}

/// 16-byte random object identifier (not secret). Text form: 32 lowercase hex chars.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub [u8; 16]);

impl ObjectId {
    pub fn generate() -> Result<Self, crate::CryptoError> { todo!() }
    pub fn to_hex(&self) -> String { todo!() }
    /// Strict: exactly 32 lowercase hex characters.
    pub fn from_hex(s: &str) -> Result<Self, crate::CryptoError> { todo!() }
}
impl core::fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result { write!(f, "ObjectId({})", self.to_hex()) }
}
impl core::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result { f.write_str(&self.to_hex()) }
}

/// Owned secret bytes of any length (plaintexts, tokens). Zeroized on drop, `Debug` redacted.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretBytes(pub Vec<u8>);
impl SecretBytes {
    pub fn expose(&self) -> &[u8] { &self.0 }
}
impl core::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result { write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len()) }
}
