use super::*;
use proptest::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    sub: String,
    n: u64,
}

fn claims() -> Claims {
    Claims {
        sub: "spiffe://daas/app/alice".into(),
        n: 7,
    }
}

struct Fixture {
    ed: SigningKey,
    es: SigningKey,
    keys: KeySet,
}

fn fixture() -> Fixture {
    let ed = SigningKey::generate(Alg::EdDsa).unwrap();
    let es = SigningKey::generate(Alg::Es256).unwrap();
    let mut keys = KeySet::new();
    keys.insert("ed", ed.public_jwk().verifying_key().unwrap())
        .unwrap();
    keys.insert("es", es.public_jwk().verifying_key().unwrap())
        .unwrap();
    Fixture { ed, es, keys }
}

fn fields<'a>(kid: &'a str, typ: &'a str) -> HeaderFields<'a> {
    HeaderFields {
        kid: Some(kid),
        typ: Some(typ),
        embed_jwk: false,
    }
}

/// Signs arbitrary header and payload text with a real key, so a rejection in a test can only
/// come from the rule under test, never from a bad signature.
fn forge(header: &str, payload: &str, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header.as_bytes()),
        b64::encode(payload.as_bytes())
    );
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(&sig))
}

fn verify_in(token: &str, fx: &Fixture) -> Result<Verified<Value>, JwsError> {
    Unverified::parse(token)?.verify(&fx.keys, Some("test+jwt"))
}

#[test]
fn roundtrip_both_algs() {
    let fx = fixture();
    for (kid, key) in [("ed", &fx.ed), ("es", &fx.es)] {
        let token = sign(&fields(kid, "test+jwt"), &claims(), key).unwrap();
        let parsed = Unverified::parse(&token).unwrap();
        assert_eq!(parsed.header().kid(), Some(kid));
        assert_eq!(parsed.header().alg(), key.alg());
        assert_eq!(parsed.header().typ(), Some("test+jwt"));
        assert!(parsed.header().jwk().is_none());
        let verified: Verified<Claims> = parsed.verify(&fx.keys, Some("test+jwt")).unwrap();
        assert_eq!(verified.claims(), &claims());
        let (header, body) = verified.into_parts();
        assert_eq!(header.kid(), Some(kid));
        assert_eq!(body, claims());

        let vk = key.public_jwk().verifying_key().unwrap();
        let single: Verified<Claims> = Unverified::parse(&token)
            .unwrap()
            .verify_with_key(&vk, None)
            .unwrap();
        assert_eq!(single.into_claims(), claims());
    }
}

#[test]
fn rfc8037_a4_signature_verifies() {
    // RFC 8037 Appendix A.4: {"alg":"EdDSA"} over "Example of Ed25519 signing".
    let x = b64::decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
    let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    let sig = b64::decode(
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
    )
    .unwrap();
    verify_signature(Alg::EdDsa, &x, input.as_bytes(), &sig).unwrap();
    assert_eq!(
        verify_signature(Alg::EdDsa, &x, b"eyJhbGciOiJFZERTQSJ9.", &sig),
        Err(JwsError::BadSignature)
    );
    // The payload is not a JSON object, so as a token it is refused before any crypto.
    assert_eq!(
        Unverified::parse(&format!("{input}.{}", b64::encode(&sig))).unwrap_err(),
        JwsError::Malformed("payload is not json without duplicate keys")
    );
}

