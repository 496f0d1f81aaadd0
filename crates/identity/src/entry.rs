//! Registration entries: which workload (by selectors) on which node gets which SPIFFE ID.
//!
//! The product promise is that the *software itself* is authenticated, so by default an entry
//! must pin the binary digest (`unix:sha256`); an entry without one must be created with an
//! explicit opt-in that is stored with the entry (and therefore visible when listing and auditing).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{DenyReason, EntryError, excerpt};
use crate::selector::Selector;
use crate::spiffe_id::SpiffeId;

/// Default X.509-SVID lifetime: short enough that a stolen key is soon useless.
pub const DEFAULT_X509_TTL: Duration = Duration::from_secs(3600);
/// Shortest allowed TTL; below this the node would spend its time rotating.
pub const MIN_X509_TTL: Duration = Duration::from_secs(60);
/// Longest allowed TTL; beyond a day, revocation-by-expiry stops being meaningful.
pub const MAX_X509_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most selectors per entry (bounds the matching cost and the stored size).
pub const MAX_SELECTORS: usize = 32;
/// Most roles per entry.
pub const MAX_ROLES: usize = 32;

/// A stable identifier of a registration entry, `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntryId(String);

impl EntryId {
    /// A fresh random id (128 bits, hex), so ids are unguessable and never collide.
    pub fn random() -> Result<Self, crate::error::InternalError> {
        let mut b = [0u8; 16];
        aws_lc_rs::rand::fill(&mut b).map_err(|_| crate::error::InternalError::Crypto)?;
        Ok(Self(hex::encode(b)))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EntryId {
    type Err = EntryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(EntryError::Id)
        }
    }
}

impl TryFrom<String> for EntryId {
    type Error = EntryError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<EntryId> for String {
    fn from(id: EntryId) -> Self {
        id.0
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a caller supplies to create an entry; validated by [`RegistrationEntry::new`].
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The identity the matching workload receives.
    pub spiffe_id: SpiffeId,
    /// The node (sensor) allowed to obtain SVIDs for this entry.
    pub parent_id: SpiffeId,
    /// All of these must be observed on the workload.
    pub selectors: Vec<Selector>,
    /// SVID lifetime; `None` means [`DEFAULT_X509_TTL`].
    pub x509_ttl: Option<Duration>,
    /// Roles granted to the identity (names `[a-z0-9_-]{1,64}`).
    pub roles: Vec<String>,
    /// Explicit opt-in to an entry that does not pin the binary digest.
    pub allow_without_digest: bool,
    /// The app (by name) whose instance documents matching workloads receive; requires a
    /// `unix:sha256` selector (an instance document names its binary).
    pub app: Option<String>,
}

impl NewEntry {
    /// An entry with the default TTL, no roles, and the digest requirement on.
    pub fn new(spiffe_id: SpiffeId, parent_id: SpiffeId, selectors: Vec<Selector>) -> Self {
        Self {
            spiffe_id,
            parent_id,
            selectors,
            x509_ttl: None,
            roles: Vec::new(),
            allow_without_digest: false,
            app: None,
        }
    }
}

/// A validated registration entry (SPIRE semantics: a workload matches when it exhibits every
/// selector of the entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "EntryRepr", into = "EntryRepr")]
pub struct RegistrationEntry {
    id: EntryId,
    spiffe_id: SpiffeId,
    parent_id: SpiffeId,
    selectors: Vec<Selector>,
    x509_ttl: Duration,
    roles: Vec<String>,
    allow_without_digest: bool,
    app: Option<String>,
}

/// The stored form; deserialization goes through [`RegistrationEntry::new`] so a tampered or
/// outdated store cannot smuggle in an invalid entry.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRepr {
    id: EntryId,
    spiffe_id: SpiffeId,
    parent_id: SpiffeId,
    selectors: Vec<Selector>,
    x509_ttl_secs: u64,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    allow_without_digest: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app: Option<String>,
}

impl TryFrom<EntryRepr> for RegistrationEntry {
    type Error = EntryError;
    fn try_from(r: EntryRepr) -> Result<Self, Self::Error> {
        RegistrationEntry::new(
            r.id,
            NewEntry {
                spiffe_id: r.spiffe_id,
                parent_id: r.parent_id,
                selectors: r.selectors,
                x509_ttl: Some(Duration::from_secs(r.x509_ttl_secs)),
                roles: r.roles,
                allow_without_digest: r.allow_without_digest,
                app: r.app,
            },
        )
    }
}

impl From<RegistrationEntry> for EntryRepr {
    fn from(e: RegistrationEntry) -> Self {
        EntryRepr {
            id: e.id,
            spiffe_id: e.spiffe_id,
            parent_id: e.parent_id,
            selectors: e.selectors,
            x509_ttl_secs: e.x509_ttl.as_secs(),
            roles: e.roles,
            allow_without_digest: e.allow_without_digest,
            app: e.app,
        }
    }
}

pub(crate) fn validate_role(role: &str) -> Result<(), EntryError> {
    let ok = (1..=64).contains(&role.len())
        && role
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EntryError::Role {
            role: excerpt(role),
        })
    }
}

