//! `daas token keygen | proof | verify | get | replace | revoke | status`: the client's
//! proof-of-possession key, DPoP proofs (RFC 9449) built with it, offline verification of a
//! token with its proof as a resource server does it, and the token endpoints of the server
//! (docs/tokens.md).
//!
//! The key file is a PKCS#8 PEM private key (Ed25519 or P-256), created 0600: the same format
//! other tools read, so a key made here can sign proofs elsewhere and the reverse.
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use daas_token::{
    Alg, DpopPolicy, DpopRequest, KeySet, MemoryReplayCache, ProofPolicy, SigningKey, VerifyingKey,
};
use zeroize::Zeroizing;

use crate::io::{print_json, read_all, read_secret_file, write_stdout};

/// Largest key or JWK set file read.
const MAX_KEY_FILE: usize = 256 * 1024;

/// The key algorithm of `daas token keygen`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KeyAlg {
    /// Ed25519
    #[value(name = "EdDSA")]
    EdDsa,
    /// ECDSA P-256
    #[value(name = "ES256")]
    Es256,
}

/// `daas token keygen --out KEYFILE [--alg EdDSA|ES256]`
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key (PKCS#8 PEM, created 0600; never overwritten)
    #[arg(long, value_name = "KEYFILE")]
    pub out: PathBuf,
    /// Signature algorithm of the key
    #[arg(long, value_enum, default_value = "EdDSA")]
    pub alg: KeyAlg,
}

/// `daas token proof --key KEYFILE --method M --url U [--token T] [--nonce N]`
#[derive(Debug, Clone, clap::Args)]
pub struct ProofArgs {
    /// The private key the token is bound to (from `daas token keygen`)
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    /// HTTP method of the request the proof is for
    #[arg(long, value_name = "M")]
    pub method: String,
    /// URL of the request the proof is for (query and fragment are ignored)
    #[arg(long, value_name = "U")]
    pub url: String,
    /// The access token the request carries (adds its hash, `ath`)
    #[arg(long, value_name = "T")]
    pub token: Option<String>,
    /// The server's last DPoP-Nonce
    #[arg(long, value_name = "N")]
    pub nonce: Option<String>,
}

/// `daas token verify --token T --proof P --method M --url U --aud A [--jwks FILE] [--iss ISS]`
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The access token (from `Authorization: DPoP <token>`)
    #[arg(long, value_name = "T")]
    pub token: String,
    /// The DPoP proof (the request's `DPoP` header)
    #[arg(long, value_name = "P")]
    pub proof: String,
    /// HTTP method of the request
    #[arg(long, value_name = "M")]
    pub method: String,
    /// URL the request was received on
    #[arg(long, value_name = "U")]
    pub url: String,
    /// This service's audience
    #[arg(long, value_name = "A")]
    pub aud: String,
    /// The issuer's JWK set (a file); default: fetched from DAAS_ADDR's /.well-known/jwks.json
    #[arg(long, value_name = "FILE")]
    pub jwks: Option<PathBuf>,
    /// The expected issuer; default: the DAAS_ADDR origin (https://host:port)
    #[arg(long, value_name = "ISS")]
    pub iss: Option<String>,
}

/// `daas token get --key KEYFILE --aud A [--scope S] [--ttl DURATION]
/// [--svid-cert FILE --svid-key FILE | --socket PATH]`
#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// The key to bind the token to (from `daas token keygen`)
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    /// The audience (the service the token is for)
    #[arg(long, value_name = "A")]
    pub aud: String,
    /// Space-separated scope tokens
    #[arg(long, value_name = "S")]
    pub scope: Option<String>,
    /// Token lifetime (default 1d, at most 30d)
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::parse_duration)]
    pub ttl: Option<std::time::Duration>,
    /// Authenticate with this X.509-SVID (PEM chain, leaf first) instead of DAAS_TOKEN; the
    /// token's subject is its SPIFFE ID
    #[arg(
        long,
        value_name = "FILE",
        requires = "svid_key",
        conflicts_with = "socket"
    )]
    pub svid_cert: Option<PathBuf>,
    /// The SVID's private key (PKCS#8 PEM)
    #[arg(long, value_name = "FILE", requires = "svid_cert")]
    pub svid_key: Option<PathBuf>,
    /// Authenticate with the X.509-SVID fetched from the sensor's Workload API at this socket
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// `daas token replace --key KEYFILE (--jti JTI | --token T)`
#[derive(Debug, Clone, clap::Args)]
#[command(group = clap::ArgGroup::new("lost").required(true).args(["jti", "token"]))]
pub struct ReplaceArgs {
    /// The key the lost token is bound to
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    /// The lost token's jti
    #[arg(long, value_name = "JTI")]
    pub jti: Option<String>,
    /// The lost (e.g. expired) token itself, if still at hand: its jti is read from it
    #[arg(long, value_name = "T")]
    pub token: Option<String>,
}

