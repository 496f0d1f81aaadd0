//! The HTTP client: one `reqwest::Client` (connection pool, keep-alive) per [`Client`].
use core::fmt;
use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};

use daas_crypto::envelope::{self, Context, Envelope, Suite};
use daas_crypto::share::{Share, ShareIndex};
use daas_crypto::{CryptoError, Key256, ObjectId, commit, xor};
use reqwest::header::{self, HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use crate::body::{MAX_RESPONSE, b64u_decode_secret, b64u_secret, json_body, read_body};
use crate::config::{ClientConfig, ClientOptions, addr_and_ca_from_env, parse_addr};
use crate::error::{api_error, transport};
use crate::types::{
    AppCreated, AppInfo, AuditEntry, AuditReport, EncryptOptions, Encrypted, EntryInfo, Health,
    IssuedToken, JoinToken, NewEntry, ObjectInfo, SealStatus, SecretInfo, SecretStored,
    SecretValue, StatusStaple, TokenRevocation, TrustBundle,
};
use crate::{Error, Result, SecretString};

/// Key version of client-mode objects (`docs/api.md`: clients seal with `key_version = 1`).
const CLIENT_KEY_VERSION: u32 = 1;
/// AEAD used for client-mode sealing (a fresh key per object, so random nonces never repeat).
const CLIENT_SUITE: Suite = Suite::XChaCha20Poly1305;
/// Error bodies are small; read at most this much of one.
const MAX_ERROR_BODY: usize = 64 * 1024;
const SHARE_HEADER: HeaderName = HeaderName::from_static("daas-share");

/// A daas API client. Cheap to clone (clones share one connection pool).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `https://host[:port]`, no trailing slash.
    base: String,
    /// `Bearer <token>`, marked sensitive; `None` for an unauthenticated client.
    authorization: Option<HeaderValue>,
    /// The caller's principal from `whoami`, fetched once for client-mode sealing.
    principal: OnceCell<String>,
    /// The last `DPoP-Nonce` the token endpoints sent (RFC 9449 §8), used in the next proof.
    dpop_nonce: Mutex<Option<String>>,
}

