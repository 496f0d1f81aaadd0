//! A workload that asks the Workload API for its X.509-SVID with the `spiffe` crate (a SPIFFE
//! library from crates.io) and prints one verdict line. The sensor's integration tests run it,
//! and a byte-different copy of it, as the attested workload.
//!
//! Usage: `workload_client unix:/path/to/agent.sock`
#![expect(clippy::print_stdout, reason = "the verdict is the program's output")]

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args()
        .nth(1)
        .ok_or("usage: workload_client unix:/path/to/agent.sock")?;
    let client = spiffe::WorkloadApiClient::connect_to(endpoint).await?;
    match client.fetch_x509_svid().await {
        Ok(svid) => println!("verdict: {}", svid.spiffe_id()),
        // The spiffe crate maps the PermissionDenied status to this error.
        Err(spiffe::WorkloadApiError::NoIdentityIssued) => println!("verdict: denied"),
        Err(e) => println!("verdict: error {e}"),
    }
    Ok(())
}