#[test]
fn size_limit() {
    let fx = fixture();
    let big = "a".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(
        Unverified::parse(&big).unwrap_err(),
        JwsError::TooLarge { max: MAX_TOKEN_LEN }
    );
    assert_eq!(
        sign(
            &fields("ed", "t"),
            &serde_json::json!({ "pad": big }),
            &fx.ed
        )
        .unwrap_err(),
        KeyError::TooLarge { max: MAX_TOKEN_LEN }
    );
    // Three more payload bytes are four more token characters: fill up to the limit exactly.
    let sign_padded = |n: usize| {
        sign(
            &fields("ed", "test+jwt"),
            &serde_json::json!({ "pad": "p".repeat(n) }),
            &fx.ed,
        )
    };
    let empty = sign_padded(0).unwrap().len();
    let n = 3 * ((MAX_TOKEN_LEN - empty) / 4);
    let token = sign_padded(n).unwrap();
    assert!(token.len() <= MAX_TOKEN_LEN && token.len() + 4 > MAX_TOKEN_LEN);
    assert_eq!(
        sign_padded(n + 3).unwrap_err(),
        KeyError::TooLarge { max: MAX_TOKEN_LEN }
    );
    verify_in(&token, &fx).unwrap();
}

#[test]
fn exactly_three_segments() {
    let fx = fixture();
    let token = sign(&fields("ed", "test+jwt"), &claims(), &fx.ed).unwrap();
    let malformed = JwsError::Malformed("expected three dot-separated segments");
    for bad in [
        String::new(),
        "abc".into(),
        "a.b".into(),
        format!("{token}."),
        format!("{token}.{}", token.rsplit('.').next().unwrap()),
        format!(".{token}"),
        "....".into(),
    ] {
        assert_eq!(Unverified::parse(&bad).unwrap_err(), malformed, "{bad:?}");
    }
    // JWE (five segments) and the JSON serializations are not compact JWS.
    assert_eq!(Unverified::parse("a.b.c.d.e").unwrap_err(), malformed);
    assert!(Unverified::parse(r#"{"payload":"e30","signatures":[]}"#).is_err());
}

#[test]
fn strict_base64url_in_every_segment() {
    let fx = fixture();
    let token = sign(&fields("ed", "test+jwt"), &claims(), &fx.ed).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let join = |h: &str, p: &str, s: &str| format!("{h}.{p}.{s}");
    let cases = [
        (
            join(&format!("{}=", parts[0]), parts[1], parts[2]),
            "header",
        ),
        (
            join(parts[0], &format!(" {}", parts[1]), parts[2]),
            "payload",
        ),
        (
            join(parts[0], parts[1], &format!("{}==", parts[2])),
            "signature",
        ),
        (
            join(
                parts[0],
                parts[1],
                &parts[2].replace('-', "+").replace('_', "/"),
            ),
            "signature",
        ),
        (
            join(parts[0], &format!("{}\n", parts[1]), parts[2]),
            "payload",
        ),
    ];
    for (bad, segment) in cases {
        if bad == token {
            continue; // the signature had no '-' or '_' to swap
        }
        match Unverified::parse(&bad).unwrap_err() {
            JwsError::Malformed(why) => assert!(why.starts_with(segment), "{why} for {segment}"),
            other => panic!("{other:?} for {segment}"),
        }
    }
    // A 64-byte signature is 86 characters with 4 discarded bits: flipping them must not verify.
    let last = parts[2].as_bytes()[85];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let pos = alphabet.iter().position(|c| *c == last).unwrap();
    let sibling = alphabet[pos ^ 1] as char;
    let bad_sig = format!("{}{sibling}", &parts[2][..85]);
    assert_eq!(
        Unverified::parse(&join(parts[0], parts[1], &bad_sig)).unwrap_err(),
        JwsError::Malformed("signature is not canonical base64url")
    );
}

#[test]
fn header_and_payload_are_objects_without_duplicates() {
    let fx = fixture();
    let ok_header = r#"{"alg":"EdDSA","kid":"ed","typ":"test+jwt"}"#;
    verify_in(&forge(ok_header, r#"{"sub":"a"}"#, &fx.ed), &fx).unwrap();
    for (header, payload, expected) in [
        (
            r#"{"alg":"EdDSA","kid":"ed","typ":"test+jwt","alg":"EdDSA"}"#,
            "{}",
            "header is not json without duplicate keys",
        ),
        (
            r#"{"alg":"none","kid":"ed","typ":"test+jwt","alg":"EdDSA"}"#,
            "{}",
            "header is not json without duplicate keys",
        ),
        (
            ok_header,
            r#"{"sub":"a","sub":"b"}"#,
            "payload is not json without duplicate keys",
        ),
        (
            ok_header,
            r#"{"cnf":{"jkt":"a","jkt":"b"}}"#,
            "payload is not json without duplicate keys",
        ),
        (
            ok_header,
            r#"{"sub":"a","\u0073ub":"b"}"#,
            "payload is not json without duplicate keys",
        ),
        (r#"["alg","EdDSA"]"#, "{}", "header is not a json object"),
        (ok_header, r#"["sub"]"#, "payload is not a json object"),
        (ok_header, "null", "payload is not a json object"),
        (ok_header, "", "payload is not json without duplicate keys"),
        (ok_header, "{} ", "payload is not a json object"),
        (
            ok_header,
            "{}{}",
            "payload is not json without duplicate keys",
        ),
        ("", "{}", "header is not json without duplicate keys"),
    ] {
        let token = forge(header, payload, &fx.ed);
        let result = verify_in(&token, &fx);
        if payload == "{} " {
            // Whitespace around JSON is legal JSON; this case must verify.
            assert!(result.is_ok(), "{header} / {payload}");
            continue;
        }
        assert_eq!(
            result.unwrap_err(),
            JwsError::Malformed(expected),
            "{header} / {payload}"
        );
    }
}

#[test]
fn only_eddsa_and_es256() {
    let fx = fixture();
    for alg in [
        "none", "None", "NONE", "nOnE", "HS256", "HS512", "RS256", "PS256", "ES384", "eddsa",
        "Ed25519", "",
    ] {
        let header = format!(r#"{{"alg":"{alg}","kid":"ed","typ":"test+jwt"}}"#);
        assert_eq!(
            verify_in(&forge(&header, "{}", &fx.ed), &fx).unwrap_err(),
            JwsError::UnsupportedAlg,
            "{alg}"
        );
    }
    // "none" with an empty signature: rejected before anything looks at the signature.
    let unsigned = format!(
        "{}.{}.",
        b64::encode(br#"{"alg":"none"}"#),
        b64::encode(br#"{"sub":"a"}"#)
    );
    assert_eq!(
        Unverified::parse(&unsigned).unwrap_err(),
        JwsError::UnsupportedAlg
    );
    for header in [
        r#"{"kid":"ed"}"#,
        r#"{"alg":null,"kid":"ed"}"#,
        r#"{"alg":["EdDSA"],"kid":"ed"}"#,
    ] {
        assert!(matches!(
            Unverified::parse(&forge(header, "{}", &fx.ed)).unwrap_err(),
            JwsError::Malformed(_)
        ));
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_rejected() {
    use aws_lc_rs::hmac;
    let fx = fixture();
    let header = b64::encode(br#"{"alg":"HS256","kid":"ed","typ":"test+jwt"}"#);
    let payload = b64::encode(br#"{"sub":"admin"}"#);
    let input = format!("{header}.{payload}");
    let public_forms = [
        fx.ed.public_jwk().to_json().into_bytes(),
        b64::decode(&fx.ed.public_jwk().thumbprint()).unwrap(),
        match fx.ed.public_jwk() {
            PublicJwk::Ed25519 { x } => x.to_vec(),
            PublicJwk::P256 { .. } => unreachable!(),
        },
    ];
    for secret in public_forms {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", b64::encode(tag.as_ref()));
        assert_eq!(
            verify_in(&token, &fx).unwrap_err(),
            JwsError::UnsupportedAlg
        );
    }
}

#[test]
fn key_pins_its_alg() {
    let fx = fixture();
    // Header says EdDSA (signed with Ed25519) but the kid names the ES256 key.
    let token = forge(
        r#"{"alg":"EdDSA","kid":"es","typ":"test+jwt"}"#,
        "{}",
        &fx.ed,
    );
    assert_eq!(verify_in(&token, &fx).unwrap_err(), JwsError::AlgMismatch);
    let token = forge(
        r#"{"alg":"ES256","kid":"ed","typ":"test+jwt"}"#,
        "{}",
        &fx.es,
    );
    assert_eq!(verify_in(&token, &fx).unwrap_err(), JwsError::AlgMismatch);
    let vk = fx.es.public_jwk().verifying_key().unwrap();
    let token = sign(&fields("ed", "test+jwt"), &claims(), &fx.ed).unwrap();
    assert_eq!(
        Unverified::parse(&token)
            .unwrap()
            .verify_with_key::<Value>(&vk, None)
            .unwrap_err(),
        JwsError::AlgMismatch
    );
    // Right alg, wrong key of that alg.
    let other = SigningKey::generate(Alg::EdDsa).unwrap();
    let token = sign(&fields("ed", "test+jwt"), &claims(), &other).unwrap();
    assert_eq!(verify_in(&token, &fx).unwrap_err(), JwsError::BadSignature);
}

#[test]
fn kid_is_only_a_lookup_key() {
    let mut fx = fixture();
    for kid in [
        "../../etc/passwd",
        "' OR 1=1 --",
        "https://evil/x",
        "file:///etc/shadow",
        "ED",
        "ed ",
        "\u{0}",
        "",
    ] {
        let token = sign(&fields(kid, "test+jwt"), &claims(), &fx.ed).unwrap();
        assert_eq!(
            verify_in(&token, &fx).unwrap_err(),
            JwsError::UnknownKey,
            "{kid:?}"
        );
    }
    let token = forge(r#"{"alg":"EdDSA","typ":"test+jwt"}"#, "{}", &fx.ed);
    assert_eq!(
        verify_in(&token, &fx).unwrap_err(),
        JwsError::Malformed("kid is missing")
    );
    let token = forge(r#"{"alg":"EdDSA","kid":7,"typ":"test+jwt"}"#, "{}", &fx.ed);
    assert_eq!(
        verify_in(&token, &fx).unwrap_err(),
        JwsError::Malformed("kid is not a string")
    );
    // A hostile-looking kid is still just a label when the key set has it.
    fx.keys
        .insert(
            "../../etc/passwd",
            fx.ed.public_jwk().verifying_key().unwrap(),
        )
        .unwrap();
    let token = sign(&fields("../../etc/passwd", "test+jwt"), &claims(), &fx.ed).unwrap();
    verify_in(&token, &fx).unwrap();
}

#[test]
fn key_reference_headers_and_crit_are_forbidden() {
    let fx = fixture();
    let jwk = fx.ed.public_jwk().to_json();
    for (member, name) in [
        (r#""jku":"https://evil/jwks""#.to_owned(), "jku"),
        (r#""x5u":"https://evil/cert""#.to_owned(), "x5u"),
        (r#""x5c":["MIIB"]"#.to_owned(), "x5c"),
        (r#""x5t":"AAAA""#.to_owned(), "x5t"),
        (r#""x5t#S256":"AAAA""#.to_owned(), "x5t#S256"),
        (format!(r#""jwk":{jwk}"#), "jwk"),
        (r#""crit":["exp"]"#.to_owned(), "crit"),
        (r#""crit":[]"#.to_owned(), "crit"),
        (r#""b64":false"#.to_owned(), "b64"),
        (r#""b64":"false""#.to_owned(), "b64"),
    ] {
        let header = format!(r#"{{"alg":"EdDSA","kid":"ed","typ":"test+jwt",{member}}}"#);
        assert_eq!(
            verify_in(&forge(&header, "{}", &fx.ed), &fx).unwrap_err(),
            JwsError::ForbiddenHeader(name),
            "{member}"
        );
    }
    // Forbidden whatever the policy, except jwk.
    let allow = HeaderPolicy {
        allow_embedded_jwk: true,
    };
    let header = r#"{"alg":"EdDSA","kid":"ed","jku":"https://evil/jwks"}"#;
    assert_eq!(
        Unverified::parse_with_policy(&forge(header, "{}", &fx.ed), allow).unwrap_err(),
        JwsError::ForbiddenHeader("jku")
    );
    // b64:true is RFC 7797's default meaning and harmless.
    let header = r#"{"alg":"EdDSA","kid":"ed","typ":"test+jwt","b64":true}"#;
    verify_in(&forge(header, "{}", &fx.ed), &fx).unwrap();
    for header in [
        r#"{"alg":"EdDSA","kid":"ed","typ":"test+jwt","cty":"JWT"}"#,
        r#"{"alg":"EdDSA","kid":"ed","typ":"test+jwt","zip":"DEF"}"#,
        r#"{"alg":"EdDSA","kid":"ed","typ":"test+jwt","enc":"A256GCM"}"#,
        r#"{"alg":"EdDSA","kid":"ed","typ":"test+jwt","JKU":"https://evil"}"#,
    ] {
        assert_eq!(
            verify_in(&forge(header, "{}", &fx.ed), &fx).unwrap_err(),
            JwsError::UnknownHeader,
            "{header}"
        );
    }
}

#[test]
fn embedded_jwk_only_by_policy_and_never_with_a_key_set() {
    let fx = fixture();
    let allow = HeaderPolicy {
        allow_embedded_jwk: true,
    };
    for key in [&fx.ed, &fx.es] {
        let proof_fields = HeaderFields {
            kid: None,
            typ: Some("dpop+jwt"),
            embed_jwk: true,
        };
        let proof = sign(&proof_fields, &claims(), key).unwrap();
        assert_eq!(
            Unverified::parse(&proof).unwrap_err(),
            JwsError::ForbiddenHeader("jwk")
        );

        let parsed = Unverified::parse_with_policy(&proof, allow).unwrap();
        assert_eq!(parsed.header().jwk(), Some(key.public_jwk()));
        let verified: Verified<Claims> = parsed.verify_with_embedded_jwk("dpop+jwt").unwrap();
        assert!(
            verified
                .header()
                .jwk()
                .unwrap()
                .thumbprint_matches(&key.public_jwk().thumbprint())
        );

        let parsed = Unverified::parse_with_policy(&proof, allow).unwrap();
        assert_eq!(
            parsed
                .verify_with_embedded_jwk::<Value>("test+jwt")
                .unwrap_err(),
            JwsError::WrongType
        );
        // Allowed at parse time, still refused against a key set or a fixed key.
        let with_kid = HeaderFields {
            kid: Some("ed"),
            typ: Some("test+jwt"),
            embed_jwk: true,
        };
        let token = sign(&with_kid, &claims(), key).unwrap();
        let parsed = Unverified::parse_with_policy(&token, allow).unwrap();
        assert_eq!(
            parsed
                .verify::<Value>(&fx.keys, Some("test+jwt"))
                .unwrap_err(),
            JwsError::ForbiddenHeader("jwk")
        );
        let parsed = Unverified::parse_with_policy(&token, allow).unwrap();
        let vk = key.public_jwk().verifying_key().unwrap();
        assert_eq!(
            parsed.verify_with_key::<Value>(&vk, None).unwrap_err(),
            JwsError::ForbiddenHeader("jwk")
        );
    }
    // A proof whose jwk is not the signer's key fails the signature check.
    let wrong = format!(
        r#"{{"alg":"EdDSA","typ":"dpop+jwt","jwk":{}}}"#,
        SigningKey::generate(Alg::EdDsa)
            .unwrap()
            .public_jwk()
            .to_json()
    );
    let parsed = Unverified::parse_with_policy(&forge(&wrong, "{}", &fx.ed), allow).unwrap();
    assert_eq!(
        parsed
            .verify_with_embedded_jwk::<Value>("dpop+jwt")
            .unwrap_err(),
        JwsError::BadSignature
    );
    // The jwk's key type must match alg.
    let mismatched = format!(
        r#"{{"alg":"ES256","typ":"dpop+jwt","jwk":{}}}"#,
        fx.ed.public_jwk().to_json()
    );
    let parsed = Unverified::parse_with_policy(&forge(&mismatched, "{}", &fx.es), allow).unwrap();
    assert_eq!(
        parsed
            .verify_with_embedded_jwk::<Value>("dpop+jwt")
            .unwrap_err(),
        JwsError::AlgMismatch
    );
    // Private keys, invalid points and missing jwk are refused.
    let with_d = r#"{"alg":"EdDSA","typ":"dpop+jwt","jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}}"#;
    assert_eq!(
        Unverified::parse_with_policy(&forge(with_d, "{}", &fx.ed), allow).unwrap_err(),
        JwsError::Malformed("jwk is not an acceptable public key")
    );
    let off_curve = format!(
        r#"{{"alg":"ES256","typ":"dpop+jwt","jwk":{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}}}"#,
        b64::encode(&[1; 32]),
        b64::encode(&[2; 32])
    );
    let parsed = Unverified::parse_with_policy(&forge(&off_curve, "{}", &fx.es), allow).unwrap();
    assert_eq!(
        parsed
            .verify_with_embedded_jwk::<Value>("dpop+jwt")
            .unwrap_err(),
        JwsError::Malformed("jwk is not an acceptable public key")
    );
    let no_jwk = sign(&fields("ed", "dpop+jwt"), &claims(), &fx.ed).unwrap();
    let parsed = Unverified::parse_with_policy(&no_jwk, allow).unwrap();
    assert_eq!(
        parsed
            .verify_with_embedded_jwk::<Value>("dpop+jwt")
            .unwrap_err(),
        JwsError::Malformed("jwk is missing")
    );
}

#[test]
fn typ_must_match_when_expected() {
    let fx = fixture();
    let check = |typ: Option<&str>, expected: Option<&str>| {
        let token = sign(
            &HeaderFields {
                kid: Some("ed"),
                typ,
                embed_jwk: false,
            },
            &claims(),
            &fx.ed,
        )
        .unwrap();
        Unverified::parse(&token)
            .unwrap()
            .verify::<Claims>(&fx.keys, expected)
            .map(|_| ())
    };
    check(Some("dpop+jwt"), Some("dpop+jwt")).unwrap();
    check(Some("application/dpop+jwt"), Some("dpop+jwt")).unwrap();
    check(Some("APPLICATION/dpop+jwt"), Some("dpop+jwt")).unwrap();
    check(Some("dpop+jwt"), Some("application/dpop+jwt")).unwrap();
    check(Some("dpop+jwt"), None).unwrap();
    check(None, None).unwrap();
    for (typ, expected) in [
        (None, "dpop+jwt"),
        (Some("DPOP+JWT"), "dpop+jwt"),
        (Some("JWT"), "dpop+jwt"),
        (Some("at+jwt"), "dpop+jwt"),
        (Some("dpop+jwt "), "dpop+jwt"),
        (Some("application/"), "dpop+jwt"),
        (Some("text/dpop+jwt"), "dpop+jwt"),
        (Some("application/application/dpop+jwt"), "dpop+jwt"),
        (Some(""), "dpop+jwt"),
        (
            Some("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"),
            "dpop+jwt",
        ),
    ] {
        assert_eq!(
            check(typ, Some(expected)).unwrap_err(),
            JwsError::WrongType,
            "{typ:?}"
        );
    }
    let token = forge(r#"{"alg":"EdDSA","kid":"ed","typ":1}"#, "{}", &fx.ed);
    assert_eq!(
        verify_in(&token, &fx).unwrap_err(),
        JwsError::Malformed("typ is not a string")
    );
}

#[test]
fn es256_signatures_are_fixed_r_s_only() {
    let fx = fixture();
    let token = sign(&fields("es", "test+jwt"), &claims(), &fx.es).unwrap();
    let (input, sig_b64) = token.rsplit_once('.').unwrap();
    let sig = b64::decode(sig_b64).unwrap();
    let vk = fx.es.public_jwk().verifying_key().unwrap();
    let pk = match fx.es.public_jwk() {
        PublicJwk::P256 { x, y } => [&[4u8][..], x, y].concat(),
        PublicJwk::Ed25519 { .. } => unreachable!(),
    };
    verify_signature(Alg::Es256, &pk, input.as_bytes(), &sig).unwrap();

    // DER encoding of the same (r, s).
    let der_int = |v: &[u8]| {
        let v = &v[v.iter().position(|b| *b != 0).unwrap_or(v.len() - 1)..];
        let mut out = vec![0x02];
        if v[0] & 0x80 != 0 {
            out.push((v.len() + 1) as u8);
            out.push(0);
        } else {
            out.push(v.len() as u8);
        }
        out.extend_from_slice(v);
        out
    };
    let body = [der_int(&sig[..32]), der_int(&sig[32..])].concat();
    let der = [vec![0x30, body.len() as u8], body].concat();
    assert_eq!(
        verify_signature(Alg::Es256, &pk, input.as_bytes(), &der),
        Err(JwsError::BadSignature)
    );
    let der_token = format!("{input}.{}", b64::encode(&der));
    assert_eq!(
        Unverified::parse(&der_token).unwrap_err(),
        JwsError::Malformed("signature has the wrong length")
    );

    // P-256 group order n.
    let n =
        hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551").unwrap();
    let zero = [0u8; 32];
    let r = &sig[..32];
    let s = &sig[32..];
    // s' = n - s would be a valid "high-s" twin; r + n and s + n overflow 32 bytes, so the
    // in-range aliases to test are r = 0, s = 0, r = n, s = n and all-ones.
    for (name, bad) in [
        ("r = 0", [&zero[..], s].concat()),
        ("s = 0", [r, &zero[..]].concat()),
        ("r = s = 0", [zero, zero].concat()),
        ("r = n", [&n[..], s].concat()),
        ("s = n", [r, &n[..]].concat()),
        ("r = 2^256 - 1", [&[0xff; 32][..], s].concat()),
        ("s = 2^256 - 1", [r, &[0xff; 32][..]].concat()),
        ("short", sig[..63].to_vec()),
        ("long", [&sig[..], &[0]].concat()),
        ("empty", Vec::new()),
    ] {
        assert_eq!(
            vk.verify_raw(input.as_bytes(), &bad),
            Err(JwsError::BadSignature),
            "{name}"
        );
    }
    // ECDSA is malleable: (r, n - s) is also valid. JWS does not promise non-malleable ES256
    // signatures, so replay caches must key on jti, not on the token text. Document, not reject.
    let mut neg_s = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(n[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        neg_s[i] = (d + 256 * borrow) as u8;
    }
    let twin = [r, &neg_s[..]].concat();
    assert!(vk.verify_raw(input.as_bytes(), &twin).is_ok());
}

#[test]
fn claims_must_match_the_schema_after_verification() {
    let fx = fixture();
    let token = sign(
        &fields("ed", "test+jwt"),
        &serde_json::json!({"sub": 1}),
        &fx.ed,
    )
    .unwrap();
    assert_eq!(
        Unverified::parse(&token)
            .unwrap()
            .verify::<Claims>(&fx.keys, Some("test+jwt"))
            .unwrap_err(),
        JwsError::InvalidClaims
    );
    assert_eq!(
        sign(&fields("ed", "t"), &[1, 2], &fx.ed).unwrap_err(),
        KeyError::ClaimsNotObject
    );
    assert_eq!(
        sign(&fields("ed", "t"), "str", &fx.ed).unwrap_err(),
        KeyError::ClaimsNotObject
    );
}

#[test]
fn debug_of_unverified_hides_claims() {
    let fx = fixture();
    let token = sign(
        &fields("ed", "test+jwt"),
        &serde_json::json!({"secretish": "zzz"}),
        &fx.ed,
    )
    .unwrap();
    let debug = format!("{:?}", Unverified::parse(&token).unwrap());
    assert!(debug.contains("ed") && !debug.contains("zzz"), "{debug}");
}

#[test]
fn error_messages_are_audit_safe() {
    let errors = [
        JwsError::TooLarge { max: MAX_TOKEN_LEN }.to_string(),
        JwsError::Malformed("kid is missing").to_string(),
        JwsError::UnsupportedAlg.to_string(),
        JwsError::AlgMismatch.to_string(),
        JwsError::UnknownKey.to_string(),
        JwsError::ForbiddenHeader("jku").to_string(),
        JwsError::UnknownHeader.to_string(),
        JwsError::WrongType.to_string(),
        JwsError::BadSignature.to_string(),
        JwsError::InvalidClaims.to_string(),
        KeyError::InvalidJwk("x").to_string(),
        KeyError::ClaimsNotObject.to_string(),
    ];
    for e in errors {
        assert_eq!(e, e.to_lowercase(), "{e}");
        assert!(!e.contains("::") && !e.contains("Error"), "{e}");
    }
}

fn claims_strategy() -> impl Strategy<Value = BTreeMap<String, Value>> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        ".{0,16}".prop_map(Value::from),
        Just(Value::Null),
    ];
    proptest::collection::btree_map("[a-z_]{1,8}", leaf, 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_sign_verify_roundtrip(claims in claims_strategy(), es in any::<bool>()) {
        let fx = fixture();
        let (kid, key) = if es { ("es", &fx.es) } else { ("ed", &fx.ed) };
        let token = sign(&fields(kid, "test+jwt"), &claims, key).unwrap();
        let verified: Verified<BTreeMap<String, Value>> =
            Unverified::parse(&token).unwrap().verify(&fx.keys, Some("test+jwt")).unwrap();
        prop_assert_eq!(verified.into_claims(), claims);
    }

    #[test]
    fn prop_any_single_byte_change_fails(
        claims in claims_strategy(),
        es in any::<bool>(),
        index in any::<prop::sample::Index>(),
        replacement in 0x20u8..0x7f,
    ) {
        let fx = fixture();
        let (kid, key) = if es { ("es", &fx.es) } else { ("ed", &fx.ed) };
        let token = sign(&fields(kid, "test+jwt"), &claims, key).unwrap();
        let mut bytes = token.clone().into_bytes();
        let i = index.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assert!(verify_in(&mutated, &fx).is_err(), "{} -> {}", token, mutated);
    }

    #[test]
    fn prop_parser_never_panics(text in ".{0,300}") {
        let fx = fixture();
        let _ = verify_in(&text, &fx);
        let allow = HeaderPolicy { allow_embedded_jwk: true };
        if let Ok(parsed) = Unverified::parse_with_policy(&text, allow) {
            let _ = parsed.verify_with_embedded_jwk::<Value>("dpop+jwt");
        }
    }

    #[test]
    fn prop_parser_never_panics_on_token_shaped_input(
        parts in proptest::collection::vec("[A-Za-z0-9_\\-=+/ ]{0,40}", 0..5),
    ) {
        let fx = fixture();
        let _ = verify_in(&parts.join("."), &fx);
    }

    #[test]
    fn prop_parser_never_panics_on_any_json_header(header in ".{0,64}", payload in ".{0,64}") {
        let fx = fixture();
        let _ = verify_in(&forge(&header, &payload, &fx.ed), &fx);
        let allow = HeaderPolicy { allow_embedded_jwk: true };
        let _ = Unverified::parse_with_policy(&forge(&header, &payload, &fx.es), allow)
            .and_then(|u| u.verify_with_embedded_jwk::<Value>("dpop+jwt"));
    }
}
