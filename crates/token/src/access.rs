//! DPoP-bound access tokens: RFC 9068 JWTs with `cnf.jkt` (RFC 9449 §6) and an optional
//! Token Status List reference (draft-ietf-oauth-status-list), as DESIGN.md §5 describes.
//!
//! Header: `typ` exactly `at+jwt`, `alg` `EdDSA` or `ES256`, `kid` naming a key in the
//! verifier's [`KeySet`]; `jwk`, `jku`, `x5u`, `x5c`, `x5t`, `crit` are refused. Claims:
//! `iss`, `sub`, `aud` (a string or a non-empty array of strings), `exp`, `iat`, `jti`,
//! `cnf: {jkt}` required; `nbf`, `scope`, `status: {status_list: {idx, uri}}`, `client_id`
//! optional; other claims are ignored. Times are integers (Unix seconds).
//!
//! [`verify_dpop_request`] is the resource server's whole check: token, then proof, then
//! binding, then — last — the replay cache.

use crate::dpop::{ProofPolicy, ProofRequest, VerifiedProof, access_token_hash, verify_proof};
use crate::jwk::{KeySet, SigningKey};
use crate::jws::{self, HeaderFields, Unverified};
use crate::nonce::NonceKey;
use crate::replay::{PendingReplayCheck, ReplayCache};
use crate::token_cache::VerifiedTokenCache;
use crate::{AccessTokenError, DpopError, JwsError, KeyError, b64};
use serde_json::{Map, Value};

/// The `typ` of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Longest accepted string claim (`iss`, `sub`, `jti`, each audience, `client_id`,
/// `status.status_list.uri`, `scope`). Our tokens stay far below it.
pub const MAX_CLAIM_LEN: usize = 1024;

/// A reference into a Token Status List (draft-ietf-oauth-status-list §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusListRef {
    /// The token's index in the list.
    pub idx: u64,
    /// Where the status list token is published.
    pub uri: String,
}

/// The claims of an access token, to issue or as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject (e.g. a SPIFFE ID).
    pub sub: String,
    /// Audiences; at least one. One is issued as a string, several as an array.
    pub aud: Vec<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Not before (Unix seconds).
    pub nbf: Option<i64>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Unique token id.
    pub jti: String,
    /// Scope tokens; issued as one space-separated `scope` string, omitted when empty.
    pub scope: Vec<String>,
    /// `cnf.jkt`: the RFC 7638 thumbprint of the key every proof must be signed with.
    pub jkt: String,
    /// Revocation status reference.
    pub status: Option<StatusListRef>,
    /// The OAuth client the token was issued to.
    pub client_id: Option<String>,
}

/// An access token whose signature, key, type, issuer, audience and times have been checked.
/// Only [`verify_access_token`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAccessToken {
    kid: String,
    claims: AccessTokenClaims,
    ath: String,
}

impl VerifiedAccessToken {
    /// The claims.
    #[must_use]
    pub fn claims(&self) -> &AccessTokenClaims {
        &self.claims
    }

    /// The issuer key that signed the token.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `cnf.jkt`: the thumbprint of the key the token is bound to.
    #[must_use]
    pub fn jkt(&self) -> &str {
        &self.claims.jkt
    }

    /// The token's `ath` (see [`access_token_hash`]), what its proofs must carry.
    #[must_use]
    pub fn access_token_hash(&self) -> &str {
        &self.ath
    }
}

#[cfg(test)]
impl VerifiedAccessToken {
    /// A stand-in for a verified token bound to `jkt`, for proof tests.
    pub(crate) fn for_tests(token: &str, jkt: String) -> Self {
        Self {
            kid: "test".into(),
            claims: AccessTokenClaims {
                iss: "iss".into(),
                sub: "sub".into(),
                aud: vec!["aud".into()],
                exp: 1,
                nbf: None,
                iat: 0,
                jti: "jti".into(),
                scope: Vec::new(),
                jkt,
                status: None,
                client_id: None,
            },
            ath: access_token_hash(token),
        }
    }
}

