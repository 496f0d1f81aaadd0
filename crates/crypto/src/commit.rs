//! Key commitment: AEADs are not key-committing, so the server stores
//! `HMAC-SHA256(k, "daas safe commit v1" ‖ object_id)` and checks it (constant time) before opening.
use crate::{CryptoError, Key256, ObjectId};

pub fn commitment(k: &Key256, object_id: &ObjectId) -> [u8; 32] { todo!() }
/// `Err(CommitmentMismatch)` unless `commitment(k, id) == expected`, compared in constant time.
pub fn verify(k: &Key256, object_id: &ObjectId, expected: &[u8; 32]) -> Result<(), CryptoError> { todo!() }
