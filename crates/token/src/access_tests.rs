use super::*;
use crate::dpop::build_proof;
use crate::jwk::PublicJwk;
use crate::replay::MemoryReplayCache;
use crate::{Alg, ErrorCode, Fault, ReplayKey};
use proptest::prelude::*;
use serde_json::json;
use std::sync::{Arc, Barrier};

const NOW: i64 = 1_760_000_000;
const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "https://api.example.com";
const URI: &str = "https://api.example.com/v1/things";

struct Fixture {
    ed: SigningKey,
    es: SigningKey,
    keys: KeySet,
    client: SigningKey,
}

fn fixture() -> Fixture {
    let ed = SigningKey::generate(Alg::EdDsa).unwrap();
    let es = SigningKey::generate(Alg::Es256).unwrap();
    let mut keys = KeySet::new();
    keys.insert("ed-1", ed.public_jwk().verifying_key().unwrap())
        .unwrap();
    keys.insert("es-1", es.public_jwk().verifying_key().unwrap())
        .unwrap();
    Fixture {
        ed,
        es,
        keys,
        client: SigningKey::generate(Alg::EdDsa).unwrap(),
    }
}

fn claims(fx: &Fixture) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISSUER.into(),
        sub: "spiffe://daas/app/alice".into(),
        aud: vec![AUDIENCE.into()],
        exp: NOW + 300,
        nbf: Some(NOW - 10),
        iat: NOW - 10,
        jti: "token-1".into(),
        scope: vec!["things:read".into(), "things:write".into()],
        jkt: fx.client.public_jwk().thumbprint(),
        status: Some(StatusListRef {
            idx: 42,
            uri: "https://status.example.com/lists/1".into(),
        }),
        client_id: Some("client-7".into()),
    }
}

fn issue(fx: &Fixture) -> String {
    issue_access_token(&fx.ed, "ed-1", &claims(fx)).unwrap()
}

fn verify(token: &str, fx: &Fixture) -> Result<VerifiedAccessToken, AccessTokenError> {
    verify_access_token(token, &fx.keys, ISSUER, AUDIENCE, NOW, 0)
}

/// The claims of [`claims`] as JSON, to mutate.
fn claims_json(fx: &Fixture) -> Value {
    json!({
        "iss": ISSUER,
        "sub": "spiffe://daas/app/alice",
        "aud": AUDIENCE,
        "exp": NOW + 300,
        "iat": NOW - 10,
        "jti": "token-1",
        "cnf": {"jkt": fx.client.public_jwk().thumbprint()},
    })
}

fn header() -> Value {
    json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "ed-1"})
}

fn forge(header: &Value, claims: &Value, key: &SigningKey) -> String {
    forge_text(&header.to_string(), &claims.to_string(), key)
}

fn forge_text(header: &str, claims: &str, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header.as_bytes()),
        b64::encode(claims.as_bytes())
    );
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(&sig))
}

fn with(mut value: Value, name: &str, member: Value) -> Value {
    value[name] = member;
    value
}

fn without(mut value: Value, name: &str) -> Value {
    value.as_object_mut().unwrap().remove(name);
    value
}

#[test]
fn roundtrip_both_algs() {
    let fx = fixture();
    for (kid, key) in [("ed-1", &fx.ed), ("es-1", &fx.es)] {
        let token = issue_access_token(key, kid, &claims(&fx)).unwrap();
        let verified = verify(&token, &fx).unwrap();
        assert_eq!(verified.claims(), &claims(&fx));
        assert_eq!(verified.kid(), kid);
        assert_eq!(verified.jkt(), fx.client.public_jwk().thumbprint());
        assert_eq!(verified.access_token_hash(), access_token_hash(&token));
    }
    // The wire form: one audience is a string, scope one string, cnf and status nested.
    let token = issue(&fx);
    let payload = token.split('.').nth(1).unwrap();
    let map: Value = serde_json::from_slice(&b64::decode(payload).unwrap()).unwrap();
    assert_eq!(map["aud"], json!(AUDIENCE));
    assert_eq!(map["scope"], json!("things:read things:write"));
    assert_eq!(
        map["cnf"],
        json!({"jkt": fx.client.public_jwk().thumbprint()})
    );
    assert_eq!(
        map["status"],
        json!({"status_list": {"idx": 42, "uri": "https://status.example.com/lists/1"}})
    );
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&b64::decode(header).unwrap()).unwrap();
    assert_eq!(
        header,
        json!({"alg": "EdDSA", "kid": "ed-1", "typ": "at+jwt"})
    );
}

#[test]
fn minimal_claims_and_audience_arrays() {
    let fx = fixture();
    let mut minimal = claims(&fx);
    minimal.nbf = None;
    minimal.scope = Vec::new();
    minimal.status = None;
    minimal.client_id = None;
    minimal.aud = vec!["https://other.example".into(), AUDIENCE.into()];
    let token = issue_access_token(&fx.ed, "ed-1", &minimal).unwrap();
    assert_eq!(verify(&token, &fx).unwrap().claims(), &minimal);
    let payload = token.split('.').nth(1).unwrap();
    let map: Value = serde_json::from_slice(&b64::decode(payload).unwrap()).unwrap();
    assert_eq!(map["aud"], json!(["https://other.example", AUDIENCE]));
    for absent in ["nbf", "scope", "status", "client_id"] {
        assert!(map.get(absent).is_none(), "{absent}");
    }
}

