//! Command-line syntax (clap derive). Help texts are pinned by `tests/snapshots/`.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// daas: split-key encryption, secrets and workload identity.
///
/// Client commands read DAAS_ADDR, DAAS_TOKEN and DAAS_CACERT (printed by `daas server --dev`).
#[derive(Debug, Parser)]
#[command(name = "daas", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daas server (--dev for a self-contained local server)
    Server(ServerArgs),
    /// Initialise and unseal a production server
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Create, list and register applications (admin)
    #[command(subcommand)]
    App(AppCmd),
    /// Encrypt stdin; prints {"ciphertext", "share"} as one line of JSON
    Encrypt(EncryptArgs),
    /// Decrypt a ciphertext (stdin) with its share; writes the raw plaintext to stdout
    Decrypt(DecryptArgs),
    /// Store, read, delete and list secrets
    #[command(subcommand)]
    Secret(SecretCmd),
    /// List and verify the audit log (admin)
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Join tokens for sensors (admin)
    #[command(subcommand)]
    Node(NodeCmd),
    /// Registration entries: which workloads get which SPIFFE ID (admin)
    #[command(subcommand)]
    Entry(EntryCmd),
    /// Run the node agent: join the trust domain and serve the SPIFFE Workload API
    Sensor(SensorArgs),
    /// Workload identities: fetch this process's SVID, verify identity documents
    #[command(subcommand)]
    Identity(IdentityCmd),
    /// Proof-of-possession tokens: keys, DPoP proofs, verification
    #[command(subcommand)]
    Token(TokenCmd),
    /// Role-authenticated channel: role keys, and stdin/stdout piped over a channel
    #[command(subcommand)]
    Channel(ChannelCmd),
    /// Load benchmarks
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Debug, Subcommand)]
pub enum ChannelCmd {
    /// Write a new 256-bit role key (hex, mode 0600); prints nothing
    Keygen(crate::channel_cmd::KeygenArgs),
    /// Serve one connection: pipe stdin/stdout over the channel; prints the peer's verified
    /// roles on stderr
    Listen(crate::channel_cmd::ListenArgs),
    /// Connect: pipe stdin/stdout over the channel; prints the peer's verified roles on stderr
    Connect(crate::channel_cmd::ConnectArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Generate the key tokens are bound to; prints its thumbprint (the tokens' cnf.jkt)
    Keygen(crate::token_cmd::KeygenArgs),
    /// Print a DPoP proof for one request, signed with the key
    Proof(crate::token_cmd::ProofArgs),
    /// Verify a token and its proof for one request; prints the verified claims as JSON
    Verify(crate::token_cmd::VerifyArgs),
    /// Get an access token bound to the key; prints it
    Get(crate::token_cmd::GetArgs),
    /// Replace a lost token by proving possession of its key (no login); prints the new token
    Replace(crate::token_cmd::ReplaceArgs),
    /// Revoke a token by jti, or every token of a subject (admin)
    Revoke(crate::token_cmd::RevokeArgs),
    /// Serve a DPoP-protected sample endpoint that answers with the identity it verified
    Protect(crate::protect::ProtectArgs),
    /// Print a token's status from the server's signed status list (or a fresh staple)
    Status(crate::token_cmd::StatusArgs),
}

#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// One-time join tokens
    #[command(subcommand)]
    Token(NodeTokenCmd),
}

#[derive(Debug, Subcommand)]
pub enum NodeTokenCmd {
    /// Create a one-time join token; prints it
    Create {
        /// Lifetime (e.g. 10m, 1h; at most 24h)
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
        ttl: Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum EntryCmd {
    /// Create a registration entry; prints it as JSON
    Create {
        /// The SPIFFE ID matching workloads receive (spiffe://TRUST-DOMAIN/PATH)
        #[arg(long, value_name = "SPIFFE-ID")]
        id: String,
        /// A selector the workload must show (repeatable; at least one unix:sha256:HEX)
        #[arg(long = "selector", value_name = "SELECTOR", required = true)]
        selectors: Vec<String>,
        /// The node (sensor) allowed to obtain it; default: any node of the trust domain
        #[arg(long, value_name = "SPIFFE-ID")]
        node: Option<String>,
        /// X.509-SVID lifetime (default 1h)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        ttl: Option<Duration>,
        /// A role granted to the identity (repeatable)
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// The app (from `daas app register`) whose instance documents matching workloads
        /// receive from the sensor
        #[arg(long, value_name = "NAME")]
        app: Option<String>,
    },
    /// List registration entries as JSON
    List,
    /// Delete a registration entry
    Delete {
        /// The entry id (from `daas entry list`)
        id: String,
    },
}

/// Environment variable that may carry the join token instead of `--join-token` (argv is
/// visible to every local user in `ps`).
pub const JOIN_TOKEN_ENV: &str = "DAAS_JOIN_TOKEN";

#[derive(Args)]
pub struct SensorArgs {
    /// The daas server (host:port); its CA certificate is read from DAAS_CACERT
    #[arg(long, value_name = "ADDR", env = "DAAS_ADDR", hide_env_values = true)]
    pub server: String,
    /// One-time join token from `daas node token create`; prefer DAAS_JOIN_TOKEN (other users
    /// can read a command line). Not needed when the data directory holds a valid node identity
    #[arg(long, value_name = "TOKEN", env = JOIN_TOKEN_ENV, hide_env_values = true)]
    pub join_token: Option<String>,
    /// Unix socket to serve the Workload API on
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// Directory for the node identity (created 0700; nothing else is written there)
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Also keep one identity as PEM files in this directory (svid.pem, svid_key.pem, bundle.pem)
    #[arg(long, value_name = "DIR", requires = "pem_id")]
    pub pem_dir: Option<PathBuf>,
    /// The SPIFFE ID whose SVID goes to --pem-dir
    #[arg(long, value_name = "SPIFFE-ID", requires = "pem_dir")]
    pub pem_id: Option<String>,
    /// How often registration entries are re-read from the server
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub sync_interval: Duration,
}

impl std::fmt::Debug for SensorArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensorArgs")
            .field("server", &self.server)
            .field(
                "join_token",
                &self.join_token.as_ref().map(|_| "<redacted>"),
            )
            .field("socket", &self.socket)
            .field("data_dir", &self.data_dir)
            .field("pem_dir", &self.pem_dir)
            .field("pem_id", &self.pem_id)
            .field("sync_interval", &self.sync_interval)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum IdentityCmd {
    /// Fetch this process's X.509-SVID from a sensor's Workload API; prints its SPIFFE ID
    Fetch {
        /// The sensor's Workload API socket
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// Write svid.pem, svid_key.pem (0600) and bundle.pem into this directory
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Fetch this process's instance identity documents from a sensor; prints them as JSON
    Instance(crate::identity_docs::IdentityInstanceArgs),
    /// Verify an app or instance identity document offline against a trust bundle
    Verify(crate::identity_docs::IdentityVerifyArgs),
    /// Print the trust bundle (CA certificates and token keys) as JSON, for offline checks
    Bundle,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["dev", "config"]))]
pub struct ServerArgs {
    /// Self-contained dev server: embedded SQLite, generated CA, TLS certificate and admin token
    #[arg(long)]
    pub dev: bool,
    /// Data directory of the dev server
    #[arg(long, value_name = "DIR", default_value = "./daas-data")]
    pub data_dir: PathBuf,
    /// Address the dev server listens on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8200")]
    pub listen: SocketAddr,
    /// Production server configuration (TOML)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCmd {
    /// Generate the storage key and print its Shamir unseal shares as JSON
    Init {
        /// Production server configuration (TOML)
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Number of unseal shares
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..))]
        shares: u8,
        /// Shares needed to unseal
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..))]
        threshold: u8,
    },
    /// Submit one unseal share; prints {"sealed", "progress", "threshold"}
    Unseal {
        /// The unseal share (daas:unseal:v1:…); other local users can see it in the process
        /// list and it stays in shell history: prefer --share-file, or stdin (read when both
        /// are omitted)
        #[arg(value_name = "SHARE")]
        share: Option<String>,
        /// Read the unseal share from FILE
        #[arg(long, value_name = "FILE", conflicts_with = "share")]
        share_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppCmd {
    /// Create an application; prints its token once
    Create {
        /// Name: lowercase letters, digits and '-'
        name: String,
    },
    /// List applications
    List,
    /// Issue an app's identity document (JWS signed by the trust domain); prints it as JSON
    Register(crate::identity_docs::AppRegisterArgs),
}

#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// Read the plaintext from FILE instead of stdin
    #[arg(long = "in", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Audience bound into the ciphertext
    #[arg(long, value_name = "A")]
    pub audience: Option<String>,
    /// Also allow PRINCIPAL to decrypt ("admin" or "app:NAME"); repeatable
    #[arg(long, value_name = "PRINCIPAL")]
    pub access: Vec<String>,
    /// Client mode: encrypt locally; the server never sees the plaintext or the key
    #[arg(long)]
    pub local: bool,
}

