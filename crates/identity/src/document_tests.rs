use super::*;
use proptest::prelude::*;

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn ca(name: &str) -> TrustDomainCa {
    TrustDomainCa::new(
        TrustDomain::new(name).unwrap(),
        time::Duration::days(90),
        t0(),
    )
    .unwrap()
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn meta() -> AppMetadata {
    AppMetadata {
        name: "web".into(),
        owner: "team web <web@example.org>".into(),
        allowed_digests: vec![digest('a'), digest('b')],
        roles: vec!["frontend".into()],
    }
}

fn instance(d: &str) -> (InstanceStatic, InstanceDynamic) {
    (
        InstanceStatic {
            binary_digest: d.to_owned(),
            node_id: "spiffe://example.org/daas/node/n1".parse().unwrap(),
            workload_id: Some("spiffe://example.org/web".parse().unwrap()),
        },
        InstanceDynamic {
            pid: 4242,
            started_at: 1_800_000_000_000,
        },
    )
}

const DAY: Duration = Duration::from_secs(24 * 3600);

struct Fixture {
    ca: TrustDomainCa,
    bundle: DocumentBundle,
    app_doc: String,
    app: VerifiedAppDocument,
    inst_doc: String,
}

fn fixture() -> Fixture {
    let ca = ca("example.org");
    let (app_doc, app) = ca
        .issue_app_document("app_0123", &meta(), 1, DEFAULT_APP_DOCUMENT_TTL, t0())
        .unwrap();
    let (s, d) = instance(&digest('b'));
    let (inst_doc, _) = ca
        .issue_instance_document(&app_doc, &app, &s, &d, DAY, t0())
        .unwrap();
    let bundle = ca.document_bundle(t0());
    Fixture {
        ca,
        bundle,
        app_doc,
        app,
        inst_doc,
    }
}

#[test]
fn app_and_instance_documents_round_trip() {
    let fx = fixture();
    let app = verify_app_document(&fx.app_doc, &fx.bundle, t0()).unwrap();
    assert_eq!(app.spiffe_id().to_string(), "spiffe://example.org/app/web");
    assert_eq!(app.uid(), "app_0123");
    assert_eq!(app.metadata(), &meta());
    assert_eq!(app.version(), 1);
    assert_eq!(app.expires_at(), t0() + time::Duration::days(30));
    let inst = verify_instance_document(&fx.inst_doc, &app, &fx.bundle, t0()).unwrap();
    let (s, d) = instance(&digest('b'));
    let id = instance_id("app_0123", &s, &d);
    assert_eq!(inst.instance_id(), id);
    assert_eq!(
        inst.spiffe_id().to_string(),
        format!("spiffe://example.org/app/web/instance/{id}")
    );
    assert_eq!(inst.static_metadata(), &s);
    assert_eq!(inst.dynamic_metadata(), &d);
    assert_eq!(inst.expires_at(), t0() + time::Duration::days(1));
    // The bundle as published (JSON) verifies too.
    let json = serde_json::to_vec(&fx.bundle.to_jwks_value()).unwrap();
    let parsed =
        DocumentBundle::from_jwks_json(TrustDomain::new("example.org").unwrap(), &json).unwrap();
    verify_app_document(&fx.app_doc, &parsed, t0()).unwrap();
    // Header: EdDSA with the document typ.
    let header: Value = serde_json::from_slice(
        &daas_token::b64::decode(fx.app_doc.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], APP_DOCUMENT_TYP);
}

#[test]
fn the_instance_id_encoding_is_pinned() {
    // Every field is length-prefixed: moving bytes between fields changes the ID.
    let (s, d) = instance(&digest('b'));
    let a = instance_id("app_0123", &s, &d);
    assert_eq!(a.len(), 64);
    let mut s2 = s.clone();
    s2.workload_id = None;
    assert_ne!(instance_id("app_0123", &s2, &d), a);
    assert_ne!(instance_id("app_012", &s, &d), a);
    assert_ne!(
        instance_id("app_0123", &s, &InstanceDynamic { pid: 4243, ..d }),
        a
    );
    // Independent computation of the documented encoding.
    let mut buf = Vec::new();
    for field in [
        &b"daas identity instance id v1"[..],
        b"app_0123",
        s.binary_digest.as_bytes(),
        b"spiffe://example.org/daas/node/n1",
        b"spiffe://example.org/web",
        &4242u32.to_be_bytes(),
        &1_800_000_000_000i64.to_be_bytes(),
    ] {
        buf.extend_from_slice(&u32::try_from(field.len()).unwrap().to_be_bytes());
        buf.extend_from_slice(field);
    }
    let expected = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &buf);
    assert_eq!(a, hex::encode(expected.as_ref()));
}

