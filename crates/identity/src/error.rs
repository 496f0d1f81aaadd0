//! Errors of the identity core, grouped by whose fault they are.
//!
//! The server maps the group to a response (a peer fault is a 4xx and an audit record, a caller
//! fault is a configuration bug, an internal fault is a 5xx), so every fallible operation that
//! mixes sources returns [`Error`], whose variants say who is to blame. Parsers of a single value
//! return their precise error ([`SpiffeIdError`], [`SelectorError`], [`EntryError`]); the caller
//! wraps it in the group that fits its context (the same malformed SPIFFE ID is a peer fault in a
//! certificate and a caller fault on the command line).
//!
//! Messages are lowercase, name the broken rule, and never contain key or secret bytes. Untrusted
//! input echoed back is truncated (see [`excerpt`]).

use thiserror::Error;

/// At most this many characters of untrusted input are echoed in an error message.
const EXCERPT_CHARS: usize = 64;

/// A short, escaped excerpt of untrusted input for an error message (bounded so a hostile peer
/// cannot make our logs huge, escaped so it cannot forge log lines).
pub(crate) fn excerpt(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(EXCERPT_CHARS)
        .flat_map(char::escape_default)
        .collect();
    if s.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Why a string is not a valid SPIFFE ID or trust domain (SPIFFE-ID spec §2).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The input is empty.
    #[error("spiffe id is empty")]
    Empty,
    /// The input does not start with `spiffe://`.
    #[error("spiffe id must start with \"spiffe://\"")]
    MissingScheme,
    /// The scheme is not exactly the lowercase `spiffe`.
    #[error("spiffe id scheme must be exactly lowercase \"spiffe\"")]
    WrongScheme,
    /// Longer than the spec's 2048-byte limit.
    #[error("spiffe id is {len} bytes long, the maximum is 2048")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
    },
    /// No trust domain name between `spiffe://` and the path.
    #[error("trust domain is empty")]
    EmptyTrustDomain,
    /// Longer than the 255-byte URI host limit.
    #[error("trust domain is {len} bytes long, the maximum is 255")]
    TrustDomainTooLong {
        /// Length of the trust domain name in bytes.
        len: usize,
    },
    /// A character outside `[a-z0-9._-]` in the trust domain.
    #[error("trust domain contains the character '{ch}', only a-z 0-9 . - _ are allowed")]
    TrustDomainChar {
        /// The offending character (escaped).
        ch: String,
    },
    /// `user@host` form.
    #[error("spiffe id must not contain userinfo ('@')")]
    UserInfo,
    /// `host:port` form.
    #[error("spiffe id must not contain a port (':')")]
    Port,
    /// A `?query`.
    #[error("spiffe id must not contain a query ('?')")]
    Query,
    /// A `#fragment`.
    #[error("spiffe id must not contain a fragment ('#')")]
    Fragment,
    /// `//` inside the path.
    #[error("spiffe id path contains an empty segment")]
    EmptySegment,
    /// A `.` or `..` path segment.
    #[error("spiffe id path contains a '.' or '..' segment")]
    DotSegment,
    /// The path ends with `/`.
    #[error("spiffe id path must not end with '/'")]
    TrailingSlash,
    /// The path does not start with `/` (only when building from parts).
    #[error("spiffe id path must be empty or start with '/'")]
    RelativePath,
    /// A character outside `[a-zA-Z0-9._-]` in a path segment.
    #[error("spiffe id path contains the character '{ch}', only a-z A-Z 0-9 . - _ are allowed")]
    PathChar {
        /// The offending character (escaped).
        ch: String,
    },
}

