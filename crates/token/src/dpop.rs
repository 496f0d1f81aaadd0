//! DPoP proofs (RFC 9449): building them on the client, verifying them on the server.
//!
//! A proof is a JWS with header `{typ: "dpop+jwt", alg, jwk}` and claims
//! `{jti, htm, htu, iat, ath?, nonce?}`, signed by the client's proof-of-possession key. The
//! server checks every rule of RFC 9449 §4.3 in [`verify_proof`]; the order is: structure and
//! header (before any cryptography), signature with the embedded key, claims, binding to the
//! access token, nonce, and finally — through [`PendingReplayCheck`] — the replay cache, so
//! that only a proof that passed everything else records its `jti`.
//!
//! Compared with the RFC, this profile is stricter in a few places, each on purpose:
//! `typ` must be exactly `dpop+jwt` (no `application/` prefix); `kid`, `jku`, `x5u`, `x5c`,
//! `x5t`, `crit` and unknown header parameters are refused; `jti` is 1–64 visible ASCII
//! characters; `iat` is an integer; `ath` without an access token is refused; `htu` is compared
//! in the normal form of [`crate::htu`], which refuses dot segments.

use crate::access::VerifiedAccessToken;
use crate::htu::normalize_htu;
use crate::jwk::{PublicJwk, SigningKey};
use crate::jws::{self, HeaderFields, HeaderPolicy, Unverified};
use crate::nonce::NonceKey;
use crate::replay::{PendingReplayCheck, ReplayKey};
use crate::{DpopError, JwsError, KeyError, b64};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const PROOF_TYP: &str = "dpop+jwt";

/// Longest accepted `jti`. RFC 9449 only asks for enough randomness; a bound keeps replay
/// keys' input and audit lines small.
pub const MAX_JTI_LEN: usize = 64;

/// Random bytes in a generated `jti` (RFC 9449 §4.2 asks for at least 96 bits).
const JTI_RANDOM_BYTES: usize = 16;

/// The `iat` window for proofs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofPolicy {
    /// How old a proof may be, in seconds: `iat >= now - max_age_secs`. Also how long its
    /// `jti` stays in the replay cache.
    pub max_age_secs: u32,
    /// How far in the future `iat` may be, for client clocks running ahead.
    pub future_leeway_secs: u32,
}

impl Default for ProofPolicy {
    /// 60 s back, 5 s ahead.
    fn default() -> Self {
        Self {
            max_age_secs: 60,
            future_leeway_secs: 5,
        }
    }
}

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    /// The HTTP method, as received (`GET`, `POST`, ...); compared case-sensitively.
    pub method: &'a str,
    /// The absolute target URI the server received the request on (scheme and host as the
    /// client addressed them); query and fragment are ignored.
    pub uri: &'a str,
    /// The verified access token presented with the proof, if any: the proof's `ath` must be
    /// its hash and the proof's key its `cnf.jkt`. `None` for requests without a token (e.g. a
    /// token request, RFC 9449 §5), where the proof may not carry `ath`.
    pub access_token: Option<&'a VerifiedAccessToken>,
}

/// A proof that passed every check of [`verify_proof`]. Only this crate can make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    jwk: PublicJwk,
    jkt: String,
    jti: String,
    iat: i64,
    htm: String,
    htu: String,
}

impl VerifiedProof {
    /// The proof key.
    #[must_use]
    pub fn jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// The proof key's RFC 7638 thumbprint: what a token issued to this client is bound to.
    #[must_use]
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// The proof's unique id.
    #[must_use]
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// When the client made the proof (Unix seconds).
    #[must_use]
    pub fn iat(&self) -> i64 {
        self.iat
    }

    /// The HTTP method the proof is for.
    #[must_use]
    pub fn htm(&self) -> &str {
        &self.htm
    }

    /// The URI the proof is for, normalised.
    #[must_use]
    pub fn htu(&self) -> &str {
        &self.htu
    }
}

/// `ath`: base64url(SHA-256(ASCII of the access token)) (RFC 9449 §4.2).
#[must_use]
pub fn access_token_hash(access_token: &str) -> String {
    b64::encode(digest::digest(&digest::SHA256, access_token.as_bytes()).as_ref())
}

