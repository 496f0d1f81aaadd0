//! Selectors: facts about a workload process that the sensor observes for itself (binary digest,
//! uid, gid, executable path, cgroup), never facts the workload claims.
//!
//! A registration entry lists selectors; a workload gets the entry's identity only if it exhibits
//! all of them. Parsing is strict and each value has exactly one spelling, because entries are
//! matched by equality: `unix:uid:007` or an uppercase digest would silently never match.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{SelectorError, excerpt};

/// Maximum length of a `cgroup:` value in bytes.
pub const MAX_CGROUP_LEN: usize = 512;
/// Maximum length of a `unix:path:` value in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;

/// One observed property of a workload process.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Selector {
    /// `unix:sha256:<64 lowercase hex>`: SHA-256 of the running binary ("software DNA").
    UnixSha256([u8; 32]),
    /// `unix:uid:<u32>`: the process's user id.
    UnixUid(u32),
    /// `unix:gid:<u32>`: the process's group id.
    UnixGid(u32),
    /// `unix:path:<absolute path>`: the canonical path of the running binary.
    UnixPath(String),
    /// `cgroup:<value>`: the process's cgroup path or container id.
    Cgroup(String),
}

impl Selector {
    /// The kind prefix, e.g. `unix:sha256`; used in messages and for single-value checks.
    pub fn kind(&self) -> &'static str {
        match self {
            Selector::UnixSha256(_) => "unix:sha256",
            Selector::UnixUid(_) => "unix:uid",
            Selector::UnixGid(_) => "unix:gid",
            Selector::UnixPath(_) => "unix:path",
            Selector::Cgroup(_) => "cgroup",
        }
    }

    /// A `unix:path:` selector, validated.
    pub fn unix_path(path: &str) -> Result<Self, SelectorError> {
        validate_path(path)?;
        Ok(Selector::UnixPath(path.to_owned()))
    }

    /// A `cgroup:` selector, validated.
    pub fn cgroup(value: &str) -> Result<Self, SelectorError> {
        validate_cgroup(value)?;
        Ok(Selector::Cgroup(value.to_owned()))
    }
}

fn parse_id(s: &str, kind: &'static str) -> Result<u32, SelectorError> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(SelectorError::Id { kind });
    }
    s.parse().map_err(|_| SelectorError::Id { kind })
}

fn parse_digest(s: &str) -> Result<[u8; 32], SelectorError> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(SelectorError::Digest);
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| SelectorError::Digest)?;
    Ok(out)
}

/// A canonical absolute path: what the sensor reads from `/proc/<pid>/exe`, so anything else
/// could never match and is an operator mistake worth reporting.
fn validate_path(p: &str) -> Result<(), SelectorError> {
    let err = |reason| Err(SelectorError::Path { reason });
    if !p.starts_with('/') {
        return err("must be an absolute path");
    }
    if p.len() > MAX_PATH_LEN {
        return err("is longer than 4096 bytes");
    }
    if p.contains('\0') {
        return err("must not contain a nul byte");
    }
    if p.chars().any(char::is_control) {
        return err("must not contain control characters");
    }
    if p == "/" || p.ends_with('/') {
        return err("must name a file, not end with '/'");
    }
    for component in p[1..].split('/') {
        match component {
            ".." => return err("must not contain '..' components"),
            "." => return err("must not contain '.' components"),
            "" => return err("must not contain empty components ('//')"),
            _ => {}
        }
    }
    Ok(())
}