#[test]
fn typ_must_be_exactly_at_jwt() {
    let fx = fixture();
    for typ in [
        json!("dpop+jwt"),
        json!("application/at+jwt"),
        json!("AT+JWT"),
        json!("JWT"),
        json!("jwt"),
        json!(""),
    ] {
        let token = forge(
            &with(header(), "typ", typ.clone()),
            &claims_json(&fx),
            &fx.ed,
        );
        assert_eq!(
            verify(&token, &fx).unwrap_err(),
            AccessTokenError::WrongType,
            "{typ}"
        );
    }
    let token = forge(&without(header(), "typ"), &claims_json(&fx), &fx.ed);
    assert_eq!(
        verify(&token, &fx).unwrap_err(),
        AccessTokenError::WrongType
    );
    // A DPoP proof presented as an access token: its embedded jwk alone rules it out.
    let proof = build_proof(&fx.client, "GET", URI, NOW, None, None, None).unwrap();
    assert_eq!(
        verify(&proof, &fx).unwrap_err(),
        AccessTokenError::Jws(JwsError::ForbiddenHeader("jwk"))
    );
}

#[test]
fn only_eddsa_and_es256() {
    let fx = fixture();
    for alg in [
        "none", "None", "NONE", "nOnE", "HS256", "HS512", "RS256", "PS256", "es256", "",
    ] {
        let token = forge(
            &with(header(), "alg", json!(alg)),
            &claims_json(&fx),
            &fx.ed,
        );
        assert_eq!(
            verify(&token, &fx).unwrap_err(),
            AccessTokenError::Jws(JwsError::UnsupportedAlg),
            "{alg}"
        );
    }
    let unsigned = format!(
        "{}.{}.",
        b64::encode(with(header(), "alg", json!("none")).to_string().as_bytes()),
        b64::encode(claims_json(&fx).to_string().as_bytes())
    );
    assert_eq!(
        verify(&unsigned, &fx).unwrap_err(),
        AccessTokenError::Jws(JwsError::UnsupportedAlg)
    );
    // The right key with the other algorithm's header.
    let token = forge(
        &with(header(), "alg", json!("ES256")),
        &claims_json(&fx),
        &fx.ed,
    );
    assert_eq!(
        verify(&token, &fx).unwrap_err(),
        AccessTokenError::Jws(JwsError::AlgMismatch)
    );
}

#[test]
fn hs256_resigned_with_the_public_key_is_rejected() {
    use aws_lc_rs::hmac;
    let fx = fixture();
    let input = format!(
        "{}.{}",
        b64::encode(with(header(), "alg", json!("HS256")).to_string().as_bytes()),
        b64::encode(claims_json(&fx).to_string().as_bytes())
    );
    let public = fx.ed.public_jwk();
    let raw = match public {
        PublicJwk::Ed25519 { x } => x.to_vec(),
        PublicJwk::P256 { .. } => unreachable!(),
    };
    for secret in [public.to_json().into_bytes(), raw] {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", b64::encode(tag.as_ref()));
        assert_eq!(
            verify(&token, &fx).unwrap_err(),
            AccessTokenError::Jws(JwsError::UnsupportedAlg)
        );
    }
}

#[test]
fn kid_is_required_and_only_a_lookup_key() {
    let fx = fixture();
    for kid in [
        "../../etc/passwd",
        "' OR 1=1 --",
        "http://x",
        "https://evil.example/jwks.json",
        "ED-1",
        "ed-1 ",
        "ed-1\0",
        "*",
        "",
    ] {
        let token = forge(
            &with(header(), "kid", json!(kid)),
            &claims_json(&fx),
            &fx.ed,
        );
        assert_eq!(
            verify(&token, &fx).unwrap_err(),
            AccessTokenError::Jws(JwsError::UnknownKey),
            "{kid:?}"
        );
    }
    let token = forge(&without(header(), "kid"), &claims_json(&fx), &fx.ed);
    assert_eq!(
        verify(&token, &fx).unwrap_err(),
        AccessTokenError::Jws(JwsError::Malformed("kid is missing"))
    );
    for kid in [json!(1), json!(["ed-1"]), json!(null)] {
        let token = forge(&with(header(), "kid", kid), &claims_json(&fx), &fx.ed);
        assert_eq!(
            verify(&token, &fx).unwrap_err(),
            AccessTokenError::Jws(JwsError::Malformed("kid is not a string"))
        );
    }
    // The ES256 key's kid over an EdDSA signature.
    let token = forge(
        &with(header(), "kid", json!("es-1")),
        &claims_json(&fx),
        &fx.ed,
    );
    assert_eq!(
        verify(&token, &fx).unwrap_err(),
        AccessTokenError::Jws(JwsError::AlgMismatch)
    );
    // Signed by a key that is not in the set, under a kid that is.
    let stranger = SigningKey::generate(Alg::EdDsa).unwrap();
    let token = issue_access_token(&stranger, "ed-1", &claims(&fx)).unwrap();
    assert_eq!(
        verify(&token, &fx).unwrap_err(),
        AccessTokenError::Jws(JwsError::BadSignature)
    );
}

