//! Request and response bodies that may carry secrets: built and read in buffers that are
//! zeroized when dropped (best effort: buffers owned by the HTTP stack are outside our reach).
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::Serialize;
use zeroize::{Zeroize, Zeroizing};

use crate::error::transport;
use crate::{Error, Result};

/// Largest response body accepted (server bodies are ≤ 1 MiB of request plus base64 growth;
/// audit pages stay far below this).
pub(crate) const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Serialize `value` to JSON into a pre-sized zeroizing buffer (no reallocation leaves copies
/// behind when `capacity` is large enough) and hand it to reqwest without copying.
pub(crate) fn json_body<T: Serialize>(value: &T, capacity: usize) -> Result<reqwest::Body> {
    let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
    serde_json::to_writer(&mut *buf, value)
        .map_err(|e| Error::invalid_input(format!("cannot encode request: {e}")))?;
    Ok(reqwest::Body::from(Bytes::from_owner(buf)))
}

/// base64url (no padding) of a secret, in a zeroizing string of exactly the right size.
pub(crate) fn b64u_secret(data: &[u8]) -> Zeroizing<String> {
    let len = base64::encoded_len(data.len(), false).unwrap_or(0);
    let mut out = Zeroizing::new(vec![0u8; len]);
    let written = URL_SAFE_NO_PAD
        .encode_slice(data, &mut out[..])
        .unwrap_or(0);
    out.truncate(written);
    let bytes = core::mem::take(&mut *out);
    // base64 output is ASCII; on the impossible failure the bytes are zeroized by the error path.
    match String::from_utf8(bytes) {
        Ok(s) => Zeroizing::new(s),
        Err(e) => {
            let mut b = e.into_bytes();
            b.zeroize();
            Zeroizing::new(String::new())
        }
    }
}

/// Decode base64url (no padding) secret text into a zeroizing buffer.
pub(crate) fn b64u_decode_secret(field: &str, text: &str) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(vec![0u8; text.len() / 4 * 3 + 3]);
    let n = URL_SAFE_NO_PAD
        .decode_slice(text.as_bytes(), &mut out[..])
        .map_err(|_| Error::invalid_response(format!("{field} is not valid base64url")))?;
    out.truncate(n);
    Ok(out)
}

/// Read a response body into a zeroizing buffer, refusing more than `limit` bytes. Chunks
/// handed over by the HTTP stack are wiped when we hold the only reference.
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let hint = resp
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(8 * 1024);
    if hint > limit {
        return Err(Error::invalid_response("response body too large"));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(hint));
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if buf.len() + chunk.len() > limit {
            return Err(Error::invalid_response("response body too large"));
        }
        if buf.len() + chunk.len() > buf.capacity() {
            // Grow by moving into a new zeroizing buffer, so the old allocation is wiped.
            let mut bigger = Zeroizing::new(Vec::with_capacity(
                (buf.len() + chunk.len()).max(buf.capacity() * 2),
            ));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        buf.extend_from_slice(&chunk);
        if let Ok(mut owned) = chunk.try_into_mut() {
            owned[..].zeroize();
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64u_roundtrip() {
        for len in 0..70 {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let text = b64u_secret(&data);
            assert_eq!(*text, URL_SAFE_NO_PAD.encode(&data));
            let back = b64u_decode_secret("x", &text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&back[..], &data[..]);
        }
        assert!(b64u_decode_secret("x", "a+b/").is_err());
        assert!(b64u_decode_secret("x", "YQ==").is_err());
    }
}
