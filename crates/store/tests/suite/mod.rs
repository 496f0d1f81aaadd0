//! The one storage test suite, run against every backend (`tests/sqlite.rs`, `tests/postgres.rs`).
//!
//! Each test gets a fresh database from its backend's `setup()`. Every suite function listed in
//! `store_suite!` runs on every backend.
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daas_crypto::storage::StorageKeys;
use daas_crypto::{Key256, ObjectId};
use daas_store::{
    AppDocumentRecord, AppRecord, AuditEvent, EntryRecord, JoinTokenRecord, JoinTokenUse,
    NodeRecord, ObjectMode, ObjectRecord, SecretRecord, Store, StoreError, StoreUrl,
    TokenKeyPurpose, TokenKeyRecord, TokenRecord, TokenSelector, TokenStatusSnapshot,
};

/// What the suite needs from a backend besides the store: raw access for tampering and dumps.
pub(crate) trait Backend {
    fn store(&self) -> &Store;
    /// The URL the store was opened with (to reopen it, or hand it to a child process).
    fn url(&self) -> String;
    /// A URL of this backend that cannot be reached.
    fn unavailable_url(&self) -> String;
    /// Run raw SQL on the same database (as an attacker with write access would).
    async fn exec(&self, sql: &str);
    /// Raw single integer query.
    async fn query_i64(&self, sql: &str) -> i64;
    /// Every byte a database dump would show.
    async fn dump(&self) -> Vec<u8>;
    /// Drop the test database.
    async fn cleanup(self);
}

/// Generate one `#[tokio::test]` per suite function, each on a fresh backend from `$setup`.
macro_rules! store_suite {
    ($setup:path) => {
        store_suite!(@tests $setup;
            ping_and_reopen,
            migrations_are_idempotent,
            object_roundtrip,
            object_not_found_and_conflict,
            delete_object_removes_share,
            secret_versioning_and_replacement,
            secret_with_existing_object_conflicts,
            deleting_a_secrets_object_conflicts,
            list_ordering,
            app_roundtrip_and_conflicts,
            app_documents_only_move_forward,
            app_document_concurrent_writers,
            audit_concurrent_appends_verify,
            audit_list_paging,
            failed_write_rolls_back_alone,
            audit_tamper_edit,
            audit_tamper_delete,
            audit_tamper_swap_macs,
            audit_tamper_reorder,
            audit_tamper_truncate,
            audit_tamper_insert,
            dump_reveals_nothing,
            wrong_key_is_integrity,
            moved_sealed_value_is_integrity,
            storage_unavailable,
            crash_durability,
            migration_2_upgrades_a_version_1_database,
            identity_ca_roundtrip_and_replace,
            identity_ca_tamper_is_integrity,
            identity_ca_is_created_once,
            entry_roundtrip_and_conflicts,
            entry_bodies_are_sealed_to_their_row,
            join_token_lifecycle,
            join_token_node_conflict_keeps_token,
            join_token_concurrent_consumers,
            token_keys_one_active_per_purpose_and_rotation,
            tokens_issue_replace_revoke_and_status,
            token_replacement_races_have_one_winner,
            token_records_and_keys_are_sealed,
            one_new_id_written_concurrently_has_one_winner,
        );

        /// Not a test on its own: the child process of `crash_durability` (no-op otherwise).
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn crash_child() {
            suite::crash_child_main().await;
        }
    };
    (@tests $setup:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(backend) = $setup().await else { return };
                suite::$name(&backend).await;
                suite::Backend::cleanup(backend).await;
            }
        )*
    };
}

// ---------------------------------------------------------------- fixtures

/// The newest schema version (migration 4: tokens).
const LATEST_SCHEMA: i64 = 4;

pub(crate) fn keys(n: u8) -> StorageKeys {
    StorageKeys::derive(&Key256::from_bytes([n; 32]))
}

pub(crate) fn ev(action: &str, target: &str) -> AuditEvent {
    AuditEvent {
        actor: "admin".into(),
        action: action.into(),
        target: target.into(),
        outcome: "ok".into(),
        detail: String::new(),
    }
}

fn id(n: u64) -> ObjectId {
    let mut b = [0x11u8; 16];
    b[8..].copy_from_slice(&n.to_be_bytes());
    ObjectId(b)
}

/// A deterministic object for an id: everything can be recomputed from the id alone.
pub(crate) fn object_for(id: ObjectId) -> ObjectRecord {
    let mut share = [0u8; 32];
    share[..16].copy_from_slice(&id.0);
    for (i, b) in id.0.iter().enumerate() {
        share[16 + i] = b ^ 0x5a;
    }
    let mut commitment = [0u8; 32];
    commitment[..16].copy_from_slice(&id.0);
    commitment[16..].copy_from_slice(&[0xc3; 16]);
    ObjectRecord {
        id,
        owner: format!("app:owner-{}", id.0[15]),
        audience: if id.0[15].is_multiple_of(2) {
            String::new()
        } else {
            "svc".into()
        },
        key_version: u32::from(id.0[14]) + 1,
        suite: 1 + id.0[15] % 2,
        mode: if id.0[15].is_multiple_of(3) {
            ObjectMode::Client
        } else {
            ObjectMode::Server
        },
        server_share: Key256::from_bytes(share),
        commitment,
        access: vec!["admin".into(), format!("app:reader-{}", id.0[15])],
        created_at: 1_700_000_000_000 + i64::from(id.0[15]),
    }
}

fn object(n: u64) -> ObjectRecord {
    object_for(id(n))
}

fn secret(name: &str, object_n: u64, ciphertext: &str) -> SecretRecord {
    SecretRecord {
        name: name.into(),
        version: 0,
        ciphertext: ciphertext.into(),
        object: object(object_n),
        updated_at: 1_700_000_100_000 + i64::try_from(object_n).unwrap(),
    }
}

fn app(id: &str, name: &str) -> AppRecord {
    AppRecord {
        id: id.into(),
        name: name.into(),
        token_hash: format!("{:0>64}", name.len()),
        created_at: 1_700_000_200_000,
    }
}

async fn reopen(b: &impl Backend, keys: StorageKeys) -> Result<Store, StoreError> {
    Store::open(&b.url().parse::<StoreUrl>().unwrap(), keys).await
}

async fn count_audit(store: &Store) -> u64 {
    store.verify_audit().await.unwrap().entries
}

async fn assert_chain_ok(store: &Store, entries: u64) {
    let report = store.verify_audit().await.unwrap();
    assert_eq!(report.first_broken, None, "{report:?}");
    assert_eq!(report.entries, entries, "{report:?}");
}

// ---------------------------------------------------------------- basics

pub(crate) async fn ping_and_reopen(b: &impl Backend) {
    let store = b.store();
    store.ping().await.unwrap();
    store
        .put_object(&object(1), &ev("safe.encrypt", "1"))
        .await
        .unwrap();
    // A second handle on the same database sees the data and continues the same chain.
    let again = reopen(b, keys(1)).await.unwrap();
    again.ping().await.unwrap();
    assert_eq!(again.get_object(&id(1)).await.unwrap(), object(1));
    again.append_audit(&ev("secret.get", "x")).await.unwrap();
    store.append_audit(&ev("secret.get", "y")).await.unwrap();
    drop(again);
    assert_chain_ok(store, 3).await;
}

pub(crate) async fn migrations_are_idempotent(b: &impl Backend) {
    for _ in 0..2 {
        drop(reopen(b, keys(1)).await.unwrap());
    }
    assert_eq!(
        b.query_i64("SELECT COUNT(*) FROM schema_version").await,
        LATEST_SCHEMA
    );
    assert_eq!(
        b.query_i64("SELECT MAX(version) FROM schema_version").await,
        LATEST_SCHEMA
    );
    assert_eq!(b.query_i64("SELECT COUNT(*) FROM audit_head").await, 1);
    assert_eq!(b.query_i64("SELECT COUNT(*) FROM meta").await, 1);
}