/// Builds a proof for one request (client side).
///
/// `url` is the request's target URI; it is put in `htu` normalised and without query and
/// fragment. `jti` defaults to 16 random bytes in base64url. `access_token` adds its `ath`;
/// `nonce` is the server's last `DPoP-Nonce`.
///
/// # Errors
/// [`KeyError::InvalidClaims`] if the method, URL or `jti` could never verify;
/// [`KeyError::Crypto`] if randomness or signing fails.
pub fn build_proof(
    key: &SigningKey,
    method: &str,
    url: &str,
    iat: i64,
    jti: Option<&str>,
    access_token: Option<&str>,
    nonce: Option<&str>,
) -> Result<String, KeyError> {
    if !is_http_token(method) {
        return Err(KeyError::InvalidClaims(
            "method is not an http method token",
        ));
    }
    let htu =
        normalize_htu(url).map_err(|_| KeyError::InvalidClaims("url is not acceptable as htu"))?;
    let jti = match jti {
        Some(jti) if is_valid_jti(jti) => jti.to_owned(),
        Some(_) => {
            return Err(KeyError::InvalidClaims(
                "jti is not 1-64 visible ascii characters",
            ));
        }
        None => random_jti()?,
    };
    let mut claims = Map::new();
    claims.insert("jti".into(), jti.into());
    claims.insert("htm".into(), method.into());
    claims.insert("htu".into(), htu.into());
    claims.insert("iat".into(), iat.into());
    if let Some(token) = access_token {
        claims.insert("ath".into(), access_token_hash(token).into());
    }
    if let Some(nonce) = nonce {
        claims.insert("nonce".into(), nonce.into());
    }
    jws::sign(
        &HeaderFields {
            kid: None,
            typ: Some(PROOF_TYP),
            embed_jwk: true,
        },
        &claims,
        key,
    )
}

fn random_jti() -> Result<String, KeyError> {
    let mut bytes = [0u8; JTI_RANDOM_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KeyError::Crypto("random jti"))?;
    Ok(b64::encode(&bytes))
}

/// Picks the one proof from the values of the request's `DPoP` header fields (RFC 9449 §4.3
/// step 1: not more than one). Pass every field value, in order, without splitting on commas.
///
/// # Errors
/// [`DpopError::MissingProof`] for none, [`DpopError::MultipleProofs`] for more than one.
pub fn single_proof<'a>(header_values: &[&'a str]) -> Result<&'a str, DpopError> {
    match header_values {
        [] => Err(DpopError::MissingProof),
        [one] => Ok(one),
        _ => Err(DpopError::MultipleProofs),
    }
}