/// The longest `DPoP-Nonce` remembered (the server's are 55 characters).
const MAX_NONCE_LEN: usize = 256;

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.base)
            .field(
                "token",
                &self.inner.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Client {
    /// A client with default [`ClientOptions`].
    pub fn new(config: ClientConfig) -> Result<Self> {
        Self::with_options(config, ClientOptions::default())
    }

    pub fn with_options(config: ClientConfig, options: ClientOptions) -> Result<Self> {
        if config.token.expose().trim().is_empty() {
            return Err(Error::invalid_input("the token is empty"));
        }
        Self::build(
            &config.addr,
            Some(&config.token),
            None,
            config.ca_cert_pem.as_deref(),
            &options,
        )
    }

    /// A client that authenticates with a workload's X.509-SVID in the TLS handshake instead
    /// of a bearer token (accepted by `POST /v1/token`, whose token then names the SPIFFE ID).
    /// `svid_pem` holds the certificate chain (leaf first) and the PKCS#8 private key, in PEM.
    pub fn with_svid(
        addr: &str,
        svid_pem: &[u8],
        ca_cert_pem: Option<&[u8]>,
        options: &ClientOptions,
    ) -> Result<Self> {
        let identity = reqwest::Identity::from_pem(svid_pem).map_err(|_| {
            Error::invalid_input("the svid is not a PEM certificate chain and private key")
        })?;
        Self::build(addr, None, Some(identity), ca_cert_pem, options)
    }

    /// [`Client::with_svid`] with `DAAS_ADDR` and `DAAS_CACERT` (`DAAS_TOKEN` is ignored).
    pub fn with_svid_from_env(svid_pem: &[u8]) -> Result<Self> {
        let (addr, ca) = addr_and_ca_from_env()?;
        Self::with_svid(&addr, svid_pem, ca.as_deref(), &ClientOptions::default())
    }

    /// From `DAAS_ADDR`, `DAAS_TOKEN` and `DAAS_CACERT`.
    pub fn from_env() -> Result<Self> {
        Self::new(ClientConfig::from_env()?)
    }

    /// A client without a token, for the endpoints that need none (`health`, `unseal`).
    pub fn unauthenticated(
        addr: &str,
        ca_cert_pem: Option<&[u8]>,
        options: &ClientOptions,
    ) -> Result<Self> {
        Self::build(addr, None, None, ca_cert_pem, options)
    }

    /// [`Client::unauthenticated`] from `DAAS_ADDR` and `DAAS_CACERT` (`DAAS_TOKEN` is ignored).
    pub fn unauthenticated_from_env() -> Result<Self> {
        let (addr, ca) = addr_and_ca_from_env()?;
        Self::unauthenticated(&addr, ca.as_deref(), &ClientOptions::default())
    }

    fn build(
        addr: &str,
        token: Option<&SecretString>,
        identity: Option<reqwest::Identity>,
        ca_cert_pem: Option<&[u8]>,
        options: &ClientOptions,
    ) -> Result<Self> {
        let base = parse_addr(addr)?;
        let authorization = match token {
            Some(token) => {
                let value = Zeroizing::new(format!("Bearer {}", token.expose().trim()));
                let mut value = HeaderValue::from_str(&value).map_err(|_| {
                    Error::invalid_input(
                        "the token contains characters that cannot be sent in a header",
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_max_idle_per_host(options.pool_max_idle_per_host)
            .tcp_keepalive(std::time::Duration::from_secs(60))
            .tcp_nodelay(true)
            .tls_version_min(reqwest::tls::Version::TLS_1_2)
            .user_agent(concat!("daas-sdk/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_cert_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| Error::invalid_input("the CA certificate file is not valid PEM"))?;
            if certs.is_empty() {
                return Err(Error::invalid_input(
                    "the CA certificate file contains no certificate",
                ));
            }
            // Trust ONLY this CA: no built-in or platform roots.
            builder = builder.tls_certs_only(certs);
        }
        if options.http1_only {
            builder = builder.http1_only();
        }
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| Error::invalid_input(format!("cannot set up the HTTPS client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                authorization,
                principal: OnceCell::new(),
                dpop_nonce: Mutex::new(None),
            }),
        })
    }

    /// The server origin this client talks to (`https://host[:port]`).
    pub fn addr(&self) -> &str {
        &self.inner.base
    }

    // ------------------------------------------------------------------ plumbing

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.inner.http.request(method, self.url(path));
        match &self.inner.authorization {
            Some(auth) => rb.header(header::AUTHORIZATION, auth.clone()),
            None => rb,
        }
    }

    fn json_request<T: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: &T,
        capacity: usize,
    ) -> Result<RequestBuilder> {
        Ok(self
            .request(method, path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(json_body(body, capacity)?))
    }

    /// Send; any non-2xx status becomes [`Error::Api`] from the error body.
    async fn send(&self, rb: RequestBuilder) -> Result<reqwest::Response> {
        let resp = rb
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = read_body(resp, MAX_ERROR_BODY).await.unwrap_or_default();
        Err(api_error(status, &body))
    }

    /// Send and return the whole (zeroizing) body of a 2xx answer.
    async fn send_body(&self, rb: RequestBuilder) -> Result<Zeroizing<Vec<u8>>> {
        let resp = self.send(rb).await?;
        read_body(resp, MAX_RESPONSE).await
    }

    async fn send_json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        let body = self.send_body(rb).await?;
        parse(&body)
    }

    async fn send_empty(&self, rb: RequestBuilder) -> Result<()> {
        let resp = self.send(rb).await?;
        // Drain so the connection returns to the pool.
        read_body(resp, MAX_RESPONSE).await.map(drop)
    }

    async fn principal(&self) -> Result<&str> {
        self.inner
            .principal
            .get_or_try_init(|| self.fetch_principal())
            .await
            .map(String::as_str)
    }

    async fn fetch_principal(&self) -> Result<String> {
        #[derive(Deserialize)]
        struct Whoami {
            principal: String,
        }
        let w: Whoami = self
            .send_json(self.request(Method::GET, "/v1/sys/whoami"))
            .await?;
        if w.principal.is_empty() {
            return Err(Error::invalid_response(
                "whoami returned an empty principal",
            ));
        }
        Ok(w.principal)
    }

    // ------------------------------------------------------------------ sys

    /// `GET /v1/sys/health` (no authentication). A 503 is returned as [`Error::Api`].
    pub async fn health(&self) -> Result<Health> {
        self.send_json(self.inner.http.get(self.url("/v1/sys/health")))
            .await
    }

    /// The caller's principal: `admin` or `app:<name>`.
    pub async fn whoami(&self) -> Result<String> {
        let principal = self.fetch_principal().await?;
        // Caches for client-mode sealing; a concurrent initialisation with the same token wins equally.
        let _ = self.inner.principal.set(principal.clone());
        Ok(principal)
    }

    /// `POST /v1/sys/unseal`: submit one Shamir unseal share (`daas:unseal:v1:…`).
    pub async fn unseal(&self, share: &SecretString) -> Result<SealStatus> {
        #[derive(Serialize)]
        struct Req<'a> {
            share: &'a str,
        }
        let share = share.expose().trim();
        let rb = self.json_request(
            Method::POST,
            "/v1/sys/unseal",
            &Req { share },
            share.len() + 32,
        )?;
        self.send_json(rb).await
    }

    // ------------------------------------------------------------------ safe, server mode

    /// Server mode: the server encrypts. Returns the ciphertext and the caller's share.
    pub async fn encrypt(&self, plaintext: &[u8], opts: &EncryptOptions) -> Result<Encrypted> {
        #[derive(Serialize)]
        struct Req<'a> {
            plaintext: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            audience: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            access: Option<&'a [String]>,
        }
        #[derive(Deserialize)]
        struct Resp<'a> {
            #[serde(borrow)]
            object_id: Cow<'a, str>,
            ciphertext: String,
            #[serde(borrow)]
            share: Cow<'a, str>,
        }
        let pt = b64u_secret(plaintext);
        let req = Req {
            plaintext: &pt,
            audience: opts.audience.as_deref(),
            access: (!opts.access.is_empty()).then_some(&opts.access[..]),
        };
        let capacity = pt.len() + options_len(opts) + 64;
        let body = self
            .send_body(self.json_request(Method::POST, "/v1/safe/encrypt", &req, capacity)?)
            .await?;
        drop(pt);
        let resp: Resp<'_> = parse(&body)?;
        let object_id = ObjectId::from_hex(&resp.object_id)
            .map_err(|_| Error::invalid_response("object_id is not 32 hex characters"))?;
        let share = SecretString::new(resp.share.into_owned());
        check_issued(&object_id, &resp.ciphertext, &share)?;
        Ok(Encrypted {
            object_id,
            ciphertext: resp.ciphertext,
            share,
        })
    }

    /// Server mode: the server combines `share` with its own and decrypts. Works for objects of
    /// either mode (for client-mode objects prefer [`Client::decrypt_local`], which keeps the
    /// share on this side). The share is checked against the ciphertext's object id before it
    /// is sent anywhere.
    pub async fn decrypt(
        &self,
        ciphertext: &str,
        share: &SecretString,
    ) -> Result<Zeroizing<Vec<u8>>> {
        #[derive(Serialize)]
        struct Req<'a> {
            ciphertext: &'a str,
            share: &'a str,
        }
        #[derive(Deserialize)]
        struct Resp<'a> {
            #[serde(borrow)]
            plaintext: Cow<'a, str>,
        }
        let ciphertext = ciphertext.trim();
        let share_text = share.expose().trim();
        parse_pair(ciphertext, share_text)?;
        let req = Req {
            ciphertext,
            share: share_text,
        };
        let rb = self.json_request(
            Method::POST,
            "/v1/safe/decrypt",
            &req,
            ciphertext.len() + share_text.len() + 64,
        )?;
        let body = self.send_body(rb).await?;
        let resp: Resp<'_> = parse(&body)?;
        b64u_decode_secret("plaintext", &resp.plaintext)
    }

    // ------------------------------------------------------------------ safe, client mode

    /// Client mode (end to end): generate the object key `k` here, seal locally with
    /// `owner = <caller's principal>` and key version 1, split `k = t1 ⊕ t2`, and deposit only
    /// `t2` and the key commitment. The plaintext and `k` never leave this process.
    pub async fn encrypt_local(
        &self,
        plaintext: &[u8],
        opts: &EncryptOptions,
    ) -> Result<Encrypted> {
        #[derive(Serialize)]
        struct Req<'a> {
            share: &'a str,
            commitment: &'a str,
            suite: u8,
            audience: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            access: Option<&'a [String]>,
        }
        #[derive(Deserialize)]
        struct Resp {
            object_id: String,
            owner: String,
            key_version: u32,
        }
        if plaintext.len() > envelope::MAX_PLAINTEXT {
            return Err(Error::invalid_input(format!(
                "plaintext is larger than {} bytes",
                envelope::MAX_PLAINTEXT
            )));
        }
        let owner = self.principal().await?.to_owned();
        let audience = opts.audience.as_deref().unwrap_or("");
        let object_id = ObjectId::generate()?;

        let (ciphertext, commitment, t1, t2) = {
            let k = Key256::generate()?;
            let ctx = Context {
                object_id,
                key_version: CLIENT_KEY_VERSION,
                owner: &owner,
                audience,
            };
            let sealed = envelope::seal(&k, CLIENT_SUITE, &ctx, plaintext)?;
            let commitment = commit::commitment(&k, &object_id);
            let (t1, t2) = xor::split(&k)?;
            (sealed.encode(), commitment, t1, t2)
            // `k` is zeroized here.
        };
        let server_share = Zeroizing::new(
            Share {
                object_id,
                index: ShareIndex::Server,
                key: t2,
            }
            .encode(),
        );
        let client_share = SecretString::new(
            Share {
                object_id,
                index: ShareIndex::Client,
                key: t1,
            }
            .encode(),
        );
        let commitment_text = b64u_secret(&commitment);

        let req = Req {
            share: &server_share,
            commitment: &commitment_text,
            suite: CLIENT_SUITE as u8,
            audience,
            access: (!opts.access.is_empty()).then_some(&opts.access[..]),
        };
        let capacity = server_share.len() + commitment_text.len() + options_len(opts) + 96;
        let resp: Resp = self
            .send_json(self.json_request(Method::POST, "/v1/safe/objects", &req, capacity)?)
            .await?;
        drop(server_share);

        // The owner and key version are bound into the AAD: if the server recorded anything else,
        // this ciphertext could never be opened.
        if resp.object_id != object_id.to_hex()
            || resp.owner != owner
            || resp.key_version != CLIENT_KEY_VERSION
        {
            return Err(Error::invalid_response(
                "the server recorded the deposit with another object id, owner or key version",
            ));
        }
        Ok(Encrypted {
            object_id,
            ciphertext,
            share: client_share,
        })
    }

    /// Client mode (end to end): fetch `t2` (the caller must be on the access list), combine it
    /// with `share` here, verify the key commitment and open locally. The client share never
    /// leaves this process; a share of another object is refused before any network call.
    pub async fn decrypt_local(
        &self,
        ciphertext: &str,
        share: &SecretString,
    ) -> Result<Zeroizing<Vec<u8>>> {
        #[derive(Deserialize)]
        struct Resp<'a> {
            #[serde(borrow)]
            share: Cow<'a, str>,
            commitment: String,
            owner: String,
            audience: String,
            key_version: u32,
            suite: u8,
        }
        let (envelope, t1) = parse_pair(ciphertext.trim(), share.expose().trim())?;
        let id = envelope.object_id;
        let body = self
            .send_body(self.request(
                Method::GET,
                &format!("/v1/safe/objects/{}/share", id.to_hex()),
            ))
            .await?;
        let resp: Resp<'_> = parse(&body)?;

        let t2 = Share::parse(&resp.share)?;
        if t2.object_id != id {
            return Err(CryptoError::ShareObjectMismatch.into());
        }
        if t2.index != ShareIndex::Server {
            return Err(Error::invalid_response(
                "the server returned a share that is not the server share",
            ));
        }
        if resp.suite != envelope.suite as u8 {
            return Err(CryptoError::AuthenticationFailed.into());
        }
        let commitment: [u8; 32] = b64u_decode_secret("commitment", &resp.commitment)?
            .as_slice()
            .try_into()
            .map_err(|_| Error::invalid_response("commitment is not 32 bytes"))?;

        let k = xor::combine(&t1.key, &t2.key);
        drop((t1, t2));
        commit::verify(&k, &id, &commitment)?;
        let ctx = Context {
            object_id: id,
            key_version: resp.key_version,
            owner: &resp.owner,
            audience: &resp.audience,
        };
        let mut plaintext = envelope::open(&k, &envelope, &ctx)?;
        drop(k);
        // Move the bytes out (no copy); the emptied `SecretBytes` has nothing left to wipe.
        Ok(Zeroizing::new(core::mem::take(&mut plaintext.0)))
    }

    // ------------------------------------------------------------------ objects

    /// Object metadata (owner, admin, or anyone on the access list).
    pub async fn object(&self, id: &ObjectId) -> Result<ObjectInfo> {
        self.send_json(self.request(Method::GET, &format!("/v1/safe/objects/{}", id.to_hex())))
            .await
    }

    /// Replace the access list (owner or admin; the owner is always kept).
    pub async fn set_access(&self, id: &ObjectId, access: &[String]) -> Result<ObjectInfo> {
        #[derive(Serialize)]
        struct Req<'a> {
            access: &'a [String],
        }
        let capacity = access.iter().map(|a| a.len() + 4).sum::<usize>() + 16;
        let rb = self.json_request(
            Method::PUT,
            &format!("/v1/safe/objects/{}/access", id.to_hex()),
            &Req { access },
            capacity,
        )?;
        self.send_json(rb).await
    }

    /// Delete the server share: every copy of the ciphertext becomes undecryptable.
    pub async fn delete_object(&self, id: &ObjectId) -> Result<()> {
        self.send_empty(self.request(Method::DELETE, &format!("/v1/safe/objects/{}", id.to_hex())))
            .await
    }

    // ------------------------------------------------------------------ stored secrets

    /// Store (or replace) a secret; keep the returned share — it is needed to read the value.
    pub async fn secret_put(&self, name: &str, value: &[u8]) -> Result<SecretStored> {
        #[derive(Serialize)]
        struct Req<'a> {
            value: &'a str,
        }
        #[derive(Deserialize)]
        struct Resp<'a> {
            name: String,
            version: u64,
            #[serde(borrow)]
            share: Cow<'a, str>,
        }
        validate_secret_name(name)?;
        let v = b64u_secret(value);
        let rb = self.json_request(
            Method::PUT,
            &secret_path(name),
            &Req { value: &v },
            v.len() + 32,
        )?;
        drop(v);
        let body = self.send_body(rb).await?;
        let resp: Resp<'_> = parse(&body)?;
        Ok(SecretStored {
            name: resp.name,
            version: resp.version,
            share: SecretString::new(resp.share.into_owned()),
        })
    }

    /// Read a secret with the share returned by [`Client::secret_put`].
    pub async fn secret_get(&self, name: &str, share: &SecretString) -> Result<SecretValue> {
        #[derive(Deserialize)]
        struct Resp<'a> {
            name: String,
            version: u64,
            #[serde(borrow)]
            value: Cow<'a, str>,
        }
        validate_secret_name(name)?;
        let mut share_header = HeaderValue::from_str(share.expose().trim()).map_err(|_| {
            Error::invalid_input("the share contains characters that cannot be sent in a header")
        })?;
        share_header.set_sensitive(true);
        let body = self
            .send_body(
                self.request(Method::GET, &secret_path(name))
                    .header(SHARE_HEADER, share_header),
            )
            .await?;
        let resp: Resp<'_> = parse(&body)?;
        let value = b64u_decode_secret("value", &resp.value)?;
        Ok(SecretValue {
            name: resp.name,
            version: resp.version,
            value,
        })
    }

    pub async fn secret_delete(&self, name: &str) -> Result<()> {
        validate_secret_name(name)?;
        self.send_empty(self.request(Method::DELETE, &secret_path(name)))
            .await
    }

    /// Secrets visible to the caller (admin: all; apps: their own).
    pub async fn secret_list(&self) -> Result<Vec<SecretInfo>> {
        #[derive(Deserialize)]
        struct Resp {
            secrets: Vec<SecretInfo>,
        }
        let r: Resp = self
            .send_json(self.request(Method::GET, "/v1/secrets"))
            .await?;
        Ok(r.secrets)
    }

    // ------------------------------------------------------------------ apps (admin)

    /// Create an app; its token is returned once.
    pub async fn app_create(&self, name: &str) -> Result<AppCreated> {
        #[derive(Serialize)]
        struct Req<'a> {
            name: &'a str,
        }
        #[derive(Deserialize)]
        struct Resp<'a> {
            id: String,
            name: String,
            principal: String,
            #[serde(borrow)]
            token: Cow<'a, str>,
        }
        let body = self
            .send_body(self.json_request(
                Method::POST,
                "/v1/apps",
                &Req { name },
                name.len() + 16,
            )?)
            .await?;
        let r: Resp<'_> = parse(&body)?;
        Ok(AppCreated {
            id: r.id,
            name: r.name,
            principal: r.principal,
            token: SecretString::new(r.token.into_owned()),
        })
    }

    pub async fn app_list(&self) -> Result<Vec<AppInfo>> {
        #[derive(Deserialize)]
        struct Resp {
            apps: Vec<AppInfo>,
        }
        let r: Resp = self
            .send_json(self.request(Method::GET, "/v1/apps"))
            .await?;
        Ok(r.apps)
    }

    // ------------------------------------------------------------------ identity (admin)

    /// A one-time join token for a sensor, valid for `ttl` (server default 10 min, max 24 h).
    pub async fn join_token_create(&self, ttl: Option<std::time::Duration>) -> Result<JoinToken> {
        #[derive(Serialize)]
        struct Req {
            #[serde(skip_serializing_if = "Option::is_none")]
            ttl_secs: Option<u64>,
        }
        #[derive(Deserialize)]
        struct Resp<'a> {
            #[serde(borrow)]
            token: Cow<'a, str>,
            expires_at: i64,
        }
        let req = Req {
            ttl_secs: ttl.map(|d| d.as_secs()),
        };
        let body = self
            .send_body(self.json_request(Method::POST, "/v1/identity/join-tokens", &req, 32)?)
            .await?;
        let r: Resp<'_> = parse(&body)?;
        Ok(JoinToken {
            token: SecretString::new(r.token.into_owned()),
            expires_at: r.expires_at,
        })
    }

    pub async fn entry_create(&self, entry: &NewEntry) -> Result<EntryInfo> {
        self.send_json(self.json_request(Method::POST, "/v1/identity/entries", entry, 512)?)
            .await
    }

    pub async fn entry_list(&self) -> Result<Vec<EntryInfo>> {
        #[derive(Deserialize)]
        struct Resp {
            entries: Vec<EntryInfo>,
        }
        let r: Resp = self
            .send_json(self.request(Method::GET, "/v1/identity/entries"))
            .await?;
        Ok(r.entries)
    }

    pub async fn entry_delete(&self, id: &str) -> Result<()> {
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::invalid_input(
                "entry ids are 1-64 characters of [A-Za-z0-9_-]",
            ));
        }
        self.send_empty(self.request(Method::DELETE, &format!("/v1/identity/entries/{id}")))
            .await
    }

    /// The absolute URL of `path` on this server (what a DPoP proof's `htu` names).
    pub fn endpoint(&self, path: &str) -> String {
        self.url(path)
    }

    /// `POST /v1/token`: an access token for `aud` bound to `key`. The client signs the DPoP
    /// proof for `POST` [`Self::endpoint`]`("/v1/token")`; when the server asks for a nonce
    /// (`use_dpop_nonce`) it signs a new proof with it and retries once. Needs the admin or an
    /// app token, or a client built with [`Client::with_svid`].
    pub async fn token_get(
        &self,
        key: &daas_token::SigningKey,
        aud: &str,
        scope: Option<&str>,
        ttl_secs: Option<u64>,
    ) -> Result<IssuedToken> {
        let mut req = serde_json::json!({ "aud": aud });
        if let Some(scope) = scope {
            req["scope"] = scope.into();
        }
        if let Some(ttl) = ttl_secs {
            req["ttl_secs"] = ttl.into();
        }
        let body = self
            .dpop_post("/v1/token", key, &req, 256 + aud.len(), true)
            .await?;
        issued_token(&body)
    }

    /// `POST /v1/token/replace`: a new token for the lost token `jti`, with the same binding,
    /// proven by `key` (the key the lost token is bound to; nonce retry as for
    /// [`Self::token_get`]). No bearer credential is sent.
    pub async fn token_replace(
        &self,
        key: &daas_token::SigningKey,
        jti: &str,
    ) -> Result<IssuedToken> {
        let req = serde_json::json!({ "jti": jti });
        let body = self
            .dpop_post("/v1/token/replace", key, &req, 64 + jti.len(), false)
            .await?;
        issued_token(&body)
    }

    /// `POST path` with a DPoP proof by `key` carrying the last server nonce; a
    /// `use_dpop_nonce` answer that brings a new nonce is retried once with it. Every answer's
    /// `DPoP-Nonce` is remembered for the next proof.
    async fn dpop_post(
        &self,
        path: &str,
        key: &daas_token::SigningKey,
        body: &serde_json::Value,
        capacity: usize,
        authenticated: bool,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let url = self.url(path);
        let mut retried = false;
        loop {
            let nonce = self
                .inner
                .dpop_nonce
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let proof = daas_token::build_proof(
                key,
                "POST",
                &url,
                unix_now(),
                None,
                None,
                nonce.as_deref(),
            )
            .map_err(|e| Error::invalid_input(format!("cannot build the dpop proof: {e}")))?;
            let rb = if authenticated {
                self.request(Method::POST, path)
            } else {
                self.inner.http.post(&url)
            };
            let resp = rb
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, "application/json")
                .header("DPoP", proof)
                .body(json_body(body, capacity)?)
                .send()
                .await
                .map_err(transport)?;
            let fresh = self.remember_nonce(resp.headers());
            let status = resp.status();
            if status.is_success() {
                return read_body(resp, MAX_RESPONSE).await;
            }
            let error_body = read_body(resp, MAX_ERROR_BODY).await.unwrap_or_default();
            let error = api_error(status, &error_body);
            if retried || !fresh || error.code() != Some("use_dpop_nonce") {
                return Err(error);
            }
            retried = true;
        }
    }

    /// Keeps the answer's `DPoP-Nonce` (visible ASCII, bounded); whether it is a new one.
    fn remember_nonce(&self, headers: &header::HeaderMap) -> bool {
        let Some(nonce) = headers
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .filter(|n| {
                !n.is_empty() && n.len() <= MAX_NONCE_LEN && n.bytes().all(|b| b.is_ascii_graphic())
            })
        else {
            return false;
        };
        let mut last = self
            .inner
            .dpop_nonce
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let new = last.as_deref() != Some(nonce);
        *last = Some(nonce.to_owned());
        new
    }

    /// `POST /v1/token/revoke` (admin): revokes the token `jti`, or every token of `subject`;
    /// returns how many this call revoked.
    pub async fn token_revoke(&self, target: &TokenRevocation) -> Result<u64> {
        #[derive(Deserialize)]
        struct Resp {
            revoked: u64,
        }
        let body = match target {
            TokenRevocation::Jti(jti) => serde_json::json!({ "jti": jti }),
            TokenRevocation::Subject(subject) => serde_json::json!({ "subject": subject }),
        };
        let r: Resp = self
            .send_json(self.json_request(Method::POST, "/v1/token/revoke", &body, 256)?)
            .await?;
        Ok(r.revoked)
    }

    /// The token issuer's public keys: the body of `GET /.well-known/jwks.json` (no
    /// authentication), a JWK set for the caller to parse strictly.
    pub async fn token_jwks(&self) -> Result<Vec<u8>> {
        let body = self
            .send_body(self.inner.http.get(self.url("/.well-known/jwks.json")))
            .await?;
        Ok(body.to_vec())
    }

    /// The Token Status List (`GET /v1/token/status`, no authentication): the compact JWS
    /// (`typ: statuslist+jwt`), for the caller to verify with [`Self::token_status_jwks`].
    pub async fn token_status_list(&self) -> Result<String> {
        let body = self
            .send_body(self.inner.http.get(self.url("/v1/token/status")))
            .await?;
        String::from_utf8(body.to_vec())
            .map_err(|_| Error::invalid_response("the status list is not text"))
    }

    /// The status keys (`GET /v1/token/status/jwks`, no authentication): a JWK set for the
    /// caller to parse strictly. Never the issuer keys.
    pub async fn token_status_jwks(&self) -> Result<Vec<u8>> {
        let body = self
            .send_body(self.inner.http.get(self.url("/v1/token/status/jwks")))
            .await?;
        Ok(body.to_vec())
    }

    /// `POST /v1/token/status/staple` (no authentication): a short-lived staple of the status
    /// of token `jti`, echoing `nonce` (a verifier's challenge).
    pub async fn token_status_staple(&self, jti: &str, nonce: &str) -> Result<StatusStaple> {
        #[derive(Deserialize)]
        struct ListRef {
            idx: u64,
            uri: String,
        }
        #[derive(Deserialize)]
        struct Resp {
            staple: String,
            status_list: ListRef,
        }
        let rb = self
            .inner
            .http
            .post(self.url("/v1/token/status/staple"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(json_body(
                &serde_json::json!({ "jti": jti, "nonce": nonce }),
                64 + jti.len() + nonce.len(),
            )?);
        let r: Resp = self.send_json(rb).await?;
        Ok(StatusStaple {
            staple: r.staple,
            idx: r.status_list.idx,
            uri: r.status_list.uri,
        })
    }

    /// The trust domain's bundle (any authenticated caller).
    pub async fn trust_bundle(&self) -> Result<TrustBundle> {
        self.send_json(self.request(Method::GET, "/v1/identity/bundle"))
            .await
    }

    // ------------------------------------------------------------------ audit (admin)

    /// Audit entries with `seq > after`, at most `limit` (server default 100, max 1000).
    pub async fn audit_list(
        &self,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<Vec<AuditEntry>> {
        #[derive(Deserialize)]
        struct Resp {
            entries: Vec<AuditEntry>,
        }
        let r: Resp = self
            .send_json(self.request(Method::GET, &audit_path(after, limit)))
            .await?;
        Ok(r.entries)
    }

    /// Recompute the hash chain and MACs of the whole log.
    pub async fn audit_verify(&self) -> Result<AuditReport> {
        self.send_json(self.request(Method::GET, "/v1/audit/verify"))
            .await
    }

    // ------------------------------------------------------------------ identity documents (admin)

    /// Issue (or re-issue) an app's identity document (`POST /v1/identity/apps`).
    pub async fn app_identity_register(
        &self,
        request: &crate::types::AppIdentityRequest,
    ) -> Result<crate::types::AppIdentityDocument> {
        if request.allowed_digests.is_empty() {
            return Err(Error::invalid_input(
                "an app identity needs at least one allowed binary digest (sha256:HEX)",
            ));
        }
        self.send_json(self.json_request(Method::POST, "/v1/identity/apps", request, 512)?)
            .await
    }
}

/// Rough JSON size of the options, to pre-size request buffers.
/// The token endpoints' answer (RFC 6749 §5.1).
fn issued_token(body: &[u8]) -> Result<IssuedToken> {
    #[derive(Deserialize)]
    struct Resp {
        access_token: String,
        expires_in: u64,
        #[serde(default)]
        scope: Option<String>,
    }
    let r: Resp = parse(body)?;
    Ok(IssuedToken {
        access_token: SecretString::new(r.access_token),
        expires_in: r.expires_in,
        scope: r.scope,
    })
}

/// Unix seconds (a clock before 1970 counts as 0: the server then refuses the proof's `iat`).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn options_len(opts: &EncryptOptions) -> usize {
    opts.audience.as_ref().map_or(0, |a| a.len() * 2 + 16)
        + opts.access.iter().map(|a| a.len() * 2 + 4).sum::<usize>()
        + 16
}

/// Parse a JSON body. Error messages never echo values from the body (they may be secret).
fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        if msg.starts_with("missing field") {
            Error::invalid_response(msg)
        } else {
            Error::invalid_response(format!(
                "malformed JSON body (line {}, column {})",
                e.line(),
                e.column()
            ))
        }
    })
}

