//! `daas bench safe`: encrypt→decrypt load over HTTPS keep-alive connections, against daas or
//! OpenBao's transit engine, with HDR latency histograms.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use daas_sdk::{Client, ClientConfig, ClientOptions, EncryptOptions, SecretString};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::header::HeaderValue;
use serde::Deserialize;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use crate::cli::{BenchArgs, BenchClient, BenchOp, BenchTarget};

/// Transit key used for the OpenBao runs, and its encrypt and decrypt paths.
const BAO_KEY: &str = "bench";
const BAO_ENCRYPT_PATH: &str = "/v1/transit/encrypt/bench";
const BAO_DECRYPT_PATH: &str = "/v1/transit/decrypt/bench";
/// Histogram range: 1 µs .. 1 h, 3 significant digits.
const HIST_MAX_US: u64 = 3_600_000_000;

pub async fn safe(args: BenchArgs) -> Result<()> {
    if args.size == 0 {
        bail!("--size must be at least 1 byte");
    }
    let payload: Arc<[u8]> = pseudo_random(args.size).into();
    let factory = match args.target {
        BenchTarget::Daas if args.client == BenchClient::Raw && !args.local => {
            if args.http1 {
                bail!("--client raw always speaks HTTP/1.1; --http1 applies to --client sdk");
            }
            Factory::DaasRaw(RawTarget::daas(&ClientConfig::from_env()?, &payload)?)
        }
        BenchTarget::Daas => Factory::Daas {
            config: ClientConfig::from_env()?,
            local: args.local,
            http1: args.http1,
        },
        BenchTarget::Openbao => {
            if args.local {
                bail!("--local applies to --target daas only");
            }
            let token = args
                .openbao_token
                .clone()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| {
                    anyhow!("--openbao-token (or BAO_TOKEN) is required for --target openbao")
                })?;
            if args.http1 {
                bail!(
                    "--http1 applies to --target daas --client sdk (OpenBao is always loaded over HTTP/1.1)"
                );
            }
            let base = openbao_base(&args.openbao_addr)?;
            let token = SecretString::new(token);
            let factory = Factory::Openbao {
                target: RawTarget::openbao(&base, &token, &payload)?,
                base,
                token,
            };
            factory.openbao_setup().await?;
            factory
        }
    };

    let mut rows = Vec::new();
    for &connections in &args.load.connections {
        let run = run_once(&factory, connections, args.load.duration, &payload, args.op).await?;
        for (op, hist) in [("encrypt", &run.encrypt), ("decrypt", &run.decrypt)] {
            if hist.is_empty() {
                continue;
            }
            rows.push(Row::of(factory.label(), op, connections, hist, run.elapsed));
        }
    }
    crate::io::write_stdout(render_table(&rows).as_bytes())
}

pub(crate) struct Row {
    pub(crate) target: &'static str,
    pub(crate) op: &'static str,
    pub(crate) connections: u32,
    pub(crate) ops_per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

impl Row {
    /// The row of `hist`, the latencies of the operations completed in `elapsed`.
    pub(crate) fn of(
        target: &'static str,
        op: &'static str,
        connections: u32,
        hist: &Histogram<u64>,
        elapsed: Duration,
    ) -> Self {
        Self {
            target,
            op,
            connections,
            ops_per_sec: hist.len() as f64 / elapsed.as_secs_f64(),
            p50_ms: hist.value_at_quantile(0.50) as f64 / 1000.0,
            p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        }
    }
}

/// One worker of a single-operation load (`bench svid`, `bench token`): owns its connection
/// and repeats [`Self::once`], which must fail on any answer but the expected one.
pub(crate) trait LoadWorker: Send + 'static {
    /// Client-side work for the next operation, done outside its latency (default: none).
    fn prepare(&mut self) -> Result<()> {
        Ok(())
    }
    fn once(&mut self) -> impl std::future::Future<Output = Result<()>> + Send;
}

