//! Wire format of the role messages.
//!
//! ```text
//! message := version(1) = 0x01 ‖ type(1) ‖ body_len(u16 BE) ‖ body
//! body    := count(1) ‖ entry{count}            (count ≤ MAX_ENTRIES)
//! entry   := kind(1) ‖ name_len(1) ‖ name ‖ payload_len(u16 BE) ‖ payload
//! ```
//!
//! Types: `0x01` offer (only password entries: the SPAKE2 message), `0x02` proof (key tags,
//! password confirmations, Ed25519 and P-256 signatures under pinned keys, X.509 role proofs).
//! Every kind but the X.509 proof has exactly one payload length; the X.509 proof has its own
//! strict structure ([`crate::x509::X509Proof`]).
//! Entries are in strictly ascending name order, so a name appears at most once and every
//! message has exactly one encoding. The parser refuses truncated, oversized and trailing input.

use crate::error::WireError;
use crate::name::RoleName;
use crate::x509::{MAX_X509_PAYLOAD_LEN, X509Proof};

/// Bytes an entry adds besides its name and payload (kind, name length, payload length).
pub const ENTRY_OVERHEAD: usize = 4;

/// The only version this crate speaks (2: payload lengths are u16, for X.509 chains).
pub const WIRE_VERSION: u8 = 2;
/// Length of the fixed message header (version, type, body length).
pub const HEADER_LEN: usize = 4;
/// Most entries in one message (and most roles in one configuration).
pub const MAX_ENTRIES: usize = 32;
/// Largest body. The u16 length field's maximum: [`MAX_ENTRIES`] fixed-size entries always fit
/// (at most 32 × 132 bytes), X.509 proofs (up to [`MAX_X509_PAYLOAD_LEN`] each) only as many as
/// the limit allows, which `RoleConfig::new` checks for the roles a side proves.
pub const MAX_BODY_LEN: usize = u16::MAX as usize;
/// Largest message, header included.
pub const MAX_MESSAGE_LEN: usize = HEADER_LEN + MAX_BODY_LEN;

/// Length of a SPAKE2 (Ed25519 group) message: a side byte and a point.
pub const PAKE_MESSAGE_LEN: usize = 33;
/// Length of a key-role tag and of a password-role confirmation (HMAC-SHA256).
pub const TAG_LEN: usize = 32;
/// Length of an Ed25519 signature and of a fixed-length P-256 ECDSA signature.
pub const SIGNATURE_LEN: usize = 64;

/// The two messages of the role exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Flight 1: the sender's SPAKE2 messages for its password roles.
    Offer = 1,
    /// Flight 2: the sender's role proofs.
    Proof = 2,
}

/// What an entry carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Offer: a SPAKE2 message for a password role.
    PakeMessage([u8; PAKE_MESSAGE_LEN]),
    /// Proof: a key-role tag.
    KeyTag([u8; TAG_LEN]),
    /// Proof: a password-role key confirmation.
    PasswordConfirm([u8; TAG_LEN]),
    /// Proof: an Ed25519 signature by a certificate role's key.
    Ed25519Signature([u8; SIGNATURE_LEN]),
    /// Proof: an ECDSA P-256 / SHA-256 signature (`r ‖ s`) by a certificate role's key.
    EcdsaP256Signature([u8; SIGNATURE_LEN]),
    /// Proof: an X.509 certificate role's chain and its signature over the exporter.
    X509(X509Proof),
}

impl Entry {
    const fn kind(&self) -> u8 {
        match self {
            Self::PakeMessage(_) => 1,
            Self::KeyTag(_) => 2,
            Self::PasswordConfirm(_) => 3,
            Self::Ed25519Signature(_) => 4,
            Self::EcdsaP256Signature(_) => 5,
            Self::X509(_) => 6,
        }
    }

    fn payload_len(&self) -> usize {
        match self {
            Self::PakeMessage(p) => p.len(),
            Self::KeyTag(p) | Self::PasswordConfirm(p) => p.len(),
            Self::Ed25519Signature(p) | Self::EcdsaP256Signature(p) => p.len(),
            Self::X509(p) => p.encoded_len(),
        }
    }

    fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::PakeMessage(p) => out.extend_from_slice(p),
            Self::KeyTag(p) | Self::PasswordConfirm(p) => out.extend_from_slice(p),
            Self::Ed25519Signature(p) | Self::EcdsaP256Signature(p) => out.extend_from_slice(p),
            Self::X509(p) => p.encode_into(out),
        }
    }

    /// The encoded size of an entry with a name of `name_len` bytes.
    fn encoded_len(&self, name_len: usize) -> usize {
        ENTRY_OVERHEAD + name_len + self.payload_len()
    }

    const fn allowed_in(&self, ty: MessageType) -> bool {
        matches!(
            (self, ty),
            (Self::PakeMessage(_), MessageType::Offer)
                | (
                    Self::KeyTag(_)
                        | Self::PasswordConfirm(_)
                        | Self::Ed25519Signature(_)
                        | Self::EcdsaP256Signature(_)
                        | Self::X509(_),
                    MessageType::Proof
                )
        )
    }

    fn parse(kind: u8, payload: &[u8]) -> Result<Self, WireError> {
        let fixed = |len: usize| {
            if payload.len() == len {
                Ok(())
            } else {
                Err(WireError::BadPayloadLength)
            }
        };
        let mut tag = [0u8; TAG_LEN];
        match kind {
            1 => {
                fixed(PAKE_MESSAGE_LEN)?;
                let mut m = [0u8; PAKE_MESSAGE_LEN];
                m.copy_from_slice(payload);
                Ok(Self::PakeMessage(m))
            }
            2 => {
                fixed(TAG_LEN)?;
                tag.copy_from_slice(payload);
                Ok(Self::KeyTag(tag))
            }
            3 => {
                fixed(TAG_LEN)?;
                tag.copy_from_slice(payload);
                Ok(Self::PasswordConfirm(tag))
            }
            4 => {
                fixed(SIGNATURE_LEN)?;
                let mut s = [0u8; SIGNATURE_LEN];
                s.copy_from_slice(payload);
                Ok(Self::Ed25519Signature(s))
            }
            5 => {
                fixed(SIGNATURE_LEN)?;
                let mut s = [0u8; SIGNATURE_LEN];
                s.copy_from_slice(payload);
                Ok(Self::EcdsaP256Signature(s))
            }
            6 => {
                if payload.len() > MAX_X509_PAYLOAD_LEN {
                    return Err(WireError::BadPayloadLength);
                }
                X509Proof::parse(payload).map(Self::X509)
            }
            _ => Err(WireError::BadEntryKind),
        }
    }
}

/// A parsed (or to-be-sent) role message. Its entries are sorted by name, names unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMessage {
    ty: MessageType,
    entries: Vec<(RoleName, Entry)>,
}

impl RoleMessage {
    /// Builds a message; sorts the entries by name.
    ///
    /// # Errors
    /// [`WireError::TooManyEntries`], [`WireError::NotCanonical`] for a repeated name,
    /// [`WireError::BadEntryKind`] for an entry that the type does not allow,
    /// [`WireError::TooLarge`] if the body would exceed [`MAX_BODY_LEN`].
    pub fn new(ty: MessageType, mut entries: Vec<(RoleName, Entry)>) -> Result<Self, WireError> {
        if entries.len() > MAX_ENTRIES {
            return Err(WireError::TooManyEntries);
        }
        if entries.iter().any(|(_, e)| !e.allowed_in(ty)) {
            return Err(WireError::BadEntryKind);
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        if entries.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(WireError::NotCanonical);
        }
        let body: usize = 1 + entries
            .iter()
            .map(|(n, e)| e.encoded_len(n.as_str().len()))
            .sum::<usize>();
        if body > MAX_BODY_LEN {
            return Err(WireError::TooLarge {
                max: MAX_MESSAGE_LEN,
            });
        }
        Ok(Self { ty, entries })
    }

    /// The message type.
    #[must_use]
    pub const fn message_type(&self) -> MessageType {
        self.ty
    }

    /// The entries, in ascending name order.
    #[must_use]
    pub fn entries(&self) -> &[(RoleName, Entry)] {
        &self.entries
    }

