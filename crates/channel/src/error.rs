//! Errors, split by who is at fault.
//!
//! [`WireError`] and [`RecordError`]'s peer variants mean the peer (or the network) sent
//! something wrong: safe to log, the channel is closed or the record dropped. [`ConfigError`]
//! means the caller's configuration is unusable. [`RoleError`] and [`RecordError`] say which
//! with [`Fault`]. Messages are lowercase, never contain secret bytes and never echo
//! attacker-chosen strings, so they may go into the audit log as is.

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The peer (or the network) sent something wrong: close the channel or drop the record.
    Peer,
    /// The calling code passed an unusable argument or configuration.
    Caller,
    /// The crypto library or the operating system failed: fail closed.
    Internal,
}

/// A role message could not be parsed. Every variant is the peer's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ends before the message does.
    #[error("role message truncated")]
    Truncated,
    /// The announced or actual length exceeds [`crate::wire::MAX_MESSAGE_LEN`].
    #[error("role message larger than {max} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        max: usize,
    },
    /// The input goes on after the message.
    #[error("trailing bytes after role message")]
    TrailingBytes,
    /// The version byte is not [`crate::wire::WIRE_VERSION`].
    #[error("unsupported role message version")]
    UnsupportedVersion,
    /// The message type byte is unknown.
    #[error("unknown role message type")]
    UnknownMessageType,
    /// A valid message arrived where the protocol expects the other type.
    #[error("unexpected role message type")]
    UnexpectedMessageType,
    /// The message holds more than [`crate::wire::MAX_ENTRIES`] entries.
    #[error("too many role entries")]
    TooManyEntries,
    /// An entry kind is unknown, or not allowed in this message type.
    #[error("unknown or misplaced role entry kind")]
    BadEntryKind,
    /// A role name is empty, too long or outside the role-name alphabet.
    #[error("invalid role name")]
    InvalidRoleName,
    /// An entry's payload does not have the one length its kind allows.
    #[error("wrong role entry payload length")]
    BadPayloadLength,
    /// Entries are not in strictly ascending name order (so a name appears twice, or the
    /// encoding is not the canonical one).
    #[error("role entries not in strictly ascending name order")]
    NotCanonical,
    /// The body length field disagrees with the entries it holds.
    #[error("role message length mismatch")]
    LengthMismatch,
}

/// The caller's role configuration is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A role name is empty, too long or outside the role-name alphabet.
    #[error("invalid role name")]
    InvalidRoleName,
    /// Two roles have the same name.
    #[error("duplicate role name")]
    DuplicateRole,
    /// More roles than one role message can carry ([`crate::wire::MAX_ENTRIES`]).
    #[error("too many roles")]
    TooManyRoles,
    /// A role key is shorter than [`crate::config::MIN_ROLE_KEY_LEN`] bytes or longer than
    /// [`crate::config::MAX_ROLE_SECRET_LEN`].
    #[error("role key must be 32 to 1024 bytes")]
    BadKeyLength,
    /// A role password is empty or longer than [`crate::config::MAX_ROLE_SECRET_LEN`].
    #[error("role password must be 1 to 1024 bytes")]
    BadPasswordLength,
    /// A certificate role's key is not a public key / PKCS#8 private key of its algorithm.
    #[error("invalid certificate role key")]
    InvalidRoleKey,
    /// A certificate role that proves has no private key.
    #[error("certificate role cannot prove without a private key")]
    MissingSigningKey,
    /// A role neither proves nor accepts anything.
    #[error("role neither proves nor accepts")]
    UselessRole,
    /// An X.509 role's trust anchor or certificate chain is unusable (not a CA certificate
    /// webpki accepts, a leaf that does not parse, a chain outside the wire limits).
    #[error("invalid certificate role chain or trust anchor")]
    InvalidCertificate,
    /// An X.509 role that accepts has no trust anchor to verify the peer's chain against.
    #[error("certificate role cannot accept without a trust anchor")]
    MissingTrustAnchor,
    /// The proofs of the roles this side proves would not fit in one role message
    /// ([`crate::wire::MAX_MESSAGE_LEN`]): too many or too long certificate chains.
    #[error("proofs of the proven roles exceed the role message limit")]
    ProofTooLarge,
}

/// The role exchange failed as a whole (per-role failures are [`crate::RoleFailure`]s, not
/// errors: the other roles still count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleError {
    /// The peer's role message is malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// No role of the peer verified and the configuration does not allow anonymous peers: the
    /// channel must be closed.
    #[error("no role verified and anonymous peers are not allowed")]
    NoVerifiedRoles,
    /// The crypto library failed (randomness, signing).
    #[error("crypto operation failed: {0}")]
    Crypto(&'static str),
}

impl RoleError {
    /// Who caused the error.
    #[must_use]
    pub const fn fault(&self) -> Fault {
        match self {
            Self::Wire(_) | Self::NoVerifiedRoles => Fault::Peer,
            Self::Crypto(_) => Fault::Internal,
        }
    }
}

/// A message-mode record was refused or could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record is shorter than its header and tag.
    #[error("record truncated")]
    Truncated,
    /// The record is longer than [`crate::record::MAX_RECORD_LEN`].
    #[error("record larger than {max} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        max: usize,
    },
    /// The sequence number was already accepted (checked before decryption).
    #[error("duplicate record")]
    Duplicate,
    /// The sequence number is older than the replay window (checked before decryption).
    #[error("record older than the replay window")]
    TooOld,
    /// The sequence number is at or past [`crate::record::REJECT_AFTER_SEQ`].
    #[error("record sequence number past the hard limit")]
    SequenceLimit,
    /// The record claims the other key phase than these keys (sent under the keys of the
    /// previous or next handshake); checked before decryption.
    #[error("record of another key phase")]
    WrongKeyPhase,
    /// The record did not authenticate (forged, bit-flipped, reflected or from another session).
    #[error("record authentication failed")]
    BadRecord,
    /// Too many records failed authentication under these keys
    /// ([`crate::record::MAX_AUTH_FAILURES`]): every record is now refused.
    #[error("too many records failed authentication")]
    TooManyFailures,
    /// The keys are older than [`crate::record::REJECT_AFTER_TIME`]: re-handshake.
    #[error("message keys expired")]
    Expired,
    /// The plaintext does not fit in one record.
    #[error("plaintext larger than {max} bytes")]
    PlaintextTooLarge {
        /// The largest plaintext a record can carry.
        max: usize,
    },
    /// The sender has used every sequence number below the hard limit: re-handshake.
    #[error("sending sequence numbers exhausted")]
    SequenceExhausted,
    /// The crypto library failed.
    #[error("crypto operation failed: {0}")]
    Crypto(&'static str),
}

impl RecordError {
    /// Who caused the error.
    #[must_use]
    pub const fn fault(&self) -> Fault {
        match self {
            Self::Truncated
            | Self::TooLarge { .. }
            | Self::Duplicate
            | Self::TooOld
            | Self::SequenceLimit
            | Self::WrongKeyPhase
            | Self::BadRecord
            | Self::TooManyFailures => Fault::Peer,
            Self::Expired | Self::PlaintextTooLarge { .. } | Self::SequenceExhausted => {
                Fault::Caller
            }
            Self::Crypto(_) => Fault::Internal,
        }
    }
}
