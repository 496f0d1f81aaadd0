//! The re-handshake driver of message mode (sans-I/O, clock injected).
//!
//! Message-mode keys come from one TLS connection's exporter, so forward secrecy needs a new
//! TLS handshake now and then (DESIGN.md §7: "every 120 s of activity"). [`MessageSession`]
//! holds the current keys and says when a new handshake is due; the I/O layer runs it (a new
//! [`crate::connect`]/[`crate::accept`], whose roles it must check again) and hands the new
//! secrets to [`MessageSession::install`].
//!
//! Rules (WireGuard's timers, on TLS):
//!
//! * **due**: the keys are at least [`REKEY_AFTER_TIME`] (120 s) old *and* a record was sealed
//!   or opened since they reached that age. An idle channel never handshakes; its keys simply
//!   expire, and the first record after that makes a handshake due.
//! * [`MessageSession::poll`] answers [`RekeyAction::StartHandshake`] once when due, and again
//!   every [`REHANDSHAKE_RETRY`] until new keys are installed (a lost or failed handshake).
//! * **hard limits** (enforced by [`crate::record`] itself): no record sealed or opened under
//!   keys older than [`REJECT_AFTER_TIME`] (180 s), nor past sequence 2^40.
//! * **switch-over**: new keys use the other key phase; the previous keys' opener is kept for
//!   records still in flight until it expires by itself, and every record is routed to the
//!   opener of its (authenticated) phase bit, so no trial decryption happens. A record of the
//!   next phase that arrives before this side installed the new keys is refused
//!   ([`RecordError::WrongKeyPhase`]) like a lost datagram.

use std::fmt;
use std::time::{Duration, Instant};

use crate::error::RecordError;
use crate::exchange::Side;
use crate::record::{
    KeyPhase, MessageSecrets, Opener, REJECT_AFTER_TIME, REKEY_AFTER_TIME, Sealer,
    message_keys_in_phase,
};

/// How long to wait for a started re-handshake before asking for another.
pub const REHANDSHAKE_RETRY: Duration = Duration::from_secs(5);

/// What the I/O layer should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyAction {
    /// Nothing.
    Nothing,
    /// Open a new TLS channel to the same peer (roles verified again) and [`install`] its
    /// message secrets.
    ///
    /// [`install`]: MessageSession::install
    StartHandshake,
}

/// Message-mode keys of one peer across re-handshakes.
pub struct MessageSession {
    side: Side,
    sealer: Sealer,
    opener: Opener,
    previous: Option<Opener>,
    /// Last seal attempt or successful open.
    last_activity: Option<Instant>,
    /// When [`RekeyAction::StartHandshake`] was last answered for these keys.
    requested: Option<Instant>,
}

