//! JWT-SVIDs (SPIFFE JWT-SVID standard): issuance by the trust-domain CA and validation as a pure
//! function over JWT bundles, for the sensor's `ValidateJWTSVID` and for any relying party.
//!
//! The token layer is `daas_token`'s strict JWS parser (canonical base64url, no duplicate JSON
//! keys, no unknown or key-reference header parameters, signature length fixed, the key's pinned
//! algorithm must equal `alg`). On top of it this module applies the JWT-SVID rules:
//!
//! - `alg` must be `ES256`. The spec allows RS*, PS* and ES384/ES512 as well; we cannot verify
//!   those, so they are refused (an interoperability gap, not a security one). `EdDSA`, `none`
//!   and `HS*` are not JWT-SVID algorithms and are refused too.
//! - `kid` is required (the spec makes it optional; without it we could only try every key) and is
//!   looked up in the bundles; the token is accepted only if it verifies under a key of the bundle
//!   of the trust domain of its `sub`, so a trust domain cannot vouch for another's identities.
//! - `typ`, if present, is `JWT` or `JOSE`.
//! - `sub` is a SPIFFE ID with a path; `aud` (string or non-empty array of strings) contains the
//!   validator's audience; `exp` is required and in the future, with [`LEEWAY`] for clock skew;
//!   `nbf`, if present, is not in the future (same leeway).
//!
//! Claims are only read after the signature verified (the `Unverified` type has no accessor).

use std::collections::BTreeMap;
use std::time::Duration;

use daas_token::{HeaderFields, JwsError, Unverified};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::ca::{MAX_JWT_AUDIENCE_LEN, MAX_JWT_AUDIENCES, MAX_JWT_SVID_TTL, TrustDomainCa};
use crate::error::{CallerError, Error, InternalError};
use crate::jwks::{self, Jwks};
use crate::spiffe_id::{SpiffeId, TrustDomain};

/// Clock-skew allowance when checking `exp` and `nbf`: a token is still accepted this long after
/// its `exp`. JWT-SVIDs live minutes, so the allowance is kept small.
pub const LEEWAY: time::Duration = time::Duration::seconds(30);
/// The `typ` we put in the tokens we issue.
pub const JWT_SVID_TYP: &str = "JWT";

/// The JWT-SVID signing keys of one trust domain (a JWK set with `use: "jwt-svid"`).
#[derive(Debug, Clone)]
pub struct JwtBundle {
    trust_domain: TrustDomain,
    jwks: Jwks,
}

impl JwtBundle {
    /// An empty bundle.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            jwks: Jwks::new(jwks::JWT_SVID),
        }
    }

    /// Parses a JWK set (`{"keys":[...]}`, e.g. `jwt_authorities` of the daas bundle, or a SPIFFE
    /// bundle). Keys with another `use` (e.g. `x509-svid`) and key types we cannot verify (RSA,
    /// P-384, Ed25519) are skipped; a malformed ES256 key, a private key, a missing or duplicate
    /// `kid` or duplicate JSON members are errors.
    pub fn from_jwks_json(trust_domain: TrustDomain, bytes: &[u8]) -> Result<Self, CallerError> {
        Ok(Self {
            trust_domain,
            jwks: Jwks::parse(bytes, jwks::JWT_SVID)?,
        })
    }

    /// Like [`JwtBundle::from_jwks_json`], from an already parsed JSON value.
    pub fn from_jwks_value(trust_domain: TrustDomain, value: &Value) -> Result<Self, CallerError> {
        let map = value
            .as_object()
            .ok_or(CallerError::Bundle("jwk set is not an object"))?;
        Ok(Self {
            trust_domain,
            jwks: Jwks::from_map(map, jwks::JWT_SVID)?,
        })
    }

    /// Reads the body of `GET /v1/identity/bundle` or `GET /v1/identity/node/bundle`: its
    /// `trust_domain` (a trust domain ID, `spiffe://<td>`) and `jwt_authorities`.
    pub fn from_trust_bundle_json(bytes: &[u8]) -> Result<Self, CallerError> {
        let bad = CallerError::Bundle;
        let map = daas_token::parse_strict_json_object(bytes)
            .map_err(|_| bad("bundle is not a json object without duplicates"))?;
        let td = map
            .get("trust_domain")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<SpiffeId>().ok())
            .filter(SpiffeId::is_trust_domain_id)
            .ok_or(bad("bundle has no trust_domain id"))?;
        let keys = map
            .get("jwt_authorities")
            .ok_or(bad("bundle has no jwt_authorities"))?;
        Self::from_jwks_value(td.trust_domain().clone(), keys)
    }

    /// The JWK set as JSON text (each key with `kid` and `use: "jwt-svid"`).
    pub fn to_jwks_json(&self) -> String {
        self.to_jwks_value().to_string()
    }

    /// The JWK set as a JSON value.
    pub fn to_jwks_value(&self) -> Value {
        self.jwks.to_value()
    }

    /// The trust domain whose keys these are.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The key ids, in publication order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.jwks.kids()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.jwks.len()
    }

    /// Whether the bundle holds no key.
    pub fn is_empty(&self) -> bool {
        self.jwks.len() == 0
    }

    pub(crate) fn insert(&mut self, kid: &str, jwk: daas_token::PublicJwk) -> Result<(), Error> {
        Ok(self.jwks.insert(kid, jwk)?)
    }
}

