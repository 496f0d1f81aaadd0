use super::*;
use daas_token::{Alg, SigningKey, b64};
use proptest::prelude::*;

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn ca(name: &str) -> TrustDomainCa {
    TrustDomainCa::new(
        TrustDomain::new(name).unwrap(),
        time::Duration::days(30),
        t0(),
    )
    .unwrap()
}

fn id(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

fn set_of(cas: &[&TrustDomainCa]) -> JwtBundleSet {
    let mut set = JwtBundleSet::new();
    for ca in cas {
        set.insert(ca.jwt_bundle(t0()));
    }
    set
}

const FIVE_MIN: Duration = Duration::from_secs(300);

fn issue(ca: &TrustDomainCa, sub: &str, aud: &[&str]) -> String {
    let aud: Vec<String> = aud.iter().map(|s| (*s).to_owned()).collect();
    ca.issue_jwt_svid(&id(sub), &aud, FIVE_MIN, t0()).unwrap()
}

fn rejection(r: Result<ValidatedJwtSvid, JwtSvidError>) -> JwtSvidRejection {
    match r {
        Err(JwtSvidError::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// A token over an arbitrary header and claims, validly signed by `key` (`daas_token::sign`
/// only writes well-formed headers, so the adversarial ones are built here).
fn forge(header: &Value, claims: &Value, key: &SigningKey) -> String {
    let h = b64::encode(serde_json::to_vec(header).unwrap().as_slice());
    let c = b64::encode(serde_json::to_vec(claims).unwrap().as_slice());
    let input = format!("{h}.{c}");
    let sig = raw_sign(key, input.as_bytes());
    format!("{input}.{}", b64::encode(&sig))
}

/// Signs raw bytes with the key's PKCS#8 through aws-lc-rs (JWS `r || s` form for ES256).
fn raw_sign(key: &SigningKey, msg: &[u8]) -> Vec<u8> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
    let der = key.to_pkcs8().unwrap();
    match key.alg() {
        Alg::Es256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .unwrap()
            .sign(&aws_lc_rs::rand::SystemRandom::new(), msg)
            .unwrap()
            .as_ref()
            .to_vec(),
        Alg::EdDsa => Ed25519KeyPair::from_pkcs8(&der)
            .unwrap()
            .sign(msg)
            .as_ref()
            .to_vec(),
    }
}

/// A bundle set holding `key` under `kid` for `td`.
fn bundle_with(td: &str, kid: &str, key: &SigningKey) -> JwtBundleSet {
    let mut b = JwtBundle::new(TrustDomain::new(td).unwrap());
    b.insert(kid, key.public_jwk().clone()).unwrap();
    let mut set = JwtBundleSet::new();
    set.insert(b);
    set
}

#[test]
fn issued_tokens_validate_and_expose_their_claims() {
    let ca = ca("example.org");
    let token = issue(&ca, "spiffe://example.org/web", &["db", "cache"]);
    let set = set_of(&[&ca]);
    let ok = validate_jwt_svid(&token, "cache", &set, t0()).unwrap();
    assert_eq!(ok.spiffe_id(), &id("spiffe://example.org/web"));
    assert_eq!(ok.expires_at(), t0() + time::Duration::minutes(5));
    assert_eq!(ok.claims()["aud"], serde_json::json!(["db", "cache"]));
    assert_eq!(ok.claims()["iat"], t0().unix_timestamp());
    assert_eq!(Some(ok.kid()), ca.jwt_bundle(t0()).kids().next());
    // Header: ES256, kid, typ JWT, nothing else.
    let header: Value =
        serde_json::from_slice(&b64::decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header.as_object().unwrap().len(), 3, "{header}");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
}

#[test]
fn audience_expiry_and_trust_domain_are_enforced() {
    let a = ca("example.org");
    let b = ca("other.org");
    let token = issue(&a, "spiffe://example.org/web", &["db"]);
    let both = set_of(&[&a, &b]);
    assert_eq!(
        rejection(validate_jwt_svid(&token, "dB", &both, t0())),
        JwtSvidRejection::AudienceMismatch
    );
    assert_eq!(
        validate_jwt_svid(&token, "", &both, t0()).unwrap_err(),
        JwtSvidError::Caller("audience is empty")
    );
    // Leeway: accepted up to 30 s after exp, refused at exp + 30 s.
    let exp = t0() + time::Duration::minutes(5);
    assert!(validate_jwt_svid(&token, "db", &both, exp + time::Duration::seconds(29)).is_ok());
    assert_eq!(
        rejection(validate_jwt_svid(&token, "db", &both, exp + LEEWAY)),
        JwtSvidRejection::Expired
    );
    // Only the other trust domain's bundle: the kid is unknown there.
    let only_b = set_of(&[&b]);
    assert_eq!(
        rejection(validate_jwt_svid(&token, "db", &only_b, t0())),
        JwtSvidRejection::UnknownKey
    );
    // B's key used to sign a subject of A, with B's kid: refused even though B is trusted.
    let b_key = &b.jwt_keys()[0];
    let forged = forge(
        &serde_json::json!({"alg": "ES256", "kid": b_key.kid, "typ": "JWT"}),
        &serde_json::json!({"sub": "spiffe://example.org/web", "aud": "db", "exp": exp.unix_timestamp()}),
        &b_key.key,
    );
    assert_eq!(
        rejection(validate_jwt_svid(&forged, "db", &both, t0())),
        JwtSvidRejection::ForeignTrustDomain
    );
    // The same key published under the same kid by both domains still only vouches for B.
    let mut shared = bundle_with("other.org", &b_key.kid, &b_key.key);
    let mut a_bundle = JwtBundle::new(TrustDomain::new("example.org").unwrap());
    a_bundle
        .insert(
            &a.jwt_keys()[0].kid,
            a.jwt_keys()[0].key.public_jwk().clone(),
        )
        .unwrap();
    shared.insert(a_bundle);
    assert_eq!(
        rejection(validate_jwt_svid(&forged, "db", &shared, t0())),
        JwtSvidRejection::ForeignTrustDomain
    );
}

#[test]
fn spec_header_and_claim_rules() {
    let key = SigningKey::generate(Alg::Es256).unwrap();
    let set = bundle_with("example.org", "k", &key);
    let exp = (t0() + time::Duration::minutes(5)).unix_timestamp();
    let good_claims =
        serde_json::json!({"sub": "spiffe://example.org/web", "aud": "db", "exp": exp});
    let header = serde_json::json!({"alg": "ES256", "kid": "k"});
    // Baseline: string aud, no typ.
    let ok = forge(&header, &good_claims, &key);
    validate_jwt_svid(&ok, "db", &set, t0()).unwrap();
    for typ in ["JWT", "JOSE"] {
        let t = forge(
            &serde_json::json!({"alg": "ES256", "kid": "k", "typ": typ}),
            &good_claims,
            &key,
        );
        validate_jwt_svid(&t, "db", &set, t0()).unwrap();
    }

    let cases: Vec<(Value, Value, JwtSvidRejection)> = vec![
        (
            serde_json::json!({"alg": "ES256", "kid": "k", "typ": "dpop+jwt"}),
            good_claims.clone(),
            JwtSvidRejection::WrongType,
        ),
        (
            serde_json::json!({"alg": "ES256"}),
            good_claims.clone(),
            JwtSvidRejection::MissingKid,
        ),
        (
            serde_json::json!({"alg": "ES256", "kid": "nope"}),
            good_claims.clone(),
            JwtSvidRejection::UnknownKey,
        ),
        (
            serde_json::json!({"alg": "none", "kid": "k"}),
            good_claims.clone(),
            JwtSvidRejection::UnsupportedAlg,
        ),
        (
            serde_json::json!({"alg": "HS256", "kid": "k"}),
            good_claims.clone(),
            JwtSvidRejection::UnsupportedAlg,
        ),
        (
            serde_json::json!({"alg": "RS256", "kid": "k"}),
            good_claims.clone(),
            JwtSvidRejection::UnsupportedAlg,
        ),
        (
            header.clone(),
            serde_json::json!({"sub": "spiffe://example.org/web", "exp": exp}),
            JwtSvidRejection::InvalidAudience,
        ),
        (
            header.clone(),
            serde_json::json!({"sub": "spiffe://example.org/web", "aud": [], "exp": exp}),
            JwtSvidRejection::InvalidAudience,
        ),
        (
            header.clone(),
            serde_json::json!({"sub": "spiffe://example.org/web", "aud": ["db", 1], "exp": exp}),
            JwtSvidRejection::InvalidAudience,
        ),
        (
            header.clone(),
            serde_json::json!({"sub": "spiffe://example.org/web", "aud": "db"}),
            JwtSvidRejection::InvalidExpiry,
        ),
        (
            header.clone(),
            serde_json::json!({"sub": "spiffe://example.org/web", "aud": "db", "exp": "soon"}),
            JwtSvidRejection::InvalidExpiry,
        ),
        (
            header.clone(),
            serde_json::json!({"sub": "spiffe://example.org/web", "aud": "db", "exp": exp, "nbf": exp}),
            JwtSvidRejection::NotYetValid,
        ),
        (
            header.clone(),
            serde_json::json!({"aud": "db", "exp": exp}),
            JwtSvidRejection::InvalidSubject,
        ),
        (
            header.clone(),
            serde_json::json!({"sub": "spiffe://example.org", "aud": "db", "exp": exp}),
            JwtSvidRejection::InvalidSubject,
        ),
        (
            header.clone(),
            serde_json::json!({"sub": "web", "aud": "db", "exp": exp}),
            JwtSvidRejection::InvalidSubject,
        ),
    ];
    for (header, claims, want) in cases {
        let t = forge(&header, &claims, &key);
        assert_eq!(
            rejection(validate_jwt_svid(&t, "db", &set, t0())),
            want,
            "{header} {claims}"
        );
    }
    // Fractional NumericDate is accepted (RFC 7519 §2).
    let t = forge(
        &header,
        &serde_json::json!({"sub": "spiffe://example.org/web", "aud": "db", "exp": exp as f64 + 0.5}),
        &key,
    );
    validate_jwt_svid(&t, "db", &set, t0()).unwrap();
    // An Ed25519 key is not a JWT-SVID key even if a bundle named it so: skipped on parse.
    let ed = SigningKey::generate(Alg::EdDsa).unwrap();
    let text = format!(
        r#"{{"keys":[{}]}}"#,
        ed.public_jwk()
            .to_json()
            .replacen('{', r#"{"kid":"e","use":"jwt-svid","#, 1)
    );
    let parsed =
        JwtBundleSet::from_jwks_json(TrustDomain::new("example.org").unwrap(), text.as_bytes())
            .unwrap();
    assert!(
        parsed
            .get(&TrustDomain::new("example.org").unwrap())
            .unwrap()
            .is_empty()
    );
    let t = forge(
        &serde_json::json!({"alg": "EdDSA", "kid": "e"}),
        &good_claims,
        &ed,
    );
    assert_eq!(
        rejection(validate_jwt_svid(&t, "db", &parsed, t0())),
        JwtSvidRejection::UnsupportedAlg
    );
}

#[test]
fn issuance_checks_its_arguments() {
    let ca = ca("example.org");
    let web = id("spiffe://example.org/web");
    let aud = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    for bad in [
        aud(&[]),
        aud(&[""]),
        vec!["x".repeat(257)],
        aud(&["a\nb"]),
        (0..17).map(|i| i.to_string()).collect(),
    ] {
        assert!(matches!(
            ca.issue_jwt_svid(&web, &bad, FIVE_MIN, t0()),
            Err(Error::Caller(CallerError::Audience(_)))
        ));
    }
    assert!(
        ca.issue_jwt_svid(&web, &["x".repeat(256)], FIVE_MIN, t0())
            .is_ok()
    );
    assert!(matches!(
        ca.issue_jwt_svid(&id("spiffe://other.org/web"), &aud(&["a"]), FIVE_MIN, t0()),
        Err(Error::Caller(CallerError::NotInTrustDomain { .. }))
    ));
    assert!(matches!(
        ca.issue_jwt_svid(&id("spiffe://example.org"), &aud(&["a"]), FIVE_MIN, t0()),
        Err(Error::Caller(CallerError::NoPath))
    ));
    assert!(matches!(
        ca.issue_jwt_svid(&web, &aud(&["a"]), Duration::ZERO, t0()),
        Err(Error::Caller(CallerError::Ttl(_)))
    ));
    // Never outlives its key.
    let late = t0() + time::Duration::days(30) - time::Duration::seconds(60);
    let token = ca
        .issue_jwt_svid(&web, &aud(&["a"]), Duration::from_secs(3600), late)
        .unwrap();
    let ok = validate_jwt_svid(&token, "a", &set_of(&[&ca]), late).unwrap();
    assert_eq!(ok.expires_at(), ca.active_not_after());
}

#[test]
fn rotation_keeps_old_tokens_valid_and_survives_export() {
    let mut ca = ca("example.org");
    let old = issue(&ca, "spiffe://example.org/web", &["db"]);
    ca.rotate(t0()).unwrap();
    let bundle = ca.jwt_bundle(t0());
    assert_eq!(bundle.len(), 2);
    let new = ca
        .issue_jwt_svid(
            &id("spiffe://example.org/web"),
            &["db".to_owned()],
            FIVE_MIN,
            t0(),
        )
        .unwrap();
    let restored = TrustDomainCa::import(&ca.export().unwrap(), time::Duration::days(30)).unwrap();
    assert!(!restored.was_upgraded());
    // The bundle survives the JSON round trip and the restore.
    let json = restored.jwt_bundle(t0()).to_jwks_json();
    let set =
        JwtBundleSet::from_jwks_json(TrustDomain::new("example.org").unwrap(), json.as_bytes())
            .unwrap();
    for t in [&old, &new] {
        validate_jwt_svid(t, "db", &set, t0()).unwrap();
    }
    assert_eq!(
        set.to_jwks_json()["example.org"],
        ca.jwt_bundle(t0()).to_jwks_json()
    );
    // After the first generation expires, pruning drops its key.
    let mut ca = restored;
    let later = t0() + time::Duration::days(30) + time::Duration::seconds(1);
    ca.rotate(later).unwrap();
    assert_eq!(ca.jwt_keys().len(), 3);
    assert_eq!(
        ca.jwt_bundle(later).len(),
        1,
        "expired keys are not published"
    );
    ca.prune(later);
    assert_eq!(ca.jwt_keys().len(), 1);
    assert_eq!(ca.document_keys().len(), 1);
}

fn tamper_strategy() -> impl Strategy<Value = (usize, u8)> {
    (any::<usize>(), 1u8..=255)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_round_trip(path in "/[a-z0-9]{1,12}(/[a-z0-9_-]{1,8}){0,3}", auds in proptest::collection::vec("[ -~]{1,40}", 1..4), pick in any::<prop::sample::Index>()) {
        let ca = ca("example.org");
        let sub = format!("spiffe://example.org{path}");
        let token = ca.issue_jwt_svid(&id(&sub), &auds, FIVE_MIN, t0()).unwrap();
        let aud = pick.get(&auds);
        let ok = validate_jwt_svid(&token, aud, &set_of(&[&ca]), t0()).unwrap();
        prop_assert_eq!(ok.spiffe_id().to_string(), sub);
    }

    #[test]
    fn prop_any_single_byte_tamper_fails((pos, flip) in tamper_strategy()) {
        let ca = ca("example.org");
        let token = issue(&ca, "spiffe://example.org/web", &["db"]);
        let mut bytes = token.into_bytes();
        let i = pos % bytes.len();
        bytes[i] ^= flip;
        if let Ok(t) = String::from_utf8(bytes) {
            prop_assert!(validate_jwt_svid(&t, "db", &set_of(&[&ca]), t0()).is_err());
        }
    }

    #[test]
    fn prop_wrong_audience_expired_or_other_domain_fail(extra in 0i64..100_000, aud in "[a-z]{1,8}") {
        let a = ca("example.org");
        let b = ca("other.org");
        let token = issue(&a, "spiffe://example.org/web", &["db"]);
        let exp = t0() + time::Duration::minutes(5);
        let late = exp + LEEWAY + time::Duration::seconds(extra);
        prop_assert!(validate_jwt_svid(&token, "db", &set_of(&[&a]), late).is_err());
        prop_assert!(validate_jwt_svid(&token, "db", &set_of(&[&b]), t0()).is_err());
        if aud != "db" {
            prop_assert!(validate_jwt_svid(&token, &aud, &set_of(&[&a]), t0()).is_err());
        }
    }
}

#[test]
fn reads_the_published_bundle_body() {
    let ca = ca("example.org");
    let body = serde_json::json!({
        "trust_domain": "spiffe://example.org",
        "authorities": [],
        "pem": "",
        "jwt_authorities": ca.jwt_bundle(t0()).to_jwks_value(),
        "document_authorities": ca.document_bundle(t0()).to_jwks_value(),
    });
    let bundle = JwtBundle::from_trust_bundle_json(&serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(bundle.trust_domain().as_str(), "example.org");
    let mut set = JwtBundleSet::new();
    set.insert(bundle);
    let token = issue(&ca, "spiffe://example.org/web", &["db"]);
    validate_jwt_svid(&token, "db", &set, t0()).unwrap();
    // The document keys are not JWT-SVID keys.
    let mut swapped = body.clone();
    swapped["jwt_authorities"] = body["document_authorities"].clone();
    let swapped =
        JwtBundle::from_trust_bundle_json(&serde_json::to_vec(&swapped).unwrap()).unwrap();
    assert!(swapped.is_empty());
    for bad in [
        serde_json::json!({"trust_domain": "spiffe://example.org"}),
        serde_json::json!({"trust_domain": "example.org", "jwt_authorities": {"keys": []}}),
        serde_json::json!({"trust_domain": "spiffe://example.org/x", "jwt_authorities": {"keys": []}}),
    ] {
        assert!(JwtBundle::from_trust_bundle_json(&serde_json::to_vec(&bad).unwrap()).is_err());
    }
}
