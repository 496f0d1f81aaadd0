//! Reading inputs (stdin or `--in FILE`) into zeroizing buffers and writing outputs.
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use zeroize::Zeroizing;

/// Largest input read from stdin or a file (client mode can seal up to 64 MiB).
pub const MAX_INPUT: usize = 64 * 1024 * 1024;

/// Read all of `--in FILE`, or stdin when `path` is `None`, into a zeroizing buffer. The buffer
/// grows by moving into a fresh zeroizing allocation, so no unwiped copy of a secret is left.
pub fn read_input(path: Option<&Path>) -> Result<Zeroizing<Vec<u8>>> {
    match path {
        Some(p) => {
            let file =
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            read_all(file, MAX_INPUT).with_context(|| format!("cannot read {}", p.display()))
        }
        None => read_all(std::io::stdin().lock(), MAX_INPUT).context("cannot read stdin"),
    }
}

/// Read text input (a ciphertext or a share) and trim surrounding whitespace.
pub fn read_text(path: Option<&Path>, what: &str) -> Result<Zeroizing<String>> {
    let bytes = read_input(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow::anyhow!("the {what} is not valid UTF-8 text"))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("no {what} given (empty input)");
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}

/// Largest file a share or token is read from (a share is about 100 characters).
pub const MAX_SECRET_FILE: usize = 64 * 1024;

/// Read a share from FILE: UTF-8, surrounding whitespace trimmed, not empty. Errors name the
/// file, never its content.
pub fn read_secret_file(path: &Path, what: &str) -> Result<Zeroizing<String>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the {what} file {}", path.display()))?;
    let bytes = read_all(file, MAX_SECRET_FILE)
        .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow::anyhow!("the {what} file {} is not UTF-8 text", path.display()))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}

pub fn read_all(mut reader: impl Read, limit: usize) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; 8 * 1024]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            if len >= limit {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("input is larger than {} MiB", limit / (1024 * 1024)),
                ));
            }
            let mut bigger = Zeroizing::new(vec![0u8; (len * 2).min(limit.saturating_add(1))]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if len > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("input is larger than {} MiB", limit / (1024 * 1024)),
        ));
    }
    buf.truncate(len);
    Ok(buf)
}

/// One-line JSON in the style `{"a": 1, "b": [1, 2]}`.
struct OneLine;

impl serde_json::ser::Formatter for OneLine {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

/// Serialize `value` as one line of JSON into a zeroizing buffer (it may hold a share or token).
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(1024));
    let mut ser = serde_json::Serializer::with_formatter(&mut *buf, OneLine);
    value
        .serialize(&mut ser)
        .context("cannot encode the output as JSON")?;
    buf.push(b'\n');
    Ok(buf)
}

/// Print `value` as one line of JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    write_stdout(&json_line(value)?)
}

/// Write raw bytes to stdout (no newline added) and flush.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

/// Write a progress line to stderr (what long-running commands say about themselves) and flush.
pub fn write_stderr(bytes: &[u8]) -> Result<()> {
    let mut err = std::io::stderr().lock();
    err.write_all(bytes)
        .and_then(|()| err.flush())
        .context("cannot write to stderr")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_style() {
        #[derive(Serialize)]
        struct S<'a> {
            ciphertext: &'a str,
            share: &'a str,
            list: Vec<u8>,
            nested: serde_json::Value,
        }
        let v = S {
            ciphertext: "daas:v1:x",
            share: "daas:share:v1:y",
            list: vec![1, 2],
            nested: serde_json::json!({"a": null}),
        };
        let out = json_line(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::str::from_utf8(&out).unwrap_or_default(),
            "{\"ciphertext\": \"daas:v1:x\", \"share\": \"daas:share:v1:y\", \"list\": [1, 2], \"nested\": {\"a\": null}}\n"
        );
    }

    #[test]
    fn secret_files_are_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("share");
        std::fs::write(&path, "  daas:share:v1:abc\n").unwrap_or_else(|e| panic!("{e}"));
        let got = read_secret_file(&path, "share").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.as_str(), "daas:share:v1:abc");
        std::fs::write(&path, " \n").unwrap_or_else(|e| panic!("{e}"));
        assert!(read_secret_file(&path, "share").is_err());
        std::fs::write(&path, [0xff, 0xfe]).unwrap_or_else(|e| panic!("{e}"));
        assert!(read_secret_file(&path, "share").is_err());
        std::fs::write(&path, vec![b'a'; MAX_SECRET_FILE + 1]).unwrap_or_else(|e| panic!("{e}"));
        assert!(read_secret_file(&path, "share").is_err());
        assert!(read_secret_file(&dir.path().join("missing"), "share").is_err());
    }

    #[test]
    fn read_all_grows_and_limits() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let got = read_all(&data[..], 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&got[..], &data[..]);
        assert!(read_all(&data[..], 50_000).is_err());
        let exact = read_all(&data[..], 100_000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(exact.len(), 100_000);
        assert!(
            read_all(&b""[..], 10)
                .map(|v| v.is_empty())
                .unwrap_or(false)
        );
    }
}
