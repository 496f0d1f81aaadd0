//! `daas app register` (issue an app's identity document) and `daas identity verify` (verify an
//! app or instance document offline against a trust bundle file).
//!
//! Wiring (in `cli.rs` / `main.rs`): `App(AppCmd::Register(AppRegisterArgs))` calls
//! [`app_register`]; `Identity(IdentityCmd::Verify(IdentityVerifyArgs))` calls
//! [`identity_verify`].
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::io::{print_json, read_all};

/// Largest document or bundle file read (documents are well under 16 KiB).
const MAX_FILE: usize = 256 * 1024;

/// `daas app register NAME --owner OWNER --digest sha256:HEX [--digest ...] [--role ROLE ...]`
#[derive(Debug, Clone, clap::Args)]
pub struct AppRegisterArgs {
    /// The app (created with `daas app create NAME`)
    pub name: String,
    /// Who answers for the app (team, e-mail)
    #[arg(long)]
    pub owner: String,
    /// A binary allowed to run as the app, sha256:HEX (repeatable, at least one)
    #[arg(long = "digest", value_name = "sha256:HEX", required = true)]
    pub digests: Vec<String>,
    /// A role of the app (repeatable)
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Document version (default: one more than the current document's, 1 for the first;
    /// an explicit one must be greater). `--version` is the program's own flag
    #[arg(long, value_name = "N")]
    pub doc_version: Option<u64>,
    /// Document lifetime (default 30d, at most 90d)
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::parse_duration)]
    pub ttl: Option<Duration>,
    /// Also write the document (the compact JWS) to FILE
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `daas identity verify DOC --bundle FILE [--app APPDOC]`
#[derive(Debug, Clone, clap::Args)]
pub struct IdentityVerifyArgs {
    /// The document to verify: a file holding the compact JWS (`-` for stdin)
    pub doc: PathBuf,
    /// Trust bundle: a file holding the body of `GET /v1/identity/bundle`
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// For an instance document: the app document it is chained to (a file)
    #[arg(long = "app", value_name = "APPDOC")]
    pub app: Option<PathBuf>,
}

/// `daas identity instance --socket PATH [--out DIR]`
#[derive(Debug, Clone, clap::Args)]
pub struct IdentityInstanceArgs {
    /// The sensor's Workload API socket
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// Write instance.jws and app.jws (the first document, 0600) into this directory
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Fetches this process's instance identity documents from the sensor; prints one line of JSON
/// `{"documents": [{workload_id, spiffe_id, instance_id, expires_at}]}`.
pub async fn identity_instance(args: &IdentityInstanceArgs) -> Result<()> {
    let documents = daas_sensor::workload_client::fetch_instance_documents(&args.socket).await?;
    if let (Some(dir), Some(first)) = (&args.out, documents.first()) {
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, text) in [
            ("instance.jws", &first.document),
            ("app.jws", &first.app_document),
        ] {
            write_private(&dir.join(name), &format!("{text}\n"))?;
        }
    }
    #[derive(serde::Serialize)]
    struct Summary<'a> {
        workload_id: &'a str,
        spiffe_id: &'a str,
        instance_id: &'a str,
        expires_at: i64,
    }
    #[derive(serde::Serialize)]
    struct Out<'a> {
        documents: Vec<Summary<'a>>,
    }
    print_json(&Out {
        documents: documents
            .iter()
            .map(|d| Summary {
                workload_id: &d.workload_id,
                spiffe_id: &d.spiffe_id,
                instance_id: &d.instance_id,
                expires_at: d.expires_at,
            })
            .collect(),
    })
}

