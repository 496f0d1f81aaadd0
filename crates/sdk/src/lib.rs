//! The daas Rust client (DESIGN.md §3, `docs/api.md`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), daas_sdk::Error> {
//! use daas_sdk::{Client, EncryptOptions};
//! let client = Client::from_env()?; // DAAS_ADDR, DAAS_TOKEN, DAAS_CACERT
//! // Client mode: the plaintext and the object key never leave this process.
//! let sealed = client.encrypt_local(b"attack at dawn", &EncryptOptions::default()).await?;
//! let plaintext = client.decrypt_local(&sealed.ciphertext, &sealed.share).await?;
//! assert_eq!(&plaintext[..], b"attack at dawn");
//! # Ok(()) }
//! ```
//!
//! Every type that can hold a secret (tokens, shares, plaintexts) redacts it in `Debug`.
#![forbid(unsafe_code)]

mod body;
mod client;
mod config;
mod error;
mod secret;
mod types;

pub use client::Client;
pub use config::{ClientConfig, ClientOptions, ENV_ADDR, ENV_CACERT, ENV_TOKEN};
pub use daas_crypto::ObjectId;
pub use daas_crypto::envelope::Suite;
pub use error::{Error, Result};
pub use secret::SecretString;
pub use types::{
    AppCreated, AppInfo, AuditEntry, AuditReport, EncryptOptions, Encrypted, EntryInfo, Health,
    JoinToken, NewEntry, ObjectInfo, ObjectMode, SealStatus, SecretInfo, SecretStored, SecretValue,
    TrustBundle,
};
pub use types::{
    AppIdentityDocument, AppIdentityRequest, IssuedToken, StatusStaple, TokenRevocation,
};
