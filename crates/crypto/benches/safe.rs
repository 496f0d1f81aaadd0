//! Split-key safe throughput: our compositions vs. the raw AEADs (the physical limit).
//!
//! `cargo bench -p daas-crypto --bench safe -- --quick`
#![expect(
    clippy::unwrap_used,
    reason = "benchmark setup: a failure aborts the run"
)]

use std::hint::black_box;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use daas_crypto::envelope::{self, Context, Suite};
use daas_crypto::{Key256, ObjectId, xor};

const SIZES: [(usize, &str); 4] = [
    (32, "32B"),
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];

fn bench_xor(c: &mut Criterion) {
    let mut g = c.benchmark_group("xor");
    g.throughput(criterion::Throughput::Bytes(32));
    let k = Key256::generate().unwrap();
    g.bench_function("split", |b| b.iter(|| xor::split(black_box(&k)).unwrap()));
    let (t1, t2) = xor::split(&k).unwrap();
    g.bench_function("combine", |b| {
        b.iter(|| xor::combine(black_box(&t1), black_box(&t2)))
    });
    g.finish();
}

fn bench_envelope(c: &mut Criterion) {
    let k = Key256::generate().unwrap();
    let ctx = Context {
        object_id: ObjectId([7; 16]),
        key_version: 1,
        owner: "app:bench",
        audience: "svc:bench",
    };
    for (suite, name) in [
        (Suite::Aes256Gcm, "aes256gcm"),
        (Suite::XChaCha20Poly1305, "xchacha20poly1305"),
    ] {
        let mut g = c.benchmark_group(format!("envelope/{name}"));
        for (size, label) in SIZES {
            let pt = vec![0xA5u8; size];
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new("seal", label), &pt, |b, pt| {
                b.iter(|| envelope::seal(&k, suite, &ctx, black_box(pt)).unwrap())
            });
            let env = envelope::seal(&k, suite, &ctx, &pt).unwrap();
            g.bench_with_input(BenchmarkId::new("open", label), &env, |b, env| {
                b.iter(|| envelope::open(&k, black_box(env), &ctx).unwrap())
            });
        }
        g.finish();
    }
}

/// The underlying crates directly, key set up once, in-place on a reused buffer.
fn bench_raw(c: &mut Criterion) {
    let key_bytes = [0x11u8; 32];
    let aad = [0u8; 64];
    {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).unwrap());
        let nonce = [3u8; 12];
        let mut g = c.benchmark_group("raw/aes256gcm");
        for (size, label) in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let pt = vec![0xA5u8; size];
            let mut buf = Vec::with_capacity(size + 16);
            g.bench_function(BenchmarkId::new("seal", label), |b| {
                b.iter(|| {
                    buf.clear();
                    buf.extend_from_slice(&pt);
                    key.seal_in_place_append_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(&aad),
                        &mut buf,
                    )
                    .unwrap();
                    black_box(&buf);
                })
            });
            let mut sealed = pt.clone();
            key.seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut sealed,
            )
            .unwrap();
            g.bench_function(BenchmarkId::new("open", label), |b| {
                b.iter(|| {
                    buf.clear();
                    buf.extend_from_slice(&sealed);
                    let pt = key
                        .open_in_place(
                            Nonce::assume_unique_for_key(nonce),
                            Aad::from(&aad),
                            &mut buf,
                        )
                        .unwrap();
                    black_box(pt.len());
                })
            });
        }
        g.finish();
    }
    {
        let cipher = XChaCha20Poly1305::new((&key_bytes).into());
        let nonce = XNonce::from([3u8; 24]);
        let mut g = c.benchmark_group("raw/xchacha20poly1305");
        for (size, label) in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let pt = vec![0xA5u8; size];
            let mut buf = Vec::with_capacity(size + 16);
            g.bench_function(BenchmarkId::new("seal", label), |b| {
                b.iter(|| {
                    buf.clear();
                    buf.extend_from_slice(&pt);
                    let tag = cipher
                        .encrypt_in_place_detached(&nonce, &aad, &mut buf)
                        .unwrap();
                    buf.extend_from_slice(&tag);
                    black_box(&buf);
                })
            });
            let mut sealed = pt.clone();
            let tag = cipher
                .encrypt_in_place_detached(&nonce, &aad, &mut sealed)
                .unwrap();
            let ct = sealed.clone();
            g.bench_function(BenchmarkId::new("open", label), |b| {
                b.iter(|| {
                    buf.clear();
                    buf.extend_from_slice(&ct);
                    cipher
                        .decrypt_in_place_detached(&nonce, &aad, &mut buf, &tag)
                        .unwrap();
                    black_box(buf.len());
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench_xor, bench_envelope, bench_raw);
criterion_main!(benches);
