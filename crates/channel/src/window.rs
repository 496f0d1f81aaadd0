//! RFC 6479 anti-replay sliding window, in the form WireGuard implementations use.
//!
//! The record layer calls [`ReplayWindow::check`] *before* decrypting (so a duplicate or stale
//! record costs no AEAD work) and [`ReplayWindow::mark`] only *after* the record authenticated
//! (so a forged record, whose sequence number the attacker chose freely, can never move the
//! window or burn a sequence number).

use crate::error::RecordError;

const WORD_BITS: u64 = 64;
const WORDS: usize = 64;
/// Window size in sequence numbers: the highest accepted one and the 4 095 below it are
/// tracked; anything older is refused.
pub const WINDOW_BITS: u64 = WORD_BITS * WORDS as u64;

/// The receiver's memory of which sequence numbers it has accepted.
#[derive(Clone)]
pub struct ReplayWindow {
    /// One past the highest sequence number marked so far (0: nothing marked yet).
    next: u64,
    /// Bit `seq mod WINDOW_BITS` says whether `seq` (for the latest `seq < next` with that
    /// residue) was accepted.
    bitmap: [u64; WORDS],
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window: every sequence number, 0 included, is new.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            next: 0,
            bitmap: [0; WORDS],
        }
    }

    /// One past the highest sequence number accepted so far.
    #[must_use]
    pub const fn next(&self) -> u64 {
        self.next
    }

    fn index(seq: u64) -> (usize, u64) {
        let bit = seq % WINDOW_BITS;
        // bit / 64 < WORDS = 64.
        ((bit / WORD_BITS) as usize, 1u64 << (bit % WORD_BITS))
    }

    /// Whether `seq` could still be accepted. Does not change the window.
    ///
    /// # Errors
    /// [`RecordError::TooOld`] below the window, [`RecordError::Duplicate`] if already marked.
    pub fn check(&self, seq: u64) -> Result<(), RecordError> {
        if seq >= self.next {
            return Ok(());
        }
        if self.next - seq > WINDOW_BITS {
            return Err(RecordError::TooOld);
        }
        let (w, m) = Self::index(seq);
        if self.bitmap[w] & m != 0 {
            return Err(RecordError::Duplicate);
        }
        Ok(())
    }

    /// Marks `seq` as accepted (after the record authenticated), sliding the window forward if
    /// `seq` is new highest.
    ///
    /// # Errors
    /// The same as [`Self::check`]: the check is repeated, so a caller that skipped it still
    /// never accepts a record twice.
    pub fn mark(&mut self, seq: u64) -> Result<(), RecordError> {
        self.check(seq)?;
        if seq >= self.next {
            if seq - self.next >= WINDOW_BITS {
                self.bitmap = [0; WORDS];
            } else {
                // Clear the bits of the skipped numbers [next, seq): word by word where whole
                // words are skipped.
                let mut i = self.next;
                while i < seq {
                    if i.is_multiple_of(WORD_BITS) && seq - i >= WORD_BITS {
                        self.bitmap[Self::index(i).0] = 0;
                        i += WORD_BITS;
                    } else {
                        let (w, m) = Self::index(i);
                        self.bitmap[w] &= !m;
                        i += 1;
                    }
                }
            }
            // seq < REJECT_AFTER_SEQ (2^40) in every use, so this does not overflow.
            self.next = seq.saturating_add(1);
        }
        let (w, m) = Self::index(seq);
        self.bitmap[w] |= m;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn zero_first_and_duplicates() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(0), Ok(()));
        w.mark(0).unwrap();
        assert_eq!(w.check(0), Err(RecordError::Duplicate));
        assert_eq!(w.mark(0), Err(RecordError::Duplicate));
        w.mark(2).unwrap();
        w.mark(1).unwrap();
        assert_eq!(w.check(1), Err(RecordError::Duplicate));
        assert_eq!(w.next(), 3);
    }

    #[test]
    fn edges() {
        let mut w = ReplayWindow::new();
        let top = 10_000;
        w.mark(top).unwrap();
        // The lowest number still in the window is top + 1 - WINDOW_BITS.
        let lowest = top + 1 - WINDOW_BITS;
        assert_eq!(w.check(lowest), Ok(()));
        assert_eq!(w.check(lowest - 1), Err(RecordError::TooOld));
        w.mark(lowest).unwrap();
        assert_eq!(w.check(lowest), Err(RecordError::Duplicate));
        // One step forward pushes `lowest` out.
        w.mark(top + 1).unwrap();
        assert_eq!(w.check(lowest), Err(RecordError::TooOld));
        assert_eq!(w.check(lowest + 1), Ok(()));
    }

    #[test]
    fn jump_larger_than_window() {
        let mut w = ReplayWindow::new();
        for s in 0..100 {
            w.mark(s).unwrap();
        }
        let far = 99 + WINDOW_BITS + 1;
        w.mark(far).unwrap();
        for s in 0..100 {
            assert_eq!(w.check(s), Err(RecordError::TooOld));
        }
        // Everything inside the new window below `far` is fresh.
        for s in (far + 1 - WINDOW_BITS)..far {
            assert_eq!(w.check(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn jump_within_window_keeps_history() {
        let mut w = ReplayWindow::new();
        for s in [5, 7, 300] {
            w.mark(s).unwrap();
        }
        w.mark(5 + WINDOW_BITS - 1).unwrap();
        assert_eq!(w.check(5), Err(RecordError::Duplicate));
        assert_eq!(w.check(6), Ok(()));
        assert_eq!(w.check(7), Err(RecordError::Duplicate));
        assert_eq!(w.check(300), Err(RecordError::Duplicate));
        assert_eq!(w.check(301), Ok(()));
    }

    proptest! {
        /// The window agrees with a model that remembers every number: accept iff never
        /// accepted and within WINDOW_BITS of the highest accepted.
        #[test]
        fn prop_matches_model(ops in proptest::collection::vec(0u64..20_000, 1..600)) {
            let mut w = ReplayWindow::new();
            let mut seen = HashSet::new();
            let mut next = 0u64;
            for seq in ops {
                let model_ok = !seen.contains(&seq) && (seq >= next || next - seq <= WINDOW_BITS);
                let got = w.mark(seq);
                prop_assert_eq!(got.is_ok(), model_ok, "seq {} next {}", seq, next);
                if model_ok {
                    seen.insert(seq);
                    next = next.max(seq + 1);
                }
            }
        }
    }
}
