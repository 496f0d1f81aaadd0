//! Client configuration: server address, token, trusted CA, connection options.
use core::fmt;
use std::time::Duration;

use reqwest::Url;

use crate::{Error, Result, SecretString};

/// `https://host:port` of the daas server.
pub const ENV_ADDR: &str = "DAAS_ADDR";
/// The bearer token (admin token or an app token).
pub const ENV_TOKEN: &str = "DAAS_TOKEN";
/// Path to a PEM file with the CA certificate(s) to trust (dev mode prints it).
pub const ENV_CACERT: &str = "DAAS_CACERT";

/// What a [`crate::Client`] connects to and how it authenticates.
#[derive(Clone)]
pub struct ClientConfig {
    /// `https://host[:port]`; `http://` is refused.
    pub addr: String,
    /// `Authorization: Bearer` token: the admin token or an app token (`daas_app_…`).
    pub token: SecretString,
    /// PEM certificate(s) of the CA to trust. When set, ONLY this CA is trusted (the built-in and
    /// platform roots are not). When `None`, the platform's trust store is used.
    pub ca_cert_pem: Option<Vec<u8>>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("addr", &self.addr)
            .field("token", &self.token)
            .field(
                "ca_cert_pem",
                &self
                    .ca_cert_pem
                    .as_ref()
                    .map(|p| format!("<{} bytes of PEM>", p.len())),
            )
            .finish()
    }
}

impl ClientConfig {
    /// From `DAAS_ADDR`, `DAAS_TOKEN` and `DAAS_CACERT` (optional path to a PEM file).
    pub fn from_env() -> Result<Self> {
        let token = match std::env::var(ENV_TOKEN) {
            Ok(t) if !t.trim().is_empty() => SecretString::new(t.trim().to_owned()),
            Ok(_) => {
                return Err(Error::invalid_input(format!(
                    "{ENV_TOKEN} is empty; set it to the admin or app token"
                )));
            }
            Err(std::env::VarError::NotPresent) => {
                return Err(Error::invalid_input(format!(
                    "{ENV_TOKEN} is not set; set it to the admin or app token"
                )));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Error::invalid_input(format!(
                    "{ENV_TOKEN} is not valid UTF-8"
                )));
            }
        };
        let (addr, ca_cert_pem) = addr_and_ca_from_env()?;
        Ok(Self {
            addr,
            token,
            ca_cert_pem,
        })
    }
}

/// `DAAS_ADDR` (required) and the contents of the file named by `DAAS_CACERT` (optional).
pub(crate) fn addr_and_ca_from_env() -> Result<(String, Option<Vec<u8>>)> {
    let addr = match std::env::var(ENV_ADDR) {
        Ok(a) if !a.trim().is_empty() => a.trim().to_owned(),
        Ok(_) | Err(std::env::VarError::NotPresent) => {
            return Err(Error::invalid_input(format!(
                "{ENV_ADDR} is not set; set it to https://host:port of the daas server"
            )));
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Error::invalid_input(format!(
                "{ENV_ADDR} is not valid UTF-8"
            )));
        }
    };
    let ca_cert_pem = match std::env::var_os(ENV_CACERT) {
        Some(path) if !path.is_empty() => {
            let pem = std::fs::read(&path).map_err(|e| {
                Error::invalid_input(format!(
                    "cannot read {ENV_CACERT} file {}: {e}",
                    std::path::Path::new(&path).display()
                ))
            })?;
            Some(pem)
        }
        _ => None,
    };
    Ok((addr, ca_cert_pem))
}

/// Connection tuning. The defaults suit interactive and service use.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout (connect, send, receive the full body).
    pub request_timeout: Duration,
    /// How long an idle keep-alive connection stays in the pool.
    pub pool_idle_timeout: Duration,
    /// Idle keep-alive connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// Speak HTTP/1.1 only (no h2 via ALPN). Each connection then carries one request at a time.
    pub http1_only: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            http1_only: false,
        }
    }
}

impl ClientOptions {
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }
    pub fn pool_idle_timeout(mut self, d: Duration) -> Self {
        self.pool_idle_timeout = d;
        self
    }
    pub fn pool_max_idle_per_host(mut self, n: usize) -> Self {
        self.pool_max_idle_per_host = n;
        self
    }
    pub fn http1_only(mut self, on: bool) -> Self {
        self.http1_only = on;
        self
    }
}

/// Validate a server address and return its origin, `https://host[:port]` without a trailing
/// slash. Only `https` is accepted; credentials, paths, queries and fragments are refused so
/// nothing can be smuggled into the request URLs built from it.
pub(crate) fn parse_addr(addr: &str) -> Result<String> {
    let addr = addr.trim();
    let url = Url::parse(addr)
        .map_err(|e| Error::invalid_input(format!("invalid server address {addr:?}: {e}")))?;
    if url.scheme() != "https" {
        return Err(Error::invalid_input(format!(
            "server address must use https:// (got {}://); daas only serves TLS",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid_input(format!(
            "server address {addr:?} has no host"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid_input(
            "server address must not contain credentials; use DAAS_TOKEN",
        ));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(Error::invalid_input(format!(
            "server address must not have a path (got {:?})",
            url.path()
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::invalid_input(
            "server address must not have a query or fragment",
        ));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_origins() {
        assert_eq!(
            parse_addr("https://127.0.0.1:8200").ok().as_deref(),
            Some("https://127.0.0.1:8200")
        );
        assert_eq!(
            parse_addr("https://127.0.0.1:8200/").ok().as_deref(),
            Some("https://127.0.0.1:8200")
        );
        assert_eq!(
            parse_addr(" https://Daas.Example.com:443 ").ok().as_deref(),
            Some("https://daas.example.com")
        );
        assert_eq!(
            parse_addr("https://[::1]:8200").ok().as_deref(),
            Some("https://[::1]:8200")
        );
    }

    #[test]
    fn refuses_plain_http_and_odd_urls() {
        for bad in [
            "http://127.0.0.1:8200",
            "127.0.0.1:8200",
            "ftp://x",
            "https://",
            "https://user:pw@host",
            "https://host/v1",
            "https://host/?a=b",
            "https://host/#frag",
            "",
        ] {
            let err = parse_addr(bad).err();
            assert!(
                matches!(err, Some(Error::InvalidInput(_))),
                "{bad:?} gave {err:?}"
            );
        }
        let msg = parse_addr("http://127.0.0.1:8200")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("https://"), "{msg}");
    }

    #[test]
    fn config_debug_redacts_token() {
        let cfg = ClientConfig {
            addr: "https://h:1".into(),
            token: SecretString::from("daas_app_topsecret"),
            ca_cert_pem: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
        };
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("topsecret"), "{dbg}");
        assert!(dbg.contains("https://h:1"));
    }
}
