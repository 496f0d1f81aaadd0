//! The sensor's HTTPS client for the daas server's node endpoints.
//!
//! Two kinds of calls: joining (`POST /v1/identity/nodes/attest`, authenticated by the one-time
//! join token in the body) and everything after it (`/v1/identity/node/*`, authenticated by the
//! node's X.509-SVID as the TLS client certificate). The server is trusted only through the CA
//! the operator names (`DAAS_CACERT`): no platform roots.
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// How long one call to the server may take; the sensor serves from its cache meanwhile.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body the sensor reads (an entry list of a busy node fits easily).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Why a call to the server failed, by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The server could not be reached (or timed out): retry later, serve from the cache.
    #[error("the server is unreachable: {0}")]
    Unreachable(String),
    /// The server refused the request (its JSON error code and message).
    #[error("the server refused the request ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The server answered something the sensor cannot use.
    #[error("the server's answer is malformed: {0}")]
    Malformed(String),
    /// Local configuration: the CA file or the node identity cannot be used for TLS.
    #[error("{0}")]
    Config(String),
}

impl ServerError {
    /// A refusal that means the node's credentials are no longer accepted.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, Self::Refused { status: 401, .. })
    }
}

/// An SVID as the server returns it (the node's or a workload's).
#[derive(Debug, Clone)]
pub struct IssuedSvid {
    pub spiffe_id: String,
    /// DER certificates, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The trust bundle: DER CA certificates.
    pub bundle: Vec<CertificateDer<'static>>,
    /// Unix milliseconds.
    pub expires_at_ms: i64,
}

/// A registration entry of this node, as far as the sensor needs it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct NodeEntry {
    pub id: String,
    pub spiffe_id: String,
    pub selectors: Vec<String>,
    /// The app whose instance documents matching workloads receive.
    #[serde(default)]
    pub app: Option<String>,
}

/// What the node reports about a process to get its instance document.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceRequest<'a> {
    /// `sha256:<hex>` of the binary the sensor attested.
    pub binary_digest: &'a str,
    pub pid: u32,
    /// Unix milliseconds.
    pub started_at: i64,
    /// The matching entry's SPIFFE ID.
    pub workload_id: &'a str,
}

/// The server's answer to an instance request (verified by the caller before use).
#[derive(Debug, Clone, Deserialize)]
pub struct IssuedInstanceDocument {
    pub spiffe_id: String,
    pub instance_id: String,
    pub document: String,
    pub app_document: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

#[derive(Deserialize)]
struct SvidBody {
    spiffe_id: String,
    x509_svid: Vec<String>,
    bundle: Vec<String>,
    expires_at: i64,
}

#[derive(Deserialize)]
struct EntriesBody {
    entries: Vec<NodeEntry>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// Holds a credential: no `Debug`.
#[derive(Serialize)]
struct AttestBody<'a> {
    join_token: &'a str,
    csr: String,
}

#[derive(Serialize)]
struct WorkloadSvidBody<'a> {
    spiffe_id: &'a str,
    selectors: &'a [String],
    csr: String,
}

#[derive(Serialize)]
struct JwtSvidBody<'a> {
    spiffe_id: &'a str,
    selectors: &'a [String],
    audience: &'a [String],
}

/// Holds a bearer token: no `Debug`.
#[derive(Deserialize)]
struct JwtSvidAnswer {
    spiffe_id: String,
    token: String,
}

#[derive(Serialize)]
struct RenewBody {
    csr: String,
}

#[derive(Serialize)]
struct DenialBody<'a> {
    reason: &'a str,
    selectors: &'a [String],
}

/// A client for one server. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct ServerClient {
    http: reqwest::Client,
    base: String,
}

impl std::fmt::Debug for ServerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ServerClient {
    /// A client without a client certificate (only for joining).
    pub fn anonymous(addr: &str, server_ca_pem: &[u8]) -> Result<Self, ServerError> {
        Self::build(addr, server_ca_pem, None)
    }

