//! Every domain-separation label used by daas, in one place so that no two uses collide.
pub const SAFE_COMMIT_V1: &[u8] = b"daas safe commit v1";
pub const SAFE_AAD_V1: &[u8] = b"daas safe aad v1";
pub const STORAGE_SEAL_V1: &[u8] = b"daas storage seal v1";
pub const STORAGE_AAD_V1: &[u8] = b"daas storage aad v1";
pub const STORAGE_LOOKUP_V1: &[u8] = b"daas storage lookup v1";
pub const STORAGE_KEY_CHECK_V1: &[u8] = b"daas storage key check v1";
pub const AUDIT_CHAIN_V1: &[u8] = b"daas audit chain v1";
pub const AUDIT_VALUE_V1: &[u8] = b"daas audit value v1";
pub const TOKEN_HASH_V1: &[u8] = b"daas token hash v1";
/// HKDF info of the key behind the token endpoints' stateless DPoP nonces (shared by replicas).
pub const TOKEN_DPOP_NONCE_KEY_V1: &[u8] = b"daas token dpop nonce key v1";
pub const IDENTITY_INSTANCE_ID_V1: &[u8] = b"daas identity instance id v1";
pub const IDENTITY_APP_DOCUMENT_DIGEST_V1: &[u8] = b"daas identity app document digest v1";
