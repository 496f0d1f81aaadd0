//! Stateless DPoP nonce verification (`NonceKey::verify`) on arbitrary input: never panics;
//! accepts only the two nonces the fixed key issues for the current and the previous window
//! (the encoding is canonical, so no other spelling of them passes); and for issued nonces at
//! arbitrary times and window lengths, accepts exactly those of the current or previous window.
#![no_main]

use core::num::NonZeroU32;
use daas_token::{NonceError, NonceKey};
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const NOW: i64 = 1_760_000_000;
const WINDOW: i64 = 300;

fn key() -> &'static NonceKey {
    static KEY: OnceLock<NonceKey> = OnceLock::new();
    KEY.get_or_init(|| NonceKey::new([0x42; 32]).with_window(NonZeroU32::MIN.saturating_add(299)))
}

/// Issue at `issued`, verify at `now`, with a window from the input.
fn windows(u: &mut Unstructured<'_>) -> ArbResult<()> {
    let window = NonZeroU32::new(u.arbitrary::<u32>()?).unwrap_or(NonZeroU32::MIN);
    let issued: i64 = u.arbitrary()?;
    let now: i64 = if u.arbitrary()? {
        u.arbitrary()?
    } else {
        issued.saturating_add(i64::from(u.arbitrary::<i32>()?))
    };
    let key = NonceKey::new([0x42; 32]).with_window(window);
    let w = i64::from(window.get());
    let (issued_window, now_window) = (issued.div_euclid(w), now.div_euclid(w));
    let fresh = issued_window == now_window || Some(issued_window) == now_window.checked_sub(1);
    let expected = if fresh {
        Ok(())
    } else {
        Err(NonceError::Stale)
    };
    assert_eq!(key.verify(&key.issue(issued), now), expected);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let key = key();
    assert_eq!(key.issue(NOW).len(), 55);
    match key.verify(&text, NOW) {
        Ok(()) => assert!(
            *text == key.issue(NOW) || *text == key.issue(NOW - WINDOW),
            "accepted a nonce the key did not issue: {text:?}"
        ),
        // Authentic but stale means the key issued it, for some other window.
        Err(NonceError::Stale) => assert_eq!(text.len(), 55),
        Err(_) => {}
    }
    let _ = windows(&mut Unstructured::new(data));
});
