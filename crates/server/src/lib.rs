//! daas control plane: an axum router over the safe engine, stored secrets, apps and audit,
//! served on HTTPS only (rustls, aws-lc-rs).
#![forbid(unsafe_code)]
