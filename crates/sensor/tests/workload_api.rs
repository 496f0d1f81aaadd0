//! The Workload API served by `daas_sensor::workload_api`, called by the `spiffe` crate from
//! crates.io (a client no one here wrote): the test binary itself is the attested workload, and
//! a byte-different copy of it is refused.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking"
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use daas_identity::attest::{Attestor, WorkloadFacts};
use daas_identity::{SpiffeId, TrustDomainCa};
use daas_sensor::pb;
use daas_sensor::workload_api::{
    IdentitySource, SECURITY_HEADER, SourceError, WorkloadApi, X509SvidWithKey,
};
use tokio::sync::watch;

const WORKLOAD_ID: &str = "spiffe://example.org/test-workload";

/// Hands out one SVID to the binary with one digest (the role the server-backed cache plays in
/// the sensor), and records denials as the server's audit would.
struct OneBinarySource {
    digest_hex: String,
    svid: Mutex<X509SvidWithKey>,
    bundle: Mutex<Vec<u8>>,
    updates: watch::Sender<u64>,
    denied: Mutex<Vec<String>>,
    ca: Mutex<TrustDomainCa>,
}

impl OneBinarySource {
    fn new(digest_hex: String) -> Self {
        let now = time::OffsetDateTime::now_utc();
        let ca = TrustDomainCa::new(
            "example.org".parse().unwrap(),
            time::Duration::hours(24),
            now,
        )
        .unwrap();
        let (svid, bundle) = issue(&ca);
        Self {
            digest_hex,
            svid: Mutex::new(svid),
            bundle: Mutex::new(bundle),
            updates: watch::channel(0).0,
            denied: Mutex::new(Vec::new()),
            ca: Mutex::new(ca),
        }
    }

    /// A new key and SVID, as rotation at half-life does.
    fn rotate(&self) {
        let (svid, bundle) = issue(&self.ca.lock().unwrap());
        *self.svid.lock().unwrap() = svid;
        *self.bundle.lock().unwrap() = bundle;
        self.updates.send_modify(|n| *n += 1);
    }
}

/// Key generated "on the node", CSR signed by it, SVID issued by the trust-domain CA.
fn issue(ca: &TrustDomainCa) -> (X509SvidWithKey, Vec<u8>) {
    let now = time::OffsetDateTime::now_utc();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap();
    let id: SpiffeId = WORKLOAD_ID.parse().unwrap();
    let svid = ca
        .issue_x509_svid(csr.der(), &id, Duration::from_secs(3600), now)
        .unwrap();
    let bundle: Vec<u8> = ca
        .bundle(now)
        .iter()
        .flat_map(|c| c.as_ref().to_vec())
        .collect();
    (
        X509SvidWithKey {
            spiffe_id: WORKLOAD_ID.to_owned(),
            chain: svid.chain().iter().map(|c| c.as_ref().to_vec()).collect(),
            private_key_pkcs8: zeroize::Zeroizing::new(key.serialize_der()),
            bundle: bundle.clone(),
            hint: String::new(),
        },
        bundle,
    )
}

impl IdentitySource for OneBinarySource {
    fn x509_svids(&self, workload: &WorkloadFacts) -> Result<Vec<X509SvidWithKey>, SourceError> {
        if workload.binary_sha256_hex() == self.digest_hex {
            Ok(vec![self.svid.lock().unwrap().clone()])
        } else {
            Ok(Vec::new())
        }
    }
    fn x509_bundles(&self) -> Result<HashMap<String, Vec<u8>>, SourceError> {
        Ok(HashMap::from([(
            "spiffe://example.org".to_owned(),
            self.bundle.lock().unwrap().clone(),
        )]))
    }
    fn updates(&self) -> watch::Receiver<u64> {
        self.updates.subscribe()
    }
    fn report_denied(&self, workload: Option<&WorkloadFacts>, reason: &str) {
        let who = workload.map_or_else(String::new, WorkloadFacts::binary_sha256_hex);
        self.denied.lock().unwrap().push(format!("{who} {reason}"));
    }
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes).as_ref())
}

struct Running {
    socket: PathBuf,
    source: Arc<OneBinarySource>,
    _dir: tempfile::TempDir,
}

async fn start_for_this_binary() -> Running {
    start_for(&std::env::current_exe().unwrap()).await
}

/// A Workload API whose source grants the SVID to the binary at `registered` only.
async fn start_for(registered: &Path) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let source = Arc::new(OneBinarySource::new(sha256_hex(registered)));
    let api = WorkloadApi::new(Arc::clone(&source), Arc::new(Attestor::new()));
    let path = socket.clone();
    tokio::spawn(async move {
        daas_sensor::workload_api::serve(&path, api, std::future::pending())
            .await
            .unwrap();
    });
    wait_for_socket(&socket).await;
    Running {
        socket,
        source,
        _dir: dir,
    }
}

