//! The `htu` comparison form of a request URI (RFC 9449 §4.3 step 9, RFC 3986 §6.2.2–6.2.3).
//!
//! Both the proof's `htu` claim and the URI the server received go through
//! [`normalize_htu`]; the results must be byte-equal. The accepted language is deliberately
//! small, so that two URIs compare equal only when every reasonable HTTP stack would route them
//! to the same resource:
//!
//! * scheme `http` or `https` (any case), then `://` and an authority; no user information;
//! * host: a DNS-style name or IPv4 address (ASCII letters, digits, `-`, `.`, no empty label,
//!   no trailing dot), or a bracketed IPv6 literal without a zone; percent signs are refused;
//! * optional port, 1–65535, at most five digits; the scheme's default port and an empty port
//!   are dropped, leading zeros removed;
//! * path made of RFC 3986 `pchar`s and `/`; an empty path becomes `/`;
//! * percent-encoding: hex digits uppercased, encoded unreserved characters decoded, an invalid
//!   escape refused;
//! * query and fragment dropped (RFC 9449: `htu` is compared "ignoring any query and fragment").
//!
//! Dot segments (`.`, `..`, also when spelled `%2E`) are **refused**, not resolved: a client
//! has no reason to send them, and resolving them would make `/public/../admin` and `/admin`
//! one resource for the proof while a proxy or router in front of us might disagree. Encoded
//! slashes (`%2F`) and empty segments (`//`) stay as they are and are distinct from `/`.

/// Longest URI accepted for comparison. DPoP proofs themselves are bounded by
/// [`crate::MAX_TOKEN_LEN`]; this bounds the request side.
pub const MAX_HTU_LEN: usize = 8 * 1024;