#[test]
fn forged_foreign_expired_and_unchained_documents_fail() {
    let fx = fixture();
    // Another trust domain's CA, and a CA of the same name with other keys.
    for other in [ca("other.org"), ca("example.org")] {
        let other_bundle = other.document_bundle(t0());
        assert_eq!(
            verify_app_document(&fx.app_doc, &other_bundle, t0()).unwrap_err(),
            DocumentError::UnknownKey
        );
        let (doc, _) = other
            .issue_app_document("app_0123", &meta(), 1, DEFAULT_APP_DOCUMENT_TTL, t0())
            .unwrap();
        assert_eq!(
            verify_app_document(&doc, &fx.bundle, t0()).unwrap_err(),
            DocumentError::UnknownKey
        );
    }
    // A bundle of another trust domain holding our key: the issuer does not match.
    let json = serde_json::to_vec(&fx.bundle.to_jwks_value()).unwrap();
    let renamed =
        DocumentBundle::from_jwks_json(TrustDomain::new("other.org").unwrap(), &json).unwrap();
    assert_eq!(
        verify_app_document(&fx.app_doc, &renamed, t0()).unwrap_err(),
        DocumentError::ForeignTrustDomain
    );
    // Expiry, with leeway.
    let exp = fx.app.expires_at();
    assert!(
        verify_app_document(&fx.app_doc, &fx.bundle, exp + time::Duration::seconds(29)).is_ok()
    );
    assert_eq!(
        verify_app_document(&fx.app_doc, &fx.bundle, exp + LEEWAY).unwrap_err(),
        DocumentError::Expired
    );
    assert_eq!(
        verify_instance_document(
            &fx.inst_doc,
            &fx.app,
            &fx.bundle,
            t0() + time::Duration::days(2)
        )
        .unwrap_err(),
        DocumentError::Expired
    );
    // Type confusion: an instance document is not an app document, and vice versa.
    assert_eq!(
        verify_app_document(&fx.inst_doc, &fx.bundle, t0()).unwrap_err(),
        DocumentError::WrongType
    );
    assert_eq!(
        verify_instance_document(&fx.app_doc, &fx.app, &fx.bundle, t0()).unwrap_err(),
        DocumentError::WrongType
    );
    // Chained to another app document (a re-issue of the same app): refused.
    let (doc2, app2) = fx
        .ca
        .issue_app_document("app_0123", &meta(), 2, DEFAULT_APP_DOCUMENT_TTL, t0())
        .unwrap();
    assert_ne!(doc2, fx.app_doc);
    assert_eq!(
        verify_instance_document(&fx.inst_doc, &app2, &fx.bundle, t0()).unwrap_err(),
        DocumentError::ChainMismatch
    );
    // A digest the app does not allow: refused at issuance, and at verification if the app
    // document presented allows less than the one the instance was issued under.
    let (s, d) = instance(&digest('c'));
    assert!(matches!(
        fx.ca
            .issue_instance_document(&fx.app_doc, &fx.app, &s, &d, DAY, t0()),
        Err(Error::Caller(CallerError::Document(_)))
    ));
    let mut narrow = meta();
    narrow.allowed_digests = vec![digest('a')];
    let (narrow_doc, narrow_app) = fx
        .ca
        .issue_app_document("app_0123", &narrow, 3, DEFAULT_APP_DOCUMENT_TTL, t0())
        .unwrap();
    let (s, d) = instance(&digest('a'));
    let (ok_doc, _) = fx
        .ca
        .issue_instance_document(&narrow_doc, &narrow_app, &s, &d, DAY, t0())
        .unwrap();
    verify_instance_document(&ok_doc, &narrow_app, &fx.bundle, t0()).unwrap();
    assert_eq!(
        verify_instance_document(&fx.inst_doc, &narrow_app, &fx.bundle, t0()).unwrap_err(),
        DocumentError::ChainMismatch
    );
    // The issuing CA refuses an app document text that is not the verified one.
    let (s, d) = instance(&digest('a'));
    assert!(
        fx.ca
            .issue_instance_document(&fx.app_doc, &narrow_app, &s, &d, DAY, t0())
            .is_err()
    );
}

#[test]
fn verify_document_reads_the_published_bundle() {
    let fx = fixture();
    let published = serde_json::json!({
        "trust_domain": "spiffe://example.org",
        "authorities": [],
        "pem": "",
        "jwt_authorities": fx.ca.jwt_bundle(t0()).to_jwks_value(),
        "document_authorities": fx.bundle.to_jwks_value(),
    });
    let bundle =
        DocumentBundle::from_trust_bundle_json(&serde_json::to_vec(&published).unwrap()).unwrap();
    let app = verify_document(&fx.app_doc, None, &bundle, t0()).unwrap();
    let summary = app.to_json();
    assert_eq!(summary["valid"], true);
    assert_eq!(summary["kind"], "app");
    assert_eq!(summary["uid"], "app_0123");
    let inst = verify_document(&fx.inst_doc, Some(&fx.app_doc), &bundle, t0()).unwrap();
    let summary = inst.to_json();
    assert_eq!(summary["kind"], "instance");
    assert_eq!(summary["app_document"]["kind"], "app");
    assert_eq!(summary["binary_digest"], digest('b'));
    // An instance document without its app's, or with the wrong one, fails.
    assert_eq!(
        verify_document(&fx.inst_doc, None, &bundle, t0()).unwrap_err(),
        DocumentError::WrongType
    );
    assert_eq!(
        verify_document(&fx.app_doc, Some(&fx.app_doc), &bundle, t0()).unwrap_err(),
        DocumentError::WrongType
    );
    // The JWT keys are not document keys: a bundle whose document set is the JWT set verifies
    // nothing.
    let mut swapped = published.clone();
    swapped["document_authorities"] = published["jwt_authorities"].clone();
    let swapped =
        DocumentBundle::from_trust_bundle_json(&serde_json::to_vec(&swapped).unwrap()).unwrap();
    assert!(swapped.is_empty());
    assert_eq!(
        verify_document(&fx.app_doc, None, &swapped, t0()).unwrap_err(),
        DocumentError::UnknownKey
    );
    for bad in [
        serde_json::json!({"trust_domain": "spiffe://example.org"}),
        serde_json::json!({"trust_domain": "example.org", "document_authorities": {"keys": []}}),
        serde_json::json!({"trust_domain": "spiffe://example.org/x", "document_authorities": {"keys": []}}),
    ] {
        assert!(
            DocumentBundle::from_trust_bundle_json(&serde_json::to_vec(&bad).unwrap()).is_err()
        );
    }
}

