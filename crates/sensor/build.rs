//! Generates the gRPC stubs (servers, and clients used by `daas identity` and the tests) from
//! `proto/workload.proto` (the public SPIFFE Workload API) and `proto/daas_sensor.proto` (the
//! daas calls served next to it).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/workload.proto");
    println!("cargo:rerun-if-changed=proto/daas_sensor.proto");
    let descriptors = protox::compile(["workload.proto", "daas_sensor.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
