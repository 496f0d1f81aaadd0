//! The hash-chained audit log, independent of the backend (DESIGN.md §10).
//!
//! Each entry's MAC chains it to its predecessor:
//! `mac_n = daas_crypto::audit::chain(audit_chain_key, mac_{n-1}, entry_bytes(n))`, with
//! `mac_0 = GENESIS`. Sequence numbers start at 1 and are contiguous.
//!
//! Beside the entries, a one-row table `audit_head` holds the chain head `(seq, mac, tag)` with
//! `tag = chain(audit_chain_key, mac, head_bytes(seq))`. It is the serialisation point for appends
//! (PostgreSQL locks it with `SELECT ... FOR UPDATE`; SQLite has a single writer) and lets
//! `verify` detect entries removed from the *end* of the log, which the chain alone cannot: the
//! tag cannot be recomputed for an older head without the key. Rolling back the whole database
//! to an older state (entries and head together) is only detectable against a head exported
//! elsewhere (`AuditReport::head`).
use daas_crypto::audit::{GENESIS, chain, verify_link};
use daas_crypto::storage::StorageKeys;

use crate::{AuditEntry, AuditEvent, AuditReport, StoreError};

/// Domain tag at the start of every entry's canonical bytes.
const ENTRY_TAG: &[u8] = b"daas audit entry v1";
/// Domain tag at the start of the chain head's bytes (distinct from any entry's bytes).
const HEAD_TAG: &[u8] = b"daas audit head v1";

fn put_lp(out: &mut Vec<u8>, field: &[u8]) {
    // `usize` always fits in `u64` on supported targets; saturate rather than panic elsewhere.
    let len = u64::try_from(field.len()).unwrap_or(u64::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
}

/// The canonical bytes of an audit entry, the input of its chain MAC.
///
/// ```text
/// entry_bytes = lp("daas audit entry v1")
///             ‖ u64be(seq) ‖ i64be(time)
///             ‖ lp(actor) ‖ lp(action) ‖ lp(target) ‖ lp(outcome) ‖ lp(detail)
/// lp(x)       = u64be(byte length of x) ‖ x        (strings as UTF-8)
/// ```
///
/// Every field is fixed-width or length-prefixed, so the encoding is injective: two entries that
/// differ in any field (including moving bytes from one string field to the next) have different
/// bytes. `time` is Unix milliseconds. External verifiers reproduce the chain with this function
/// and `daas_crypto::audit::verify_link`.
pub fn audit_entry_bytes(seq: u64, time: i64, event: &AuditEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        8 * 8
            + ENTRY_TAG.len()
            + 16
            + event.actor.len()
            + event.action.len()
            + event.target.len()
            + event.outcome.len()
            + event.detail.len(),
    );
    put_lp(&mut out, ENTRY_TAG);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&time.to_be_bytes());
    put_lp(&mut out, event.actor.as_bytes());
    put_lp(&mut out, event.action.as_bytes());
    put_lp(&mut out, event.target.as_bytes());
    put_lp(&mut out, event.outcome.as_bytes());
    put_lp(&mut out, event.detail.as_bytes());
    out
}

fn head_bytes(seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + HEAD_TAG.len() + 8);
    put_lp(&mut out, HEAD_TAG);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// Unix milliseconds now (0 if the clock is before 1970).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn parse_mac(hex_mac: &str) -> Option<[u8; 32]> {
    let mut mac = [0u8; 32];
    hex::decode_to_slice(hex_mac, &mut mac).ok()?;
    Some(mac)
}

/// The `audit_head` row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeadRow {
    pub seq: i64,
    pub mac: String,
    pub tag: String,
}

const HEAD_TABLE: &str = "audit_head";

/// The chain head in memory: the last sequence number and its MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chain {
    pub seq: u64,
    pub mac: [u8; 32],
}

impl Chain {
    pub(crate) fn genesis() -> Self {
        Self {
            seq: 0,
            mac: GENESIS,
        }
    }

