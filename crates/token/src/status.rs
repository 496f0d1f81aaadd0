//! Token Status List (draft-ietf-oauth-status-list, JWT form) and daas status staples.
//!
//! A [`StatusList`] holds one status of 1, 2, 4 or 8 bits per token index, packed
//! least-significant bit first (draft §4.1): with 1 bit, index 0 is bit 0 of byte 0, index 8 is
//! bit 0 of byte 1. Published, it is `{"bits": n, "lst": base64url(zlib(bytes))}` inside a
//! JWT with header `typ: statuslist+jwt` and claims `{sub, iat, exp?, ttl?, status_list}`;
//! `sub` is the list's URI and must equal the `status.status_list.uri` of the token that points
//! into it. [`sign_status_list`] makes one, [`verify_status_list`] checks one strictly.
//!
//! Decompression is capped at [`MAX_STATUS_LIST_BYTES`]: a few kilobytes of zlib can expand to
//! gigabytes, so the decoder stops reading one byte past the cap and refuses the list.
//!
//! A **status staple** is daas' own short-lived statement about one token, answered to a
//! verifier's nonce: header `typ: daas-status+jwt`, claims `{sub, idx, status, nonce, iat,
//! exp}` with `exp - iat <= 60` s. [`verify_status_staple`] checks that it is about the expected
//! list entry and echoes the verifier's nonce, so a staple cannot be replayed to another
//! verifier or after the token was revoked (beyond its one minute).
//!
//! Status lists and staples are signed with status keys, which a verifier keeps in a
//! [`KeySet`] separate from the issuer's: a status key cannot mint access tokens and an issuer
//! key cannot vouch for status. The distinct `typ` values keep the three token kinds apart even
//! if a deployment shares keys by mistake.

use crate::access::MAX_CLAIM_LEN;
use crate::jwk::{KeySet, SigningKey};
use crate::jws::{self, HeaderFields, HeaderPolicy, Unverified};
use crate::{Fault, JwsError, KeyError, b64};
use core::fmt;
use flate2::Compression;
use flate2::bufread::ZlibDecoder;
use flate2::write::ZlibEncoder;
use serde_json::{Map, Value};
use std::io::{Read as _, Write as _};

/// The `typ` of a status list token (draft-ietf-oauth-status-list §5.1).
pub const STATUS_LIST_TYP: &str = "statuslist+jwt";

/// The `typ` of a daas status staple.
pub const STATUS_STAPLE_TYP: &str = "daas-status+jwt";

/// Largest accepted status list token, in bytes. Larger than [`crate::MAX_TOKEN_LEN`] because
/// the list is in it; still bounds the base64 and JSON work done before the signature check.
pub const MAX_STATUS_LIST_TOKEN_LEN: usize = 256 * 1024;

/// Largest decompressed status list, in bytes: 8 388 608 tokens at 1 bit each.
pub const MAX_STATUS_LIST_BYTES: usize = 1024 * 1024;

/// Longest lifetime (`exp - iat`) of a status staple, in seconds.
pub const MAX_STAPLE_LIFETIME_SECS: i64 = 60;

/// Clock-skew allowance for the `iat` and `exp` of status lists and staples, in seconds.
pub const STATUS_LEEWAY_SECS: i64 = 5;

/// Longest accepted staple nonce.
pub const MAX_STAPLE_NONCE_LEN: usize = 256;

