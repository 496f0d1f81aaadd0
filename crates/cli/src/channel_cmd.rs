//! `daas channel keygen | listen | connect`: role keys, and a netcat-like tool over the
//! role-authenticated channel (docs/channel.md, "The `daas channel` command").
//!
//! `listen` and `connect` copy stdin to the peer and the peer's bytes to stdout, both
//! directions at once. When stdin ends, this side closes its sending direction (TLS
//! `close_notify`, then a TCP half-close) and keeps receiving; the command ends when both
//! directions have ended. Before any byte flows, the peer's verified roles are printed on
//! stderr as one line, `verified roles: a,b` (ascending, comma-separated; `(none)` for an
//! anonymous peer, which only a configuration with `allow_anonymous = true` lets through).
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, anyhow};
use daas_channel::{
    Channel, ChannelConfig, ChannelError, RateLimit, RateLimiter, RoleFailure, VerifiedRoles,
};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use zeroize::Zeroizing;

/// Bytes in a role key written by `keygen`: 256 bits.
const ROLE_KEY_BYTES: usize = 32;
/// Chunk size of the stdin reader and of channel reads.
const CHUNK: usize = 16 * 1024;
/// Chunks of stdin buffered ahead of a slow peer.
const STDIN_QUEUE: usize = 4;

/// `daas channel keygen --out FILE [--force]`
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the key (hex, created 0600); an existing file is kept unless --force
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace an existing file (a new key: every peer sharing the role needs it too)
    #[arg(long)]
    pub force: bool,
}

/// `daas channel listen --addr ADDR --config FILE`
#[derive(Debug, Clone, clap::Args)]
pub struct ListenArgs {
    /// Address to listen on (port 0: any free port; the address is printed on stderr as
    /// `listening on ADDR`)
    #[arg(long, value_name = "ADDR")]
    pub addr: SocketAddr,
    /// This side's channel configuration (TOML: roles, secret sources, allow_anonymous)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `daas channel connect --addr ADDR --config FILE`
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The listener (host:port)
    #[arg(long, value_name = "ADDR")]
    pub addr: String,
    /// This side's channel configuration (TOML: roles, secret sources, allow_anonymous)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Writes a fresh 256-bit role key as hex to `--out`, mode 0600. Prints nothing.
pub fn keygen(args: &KeygenArgs) -> Result<()> {
    let mut key = Zeroizing::new([0u8; ROLE_KEY_BYTES]);
    daas_crypto::random::fill(key.as_mut_slice())
        .map_err(|_| anyhow!("cannot generate a key: the system random generator failed"))?;
    let mut text = Zeroizing::new(vec![0u8; 2 * ROLE_KEY_BYTES + 1]);
    // Into the zeroizing buffer directly: `hex::encode` would leave an unwiped `String`.
    hex::encode_to_slice(key.as_slice(), &mut text[..2 * ROLE_KEY_BYTES])
        .map_err(|_| anyhow!("cannot encode the key"))?;
    text[2 * ROLE_KEY_BYTES] = b'\n';
    write_private(&args.out, &text, args.force)
}

/// Creates `path` 0600 holding `bytes`. Without `force` an existing file is an error; with it,
/// the key goes to a fresh 0600 file beside `path` that is then renamed over it, so the old
/// file's mode is never reused and a crash leaves the old or the new key, not half of one.
fn write_private(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let create = |p: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p)
    };
    let write = |mut file: std::fs::File, p: &Path| {
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", p.display()))
    };
    if !force {
        let file = create(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow!(
                    "{} already exists (use --force to replace the key)",
                    path.display()
                )
            } else {
                anyhow!("cannot create {}: {e}", path.display())
            }
        })?;
        return write(file, path);
    }
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".new");
    let tmp = path.with_file_name(tmp_name);
    // A leftover from an interrupted run holds no key we need.
    let _ = std::fs::remove_file(&tmp);
    let file = create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = write(file, &tmp).and_then(|()| {
        std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The roles of the configuration file at `path`: secrets from files and variables, and those
/// stored on the daas server (`secret_daas`, with the caller's share) fetched from `DAAS_ADDR`
/// with `DAAS_TOKEN` (the server adds its share; the value never touches the disk here).
async fn load_roles(path: &Path) -> Result<(daas_channel::RoleConfig, daas_channel::KeyExchange)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = daas_channel::file::ChannelFile::parse(&text)?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let env = |v: &str| std::env::var(v).ok();
    let wanted = file.daas_secrets(base, env)?;
    let mut fetched = std::collections::HashMap::new();
    if !wanted.is_empty() {
        let client = daas_sdk::Client::from_env()
            .context("roles with secret_daas need the daas server (DAAS_ADDR, DAAS_TOKEN)")?;
        for secret in wanted {
            let share = daas_sdk::SecretString::new(secret.share.as_str().to_owned());
            let value = client
                .secret_get(&secret.name, &share)
                .await
                .with_context(|| format!("cannot fetch the daas secret {}", secret.name))?;
            fetched.insert(secret.name, value.value);
        }
    }
    let roles = file.load_roles_with(base, env, |name| fetched.get(name).cloned())?;
    Ok((roles, file.key_exchange()))
}

/// Reads the configuration file and every secret it names; builds the TLS configurations and a
/// password-attempt limiter (default budget: 5 attempts per peer and role, one more a minute).
async fn load_config(path: &Path) -> Result<ChannelConfig> {
    let (roles, kx) = load_roles(path)
        .await
        .with_context(|| format!("channel configuration {}", path.display()))?;
    let limiter = Arc::new(Mutex::new(RateLimiter::new(RateLimit::default())));
    Ok(ChannelConfig::new(roles, kx, None)
        .context("cannot set up tls")?
        .with_rate_limiter(limiter))
}

/// Accepts one connection, runs the channel handshake, then pipes stdin/stdout until both
/// directions end. A peer that verifies no role is refused (error, non-zero exit).
pub async fn listen(args: &ListenArgs) -> Result<()> {
    let config = load_config(&args.config).await?;
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    stderr_line(&format!("listening on {local}"));
    let (tcp, peer) = listener
        .accept()
        .await
        .context("cannot accept a connection")?;
    drop(listener);
    let channel = daas_channel::accept(&config, tcp, peer.ip())
        .await
        .map_err(|e| handshake_error(&e, &peer.to_string()))?;
    report(channel.verified_roles());
    pipe(channel).await
}

/// Connects, runs the channel handshake, then pipes stdin/stdout until both directions end.
pub async fn connect(args: &ConnectArgs) -> Result<()> {
    let config = load_config(&args.config).await?;
    let tcp = TcpStream::connect(&args.addr)
        .await
        .with_context(|| format!("cannot connect to {}", args.addr))?;
    let peer = tcp
        .peer_addr()
        .with_context(|| format!("cannot connect to {}", args.addr))?;
    let channel = daas_channel::connect(&config, tcp, peer.ip())
        .await
        .map_err(|e| handshake_error(&e, &args.addr))?;
    report(channel.verified_roles());
    pipe(channel).await
}

/// `verified roles: a,b` (ascending), or `verified roles: (none)` for an anonymous peer: role
/// names cannot contain parentheses, so the two never collide.
fn roles_line(roles: &VerifiedRoles) -> String {
    if roles.is_empty() {
        "verified roles: (none)".to_owned()
    } else {
        format!("verified roles: {roles}")
    }
}

fn report(roles: &VerifiedRoles) {
    stderr_line(&roles_line(roles));
}

/// One line on stderr, flushed at once (a script may be waiting for it).
fn stderr_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}").and_then(|()| err.flush());
}

