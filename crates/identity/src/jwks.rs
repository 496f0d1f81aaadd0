//! JWK sets of a trust domain's token-signing authorities: the JWT-SVID keys (`use: "jwt-svid"`,
//! SPIFFE Trust Domain and Bundle spec §4) and the identity-document keys
//! (`use: "daas-document"`), as published in the bundle (`jwt_authorities`,
//! `document_authorities`).
//!
//! Parsing is strict where it matters (no duplicate JSON keys, no private members, every kept key
//! has a unique `kid` and is a valid point) and lenient where SPIFFE bundles vary: keys for the
//! other purpose (e.g. `use: "x509-svid"` entries of a SPIFFE bundle) and key types we cannot
//! verify (RSA, P-384, ...) are skipped, so a token naming them fails as an unknown key.

use daas_token::{Alg, KeySet, PublicJwk};
use serde_json::{Map, Value};

use crate::error::CallerError;

/// Largest JWK set accepted, in bytes.
pub const MAX_JWKS_LEN: usize = 64 * 1024;
/// Most keys kept from one JWK set.
pub const MAX_JWKS_KEYS: usize = 64;

/// What a set of keys is for: the JWK `use` value and the one algorithm its keys have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Purpose {
    pub(crate) use_: &'static str,
    pub(crate) alg: Alg,
}

/// JWT-SVID signing keys: ES256 only (the JWT-SVID spec excludes EdDSA).
pub(crate) const JWT_SVID: Purpose = Purpose {
    use_: "jwt-svid",
    alg: Alg::Es256,
};
/// Identity-document signing keys: Ed25519 (DESIGN.md §4).
pub(crate) const DOCUMENT: Purpose = Purpose {
    use_: "daas-document",
    alg: Alg::EdDsa,
};

/// Public keys by `kid`, for one purpose.
#[derive(Debug, Clone)]
pub(crate) struct Jwks {
    purpose: Purpose,
    /// In publication order (oldest first), for serialization.
    keys: Vec<(String, PublicJwk)>,
    set: KeySet,
}

impl Jwks {
    pub(crate) fn new(purpose: Purpose) -> Self {
        Self {
            purpose,
            keys: Vec::new(),
            set: KeySet::new(),
        }
    }

    /// Adds a key; refuses a key of the wrong algorithm, an invalid point or a duplicate `kid`.
    pub(crate) fn insert(&mut self, kid: &str, jwk: PublicJwk) -> Result<(), CallerError> {
        if jwk.alg() != self.purpose.alg {
            return Err(CallerError::Bundle("key algorithm does not fit its use"));
        }
        if self.keys.len() >= MAX_JWKS_KEYS {
            return Err(CallerError::Bundle("too many keys"));
        }
        let key = jwk
            .verifying_key()
            .map_err(|_| CallerError::Bundle("invalid public key"))?;
        self.set
            .insert(kid, key)
            .map_err(|_| CallerError::Bundle("empty, over-long or duplicate kid"))?;
        self.keys.push((kid.to_owned(), jwk));
        Ok(())
    }