/// Warm every worker up with one operation (so TLS handshakes are not measured), then run
/// them all concurrently for `duration`. Returns the merged latencies, the elapsed time and the
/// workers (for whatever they counted on the side).
pub(crate) async fn measure<W: LoadWorker>(
    label: &str,
    mut workers: Vec<W>,
    duration: Duration,
    unit: &'static str,
) -> Result<(Histogram<u64>, Duration, Vec<W>)> {
    for worker in &mut workers {
        worker.prepare()?;
        worker.once().await?;
    }
    let connections = u32::try_from(workers.len()).unwrap_or(u32::MAX);
    let ops = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(label, connections, duration);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for mut worker in workers {
        let ops = Arc::clone(&ops);
        tasks.spawn(async move {
            let mut hist = histogram()?;
            while Instant::now() < deadline {
                worker.prepare()?;
                let t = Instant::now();
                worker.once().await?;
                hist.saturating_record(micros(t.elapsed()));
                ops.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>((hist, worker))
        });
    }
    let mut all = histogram()?;
    let mut done = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        let (hist, worker) = joined.context("a benchmark worker panicked")??;
        all.add(&hist)
            .map_err(|_| anyhow!("cannot merge latency histograms"))?;
        done.push(worker);
        bar.set_message(format!("{} {unit}", ops.load(Ordering::Relaxed)));
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    Ok((all, elapsed, done))
}

pub(crate) fn render_table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<12} {:<8} {:>11} {:>12} {:>10} {:>10}\n",
        "target", "op", "connections", "ops/s", "p50 (ms)", "p99 (ms)"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<12} {:<8} {:>11} {:>12.1} {:>10.3} {:>10.3}\n",
            r.target, r.op, r.connections, r.ops_per_sec, r.p50_ms, r.p99_ms
        ));
    }
    out
}

struct RunResult {
    encrypt: Histogram<u64>,
    decrypt: Histogram<u64>,
    elapsed: Duration,
}

