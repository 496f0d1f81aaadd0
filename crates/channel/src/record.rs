//! Message mode: AEAD records with explicit sequence numbers, for transports that lose,
//! duplicate and reorder (UDP, message buses, several transports at once).
//!
//! ```text
//! record := header (u64 BE, 8 bytes) ‖ ChaCha20-Poly1305(key_epoch, nonce, aad = header, plaintext) ‖ tag (16)
//! header := phase << 63 | seq                 (phase: which handshake's keys, 0 or 1)
//! nonce  := iv_epoch ⊕ (0^32 ‖ seq)          epoch := seq >> 24
//! key_epoch, iv_epoch := HKDF-SHA256(salt = "daas channel message v1", ikm = S_dir,
//!                                    info = label ‖ u64be(epoch))
//! S_dir  := exporter("EXPORTER-daas-message", context = [dir], 32)
//! ```
//!
//! Limits (see docs/channel.md for why):
//! * key update every [`RECORDS_PER_KEY`] = 2^24 records (a new epoch key; below AES-GCM's
//!   2^24.5 confidentiality limit and far below ChaCha20-Poly1305's, so the rule holds for either
//!   AEAD), derived directly from `S_dir` so a receiver can open any epoch in O(1);
//! * a hard stop at sequence [`REJECT_AFTER_SEQ`] = 2^40: the sender refuses to seal, the
//!   receiver refuses before decrypting;
//! * at most [`MAX_AUTH_FAILURES`] = 2^36 records that fail authentication (the RFC 9147
//!   integrity limit for ChaCha20-Poly1305), after which every record is refused;
//! * time: re-handshake after [`REKEY_AFTER_TIME`] (120 s), keys refused after
//!   [`REJECT_AFTER_TIME`] (180 s), which also bounds forward secrecy.
//!
//! The replay window ([`crate::window`]) is consulted before decryption and marked after it.
//! The key phase bit lets a receiver holding the keys of two successive handshakes (while a
//! re-handshake switches traffic over, [`crate::rekey`]) pick the right ones without trial
//! decryption; it is authenticated (part of the AAD).

use std::fmt;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use daas_crypto::prf::hkdf_sha256;
use zeroize::Zeroizing;

use crate::error::RecordError;
use crate::exchange::{Direction, Side};
use crate::labels::{MESSAGE_IV_INFO, MESSAGE_KEY_INFO, MESSAGE_SALT};
use crate::window::ReplayWindow;

/// Length of the explicit sequence number.
pub const SEQ_LEN: usize = 8;
/// Length of the AEAD tag.
pub const AEAD_TAG_LEN: usize = 16;
/// Bytes a record adds to its plaintext.
pub const RECORD_OVERHEAD: usize = SEQ_LEN + AEAD_TAG_LEN;
/// Largest record (fits one UDP datagram over IPv4 and IPv6 without jumbograms).
pub const MAX_RECORD_LEN: usize = 65_507;
/// Largest plaintext of one record.
pub const MAX_PLAINTEXT_LEN: usize = MAX_RECORD_LEN - RECORD_OVERHEAD;
/// log2 of the records per key epoch.
pub const EPOCH_BITS: u32 = 24;
/// Records sealed under one key before the next epoch's key is used (key update).
pub const RECORDS_PER_KEY: u64 = 1 << EPOCH_BITS;
/// First sequence number that is never sealed nor opened.
pub const REJECT_AFTER_SEQ: u64 = 1 << 40;
/// Records failing authentication after which the opener refuses everything.
pub const MAX_AUTH_FAILURES: u64 = 1 << 36;
/// Age of the keys after which the application should run a new handshake.
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
/// Age of the keys after which records are neither sealed nor opened.
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
/// The header bit that carries the key phase.
pub const KEY_PHASE_BIT: u64 = 1 << 63;
/// Length of each per-direction message secret taken from the TLS exporter.
pub const MESSAGE_SECRET_LEN: usize = 32;

/// The per-direction secrets `S_dir = exporter("EXPORTER-daas-message", [dir], 32)` of one
/// TLS connection. Zeroized on drop.
pub struct MessageSecrets {
    c2s: Zeroizing<[u8; MESSAGE_SECRET_LEN]>,
    s2c: Zeroizing<[u8; MESSAGE_SECRET_LEN]>,
}