/// Parse ciphertext and client share and check they belong to the same object — before any
/// network call, so a share is never sent along with the wrong ciphertext.
fn parse_pair(ciphertext: &str, share: &str) -> Result<(Envelope, Share)> {
    let envelope = Envelope::parse(ciphertext)?;
    let share = Share::parse(share)?;
    if share.index != ShareIndex::Client {
        return Err(Error::invalid_input(
            "this is the server share (index 2); decrypt with the client share",
        ));
    }
    if share.object_id != envelope.object_id {
        return Err(CryptoError::ShareObjectMismatch.into());
    }
    Ok((envelope, share))
}

/// Sanity-check what the server issued in server mode before handing it to the caller.
fn check_issued(object_id: &ObjectId, ciphertext: &str, share: &SecretString) -> Result<()> {
    let envelope = Envelope::parse(ciphertext)
        .map_err(|_| Error::invalid_response("the ciphertext does not parse"))?;
    let share = Share::parse(share.expose())
        .map_err(|_| Error::invalid_response("the share does not parse"))?;
    if envelope.object_id != *object_id
        || share.object_id != *object_id
        || share.index != ShareIndex::Client
    {
        return Err(Error::invalid_response(
            "object id, ciphertext and share do not match",
        ));
    }
    Ok(())
}

