use super::*;
use crate::access::{AccessTokenClaims, issue_access_token};
use crate::{Alg, MAX_TOKEN_LEN};
use proptest::prelude::*;
use serde_json::json;

const NOW: i64 = 1_760_000_000;
const URI: &str = "https://status.example.com/v1/status/1";

struct Fixture {
    key: SigningKey,
    keys: KeySet,
}

fn fixture(alg: Alg) -> Fixture {
    let key = SigningKey::generate(alg).unwrap();
    let mut keys = KeySet::new();
    keys.insert("status-1", key.public_jwk().verifying_key().unwrap())
        .unwrap();
    Fixture { key, keys }
}

fn list_with(bits: Bits, entries: u64, set: &[(u64, TokenStatus)]) -> StatusList {
    let mut list = StatusList::new(bits, entries).unwrap();
    for (idx, status) in set {
        list.set(*idx, *status).unwrap();
    }
    list
}

fn signed(fx: &Fixture, list: &StatusList) -> String {
    sign_status_list(
        &fx.key,
        "status-1",
        URI,
        NOW,
        Some(NOW + 3600),
        Some(300),
        list,
    )
    .unwrap()
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Signs arbitrary claims under a status key with the given `typ`.
fn raw(fx: &Fixture, typ: &str, claims: &Value) -> String {
    jws::sign_with_limit(
        &HeaderFields {
            kid: Some("status-1"),
            typ: Some(typ),
            embed_jwk: false,
        },
        claims,
        &fx.key,
        MAX_STATUS_LIST_TOKEN_LEN,
    )
    .unwrap()
}

#[test]
fn draft_examples_decode() {
    // draft-ietf-oauth-status-list §4.1 examples: 1-bit and 2-bit lists.
    let one = StatusList::decode_lst(Bits::One, "eNrbuRgAAhcBXQ").unwrap();
    assert_eq!(one.as_bytes(), [0xb9, 0xa3]);
    let expected = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1];
    for (idx, value) in expected.iter().enumerate() {
        assert_eq!(one.get(idx as u64).unwrap().value(), *value, "idx {idx}");
    }
    assert_eq!(one.len(), 16);
    assert_eq!(one.get(16), None);

    let two = StatusList::decode_lst(Bits::Two, "eNo76fITAAPfAgc").unwrap();
    assert_eq!(two.as_bytes(), [0xc9, 0x44, 0xf9]);
    let expected = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3];
    for (idx, value) in expected.iter().enumerate() {
        assert_eq!(two.get(idx as u64).unwrap().value(), *value, "idx {idx}");
    }
}

#[test]
fn set_and_get_at_every_width() {
    for bits in [Bits::One, Bits::Two, Bits::Four, Bits::Eight] {
        let mut list = StatusList::new(bits, 100).unwrap();
        assert!(list.len() >= 100);
        list.set(37, TokenStatus::Invalid).unwrap();
        assert_eq!(list.get(37), Some(TokenStatus::Invalid));
        assert_eq!(list.get(36), Some(TokenStatus::Valid));
        assert_eq!(list.get(38), Some(TokenStatus::Valid));
        list.set(37, TokenStatus::Valid).unwrap();
        assert_eq!(list.get(37), Some(TokenStatus::Valid));
        assert_eq!(
            list.set(list.len(), TokenStatus::Invalid),
            Err(StatusError::IndexOutOfRange)
        );
        assert_eq!(list.get(u64::MAX), None);
    }
    let mut one = StatusList::new(Bits::One, 8).unwrap();
    assert_eq!(
        one.set(0, TokenStatus::Suspended),
        Err(StatusError::InvalidInput(
            "status does not fit in the list's bits"
        ))
    );
    let mut eight = StatusList::new(Bits::Eight, 1).unwrap();
    eight.set(0, TokenStatus::Other(0xff)).unwrap();
    assert_eq!(eight.get(0), Some(TokenStatus::Other(0xff)));
    assert!(StatusList::new(Bits::One, 0).is_err());
    assert!(StatusList::new(Bits::Eight, MAX_STATUS_LIST_BYTES as u64 + 1).is_err());
    assert!(StatusList::from_bytes(Bits::One, Vec::new()).is_err());
    assert_eq!(
        format!("{:?}", StatusList::new(Bits::One, 80).unwrap()),
        "StatusList { bits: 1, bytes: 10 }"
    );
}