    /// Load the head from its row, checking its tag (a wrong storage key or a forged head fails).
    pub(crate) fn from_head(keys: &StorageKeys, row: &HeadRow) -> Result<Self, StoreError> {
        let broken = |column| {
            tracing::warn!(
                table = HEAD_TABLE,
                column,
                "audit chain head failed its check"
            );
            StoreError::Integrity {
                table: HEAD_TABLE,
                column,
            }
        };
        let seq = u64::try_from(row.seq).map_err(|_| broken("seq"))?;
        let mac = parse_mac(&row.mac).ok_or_else(|| broken("mac"))?;
        let tag = parse_mac(&row.tag).ok_or_else(|| broken("tag"))?;
        verify_link(keys.audit_chain_key(), &mac, &head_bytes(seq), &tag)
            .map_err(|_| broken("tag"))?;
        Ok(Self { seq, mac })
    }

    pub(crate) fn head_row(&self, keys: &StorageKeys) -> Result<HeadRow, StoreError> {
        let tag = chain(keys.audit_chain_key(), &self.mac, &head_bytes(self.seq));
        Ok(HeadRow {
            seq: to_db_seq(self.seq)?,
            mac: hex::encode(self.mac),
            tag: hex::encode(tag),
        })
    }

    /// Extend the chain by one event stamped now; returns the entry to insert.
    pub(crate) fn append(
        &mut self,
        keys: &StorageKeys,
        event: &AuditEvent,
    ) -> Result<AuditEntry, StoreError> {
        let seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| StoreError::Internal("audit sequence exhausted".into()))?;
        let time = now_ms();
        let mac = chain(
            keys.audit_chain_key(),
            &self.mac,
            &audit_entry_bytes(seq, time, event),
        );
        self.seq = seq;
        self.mac = mac;
        Ok(AuditEntry {
            seq,
            time,
            event: event.clone(),
            mac: hex::encode(mac),
        })
    }
}

/// `u64` sequence number to the signed 64-bit database column.
pub(crate) fn to_db_seq(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Internal("audit sequence out of range".into()))
}

/// A raw `audit` row as read from either backend.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub seq: i64,
    pub time: i64,
    pub event: AuditEvent,
    pub mac: String,
}

impl RawEntry {
    pub(crate) fn into_entry(self) -> Result<AuditEntry, StoreError> {
        let seq = u64::try_from(self.seq).map_err(|_| StoreError::Integrity {
            table: "audit",
            column: "seq",
        })?;
        Ok(AuditEntry {
            seq,
            time: self.time,
            event: self.event,
            mac: self.mac,
        })
    }
}

/// Walks entries in ascending `seq` order and finds the first broken link.
#[derive(Debug)]
pub(crate) struct Verifier<'k> {
    keys: &'k StorageKeys,
    prev: [u8; 32],
    /// Sequence number the next entry must have.
    expected: u64,
    entries: u64,
    head: Option<String>,
    first_broken: Option<u64>,
}

impl<'k> Verifier<'k> {
    pub(crate) fn new(keys: &'k StorageKeys) -> Self {
        Self {
            keys,
            prev: GENESIS,
            expected: 1,
            entries: 0,
            head: None,
            first_broken: None,
        }
    }

    /// Check the next entry (callers feed entries in ascending `seq` order).
    pub(crate) fn feed(&mut self, raw: &RawEntry) {
        self.entries += 1;
        self.head = Some(raw.mac.clone());
        // A negative seq cannot be a valid entry: it mismatches `expected` below.
        let seq = u64::try_from(raw.seq).unwrap_or(0);
        if self.first_broken.is_some() {
            return;
        }
        if seq != self.expected {
            // A gap (deleted entry) or an inserted/reordered one: the expected link is broken.
            self.first_broken = Some(self.expected);
            return;
        }
        let Some(mac) = parse_mac(&raw.mac) else {
            self.first_broken = Some(seq);
            return;
        };
        let bytes = audit_entry_bytes(seq, raw.time, &raw.event);
        if verify_link(self.keys.audit_chain_key(), &self.prev, &bytes, &mac).is_err() {
            self.first_broken = Some(seq);
            return;
        }
        self.prev = mac;
        self.expected = seq.saturating_add(1);
    }