/// Secret names: 1–128 chars of `[A-Za-z0-9._/-]`, not starting with `/`, and no `.`/`..`
/// segment (URL normalisation would silently turn `a/../b` into `b`).
pub(crate) fn validate_secret_name(name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'));
    if name.is_empty() || name.len() > 128 || !ok_chars {
        return Err(Error::invalid_input(
            "secret names are 1-128 characters of A-Z a-z 0-9 . _ / -",
        ));
    }
    if name.starts_with('/') {
        return Err(Error::invalid_input("secret names must not start with '/'"));
    }
    if name.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(Error::invalid_input(
            "secret names must not contain '.' or '..' path segments",
        ));
    }
    Ok(())
}

fn secret_path(name: &str) -> String {
    format!("/v1/secrets/{name}")
}

fn audit_path(after: Option<u64>, limit: Option<u32>) -> String {
    let mut params = Vec::new();
    if let Some(a) = after {
        params.push(format!("after={a}"));
    }
    if let Some(l) = limit {
        params.push(format!("limit={l}"));
    }
    if params.is_empty() {
        "/v1/audit".to_owned()
    } else {
        format!("/v1/audit?{}", params.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        let cfg = ClientConfig {
            addr: "https://127.0.0.1:8200/".into(),
            token: SecretString::from("daas_admin_verysecret"),
            ca_cert_pem: None,
        };
        Client::new(cfg).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn urls_are_built_on_the_origin() {
        let c = client();
        assert_eq!(c.addr(), "https://127.0.0.1:8200");
        assert_eq!(
            c.url("/v1/sys/health"),
            "https://127.0.0.1:8200/v1/sys/health"
        );
        assert_eq!(
            secret_path("db/prod/password"),
            "/v1/secrets/db/prod/password"
        );
        assert_eq!(audit_path(None, None), "/v1/audit");
        assert_eq!(audit_path(Some(5), None), "/v1/audit?after=5");
        assert_eq!(audit_path(Some(5), Some(10)), "/v1/audit?after=5&limit=10");
        assert_eq!(audit_path(None, Some(10)), "/v1/audit?limit=10");
    }

    #[test]
    fn secret_names_are_validated() {
        for ok in [
            "a",
            "db/prod/password",
            "A.b_c-d",
            "x/.hidden",
            "a//b",
            &"n".repeat(128),
        ] {
            assert!(validate_secret_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/abs",
            "a/../b",
            "..",
            ".",
            "a/.",
            "sp ace",
            "q?x",
            "h#x",
            "pct%2e",
            "ü",
            &"n".repeat(129),
        ] {
            assert!(
                matches!(validate_secret_name(bad), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn http_addresses_are_refused() {
        let cfg = ClientConfig {
            addr: "http://127.0.0.1:8200".into(),
            token: SecretString::from("t"),
            ca_cert_pem: None,
        };
        assert!(matches!(Client::new(cfg), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn bad_token_and_ca_are_refused() {
        let cfg = ClientConfig {
            addr: "https://h:1".into(),
            token: SecretString::from("  "),
            ca_cert_pem: None,
        };
        assert!(matches!(Client::new(cfg), Err(Error::InvalidInput(_))));
        let cfg = ClientConfig {
            addr: "https://h:1".into(),
            token: SecretString::from("a\nb"),
            ca_cert_pem: None,
        };
        let err = Client::new(cfg)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("a\nb") && err.contains("token"), "{err}");
        let cfg = ClientConfig {
            addr: "https://h:1".into(),
            token: SecretString::from("t"),
            ca_cert_pem: Some(b"junk".to_vec()),
        };
        assert!(matches!(Client::new(cfg), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn client_debug_redacts_token() {
        let dbg = format!("{:?}", client());
        assert!(!dbg.contains("verysecret"), "{dbg}");
        assert!(dbg.contains("127.0.0.1:8200"));
    }

    #[test]
    fn parse_errors_do_not_echo_values() {
        #[derive(Debug, Deserialize)]
        struct R {
            #[expect(dead_code, reason = "only the parse error matters")]
            n: u64,
        }
        let err = parse::<R>(br#"{"n": "supersecretvalue"}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("supersecret"), "{err}");
        let err = parse::<R>(br#"{}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("missing field `n`"), "{err}");
    }

    fn sealed_pair(plaintext: &[u8]) -> (String, Share, Share) {
        let id = ObjectId::generate().unwrap_or_else(|e| panic!("{e}"));
        let k = Key256::generate().unwrap_or_else(|e| panic!("{e}"));
        let ctx = Context {
            object_id: id,
            key_version: 1,
            owner: "admin",
            audience: "",
        };
        let env =
            envelope::seal(&k, CLIENT_SUITE, &ctx, plaintext).unwrap_or_else(|e| panic!("{e}"));
        let (t1, t2) = xor::split(&k).unwrap_or_else(|e| panic!("{e}"));
        (
            env.encode(),
            Share {
                object_id: id,
                index: ShareIndex::Client,
                key: t1,
            },
            Share {
                object_id: id,
                index: ShareIndex::Server,
                key: t2,
            },
        )
    }

    #[test]
    fn shares_are_checked_against_the_ciphertext_locally() {
        let (ca, t1a, t2a) = sealed_pair(b"a");
        let (_cb, t1b, _) = sealed_pair(b"b");
        assert!(parse_pair(&ca, &t1a.encode()).is_ok());
        let err = parse_pair(&ca, &t1b.encode()).err();
        assert!(
            matches!(err, Some(Error::Crypto(CryptoError::ShareObjectMismatch))),
            "{err:?}"
        );
        let err = parse_pair(&ca, &t2a.encode()).err();
        assert!(matches!(err, Some(Error::InvalidInput(_))), "{err:?}");
        assert!(matches!(
            parse_pair("daas:v1:!!", &t1a.encode()),
            Err(Error::Crypto(_))
        ));
        assert!(matches!(
            parse_pair(&ca, "daas:share:v1:AAAA"),
            Err(Error::Crypto(_))
        ));

        let shown = check_issued(&t1a.object_id, &ca, &SecretString::new(t1a.encode()));
        assert!(shown.is_ok());
        let foreign = check_issued(&t1a.object_id, &ca, &SecretString::new(t1b.encode()));
        assert!(matches!(foreign, Err(Error::InvalidResponse(_))));
    }

    #[tokio::test]
    async fn foreign_share_fails_before_any_network_call() {
        // Nothing listens on port 1: a network call would be a transport error, not a crypto one.
        let cfg = ClientConfig {
            addr: "https://127.0.0.1:1".into(),
            token: SecretString::from("t"),
            ca_cert_pem: None,
        };
        let c = Client::new(cfg).unwrap_or_else(|e| panic!("{e}"));
        let (ca, _, _) = sealed_pair(b"a");
        let (_, t1b, _) = sealed_pair(b"b");
        let share = SecretString::new(t1b.encode());
        for local in [false, true] {
            let err = if local {
                c.decrypt_local(&ca, &share).await
            } else {
                c.decrypt(&ca, &share).await
            }
            .err();
            assert!(
                matches!(err, Some(Error::Crypto(CryptoError::ShareObjectMismatch))),
                "{err:?}"
            );
        }
    }

    #[tokio::test]
    async fn transport_errors_are_reported() {
        // Port 1 on localhost: nothing listens there.
        let cfg = ClientConfig {
            addr: "https://127.0.0.1:1".into(),
            token: SecretString::from("t0ken"),
            ca_cert_pem: None,
        };
        let c = Client::new(cfg).unwrap_or_else(|e| panic!("{e}"));
        let err = c.whoami().await.err();
        assert!(
            matches!(err, Some(Error::Transport { timeout: false, .. })),
            "{err:?}"
        );
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.starts_with("cannot connect to the daas server at https://127.0.0.1:1: "),
            "{msg}"
        );
        assert!(!msg.contains("t0ken") && !msg.contains('\n'), "{msg}");
    }
}
