//! Keys: public JWKs (RFC 7517, RFC 8037, RFC 7518 §6.2), RFC 7638 thumbprints, verification keys
//! pinned to one algorithm, key sets selected by `kid`, and private signing keys.

use crate::json;
use crate::{Alg, JwsError, KeyError, b64};
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, ParsedPublicKey,
};
use core::fmt;
use serde_json::{Map, Value};
use std::collections::HashMap;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// Longest `kid` a [`KeySet`] accepts. Key ids are labels, not data; a bound keeps lookups and
/// audit lines small.
pub const MAX_KID_LEN: usize = 256;

/// Length of an Ed25519 public key, a P-256 coordinate, and of either algorithm's signature / 2.
const LEN32: usize = 32;

/// A public key as a JWK: Ed25519 (`OKP`) or P-256 (`EC`). Never holds private key material.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PublicJwk {
    /// `{"kty":"OKP","crv":"Ed25519","x":…}`: the 32-byte public key.
    Ed25519 {
        /// The public key (RFC 8032 encoding).
        x: [u8; 32],
    },
    /// `{"kty":"EC","crv":"P-256","x":…,"y":…}`: the affine coordinates, 32 bytes each,
    /// big-endian, full length (RFC 7518 §6.2.1.2).
    P256 {
        /// The x coordinate.
        x: [u8; 32],
        /// The y coordinate.
        y: [u8; 32],
    },
}

impl PublicJwk {
    /// Parses a public JWK from JSON text.
    ///
    /// Accepted members: `kty`, `crv`, `x`, `y` (EC only), and the optional `kid`, `use` (must be
    /// `"sig"`) and `alg` (must be this key type's algorithm). A private member (`d`) or any other
    /// member is refused, as are duplicate keys, padded or non-canonical base64url and short
    /// coordinates. Whether a P-256 point is on the curve is checked by
    /// [`PublicJwk::verifying_key`].
    ///
    /// # Errors
    /// [`KeyError::InvalidJwk`] describing the first problem found.
    pub fn from_json(text: &[u8]) -> Result<Self, KeyError> {
        let map =
            json::parse_object(text).map_err(|_| KeyError::InvalidJwk("not a json object"))?;
        Self::from_map(&map)
    }

    /// Parses a JWK that is already a JSON object (e.g. the `jwk` header of a DPoP proof, which
    /// the strict parser has already checked for duplicate keys).
    pub(crate) fn from_map(map: &Map<String, Value>) -> Result<Self, KeyError> {
        if map.contains_key("d") {
            return Err(KeyError::InvalidJwk("private key member present"));
        }
        let kty = str_member(map, "kty")?;
        let crv = str_member(map, "crv")?;
        let jwk = match (kty, crv) {
            ("OKP", "Ed25519") => {
                if map.contains_key("y") {
                    return Err(KeyError::InvalidJwk("unexpected member y"));
                }
                Self::Ed25519 {
                    x: coordinate(map, "x")?,
                }
            }
            ("EC", "P-256") => Self::P256 {
                x: coordinate(map, "x")?,
                y: coordinate(map, "y")?,
            },
            ("OKP" | "EC", _) => return Err(KeyError::InvalidJwk("unsupported curve")),
            _ => return Err(KeyError::InvalidJwk("unsupported key type")),
        };
        for (name, value) in map {
            match name.as_str() {
                "kty" | "crv" | "x" | "y" => {}
                "kid" => {
                    if !value.is_string() {
                        return Err(KeyError::InvalidJwk("kid is not a string"));
                    }
                }
                "use" => {
                    if value.as_str() != Some("sig") {
                        return Err(KeyError::InvalidJwk("use is not sig"));
                    }
                }
                "alg" => {
                    if value.as_str() != Some(jwk.alg().as_str()) {
                        return Err(KeyError::InvalidJwk("alg does not match the key type"));
                    }
                }
                _ => return Err(KeyError::InvalidJwk("unknown member")),
            }
        }
        Ok(jwk)
    }

    /// The one algorithm this key may be used with.
    #[must_use]
    pub const fn alg(&self) -> Alg {
        match self {
            Self::Ed25519 { .. } => Alg::EdDsa,
            Self::P256 { .. } => Alg::Es256,
        }
    }

