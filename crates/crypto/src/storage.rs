//! Sealing of everything the server stores (DESIGN.md §2).
//!
//! The master storage key is expanded with HKDF-SHA256 into independent subkeys
//! (labels in `labels`): `seal` (XChaCha20-Poly1305 for columns), `lookup` (HMAC for searchable
//! names), `audit` (HMAC chaining the audit log), `audit_value` (salted HMAC of sensitive values).
//! Sealed column = nonce(24) ‖ ciphertext ‖ tag, AAD = `"daas storage aad v1" ‖ lp(table) ‖ lp(row_id) ‖ lp(column)`
//! (lp = u32be length prefix), so a sealed value moved to another row or column fails to open.
//!
//! Derivation: `subkey = HKDF-SHA256(salt = "" (i.e. 32 zero bytes), ikm = master, info = label)`,
//! 32 bytes, with labels `STORAGE_SEAL_V1`, `STORAGE_LOOKUP_V1`, `AUDIT_CHAIN_V1`, `AUDIT_VALUE_V1`.
use crate::envelope::{self, Suite};
use crate::{CryptoError, Key256, labels, prf, secret::SecretBytes};

/// Nonce length of a sealed column (XChaCha20-Poly1305).
pub const NONCE_LEN: usize = 24;

/// Where a sealed value lives; bound into its AAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location<'a> {
    pub table: &'a str,
    pub row_id: &'a str,
    pub column: &'a str,
}

impl Location<'_> {
    /// `"daas storage aad v1" ‖ lp(table) ‖ lp(row_id) ‖ lp(column)`.
    pub fn aad(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            labels::STORAGE_AAD_V1.len()
                + 12
                + self.table.len()
                + self.row_id.len()
                + self.column.len(),
        );
        out.extend_from_slice(labels::STORAGE_AAD_V1);
        // `seal`/`open` reject fields longer than u32::MAX before calling this.
        prf::push_lp(&mut out, self.table.as_bytes());
        prf::push_lp(&mut out, self.row_id.as_bytes());
        prf::push_lp(&mut out, self.column.as_bytes());
        out
    }

    fn check(&self) -> Result<(), CryptoError> {
        prf::checked_lp_len(
            self.table.as_bytes(),
            "table name longer than u32::MAX bytes",
        )?;
        prf::checked_lp_len(self.row_id.as_bytes(), "row id longer than u32::MAX bytes")?;
        prf::checked_lp_len(
            self.column.as_bytes(),
            "column name longer than u32::MAX bytes",
        )
    }
}

/// The subkeys derived from the master storage key. `Debug` is redacted.
#[derive(Clone)]
pub struct StorageKeys {
    seal: Key256,
    lookup: Key256,
    audit_chain: Key256,
    audit_value: Key256,
    dpop_nonce: Key256,
}

impl core::fmt::Debug for StorageKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StorageKeys(<redacted>)")
    }
}

fn subkey(master: &Key256, label: &[u8]) -> Key256 {
    let mut k = Key256([0u8; 32]);
    // INVARIANT: a 32-byte HKDF-SHA256 output is far below the 255·32-byte limit, so the only
    // failure left is an internal aws-lc error, which cannot occur for these inputs.
    #[expect(clippy::expect_used, reason = "see INVARIANT above")]
    prf::hkdf_sha256(&[], master.expose(), label, &mut k.0)
        .expect("32-byte hkdf-sha256 output cannot fail");
    k
}

impl StorageKeys {
    pub fn derive(master: &Key256) -> Self {
        Self {
            seal: subkey(master, labels::STORAGE_SEAL_V1),
            lookup: subkey(master, labels::STORAGE_LOOKUP_V1),
            audit_chain: subkey(master, labels::AUDIT_CHAIN_V1),
            audit_value: subkey(master, labels::AUDIT_VALUE_V1),
            dpop_nonce: subkey(master, labels::TOKEN_DPOP_NONCE_KEY_V1),
        }
    }