pub(crate) async fn object_roundtrip(b: &impl Backend) {
    let store = b.store();
    for n in 0..6 {
        store
            .put_object(&object(n), &ev("safe.encrypt", &n.to_string()))
            .await
            .unwrap();
    }
    for n in 0..6 {
        assert_eq!(store.get_object(&id(n)).await.unwrap(), object(n));
    }
    let access = vec!["app:a".to_owned(), "app:b".to_owned(), String::new()];
    store
        .set_object_access(&id(3), &access, &ev("safe.share", "3"))
        .await
        .unwrap();
    let got = store.get_object(&id(3)).await.unwrap();
    assert_eq!(got.access, access);
    assert_eq!(
        ObjectRecord {
            access: object(3).access,
            ..got
        },
        object(3)
    );
    store
        .set_object_access(&id(3), &[], &ev("safe.share", "3"))
        .await
        .unwrap();
    assert!(store.get_object(&id(3)).await.unwrap().access.is_empty());
    assert_chain_ok(store, 8).await;
    let entries = store.list_audit(0, 100).await.unwrap();
    assert_eq!(entries[6].event, ev("safe.share", "3"));
}

pub(crate) async fn object_not_found_and_conflict(b: &impl Backend) {
    let store = b.store();
    assert!(matches!(
        store.get_object(&id(9)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .set_object_access(&id(9), &[], &ev("safe.share", "9"))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_object(&id(9), &ev("safe.delete", "9")).await,
        Err(StoreError::NotFound)
    ));
    store
        .put_object(&object(9), &ev("safe.encrypt", "9"))
        .await
        .unwrap();
    let mut other = object(10);
    other.id = id(9);
    assert!(matches!(
        store.put_object(&other, &ev("safe.encrypt", "9")).await,
        Err(StoreError::Conflict)
    ));
    // The original is untouched and failed operations left no audit entry.
    assert_eq!(store.get_object(&id(9)).await.unwrap(), object(9));
    assert_chain_ok(store, 1).await;
}

pub(crate) async fn delete_object_removes_share(b: &impl Backend) {
    let store = b.store();
    store
        .put_object(&object(1), &ev("safe.encrypt", "1"))
        .await
        .unwrap();
    store
        .put_object(&object(2), &ev("safe.encrypt", "2"))
        .await
        .unwrap();
    let hex1 = "11111111111111110000000000000001";
    assert_eq!(
        b.query_i64(&format!("SELECT COUNT(*) FROM objects WHERE id = '{hex1}'"))
            .await,
        1
    );
    store
        .delete_object(&id(1), &ev("safe.delete", "1"))
        .await
        .unwrap();
    assert_eq!(
        b.query_i64(&format!("SELECT COUNT(*) FROM objects WHERE id = '{hex1}'"))
            .await,
        0
    );
    assert!(matches!(
        store.get_object(&id(1)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_object(&id(1), &ev("safe.delete", "1")).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get_object(&id(2)).await.unwrap(), object(2));
    assert_chain_ok(store, 3).await;
}

pub(crate) async fn secret_versioning_and_replacement(b: &impl Backend) {
    let store = b.store();
    assert!(matches!(
        store.get_secret("db/password").await,
        Err(StoreError::NotFound)
    ));
    let v1 = secret("db/password", 1, "daas:v1:first");
    assert_eq!(
        store.put_secret(&v1, &ev("secret.put", "h")).await.unwrap(),
        1
    );
    let got = store.get_secret("db/password").await.unwrap();
    assert_eq!(
        got,
        SecretRecord {
            version: 1,
            ..v1.clone()
        }
    );

    let v2 = secret("db/password", 2, "daas:v1:second");
    assert_eq!(
        store.put_secret(&v2, &ev("secret.put", "h")).await.unwrap(),
        2
    );
    let got = store.get_secret("db/password").await.unwrap();
    assert_eq!(
        got,
        SecretRecord {
            version: 2,
            ..v2.clone()
        }
    );
    // The first version's object (its share) is gone.
    assert!(matches!(
        store.get_object(&id(1)).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get_object(&id(2)).await.unwrap(), object(2));
    assert_eq!(b.query_i64("SELECT COUNT(*) FROM objects").await, 1);

    let v3 = secret("db/password", 3, "daas:v1:third");
    assert_eq!(
        store.put_secret(&v3, &ev("secret.put", "h")).await.unwrap(),
        3
    );
    assert_eq!(b.query_i64("SELECT COUNT(*) FROM objects").await, 1);

    store
        .delete_secret("db/password", &ev("secret.delete", "h"))
        .await
        .unwrap();
    assert!(matches!(
        store.get_secret("db/password").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get_object(&id(3)).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(b.query_i64("SELECT COUNT(*) FROM objects").await, 0);
    assert_eq!(b.query_i64("SELECT COUNT(*) FROM secrets").await, 0);
    assert!(matches!(
        store
            .delete_secret("db/password", &ev("secret.delete", "h"))
            .await,
        Err(StoreError::NotFound)
    ));
    // Re-creating starts again at version 1.
    let again = secret("db/password", 4, "daas:v1:again");
    assert_eq!(
        store
            .put_secret(&again, &ev("secret.put", "h"))
            .await
            .unwrap(),
        1
    );
    assert_chain_ok(store, 5).await;
}

pub(crate) async fn secret_with_existing_object_conflicts(b: &impl Backend) {
    let store = b.store();
    store
        .put_object(&object(7), &ev("safe.encrypt", "7"))
        .await
        .unwrap();
    store
        .put_secret(&secret("s", 1, "daas:v1:a"), &ev("secret.put", "s"))
        .await
        .unwrap();
    let clash = secret("s", 7, "daas:v1:b");
    assert!(matches!(
        store.put_secret(&clash, &ev("secret.put", "s")).await,
        Err(StoreError::Conflict)
    ));
    let got = store.get_secret("s").await.unwrap();
    assert_eq!((got.version, got.ciphertext.as_str()), (1, "daas:v1:a"));
    assert_eq!(store.get_object(&id(1)).await.unwrap(), object(1));
    assert_chain_ok(store, 2).await;
}

pub(crate) async fn deleting_a_secrets_object_conflicts(b: &impl Backend) {
    let store = b.store();
    store
        .put_secret(&secret("s", 1, "daas:v1:a"), &ev("secret.put", "s"))
        .await
        .unwrap();
    assert!(matches!(
        store.delete_object(&id(1), &ev("safe.delete", "1")).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_secret("s").await.unwrap().version, 1);
}

pub(crate) async fn list_ordering(b: &impl Backend) {
    let store = b.store();
    assert!(store.list_secrets().await.unwrap().is_empty());
    assert!(store.list_apps().await.unwrap().is_empty());
    let names = ["m/x", "a", "zeta", "B", "a/b", "é", "m"];
    for (n, name) in names.iter().enumerate() {
        let n = u64::try_from(n).unwrap();
        store
            .put_secret(&secret(name, n, "daas:v1:x"), &ev("secret.put", "h"))
            .await
            .unwrap();
    }
    store
        .put_secret(&secret("m", 100, "daas:v1:y"), &ev("secret.put", "h"))
        .await
        .unwrap();
    let list = store.list_secrets().await.unwrap();
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort_unstable();
    assert_eq!(
        list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        sorted
    );
    for s in &list {
        assert_eq!(s.version, if s.name == "m" { 2 } else { 1 }, "{s:?}");
    }
    let m = list.iter().find(|s| s.name == "m").unwrap();
    assert_eq!(
        (m.owner.as_str(), m.updated_at),
        (object(100).owner.as_str(), 1_700_000_100_100)
    );
    for (i, name) in ["web", "api", "batch", "Zed"].iter().enumerate() {
        store
            .put_app(&app(&format!("app_{i:02}"), name), &ev("app.create", name))
            .await
            .unwrap();
    }
    let apps = store.list_apps().await.unwrap();
    assert_eq!(
        apps.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["Zed", "api", "batch", "web"]
    );
    assert_eq!(apps[1], app("app_01", "api"));
}

pub(crate) async fn app_roundtrip_and_conflicts(b: &impl Backend) {
    let store = b.store();
    assert!(matches!(
        store.get_app("app_1").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get_app_by_name("web").await,
        Err(StoreError::NotFound)
    ));
    let a = app("app_1", "web");
    store.put_app(&a, &ev("app.create", "web")).await.unwrap();
    assert_eq!(store.get_app("app_1").await.unwrap(), a);
    assert_eq!(store.get_app_by_name("web").await.unwrap(), a);
    assert!(matches!(
        store.get_app_by_name("Web").await,
        Err(StoreError::NotFound)
    ));
    // Same id, or same name under another id.
    assert!(matches!(
        store
            .put_app(&app("app_1", "other"), &ev("app.create", "other"))
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store
            .put_app(&app("app_2", "web"), &ev("app.create", "web"))
            .await,
        Err(StoreError::Conflict)
    ));
    store
        .put_app(&app("app_2", "api"), &ev("app.create", "api"))
        .await
        .unwrap();
    assert_eq!(store.get_app_by_name("api").await.unwrap().id, "app_2");
    assert_chain_ok(store, 2).await;
}

fn app_doc(app_id: &str, version: u64) -> AppDocumentRecord {
    AppDocumentRecord {
        app_id: app_id.into(),
        version,
        document: format!("header.payload-of-{app_id}-v{version}.signature"),
        updated_at: 1_700_000_000_000 + i64::try_from(version).unwrap(),
    }
}

/// The current app document: only a greater version replaces it; a refused write leaves no
/// audit entry; documents of unknown apps are refused; the document is sealed to its row.
pub(crate) async fn app_documents_only_move_forward(b: &impl Backend) {
    let store = b.store();
    assert!(matches!(
        store.get_app_document("app_1").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .put_app_document(&app_doc("app_1", 1), &ev("identity.app.register", "x"))
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .put_app(&app("app_1", "web"), &ev("app.create", "web"))
        .await
        .unwrap();
    store
        .put_app(&app("app_2", "api"), &ev("app.create", "api"))
        .await
        .unwrap();
    store
        .put_app_document(&app_doc("app_1", 2), &ev("identity.app.register", "web"))
        .await
        .unwrap();
    assert_eq!(
        store.get_app_document("app_1").await.unwrap(),
        app_doc("app_1", 2)
    );
    for stale in [1, 2] {
        assert!(matches!(
            store
                .put_app_document(
                    &app_doc("app_1", stale),
                    &ev("identity.app.register", "web")
                )
                .await,
            Err(StoreError::Conflict)
        ));
    }
    assert_eq!(
        store.get_app_document("app_1").await.unwrap(),
        app_doc("app_1", 2)
    );
    store
        .put_app_document(&app_doc("app_1", 7), &ev("identity.app.register", "web"))
        .await
        .unwrap();
    assert_eq!(store.get_app_document("app_1").await.unwrap().version, 7);
    assert!(matches!(
        store.get_app_document("app_2").await,
        Err(StoreError::NotFound)
    ));
    // Two apps, two documents registered: the refused writes audited nothing.
    assert_chain_ok(store, 4).await;
    // Sealed: the document text is not in the database, and moving it to another app's row
    // breaks its integrity check.
    store
        .put_app_document(&app_doc("app_2", 1), &ev("identity.app.register", "api"))
        .await
        .unwrap();
    assert!(!contains(&b.dump().await, b"payload-of-app_1-v7"));
    b.exec(
        "UPDATE app_documents SET document = (SELECT document FROM app_documents
         WHERE app_id = 'app_1') WHERE app_id = 'app_2'",
    )
    .await;
    assert!(matches!(
        store.get_app_document("app_2").await,
        Err(StoreError::Integrity { .. })
    ));
}

/// Writers racing with versions 1..=8: the stored version ends at 8 and exactly the writes
/// that succeeded are audited.
pub(crate) async fn app_document_concurrent_writers(b: &impl Backend) {
    let store = b.store();
    store
        .put_app(&app("app_1", "web"), &ev("app.create", "web"))
        .await
        .unwrap();
    let writes = (1..=8u64).map(|v| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .put_app_document(&app_doc("app_1", v), &ev("identity.app.register", "web"))
                .await
        })
    });
    let mut succeeded = 0;
    for write in writes.collect::<Vec<_>>() {
        match write.await.unwrap() {
            Ok(()) => succeeded += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(succeeded >= 1);
    assert_eq!(store.get_app_document("app_1").await.unwrap().version, 8);
    assert_chain_ok(store, 1 + succeeded).await;
}

// ---------------------------------------------------------------- audit

pub(crate) async fn audit_concurrent_appends_verify(b: &impl Backend) {
    let store = b.store();
    const TASKS: u64 = 32;
    const EACH: u64 = 25;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                if i % 5 == 0 {
                    let n = t * 1000 + i;
                    store
                        .put_object(&object(n), &ev("safe.encrypt", &n.to_string()))
                        .await
                        .unwrap();
                } else {
                    let detail = format!("task {t} item {i}");
                    let e = AuditEvent {
                        detail,
                        ..ev("secret.get", "x")
                    };
                    seqs.push(store.append_audit(&e).await.unwrap());
                }
            }
            seqs
        }));
    }
    let mut seqs = BTreeSet::new();
    for task in tasks {
        for s in task.await.unwrap() {
            assert!(seqs.insert(s), "sequence number {s} handed out twice");
        }
    }
    let total = TASKS * EACH;
    let report = store.verify_audit().await.unwrap();
    assert_eq!(report.first_broken, None);
    assert_eq!(report.entries, total);
    let all = store.list_audit(0, u32::MAX).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    assert_eq!(
        report.head.as_deref(),
        Some(all.last().unwrap().mac.as_str())
    );
    // Every standalone append got a distinct seq that really holds its entry.
    for s in seqs {
        let entry = &all[usize::try_from(s - 1).unwrap()];
        assert_eq!(entry.event.action, "secret.get");
    }
}

pub(crate) async fn audit_list_paging(b: &impl Backend) {
    let store = b.store();
    assert!(store.list_audit(0, 10).await.unwrap().is_empty());
    let empty = store.verify_audit().await.unwrap();
    assert_eq!(
        (empty.entries, empty.head, empty.first_broken),
        (0, None, None)
    );
    for i in 0..7 {
        let e = AuditEvent {
            detail: format!("d{i}"),
            ..ev("auth.failure", "x")
        };
        assert_eq!(store.append_audit(&e).await.unwrap(), i + 1);
    }
    let page = store.list_audit(2, 3).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(page[0].event.detail, "d2");
    assert!(page[0].time > 1_600_000_000_000);
    assert_eq!(page[0].mac.len(), 64);
    assert!(store.list_audit(7, 10).await.unwrap().is_empty());
    assert!(store.list_audit(u64::MAX, 10).await.unwrap().is_empty());
    assert!(store.list_audit(0, 0).await.unwrap().is_empty());
    assert_eq!(store.list_audit(5, 100).await.unwrap().len(), 2);
}

/// Concurrent writes of which some fail: each failure rolls back alone (group commit must not
/// fail or roll back its neighbours), and the chain has exactly the successful entries.
pub(crate) async fn failed_write_rolls_back_alone(b: &impl Backend) {
    let store = b.store();
    for n in 0..10 {
        store
            .put_object(&object(n), &ev("safe.encrypt", "seed"))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for n in 0..60u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Every third write collides with an existing object.
            let target = if n % 3 == 0 { n % 10 } else { 1000 + n };
            let r = store
                .put_object(&object(target), &ev("safe.encrypt", "burst"))
                .await;
            (target, r)
        }));
    }
    let mut ok = 0;
    for task in tasks {
        let (target, r) = task.await.unwrap();
        if target < 10 {
            assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
        } else {
            r.unwrap();
            ok += 1;
            assert_eq!(store.get_object(&id(target)).await.unwrap(), object(target));
        }
    }
    assert_eq!(ok, 40);
    assert_chain_ok(store, 50).await;
    assert_eq!(b.query_i64("SELECT COUNT(*) FROM objects").await, 50);
}