/// JWT bundles by trust domain: what a validator trusts.
#[derive(Debug, Clone, Default)]
pub struct JwtBundleSet {
    bundles: BTreeMap<TrustDomain, JwtBundle>,
}

impl JwtBundleSet {
    /// An empty set (validates nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// A set holding one trust domain's JWK set.
    pub fn from_jwks_json(trust_domain: TrustDomain, bytes: &[u8]) -> Result<Self, CallerError> {
        let mut set = Self::new();
        set.insert(JwtBundle::from_jwks_json(trust_domain, bytes)?);
        Ok(set)
    }

    /// Adds or replaces the bundle of its trust domain; returns the replaced one.
    pub fn insert(&mut self, bundle: JwtBundle) -> Option<JwtBundle> {
        self.bundles.insert(bundle.trust_domain.clone(), bundle)
    }

    /// The bundle of `trust_domain`.
    pub fn get(&self, trust_domain: &TrustDomain) -> Option<&JwtBundle> {
        self.bundles.get(trust_domain)
    }

    /// Every bundle's JWK set as JSON text, by trust domain name (the shape of the Workload
    /// API's `JWTBundlesResponse.bundles`).
    pub fn to_jwks_json(&self) -> BTreeMap<String, String> {
        self.bundles
            .iter()
            .map(|(td, b)| (td.as_str().to_owned(), b.to_jwks_json()))
            .collect()
    }

    /// The bundles, by trust domain.
    pub fn iter(&self) -> impl Iterator<Item = &JwtBundle> {
        self.bundles.values()
    }
}

/// A JWT-SVID that passed [`validate_jwt_svid`]. Only validation builds one.
#[derive(Debug, Clone)]
pub struct ValidatedJwtSvid {
    spiffe_id: SpiffeId,
    claims: Map<String, Value>,
    expires_at: OffsetDateTime,
    kid: String,
}

impl ValidatedJwtSvid {
    /// The `sub` claim.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// Every claim, as signed (the Workload API returns them as a `Struct`).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The `exp` claim (whole seconds).
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }

    /// The `kid` of the key that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// Why a JWT-SVID was refused. Every variant is the presenter's fault; messages never echo the
