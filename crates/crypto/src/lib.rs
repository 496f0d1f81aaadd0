//! daas cryptographic compositions (DESIGN.md §3, §2, §10). No I/O.
//!
//! Primitives come from `aws-lc-rs` (AES-256-GCM, HMAC, HKDF, SHA-256, CSPRNG), RustCrypto
//! `chacha20poly1305` (XChaCha20-Poly1305 for storage sealing: 192-bit random nonces let one
//! long-lived storage key seal any number of rows) and `vsss-rs` (Shamir over GF(256)).
//! This crate only composes them; see `docs/crypto.md` for the threat model.
#![forbid(unsafe_code)]

pub mod audit;
mod b64;
pub mod commit;
pub mod envelope;
pub mod error;
pub mod labels;
pub mod prf;
pub mod random;
pub mod secret;
pub mod shamir;
pub mod share;
pub mod storage;
pub mod xor;

pub use error::CryptoError;
pub use secret::{Key256, ObjectId};