/// A status list or staple was rejected, or the caller's input is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    // --- peer: the status list token or staple ---
    /// Structure, header, key selection or signature (see [`JwsError`]).
    #[error("invalid status token: {0}")]
    Jws(JwsError),
    /// The `typ` header is not the one expected (e.g. an access token presented as a list).
    #[error("status token has the wrong typ")]
    WrongType,
    /// A claim is missing or has the wrong shape; the text names it.
    #[error("status token claim {0}")]
    Claim(&'static str),
    /// `sub` is not the URI the referenced token points to.
    #[error("status token subject is not the expected status list uri")]
    WrongSubject,
    /// `exp` has passed.
    #[error("status token has expired")]
    Expired,
    /// `iat` is in the future.
    #[error("status token was issued in the future")]
    IssuedInFuture,
    /// `lst` is not canonical base64url of one complete zlib stream.
    #[error("status list {0}")]
    List(&'static str),
    /// `lst` decompresses to more than the cap (a decompression bomb, or a list too large).
    #[error("status list is larger than {max} bytes")]
    ListTooLarge {
        /// The cap that was exceeded.
        max: usize,
    },
    /// The referenced index is past the end of the list; the token must be rejected.
    #[error("status list index is out of range")]
    IndexOutOfRange,
    /// A staple is about another list or index than the one asked for.
    #[error("status staple is about another token")]
    StapleMismatch,
    /// A staple does not echo the verifier's nonce.
    #[error("status staple nonce does not match")]
    NonceMismatch,
    /// A staple lives longer than [`MAX_STAPLE_LIFETIME_SECS`].
    #[error("status staple lifetime is too long")]
    LifetimeTooLong,
    // --- caller ---
    /// An argument cannot be used (empty expected URI, a status that does not fit, ...).
    #[error("invalid status input: {0}")]
    InvalidInput(&'static str),
}

impl StatusError {
    /// Who caused the error.
    #[must_use]
    pub const fn fault(&self) -> Fault {
        match self {
            Self::InvalidInput(_) => Fault::Caller,
            _ => Fault::Peer,
        }
    }
}

/// Bits per status (draft §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bits {
    /// 1 bit: valid or invalid.
    One,
    /// 2 bits: also suspended and one application-specific value.
    Two,
    /// 4 bits.
    Four,
    /// 8 bits.
    Eight,
}

impl Bits {
    /// The number of bits, 1, 2, 4 or 8.
    #[must_use]
    pub const fn get(self) -> u8 {
        match self {
            Self::One => 1,
            Self::Two => 2,
            Self::Four => 4,
            Self::Eight => 8,
        }
    }

    /// Parses the `bits` member; anything but 1, 2, 4 or 8 is `None`.
    #[must_use]
    pub const fn from_u64(value: u64) -> Option<Self> {
        match value {
            1 => Some(Self::One),
            2 => Some(Self::Two),
            4 => Some(Self::Four),
            8 => Some(Self::Eight),
            _ => None,
        }
    }

    const fn mask(self) -> u8 {
        match self {
            Self::Eight => 0xff,
            other => (1 << other.get()) - 1,
        }
    }

    const fn per_byte(self) -> u64 {
        8 / self.get() as u64
    }
}

/// A token's status (draft §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenStatus {
    /// `0x00`: valid.
    Valid,
    /// `0x01`: revoked, for good.
    Invalid,
    /// `0x02`: suspended, may become valid again.
    Suspended,
    /// Any other value (application-specific); a verifier that does not know it rejects the
    /// token.
    Other(u8),
}

impl TokenStatus {
    /// The numeric value.
    #[must_use]
    pub const fn value(self) -> u8 {
        match self {
            Self::Valid => 0,
            Self::Invalid => 1,
            Self::Suspended => 2,
            Self::Other(value) => value,
        }
    }

    /// The status with this value.
    #[must_use]
    pub const fn from_value(value: u8) -> Self {
        match value {
            0 => Self::Valid,
            1 => Self::Invalid,
            2 => Self::Suspended,
            other => Self::Other(other),
        }
    }

    /// Whether the token may be accepted.
    #[must_use]
    pub const fn is_valid(self) -> bool {
        matches!(self, Self::Valid)
    }
}

/// A packed list of token statuses.
#[derive(Clone, PartialEq, Eq)]
pub struct StatusList {
    bits: Bits,
    bytes: Vec<u8>,
}

impl StatusList {
    /// A list with room for at least `entries` statuses, all valid.
    ///
    /// # Errors
    /// [`StatusError::InvalidInput`] if `entries` is 0 or the list would exceed
    /// [`MAX_STATUS_LIST_BYTES`].
    pub fn new(bits: Bits, entries: u64) -> Result<Self, StatusError> {
        let len = entries.div_ceil(bits.per_byte());
        let len = usize::try_from(len)
            .ok()
            .filter(|len| (1..=MAX_STATUS_LIST_BYTES).contains(len))
            .ok_or(StatusError::InvalidInput(
                "status list must hold 1 to 8388608 bytes",
            ))?;
        Ok(Self {
            bits,
            bytes: vec![0; len],
        })
    }

    /// A list over packed `bytes`.
    ///
    /// # Errors
    /// [`StatusError::InvalidInput`] if `bytes` is empty or longer than
    /// [`MAX_STATUS_LIST_BYTES`].
    pub fn from_bytes(bits: Bits, bytes: Vec<u8>) -> Result<Self, StatusError> {
        if bytes.is_empty() || bytes.len() > MAX_STATUS_LIST_BYTES {
            return Err(StatusError::InvalidInput(
                "status list must hold 1 to 8388608 bytes",
            ));
        }
        Ok(Self { bits, bytes })
    }

