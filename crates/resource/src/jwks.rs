//! JWK sets (RFC 7517 §5) into [`KeySet`]s: the issuer's published keys, or the status keys.

use daas_token::{KeySet, PublicJwk, parse_strict_json_object};

/// A JWK set could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// Not a JSON object with a `keys` array, or it has duplicate JSON keys.
    #[error("jwk set is not a json object with a keys array")]
    Malformed,
    /// A key has no string `kid`.
    #[error("jwk set has a key without a kid")]
    MissingKid,
    /// A key is not an acceptable public Ed25519 or P-256 key, or its `kid` is repeated.
    #[error("jwk set has an unusable key: {0}")]
    Key(daas_token::KeyError),
}

/// Parses `{"keys": [...]}` strictly: every key must be a public Ed25519 or P-256 JWK with a
/// `kid`, pinned to its one algorithm.
///
/// # Errors
/// [`JwksError`] for the first problem; nothing is accepted partially.
pub fn key_set_from_jwks(bytes: &[u8]) -> Result<KeySet, JwksError> {
    let map = parse_strict_json_object(bytes).map_err(|_| JwksError::Malformed)?;
    let keys = map
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or(JwksError::Malformed)?;
    let mut set = KeySet::new();
    for key in keys {
        let kid = key
            .get("kid")
            .and_then(serde_json::Value::as_str)
            .ok_or(JwksError::MissingKid)?;
        let text = serde_json::to_vec(key).map_err(|_| JwksError::Malformed)?;
        let verifying = PublicJwk::from_json(&text)
            .and_then(|jwk| jwk.verifying_key())
            .map_err(JwksError::Key)?;
        set.insert(kid, verifying).map_err(JwksError::Key)?;
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use daas_token::{Alg, SigningKey};

    #[test]
    fn parses_and_refuses() {
        let ed = SigningKey::generate(Alg::EdDsa).unwrap();
        let es = SigningKey::generate(Alg::Es256).unwrap();
        let with_kid = |key: &SigningKey, kid: &str| {
            let mut value: serde_json::Value =
                serde_json::from_str(&key.public_jwk().to_json()).unwrap();
            value["kid"] = kid.into();
            value
        };
        let jwks = serde_json::json!({"keys": [with_kid(&ed, "a"), with_kid(&es, "b")]});
        let set = key_set_from_jwks(jwks.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.get("a").is_some() && set.get("b").is_some());

        let dup = serde_json::json!({"keys": [with_kid(&ed, "a"), with_kid(&es, "a")]});
        assert!(matches!(
            key_set_from_jwks(dup.to_string().as_bytes()),
            Err(JwksError::Key(_))
        ));
        let mut no_kid = with_kid(&ed, "a");
        no_kid.as_object_mut().unwrap().remove("kid");
        let missing = serde_json::json!({"keys": [no_kid]});
        assert_eq!(
            key_set_from_jwks(missing.to_string().as_bytes()).err(),
            Some(JwksError::MissingKid)
        );
        let mut private = with_kid(&ed, "a");
        private["d"] = "AAAA".into();
        assert!(matches!(
            key_set_from_jwks(
                serde_json::json!({"keys": [private]})
                    .to_string()
                    .as_bytes()
            ),
            Err(JwksError::Key(_))
        ));
        for bad in [
            &b"[]"[..],
            b"{}",
            br#"{"keys":{}}"#,
            br#"{"keys":[],"keys":[]}"#,
        ] {
            assert_eq!(key_set_from_jwks(bad).err(), Some(JwksError::Malformed));
        }
    }
}
