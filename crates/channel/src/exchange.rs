//! The role exchange: a sans-I/O state machine over two flights per side.
//!
//! ```text
//! start()          -> OfferSent  + our Offer  (SPAKE2 messages of our password roles)
//! receive_offer()  -> ProofSent  + our Proof  (key tags, signatures, password confirmations)
//! receive_proof()  -> RoleOutcome             (the peer's roles we could verify, and why the
//!                                              others failed)
//! RoleOutcome::finish() -> VerifiedRoles      (or NoVerifiedRoles: close the channel)
//! ```
//!
//! Both sides run the same machine at the same time (full duplex): each sends its offer, reads
//! the peer's, sends its proof, reads the peer's. Every authenticator is bound to this TLS
//! connection through the exporter of the sender's direction (`E_dir`), so it is worthless on
//! any other connection, in the other direction, or through a man in the middle (who sees two
//! different TLS connections, hence two different pairs of exporters).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use daas_crypto::prf::{hkdf_sha256, hmac_sha256};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::config::{RoleConfig, RoleKey, RoleKeyAlgorithm, RoleSecret};
use crate::error::{RoleError, WireError};
use crate::labels::{
    CERT_ROLE_V1, CERT_ROLE_X509_V1, KEY_ROLE_INFO, KEY_ROLE_SALT, PASSWORD_CONFIRM_SALT,
    PASSWORD_ID_CLIENT, PASSWORD_ID_SERVER, push_lp,
};
use crate::name::RoleName;
use crate::wire::{Entry, MessageType, PAKE_MESSAGE_LEN, RoleMessage, TAG_LEN};
use crate::x509::X509Scheme;

/// Length of each exporter value the caller obtains from TLS.
pub const EXPORTER_LEN: usize = 32;

/// Which end of the TLS connection this side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The TLS client (SPAKE2 side A).
    Client,
    /// The TLS server (SPAKE2 side B).
    Server,
}

impl Side {
    /// The direction this side sends in.
    #[must_use]
    pub const fn sending(self) -> Direction {
        match self {
            Self::Client => Direction::ClientToServer,
            Self::Server => Direction::ServerToClient,
        }
    }

    /// The direction this side receives in.
    #[must_use]
    pub const fn receiving(self) -> Direction {
        match self {
            Self::Client => Direction::ServerToClient,
            Self::Server => Direction::ClientToServer,
        }
    }
}

/// A direction of the connection; its byte is the TLS exporter context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: byte `0x00`.
    ClientToServer,
    /// Server to client: byte `0x01`.
    ServerToClient,
}

impl Direction {
    /// The direction byte (`dir` in the constructions, and the exporter context).
    #[must_use]
    pub const fn byte(self) -> u8 {
        match self {
            Self::ClientToServer => 0,
            Self::ServerToClient => 1,
        }
    }
}

/// The two role-layer exporter values of one TLS connection:
/// `E_dir = exporter("EXPORTER-daas-roles", context = [dir], 32)`. Zeroized on drop.
pub struct Exporters {
    c2s: Zeroizing<[u8; EXPORTER_LEN]>,
    s2c: Zeroizing<[u8; EXPORTER_LEN]>,
}

impl Exporters {
    /// Wraps the client-to-server and server-to-client exporter values.
    #[must_use]
    pub fn new(c2s: [u8; EXPORTER_LEN], s2c: [u8; EXPORTER_LEN]) -> Self {
        Self {
            c2s: Zeroizing::new(c2s),
            s2c: Zeroizing::new(s2c),
        }
    }

    fn get(&self, dir: Direction) -> &[u8; EXPORTER_LEN] {
        match dir {
            Direction::ClientToServer => &self.c2s,
            Direction::ServerToClient => &self.s2c,
        }
    }
}

impl fmt::Debug for Exporters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exporters(..)")
    }
}

/// Why one role of the peer did not verify. For the audit log: [`FailureReason::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FailureReason {
    /// The peer claimed a role this side does not have or does not accept.
    NotAccepted,
    /// The peer's proof is of another kind than this side's role (e.g. a key tag for a
    /// password role).
    KindMismatch,
    /// The key-role tag did not match: another key, or another connection (replay, MITM).
    BadKeyTag,
    /// The certificate-role signature did not verify under the pinned key.
    BadSignature,
    /// The password-role confirmation did not match: another password, or another connection.
    WrongPassword,
    /// Both sides ran the PAKE for a password role but the peer sent no confirmation.
    MissingConfirmation,
    /// The peer's SPAKE2 message was invalid (wrong side byte, not a point, reflected).
    InvalidPakeMessage,
    /// The peer sent a password confirmation without a PAKE for that role.
    NoPake,
    /// This side did not run the PAKE: the peer and role are over their attempt budget.
    RateLimited,
    /// The peer's proof message was malformed; none of its roles were checked.
    MalformedProof,
    /// The X.509 role chain does not lead to the role's trust anchor.
    UntrustedChain,
    /// A certificate of the X.509 role chain has expired.
    CertificateExpired,
    /// A certificate of the X.509 role chain is not valid yet.
    CertificateNotYetValid,
    /// The X.509 role chain is malformed or breaks a path rule (CA constraints, key usage).
    InvalidChain,
    /// The role is pinned to SPIFFE IDs and the chain is not a valid X.509-SVID.
    NotSvid,
    /// The chain is a valid SVID whose SPIFFE ID the role's pin does not match.
    SpiffeIdMismatch,
}

