//! The daas sensor: the node agent that serves the SPIFFE Workload API to attested local
//! workloads (DESIGN.md §4, §8).
//!
//! - [`agent`]: joins the trust domain with a one-time token, keeps the node SVID renewed,
//!   pre-fetches and rotates workload SVIDs, and is the [`workload_api::IdentitySource`];
//! - [`workload_api`]: the gRPC Workload API on a Unix socket, attesting every caller, and
//!   next to it the daas `InstanceIdentity` service (instance identity documents);
//! - [`server_client`]: the HTTPS calls to the daas server (node mTLS);
//! - [`node_store`]: the node identity in the data directory;
//! - [`pem_dir`]: one identity as PEM files for apps without gRPC;
//! - [`workload_client`]: a minimal Workload API client (`daas identity fetch`).

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

/// Generated from `proto/daas_sensor.proto` (daas calls next to the Workload API).
pub mod daas_pb {
    #![allow(
        clippy::all,
        clippy::pedantic,
        clippy::allow_attributes_without_reason,
        reason = "generated code: whatever lints it trips are not ours to fix"
    )]
    tonic::include_proto!("daas.sensor.v1");
}

pub mod agent;
pub mod node_store;
pub mod pem_dir;
pub mod server_client;
pub mod workload_api;
pub mod workload_client;

pub use agent::{Agent, AgentConfig, AgentError};