    /// Bits per status.
    #[must_use]
    pub fn bits(&self) -> Bits {
        self.bits
    }

    /// The packed bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many statuses the list holds (every index below this has one).
    #[must_use]
    pub fn len(&self) -> u64 {
        (self.bytes.len() as u64).saturating_mul(self.bits.per_byte())
    }

    /// Never true: a list holds at least one byte.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn position(&self, idx: u64) -> Option<(usize, u8)> {
        let per_byte = self.bits.per_byte();
        let byte = usize::try_from(idx / per_byte).ok()?;
        if byte >= self.bytes.len() {
            return None;
        }
        // `idx % per_byte < 8`, times at most 8 bits: the shift is below 8.
        let shift = u8::try_from(idx % per_byte).ok()? * self.bits.get();
        Some((byte, shift))
    }

    /// The status at `idx`, or `None` past the end.
    #[must_use]
    pub fn get(&self, idx: u64) -> Option<TokenStatus> {
        let (byte, shift) = self.position(idx)?;
        Some(TokenStatus::from_value(
            (self.bytes[byte] >> shift) & self.bits.mask(),
        ))
    }

    /// Sets the status at `idx`.
    ///
    /// # Errors
    /// [`StatusError::IndexOutOfRange`] past the end; [`StatusError::InvalidInput`] if the
    /// status does not fit in the list's bits (e.g. suspended in a 1-bit list).
    pub fn set(&mut self, idx: u64, status: TokenStatus) -> Result<(), StatusError> {
        let value = status.value();
        if value & !self.bits.mask() != 0 {
            return Err(StatusError::InvalidInput(
                "status does not fit in the list's bits",
            ));
        }
        let (byte, shift) = self.position(idx).ok_or(StatusError::IndexOutOfRange)?;
        let cleared = self.bytes[byte] & !(self.bits.mask() << shift);
        self.bytes[byte] = cleared | (value << shift);
        Ok(())
    }

    /// `lst`: base64url of the zlib-compressed bytes (draft §4.2).
    #[must_use]
    pub fn encode_lst(&self) -> String {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        // INVARIANT: writing into a `Vec` cannot fail, so neither can compressing into one.
        #[expect(clippy::expect_used, reason = "a Vec writer is infallible")]
        let compressed = encoder
            .write_all(&self.bytes)
            .and_then(|()| encoder.finish())
            .expect("compressing into memory");
        b64::encode(&compressed)
    }

    /// Decodes `lst`, refusing anything larger than [`MAX_STATUS_LIST_BYTES`] once
    /// decompressed.
    ///
    /// # Errors
    /// [`StatusError::List`] for non-canonical base64url, invalid zlib, data after the zlib
    /// stream or an empty list; [`StatusError::ListTooLarge`].
    pub fn decode_lst(bits: Bits, lst: &str) -> Result<Self, StatusError> {
        Self::decode_lst_capped(bits, lst, MAX_STATUS_LIST_BYTES)
    }

    fn decode_lst_capped(bits: Bits, lst: &str, max: usize) -> Result<Self, StatusError> {
        let compressed =
            b64::decode(lst).map_err(|_| StatusError::List("lst is not canonical base64url"))?;
        let mut decoder = ZlibDecoder::new(compressed.as_slice());
        let mut bytes = Vec::new();
        // Read one byte past the cap, never more: a bomb costs at most `max + 1` bytes.
        let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
        (&mut decoder)
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|_| StatusError::List("lst is not a valid zlib stream"))?;
        if bytes.len() > max {
            return Err(StatusError::ListTooLarge { max });
        }
        if usize::try_from(decoder.total_in()).ok() != Some(compressed.len()) {
            return Err(StatusError::List("lst has data after the zlib stream"));
        }
        if bytes.is_empty() {
            return Err(StatusError::List("lst is empty"));
        }
        Ok(Self { bits, bytes })
    }
}

impl fmt::Debug for StatusList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusList")
            .field("bits", &self.bits.get())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Signs `list` as a status list token published at `sub_uri`, under `kid`.
