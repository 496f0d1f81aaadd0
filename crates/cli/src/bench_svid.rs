//! `daas bench svid`: X.509-SVID issuance over HTTPS, as a sensor asks for it
//! (`POST /v1/identity/node/svids`, authenticated by a node SVID), or the peer: OpenBao's PKI
//! engine signing the same kind of CSR with a SPIFFE URI SAN (`pki/sign/<role>`).
//!
//! Both go through the same lean generator as `daas bench safe --client raw` (one HTTP/1.1
//! keep-alive connection per worker, one pre-built body); every answer must be a 200 (anything
//! else stops the run).
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use daas_sdk::{Client, ClientConfig, SecretString};

use crate::bench::{LoadWorker, RawConnection, RawTarget, Row, measure, render_table};
use crate::cli::{BenchSvidArgs, BenchTarget};

/// The SPIFFE ID both targets issue.
const BENCH_ID: &str = "spiffe://daas.local/bench/svid";
const SVID_PATH: &str = "/v1/identity/node/svids";
const BAO_SIGN_PATH: &str = "/v1/pki/sign/svid";

pub async fn svid(args: BenchSvidArgs) -> Result<()> {
    let (label, target) = match args.target {
        BenchTarget::Daas => ("daas", daas_setup().await?),
        BenchTarget::Openbao => {
            let token = args
                .openbao_token
                .clone()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| {
                    anyhow!("--openbao-token (or BAO_TOKEN) is required for --target openbao")
                })?;
            (
                "openbao",
                openbao_setup(&args.openbao_addr, &SecretString::new(token)).await?,
            )
        }
    };
    let mut rows = Vec::new();
    for &connections in &args.load.connections {
        let mut workers = Vec::new();
        for _ in 0..connections {
            workers.push(target.connect().await?);
        }
        let (hist, elapsed, _) = measure(label, workers, args.load.duration, "issued").await?;
        rows.push(Row::of(label, "svid", connections, &hist, elapsed));
    }
    crate::io::write_stdout(render_table(&rows).as_bytes())
}

/// For the one-off setup calls (the load itself goes through raw connections).
fn setup_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| anyhow!("cannot set up the HTTP client: {e}"))
}

/// Join as a node (admin token → join token → node SVID), register an any-node entry for the
/// bench ID, and pre-build the issuance request with one CSR.
async fn daas_setup() -> Result<RawTarget> {
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
        app: None,
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
    let url = reqwest::Url::parse(admin.addr()).map_err(|e| anyhow!("invalid DAAS_ADDR: {e}"))?;
    let (host, port) = crate::bench::host_port(&url)?;
    let server_name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|_| anyhow!("DAAS_ADDR has an invalid host name"))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        node.key_pkcs8.to_vec(),
    ));
    let tls = crate::bench::tls_builder(&ca_pem)?
        .with_client_auth_cert(node.chain.clone(), key)
        .map_err(|e| anyhow!("the node identity is not usable for TLS: {e}"))?;
    Ok(RawTarget {
        host,
        port,
        tls: Some((server_name, Arc::new(tls))),
        // Authenticated by the client certificate; the header only names the generator.
        auth_header: hyper::header::USER_AGENT,
        auth_value: reqwest::header::HeaderValue::from_static("daas-bench"),
        encrypt_path: SVID_PATH,
        decrypt_path: SVID_PATH,
        encrypt_body: body.into(),
    })
}

/// Mount PKI, make an EC P-256 root and a role that signs CSRs with a SPIFFE URI SAN and
/// stores nothing (as daas stores no SVIDs).
async fn openbao_setup(addr: &str, token: &SecretString) -> Result<RawTarget> {
    let base = crate::bench::openbao_base(addr)?;
    let http = setup_client()?;
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
    let url = reqwest::Url::parse(&base).map_err(|e| anyhow!("invalid --openbao-addr: {e}"))?;
    if url.scheme() != "http" {
        bail!("the OpenBao load runs against a dev listener (http://)");
    }
    let (host, port) = crate::bench::host_port(&url)?;
    Ok(RawTarget {
        host,
        port,
        tls: None,
        auth_header: hyper::header::HeaderName::from_static("x-vault-token"),
        auth_value: token,
        encrypt_path: BAO_SIGN_PATH,
        decrypt_path: BAO_SIGN_PATH,
        encrypt_body: body.into(),
    })
}

/// One issuance of the pre-built request; anything but a 200 stops the run.
impl LoadWorker for RawConnection {
    async fn once(&mut self) -> Result<()> {
        let (status, body) = self
            .post(self.target.encrypt_path, self.target.encrypt_body.clone())
            .await?;
        if status != hyper::StatusCode::OK {
            bail!(
                "issuance answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        Ok(())
    }
}
