//! `daas bench svid`: X.509-SVID issuance over HTTPS, as a sensor asks for it
//! (`POST /v1/identity/node/svids`, authenticated by a node SVID), or the peer: OpenBao's PKI
//! engine signing the same kind of CSR with a SPIFFE URI SAN (`pki/sign/<role>`).
//!
//! Every worker has its own client and keep-alive connection (HTTP/1.1) and repeats the request
//! with one pre-built body; every answer must be a 200 (anything else stops the run).
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use daas_sdk::{Client, ClientConfig, SecretString};
use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use crate::bench::{Row, histogram, micros, progress_bar, render_table};
use crate::cli::{BenchSvidArgs, BenchTarget};

/// The SPIFFE ID both targets issue.
const BENCH_ID: &str = "spiffe://daas.local/bench/svid";
const BAO_ROLE: &str = "svid";

/// What one worker sends, over and over.
#[derive(Clone)]
struct Request {
    url: String,
    body: Arc<[u8]>,
    /// OpenBao's token header; daas authenticates by the TLS client certificate.
    bao_token: Option<reqwest::header::HeaderValue>,
}

pub async fn svid(args: BenchSvidArgs) -> Result<()> {
    let (label, request, make_client): (&str, Request, ClientFactory) = match args.target {
        BenchTarget::Daas => {
            let (request, make) = daas_setup().await?;
            ("daas", request, make)
        }
        BenchTarget::Openbao => {
            let token = args
                .openbao_token
                .clone()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| {
                    anyhow!("--openbao-token (or BAO_TOKEN) is required for --target openbao")
                })?;
            let request = openbao_setup(&args.openbao_addr, &SecretString::new(token)).await?;
            let make = Box::new(|| {
                plain_builder()
                    .build()
                    .map_err(|e| anyhow!("cannot set up the HTTP client: {e}"))
            });
            ("openbao", request, make as ClientFactory)
        }
    };
    let mut rows = Vec::new();
    for &connections in &args.connections {
        let clients = (0..connections)
            .map(|_| make_client())
            .collect::<Result<Vec<_>>>()?;
        let (hist, elapsed) = run_once(label, clients, &request, args.duration).await?;
        rows.push(Row {
            target: label,
            op: "svid",
            connections,
            ops_per_sec: hist.len() as f64 / elapsed.as_secs_f64(),
            p50_ms: hist.value_at_quantile(0.50) as f64 / 1000.0,
            p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        });
    }
    crate::io::write_stdout(render_table(&rows).as_bytes())
}

fn plain_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
}

type ClientFactory = Box<dyn Fn() -> Result<reqwest::Client>>;

/// Join as a node (admin token → join token → node SVID), register an any-node entry for the
/// bench ID, and pre-build the issuance request with one CSR.
async fn daas_setup() -> Result<(Request, ClientFactory)> {
    let config = ClientConfig::from_env()?;
    let admin = Client::new(config.clone())?;
    let ca_path = std::env::var_os("DAAS_CACERT")
        .context("DAAS_CACERT must name the server's CA certificate")?;
    let ca_pem = std::fs::read(&ca_path).context("cannot read DAAS_CACERT")?;
    let token = admin.join_token_create(None).await?;
    let anonymous = daas_sensor::server_client::ServerClient::anonymous(admin.addr(), &ca_pem)?;
    let node_key = daas_sensor::agent::new_key().map_err(|e| anyhow!(e))?;
    let issued = anonymous
        .attest(token.token.expose(), &node_key.csr_der)
        .await?;
    let node = daas_sensor::node_store::NodeIdentity {
        spiffe_id: issued.spiffe_id.parse()?,
        chain: issued.chain,
        key_pkcs8: node_key.pkcs8,
        bundle: issued.bundle,
        expires_at: time::OffsetDateTime::now_utc(),
    };
    let selectors = vec![
        format!("unix:sha256:{}", "be".repeat(32)),
        "unix:uid:4242".to_owned(),
    ];
    let entry = daas_sdk::NewEntry {
        spiffe_id: BENCH_ID.to_owned(),
        parent_id: "spiffe://daas.local".to_owned(),
        selectors: selectors.clone(),
        x509_ttl_secs: None,
        roles: Vec::new(),
        allow_without_digest: false,
    };
    if let Err(e) = admin.entry_create(&entry).await {
        // A second run against the same server finds it there.
        if !matches!(&e, daas_sdk::Error::Api { status: 409, .. }) {
            return Err(e.into());
        }
    }
    let csr = daas_sensor::agent::new_key()
        .map_err(|e| anyhow!(e))?
        .csr_der;
    let body = serde_json::to_vec(&serde_json::json!({
        "spiffe_id": BENCH_ID,
        "selectors": selectors,
        "csr": B64U.encode(&csr),
    }))?;
    let identity = reqwest::Identity::from_pem(&node.identity_pem())
        .map_err(|e| anyhow!("the node identity is not usable for TLS: {e}"))?;
    let certs = reqwest::Certificate::from_pem_bundle(&ca_pem)
        .map_err(|e| anyhow!("DAAS_CACERT is not PEM: {e}"))?;
    let make = Box::new(move || {
        plain_builder()
            .tls_certs_only(certs.clone())
            .identity(identity.clone())
            .build()
            .map_err(|e| anyhow!("cannot set up the HTTPS client: {e}"))
    });
    Ok((
        Request {
            url: format!("{}/v1/identity/node/svids", admin.addr()),
            body: body.into(),
            bao_token: None,
        },
        make,
    ))
}

