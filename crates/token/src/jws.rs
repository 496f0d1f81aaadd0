//! Compact JWS (RFC 7515 §7.1) for `EdDSA` and `ES256`, verified under RFC 8725.
//!
//! [`Unverified::parse`] does every structural and policy check that needs no key: size, three
//! segments, canonical base64url, JSON objects without duplicate keys, a supported `alg`, no
//! forbidden or unknown header parameters, the signature length. The verify methods then check
//! `typ`, select the key, require its pinned algorithm, and only then run the signature check.
//! Claims are reachable only through [`Verified`], so code cannot read them by mistake before the
//! signature is checked.

use crate::json::{self, JsonError};
use crate::jwk::{KeySet, PublicJwk, SigningKey, VerifyingKey};
use crate::{Alg, JwsError, KeyError, b64};
use core::fmt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Largest accepted compact token, in bytes. Bounds the work done on unauthenticated input
/// (base64 and JSON parsing happen before the signature check); our tokens are well under 2 KiB.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Length of an Ed25519 or ES256 (fixed `r || s`) signature.
const SIGNATURE_LEN: usize = 64;

/// Header parameters that make the verifier fetch or trust key material named by the token
/// (RFC 8725 §3.10): refused whatever the policy. `jwk` is handled by [`HeaderPolicy`].
const KEY_REFERENCE_HEADERS: [&str; 5] = ["jku", "x5u", "x5c", "x5t", "x5t#S256"];

/// Which optional header parameters a kind of token may carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderPolicy {
    /// Accept a `jwk` header parameter. Only DPoP proofs (RFC 9449 §4.2) need this: their key is
    /// the embedded one, checked with [`Unverified::verify_with_embedded_jwk`] and bound to a
    /// token by its thumbprint. Tokens verified against a [`KeySet`] or a fixed key never carry
    /// one, whatever the policy.
    pub allow_embedded_jwk: bool,
}

/// Header parameters to put in a token being signed. `alg` always comes from the key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderFields<'a> {
    /// `kid`: names the key in the verifier's [`KeySet`].
    pub kid: Option<&'a str>,
    /// `typ`: the explicit token type (RFC 8725 §3.11), e.g. `"dpop+jwt"`.
    pub typ: Option<&'a str>,
    /// Embed the signing key's public JWK as `jwk` (DPoP proofs only).
    pub embed_jwk: bool,
}

/// The protected header of a parsed token: what a verifier needs to choose a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    alg: Alg,
    kid: Option<String>,
    typ: Option<String>,
    jwk: Option<PublicJwk>,
}

impl Header {
    /// `alg`, already known to be `EdDSA` or `ES256`.
    #[must_use]
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// `kid`, an opaque label to look up in memory; never use it as a path, URL or query.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// `typ`, verbatim.
    #[must_use]
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }

    /// The embedded public key, present only when [`HeaderPolicy::allow_embedded_jwk`] was set.
    #[must_use]
    pub fn jwk(&self) -> Option<&PublicJwk> {
        self.jwk.as_ref()
    }

    fn from_map(map: &Map<String, Value>, policy: HeaderPolicy) -> Result<Self, JwsError> {
        let mut alg = None;
        let mut kid = None;
        let mut typ = None;
        let mut jwk = None;
        for (name, value) in map {
            match name.as_str() {
                "alg" => {
                    let text = value
                        .as_str()
                        .ok_or(JwsError::Malformed("alg is not a string"))?;
                    alg = Some(Alg::from_header(text).ok_or(JwsError::UnsupportedAlg)?);
                }
                "kid" => {
                    kid = Some(
                        value
                            .as_str()
                            .ok_or(JwsError::Malformed("kid is not a string"))?,
                    );
                }
                "typ" => {
                    typ = Some(
                        value
                            .as_str()
                            .ok_or(JwsError::Malformed("typ is not a string"))?,
                    );
                }
                "jwk" => {
                    if !policy.allow_embedded_jwk {
                        return Err(JwsError::ForbiddenHeader("jwk"));
                    }
                    let object = value
                        .as_object()
                        .ok_or(JwsError::Malformed("jwk is not an object"))?;
                    jwk =
                        Some(PublicJwk::from_map(object).map_err(|_| {
                            JwsError::Malformed("jwk is not an acceptable public key")
                        })?);
                }
                "crit" => return Err(JwsError::ForbiddenHeader("crit")),
                // RFC 7797: `b64: false` changes what is signed; `true` is the default meaning.
                "b64" => {
                    if value != &Value::Bool(true) {
                        return Err(JwsError::ForbiddenHeader("b64"));
                    }
                }
                other => {
                    return Err(KEY_REFERENCE_HEADERS
                        .iter()
                        .find(|forbidden| **forbidden == other)
                        .map_or(JwsError::UnknownHeader, |forbidden| {
                            JwsError::ForbiddenHeader(forbidden)
                        }));
                }
            }
        }
        Ok(Self {
            alg: alg.ok_or(JwsError::Malformed("alg is missing"))?,
            kid: kid.map(str::to_owned),
            typ: typ.map(str::to_owned),
            jwk,
        })
    }
}