/// `daas token revoke (JTI | --subject S)`
#[derive(Debug, Clone, clap::Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["jti", "subject"]))]
pub struct RevokeArgs {
    /// The token to revoke, by jti (jtis may start with `-`)
    #[arg(allow_hyphen_values = true)]
    pub jti: Option<String>,
    /// Revoke every token of this subject (e.g. app:billing)
    #[arg(long, value_name = "S")]
    pub subject: Option<String>,
}

/// The SVID (chain and key, PEM) `daas token get` authenticates with, if any.
async fn svid_pem(args: &GetArgs) -> Result<Option<Zeroizing<Vec<u8>>>> {
    if let (Some(cert), Some(key)) = (&args.svid_cert, &args.svid_key) {
        let mut pem = Zeroizing::new(
            read_secret_file(cert, "svid certificate")?
                .as_bytes()
                .to_vec(),
        );
        pem.push(b'\n');
        pem.extend_from_slice(read_secret_file(key, "svid key")?.as_bytes());
        pem.push(b'\n');
        return Ok(Some(pem));
    }
    let Some(socket) = &args.socket else {
        return Ok(None);
    };
    let svid = daas_sensor::workload_client::fetch_x509_svid(socket)
        .await
        .context("cannot fetch the svid from the workload api")?;
    let mut pem = Zeroizing::new(daas_identity::svid::certs_to_pem(&svid.chain).into_bytes());
    pem.extend_from_slice(
        daas_sensor::node_store::pem_block("PRIVATE KEY", &svid.key_pkcs8).as_bytes(),
    );
    Ok(Some(pem))
}

/// Requests a token bound to the key; prints it.
pub async fn get(args: &GetArgs) -> Result<()> {
    let key = read_key(&args.key)?;
    let client = match svid_pem(args).await? {
        Some(pem) => daas_sdk::Client::with_svid_from_env(&pem)?,
        None => daas_sdk::Client::from_env()?,
    };
    let issued = client
        .token_get(
            &key,
            &args.aud,
            args.scope.as_deref(),
            args.ttl.map(|d| d.as_secs()),
        )
        .await
        .context("cannot get a token")?;
    write_stdout(format!("{}\n", issued.access_token.expose()).as_bytes())
}

/// The `jti` of a token, read without verifying it (the server checks everything).
fn unverified_jti(token: &str) -> Result<String> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| anyhow!("--token is not a compact JWS"))?;
    let bytes = daas_token::b64::decode(payload).map_err(|_| anyhow!("--token is not a JWS"))?;
    let claims = daas_token::parse_strict_json_object(&bytes)
        .map_err(|_| anyhow!("--token's claims are not a JSON object"))?;
    claims
        .get("jti")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("--token has no jti"))
}

/// Replaces a lost token by proving possession of its key; prints the new token.
pub async fn replace(args: &ReplaceArgs) -> Result<()> {
    let key = read_key(&args.key)?;
    let jti = match (&args.jti, &args.token) {
        (Some(jti), _) => jti.clone(),
        (None, Some(token)) => unverified_jti(token)?,
        (None, None) => bail!("give --jti or --token"),
    };
    let client = daas_sdk::Client::unauthenticated_from_env()?;
    let issued = client
        .token_replace(&key, &jti)
        .await
        .context("cannot replace the token")?;
    write_stdout(format!("{}\n", issued.access_token.expose()).as_bytes())
}

