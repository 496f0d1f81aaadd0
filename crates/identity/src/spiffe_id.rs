//! SPIFFE IDs and trust domains, parsed strictly per the SPIFFE-ID spec
//! (<https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md>).
//!
//! Strictness matters because IDs are compared as strings everywhere (registration entries,
//! authorization policies, certificates): if two spellings could denote the same identity
//! (`SPIFFE://`, `%2F`, `/a/./b`, a trailing `/`), a policy written for one would be bypassed by
//! the other. So there is exactly one accepted spelling per identity and no normalization.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{SpiffeIdError, excerpt};

/// The only accepted scheme prefix.
pub const SCHEME_PREFIX: &str = "spiffe://";
/// Maximum length of a SPIFFE ID in bytes (spec §2.3).
pub const MAX_ID_LEN: usize = 2048;
/// Maximum length of a trust domain name in bytes (spec §2.3, the URI host limit).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// A trust domain name such as `example.org`: the root of trust of a set of identities.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustDomain {
    name: String,
}

/// A SPIFFE ID `spiffe://<trust domain><path>`; an empty path denotes the trust domain itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    trust_domain: TrustDomain,
    /// Empty, or `/seg(/seg)*`.
    path: String,
}

fn escaped(c: char) -> String {
    excerpt(c.encode_utf8(&mut [0; 4]))
}

fn validate_trust_domain(name: &str) -> Result<(), SpiffeIdError> {
    if name.is_empty() {
        return Err(SpiffeIdError::EmptyTrustDomain);
    }
    if name.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong { len: name.len() });
    }
    for c in name.chars() {
        match c {
            'a'..='z' | '0'..='9' | '.' | '-' | '_' => {}
            '@' => return Err(SpiffeIdError::UserInfo),
            ':' => return Err(SpiffeIdError::Port),
            '?' => return Err(SpiffeIdError::Query),
            '#' => return Err(SpiffeIdError::Fragment),
            other => return Err(SpiffeIdError::TrustDomainChar { ch: escaped(other) }),
        }
    }
    Ok(())
}

/// Validates a path: empty, or `/`-separated non-empty segments of `[a-zA-Z0-9._-]` that are
/// not `.` or `..`, without a trailing `/`.
fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    // Query and fragment first: their message is more useful than "bad character".
    if path.contains('?') {
        return Err(SpiffeIdError::Query);
    }
    if path.contains('#') {
        return Err(SpiffeIdError::Fragment);
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(SpiffeIdError::RelativePath);
    };
    if rest.is_empty() || rest.ends_with('/') {
        return Err(SpiffeIdError::TrailingSlash);
    }
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err(SpiffeIdError::EmptySegment);
        }
        if segment == "." || segment == ".." {
            return Err(SpiffeIdError::DotSegment);
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(SpiffeIdError::PathChar { ch: escaped(c) });
        }
    }
    Ok(())
}

fn check_total_len(td: &str, path: &str) -> Result<(), SpiffeIdError> {
    let len = SCHEME_PREFIX.len() + td.len() + path.len();
    if len > MAX_ID_LEN {
        return Err(SpiffeIdError::TooLong { len });
    }
    Ok(())
}

impl TrustDomain {
    /// Validates a bare trust domain name (`example.org`, not `spiffe://example.org`).
    pub fn new(name: &str) -> Result<Self, SpiffeIdError> {
        validate_trust_domain(name)?;
        Ok(Self {
            name: name.to_owned(),
        })
    }

    /// The bare name, e.g. `example.org`.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The trust domain's own ID `spiffe://<name>` (the CA's identity).
    pub fn id(&self) -> SpiffeId {
        SpiffeId {
            trust_domain: self.clone(),
            path: String::new(),
        }
    }

