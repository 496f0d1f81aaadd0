//! `daas:v1:` envelope parser on arbitrary input: never panics, and every accepted text is the
//! unique encoding of what it parsed to.
#![no_main]

use daas_crypto::envelope::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data) {
        if let Ok(env) = Envelope::parse(text) {
            assert_eq!(env.encode(), text);
        }
    }
    // Also exercise the parser behind a valid prefix, where most inputs would otherwise stop.
    let lossy = String::from_utf8_lossy(data);
    let prefixed = format!("{}{lossy}", daas_crypto::envelope::PREFIX);
    if let Ok(env) = Envelope::parse(&prefixed) {
        assert_eq!(env.encode(), prefixed);
    }
});
