//! Instruction-count comparison of envelope open vs the raw AEAD open, for `valgrind
//! --tool=callgrind` (repeatable on a noisy machine, unlike wall-clock timing):
//!
//! `valgrind --tool=callgrind target/release/examples/open_cost envelope 65536 200`
//! `valgrind --tool=callgrind target/release/examples/open_cost raw 65536 200`
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a measurement tool: any failure aborts it"
)]

use std::hint::black_box;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use daas_crypto::envelope::{self, Context, Suite};
use daas_crypto::{Key256, ObjectId};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, size, iterations) = (
        args[1].as_str(),
        args[2].parse::<usize>().unwrap(),
        args[3].parse::<usize>().unwrap(),
    );
    let k = Key256::generate().unwrap();
    let ctx = Context {
        object_id: ObjectId([7; 16]),
        key_version: 1,
        owner: "app:bench",
        audience: "svc:bench",
    };
    let plaintext = vec![0xA5u8; size];
    let env = envelope::seal(&k, Suite::Aes256Gcm, &ctx, &plaintext).unwrap();
    match mode {
        "envelope" => {
            for _ in 0..iterations {
                black_box(envelope::open(&k, black_box(&env), &ctx).unwrap());
            }
        }
        "raw" => {
            let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, k.expose()).unwrap());
            let aad = envelope::aad(Suite::Aes256Gcm, &ctx);
            let mut buf = Vec::with_capacity(env.sealed.len());
            for _ in 0..iterations {
                buf.clear();
                buf.extend_from_slice(&env.sealed);
                let nonce = Nonce::try_assume_unique_for_key(&env.nonce).unwrap();
                black_box(
                    key.open_in_place(nonce, Aad::from(&aad[..]), &mut buf)
                        .unwrap(),
                );
            }
        }
        other => panic!("mode must be envelope or raw, not {other}"),
    }
}