    /// A client that authenticates as the node: `identity_pem` is the node SVID chain followed
    /// by its PKCS#8 key, in PEM.
    pub fn as_node(
        addr: &str,
        server_ca_pem: &[u8],
        identity_pem: &Zeroizing<Vec<u8>>,
    ) -> Result<Self, ServerError> {
        Self::build(addr, server_ca_pem, Some(identity_pem))
    }

    fn build(
        addr: &str,
        server_ca_pem: &[u8],
        identity_pem: Option<&Zeroizing<Vec<u8>>>,
    ) -> Result<Self, ServerError> {
        let base = normalize_addr(addr)?;
        let certs = reqwest::Certificate::from_pem_bundle(server_ca_pem)
            .map_err(|_| ServerError::Config("the server CA file is not valid PEM".into()))?;
        if certs.is_empty() {
            return Err(ServerError::Config(
                "the server CA file contains no certificate".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tls_version_min(reqwest::tls::Version::TLS_1_3)
            .tls_certs_only(certs)
            .user_agent(concat!("daas-sensor/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = identity_pem {
            let identity = reqwest::Identity::from_pem(pem).map_err(|_| {
                ServerError::Config("the node identity cannot be used as a TLS client".into())
            })?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| ServerError::Config(format!("cannot set up the HTTPS client: {e}")))?;
        Ok(Self { http, base })
    }

    /// The server origin (`https://host:port`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Join with a one-time token: the node SVID for the key behind `csr_der`.
    pub async fn attest(
        &self,
        join_token: &str,
        csr_der: &[u8],
    ) -> Result<IssuedSvid, ServerError> {
        let body = AttestBody {
            join_token,
            csr: B64U.encode(csr_der),
        };
        let rb = self
            .http
            .post(format!("{}/v1/identity/nodes/attest", self.base))
            .json(&body);
        svid(self.send(rb).await?)
    }

    /// The registration entries this node serves.
    pub async fn entries(&self) -> Result<Vec<NodeEntry>, ServerError> {
        let rb = self
            .http
            .get(format!("{}/v1/identity/node/entries", self.base));
        let body: EntriesBody = parse(&self.send(rb).await?)?;
        Ok(body.entries)
    }

    /// An X.509-SVID for `spiffe_id`, for a workload showing `selectors`.
    pub async fn workload_svid(
        &self,
        spiffe_id: &str,
        selectors: &[String],
        csr_der: &[u8],
    ) -> Result<IssuedSvid, ServerError> {
        let body = WorkloadSvidBody {
            spiffe_id,
            selectors,
            csr: B64U.encode(csr_der),
        };
        let rb = self
            .http
            .post(format!("{}/v1/identity/node/svids", self.base))
            .json(&body);
        svid(self.send(rb).await?)
    }

    /// A JWT-SVID for `spiffe_id` and `audience`, for a workload showing `selectors`. Returns
    /// the ID the server names and the token (validated by the caller before use).
    pub async fn jwt_svid(
        &self,
        spiffe_id: &str,
        selectors: &[String],
        audience: &[String],
    ) -> Result<(String, Zeroizing<String>), ServerError> {
        let rb = self
            .http
            .post(format!("{}/v1/identity/node/jwt-svids", self.base))
            .json(&JwtSvidBody {
                spiffe_id,
                selectors,
                audience,
            });
        let body = Zeroizing::new(self.send(rb).await?);
        let answer: JwtSvidAnswer = parse(&body)?;
        Ok((answer.spiffe_id, Zeroizing::new(answer.token)))
    }

    /// An instance document of `app` for the process described by `request`.
    pub async fn instance_document(
        &self,
        app: &str,
        request: &InstanceRequest<'_>,
    ) -> Result<IssuedInstanceDocument, ServerError> {
        // The app name is validated by the entry it comes from (`[a-z0-9-]`): safe in a path.
        let rb = self
            .http
            .post(format!("{}/v1/identity/apps/{app}/instances", self.base))
            .json(request);
        parse(&self.send(rb).await?)
    }

    /// The trust bundle (the body of `GET /v1/identity/node/bundle`, parsed by the caller).
    pub async fn bundle(&self) -> Result<Vec<u8>, ServerError> {
        let rb = self
            .http
            .get(format!("{}/v1/identity/node/bundle", self.base));
        self.send(rb).await
    }

    /// A fresh node SVID for a new key.
    pub async fn renew(&self, csr_der: &[u8]) -> Result<IssuedSvid, ServerError> {
        let body = RenewBody {
            csr: B64U.encode(csr_der),
        };
        let rb = self
            .http
            .post(format!("{}/v1/identity/node/renew", self.base))
            .json(&body);
        svid(self.send(rb).await?)
    }

    /// Report a refused workload for the server's audit log.
    pub async fn report_denial(
        &self,
        reason: &str,
        selectors: &[String],
    ) -> Result<(), ServerError> {
        let rb = self
            .http
            .post(format!("{}/v1/identity/node/denials", self.base))
            .json(&DenialBody { reason, selectors });
        self.send(rb).await.map(drop)
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Vec<u8>, ServerError> {
        let mut response = rb
            .send()
            .await
            .map_err(|e| ServerError::Unreachable(error_chain(&e)))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ServerError::Unreachable(error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(ServerError::Malformed("the response is too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(body);
        }
        let (code, message) = serde_json::from_slice::<ErrorBody>(&body).map_or_else(
            |_| ("unknown".to_owned(), format!("HTTP {status}")),
            |e| (e.error.code, e.error.message),
        );
        Err(ServerError::Refused {
            status: status.as_u16(),
            code,
            message,
        })
    }
}

/// `https://host:port` from `host:port` or a URL; plain HTTP is refused.
fn normalize_addr(addr: &str) -> Result<String, ServerError> {
    let addr = addr.trim().trim_end_matches('/');
    if addr.starts_with("http://") {
        return Err(ServerError::Config(
            "the server address must use https".into(),
        ));
    }
    let with_scheme = if addr.starts_with("https://") {
        addr.to_owned()
    } else {
        format!("https://{addr}")
    };
    let url = reqwest::Url::parse(&with_scheme)
        .map_err(|_| ServerError::Config(format!("{addr:?} is not a server address")))?;
    if url.host_str().is_none() || url.path() != "/" || url.query().is_some() {
        return Err(ServerError::Config(format!(
            "{addr:?} is not a server address (expected host:port)"
        )));
    }
    Ok(with_scheme)
}

/// The error and its causes on one line (reqwest's top-level message alone says little).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ServerError> {
    serde_json::from_slice(body).map_err(|e| ServerError::Malformed(e.to_string()))
}

fn ders(texts: &[String], what: &str) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    texts
        .iter()
        .map(|t| {
            B64U.decode(t)
                .map(CertificateDer::from)
                .map_err(|_| ServerError::Malformed(format!("{what} is not base64url")))
        })
        .collect()
}

fn svid(body: Vec<u8>) -> Result<IssuedSvid, ServerError> {
    let body: SvidBody = parse(&body)?;
    let chain = ders(&body.x509_svid, "x509_svid")?;
    let bundle = ders(&body.bundle, "bundle")?;
    if chain.is_empty() || bundle.is_empty() {
        return Err(ServerError::Malformed("an empty chain or bundle".into()));
    }
    Ok(IssuedSvid {
        spiffe_id: body.spiffe_id,
        chain,
        bundle,
        expires_at_ms: body.expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalized_and_plain_http_is_refused() {
        assert_eq!(
            normalize_addr("127.0.0.1:8200").unwrap(),
            "https://127.0.0.1:8200"
        );
        assert_eq!(
            normalize_addr("https://daas.example:8200/").unwrap(),
            "https://daas.example:8200"
        );
        for bad in ["http://127.0.0.1:8200", "https://h:1/path", "", "a b"] {
            assert!(normalize_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_svid_answers_are_errors() {
        for body in [
            &b"{}"[..],
            br#"{"spiffe_id":"x","x509_svid":["!!"],"bundle":["AA"],"expires_at":1}"#,
            br#"{"spiffe_id":"x","x509_svid":[],"bundle":["AA"],"expires_at":1}"#,
        ] {
            assert!(matches!(
                svid(body.to_vec()),
                Err(ServerError::Malformed(_))
            ));
        }
    }
}