impl MessageSecrets {
    /// Wraps the client-to-server and server-to-client secrets.
    #[must_use]
    pub fn new(c2s: [u8; MESSAGE_SECRET_LEN], s2c: [u8; MESSAGE_SECRET_LEN]) -> Self {
        Self {
            c2s: Zeroizing::new(c2s),
            s2c: Zeroizing::new(s2c),
        }
    }

    fn take(&self, dir: Direction) -> Zeroizing<[u8; MESSAGE_SECRET_LEN]> {
        match dir {
            Direction::ClientToServer => self.c2s.clone(),
            Direction::ServerToClient => self.s2c.clone(),
        }
    }
}

impl fmt::Debug for MessageSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageSecrets(..)")
    }
}

/// Which of two successive handshakes' keys a record uses (the top header bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyPhase {
    /// Bit 0: the first handshake, and every second one after it.
    #[default]
    Zero,
    /// Bit 1.
    One,
}

impl KeyPhase {
    /// The other phase (the next handshake's).
    #[must_use]
    pub const fn next(self) -> Self {
        match self {
            Self::Zero => Self::One,
            Self::One => Self::Zero,
        }
    }

    const fn bits(self) -> u64 {
        match self {
            Self::Zero => 0,
            Self::One => KEY_PHASE_BIT,
        }
    }

    /// The phase a record claims (unauthenticated until it opens); `None` if it is shorter
    /// than its header.
    #[must_use]
    pub fn of_record(record: &[u8]) -> Option<Self> {
        let first = *record.first()?;
        if record.len() < SEQ_LEN {
            return None;
        }
        Some(if first & 0x80 == 0 {
            Self::Zero
        } else {
            Self::One
        })
    }
}

/// The sealer for this side's sending direction and the opener for the peer's, both created
/// at `now` (the key age counts from here), in key phase 0.
///
/// # Errors
/// [`RecordError::Crypto`] if key derivation fails.
pub fn message_keys(
    side: Side,
    secrets: &MessageSecrets,
    now: Instant,
) -> Result<(Sealer, Opener), RecordError> {
    message_keys_in_phase(side, secrets, now, KeyPhase::Zero)
}

/// [`message_keys`] for the given key phase (a re-handshake's keys use the other phase than
/// the keys they replace).
///
/// # Errors
/// [`RecordError::Crypto`] if key derivation fails.
pub fn message_keys_in_phase(
    side: Side,
    secrets: &MessageSecrets,
    now: Instant,
    phase: KeyPhase,
) -> Result<(Sealer, Opener), RecordError> {
    let send = secrets.take(side.sending());
    let recv = secrets.take(side.receiving());
    let sealer = Sealer {
        key: EpochKey::derive(&send, 0)?,
        secret: send,
        next_seq: 0,
        created: now,
        phase,
    };
    let opener = Opener {
        current: EpochKey::derive(&recv, 0)?,
        previous: None,
        secret: recv,
        window: ReplayWindow::new(),
        auth_failures: 0,
        created: now,
        phase,
    };
    Ok((sealer, opener))
}

struct EpochKey {
    epoch: u64,
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
}

impl EpochKey {
    fn derive(secret: &[u8; MESSAGE_SECRET_LEN], epoch: u64) -> Result<Self, RecordError> {
        let mut info = MESSAGE_KEY_INFO.to_vec();
        info.extend_from_slice(&epoch.to_be_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        hkdf_sha256(MESSAGE_SALT, secret, &info, key.as_mut_slice())
            .map_err(|_| RecordError::Crypto("hkdf"))?;
        let mut info = MESSAGE_IV_INFO.to_vec();
        info.extend_from_slice(&epoch.to_be_bytes());
        let mut iv = [0u8; NONCE_LEN];
        hkdf_sha256(MESSAGE_SALT, secret, &info, &mut iv)
            .map_err(|_| RecordError::Crypto("hkdf"))?;
        let key = UnboundKey::new(&CHACHA20_POLY1305, key.as_slice())
            .map_err(|_| RecordError::Crypto("aead key"))?;
        Ok(Self {
            epoch,
            key: LessSafeKey::new(key),
            iv,
        })
    }

    fn nonce(&self, seq: u64) -> Nonce {
        let mut n = self.iv;
        for (b, s) in n[NONCE_LEN - 8..].iter_mut().zip(seq.to_be_bytes()) {
            *b ^= s;
        }
        Nonce::assume_unique_for_key(n)
    }
}

const fn epoch_of(seq: u64) -> u64 {
    seq >> EPOCH_BITS
}

/// Seals records in this side's sending direction.
pub struct Sealer {
    secret: Zeroizing<[u8; MESSAGE_SECRET_LEN]>,
    key: EpochKey,
    next_seq: u64,
    created: Instant,
    phase: KeyPhase,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("next_seq", &self.next_seq)
            .field("epoch", &self.key.epoch)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// The key phase of the records it seals.
    #[must_use]
    pub const fn phase(&self) -> KeyPhase {
        self.phase
    }

