//! `daas` — the command line of the daas split-key secrets service.
#![forbid(unsafe_code)]
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool: stdout carries results, stderr the one-line error"
)]

mod bench;
mod bench_svid;
mod bench_token;
mod channel_cmd;
mod cli;
mod identity_docs;
mod io;
mod protect;
mod token_cmd;

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Parser as _;
use daas_crypto::CryptoError;
use daas_sdk::{Client, EncryptOptions, SecretString};
use serde::Serialize;
use zeroize::{Zeroize as _, Zeroizing};

use crate::cli::{
    AppCmd, AuditCmd, BenchCmd, ChannelCmd, Cli, Command, DecryptArgs, EncryptArgs, EntryCmd,
    IdentityCmd, NodeCmd, NodeTokenCmd, OperatorCmd, SHARE_ENV, SecretCmd, SensorArgs, ServerArgs,
    ShareArgs, TokenCmd,
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(&e),
    };
    if let Some(e) = missing_share(&cli.command, std::env::var_os(SHARE_ENV).as_deref()) {
        return clap_error(&e);
    }
    init_tracing(matches!(
        cli.command,
        Command::Server(_) | Command::Sensor(_) | Command::Token(TokenCmd::Protect(_))
    ));
    // The load generator runs on one thread (as wrk does): on a small machine shared with the
    // server under test, a second busy thread only takes CPU from the server and adds wake-ups.
    let mut builder = if matches!(cli.command, Command::Bench(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// `--help`/`--version` go to stdout as clap renders them; every usage error becomes one line
/// on stderr and exit code 2. Errors whose clap wording would quote what was typed (an unknown
/// argument, a bad value) get our own line naming only the option: what was typed may be a share
/// or a token pasted in the wrong place, and stderr ends up in terminals, CI logs and bug reports.
fn clap_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let text = e.render().to_string();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `daas` or `daas secret` alone: name the usage instead of dumping the help.
            let usage = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Usage:"))
                .map_or_else(|| "daas <COMMAND>".to_owned(), |u| u.trim().to_owned());
            let cmd = usage.split(" <").next().unwrap_or("daas");
            eprintln!("error: a subcommand is required: {usage} (see '{cmd} --help')");
            ExitCode::from(2)
        }
        // clap's wording of these names arguments and counts, never a typed value.
        ErrorKind::MissingRequiredArgument
        | ErrorKind::ArgumentConflict
        | ErrorKind::MissingSubcommand
        | ErrorKind::NoEquals
        | ErrorKind::WrongNumberOfValues
        | ErrorKind::TooFewValues => {
            // The first paragraph of clap's message, on one line, without its `error:` prefix.
            let paragraph: Vec<&str> = text
                .lines()
                .skip_while(|l| l.trim().is_empty())
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let joined = paragraph.join(" ");
            let msg = joined.strip_prefix("error:").unwrap_or(&joined).trim();
            let msg = if msg.is_empty() {
                "invalid arguments"
            } else {
                msg
            };
            eprintln!("error: {msg} (see 'daas --help')");
            ExitCode::from(2)
        }
        _ => {
            eprintln!("error: {} (see 'daas --help')", redacted_usage_error(e));
            ExitCode::from(2)
        }
    }
}