/// Verifies the DPoP proof of a request against every rule of RFC 9449 §4.3 except replay,
/// which the returned [`PendingReplayCheck`] does last.
///
/// `proof_headers` are the values of all `DPoP` header fields of the request (see
/// [`single_proof`]). With `nonce_key`, the proof must carry a nonce issued by it (RFC 9449
/// §8); without, a `nonce` claim is ignored. `now` is Unix seconds.
///
/// Without an access token in `request` the proof binds nothing by itself: it shows possession
/// of [`VerifiedProof::jkt`], which the caller then binds (e.g. into a token's `cnf.jkt`) or
/// compares with a binding it already trusts.
///
/// # Errors
/// A [`DpopError`] naming the first rule broken; [`DpopError::error_code`] says what to answer.
pub fn verify_proof(
    proof_headers: &[&str],
    request: &ProofRequest<'_>,
    policy: &ProofPolicy,
    nonce_key: Option<&NonceKey>,
    now: i64,
) -> Result<PendingReplayCheck<VerifiedProof>, DpopError> {
    let proof = single_proof(proof_headers)?;
    let unverified = Unverified::parse_with_policy(
        proof,
        HeaderPolicy {
            allow_embedded_jwk: true,
        },
    )
    .map_err(DpopError::Proof)?;
    if unverified.header().typ() != Some(PROOF_TYP) {
        return Err(DpopError::ProofType);
    }
    // A `kid` would invite looking a key up somewhere other than the proof itself.
    if unverified.header().kid().is_some() {
        return Err(DpopError::Proof(JwsError::ForbiddenHeader("kid")));
    }
    let (header, claims) = unverified
        .verify_with_embedded_jwk::<Map<String, Value>>(PROOF_TYP)
        .map_err(DpopError::Proof)?
        .into_parts();
    let jwk = header
        .jwk()
        .ok_or(DpopError::Proof(JwsError::Malformed("jwk is missing")))?
        .clone();

    let jti = claim_str(&claims, "jti", "jti is missing or not a string")?;
    if !is_valid_jti(jti) {
        return Err(DpopError::ProofClaim(
            "jti is not 1-64 visible ascii characters",
        ));
    }
    let htm = claim_str(&claims, "htm", "htm is missing or not a string")?;
    let htu = claim_str(&claims, "htu", "htu is missing or not a string")?;
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(DpopError::ProofClaim("iat is missing or not an integer"))?;

    if htm != request.method {
        return Err(DpopError::MethodMismatch);
    }
    let htu =
        normalize_htu(htu).map_err(|_| DpopError::ProofClaim("htu is not an acceptable uri"))?;
    let request_uri = normalize_htu(request.uri).map_err(DpopError::RequestUri)?;
    if htu != request_uri {
        return Err(DpopError::UriMismatch);
    }

    let oldest = now.saturating_sub(i64::from(policy.max_age_secs));
    let newest = now.saturating_add(i64::from(policy.future_leeway_secs));
    if iat < oldest || iat > newest {
        return Err(DpopError::IatOutOfWindow);
    }

    let ath = match claims.get("ath") {
        None => None,
        Some(Value::String(ath)) => Some(ath.as_str()),
        Some(_) => return Err(DpopError::ProofClaim("ath is not a string")),
    };
    match (request.access_token, ath) {
        (Some(token), Some(ath)) => {
            if !bool::from(token.access_token_hash().as_bytes().ct_eq(ath.as_bytes())) {
                return Err(DpopError::AthMismatch);
            }
            if !jwk.thumbprint_matches(token.jkt()) {
                return Err(DpopError::KeyMismatch);
            }
        }
        (Some(_), None) => return Err(DpopError::ProofClaim("ath is missing")),
        (None, Some(_)) => {
            return Err(DpopError::ProofClaim(
                "ath is present without an access token",
            ));
        }
        (None, None) => {}
    }

    match (nonce_key, claims.get("nonce")) {
        (_, Some(nonce)) if !nonce.is_string() => {
            return Err(DpopError::ProofClaim("nonce is not a string"));
        }
        (Some(key), Some(Value::String(nonce))) => {
            key.verify(nonce, now).map_err(DpopError::Nonce)?;
        }
        (Some(_), _) => return Err(DpopError::NonceMissing),
        (None, _) => {}
    }

    let jkt = jwk.thumbprint();
    let replay_key = ReplayKey::derive(&jkt, jti);
    // The proof passes the iat check while `iat >= now - max_age`: keep its key until then.
    let expires_at = iat
        .saturating_add(i64::from(policy.max_age_secs))
        .saturating_add(1);
    let proof = VerifiedProof {
        jwk,
        jkt,
        jti: jti.to_owned(),
        iat,
        htm: htm.to_owned(),
        htu,
    };
    Ok(PendingReplayCheck::new(proof, replay_key, expires_at))
}

fn claim_str<'c>(
    claims: &'c Map<String, Value>,
    name: &str,
    missing: &'static str,
) -> Result<&'c str, DpopError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .ok_or(DpopError::ProofClaim(missing))
}

fn is_valid_jti(jti: &str) -> bool {
    (1..=MAX_JTI_LEN).contains(&jti.len()) && jti.bytes().all(|b| b.is_ascii_graphic())
}

/// RFC 9110 §5.6.2 `token`: what an HTTP method can be.
fn is_http_token(method: &str) -> bool {
    !method.is_empty()
        && method.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

#[cfg(test)]
#[path = "dpop_tests.rs"]
mod tests;