    /// The canonical JSON form: only the required members, in lexicographic order, no
    /// whitespace (RFC 7638 §3.2). It is also a complete public JWK, used when embedding a key
    /// in a header.
    #[must_use]
    pub fn to_json(&self) -> String {
        // The values are base64url, which never needs JSON escaping, so formatting is exact.
        match self {
            Self::Ed25519 { x } => {
                format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    b64::encode(x)
                )
            }
            Self::P256 { x, y } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64::encode(x),
                b64::encode(y)
            ),
        }
    }

    /// The same members as [`PublicJwk::to_json`], as a JSON value.
    pub(crate) fn to_value(&self) -> Value {
        let mut map = Map::new();
        match self {
            Self::Ed25519 { x } => {
                map.insert("crv".into(), "Ed25519".into());
                map.insert("kty".into(), "OKP".into());
                map.insert("x".into(), b64::encode(x).into());
            }
            Self::P256 { x, y } => {
                map.insert("crv".into(), "P-256".into());
                map.insert("kty".into(), "EC".into());
                map.insert("x".into(), b64::encode(x).into());
                map.insert("y".into(), b64::encode(y).into());
            }
        }
        Value::Object(map)
    }

    /// RFC 7638 thumbprint: base64url(SHA-256(canonical JSON)). This is the `jkt` that binds a
    /// token to a proof-of-possession key (RFC 9449 §6, DESIGN.md §5 `s1`).
    #[must_use]
    pub fn thumbprint(&self) -> String {
        b64::encode(digest::digest(&digest::SHA256, self.to_json().as_bytes()).as_ref())
    }

    /// Whether `jkt` is this key's thumbprint, compared in constant time: the binding value is
    /// treated as a secret (DESIGN.md §5), so the comparison must not leak a matching prefix.
    #[must_use]
    pub fn thumbprint_matches(&self, jkt: &str) -> bool {
        self.thumbprint().as_bytes().ct_eq(jkt.as_bytes()).into()
    }

    /// Builds the verification key, checking that a P-256 point lies on the curve.
    ///
    /// # Errors
    /// [`KeyError::InvalidKey`] if the crypto library rejects the point.
    pub fn verifying_key(&self) -> Result<VerifyingKey, KeyError> {
        VerifyingKey::from_jwk(self)
    }

    /// The raw public key as the crypto library takes it: 32 bytes for Ed25519, the uncompressed
    /// SEC 1 point `04 || x || y` for P-256.
    fn raw_public_key(&self) -> Vec<u8> {
        match self {
            Self::Ed25519 { x } => x.to_vec(),
            Self::P256 { x, y } => {
                let mut point = Vec::with_capacity(1 + 2 * LEN32);
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                point
            }
        }
    }

    /// The inverse of [`PublicJwk::raw_public_key`]; any other length or form is refused.
    fn from_raw_public_key(alg: Alg, bytes: &[u8]) -> Result<Self, KeyError> {
        match (alg, bytes) {
            (Alg::EdDsa, x) => Ok(Self::Ed25519 {
                x: x.try_into()
                    .map_err(|_| KeyError::InvalidKey("ed25519 key is not 32 bytes"))?,
            }),
            (Alg::Es256, [0x04, rest @ ..]) if rest.len() == 2 * LEN32 => {
                let (x, y) = rest.split_at(LEN32);
                Ok(Self::P256 {
                    x: x.try_into()
                        .map_err(|_| KeyError::InvalidKey("p-256 point"))?,
                    y: y.try_into()
                        .map_err(|_| KeyError::InvalidKey("p-256 point"))?,
                })
            }
            (Alg::Es256, _) => Err(KeyError::InvalidKey(
                "p-256 key is not an uncompressed point",
            )),
        }
    }
}

fn str_member<'m>(map: &'m Map<String, Value>, name: &'static str) -> Result<&'m str, KeyError> {
    match map.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(KeyError::InvalidJwk("member is not a string")),
        None => Err(KeyError::InvalidJwk("required member missing")),
    }
}

fn coordinate(map: &Map<String, Value>, name: &'static str) -> Result<[u8; 32], KeyError> {
    let bytes = b64::decode(str_member(map, name)?)
        .map_err(|_| KeyError::InvalidJwk("key value is not canonical base64url"))?;
    bytes
        .try_into()
        .map_err(|_| KeyError::InvalidJwk("key value is not 32 bytes"))
}

/// A public key ready to verify, pinned to exactly one [`Alg`].
#[derive(Clone)]
pub struct VerifyingKey {
    jwk: PublicJwk,
    key: ParsedPublicKey,
}