impl FailureReason {
    /// A precise, lowercase reason for the audit log.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotAccepted => "role not accepted by this side",
            Self::KindMismatch => "proof kind differs from the configured role kind",
            Self::BadKeyTag => "key role tag mismatch",
            Self::BadSignature => "certificate role signature invalid",
            Self::WrongPassword => "password role confirmation mismatch",
            Self::MissingConfirmation => "password role confirmation missing",
            Self::InvalidPakeMessage => "invalid password role pake message",
            Self::NoPake => "password role confirmation without a pake",
            Self::RateLimited => "password role attempts rate limited",
            Self::MalformedProof => "malformed proof message",
            Self::UntrustedChain => "certificate role chain not issued by the role's trust anchor",
            Self::CertificateExpired => "certificate role certificate expired",
            Self::CertificateNotYetValid => "certificate role certificate not yet valid",
            Self::InvalidChain => "certificate role chain invalid",
            Self::NotSvid => "certificate role chain is not a valid x509-svid",
            Self::SpiffeIdMismatch => "certificate role spiffe id does not match the role's pin",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One role of the peer that did not verify, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleFailure {
    /// The role (the name alphabet makes it safe to log).
    pub role: RoleName,
    /// Why it failed.
    pub reason: FailureReason,
}

/// The peer's roles that this side verified on this connection. Only
/// [`RoleOutcome::finish`] builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRoles {
    roles: BTreeSet<RoleName>,
}

impl VerifiedRoles {
    /// Whether the peer proved `role`.
    #[must_use]
    pub fn contains(&self, role: &RoleName) -> bool {
        self.roles.contains(role)
    }

    /// Whether the peer proved the role named `role`.
    #[must_use]
    pub fn contains_str(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.as_str() == role)
    }

    /// The roles in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = &RoleName> {
        self.roles.iter()
    }

    /// How many roles verified.
    #[must_use]
    pub fn len(&self) -> usize {
        self.roles.len()
    }

    /// Whether no role verified (only possible with `allow_anonymous`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }
}

impl fmt::Display for VerifiedRoles {
    /// `a,b,c` (empty for an anonymous peer).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.roles.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(r.as_str())?;
        }
        Ok(())
    }
}

/// `HMAC-SHA256(HKDF(psk, info = "daas role v1" ‖ lp(role)), E_dir ‖ dir)`.
fn key_role_tag(
    key: &RoleKey,
    role: &RoleName,
    exporter: &[u8; EXPORTER_LEN],
    dir: Direction,
) -> Result<[u8; TAG_LEN], RoleError> {
    let mut info = KEY_ROLE_INFO.to_vec();
    push_lp(&mut info, role.as_str().as_bytes());
    let mut mac_key = Zeroizing::new([0u8; 32]);
    hkdf_sha256(KEY_ROLE_SALT, key.bytes(), &info, mac_key.as_mut_slice())
        .map_err(|_| RoleError::Crypto("hkdf"))?;
    Ok(hmac_sha256(mac_key.as_slice(), &[exporter, &[dir.byte()]]))
}

/// The bytes a certificate role signs: `label ‖ E_dir ‖ dir ‖ lp(role)`.
fn cert_role_message(role: &RoleName, exporter: &[u8; EXPORTER_LEN], dir: Direction) -> Vec<u8> {
    let mut m = CERT_ROLE_V1.to_vec();
    m.extend_from_slice(exporter);
    m.push(dir.byte());
    push_lp(&mut m, role.as_str().as_bytes());
    m
}

/// The bytes an X.509 certificate role signs: `label ‖ E_dir ‖ dir ‖ lp(role) ‖ scheme`. The
/// label differs from the pinned-key form's, so neither signature stands in for the other.
fn x509_role_message(
    role: &RoleName,
    exporter: &[u8; EXPORTER_LEN],
    dir: Direction,
    scheme: X509Scheme,
) -> Vec<u8> {
    let mut m = CERT_ROLE_X509_V1.to_vec();
    m.extend_from_slice(exporter);
    m.push(dir.byte());
    push_lp(&mut m, role.as_str().as_bytes());
    m.push(scheme.byte());
    m
}

/// SPAKE2 identities: a side label, the role and both exporters, so the PAKE key is bound to
/// this connection and role.
fn pake_identities(role: &RoleName, exporters: &Exporters) -> (Identity, Identity) {
    let mut tail = Vec::with_capacity(128);
    push_lp(&mut tail, role.as_str().as_bytes());
    push_lp(&mut tail, exporters.get(Direction::ClientToServer));
    push_lp(&mut tail, exporters.get(Direction::ServerToClient));
    let id = |label: &[u8]| {
        let mut v = label.to_vec();
        v.extend_from_slice(&tail);
        Identity::new(&v)
    };
    (id(PASSWORD_ID_CLIENT), id(PASSWORD_ID_SERVER))
}

/// Key confirmation: `HMAC(HKDF(K, info = dir), lp(role) ‖ lp(msg_c2s) ‖ lp(msg_s2c) ‖
/// lp(E_c2s) ‖ lp(E_s2c) ‖ dir)`. One key per direction, so a reflected confirmation fails.
fn confirm_tag(
    pake_key: &[u8],
    role: &RoleName,
    msgs: (&[u8], &[u8]),
    exporters: &Exporters,
    dir: Direction,
) -> Result<[u8; TAG_LEN], RoleError> {
    let mut ck = Zeroizing::new([0u8; 32]);
    hkdf_sha256(
        PASSWORD_CONFIRM_SALT,
        pake_key,
        &[dir.byte()],
        ck.as_mut_slice(),
    )
    .map_err(|_| RoleError::Crypto("hkdf"))?;
    let mut t = Vec::with_capacity(256);
    push_lp(&mut t, role.as_str().as_bytes());
    push_lp(&mut t, msgs.0);
    push_lp(&mut t, msgs.1);
    push_lp(&mut t, exporters.get(Direction::ClientToServer));
    push_lp(&mut t, exporters.get(Direction::ServerToClient));
    t.push(dir.byte());
    Ok(hmac_sha256(ck.as_slice(), &[&t]))
}