/// Checks that `claims` could verify: what [`issue_access_token`] checks before signing, for an
/// issuer that must validate a request before it records and signs the token.
///
/// # Errors
/// [`KeyError::InvalidClaims`] for an empty or over-long `iss`, `sub`, `jti`, audience,
/// `client_id` or status `uri`, a malformed scope token, a scope over [`MAX_CLAIM_LEN`], a
/// malformed `jkt` or `exp <= iat`.
pub fn check_access_token_claims(claims: &AccessTokenClaims) -> Result<(), KeyError> {
    for (value, what) in [
        (&claims.iss, "iss is empty or too long"),
        (&claims.sub, "sub is empty or too long"),
        (&claims.jti, "jti is empty or too long"),
    ] {
        if !is_claim_string(value) {
            return Err(KeyError::InvalidClaims(what));
        }
    }
    if claims.aud.is_empty() || !claims.aud.iter().all(|a| is_claim_string(a)) {
        return Err(KeyError::InvalidClaims(
            "aud is empty or has an empty or too long entry",
        ));
    }
    if !claims.scope.iter().all(|s| is_scope_token(s)) {
        return Err(KeyError::InvalidClaims("scope has an invalid scope token"));
    }
    if !is_jkt(&claims.jkt) {
        return Err(KeyError::InvalidClaims("jkt is not a sha-256 thumbprint"));
    }
    if claims.exp <= claims.iat {
        return Err(KeyError::InvalidClaims("exp is not after iat"));
    }
    if let Some(status) = &claims.status
        && !is_claim_string(&status.uri)
    {
        return Err(KeyError::InvalidClaims("status uri is empty or too long"));
    }
    if let Some(client_id) = &claims.client_id
        && !is_claim_string(client_id)
    {
        return Err(KeyError::InvalidClaims("client_id is empty or too long"));
    }
    if claims.scope.iter().map(|s| s.len() + 1).sum::<usize>() > MAX_CLAIM_LEN + 1 {
        return Err(KeyError::InvalidClaims("scope is too long"));
    }
    Ok(())
}

/// Signs `claims` as an access token with `key`, under `kid` (its name in verifiers' key sets).
///
/// # Errors
/// [`KeyError::InvalidClaims`] for claims no verifier would accept (an empty `iss`, `sub`,
/// `jti` or audience, a malformed scope token or `jkt`, `exp <= iat`);
/// [`KeyError::InvalidKid`]; the errors of [`jws::sign`].
pub fn issue_access_token(
    key: &SigningKey,
    kid: &str,
    claims: &AccessTokenClaims,
) -> Result<String, KeyError> {
    if kid.is_empty() || kid.len() > crate::jwk::MAX_KID_LEN {
        return Err(KeyError::InvalidKid);
    }
    check_access_token_claims(claims)?;

    let mut map = Map::new();
    map.insert("iss".into(), claims.iss.clone().into());
    map.insert("sub".into(), claims.sub.clone().into());
    map.insert(
        "aud".into(),
        match claims.aud.as_slice() {
            [one] => one.clone().into(),
            many => many.to_vec().into(),
        },
    );
    map.insert("exp".into(), claims.exp.into());
    if let Some(nbf) = claims.nbf {
        map.insert("nbf".into(), nbf.into());
    }
    map.insert("iat".into(), claims.iat.into());
    map.insert("jti".into(), claims.jti.clone().into());
    if !claims.scope.is_empty() {
        map.insert("scope".into(), claims.scope.join(" ").into());
    }
    map.insert("cnf".into(), serde_json::json!({ "jkt": claims.jkt }));
    if let Some(status) = &claims.status {
        map.insert(
            "status".into(),
            serde_json::json!({ "status_list": { "idx": status.idx, "uri": status.uri } }),
        );
    }
    if let Some(client_id) = &claims.client_id {
        map.insert("client_id".into(), client_id.clone().into());
    }
    jws::sign(
        &HeaderFields {
            kid: Some(kid),
            typ: Some(ACCESS_TOKEN_TYP),
            embed_jwk: false,
        },
        &map,
        key,
    )
}

