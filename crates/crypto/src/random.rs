//! The OS CSPRNG (via aws-lc-rs).
/// Fill `buf` with random bytes.
pub fn fill(buf: &mut [u8]) -> Result<(), crate::CryptoError> { todo!() }
/// `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], crate::CryptoError> { todo!() }