#[test]
fn decompression_bomb_is_refused() {
    // 16 MiB of zeros compress to about 16 KiB; the decoder stops one byte past the cap.
    let bomb = b64::encode(&zlib(&vec![0; 16 * MAX_STATUS_LIST_BYTES]));
    assert!(bomb.len() < MAX_STATUS_LIST_TOKEN_LEN);
    assert_eq!(
        StatusList::decode_lst(Bits::One, &bomb),
        Err(StatusError::ListTooLarge {
            max: MAX_STATUS_LIST_BYTES
        })
    );
    // Exactly at the cap is fine, one byte over is not.
    let at_cap = b64::encode(&zlib(&vec![0; MAX_STATUS_LIST_BYTES]));
    assert_eq!(
        StatusList::decode_lst(Bits::One, &at_cap)
            .unwrap()
            .as_bytes()
            .len(),
        MAX_STATUS_LIST_BYTES
    );
    let over = b64::encode(&zlib(&vec![0; MAX_STATUS_LIST_BYTES + 1]));
    assert!(matches!(
        StatusList::decode_lst(Bits::One, &over),
        Err(StatusError::ListTooLarge { .. })
    ));
    // ... and a signed bomb is refused after its signature checks out.
    let fx = fixture(Alg::EdDsa);
    let token = raw(
        &fx,
        STATUS_LIST_TYP,
        &json!({"sub": URI, "iat": NOW, "status_list": {"bits": 1, "lst": bomb}}),
    );
    assert!(matches!(
        verify_status_list(&token, &fx.keys, URI, NOW),
        Err(StatusError::ListTooLarge { .. })
    ));
}

#[test]
fn malformed_lst_is_refused() {
    let good = zlib(&[0xff, 0x00]);
    let mut trailing = good.clone();
    trailing.push(0);
    let mut bad_checksum = good.clone();
    *bad_checksum.last_mut().unwrap() ^= 1;
    let cases = [
        (b64::encode(&trailing), "lst has data after the zlib stream"),
        (b64::encode(&bad_checksum), "lst is not a valid zlib stream"),
        (
            b64::encode(&good[..good.len() - 2]),
            "lst is not a valid zlib stream",
        ),
        (b64::encode(b"not zlib"), "lst is not a valid zlib stream"),
        (b64::encode(&zlib(&[])), "lst is empty"),
        (
            format!("{}=", b64::encode(&good)),
            "lst is not canonical base64url",
        ),
        ("a b".to_owned(), "lst is not canonical base64url"),
    ];
    for (lst, reason) in cases {
        assert_eq!(
            StatusList::decode_lst(Bits::One, &lst),
            Err(StatusError::List(reason)),
            "{lst}"
        );
    }
    assert_eq!(
        StatusList::decode_lst(Bits::One, &b64::encode(&good))
            .unwrap()
            .as_bytes(),
        [0xff, 0x00]
    );
}

#[test]
fn status_list_roundtrip_with_both_algorithms() {
    for alg in [Alg::EdDsa, Alg::Es256] {
        let fx = fixture(alg);
        let list = list_with(
            Bits::Two,
            1000,
            &[(3, TokenStatus::Invalid), (999, TokenStatus::Suspended)],
        );
        let token = signed(&fx, &list);
        let verified = verify_status_list(&token, &fx.keys, URI, NOW).unwrap();
        assert_eq!(verified.kid(), "status-1");
        assert_eq!(verified.sub(), URI);
        assert_eq!(verified.iat(), NOW);
        assert_eq!(verified.exp(), Some(NOW + 3600));
        assert_eq!(verified.ttl(), Some(300));
        assert_eq!(verified.list(), &list);
        assert_eq!(verified.status_of(3), Ok(TokenStatus::Invalid));
        assert_eq!(verified.status_of(999), Ok(TokenStatus::Suspended));
        assert_eq!(verified.status_of(4), Ok(TokenStatus::Valid));
        assert_eq!(
            verified.status_of(list.len()),
            Err(StatusError::IndexOutOfRange)
        );
    }
    // `exp` and `ttl` are optional.
    let fx = fixture(Alg::EdDsa);
    let list = list_with(Bits::One, 8, &[]);
    let token = sign_status_list(&fx.key, "status-1", URI, NOW, None, None, &list).unwrap();
    let verified = verify_status_list(&token, &fx.keys, URI, NOW + 1_000_000).unwrap();
    assert_eq!((verified.exp(), verified.ttl()), (None, None));
}