/// A usage error in our words, without the value that was typed.
fn redacted_usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let string = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let arg = string(ContextKind::InvalidArg);
    let hidden = "not shown: it may be a secret";
    match e.kind() {
        ErrorKind::UnknownArgument => match arg.and_then(flag_name) {
            Some(flag) => {
                let hint = match string(ContextKind::SuggestedArg).and_then(flag_name) {
                    Some(s) => format!(" (did you mean '{s}'?)"),
                    None => String::new(),
                };
                format!("unexpected argument '{flag}'{hint}")
            }
            None => format!("unexpected argument ({hidden})"),
        },
        ErrorKind::InvalidSubcommand => format!("unrecognized subcommand ({hidden})"),
        ErrorKind::InvalidValue if string(ContextKind::InvalidValue) == Some("") => {
            format!("a value is required for '{}'", arg.unwrap_or("an option"))
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let possible = match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(v)) if !v.is_empty() => {
                    format!(" [possible values: {}]", v.join(", "))
                }
                _ => String::new(),
            };
            format!(
                "invalid value for '{}' ({hidden}){possible}",
                arg.unwrap_or("an argument")
            )
        }
        ErrorKind::TooManyValues => format!(
            "too many values for '{}' ({hidden})",
            arg.unwrap_or("an argument")
        ),
        ErrorKind::InvalidUtf8 => "an argument is not valid UTF-8".to_owned(),
        _ => "invalid arguments".to_owned(),
    }
}

/// `--name` / `-n` of an unknown option (any `=value` dropped), or `None` when the text does
/// not look like an option name: then it is not shown at all.
fn flag_name(arg: &str) -> Option<&str> {
    let name = arg.split('=').next().unwrap_or_default();
    let bare = name.strip_prefix("--").or_else(|| name.strip_prefix('-'))?;
    let plausible = (1..=32).contains(&bare.len())
        && bare.starts_with(|c: char| c.is_ascii_alphabetic())
        && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    plausible.then_some(name)
}

/// `decrypt` and `secret get` need a share from `--share`, `--share-file` or `DAAS_SHARE`; none
/// of them is a usage error (exit 2), like a missing required option.
fn missing_share(command: &Command, env: Option<&std::ffi::OsStr>) -> Option<clap::Error> {
    let (args, cmd) = match command {
        Command::Decrypt(a) => (&a.share, "daas decrypt"),
        Command::Secret(SecretCmd::Get { share, .. }) => (share, "daas secret get"),
        _ => return None,
    };
    let from_env = env.is_some_and(|v| !v.to_string_lossy().trim().is_empty());
    if args.share.is_some() || args.share_file.is_some() || from_env {
        return None;
    }
    Some(clap::Error::raw(
        clap::error::ErrorKind::MissingRequiredArgument,
        format!(
            "{cmd} needs the share: --share-file FILE, the {SHARE_ENV} environment variable, \
             or --share SHARE\n"
        ),
    ))
}

/// The share of `decrypt` / `secret get`: `--share`, else `--share-file`, else `$DAAS_SHARE`.
fn share_from(args: ShareArgs) -> Result<SecretString> {
    if let Some(share) = args.share {
        return Ok(SecretString::new(share));
    }
    if let Some(path) = args.share_file {
        let mut text = io::read_secret_file(&path, "share")?;
        return Ok(SecretString::new(std::mem::take(&mut *text)));
    }
    match std::env::var(SHARE_ENV) {
        Ok(value) => {
            let value = Zeroizing::new(value);
            let trimmed = value.trim();
            if trimmed.is_empty() {
                bail!("{SHARE_ENV} is empty: give the share with --share-file FILE or {SHARE_ENV}");
            }
            Ok(SecretString::new(trimmed.to_owned()))
        }
        Err(std::env::VarError::NotUnicode(_)) => bail!("{SHARE_ENV} is not valid UTF-8 text"),
        Err(std::env::VarError::NotPresent) => {
            bail!("no share given: use --share-file FILE, {SHARE_ENV} or --share SHARE")
        }
    }
}

/// Logs go to stderr. Default: `info` for the server, nothing for client commands (their only
/// stderr output is the one error line); `DAAS_LOG` overrides (`DAAS_LOG=debug`).
fn init_tracing(server: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("DAAS_LOG")
        .unwrap_or_else(|_| EnvFilter::new(if server { "info" } else { "off" }));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .try_init();
}