///
/// `ttl` (seconds, positive) tells verifiers how long they may cache it; `exp` (if any) is when
/// it stops being valid at all.
///
/// # Errors
/// [`KeyError::InvalidKid`]; [`KeyError::InvalidClaims`] for an empty or too long `sub_uri`,
/// `exp <= iat` or `ttl == 0`; [`KeyError::TooLarge`] beyond [`MAX_STATUS_LIST_TOKEN_LEN`];
/// [`KeyError::Crypto`].
pub fn sign_status_list(
    key: &SigningKey,
    kid: &str,
    sub_uri: &str,
    iat: i64,
    exp: Option<i64>,
    ttl: Option<u64>,
    list: &StatusList,
) -> Result<String, KeyError> {
    check_kid(kid)?;
    if !is_claim_string(sub_uri) {
        return Err(KeyError::InvalidClaims("sub is empty or too long"));
    }
    if exp.is_some_and(|exp| exp <= iat) {
        return Err(KeyError::InvalidClaims("exp is not after iat"));
    }
    if ttl == Some(0) {
        return Err(KeyError::InvalidClaims("ttl is zero"));
    }
    let mut claims = Map::new();
    claims.insert("sub".into(), sub_uri.into());
    claims.insert("iat".into(), iat.into());
    if let Some(exp) = exp {
        claims.insert("exp".into(), exp.into());
    }
    if let Some(ttl) = ttl {
        claims.insert("ttl".into(), ttl.into());
    }
    claims.insert(
        "status_list".into(),
        serde_json::json!({ "bits": list.bits.get(), "lst": list.encode_lst() }),
    );
    jws::sign_with_limit(
        &HeaderFields {
            kid: Some(kid),
            typ: Some(STATUS_LIST_TYP),
            embed_jwk: false,
        },
        &claims,
        key,
        MAX_STATUS_LIST_TOKEN_LEN,
    )
}

/// A status list token whose signature, type, subject and times have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedStatusList {
    kid: String,
    sub: String,
    iat: i64,
    exp: Option<i64>,
    ttl: Option<u64>,
    list: StatusList,
}

impl VerifiedStatusList {
    /// The status key that signed the list.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `sub`: the list's URI.
    #[must_use]
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// `iat` (Unix seconds).
    #[must_use]
    pub fn iat(&self) -> i64 {
        self.iat
    }

    /// `exp` (Unix seconds): past it the list must not be used at all.
    #[must_use]
    pub fn exp(&self) -> Option<i64> {
        self.exp
    }

    /// `ttl` (seconds): how long a verifier may cache the list before fetching it again.
    #[must_use]
    pub fn ttl(&self) -> Option<u64> {
        self.ttl
    }

    /// The list.
    #[must_use]
    pub fn list(&self) -> &StatusList {
        &self.list
    }

    /// The status of the token at `idx`.
    ///
    /// # Errors
    /// [`StatusError::IndexOutOfRange`]: the token must then be rejected (draft §8.3).
    pub fn status_of(&self, idx: u64) -> Result<TokenStatus, StatusError> {
        self.list.get(idx).ok_or(StatusError::IndexOutOfRange)
    }
}

/// Verifies a status list token: structure, `typ` exactly `statuslist+jwt`, `kid` in `keys`
/// (status keys, not the issuer's), signature, then `sub == expected_sub`, `iat` not in the
/// future, `exp` (if any) not passed, `ttl` (if any) a positive integer, and `status_list` with
/// `bits` of 1, 2, 4 or 8 and a decodable `lst`. Unknown claims are ignored. `now` is Unix
/// seconds; [`STATUS_LEEWAY_SECS`] allows for clock skew.
///
/// # Errors
/// A [`StatusError`] naming the first rule broken.
pub fn verify_status_list(
    token: &str,
    keys: &KeySet,
    expected_sub: &str,
    now: i64,
) -> Result<VerifiedStatusList, StatusError> {
    if expected_sub.is_empty() {
        return Err(StatusError::InvalidInput("expected subject is empty"));
    }
    let (kid, claims) = verify_jws(token, keys, STATUS_LIST_TYP, MAX_STATUS_LIST_TOKEN_LEN)?;
    let sub = claim_str(&claims, "sub", "sub is missing or not a string")?;
    if sub != expected_sub {
        return Err(StatusError::WrongSubject);
    }
    let iat = claim_i64(&claims, "iat", "iat is missing or not an integer")?;
    let exp = match claims.get("exp") {
        None => None,
        Some(exp) => Some(
            exp.as_i64()
                .ok_or(StatusError::Claim("exp is not an integer"))?,
        ),
    };
    check_times(iat, exp, now)?;
    let ttl = match claims.get("ttl") {
        None => None,
        Some(ttl) => Some(
            ttl.as_u64()
                .filter(|ttl| *ttl > 0)
                .ok_or(StatusError::Claim("ttl is not a positive integer"))?,
        ),
    };
    let status_list =
        claims
            .get("status_list")
            .and_then(Value::as_object)
            .ok_or(StatusError::Claim(
                "status_list is missing or not an object",
            ))?;
    let bits = status_list
        .get("bits")
        .and_then(Value::as_u64)
        .and_then(Bits::from_u64)
        .ok_or(StatusError::Claim("status_list.bits is not 1, 2, 4 or 8"))?;
    let lst = status_list
        .get("lst")
        .and_then(Value::as_str)
        .ok_or(StatusError::Claim(
            "status_list.lst is missing or not a string",
        ))?;
    let list = StatusList::decode_lst(bits, lst)?;
    Ok(VerifiedStatusList {
        kid,
        sub: sub.to_owned(),
        iat,
        exp,
        ttl,
        list,
    })
}