    /// A workload ID in this trust domain; `path` must be empty or start with `/`.
    pub fn spiffe_id(&self, path: &str) -> Result<SpiffeId, SpiffeIdError> {
        SpiffeId::new(self.clone(), path)
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;

    /// Accepts a bare name or a trust domain ID `spiffe://name` (with no path), like the
    /// reference implementations, because both spellings appear in configuration files.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains("://") {
            let id = SpiffeId::from_str(s)?;
            if !id.path.is_empty() {
                return Err(SpiffeIdError::TrustDomainChar { ch: "/".to_owned() });
            }
            return Ok(id.trust_domain);
        }
        Self::new(s)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl SpiffeId {
    /// Builds an ID from a trust domain and a path (empty or starting with `/`).
    pub fn new(trust_domain: TrustDomain, path: &str) -> Result<Self, SpiffeIdError> {
        validate_path(path)?;
        check_total_len(&trust_domain.name, path)?;
        Ok(Self {
            trust_domain,
            path: path.to_owned(),
        })
    }

    /// The trust domain this ID belongs to.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path, empty for a trust domain ID, otherwise starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether this is the bare trust domain ID `spiffe://td` (which names the CA, not a
    /// workload).
    pub fn is_trust_domain_id(&self) -> bool {
        self.path.is_empty()
    }

    /// Whether this ID belongs to `td`: the only question an SVID verifier may ask of a
    /// certificate issued by `td`'s CA.
    pub fn is_member_of(&self, td: &TrustDomain) -> bool {
        self.trust_domain == *td
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if s.len() > MAX_ID_LEN {
            return Err(SpiffeIdError::TooLong { len: s.len() });
        }
        let Some(rest) = s.strip_prefix(SCHEME_PREFIX) else {
            let wrong_case = s
                .get(..SCHEME_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(SCHEME_PREFIX));
            return Err(if wrong_case || s.contains("://") {
                SpiffeIdError::WrongScheme
            } else {
                SpiffeIdError::MissingScheme
            });
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        validate_trust_domain(authority)?;
        validate_path(path)?;
        Ok(Self {
            trust_domain: TrustDomain {
                name: authority.to_owned(),
            },
            path: path.to_owned(),
        })
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME_PREFIX}{}{}", self.trust_domain.name, self.path)
    }
}

impl Serialize for SpiffeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SpiffeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for TrustDomain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for TrustDomain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TrustDomain::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<SpiffeId, SpiffeIdError> {
        s.parse()
    }

    #[test]
    fn accepts_valid_ids() {
        let id = parse("spiffe://example.org/ns/prod/sa/web-fe_1.2").unwrap();
        assert_eq!(id.trust_domain().as_str(), "example.org");
        assert_eq!(id.path(), "/ns/prod/sa/web-fe_1.2");
        assert!(!id.is_trust_domain_id());
        let td = parse("spiffe://my_td-1.example").unwrap();
        assert!(td.is_trust_domain_id());
        assert_eq!(td.path(), "");
        assert_eq!(td.to_string(), "spiffe://my_td-1.example");
        // Segments may contain dots as long as they are not exactly "." or "..".
        assert!(parse("spiffe://td/...").is_ok());
        assert!(parse("spiffe://td/.a").is_ok());
        assert!(parse("spiffe://td/UPPER/Case").is_ok());
    }

    #[test]
    fn scheme_rules() {
        assert_eq!(parse(""), Err(SpiffeIdError::Empty));
        assert_eq!(parse("SPIFFE://td/a"), Err(SpiffeIdError::WrongScheme));
        assert_eq!(parse("Spiffe://td/a"), Err(SpiffeIdError::WrongScheme));
        assert_eq!(parse("https://td/a"), Err(SpiffeIdError::WrongScheme));
        assert_eq!(parse("spiffe:/td/a"), Err(SpiffeIdError::MissingScheme));
        assert_eq!(parse("td/a"), Err(SpiffeIdError::MissingScheme));
    }

    #[test]
    fn trust_domain_rules() {
        assert_eq!(parse("spiffe://"), Err(SpiffeIdError::EmptyTrustDomain));
        assert_eq!(parse("spiffe:///a"), Err(SpiffeIdError::EmptyTrustDomain));
        assert!(matches!(
            parse("spiffe://Example.org/a"),
            Err(SpiffeIdError::TrustDomainChar { .. })
        ));
        assert!(matches!(
            parse("spiffe://ex ample/a"),
            Err(SpiffeIdError::TrustDomainChar { .. })
        ));
        assert!(matches!(
            parse("spiffe://exämple/a"),
            Err(SpiffeIdError::TrustDomainChar { .. })
        ));
        assert!(matches!(
            parse("spiffe://ex%41/a"),
            Err(SpiffeIdError::TrustDomainChar { .. })
        ));
        assert_eq!(parse("spiffe://user@td/a"), Err(SpiffeIdError::UserInfo));
        assert_eq!(parse("spiffe://td:443/a"), Err(SpiffeIdError::Port));
        assert_eq!(parse("spiffe://td:/a"), Err(SpiffeIdError::Port));
        let long = "a".repeat(256);
        assert_eq!(
            parse(&format!("spiffe://{long}")),
            Err(SpiffeIdError::TrustDomainTooLong { len: 256 })
        );
        assert!(parse(&format!("spiffe://{}", "a".repeat(255))).is_ok());
    }

    #[test]
    fn query_and_fragment_rejected() {
        assert_eq!(parse("spiffe://td/a?x=1"), Err(SpiffeIdError::Query));
        assert_eq!(parse("spiffe://td?x=1"), Err(SpiffeIdError::Query));
        assert_eq!(parse("spiffe://td/a#f"), Err(SpiffeIdError::Fragment));
        assert_eq!(parse("spiffe://td#f"), Err(SpiffeIdError::Fragment));
    }