async fn wait_for_socket(socket: &Path) {
    for _ in 0..500 {
        if socket.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the workload api did not start at {}", socket.display());
}

fn endpoint(socket: &Path) -> String {
    format!("unix:{}", socket.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registered_binary_gets_its_svid_through_the_spiffe_crate() {
    let running = start_for_this_binary().await;
    let client = spiffe::WorkloadApiClient::connect_to(endpoint(&running.socket))
        .await
        .unwrap();
    let svid = client.fetch_x509_svid().await.unwrap();
    assert_eq!(svid.spiffe_id().to_string(), WORKLOAD_ID);

    // The chain the workload received verifies offline against the bundle it received.
    let bundles = client.fetch_x509_bundles().await.unwrap();
    let td = spiffe::TrustDomain::new("example.org").unwrap();
    let bundle = bundles.get(&td).expect("bundle of example.org");
    let roots: Vec<_> = bundle
        .authorities()
        .iter()
        .map(|c| rustls_pki_types::CertificateDer::from(c.as_ref().to_vec()))
        .collect();
    let chain: Vec<_> = svid
        .cert_chain()
        .iter()
        .map(|c| rustls_pki_types::CertificateDer::from(c.as_ref().to_vec()))
        .collect();
    let verified =
        daas_identity::verify_x509_svid(&chain, &roots, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(verified.to_string(), WORKLOAD_ID);
    assert!(running.source.denied.lock().unwrap().is_empty());
}

/// The `workload_client` example (built by `cargo test` with the tests), next to this test
/// binary in the target directory.
fn example_workload() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let path = deps
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join("workload_client");
    assert!(path.exists(), "build the example first: {}", path.display());
    path
}

/// Run `workload` against the Workload API at `socket`; return its verdict line.
async fn run_workload(socket: &Path, workload: &Path) -> String {
    let out = tokio::process::Command::new(workload)
        .arg(endpoint(socket))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The issue's acceptance scenario: one registered binary gets its X.509-SVID through the
/// Workload API with the `spiffe` crate, while a byte-different copy of it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_binary_gets_an_svid_and_a_byte_different_copy_is_denied() {
    let workload = example_workload();
    let running = start_for(&workload).await;
    let (socket, source) = (&running.socket, &running.source);
    let dir = tempfile::tempdir().unwrap();

    assert_eq!(
        run_workload(socket, &workload).await,
        format!("verdict: {WORKLOAD_ID}")
    );
    assert!(source.denied.lock().unwrap().is_empty());

    let copy = dir.path().join("copy-of-workload");
    let mut bytes = std::fs::read(&workload).unwrap();
    bytes.push(0); // one byte more: another digest, same behaviour
    std::fs::write(&copy, &bytes).unwrap();
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert_eq!(run_workload(socket, &copy).await, "verdict: denied");

    // The denial was reported (for the server's audit log) with the copy's digest and reason.
    let denied = source.denied.lock().unwrap().clone();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(
        denied[0],
        format!("{} no registration entry matches", sha256_hex(&copy))
    );
}

async fn raw_client(
    socket: &Path,
) -> pb::spiffe_workload_api_client::SpiffeWorkloadApiClient<tonic::transport::Channel> {
    daas_sensor::workload_client::connect(socket).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_the_security_header_are_invalid_arguments() {
    let running = start_for_this_binary().await;
    let mut client = raw_client(&running.socket).await;
    let err = client
        .fetch_x509svid(pb::X509svidRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "security header missing from request");
    let err = client
        .fetch_x509_bundles(pb::X509BundlesRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // The daas service next to the Workload API follows the same rule.
    let mut instances = daas_sensor::workload_client::connect_instance_identity(&running.socket)
        .await
        .unwrap();
    let err = instances
        .fetch_instance_documents(daas_sensor::daas_pb::InstanceDocumentsRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "security header missing from request");

    // A wrong value is as bad as none.
    let mut request = tonic::Request::new(pb::X509svidRequest {});
    request
        .metadata_mut()
        .insert(SECURITY_HEADER, "yes".parse().unwrap());
    let err = client.fetch_x509svid(request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // With the header the same raw client is served (this binary is registered).
    let mut request = tonic::Request::new(pb::X509svidRequest {});
    request
        .metadata_mut()
        .insert(SECURITY_HEADER, "true".parse().unwrap());
    let mut stream = client.fetch_x509svid(request).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.svids.len(), 1);
    assert_eq!(first.svids[0].spiffe_id, WORKLOAD_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_receive_rotated_svids() {
    let running = start_for_this_binary().await;
    let mut client = raw_client(&running.socket).await;
    let mut request = tonic::Request::new(pb::X509svidRequest {});
    request
        .metadata_mut()
        .insert(SECURITY_HEADER, "true".parse().unwrap());
    let mut stream = client.fetch_x509svid(request).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    running.source.rotate();
    let second = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("an update after rotation")
        .unwrap()
        .unwrap();
    assert_ne!(
        first.svids[0].x509_svid, second.svids[0].x509_svid,
        "a new certificate"
    );
    assert_ne!(
        first.svids[0].x509_svid_key, second.svids[0].x509_svid_key,
        "for a new key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_in_the_way_of_the_socket_is_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-socket");
    std::fs::write(&path, b"precious").unwrap();
    let source = Arc::new(OneBinarySource::new(String::new()));
    let api = WorkloadApi::new(source, Arc::new(Attestor::new()));
    let err = daas_sensor::workload_api::serve(&path, api, std::future::ready(()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}
