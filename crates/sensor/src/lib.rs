//! The daas sensor: the node agent that serves the SPIFFE Workload API to attested local
//! workloads (DESIGN.md §4, §8). Today: the Workload API server (`workload_api`); node
//! attestation, the server-backed SVID cache with rotation and the PEM directory come next
//! (docs/identity.md).

/// Generated from `proto/workload.proto` (the public SPIFFE Workload API definition).
pub mod pb {
    #![allow(
        clippy::all,
        clippy::pedantic,
        clippy::allow_attributes_without_reason,
        reason = "generated code: whatever lints it trips are not ours to fix"
    )]
    tonic::include_proto!("_");
}

pub mod workload_api;