/// Why a string is not a valid selector.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// A selector kind we do not know.
    #[error(
        "unknown selector kind \"{kind}\", expected one of unix:sha256, unix:uid, unix:gid, unix:path, cgroup"
    )]
    UnknownKind {
        /// The kind prefix that was given (escaped, truncated).
        kind: String,
    },
    /// A `unix:sha256:` value that is not 64 lowercase hex digits.
    #[error("unix:sha256 selector must be 64 lowercase hex digits (a sha-256 digest)")]
    Digest,
    /// A uid/gid that is not a canonical decimal u32.
    #[error(
        "unix:{kind} selector must be a decimal number 0..=4294967295 without sign or leading zeros"
    )]
    Id {
        /// `uid` or `gid`.
        kind: &'static str,
    },
    /// A `unix:path:` value that is not a canonical absolute path.
    #[error("unix:path selector {reason}")]
    Path {
        /// The broken rule.
        reason: &'static str,
    },
    /// A `cgroup:` value that is empty, too long or not printable.
    #[error("cgroup selector {reason}")]
    Cgroup {
        /// The broken rule.
        reason: &'static str,
    },
}

/// Why a registration entry is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EntryError {
    /// An entry id that is empty, too long or has characters outside `[A-Za-z0-9_-]`.
    #[error("entry id must be 1..=64 characters of A-Z a-z 0-9 _ -")]
    Id,
    /// An entry without selectors would match every workload.
    #[error("an entry needs at least one selector")]
    NoSelectors,
    /// Too many selectors.
    #[error("an entry has at most {max} selectors")]
    TooManySelectors {
        /// The limit.
        max: usize,
    },
    /// The same selector twice.
    #[error("duplicate selector {selector}")]
    DuplicateSelector {
        /// The repeated selector.
        selector: String,
    },
    /// Two values of a single-valued selector kind: no process can match both.
    #[error("two {kind} selectors can never both match one process; create one entry per value")]
    ConflictingSelectors {
        /// The selector kind, e.g. `unix:sha256`.
        kind: &'static str,
    },
    /// No `unix:sha256` selector and digest-less entries were not explicitly allowed.
    #[error(
        "an entry needs a unix:sha256 selector (the binary digest) unless digest-less entries are explicitly allowed"
    )]
    DigestRequired,
    /// TTL outside 1 min..=24 h.
    #[error("x509 ttl must be between 60 and 86400 seconds, got {secs}")]
    Ttl {
        /// The requested TTL in whole seconds.
        secs: u64,
    },
    /// A role name outside `[a-z0-9_-]{1,64}`.
    #[error("role name \"{role}\" must be 1..=64 characters of a-z 0-9 _ -")]
    Role {
        /// The rejected name (escaped, truncated).
        role: String,
    },
    /// The same role twice.
    #[error("duplicate role \"{role}\"")]
    DuplicateRole {
        /// The repeated role.
        role: String,
    },
    /// Too many roles.
    #[error("an entry has at most {max} roles")]
    TooManyRoles {
        /// The limit.
        max: usize,
    },
    /// The workload ID is the bare trust domain ID, which is reserved for the CA.
    #[error("the entry's spiffe id must have a path; the bare trust domain id belongs to the ca")]
    NoPath,
    /// Parent and workload in different trust domains.
    #[error("the parent (node) id and the entry's spiffe id must be in the same trust domain")]
    TrustDomainMismatch,
    /// An entry cannot be its own parent.
    #[error("the entry's spiffe id must differ from its parent (node) id")]
    SelfParent,
    /// A digest alone does not tie an identity to anyone: any local user can execute a readable
    /// binary (or exec it from a process holding an open Workload API connection).
    #[error(
        "an entry pinning a binary digest must also pin a uid (unix:uid:N): any local user can run a readable binary"
    )]
    UidRequired,
    /// Entry IDs under `/daas/node/` are reserved for nodes: a workload must never receive one.
    #[error("spiffe ids under /daas/node/ are reserved for nodes")]
    ReservedPath,
    /// The parent must be a node (`spiffe://td/daas/node/…`) or the trust domain (any node).
    #[error("the parent must be a node id (spiffe://<td>/daas/node/<id>) or the trust domain id")]
    ParentNotNode,
    /// Not an app name.
    #[error(
        "app name \"{name}\" must be 1-63 characters of a-z 0-9 -, starting with a letter or digit"
    )]
    AppName {
        /// The rejected name (escaped, truncated).
        name: String,
    },
    /// Instance documents name their binary, so an entry that grants them pins one.
    #[error("an entry naming an app needs a unix:sha256 selector (the binary digest)")]
    AppWithoutDigest,
}