/// Revokes by jti or subject (admin); prints `{"revoked": n}`.
pub async fn revoke(args: &RevokeArgs) -> Result<()> {
    let target = match (&args.jti, &args.subject) {
        (Some(jti), None) => daas_sdk::TokenRevocation::Jti(jti.clone()),
        (None, Some(subject)) => daas_sdk::TokenRevocation::Subject(subject.clone()),
        _ => bail!("give a jti or --subject, not both"),
    };
    let client = daas_sdk::Client::from_env()?;
    let revoked = client
        .token_revoke(&target)
        .await
        .context("cannot revoke")?;
    print_json(&serde_json::json!({ "revoked": revoked }))
}

/// `daas token status (--token T | --jti JTI) [--staple [--nonce N]]`
#[derive(Debug, Clone, clap::Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["token", "jti"]))]
pub struct StatusArgs {
    /// The token (its signature is checked against DAAS_ADDR's issuer keys; it may have expired)
    #[arg(long, value_name = "T")]
    pub token: Option<String>,
    /// The token's jti (its place in the list is asked of the server with a staple)
    #[arg(long, value_name = "JTI", allow_hyphen_values = true)]
    pub jti: Option<String>,
    /// Answer from a fresh status staple instead of the status list; prints the staple too
    #[arg(long)]
    pub staple: bool,
    /// The verifier's nonce the staple must echo (default: a random one)
    #[arg(long, value_name = "N", requires = "staple")]
    pub nonce: Option<String>,
}

/// Where a token sits in a status list, and its jti.
struct StatusTarget {
    jti: String,
    idx: u64,
    uri: String,
}

/// Verifies `token` against the issuer keys (signature and `typ` only: the status of an expired
/// token is still a fair question) and reads its jti and status list reference.
fn status_target(token: &str, issuer_keys: &KeySet) -> Result<StatusTarget> {
    let verified = daas_token::Unverified::parse(token)
        .and_then(|t| {
            t.verify::<serde_json::Map<String, serde_json::Value>>(issuer_keys, Some("at+jwt"))
        })
        .map_err(|e| anyhow!("--token does not verify against the issuer keys: {e}"))?;
    let claims = verified.claims();
    let jti = claims
        .get("jti")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| anyhow!("--token has no jti"))?;
    let list = claims
        .get("status")
        .and_then(|s| s.get("status_list"))
        .ok_or_else(|| anyhow!("--token has no status claim: it cannot be revoked"))?;
    let idx = list
        .get("idx")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| anyhow!("--token's status_list.idx is not an unsigned integer"))?;
    let uri = list
        .get("uri")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| anyhow!("--token's status_list.uri is not a string"))?;
    Ok(StatusTarget {
        jti: jti.to_owned(),
        idx,
        uri: uri.to_owned(),
    })
}

fn status_name(status: daas_token::TokenStatus) -> &'static str {
    match status {
        daas_token::TokenStatus::Valid => "valid",
        daas_token::TokenStatus::Invalid => "invalid",
        daas_token::TokenStatus::Suspended => "suspended",
        daas_token::TokenStatus::Other(_) => "other",
    }
}

/// The status of `target` in the status list token `list`, verified with `status_keys`.
fn status_from_list(
    list: &str,
    status_keys: &KeySet,
    target: &StatusTarget,
    now: i64,
) -> Result<daas_token::TokenStatus> {
    let list = daas_token::verify_status_list(list, status_keys, &target.uri, now)
        .map_err(|e| anyhow!("the status list does not verify: {e}"))?;
    list.status_of(target.idx).map_err(|_| {
        anyhow!(
            "the token's index {} is past the end of the status list",
            target.idx
        )
    })
}