impl VerifyingKey {
    /// Validates `jwk` with the crypto library (P-256 points must be on the curve) and pins the
    /// key to its algorithm.
    ///
    /// # Errors
    /// [`KeyError::InvalidKey`] if the key is rejected.
    pub fn from_jwk(jwk: &PublicJwk) -> Result<Self, KeyError> {
        let raw = jwk.raw_public_key();
        let key = match jwk.alg() {
            Alg::EdDsa => ParsedPublicKey::new(&ED25519, &raw),
            Alg::Es256 => ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &raw),
        }
        .map_err(|_| KeyError::InvalidKey("public key rejected by the crypto library"))?;
        Ok(Self {
            jwk: jwk.clone(),
            key,
        })
    }

    /// From raw bytes: 32 for Ed25519, `04 || x || y` (65) for P-256.
    pub(crate) fn from_raw(alg: Alg, bytes: &[u8]) -> Result<Self, KeyError> {
        Self::from_jwk(&PublicJwk::from_raw_public_key(alg, bytes)?)
    }

    /// The one algorithm this key verifies.
    #[must_use]
    pub fn alg(&self) -> Alg {
        self.jwk.alg()
    }

    /// The key as a JWK.
    #[must_use]
    pub fn jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// Verifies a raw signature: exactly 64 bytes for both algorithms (Ed25519 `R || S`, ES256
    /// `r || s` per RFC 7518 §3.4, never DER). Range checks (`0 < r, s < n` for ECDSA,
    /// `S < L` for Ed25519) are the crypto library's; the Wycheproof tests pin them.
    pub(crate) fn verify_raw(&self, message: &[u8], signature: &[u8]) -> Result<(), JwsError> {
        if signature.len() != 2 * LEN32 {
            return Err(JwsError::BadSignature);
        }
        self.key
            .verify_sig(message, signature)
            .map_err(|_| JwsError::BadSignature)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg())
            .field("thumbprint", &self.jwk.thumbprint())
            .finish()
    }
}

/// Verification keys by `kid`, in memory.
///
/// The `kid` from a token is only ever a lookup key in this map: never a path, URL or query
/// (RFC 8725 §3.10), so an unknown or hostile `kid` can only fail to match.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    /// An empty set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key` under `kid`.
    ///
    /// # Errors
    /// [`KeyError::InvalidKid`] for an empty or over-long `kid`; [`KeyError::DuplicateKid`] if
    /// the `kid` is taken (replacing silently would let a configuration error swap keys).
    pub fn insert(&mut self, kid: impl Into<String>, key: VerifyingKey) -> Result<(), KeyError> {
        let kid = kid.into();
        if kid.is_empty() || kid.len() > MAX_KID_LEN {
            return Err(KeyError::InvalidKid);
        }
        if self.keys.contains_key(&kid) {
            return Err(KeyError::DuplicateKid);
        }
        self.keys.insert(kid, key);
        Ok(())
    }

    /// The key under `kid`, if any.
    #[must_use]
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// Number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A private signing key: Ed25519 or P-256. Its `Debug` shows only the algorithm and the public
/// thumbprint; the private bytes leave only through [`SigningKey::to_pkcs8`], in a buffer that is
/// zeroized on drop.
pub struct SigningKey {
    inner: Inner,
    public: PublicJwk,
}

enum Inner {
    Ed25519(Ed25519KeyPair),
    Es256(EcdsaKeyPair),
}