/// Many writers race to create the same new object (as group commit can put them in one batch):
/// exactly one is acknowledged and audited, the stored object is the winner's, and writes of other
/// objects and plain audit entries in the same burst are unaffected.
pub(crate) async fn one_new_id_written_concurrently_has_one_winner(b: &impl Backend) {
    let store = b.store();
    let mut tasks = Vec::new();
    for n in 0..48u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            match n % 3 {
                // Same id (7), different contents: only one may land.
                0 => {
                    let mut contender = object(2000 + n);
                    contender.id = id(7);
                    let r = store
                        .put_object(&contender, &ev("safe.encrypt", "race"))
                        .await;
                    (n, r.map(|()| Some(contender)))
                }
                1 => {
                    let r = store
                        .put_object(&object(3000 + n), &ev("safe.encrypt", "other"))
                        .await;
                    (n, r.map(|()| None))
                }
                _ => {
                    let r = store.append_audit(&ev("secret.get", "burst")).await;
                    (n, r.map(|_seq| None))
                }
            }
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (n, Ok(Some(contender))) if n % 3 == 0 => winners.push(contender),
            (n, Err(StoreError::Conflict)) if n % 3 == 0 => {}
            (n, Ok(None)) if n % 3 != 0 => {}
            (n, other) => panic!("write {n}: unexpected {:?}", other.map(|_| ())),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer of the same id wins");
    assert_eq!(store.get_object(&id(7)).await.unwrap(), winners[0]);
    for n in (0..48u64).filter(|n| n % 3 == 1) {
        assert_eq!(
            store.get_object(&id(3000 + n)).await.unwrap(),
            object(3000 + n)
        );
    }
    // 1 winner + 16 other objects + 16 plain entries; losers left no entry.
    assert_chain_ok(store, 33).await;
    let all = store.list_audit(0, u32::MAX).await.unwrap();
    assert_eq!(all.iter().filter(|e| e.event.target == "race").count(), 1);
    assert_eq!(b.query_i64("SELECT COUNT(*) FROM objects").await, 17);
}