/// Verifies an access token: structure, header, `kid` in `keys`, signature, `typ`, then the
/// claims. `expected_aud` must be one of the token's audiences. `now` is Unix seconds;
/// `leeway_secs` widens `exp`, `nbf` and `iat` for clock skew.
///
/// The token's `cnf.jkt` binding is not checked here: a bare bearer check would defeat DPoP.
/// Use [`verify_dpop_request`], or check a proof with [`crate::verify_proof`].
///
/// # Errors
/// An [`AccessTokenError`] naming the first rule broken.
pub fn verify_access_token(
    token: &str,
    keys: &KeySet,
    expected_iss: &str,
    expected_aud: &str,
    now: i64,
    leeway_secs: u32,
) -> Result<VerifiedAccessToken, AccessTokenError> {
    let expect = Expectations {
        iss: expected_iss,
        aud: expected_aud,
        now,
        leeway_secs,
    };
    verify_through(token, keys, &expect, None)
}

/// [`verify_access_token`] through `cache`: a token verified before (the same bytes) whose
/// issuer key is still in `keys` is not verified again, but its issuer, audience and times are
/// checked again against this call's expectations and `now`. See [`VerifiedTokenCache`].
///
/// # Errors
/// As [`verify_access_token`].
pub fn verify_access_token_cached(
    token: &str,
    keys: &KeySet,
    expected_iss: &str,
    expected_aud: &str,
    now: i64,
    leeway_secs: u32,
    cache: &VerifiedTokenCache,
) -> Result<VerifiedAccessToken, AccessTokenError> {
    let expect = Expectations {
        iss: expected_iss,
        aud: expected_aud,
        now,
        leeway_secs,
    };
    verify_through(token, keys, &expect, Some(cache))
}

/// What the verifier expects of a token, and when.
struct Expectations<'a> {
    iss: &'a str,
    aud: &'a str,
    now: i64,
    leeway_secs: u32,
}

fn verify_through(
    token: &str,
    keys: &KeySet,
    expect: &Expectations<'_>,
    cache: Option<&VerifiedTokenCache>,
) -> Result<VerifiedAccessToken, AccessTokenError> {
    check_expectation_inputs(expect.iss, expect.aud)?;
    // Over-long input is refused by the parser below before any hashing work is spent on it.
    if let Some(cache) = cache
        && token.len() <= jws::MAX_TOKEN_LEN
        && let Some(hit) = cache.get(&access_token_hash(token), keys)
    {
        check_expectations(&hit.claims, expect)?;
        return Ok(hit);
    }
    let verified = verify_signed_token(token, keys)?;
    check_expectations(&verified.claims, expect)?;
    if let Some(cache) = cache {
        // Only a token that passed every check is remembered.
        cache.insert(&verified, keys, expect.now);
    }
    Ok(verified)
}

fn check_expectation_inputs(
    expected_iss: &str,
    expected_aud: &str,
) -> Result<(), AccessTokenError> {
    if expected_iss.is_empty() {
        return Err(AccessTokenError::InvalidExpectation(
            "expected issuer is empty",
        ));
    }
    if expected_aud.is_empty() {
        return Err(AccessTokenError::InvalidExpectation(
            "expected audience is empty",
        ));
    }
    Ok(())
}

/// Structure, header, `kid` in `keys`, signature, `typ` and the claims' syntax: everything that
/// depends only on the token's bytes and the key set.
fn verify_signed_token(
    token: &str,
    keys: &KeySet,
) -> Result<VerifiedAccessToken, AccessTokenError> {
    let unverified = Unverified::parse(token).map_err(AccessTokenError::Jws)?;
    if unverified.header().typ() != Some(ACCESS_TOKEN_TYP) {
        return Err(AccessTokenError::WrongType);
    }
    let (header, map) = unverified
        .verify::<Map<String, Value>>(keys, Some(ACCESS_TOKEN_TYP))
        .map_err(AccessTokenError::Jws)?
        .into_parts();
    let kid = header
        .kid()
        .ok_or(AccessTokenError::Jws(JwsError::Malformed("kid is missing")))?
        .to_owned();
    let claims = parse_claims(&map)?;
    Ok(VerifiedAccessToken {
        kid,
        claims,
        ath: access_token_hash(token),
    })
}

