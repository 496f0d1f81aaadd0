//! Message-mode record opener on arbitrary input: never panics, never opens a record it was not
//! given by the matching sealer, and a sealed record opens exactly once to its plaintext.
#![no_main]

use std::time::Instant;

use daas_channel::RecordError;
use daas_channel::{MessageSecrets, Side, message_keys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let secrets = MessageSecrets::new([7; 32], [9; 32]);
    let Ok((mut sealer, _)) = message_keys(Side::Client, &secrets, now) else {
        return;
    };
    let Ok((_, mut opener)) = message_keys(Side::Server, &secrets, now) else {
        return;
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        // Raw bytes: the fuzzer cannot forge a Poly1305 tag.
        let mut record = rest.to_vec();
        assert!(opener.open(now, &mut record).is_err());
    } else {
        let mut record = Vec::new();
        if sealer.seal(now, rest, &mut record).is_err() {
            return;
        }
        let mut copy = record.clone();
        let opened = opener.open(now, &mut copy).map(|(seq, pt)| (seq, pt.to_vec()));
        assert_eq!(opened, Ok((0, rest.to_vec())));
        assert_eq!(opener.open(now, &mut record), Err(RecordError::Duplicate));
    }
});