#[test]
fn status_list_rules() {
    let fx = fixture(Alg::EdDsa);
    let list = list_with(Bits::One, 8, &[]);
    let token = signed(&fx, &list);
    assert_eq!(
        verify_status_list(
            &token,
            &fx.keys,
            "https://status.example.com/v1/status/2",
            NOW
        ),
        Err(StatusError::WrongSubject)
    );
    assert_eq!(
        verify_status_list(&token, &fx.keys, URI, NOW + 3600 + STATUS_LEEWAY_SECS),
        Err(StatusError::Expired)
    );
    assert!(verify_status_list(&token, &fx.keys, URI, NOW + 3599).is_ok());
    assert_eq!(
        verify_status_list(&token, &fx.keys, URI, NOW - STATUS_LEEWAY_SECS - 1),
        Err(StatusError::IssuedInFuture)
    );
    assert_eq!(
        verify_status_list(&token, &fx.keys, "", NOW),
        Err(StatusError::InvalidInput("expected subject is empty"))
    );
    // Another key set (e.g. the issuer's) does not know the status key; another key under
    // the same kid does not verify.
    let other = fixture(Alg::EdDsa);
    assert_eq!(
        verify_status_list(&token, &other.keys, URI, NOW),
        Err(StatusError::Jws(JwsError::BadSignature))
    );
    let mut issuer_keys = KeySet::new();
    issuer_keys
        .insert("issuer-1", other.key.public_jwk().verifying_key().unwrap())
        .unwrap();
    assert_eq!(
        verify_status_list(&token, &issuer_keys, URI, NOW),
        Err(StatusError::Jws(JwsError::UnknownKey))
    );
    let lst = list.encode_lst();
    for (claims, reason) in [
        (
            json!({"iat": NOW, "status_list": {"bits": 1, "lst": lst}}),
            "sub is missing or not a string",
        ),
        (
            json!({"sub": URI, "status_list": {"bits": 1, "lst": lst}}),
            "iat is missing or not an integer",
        ),
        (
            json!({"sub": URI, "iat": NOW, "exp": "x", "status_list": {"bits": 1, "lst": lst}}),
            "exp is not an integer",
        ),
        (
            json!({"sub": URI, "iat": NOW, "ttl": 0, "status_list": {"bits": 1, "lst": lst}}),
            "ttl is not a positive integer",
        ),
        (
            json!({"sub": URI, "iat": NOW, "ttl": -5, "status_list": {"bits": 1, "lst": lst}}),
            "ttl is not a positive integer",
        ),
        (
            json!({"sub": URI, "iat": NOW}),
            "status_list is missing or not an object",
        ),
        (
            json!({"sub": URI, "iat": NOW, "status_list": {"bits": 3, "lst": lst}}),
            "status_list.bits is not 1, 2, 4 or 8",
        ),
        (
            json!({"sub": URI, "iat": NOW, "status_list": {"bits": "1", "lst": lst}}),
            "status_list.bits is not 1, 2, 4 or 8",
        ),
        (
            json!({"sub": URI, "iat": NOW, "status_list": {"bits": 1}}),
            "status_list.lst is missing or not a string",
        ),
    ] {
        assert_eq!(
            verify_status_list(&raw(&fx, STATUS_LIST_TYP, &claims), &fx.keys, URI, NOW),
            Err(StatusError::Claim(reason)),
            "{claims}"
        );
    }
    // Oversize tokens are refused before any parsing.
    let huge = "a".repeat(MAX_STATUS_LIST_TOKEN_LEN + 1);
    assert_eq!(
        verify_status_list(&huge, &fx.keys, URI, NOW),
        Err(StatusError::Jws(JwsError::TooLarge {
            max: MAX_STATUS_LIST_TOKEN_LEN
        }))
    );
    // Signing refuses what could never verify.
    for (exp, ttl, sub) in [
        (Some(NOW), None, URI),
        (None, Some(0), URI),
        (None, None, ""),
    ] {
        assert!(matches!(
            sign_status_list(&fx.key, "status-1", sub, NOW, exp, ttl, &list),
            Err(KeyError::InvalidClaims(_))
        ));
    }
    assert_eq!(
        sign_status_list(&fx.key, "", URI, NOW, None, None, &list),
        Err(KeyError::InvalidKid)
    );
}