impl SigningKey {
    /// A fresh key from the system CSPRNG.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if the crypto library fails.
    pub fn generate(alg: Alg) -> Result<Self, KeyError> {
        let inner = match alg {
            Alg::EdDsa => Inner::Ed25519(
                Ed25519KeyPair::generate().map_err(|_| KeyError::Crypto("key generation"))?,
            ),
            Alg::Es256 => Inner::Es256(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Crypto("key generation"))?,
            ),
        };
        Self::from_inner(inner)
    }

    /// Loads a PKCS#8 DER private key (v1 or v2) for `alg`. The caller owns `der` and should
    /// zeroize it.
    ///
    /// # Errors
    /// [`KeyError::InvalidKey`] if `der` is not a valid key for `alg`.
    pub fn from_pkcs8(alg: Alg, der: &[u8]) -> Result<Self, KeyError> {
        let inner = match alg {
            Alg::EdDsa => Inner::Ed25519(
                Ed25519KeyPair::from_pkcs8(der)
                    .map_err(|_| KeyError::InvalidKey("not an ed25519 pkcs#8 key"))?,
            ),
            Alg::Es256 => Inner::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| KeyError::InvalidKey("not a p-256 pkcs#8 key"))?,
            ),
        };
        Self::from_inner(inner)
    }

    fn from_inner(inner: Inner) -> Result<Self, KeyError> {
        let public = match &inner {
            Inner::Ed25519(pair) => {
                PublicJwk::from_raw_public_key(Alg::EdDsa, pair.public_key().as_ref())?
            }
            Inner::Es256(pair) => {
                PublicJwk::from_raw_public_key(Alg::Es256, pair.public_key().as_ref())?
            }
        };
        Ok(Self { inner, public })
    }

    /// Exports the private key as PKCS#8 DER (v2 for Ed25519, v1 for P-256), zeroized on drop.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if the crypto library fails.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        // `Document` zeroizes its own buffer on drop; the copy is ours to zeroize.
        let doc = match &self.inner {
            Inner::Ed25519(pair) => pair.to_pkcs8(),
            Inner::Es256(pair) => pair.to_pkcs8v1(),
        }
        .map_err(|_| KeyError::Crypto("pkcs#8 export"))?;
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// The algorithm this key signs with.
    #[must_use]
    pub fn alg(&self) -> Alg {
        self.public.alg()
    }

    /// The public half as a JWK.
    #[must_use]
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    /// Signs `message`: 64 bytes for both algorithms (ES256 in fixed `r || s` form).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            Inner::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Inner::Es256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| KeyError::Crypto("signing")),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg())
            .field("thumbprint", &self.public.thumbprint())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 Appendix A.2 public key.
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn rfc8037_thumbprint() {
        let jwk = PublicJwk::from_json(
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}"}}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(
            jwk.to_json(),
            format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{RFC8037_X}"}}"#)
        );
        // RFC 8037 Appendix A.3.
        assert_eq!(
            jwk.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        assert!(jwk.thumbprint_matches("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"));
        assert!(!jwk.thumbprint_matches("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4K"));
        assert!(!jwk.thumbprint_matches(""));
        assert_eq!(jwk.alg(), Alg::EdDsa);
        jwk.verifying_key().unwrap();
    }

    #[test]
    fn ec_thumbprint_follows_rfc7638_rules() {
        // Wycheproof P-256 key (ecdsa_secp256r1_sha256_p1363_test.json, group 1).
        let x = "KSexBRK64-3c_kZ4KBKLrSkDJpkZ9whgacjE32xzKDg";
        let y = "x3h5ZOqsAOWSH7FJimD0YGdms9loUAFVjRqXTnNBUT4";
        // Members in a different order, with optional members, must not change the thumbprint.
        let jwk = PublicJwk::from_json(
            format!(r#"{{"y":"{y}","use":"sig","x":"{x}","kid":"k","alg":"ES256","crv":"P-256","kty":"EC"}}"#)
                .as_bytes(),
        )
        .unwrap();
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        assert_eq!(jwk.to_json(), canonical);
        assert_eq!(serde_json::to_string(&jwk.to_value()).unwrap(), canonical);
        // Independently: SHA-256 of the canonical text, base64url.
        let expected = b64::encode(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref());
        assert_eq!(jwk.thumbprint(), expected);
        assert_eq!(jwk.thumbprint().len(), 43);
        assert_eq!(jwk.verifying_key().unwrap().alg(), Alg::Es256);
    }

    #[test]
    fn jwk_parsing_is_strict() {
        let ok_ed = format!(r#""kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}""#);
        for (extra, why) in [
            (
                r#","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A""#,
                "private",
            ),
            (r#","y":"AA""#, "unexpected y"),
            (r#","use":"enc""#, "use enc"),
            (r#","alg":"ES256""#, "wrong alg"),
            (r#","alg":"none""#, "alg none"),
            (r#","kid":1"#, "kid type"),
            (r#","x5c":[]"#, "unknown"),
            (r#","kty":"OKP""#, "duplicate"),
        ] {
            let text = format!("{{{ok_ed}{extra}}}");
            assert!(PublicJwk::from_json(text.as_bytes()).is_err(), "{why}");
        }
        for bad in [
            r#"{"kty":"OKP","crv":"X25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#,
            r#"{"kty":"oct","k":"AAAA"}"#,
            r#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}"#,
            r#"{"kty":"OKP","crv":"Ed25519"}"#,
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="}"#,
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp"}"#,
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHU"}"#,
            // Short (31-byte) P-256 coordinate: RFC 7518 requires the full 32 bytes.
            r#"{"kty":"EC","crv":"P-256","x":"J7EFErrj7dz-RngoEouUKQMmmRn3CGBpyMTfbHMoOA","y":"x3h5ZOqsAOWSH7FJimD0YGdms9loUAFVjRqXTnNBUT4"}"#,
            r#"{"kty":"EC","crv":"P-256","x":"KSexBRK64-3c_kZ4KBKLrSkDJpkZ9whgacjE32xzKDg"}"#,
            r#"[]"#,
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"} x"#,
        ] {
            assert!(PublicJwk::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn p256_point_must_be_on_the_curve() {
        let jwk = PublicJwk::P256 {
            x: [1; 32],
            y: [2; 32],
        };
        assert_eq!(
            jwk.verifying_key().unwrap_err(),
            KeyError::InvalidKey("public key rejected by the crypto library")
        );
        // Coordinates >= p are not field elements.
        let jwk = PublicJwk::P256 {
            x: [0xff; 32],
            y: [0xff; 32],
        };
        assert!(jwk.verifying_key().is_err());
        let jwk = PublicJwk::P256 {
            x: [0; 32],
            y: [0; 32],
        };
        assert!(jwk.verifying_key().is_err());
    }

    #[test]
    fn raw_public_keys_are_exact() {
        assert!(VerifyingKey::from_raw(Alg::EdDsa, &[0; 31]).is_err());
        assert!(VerifyingKey::from_raw(Alg::EdDsa, &[0; 33]).is_err());
        let es = SigningKey::generate(Alg::Es256).unwrap();
        let raw = es.public_jwk().raw_public_key();
        assert_eq!(raw.len(), 65);
        VerifyingKey::from_raw(Alg::Es256, &raw).unwrap();
        // Compressed points and SPKI DER are accepted by the library but not by us.
        let mut compressed = vec![0x02 | (raw[64] & 1)];
        compressed.extend_from_slice(&raw[1..33]);
        assert!(VerifyingKey::from_raw(Alg::Es256, &compressed).is_err());
        let mut hybrid = raw.clone();
        hybrid[0] = 0x06;
        assert!(VerifyingKey::from_raw(Alg::Es256, &hybrid).is_err());
    }

    #[test]
    fn signing_keys_roundtrip_pkcs8_and_sign() {
        for alg in [Alg::EdDsa, Alg::Es256] {
            let key = SigningKey::generate(alg).unwrap();
            assert_eq!(key.alg(), alg);
            let der = key.to_pkcs8().unwrap();
            let again = SigningKey::from_pkcs8(alg, &der).unwrap();
            assert_eq!(again.public_jwk(), key.public_jwk());
            let other = match alg {
                Alg::EdDsa => Alg::Es256,
                Alg::Es256 => Alg::EdDsa,
            };
            assert!(SigningKey::from_pkcs8(other, &der).is_err());
            assert!(SigningKey::from_pkcs8(alg, &der[..der.len() - 1]).is_err());

            let vk = key.public_jwk().verifying_key().unwrap();
            let sig = key.sign(b"message").unwrap();
            assert_eq!(sig.len(), 64);
            vk.verify_raw(b"message", &sig).unwrap();
            assert_eq!(vk.verify_raw(b"messagE", &sig), Err(JwsError::BadSignature));
            assert_eq!(
                vk.verify_raw(b"message", &sig[..63]),
                Err(JwsError::BadSignature)
            );
        }
    }

    #[test]
    fn debug_never_shows_private_bytes() {
        for alg in [Alg::EdDsa, Alg::Es256] {
            let key = SigningKey::generate(alg).unwrap();
            let der = key.to_pkcs8().unwrap();
            let debug = format!("{key:?}");
            assert!(debug.starts_with("SigningKey"), "{debug}");
            assert!(debug.contains(&key.public_jwk().thumbprint()));
            // No run of 8 consecutive bytes of the key document appears, in hex or base64url.
            for window in der.windows(8) {
                assert!(!debug.contains(&hex::encode(window)));
            }
            for window in der.windows(12) {
                assert!(!debug.contains(&b64::encode(window)));
            }
        }
    }

    #[test]
    fn key_set_lookup_is_exact() {
        let vk = SigningKey::generate(Alg::EdDsa)
            .unwrap()
            .public_jwk()
            .verifying_key()
            .unwrap();
        let mut set = KeySet::new();
        assert!(set.is_empty());
        set.insert("k1", vk.clone()).unwrap();
        assert_eq!(set.insert("k1", vk.clone()), Err(KeyError::DuplicateKid));
        assert_eq!(set.insert("", vk.clone()), Err(KeyError::InvalidKid));
        assert_eq!(
            set.insert("x".repeat(MAX_KID_LEN + 1), vk.clone()),
            Err(KeyError::InvalidKid)
        );
        set.insert("x".repeat(MAX_KID_LEN), vk).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.get("k1").is_some());
        for miss in ["K1", "k1 ", " k1", "k", "k1\0", "../k1"] {
            assert!(set.get(miss).is_none(), "{miss:?}");
        }
    }
}