async fn ten_entries(store: &Store) {
    for i in 1..=10 {
        let e = AuditEvent {
            detail: format!("entry {i}"),
            ..ev("secret.get", "t")
        };
        store.append_audit(&e).await.unwrap();
    }
    assert_chain_ok(store, 10).await;
}

async fn first_broken(store: &Store) -> Option<u64> {
    store.verify_audit().await.unwrap().first_broken
}

pub(crate) async fn audit_tamper_edit(b: &impl Backend) {
    ten_entries(b.store()).await;
    b.exec("UPDATE audit SET outcome = 'denied' WHERE seq = 4")
        .await;
    assert_eq!(first_broken(b.store()).await, Some(4));
}

pub(crate) async fn audit_tamper_delete(b: &impl Backend) {
    ten_entries(b.store()).await;
    b.exec("DELETE FROM audit WHERE seq = 5").await;
    let report = b.store().verify_audit().await.unwrap();
    assert_eq!(report.first_broken, Some(5));
    assert_eq!(report.entries, 9);
}

pub(crate) async fn audit_tamper_swap_macs(b: &impl Backend) {
    ten_entries(b.store()).await;
    let all = b.store().list_audit(0, 100).await.unwrap();
    let (m3, m6) = (&all[2].mac, &all[5].mac);
    b.exec(&format!("UPDATE audit SET mac = '{m6}' WHERE seq = 3"))
        .await;
    b.exec(&format!("UPDATE audit SET mac = '{m3}' WHERE seq = 6"))
        .await;
    assert_eq!(first_broken(b.store()).await, Some(3));
}

pub(crate) async fn audit_tamper_reorder(b: &impl Backend) {
    ten_entries(b.store()).await;
    // Swap the contents (and macs) of entries 7 and 8, keeping their sequence numbers.
    let all = b.store().list_audit(0, 100).await.unwrap();
    for (seq, from) in [(7, &all[7]), (8, &all[6])] {
        b.exec(&format!(
            "UPDATE audit SET time = {}, detail = '{}', mac = '{}' WHERE seq = {seq}",
            from.time, from.event.detail, from.mac
        ))
        .await;
    }
    assert_eq!(
        b.query_i64("SELECT COUNT(*) FROM audit WHERE seq = 7 AND detail = 'entry 8'")
            .await,
        1
    );
    assert_eq!(first_broken(b.store()).await, Some(7));
}

pub(crate) async fn audit_tamper_truncate(b: &impl Backend) {
    ten_entries(b.store()).await;
    // Removing entries from the end leaves a valid chain prefix; the signed head catches it.
    b.exec("DELETE FROM audit WHERE seq >= 9").await;
    assert_eq!(first_broken(b.store()).await, Some(9));
    // ... also when the attacker rewinds the head's seq and mac (the tag no longer matches).
    b.exec(
        "UPDATE audit_head SET seq = 8, mac = (SELECT mac FROM audit WHERE seq = 8) WHERE id = 1",
    )
    .await;
    assert_eq!(first_broken(b.store()).await, Some(9));
    // A tampered head also makes writers fail closed.
    assert!(matches!(
        b.store().append_audit(&ev("secret.get", "t")).await,
        Err(StoreError::Integrity {
            table: "audit_head",
            ..
        })
    ));
}

pub(crate) async fn audit_tamper_insert(b: &impl Backend) {
    ten_entries(b.store()).await;
    b.exec(
        "INSERT INTO audit (seq, time, actor, action, target, outcome, detail, mac)
         SELECT 11, time, actor, action, target, outcome, detail, mac FROM audit WHERE seq = 10",
    )
    .await;
    assert_eq!(first_broken(b.store()).await, Some(11));
}

// ---------------------------------------------------------------- confidentiality, integrity

const SHARE: &[u8; 32] = b"SHARE-SENTINEL-0123456789abcdef!";
const COMMITMENT: &[u8; 32] = b"COMMIT-SENTINEL-0123456789abcde!";
const SECRET_NAME: &str = "canary-secret-name-7f3a";
const CIPHERTEXT: &str = "daas:v1:CIPHERTEXT-SENTINEL-9d8e";
const OWNER: &str = "owner-sentinel-a1b2";
const AUDIENCE: &str = "audience-sentinel-c3d4";
const ACCESS: &str = "access-sentinel-e5f6";
const APP_NAME: &str = "app-sentinel-name-4b5c";
const TOKEN_HASH: &str = "tokenhash-sentinel-6d7e";
const CA_MATERIAL: &[u8] = b"-----BEGIN PRIVATE KEY----- CA-SENTINEL-8f9a0b1c";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_absent(dump: &[u8], what: &str, needle: &[u8]) {
    let forms = [
        needle.to_vec(),
        hex_lower(needle).into_bytes(),
        hex_lower(needle).to_uppercase().into_bytes(),
    ];
    for form in forms {
        assert!(!contains(dump, &form), "the dump reveals the {what}");
    }
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) async fn dump_reveals_nothing(b: &impl Backend) {
    let store = b.store();
    let obj = ObjectRecord {
        owner: OWNER.into(),
        audience: AUDIENCE.into(),
        server_share: Key256::from_bytes(*SHARE),
        commitment: *COMMITMENT,
        access: vec![ACCESS.into()],
        ..object(1)
    };
    store
        .put_object(&obj, &ev("safe.encrypt", "1"))
        .await
        .unwrap();
    let s = SecretRecord {
        name: SECRET_NAME.into(),
        version: 0,
        ciphertext: CIPHERTEXT.into(),
        object: ObjectRecord {
            id: id(2),
            ..obj.clone()
        },
        updated_at: 1,
    };
    store.put_secret(&s, &ev("secret.put", "h")).await.unwrap();
    let a = AppRecord {
        token_hash: TOKEN_HASH.into(),
        ..app("app_1", APP_NAME)
    };
    store.put_app(&a, &ev("app.create", "app_1")).await.unwrap();
    store
        .put_identity_ca(CA_MATERIAL, &ev("identity.ca.create", "ca"))
        .await
        .unwrap();
    assert_eq!(store.get_object(&id(1)).await.unwrap(), obj);
    assert_eq!(
        store.get_identity_ca().await.unwrap().unwrap().as_slice(),
        CA_MATERIAL
    );

    let dump = b.dump().await;
    assert!(dump.len() > 1000, "the dump is suspiciously small");
    // Sanity: the dump does show plain columns.
    assert!(
        contains(&dump, b"safe.encrypt"),
        "the dump does not show the audit log"
    );
    assert_absent(&dump, "server share", SHARE);
    assert_absent(&dump, "key commitment", COMMITMENT);
    assert_absent(&dump, "secret name", SECRET_NAME.as_bytes());
    assert_absent(&dump, "secret ciphertext", CIPHERTEXT.as_bytes());
    assert_absent(&dump, "owner", OWNER.as_bytes());
    assert_absent(&dump, "audience", AUDIENCE.as_bytes());
    assert_absent(&dump, "access list", ACCESS.as_bytes());
    assert_absent(&dump, "app name", APP_NAME.as_bytes());
    assert_absent(&dump, "app token hash", TOKEN_HASH.as_bytes());
    assert_absent(&dump, "identity CA material", CA_MATERIAL);
}