/// One clear line for a failure: API errors by their message, crypto failures in words, the rest
/// as the error chain. Never a type name, never a secret.
fn error_line(err: &anyhow::Error) -> String {
    let line = match err.downcast_ref::<daas_sdk::Error>() {
        Some(daas_sdk::Error::Api { message, .. } | daas_sdk::Error::Transport { message, .. }) => {
            message.clone()
        }
        Some(daas_sdk::Error::Crypto(c)) => crypto_message(c),
        _ => chain_line(err),
    };
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The error and its causes joined by ": ", skipping a cause whose text an outer message
/// already includes (many errors print their source themselves).
fn chain_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn crypto_message(e: &CryptoError) -> String {
    match e {
        CryptoError::CommitmentMismatch | CryptoError::AuthenticationFailed => {
            "the ciphertext and share do not decrypt together (wrong share or tampered data)"
                .to_owned()
        }
        CryptoError::ShareObjectMismatch => {
            "the share belongs to another object than the ciphertext".to_owned()
        }
        other => other.to_string(),
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Server(args) => server(args).await?,
        Command::Operator(cmd) => operator(cmd).await?,
        Command::App(cmd) => app(cmd).await?,
        Command::Encrypt(args) => encrypt(args).await?,
        Command::Decrypt(args) => decrypt(args).await?,
        Command::Secret(cmd) => secret(cmd).await?,
        Command::Audit(cmd) => audit(cmd).await?,
        Command::Node(NodeCmd::Token(NodeTokenCmd::Create { ttl })) => {
            let token = client()?.join_token_create(Some(ttl)).await?;
            io::write_stdout(format!("{}\n", token.token.expose()).as_bytes())?;
        }
        Command::Entry(cmd) => entry(cmd).await?,
        Command::Sensor(args) => sensor(args).await?,
        Command::Identity(IdentityCmd::Fetch { socket, out }) => {
            identity_fetch(&socket, out.as_deref()).await?;
        }
        Command::Identity(IdentityCmd::Verify(args)) => identity_docs::identity_verify(&args)?,
        Command::Identity(IdentityCmd::Instance(args)) => {
            identity_docs::identity_instance(&args).await?;
        }
        Command::Identity(IdentityCmd::Bundle) => io::print_json(&client()?.trust_bundle().await?)?,
        Command::Token(TokenCmd::Keygen(args)) => token_cmd::keygen(&args)?,
        Command::Token(TokenCmd::Proof(args)) => token_cmd::proof(&args)?,
        Command::Token(TokenCmd::Verify(args)) => token_cmd::verify(&args).await?,
        Command::Token(TokenCmd::Get(args)) => token_cmd::get(&args).await?,
        Command::Token(TokenCmd::Replace(args)) => token_cmd::replace(&args).await?,
        Command::Token(TokenCmd::Revoke(args)) => token_cmd::revoke(&args).await?,
        Command::Token(TokenCmd::Protect(args)) => {
            protect::protect(&args, shutdown_signal()?).await?;
        }
        Command::Channel(ChannelCmd::Keygen(args)) => channel_cmd::keygen(&args)?,
        Command::Channel(ChannelCmd::Listen(args)) => channel_cmd::listen(&args).await?,
        Command::Channel(ChannelCmd::Connect(args)) => channel_cmd::connect(&args).await?,
        Command::Token(TokenCmd::Status(args)) => token_cmd::status(&args).await?,
        Command::Bench(BenchCmd::Safe(args)) => bench::safe(args).await?,
        Command::Bench(BenchCmd::Svid(args)) => bench_svid::svid(args).await?,
        Command::Bench(BenchCmd::Token(args)) => bench_token::token(args).await?,
    }
    Ok(ExitCode::SUCCESS)
}

fn client() -> Result<Client> {
    Ok(Client::from_env()?)
}

// ---------------------------------------------------------------- server

async fn server(args: ServerArgs) -> Result<()> {
    let shutdown = shutdown_signal()?;
    if let Some(config) = args.config {
        daas_server::run_config(config, shutdown).await?;
        return Ok(());
    }
    let data_dir = std::path::absolute(&args.data_dir).with_context(|| {
        format!(
            "cannot resolve the data directory {}",
            args.data_dir.display()
        )
    })?;
    let opts = daas_server::DevOptions {
        data_dir: data_dir.clone(),
        listen: args.listen,
    };
    daas_server::run_dev(opts, move |env| print_dev_env(env, &data_dir), shutdown).await?;
    Ok(())
}

fn print_dev_env(env: &daas_server::DevEnvironment, data_dir: &Path) {
    let cacert = std::path::absolute(&env.cacert).unwrap_or_else(|_| env.cacert.clone());
    println!("export DAAS_ADDR={}", shell_quote(&env.addr));
    println!("export DAAS_TOKEN={}", shell_quote(&env.token));
    println!(
        "export DAAS_CACERT={}",
        shell_quote(&cacert.to_string_lossy())
    );
    println!(
        "# daas dev server running (data in {}); paste the lines above into your shell, then:",
        data_dir.display()
    );
    println!("#   echo -n 'hello' | daas encrypt");
    println!(
        "# dev mode only: the token above is the admin token, keep it secret. Ctrl-C stops the server."
    );
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

/// Quote for POSIX shells only when needed.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'-' | b'.' | b'/' | b':' | b'@' | b'%' | b'+' | b'=' | b','
                )
        });
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed now, before the server starts.
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int =
            signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
        let mut term =
            signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

