//! Role names.

use std::fmt;

use crate::error::ConfigError;

/// Longest role name, in bytes.
pub const MAX_ROLE_NAME_LEN: usize = 64;

/// A role name: 1 to [`MAX_ROLE_NAME_LEN`] bytes of `a-z`, `0-9`, `.`, `_` and `-`.
///
/// The alphabet is narrow so that a name that came from a peer can be logged and audited as is
/// (no control characters, no Unicode look-alikes) and compares byte for byte.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleName(String);

impl RoleName {
    /// Checks `name` against the role-name alphabet and length.
    ///
    /// # Errors
    /// [`ConfigError::InvalidRoleName`] if it is empty, too long or has another character.
    pub fn new(name: &str) -> Result<Self, ConfigError> {
        Self::from_bytes(name.as_bytes()).ok_or(ConfigError::InvalidRoleName)
    }

    /// The same check on raw bytes (the wire form); `None` if they are not a valid name.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() || bytes.len() > MAX_ROLE_NAME_LEN {
            return None;
        }
        if !bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        }) {
            return None;
        }
        // Every byte is ASCII, so this never fails.
        String::from_utf8(bytes.to_vec()).ok().map(Self)
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoleName({})", self.0)
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RoleName {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_and_length() {
        assert!(RoleName::new("payment").is_ok());
        assert!(RoleName::new("user-info.v2_x").is_ok());
        assert!(RoleName::new(&"a".repeat(MAX_ROLE_NAME_LEN)).is_ok());
        for bad in ["", "Payment", "pay ment", "päy", "a\n", "a/b"] {
            assert_eq!(
                RoleName::new(bad),
                Err(ConfigError::InvalidRoleName),
                "{bad:?}"
            );
        }
        assert!(RoleName::new(&"a".repeat(MAX_ROLE_NAME_LEN + 1)).is_err());
    }
}