#[test]
fn key_reference_headers_and_crit_are_refused() {
    let fx = fixture();
    for (name, value, expected) in [
        (
            "jku",
            json!("https://evil.example/jwks"),
            JwsError::ForbiddenHeader("jku"),
        ),
        (
            "x5u",
            json!("https://evil.example/cert"),
            JwsError::ForbiddenHeader("x5u"),
        ),
        ("x5c", json!(["MIIB"]), JwsError::ForbiddenHeader("x5c")),
        ("x5t", json!("AA"), JwsError::ForbiddenHeader("x5t")),
        (
            "jwk",
            fx.ed.public_jwk().to_value(),
            JwsError::ForbiddenHeader("jwk"),
        ),
        ("crit", json!(["exp"]), JwsError::ForbiddenHeader("crit")),
        ("crit", json!(["status"]), JwsError::ForbiddenHeader("crit")),
        ("cty", json!("JWT"), JwsError::UnknownHeader),
    ] {
        let token = forge(&with(header(), name, value), &claims_json(&fx), &fx.ed);
        assert_eq!(
            verify(&token, &fx).unwrap_err(),
            AccessTokenError::Jws(expected),
            "{name}"
        );
    }
}

#[test]
fn structure_is_strict() {
    let fx = fixture();
    let token = issue(&fx);
    let (input, sig) = token.rsplit_once('.').unwrap();
    let (h, p) = input.split_once('.').unwrap();
    for bad in [
        String::new(),
        input.to_owned(),
        format!("{token}."),
        format!("{token}.{sig}"),
        format!("{h}.{p}.{sig}="),
        format!("{h}=.{p}.{sig}"),
        format!("{h}.{p}+.{sig}"),
        format!("{h}.{p}/.{sig}"),
        format!("{h}.{p} .{sig}"),
        "a".repeat(crate::MAX_TOKEN_LEN + 1),
    ] {
        assert!(
            matches!(verify(&bad, &fx), Err(AccessTokenError::Jws(_))),
            "{bad:?}"
        );
    }
    // Oversize, from a real issuer.
    let mut big = claims(&fx);
    big.aud = vec!["a".repeat(1000); 20];
    assert_eq!(
        issue_access_token(&fx.ed, "ed-1", &big).unwrap_err(),
        KeyError::TooLarge {
            max: crate::MAX_TOKEN_LEN
        }
    );
    // Duplicate keys: in the header, in the claims, inside cnf.
    let base = claims_json(&fx).to_string();
    for (header_text, claims_text) in [
        (
            r#"{"alg":"EdDSA","typ":"at+jwt","kid":"ed-1","kid":"es-1"}"#.to_owned(),
            base.clone(),
        ),
        (
            header().to_string(),
            base.replacen('{', r#"{"aud":"https://evil.example","#, 1),
        ),
        (
            header().to_string(),
            base.replacen(
                r#""cnf":{"#,
                r#""cnf":{"jkt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","#,
                1,
            ),
        ),
    ] {
        let token = forge_text(&header_text, &claims_text, &fx.ed);
        assert!(
            matches!(
                verify(&token, &fx),
                Err(AccessTokenError::Jws(JwsError::Malformed(_)))
            ),
            "{header_text} {claims_text}"
        );
    }
}

#[test]
fn times() {
    let fx = fixture();
    let at = |now: i64, leeway: u32| {
        verify_access_token(&issue(&fx), &fx.keys, ISSUER, AUDIENCE, now, leeway)
    };
    at(NOW, 0).unwrap();
    at(NOW + 299, 0).unwrap();
    assert_eq!(at(NOW + 300, 0).unwrap_err(), AccessTokenError::Expired);
    at(NOW + 300, 30).unwrap();
    assert_eq!(at(NOW + 330, 30).unwrap_err(), AccessTokenError::Expired);
    assert_eq!(at(i64::MAX, 30).unwrap_err(), AccessTokenError::Expired);
    // nbf and iat are NOW - 10.
    at(NOW - 10, 0).unwrap();
    assert_eq!(at(NOW - 11, 0).unwrap_err(), AccessTokenError::NotYetValid);
    at(NOW - 40, 30).unwrap();

    let check = |claims: Value| verify(&forge(&header(), &claims, &fx.ed), &fx);
    let base = claims_json(&fx);
    assert_eq!(
        check(with(base.clone(), "nbf", json!(NOW + 1))).unwrap_err(),
        AccessTokenError::NotYetValid
    );
    assert_eq!(
        check(with(base.clone(), "iat", json!(NOW + 1))).unwrap_err(),
        AccessTokenError::IssuedInFuture
    );
    assert_eq!(
        check(with(base.clone(), "exp", json!(NOW - 1))).unwrap_err(),
        AccessTokenError::Expired
    );
    for (claims, reason) in [
        (
            without(base.clone(), "exp"),
            "exp is missing or not an integer",
        ),
        (
            with(base.clone(), "exp", json!(1e12)),
            "exp is missing or not an integer",
        ),
        (
            with(base.clone(), "exp", json!((NOW + 300).to_string())),
            "exp is missing or not an integer",
        ),
        (
            with(base.clone(), "exp", json!(u64::MAX)),
            "exp is missing or not an integer",
        ),
        (
            without(base.clone(), "iat"),
            "iat is missing or not an integer",
        ),
        (
            with(base.clone(), "iat", json!(null)),
            "iat is missing or not an integer",
        ),
        (
            with(base.clone(), "nbf", json!(null)),
            "nbf is not an integer",
        ),
        (
            with(base.clone(), "nbf", json!(1.5)),
            "nbf is not an integer",
        ),
    ] {
        assert_eq!(
            check(claims).unwrap_err(),
            AccessTokenError::Claim(reason),
            "{reason}"
        );
    }
}

#[test]
fn audience_must_contain_ours_and_be_well_formed() {
    let fx = fixture();
    let check = |aud: Value| {
        verify(
            &forge(&header(), &with(claims_json(&fx), "aud", aud), &fx.ed),
            &fx,
        )
    };
    check(json!(AUDIENCE)).unwrap();
    check(json!([AUDIENCE])).unwrap();
    check(json!(["https://other.example", AUDIENCE])).unwrap();
    for wrong in [
        json!("https://other.example"),
        json!("https://api.example.com/"),
        json!("HTTPS://API.EXAMPLE.COM"),
        json!(["https://other.example"]),
        json!(format!("{AUDIENCE} https://other.example")),
    ] {
        assert_eq!(
            check(wrong.clone()).unwrap_err(),
            AccessTokenError::WrongAudience,
            "{wrong}"
        );
    }
    for confused in [
        json!([[AUDIENCE]]),
        json!({"0": AUDIENCE}),
        json!([]),
        json!(""),
        json!([""]),
        json!([AUDIENCE, 1]),
        json!([AUDIENCE, null]),
        json!([AUDIENCE, [AUDIENCE]]),
        json!(null),
        json!(true),
        json!(1),
    ] {
        assert!(
            matches!(check(confused.clone()), Err(AccessTokenError::Claim(_))),
            "{confused}"
        );
    }
    let missing = forge(&header(), &without(claims_json(&fx), "aud"), &fx.ed);
    assert!(matches!(
        verify(&missing, &fx),
        Err(AccessTokenError::Claim(_))
    ));
}

#[test]
fn issuer_and_other_string_claims() {
    let fx = fixture();
    let check = |claims: Value| verify(&forge(&header(), &claims, &fx.ed), &fx);
    let base = claims_json(&fx);
    for iss in [
        "https://evil.example",
        "https://issuer.example.com/",
        "HTTPS://ISSUER.EXAMPLE.COM",
    ] {
        assert_eq!(
            check(with(base.clone(), "iss", json!(iss))).unwrap_err(),
            AccessTokenError::WrongIssuer
        );
    }
    for (name, value) in [
        ("iss", json!(null)),
        ("iss", json!([ISSUER])),
        ("iss", json!("")),
        ("sub", json!(1)),
        ("sub", json!("")),
        ("jti", json!({})),
        ("jti", json!("j".repeat(MAX_CLAIM_LEN + 1))),
        ("client_id", json!(7)),
        ("client_id", json!("")),
    ] {
        assert!(
            matches!(
                check(with(base.clone(), name, value.clone())),
                Err(AccessTokenError::Claim(_))
            ),
            "{name} {value}"
        );
    }
    for name in ["iss", "sub", "jti"] {
        assert!(
            matches!(
                check(without(base.clone(), name)),
                Err(AccessTokenError::Claim(_))
            ),
            "{name}"
        );
    }
    // Unknown claims are allowed and ignored.
    check(with(base, "roles", json!(["admin"]))).unwrap();
}

#[test]
fn cnf_is_exactly_a_thumbprint() {
    let fx = fixture();
    let check = |cnf: Value| {
        verify(
            &forge(&header(), &with(claims_json(&fx), "cnf", cnf), &fx.ed),
            &fx,
        )
    };
    let jkt = fx.client.public_jwk().thumbprint();
    check(json!({"jkt": jkt})).unwrap();
    for bad in [
        json!(null),
        json!(jkt),
        json!([jkt]),
        json!({}),
        json!({"jkt": jkt, "jwk": fx.client.public_jwk().to_value()}),
        json!({"jkt": jkt, "x5t#S256": jkt}),
        json!({"jwk": fx.client.public_jwk().to_value()}),
        json!({"jkt": format!("{jkt}=")}),
        json!({"jkt": &jkt[..42]}),
        json!({"jkt": format!("{jkt}A")}),
        // Standard-alphabet characters, always present: swapping `-`/`_` in the thumbprint was
        // a no-op (and the case passed) whenever it held neither, about one run in four.
        json!({"jkt": format!("+{}", &jkt[1..])}),
        json!({"jkt": format!("/{}", &jkt[1..])}),
        json!({"jkt": 1}),
        json!({"JKT": jkt}),
    ] {
        assert!(
            matches!(check(bad.clone()), Err(AccessTokenError::Claim(_))),
            "{bad}"
        );
    }
    let missing = forge(&header(), &without(claims_json(&fx), "cnf"), &fx.ed);
    assert_eq!(
        verify(&missing, &fx).unwrap_err(),
        AccessTokenError::Claim("cnf is missing or not exactly {jkt}")
    );
}

#[test]
fn scope_and_status_shapes() {
    let fx = fixture();
    let check = |name: &str, value: Value| {
        verify(
            &forge(&header(), &with(claims_json(&fx), name, value), &fx.ed),
            &fx,
        )
    };
    assert_eq!(
        check("scope", json!("a b:c")).unwrap().claims().scope,
        ["a", "b:c"]
    );
    for bad in [
        json!(""),
        json!("a  b"),
        json!(" a"),
        json!("a "),
        json!("a\"b"),
        json!("a\\b"),
        json!("é"),
        json!(["a"]),
        json!(null),
    ] {
        assert!(
            matches!(check("scope", bad.clone()), Err(AccessTokenError::Claim(_))),
            "{bad}"
        );
    }
    let status = check(
        "status",
        json!({"status_list": {"idx": 0, "uri": "https://s.example/1"}}),
    )
    .unwrap();
    assert_eq!(
        status.claims().status,
        Some(StatusListRef {
            idx: 0,
            uri: "https://s.example/1".into()
        })
    );
    for bad in [
        json!({"status_list": {"idx": -1, "uri": "https://s.example/1"}}),
        json!({"status_list": {"idx": 1.5, "uri": "https://s.example/1"}}),
        json!({"status_list": {"idx": "1", "uri": "https://s.example/1"}}),
        json!({"status_list": {"idx": 1}}),
        json!({"status_list": {"uri": "https://s.example/1"}}),
        json!({"status_list": {"idx": 1, "uri": ""}}),
        json!({"status_list": {"idx": 1, "uri": "u", "extra": 1}}),
        json!({"status_list": {"idx": 1, "uri": "u"}, "extra": 1}),
        json!({"idx": 1, "uri": "u"}),
        json!([]),
        json!(null),
    ] {
        assert!(
            matches!(
                check("status", bad.clone()),
                Err(AccessTokenError::Claim(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn issue_refuses_claims_that_cannot_verify() {
    let fx = fixture();
    type Mutation = fn(&mut AccessTokenClaims);
    let cases: [(Mutation, &str); 9] = [
        (|c| c.iss.clear(), "iss is empty or too long"),
        (|c| c.sub.clear(), "sub is empty or too long"),
        (|c| c.jti.clear(), "jti is empty or too long"),
        (
            |c| c.aud.clear(),
            "aud is empty or has an empty or too long entry",
        ),
        (
            |c| c.aud.push(String::new()),
            "aud is empty or has an empty or too long entry",
        ),
        (
            |c| c.scope.push("a b".into()),
            "scope has an invalid scope token",
        ),
        (|c| c.jkt.push('A'), "jkt is not a sha-256 thumbprint"),
        (|c| c.exp = c.iat, "exp is not after iat"),
        (
            |c| c.client_id = Some(String::new()),
            "client_id is empty or too long",
        ),
    ];
    for (mutate, reason) in cases {
        let mut c = claims(&fx);
        mutate(&mut c);
        assert_eq!(
            issue_access_token(&fx.ed, "ed-1", &c).unwrap_err(),
            KeyError::InvalidClaims(reason)
        );
    }
    assert_eq!(
        issue_access_token(&fx.ed, "", &claims(&fx)).unwrap_err(),
        KeyError::InvalidKid
    );
}

#[test]
fn verifier_expectations_must_be_set() {
    let fx = fixture();
    let token = issue(&fx);
    for (iss, aud) in [("", AUDIENCE), (ISSUER, "")] {
        let err = verify_access_token(&token, &fx.keys, iss, aud, NOW, 0).unwrap_err();
        assert!(matches!(err, AccessTokenError::InvalidExpectation(_)));
        assert_eq!(err.fault(), Fault::Caller);
        assert_eq!(err.error_code(), ErrorCode::ServerError);
    }
    let err = verify(&format!("{token}x"), &fx).unwrap_err();
    assert_eq!(err.fault(), Fault::Peer);
    assert_eq!(err.error_code(), ErrorCode::InvalidToken);
    assert_eq!(err.error_code().as_challenge(), Some("invalid_token"));
}

// --- the whole request ---

fn policy(fx: &Fixture) -> DpopPolicy<'_> {
    DpopPolicy {
        keys: &fx.keys,
        issuer: ISSUER,
        audience: AUDIENCE,
        token_leeway_secs: 0,
        proof: ProofPolicy::default(),
        nonce_key: None,
        token_cache: None,
    }
}

fn request<'a>(token: &'a str, proofs: &'a [&'a str]) -> DpopRequest<'a> {
    DpopRequest {
        access_token: token,
        proof_headers: proofs,
        method: "GET",
        uri: URI,
    }
}

#[test]
fn dpop_request_end_to_end() {
    let fx = fixture();
    let token = issue(&fx);
    let proof = build_proof(&fx.client, "GET", URI, NOW, None, Some(&token), None).unwrap();
    let cache = MemoryReplayCache::new(16);
    let (verified_token, verified_proof) =
        verify_dpop_request(&request(&token, &[&proof]), &policy(&fx), &cache, NOW).unwrap();
    assert_eq!(verified_token.jkt(), verified_proof.jkt());
    assert_eq!(verified_token.claims().sub, "spiffe://daas/app/alice");
    assert_eq!(verified_proof.htu(), URI);
    // Replayed.
    assert_eq!(
        verify_dpop_request(&request(&token, &[&proof]), &policy(&fx), &cache, NOW).unwrap_err(),
        DpopError::Replayed
    );
}

#[test]
fn dpop_request_rejections_and_their_answers() {
    let fx = fixture();
    let token = issue(&fx);
    let good = build_proof(&fx.client, "GET", URI, NOW, None, Some(&token), None).unwrap();
    let thief = SigningKey::generate(Alg::EdDsa).unwrap();
    let stolen = build_proof(&thief, "GET", URI, NOW, None, Some(&token), None).unwrap();
    let post = build_proof(&fx.client, "POST", URI, NOW, None, Some(&token), None).unwrap();
    let no_ath = build_proof(&fx.client, "GET", URI, NOW, None, None, None).unwrap();
    let cache = MemoryReplayCache::new(16);
    let run = |token: &str, proofs: &[&str]| {
        verify_dpop_request(&request(token, proofs), &policy(&fx), &cache, NOW)
    };

    let cases: Vec<(Result<_, DpopError>, DpopError, ErrorCode)> = vec![
        (
            run(&token, &[&stolen]),
            DpopError::KeyMismatch,
            ErrorCode::InvalidDpopProof,
        ),
        (
            run(&token, &[&post]),
            DpopError::MethodMismatch,
            ErrorCode::InvalidDpopProof,
        ),
        (
            run(&token, &[&no_ath]),
            DpopError::ProofClaim("ath is missing"),
            ErrorCode::InvalidDpopProof,
        ),
        (
            run(&token, &[]),
            DpopError::MissingProof,
            ErrorCode::InvalidDpopProof,
        ),
        (
            run(&token, &[&good, &good]),
            DpopError::MultipleProofs,
            ErrorCode::InvalidDpopProof,
        ),
        // The proof as the token and the token as the proof.
        (
            run(&good, &[&token]),
            DpopError::AccessToken(AccessTokenError::Jws(JwsError::ForbiddenHeader("jwk"))),
            ErrorCode::InvalidToken,
        ),
        (
            run(&token, &[&token]),
            DpopError::ProofType,
            ErrorCode::InvalidDpopProof,
        ),
        (
            run(&format!("{token}x"), &[&good]),
            DpopError::AccessToken(AccessTokenError::Jws(JwsError::Malformed(
                "signature is not canonical base64url",
            ))),
            ErrorCode::InvalidToken,
        ),
    ];
    for (result, expected, code) in cases {
        let err = result.unwrap_err();
        assert_eq!(err, expected);
        assert_eq!(err.error_code(), code, "{err}");
    }
    // None of those burned the good proof's jti.
    assert!(cache.is_empty());
    run(&token, &[&good]).unwrap();

    // An expired token is refused before the proof is looked at.
    let expired = verify_dpop_request(&request(&token, &[&good]), &policy(&fx), &cache, NOW + 300);
    assert_eq!(
        expired.unwrap_err(),
        DpopError::AccessToken(AccessTokenError::Expired)
    );
}

#[test]
fn dpop_request_with_required_nonce() {
    let fx = fixture();
    let nonce_key = NonceKey::new([3; 32]);
    let policy = DpopPolicy {
        nonce_key: Some(&nonce_key),
        token_cache: None,
        ..policy(&fx)
    };
    let token = issue(&fx);
    let cache = MemoryReplayCache::new(16);
    let first = build_proof(&fx.client, "GET", URI, NOW, None, Some(&token), None).unwrap();
    let err = verify_dpop_request(&request(&token, &[&first]), &policy, &cache, NOW).unwrap_err();
    assert_eq!(err, DpopError::NonceMissing);
    assert_eq!(err.error_code(), ErrorCode::UseDpopNonce);
    // The client retries with the nonce from the DPoP-Nonce header.
    let nonce = nonce_key.issue(NOW);
    let second = build_proof(
        &fx.client,
        "GET",
        URI,
        NOW,
        None,
        Some(&token),
        Some(&nonce),
    )
    .unwrap();
    verify_dpop_request(&request(&token, &[&second]), &policy, &cache, NOW).unwrap();
}

#[test]
fn dpop_request_with_an_external_replay_store() {
    let fx = fixture();
    let token = issue(&fx);
    let proof = build_proof(
        &fx.client,
        "GET",
        URI,
        NOW,
        Some("ext-1"),
        Some(&token),
        None,
    )
    .unwrap();
    let pending =
        verify_dpop_request_pending(&request(&token, &[&proof]), &policy(&fx), NOW).unwrap();
    assert_eq!(
        pending.replay_key(),
        &ReplayKey::derive(&fx.client.public_jwk().thumbprint(), "ext-1")
    );
    assert_eq!(pending.expires_at(), NOW + 61);
    // What an async store answered.
    let (t, p) = pending.finish(true).unwrap();
    assert_eq!(t.jkt(), p.jkt());
    let pending =
        verify_dpop_request_pending(&request(&token, &[&proof]), &policy(&fx), NOW).unwrap();
    assert_eq!(pending.finish(false).unwrap_err(), DpopError::Replayed);
}

#[test]
fn dpop_request_concurrent_replay_admits_exactly_one() {
    const THREADS: usize = 8;
    let fx = Arc::new(fixture());
    let token = Arc::new(issue(&fx));
    let proof =
        Arc::new(build_proof(&fx.client, "GET", URI, NOW, None, Some(&token), None).unwrap());
    let cache = Arc::new(MemoryReplayCache::new(64));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (fx, token, proof, cache, barrier) = (
                Arc::clone(&fx),
                Arc::clone(&token),
                Arc::clone(&proof),
                Arc::clone(&cache),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                barrier.wait();
                verify_dpop_request(
                    &request(&token, &[&proof]),
                    &policy(&fx),
                    cache.as_ref(),
                    NOW,
                )
                .map(|_| ())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == Err(DpopError::Replayed))
            .count(),
        THREADS - 1
    );
}

fn shared_fixture() -> &'static Fixture {
    static FX: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FX.get_or_init(fixture)
}

fn claims_strategy() -> impl Strategy<Value = AccessTokenClaims> {
    let text = "[ -~]{1,40}";
    (
        (
            text,
            text,
            prop::collection::vec(text, 0..3),
            1i64..100_000,
            prop::option::of(0i64..100),
        ),
        (
            "[!-~]{1,40}",
            prop::collection::vec("[!#-\\[\\]-~]{1,12}", 0..4),
        ),
        (
            prop::option::of((any::<u64>(), text)),
            prop::option::of(text),
        ),
    )
        .prop_map(
            |((sub, extra_aud, more_aud, ttl, nbf_back), (jti, scope), (status, client_id))| {
                let fx = shared_fixture();
                let mut aud = vec![AUDIENCE.to_owned(), extra_aud];
                aud.extend(more_aud);
                AccessTokenClaims {
                    iss: ISSUER.into(),
                    sub,
                    aud,
                    exp: NOW + ttl,
                    nbf: nbf_back.map(|b| NOW - b),
                    iat: NOW,
                    jti,
                    scope,
                    jkt: fx.client.public_jwk().thumbprint(),
                    status: status.map(|(idx, uri)| StatusListRef { idx, uri }),
                    client_id,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_issue_verify_roundtrip(claims in claims_strategy(), es in any::<bool>()) {
        let fx = shared_fixture();
        let (kid, key) = if es { ("es-1", &fx.es) } else { ("ed-1", &fx.ed) };
        let token = issue_access_token(key, kid, &claims).unwrap();
        let verified = verify(&token, fx).unwrap();
        prop_assert_eq!(verified.claims(), &claims);
        prop_assert_eq!(verified.kid(), kid);
    }

    #[test]
    fn prop_any_single_byte_change_is_rejected(
        es in any::<bool>(),
        index in any::<prop::sample::Index>(),
        replacement in 0x21u8..0x7f,
    ) {
        let fx = shared_fixture();
        let (kid, key) = if es { ("es-1", &fx.es) } else { ("ed-1", &fx.ed) };
        let token = issue_access_token(key, kid, &claims(fx)).unwrap();
        let i = index.index(token.len());
        prop_assume!(token.as_bytes()[i] != replacement);
        let mut bytes = token.into_bytes();
        bytes[i] = replacement;
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assert!(verify(&mutated, fx).is_err());
    }

    #[test]
    fn prop_verifier_never_panics(text in "[A-Za-z0-9_.=-]{0,200}") {
        let _ = verify(&text, shared_fixture());
    }
}

// ---------------------------------------------------------------- verified-token cache

fn verify_cached(
    token: &str,
    keys: &KeySet,
    aud: &str,
    now: i64,
    cache: &VerifiedTokenCache,
) -> Result<VerifiedAccessToken, AccessTokenError> {
    verify_access_token_cached(token, keys, ISSUER, aud, now, 0, cache)
}

#[test]
fn a_cached_token_is_remembered_once_verified_and_only_then() {
    let fx = fixture();
    let cache = VerifiedTokenCache::new(8);
    let token = issue(&fx);
    // A refused token (wrong audience) is not remembered.
    assert!(matches!(
        verify_cached(&token, &fx.keys, "https://other.example.com", NOW, &cache),
        Err(AccessTokenError::WrongAudience)
    ));
    assert!(cache.is_empty());
    let first = verify_cached(&token, &fx.keys, AUDIENCE, NOW, &cache).unwrap();
    assert_eq!(cache.len(), 1);
    let again = verify_cached(&token, &fx.keys, AUDIENCE, NOW, &cache).unwrap();
    assert_eq!(first, again);
    assert_eq!(first, verify(&token, &fx).unwrap());
    assert_eq!(cache.len(), 1);
}

#[test]
fn a_cache_hit_still_checks_audience_issuer_and_times() {
    let fx = fixture();
    let cache = VerifiedTokenCache::new(8);
    let token = issue(&fx);
    verify_cached(&token, &fx.keys, AUDIENCE, NOW, &cache).unwrap();
    assert!(matches!(
        verify_cached(&token, &fx.keys, "https://other.example.com", NOW, &cache),
        Err(AccessTokenError::WrongAudience)
    ));
    assert!(matches!(
        verify_access_token_cached(
            &token,
            &fx.keys,
            "https://evil.example.com",
            AUDIENCE,
            NOW,
            0,
            &cache
        ),
        Err(AccessTokenError::WrongIssuer)
    ));
    // exp is NOW + 300, nbf and iat NOW - 10.
    assert!(matches!(
        verify_cached(&token, &fx.keys, AUDIENCE, NOW + 300, &cache),
        Err(AccessTokenError::Expired)
    ));
    assert!(matches!(
        verify_cached(&token, &fx.keys, AUDIENCE, NOW - 11, &cache),
        Err(AccessTokenError::NotYetValid)
    ));
    assert!(matches!(
        verify_access_token_cached(&token, &fx.keys, ISSUER, AUDIENCE, NOW, 0, &cache)
            .map(|t| t.claims().jti.clone()),
        Ok(jti) if jti == "token-1"
    ));
}

#[test]
fn a_key_removed_or_replaced_after_caching_invalidates_its_tokens() {
    let fx = fixture();
    let cache = VerifiedTokenCache::new(8);
    let token = issue(&fx);
    verify_cached(&token, &fx.keys, AUDIENCE, NOW, &cache).unwrap();

    // The issuer key is rotated out of the set: the cached token is no longer accepted.
    let mut without_key = KeySet::new();
    without_key
        .insert("es-1", fx.es.public_jwk().verifying_key().unwrap())
        .unwrap();
    assert!(matches!(
        verify_cached(&token, &without_key, AUDIENCE, NOW, &cache),
        Err(AccessTokenError::Jws(JwsError::UnknownKey))
    ));
    assert!(cache.is_empty());

    // Cached again, then another key appears under the same kid: the signature is checked
    // against the new key, and fails.
    verify_cached(&token, &fx.keys, AUDIENCE, NOW, &cache).unwrap();
    let mut swapped = KeySet::new();
    let other = SigningKey::generate(Alg::EdDsa).unwrap();
    swapped
        .insert("ed-1", other.public_jwk().verifying_key().unwrap())
        .unwrap();
    assert!(matches!(
        verify_cached(&token, &swapped, AUDIENCE, NOW, &cache),
        Err(AccessTokenError::Jws(JwsError::BadSignature))
    ));
}

#[test]
fn the_cache_stays_within_its_capacity() {
    let fx = fixture();
    let cache = VerifiedTokenCache::new(16);
    for i in 0..100 {
        let mut c = claims(&fx);
        c.jti = format!("token-{i}");
        // Half of them expire early, so the sweep has something to drop.
        if i % 2 == 0 {
            c.exp = NOW + 1;
        }
        let token = issue_access_token(&fx.ed, "ed-1", &c).unwrap();
        verify_cached(&token, &fx.keys, AUDIENCE, NOW + i64::from(i % 2), &cache).ok();
        assert!(cache.len() <= 16, "{} tokens remembered", cache.len());
    }
    assert!(!cache.is_empty());
}

#[test]
fn a_dpop_request_through_the_cache_is_checked_like_one_without() {
    let fx = fixture();
    let token = issue(&fx);
    let token_cache = VerifiedTokenCache::new(8);
    let replay = MemoryReplayCache::new(64);
    let policy = DpopPolicy {
        token_cache: Some(&token_cache),
        ..policy(&fx)
    };
    for (i, key) in [&fx.client, &fx.client, &fx.es].into_iter().enumerate() {
        let jti = format!("proof-{i}");
        let proof = build_proof(key, "GET", URI, NOW, Some(&jti), Some(&token), None).unwrap();
        let result = verify_dpop_request(&request(&token, &[&proof]), &policy, &replay, NOW);
        if i < 2 {
            result.unwrap();
        } else {
            // The token was served from the cache; the proof by another key is still refused.
            assert!(matches!(result, Err(DpopError::KeyMismatch)), "{result:?}");
        }
    }
    assert_eq!(token_cache.len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever was cached before, a cached verification answers exactly as an uncached one.
    #[test]
    fn prop_cached_verification_agrees_with_uncached(
        es in any::<bool>(),
        mutate in prop::option::of((any::<prop::sample::Index>(), 0x21u8..0x7f)),
        drop_key in any::<bool>(),
        now_offset in -20i64..400,
        other_aud in any::<bool>(),
    ) {
        let fx = shared_fixture();
        let (kid, key) = if es { ("es-1", &fx.es) } else { ("ed-1", &fx.ed) };
        let token = issue_access_token(key, kid, &claims(fx)).unwrap();
        let cache = VerifiedTokenCache::new(4);
        verify_cached(&token, &fx.keys, AUDIENCE, NOW, &cache).unwrap();

        let presented = match mutate {
            Some((index, replacement)) => {
                let mut bytes = token.clone().into_bytes();
                let i = index.index(bytes.len());
                bytes[i] = replacement;
                String::from_utf8(bytes).unwrap()
            }
            None => token.clone(),
        };
        let mut keys = KeySet::new();
        if !drop_key {
            keys.insert(kid, key.public_jwk().verifying_key().unwrap()).unwrap();
        }
        let aud = if other_aud { "https://other.example.com" } else { AUDIENCE };
        let now = NOW + now_offset;
        let uncached = verify_access_token(&presented, &keys, ISSUER, aud, now, 0);
        let cached = verify_cached(&presented, &keys, aud, now, &cache);
        prop_assert_eq!(format!("{uncached:?}"), format!("{cached:?}"));
    }
}