#[test]
fn type_confusion_is_refused() {
    let fx = fixture(Alg::EdDsa);
    // An access token signed with the status key is not a status list or a staple.
    let access = issue_access_token(
        &fx.key,
        "status-1",
        &AccessTokenClaims {
            iss: "https://issuer.example.com".into(),
            sub: URI.into(),
            aud: vec!["a".into()],
            exp: NOW + 60,
            nbf: None,
            iat: NOW,
            jti: "j".into(),
            scope: Vec::new(),
            jkt: fx.key.public_jwk().thumbprint(),
            status: None,
            client_id: None,
        },
    )
    .unwrap();
    assert_eq!(
        verify_status_list(&access, &fx.keys, URI, NOW),
        Err(StatusError::WrongType)
    );
    let expectation = StapleExpectation {
        sub: URI,
        idx: 0,
        nonce: "n",
    };
    assert_eq!(
        verify_status_staple(&access, &fx.keys, &expectation, NOW),
        Err(StatusError::WrongType)
    );
    // A staple is not a list, a list is not a staple; the `application/` form is refused too.
    let staple = sign_status_staple(&fx.key, "status-1", &staple_claims()).unwrap();
    assert_eq!(
        verify_status_list(&staple, &fx.keys, URI, NOW),
        Err(StatusError::WrongType)
    );
    let list = signed(&fx, &list_with(Bits::One, 8, &[]));
    assert_eq!(
        verify_status_staple(&list, &fx.keys, &expectation, NOW),
        Err(StatusError::WrongType)
    );
    let prefixed = raw(
        &fx,
        "application/statuslist+jwt",
        &json!({"sub": URI, "iat": NOW, "status_list": {"bits": 1, "lst": "eNrbuRgAAhcBXQ"}}),
    );
    assert_eq!(
        verify_status_list(&prefixed, &fx.keys, URI, NOW),
        Err(StatusError::WrongType)
    );
}

fn staple_claims() -> StatusStapleClaims {
    StatusStapleClaims {
        sub: URI.into(),
        idx: 42,
        status: TokenStatus::Valid,
        nonce: "challenge-1".into(),
        iat: NOW,
        exp: NOW + 30,
    }
}

