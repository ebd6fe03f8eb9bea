#![no_main]
//! Any string as a stored value: decoding never panics, and what decodes re-encodes to an
//! equal value.
use edgegram::persistence::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(stored) = codec::decode(&text) {
        let again = codec::decode(&codec::encode(stored.version, &stored.data.to_string()));
        assert_eq!(again.as_ref().ok(), Some(&stored));
    }
});