    /// When the keys were created (their age counts from here).
    #[must_use]
    pub const fn created(&self) -> Instant {
        self.created
    }

    /// The sequence number of the next record.
    #[must_use]
    pub const fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether the application should replace these keys by a new handshake now (120 s of age,
    /// or within one key epoch of the sequence limit).
    #[must_use]
    pub fn needs_rehandshake(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.created) >= REKEY_AFTER_TIME
            || self.next_seq >= REJECT_AFTER_SEQ - RECORDS_PER_KEY
    }

    /// Whether the sequence numbers are within one key epoch of the hard limit.
    pub(crate) const fn needs_rehandshake_by_sequence(&self) -> bool {
        self.next_seq >= REJECT_AFTER_SEQ - RECORDS_PER_KEY
    }

    /// Seals `plaintext` into `out` (cleared first) as the next record; returns its sequence
    /// number.
    ///
    /// # Errors
    /// [`RecordError::PlaintextTooLarge`], [`RecordError::SequenceExhausted`],
    /// [`RecordError::Expired`], [`RecordError::Crypto`].
    pub fn seal(
        &mut self,
        now: Instant,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<u64, RecordError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(RecordError::PlaintextTooLarge {
                max: MAX_PLAINTEXT_LEN,
            });
        }
        if now.saturating_duration_since(self.created) >= REJECT_AFTER_TIME {
            return Err(RecordError::Expired);
        }
        let seq = self.next_seq;
        if seq >= REJECT_AFTER_SEQ {
            return Err(RecordError::SequenceExhausted);
        }
        if epoch_of(seq) != self.key.epoch {
            // Key update: the old epoch's key is dropped here.
            self.key = EpochKey::derive(&self.secret, epoch_of(seq))?;
        }
        let header = (seq | self.phase.bits()).to_be_bytes();
        out.clear();
        out.reserve(plaintext.len() + RECORD_OVERHEAD);
        out.extend_from_slice(&header);
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .key
            .seal_in_place_separate_tag(self.key.nonce(seq), Aad::from(header), &mut out[SEQ_LEN..])
            .map_err(|_| RecordError::Crypto("aead seal"))?;
        out.extend_from_slice(tag.as_ref());
        self.next_seq = seq + 1;
        Ok(seq)
    }

    #[cfg(test)]
    pub(crate) const fn set_next_seq(&mut self, seq: u64) {
        self.next_seq = seq;
    }
}

/// Opens records of the peer's sending direction.
pub struct Opener {
    secret: Zeroizing<[u8; MESSAGE_SECRET_LEN]>,
    current: EpochKey,
    previous: Option<EpochKey>,
    window: ReplayWindow,
    auth_failures: u64,
    created: Instant,
    phase: KeyPhase,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("window", &self.window)
            .field("epoch", &self.current.epoch)
            .field("auth_failures", &self.auth_failures)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// The key phase of the records it opens.
    #[must_use]
    pub const fn phase(&self) -> KeyPhase {
        self.phase
    }