// ---------------------------------------------------------------- sensor

async fn sensor(args: SensorArgs) -> Result<()> {
    let shutdown = shutdown_signal()?;
    let cacert = std::env::var_os("DAAS_CACERT")
        .context("DAAS_CACERT must name the server's CA certificate (PEM)")?;
    let server_ca_pem = std::fs::read(&cacert)
        .with_context(|| format!("cannot read {}", Path::new(&cacert).display()))?;
    let pem_output = match (args.pem_dir, args.pem_id) {
        (Some(dir), Some(id)) => {
            let id: daas_identity::SpiffeId = id.parse().context("--pem-id is not a SPIFFE ID")?;
            Some(
                daas_sensor::pem_dir::PemOutput::new(dir.clone(), id.to_string())
                    .with_context(|| format!("--pem-dir {}", dir.display()))?,
            )
        }
        _ => None,
    };
    let join_token = args.join_token.map(Zeroizing::new);
    let config = daas_sensor::AgentConfig {
        server_addr: args.server,
        server_ca_pem,
        data_dir: args.data_dir,
        sync_interval: args.sync_interval,
    };
    let agent = daas_sensor::Agent::start(
        config,
        join_token.as_deref().map(String::as_str),
        pem_output,
    )
    .await?;
    drop(join_token);
    io::write_stdout(format!("{}\n", agent.node_id()).as_bytes())?;
    // The first sync before listening: a workload that connects at once finds its SVID.
    agent.sync().await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let api = daas_sensor::workload_api::WorkloadApi::new(
        std::sync::Arc::clone(&agent),
        std::sync::Arc::new(daas_identity::attest::Attestor::new()),
    );
    let serving = daas_sensor::workload_api::serve(&args.socket, api, stopped(stop_rx.clone()));
    let syncing = std::sync::Arc::clone(&agent).run(stopped(stop_rx));
    tokio::pin!(serving, syncing);
    // Until a signal, the server failing, or the agent losing the node's identity (evicted,
    // node SVID expired): then both stop and the exit code says what happened.
    let (outcome, still_serving): (Result<()>, bool) = tokio::select! {
        () = shutdown => (Ok(()), true),
        served = &mut serving => (served.map_err(Into::into), false),
        synced = &mut syncing => (synced.map_err(Into::into), true),
    };
    let _ = stop_tx.send(true);
    if still_serving {
        // Let open streams end (the agent already failed them if it lost the identity).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut serving).await;
    }
    outcome
}

