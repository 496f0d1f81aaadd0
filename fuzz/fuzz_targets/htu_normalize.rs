//! `htu` normalisation on arbitrary input: never panics; what it accepts normalises to a fixed
//! point (`normalize(normalize(x)) == normalize(x)`), without query, fragment or dot segments,
//! with a lowercase `http`/`https` scheme; and query and fragment never change the result.
#![no_main]

use daas_token::htu::MAX_HTU_LEN;
use daas_token::normalize_htu;
use libfuzzer_sys::fuzz_target;

fn check(uri: &str) {
    let Ok(once) = normalize_htu(uri) else {
        return;
    };
    assert_eq!(normalize_htu(&once).as_ref(), Ok(&once), "{uri:?}");
    assert!(once.starts_with("https://") || once.starts_with("http://"));
    assert!(!once.contains(['?', '#']));
    assert!(once.is_ascii());
    let path_start = once
        .find("://")
        .and_then(|s| once[s + 3..].find('/').map(|p| s + 3 + p))
        .expect("a normalised uri has a path");
    assert!(
        !once[path_start..]
            .split('/')
            .any(|segment| segment == "." || segment == "..")
    );
    // Query and fragment are ignored: appending either leaves the result alone.
    if uri.len() + 2 <= MAX_HTU_LEN && !uri.contains(['?', '#']) {
        assert_eq!(normalize_htu(&format!("{uri}?q")).as_ref(), Ok(&once));
        assert_eq!(normalize_htu(&format!("{uri}#f")).as_ref(), Ok(&once));
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check(&text);
    // Most inputs would stop at the scheme: also try them behind a valid one.
    check(&format!("https://{text}"));
});