/// Signs `claims` (which must serialize to a JSON object) as a compact JWS with `key`.
///
/// # Errors
/// [`KeyError::ClaimsNotObject`] if the claims are not a JSON object, [`KeyError::TooLarge`] if
/// the token would exceed [`MAX_TOKEN_LEN`], [`KeyError::Crypto`] if signing fails.
pub fn sign<C: Serialize + ?Sized>(
    fields: &HeaderFields<'_>,
    claims: &C,
    key: &SigningKey,
) -> Result<String, KeyError> {
    sign_with_limit(fields, claims, key, MAX_TOKEN_LEN)
}

/// [`sign`] with another size limit, for token kinds that are larger by nature (status lists).
pub(crate) fn sign_with_limit<C: Serialize + ?Sized>(
    fields: &HeaderFields<'_>,
    claims: &C,
    key: &SigningKey,
    max_len: usize,
) -> Result<String, KeyError> {
    let mut header = Map::new();
    header.insert("alg".into(), key.alg().as_str().into());
    if let Some(kid) = fields.kid {
        header.insert("kid".into(), kid.into());
    }
    if let Some(typ) = fields.typ {
        header.insert("typ".into(), typ.into());
    }
    if fields.embed_jwk {
        header.insert("jwk".into(), key.public_jwk().to_value());
    }
    let claims = match serde_json::to_value(claims) {
        Ok(Value::Object(map)) => map,
        _ => return Err(KeyError::ClaimsNotObject),
    };
    // Serializing a `Map` cannot fail: its keys are strings and its values are JSON already.
    let header = serde_json::to_vec(&header).map_err(|_| KeyError::Crypto("header encoding"))?;
    let claims = serde_json::to_vec(&claims).map_err(|_| KeyError::ClaimsNotObject)?;

    let mut token = b64::encode(&header);
    token.push('.');
    token.push_str(&b64::encode(&claims));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64::encode(&signature));
    if token.len() > max_len {
        return Err(KeyError::TooLarge { max: max_len });
    }
    Ok(token)
}

/// Verifies one raw signature: the primitive under every `verify*` method, exposed so the
/// Wycheproof suites can exercise exactly the code tokens go through.
///
/// `public_key` is 32 bytes for Ed25519 or the uncompressed point `04 || x || y` for P-256;
/// `signature` must be 64 bytes (ES256 in `r || s` form, never DER).
///
/// # Errors
/// [`JwsError::BadSignature`] if the key is unacceptable or the signature does not verify.
#[doc(hidden)]
pub fn verify_signature(
    alg: Alg,
    public_key: &[u8],
    signing_input: &[u8],
    signature: &[u8],
) -> Result<(), JwsError> {
    VerifyingKey::from_raw(alg, public_key)
        .map_err(|_| JwsError::BadSignature)?
        .verify_raw(signing_input, signature)
}

