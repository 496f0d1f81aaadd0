//! Hash chain for the audit log: `mac_i = HMAC(audit_chain_key, "daas audit chain v1" ‖ mac_{i-1} ‖ lp(entry_i))`,
//! `mac_0`'s predecessor is 32 zero bytes. Any edit, deletion, reordering or insertion breaks the chain.
use crate::{CryptoError, Key256};

pub const GENESIS: [u8; 32] = [0u8; 32];

pub fn chain(key: &Key256, prev: &[u8; 32], entry: &[u8]) -> [u8; 32] { todo!() }
/// Constant-time check that `mac == chain(key, prev, entry)`.
pub fn verify_link(key: &Key256, prev: &[u8; 32], entry: &[u8], mac: &[u8; 32]) -> Result<(), CryptoError> { todo!() }
