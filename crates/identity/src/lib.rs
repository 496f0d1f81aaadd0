//! Workload identity for daas (DESIGN.md §4): SPIFFE IDs, selectors, registration entries, the
//! trust-domain CA that issues X.509-SVIDs and JWT-SVIDs, app and instance identity documents, and
//! workload attestation ("software DNA").
//!
//! Everything here but `attest` (which reads `/proc`) is pure (no I/O, no clock reads): time is
//! an explicit `now` argument so the server, the sensor and the tests decide what "now" is, and
//! expiry is testable.
#![forbid(unsafe_code)]

pub mod attest;
pub mod ca;
pub mod document;
pub mod entry;
pub mod error;
pub(crate) mod jwks;
pub mod jwt_svid;
pub mod selector;
pub mod spiffe_id;
pub mod svid;

pub use ca::{CaKeyMaterial, TrustDomainCa};
pub use document::{
    AppMetadata, DocumentBundle, DocumentError, InstanceDynamic, InstanceStatic,
    VerifiedAppDocument, VerifiedDocument, VerifiedInstanceDocument, verify_app_document,
    verify_document, verify_instance_document,
};
pub use entry::{EntryId, NewEntry, RegistrationEntry, authorize_svid_request, entries_for};
pub use error::{
    CallerError, DenyReason, EntryError, Error, InternalError, PeerError, SelectorError,
    SpiffeIdError,
};
pub use jwt_svid::{
    JwtBundle, JwtBundleSet, JwtSvidError, JwtSvidRejection, ValidatedJwtSvid, validate_jwt_svid,
};
pub use selector::Selector;
pub use spiffe_id::{SpiffeId, TrustDomain};
pub use svid::{X509Svid, verify_x509_svid};