/// token, so they may be audited as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtSvidRejection {
    /// The JWS structure, encoding, header or claims' JSON is not acceptable.
    #[error("malformed token: {0}")]
    Malformed(JwsError),
    /// `alg` is not `ES256`.
    #[error("unsupported algorithm")]
    UnsupportedAlg,
    /// `typ` is neither absent nor `JWT`/`JOSE`.
    #[error("typ must be absent, JWT or JOSE")]
    WrongType,
    /// No `kid` header.
    #[error("kid is missing")]
    MissingKid,
    /// No bundle holds a key under the token's `kid`.
    #[error("unknown key id")]
    UnknownKey,
    /// The signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// Signed by a key of one trust domain for a subject of another.
    #[error("signed by the key of another trust domain than the subject's")]
    ForeignTrustDomain,
    /// `sub` is missing or not a SPIFFE ID with a path.
    #[error("sub is not a spiffe id of a workload")]
    InvalidSubject,
    /// `aud` is missing or not a string or non-empty array of strings.
    #[error("aud is missing or malformed")]
    InvalidAudience,
    /// `aud` does not contain the validator's audience.
    #[error("the token is not for this audience")]
    AudienceMismatch,
    /// `exp` is missing or not a number.
    #[error("exp is missing or malformed")]
    InvalidExpiry,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is malformed or in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// A JWT-SVID validation error, by fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtSvidError {
    /// The token's fault: answer with an opaque refusal, audit the reason.
    #[error("jwt-svid rejected: {0}")]
    Rejected(#[from] JwtSvidRejection),
    /// The validator's own arguments are invalid (e.g. an empty audience).
    #[error("invalid validation argument: {0}")]
    Caller(&'static str),
}

/// Validates `token` as a JWT-SVID for `audience` against `bundles` at `now` (see the module
/// documentation for the rules).
pub fn validate_jwt_svid(
    token: &str,
    audience: &str,
    bundles: &JwtBundleSet,
    now: OffsetDateTime,
) -> Result<ValidatedJwtSvid, JwtSvidError> {
    use JwtSvidRejection as R;
    if audience.is_empty() {
        return Err(JwtSvidError::Caller("audience is empty"));
    }
    let parse = |t: &str| {
        Unverified::parse(t).map_err(|e| match e {
            JwsError::UnsupportedAlg => R::UnsupportedAlg,
            other => R::Malformed(other),
        })
    };
    let unverified = parse(token)?;
    let header = unverified.header();
    if header.alg() != daas_token::Alg::Es256 {
        return Err(R::UnsupportedAlg.into());
    }
    if !matches!(header.typ(), None | Some("JWT" | "JOSE")) {
        return Err(R::WrongType.into());
    }
    let kid = header.kid().ok_or(R::MissingKid)?.to_owned();
    let mut candidates = bundles
        .bundles
        .values()
        .filter(|b| b.jwks.key_set().get(&kid).is_some())
        .peekable();
    if candidates.peek().is_none() {
        return Err(R::UnknownKey.into());
    }
    let mut unverified = Some(unverified);
    let mut last = R::UnknownKey;
    for bundle in candidates {
        // A `kid` in several bundles (the same key published by two trust domains) is tried in
        // each; only the bundle of the subject's trust domain may vouch for it.
        let attempt = match unverified.take() {
            Some(u) => u,
            None => parse(token)?,
        };
        let claims = match attempt.verify::<Map<String, Value>>(bundle.jwks.key_set(), None) {
            Ok(verified) => verified.into_claims(),
            Err(JwsError::BadSignature) => {
                last = R::BadSignature;
                continue;
            }
            Err(e) => return Err(R::Malformed(e).into()),
        };
        let spiffe_id = claims
            .get("sub")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<SpiffeId>().ok())
            .filter(|id| !id.is_trust_domain_id())
            .ok_or(R::InvalidSubject)?;
        if !spiffe_id.is_member_of(&bundle.trust_domain) {
            last = R::ForeignTrustDomain;
            continue;
        }
        check_audience(&claims, audience)?;
        let expires_at = check_times(&claims, now)?;
        return Ok(ValidatedJwtSvid {
            spiffe_id,
            claims,
            expires_at,
            kid,
        });
    }
    Err(last.into())
}

fn check_audience(claims: &Map<String, Value>, audience: &str) -> Result<(), JwtSvidRejection> {
    let found = match claims.get("aud") {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) if !auds.is_empty() => {
            let mut found = false;
            for aud in auds {
                let aud = aud.as_str().ok_or(JwtSvidRejection::InvalidAudience)?;
                found |= aud == audience;
            }
            found
        }
        _ => return Err(JwtSvidRejection::InvalidAudience),
    };
    if found {
        Ok(())
    } else {
        Err(JwtSvidRejection::AudienceMismatch)
    }
}

/// A NumericDate (RFC 7519 §2): seconds, possibly fractional; rounded down.
fn numeric_date(value: &Value) -> Option<OffsetDateTime> {
    let secs = match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        })?,
        _ => return None,
    };
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