pub(crate) async fn wrong_key_is_integrity(b: &impl Backend) {
    b.store()
        .put_object(&object(1), &ev("safe.encrypt", "1"))
        .await
        .unwrap();
    let err = reopen(b, keys(2)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Integrity {
                table: "meta",
                column: "value"
            }
        ),
        "{err:?}"
    );
    // Nothing was written by the failed open; the right key still works.
    assert_eq!(b.store().get_object(&id(1)).await.unwrap(), object(1));
    assert_chain_ok(b.store(), 1).await;
}

pub(crate) async fn moved_sealed_value_is_integrity(b: &impl Backend) {
    let store = b.store();
    store
        .put_object(&object(1), &ev("safe.encrypt", "1"))
        .await
        .unwrap();
    store
        .put_object(&object(2), &ev("safe.encrypt", "2"))
        .await
        .unwrap();
    store
        .put_app(&app("app_1", "web"), &ev("app.create", "web"))
        .await
        .unwrap();
    store
        .put_app(&app("app_2", "api"), &ev("app.create", "api"))
        .await
        .unwrap();
    // An attacker with write access copies object 1's share into object 2, and swaps app
    // 1's token hash into app 2.
    b.exec(
        "UPDATE objects SET share = (SELECT share FROM objects WHERE id = '11111111111111110000000000000001')
         WHERE id = '11111111111111110000000000000002'",
    )
    .await;
    b.exec(
        "UPDATE apps SET token_hash = (SELECT token_hash FROM apps WHERE id = 'app_1')
         WHERE id = 'app_2'",
    )
    .await;
    assert!(matches!(
        store.get_object(&id(2)).await,
        Err(StoreError::Integrity {
            table: "objects",
            column: "share"
        })
    ));
    assert!(matches!(
        store.get_app("app_2").await,
        Err(StoreError::Integrity {
            table: "apps",
            column: "token_hash"
        })
    ));
    assert!(matches!(
        store.list_apps().await,
        Err(StoreError::Integrity { table: "apps", .. })
    ));
    assert_eq!(store.get_object(&id(1)).await.unwrap(), object(1));
    // A flipped byte inside a sealed value.
    b.exec(
        "UPDATE objects SET owner = (SELECT owner FROM objects WHERE id = '11111111111111110000000000000002')
         WHERE id = '11111111111111110000000000000001'",
    )
    .await;
    assert!(matches!(
        store.get_object(&id(1)).await,
        Err(StoreError::Integrity {
            table: "objects",
            column: "owner"
        })
    ));
}

pub(crate) async fn storage_unavailable(b: &impl Backend) {
    let url: StoreUrl = b.unavailable_url().parse().unwrap();
    let start = Instant::now();
    let err = Store::open(&url, keys(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let text = err.to_string();
    assert_eq!(text, "storage unavailable");
}

// ---------------------------------------------------------------- crash durability

const CHILD_ENV: &str = "DAAS_STORE_CRASH_CHILD_URL";
/// Acknowledged writes to wait for before killing the child.
const KILL_AFTER: usize = 300;

/// The child: write objects from 8 concurrent tasks as fast as possible, printing `ACK <n>`
/// after each acknowledged write, until killed. Returns at once unless run as the child.
pub(crate) async fn crash_child_main() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&url.parse::<StoreUrl>().unwrap(), keys(1))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..1_000_000u64 {
                let n = (t << 32) | i;
                store
                    .put_object(&object(n), &ev("safe.encrypt", "crash"))
                    .await
                    .unwrap();
                println!("ACK {n}");
            }
        }));
    }
    // Never finish on our own within the test's time: the parent kills us.
    tokio::time::sleep(Duration::from_secs(60)).await;
    std::process::exit(3);
}

pub(crate) async fn crash_durability(b: &impl Backend) {
    let exe = std::env::current_exe().unwrap();
    let url = b.url();
    let acked = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(exe)
            .args(["crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut acked = Vec::new();
        let mut killed = false;
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("ACK ") {
                acked.push(n.parse::<u64>().unwrap());
                if acked.len() == KILL_AFTER && !killed {
                    child.kill().unwrap(); // SIGKILL: no destructors, no flush
                    killed = true;
                }
            }
        }
        let status = child.wait().unwrap();
        assert!(killed, "the child ended before being killed: {status:?}");
        acked
    })
    .await
    .unwrap();
    assert!(acked.len() >= KILL_AFTER);
    // Every acknowledged write is there, intact, with its audit entry.
    let store = reopen(b, keys(1)).await.unwrap();
    for n in &acked {
        assert_eq!(
            store.get_object(&id(*n)).await.unwrap(),
            object(*n),
            "write {n} lost"
        );
    }
    let report = store.verify_audit().await.unwrap();
    assert_eq!(report.first_broken, None);
    assert!(report.entries >= u64::try_from(acked.len()).unwrap());
    assert_eq!(
        u64::try_from(b.query_i64("SELECT COUNT(*) FROM objects").await).unwrap(),
        report.entries
    );
    store
        .append_audit(&ev("secret.get", "after-crash"))
        .await
        .unwrap();
    assert_eq!(count_audit(&store).await, report.entries + 1);
}

// ---------------------------------------------------------------- workload identity

fn entry(id: &str, parent: &str, created_at: i64) -> EntryRecord {
    EntryRecord {
        id: id.into(),
        spiffe_id: format!("spiffe://example.org/workload/{id}"),
        parent_id: parent.into(),
        // Not necessarily UTF-8 for the store: the column is a BLOB.
        body: [format!("{{\"id\":\"{id}\"}}").as_bytes(), &[0x00, 0xff]].concat(),
        created_at,
    }
}

fn token_hash(n: u8) -> [u8; 32] {
    let mut h = [0xabu8; 32];
    h[31] = n;
    h
}

fn token(n: u8, expires_at: i64) -> JoinTokenRecord {
    JoinTokenRecord {
        token_hash: token_hash(n),
        expires_at,
        created_at: expires_at - 600_000,
    }
}

fn node(name: &str) -> NodeRecord {
    NodeRecord {
        spiffe_id: format!("spiffe://example.org/node/{name}"),
        created_at: 1_700_000_300_000,
    }
}

const NODE_A: &str = "spiffe://example.org/node/a";
const NODE_B: &str = "spiffe://example.org/node/b";
/// "Now" for the join-token tests; tokens expire relative to it.
const NOW: i64 = 1_700_000_500_000;

async fn count_tokens(b: &impl Backend) -> i64 {
    b.query_i64("SELECT COUNT(*) FROM join_tokens").await
}

/// A database created before the identity tables existed (version 1) gains them on open and
/// keeps its data.
pub(crate) async fn migration_2_upgrades_a_version_1_database(b: &impl Backend) {
    b.store()
        .put_object(&object(1), &ev("safe.encrypt", "1"))
        .await
        .unwrap();
    // Turn the database back into a version-1 one.
    b.exec(
        "DROP TABLE token_keys; DROP TABLE tokens; DROP TABLE token_status_counter;
         DROP TABLE app_documents;
         DROP TABLE identity_ca; DROP TABLE entries; DROP TABLE join_tokens; DROP TABLE nodes;
         DELETE FROM schema_version WHERE version >= 2",
    )
    .await;
    assert_eq!(
        b.query_i64("SELECT MAX(version) FROM schema_version").await,
        1
    );
    let store = reopen(b, keys(1)).await.unwrap();
    assert_eq!(
        b.query_i64("SELECT MAX(version) FROM schema_version").await,
        LATEST_SCHEMA
    );
    assert_eq!(store.get_object(&id(1)).await.unwrap(), object(1));
    assert!(store.get_identity_ca().await.unwrap().is_none());
    store
        .put_entry(&entry("e1", NODE_A, 1), &ev("identity.entry.create", "e1"))
        .await
        .unwrap();
    assert_eq!(
        store.list_entries().await.unwrap(),
        [entry("e1", NODE_A, 1)]
    );
    assert_chain_ok(&store, 2).await;
}