/// The claims of a status staple, to sign or as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusStapleClaims {
    /// The status list URI of the token (its `status.status_list.uri`).
    pub sub: String,
    /// The token's index in that list.
    pub idx: u64,
    /// The token's status.
    pub status: TokenStatus,
    /// The verifier's challenge, echoed.
    pub nonce: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expiry (Unix seconds), at most [`MAX_STAPLE_LIFETIME_SECS`] after `iat`.
    pub exp: i64,
}

/// What a verifier asked a staple about.
#[derive(Debug, Clone, Copy)]
pub struct StapleExpectation<'a> {
    /// The token's status list URI.
    pub sub: &'a str,
    /// The token's index.
    pub idx: u64,
    /// The nonce the verifier sent.
    pub nonce: &'a str,
}

/// A status staple whose signature, type, subject, nonce and times have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedStatusStaple {
    kid: String,
    claims: StatusStapleClaims,
}

impl VerifiedStatusStaple {
    /// The status key that signed the staple.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The claims.
    #[must_use]
    pub fn claims(&self) -> &StatusStapleClaims {
        &self.claims
    }

    /// The token's status.
    #[must_use]
    pub fn status(&self) -> TokenStatus {
        self.claims.status
    }
}

/// Signs a status staple under `kid`.
///
/// # Errors
/// [`KeyError::InvalidKid`]; [`KeyError::InvalidClaims`] for an empty or too long `sub`, a
/// nonce that is not 1–256 visible ASCII characters, `exp <= iat` or a lifetime over
/// [`MAX_STAPLE_LIFETIME_SECS`]; [`KeyError::Crypto`].
pub fn sign_status_staple(
    key: &SigningKey,
    kid: &str,
    claims: &StatusStapleClaims,
) -> Result<String, KeyError> {
    check_kid(kid)?;
    if !is_claim_string(&claims.sub) {
        return Err(KeyError::InvalidClaims("sub is empty or too long"));
    }
    if !is_nonce(&claims.nonce) {
        return Err(KeyError::InvalidClaims(
            "nonce is not 1-256 visible ascii characters",
        ));
    }
    if claims.exp <= claims.iat {
        return Err(KeyError::InvalidClaims("exp is not after iat"));
    }
    if claims.exp.saturating_sub(claims.iat) > MAX_STAPLE_LIFETIME_SECS {
        return Err(KeyError::InvalidClaims("staple lifetime is too long"));
    }
    let claims = serde_json::json!({
        "sub": claims.sub,
        "idx": claims.idx,
        "status": claims.status.value(),
        "nonce": claims.nonce,
        "iat": claims.iat,
        "exp": claims.exp,
    });
    jws::sign(
        &HeaderFields {
            kid: Some(kid),
            typ: Some(STATUS_STAPLE_TYP),
            embed_jwk: false,
        },
        &claims,
        key,
    )
}

/// Verifies a status staple: structure, `typ` exactly `daas-status+jwt`, `kid` in `keys`
/// (status keys), signature, then `sub` and `idx` equal to `expected`, `nonce` equal to the
/// verifier's, `exp - iat` in `1..=60`, `iat` not in the future and `exp` not passed.
///
/// # Errors
/// A [`StatusError`] naming the first rule broken.
pub fn verify_status_staple(
    token: &str,
    keys: &KeySet,
    expected: &StapleExpectation<'_>,
    now: i64,
) -> Result<VerifiedStatusStaple, StatusError> {
    if expected.nonce.is_empty() {
        return Err(StatusError::InvalidInput(
            "expected subject or nonce is empty",
        ));
    }
    verify_status_staple_with(
        token,
        keys,
        expected.sub,
        expected.idx,
        |nonce| nonce == expected.nonce,
        now,
    )
}