/// Replace `path` with `text`, readable by its owner only (documents are bearer statements).
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("jws.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Issues the app's identity document; prints `{spiffe_id, uid, version, document, expires_at}`
/// as one line of JSON.
pub async fn app_register(client: &daas_sdk::Client, args: &AppRegisterArgs) -> Result<()> {
    let request = daas_sdk::AppIdentityRequest {
        name: args.name.clone(),
        owner: args.owner.clone(),
        allowed_digests: args.digests.clone(),
        roles: args.roles.clone(),
        version: args.doc_version,
        ttl_secs: args.ttl.map(|d| d.as_secs()),
    };
    let issued = match client.app_identity_register(&request).await {
        Ok(issued) => issued,
        Err(e) if e.code() == Some("not_found") => bail!(
            "no app named {:?}: create it first with `daas app create {}`",
            args.name,
            args.name
        ),
        Err(e) => return Err(e).context("cannot register the app's identity"),
    };
    if let Some(path) = &args.out {
        std::fs::write(path, format!("{}\n", issued.document))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    print_json(&issued)
}

fn read_text_file(path: &Path, what: &str) -> Result<String> {
    let bytes = if path.as_os_str() == "-" {
        read_all(std::io::stdin().lock(), MAX_FILE).context("cannot read stdin")?
    } else {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open the {what} {}", path.display()))?;
        read_all(file, MAX_FILE)
            .with_context(|| format!("cannot read the {what} {}", path.display()))?
    };
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow::anyhow!("the {what} {} is not UTF-8 text", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        bail!("the {what} {} is empty", path.display());
    }
    Ok(text.to_owned())
}

/// Verifies an app document (or, with `--app`, an instance document chained to it) offline;
/// prints the verified metadata as one line of JSON, or fails with the reason.
pub fn identity_verify(args: &IdentityVerifyArgs) -> Result<()> {
    let verified = verify_files(args, time::OffsetDateTime::now_utc())?;
    print_json(&verified)
}

fn verify_files(args: &IdentityVerifyArgs, now: time::OffsetDateTime) -> Result<serde_json::Value> {
    let bundle = read_text_file(&args.bundle, "trust bundle")?;
    let bundle = daas_identity::DocumentBundle::from_trust_bundle_json(bundle.as_bytes())
        .with_context(|| format!("{} is not a daas trust bundle", args.bundle.display()))?;
    let doc = read_text_file(&args.doc, "document")?;
    let app = args
        .app
        .as_deref()
        .map(|p| read_text_file(p, "app document"))
        .transpose()?;
    let verified = daas_identity::verify_document(&doc, app.as_deref(), &bundle, now)
        .map_err(|e| anyhow::anyhow!("document rejected: {e}"))?;
    Ok(verified.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_app_and_instance_documents_from_files() {
        let now = time::OffsetDateTime::now_utc();
        let ca = daas_identity::TrustDomainCa::new(
            "daas.local".parse().unwrap(),
            time::Duration::days(1),
            now,
        )
        .unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        let meta = daas_identity::AppMetadata {
            name: "web".into(),
            owner: "team".into(),
            allowed_digests: vec![digest.clone()],
            roles: vec![],
        };
        let hour = Duration::from_secs(3600);
        let (app_doc, app) = ca.issue_app_document("app_1", &meta, 1, hour, now).unwrap();
        let (inst_doc, _) = ca
            .issue_instance_document(
                &app_doc,
                &app,
                &daas_identity::InstanceStatic {
                    binary_digest: digest,
                    node_id: "spiffe://daas.local/daas/node/n".parse().unwrap(),
                    workload_id: None,
                },
                &daas_identity::InstanceDynamic {
                    pid: 1,
                    started_at: 0,
                },
                hour,
                now,
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let bundle = serde_json::json!({
            "trust_domain": "spiffe://daas.local",
            "authorities": [], "pem": "",
            "jwt_authorities": ca.jwt_bundle(now).to_jwks_value(),
            "document_authorities": ca.document_bundle(now).to_jwks_value(),
        });
        let bundle = write("bundle.json", &bundle.to_string());
        let app_path = write("app.jws", &format!("{app_doc}\n"));
        let inst_path = write("inst.jws", &inst_doc);
        let args = |doc: &Path, app: Option<&Path>| IdentityVerifyArgs {
            doc: doc.to_owned(),
            bundle: bundle.clone(),
            app: app.map(Path::to_owned),
        };
        let out = verify_files(&args(&app_path, None), now).unwrap();
        assert_eq!(out["kind"], "app");
        assert_eq!(out["valid"], true);
        let out = verify_files(&args(&inst_path, Some(&app_path)), now).unwrap();
        assert_eq!(out["kind"], "instance");
        // Tampered: one signature character changed.
        let mut bad = app_doc.into_bytes();
        let at = bad.len() - 10;
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        let bad = write("bad.jws", std::str::from_utf8(&bad).unwrap());
        let err = verify_files(&args(&bad, None), now).unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
        // Instance without its app document: refused.
        assert!(verify_files(&args(&inst_path, None), now).is_err());
    }
}
