//! `daas:unseal:v1:` Shamir-share parser on arbitrary input: never panics, and every accepted
//! text is the unique encoding of what it parsed to.
#![no_main]

use daas_crypto::shamir::{PREFIX, ShamirShare};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data) {
        if let Ok(share) = ShamirShare::parse(text) {
            assert_eq!(share.encode(), text);
        }
    }
    let lossy = String::from_utf8_lossy(data);
    let prefixed = format!("{PREFIX}{lossy}");
    if let Ok(share) = ShamirShare::parse(&prefixed) {
        assert_eq!(share.encode(), prefixed);
    }
});