/// [`verify_status_staple`] for a verifier that issues stateless nonces and so does not know
/// in advance which one the staple echoes: `nonce_ok` is called once, with the staple's nonce,
/// after the signature, `sub` and `idx` have been checked, and must say whether this verifier
/// issued it and it is still current. `false` is [`StatusError::NonceMismatch`].
///
/// # Errors
/// A [`StatusError`] naming the first rule broken.
pub fn verify_status_staple_with(
    token: &str,
    keys: &KeySet,
    expected_sub: &str,
    expected_idx: u64,
    nonce_ok: impl FnOnce(&str) -> bool,
    now: i64,
) -> Result<VerifiedStatusStaple, StatusError> {
    if expected_sub.is_empty() {
        return Err(StatusError::InvalidInput(
            "expected subject or nonce is empty",
        ));
    }
    let (kid, claims) = verify_jws(token, keys, STATUS_STAPLE_TYP, crate::MAX_TOKEN_LEN)?;
    let sub = claim_str(&claims, "sub", "sub is missing or not a string")?;
    let idx = claims
        .get("idx")
        .and_then(Value::as_u64)
        .ok_or(StatusError::Claim(
            "idx is missing or not an unsigned integer",
        ))?;
    if sub != expected_sub || idx != expected_idx {
        return Err(StatusError::StapleMismatch);
    }
    let status = claims
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|status| u8::try_from(status).ok())
        .ok_or(StatusError::Claim("status is missing or not 0-255"))?;
    let nonce = claim_str(&claims, "nonce", "nonce is missing or not a string")?;
    if !nonce_ok(nonce) {
        return Err(StatusError::NonceMismatch);
    }
    let iat = claim_i64(&claims, "iat", "iat is missing or not an integer")?;
    let exp = claim_i64(&claims, "exp", "exp is missing or not an integer")?;
    if exp <= iat || exp.saturating_sub(iat) > MAX_STAPLE_LIFETIME_SECS {
        return Err(StatusError::LifetimeTooLong);
    }
    check_times(iat, Some(exp), now)?;
    Ok(VerifiedStatusStaple {
        kid,
        claims: StatusStapleClaims {
            sub: sub.to_owned(),
            idx,
            status: TokenStatus::from_value(status),
            nonce: nonce.to_owned(),
            iat,
            exp,
        },
    })
}

/// Parses under the default header policy, requires `typ` exactly (no `application/` prefix),
/// verifies against `keys` and returns the `kid` and claims.
fn verify_jws(
    token: &str,
    keys: &KeySet,
    typ: &str,
    max_len: usize,
) -> Result<(String, Map<String, Value>), StatusError> {
    let unverified = Unverified::parse_with_limit(token, HeaderPolicy::default(), max_len)
        .map_err(StatusError::Jws)?;
    if unverified.header().typ() != Some(typ) {
        return Err(StatusError::WrongType);
    }
    let (header, claims) = unverified
        .verify::<Map<String, Value>>(keys, Some(typ))
        .map_err(StatusError::Jws)?
        .into_parts();
    let kid = header
        .kid()
        .ok_or(StatusError::Jws(JwsError::Malformed("kid is missing")))?
        .to_owned();
    Ok((kid, claims))
}

fn check_times(iat: i64, exp: Option<i64>, now: i64) -> Result<(), StatusError> {
    if iat > now.saturating_add(STATUS_LEEWAY_SECS) {
        return Err(StatusError::IssuedInFuture);
    }
    if exp.is_some_and(|exp| now.saturating_sub(STATUS_LEEWAY_SECS) >= exp) {
        return Err(StatusError::Expired);
    }
    Ok(())
}

fn claim_str<'c>(
    claims: &'c Map<String, Value>,
    name: &str,
    error: &'static str,
) -> Result<&'c str, StatusError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|value| is_claim_string(value))
        .ok_or(StatusError::Claim(error))
}

fn claim_i64(
    claims: &Map<String, Value>,
    name: &str,
    error: &'static str,
) -> Result<i64, StatusError> {
    claims
        .get(name)
        .and_then(Value::as_i64)
        .ok_or(StatusError::Claim(error))
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    if kid.is_empty() || kid.len() > crate::jwk::MAX_KID_LEN {
        return Err(KeyError::InvalidKid);
    }
    Ok(())
}

fn is_claim_string(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_CLAIM_LEN
}

fn is_nonce(nonce: &str) -> bool {
    (1..=MAX_STAPLE_NONCE_LEN).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