struct PendingPake {
    role: RoleName,
    state: Spake2<Ed25519Group>,
    ours: [u8; PAKE_MESSAGE_LEN],
}

/// State 1: our offer is sent; waiting for the peer's.
pub struct OfferSent {
    config: Arc<RoleConfig>,
    side: Side,
    exporters: Exporters,
    pending: Vec<PendingPake>,
    failures: Vec<RoleFailure>,
}

impl fmt::Debug for OfferSent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OfferSent")
            .field("side", &self.side)
            .field("pending_pakes", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl OfferSent {
    /// Starts the exchange: returns the state and the offer to send.
    ///
    /// `permit` is asked once for every password role before its PAKE starts (the I/O layer
    /// answers from its [`crate::RateLimiter`]); a role it refuses is left out of the offer and
    /// reported as [`FailureReason::RateLimited`].
    ///
    /// # Errors
    /// [`RoleError::Crypto`] if the SPAKE2 message cannot be built.
    pub fn start(
        config: Arc<RoleConfig>,
        side: Side,
        exporters: Exporters,
        mut permit: impl FnMut(&RoleName) -> bool,
    ) -> Result<(Self, Vec<u8>), RoleError> {
        let mut pending = Vec::new();
        let mut failures = Vec::new();
        let mut entries = Vec::new();
        for role in config.roles() {
            let RoleSecret::Password(pw) = role.secret() else {
                continue;
            };
            if !permit(role.name()) {
                failures.push(RoleFailure {
                    role: role.name().clone(),
                    reason: FailureReason::RateLimited,
                });
                continue;
            }
            let (id_a, id_b) = pake_identities(role.name(), &exporters);
            let pw = Password::new(pw.bytes());
            let (state, msg) = match side {
                Side::Client => Spake2::<Ed25519Group>::start_a(&pw, &id_a, &id_b),
                Side::Server => Spake2::<Ed25519Group>::start_b(&pw, &id_a, &id_b),
            };
            let ours: [u8; PAKE_MESSAGE_LEN] = msg
                .as_slice()
                .try_into()
                .map_err(|_| RoleError::Crypto("spake2 message length"))?;
            entries.push((role.name().clone(), Entry::PakeMessage(ours)));
            pending.push(PendingPake {
                role: role.name().clone(),
                state,
                ours,
            });
        }
        let offer = RoleMessage::new(MessageType::Offer, entries)
            .map_err(|_| RoleError::Crypto("offer encoding"))?
            .encode();
        Ok((
            Self {
                config,
                side,
                exporters,
                pending,
                failures,
            },
            offer,
        ))
    }

    /// Takes the peer's offer; returns the next state and the proof to send.
    ///
    /// # Errors
    /// [`RoleError::Wire`] if the offer is malformed or not an offer (close the channel; no
    /// confirmation has left this side, so no password guess was tested),
    /// [`RoleError::Crypto`] if signing fails.
    pub fn receive_offer(self, offer: &[u8]) -> Result<(ProofSent, Vec<u8>), RoleError> {
        let Self {
            config,
            side,
            exporters,
            pending,
            mut failures,
        } = self;
        let offer = RoleMessage::parse(offer)?;
        if offer.message_type() != MessageType::Offer {
            return Err(WireError::UnexpectedMessageType.into());
        }
        let mut sessions = Vec::new();
        let mut entries = Vec::new();
        for p in pending {
            let Some(Entry::PakeMessage(theirs)) = offer.get(&p.role) else {
                // The peer does not run this role's PAKE now: nothing was attempted.
                continue;
            };
            let Ok(k) = p.state.finish(theirs) else {
                failures.push(RoleFailure {
                    role: p.role.clone(),
                    reason: FailureReason::InvalidPakeMessage,
                });
                sessions.push(PakeSession {
                    role: p.role,
                    expected: None,
                });
                continue;
            };
            let k = Zeroizing::new(k);
            let msgs = match side {
                Side::Client => (p.ours.as_slice(), theirs.as_slice()),
                Side::Server => (theirs.as_slice(), p.ours.as_slice()),
            };
            let ours = confirm_tag(&k, &p.role, msgs, &exporters, side.sending())?;
            let expected = confirm_tag(&k, &p.role, msgs, &exporters, side.receiving())?;
            entries.push((p.role.clone(), Entry::PasswordConfirm(ours)));
            sessions.push(PakeSession {
                role: p.role,
                expected: Some(Zeroizing::new(expected)),
            });
        }
        for (name, _) in offer.entries() {
            let known = config
                .role(name)
                .is_some_and(|r| matches!(r.secret(), RoleSecret::Password(_)));
            if !known {
                failures.push(RoleFailure {
                    role: name.clone(),
                    reason: FailureReason::NotAccepted,
                });
            }
        }
        let exporter = exporters.get(side.sending());
        for role in config.roles().filter(|r| r.proves()) {
            match role.secret() {
                RoleSecret::Key(key) => {
                    let tag = key_role_tag(key, role.name(), exporter, side.sending())?;
                    entries.push((role.name().clone(), Entry::KeyTag(tag)));
                }
                RoleSecret::Certificate(cert) => {
                    let msg = cert_role_message(role.name(), exporter, side.sending());
                    let sig = cert
                        .sign(&msg)
                        .ok_or(RoleError::Crypto("certificate role signing"))?;
                    let entry = match cert.algorithm() {
                        RoleKeyAlgorithm::Ed25519 => Entry::Ed25519Signature(sig),
                        RoleKeyAlgorithm::EcdsaP256 => Entry::EcdsaP256Signature(sig),
                    };
                    entries.push((role.name().clone(), entry));
                }
                RoleSecret::X509(x) => {
                    let proof = x
                        .prove(|scheme| {
                            x509_role_message(role.name(), exporter, side.sending(), scheme)
                        })
                        .ok_or(RoleError::Crypto("certificate role signing"))?;
                    entries.push((role.name().clone(), Entry::X509(proof)));
                }
                // Confirmations were added above, for every PAKE that ran.
                RoleSecret::Password(_) => {}
            }
        }
        let proof = RoleMessage::new(MessageType::Proof, entries)
            .map_err(|_| RoleError::Crypto("proof encoding"))?
            .encode();
        Ok((
            ProofSent {
                config,
                side,
                exporters,
                sessions,
                failures,
            },
            proof,
        ))
    }
}

struct PakeSession {
    role: RoleName,
    /// The peer's confirmation we expect; `None` if its PAKE message was invalid.
    expected: Option<Zeroizing<[u8; TAG_LEN]>>,
}

/// State 2: our proof is sent; waiting for the peer's.
pub struct ProofSent {
    config: Arc<RoleConfig>,
    side: Side,
    exporters: Exporters,
    sessions: Vec<PakeSession>,
    failures: Vec<RoleFailure>,
}

impl fmt::Debug for ProofSent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofSent")
            .field("side", &self.side)
            .field("pakes", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl ProofSent {
    /// [`Self::receive_proof_at`] with the system clock (for certificate validity).
    #[must_use]
    pub fn receive_proof(self, proof: &[u8]) -> RoleOutcome {
        self.receive_proof_at(proof, SystemTime::now())
    }

    /// Verifies the peer's proof; X.509 role certificates must be valid at `now`. Never fails
    /// by itself: a malformed proof gives an outcome whose [`RoleOutcome::finish`] is the wire
    /// error, and whose password attempts all count as failed (the peer saw our confirmations).
    #[must_use]
    pub fn receive_proof_at(self, proof: &[u8], now: SystemTime) -> RoleOutcome {
        let Self {
            config,
            side,
            exporters,
            sessions,
            mut failures,
        } = self;
        let allow_anonymous = config.allow_anonymous();
        let parsed = RoleMessage::parse(proof).and_then(|m| {
            if m.message_type() == MessageType::Proof {
                Ok(m)
            } else {
                Err(WireError::UnexpectedMessageType)
            }
        });
        let proof = match parsed {
            Ok(p) => p,
            Err(e) => {
                for s in &sessions {
                    failures.push(RoleFailure {
                        role: s.role.clone(),
                        reason: FailureReason::MalformedProof,
                    });
                }
                return RoleOutcome {
                    verified: BTreeSet::new(),
                    failures,
                    failed_attempts: sessions.into_iter().map(|s| s.role).collect(),
                    error: Some(e),
                    allow_anonymous,
                };
            }
        };
        let dir = side.receiving();
        let exporter = exporters.get(dir);
        let mut verified = BTreeSet::new();
        let mut failed_attempts = Vec::new();
        let mut fail = |role: &RoleName, reason| {
            failures.push(RoleFailure {
                role: role.clone(),
                reason,
            });
        };
        for (name, entry) in proof.entries() {
            let Some(role) = config.role(name).filter(|r| r.accepts()) else {
                // A confirmation for a prove-only password role is still checked below, for
                // the rate limiter.
                let own_password_role = config
                    .role(name)
                    .is_some_and(|r| matches!(r.secret(), RoleSecret::Password(_)));
                if !(own_password_role && matches!(entry, Entry::PasswordConfirm(_))) {
                    fail(name, FailureReason::NotAccepted);
                }
                continue;
            };
            let ok = match (role.secret(), entry) {
                (RoleSecret::Key(key), Entry::KeyTag(tag)) => {
                    match key_role_tag(key, name, exporter, dir) {
                        Ok(expected) if bool::from(expected.ct_eq(tag)) => Ok(()),
                        _ => Err(FailureReason::BadKeyTag),
                    }
                }
                (RoleSecret::Certificate(cert), Entry::Ed25519Signature(sig))
                    if cert.algorithm() == RoleKeyAlgorithm::Ed25519 =>
                {
                    if cert.verify(&cert_role_message(name, exporter, dir), sig) {
                        Ok(())
                    } else {
                        Err(FailureReason::BadSignature)
                    }
                }
                (RoleSecret::Certificate(cert), Entry::EcdsaP256Signature(sig))
                    if cert.algorithm() == RoleKeyAlgorithm::EcdsaP256 =>
                {
                    if cert.verify(&cert_role_message(name, exporter, dir), sig) {
                        Ok(())
                    } else {
                        Err(FailureReason::BadSignature)
                    }
                }
                (RoleSecret::X509(x), Entry::X509(p)) => x.verify(
                    p,
                    |scheme| x509_role_message(name, exporter, dir, scheme),
                    now,
                ),
                // Checked with the PAKE sessions below.
                (RoleSecret::Password(_), Entry::PasswordConfirm(_)) => continue,
                _ => Err(FailureReason::KindMismatch),
            };
            match ok {
                Ok(()) => {
                    verified.insert(name.clone());
                }
                Err(reason) => fail(name, reason),
            }
        }
        for s in &sessions {
            let Some(expected) = &s.expected else {
                // Invalid PAKE message: already recorded as a failure.
                failed_attempts.push(s.role.clone());
                continue;
            };
            match proof.get(&s.role) {
                Some(Entry::PasswordConfirm(tag)) if bool::from(expected.ct_eq(tag)) => {
                    if config.role(&s.role).is_some_and(|r| r.accepts()) {
                        verified.insert(s.role.clone());
                    }
                }
                Some(Entry::PasswordConfirm(_)) => {
                    fail(&s.role, FailureReason::WrongPassword);
                    failed_attempts.push(s.role.clone());
                }
                // Another kind under this name is already a KindMismatch failure.
                Some(_) => failed_attempts.push(s.role.clone()),
                None => {
                    fail(&s.role, FailureReason::MissingConfirmation);
                    failed_attempts.push(s.role.clone());
                }
            }
        }
        for (name, entry) in proof.entries() {
            let ran = sessions.iter().any(|s| &s.role == name);
            let is_password = config
                .role(name)
                .is_some_and(|r| matches!(r.secret(), RoleSecret::Password(_)));
            if matches!(entry, Entry::PasswordConfirm(_)) && is_password && !ran {
                fail(name, FailureReason::NoPake);
            }
        }
        RoleOutcome {
            verified,
            failures,
            failed_attempts,
            error: None,
            allow_anonymous,
        }
    }
}

/// The result of the exchange, before the anonymous-peer rule is applied.
#[derive(Debug)]
pub struct RoleOutcome {
    verified: BTreeSet<RoleName>,
    failures: Vec<RoleFailure>,
    failed_attempts: Vec<RoleName>,
    error: Option<WireError>,
    allow_anonymous: bool,
}

impl RoleOutcome {
    /// The peer's roles that did not verify, with precise reasons, for the audit log.
    #[must_use]
    pub fn failures(&self) -> &[RoleFailure] {
        &self.failures
    }

    /// Password roles whose PAKE ran but whose confirmation from the peer did not verify: each
    /// is a failed guess the rate limiter must keep charged. Every other password role for
    /// which a permit was taken may be refunded.
    #[must_use]
    pub fn failed_password_attempts(&self) -> &[RoleName] {
        &self.failed_attempts
    }

    /// The verified roles, or the reason the channel must be closed.
    ///
    /// # Errors
    /// [`RoleError::Wire`] if the peer's proof was malformed; [`RoleError::NoVerifiedRoles`] if
    /// nothing verified and the configuration does not allow anonymous peers.
    pub fn finish(self) -> Result<VerifiedRoles, RoleError> {
        if let Some(e) = self.error {
            return Err(e.into());
        }
        if self.verified.is_empty() && !self.allow_anonymous {
            return Err(RoleError::NoVerifiedRoles);
        }
        Ok(VerifiedRoles {
            roles: self.verified,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CertificateRole, Role, RolePassword};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::Ed25519KeyPair;

    fn name(s: &str) -> RoleName {
        RoleName::new(s).unwrap()
    }

    fn key_role(n: &str, k: u8) -> Role {
        Role::new(name(n), RoleSecret::Key(RoleKey::new(&[k; 32]).unwrap()))
    }

    fn pw_role(n: &str, pw: &str) -> Role {
        Role::new(
            name(n),
            RoleSecret::Password(RolePassword::new(pw.as_bytes()).unwrap()),
        )
    }

    fn cfg(roles: Vec<Role>) -> Arc<RoleConfig> {
        Arc::new(RoleConfig::new(roles, false).unwrap())
    }

    fn exporters(seed: u8) -> Exporters {
        Exporters::new([seed; 32], [seed ^ 0x55; 32])
    }

    /// Runs both sides to the end; `ex_c`/`ex_s` are the exporters each side sees (equal on a
    /// direct connection, different through a MITM).
    fn run_with(
        client: Arc<RoleConfig>,
        server: Arc<RoleConfig>,
        ex_c: Exporters,
        ex_s: Exporters,
    ) -> (RoleOutcome, RoleOutcome) {
        let (c, c_offer) = OfferSent::start(client, Side::Client, ex_c, |_| true).unwrap();
        let (s, s_offer) = OfferSent::start(server, Side::Server, ex_s, |_| true).unwrap();
        let (c, c_proof) = c.receive_offer(&s_offer).unwrap();
        let (s, s_proof) = s.receive_offer(&c_offer).unwrap();
        (c.receive_proof(&s_proof), s.receive_proof(&c_proof))
    }

    fn run(client: Arc<RoleConfig>, server: Arc<RoleConfig>) -> (RoleOutcome, RoleOutcome) {
        run_with(client, server, exporters(1), exporters(1))
    }

    fn reasons(o: &RoleOutcome) -> Vec<(String, FailureReason)> {
        o.failures()
            .iter()
            .map(|f| (f.role.to_string(), f.reason))
            .collect()
    }

    #[test]
    fn key_roles_verify_both_ways() {
        let (c, s) = run(
            cfg(vec![key_role("payment", 1), key_role("user-info", 2)]),
            cfg(vec![key_role("payment", 1)]),
        );
        assert!(
            s.failures()
                .iter()
                .any(|f| f.reason == FailureReason::NotAccepted)
        );
        let s = s.finish().unwrap();
        assert_eq!(s.to_string(), "payment");
        assert!(s.contains_str("payment") && !s.contains_str("user-info"));
        assert_eq!(c.finish().unwrap().to_string(), "payment");
    }

    #[test]
    fn wrong_key_is_not_verified_and_closes() {
        let (c, s) = run(
            cfg(vec![key_role("payment", 1)]),
            cfg(vec![key_role("payment", 2)]),
        );
        assert_eq!(
            reasons(&s),
            vec![("payment".into(), FailureReason::BadKeyTag)]
        );
        assert_eq!(s.finish(), Err(RoleError::NoVerifiedRoles));
        assert_eq!(c.finish(), Err(RoleError::NoVerifiedRoles));
    }

    #[test]
    fn anonymous_allowed_gives_empty_set() {
        let anon = Arc::new(RoleConfig::new(vec![key_role("payment", 2)], true).unwrap());
        let (_, s) = run(cfg(vec![key_role("payment", 1)]), anon);
        assert!(s.finish().unwrap().is_empty());
    }

    #[test]
    fn prove_and_accept_flags() {
        // The client proves payment but does not accept it; the server accepts but does not
        // prove it.
        let (c, s) = run(
            cfg(vec![
                key_role("payment", 1).with_accept(false),
                key_role("x", 3),
            ]),
            cfg(vec![
                key_role("payment", 1).with_prove(false),
                key_role("x", 3),
            ]),
        );
        assert_eq!(s.finish().unwrap().to_string(), "payment,x");
        assert_eq!(c.finish().unwrap().to_string(), "x");
    }

    #[test]
    fn mitm_with_different_exporters_fails_every_role() {
        let roles = || {
            vec![
                key_role("payment", 1),
                pw_role("user-info", "correct horse"),
            ]
        };
        // The MITM relays messages unchanged between two TLS connections.
        let (c, s) = run_with(cfg(roles()), cfg(roles()), exporters(1), exporters(2));
        assert_eq!(c.finish(), Err(RoleError::NoVerifiedRoles));
        let mut r = reasons(&s);
        r.sort();
        assert_eq!(
            r,
            vec![
                ("payment".into(), FailureReason::BadKeyTag),
                ("user-info".into(), FailureReason::WrongPassword)
            ]
        );
        assert_eq!(s.failed_password_attempts(), &[name("user-info")]);
        assert_eq!(s.finish(), Err(RoleError::NoVerifiedRoles));
    }

    #[test]
    fn replayed_proof_from_another_session_fails() {
        let roles = || cfg(vec![key_role("payment", 1), pw_role("pw", "secret")]);
        // Session 1: record the client's proof.
        let (c1, c1_offer) =
            OfferSent::start(roles(), Side::Client, exporters(1), |_| true).unwrap();
        let (s1, s1_offer) =
            OfferSent::start(roles(), Side::Server, exporters(1), |_| true).unwrap();
        let (_, c1_proof) = c1.receive_offer(&s1_offer).unwrap();
        let _ = s1.receive_offer(&c1_offer).unwrap();
        // Session 2 (other exporters): the attacker replays session 1's offer and proof.
        let (s2, _) = OfferSent::start(roles(), Side::Server, exporters(9), |_| true).unwrap();
        let (s2, _) = s2.receive_offer(&c1_offer).unwrap();
        let out = s2.receive_proof(&c1_proof);
        let mut r = reasons(&out);
        r.sort();
        assert_eq!(
            r,
            vec![
                ("payment".into(), FailureReason::BadKeyTag),
                ("pw".into(), FailureReason::WrongPassword)
            ]
        );
        assert_eq!(out.finish(), Err(RoleError::NoVerifiedRoles));
    }

    #[test]
    fn reflected_proof_fails() {
        // The server's own proof sent back to it: its tags are for the other direction.
        let roles = || cfg(vec![key_role("payment", 1), pw_role("pw", "secret")]);
        let (c, c_offer) = OfferSent::start(roles(), Side::Client, exporters(1), |_| true).unwrap();
        let (s, s_offer) = OfferSent::start(roles(), Side::Server, exporters(1), |_| true).unwrap();
        drop(c);
        let _ = c_offer;
        // Reflected offer: the SPAKE2 side byte is wrong.
        let (s_ref, _) = OfferSent::start(roles(), Side::Server, exporters(1), |_| true).unwrap();
        let (s_ref, _) = s_ref.receive_offer(&s_offer).unwrap();
        let out = s_ref.receive_proof(
            &RoleMessage::new(MessageType::Proof, vec![])
                .unwrap()
                .encode(),
        );
        assert!(
            out.failures()
                .iter()
                .any(|f| f.reason == FailureReason::InvalidPakeMessage)
        );
        assert_eq!(out.failed_password_attempts(), &[name("pw")]);
        // Reflected proof with a genuine client offer.
        let (c2, c2_offer) =
            OfferSent::start(roles(), Side::Client, exporters(1), |_| true).unwrap();
        drop(c2);
        let (s, s_proof) = s.receive_offer(&c2_offer).unwrap();
        let out = s.receive_proof(&s_proof);
        let mut r = reasons(&out);
        r.sort();
        assert_eq!(
            r,
            vec![
                ("payment".into(), FailureReason::BadKeyTag),
                ("pw".into(), FailureReason::WrongPassword)
            ]
        );
    }

    #[test]
    fn passwords() {
        let (c, s) = run(
            cfg(vec![pw_role("payment", "hunter2")]),
            cfg(vec![pw_role("payment", "hunter2")]),
        );
        assert!(c.failed_password_attempts().is_empty());
        assert_eq!(c.finish().unwrap().to_string(), "payment");
        assert_eq!(s.finish().unwrap().to_string(), "payment");

        let (c, s) = run(
            cfg(vec![pw_role("payment", "hunter2")]),
            cfg(vec![pw_role("payment", "hunter3")]),
        );
        assert_eq!(
            reasons(&s),
            vec![("payment".into(), FailureReason::WrongPassword)]
        );
        assert_eq!(s.failed_password_attempts(), &[name("payment")]);
        assert_eq!(c.failed_password_attempts(), &[name("payment")]);
        assert_eq!(s.finish(), Err(RoleError::NoVerifiedRoles));
    }

    #[test]
    fn password_prove_only_side_still_checks_for_rate_limiting() {
        let (c, s) = run(
            cfg(vec![
                pw_role("payment", "a").with_accept(false),
                key_role("k", 1),
            ]),
            cfg(vec![pw_role("payment", "b"), key_role("k", 1)]),
        );
        assert_eq!(c.failed_password_attempts(), &[name("payment")]);
        assert_eq!(c.finish().unwrap().to_string(), "k");
        assert_eq!(s.finish().unwrap().to_string(), "k");
    }

    #[test]
    fn missing_confirmation_is_a_failed_attempt() {
        let roles = || cfg(vec![pw_role("payment", "pw")]);
        let (c, c_offer) = OfferSent::start(roles(), Side::Client, exporters(1), |_| true).unwrap();
        let (s, s_offer) = OfferSent::start(roles(), Side::Server, exporters(1), |_| true).unwrap();
        let _ = c.receive_offer(&s_offer).unwrap();
        let (s, _) = s.receive_offer(&c_offer).unwrap();
        let out = s.receive_proof(
            &RoleMessage::new(MessageType::Proof, vec![])
                .unwrap()
                .encode(),
        );
        assert_eq!(
            reasons(&out),
            vec![("payment".into(), FailureReason::MissingConfirmation)]
        );
        assert_eq!(out.failed_password_attempts(), &[name("payment")]);
    }

    #[test]
    fn rate_limited_role_is_not_offered() {
        let roles = || cfg(vec![pw_role("payment", "pw")]);
        let (c, c_offer) = OfferSent::start(roles(), Side::Client, exporters(1), |_| true).unwrap();
        let (s, s_offer) =
            OfferSent::start(roles(), Side::Server, exporters(1), |_| false).unwrap();
        assert!(RoleMessage::parse(&s_offer).unwrap().entries().is_empty());
        let (c, c_proof) = c.receive_offer(&s_offer).unwrap();
        let (s, s_proof) = s.receive_offer(&c_offer).unwrap();
        let s_out = s.receive_proof(&c_proof);
        assert_eq!(
            reasons(&s_out),
            vec![("payment".into(), FailureReason::RateLimited)]
        );
        assert!(s_out.failed_password_attempts().is_empty());
        let c_out = c.receive_proof(&s_proof);
        assert!(c_out.failed_password_attempts().is_empty());
        assert_eq!(c_out.finish(), Err(RoleError::NoVerifiedRoles));
    }

    #[test]
    fn certificate_roles() {
        let rng = SystemRandom::new();
        let pk8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let other = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let signer = CertificateRole::signer(RoleKeyAlgorithm::Ed25519, pk8.as_ref()).unwrap();
        let public = signer.public_key().to_vec();
        let client = cfg(vec![
            Role::new(name("approval"), RoleSecret::Certificate(signer)).with_accept(false),
        ]);
        let server = cfg(vec![
            Role::new(
                name("approval"),
                RoleSecret::Certificate(
                    CertificateRole::verifier(RoleKeyAlgorithm::Ed25519, &public).unwrap(),
                ),
            )
            .with_prove(false),
        ]);
        let (_, s) = run(client, server.clone());
        assert_eq!(s.finish().unwrap().to_string(), "approval");
        // Another key under the same role name.
        let imposter = cfg(vec![
            Role::new(
                name("approval"),
                RoleSecret::Certificate(
                    CertificateRole::signer(RoleKeyAlgorithm::Ed25519, other.as_ref()).unwrap(),
                ),
            )
            .with_accept(false),
        ]);
        let (_, s) = run(imposter, server);
        assert_eq!(
            reasons(&s),
            vec![("approval".into(), FailureReason::BadSignature)]
        );
        // A verify-only certificate role cannot prove.
        assert_eq!(
            RoleConfig::new(
                vec![Role::new(
                    name("a"),
                    RoleSecret::Certificate(
                        CertificateRole::verifier(RoleKeyAlgorithm::Ed25519, &public).unwrap()
                    )
                )],
                false
            )
            .unwrap_err(),
            crate::ConfigError::MissingSigningKey
        );
    }

    #[test]
    fn p256_certificate_roles() {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = SystemRandom::new();
        let pk8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let signer = CertificateRole::signer(RoleKeyAlgorithm::EcdsaP256, pk8.as_ref()).unwrap();
        let public = signer.public_key().to_vec();
        assert_eq!(public.len(), crate::config::P256_PUBLIC_KEY_LEN);
        let client = cfg(vec![
            Role::new(name("shipping"), RoleSecret::Certificate(signer)).with_accept(false),
        ]);
        let verifier = || {
            RoleSecret::Certificate(
                CertificateRole::verifier(RoleKeyAlgorithm::EcdsaP256, &public).unwrap(),
            )
        };
        let server = cfg(vec![
            Role::new(name("shipping"), verifier()).with_prove(false),
        ]);
        let (_, s) = run(client, server);
        assert_eq!(s.finish().unwrap().to_string(), "shipping");

        // An Ed25519 signature under a role pinned to a P-256 key is a kind mismatch.
        let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed_client = cfg(vec![
            Role::new(
                name("shipping"),
                RoleSecret::Certificate(
                    CertificateRole::signer(RoleKeyAlgorithm::Ed25519, ed.as_ref()).unwrap(),
                ),
            )
            .with_accept(false),
        ]);
        let server = cfg(vec![
            Role::new(name("shipping"), verifier()).with_prove(false),
        ]);
        let (_, s) = run(ed_client, server);
        assert_eq!(
            reasons(&s),
            vec![("shipping".into(), FailureReason::KindMismatch)]
        );

        // Keys that are not P-256 points are refused up front.
        assert!(CertificateRole::verifier(RoleKeyAlgorithm::EcdsaP256, &[4; 65]).is_err());
        assert!(CertificateRole::verifier(RoleKeyAlgorithm::Ed25519, &[4; 31]).is_err());
        assert!(CertificateRole::signer(RoleKeyAlgorithm::EcdsaP256, ed.as_ref()).is_err());
    }

    #[test]
    fn kind_mismatch() {
        let (_, s) = run(
            cfg(vec![key_role("payment", 1)]),
            cfg(vec![pw_role("payment", "x")]),
        );
        assert_eq!(
            reasons(&s),
            vec![("payment".into(), FailureReason::KindMismatch)]
        );
    }

    #[test]
    fn malformed_messages() {
        let roles = || cfg(vec![pw_role("payment", "pw")]);
        let (c, _) = OfferSent::start(roles(), Side::Client, exporters(1), |_| true).unwrap();
        assert_eq!(
            c.receive_offer(&[1, 1, 0]).unwrap_err(),
            RoleError::Wire(WireError::Truncated)
        );
        let (c, _) = OfferSent::start(roles(), Side::Client, exporters(1), |_| true).unwrap();
        let proof = RoleMessage::new(MessageType::Proof, vec![])
            .unwrap()
            .encode();
        assert_eq!(
            c.receive_offer(&proof).unwrap_err(),
            RoleError::Wire(WireError::UnexpectedMessageType)
        );
        let (c, c_offer) = OfferSent::start(roles(), Side::Client, exporters(1), |_| true).unwrap();
        let (s, s_offer) = OfferSent::start(roles(), Side::Server, exporters(1), |_| true).unwrap();
        let _ = c.receive_offer(&s_offer).unwrap();
        let (s, _) = s.receive_offer(&c_offer).unwrap();
        let out = s.receive_proof(&c_offer);
        assert_eq!(out.failed_password_attempts(), &[name("payment")]);
        assert_eq!(
            out.finish(),
            Err(RoleError::Wire(WireError::UnexpectedMessageType))
        );
    }

    #[test]
    fn config_rules() {
        assert_eq!(
            RoleConfig::new(vec![key_role("a", 1), key_role("a", 2)], false).unwrap_err(),
            crate::ConfigError::DuplicateRole
        );
        assert_eq!(
            RoleConfig::new(
                vec![key_role("a", 1).with_prove(false).with_accept(false)],
                false
            )
            .unwrap_err(),
            crate::ConfigError::UselessRole
        );
        assert!(RoleKey::new(&[0; 31]).is_err());
        assert!(RolePassword::new(b"").is_err());
        let many = (0..=crate::wire::MAX_ENTRIES)
            .map(|i| key_role(&format!("r{i}"), 1))
            .collect();
        assert_eq!(
            RoleConfig::new(many, false).unwrap_err(),
            crate::ConfigError::TooManyRoles
        );
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// One role slot: which kind, whether each side has it, the flags, and whether the
        /// secrets match.
        #[derive(Debug, Clone)]
        struct Slot {
            password: bool,
            client_has: bool,
            server_has: bool,
            client_prove: bool,
            server_accept: bool,
            same_secret: bool,
        }

        fn slot() -> impl Strategy<Value = Slot> {
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(
                    |(
                        password,
                        client_has,
                        server_has,
                        client_prove,
                        server_accept,
                        same_secret,
                    )| Slot {
                        password,
                        client_has,
                        server_has,
                        client_prove,
                        server_accept,
                        same_secret,
                    },
                )
        }

        fn make(
            name_: &str,
            password: bool,
            secret: u8,
            prove: bool,
            accept: bool,
        ) -> Option<Role> {
            if !prove && !accept {
                return None;
            }
            let r = if password {
                pw_role(name_, &format!("pw{secret}"))
            } else {
                key_role(name_, secret)
            };
            Some(r.with_prove(prove).with_accept(accept))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]
            /// The server verifies exactly the roles that both sides hold with the same secret,
            /// that the server accepts and that the client proves (password roles: that the
            /// client holds at all, since they are mutual).
            #[test]
            fn prop_verified_set_is_exact(slots in proptest::collection::vec(slot(), 1..6)) {
                let mut client = Vec::new();
                let mut server = Vec::new();
                let mut expected = Vec::new();
                for (i, s) in slots.iter().enumerate() {
                    let n = format!("r{i}");
                    let server_secret = if s.same_secret { 1 } else { 2 };
                    let c = s.client_has.then(|| make(&n, s.password, 1, s.client_prove, true)).flatten();
                    let sv = s.server_has.then(|| make(&n, s.password, server_secret, true, s.server_accept)).flatten();
                    let client_proves = s.password || s.client_prove;
                    if c.is_some() && sv.is_some() && s.same_secret && s.server_accept && client_proves {
                        expected.push(n.clone());
                    }
                    client.extend(c);
                    server.extend(sv);
                }
                let anon = |roles| Arc::new(RoleConfig::new(roles, true).unwrap());
                let (_, s_out) = run(anon(client), anon(server));
                let got: Vec<String> = s_out.finish().unwrap().iter().map(|r| r.to_string()).collect();
                prop_assert_eq!(got, expected);
            }
        }
    }
}