/// What depends on the verifier's expectations and clock.
fn check_expectations(
    claims: &AccessTokenClaims,
    expect: &Expectations<'_>,
) -> Result<(), AccessTokenError> {
    let (expected_iss, expected_aud, now) = (expect.iss, expect.aud, expect.now);
    let leeway_secs = expect.leeway_secs;
    if claims.iss != expected_iss {
        return Err(AccessTokenError::WrongIssuer);
    }
    if !claims.aud.iter().any(|aud| aud == expected_aud) {
        return Err(AccessTokenError::WrongAudience);
    }
    let leeway = i64::from(leeway_secs);
    if now.saturating_sub(leeway) >= claims.exp {
        return Err(AccessTokenError::Expired);
    }
    if let Some(nbf) = claims.nbf
        && now.saturating_add(leeway) < nbf
    {
        return Err(AccessTokenError::NotYetValid);
    }
    if claims.iat > now.saturating_add(leeway) {
        return Err(AccessTokenError::IssuedInFuture);
    }
    Ok(())
}

fn parse_claims(map: &Map<String, Value>) -> Result<AccessTokenClaims, AccessTokenError> {
    use AccessTokenError::Claim;
    let string = |name: &str, error: &'static str| -> Result<String, AccessTokenError> {
        match map.get(name) {
            Some(Value::String(s)) if is_claim_string(s) => Ok(s.clone()),
            _ => Err(Claim(error)),
        }
    };
    let optional_string = |name: &str, error: &'static str| match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if is_claim_string(s) => Ok(Some(s.clone())),
        Some(_) => Err(Claim(error)),
    };
    let integer =
        |name: &str, error: &'static str| map.get(name).and_then(Value::as_i64).ok_or(Claim(error));

    let aud = match map.get("aud") {
        Some(Value::String(one)) if is_claim_string(one) => vec![one.clone()],
        Some(Value::Array(many)) if !many.is_empty() => many
            .iter()
            .map(|a| match a {
                Value::String(s) if is_claim_string(s) => Ok(s.clone()),
                _ => Err(Claim("aud has an entry that is not a non-empty string")),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(Claim(
                "aud is missing, empty, or not a string or array of strings",
            ));
        }
    };
    let nbf = match map.get("nbf") {
        None => None,
        Some(value) => Some(value.as_i64().ok_or(Claim("nbf is not an integer"))?),
    };
    let scope = match map.get("scope") {
        None => Vec::new(),
        Some(Value::String(s)) if s.len() <= MAX_CLAIM_LEN && s.split(' ').all(is_scope_token) => {
            s.split(' ').map(str::to_owned).collect()
        }
        Some(_) => return Err(Claim("scope is not a space-separated list of scope tokens")),
    };
    let jkt = match map.get("cnf").and_then(Value::as_object) {
        Some(cnf) if cnf.len() == 1 => match cnf.get("jkt") {
            Some(Value::String(jkt)) if is_jkt(jkt) => jkt.clone(),
            _ => return Err(Claim("cnf.jkt is not a sha-256 thumbprint")),
        },
        _ => return Err(Claim("cnf is missing or not exactly {jkt}")),
    };
    let status = match map.get("status") {
        None => None,
        Some(status) => {
            Some(parse_status(status).ok_or(Claim("status is not {status_list: {idx, uri}}"))?)
        }
    };

    Ok(AccessTokenClaims {
        iss: string("iss", "iss is missing or not a non-empty string")?,
        sub: string("sub", "sub is missing or not a non-empty string")?,
        aud,
        exp: integer("exp", "exp is missing or not an integer")?,
        nbf,
        iat: integer("iat", "iat is missing or not an integer")?,
        jti: string("jti", "jti is missing or not a non-empty string")?,
        scope,
        jkt,
        status,
        client_id: optional_string("client_id", "client_id is not a non-empty string")?,
    })
}

