//! The `daas:v1:` ciphertext envelope (DESIGN.md §3).
//!
//! Text: `daas:v1:` + base64url-nopad(version(1)=1 ‖ suite(1) ‖ object_id(16) ‖ nonce ‖ ciphertext ‖ tag).
//! Suites: 1 = AES-256-GCM (12-byte nonce, aws-lc-rs), 2 = XChaCha20-Poly1305 (24-byte nonce).
//! AAD = canonical encoding of `{version, suite, object_id, key_version, owner, audience}`:
//! `"daas safe aad v1" ‖ version ‖ suite ‖ object_id ‖ u32be(key_version) ‖ u32be(len) owner ‖ u32be(len) audience`.
//! Each object key is fresh and used for exactly one seal, so random nonces never repeat under a key.
use crate::{CryptoError, Key256, ObjectId, secret::SecretBytes};

pub const PREFIX: &str = "daas:v1:";
pub const VERSION: u8 = 1;
/// Upper bound on plaintext accepted by `seal` (64 MiB); servers apply their own smaller body limits.
pub const MAX_PLAINTEXT: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite { Aes256Gcm = 1, XChaCha20Poly1305 = 2 }

/// Context bound into the AAD; everything here must be known again at open time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context<'a> {
    pub object_id: ObjectId,
    pub key_version: u32,
    pub owner: &'a str,
    pub audience: &'a str,
}

/// A parsed envelope (not yet authenticated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub suite: Suite,
    pub object_id: ObjectId,
    pub nonce: Vec<u8>,
    /// ciphertext ‖ tag
    pub sealed: Vec<u8>,
}

impl Envelope {
    pub fn encode(&self) -> String { todo!() }
    /// Strict parse: prefix, canonical base64url, version == 1 (else UnsupportedFormat), known suite, min length.
    pub fn parse(text: &str) -> Result<Self, CryptoError> { todo!() }
}

/// Encrypt `plaintext` under `k` with a random nonce.
pub fn seal(k: &Key256, suite: Suite, ctx: &Context<'_>, plaintext: &[u8]) -> Result<Envelope, CryptoError> { todo!() }
/// Decrypt; `ctx.object_id` must equal `env.object_id` (else ShareObjectMismatch) before any crypto.
pub fn open(k: &Key256, env: &Envelope, ctx: &Context<'_>) -> Result<SecretBytes, CryptoError> { todo!() }
/// The canonical AAD bytes (exposed for tests and docs).
pub fn aad(suite: Suite, ctx: &Context<'_>) -> Vec<u8> { todo!() }