impl fmt::Debug for MessageSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageSession")
            .field("side", &self.side)
            .field("phase", &self.sealer.phase())
            .field("has_previous", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

impl MessageSession {
    /// Keys of the first handshake (phase 0), created at `now`.
    ///
    /// # Errors
    /// [`RecordError::Crypto`] if key derivation fails.
    pub fn new(side: Side, secrets: &MessageSecrets, now: Instant) -> Result<Self, RecordError> {
        let (sealer, opener) = message_keys_in_phase(side, secrets, now, KeyPhase::Zero)?;
        Ok(Self {
            side,
            sealer,
            opener,
            previous: None,
            last_activity: None,
            requested: None,
        })
    }

    /// The key phase records are sealed in.
    #[must_use]
    pub const fn phase(&self) -> KeyPhase {
        self.sealer.phase()
    }

    /// Whether a new handshake is due at `now` (see the module rules), regardless of whether
    /// one was already requested.
    #[must_use]
    pub fn rehandshake_due(&self, now: Instant) -> bool {
        let rekey_at = self.sealer.created() + REKEY_AFTER_TIME;
        let active = self.last_activity.is_some_and(|t| t >= rekey_at);
        (now >= rekey_at && active) || self.sealer.needs_rehandshake_by_sequence()
    }

    /// What to do now: [`RekeyAction::StartHandshake`] once when a handshake is due, then again
    /// every [`REHANDSHAKE_RETRY`] until [`Self::install`].
    pub fn poll(&mut self, now: Instant) -> RekeyAction {
        if self.previous.as_ref().is_some_and(|p| p.expired(now)) {
            // Drop (and zeroize) keys that can no longer open anything.
            self.previous = None;
        }
        if !self.rehandshake_due(now) {
            return RekeyAction::Nothing;
        }
        match self.requested {
            Some(t) if now.saturating_duration_since(t) < REHANDSHAKE_RETRY => RekeyAction::Nothing,
            _ => {
                self.requested = Some(now);
                RekeyAction::StartHandshake
            }
        }
    }

    /// Seals `plaintext` under the current keys (see [`Sealer::seal`]). Counts as activity
    /// even when refused, so a channel whose keys expired while idle asks for a handshake.
    ///
    /// # Errors
    /// [`RecordError::Expired`] once the keys are [`REJECT_AFTER_TIME`] old, and every other
    /// [`Sealer::seal`] error.
    pub fn seal(
        &mut self,
        now: Instant,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<u64, RecordError> {
        self.last_activity = Some(now);
        self.sealer.seal(now, plaintext, out)
    }

    /// Opens `record` with the opener of its key phase: the current keys, or the previous
    /// handshake's while they live. Only a record that opens counts as activity (a forger
    /// cannot make this side handshake).
    ///
    /// # Errors
    /// [`RecordError::WrongKeyPhase`] for a phase this side holds no keys for, and every
    /// [`Opener::open`] error.
    pub fn open<'a>(
        &mut self,
        now: Instant,
        record: &'a mut [u8],
    ) -> Result<(u64, &'a [u8]), RecordError> {
        let phase = KeyPhase::of_record(record).ok_or(RecordError::Truncated)?;
        let opener = if phase == self.opener.phase() {
            &mut self.opener
        } else {
            self.previous.as_mut().ok_or(RecordError::WrongKeyPhase)?
        };
        let opened = opener.open(now, record)?;
        self.last_activity = Some(now);
        Ok(opened)
    }

    /// Switches to the keys of a new handshake with the same peer (the next key phase). The
    /// current opener stays for records in flight until [`REJECT_AFTER_TIME`] after its own
    /// creation; the current sealer is dropped (zeroized) at once.
    ///
    /// # Errors
    /// [`RecordError::Crypto`] if key derivation fails (the old keys stay in place).
    pub fn install(&mut self, secrets: &MessageSecrets, now: Instant) -> Result<(), RecordError> {
        let phase = self.sealer.phase().next();
        let (sealer, opener) = message_keys_in_phase(self.side, secrets, now, phase)?;
        self.sealer = sealer;
        let old = std::mem::replace(&mut self.opener, opener);
        self.previous = (!old.expired(now)).then_some(old);
        self.requested = None;
        Ok(())
    }

    /// When the current keys stop sealing and opening, unless new ones are installed.
    #[must_use]
    pub fn hard_deadline(&self) -> Instant {
        self.sealer.created() + REJECT_AFTER_TIME
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(seed: u8) -> MessageSecrets {
        MessageSecrets::new([seed; 32], [seed ^ 0x33; 32])
    }

    fn pair(t0: Instant) -> (MessageSession, MessageSession) {
        (
            MessageSession::new(Side::Client, &secrets(1), t0).unwrap(),
            MessageSession::new(Side::Server, &secrets(1), t0).unwrap(),
        )
    }

    fn seal(s: &mut MessageSession, now: Instant, msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        s.seal(now, msg, &mut out).unwrap();
        out
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn due_after_120_s_of_activity_not_when_idle() {
        let t0 = Instant::now();
        let (mut c, mut s) = pair(t0);
        // Active for 119 s: nothing due.
        for t in 0..120 {
            let mut r = seal(&mut c, t0 + secs(t), b"x");
            s.open(t0 + secs(t), &mut r).unwrap();
            assert_eq!(c.poll(t0 + secs(t)), RekeyAction::Nothing, "t={t}");
            assert_eq!(s.poll(t0 + secs(t)), RekeyAction::Nothing, "t={t}");
        }
        // At 120 s, the first record makes it due on both sides, once.
        let mut r = seal(&mut c, t0 + secs(120), b"x");
        assert_eq!(c.poll(t0 + secs(120)), RekeyAction::StartHandshake);
        assert_eq!(c.poll(t0 + secs(121)), RekeyAction::Nothing);
        assert_eq!(s.poll(t0 + secs(120)), RekeyAction::Nothing);
        s.open(t0 + secs(120), &mut r).unwrap();
        assert_eq!(s.poll(t0 + secs(120)), RekeyAction::StartHandshake);
        // Asked again after the retry interval while no new keys came.
        assert_eq!(
            c.poll(t0 + secs(120) + REHANDSHAKE_RETRY - Duration::from_millis(1)),
            RekeyAction::Nothing
        );
        assert_eq!(
            c.poll(t0 + secs(120) + REHANDSHAKE_RETRY),
            RekeyAction::StartHandshake
        );

        // An idle pair: keys 150 s old, no record since 100 s: nothing due.
        let (mut c, mut s) = pair(t0);
        let mut r = seal(&mut c, t0 + secs(100), b"x");
        s.open(t0 + secs(100), &mut r).unwrap();
        assert_eq!(c.poll(t0 + secs(150)), RekeyAction::Nothing);
        assert!(!s.rehandshake_due(t0 + secs(150)));
        // A forged record does not count as activity.
        let mut forged = seal(&mut c, t0 + secs(100), b"y");
        forged[10] ^= 1;
        assert_eq!(
            s.open(t0 + secs(151), &mut forged),
            Err(RecordError::BadRecord)
        );
        assert_eq!(s.poll(t0 + secs(151)), RekeyAction::Nothing);
    }

    #[test]
    fn hard_deadline_refuses_records_without_a_new_handshake() {
        let t0 = Instant::now();
        let (mut c, mut s) = pair(t0);
        assert_eq!(c.hard_deadline(), t0 + REJECT_AFTER_TIME);
        let mut late = seal(&mut c, t0 + secs(179), b"x");
        let mut out = Vec::new();
        assert_eq!(
            c.seal(t0 + secs(180), b"x", &mut out),
            Err(RecordError::Expired)
        );
        assert_eq!(s.open(t0 + secs(180), &mut late), Err(RecordError::Expired));
        // The refused seal was activity: the idle-expired channel asks for a handshake.
        assert_eq!(c.poll(t0 + secs(180)), RekeyAction::StartHandshake);
    }

    #[test]
    fn install_switches_phase_and_keeps_old_keys_for_records_in_flight() {
        let t0 = Instant::now();
        let (mut c, mut s) = pair(t0);
        let t = t0 + secs(130);
        let mut in_flight = seal(&mut c, t, b"old");
        assert_eq!(c.poll(t), RekeyAction::StartHandshake);
        // The new handshake's secrets are installed by both sides.
        c.install(&secrets(2), t).unwrap();
        s.install(&secrets(2), t).unwrap();
        assert_eq!(c.phase(), KeyPhase::One);
        assert_eq!(c.poll(t), RekeyAction::Nothing);
        assert_eq!(c.hard_deadline(), t + REJECT_AFTER_TIME);
        let mut new = seal(&mut c, t + secs(1), b"new");
        assert_eq!(KeyPhase::of_record(&new), Some(KeyPhase::One));
        assert_eq!(s.open(t + secs(1), &mut new).unwrap(), (0, &b"new"[..]));
        // The old record (phase 0, sequence 0 too) still opens, with the old keys.
        assert_eq!(
            s.open(t + secs(2), &mut in_flight.clone()).unwrap(),
            (0, &b"old"[..])
        );
        // Once: its window is the old opener's.
        assert_eq!(
            s.open(t + secs(2), &mut in_flight),
            Err(RecordError::Duplicate)
        );
        // The old keys die at their own 180 s; then the old phase is refused outright.
        let mut old2 = {
            let (mut old_sealer, _) =
                message_keys_in_phase(Side::Client, &secrets(1), t0, KeyPhase::Zero).unwrap();
            let mut o = Vec::new();
            old_sealer.seal(t0, b"late", &mut o).unwrap();
            o
        };
        assert_eq!(s.poll(t0 + secs(180)), RekeyAction::Nothing);
        assert_eq!(
            s.open(t0 + secs(180), &mut old2),
            Err(RecordError::WrongKeyPhase)
        );
        // A second re-handshake goes back to phase 0, with new keys.
        c.install(&secrets(3), t0 + secs(260)).unwrap();
        s.install(&secrets(3), t0 + secs(260)).unwrap();
        let mut r = seal(&mut c, t0 + secs(261), b"third");
        assert_eq!(KeyPhase::of_record(&r), Some(KeyPhase::Zero));
        assert_eq!(s.open(t0 + secs(261), &mut r).unwrap().1, b"third");
        // A record of the first handshake's phase-0 keys does not open under the third's.
        let mut first = {
            let (mut s1, _) =
                message_keys_in_phase(Side::Client, &secrets(1), t0 + secs(261), KeyPhase::Zero)
                    .unwrap();
            let mut o = Vec::new();
            s1.seal(t0 + secs(261), b"x", &mut o).unwrap();
            o
        };
        first[..8].copy_from_slice(&5u64.to_be_bytes());
        assert_eq!(
            s.open(t0 + secs(262), &mut first),
            Err(RecordError::BadRecord)
        );
    }

    #[test]
    fn next_phase_before_install_is_refused_and_phase_bit_is_authenticated() {
        let t0 = Instant::now();
        let (mut c, mut s) = pair(t0);
        c.install(&secrets(2), t0 + secs(1)).unwrap();
        // The server has not installed yet: it has no phase-1 keys.
        let mut early = seal(&mut c, t0 + secs(2), b"x");
        assert_eq!(
            s.open(t0 + secs(2), &mut early),
            Err(RecordError::WrongKeyPhase)
        );
        // Flipping the phase bit of a phase-0 record sends it to the other opener, where it
        // does not authenticate (the bit is in the AAD).
        let (mut c2, mut s2) = pair(t0);
        c2.install(&secrets(2), t0).unwrap();
        s2.install(&secrets(2), t0).unwrap();
        let mut r = seal(&mut c2, t0, b"x");
        r[0] ^= 0x80;
        assert_eq!(s2.open(t0, &mut r), Err(RecordError::BadRecord));
        assert_eq!(s2.open(t0, &mut [0u8; 4]), Err(RecordError::Truncated));
    }
}