#[test]
fn staple_roundtrip_and_rules() {
    let fx = fixture(Alg::Es256);
    let expectation = StapleExpectation {
        sub: URI,
        idx: 42,
        nonce: "challenge-1",
    };
    let staple = sign_status_staple(&fx.key, "status-1", &staple_claims()).unwrap();
    let verified = verify_status_staple(&staple, &fx.keys, &expectation, NOW).unwrap();
    assert_eq!(verified.claims(), &staple_claims());
    assert_eq!(verified.status(), TokenStatus::Valid);
    assert_eq!(verified.kid(), "status-1");

    let revoked = sign_status_staple(
        &fx.key,
        "status-1",
        &StatusStapleClaims {
            status: TokenStatus::Invalid,
            ..staple_claims()
        },
    )
    .unwrap();
    assert!(
        !verify_status_staple(&revoked, &fx.keys, &expectation, NOW)
            .unwrap()
            .status()
            .is_valid()
    );

    for (expected, error) in [
        (
            StapleExpectation {
                nonce: "challenge-2",
                ..expectation
            },
            StatusError::NonceMismatch,
        ),
        (
            StapleExpectation {
                idx: 43,
                ..expectation
            },
            StatusError::StapleMismatch,
        ),
        (
            StapleExpectation {
                sub: "https://status.example.com/v1/status/2",
                ..expectation
            },
            StatusError::StapleMismatch,
        ),
    ] {
        assert_eq!(
            verify_status_staple(&staple, &fx.keys, &expected, NOW),
            Err(error)
        );
    }
    assert_eq!(
        verify_status_staple(
            &staple,
            &fx.keys,
            &expectation,
            NOW + 30 + STATUS_LEEWAY_SECS
        ),
        Err(StatusError::Expired)
    );
    assert_eq!(
        verify_status_staple(
            &staple,
            &fx.keys,
            &expectation,
            NOW - STATUS_LEEWAY_SECS - 1
        ),
        Err(StatusError::IssuedInFuture)
    );
    // A long-lived staple made by hand is refused; signing refuses to make one.
    let long = raw(
        &fx,
        STATUS_STAPLE_TYP,
        &json!({"sub": URI, "idx": 42, "status": 0, "nonce": "challenge-1", "iat": NOW, "exp": NOW + 61}),
    );
    assert_eq!(
        verify_status_staple(&long, &fx.keys, &expectation, NOW),
        Err(StatusError::LifetimeTooLong)
    );
    for claims in [
        StatusStapleClaims {
            exp: NOW + 61,
            ..staple_claims()
        },
        StatusStapleClaims {
            exp: NOW,
            ..staple_claims()
        },
        StatusStapleClaims {
            nonce: String::new(),
            ..staple_claims()
        },
        StatusStapleClaims {
            nonce: "a b".into(),
            ..staple_claims()
        },
        StatusStapleClaims {
            sub: String::new(),
            ..staple_claims()
        },
    ] {
        assert!(matches!(
            sign_status_staple(&fx.key, "status-1", &claims),
            Err(KeyError::InvalidClaims(_))
        ));
    }
    let bad_status = raw(
        &fx,
        STATUS_STAPLE_TYP,
        &json!({"sub": URI, "idx": 42, "status": 256, "nonce": "challenge-1", "iat": NOW, "exp": NOW + 30}),
    );
    assert_eq!(
        verify_status_staple(&bad_status, &fx.keys, &expectation, NOW),
        Err(StatusError::Claim("status is missing or not 0-255"))
    );
    assert!(staple.len() < MAX_TOKEN_LEN);
}

#[test]
fn errors_say_who_is_at_fault() {
    assert_eq!(StatusError::Expired.fault(), Fault::Peer);
    assert_eq!(StatusError::InvalidInput("x").fault(), Fault::Caller);
    assert_eq!(
        StatusError::ListTooLarge { max: 4 }.to_string(),
        "status list is larger than 4 bytes"
    );
}