fn validate_selectors(
    selectors: &[Selector],
    allow_without_digest: bool,
) -> Result<(), EntryError> {
    if selectors.is_empty() {
        return Err(EntryError::NoSelectors);
    }
    if selectors.len() > MAX_SELECTORS {
        return Err(EntryError::TooManySelectors { max: MAX_SELECTORS });
    }
    let mut seen = BTreeSet::new();
    let mut single_valued = BTreeSet::new();
    for s in selectors {
        if !seen.insert(s) {
            return Err(EntryError::DuplicateSelector {
                selector: excerpt(&s.to_string()),
            });
        }
        // A process has one binary, one uid, one gid and one path; only cgroups may be many.
        if !matches!(s, Selector::Cgroup(_)) && !single_valued.insert(s.kind()) {
            return Err(EntryError::ConflictingSelectors { kind: s.kind() });
        }
    }
    if !allow_without_digest {
        if !selectors
            .iter()
            .any(|s| matches!(s, Selector::UnixSha256(_)))
        {
            return Err(EntryError::DigestRequired);
        }
        if !selectors.iter().any(|s| matches!(s, Selector::UnixUid(_))) {
            return Err(EntryError::UidRequired);
        }
    }
    Ok(())
}

/// Node IDs live under this path; entries may not hand them out.
pub const NODE_PATH_PREFIX: &str = "/daas/node/";

