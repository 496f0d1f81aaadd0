//! The protected example served on 127.0.0.1, driven over real HTTP with tokens and proofs made
//! by `daas_token`. Time comes from a [`ManualClock`], so nothing sleeps.
//!
//! The replay tests run against the in-process store and against Redis
//! (`DAAS_TEST_REDIS_URL`, started by `scripts/test-services.sh --redis`). Without the variable
//! the Redis tests fail when `CI` is set, and are skipped (with a notice) otherwise.

#[cfg(test)]
#[expect(
    dead_code,
    reason = "the example's main is its entry point, unused here"
)]
#[path = "../examples/protected.rs"]
mod example;

// Wrapped in a `cfg(test)` module so the test-code lint exemptions (clippy.toml) apply.
#[cfg(test)]
mod protected {
    use super::example;
    use daas_resource::{
        AuditHook, BoxFuture, DpopConfig, FetchError, JwksFetcher, ManualClock, MemoryReplayStore,
        RedisReplayStore, Rejection, RemoteKeySet, ReplayStore, StatusChecker, StatusFetcher,
    };
    use daas_token::{
        AccessTokenClaims, Alg, Bits, KeySet, NonceKey, ReplayCacheError, ReplayKey, SigningKey,
        StatusList, StatusListRef, TokenStatus, build_proof, issue_access_token, sign_status_list,
    };
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const NOW: i64 = 1_760_000_000;
    const ISSUER: &str = "https://issuer.example.com";
    const AUDIENCE: &str = "https://api.example.com";
    const STATUS_URI: &str = "https://status.example.com/v1/status/1";
    const CHALLENGE: &str = "DPoP algs=\"EdDSA ES256\"";

    struct Fixture {
        issuer: SigningKey,
        status: SigningKey,
        client: SigningKey,
        clock: Arc<ManualClock>,
    }

    fn fixture() -> Fixture {
        Fixture {
            issuer: SigningKey::generate(Alg::EdDsa).unwrap(),
            status: SigningKey::generate(Alg::Es256).unwrap(),
            client: SigningKey::generate(Alg::EdDsa).unwrap(),
            clock: Arc::new(ManualClock::new(NOW)),
        }
    }

    fn key_set(kid: &str, key: &SigningKey) -> KeySet {
        let mut keys = KeySet::new();
        keys.insert(kid, key.public_jwk().verifying_key().unwrap())
            .unwrap();
        keys
    }

    impl Fixture {
        fn token(&self, status_idx: Option<u64>) -> String {
            self.token_with(status_idx.map(|idx| StatusListRef {
                idx,
                uri: STATUS_URI.into(),
            }))
        }

        fn token_with(&self, status: Option<StatusListRef>) -> String {
            let claims = AccessTokenClaims {
                scope: vec!["read".into()],
                status,
                ..fx_claims(self)
            };
            issue_access_token(&self.issuer, "issuer-1", &claims).unwrap()
        }

        fn proof(&self, key: &SigningKey, method: &str, url: &str, token: &str) -> String {
            self.proof_with_nonce(key, method, url, token, None)
        }

        fn proof_with_nonce(
            &self,
            key: &SigningKey,
            method: &str,
            url: &str,
            token: &str,
            nonce: Option<&str>,
        ) -> String {
            use daas_resource::Clock as _;
            build_proof(key, method, url, self.clock.now(), None, Some(token), nonce).unwrap()
        }

        fn config(&self, origin: &str) -> DpopConfig {
            DpopConfig::new(ISSUER, AUDIENCE, key_set("issuer-1", &self.issuer), origin)
                .unwrap()
                .with_clock(Arc::clone(&self.clock) as _)
        }

        fn status_list(&self, revoked: &[u64]) -> String {
            let mut list = StatusList::new(Bits::One, 1024).unwrap();
            for idx in revoked {
                list.set(*idx, TokenStatus::Invalid).unwrap();
            }
            use daas_resource::Clock as _;
            sign_status_list(
                &self.status,
                "status-1",
                STATUS_URI,
                self.clock.now(),
                None,
                Some(300),
                &list,
            )
            .unwrap()
        }