/// The environment variable holding the share when neither `--share` nor `--share-file` is given.
pub const SHARE_ENV: &str = "DAAS_SHARE";

const SHARE_SOURCES: &str = "The share comes from --share, from --share-file, or (when neither is \
given) from the DAAS_SHARE environment variable.";

/// Where a share comes from: `--share S`, `--share-file FILE` or `$DAAS_SHARE`, in that order.
/// The value of `--share` is visible to every local user (`ps`, `/proc`) and lands in shell
/// history, so the other two are the safe ways.
#[derive(Debug, Args)]
pub struct ShareArgs {
    /// The share (daas:share:v1:…); other local users can see it in the process list and it
    /// stays in shell history: prefer --share-file or DAAS_SHARE
    #[arg(long, value_name = "SHARE")]
    pub share: Option<String>,
    /// Read the share from FILE
    #[arg(long, value_name = "FILE", conflicts_with = "share")]
    pub share_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = SHARE_SOURCES)]
pub struct DecryptArgs {
    // The share printed by `daas encrypt`.
    #[command(flatten)]
    pub share: ShareArgs,
    /// Read the ciphertext from FILE instead of stdin
    #[arg(long = "in", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Client mode: fetch the server share and decrypt locally; the share stays here
    #[arg(long)]
    pub local: bool,
}