fn bits_strategy() -> impl Strategy<Value = Bits> {
    prop_oneof![
        Just(Bits::One),
        Just(Bits::Two),
        Just(Bits::Four),
        Just(Bits::Eight)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_lst_roundtrip(bits in bits_strategy(), bytes in proptest::collection::vec(any::<u8>(), 1..2048)) {
        let list = StatusList::from_bytes(bits, bytes).unwrap();
        let decoded = StatusList::decode_lst(bits, &list.encode_lst()).unwrap();
        prop_assert_eq!(decoded, list);
    }

    #[test]
    fn prop_set_get_any_index(bits in bits_strategy(), entries in 1u64..100_000, raw_idx in any::<u64>(), value in any::<u8>()) {
        let mut list = StatusList::new(bits, entries).unwrap();
        let idx = raw_idx % list.len();
        let value = value & bits.mask();
        list.set(idx, TokenStatus::from_value(value)).unwrap();
        let decoded = StatusList::decode_lst(bits, &list.encode_lst()).unwrap();
        for probe in [idx, idx.saturating_sub(1), (idx + 1) % list.len()] {
            let expected = if probe == idx { value } else { 0 };
            prop_assert_eq!(decoded.get(probe).unwrap().value(), expected);
        }
        prop_assert_eq!(decoded.get(list.len()), None);
    }

    #[test]
    fn prop_tampered_list_token_is_refused(index in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_.-]") {
        let fx = fixture(Alg::EdDsa);
        let token = signed(&fx, &list_with(Bits::One, 64, &[(5, TokenStatus::Invalid)]));
        let mut chars: Vec<char> = token.chars().collect();
        let at = index.index(chars.len());
        let replacement = replacement.chars().next().unwrap();
        prop_assume!(chars[at] != replacement);
        chars[at] = replacement;
        let tampered: String = chars.into_iter().collect();
        prop_assert!(verify_status_list(&tampered, &fx.keys, URI, NOW).is_err());
    }

    #[test]
    fn prop_staple_roundtrip(
        es256 in any::<bool>(),
        sub in "https://[a-z]{1,12}\\.example/[a-z0-9/]{0,20}",
        idx in any::<u64>(),
        status in any::<u8>(),
        nonce in "[!-~]{1,256}",
        iat in -1_000_000i64..4_000_000_000,
        lifetime in 1i64..=MAX_STAPLE_LIFETIME_SECS,
        age in -STATUS_LEEWAY_SECS..STATUS_LEEWAY_SECS,
    ) {
        let fx = fixture(if es256 { Alg::Es256 } else { Alg::EdDsa });
        let claims = StatusStapleClaims {
            sub: sub.clone(), idx, status: TokenStatus::from_value(status), nonce: nonce.clone(),
            iat, exp: iat + lifetime,
        };
        let staple = sign_status_staple(&fx.key, "status-1", &claims).unwrap();
        // Any moment from iat - leeway until exp (exclusive, with the leeway) verifies.
        let now = (iat + age.min(lifetime - 1)).max(iat - STATUS_LEEWAY_SECS);
        let expect = StapleExpectation { sub: &sub, idx, nonce: &nonce };
        let verified = verify_status_staple(&staple, &fx.keys, &expect, now).unwrap();
        prop_assert_eq!(verified.claims(), &claims);
        prop_assert_eq!(verified.kid(), "status-1");
        // The stateless-nonce form sees exactly the staple's nonce, and agrees.
        let mut seen = None;
        let with = verify_status_staple_with(&staple, &fx.keys, &sub, idx, |n| { seen = Some(n.to_owned()); true }, now).unwrap();
        prop_assert_eq!(with.claims(), &claims);
        prop_assert_eq!(seen.as_deref(), Some(nonce.as_str()));
        // Past exp (and the leeway) it is refused.
        prop_assert_eq!(
            verify_status_staple(&staple, &fx.keys, &expect, iat + lifetime + STATUS_LEEWAY_SECS),
            Err(StatusError::Expired)
        );
    }

    #[test]
    fn prop_staple_bit_flip_is_refused(es256 in any::<bool>(), index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let fx = fixture(if es256 { Alg::Es256 } else { Alg::EdDsa });
        let staple = sign_status_staple(&fx.key, "status-1", &staple_claims()).unwrap();
        let mut bytes = staple.into_bytes();
        let at = index.index(bytes.len());
        bytes[at] ^= 1 << bit;
        let expect = StapleExpectation { sub: URI, idx: 42, nonce: "challenge-1" };
        // A flip that leaves UTF-8 cannot even be presented as a header string.
        if let Ok(tampered) = String::from_utf8(bytes) {
            prop_assert!(verify_status_staple(&tampered, &fx.keys, &expect, NOW).is_err());
            prop_assert!(verify_status_staple_with(&tampered, &fx.keys, URI, 42, |_| true, NOW).is_err());
        }
    }

    #[test]
    fn prop_staple_for_another_nonce_is_refused(nonce in "[!-~]{1,256}", other in "[!-~]{1,256}") {
        prop_assume!(nonce != other);
        let fx = fixture(Alg::EdDsa);
        let claims = StatusStapleClaims { nonce: nonce.clone(), ..staple_claims() };
        let staple = sign_status_staple(&fx.key, "status-1", &claims).unwrap();
        let expect = StapleExpectation { sub: URI, idx: 42, nonce: &other };
        prop_assert_eq!(verify_status_staple(&staple, &fx.keys, &expect, NOW), Err(StatusError::NonceMismatch));
        prop_assert_eq!(
            verify_status_staple_with(&staple, &fx.keys, URI, 42, |n| n == other, NOW),
            Err(StatusError::NonceMismatch)
        );
    }
}