#[test]
fn metadata_is_validated() {
    let ca = ca("example.org");
    type Change = Box<dyn Fn(&mut AppMetadata)>;
    let cases: Vec<Change> = vec![
        Box::new(|m| m.name = "Web".into()),
        Box::new(|m| m.name = "-web".into()),
        Box::new(|m| m.name = String::new()),
        Box::new(|m| m.name = "a".repeat(64)),
        Box::new(|m| m.owner = String::new()),
        Box::new(|m| m.owner = "a\nb".into()),
        Box::new(|m| m.allowed_digests = vec![]),
        Box::new(|m| m.allowed_digests = vec!["sha256:ABC".into()]),
        Box::new(|m| m.allowed_digests = vec![format!("sha256:{}", "A".repeat(64))]),
        Box::new(|m| m.allowed_digests = vec![digest('a'), digest('a')]),
        Box::new(|m| m.allowed_digests = (0..33).map(|i| format!("sha256:{i:064x}")).collect()),
        Box::new(|m| m.roles = vec!["Admin".into()]),
        Box::new(|m| m.roles = vec!["x".into(), "x".into()]),
    ];
    for (i, change) in cases.iter().enumerate() {
        let mut m = meta();
        change(&mut m);
        assert!(
            matches!(
                ca.issue_app_document("u", &m, 1, DAY, t0()),
                Err(Error::Caller(CallerError::Document(_)))
            ),
            "case {i}: {m:?}"
        );
    }
    for (uid, version) in [("", 1), ("a/b", 1), ("u", 0)] {
        assert!(
            ca.issue_app_document(uid, &meta(), version, DAY, t0())
                .is_err()
        );
    }
    assert!(
        ca.issue_app_document("u", &meta(), 1, Duration::from_secs(91 * 24 * 3600), t0())
            .is_err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn prop_any_single_byte_tamper_fails(pos in any::<usize>(), flip in 1u8..=255, which in any::<bool>()) {
        let fx = fixture();
        let doc = if which { &fx.app_doc } else { &fx.inst_doc };
        let mut bytes = doc.clone().into_bytes();
        let i = pos % bytes.len();
        bytes[i] ^= flip;
        if let Ok(t) = String::from_utf8(bytes) {
            if which {
                prop_assert!(verify_app_document(&t, &fx.bundle, t0()).is_err());
            } else {
                prop_assert!(verify_instance_document(&t, &fx.app, &fx.bundle, t0()).is_err());
            }
        }
    }

    #[test]
    fn prop_round_trip(
        name in "[a-z0-9][a-z0-9-]{0,20}",
        owner in "[ -~]{1,40}",
        digests in proptest::collection::btree_set("[0-9a-f]{64}", 1..5),
        pid in any::<u32>(),
        started_at in any::<i64>(),
        pick in any::<prop::sample::Index>(),
    ) {
        let ca = ca("example.org");
        let allowed: Vec<String> = digests.iter().map(|d| format!("sha256:{d}")).collect();
        let m = AppMetadata { name, owner, allowed_digests: allowed.clone(), roles: vec![] };
        let (app_doc, app) = ca.issue_app_document("uid", &m, 7, DAY, t0()).unwrap();
        let bundle = ca.document_bundle(t0());
        let again = verify_app_document(&app_doc, &bundle, t0()).unwrap();
        prop_assert_eq!(again.metadata(), &m);
        let s = InstanceStatic {
            binary_digest: pick.get(&allowed).clone(),
            node_id: "spiffe://example.org/daas/node/n".parse().unwrap(),
            workload_id: None,
        };
        let d = InstanceDynamic { pid, started_at };
        let (doc, _) = ca.issue_instance_document(&app_doc, &app, &s, &d, DAY, t0()).unwrap();
        let inst = verify_instance_document(&doc, &again, &bundle, t0()).unwrap();
        prop_assert_eq!(inst.instance_id(), instance_id("uid", &s, &d));
    }
}