    /// Whether the keys are past [`REJECT_AFTER_TIME`] at `now` (every record is refused).
    #[must_use]
    pub fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.created) >= REJECT_AFTER_TIME
    }

    /// Records that failed authentication so far.
    #[must_use]
    pub const fn auth_failures(&self) -> u64 {
        self.auth_failures
    }

    /// Opens `record` in place; returns its sequence number and plaintext. Each sequence number
    /// is accepted at most once; records older than the window are refused.
    ///
    /// Order of checks: size, key age, failure budget, key phase, sequence limit, replay window
    /// (all before any decryption), then authentication, and only then the window is marked.
    ///
    /// # Errors
    /// Any peer-fault [`RecordError`], or [`RecordError::Expired`] once the keys are too old.
    pub fn open<'a>(
        &mut self,
        now: Instant,
        record: &'a mut [u8],
    ) -> Result<(u64, &'a [u8]), RecordError> {
        if record.len() < RECORD_OVERHEAD {
            return Err(RecordError::Truncated);
        }
        if record.len() > MAX_RECORD_LEN {
            return Err(RecordError::TooLarge {
                max: MAX_RECORD_LEN,
            });
        }
        if now.saturating_duration_since(self.created) >= REJECT_AFTER_TIME {
            return Err(RecordError::Expired);
        }
        if self.auth_failures >= MAX_AUTH_FAILURES {
            return Err(RecordError::TooManyFailures);
        }
        let mut header = [0u8; SEQ_LEN];
        header.copy_from_slice(&record[..SEQ_LEN]);
        let raw = u64::from_be_bytes(header);
        if raw & KEY_PHASE_BIT != self.phase.bits() {
            return Err(RecordError::WrongKeyPhase);
        }
        let seq = raw & !KEY_PHASE_BIT;
        if seq >= REJECT_AFTER_SEQ {
            return Err(RecordError::SequenceLimit);
        }
        self.window.check(seq)?;

        let epoch = epoch_of(seq);
        let in_cache =
            epoch == self.current.epoch || self.previous.as_ref().is_some_and(|p| p.epoch == epoch);
        let fresh = if in_cache {
            None
        } else {
            Some(EpochKey::derive(&self.secret, epoch)?)
        };
        let key = match (&fresh, &self.previous) {
            (Some(f), _) => f,
            (None, Some(p)) if p.epoch == epoch => p,
            (None, _) => &self.current,
        };
        let opened =
            key.key
                .open_in_place(key.nonce(seq), Aad::from(header), &mut record[SEQ_LEN..]);
        let Ok(plaintext) = opened else {
            self.auth_failures += 1;
            return Err(RecordError::BadRecord);
        };
        let len = plaintext.len();
        self.window.mark(seq)?;
        if let Some(f) = fresh
            && epoch > self.current.epoch
        {
            // The peer moved to a new key epoch: keep the last one for records still in flight.
            self.previous = Some(std::mem::replace(&mut self.current, f));
        }
        Ok((seq, &record[SEQ_LEN..SEQ_LEN + len]))
    }

    #[cfg(test)]
    pub(crate) const fn set_auth_failures(&mut self, n: u64) {
        self.auth_failures = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::WINDOW_BITS;
    use proptest::prelude::*;

    fn secrets() -> MessageSecrets {
        MessageSecrets::new([1; 32], [2; 32])
    }

    fn pair(now: Instant) -> (Sealer, Opener, Sealer, Opener) {
        let (cs, co) = message_keys(Side::Client, &secrets(), now).unwrap();
        let (ss, so) = message_keys(Side::Server, &secrets(), now).unwrap();
        (cs, co, ss, so)
    }

    fn seal(s: &mut Sealer, now: Instant, msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        s.seal(now, msg, &mut out).unwrap();
        out
    }

    #[test]
    fn roundtrip_both_directions() {
        let t = Instant::now();
        let (mut cs, mut co, mut ss, mut so) = pair(t);
        let mut r = seal(&mut cs, t, b"hello");
        assert_eq!(r.len(), 5 + RECORD_OVERHEAD);
        assert_eq!(&r[..8], &0u64.to_be_bytes());
        let (seq, pt) = so.open(t, &mut r).unwrap();
        assert_eq!((seq, pt), (0, &b"hello"[..]));
        let mut r = seal(&mut ss, t, b"");
        assert_eq!(co.open(t, &mut r).unwrap(), (0, &b""[..]));
    }

    #[test]
    fn reflected_record_fails() {
        let t = Instant::now();
        let (mut cs, mut co, _, _) = pair(t);
        let mut r = seal(&mut cs, t, b"to the server");
        assert_eq!(co.open(t, &mut r), Err(RecordError::BadRecord));
        assert_eq!(co.auth_failures(), 1);
    }

    #[test]
    fn duplicate_is_refused_before_decryption() {
        let t = Instant::now();
        let (mut cs, _, _, mut so) = pair(t);
        let r = seal(&mut cs, t, b"once");
        so.open(t, &mut r.clone()).unwrap();
        assert_eq!(so.open(t, &mut r.clone()), Err(RecordError::Duplicate));
        // A forged record under a used number is refused as a duplicate, not counted as a
        // forgery: no AEAD work was done.
        let mut forged = r.clone();
        forged[10] ^= 1;
        assert_eq!(so.open(t, &mut forged), Err(RecordError::Duplicate));
        assert_eq!(so.auth_failures(), 0);
    }

    #[test]
    fn bit_flips_anywhere_fail_and_do_not_mark() {
        let t = Instant::now();
        let (mut cs, _, _, mut so) = pair(t);
        let r = seal(&mut cs, t, b"integrity");
        for i in 0..r.len() {
            let mut f = r.clone();
            f[i] ^= 0x80;
            assert!(so.open(t, &mut f).is_err(), "flip at {i}");
        }
        // The genuine record still opens: failures marked nothing.
        assert!(so.open(t, &mut r.clone()).is_ok());
    }

    #[test]
    fn forged_high_sequence_does_not_move_the_window() {
        let t = Instant::now();
        let (mut cs, _, _, mut so) = pair(t);
        let records: Vec<_> = (0..3).map(|_| seal(&mut cs, t, b"x")).collect();
        let mut forged = records[0].clone();
        forged[..8].copy_from_slice(&(1u64 << 30).to_be_bytes());
        assert_eq!(so.open(t, &mut forged), Err(RecordError::BadRecord));
        for r in records {
            so.open(t, &mut r.clone()).unwrap();
        }
    }

    #[test]
    fn old_and_future_jump() {
        let t = Instant::now();
        let (mut cs, _, _, mut so) = pair(t);
        let first = seal(&mut cs, t, b"0");
        cs.set_next_seq(WINDOW_BITS + 10);
        let far = seal(&mut cs, t, b"far");
        // A jump larger than the window is accepted...
        assert_eq!(so.open(t, &mut far.clone()).unwrap().0, WINDOW_BITS + 10);
        // ...and everything more than the window behind it is now too old.
        assert_eq!(so.open(t, &mut first.clone()), Err(RecordError::TooOld));
        // The oldest number still inside the window opens.
        cs.set_next_seq(11);
        let edge = seal(&mut cs, t, b"edge");
        assert_eq!(so.open(t, &mut edge.clone()).unwrap().0, 11);
        cs.set_next_seq(10);
        let out = seal(&mut cs, t, b"out");
        assert_eq!(so.open(t, &mut out.clone()), Err(RecordError::TooOld));
    }

    #[test]
    fn sequence_limit_edges() {
        let t = Instant::now();
        let (mut cs, _, _, mut so) = pair(t);
        cs.set_next_seq(REJECT_AFTER_SEQ - 1);
        assert!(cs.needs_rehandshake(t));
        let last = seal(&mut cs, t, b"last");
        assert_eq!(
            so.open(t, &mut last.clone()).unwrap().0,
            REJECT_AFTER_SEQ - 1
        );
        let mut out = Vec::new();
        assert_eq!(
            cs.seal(t, b"x", &mut out),
            Err(RecordError::SequenceExhausted)
        );
        // A record claiming a number at or past the limit is refused before decryption.
        let mut beyond = last.clone();
        beyond[..8].copy_from_slice(&REJECT_AFTER_SEQ.to_be_bytes());
        assert_eq!(so.open(t, &mut beyond), Err(RecordError::SequenceLimit));
        // The largest number of this phase; u64::MAX claims the other key phase.
        beyond[..8].copy_from_slice(&(!KEY_PHASE_BIT).to_be_bytes());
        assert_eq!(so.open(t, &mut beyond), Err(RecordError::SequenceLimit));
        beyond[..8].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(so.open(t, &mut beyond), Err(RecordError::WrongKeyPhase));
        assert_eq!(so.auth_failures(), 0);
    }

    #[test]
    fn key_update_across_epochs() {
        let t = Instant::now();
        let (mut cs, _, _, mut so) = pair(t);
        cs.set_next_seq(RECORDS_PER_KEY - 2);
        let recs: Vec<_> = (0..4).map(|_| seal(&mut cs, t, b"k")).collect();
        // A record relabelled with a number of the previous epoch fails (the sequence number
        // is authenticated, and the epochs have different keys).
        let mut moved = recs[2].clone();
        moved[..8].copy_from_slice(&(RECORDS_PER_KEY - 3).to_be_bytes());
        assert_eq!(so.open(t, &mut moved), Err(RecordError::BadRecord));
        // Out of order across the boundary: new epoch first, then the old one.
        for i in [3, 0, 2, 1] {
            let mut r = recs[i].clone();
            let (seq, pt) = so.open(t, &mut r).unwrap();
            assert_eq!(seq, RECORDS_PER_KEY - 2 + i as u64);
            assert_eq!(pt, b"k");
        }
    }

    #[test]
    fn size_limits() {
        let t = Instant::now();
        let (mut cs, _, _, mut so) = pair(t);
        let mut out = Vec::new();
        assert_eq!(
            cs.seal(t, &vec![0; MAX_PLAINTEXT_LEN + 1], &mut out),
            Err(RecordError::PlaintextTooLarge {
                max: MAX_PLAINTEXT_LEN
            })
        );
        let big = seal(&mut cs, t, &vec![7; MAX_PLAINTEXT_LEN]);
        assert_eq!(big.len(), MAX_RECORD_LEN);
        assert!(so.open(t, &mut big.clone()).is_ok());
        let mut over = vec![0; MAX_RECORD_LEN + 1];
        assert_eq!(
            so.open(t, &mut over),
            Err(RecordError::TooLarge {
                max: MAX_RECORD_LEN
            })
        );
        for len in 0..RECORD_OVERHEAD {
            assert_eq!(so.open(t, &mut vec![0; len]), Err(RecordError::Truncated));
        }
    }

    #[test]
    fn time_limits() {
        let t = Instant::now();
        let (mut cs, _, _, mut so) = pair(t);
        let r = seal(&mut cs, t, b"x");
        assert!(!cs.needs_rehandshake(t + Duration::from_secs(119)));
        assert!(cs.needs_rehandshake(t + REKEY_AFTER_TIME));
        let late = t + REJECT_AFTER_TIME;
        let mut out = Vec::new();
        assert_eq!(cs.seal(late, b"x", &mut out), Err(RecordError::Expired));
        assert_eq!(so.open(late, &mut r.clone()), Err(RecordError::Expired));
    }

    #[test]
    fn failure_budget() {
        let t = Instant::now();
        let (mut cs, _, _, mut so) = pair(t);
        let r = seal(&mut cs, t, b"x");
        so.set_auth_failures(MAX_AUTH_FAILURES - 1);
        let mut bad = r.clone();
        bad[9] ^= 1;
        assert_eq!(so.open(t, &mut bad), Err(RecordError::BadRecord));
        assert_eq!(
            so.open(t, &mut r.clone()),
            Err(RecordError::TooManyFailures)
        );
    }

    #[test]
    fn other_session_keys_fail() {
        let t = Instant::now();
        let (mut cs, _, _, _) = pair(t);
        let (_, mut other) =
            message_keys(Side::Server, &MessageSecrets::new([3; 32], [2; 32]), t).unwrap();
        let r = seal(&mut cs, t, b"x");
        assert_eq!(other.open(t, &mut r.clone()), Err(RecordError::BadRecord));
    }

    proptest! {
        /// Any order of N records, each delivered twice, opens every record exactly once.
        #[test]
        fn prop_permutation_within_window(
            order in (1usize..300).prop_flat_map(|n| Just((0..2 * n).map(|i| i % n).collect::<Vec<_>>()).prop_shuffle()),
        ) {
            let t = Instant::now();
            let (mut cs, _, _, mut so) = pair(t);
            let n = order.len() / 2;
            let recs: Vec<_> = (0..n).map(|i| seal(&mut cs, t, &i.to_be_bytes())).collect();
            let mut opened = vec![0u32; n];
            for i in order {
                match so.open(t, &mut recs[i].clone()) {
                    Ok((seq, pt)) => {
                        prop_assert_eq!(seq, i as u64);
                        prop_assert_eq!(pt, &i.to_be_bytes()[..]);
                        opened[i] += 1;
                    }
                    Err(e) => prop_assert_eq!(e, RecordError::Duplicate),
                }
            }
            prop_assert!(opened.iter().all(|&c| c == 1));
        }
    }
}