#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// Store a secret read from stdin; prints {"share"} (needed to read it back)
    Put {
        /// Secret name: 1-128 characters of A-Z a-z 0-9 . _ / -
        name: String,
        /// Read the value from FILE instead of stdin
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Write a secret's raw value to stdout
    #[command(after_help = SHARE_SOURCES)]
    Get {
        name: String,
        // The share printed by `daas secret put`.
        #[command(flatten)]
        share: ShareArgs,
    },
    /// Delete a secret
    Delete { name: String },
    /// List secrets (JSON)
    List,
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Print audit entries as JSON lines
    List {
        /// Only entries after this sequence number
        #[arg(long, value_name = "N")]
        after: Option<u64>,
        /// At most N entries (server maximum 1000)
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Verify the hash chain; exits non-zero when it is broken
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Encrypt/decrypt load over HTTPS keep-alive connections
    Safe(BenchArgs),
    /// X.509-SVID issuance load, as sensors request it (or OpenBao PKI signing the same CSR)
    Svid(BenchSvidArgs),
    /// DPoP-bound access token issuance load (`POST /v1/token`, a fresh proof per request)
    Token(BenchTokenArgs),
}

/// How many connections and for how long: shared by every `daas bench` load.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Concurrent connections (one worker each); one run per value
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_value = "1,16",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub connections: Vec<u32>,
    /// Duration of each run (e.g. 10s, 500ms, 2m)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
}