fn validate_cgroup(v: &str) -> Result<(), SelectorError> {
    let err = |reason| Err(SelectorError::Cgroup { reason });
    if v.is_empty() {
        return err("must not be empty");
    }
    if v.len() > MAX_CGROUP_LEN {
        return err("is longer than 512 bytes");
    }
    if !v.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return err("must be printable ascii");
    }
    Ok(())
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(v) = s.strip_prefix("unix:sha256:") {
            return parse_digest(v).map(Selector::UnixSha256);
        }
        if let Some(v) = s.strip_prefix("unix:uid:") {
            return parse_id(v, "uid").map(Selector::UnixUid);
        }
        if let Some(v) = s.strip_prefix("unix:gid:") {
            return parse_id(v, "gid").map(Selector::UnixGid);
        }
        if let Some(v) = s.strip_prefix("unix:path:") {
            return Selector::unix_path(v);
        }
        if let Some(v) = s.strip_prefix("cgroup:") {
            return Selector::cgroup(v);
        }
        // Report the kind the user wrote: everything up to the last ':' for `unix:…`, else the
        // first component.
        let kind = match s.strip_prefix("unix:") {
            Some(rest) => format!("unix:{}", rest.split(':').next().unwrap_or_default()),
            None => s.split(':').next().unwrap_or_default().to_owned(),
        };
        Err(SelectorError::UnknownKind {
            kind: excerpt(&kind),
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::UnixSha256(d) => write!(f, "unix:sha256:{}", hex::encode(d)),
            Selector::UnixUid(u) => write!(f, "unix:uid:{u}"),
            Selector::UnixGid(g) => write!(f, "unix:gid:{g}"),
            Selector::UnixPath(p) => write!(f, "unix:path:{p}"),
            Selector::Cgroup(c) => write!(f, "cgroup:{c}"),
        }
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Selector, SelectorError> {
        s.parse()
    }

    const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn parses_each_kind() {
        let d = parse(&format!("unix:sha256:{DIGEST}")).unwrap();
        assert_eq!(
            d,
            Selector::UnixSha256(hex::decode(DIGEST).unwrap().try_into().unwrap())
        );
        assert_eq!(d.to_string(), format!("unix:sha256:{DIGEST}"));
        assert_eq!(parse("unix:uid:0").unwrap(), Selector::UnixUid(0));
        assert_eq!(
            parse("unix:uid:4294967295").unwrap(),
            Selector::UnixUid(u32::MAX)
        );
        assert_eq!(parse("unix:gid:1000").unwrap(), Selector::UnixGid(1000));
        assert_eq!(
            parse("unix:path:/usr/bin/app").unwrap(),
            Selector::UnixPath("/usr/bin/app".into())
        );
        assert_eq!(
            parse("cgroup:0::/system.slice/app.service").unwrap(),
            Selector::Cgroup("0::/system.slice/app.service".into())
        );
    }

    #[test]
    fn digest_is_strict() {
        assert_eq!(
            parse(&format!("unix:sha256:{}", DIGEST.to_uppercase())),
            Err(SelectorError::Digest)
        );
        assert_eq!(
            parse(&format!("unix:sha256:{}", &DIGEST[1..])),
            Err(SelectorError::Digest)
        );
        assert_eq!(
            parse(&format!("unix:sha256:{DIGEST}0")),
            Err(SelectorError::Digest)
        );
        assert_eq!(
            parse(&format!("unix:sha256:{}g", &DIGEST[1..])),
            Err(SelectorError::Digest)
        );
        assert_eq!(parse("unix:sha256:"), Err(SelectorError::Digest));
    }

    #[test]
    fn ids_are_canonical_decimal() {
        for bad in [
            "",
            "007",
            "00",
            "-1",
            "+1",
            " 1",
            "1 ",
            "4294967296",
            "0x10",
            "1e3",
        ] {
            assert_eq!(
                parse(&format!("unix:uid:{bad}")),
                Err(SelectorError::Id { kind: "uid" }),
                "{bad:?}"
            );
            assert_eq!(
                parse(&format!("unix:gid:{bad}")),
                Err(SelectorError::Id { kind: "gid" }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn path_rules() {
        for (bad, reason) in [
            ("usr/bin/app", "must be an absolute path"),
            ("", "must be an absolute path"),
            ("/usr/../bin/app", "must not contain '..' components"),
            ("/usr/bin/..", "must not contain '..' components"),
            ("/usr/./app", "must not contain '.' components"),
            ("/usr//app", "must not contain empty components ('//')"),
            ("/usr/bin/", "must name a file, not end with '/'"),
            ("/", "must name a file, not end with '/'"),
            ("/usr/b\0in", "must not contain a nul byte"),
            ("/usr/b\nin", "must not contain control characters"),
        ] {
            assert_eq!(
                parse(&format!("unix:path:{bad}")),
                Err(SelectorError::Path { reason }),
                "{bad:?}"
            );
        }
        assert!(parse("unix:path:/opt/my app/..bin").is_ok());
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert!(parse(&format!("unix:path:{long}")).is_err());
    }

    #[test]
    fn cgroup_rules() {
        assert!(matches!(
            parse("cgroup:"),
            Err(SelectorError::Cgroup { .. })
        ));
        assert!(matches!(
            parse("cgroup:a\tb"),
            Err(SelectorError::Cgroup { .. })
        ));
        assert!(matches!(
            parse("cgroup:é"),
            Err(SelectorError::Cgroup { .. })
        ));
        assert!(parse(&format!("cgroup:{}", "a".repeat(512))).is_ok());
        assert!(matches!(
            parse(&format!("cgroup:{}", "a".repeat(513))),
            Err(SelectorError::Cgroup { .. })
        ));
    }

    #[test]
    fn unknown_kinds_are_named() {
        let e = parse("k8s:ns:default").unwrap_err();
        assert_eq!(e, SelectorError::UnknownKind { kind: "k8s".into() });
        assert!(
            e.to_string()
                .starts_with("unknown selector kind \"k8s\", expected one of")
        );
        assert_eq!(
            parse("unix:pid:1").unwrap_err(),
            SelectorError::UnknownKind {
                kind: "unix:pid".into()
            }
        );
        assert_eq!(
            parse("Unix:uid:1").unwrap_err(),
            SelectorError::UnknownKind {
                kind: "Unix".into()
            }
        );
        assert_eq!(
            parse("").unwrap_err(),
            SelectorError::UnknownKind {
                kind: String::new()
            }
        );
    }

    #[test]
    fn serde_is_a_validated_string() {
        let s = parse("unix:uid:5").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"unix:uid:5\"");
        assert_eq!(
            serde_json::from_str::<Selector>("\"unix:uid:5\"").unwrap(),
            s
        );
        assert!(serde_json::from_str::<Selector>("\"unix:uid:05\"").is_err());
    }

    fn valid_selector() -> impl Strategy<Value = Selector> {
        prop_oneof![
            any::<[u8; 32]>().prop_map(Selector::UnixSha256),
            any::<u32>().prop_map(Selector::UnixUid),
            any::<u32>().prop_map(Selector::UnixGid),
            proptest::collection::vec("[a-zA-Z0-9 _.-]{1,12}", 1..6)
                .prop_filter("dot components", |c| c
                    .iter()
                    .all(|s| s != "." && s != ".."))
                .prop_map(|c| Selector::UnixPath(format!("/{}", c.join("/")))),
            "[ -~]{1,100}".prop_map(Selector::Cgroup),
        ]
    }

    proptest! {
        #[test]
        fn display_parse_roundtrip(s in valid_selector()) {
            let text = s.to_string();
            prop_assert_eq!(text.parse::<Selector>().unwrap(), s);
        }

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = s.parse::<Selector>();
        }

        #[test]
        fn parse_never_panics_near_valid(s in "(unix:(sha256|uid|gid|path|pid):|cgroup:)?[0-9a-fA-F/.:\\x00 -]{0,70}") {
            if let Ok(sel) = s.parse::<Selector>() {
                prop_assert_eq!(sel.to_string(), s);
            }
        }
    }
}