    /// The entry for `name`, if any.
    #[must_use]
    pub fn get(&self, name: &RoleName) -> Option<&Entry> {
        self.entries
            .binary_search_by(|(n, _)| n.cmp(name))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// The canonical encoding.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(64);
        // `new` and `parse` keep at most MAX_ENTRIES (32) entries.
        body.push(u8::try_from(self.entries.len()).unwrap_or(u8::MAX));
        for (name, entry) in &self.entries {
            body.push(entry.kind());
            // Names are at most 64 bytes, payloads at most MAX_X509_PAYLOAD_LEN (< 2^16).
            body.push(u8::try_from(name.as_str().len()).unwrap_or(u8::MAX));
            body.extend_from_slice(name.as_str().as_bytes());
            let len = u16::try_from(entry.payload_len()).unwrap_or(u16::MAX);
            body.extend_from_slice(&len.to_be_bytes());
            entry.encode_payload(&mut body);
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.push(WIRE_VERSION);
        out.push(self.ty as u8);
        // `new` and `parse` keep the body at most MAX_BODY_LEN (u16::MAX) bytes.
        out.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Parses exactly one message: no byte missing, none left over.
    ///
    /// # Errors
    /// A [`WireError`] naming the first rule the input breaks.
    pub fn parse(input: &[u8]) -> Result<Self, WireError> {
        if input.len() > MAX_MESSAGE_LEN {
            return Err(WireError::TooLarge {
                max: MAX_MESSAGE_LEN,
            });
        }
        let header: &[u8; HEADER_LEN] = input
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(WireError::Truncated)?;
        let (ty, total) = parse_header(header)?;
        if input.len() < total {
            return Err(WireError::Truncated);
        }
        if input.len() > total {
            return Err(WireError::TrailingBytes);
        }
        let mut r = Reader(&input[HEADER_LEN..]);
        let count = usize::from(r.byte()?);
        if count > MAX_ENTRIES {
            return Err(WireError::TooManyEntries);
        }
        let mut entries: Vec<(RoleName, Entry)> = Vec::with_capacity(count);
        for _ in 0..count {
            let kind = r.byte()?;
            let name_len = usize::from(r.byte()?);
            let name = RoleName::from_bytes(r.take(name_len)?).ok_or(WireError::InvalidRoleName)?;
            let payload_len = usize::from(u16::from_be_bytes([r.byte()?, r.byte()?]));
            let entry = Entry::parse(kind, r.take(payload_len)?)?;
            if !entry.allowed_in(ty) {
                return Err(WireError::BadEntryKind);
            }
            if entries.last().is_some_and(|(prev, _)| *prev >= name) {
                return Err(WireError::NotCanonical);
            }
            entries.push((name, entry));
        }
        if !r.0.is_empty() {
            return Err(WireError::LengthMismatch);
        }
        Ok(Self { ty, entries })
    }
}

/// Checks a message header and returns its type and the whole message's length, so a stream
/// reader knows how many more bytes to read (never more than [`MAX_MESSAGE_LEN`]).
///
/// # Errors
/// [`WireError::UnsupportedVersion`], [`WireError::UnknownMessageType`],
/// [`WireError::TooLarge`].
pub fn parse_header(header: &[u8; HEADER_LEN]) -> Result<(MessageType, usize), WireError> {
    if header[0] != WIRE_VERSION {
        return Err(WireError::UnsupportedVersion);
    }
    let ty = match header[1] {
        1 => MessageType::Offer,
        2 => MessageType::Proof,
        _ => return Err(WireError::UnknownMessageType),
    };
    let body_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if body_len > MAX_BODY_LEN {
        return Err(WireError::TooLarge {
            max: MAX_MESSAGE_LEN,
        });
    }
    Ok((ty, HEADER_LEN + body_len))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, WireError> {
        let (&b, rest) = self.0.split_first().ok_or(WireError::LengthMismatch)?;
        self.0 = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::LengthMismatch);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::X509Scheme;
    use proptest::prelude::*;

    fn name(s: &str) -> RoleName {
        RoleName::new(s).unwrap()
    }

    fn sample_proof() -> RoleMessage {
        RoleMessage::new(
            MessageType::Proof,
            vec![
                (name("payment"), Entry::KeyTag([7; TAG_LEN])),
                (
                    name("approval"),
                    Entry::Ed25519Signature([9; SIGNATURE_LEN]),
                ),
                (name("user-info"), Entry::PasswordConfirm([1; TAG_LEN])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn roundtrip_and_sorted() {
        let m = sample_proof();
        assert_eq!(m.entries()[0].0, name("approval"));
        let bytes = m.encode();
        assert_eq!(RoleMessage::parse(&bytes).unwrap(), m);
        assert_eq!(
            parse_header(bytes[..4].try_into().unwrap()).unwrap(),
            (MessageType::Proof, bytes.len())
        );
        assert!(m.get(&name("payment")).is_some());
        assert!(m.get(&name("shipping")).is_none());
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample_proof().encode();
        for len in 0..bytes.len() {
            assert!(RoleMessage::parse(&bytes[..len]).is_err(), "prefix {len}");
        }
        assert_eq!(RoleMessage::parse(&bytes[..2]), Err(WireError::Truncated));
        assert_eq!(RoleMessage::parse(&bytes[..10]), Err(WireError::Truncated));
    }

    #[test]
    fn trailing_and_oversized_are_refused() {
        let mut bytes = sample_proof().encode();
        bytes.push(0);
        assert_eq!(RoleMessage::parse(&bytes), Err(WireError::TrailingBytes));
        let huge = vec![0u8; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            RoleMessage::parse(&huge),
            Err(WireError::TooLarge {
                max: MAX_MESSAGE_LEN
            })
        );
        // The largest header the length field can express is the limit: a reader never
        // allocates more than MAX_MESSAGE_LEN for one message.
        let header = [WIRE_VERSION, 2, 0xff, 0xff];
        assert_eq!(
            parse_header(&header),
            Ok((MessageType::Proof, MAX_MESSAGE_LEN))
        );
        // A message that would not fit is refused when it is built.
        let chain = vec![vec![0x30; crate::x509::MAX_CERT_LEN]; crate::x509::MAX_CHAIN_CERTS];
        let proof = X509Proof::new(X509Scheme::Ed25519, chain, vec![0; 64]).unwrap();
        let entries = (0..4)
            .map(|i| (name(&format!("r{i}")), Entry::X509(proof.clone())))
            .collect();
        assert_eq!(
            RoleMessage::new(MessageType::Proof, entries),
            Err(WireError::TooLarge {
                max: MAX_MESSAGE_LEN
            })
        );
    }

    #[test]
    fn header_rules() {
        assert_eq!(
            parse_header(&[3, 1, 0, 1]),
            Err(WireError::UnsupportedVersion)
        );
        // Version 1 (one-byte payload lengths) is not spoken any more.
        assert_eq!(
            parse_header(&[1, 1, 0, 1]),
            Err(WireError::UnsupportedVersion)
        );
        assert_eq!(
            parse_header(&[WIRE_VERSION, 3, 0, 1]),
            Err(WireError::UnknownMessageType)
        );
        assert_eq!(
            parse_header(&[WIRE_VERSION, 0, 0, 1]),
            Err(WireError::UnknownMessageType)
        );
    }

    #[test]
    fn entry_rules() {
        // Body length says 1 more byte than the entries use.
        let mut bytes = sample_proof().encode();
        bytes[3] += 1;
        bytes.push(0);
        assert_eq!(RoleMessage::parse(&bytes), Err(WireError::LengthMismatch));

        let one = |kind: u8, nm: &[u8], payload: &[u8], ty: u8| {
            let mut body = vec![1, kind, u8::try_from(nm.len()).unwrap()];
            body.extend_from_slice(nm);
            body.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
            body.extend_from_slice(payload);
            let mut m = vec![WIRE_VERSION, ty];
            m.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
            m.extend_from_slice(&body);
            m
        };
        assert!(RoleMessage::parse(&one(2, b"a", &[0; 32], 2)).is_ok());
        assert_eq!(
            RoleMessage::parse(&one(2, b"a", &[0; 31], 2)),
            Err(WireError::BadPayloadLength)
        );
        assert_eq!(
            RoleMessage::parse(&one(9, b"a", &[0; 32], 2)),
            Err(WireError::BadEntryKind)
        );
        // A key tag in an offer, a PAKE message in a proof.
        assert_eq!(
            RoleMessage::parse(&one(2, b"a", &[0; 32], 1)),
            Err(WireError::BadEntryKind)
        );
        assert_eq!(
            RoleMessage::parse(&one(1, b"a", &[0; 33], 2)),
            Err(WireError::BadEntryKind)
        );
        assert_eq!(
            RoleMessage::parse(&one(2, b"A", &[0; 32], 2)),
            Err(WireError::InvalidRoleName)
        );
        assert_eq!(
            RoleMessage::parse(&one(2, b"", &[0; 32], 2)),
            Err(WireError::InvalidRoleName)
        );
        // Too many entries announced.
        let mut m = one(2, b"a", &[0; 32], 2);
        m[4] = u8::try_from(MAX_ENTRIES + 1).unwrap();
        assert_eq!(RoleMessage::parse(&m), Err(WireError::TooManyEntries));
    }

    #[test]
    fn duplicates_and_order() {
        let e = Entry::KeyTag([0; TAG_LEN]);
        assert_eq!(
            RoleMessage::new(
                MessageType::Proof,
                vec![(name("a"), e.clone()), (name("a"), e.clone())]
            ),
            Err(WireError::NotCanonical)
        );
        // Hand-encode b before a.
        let mut body = vec![2u8];
        for n in [b"b", b"a"] {
            body.extend_from_slice(&[2, 1, n[0], 0, 32]);
            body.extend_from_slice(&[0; 32]);
        }
        let mut m = vec![WIRE_VERSION, 2];
        m.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        m.extend_from_slice(&body);
        assert_eq!(RoleMessage::parse(&m), Err(WireError::NotCanonical));
    }

    #[test]
    fn largest_message_fits() {
        // MAX_ENTRIES fixed-size entries with the longest names always fit.
        let entries = (0..MAX_ENTRIES)
            .map(|i| {
                let n = format!("{i:0>64}");
                (name(&n), Entry::Ed25519Signature([0; SIGNATURE_LEN]))
            })
            .collect();
        let m = RoleMessage::new(MessageType::Proof, entries).unwrap();
        let bytes = m.encode();
        assert_eq!(RoleMessage::parse(&bytes).unwrap(), m);
        // Three X.509 proofs of the largest size fit, and parse back.
        let chain = vec![vec![0x30; crate::x509::MAX_CERT_LEN]; crate::x509::MAX_CHAIN_CERTS];
        let proof = X509Proof::new(X509Scheme::EcdsaP256Sha256, chain, vec![1; 72]).unwrap();
        assert_eq!(proof.encoded_len(), MAX_X509_PAYLOAD_LEN);
        let entries = (0..3)
            .map(|i| (name(&format!("{i:0>64}")), Entry::X509(proof.clone())))
            .collect();
        let m = RoleMessage::new(MessageType::Proof, entries).unwrap();
        let bytes = m.encode();
        assert!(bytes.len() <= MAX_MESSAGE_LEN);
        assert_eq!(RoleMessage::parse(&bytes).unwrap(), m);
    }

    #[test]
    fn x509_payload_rules() {
        let good = X509Proof::new(X509Scheme::Ed25519, vec![vec![1, 2, 3]], vec![0; 64]).unwrap();
        let mut p = Vec::new();
        good.encode_into(&mut p);
        assert_eq!(p.len(), good.encoded_len());
        assert_eq!(X509Proof::parse(&p).unwrap(), good);
        for len in 0..p.len() {
            assert_eq!(
                X509Proof::parse(&p[..len]),
                Err(WireError::BadPayloadLength),
                "prefix {len}"
            );
        }
        let mut trailing = p.clone();
        trailing.push(0);
        assert_eq!(
            X509Proof::parse(&trailing),
            Err(WireError::BadPayloadLength)
        );
        // Unknown scheme, no certificate, too many, an empty or oversized certificate, a
        // signature length the scheme does not have.
        let mut m = p.clone();
        m[0] = 3;
        assert_eq!(X509Proof::parse(&m), Err(WireError::BadPayloadLength));
        let bad =
            |scheme, chain: Vec<Vec<u8>>, sig: usize| X509Proof::new(scheme, chain, vec![0; sig]);
        assert!(bad(X509Scheme::Ed25519, vec![], 64).is_err());
        assert!(bad(X509Scheme::Ed25519, vec![vec![1]; 5], 64).is_err());
        assert!(bad(X509Scheme::Ed25519, vec![vec![]], 64).is_err());
        assert!(bad(X509Scheme::Ed25519, vec![vec![1; 4097]], 64).is_err());
        assert!(bad(X509Scheme::Ed25519, vec![vec![1]], 63).is_err());
        assert!(bad(X509Scheme::EcdsaP256Sha256, vec![vec![1]], 73).is_err());
        assert!(bad(X509Scheme::EcdsaP256Sha256, vec![vec![1]], 70).is_ok());
        // Hand-encoded: a certificate length of 0 and one past the limit.
        for len in [0u16, 4097] {
            let mut m = vec![1, 1];
            m.extend_from_slice(&len.to_be_bytes());
            m.extend(std::iter::repeat_n(0x30, usize::from(len)));
            m.push(64);
            m.extend_from_slice(&[0; 64]);
            assert_eq!(X509Proof::parse(&m), Err(WireError::BadPayloadLength));
        }
        // An oversized payload is refused before it is looked at.
        let mut m = vec![1, 1, 0, 1, 0x30, 64];
        m.extend_from_slice(&[0; 64]);
        m.resize(MAX_X509_PAYLOAD_LEN + 1, 0);
        assert_eq!(Entry::parse(6, &m), Err(WireError::BadPayloadLength));
    }

    fn arb_entry(ty: MessageType) -> BoxedStrategy<Entry> {
        match ty {
            MessageType::Offer => any::<[u8; 32]>()
                .prop_map(|p| {
                    let mut m = [0u8; PAKE_MESSAGE_LEN];
                    m[1..].copy_from_slice(&p);
                    Entry::PakeMessage(m)
                })
                .boxed(),
            MessageType::Proof => prop_oneof![
                any::<[u8; 32]>().prop_map(Entry::KeyTag),
                any::<[u8; 32]>().prop_map(Entry::PasswordConfirm),
                (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
                    let mut s = [0u8; SIGNATURE_LEN];
                    s[..32].copy_from_slice(&a);
                    s[32..].copy_from_slice(&b);
                    Entry::Ed25519Signature(s)
                }),
                any::<[u8; 32]>().prop_map(|a| {
                    let mut s = [0u8; SIGNATURE_LEN];
                    s[..32].copy_from_slice(&a);
                    Entry::EcdsaP256Signature(s)
                }),
                (
                    prop_oneof![Just(X509Scheme::Ed25519), Just(X509Scheme::EcdsaP256Sha256)],
                    proptest::collection::vec(
                        proptest::collection::vec(any::<u8>(), 1..200),
                        1..=crate::x509::MAX_CHAIN_CERTS
                    ),
                    any::<u8>(),
                )
                    .prop_map(|(scheme, chain, fill)| {
                        let len = if scheme == X509Scheme::Ed25519 {
                            64
                        } else {
                            71
                        };
                        Entry::X509(X509Proof::new(scheme, chain, vec![fill; len]).unwrap())
                    }),
            ]
            .boxed(),
        }
    }

    fn arb_message() -> impl Strategy<Value = RoleMessage> {
        prop_oneof![Just(MessageType::Offer), Just(MessageType::Proof)].prop_flat_map(|ty| {
            proptest::collection::btree_map("[a-z0-9._-]{1,64}", arb_entry(ty), 0..=MAX_ENTRIES)
                .prop_map(move |m| {
                    let entries = m.into_iter().map(|(k, v)| (name(&k), v)).collect();
                    RoleMessage::new(ty, entries).unwrap()
                })
        })
    }

    proptest! {
        #[test]
        fn prop_roundtrip(m in arb_message()) {
            let bytes = m.encode();
            prop_assert!(bytes.len() <= MAX_MESSAGE_LEN);
            prop_assert_eq!(RoleMessage::parse(&bytes).unwrap(), m);
        }

        #[test]
        fn prop_accepted_input_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(m) = RoleMessage::parse(&bytes) {
                prop_assert_eq!(m.encode(), bytes);
            }
        }

        #[test]
        fn prop_mutation_never_panics(m in arb_message(), idx in any::<usize>(), val in any::<u8>()) {
            let mut bytes = m.encode();
            if !bytes.is_empty() {
                let i = idx % bytes.len();
                bytes[i] = val;
            }
            if let Ok(p) = RoleMessage::parse(&bytes) {
                prop_assert_eq!(p.encode(), bytes);
            }
        }
    }
}
