//! JSON parsing that refuses duplicate object keys at any depth.
//!
//! `serde_json` keeps the last of two equal keys; another parser may keep the first. A token whose
//! header says `"alg":"EdDSA","alg":"none"` would then mean different things to different
//! verifiers (RFC 8725 §2.5, RFC 7515 §5.2 step 4), so duplicates are an error here. Keys are
//! compared after unescaping, so `"a"` and `"\u0061"` are the same key.

use core::fmt;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a text is not acceptable JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Not JSON, trailing data, or a duplicate key somewhere.
    Invalid,
    /// Valid JSON, but the top level is not an object.
    NotObject,
}

/// Parses `bytes` as one JSON object with no duplicate keys anywhere inside it.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let StrictValue(value) = StrictValue::deserialize(&mut de).map_err(|_| JsonError::Invalid)?;
    de.end().map_err(|_| JsonError::Invalid)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(JsonError::NotObject),
    }
}

/// A [`Value`] whose deserialization fails on a duplicate key.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any json value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrictValue, E> {
        serde_json::Number::from_f64(v)
            .map(|n| StrictValue(Value::Number(n)))
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(StrictValue(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if object.insert(key, value).is_some() {
                return Err(de::Error::custom("duplicate key"));
            }
        }
        Ok(StrictValue(Value::Object(object)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_objects() {
        let map = parse_object(br#"{"a":1,"b":[1,2,{"c":null}],"d":{"e":true},"f":-1.5}"#).unwrap();
        assert_eq!(map.len(), 4);
        assert_eq!(map["b"][2]["c"], Value::Null);
        assert_eq!(parse_object(b" { } ").unwrap().len(), 0);
    }

    #[test]
    fn rejects_duplicates_at_every_depth() {
        for bad in [
            &br#"{"a":1,"a":1}"#[..],
            br#"{"a":1,"a":2}"#,
            br#"{"alg":"EdDSA","alg":"none"}"#,
            br#"{"a":1,"\u0061":2}"#,
            br#"{"x":{"b":1,"b":2}}"#,
            br#"{"x":[{"b":1},{"c":1,"c":1}]}"#,
            br#"{"x":[[[{"d":{"e":1,"e":1}}]]]}"#,
        ] {
            assert_eq!(
                parse_object(bad),
                Err(JsonError::Invalid),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // The same key in sibling objects is fine.
        assert!(parse_object(br#"{"x":{"b":1},"y":{"b":1}}"#).is_ok());
    }

    #[test]
    fn rejects_non_objects_and_junk() {
        for bad in [&b"[]"[..], b"1", b"\"s\"", b"null", b"true"] {
            assert_eq!(parse_object(bad), Err(JsonError::NotObject));
        }
        for bad in [
            &b""[..],
            b"{",
            b"{}{}",
            b"{} x",
            b"{'a':1}",
            b"{\"a\":1,}",
            b"\xef\xbb\xbf{}",
            b"{\"a\":\"\xff\"}",
            br#"{"a":"\ud800"}"#,
            b"{\"a\":NaN}",
        ] {
            assert_eq!(
                parse_object(bad),
                Err(JsonError::Invalid),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_object(deep.as_bytes()), Err(JsonError::Invalid));
    }
}