/// Whether `id` names a node (as the server names attested nodes).
pub fn is_node_id(id: &SpiffeId) -> bool {
    id.path()
        .strip_prefix(NODE_PATH_PREFIX)
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

impl RegistrationEntry {
    /// Validates and builds an entry: non-empty, consistent selectors with a digest unless
    /// `allow_without_digest`; TTL within [`MIN_X509_TTL`]..=[`MAX_X509_TTL`]; valid, unique
    /// roles; a workload ID with a path, in the parent's trust domain, distinct from the parent.
    pub fn new(id: EntryId, spec: NewEntry) -> Result<Self, EntryError> {
        let NewEntry {
            spiffe_id,
            parent_id,
            mut selectors,
            x509_ttl,
            roles,
            allow_without_digest,
            app,
        } = spec;
        if spiffe_id.is_trust_domain_id() {
            return Err(EntryError::NoPath);
        }
        if spiffe_id.trust_domain() != parent_id.trust_domain() {
            return Err(EntryError::TrustDomainMismatch);
        }
        if spiffe_id == parent_id {
            return Err(EntryError::SelfParent);
        }
        if spiffe_id.path() == NODE_PATH_PREFIX.trim_end_matches('/')
            || spiffe_id.path().starts_with(NODE_PATH_PREFIX)
        {
            return Err(EntryError::ReservedPath);
        }
        if !(parent_id.is_trust_domain_id() || is_node_id(&parent_id)) {
            return Err(EntryError::ParentNotNode);
        }
        validate_selectors(&selectors, allow_without_digest)?;
        // Canonical order so that equal entries compare and serialize equal.
        selectors.sort();
        let x509_ttl = x509_ttl.unwrap_or(DEFAULT_X509_TTL);
        if !(MIN_X509_TTL..=MAX_X509_TTL).contains(&x509_ttl) || x509_ttl.subsec_nanos() != 0 {
            return Err(EntryError::Ttl {
                secs: x509_ttl.as_secs(),
            });
        }
        if roles.len() > MAX_ROLES {
            return Err(EntryError::TooManyRoles { max: MAX_ROLES });
        }
        let mut seen = BTreeSet::new();
        for r in &roles {
            validate_role(r)?;
            if !seen.insert(r.as_str()) {
                return Err(EntryError::DuplicateRole { role: r.clone() });
            }
        }
        if let Some(name) = &app {
            if !crate::document::valid_app_name(name) {
                return Err(EntryError::AppName {
                    name: excerpt(name),
                });
            }
            if !selectors
                .iter()
                .any(|s| matches!(s, Selector::UnixSha256(_)))
            {
                return Err(EntryError::AppWithoutDigest);
            }
        }
        Ok(Self {
            id,
            spiffe_id,
            parent_id,
            selectors,
            x509_ttl,
            roles,
            allow_without_digest,
            app,
        })
    }

    /// The entry's id.
    pub fn id(&self) -> &EntryId {
        &self.id
    }
    /// The identity a matching workload receives.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }
    /// The node allowed to obtain SVIDs for this entry, or the trust domain ID (`spiffe://td`)
    /// for "any attested node of the trust domain".
    pub fn parent_id(&self) -> &SpiffeId {
        &self.parent_id
    }

    /// Whether `node` may obtain SVIDs for this entry: it is the parent, or the parent is the
    /// trust domain ID and `node` belongs to that trust domain. The caller passes only IDs of
    /// attested nodes (authenticated by their node SVID), never a workload's ID.
    pub fn is_parent(&self, node: &SpiffeId) -> bool {
        is_node_id(node)
            && (self.parent_id == *node
                || (self.parent_id.is_trust_domain_id()
                    && node.is_member_of(self.parent_id.trust_domain())))
    }
    /// The selectors, in canonical (sorted) order.
    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }
    /// The X.509-SVID lifetime.
    pub fn x509_ttl(&self) -> Duration {
        self.x509_ttl
    }
    /// Roles granted to the identity.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }
    /// The app whose instance documents matching workloads receive, if any.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// Whether the entry was explicitly allowed to omit the binary digest.
    pub fn allows_without_digest(&self) -> bool {
        self.allow_without_digest
    }

    /// Whether a workload exhibiting `workload_selectors` matches: every selector of the entry
    /// must be present (extra workload selectors are irrelevant).
    pub fn matches(&self, workload_selectors: &[Selector]) -> bool {
        self.selectors
            .iter()
            .all(|s| workload_selectors.contains(s))
    }
}

/// The entries a workload on `node` is entitled to: `node` is the parent (see
/// [`RegistrationEntry::is_parent`]) and all selectors match.
/// Entries of other nodes never match, so a compromised node cannot mint others' identities.
pub fn entries_for<'a>(
    entries: &'a [RegistrationEntry],
    node: &SpiffeId,
    workload: &[Selector],
) -> Vec<&'a RegistrationEntry> {
    entries
        .iter()
        .filter(|e| e.is_parent(node) && e.matches(workload))
        .collect()
}