/// A compact JWS whose structure and header have been checked but whose signature has not.
///
/// It deliberately has no way to read the claims:
///
/// ```compile_fail
/// let token = daas_token::Unverified::parse("a.b.c").unwrap();
/// let _ = token.claims();
/// ```
pub struct Unverified {
    header: Header,
    signing_input: String,
    claims: Map<String, Value>,
    signature: Vec<u8>,
}

impl Unverified {
    /// Parses `token` under the default [`HeaderPolicy`] (no embedded `jwk`).
    ///
    /// # Errors
    /// See [`Unverified::parse_with_policy`].
    pub fn parse(token: &str) -> Result<Self, JwsError> {
        Self::parse_with_policy(token, HeaderPolicy::default())
    }

    /// Parses `token` and applies every check that needs no key.
    ///
    /// # Errors
    /// [`JwsError::TooLarge`]; [`JwsError::Malformed`] for structure, encoding, JSON (including
    /// duplicate keys) and signature length; [`JwsError::UnsupportedAlg`];
    /// [`JwsError::ForbiddenHeader`] for `jku`, `x5u`, `x5c`, `x5t`, `x5t#S256`, `crit`,
    /// `b64: false`, and `jwk` unless `policy` allows it; [`JwsError::UnknownHeader`].
    pub fn parse_with_policy(token: &str, policy: HeaderPolicy) -> Result<Self, JwsError> {
        Self::parse_with_limit(token, policy, MAX_TOKEN_LEN)
    }

    /// [`Unverified::parse_with_policy`] with another size limit, for token kinds that are
    /// larger by nature (status lists).
    pub(crate) fn parse_with_limit(
        token: &str,
        policy: HeaderPolicy,
        max_len: usize,
    ) -> Result<Self, JwsError> {
        if token.len() > max_len {
            return Err(JwsError::TooLarge { max: max_len });
        }
        let mut segments = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(JwsError::Malformed("expected three dot-separated segments"));
        };

        let header_json = b64::decode(header_b64)
            .map_err(|_| JwsError::Malformed("header is not canonical base64url"))?;
        let payload_json = b64::decode(payload_b64)
            .map_err(|_| JwsError::Malformed("payload is not canonical base64url"))?;
        let signature = b64::decode(signature_b64)
            .map_err(|_| JwsError::Malformed("signature is not canonical base64url"))?;

        let header_map = json::parse_object(&header_json).map_err(|e| match e {
            JsonError::Invalid => JwsError::Malformed("header is not json without duplicate keys"),
            JsonError::NotObject => JwsError::Malformed("header is not a json object"),
        })?;
        let header = Header::from_map(&header_map, policy)?;
        let claims = json::parse_object(&payload_json).map_err(|e| match e {
            JsonError::Invalid => JwsError::Malformed("payload is not json without duplicate keys"),
            JsonError::NotObject => JwsError::Malformed("payload is not a json object"),
        })?;
        if signature.len() != SIGNATURE_LEN {
            return Err(JwsError::Malformed("signature has the wrong length"));
        }

