//! The OS CSPRNG (via aws-lc-rs).
use crate::CryptoError;

/// Fill `buf` with random bytes.
pub fn fill(buf: &mut [u8]) -> Result<(), CryptoError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| CryptoError::Internal)
}

/// `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_changes_buffer() {
        let mut a = [0u8; 64];
        fill(&mut a).unwrap();
        assert_ne!(a, [0u8; 64]);
    }

    #[test]
    fn fill_empty_is_ok() {
        fill(&mut []).unwrap();
    }

    #[test]
    fn bytes_are_fresh() {
        let a: [u8; 32] = bytes().unwrap();
        let b: [u8; 32] = bytes().unwrap();
        assert_ne!(a, b);
        let z: [u8; 0] = bytes().unwrap();
        assert_eq!(z.len(), 0);
    }
}
