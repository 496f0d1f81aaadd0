//! The daas role-authenticated channel (DESIGN.md §7, docs/channel.md).
//!
//! TLS 1.3 (rustls + aws-lc-rs, X25519MLKEM768 first) carries the bytes; on top of it a small
//! role layer lets each side prove any subset of its roles, bound to the connection through TLS
//! exporter values, and the peer learns exactly the set it could verify ([`VerifiedRoles`]).
//!
//! The protocol core does no I/O:
//!
//! * [`wire`]: the role messages, their canonical encoding and strict parser.
//! * [`exchange`]: the role exchange as a state machine ([`OfferSent`] → [`ProofSent`] →
//!   [`RoleOutcome`] → [`VerifiedRoles`]); key roles (HMAC over the exporter), password roles
//!   (SPAKE2 bound to the exporters, then key confirmation) and certificate roles (an Ed25519
//!   or P-256 signature over the exporter under a pinned role key, or under a key whose X.509
//!   chain verifies to the role's trust anchor: [`x509`], SVIDs included).
//! * [`ratelimit`]: the attempt budget for password roles ([`RateLimiter`]).
//! * [`record`] and [`window`]: message mode, AEAD records with explicit sequence numbers and an
//!   RFC 6479 replay window, for out-of-order transports; [`rekey`]: the re-handshake driver
//!   ([`MessageSession`]) that asks for a new TLS handshake after 120 s of activity and switches
//!   keys over.
//!
//! With the `tokio` feature, `transport` runs the TLS handshake and the role exchange over a
//! tokio stream.
#![forbid(unsafe_code)]

pub mod config;
mod error;
pub mod exchange;
pub mod file;
pub mod labels;
mod name;
pub mod ratelimit;
pub mod record;
pub mod rekey;
#[cfg(feature = "tokio")]
pub mod transport;
pub mod window;
pub mod wire;
pub mod x509;

pub use config::{
    CertificateRole, KeyExchange, Role, RoleConfig, RoleKey, RoleKeyAlgorithm, RolePassword,
    RoleSecret,
};
pub use error::{ConfigError, Fault, RecordError, RoleError, WireError};
pub use exchange::{
    Direction, EXPORTER_LEN, Exporters, FailureReason, OfferSent, ProofSent, RoleFailure,
    RoleOutcome, Side, VerifiedRoles,
};
pub use file::{ChannelFile, FileError};
pub use name::{MAX_ROLE_NAME_LEN, RoleName};
pub use ratelimit::{RateLimit, RateLimited, RateLimiter};
pub use record::{KeyPhase, MessageSecrets, Opener, Sealer, message_keys, message_keys_in_phase};
pub use rekey::{MessageSession, RekeyAction};
#[cfg(feature = "tokio")]
pub use transport::{
    Channel, ChannelConfig, ChannelError, SharedRateLimiter, TlsIdentity, accept, connect,
};
pub use window::ReplayWindow;
pub use x509::{SpiffePin, X509Proof, X509Role, X509Scheme};
