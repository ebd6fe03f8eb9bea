#![no_main]
//! Any string as a stored key: parsing never panics, and what parses encodes back to itself.
use edgegram::persistence::{Key, DEFAULT_PREFIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(key) = Key::parse(text, DEFAULT_PREFIX) {
        assert_eq!(key.encode(DEFAULT_PREFIX), text);
    }
});
