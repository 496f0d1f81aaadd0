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

use crate::cli::{BenchArgs, BenchTarget};

/// Transit key used for the OpenBao runs.
const BAO_KEY: &str = "bench";
/// Histogram range: 1 µs .. 1 h, 3 significant digits.
const HIST_MAX_US: u64 = 3_600_000_000;

pub async fn safe(args: BenchArgs) -> Result<()> {
    if args.size == 0 {
        bail!("--size must be at least 1 byte");
    }
    let payload: Arc<[u8]> = pseudo_random(args.size).into();
    let factory = match args.target {
        BenchTarget::Daas => Factory::Daas {
            config: ClientConfig::from_env()?,
            local: args.local,
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
            let factory = Factory::Openbao {
                base: openbao_base(&args.openbao_addr)?,
                token: SecretString::new(token),
            };
            factory.openbao_setup().await?;
            factory
        }
    };

    let mut rows = Vec::new();
    for &connections in &args.connections {
        let run = run_once(&factory, connections, args.duration, &payload).await?;
        for (op, hist) in [("encrypt", &run.encrypt), ("decrypt", &run.decrypt)] {
            rows.push(Row {
                target: factory.label(),
                op,
                connections,
                ops_per_sec: hist.len() as f64 / run.elapsed.as_secs_f64(),
                p50_ms: hist.value_at_quantile(0.50) as f64 / 1000.0,
                p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
            });
        }
    }
    crate::io::write_stdout(render_table(&rows).as_bytes())
}

struct Row {
    target: &'static str,
    op: &'static str,
    connections: u32,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn render_table(rows: &[Row]) -> String {
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
) -> Result<RunResult> {
    // Phase 1: one client (one keep-alive connection) per worker, warmed up by one round trip
    // so TLS handshakes are not measured.
    let mut warm = JoinSet::new();
    for _ in 0..connections {
        let worker = factory.worker()?;
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
        tasks.spawn(async move { worker.run(&payload, deadline, &ops).await });
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

fn progress_bar(label: &str, connections: u32, duration: Duration) -> ProgressBar {
    let len = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix} [{bar:40}] {elapsed_precise} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{label} x{connections}"));
    bar
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3)
        .map_err(|e| anyhow!("cannot create a latency histogram: {e:?}"))
}

fn micros(d: Duration) -> u64 {
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
    Daas { config: ClientConfig, local: bool },
    Openbao { base: String, token: SecretString },
}

impl Factory {
    fn label(&self) -> &'static str {
        match self {
            Self::Daas { local: false, .. } => "daas",
            Self::Daas { local: true, .. } => "daas-local",
            Self::Openbao { .. } => "openbao",
        }
    }

    fn worker(&self) -> Result<Worker> {
        match self {
            Self::Daas { config, local } => {
                let options = ClientOptions::default().pool_max_idle_per_host(1);
                Ok(Worker::Daas {
                    client: Client::with_options(config.clone(), options)?,
                    local: *local,
                })
            }
            Self::Openbao { base, token } => Ok(Worker::Openbao {
                http: openbao_client()?,
                base: base.clone(),
                token: bao_token(token)?,
            }),
        }
    }

    /// Mount transit and create the key, tolerating "already there".
    async fn openbao_setup(&self) -> Result<()> {
        let Self::Openbao { base, token } = self else {
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

fn bao_token(token: &SecretString) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(token.expose().trim())
        .map_err(|_| anyhow!("the OpenBao token contains invalid characters"))?;
    v.set_sensitive(true);
    Ok(v)
}

/// `--openbao-addr`: http (OpenBao dev servers are plain HTTP) or https; origin only.
fn openbao_base(addr: &str) -> Result<String> {
    let url = reqwest::Url::parse(addr.trim())
        .map_err(|e| anyhow!("invalid --openbao-addr {addr:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("--openbao-addr must be http://host:port or https://host:port");
    }
    Ok(url.origin().ascii_serialization())
}

/// Accept a 2xx, or an error whose message contains one of `tolerated`.
async fn bao_ok(resp: reqwest::Response, tolerated: &[&str]) -> Result<()> {
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
    Daas {
        client: Client,
        local: bool,
    },
    Openbao {
        http: reqwest::Client,
        base: String,
        token: HeaderValue,
    },
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
    ) -> Result<(Histogram<u64>, Histogram<u64>)> {
        let mut enc = histogram()?;
        let mut dec = histogram()?;
        while Instant::now() < deadline {
            let t0 = Instant::now();
            let sealed = self.encrypt(payload).await?;
            let t1 = Instant::now();
            enc.saturating_record(micros(t1 - t0));
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
            Self::Openbao { http, base, token } => {
                #[derive(Deserialize)]
                struct Data {
                    ciphertext: String,
                }
                #[derive(Deserialize)]
                struct Resp {
                    data: Data,
                }
                let body = serde_json::json!({ "plaintext": STANDARD.encode(payload) });
                let resp = http
                    .post(format!("{base}/v1/transit/encrypt/{BAO_KEY}"))
                    .header("X-Vault-Token", token.clone())
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| anyhow!("OpenBao request failed: {}", chain(&e)))?;
                let r: Resp = bao_json(resp).await?;
                Ok(Sealed::Openbao(r.data.ciphertext))
            }
        }
    }

    async fn decrypt(&self, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>> {
        match (self, sealed) {
            (Self::Daas { client, local }, Sealed::Daas { ciphertext, share }) => Ok(if *local {
                client.decrypt_local(ciphertext, share).await?
            } else {
                client.decrypt(ciphertext, share).await?
            }),
            (Self::Openbao { http, base, token }, Sealed::Openbao(ciphertext)) => {
                #[derive(Deserialize)]
                struct Data {
                    plaintext: String,
                }
                #[derive(Deserialize)]
                struct Resp {
                    data: Data,
                }
                let resp = http
                    .post(format!("{base}/v1/transit/decrypt/{BAO_KEY}"))
                    .header("X-Vault-Token", token.clone())
                    .json(&serde_json::json!({ "ciphertext": ciphertext }))
                    .send()
                    .await
                    .map_err(|e| anyhow!("OpenBao request failed: {}", chain(&e)))?;
                let r: Resp = bao_json(resp).await?;
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

async fn bao_json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T> {
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| anyhow!("OpenBao response failed: {}", chain(&e)))?;
    if !status.is_success() {
        bail!(
            "OpenBao answered {}: {}",
            status.as_u16(),
            bao_errors(&body)
        );
    }
    serde_json::from_str(&body).map_err(|_| anyhow!("OpenBao returned an unexpected response body"))
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