#[derive(Debug, Args)]
pub struct BenchTokenArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Audience of the issued tokens
    #[arg(long, value_name = "AUD", default_value = "https://bench.daas.local")]
    pub aud: String,
    /// Scope of the issued tokens (space-separated)
    #[arg(long, value_name = "S")]
    pub scope: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchSvidArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// System under test (daas: admin credentials from DAAS_ADDR, DAAS_TOKEN, DAAS_CACERT)
    #[arg(long, value_enum, default_value_t = BenchTarget::Daas)]
    pub target: BenchTarget,
    /// OpenBao address (plain HTTP for a dev server)
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8200")]
    pub openbao_addr: String,
    /// OpenBao token (or BAO_TOKEN)
    #[arg(long, value_name = "TOKEN", env = "BAO_TOKEN", hide_env_values = true)]
    pub openbao_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTarget {
    Daas,
    Openbao,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchClient {
    Raw,
    Sdk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchOp {
    Pair,
    Encrypt,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Plaintext size in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub size: usize,
    /// System under test
    #[arg(long, value_enum, default_value_t = BenchTarget::Daas)]
    pub target: BenchTarget,
    /// daas only: client mode (encrypt/decrypt locally)
    #[arg(long)]
    pub local: bool,
    /// What each worker repeats: an encrypt followed by a decrypt of its result (`pair`), or
    /// encrypts only (`encrypt`)
    #[arg(long, value_enum, default_value_t = BenchOp::Pair)]
    pub op: BenchOp,
    /// Speak HTTP/1.1 instead of negotiating HTTP/2 (one request at a time per connection)
    #[arg(long)]
    pub http1: bool,
    /// daas only: load with pre-built JSON requests over a plain HTTPS client (`raw`, as the
    /// OpenBao target is loaded), or through the Rust SDK with its client-side checks (`sdk`)
    #[arg(long, value_enum, default_value_t = BenchClient::Raw)]
    pub client: BenchClient,
    /// OpenBao address (http:// allowed for a local dev server)
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8200")]
    pub openbao_addr: String,
    /// OpenBao token
    #[arg(long, value_name = "T", env = "BAO_TOKEN", hide_env_values = true)]
    pub openbao_token: Option<String>,
}

/// `10s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (try 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    if !(secs > 0.0 && secs <= 24.0 * 3600.0) {
        return Err(format!(
            "duration {s:?} must be greater than 0 and at most 24h"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "0s", "-1s", "10x", "25h", "1e9"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_documented_invocations() {
        let ok = [
            &["daas", "server", "--dev"][..],
            &[
                "daas",
                "server",
                "--dev",
                "--data-dir",
                "/tmp/x",
                "--listen",
                "127.0.0.1:9000",
            ],
            &["daas", "server", "--config", "daas.toml"],
            &[
                "daas",
                "operator",
                "init",
                "--config",
                "f",
                "--shares",
                "5",
                "--threshold",
                "3",
            ],
            &["daas", "operator", "unseal", "daas:unseal:v1:x"],
            &["daas", "app", "create", "billing"],
            &["daas", "app", "list"],
            &[
                "daas",
                "encrypt",
                "--in",
                "f",
                "--audience",
                "a",
                "--access",
                "app:x",
                "--access",
                "admin",
                "--local",
            ],
            &["daas", "decrypt", "--share", "s", "--in", "f", "--local"],
            // The share may also come from a file or DAAS_SHARE (checked after parsing).
            &["daas", "decrypt"],
            &[
                "daas",
                "decrypt",
                "--share-file",
                "f",
                "--in",
                "f",
                "--local",
            ],
            &["daas", "secret", "get", "db/pw", "--share-file", "f"],
            &["daas", "operator", "unseal", "--share-file", "f"],
            &["daas", "operator", "unseal"],
            &["daas", "secret", "put", "db/pw", "--in", "f"],
            &["daas", "secret", "get", "db/pw", "--share", "s"],
            &["daas", "secret", "delete", "db/pw"],
            &["daas", "secret", "list"],
            &["daas", "audit", "list", "--after", "3", "--limit", "10"],
            &["daas", "audit", "verify"],
            &[
                "daas",
                "bench",
                "safe",
                "--connections",
                "1,16",
                "--duration",
                "10s",
                "--size",
                "1024",
                "--target",
                "openbao",
                "--openbao-addr",
                "http://127.0.0.1:8200",
                "--openbao-token",
                "t",
            ],
        ];
        for argv in ok {
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("{argv:?}: {e}");
            }
        }
        let bad = [
            &["daas", "server"][..],
            &["daas", "server", "--dev", "--config", "x"],
            &["daas", "bench", "safe", "--connections", "0"],
            &["daas", "decrypt", "--share", "s", "--share-file", "f"],
            &[
                "daas",
                "secret",
                "get",
                "n",
                "--share",
                "s",
                "--share-file",
                "f",
            ],
            &["daas", "operator", "unseal", "s", "--share-file", "f"],
            &["daas", "decrypt", "daas:share:v1:x"],
        ];
        for argv in bad {
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?}");
        }
    }
}