async fn run_once(
    factory: &Factory,
    connections: u32,
    duration: Duration,
    payload: &Arc<[u8]>,
    op: BenchOp,
) -> Result<RunResult> {
    // Phase 1: one client (one keep-alive connection) per worker, warmed up by one round trip
    // so TLS handshakes are not measured.
    let mut warm = JoinSet::new();
    for _ in 0..connections {
        let worker = factory.worker().await?;
        let payload = Arc::clone(payload);
        warm.spawn(async move {
            worker.roundtrip(&payload).await?;
            Ok::<_, anyhow::Error>(worker)
        });
    }
    let mut workers = Vec::with_capacity(connections as usize);
    while let Some(joined) = warm.join_next().await {
        workers.push(joined.context("a benchmark worker panicked")??);
    }

    // Phase 2: the timed run.
    let ops = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(factory.label(), connections, duration);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for worker in workers {
        let payload = Arc::clone(payload);
        let ops = Arc::clone(&ops);
        tasks.spawn(async move { worker.run(&payload, deadline, &ops, op).await });
    }
    let ticker = {
        let bar = bar.clone();
        let ops = Arc::clone(&ops);
        tokio::spawn(async move {
            loop {
                let elapsed = start.elapsed().min(duration);
                bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
                bar.set_message(format!("{} round trips", ops.load(Ordering::Relaxed)));
                if elapsed >= duration {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let mut encrypt = histogram()?;
    let mut decrypt = histogram()?;
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined
            .context("a benchmark worker panicked")
            .and_then(|r| r)
        {
            Ok((e, d)) => {
                encrypt
                    .add(&e)
                    .map_err(|_| anyhow!("cannot merge latency histograms"))?;
                decrypt
                    .add(&d)
                    .map_err(|_| anyhow!("cannot merge latency histograms"))?;
            }
            Err(e) => {
                if failure.is_none() {
                    failure = Some(e);
                }
                tasks.abort_all();
            }
        }
    }
    let elapsed = start.elapsed();
    ticker.abort();
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(RunResult {
        encrypt,
        decrypt,
        elapsed,
    })
}

pub(crate) fn progress_bar(label: &str, connections: u32, duration: Duration) -> ProgressBar {
    let len = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix} [{bar:40}] {elapsed_precise} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{label} x{connections}"));
    bar
}

pub(crate) fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3)
        .map_err(|e| anyhow!("cannot create a latency histogram: {e:?}"))
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Deterministic, incompressible-looking bytes (xorshift64*).
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Makes one worker (one client with its own keep-alive connection) per call.
enum Factory {
    Daas {
        config: ClientConfig,
        local: bool,
        http1: bool,
    },
    DaasRaw(RawTarget),
    Openbao {
        base: String,
        token: SecretString,
        target: RawTarget,
    },
}

/// A server loaded the way a lean load generator (wrk) loads it: pre-built JSON bodies over one
/// HTTP/1.1 keep-alive connection per worker (hyper's connection API, over rustls trusting only
/// the daas CA for daas, plain TCP for OpenBao's dev listener), every response parsed and every
/// decryption compared. daas and OpenBao go through exactly this code, so the load generator
/// costs both the same; the SDK's own cost is measured by `--client sdk`.
#[derive(Clone)]
pub(crate) struct RawTarget {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: Option<(
        rustls::pki_types::ServerName<'static>,
        Arc<rustls::ClientConfig>,
    )>,
    pub(crate) auth_header: hyper::header::HeaderName,
    pub(crate) auth_value: HeaderValue,
    pub(crate) encrypt_path: &'static str,
    pub(crate) decrypt_path: &'static str,
    pub(crate) encrypt_body: bytes::Bytes,
}

impl RawTarget {
    fn openbao(base: &str, token: &SecretString, payload: &[u8]) -> Result<Self> {
        let url = reqwest::Url::parse(base).map_err(|e| anyhow!("invalid --openbao-addr: {e}"))?;
        if url.scheme() != "http" {
            bail!("the OpenBao load runs against a dev listener (http://)");
        }
        let (host, port) = host_port(&url)?;
        let encrypt_body = serde_json::to_vec(&serde_json::json!({
            "plaintext": STANDARD.encode(payload)
        }))?;
        Ok(Self {
            host,
            port,
            tls: None,
            auth_header: hyper::header::HeaderName::from_static("x-vault-token"),
            auth_value: bao_token(token)?,
            encrypt_path: BAO_ENCRYPT_PATH,
            decrypt_path: BAO_DECRYPT_PATH,
            encrypt_body: encrypt_body.into(),
        })
    }

    fn daas(config: &ClientConfig, payload: &[u8]) -> Result<Self> {
        let encrypt_body = serde_json::to_vec(&serde_json::json!({
            "plaintext": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload)
        }))?;
        Self::daas_endpoint(
            config,
            "/v1/safe/encrypt",
            "/v1/safe/decrypt",
            encrypt_body.into(),
        )
    }

    /// The daas server of `config` (bearer credential, TLS trusting its CA) with these paths.
    pub(crate) fn daas_endpoint(
        config: &ClientConfig,
        encrypt_path: &'static str,
        decrypt_path: &'static str,
        encrypt_body: bytes::Bytes,
    ) -> Result<Self> {
        let url = reqwest::Url::parse(config.addr.trim())
            .map_err(|e| anyhow!("invalid DAAS_ADDR: {e}"))?;
        if url.scheme() != "https" {
            bail!("DAAS_ADDR must use https://");
        }
        let (host, port) = host_port(&url)?;
        let server_name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|_| anyhow!("DAAS_ADDR has an invalid host name"))?;
        let pem = config
            .ca_cert_pem
            .as_deref()
            .ok_or_else(|| anyhow!("--client raw needs DAAS_CACERT (the daas CA certificate)"))?;
        let tls = tls_builder(pem)?.with_no_client_auth();
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {}", config.token.expose().trim()))
                .map_err(|_| anyhow!("the token contains invalid characters"))?;
        authorization.set_sensitive(true);
        Ok(Self {
            host,
            port,
            tls: Some((server_name, Arc::new(tls))),
            auth_header: hyper::header::AUTHORIZATION,
            auth_value: authorization,
            encrypt_path,
            decrypt_path,
            encrypt_body,
        })
    }

    pub(crate) async fn connect(&self) -> Result<RawConnection> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| anyhow!("cannot connect to {}:{}: {e}", self.host, self.port))?;
        tcp.set_nodelay(true)?;
        let sender = match &self.tls {
            Some((server_name, config)) => {
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(|e| anyhow!("TLS handshake failed: {e}"))?;
                http1_handshake(tls).await?
            }
            None => http1_handshake(tcp).await?,
        };
        // With the port (RFC 9110 §7.2): a daas server derives its token issuer from it.
        let host_header = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        Ok(RawConnection {
            sender: tokio::sync::Mutex::new(sender),
            host_header: HeaderValue::from_str(&host_header)
                .map_err(|_| anyhow!("the address has an invalid host name"))?,
            target: self.clone(),
        })
    }
}

/// TLS 1.3 trusting only the CA certificates in `pem`; the caller picks client authentication.
pub(crate) fn tls_builder(
    pem: &[u8],
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots
            .add(cert.map_err(|_| anyhow!("the CA certificate file is not valid PEM"))?)
            .map_err(|e| anyhow!("the CA certificate is not usable: {e}"))?;
    }
    if roots.is_empty() {
        bail!("the CA certificate file contains no certificate");
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| anyhow!("cannot set up TLS: {e}"))?
    .with_root_certificates(roots))
}