    pub fn seal(&self, at: Location<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        at.check()?;
        let mut nonce = [0u8; NONCE_LEN];
        crate::random::fill(&mut nonce)?;
        let sealed = envelope::raw_seal(
            Suite::XChaCha20Poly1305,
            &self.seal,
            &nonce,
            &at.aad(),
            plaintext,
        )?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, at: Location<'_>, sealed: &[u8]) -> Result<SecretBytes, CryptoError> {
        at.check()?;
        if sealed.len() < NONCE_LEN + envelope::TAG_LEN {
            return Err(CryptoError::Malformed("sealed value: truncated"));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        envelope::raw_open(Suite::XChaCha20Poly1305, &self.seal, nonce, &at.aad(), body)
    }

    /// Deterministic keyed lookup hash for searchable values (secret names, token ids):
    /// `HMAC(lookup, lp(domain) ‖ value)`, hex-encoded (64 chars).
    pub fn lookup(&self, domain: &str, value: &[u8]) -> String {
        // Domains are short constants; a length above u32::MAX would saturate, and `value` is
        // the last field, so the encoding stays injective.
        let lp = u32::try_from(domain.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes();
        let mac = prf::hmac_sha256(self.lookup.expose(), &[&lp, domain.as_bytes(), value]);
        crate::secret::hex_lower(&mac)
    }

    /// Key for chaining the audit log.
    pub fn audit_chain_key(&self) -> &Key256 {
        &self.audit_chain
    }

    /// Key of the token endpoints' stateless DPoP nonces: every replica unsealed with the same
    /// master key issues and accepts the same nonces.
    pub fn dpop_nonce_key(&self) -> &Key256 {
        &self.dpop_nonce
    }

    /// Salted HMAC of a sensitive value for the audit log (hex, 32 chars = 128 bits).
    /// `HMAC(audit_value, value)` truncated to 16 bytes; the secret per-deployment key is the salt,
    /// so the log cannot be brute-forced offline without the storage key.
    pub fn audit_value(&self, value: &[u8]) -> String {
        let mac = prf::hmac_sha256(self.audit_value.expose(), &[value]);
        crate::secret::hex_lower(&mac[..16])
    }
}

/// Check value stored beside Shamir-sealed deployments: `HMAC(master, "daas storage key check v1")`.
pub fn key_check(master: &Key256) -> [u8; 32] {
    prf::hmac_sha256(master.expose(), &[labels::STORAGE_KEY_CHECK_V1])
}

/// Constant-time comparison against a stored key check.
pub fn verify_key_check(master: &Key256, expected: &[u8; 32]) -> Result<(), CryptoError> {
    prf::verify_hmac_sha256(
        master.expose(),
        &[labels::STORAGE_KEY_CHECK_V1],
        expected,
        CryptoError::CommitmentMismatch,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AT: Location<'static> = Location {
        table: "secrets",
        row_id: "row-1",
        column: "value",
    };

    fn keys() -> StorageKeys {
        StorageKeys::derive(&Key256::from_bytes([0x33; 32]))
    }

    #[test]
    fn derive_is_deterministic_and_independent() {
        let a = keys();
        let b = keys();
        assert_eq!(a.seal, b.seal);
        assert_eq!(a.lookup, b.lookup);
        let subs = [&a.seal, &a.lookup, &a.audit_chain, &a.audit_value];
        for (i, x) in subs.iter().enumerate() {
            assert_ne!(x.expose(), &[0x33; 32]);
            for y in &subs[i + 1..] {
                assert_ne!(x, y);
            }
        }
        let other = StorageKeys::derive(&Key256::from_bytes([0x34; 32]));
        assert_ne!(a.seal, other.seal);
        assert_eq!(format!("{a:?}"), "StorageKeys(<redacted>)");
    }

    #[test]
    fn derive_matches_hkdf_definition() {
        let master = Key256::from_bytes([0x33; 32]);
        let mut want = [0u8; 32];
        prf::hkdf_sha256(
            &[0u8; 32],
            master.expose(),
            b"daas storage seal v1",
            &mut want,
        )
        .unwrap();
        assert_eq!(keys().seal.expose(), &want);
    }

    #[test]
    fn seal_open_roundtrip() {
        let k = keys();
        for pt in [&b""[..], b"v", &[0xEE; 4096]] {
            let s = k.seal(AT, pt).unwrap();
            assert_eq!(s.len(), NONCE_LEN + pt.len() + 16);
            assert_eq!(k.open(AT, &s).unwrap().expose(), pt);
        }
        assert_ne!(k.seal(AT, b"v").unwrap(), k.seal(AT, b"v").unwrap());
    }

    #[test]
    fn moved_value_fails() {
        let k = keys();
        let s = k.seal(AT, b"top secret").unwrap();
        let moves = [
            Location {
                table: "tokens",
                ..AT
            },
            Location {
                row_id: "row-2",
                ..AT
            },
            Location {
                column: "name",
                ..AT
            },
            // boundary shifts between fields
            Location {
                table: "secretsrow-1",
                row_id: "",
                ..AT
            },
            Location {
                table: "secret",
                row_id: "srow-1",
                ..AT
            },
        ];
        for at in moves {
            assert_eq!(
                k.open(at, &s),
                Err(CryptoError::AuthenticationFailed),
                "{at:?}"
            );
        }
    }

    #[test]
    fn tampering_and_wrong_key_fail() {
        let k = keys();
        let s = k.seal(AT, b"top secret").unwrap();
        for i in [0, NONCE_LEN, s.len() - 1] {
            let mut bad = s.clone();
            bad[i] ^= 1;
            assert_eq!(k.open(AT, &bad), Err(CryptoError::AuthenticationFailed));
        }
        assert!(matches!(
            k.open(AT, &s[..NONCE_LEN + 15]),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(k.open(AT, &[]), Err(CryptoError::Malformed(_))));
        let other = StorageKeys::derive(&Key256::from_bytes([0x34; 32]));
        assert_eq!(other.open(AT, &s), Err(CryptoError::AuthenticationFailed));
    }

    #[test]
    fn location_aad_bytes() {
        let at = Location {
            table: "t",
            row_id: "ab",
            column: "",
        };
        let mut want = b"daas storage aad v1".to_vec();
        want.extend_from_slice(&[0, 0, 0, 1, b't', 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0]);
        assert_eq!(at.aad(), want);
    }

    #[test]
    fn lookup_is_keyed_deterministic_and_domain_separated() {
        let k = keys();
        let a = k.lookup("secret-name", b"db-password");
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(a, k.lookup("secret-name", b"db-password"));
        assert_ne!(a, k.lookup("token-id", b"db-password"));
        assert_ne!(a, k.lookup("secret-nam", b"edb-password"));
        let other = StorageKeys::derive(&Key256::from_bytes([0x34; 32]));
        assert_ne!(a, other.lookup("secret-name", b"db-password"));
    }

    #[test]
    fn audit_value_and_chain_key() {
        let k = keys();
        let v = k.audit_value(b"hunter2");
        assert_eq!(v.len(), 32);
        assert_eq!(v, k.audit_value(b"hunter2"));
        assert_ne!(v, k.audit_value(b"hunter3"));
        assert!(!v.contains("hunter2"));
        assert_ne!(v, k.lookup("", b"hunter2")[..32]);
        let chain = k.audit_chain_key().clone();
        assert_ne!(&chain, &k.audit_value);
        let mac = crate::audit::chain(&chain, &crate::audit::GENESIS, b"entry");
        crate::audit::verify_link(k.audit_chain_key(), &crate::audit::GENESIS, b"entry", &mac)
            .unwrap();
    }

    #[test]
    fn key_check_roundtrip() {
        let m = Key256::from_bytes([0x33; 32]);
        let c = key_check(&m);
        verify_key_check(&m, &c).unwrap();
        assert_eq!(
            verify_key_check(&Key256::from_bytes([0x34; 32]), &c),
            Err(CryptoError::CommitmentMismatch)
        );
        let mut bad = c;
        bad[0] ^= 1;
        assert_eq!(
            verify_key_check(&m, &bad),
            Err(CryptoError::CommitmentMismatch)
        );
        // Shamir shares recombined wrongly are caught by the key check
        let shares = crate::shamir::split(&m, 2, 3).unwrap();
        let mut tampered = shares[..2].to_vec();
        tampered[0].value.0[5] ^= 0x10;
        let wrong = crate::shamir::combine(&tampered).unwrap();
        assert_eq!(
            verify_key_check(&wrong, &c),
            Err(CryptoError::CommitmentMismatch)
        );
        verify_key_check(&crate::shamir::combine(&shares[1..]).unwrap(), &c).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn seal_open_any(
            table in ".{0,12}", row in ".{0,12}", column in ".{0,12}",
            pt in proptest::collection::vec(any::<u8>(), 0..300),
            bit_seed in any::<usize>(),
        ) {
            let k = keys();
            let at = Location { table: &table, row_id: &row, column: &column };
            let s = k.seal(at, &pt).unwrap();
            let opened = k.open(at, &s).unwrap();
            prop_assert_eq!(opened.expose(), &pt[..]);
            let bit = bit_seed % (s.len() * 8);
            let mut bad = s.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(k.open(at, &bad).is_err());
        }
    }
}
