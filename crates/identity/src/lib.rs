//! Workload identity for daas (DESIGN.md §4): SPIFFE IDs, selectors, registration entries, the
//! trust-domain CA that issues X.509-SVIDs, and workload attestation ("software DNA").
//!
//! Everything here but `attest` (which reads `/proc`) is pure (no I/O, no clock reads): time is
//! an explicit `now` argument so the server, the sensor and the tests decide what "now" is, and
//! expiry is testable.
#![forbid(unsafe_code)]

pub mod attest;
pub mod ca;
pub mod entry;
pub mod error;
pub mod selector;
pub mod spiffe_id;
pub mod svid;

pub use ca::{CaKeyMaterial, TrustDomainCa};
pub use entry::{EntryId, NewEntry, RegistrationEntry, authorize_svid_request, entries_for};
pub use error::{
    CallerError, DenyReason, EntryError, Error, InternalError, PeerError, SelectorError,
    SpiffeIdError,
};
pub use selector::Selector;
pub use spiffe_id::{SpiffeId, TrustDomain};
pub use svid::{X509Svid, verify_x509_svid};