/// Prints a token's status from the server's status list (or a staple), both verified with
/// the server's status keys; fails with the precise reason when they do not verify.
pub async fn status(args: &StatusArgs) -> Result<()> {
    let client = daas_sdk::Client::unauthenticated_from_env()?;
    let status_jwks = client
        .token_status_jwks()
        .await
        .context("cannot fetch the status keys")?;
    let status_keys = key_set_from_jwks(&status_jwks).context("the status JWK set")?;
    let known = match (&args.token, &args.jti) {
        (Some(token), _) => {
            let jwks = client
                .token_jwks()
                .await
                .context("cannot fetch the issuer's JWK set")?;
            Some(status_target(token, &key_set_from_jwks(&jwks)?)?)
        }
        (None, Some(_)) => None,
        (None, None) => bail!("give --token or --jti"),
    };
    let jti = known
        .as_ref()
        .map(|t| t.jti.clone())
        .or_else(|| args.jti.clone())
        .ok_or_else(|| anyhow!("give --token or --jti"))?;
    let target = match known {
        Some(target) if !args.staple => target,
        known => {
            let nonce = match &args.nonce {
                Some(nonce) => nonce.clone(),
                None => daas_token::b64::encode(
                    &daas_crypto::random::bytes::<16>()
                        .map_err(|e| anyhow!("cannot make a nonce: {e}"))?,
                ),
            };
            let staple = match client.token_status_staple(&jti, &nonce).await {
                Ok(staple) => staple,
                // The top-level error line shows an API error by its message alone, which for
                // this 404 would not say what was not found.
                Err(daas_sdk::Error::Api { status: 404, .. }) => {
                    bail!("cannot get a status staple: the server knows no token with this jti")
                }
                Err(e) => return Err(anyhow::Error::new(e).context("cannot get a status staple")),
            };
            // With --token the staple must be about the token's own entry; with --jti the
            // server's clear answer says which entry, and the signed claims must match it.
            let (idx, uri) = match &known {
                Some(t) => (t.idx, t.uri.clone()),
                None => (staple.idx, staple.uri.clone()),
            };
            let verified = daas_token::verify_status_staple(
                &staple.staple,
                &status_keys,
                &daas_token::StapleExpectation {
                    sub: &uri,
                    idx,
                    nonce: &nonce,
                },
                now(),
            )
            .map_err(|e| anyhow!("the status staple does not verify: {e}"))?;
            if args.staple {
                return print_json(&serde_json::json!({
                    "jti": jti,
                    "idx": idx,
                    "uri": uri,
                    "status": status_name(verified.status()),
                    "value": verified.status().value(),
                    "source": "staple",
                    "nonce": nonce,
                    "exp": verified.claims().exp,
                    "staple": staple.staple,
                }));
            }
            StatusTarget { jti, idx, uri }
        }
    };
    let list = client
        .token_status_list()
        .await
        .context("cannot fetch the status list")?;
    let status = status_from_list(&list, &status_keys, &target, now())?;
    print_json(&serde_json::json!({
        "jti": target.jti,
        "idx": target.idx,
        "uri": target.uri,
        "status": status_name(status),
        "value": status.value(),
        "source": "list",
    }))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Generates a key, writes it, prints its RFC 7638 thumbprint (the tokens' `cnf.jkt`).
pub fn keygen(args: &KeygenArgs) -> Result<()> {
    let alg = match args.alg {
        KeyAlg::EdDsa => Alg::EdDsa,
        KeyAlg::Es256 => Alg::Es256,
    };
    let key = SigningKey::generate(alg).map_err(|e| anyhow!("cannot generate a key: {e}"))?;
    let pkcs8 = key
        .to_pkcs8()
        .map_err(|e| anyhow!("cannot encode the key: {e}"))?;
    let pem = daas_sensor::node_store::pem_block("PRIVATE KEY", &pkcs8);
    write_new_private(&args.out, pem.as_bytes())?;
    write_stdout(format!("{}\n", key.public_jwk().thumbprint()).as_bytes())
}

/// Creates `path` 0600 with `bytes`; refuses to replace an existing file (a key is not
/// overwritten by accident: tokens are bound to it).
fn write_new_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a key written by [`keygen`] (or any PKCS#8 Ed25519 / P-256 PEM key).
pub fn read_key(path: &Path) -> Result<SigningKey> {
    let pem = read_secret_file(path, "key")?;
    let der = rustls_pemfile::pkcs8_private_keys(&mut pem.as_bytes())
        .next()
        .ok_or_else(|| anyhow!("{} holds no PKCS#8 private key", path.display()))?
        .map_err(|_| anyhow!("{} is not a PEM private key", path.display()))?;
    let der = Zeroizing::new(der.secret_pkcs8_der().to_vec());
    SigningKey::from_pkcs8(Alg::EdDsa, &der)
        .or_else(|_| SigningKey::from_pkcs8(Alg::Es256, &der))
        .map_err(|_| anyhow!("{} is not an Ed25519 or P-256 private key", path.display()))
}

/// Prints a DPoP proof for the request.
pub fn proof(args: &ProofArgs) -> Result<()> {
    let key = read_key(&args.key)?;
    let proof = daas_token::build_proof(
        &key,
        &args.method,
        &args.url,
        now(),
        None,
        args.token.as_deref(),
        args.nonce.as_deref(),
    )
    .map_err(|e| anyhow!("cannot build the proof: {e}"))?;
    write_stdout(format!("{proof}\n").as_bytes())
}

/// Parses a JWK set (`{"keys": [...]}`) into a key set by `kid`. Keys of other types or
/// uses than ours are an error: a verifier must know exactly which keys it trusts.
pub fn key_set_from_jwks(bytes: &[u8]) -> Result<KeySet> {
    let map = daas_token::parse_strict_json_object(bytes)
        .map_err(|_| anyhow!("the JWK set is not one JSON object without duplicate keys"))?;
    let Some(serde_json::Value::Array(keys)) = map.get("keys") else {
        bail!("the JWK set has no \"keys\" array");
    };
    let mut set = KeySet::new();
    for (n, key) in keys.iter().enumerate() {
        let kid = key
            .get("kid")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| anyhow!("key {n} of the JWK set has no kid"))?;
        let text = serde_json::to_vec(key).context("re-encoding a JWK")?;
        let jwk = daas_token::PublicJwk::from_json(&text)
            .map_err(|e| anyhow!("key {kid:?} of the JWK set: {e}"))?;
        let verifying =
            VerifyingKey::from_jwk(&jwk).map_err(|e| anyhow!("key {kid:?} of the JWK set: {e}"))?;
        set.insert(kid, verifying)
            .map_err(|e| anyhow!("key {kid:?} of the JWK set: {e}"))?;
    }
    if set.is_empty() {
        bail!("the JWK set holds no keys");
    }
    Ok(set)
}

/// Verifies a token and its proof for one request, exactly as a resource server does; prints
/// the verified claims as JSON, or fails with the precise reason.
pub async fn verify(args: &VerifyArgs) -> Result<()> {
    let (jwks, default_issuer) = match &args.jwks {
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open the JWK set {}", path.display()))?;
            let bytes = read_all(file, MAX_KEY_FILE)
                .with_context(|| format!("cannot read the JWK set {}", path.display()))?;
            (bytes.to_vec(), None)
        }
        None => {
            let client = daas_sdk::Client::unauthenticated_from_env()
                .context("no --jwks FILE given and the issuer cannot be reached")?;
            let jwks = client
                .token_jwks()
                .await
                .context("cannot fetch the issuer's JWK set")?;
            (jwks, Some(client.addr().to_owned()))
        }
    };
    let keys = key_set_from_jwks(&jwks)?;
    let issuer = args
        .iss
        .clone()
        .or(default_issuer)
        .ok_or_else(|| anyhow!("--iss is required with --jwks"))?;
    let proofs = [args.proof.as_str()];
    let (token, proof) = daas_token::verify_dpop_request(
        &DpopRequest {
            access_token: &args.token,
            proof_headers: &proofs,
            method: &args.method,
            uri: &args.url,
        },
        &DpopPolicy {
            keys: &keys,
            issuer: &issuer,
            audience: &args.aud,
            token_leeway_secs: 30,
            proof: ProofPolicy::default(),
            nonce_key: None,
            token_cache: None,
        },
        &MemoryReplayCache::new(16),
        now(),
    )
    .map_err(|e| anyhow!("rejected: {e}"))?;
    let claims = token.claims();
    print_json(&serde_json::json!({
        "valid": true,
        "iss": claims.iss,
        "sub": claims.sub,
        "aud": claims.aud,
        "scope": claims.scope.join(" "),
        "exp": claims.exp,
        "iat": claims.iat,
        "jti": claims.jti,
        "cnf": {"jkt": claims.jkt},
        "kid": token.kid(),
        "proof": {"htm": proof.htm(), "htu": proof.htu(), "jti": proof.jti(), "iat": proof.iat()},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_roundtrip_through_the_key_file_and_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [KeyAlg::EdDsa, KeyAlg::Es256] {
            let out = dir.path().join(format!("{alg:?}.pem"));
            keygen(&KeygenArgs {
                out: out.clone(),
                alg,
            })
            .unwrap();
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&out).unwrap().permissions(),
            );
            assert_eq!(mode & 0o777, 0o600);
            let key = read_key(&out).unwrap();
            let proof = daas_token::build_proof(
                &key,
                "GET",
                "https://api.example/x",
                now(),
                None,
                None,
                None,
            )
            .unwrap();
            assert_eq!(proof.split('.').count(), 3);
            let err = keygen(&KeygenArgs { out, alg }).unwrap_err();
            assert!(format!("{err:#}").contains("must not exist yet"), "{err:#}");
        }
    }

    #[test]
    fn status_lists_that_do_not_verify_are_reported_precisely() {
        use daas_token::status::{Bits, StatusList, sign_status_list};
        let status_key = SigningKey::generate(Alg::EdDsa).unwrap();
        let mut keys = KeySet::new();
        keys.insert("s", status_key.public_jwk().verifying_key().unwrap())
            .unwrap();
        let uri = "https://daas.test/v1/token/status";
        let mut list = StatusList::new(Bits::One, 16).unwrap();
        list.set(3, daas_token::TokenStatus::Invalid).unwrap();
        let sign = |key: &SigningKey| {
            sign_status_list(key, "s", uri, now(), Some(now() + 600), Some(60), &list).unwrap()
        };
        let target = |idx| StatusTarget {
            jti: "j".into(),
            idx,
            uri: uri.into(),
        };
        let good = sign(&status_key);
        let status = |jwt: &str, idx| {
            status_from_list(jwt, &keys, &target(idx), now()).map_err(|e| format!("{e:#}"))
        };
        assert_eq!(status(&good, 3), Ok(daas_token::TokenStatus::Invalid));
        assert_eq!(status(&good, 2), Ok(daas_token::TokenStatus::Valid));
        assert_eq!(
            status(&good, 16),
            Err("the token's index 16 is past the end of the status list".into())
        );
        // Signed by another key (e.g. the issuer's) under the status kid.
        let forged = sign(&SigningKey::generate(Alg::EdDsa).unwrap());
        assert!(
            status(&forged, 3)
                .unwrap_err()
                .starts_with("the status list does not verify: invalid status token"),
        );
        // For another list URI.
        let other = StatusTarget {
            uri: "https://other.test/v1/token/status".into(),
            ..target(3)
        };
        assert_eq!(
            status_from_list(&good, &keys, &other, now()).map_err(|e| format!("{e:#}")),
            Err("the status list does not verify: status token subject is not the expected status list uri".into())
        );
        // Stale.
        assert_eq!(
            status_from_list(&good, &keys, &target(3), now() + 700).map_err(|e| format!("{e:#}")),
            Err("the status list does not verify: status token has expired".into())
        );
    }

    #[test]
    fn jwk_sets_are_parsed_strictly() {
        let key = SigningKey::generate(Alg::EdDsa).unwrap();
        let jwk: serde_json::Value = serde_json::from_str(&key.public_jwk().to_json()).unwrap();
        let mut with_kid = jwk.clone();
        with_kid["kid"] = "k1".into();
        let good = serde_json::json!({"keys": [with_kid]});
        let set = key_set_from_jwks(good.to_string().as_bytes()).unwrap();
        assert!(set.get("k1").is_some());
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"keys": []}),
            serde_json::json!({"keys": [jwk]}),
            serde_json::json!({"keys": "x"}),
        ] {
            assert!(
                key_set_from_jwks(bad.to_string().as_bytes()).is_err(),
                "{bad}"
            );
        }
        assert!(key_set_from_jwks(br#"{"keys": [], "keys": []}"#).is_err());
    }
}