/// Replicas starting at once each try to create the CA: exactly one wins, the others write
/// nothing and read the winner's.
pub(crate) async fn identity_ca_is_created_once(b: &impl Backend) {
    let store = b.store();
    let mut tasks = Vec::new();
    for i in 0..6u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let material = vec![i; 64];
            let won = store
                .create_identity_ca(&material, &ev("identity.ca.create", "ca"))
                .await
                .unwrap();
            (won, material)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (won, material) = t.await.unwrap();
        if won {
            winners.push(material);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one creator");
    assert_eq!(
        store.get_identity_ca().await.unwrap().unwrap().as_slice(),
        winners[0].as_slice()
    );
    // A later create is a no-op that writes no audit entry.
    assert!(
        !store
            .create_identity_ca(b"late", &ev("identity.ca.create", "ca"))
            .await
            .unwrap()
    );
    assert_chain_ok(store, 1).await;
}

pub(crate) async fn identity_ca_roundtrip_and_replace(b: &impl Backend) {
    let store = b.store();
    assert!(store.get_identity_ca().await.unwrap().is_none());
    let first: Vec<u8> = (0..=255u8).collect();
    store
        .put_identity_ca(&first, &ev("identity.ca.create", "ca"))
        .await
        .unwrap();
    assert_eq!(
        store.get_identity_ca().await.unwrap().unwrap().as_slice(),
        first.as_slice()
    );
    let second = b"second CA, after rotation".to_vec();
    store
        .put_identity_ca(&second, &ev("identity.ca.rotate", "ca"))
        .await
        .unwrap();
    assert_eq!(
        store.get_identity_ca().await.unwrap().unwrap().as_slice(),
        second.as_slice()
    );
    // Still exactly one row, and it is sealed (not the plaintext).
    assert_eq!(b.query_i64("SELECT COUNT(*) FROM identity_ca").await, 1);
    assert_eq!(
        b.query_i64("SELECT id FROM identity_ca").await,
        1,
        "the CA lives in row 1"
    );
    // Another handle sees the same CA.
    let again = reopen(b, keys(1)).await.unwrap();
    assert_eq!(
        again.get_identity_ca().await.unwrap().unwrap().as_slice(),
        second.as_slice()
    );
    drop(again);
    assert_chain_ok(store, 2).await;
    let actions: Vec<String> = store
        .list_audit(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    assert_eq!(actions, ["identity.ca.create", "identity.ca.rotate"]);
}

/// Entry bodies are sealed and bound to their row: moving one to another entry (to hand its
/// identity to other selectors or another node) fails the integrity check instead of granting.
pub(crate) async fn entry_bodies_are_sealed_to_their_row(b: &impl Backend) {
    let store = b.store();
    let a = EntryRecord {
        body: b"{\"marker\":\"ENTRY-BODY-SENTINEL\"}".to_vec(),
        ..entry("a", "spiffe://example.org/node/1", 1)
    };
    store
        .put_entry(&a, &ev("identity.entry.create", "a"))
        .await
        .unwrap();
    store
        .put_entry(
            &entry("b", "spiffe://example.org/node/2", 2),
            &ev("identity.entry.create", "b"),
        )
        .await
        .unwrap();
    assert_eq!(store.get_entry("a").await.unwrap(), a);
    let dump = b.dump().await;
    assert!(
        !dump.windows(20).any(|w| w == b"ENTRY-BODY-SENTINEL\""),
        "the entry body is not in the database in the clear"
    );
    b.exec("UPDATE entries SET body = (SELECT body FROM entries WHERE id = 'a') WHERE id = 'b'")
        .await;
    assert!(matches!(
        store.get_entry("b").await,
        Err(StoreError::Integrity {
            table: "entries",
            column: "body"
        })
    ));
    assert!(matches!(
        store.list_entries().await,
        Err(StoreError::Integrity { .. })
    ));
}

pub(crate) async fn identity_ca_tamper_is_integrity(b: &impl Backend) {
    let store = b.store();
    store
        .put_identity_ca(b"ca material", &ev("identity.ca.create", "ca"))
        .await
        .unwrap();
    // A sealed value from elsewhere (another table's AAD) does not open as the CA.
    b.exec("UPDATE identity_ca SET material = (SELECT value FROM meta WHERE key = 'key_check')")
        .await;
    assert!(matches!(
        store.get_identity_ca().await,
        Err(StoreError::Integrity {
            table: "identity_ca",
            column: "material"
        })
    ));
    // Writing a new CA repairs it.
    store
        .put_identity_ca(b"new ca", &ev("identity.ca.rotate", "ca"))
        .await
        .unwrap();
    assert_eq!(
        store.get_identity_ca().await.unwrap().unwrap().as_slice(),
        b"new ca"
    );
    // What is stored is the sealed value (nonce and tag around it), not the plaintext.
    assert!(
        b.query_i64("SELECT length(material) FROM identity_ca")
            .await
            >= i64::try_from(b"new ca".len()).unwrap() + 28
    );
}

pub(crate) async fn entry_roundtrip_and_conflicts(b: &impl Backend) {
    let store = b.store();
    assert!(store.list_entries().await.unwrap().is_empty());
    assert!(matches!(
        store.get_entry("e1").await,
        Err(StoreError::NotFound)
    ));
    // Inserted out of order: lists are ordered by (created_at, id), ids in byte order.
    let all = [
        entry("e3", NODE_A, 20),
        entry("e1", NODE_B, 10),
        entry("e2", NODE_A, 10),
        entry("B", NODE_A, 20),
        entry("a", NODE_B, 30),
    ];
    for e in &all {
        store
            .put_entry(e, &ev("identity.entry.create", &e.id))
            .await
            .unwrap();
    }
    for e in &all {
        assert_eq!(&store.get_entry(&e.id).await.unwrap(), e);
    }
    let ids = |v: Vec<EntryRecord>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_entries().await.unwrap()),
        ["e1", "e2", "B", "e3", "a"]
    );
    assert_eq!(
        ids(store.list_entries_for_parent(NODE_A).await.unwrap()),
        ["e2", "B", "e3"]
    );
    assert_eq!(
        ids(store.list_entries_for_parent(NODE_B).await.unwrap()),
        ["e1", "a"]
    );
    assert!(
        store
            .list_entries_for_parent("spiffe://example.org/node/A")
            .await
            .unwrap()
            .is_empty()
    );
    // Duplicate id: Conflict, the original is untouched and nothing is audited.
    let clash = entry("e1", NODE_A, 99);
    assert!(matches!(
        store
            .put_entry(&clash, &ev("identity.entry.create", "e1"))
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_entry("e1").await.unwrap(), all[1]);
    assert_chain_ok(store, 5).await;

    store
        .delete_entry("e2", &ev("identity.entry.delete", "e2"))
        .await
        .unwrap();
    assert!(matches!(
        store.get_entry("e2").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        ids(store.list_entries_for_parent(NODE_A).await.unwrap()),
        ["B", "e3"]
    );
    assert_chain_ok(store, 6).await;
    let head = store.verify_audit().await.unwrap().head;
    // Deleting a missing entry writes nothing, not even the audit entry.
    for missing in ["e2", "nope"] {
        assert!(matches!(
            store
                .delete_entry(missing, &ev("identity.entry.delete", missing))
                .await,
            Err(StoreError::NotFound)
        ));
    }
    let report = store.verify_audit().await.unwrap();
    assert_eq!(
        (report.entries, report.head, report.first_broken),
        (6, head, None)
    );
    assert_eq!(b.query_i64("SELECT COUNT(*) FROM entries").await, 4);
    let last = store.list_audit(5, 10).await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].event, ev("identity.entry.delete", "e2"));
}