        fn checker(&self, source: &Arc<FakeStatus>) -> StatusChecker {
            StatusChecker::new(
                key_set("status-1", &self.status),
                ["https://status.example.com"],
                Arc::clone(source) as _,
            )
            .unwrap()
            .with_grace(120)
        }
    }

    /// A status source whose answer the test sets; `None` is unreachable.
    #[derive(Debug, Default)]
    struct FakeStatus {
        body: Mutex<Option<String>>,
        fetches: AtomicUsize,
    }

    impl FakeStatus {
        fn serve(&self, body: Option<String>) {
            *self.body.lock().unwrap() = body;
        }
    }

    impl StatusFetcher for FakeStatus {
        fn fetch<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<String, FetchError>> {
            assert_eq!(uri, STATUS_URI);
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let body = self.body.lock().unwrap().clone();
            Box::pin(async move { body.ok_or(FetchError::Unreachable) })
        }
    }

    /// Records every rejection reason.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl AuditHook for Recorder {
        fn rejected(&self, rejection: &Rejection, method: &str, path: &str) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{method} {path}: {rejection}"));
        }
    }

    /// Binds 127.0.0.1:0, serves the example with the config `build` makes for that origin.
    async fn serve(build: impl FnOnce(&str) -> DpopConfig) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let app = example::app(build(&origin));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        origin
    }

    struct Answer {
        status: u16,
        headers: reqwest::header::HeaderMap,
        body: serde_json::Value,
        text: String,
    }

    impl Answer {
        fn challenge(&self) -> &str {
            self.headers
                .get("www-authenticate")
                .map_or("", |v| v.to_str().unwrap())
        }

        /// A 401 with this error code in the challenge and in the body.
        fn assert_rejected(&self, code: &str) {
            assert_eq!(self.status, 401, "{}", self.text);
            assert_eq!(
                self.challenge(),
                format!("DPoP error=\"{code}\", algs=\"EdDSA ES256\"")
            );
            assert_eq!(self.body["error"]["code"], code);
            assert!(self.body["error"]["message"].is_string());
        }
    }

    async fn send(
        method: &str,
        url: &str,
        authorization: Option<String>,
        proofs: &[&str],
    ) -> Answer {
        let client = reqwest::Client::new();
        let mut request = client.request(method.parse().unwrap(), url);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        for proof in proofs {
            request = request.header("dpop", *proof);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
            text,
        }
    }

    async fn dpop_get(url: &str, token: &str, proof: &str) -> Answer {
        send("GET", url, Some(format!("DPoP {token}")), &[proof]).await
    }

    #[tokio::test]
    async fn legitimate_client_is_accepted() {
        let fx = fixture();
        let origin = serve(|origin| fx.config(origin)).await;
        let url = format!("{origin}/v1/hello");
        let token = fx.token(None);
        let answer = dpop_get(&url, &token, &fx.proof(&fx.client, "GET", &url, &token)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.body["sub"], "spiffe://example.org/client");
        assert_eq!(answer.body["scope"], "read");
        assert_eq!(answer.body["jkt"], fx.client.public_jwk().thumbprint());
        assert!(answer.headers.get("dpop-nonce").is_none());
        // The query is not part of htu.
        let with_query = format!("{url}?x=1");
        let answer = dpop_get(
            &with_query,
            &token,
            &fx.proof(&fx.client, "GET", &url, &token),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }

    #[tokio::test]
    async fn stolen_token_bearer_and_mismatches_are_rejected() {
        let fx = fixture();
        let audit = Arc::new(Recorder::default());
        let origin = serve(|origin| fx.config(origin).with_audit(Arc::clone(&audit) as _)).await;
        let url = format!("{origin}/v1/hello");
        let token = fx.token(None);

        // No credentials at all: a bare challenge.
        let answer = send("GET", &url, None, &[]).await;
        assert_eq!(answer.status, 401);
        assert_eq!(answer.challenge(), CHALLENGE);

        // The same token replayed by a second process that lacks the key.
        let thief = SigningKey::generate(Alg::EdDsa).unwrap();
        dpop_get(&url, &token, &fx.proof(&thief, "GET", &url, &token))
            .await
            .assert_rejected("invalid_dpop_proof");

        // The token as a bearer token, with or without a valid proof.
        let proof = fx.proof(&fx.client, "GET", &url, &token);
        send("GET", &url, Some(format!("Bearer {token}")), &[&proof])
            .await
            .assert_rejected("invalid_token");
        send("GET", &url, Some(format!("Bearer {token}")), &[])
            .await
            .assert_rejected("invalid_token");

        // Wrong method, wrong path, wrong origin in the proof.
        dpop_get(&url, &token, &fx.proof(&fx.client, "POST", &url, &token))
            .await
            .assert_rejected("invalid_dpop_proof");
        let other_path = format!("{origin}/v1/other");
        dpop_get(
            &url,
            &token,
            &fx.proof(&fx.client, "GET", &other_path, &token),
        )
        .await
        .assert_rejected("invalid_dpop_proof");
        dpop_get(
            &url,
            &token,
            &fx.proof(
                &fx.client,
                "GET",
                "https://api.example.com/v1/hello",
                &token,
            ),
        )
        .await
        .assert_rejected("invalid_dpop_proof");
        // A `Host` header naming the proof's origin does not help: htu comes from the config.
        let foreign = fx.proof(&fx.client, "GET", "http://other.example/v1/hello", &token);
        let answer = reqwest::Client::new()
            .get(&url)
            .header("host", "other.example")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", &foreign)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 401);

        // Missing proof, two proofs, a token from an unknown issuer key.
        send("GET", &url, Some(format!("DPoP {token}")), &[])
            .await
            .assert_rejected("invalid_dpop_proof");
        let p1 = fx.proof(&fx.client, "GET", &url, &token);
        let p2 = fx.proof(&fx.client, "GET", &url, &token);
        send("GET", &url, Some(format!("DPoP {token}")), &[&p1, &p2])
            .await
            .assert_rejected("invalid_dpop_proof");
        let forged = issue_access_token(
            &SigningKey::generate(Alg::EdDsa).unwrap(),
            "issuer-1",
            &AccessTokenClaims {
                jti: "forged".into(),
                ..fx_claims(&fx)
            },
        )
        .unwrap();
        dpop_get(&url, &forged, &fx.proof(&fx.client, "GET", &url, &forged))
            .await
            .assert_rejected("invalid_token");

        // The audit log has precise reasons, never the token.
        let log = audit.0.lock().unwrap().clone();
        assert!(
            log.iter()
                .any(|l| l.contains("dpop proof key does not match the access token binding")),
            "{log:?}"
        );
        assert!(log.iter().any(|l| l.contains("bearer scheme")), "{log:?}");
        assert!(
            log.iter().any(|l| l.contains("htm does not match")),
            "{log:?}"
        );
        assert!(
            log.iter().any(|l| l.contains("htu does not match")),
            "{log:?}"
        );
        assert!(
            log.iter()
                .all(|l| !l.contains(&token) && !l.contains(&forged)),
            "{log:?}"
        );
        assert!(
            log.iter().all(|l| l.starts_with("GET /v1/hello: ")),
            "{log:?}"
        );
    }

    fn fx_claims(fx: &Fixture) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: ISSUER.into(),
            sub: "spiffe://example.org/client".into(),
            aud: vec![AUDIENCE.into()],
            exp: NOW + 86_400,
            nbf: None,
            iat: NOW,
            jti: "token-1".into(),
            scope: Vec::new(),
            jkt: fx.client.public_jwk().thumbprint(),
            status: None,
            client_id: None,
        }
    }

    #[tokio::test]
    async fn nonce_flow() {
        let fx = fixture();
        let origin = serve(|origin| fx.config(origin).with_nonce(NonceKey::new([7; 32]))).await;
        let url = format!("{origin}/v1/hello");
        let token = fx.token(None);
        let answer = dpop_get(&url, &token, &fx.proof(&fx.client, "GET", &url, &token)).await;
        answer.assert_rejected("use_dpop_nonce");
        let nonce = answer.headers["dpop-nonce"].to_str().unwrap().to_owned();
        let retry = fx.proof_with_nonce(&fx.client, "GET", &url, &token, Some(&nonce));
        let answer = dpop_get(&url, &token, &retry).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert!(answer.headers.get("dpop-nonce").is_some());
        // A nonce from two windows ago is stale: the server asks again.
        fx.clock.advance(700);
        let stale = fx.proof_with_nonce(&fx.client, "GET", &url, &token, Some(&nonce));
        dpop_get(&url, &token, &stale)
            .await
            .assert_rejected("use_dpop_nonce");
    }

    #[tokio::test]
    async fn revoked_tokens_are_rejected_within_the_status_ttl() {
        let fx = fixture();
        let source = Arc::new(FakeStatus::default());
        source.serve(Some(fx.status_list(&[7])));
        let origin = serve(|origin| fx.config(origin).with_status(fx.checker(&source))).await;
        let url = format!("{origin}/v1/hello");

        let revoked = fx.token(Some(7));
        dpop_get(&url, &revoked, &fx.proof(&fx.client, "GET", &url, &revoked))
            .await
            .assert_rejected("invalid_token");
        let good = fx.token(Some(3));
        let answer = dpop_get(&url, &good, &fx.proof(&fx.client, "GET", &url, &good)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(
            source.fetches.load(Ordering::SeqCst),
            1,
            "the list is cached"
        );

        // Revoke index 3; within the ttl the cached list still says valid, after it not.
        source.serve(Some(fx.status_list(&[3, 7])));
        fx.clock.advance(299);
        let answer = dpop_get(&url, &good, &fx.proof(&fx.client, "GET", &url, &good)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        fx.clock.advance(1);
        dpop_get(&url, &good, &fx.proof(&fx.client, "GET", &url, &good))
            .await
            .assert_rejected("invalid_token");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);

        // A token without status, or pointing at an index past the list, is refused.
        let unrevocable = fx.token(None);
        dpop_get(
            &url,
            &unrevocable,
            &fx.proof(&fx.client, "GET", &url, &unrevocable),
        )
        .await
        .assert_rejected("invalid_token");
        let past_end = fx.token(Some(1024));
        dpop_get(
            &url,
            &past_end,
            &fx.proof(&fx.client, "GET", &url, &past_end),
        )
        .await
        .assert_rejected("invalid_token");
        // A token naming a status URI outside the allow-list is refused without a fetch.
        let elsewhere = fx.token_with(Some(StatusListRef {
            idx: 1,
            uri: "https://evil.example/status".into(),
        }));
        dpop_get(
            &url,
            &elsewhere,
            &fx.proof(&fx.client, "GET", &url, &elsewhere),
        )
        .await
        .assert_rejected("invalid_token");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    }

    /// A relying party may fetch sooner than the list's ttl; a token remembered by the
    /// verified-token cache is still refused once its revocation is seen.
    #[tokio::test]
    async fn a_max_age_below_the_ttl_sees_revocations_sooner_even_for_cached_tokens() {
        let fx = fixture();
        let source = Arc::new(FakeStatus::default());
        source.serve(Some(fx.status_list(&[])));
        let origin = serve(|origin| {
            fx.config(origin)
                .with_status(fx.checker(&source).with_max_age(5))
        })
        .await;
        let url = format!("{origin}/v1/hello");
        let good = fx.token(Some(3));
        for _ in 0..3 {
            let answer = dpop_get(&url, &good, &fx.proof(&fx.client, "GET", &url, &good)).await;
            assert_eq!(answer.status, 200, "{}", answer.text);
        }
        source.serve(Some(fx.status_list(&[3])));
        fx.clock.advance(4);
        let answer = dpop_get(&url, &good, &fx.proof(&fx.client, "GET", &url, &good)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        fx.clock.advance(1);
        dpop_get(&url, &good, &fx.proof(&fx.client, "GET", &url, &good))
            .await
            .assert_rejected("invalid_token");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    }

    /// An issuer JWK set the test rotates; `None` is an outage.
    #[derive(Debug, Default)]
    struct FakeJwks {
        document: Mutex<Option<String>>,
        fetches: AtomicUsize,
    }

    impl FakeJwks {
        fn publish(&self, keys: &[(&str, &SigningKey)]) {
            let keys: Vec<serde_json::Value> = keys
                .iter()
                .map(|(kid, key)| {
                    let mut jwk: serde_json::Value =
                        serde_json::from_str(&key.public_jwk().to_json()).unwrap();
                    jwk["kid"] = (*kid).into();
                    jwk
                })
                .collect();
            *self.document.lock().unwrap() = Some(serde_json::json!({ "keys": keys }).to_string());
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    impl JwksFetcher for FakeJwks {
        fn fetch_jwks<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
            assert_eq!(url, "https://issuer.example.com/.well-known/jwks.json");
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let document = self.document.lock().unwrap().clone();
            Box::pin(async move {
                document
                    .map(String::into_bytes)
                    .ok_or(FetchError::Unreachable)
            })
        }
    }

    /// A resource server with the issuer's JWK set by URL follows a rotation without a restart:
    /// a token by the new key triggers one fetch; invented kids do not make it fetch more than
    /// once per min gap; a key retired from the set stops verifying (even tokens it verified
    /// before, which the verified-token cache remembers); an outage keeps the last good set.
    #[tokio::test]
    async fn remote_issuer_keys_follow_rotation_without_a_restart() {
        let fx = fixture();
        let new_key = SigningKey::generate(Alg::Es256).unwrap();
        let jwks = Arc::new(FakeJwks::default());
        jwks.publish(&[("issuer-1", &fx.issuer)]);
        use daas_resource::Clock as _;
        let remote = RemoteKeySet::fetch(
            "https://issuer.example.com/.well-known/jwks.json",
            Arc::clone(&jwks) as _,
            fx.clock.now(),
        )
        .await
        .unwrap()
        .with_intervals(300, 30);
        let remote = Arc::new(remote);
        let origin = serve(|origin| fx.config(origin).with_remote_keys(Arc::clone(&remote))).await;
        let url = format!("{origin}/v1/hello");
        let call = |token: String| {
            let proof = fx.proof(&fx.client, "GET", &url, &token);
            let url = url.clone();
            async move { dpop_get(&url, &token, &proof).await }
        };
        let old_token = fx.token(None);
        assert_eq!(call(old_token.clone()).await.status, 200);
        assert_eq!(jwks.fetches(), 1);

        // The issuer rotates: the new key is published beside the old one.
        jwks.publish(&[("issuer-1", &fx.issuer), ("issuer-2", &new_key)]);
        let new_token = issue_access_token(&new_key, "issuer-2", &fx_claims(&fx)).unwrap();
        fx.clock.advance(31);
        let answer = call(new_token.clone()).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(jwks.fetches(), 2, "one fetch for the unknown kid");

        // Invented kids: refused, and at most one fetch per min gap.
        let forged = issue_access_token(&new_key, "issuer-9", &fx_claims(&fx)).unwrap();
        for _ in 0..5 {
            call(forged.clone()).await.assert_rejected("invalid_token");
        }
        assert_eq!(jwks.fetches(), 2, "within the min gap of the last fetch");
        fx.clock.advance(30);
        call(forged.clone()).await.assert_rejected("invalid_token");
        assert_eq!(jwks.fetches(), 3);

        // The old key is retired; after the max age the set is fetched again and its tokens,
        // though cached as verified, are refused.
        jwks.publish(&[("issuer-2", &new_key)]);
        assert_eq!(call(old_token.clone()).await.status, 200);
        fx.clock.advance(300);
        call(old_token.clone())
            .await
            .assert_rejected("invalid_token");
        assert_eq!(jwks.fetches(), 4);

        // The issuer is down: the last good set is kept.
        *jwks.document.lock().unwrap() = None;
        fx.clock.advance(301);
        assert_eq!(call(new_token.clone()).await.status, 200);
        assert_eq!(jwks.fetches(), 5);
    }

    #[tokio::test]
    async fn unreachable_status_source_fails_closed_past_the_grace() {
        let fx = fixture();
        let source = Arc::new(FakeStatus::default());
        source.serve(Some(fx.status_list(&[])));
        let origin = serve(|origin| fx.config(origin).with_status(fx.checker(&source))).await;
        let url = format!("{origin}/v1/hello");
        let token = fx.token(Some(3));
        let get =
            || async { dpop_get(&url, &token, &fx.proof(&fx.client, "GET", &url, &token)).await };
        assert_eq!(get().await.status, 200);

        source.serve(None);
        // Past the ttl (300 s), within the grace (120 s): the stale list is still used.
        fx.clock.advance(301);
        assert_eq!(get().await.status, 200);
        fx.clock.advance(118);
        assert_eq!(get().await.status, 200);
        // Past ttl + grace: fail closed with a 503, no challenge.
        fx.clock.advance(2);
        let answer = get().await;
        assert_eq!(answer.status, 503, "{}", answer.text);
        assert_eq!(answer.body["error"]["code"], "temporarily_unavailable");
        assert!(answer.headers.get("www-authenticate").is_none());
        assert!(answer.headers.get("retry-after").is_some());
        // A bad list (wrong signer) is no better than none.
        let impostor = Fixture {
            status: SigningKey::generate(Alg::Es256).unwrap(),
            ..fixture()
        };
        impostor.clock.set(NOW + 421);
        source.serve(Some(impostor.status_list(&[])));
        fx.clock.advance(RETRY);
        assert_eq!(get().await.status, 503);
        // The source is back: accepted again.
        source.serve(Some(fx.status_list(&[])));
        fx.clock.advance(RETRY);
        assert_eq!(get().await.status, 200);
    }

    const RETRY: i64 = daas_resource::status::RETRY_SECS;

    /// Sequential and concurrent replays of one proof: exactly one acceptance.
    async fn replay_suite(store: Arc<dyn ReplayStore>) {
        let fx = fixture();
        let origin = serve(|origin| fx.config(origin).with_replay_store(store)).await;
        let url = format!("{origin}/v1/hello");
        let token = fx.token(None);

        let proof = fx.proof(&fx.client, "GET", &url, &token);
        assert_eq!(dpop_get(&url, &token, &proof).await.status, 200);
        dpop_get(&url, &token, &proof)
            .await
            .assert_rejected("invalid_dpop_proof");
        // Later in the proof window, still a replay.
        fx.clock.advance(50);
        dpop_get(&url, &token, &proof)
            .await
            .assert_rejected("invalid_dpop_proof");

        for _round in 0..3 {
            let proof = fx.proof(&fx.client, "GET", &url, &token);
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let (url, token, proof) = (url.clone(), token.clone(), proof.clone());
                    tokio::spawn(async move { dpop_get(&url, &token, &proof).await.status })
                })
                .collect();
            let mut statuses = Vec::new();
            for task in tasks {
                statuses.push(task.await.unwrap());
            }
            assert_eq!(
                statuses.iter().filter(|s| **s == 200).count(),
                1,
                "{statuses:?}"
            );
            assert_eq!(
                statuses.iter().filter(|s| **s == 401).count(),
                15,
                "{statuses:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replay_memory_store() {
        replay_suite(Arc::new(MemoryReplayStore::new(1024))).await;
    }

    fn redis_url() -> Option<String> {
        const ENV: &str = "DAAS_TEST_REDIS_URL";
        match std::env::var(ENV) {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{ENV} is not set but CI is: start Redis with `source scripts/test-services.sh --redis` \
                     (or export {ENV}=redis://HOST:PORT) before running the tests"
                );
                eprintln!("notice: {ENV} is not set; skipping this Redis test");
                None
            }
        }
    }

    async fn redis_store() -> Option<RedisReplayStore> {
        let url = redis_url()?;
        let unique = SigningKey::generate(Alg::EdDsa)
            .unwrap()
            .public_jwk()
            .thumbprint();
        Some(
            RedisReplayStore::connect(&url)
                .await
                .unwrap()
                .with_prefix(format!("daas-test:{unique}:")),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replay_redis_store() {
        let Some(store) = redis_store().await else {
            return;
        };
        replay_suite(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn redis_store_expires_keys_and_is_atomic() {
        let Some(store) = redis_store().await else {
            return;
        };
        let key = ReplayKey::derive("jkt", "jti-expiry");
        assert_eq!(store.insert_if_absent(&key, NOW + 1, NOW).await, Ok(true));
        assert_eq!(store.insert_if_absent(&key, NOW + 1, NOW).await, Ok(false));
        // Separate prefixes are separate namespaces.
        let other = redis_store().await.unwrap();
        assert_eq!(other.insert_if_absent(&key, NOW + 60, NOW).await, Ok(true));
    }

    /// A store that cannot answer.
    #[derive(Debug)]
    struct Down;

    impl ReplayStore for Down {
        fn insert_if_absent<'a>(
            &'a self,
            _key: &'a ReplayKey,
            _expires_at: i64,
            _now: i64,
        ) -> BoxFuture<'a, Result<bool, ReplayCacheError>> {
            Box::pin(async { Err(ReplayCacheError::Unavailable) })
        }
    }

    #[tokio::test]
    async fn replay_store_errors_fail_closed() {
        let fx = fixture();
        let origin = serve(|origin| fx.config(origin).with_replay_store(Arc::new(Down))).await;
        let url = format!("{origin}/v1/hello");
        let token = fx.token(None);
        let answer = dpop_get(&url, &token, &fx.proof(&fx.client, "GET", &url, &token)).await;
        assert_eq!(answer.status, 503, "{}", answer.text);
        assert_eq!(answer.body["error"]["code"], "temporarily_unavailable");
    }

    impl Fixture {
        fn staple(&self, key: &SigningKey, idx: u64, nonce: &str, status: TokenStatus) -> String {
            use daas_resource::Clock as _;
            let now = self.clock.now();
            let claims = daas_token::StatusStapleClaims {
                sub: STATUS_URI.into(),
                idx,
                status,
                nonce: nonce.into(),
                iat: now,
                exp: now + 60,
            };
            daas_token::sign_status_staple(key, "status-1", &claims).unwrap()
        }

        fn staple_checker(&self) -> daas_resource::StapleChecker {
            daas_resource::StapleChecker::new(
                key_set("status-1", &self.status),
                NonceKey::new([9; 32]).with_window(std::num::NonZeroU32::new(60).unwrap()),
            )
        }
    }

    async fn stapled_get(url: &str, token: &str, proof: &str, staple: Option<&str>) -> Answer {
        let client = reqwest::Client::new();
        let mut request = client
            .get(url)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof);
        if let Some(staple) = staple {
            request = request.header("daas-status-staple", staple);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
            text,
        }
    }

    /// A 401 whose body asks for a staple (`use_status_staple`); the challenge stays the
    /// standard `invalid_token` (RFC 6750 has no code for it).
    fn assert_staple_asked(answer: &Answer) {
        assert_eq!(answer.status, 401, "{}", answer.text);
        assert_eq!(
            answer.challenge(),
            "DPoP error=\"invalid_token\", algs=\"EdDSA ES256\""
        );
        assert_eq!(answer.body["error"]["code"], "use_status_staple");
        assert!(answer.headers.get("daas-status-nonce").is_some());
    }

    fn staple_nonce(answer: &Answer) -> String {
        answer.headers["daas-status-nonce"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn staple_mode_needs_a_fresh_staple_for_our_nonce_about_this_token() {
        let fx = fixture();
        let audit = Arc::new(Recorder::default());
        let origin = serve(|origin| {
            fx.config(origin)
                .with_status_staples(fx.staple_checker())
                .with_audit(Arc::clone(&audit) as _)
        })
        .await;
        let url = format!("{origin}/v1/hello");
        let token = fx.token(Some(5));
        let get = |staple: Option<String>| {
            let proof = fx.proof(&fx.client, "GET", &url, &token);
            let (url, token) = (url.clone(), token.clone());
            async move { stapled_get(&url, &token, &proof, staple.as_deref()).await }
        };

        // No staple: refused, with the nonce to staple.
        let answer = get(None).await;
        assert_staple_asked(&answer);
        let nonce = staple_nonce(&answer);

        // A valid staple for that nonce and this token's entry: accepted, next nonce attached.
        let good = fx.staple(&fx.status, 5, &nonce, TokenStatus::Valid);
        let answer = get(Some(good.clone())).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert!(answer.headers.get("daas-status-nonce").is_some());

        // Revoked, another entry, another signer, a nonce not ours: refused.
        for bad in [
            fx.staple(&fx.status, 5, &nonce, TokenStatus::Invalid),
            fx.staple(&fx.status, 6, &nonce, TokenStatus::Valid),
            fx.staple(&fx.issuer, 5, &nonce, TokenStatus::Valid),
            fx.staple(&fx.status, 5, "not-our-nonce", TokenStatus::Valid),
        ] {
            get(Some(bad)).await.assert_rejected("invalid_token");
        }

        // Three minutes later the old staple's nonce is stale (and the staple expired), and so
        // is a new staple for the old nonce; the answer asks for a staple of the current
        // nonce, which is accepted.
        fx.clock.advance(180);
        assert_staple_asked(&get(Some(good)).await);
        let stale = get(Some(fx.staple(&fx.status, 5, &nonce, TokenStatus::Valid))).await;
        assert_staple_asked(&stale);
        let fresh_nonce = staple_nonce(&stale);
        assert_ne!(fresh_nonce, nonce);
        let answer = get(Some(fx.staple(
            &fx.status,
            5,
            &fresh_nonce,
            TokenStatus::Valid,
        )))
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text);

        // A token without a status claim could never be revoked: refused.
        let unrevocable = fx.token(None);
        let proof = fx.proof(&fx.client, "GET", &url, &unrevocable);
        let staple = fx.staple(&fx.status, 5, &fresh_nonce, TokenStatus::Valid);
        stapled_get(&url, &unrevocable, &proof, Some(&staple))
            .await
            .assert_rejected("invalid_token");

        let reasons = audit.0.lock().unwrap().join("\n");
        for reason in [
            "no status staple was sent",
            "access token status is Invalid",
            "status staple is about another token",
            "status staple nonce was not issued here",
            "status staple nonce is stale",
            "access token carries no status reference",
        ] {
            assert!(reasons.contains(reason), "{reason} not in {reasons}");
        }
    }

    #[tokio::test]
    async fn staples_and_the_list_together_a_staple_decides_else_the_list() {
        let fx = fixture();
        let source = Arc::new(FakeStatus::default());
        source.serve(Some(fx.status_list(&[5])));
        let origin = serve(|origin| {
            fx.config(origin)
                .with_status(fx.checker(&source))
                .with_status_staples(fx.staple_checker())
        })
        .await;
        let url = format!("{origin}/v1/hello");
        let revoked = fx.token(Some(5));
        let live = fx.token(Some(7));
        // No staple: the list decides (5 revoked, 7 valid).
        let answer = dpop_get(&url, &revoked, &fx.proof(&fx.client, "GET", &url, &revoked)).await;
        answer.assert_rejected("invalid_token");
        let nonce = staple_nonce(&answer);
        let answer = dpop_get(&url, &live, &fx.proof(&fx.client, "GET", &url, &live)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        // A staple decides alone: a bad one is refused even though the list says valid...
        let proof = fx.proof(&fx.client, "GET", &url, &live);
        let bad = fx.staple(&fx.status, 7, "not-our-nonce", TokenStatus::Valid);
        stapled_get(&url, &live, &proof, Some(&bad))
            .await
            .assert_rejected("invalid_token");
        // ...and a revoked staple refuses a token the cached list still calls valid.
        let proof = fx.proof(&fx.client, "GET", &url, &live);
        let revoked_staple = fx.staple(&fx.status, 7, &nonce, TokenStatus::Invalid);
        stapled_get(&url, &live, &proof, Some(&revoked_staple))
            .await
            .assert_rejected("invalid_token");
    }
}