    #[test]
    fn path_rules() {
        assert_eq!(parse("spiffe://td/"), Err(SpiffeIdError::TrailingSlash));
        assert_eq!(parse("spiffe://td/a/"), Err(SpiffeIdError::TrailingSlash));
        assert_eq!(parse("spiffe://td//a"), Err(SpiffeIdError::EmptySegment));
        assert_eq!(parse("spiffe://td/a//b"), Err(SpiffeIdError::EmptySegment));
        assert_eq!(parse("spiffe://td/."), Err(SpiffeIdError::DotSegment));
        assert_eq!(parse("spiffe://td/a/../b"), Err(SpiffeIdError::DotSegment));
        assert_eq!(parse("spiffe://td/a/./b"), Err(SpiffeIdError::DotSegment));
        for bad in [
            "spiffe://td/a%2Fb",
            "spiffe://td/a b",
            "spiffe://td/ä",
            "spiffe://td/a:b",
            "spiffe://td/a@b",
            "spiffe://td/a+b",
        ] {
            assert!(
                matches!(parse(bad), Err(SpiffeIdError::PathChar { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn length_limit_is_2048_bytes() {
        let prefix = "spiffe://td/";
        let ok = format!("{prefix}{}", "a".repeat(MAX_ID_LEN - prefix.len()));
        assert_eq!(ok.len(), 2048);
        assert!(parse(&ok).is_ok());
        let too_long = format!("{ok}a");
        assert_eq!(parse(&too_long), Err(SpiffeIdError::TooLong { len: 2049 }));
        let td = TrustDomain::new("td").unwrap();
        assert_eq!(
            td.spiffe_id(&format!("/{}", "a".repeat(MAX_ID_LEN))),
            Err(SpiffeIdError::TooLong {
                len: MAX_ID_LEN + prefix.len()
            })
        );
    }

    #[test]
    fn build_from_parts_and_membership() {
        let td = TrustDomain::new("example.org").unwrap();
        let id = td.spiffe_id("/web").unwrap();
        assert_eq!(id.to_string(), "spiffe://example.org/web");
        assert!(id.is_member_of(&td));
        assert!(!id.is_member_of(&TrustDomain::new("example.com").unwrap()));
        assert_eq!(td.spiffe_id("web"), Err(SpiffeIdError::RelativePath));
        assert_eq!(td.id().to_string(), "spiffe://example.org");
        assert_eq!("spiffe://example.org".parse::<TrustDomain>().unwrap(), td);
        assert_eq!("example.org".parse::<TrustDomain>().unwrap(), td);
        assert!("spiffe://example.org/a".parse::<TrustDomain>().is_err());
        assert!(TrustDomain::new("spiffe://example.org").is_err());
    }

    #[test]
    fn serde_is_a_validated_string() {
        let id = parse("spiffe://td/a/b").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"spiffe://td/a/b\"");
        assert_eq!(serde_json::from_str::<SpiffeId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<SpiffeId>("\"spiffe://TD/a\"").is_err());
        assert!(serde_json::from_str::<SpiffeId>("\"spiffe://td/a/\"").is_err());
        let td: TrustDomain = serde_json::from_str("\"td\"").unwrap();
        assert_eq!(serde_json::to_string(&td).unwrap(), "\"td\"");
        assert!(serde_json::from_str::<TrustDomain>("\"T D\"").is_err());
    }

    #[test]
    fn error_messages_are_lowercase_and_bounded() {
        let err = parse(&format!("spiffe://td/{}\n", "é".repeat(10)))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("spiffe id path contains the character"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._-]{1,20}".prop_filter("dot segments are invalid", |s| s != "." && s != "..")
    }

    proptest! {
        #[test]
        fn display_parse_roundtrip(
            td in "[a-z0-9._-]{1,40}",
            segs in proptest::collection::vec(segment(), 0..8),
        ) {
            let s = if segs.is_empty() {
                format!("spiffe://{td}")
            } else {
                format!("spiffe://{td}/{}", segs.join("/"))
            };
            let id: SpiffeId = s.parse().unwrap();
            prop_assert_eq!(id.to_string(), s.clone());
            prop_assert_eq!(id.to_string().parse::<SpiffeId>().unwrap(), id.clone());
            let via_parts = SpiffeId::new(TrustDomain::new(&td).unwrap(), id.path()).unwrap();
            prop_assert_eq!(via_parts, id);
        }

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = s.parse::<SpiffeId>();
            let _ = s.parse::<TrustDomain>();
        }

        #[test]
        fn parse_never_panics_near_valid(s in "(spiffe|SPIFFE)?:?/{0,3}[a-zA-Z0-9.:@?#%/_-]{0,40}") {
            if let Ok(id) = s.parse::<SpiffeId>() {
                prop_assert_eq!(id.to_string(), s);
            }
        }
    }
}