fn check_times(
    claims: &Map<String, Value>,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, JwtSvidRejection> {
    let exp = claims
        .get("exp")
        .and_then(numeric_date)
        .ok_or(JwtSvidRejection::InvalidExpiry)?;
    // `now - LEEWAY`, not `exp + LEEWAY`: a signed `exp` near the end of time must not
    // overflow (now is the real clock, far from either end).
    if now - LEEWAY >= exp {
        return Err(JwtSvidRejection::Expired);
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = numeric_date(nbf).ok_or(JwtSvidRejection::NotYetValid)?;
        if nbf > now + LEEWAY {
            return Err(JwtSvidRejection::NotYetValid);
        }
    }
    Ok(exp)
}

/// Checks an audience list for issuance: 1..=16 values of 1..=256 printable characters.
pub fn check_audiences(audience: &[String]) -> Result<(), CallerError> {
    if audience.is_empty() || audience.len() > MAX_JWT_AUDIENCES {
        return Err(CallerError::Audience("1 to 16 audience values"));
    }
    for aud in audience {
        if aud.is_empty() || aud.len() > MAX_JWT_AUDIENCE_LEN {
            return Err(CallerError::Audience("each 1 to 256 bytes"));
        }
        if aud.chars().any(char::is_control) {
            return Err(CallerError::Audience("printable characters only"));
        }
    }
    Ok(())
}

impl TrustDomainCa {
    /// The JWT-SVID keys not expired at `now`, as a bundle.
    pub fn jwt_bundle(&self, now: OffsetDateTime) -> JwtBundle {
        let mut bundle = JwtBundle::new(self.trust_domain().clone());
        for key in self.jwt_keys().iter().filter(|k| now < k.not_after) {
            // Our own keys: distinct thumbprints of valid ES256 keys, so this cannot fail.
            if bundle
                .insert(&key.kid, key.key.public_jwk().clone())
                .is_err()
            {
                tracing::error!(kid = %key.kid, "jwt-svid key not publishable");
            }
        }
        bundle
    }

    /// Issues a JWT-SVID for `spiffe_id` with the given audience: ES256, `kid` and `typ: JWT` in
    /// the header; `sub`, `aud` (always an array), `exp` = min(now + ttl, key expiry) and `iat`.
    ///
    /// The caller must first check that the requester may obtain `spiffe_id`
    /// ([`crate::entry::authorize_svid_request`]).
    pub fn issue_jwt_svid(
        &self,
        spiffe_id: &SpiffeId,
        audience: &[String],
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<String, Error> {
        self.issue_jwt_svid_with_expiry(spiffe_id, audience, ttl, now)
            .map(|(token, _)| token)
    }

    /// [`TrustDomainCa::issue_jwt_svid`], also returning the token's `exp`.
    pub fn issue_jwt_svid_with_expiry(
        &self,
        spiffe_id: &SpiffeId,
        audience: &[String],
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<(String, OffsetDateTime), Error> {
        if !spiffe_id.is_member_of(self.trust_domain()) {
            return Err(CallerError::NotInTrustDomain {
                trust_domain: self.trust_domain().to_string(),
            }
            .into());
        }
        if spiffe_id.is_trust_domain_id() {
            return Err(CallerError::NoPath.into());
        }
        check_audiences(audience)?;
        if ttl < Duration::from_secs(1) {
            return Err(CallerError::Ttl("must be at least one second").into());
        }
        if ttl > MAX_JWT_SVID_TTL {
            return Err(CallerError::Ttl("must be at most 24 hours").into());
        }
        let key = self.jwt_keys().last().ok_or(CallerError::NoValidCa)?;
        if !key.valid_at(now) {
            return Err(CallerError::NoValidCa.into());
        }
        let ttl = time::Duration::try_from(ttl).map_err(|_| CallerError::Ttl("out of range"))?;
        let expires_at = (now + ttl)
            .min(key.not_after)
            .replace_nanosecond(0)
            .map_err(|_| CallerError::Ttl("out of range"))?;
        let exp = expires_at.unix_timestamp();
        if exp <= now.unix_timestamp() {
            return Err(CallerError::NoValidCa.into());
        }
        let claims = serde_json::json!({
            "sub": spiffe_id.to_string(),
            "aud": audience,
            "exp": exp,
            "iat": now.unix_timestamp(),
        });
        daas_token::sign(
            &HeaderFields {
                kid: Some(&key.kid),
                typ: Some(JWT_SVID_TYP),
                embed_jwk: false,
            },
            &claims,
            &key.key,
        )
        .map(|token| (token, expires_at))
        .map_err(|_| InternalError::Crypto.into())
    }
}

#[cfg(test)]
#[path = "jwt_svid_tests.rs"]
mod tests;