/// Mount PKI, make an EC P-256 root and a role that signs CSRs with a SPIFFE URI SAN and
/// stores nothing (as daas stores no SVIDs).
async fn openbao_setup(addr: &str, token: &SecretString) -> Result<Request> {
    let base = crate::bench::openbao_base(addr)?;
    let http = plain_builder()
        .build()
        .map_err(|e| anyhow!("cannot set up the HTTP client: {e}"))?;
    let token = crate::bench::bao_token(token)?;
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{base}/v1/{path}"))
            .header("X-Vault-Token", token.clone())
            .json(&body)
            .send()
    };
    let steps: [(&str, serde_json::Value, &[&str]); 3] = [
        (
            "sys/mounts/pki",
            serde_json::json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}}),
            &["already in use", "existing mount"],
        ),
        (
            "pki/root/generate/internal",
            serde_json::json!({"common_name": "bench root", "key_type": "ec", "key_bits": 256, "ttl": "87600h"}),
            &[],
        ),
        (
            "pki/roles/svid",
            serde_json::json!({
                "allow_any_name": true, "enforce_hostnames": false, "require_cn": false,
                "allowed_uri_sans": ["spiffe://*"], "key_type": "ec", "key_bits": 256,
                "ttl": "1h", "max_ttl": "1h", "no_store": true,
            }),
            &[],
        ),
    ];
    for (path, body, tolerated) in steps {
        let resp = post(path, body)
            .await
            .map_err(|e| anyhow!("cannot reach OpenBao at {base}: {e}"))?;
        crate::bench::bao_ok(resp, tolerated)
            .await
            .with_context(|| format!("setting up {path}"))?;
    }
    let csr = daas_sensor::agent::new_key()
        .map_err(|e| anyhow!(e))?
        .csr_der;
    let csr_pem = daas_sensor::node_store::pem_block("CERTIFICATE REQUEST", &csr);
    let body = serde_json::to_vec(&serde_json::json!({
        "csr": csr_pem.as_str(),
        "uri_sans": BENCH_ID,
        "ttl": "1h",
    }))?;
    Ok(Request {
        url: format!("{base}/v1/pki/sign/{BAO_ROLE}"),
        body: body.into(),
        bao_token: Some(token),
    })
}

async fn issue(client: &reqwest::Client, request: &Request) -> Result<()> {
    let mut rb = client
        .post(&request.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(reqwest::Body::from(bytes::Bytes::from_owner(Arc::clone(
            &request.body,
        ))));
    if let Some(token) = &request.bao_token {
        rb = rb.header("X-Vault-Token", token.clone());
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| anyhow!("request failed: {e}"))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| anyhow!("reading: {e}"))?;
    if status != reqwest::StatusCode::OK {
        bail!(
            "issuance answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    Ok(())
}

async fn run_once(
    label: &str,
    clients: Vec<reqwest::Client>,
    request: &Request,
    duration: Duration,
) -> Result<(Histogram<u64>, Duration)> {
    let connections = u32::try_from(clients.len()).unwrap_or(u32::MAX);
    // Warm-up: one issuance per client, so TLS handshakes are not measured.
    for client in &clients {
        issue(client, request).await?;
    }
    let ops = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(label, connections, duration);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for client in clients {
        let (request, ops) = (request.clone(), Arc::clone(&ops));
        tasks.spawn(async move {
            let mut hist = histogram()?;
            while Instant::now() < deadline {
                let t = Instant::now();
                issue(&client, &request).await?;
                hist.record(micros(t.elapsed()))
                    .map_err(|_| anyhow!("latency out of range"))?;
                ops.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(hist)
        });
    }
    let mut all = histogram()?;
    while let Some(joined) = tasks.join_next().await {
        let hist = joined.context("a benchmark worker panicked")??;
        all.add(&hist)
            .map_err(|_| anyhow!("cannot merge latency histograms"))?;
        bar.set_message(format!("{} issued", ops.load(Ordering::Relaxed)));
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    Ok((all, elapsed))
}