    pub(crate) fn key_set(&self) -> &KeySet {
        &self.set
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _)| kid.as_str())
    }

    /// Parses `{"keys":[...]}` (optionally with the SPIFFE bundle members `spiffe_sequence` and
    /// `spiffe_refresh_hint`).
    pub(crate) fn parse(bytes: &[u8], purpose: Purpose) -> Result<Self, CallerError> {
        if bytes.len() > MAX_JWKS_LEN {
            return Err(CallerError::Bundle("jwk set is too large"));
        }
        let map = daas_token::parse_strict_json_object(bytes)
            .map_err(|_| CallerError::Bundle("jwk set is not a json object without duplicates"))?;
        Self::from_map(&map, purpose)
    }

    pub(crate) fn from_map(
        map: &Map<String, Value>,
        purpose: Purpose,
    ) -> Result<Self, CallerError> {
        let bad = CallerError::Bundle;
        for name in map.keys() {
            match name.as_str() {
                "keys" | "spiffe_sequence" | "spiffe_refresh_hint" => {}
                _ => return Err(bad("unknown member in jwk set")),
            }
        }
        let keys = map
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(bad("jwk set has no keys array"))?;
        let mut out = Self::new(purpose);
        for key in keys {
            let mut key = key.as_object().ok_or(bad("jwk is not an object"))?.clone();
            let key_use = key.remove("use");
            match key_use.as_ref().and_then(Value::as_str) {
                Some(u) if u == purpose.use_ => {}
                // Another purpose's key (an x509-svid entry of a SPIFFE bundle, ...): not ours.
                Some(_) => continue,
                None => return Err(bad("jwk has no use")),
            }
            let kid = match key.remove("kid") {
                Some(Value::String(kid)) => kid,
                _ => return Err(bad("jwk has no string kid")),
            };
            if key.contains_key("d") {
                return Err(bad("jwk holds a private key"));
            }
            let supported = matches!(
                (
                    key.get("kty").and_then(Value::as_str),
                    key.get("crv").and_then(Value::as_str)
                ),
                (Some("EC"), Some("P-256")) | (Some("OKP"), Some("Ed25519"))
            );
            if !supported {
                // RSA, P-384, ...: we cannot verify with it; tokens naming it fail as unknown.
                continue;
            }
            let text =
                serde_json::to_vec(&Value::Object(key)).map_err(|_| bad("jwk does not encode"))?;
            let jwk = PublicJwk::from_json(&text).map_err(|_| bad("jwk is not a valid key"))?;
            if jwk.alg() != purpose.alg {
                // E.g. an Ed25519 key marked jwt-svid: the JWT-SVID spec does not allow EdDSA.
                continue;
            }
            out.insert(&kid, jwk)?;
        }
        Ok(out)
    }

    /// `{"keys":[{..., "kid", "use"}]}`.
    pub(crate) fn to_value(&self) -> Value {
        let keys = self
            .keys
            .iter()
            .map(|(kid, jwk)| {
                let mut map = match serde_json::from_str::<Value>(&jwk.to_json()) {
                    Ok(Value::Object(map)) => map,
                    _ => Map::new(),
                };
                map.insert("kid".into(), kid.clone().into());
                map.insert("use".into(), self.purpose.use_.into());
                Value::Object(map)
            })
            .collect();
        let mut out = Map::new();
        out.insert("keys".into(), Value::Array(keys));
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daas_token::SigningKey;

    fn p256() -> PublicJwk {
        SigningKey::generate(Alg::Es256)
            .unwrap()
            .public_jwk()
            .clone()
    }

    #[test]
    fn round_trips_and_keeps_order() {
        let mut jwks = Jwks::new(JWT_SVID);
        let (a, b) = (p256(), p256());
        jwks.insert("a", a.clone()).unwrap();
        jwks.insert("b", b.clone()).unwrap();
        let text = serde_json::to_vec(&jwks.to_value()).unwrap();
        let again = Jwks::parse(&text, JWT_SVID).unwrap();
        assert_eq!(again.keys, vec![("a".into(), a), ("b".into(), b)]);
        assert!(again.key_set().get("a").is_some());
        // The same text is not a document key set.
        assert_eq!(Jwks::parse(&text, DOCUMENT).unwrap().len(), 0);
    }

    #[test]
    fn refuses_what_could_confuse_a_verifier() {
        let mut jwks = Jwks::new(JWT_SVID);
        jwks.insert("a", p256()).unwrap();
        assert!(jwks.insert("a", p256()).is_err(), "duplicate kid");
        assert!(jwks.insert("", p256()).is_err(), "empty kid");
        let ed = SigningKey::generate(Alg::EdDsa)
            .unwrap()
            .public_jwk()
            .clone();
        assert!(jwks.insert("e", ed).is_err(), "eddsa is not a jwt-svid key");
        let good = serde_json::to_string(&jwks.to_value()).unwrap();
        let key = &good[9..good.len() - 2];
        for bad in [
            format!(r#"{{"keys":[{key},{key}]}}"#),
            format!(r#"{{"keys":[{key}],"keys":[]}}"#),
            format!(r#"{{"keys":[{key}],"other":1}}"#),
            r#"{"keys":{}}"#.to_owned(),
            r#"{"keys":[1]}"#.to_owned(),
            r#"[]"#.to_owned(),
            format!(
                r#"{{"keys":[{}]}}"#,
                key.replace(r#""kid":"a""#, r#""kid":1"#)
            ),
            format!(
                r#"{{"keys":[{}]}}"#,
                key.replace(r#""use":"jwt-svid""#, r#""x":"A""#)
            ),
            format!(
                r#"{{"keys":[{}]}}"#,
                key.replace(r#""use":"jwt-svid""#, r#""use":"jwt-svid","d":"AA""#)
            ),
            format!(r#"{{"keys":[{}]}}"#, key.replace(r#""x":""#, r#""x":"A"#)),
        ] {
            assert!(Jwks::parse(bad.as_bytes(), JWT_SVID).is_err(), "{bad}");
        }
        // Keys for other uses and other algorithms are skipped, not errors.
        let skipped = r#"{"keys":[{"use":"x509-svid","kty":"EC","x5c":["AA"]},{"use":"jwt-svid","kid":"r","kty":"RSA","n":"AQAB","e":"AQAB"}],"spiffe_sequence":3}"#;
        assert_eq!(Jwks::parse(skipped.as_bytes(), JWT_SVID).unwrap().len(), 0);
    }

    /// JSON values shaped like JWK sets, with members drawn from a small vocabulary so that
    /// near-valid keys are common.
    fn jwks_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let x = "KSexBRK64-3c_kZ4KBKLrSkDJpkZ9whgacjE32xzKDg";
        let y = "x3h5ZOqsAOWSH7FJimD0YGdms9loUAFVjRqXTnNBUT4";
        let member = prop_oneof![
            Just(r#""kty":"EC""#.to_owned()),
            Just(r#""kty":"OKP""#.to_owned()),
            Just(r#""crv":"P-256""#.to_owned()),
            Just(r#""crv":"Ed25519""#.to_owned()),
            Just(format!(r#""x":"{x}""#)),
            Just(format!(r#""y":"{y}""#)),
            Just(r#""use":"jwt-svid""#.to_owned()),
            Just(r#""use":"daas-document""#.to_owned()),
            Just(r#""use":"x509-svid""#.to_owned()),
            "[a-z]{1,3}".prop_map(|k| format!(r#""kid":"{k}""#)),
            Just(r#""d":"AA""#.to_owned()),
            Just(r#""alg":"ES256""#.to_owned()),
        ];
        // A valid key's members, each kept with probability 0.9, plus up to two others.
        let base = [
            r#""kty":"EC""#.to_owned(),
            r#""crv":"P-256""#.to_owned(),
            format!(r#""x":"{x}""#),
            format!(r#""y":"{y}""#),
            r#""use":"jwt-svid""#.to_owned(),
        ];
        let key = (
            proptest::collection::vec(proptest::bool::weighted(0.9), 5),
            "[a-z]{1,3}",
            proptest::collection::vec(member, 0..3),
        )
            .prop_map(move |(keep, kid, extra)| {
                let mut members: Vec<String> = base
                    .iter()
                    .zip(keep)
                    .filter(|(_, k)| *k)
                    .map(|(m, _)| m.clone())
                    .collect();
                members.push(format!(r#""kid":"{kid}""#));
                members.extend(extra);
                format!("{{{}}}", members.join(","))
            });
        proptest::collection::vec(key, 0..4)
            .prop_map(|keys| format!(r#"{{"keys":[{}]}}"#, keys.join(",")))
    }

    proptest::proptest! {
        #[test]
        fn prop_parse_never_panics_and_round_trips(text in jwks_like(), raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = Jwks::parse(&raw, JWT_SVID);
            for purpose in [JWT_SVID, DOCUMENT] {
                if let Ok(parsed) = Jwks::parse(text.as_bytes(), purpose) {
                    let again = Jwks::parse(
                        &serde_json::to_vec(&parsed.to_value()).unwrap(),
                        purpose,
                    )
                    .unwrap();
                    proptest::prop_assert_eq!(&again.keys, &parsed.keys);
                    for (_, jwk) in &parsed.keys {
                        proptest::prop_assert_eq!(jwk.alg(), purpose.alg);
                    }
                }
            }
        }
    }
}