async fn identity_fetch(socket: &Path, out: Option<&Path>) -> Result<()> {
    let svid = daas_sensor::workload_client::fetch_x509_svid(socket).await?;
    if let Some(dir) = out {
        // Created private: the directory receives a private key.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        daas_sensor::pem_dir::PemOutput::new(dir.to_path_buf(), svid.spiffe_id.to_string())
            .and_then(|output| {
                output.write(Some(daas_sensor::pem_dir::PemIdentity {
                    chain: &svid.chain,
                    key_pkcs8: &svid.key_pkcs8,
                    bundle: &svid.bundle,
                }))
            })
            .with_context(|| format!("cannot write the SVID to {}", dir.display()))?;
    }
    io::write_stdout(format!("{}\n", svid.spiffe_id).as_bytes())?;
    Ok(())
}

// ---------------------------------------------------------------- operator

async fn operator(cmd: OperatorCmd) -> Result<()> {
    match cmd {
        OperatorCmd::Init {
            config,
            shares,
            threshold,
        } => {
            if threshold < 1 || threshold > shares {
                bail!("--threshold must be between 1 and --shares ({shares})");
            }
            let mut init = daas_server::operator_init(config, shares, threshold)?;
            // Shown once: the shares and the admin token exist nowhere else.
            #[derive(Serialize)]
            struct Out<'a> {
                unseal_shares: &'a [String],
                threshold: u8,
                admin_token: &'a str,
                cacert: String,
            }
            let cacert = std::path::absolute(&init.cacert).unwrap_or_else(|_| init.cacert.clone());
            let printed = io::print_json(&Out {
                unseal_shares: &init.unseal_shares,
                threshold: init.threshold,
                admin_token: &init.admin_token,
                cacert: cacert.to_string_lossy().into_owned(),
            });
            init.unseal_shares.zeroize();
            init.admin_token.zeroize();
            printed
        }
        OperatorCmd::Unseal { share, share_file } => {
            let share = match (share, share_file) {
                (Some(s), _) => SecretString::new(s),
                (None, Some(path)) => {
                    let mut text = io::read_secret_file(&path, "unseal share")?;
                    SecretString::new(std::mem::take(&mut *text))
                }
                (None, None) => {
                    let mut text = io::read_text(None, "unseal share")?;
                    SecretString::new(std::mem::take(&mut *text))
                }
            };
            // The share is the credential: no token is sent to a sealed server.
            let client = Client::unauthenticated_from_env()?;
            let status = client.unseal(&share).await?;
            io::print_json(&status)
        }
    }
}

// ---------------------------------------------------------------- apps

async fn app(cmd: AppCmd) -> Result<()> {
    let client = client()?;
    match cmd {
        AppCmd::Create { name } => {
            let app = client.app_create(&name).await?;
            #[derive(Serialize)]
            struct Out<'a> {
                id: &'a str,
                name: &'a str,
                principal: &'a str,
                token: &'a str,
            }
            io::print_json(&Out {
                id: &app.id,
                name: &app.name,
                principal: &app.principal,
                token: app.token.expose(),
            })
        }
        AppCmd::List => {
            #[derive(Serialize)]
            struct Out {
                apps: Vec<daas_sdk::AppInfo>,
            }
            io::print_json(&Out {
                apps: client.app_list().await?,
            })
        }
        AppCmd::Register(args) => identity_docs::app_register(&client, &args).await,
    }
}

// ---------------------------------------------------------------- identity

async fn entry(cmd: EntryCmd) -> Result<()> {
    let client = client()?;
    match cmd {
        EntryCmd::Create {
            id,
            selectors,
            node,
            ttl,
            roles,
            app,
        } => {
            // Without --node, any node of the entry's trust domain may obtain it: the parent is
            // the trust domain ID itself.
            let parent_id = match node {
                Some(node) => node,
                None => trust_domain_id(&id)?,
            };
            let entry = client
                .entry_create(&daas_sdk::NewEntry {
                    spiffe_id: id,
                    parent_id,
                    selectors,
                    x509_ttl_secs: ttl.map(|d| d.as_secs()),
                    roles,
                    allow_without_digest: false,
                    app,
                })
                .await?;
            io::print_json(&entry)
        }
        EntryCmd::List => {
            #[derive(Serialize)]
            struct Out {
                entries: Vec<daas_sdk::EntryInfo>,
            }
            io::print_json(&Out {
                entries: client.entry_list().await?,
            })
        }
        EntryCmd::Delete { id } => client.entry_delete(&id).await.map_err(Into::into),
    }
}