/// The refusal of a peer that verified no role names the roles it claimed and why each failed
/// (role names and reasons are safe to show: names are limited to `a-z 0-9 . _ -`).
fn handshake_error(e: &ChannelError, peer: &str) -> anyhow::Error {
    match e {
        ChannelError::NoVerifiedRoles { failures } => {
            anyhow!(
                "refused peer {peer}: none of its roles verified and anonymous peers are not \
                 allowed{}",
                failed_roles(failures)
            )
        }
        other => anyhow!("channel handshake with {peer} failed: {other}"),
    }
}

fn failed_roles(failures: &[RoleFailure]) -> String {
    if failures.is_empty() {
        return String::new();
    }
    let list: Vec<String> = failures
        .iter()
        .map(|f| format!("{} ({})", f.role, f.reason))
        .collect();
    format!("; failed roles: {}", list.join(", "))
}

/// Copies stdin to the channel and the channel to stdout concurrently; when stdin ends, closes
/// the sending direction (close_notify + TCP half-close) and keeps receiving. Returns when both
/// directions have ended. A peer that closes the TCP connection without `close_notify` is an
/// error (the data may have been truncated).
async fn pipe<S>(channel: Channel<S>) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(channel);
    let mut stdin = stdin_chunks();
    let send = async {
        while let Some(chunk) = stdin.recv().await {
            let chunk = chunk.context("cannot read stdin")?;
            wr.write_all(&chunk)
                .await
                .and(wr.flush().await)
                .context("cannot send to the peer")?;
        }
        wr.shutdown()
            .await
            .context("cannot close the sending direction")
    };
    let receive = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = rd
                .read(&mut buf)
                .await
                .context("cannot receive from the peer")?;
            if n == 0 {
                break;
            }
            // Blocking, like any netcat: a reader that stops reading stops the peer too.
            let mut out = std::io::stdout().lock();
            out.write_all(&buf[..n])
                .and_then(|()| out.flush())
                .context("cannot write to stdout")?;
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::try_join!(send, receive)?;
    Ok(())
}

/// Stdin read on a plain thread, chunk by chunk. Not tokio's stdin: its blocking read would
/// keep the runtime (and so the process) alive after the channel is done; a plain thread
/// blocked in `read` does not outlive `main`.
fn stdin_chunks() -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(STDIN_QUEUE);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let msg = match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => Ok(buf[..n].to_vec()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let stop = msg.is_err();
            if tx.blocking_send(msg).is_err() || stop {
                return;
            }
        }
    });
    rx
}