        Ok(Self {
            header,
            signing_input: format!("{header_b64}.{payload_b64}"),
            claims,
            signature,
        })
    }

    /// The protected header, to choose a key or route the token. Nothing in it is trustworthy
    /// until a verify method succeeds.
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Verifies against the key named by `kid` in `keys`; `expected_typ` (if any) must match.
    ///
    /// # Errors
    /// [`JwsError::ForbiddenHeader`] for an embedded `jwk`, [`JwsError::WrongType`],
    /// [`JwsError::Malformed`] without `kid`, [`JwsError::UnknownKey`],
    /// [`JwsError::AlgMismatch`], [`JwsError::BadSignature`], [`JwsError::InvalidClaims`].
    pub fn verify<T: DeserializeOwned>(
        self,
        keys: &KeySet,
        expected_typ: Option<&str>,
    ) -> Result<Verified<T>, JwsError> {
        self.refuse_embedded_jwk()?;
        check_typ(&self.header, expected_typ)?;
        let kid = self
            .header
            .kid()
            .ok_or(JwsError::Malformed("kid is missing"))?;
        let key = keys.get(kid).ok_or(JwsError::UnknownKey)?;
        self.finish(key, expected_typ)
    }

    /// Verifies against one known key (e.g. an issuer's identity key); a `kid`, if present, is
    /// not consulted.
    ///
    /// # Errors
    /// As [`Unverified::verify`], without [`JwsError::UnknownKey`].
    pub fn verify_with_key<T: DeserializeOwned>(
        self,
        key: &VerifyingKey,
        expected_typ: Option<&str>,
    ) -> Result<Verified<T>, JwsError> {
        self.refuse_embedded_jwk()?;
        self.finish(key, expected_typ)
    }

    /// Verifies against the key in the `jwk` header (DPoP proofs, RFC 9449 §4.3). The caller must
    /// then bind that key to something it trusts, e.g. compare [`PublicJwk::thumbprint`] with the
    /// access token's `cnf.jkt`; a valid self-signed proof alone proves nothing.
    ///
    /// # Errors
    /// [`JwsError::Malformed`] without an embedded `jwk` or with one that is not a valid public
    /// key, and as [`Unverified::verify`].
    pub fn verify_with_embedded_jwk<T: DeserializeOwned>(
        self,
        expected_typ: &str,
    ) -> Result<Verified<T>, JwsError> {
        let jwk = self
            .header
            .jwk()
            .ok_or(JwsError::Malformed("jwk is missing"))?;
        check_typ(&self.header, Some(expected_typ))?;
        if jwk.alg() != self.header.alg {
            return Err(JwsError::AlgMismatch);
        }
        let key = jwk
            .verifying_key()
            .map_err(|_| JwsError::Malformed("jwk is not an acceptable public key"))?;
        self.finish(&key, Some(expected_typ))
    }

    fn refuse_embedded_jwk(&self) -> Result<(), JwsError> {
        if self.header.jwk.is_some() {
            return Err(JwsError::ForbiddenHeader("jwk"));
        }
        Ok(())
    }

    fn finish<T: DeserializeOwned>(
        self,
        key: &VerifyingKey,
        expected_typ: Option<&str>,
    ) -> Result<Verified<T>, JwsError> {
        check_typ(&self.header, expected_typ)?;
        if key.alg() != self.header.alg {
            return Err(JwsError::AlgMismatch);
        }
        key.verify_raw(self.signing_input.as_bytes(), &self.signature)?;
        let claims = serde_json::from_value(Value::Object(self.claims))
            .map_err(|_| JwsError::InvalidClaims)?;
        Ok(Verified {
            header: self.header,
            claims,
        })
    }
}

impl fmt::Debug for Unverified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unverified")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Compares `typ` after dropping an optional, case-insensitive `application/` prefix
/// (RFC 7515 §4.1.9); the rest must match exactly. Absent `typ` never matches an expectation.
fn check_typ(header: &Header, expected: Option<&str>) -> Result<(), JwsError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    match header.typ() {
        Some(actual) if strip_application(actual) == strip_application(expected) => Ok(()),
        _ => Err(JwsError::WrongType),
    }
}

fn strip_application(media_type: &str) -> &str {
    const PREFIX: &str = "application/";
    match (
        media_type.get(..PREFIX.len()),
        media_type.get(PREFIX.len()..),
    ) {
        (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case(PREFIX) => rest,
        _ => media_type,
    }
}

/// A token whose signature, key, algorithm and type have been checked.
pub struct Verified<T> {
    header: Header,
    claims: T,
}

impl<T> Verified<T> {
    /// The protected header.
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The claims. Time-based and audience claims are the caller's to check.
    #[must_use]
    pub fn claims(&self) -> &T {
        &self.claims
    }

    /// The claims, by value.
    #[must_use]
    pub fn into_claims(self) -> T {
        self.claims
    }

    /// Header and claims, by value.
    #[must_use]
    pub fn into_parts(self) -> (Header, T) {
        (self.header, self.claims)
    }
}

impl<T: fmt::Debug> fmt::Debug for Verified<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish()
    }
}

#[cfg(test)]
#[path = "jws_tests.rs"]
mod tests;