pub(crate) async fn join_token_lifecycle(b: &impl Backend) {
    let store = b.store();
    assert!(store.list_nodes().await.unwrap().is_empty());
    assert!(matches!(
        store.get_node(NODE_A).await,
        Err(StoreError::NotFound)
    ));
    store
        .put_join_token(&token(1, NOW + 60_000), &ev("identity.token.create", "1"))
        .await
        .unwrap();
    // Same hash twice: Conflict.
    assert!(matches!(
        store
            .put_join_token(&token(1, NOW + 120_000), &ev("identity.token.create", "1"))
            .await,
        Err(StoreError::Conflict)
    ));
    // Only the hash, as lowercase hex, is stored.
    assert_eq!(
        b.query_i64(&format!(
            "SELECT COUNT(*) FROM join_tokens WHERE token_hash = '{}'",
            hex_lower(&token_hash(1))
        ))
        .await,
        1
    );
    assert_chain_ok(store, 1).await;

    // Valid: consumed, node registered, token gone, audited.
    let join = ev("identity.node.attest", NODE_A);
    assert_eq!(
        store
            .consume_join_token(&token_hash(1), NOW, &node("a"), &join)
            .await
            .unwrap(),
        JoinTokenUse::Consumed
    );
    assert_eq!(store.get_node(NODE_A).await.unwrap(), node("a"));
    assert_eq!(store.list_nodes().await.unwrap(), [node("a")]);
    assert_eq!(count_tokens(b).await, 0);
    assert_chain_ok(store, 2).await;
    assert_eq!(store.list_audit(1, 10).await.unwrap()[0].event, join);
    // Single use.
    assert_eq!(
        store
            .consume_join_token(&token_hash(1), NOW, &node("b"), &join)
            .await
            .unwrap(),
        JoinTokenUse::Unknown
    );

    // Expired (expires_at == now is already expired): deleted, not audited, no node.
    store
        .put_join_token(&token(2, NOW), &ev("identity.token.create", "2"))
        .await
        .unwrap();
    assert_chain_ok(store, 3).await;
    assert_eq!(
        store
            .consume_join_token(&token_hash(2), NOW, &node("b"), &join)
            .await
            .unwrap(),
        JoinTokenUse::Expired
    );
    assert_eq!(count_tokens(b).await, 0);
    assert_eq!(
        store
            .consume_join_token(&token_hash(2), NOW - 1_000_000, &node("b"), &join)
            .await
            .unwrap(),
        JoinTokenUse::Unknown
    );
    // Never issued.
    assert_eq!(
        store
            .consume_join_token(&token_hash(3), NOW, &node("b"), &join)
            .await
            .unwrap(),
        JoinTokenUse::Unknown
    );
    assert!(matches!(
        store.get_node(NODE_B).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.list_nodes().await.unwrap(), [node("a")]);
    assert_chain_ok(store, 3).await;

    // Valid one millisecond before expiry; nodes are listed by (created_at, spiffe_id).
    store
        .put_join_token(&token(4, NOW + 1), &ev("identity.token.create", "4"))
        .await
        .unwrap();
    let early = NodeRecord {
        created_at: 5,
        ..node("z")
    };
    assert_eq!(
        store
            .consume_join_token(&token_hash(4), NOW, &early, &join)
            .await
            .unwrap(),
        JoinTokenUse::Consumed
    );
    assert_eq!(store.list_nodes().await.unwrap(), [early, node("a")]);
    assert_chain_ok(store, 5).await;
}

/// A node id that already exists fails the whole consumption: the token survives for a retry.
pub(crate) async fn join_token_node_conflict_keeps_token(b: &impl Backend) {
    let store = b.store();
    for n in [1, 2] {
        store
            .put_join_token(&token(n, NOW + 60_000), &ev("identity.token.create", "t"))
            .await
            .unwrap();
    }
    let join = ev("identity.node.attest", "n");
    assert_eq!(
        store
            .consume_join_token(&token_hash(1), NOW, &node("a"), &join)
            .await
            .unwrap(),
        JoinTokenUse::Consumed
    );
    assert_chain_ok(store, 3).await;
    let taken = NodeRecord {
        created_at: 42,
        ..node("a")
    };
    assert!(matches!(
        store
            .consume_join_token(&token_hash(2), NOW, &taken, &join)
            .await,
        Err(StoreError::Conflict)
    ));
    // Rolled back: token still there, node unchanged, nothing audited.
    assert_eq!(count_tokens(b).await, 1);
    assert_eq!(store.get_node(NODE_A).await.unwrap(), node("a"));
    assert_chain_ok(store, 3).await;
    assert_eq!(
        store
            .consume_join_token(&token_hash(2), NOW, &node("b"), &join)
            .await
            .unwrap(),
        JoinTokenUse::Consumed
    );
    assert_eq!(count_tokens(b).await, 0);
    assert_eq!(store.list_nodes().await.unwrap(), [node("a"), node("b")]);
    assert_chain_ok(store, 4).await;
}

/// Many consumers race for each token: exactly one wins, the others see `Unknown`.
pub(crate) async fn join_token_concurrent_consumers(b: &impl Backend) {
    let store = b.store();
    const TOKENS: u8 = 4;
    const RACERS: usize = 8;
    for t in 0..TOKENS {
        store
            .put_join_token(&token(t, NOW + 60_000), &ev("identity.token.create", "t"))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for t in 0..TOKENS {
        for r in 0..RACERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let n = node(&format!("{t}-{r}"));
                let use_ = store
                    .consume_join_token(
                        &token_hash(t),
                        NOW,
                        &n,
                        &ev("identity.node.attest", &n.spiffe_id),
                    )
                    .await
                    .unwrap();
                (t, use_)
            }));
        }
    }
    // Two consumers on one token inside one `join!` as well (same task, interleaved polls).
    store
        .put_join_token(&token(200, NOW + 60_000), &ev("identity.token.create", "t"))
        .await
        .unwrap();
    let join = ev("identity.node.attest", "pair");
    let (hash, nx, ny) = (token_hash(200), node("x"), node("y"));
    let (x, y) = tokio::join!(
        store.consume_join_token(&hash, NOW, &nx, &join),
        store.consume_join_token(&hash, NOW, &ny, &join),
    );
    let mut pair = [x.unwrap(), y.unwrap()];
    pair.sort_by_key(|u| *u != JoinTokenUse::Consumed);
    assert_eq!(pair, [JoinTokenUse::Consumed, JoinTokenUse::Unknown]);

    let mut consumed = [0usize; TOKENS as usize];
    for task in tasks {
        let (t, use_) = task.await.unwrap();
        match use_ {
            JoinTokenUse::Consumed => consumed[usize::from(t)] += 1,
            JoinTokenUse::Unknown => {}
            JoinTokenUse::Expired => panic!("token {t} reported expired"),
        }
    }
    assert_eq!(consumed, [1; TOKENS as usize]);
    assert_eq!(count_tokens(b).await, 0);
    assert_eq!(
        store.list_nodes().await.unwrap().len(),
        usize::from(TOKENS) + 1
    );
    // TOKENS + 1 creations and as many successful consumptions.
    assert_chain_ok(store, 2 * (u64::from(TOKENS) + 1)).await;
}

// ---------------------------------------------------------------- tokens

const TOKEN_KEY_MATERIAL: &[u8] = b"pkcs8 private key bytes of the issuer, never in a dump";
const TOKEN_SUBJECT: &str = "spiffe://example.org/never-in-a-dump";
const TOKEN_JKT: &str = "jktjktjktjktjktjktjktjktjktjktjktjktjktjkt_";

fn token_key(kid: &str, purpose: TokenKeyPurpose, created_at: i64) -> TokenKeyRecord {
    TokenKeyRecord {
        kid: kid.into(),
        purpose,
        pkcs8: zeroize::Zeroizing::new(format!("{kid} material").into_bytes()),
        created_at,
        retired_at: None,
    }
}

fn token_record(jti: &str, subject: &str) -> TokenRecord {
    TokenRecord {
        jti: jti.into(),
        jkt: format!("jkt-of-{jti}"),
        subject: subject.into(),
        audience: "https://api.example".into(),
        scope: vec!["read".into(), "write".into()],
        issued_at: 1_700_000_000,
        chain_started_at: 1_700_000_000,
        expires_at: 1_700_086_400,
        status_idx: 999,
        revoked: false,
        replaced_by: None,
    }
}