/// Why a node may not obtain an SVID for a workload (returned by
/// [`crate::entry::authorize_svid_request`]); each reason is audited by the server.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DenyReason {
    /// No entry registers the requested SPIFFE ID under this node.
    #[error("no registration entry for this spiffe id has this node as parent")]
    NotParent,
    /// Entries exist under this node, but the workload's selectors match none of them
    /// (e.g. the binary digest differs).
    #[error("the workload's selectors match no registration entry for this spiffe id")]
    SelectorsMismatch,
}

/// Input from a peer (CSR, certificate chain) is malformed, forged or not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The CSR is not DER PKCS#10.
    #[error("certificate signing request is malformed")]
    MalformedCsr,
    /// The CSR's self-signature does not verify: no proof of possession of the key.
    #[error("certificate signing request signature does not verify")]
    CsrSignature,
    /// A key type we do not issue for.
    #[error("unsupported public key algorithm, expected ecdsa p-256 or ed25519")]
    UnsupportedKey,
    /// A certificate that does not parse.
    #[error("certificate is malformed")]
    MalformedCertificate,
    /// Path building/validation failed.
    #[error("certificate chain rejected: {0}")]
    Chain(&'static str),
    /// The leaf is not a valid X.509-SVID.
    #[error("not an x509-svid: {0}")]
    NotSvid(&'static str),
    /// The SVID's URI SAN is not a valid SPIFFE ID.
    #[error("invalid spiffe id in certificate: {0}")]
    SpiffeId(SpiffeIdError),
    /// The SVID belongs to another trust domain than the bundle's.
    #[error("spiffe id is in trust domain \"{found}\", expected \"{expected}\"")]
    ForeignTrustDomain {
        /// The bundle's trust domain.
        expected: String,
        /// The SVID's trust domain.
        found: String,
    },
    /// The node may not obtain this SVID.
    #[error("denied: {0}")]
    Denied(DenyReason),
}

/// The caller passed invalid arguments or configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CallerError {
    /// An invalid SPIFFE ID or trust domain argument.
    #[error("invalid spiffe id: {0}")]
    SpiffeId(SpiffeIdError),
    /// The SPIFFE ID to issue for is not in the CA's trust domain.
    #[error("spiffe id is not in the ca's trust domain \"{trust_domain}\"")]
    NotInTrustDomain {
        /// The CA's trust domain.
        trust_domain: String,
    },
    /// The SPIFFE ID to issue for has no path (the bare trust domain ID is the CA's).
    #[error("refusing to issue an x509-svid for the bare trust domain id")]
    NoPath,
    /// TTL zero, negative or absurd.
    #[error("invalid ttl: {0}")]
    Ttl(&'static str),
    /// CA lifetime out of bounds.
    #[error("invalid ca lifetime: {0}")]
    CaLifetime(&'static str),
    /// No CA that is valid at `now`.
    #[error("the active ca is not valid at this time; rotate it")]
    NoValidCa,
    /// Stored CA material does not parse or is inconsistent.
    #[error("invalid ca key material: {0}")]
    KeyMaterial(&'static str),
    /// The trust bundle is empty or inconsistent.
    #[error("invalid trust bundle: {0}")]
    Bundle(&'static str),
    /// A JWT-SVID audience list out of bounds.
    #[error("invalid audience: {0}")]
    Audience(&'static str),
    /// Identity-document metadata out of bounds.
    #[error("invalid identity document metadata: {0}")]
    Document(&'static str),
}

/// A fault of ours or of a dependency (certificate generation, random number generator).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InternalError {
    /// Certificate encoding or signing failed.
    #[error("certificate generation failed")]
    CertificateGeneration,
    /// Key generation or the random number generator failed.
    #[error("key generation or random number generator failed")]
    Crypto,
}

/// Any error of the identity core, by fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer's fault: malformed or forged input; audit it and answer 4xx.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The caller's fault: invalid argument or configuration.
    #[error(transparent)]
    Caller(#[from] CallerError),
    /// Our fault or a dependency's.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<DenyReason> for Error {
    fn from(r: DenyReason) -> Self {
        Error::Peer(PeerError::Denied(r))
    }
}