pub(crate) fn host_port(url: &reqwest::Url) -> Result<(String, u16)> {
    let host = url
        .host_str()
        .ok_or_else(|| anyhow!("the address {url} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| anyhow!("the address {url} has no port"))?;
    Ok((host, port))
}

type RawSender = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

async fn http1_handshake<S>(io: S) -> Result<RawSender>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| anyhow!("HTTP handshake failed: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One keep-alive connection of a raw worker.
pub(crate) struct RawConnection {
    sender: tokio::sync::Mutex<RawSender>,
    host_header: HeaderValue,
    pub(crate) target: RawTarget,
}

impl RawConnection {
    /// POST `body` and return the status and the whole response body.
    pub(crate) async fn post(
        &self,
        path: &'static str,
        body: bytes::Bytes,
    ) -> Result<(hyper::StatusCode, bytes::Bytes)> {
        self.post_with(path, body, None).await
    }

    /// [`Self::post`] with one more request header.
    pub(crate) async fn post_with(
        &self,
        path: &'static str,
        body: bytes::Bytes,
        extra: Option<(&'static str, HeaderValue)>,
    ) -> Result<(hyper::StatusCode, bytes::Bytes)> {
        let (status, _headers, body) = self.post_with_headers(path, body, extra).await?;
        Ok((status, body))
    }

    /// [`Self::post_with`], also returning the response headers.
    pub(crate) async fn post_with_headers(
        &self,
        path: &'static str,
        body: bytes::Bytes,
        extra: Option<(&'static str, HeaderValue)>,
    ) -> Result<(hyper::StatusCode, hyper::HeaderMap, bytes::Bytes)> {
        use http_body_util::BodyExt as _;
        let mut request = hyper::Request::post(path)
            .header(hyper::header::HOST, self.host_header.clone())
            .header(&self.target.auth_header, self.target.auth_value.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        let request = request
            .body(http_body_util::Full::new(body))
            .map_err(|e| anyhow!("cannot build the request: {e}"))?;
        let mut sender = self.sender.lock().await;
        sender
            .ready()
            .await
            .map_err(|e| anyhow!("the daas connection closed: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| anyhow!("daas request failed: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| anyhow!("daas response failed: {e}"))?
            .to_bytes();
        drop(sender);
        Ok((parts.status, parts.headers, body))
    }
}

impl Factory {
    fn label(&self) -> &'static str {
        match self {
            Self::Daas { local: false, .. } => "daas-sdk",
            Self::Daas { local: true, .. } => "daas-local",
            Self::DaasRaw(_) => "daas",
            Self::Openbao { .. } => "openbao",
        }
    }

    async fn worker(&self) -> Result<Worker> {
        match self {
            Self::Daas {
                config,
                local,
                http1,
            } => {
                let options = ClientOptions::default()
                    .pool_max_idle_per_host(1)
                    .http1_only(*http1);
                Ok(Worker::Daas {
                    client: Client::with_options(config.clone(), options)?,
                    local: *local,
                })
            }
            Self::DaasRaw(target) => Ok(Worker::DaasRaw(target.connect().await?)),
            Self::Openbao { target, .. } => Ok(Worker::Openbao(target.connect().await?)),
        }
    }

    /// Mount transit and create the key, tolerating "already there".
    async fn openbao_setup(&self) -> Result<()> {
        let Self::Openbao { base, token, .. } = self else {
            return Ok(());
        };
        let http = openbao_client()?;
        let token = bao_token(token)?;
        let mount = http
            .post(format!("{base}/v1/sys/mounts/transit"))
            .header("X-Vault-Token", token.clone())
            .json(&serde_json::json!({"type": "transit"}))
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach OpenBao at {base}: {}", chain(&e)))?;
        bao_ok(mount, &["already in use", "existing mount"])
            .await
            .context("mounting transit")?;
        let key = http
            .post(format!("{base}/v1/transit/keys/{BAO_KEY}"))
            .header("X-Vault-Token", token)
            .json(&serde_json::json!({}))
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach OpenBao at {base}: {}", chain(&e)))?;
        bao_ok(key, &["already exists"])
            .await
            .context("creating the transit key")?;
        Ok(())
    }
}

/// For the one-off setup calls (the load itself goes through [`RawConnection`]).
fn openbao_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .build()
        .map_err(|e| anyhow!("cannot set up the HTTP client: {e}"))
}

pub(crate) fn bao_token(token: &SecretString) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(token.expose().trim())
        .map_err(|_| anyhow!("the OpenBao token contains invalid characters"))?;
    v.set_sensitive(true);
    Ok(v)
}

/// `--openbao-addr`: http (OpenBao dev servers are plain HTTP) or https; origin only.
pub(crate) fn openbao_base(addr: &str) -> Result<String> {
    let url = reqwest::Url::parse(addr.trim())
        .map_err(|e| anyhow!("invalid --openbao-addr {addr:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("--openbao-addr must be http://host:port or https://host:port");
    }
    Ok(url.origin().ascii_serialization())
}

/// Accept a 2xx, or an error whose message contains one of `tolerated`.
pub(crate) async fn bao_ok(resp: reqwest::Response, tolerated: &[&str]) -> Result<()> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    let message = bao_errors(&body);
    if tolerated.iter().any(|t| message.contains(t)) {
        return Ok(());
    }
    bail!("OpenBao answered {}: {message}", status.as_u16())
}

fn bao_errors(body: &str) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    match serde_json::from_str::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .join("; ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        _ => "no error message".to_owned(),
    }
}

/// The error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        parts.push(s.to_string());
        src = s.source();
    }
    parts.join(": ")
}

enum Worker {
    Daas { client: Client, local: bool },
    DaasRaw(RawConnection),
    Openbao(RawConnection),
}

enum Sealed {
    Daas {
        ciphertext: String,
        share: SecretString,
    },
    Openbao(String),
}

impl Worker {
    async fn run(
        &self,
        payload: &[u8],
        deadline: Instant,
        ops: &AtomicU64,
        op: BenchOp,
    ) -> Result<(Histogram<u64>, Histogram<u64>)> {
        let mut enc = histogram()?;
        let mut dec = histogram()?;
        while Instant::now() < deadline {
            let t0 = Instant::now();
            let sealed = self.encrypt(payload).await?;
            let t1 = Instant::now();
            enc.saturating_record(micros(t1 - t0));
            if op == BenchOp::Encrypt {
                ops.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let plaintext = self.decrypt(&sealed).await?;
            dec.saturating_record(micros(t1.elapsed()));
            if plaintext[..] != payload[..] {
                bail!("a decryption returned bytes that differ from the plaintext");
            }
            ops.fetch_add(1, Ordering::Relaxed);
        }
        Ok((enc, dec))
    }

    async fn roundtrip(&self, payload: &[u8]) -> Result<()> {
        let sealed = self.encrypt(payload).await?;
        let plaintext = self.decrypt(&sealed).await?;
        if plaintext[..] != payload[..] {
            bail!("a decryption returned bytes that differ from the plaintext");
        }
        Ok(())
    }

    async fn encrypt(&self, payload: &[u8]) -> Result<Sealed> {
        match self {
            Self::DaasRaw(conn) => {
                #[derive(Deserialize)]
                struct Resp {
                    ciphertext: String,
                    share: String,
                }
                let (status, body) = conn
                    .post(conn.target.encrypt_path, conn.target.encrypt_body.clone())
                    .await?;
                let r: Resp = daas_json(status, &body)?;
                Ok(Sealed::Daas {
                    ciphertext: r.ciphertext,
                    share: SecretString::new(r.share),
                })
            }
            Self::Daas { client, local } => {
                let opts = EncryptOptions::default();
                let e = if *local {
                    client.encrypt_local(payload, &opts).await?
                } else {
                    client.encrypt(payload, &opts).await?
                };
                Ok(Sealed::Daas {
                    ciphertext: e.ciphertext,
                    share: e.share,
                })
            }
            Self::Openbao(conn) => {
                #[derive(Deserialize)]
                struct Data {
                    ciphertext: String,
                }
                #[derive(Deserialize)]
                struct Resp {
                    data: Data,
                }
                let (status, body) = conn
                    .post(conn.target.encrypt_path, conn.target.encrypt_body.clone())
                    .await?;
                let r: Resp = bao_json(status, &body)?;
                Ok(Sealed::Openbao(r.data.ciphertext))
            }
        }
    }

    async fn decrypt(&self, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>> {
        match (self, sealed) {
            (Self::DaasRaw(conn), Sealed::Daas { ciphertext, share }) => {
                #[derive(Deserialize)]
                struct Resp {
                    plaintext: String,
                }
                let body = Zeroizing::new(serde_json::to_vec(&serde_json::json!({
                    "ciphertext": ciphertext,
                    "share": share.expose(),
                }))?);
                let (status, body) = conn
                    .post(conn.target.decrypt_path, bytes::Bytes::from(body.to_vec()))
                    .await?;
                let r: Resp = daas_json(status, &body)?;
                let encoded = Zeroizing::new(r.plaintext);
                Ok(Zeroizing::new(
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(encoded.as_bytes())
                        .map_err(|_| anyhow!("daas returned invalid base64"))?,
                ))
            }
            (Self::Daas { client, local }, Sealed::Daas { ciphertext, share }) => Ok(if *local {
                client.decrypt_local(ciphertext, share).await?
            } else {
                client.decrypt(ciphertext, share).await?
            }),
            (Self::Openbao(conn), Sealed::Openbao(ciphertext)) => {
                #[derive(Deserialize)]
                struct Data {
                    plaintext: String,
                }
                #[derive(Deserialize)]
                struct Resp {
                    data: Data,
                }
                let body = serde_json::to_vec(&serde_json::json!({ "ciphertext": ciphertext }))?;
                let (status, body) = conn.post(conn.target.decrypt_path, body.into()).await?;
                let r: Resp = bao_json(status, &body)?;
                Ok(Zeroizing::new(
                    STANDARD
                        .decode(r.data.plaintext)
                        .map_err(|_| anyhow!("OpenBao returned invalid base64"))?,
                ))
            }
            _ => bail!("internal benchmark error: ciphertext of another target"),
        }
    }
}

pub(crate) fn daas_json<T: serde::de::DeserializeOwned>(
    status: hyper::StatusCode,
    body: &[u8],
) -> Result<T> {
    #[derive(Deserialize)]
    struct Detail {
        code: String,
        message: String,
    }
    #[derive(Deserialize)]
    struct Error {
        error: Detail,
    }
    if !status.is_success() {
        return Err(match serde_json::from_slice::<Error>(body) {
            Ok(e) => anyhow!(
                "daas answered {}: {} ({})",
                status.as_u16(),
                e.error.message,
                e.error.code
            ),
            Err(_) => anyhow!("daas answered {}", status.as_u16()),
        });
    }
    serde_json::from_slice(body).map_err(|_| anyhow!("daas returned an unexpected response body"))
}

fn bao_json<T: serde::de::DeserializeOwned>(status: hyper::StatusCode, body: &[u8]) -> Result<T> {
    if !status.is_success() {
        bail!(
            "OpenBao answered {}: {}",
            status.as_u16(),
            bao_errors(&String::from_utf8_lossy(body))
        );
    }
    serde_json::from_slice(body)
        .map_err(|_| anyhow!("OpenBao returned an unexpected response body"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_layout() {
        let rows = [Row {
            target: "daas",
            op: "encrypt",
            connections: 16,
            ops_per_sec: 1234.56,
            p50_ms: 0.7123,
            p99_ms: 12.0,
        }];
        let t = render_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("target"));
        assert!(
            lines[0].contains("ops/s")
                && lines[0].contains("p50 (ms)")
                && lines[0].contains("p99 (ms)")
        );
        assert!(
            lines[1].contains("daas")
                && lines[1].contains("1234.6")
                && lines[1].contains("0.712")
                && lines[1].contains("12.000")
        );
    }

    #[test]
    fn openbao_addresses() {
        assert_eq!(
            openbao_base("http://127.0.0.1:8200/").ok().as_deref(),
            Some("http://127.0.0.1:8200")
        );
        assert_eq!(
            openbao_base("https://bao.example:8200").ok().as_deref(),
            Some("https://bao.example:8200")
        );
        assert!(openbao_base("ftp://x").is_err());
        assert!(openbao_base("127.0.0.1:8200").is_err());
    }

    #[test]
    fn openbao_error_bodies() {
        assert_eq!(
            bao_errors(r#"{"errors": ["path is already in use at transit/"]}"#),
            "path is already in use at transit/"
        );
        assert_eq!(bao_errors("<html>"), "no error message");
    }

    #[test]
    fn histograms_and_payloads() {
        let mut h = histogram().unwrap_or_else(|e| panic!("{e}"));
        for us in [100, 200, 300, 400, 10_000] {
            h.saturating_record(us);
        }
        assert_eq!(h.len(), 5);
        assert!(h.value_at_quantile(0.5) >= 299 && h.value_at_quantile(0.5) <= 301);
        assert_eq!(micros(Duration::ZERO), 1);
        let p = pseudo_random(1024);
        assert_eq!(p.len(), 1024);
        assert_ne!(p[..16], [0u8; 16]);
    }
}
