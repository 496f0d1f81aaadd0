//! `daas bench token`: DPoP-bound access token issuance over HTTPS (`POST /v1/token`), as a
//! client asks for it: bearer credential (`DAAS_TOKEN`) plus a fresh DPoP proof per request,
//! signed by a key of its own per connection (Ed25519).
//!
//! Same lean generator as `daas bench svid`: one HTTP/1.1 keep-alive connection per worker
//! over TLS 1.3 trusting only the daas CA; anything but a 200 carrying a DPoP token stops the
//! run. The proof of each request is built just before it, inside the timed window and on the
//! same machine (so it competes with the server for CPU), but outside the request's latency; its
//! own cost is reported on the `proof` rows (proofs/s of one core, and the time to build one).
use anyhow::{Result, anyhow, bail};
use daas_sdk::{Client, ClientConfig};
use daas_token::{Alg, SigningKey};
use hdrhistogram::Histogram;
use reqwest::header::HeaderValue;
use serde::Deserialize;

use crate::bench::{LoadWorker, RawConnection, RawTarget, Row, daas_json, measure, render_table};
use crate::cli::BenchTokenArgs;

const TOKEN_PATH: &str = "/v1/token";

pub async fn token(args: BenchTokenArgs) -> Result<()> {
    let config = ClientConfig::from_env()?;
    // The proofs' `htu`: the token endpoint as the server names it for DAAS_ADDR.
    let url = Client::new(config.clone())?.endpoint(TOKEN_PATH);
    let body = serde_json::to_vec(&serde_json::json!({
        "aud": args.aud,
        "scope": args.scope,
    }))?;
    let target = RawTarget::daas_endpoint(&config, TOKEN_PATH, TOKEN_PATH, body.into())?;
    let mut rows = Vec::new();
    for &connections in &args.load.connections {
        let mut workers = Vec::new();
        for _ in 0..connections {
            workers.push(TokenWorker {
                conn: target.connect().await?,
                key: SigningKey::generate(Alg::EdDsa)
                    .map_err(|e| anyhow!("cannot make a proof key: {e}"))?,
                url: url.clone(),
                nonce: None,
                proof: None,
                proof_ns: proof_histogram()?,
            });
        }
        let (hist, elapsed, workers) =
            measure("daas", workers, args.load.duration, "tokens").await?;
        rows.push(Row::of("daas", "token", connections, &hist, elapsed));
        let mut proofs = proof_histogram()?;
        for w in &workers {
            proofs
                .add(&w.proof_ns)
                .map_err(|_| anyhow!("cannot merge histograms"))?;
        }
        rows.push(proof_row(connections, &proofs));
    }
    crate::io::write_stdout(render_table(&rows).as_bytes())
}

/// Proof-building times in ns, 1 ns to 10 s. Bounded: `saturating_record` on an unbounded
/// (auto-resizing) histogram would clamp every value to its initial range.
fn proof_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3)
        .map_err(|e| anyhow!("cannot create a histogram: {e:?}"))
}

/// The client's proof building: per second of one core, and the time to build one.
fn proof_row(connections: u32, ns: &Histogram<u64>) -> Row {
    let mean = ns.mean();
    Row {
        target: "client",
        op: "proof",
        connections,
        ops_per_sec: if mean > 0.0 { 1e9 / mean } else { 0.0 },
        p50_ms: ns.value_at_quantile(0.50) as f64 / 1e6,
        p99_ms: ns.value_at_quantile(0.99) as f64 / 1e6,
    }
}

struct TokenWorker {
    conn: RawConnection,
    key: SigningKey,
    url: String,
    /// The server's last `DPoP-Nonce`, signed into the next proof.
    nonce: Option<String>,
    /// The proof for the next request, built by [`LoadWorker::prepare`].
    proof: Option<HeaderValue>,
    proof_ns: Histogram<u64>,
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl LoadWorker for TokenWorker {
    fn prepare(&mut self) -> Result<()> {
        let t = std::time::Instant::now();
        let proof = daas_token::build_proof(
            &self.key,
            "POST",
            &self.url,
            now_secs(),
            None,
            None,
            self.nonce.as_deref(),
        )
        .map_err(|e| anyhow!("cannot build the proof: {e}"))?;
        self.proof_ns
            .saturating_record(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        self.proof = Some(
            HeaderValue::from_str(&proof)
                .map_err(|_| anyhow!("the proof is not a header value"))?,
        );
        Ok(())
    }

    async fn once(&mut self) -> Result<()> {
        #[derive(Deserialize)]
        struct Resp {
            access_token: String,
            token_type: String,
        }
        let Some(proof) = self.proof.take() else {
            bail!("internal benchmark error: no proof prepared");
        };
        let (status, headers, body) = self
            .conn
            .post_with_headers(
                TOKEN_PATH,
                self.conn.target.encrypt_body.clone(),
                Some(("dpop", proof)),
            )
            .await?;
        // Every answer carries the nonce for the next proof (RFC 9449 §8).
        if let Some(nonce) = headers.get("dpop-nonce").and_then(|v| v.to_str().ok()) {
            self.nonce = Some(nonce.to_owned());
        }
        if status == hyper::StatusCode::BAD_REQUEST
            && body.windows(14).any(|w| w == b"use_dpop_nonce")
        {
            // The first request of a connection, or a nonce that aged out: the server's
            // challenge is part of the protocol, so it counts as one request and the next proof
            // carries the nonce.
            return Ok(());
        }
        let r: Resp = daas_json(status, &body)?;
        if r.token_type != "DPoP" || r.access_token.split('.').count() != 3 {
            bail!("the token endpoint answered something other than a DPoP-bound JWT");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_rows_are_per_core_rates() {
        let mut h = proof_histogram().unwrap_or_else(|e| panic!("{e:?}"));
        for ns in [40_000, 40_000, 40_000, 40_000] {
            h.saturating_record(ns);
        }
        let row = proof_row(4, &h);
        assert_eq!(
            (row.target, row.op, row.connections),
            ("client", "proof", 4)
        );
        assert!(
            (row.ops_per_sec - 25_000.0).abs() < 50.0,
            "{}",
            row.ops_per_sec
        );
        assert!((row.p50_ms - 0.040).abs() < 0.001, "{}", row.p50_ms);
        assert_eq!(
            proof_row(1, &proof_histogram().unwrap_or_else(|e| panic!("{e:?}"))).ops_per_sec,
            0.0
        );
    }
}