/// The URI is outside the language accepted for `htu` comparison (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("uri not acceptable for htu: {0}")]
pub struct HtuError(pub &'static str);

/// Normalises an absolute `http`/`https` URI for `htu` comparison, dropping query and fragment.
///
/// The result is itself accepted and unchanged by this function (idempotence).
///
/// # Errors
/// [`HtuError`] naming the first rule the URI breaks.
pub fn normalize_htu(uri: &str) -> Result<String, HtuError> {
    if uri.len() > MAX_HTU_LEN {
        return Err(HtuError("too long"));
    }
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or(HtuError("not an absolute uri"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return Err(HtuError("scheme is not http or https")),
    };
    // Query and fragment end the path; whichever comes first ends it.
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };

    let mut out = String::with_capacity(uri.len() + 1);
    out.push_str(&scheme);
    out.push_str("://");
    push_authority(&mut out, authority, default_port)?;
    if path.is_empty() {
        out.push('/');
    } else {
        push_path(&mut out, path)?;
    }
    Ok(out)
}

fn push_authority(out: &mut String, authority: &str, default_port: u16) -> Result<(), HtuError> {
    if authority.contains('@') {
        return Err(HtuError("user information is not allowed"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (literal, after) = v6
            .split_once(']')
            .ok_or(HtuError("unterminated ipv6 literal"))?;
        if literal.is_empty()
            || !literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(HtuError("invalid ipv6 literal"));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or(HtuError("junk after ipv6 literal"))?,
            ),
        };
        (&authority[..literal.len() + 2], port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if !host.starts_with('[') {
        if host.is_empty() {
            return Err(HtuError("empty host"));
        }
        let valid_label = |label: &str| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !host.split('.').all(valid_label) {
            return Err(HtuError("invalid host"));
        }
    }
    out.push_str(&host.to_ascii_lowercase());

    // RFC 3986 §6.2.3: an empty port is the same as no port.
    if let Some(port) = port.filter(|p| !p.is_empty()) {
        if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HtuError("invalid port"));
        }
        let number: u16 = port.parse().map_err(|_| HtuError("invalid port"))?;
        if number == 0 {
            return Err(HtuError("invalid port"));
        }
        if number != default_port {
            out.push(':');
            out.push_str(&number.to_string());
        }
    }
    Ok(())
}

/// Appends `path` (starting with `/`) normalised: see the module docs.
fn push_path(out: &mut String, path: &str) -> Result<(), HtuError> {
    for segment in path.split('/').skip(1) {
        out.push('/');
        let start = out.len();
        let bytes = segment.as_bytes();
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if b == b'%' {
                let (Some(&hi), Some(&lo)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                    return Err(HtuError("truncated percent-encoding"));
                };
                let decoded = match (hex_value(hi), hex_value(lo)) {
                    (Some(hi), Some(lo)) => (hi << 4) | lo,
                    _ => return Err(HtuError("invalid percent-encoding")),
                };
                if is_unreserved(decoded) {
                    out.push(char::from(decoded));
                } else {
                    out.push('%');
                    out.push(char::from(hi.to_ascii_uppercase()));
                    out.push(char::from(lo.to_ascii_uppercase()));
                }
                i += 3;
            } else if is_unreserved(b) || is_sub_delim(b) || b == b':' || b == b'@' {
                out.push(char::from(b));
                i += 1;
            } else {
                return Err(HtuError("character not allowed in path"));
            }
        }
        if matches!(out.get(start..), Some("." | "..")) {
            return Err(HtuError("dot segment in path"));
        }
    }
    Ok(())
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §2.2.
fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(uri: &str) -> String {
        normalize_htu(uri).unwrap()
    }

    #[test]
    fn rfc9449_examples() {
        assert_eq!(
            n("https://server.example.com/token"),
            "https://server.example.com/token"
        );
        assert_eq!(
            n("https://resource.example.org/protectedresource"),
            "https://resource.example.org/protectedresource"
        );
    }

    #[test]
    fn syntax_and_scheme_based_normalisation() {
        for (a, b) in [
            ("HTTPS://Example.COM/a", "https://example.com/a"),
            ("https://example.com", "https://example.com/"),
            ("https://example.com:443/", "https://example.com/"),
            ("https://example.com:/", "https://example.com/"),
            ("http://example.com:80/x", "http://example.com/x"),
            ("http://example.com:443/x", "http://example.com:443/x"),
            ("https://example.com:80/x", "https://example.com:80/x"),
            ("https://example.com:08443/x", "https://example.com:8443/x"),
            ("https://example.com:00443/x", "https://example.com/x"),
            ("https://example.com/%7euser", "https://example.com/~user"),
            ("https://example.com/%41%2d", "https://example.com/A-"),
            ("https://example.com/a%2fb", "https://example.com/a%2Fb"),
            ("https://example.com/a%c3%a9", "https://example.com/a%C3%A9"),
            ("https://example.com/p?q=1", "https://example.com/p"),
            ("https://example.com/p#frag", "https://example.com/p"),
            ("https://example.com?q=/x", "https://example.com/"),
            ("https://example.com#/x", "https://example.com/"),
            ("https://example.com/p?#", "https://example.com/p"),
            ("https://[::1]:8443/x", "https://[::1]:8443/x"),
            ("https://[FE80::A]/x", "https://[fe80::a]/x"),
            ("https://10.0.0.1:443/x", "https://10.0.0.1/x"),
            ("https://a.example/x/", "https://a.example/x/"),
            ("https://a.example//x", "https://a.example//x"),
            (
                "https://a.example/a;b=c/d:e@f!$&'()*+,",
                "https://a.example/a;b=c/d:e@f!$&'()*+,",
            ),
            ("https://a.example/...", "https://a.example/..."),
            ("https://a.example/.a/..b", "https://a.example/.a/..b"),
        ] {
            assert_eq!(n(a), b, "{a}");
        }
        // Case is significant in the path and in percent-decoded bytes.
        assert_ne!(n("https://a.example/A"), n("https://a.example/a"));
        assert_ne!(n("https://a.example/a/b"), n("https://a.example/a%2Fb"));
        assert_ne!(n("https://a.example/a/b"), n("https://a.example/a//b"));
        assert_ne!(n("https://a.example/a"), n("https://a.example/a/"));
    }

    #[test]
    fn refuses_tricks() {
        for bad in [
            "",
            "/relative",
            "//example.com/x",
            "example.com/x",
            "ftp://example.com/",
            "javascript://example.com/",
            "https:/example.com/",
            "https:///x",
            "https://user@example.com/",
            "https://user:pw@example.com/",
            "https://evil.example@good.example/",
            "https://good.example%2Fevil/",
            "https://ex ample.com/",
            "https://example.com./",
            "https://.example.com/",
            "https://a..b/",
            "https://exa_mple.com/",
            "https://éxample.com/",
            "https://example.com:0/",
            "https://example.com:65536/",
            "https://example.com:123456/",
            "https://example.com:+443/",
            "https://example.com:44a/",
            "https://example.com:443:443/",
            "https://[::1/",
            "https://[::1]x/",
            "https://[]/",
            "https://[fe80::1%25eth0]/",
            "https://[v1.x]/",
            "https://a.example/.",
            "https://a.example/..",
            "https://a.example/./x",
            "https://a.example/x/../admin",
            "https://a.example/x/%2e%2e/admin",
            "https://a.example/x/%2E/admin",
            "https://a.example/x/.%2E",
            "https://a.example/x\\..\\admin",
            "https://a.example/a b",
            "https://a.example/é",
            "https://a.example/%",
            "https://a.example/%4",
            "https://a.example/%zz",
            "https://a.example/%+1",
            "https://a.example/<script>",
            "https://a.example/x\n",
            "https://a.example/\"",
            "https://a.example/[x]",
        ] {
            assert!(normalize_htu(bad).is_err(), "{bad:?}");
        }
        let long = format!("https://a.example/{}", "a".repeat(MAX_HTU_LEN));
        assert_eq!(normalize_htu(&long), Err(HtuError("too long")));
    }

    fn uri_strategy() -> impl Strategy<Value = String> {
        let scheme = prop::sample::select(vec!["http", "https", "HTTPS", "Http"]);
        let host = "[a-zA-Z0-9]{1,8}(\\.[a-zA-Z0-9-]{1,8}){0,2}";
        let port = prop::option::of(0u32..70_000);
        let segment = "([a-zA-Z0-9._~!$&'()*+,;=:@-]|%[0-9a-fA-F]{2}){0,6}";
        let path = prop::collection::vec(segment, 0..5);
        let tail = prop::option::of("[?#][ -~]{0,10}");
        (scheme, host, port, path, tail).prop_map(|(s, h, p, path, tail)| {
            let mut uri = format!("{s}://{h}");
            if let Some(p) = p {
                uri.push_str(&format!(":{p}"));
            }
            for seg in path {
                uri.push('/');
                uri.push_str(&seg);
            }
            uri.push_str(&tail.unwrap_or_default());
            uri
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn prop_normalisation_is_idempotent(uri in uri_strategy()) {
            if let Ok(once) = normalize_htu(&uri) {
                prop_assert_eq!(normalize_htu(&once), Ok(once.clone()));
                prop_assert!(!once.contains(['?', '#']));
                prop_assert!(!once.split('/').any(|s| s == "." || s == ".."));
            }
        }

        #[test]
        fn prop_never_panics(uri in "\\PC{0,64}") {
            if let Ok(once) = normalize_htu(&uri) {
                prop_assert_eq!(normalize_htu(&once), Ok(once.clone()));
            }
        }

        #[test]
        fn prop_never_panics_on_uri_shaped_input(tail in "[ -~]{0,40}") {
            let uri = format!("https://{tail}");
            if let Ok(once) = normalize_htu(&uri) {
                prop_assert_eq!(normalize_htu(&once), Ok(once.clone()));
            }
        }
    }
}