/// `spiffe://td/path` → `spiffe://td` (the server validates the ID itself).
fn trust_domain_id(id: &str) -> Result<String> {
    let rest = id
        .strip_prefix("spiffe://")
        .ok_or_else(|| anyhow::anyhow!("--id must be a SPIFFE ID (spiffe://TRUST-DOMAIN/PATH)"))?;
    let domain = rest.split('/').next().unwrap_or_default();
    if domain.is_empty() {
        anyhow::bail!("--id must be a SPIFFE ID (spiffe://TRUST-DOMAIN/PATH)");
    }
    Ok(format!("spiffe://{domain}"))
}

// ---------------------------------------------------------------- safe

async fn encrypt(args: EncryptArgs) -> Result<()> {
    let client = client()?;
    let plaintext = io::read_input(args.input.as_deref())?;
    let opts = EncryptOptions {
        audience: args.audience,
        access: args.access,
    };
    let sealed = if args.local {
        client.encrypt_local(&plaintext, &opts).await?
    } else {
        client.encrypt(&plaintext, &opts).await?
    };
    drop(plaintext);
    #[derive(Serialize)]
    struct Out<'a> {
        ciphertext: &'a str,
        share: &'a str,
    }
    io::print_json(&Out {
        ciphertext: &sealed.ciphertext,
        share: sealed.share.expose(),
    })
}

async fn decrypt(args: DecryptArgs) -> Result<()> {
    let client = client()?;
    let share = share_from(args.share)?;
    let ciphertext = io::read_text(args.input.as_deref(), "ciphertext")?;
    let plaintext = if args.local {
        client.decrypt_local(&ciphertext, &share).await?
    } else {
        client.decrypt(&ciphertext, &share).await?
    };
    io::write_stdout(&plaintext)
}

// ---------------------------------------------------------------- secrets

async fn secret(cmd: SecretCmd) -> Result<()> {
    let client = client()?;
    match cmd {
        SecretCmd::Put { name, input } => {
            let value = io::read_input(input.as_deref())?;
            let stored = client.secret_put(&name, &value).await?;
            drop(value);
            #[derive(Serialize)]
            struct Out<'a> {
                share: &'a str,
            }
            io::print_json(&Out {
                share: stored.share.expose(),
            })
        }
        SecretCmd::Get { name, share } => {
            let share = share_from(share)?;
            let value = client.secret_get(&name, &share).await?;
            io::write_stdout(&value.value)
        }
        SecretCmd::Delete { name } => Ok(client.secret_delete(&name).await?),
        SecretCmd::List => {
            #[derive(Serialize)]
            struct Out {
                secrets: Vec<daas_sdk::SecretInfo>,
            }
            io::print_json(&Out {
                secrets: client.secret_list().await?,
            })
        }
    }
}

// ---------------------------------------------------------------- audit

async fn audit(cmd: AuditCmd) -> Result<()> {
    let client = client()?;
    match cmd {
        AuditCmd::List { after, limit } => {
            let entries = client.audit_list(after, limit).await?;
            let mut out = Zeroizing::new(Vec::new());
            for e in &entries {
                out.extend_from_slice(&io::json_line(e)?);
            }
            io::write_stdout(&out)
        }
        AuditCmd::Verify => {
            let report = client.audit_verify().await?;
            io::print_json(&report)?;
            match (report.ok, report.first_broken) {
                (true, _) => Ok(()),
                (false, Some(seq)) => bail!("the audit chain is broken at entry {seq}"),
                (false, None) => bail!("the audit chain is broken"),
            }
        }
    }
}
