//! Every domain-separation label of the channel, in one place so that no two uses collide.
//!
//! The two exporter labels are RFC 8446 §7.5 exporter labels: the caller passes them to its TLS
//! library (`export_keying_material`) with the one-byte direction as the context.

/// TLS exporter label of the role layer; context = the direction byte.
pub const EXPORTER_ROLES: &[u8] = b"EXPORTER-daas-roles";
/// TLS exporter label of message mode's per-direction secrets; context = the direction byte.
pub const EXPORTER_MESSAGE: &[u8] = b"EXPORTER-daas-message";

/// HKDF salt for key-role MAC keys.
pub(crate) const KEY_ROLE_SALT: &[u8] = b"daas channel key role salt v1";
/// HKDF info prefix for key-role MAC keys (followed by `lp(role)`).
pub(crate) const KEY_ROLE_INFO: &[u8] = b"daas role v1";
/// Signature context of certificate roles (followed by `E_dir ‖ dir ‖ lp(role)`).
pub(crate) const CERT_ROLE_V1: &[u8] = b"daas channel certificate role v1";
/// Signature context of X.509 certificate roles (followed by `E_dir ‖ dir ‖ lp(role) ‖ scheme`).
pub(crate) const CERT_ROLE_X509_V1: &[u8] = b"daas channel x509 role v1";
/// SPAKE2 identity prefix of the TLS client (side A).
pub(crate) const PASSWORD_ID_CLIENT: &[u8] = b"daas channel password role v1 client";
/// SPAKE2 identity prefix of the TLS server (side B).
pub(crate) const PASSWORD_ID_SERVER: &[u8] = b"daas channel password role v1 server";
/// HKDF salt for the password-role key-confirmation keys.
pub(crate) const PASSWORD_CONFIRM_SALT: &[u8] = b"daas channel password confirm v1";
/// HKDF salt for message-mode keys.
pub(crate) const MESSAGE_SALT: &[u8] = b"daas channel message v1";
/// HKDF info prefix of a message-mode AEAD key (followed by the key epoch, u64 BE).
pub(crate) const MESSAGE_KEY_INFO: &[u8] = b"daas channel message key v1";
/// HKDF info prefix of a message-mode IV (followed by the key epoch, u64 BE).
pub(crate) const MESSAGE_IV_INFO: &[u8] = b"daas channel message iv v1";

/// Appends `u32be(len(bytes)) ‖ bytes`. Every caller passes at most a few KiB (role names,
/// exporter values, PAKE messages), far below `u32::MAX`.
pub(crate) fn push_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}
