//! The shared storage suite on PostgreSQL. Each test creates its own database (the role in
//! `DAAS_TEST_POSTGRES_URL` needs CREATEDB; see `scripts/test-services.sh`), so tests run in
//! parallel and see exactly what a fresh deployment sees.
//! Without the variable the tests fail when `CI` is set, and are skipped (with a notice) otherwise.
#[cfg(test)]
#[macro_use]
mod suite;

// Wrapped in a `cfg(test)` module so the test-code lint exemptions (clippy.toml) apply.
#[cfg(test)]
mod postgres {
    use super::suite;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use daas_store::{Store, StoreError, StoreUrl};
    use suite::Backend;
    use tokio_postgres::NoTls;

    const ENV: &str = "DAAS_TEST_POSTGRES_URL";

    struct PgBackend {
        store: Store,
        url: String,
        base: String,
        database: String,
        raw: tokio_postgres::Client,
    }

    fn base_url() -> Option<String> {
        match std::env::var(ENV) {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{ENV} is not set but CI is: start PostgreSQL with `source scripts/test-services.sh` \
                     (or export {ENV}=postgres://USER:PASS@HOST:PORT/DB) before running the tests"
                );
                eprintln!("notice: {ENV} is not set; skipping this PostgreSQL test");
                None
            }
        }
    }

    async fn connect(url: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// `base` with its database name replaced.
    fn with_database(base: &str, database: &str) -> String {
        let (main, query) = base
            .split_once('?')
            .map_or((base, None), |(m, q)| (m, Some(q)));
        let authority_start = main.find("://").unwrap() + 3;
        let host_end = main[authority_start..]
            .find('/')
            .map_or(main.len(), |i| authority_start + i);
        let mut url = format!("{}/{database}", &main[..host_end]);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        url
    }

    async fn setup() -> Option<PgBackend> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = base_url()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let database = format!(
            "daas_test_{}_{}_{}",
            std::process::id(),
            nanos,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        connect(&base)
            .await
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .unwrap();
        let url = with_database(&base, &database);
        let store = Store::open(&url.parse::<StoreUrl>().unwrap(), suite::keys(1))
            .await
            .unwrap();
        let raw = connect(&url).await;
        Some(PgBackend {
            store,
            url,
            base,
            database,
            raw,
        })
    }

    impl Backend for PgBackend {
        fn store(&self) -> &Store {
            &self.store
        }

        fn url(&self) -> String {
            self.url.clone()
        }

        fn unavailable_url(&self) -> String {
            // A port nobody listens on.
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            drop(listener);
            format!("postgres://daas:daas@127.0.0.1:{port}/postgres")
        }

        async fn exec(&self, sql: &str) {
            self.raw.batch_execute(sql).await.unwrap();
        }

        async fn query_i64(&self, sql: &str) -> i64 {
            let row = self.raw.query_one(sql, &[]).await.unwrap();
            // COUNT is BIGINT, MAX(version) is INTEGER.
            row.try_get::<_, i64>(0)
                .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
                .unwrap()
        }

        async fn dump(&self) -> Vec<u8> {
            // What `pg_dump` shows: every row of every table in text form (BYTEA as hex), plus the
            // raw bytes of every BYTEA value.
            let mut out = Vec::new();
            let tables = self
                .raw
                .query(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
                    &[],
                )
                .await
                .unwrap();
            assert!(tables.len() >= 7);
            for t in tables {
                let table: String = t.get(0);
                for row in self
                    .raw
                    .query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
                    .await
                    .unwrap()
                {
                    out.extend_from_slice(row.get::<_, String>(0).as_bytes());
                }
                let cols = self
                    .raw
                    .query(
                        "SELECT column_name::text FROM information_schema.columns
                         WHERE table_schema = 'public' AND table_name = $1 AND data_type = 'bytea'",
                        &[&table],
                    )
                    .await
                    .unwrap();
                for c in cols {
                    let col: String = c.get(0);
                    for row in self
                        .raw
                        .query(&format!("SELECT {col} FROM {table}"), &[])
                        .await
                        .unwrap()
                    {
                        out.extend_from_slice(&row.get::<_, Vec<u8>>(0));
                    }
                }
            }
            out
        }

        async fn cleanup(self) {
            drop(self.store);
            drop(self.raw);
            connect(&self.base)
                .await
                .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.database))
                .await
                .unwrap();
        }
    }

    store_suite!(setup);

    /// A server that accepts TCP connections but never answers: the store gives up quickly with
    /// `Unavailable` instead of hanging.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unresponsive_server_is_unavailable() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let url: StoreUrl = format!("postgres://daas:daas@127.0.0.1:{port}/postgres")
            .parse()
            .unwrap();
        let start = Instant::now();
        let err = Store::open(&url, suite::keys(1)).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "took {:?}",
            start.elapsed()
        );
        hold.abort();
    }

    /// A write the database refuses for its own content (PostgreSQL text cannot hold NUL) while
    /// it shares a group-commit batch with others: it fails alone, the others are committed and
    /// chained, and the refused value is nowhere in the error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_the_database_refuses_fails_alone_in_its_batch() {
        let Some(b) = setup().await else { return };
        for round in 0..5 {
            let events: Vec<_> = (0..16)
                .map(|i| {
                    let detail = if i == 7 {
                        "canary\0value".to_string()
                    } else {
                        format!("round {round} write {i}")
                    };
                    daas_store::AuditEvent {
                        detail,
                        ..suite::ev("secret.get", "x")
                    }
                })
                .collect();
            // Polled together, so the writes are queued together.
            let results = futures_join_all(events.iter().map(|e| b.store.append_audit(e))).await;
            for (i, r) in results.iter().enumerate() {
                if i == 7 {
                    let err = r.as_ref().unwrap_err();
                    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
                    assert!(!format!("{err:?} {err}").contains("canary"), "{err:?}");
                } else {
                    r.as_ref().unwrap();
                }
            }
        }
        let report = b.store.verify_audit().await.unwrap();
        assert_eq!((report.entries, report.first_broken), (75, None));
        b.cleanup().await;
    }

    /// Two replicas create the same two new objects, queued in opposite orders, round after
    /// round. Batches lock ids in one global order, so they never deadlock (PostgreSQL would
    /// abort one after `deadlock_timeout` and fail every write of its batch); of each id exactly
    /// one write wins.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_writing_the_same_ids_in_opposite_orders_do_not_deadlock() {
        let Some(b) = setup().await else { return };
        let url = b.url.parse::<StoreUrl>().unwrap();
        let one = Store::open(&url, suite::keys(1)).await.unwrap();
        let two = Store::open(&url, suite::keys(1)).await.unwrap();
        const ROUNDS: u8 = 40;
        for round in 0..ROUNDS {
            let object = |n: u8| {
                let mut id = [0x22u8; 16];
                id[14] = round;
                id[15] = n;
                suite::object_for(daas_crypto::ObjectId(id))
            };
            let (x, y) = (object(1), object(2));
            let ev = suite::ev("safe.deposit", "race");
            let (a, b2) = tokio::join!(
                futures_join_all([one.put_object(&x, &ev), one.put_object(&y, &ev)]),
                futures_join_all([two.put_object(&y, &ev), two.put_object(&x, &ev)]),
            );
            // a = [x, y] from one; b2 = [y, x] from two.
            for (mine, theirs) in [(&a[0], &b2[1]), (&a[1], &b2[0])] {
                match (mine, theirs) {
                    (Ok(()), Err(StoreError::Conflict)) | (Err(StoreError::Conflict), Ok(())) => {}
                    other => panic!("round {round}: expected one winner, got {other:?}"),
                }
            }
        }
        let report = b.store.verify_audit().await.unwrap();
        assert_eq!(
            (report.entries, report.first_broken),
            (2 * u64::from(ROUNDS), None)
        );
        b.cleanup().await;
    }

    /// Poll futures together on this task (the crate has no `futures` dependency).
    async fn futures_join_all<F: std::future::Future>(
        futures: impl IntoIterator<Item = F>,
    ) -> Vec<F::Output> {
        let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
        let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
                if slot.is_none() {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => *slot = Some(v),
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        out.into_iter().map(|v| v.unwrap()).collect()
    }

    /// Several stores (server replicas with their own pools) appending to one database at once
    /// still produce one valid chain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_share_one_chain() {
        let Some(b) = setup().await else { return };
        let mut tasks = Vec::new();
        for r in 0..4 {
            let replica = Store::open(&b.url.parse::<StoreUrl>().unwrap(), suite::keys(1))
                .await
                .unwrap();
            for t in 0..8 {
                let replica = replica.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..10 {
                        let e = suite::ev("secret.get", &format!("{r}/{t}/{i}"));
                        replica.append_audit(&e).await.unwrap();
                    }
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        let report = b.store.verify_audit().await.unwrap();
        assert_eq!((report.entries, report.first_broken), (320, None));
        b.cleanup().await;
    }
}