pub(crate) async fn token_keys_one_active_per_purpose_and_rotation(b: &impl Backend) {
    let store = b.store();
    assert!(store.list_token_keys().await.unwrap().is_empty());
    let issuer = token_key("k1", TokenKeyPurpose::Issuer, 10);
    assert!(
        store
            .create_token_key(&issuer, &ev("token.key.create", "k1"))
            .await
            .unwrap()
    );
    // A second replica generating its own key at the same time loses and writes nothing.
    let other = token_key("k2", TokenKeyPurpose::Issuer, 11);
    assert!(
        !store
            .create_token_key(&other, &ev("token.key.create", "k2"))
            .await
            .unwrap()
    );
    // The status key is independent of the issuer key.
    let status = token_key("s1", TokenKeyPurpose::Status, 12);
    assert!(
        store
            .create_token_key(&status, &ev("token.key.create", "s1"))
            .await
            .unwrap()
    );
    // Rotation is a compare-and-swap on the active kid.
    let next = token_key("k3", TokenKeyPurpose::Issuer, 20);
    for stale in ["k2", "s1", "nope"] {
        assert!(matches!(
            store
                .rotate_token_key(stale, &next, &ev("token.key.rotate", "k3"))
                .await,
            Err(StoreError::Conflict)
        ));
    }
    store
        .rotate_token_key("k1", &next, &ev("token.key.rotate", "k3"))
        .await
        .unwrap();
    // A retired key cannot be rotated again (a replica that missed the rotation).
    let late = token_key("k4", TokenKeyPurpose::Issuer, 21);
    assert!(matches!(
        store
            .rotate_token_key("k1", &late, &ev("token.key.rotate", "k4"))
            .await,
        Err(StoreError::Conflict)
    ));
    let keys = store.list_token_keys().await.unwrap();
    let summary: Vec<(&str, TokenKeyPurpose, Option<i64>)> = keys
        .iter()
        .map(|k| (k.kid.as_str(), k.purpose, k.retired_at))
        .collect();
    assert_eq!(
        summary,
        [
            ("k1", TokenKeyPurpose::Issuer, Some(20)),
            ("s1", TokenKeyPurpose::Status, None),
            ("k3", TokenKeyPurpose::Issuer, None),
        ]
    );
    assert_eq!(keys[0].pkcs8.as_slice(), issuer.pkcs8.as_slice());
    assert_eq!(keys[2], next);
    assert!(!format!("{:?}", keys[0]).contains("material"));
    assert_chain_ok(store, 3).await;
}

pub(crate) async fn tokens_issue_replace_revoke_and_status(b: &impl Backend) {
    let store = b.store();
    assert_eq!(
        store.revoked_status_indexes().await.unwrap(),
        TokenStatusSnapshot::default()
    );
    // Indexes are handed out in order, whatever the record says.
    for (n, jti) in ["a", "b", "c"].into_iter().enumerate() {
        let subject = if jti == "c" { "other" } else { "alice" };
        let idx = store
            .insert_token(&token_record(jti, subject), &ev("token.issue", jti))
            .await
            .unwrap();
        assert_eq!(idx, n as u64);
    }
    assert!(matches!(
        store
            .insert_token(&token_record("a", "alice"), &ev("token.issue", "a"))
            .await,
        Err(StoreError::Conflict)
    ));
    let a = store.get_token("a").await.unwrap();
    assert_eq!(
        a,
        TokenRecord {
            status_idx: 0,
            ..token_record("a", "alice")
        }
    );
    assert!(matches!(
        store.get_token("zz").await,
        Err(StoreError::NotFound)
    ));

    // Replacement: the old token is revoked and points to the new one.
    let a2 = TokenRecord {
        issued_at: 1_700_100_000,
        expires_at: 1_700_200_000,
        ..token_record("a2", "alice")
    };
    assert_eq!(
        store
            .replace_token("a", &a2, &ev("token.replace", "a"))
            .await
            .unwrap(),
        3
    );
    let old = store.get_token("a").await.unwrap();
    assert!(old.revoked);
    assert_eq!(old.replaced_by.as_deref(), Some("a2"));
    assert_eq!(store.get_token("a2").await.unwrap().status_idx, 3);
    // The old one cannot be replaced again, nor can an unknown one; nothing is written.
    for old_jti in ["a", "unknown"] {
        let again = TokenRecord {
            ..token_record("a3", "alice")
        };
        assert!(matches!(
            store
                .replace_token(old_jti, &again, &ev("token.replace", old_jti))
                .await,
            Err(StoreError::Conflict)
        ));
    }
    assert!(matches!(
        store.get_token("a3").await,
        Err(StoreError::NotFound)
    ));

    // Revocation by subject counts only what it revoked; unknown selectors are NotFound.
    assert_eq!(
        store
            .revoke_tokens(
                TokenSelector::Subject("alice"),
                &ev("token.revoke", "alice")
            )
            .await
            .unwrap(),
        2,
        "b and a2 (a was already revoked)"
    );
    assert_eq!(
        store
            .revoke_tokens(TokenSelector::Jti("b"), &ev("token.revoke", "b"))
            .await
            .unwrap(),
        0
    );
    for selector in [TokenSelector::Jti("zz"), TokenSelector::Subject("nobody")] {
        assert!(matches!(
            store
                .revoke_tokens(selector, &ev("token.revoke", "zz"))
                .await,
            Err(StoreError::NotFound)
        ));
    }
    assert_eq!(
        store.revoked_status_indexes().await.unwrap(),
        TokenStatusSnapshot {
            allocated: 4,
            revoked: vec![0, 1, 3],
        }
    );
    // 3 issues, 1 replacement, 2 revocations (one of which revoked nothing new).
    assert_chain_ok(store, 6).await;
}

pub(crate) async fn token_replacement_races_have_one_winner(b: &impl Backend) {
    let store = b.store();
    store
        .insert_token(&token_record("root", "alice"), &ev("token.issue", "root"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let new = token_record(&format!("new-{n}"), "alice");
            store
                .replace_token("root", &new, &ev("token.replace", "root"))
                .await
        }));
    }
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => winners += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(winners, 1);
    let snapshot = store.revoked_status_indexes().await.unwrap();
    assert_eq!(snapshot.allocated, 2, "losers allocate no index");
    assert_eq!(snapshot.revoked, [0]);
    assert_chain_ok(store, 2).await;
}

pub(crate) async fn token_records_and_keys_are_sealed(b: &impl Backend) {
    let store = b.store();
    let key = TokenKeyRecord {
        pkcs8: zeroize::Zeroizing::new(TOKEN_KEY_MATERIAL.to_vec()),
        ..token_key("kid-1", TokenKeyPurpose::Issuer, 1)
    };
    assert!(
        store
            .create_token_key(&key, &ev("token.key.create", "kid-1"))
            .await
            .unwrap()
    );
    let token = TokenRecord {
        jkt: TOKEN_JKT.into(),
        ..token_record("jti-1", TOKEN_SUBJECT)
    };
    store
        .insert_token(&token, &ev("token.issue", "jti-1"))
        .await
        .unwrap();
    let dump = b.dump().await;
    assert_absent(&dump, "token signing key", TOKEN_KEY_MATERIAL);
    assert_absent(&dump, "token subject", TOKEN_SUBJECT.as_bytes());
    assert_absent(&dump, "token binding", TOKEN_JKT.as_bytes());
    assert_absent(&dump, "token audience", b"https://api.example");

    // A sealed body moved to another row does not open.
    store
        .insert_token(&token_record("jti-2", "bob"), &ev("token.issue", "jti-2"))
        .await
        .unwrap();
    b.exec("UPDATE tokens SET body = (SELECT body FROM tokens WHERE jti = 'jti-1') WHERE jti = 'jti-2'")
        .await;
    assert!(matches!(
        store.get_token("jti-2").await,
        Err(StoreError::Integrity { .. })
    ));
    // So does a subject hash edited to move a token to another subject.
    b.exec("UPDATE tokens SET subject_hash = 'x' WHERE jti = 'jti-1'")
        .await;
    assert!(matches!(
        store.get_token("jti-1").await,
        Err(StoreError::Integrity { .. })
    ));
}