fn parse_status(status: &Value) -> Option<StatusListRef> {
    let status = status.as_object()?;
    let list = status.get("status_list")?.as_object()?;
    if status.len() != 1 || list.len() != 2 {
        return None;
    }
    let idx = list.get("idx")?.as_u64()?;
    let uri = list.get("uri")?.as_str()?;
    is_claim_string(uri).then(|| StatusListRef {
        idx,
        uri: uri.to_owned(),
    })
}

fn is_claim_string(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_CLAIM_LEN
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

/// A SHA-256 thumbprint in canonical base64url: 43 characters, 32 bytes.
fn is_jkt(jkt: &str) -> bool {
    jkt.len() == 43 && b64::decode(jkt).is_ok_and(|bytes| bytes.len() == 32)
}

/// A request to a DPoP-protected resource, as received.
#[derive(Debug, Clone, Copy)]
pub struct DpopRequest<'a> {
    /// The access token from `Authorization: DPoP <token>`.
    pub access_token: &'a str,
    /// The values of every `DPoP` header field of the request.
    pub proof_headers: &'a [&'a str],
    /// The HTTP method.
    pub method: &'a str,
    /// The absolute target URI.
    pub uri: &'a str,
}

/// What a resource server accepts.
#[derive(Debug, Clone, Copy)]
pub struct DpopPolicy<'a> {
    /// Issuer keys by `kid`.
    pub keys: &'a KeySet,
    /// The expected `iss`.
    pub issuer: &'a str,
    /// This service's audience.
    pub audience: &'a str,
    /// Clock-skew allowance for the token's `exp`, `nbf` and `iat`.
    pub token_leeway_secs: u32,
    /// The proofs' `iat` window.
    pub proof: ProofPolicy,
    /// Require proofs to carry a nonce from this key.
    pub nonce_key: Option<&'a NonceKey>,
    /// Remember verified tokens here, so a token presented again costs no signature check
    /// (see [`VerifiedTokenCache`]); `None`: verify every time.
    pub token_cache: Option<&'a VerifiedTokenCache>,
}

/// Verifies a DPoP-bound request completely: the access token, then the proof against the
/// request and the token (`ath`, `cnf.jkt`), then records the proof in `replay_cache`.
///
/// # Errors
/// A [`DpopError`]; [`DpopError::error_code`] says what to answer.
pub fn verify_dpop_request(
    request: &DpopRequest<'_>,
    policy: &DpopPolicy<'_>,
    replay_cache: &(impl ReplayCache + ?Sized),
    now: i64,
) -> Result<(VerifiedAccessToken, VerifiedProof), DpopError> {
    verify_dpop_request_pending(request, policy, now)?.check(replay_cache, now)
}

/// [`verify_dpop_request`] without the replay step, for servers whose replay store is
/// asynchronous: record [`PendingReplayCheck::replay_key`] atomically until
/// [`PendingReplayCheck::expires_at`], then call [`PendingReplayCheck::finish`].
///
/// # Errors
/// As [`verify_dpop_request`], except [`DpopError::Replayed`] and [`DpopError::ReplayCache`].
pub fn verify_dpop_request_pending(
    request: &DpopRequest<'_>,
    policy: &DpopPolicy<'_>,
    now: i64,
) -> Result<PendingReplayCheck<(VerifiedAccessToken, VerifiedProof)>, DpopError> {
    let expect = Expectations {
        iss: policy.issuer,
        aud: policy.audience,
        now,
        leeway_secs: policy.token_leeway_secs,
    };
    let token = verify_through(
        request.access_token,
        policy.keys,
        &expect,
        policy.token_cache,
    )?;
    let pending = verify_proof(
        request.proof_headers,
        &ProofRequest {
            method: request.method,
            uri: request.uri,
            access_token: Some(&token),
        },
        &policy.proof,
        policy.nonce_key,
        now,
    )?;
    Ok(pending.map(|proof| (token, proof)))
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