    /// Finish with the stored chain head (`None` if the row is missing).
    pub(crate) fn finish(mut self, head: Option<&HeadRow>) -> AuditReport {
        if self.first_broken.is_none() {
            let verified = self.expected.saturating_sub(1);
            let consistent = head.is_some_and(|row| {
                Chain::from_head(self.keys, row)
                    .is_ok_and(|h| h.seq == verified && h.mac == self.prev)
            });
            if !consistent {
                // Every stored entry verifies, but the head says the chain goes on (entries
                // removed from the end) or was forged: the first missing link is broken.
                tracing::warn!("audit chain head does not match the last entry");
                self.first_broken = Some(verified.saturating_add(1));
            }
        }
        if let Some(seq) = self.first_broken {
            tracing::warn!(first_broken = seq, "audit chain verification failed");
        }
        AuditReport {
            entries: self.entries,
            head: self.head,
            first_broken: self.first_broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event() -> impl Strategy<Value = AuditEvent> {
        (".{0,12}", ".{0,12}", ".{0,12}", ".{0,12}", ".{0,12}").prop_map(
            |(actor, action, target, outcome, detail)| AuditEvent {
                actor,
                action,
                target,
                outcome,
                detail,
            },
        )
    }

    proptest! {
        /// Distinct (seq, time, event) triples always serialise to distinct bytes.
        #[test]
        fn entry_bytes_are_injective(
            a in (any::<u64>(), any::<i64>(), event()),
            b in (any::<u64>(), any::<i64>(), event()),
        ) {
            let ba = audit_entry_bytes(a.0, a.1, &a.2);
            let bb = audit_entry_bytes(b.0, b.1, &b.2);
            prop_assert_eq!(a == b, ba == bb);
        }

        /// Shifting bytes between adjacent fields changes the encoding.
        #[test]
        fn entry_bytes_separate_fields(s in "[a-z]{0,8}", t in "[a-z]{0,8}", split in 0usize..8) {
            let joined = format!("{s}{t}");
            let cut = split.min(joined.len());
            let mk = |actor: &str, action: &str| AuditEvent {
                actor: actor.into(), action: action.into(),
                target: String::new(), outcome: String::new(), detail: String::new(),
            };
            let x = audit_entry_bytes(1, 0, &mk(&s, &t));
            let y = audit_entry_bytes(1, 0, &mk(&joined[..cut], &joined[cut..]));
            prop_assert_eq!(s.len() == cut, x == y);
        }

        /// No entry encodes to the head's bytes (the two share a chain key).
        #[test]
        fn entry_bytes_never_equal_head_bytes(seq in any::<u64>(), time in any::<i64>(), e in event()) {
            prop_assert_ne!(audit_entry_bytes(seq, time, &e), head_bytes(seq));
        }
    }

    #[test]
    fn entry_bytes_layout_is_stable() {
        let e = AuditEvent {
            actor: "a".into(),
            action: "bb".into(),
            target: String::new(),
            outcome: "ok".into(),
            detail: "d".into(),
        };
        let bytes = audit_entry_bytes(7, -1, &e);
        let mut expected = Vec::new();
        expected.extend_from_slice(&19u64.to_be_bytes());
        expected.extend_from_slice(b"daas audit entry v1");
        expected.extend_from_slice(&7u64.to_be_bytes());
        expected.extend_from_slice(&(-1i64).to_be_bytes());
        for f in ["a", "bb", "", "ok", "d"] {
            expected.extend_from_slice(&(f.len() as u64).to_be_bytes());
            expected.extend_from_slice(f.as_bytes());
        }
        assert_eq!(bytes, expected);
    }
}
