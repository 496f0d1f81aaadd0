//! Client share text: `daas:share:v1:` + base64url-nopad(object_id(16) ‖ index(1) ‖ share(32)).
//! Strict parsing: exact prefix, canonical base64url without padding, exact length, index ∈ {1, 2}.
use crate::{CryptoError, Key256, ObjectId};

pub const PREFIX: &str = "daas:share:v1:";

/// Which half of the 2-of-2 split: 1 = the caller's `t1`, 2 = the server's `t2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareIndex { Client = 1, Server = 2 }

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub object_id: ObjectId,
    pub index: ShareIndex,
    pub key: Key256,
}

impl Share {
    pub fn encode(&self) -> String { todo!() }
    pub fn parse(text: &str) -> Result<Self, CryptoError> { todo!() }
}