/// The server-side check before signing a CSR for a workload: `node` may obtain an SVID for
/// `requested` only if an entry for `requested` has `node` as parent and matches the selectors the
/// node observed. Returns the entry (its TTL applies) or why the request is denied (to audit).
pub fn authorize_svid_request<'a>(
    entries: &'a [RegistrationEntry],
    node: &SpiffeId,
    requested: &SpiffeId,
    workload: &[Selector],
) -> Result<&'a RegistrationEntry, DenyReason> {
    let mut under_node = entries
        .iter()
        .filter(|e| e.is_parent(node) && e.spiffe_id == *requested)
        .peekable();
    if under_node.peek().is_none() {
        return Err(DenyReason::NotParent);
    }
    under_node
        .find(|e| e.matches(workload))
        .ok_or(DenyReason::SelectorsMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        s.parse().unwrap()
    }
    fn sel(s: &str) -> Selector {
        s.parse().unwrap()
    }
    const D1: &str = "unix:sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "unix:sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const NODE_A: &str = "spiffe://td/daas/node/a";
    const NODE_B: &str = "spiffe://td/daas/node/b";
    const U: &str = "unix:uid:1000";

    /// An entry with `sels`, plus `U` unless the test pins a uid itself.
    fn entry(eid: &str, node: &str, sels: &[&str]) -> RegistrationEntry {
        let mut sels: Vec<Selector> = sels.iter().map(|s| sel(s)).collect();
        if !sels.iter().any(|s| matches!(s, Selector::UnixUid(_))) {
            sels.push(sel(U));
        }
        RegistrationEntry::new(
            eid.parse().unwrap(),
            NewEntry::new(id("spiffe://td/app"), id(node), sels),
        )
        .unwrap()
    }

    fn try_new(spec: NewEntry) -> Result<RegistrationEntry, EntryError> {
        RegistrationEntry::new("e1".parse().unwrap(), spec)
    }

    #[test]
    fn defaults() {
        let e = entry("e1", NODE_A, &[D1]);
        assert_eq!(e.x509_ttl(), Duration::from_secs(3600));
        assert!(e.roles().is_empty());
        assert!(!e.allows_without_digest());
        assert_eq!(e.id().as_str(), "e1");
    }

    #[test]
    fn digest_required_unless_explicitly_allowed() {
        let mut spec = NewEntry::new(id("spiffe://td/app"), id(NODE_A), vec![sel("unix:uid:0")]);
        assert_eq!(try_new(spec.clone()), Err(EntryError::DigestRequired));
        spec.allow_without_digest = true;
        assert!(try_new(spec).unwrap().allows_without_digest());
    }

    #[test]
    fn selector_set_rules() {
        let mk =
            |sels: Vec<Selector>| try_new(NewEntry::new(id("spiffe://td/app"), id(NODE_A), sels));
        assert_eq!(mk(vec![]), Err(EntryError::NoSelectors));
        assert!(matches!(
            mk(vec![sel(D1), sel(D1)]),
            Err(EntryError::DuplicateSelector { .. })
        ));
        assert_eq!(
            mk(vec![sel(D1), sel(D2)]),
            Err(EntryError::ConflictingSelectors {
                kind: "unix:sha256"
            })
        );
        assert_eq!(
            mk(vec![sel(D1), sel("unix:uid:1"), sel("unix:uid:2")]),
            Err(EntryError::ConflictingSelectors { kind: "unix:uid" })
        );
        assert!(mk(vec![sel(D1), sel(U), sel("cgroup:a"), sel("cgroup:b")]).is_ok());
        let many = (0..33)
            .map(|i| Selector::Cgroup(format!("c{i}")))
            .chain([sel(D1)])
            .collect();
        assert_eq!(
            mk(many),
            Err(EntryError::TooManySelectors { max: MAX_SELECTORS })
        );
    }

    #[test]
    fn ttl_bounds() {
        let mk = |secs| {
            let mut s = NewEntry::new(id("spiffe://td/app"), id(NODE_A), vec![sel(D1), sel(U)]);
            s.x509_ttl = Some(Duration::from_secs(secs));
            try_new(s)
        };
        assert!(mk(60).is_ok());
        assert!(mk(86_400).is_ok());
        assert_eq!(mk(59), Err(EntryError::Ttl { secs: 59 }));
        assert_eq!(mk(86_401), Err(EntryError::Ttl { secs: 86_401 }));
        assert_eq!(mk(0), Err(EntryError::Ttl { secs: 0 }));
    }

    #[test]
    fn role_rules() {
        let mk = |roles: &[&str]| {
            let mut s = NewEntry::new(id("spiffe://td/app"), id(NODE_A), vec![sel(D1), sel(U)]);
            s.roles = roles.iter().map(|r| (*r).to_owned()).collect();
            try_new(s)
        };
        assert!(mk(&["reader", "db_admin-2"]).is_ok());
        assert!(mk(&[&"a".repeat(64)]).is_ok());
        for bad in ["", "Admin", "a b", "é", &"a".repeat(65)] {
            assert!(
                matches!(mk(&[bad]), Err(EntryError::Role { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            mk(&["r", "r"]),
            Err(EntryError::DuplicateRole { role: "r".into() })
        );
    }

    #[test]
    fn id_rules() {
        let mk = |sid: &str, parent: &str| {
            try_new(NewEntry::new(id(sid), id(parent), vec![sel(D1), sel(U)]))
        };
        assert_eq!(mk("spiffe://td", NODE_A), Err(EntryError::NoPath));
        assert_eq!(
            mk("spiffe://other/app", NODE_A),
            Err(EntryError::TrustDomainMismatch)
        );
        assert_eq!(mk(NODE_A, NODE_A), Err(EntryError::SelfParent));
        for bad in ["", "a b", "a/b", &"a".repeat(65)] {
            assert_eq!(bad.parse::<EntryId>(), Err(EntryError::Id));
        }
        let r = EntryId::random().unwrap();
        assert_eq!(r.as_str().len(), 32);
        assert_ne!(r, EntryId::random().unwrap());
    }

    #[test]
    fn serde_roundtrip_and_validation() {
        let mut spec = NewEntry::new(
            id("spiffe://td/app"),
            id(NODE_A),
            vec![sel("unix:uid:7"), sel(D1)],
        );
        spec.roles = vec!["reader".into()];
        let e = try_new(spec).unwrap();
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"x509_ttl_secs\":3600"), "{json}");
        assert_eq!(serde_json::from_str::<RegistrationEntry>(&json).unwrap(), e);
        // A stored entry that lost its digest is rejected on load.
        let tampered = json
            .replace(&format!("\"{D1}\","), "")
            .replace(&format!(",\"{D1}\""), "");
        assert_ne!(tampered, json);
        assert!(serde_json::from_str::<RegistrationEntry>(&tampered).is_err());
        let bad_ttl = json.replace("3600", "5");
        assert!(serde_json::from_str::<RegistrationEntry>(&bad_ttl).is_err());
    }

    #[test]
    fn app_entries_name_a_valid_app_and_pin_a_digest() {
        let spec = |app: &str, sels: Vec<Selector>| {
            let mut spec = NewEntry::new(id("spiffe://td/web"), id(NODE_A), sels);
            spec.app = Some(app.into());
            spec
        };
        let e = try_new(spec("web", vec![sel(U), sel(D1)])).unwrap();
        assert_eq!(e.app(), Some("web"));
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"app\":\"web\""), "{json}");
        assert_eq!(serde_json::from_str::<RegistrationEntry>(&json).unwrap(), e);
        // An entry without an app serializes as before (no `app` member).
        let plain = entry("e2", NODE_A, &[D1]);
        assert_eq!(plain.app(), None);
        assert!(!serde_json::to_string(&plain).unwrap().contains("\"app\""));
        for bad in ["", "Web", "-web", "web/x", "web app", &"a".repeat(64)] {
            assert!(
                matches!(
                    try_new(spec(bad, vec![sel(U), sel(D1)])),
                    Err(EntryError::AppName { .. })
                ),
                "{bad:?}"
            );
        }
        let mut no_digest = spec("web", vec![sel(U), sel("unix:path:/usr/bin/web")]);
        no_digest.allow_without_digest = true;
        assert!(matches!(
            try_new(no_digest),
            Err(EntryError::AppWithoutDigest)
        ));
        // A stored entry whose app was edited into an invalid name is refused on load.
        let tampered = json.replace("\"app\":\"web\"", "\"app\":\"../x\"");
        assert!(serde_json::from_str::<RegistrationEntry>(&tampered).is_err());
    }

    #[test]
    fn matching_requires_every_selector() {
        let e = entry("e1", NODE_A, &[D1, "unix:uid:1000"]);
        assert!(e.matches(&[sel("unix:gid:5"), sel("unix:uid:1000"), sel(D1)]));
        assert!(!e.matches(&[sel(D1)]));
        assert!(!e.matches(&[]));
    }

    #[test]
    fn same_path_different_digest_does_not_match() {
        let e = entry("e1", NODE_A, &[D1, "unix:path:/usr/bin/app"]);
        let workload = [sel(D2), sel("unix:path:/usr/bin/app"), sel("unix:uid:0")];
        assert!(!e.matches(&workload));
        assert!(entries_for(std::slice::from_ref(&e), &id(NODE_A), &workload).is_empty());
    }

    #[test]
    fn path_pinned_binary_copied_elsewhere_does_not_match() {
        let e = entry("e1", NODE_A, &[D1, "unix:path:/usr/bin/app"]);
        let workload = [sel(D1), sel("unix:path:/tmp/app"), sel("unix:uid:0")];
        assert!(!e.matches(&workload));
        assert!(entries_for(std::slice::from_ref(&e), &id(NODE_A), &workload).is_empty());
    }

    #[test]
    fn entry_of_another_node_does_not_match() {
        let entries = [entry("e1", NODE_B, &[D1])];
        assert!(entries_for(&entries, &id(NODE_A), &[sel(D1), sel(U)]).is_empty());
        assert_eq!(
            entries_for(&entries, &id(NODE_B), &[sel(D1), sel(U)]).len(),
            1
        );
    }

    #[test]
    fn authorization() {
        let entries = [entry("e1", NODE_A, &[D1]), entry("e2", NODE_B, &[D2])];
        let app = id("spiffe://td/app");
        assert_eq!(
            authorize_svid_request(&entries, &id(NODE_A), &app, &[sel(D1), sel(U)])
                .unwrap()
                .id()
                .as_str(),
            "e1"
        );
        assert_eq!(
            authorize_svid_request(&entries, &id(NODE_B), &app, &[sel(D2), sel(U)])
                .unwrap()
                .id()
                .as_str(),
            "e2"
        );
        assert_eq!(
            authorize_svid_request(&entries, &id(NODE_A), &app, &[sel(D2), sel(U)]),
            Err(DenyReason::SelectorsMismatch)
        );
        assert_eq!(
            authorize_svid_request(
                &entries,
                &id("spiffe://td/daas/node/c"),
                &app,
                &[sel(D1), sel(U)]
            ),
            Err(DenyReason::NotParent)
        );
        assert_eq!(
            authorize_svid_request(
                &entries,
                &id(NODE_A),
                &id("spiffe://td/other"),
                &[sel(D1), sel(U)]
            ),
            Err(DenyReason::NotParent)
        );
    }

    #[test]
    fn a_trust_domain_parent_means_any_node_of_that_trust_domain() {
        let any = entry("e1", "spiffe://td", &[D1]);
        let w = [sel(D1), sel(U)];
        assert!(any.is_parent(&id(NODE_A)) && any.is_parent(&id(NODE_B)));
        assert!(!any.is_parent(&id("spiffe://other/daas/node/a")));
        let entries = [any];
        assert_eq!(entries_for(&entries, &id(NODE_A), &w).len(), 1);
        assert!(entries_for(&entries, &id("spiffe://other/daas/node/a"), &w).is_empty());
        assert!(authorize_svid_request(&entries, &id(NODE_B), &id("spiffe://td/app"), &w).is_ok());
        // A node-specific parent still means only that node.
        let only_a = entry("e2", NODE_A, &[D1]);
        assert!(only_a.is_parent(&id(NODE_A)) && !only_a.is_parent(&id(NODE_B)));
    }

    #[test]
    fn a_digest_needs_a_uid_beside_it() {
        let spec = NewEntry::new(id("spiffe://td/app"), id(NODE_A), vec![sel(D1)]);
        assert_eq!(try_new(spec.clone()), Err(EntryError::UidRequired));
        let mut weak = spec;
        weak.allow_without_digest = true;
        assert!(
            try_new(weak).is_ok(),
            "the explicit opt-out relaxes both rules"
        );
    }

    #[test]
    fn node_ids_are_reserved_and_parents_must_be_nodes() {
        let mk = |sid: &str, parent: &str| {
            try_new(NewEntry::new(id(sid), id(parent), vec![sel(D1), sel(U)]))
        };
        assert_eq!(
            mk("spiffe://td/daas/node/x", NODE_A),
            Err(EntryError::ReservedPath)
        );
        assert_eq!(
            mk("spiffe://td/daas/node", NODE_A),
            Err(EntryError::ReservedPath)
        );
        assert_eq!(
            mk("spiffe://td/app", "spiffe://td/web"),
            Err(EntryError::ParentNotNode)
        );
        assert_eq!(
            mk("spiffe://td/app", "spiffe://td/daas/node/a/b"),
            Err(EntryError::ParentNotNode)
        );
        assert!(mk("spiffe://td/app", "spiffe://td").is_ok());
        assert!(
            mk("spiffe://td/daas/nodes", NODE_A).is_ok(),
            "only the node namespace is reserved"
        );
        // A workload ID is never a parent, not even of an any-node entry.
        let any = entry("e1", "spiffe://td", &[D1]);
        assert!(!any.is_parent(&id("spiffe://td/app")));
        assert!(!any.is_parent(&id("spiffe://td")));
        assert!(any.is_parent(&id(NODE_A)));
    }
}
