//! The stored-value envelope: `{"v":<schema version>,"data":<the data as JSON>}`.
//!
//! Every stored value carries the version of the schema it was written with, so that a later
//! release of a bot can migrate old values on load instead of misreading them. Values are JSON
//! (not a binary format) so that they stay readable in the Cloudflare dashboard and export to
//! python-telegram-bot's DictPersistence shapes without a schema.

use serde::Deserialize;
use serde_json::Value;

/// A decoded stored value.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The schema version it was written with.
    pub version: u32,
    /// The data.
    pub data: Value,
}

/// Wraps already-serialized JSON `data` in the envelope. `data` must be valid JSON (it is the
/// output of `serde_json`).
pub fn encode(version: u32, data: &str) -> String {
    format!("{{\"v\":{version},\"data\":{data}}}")
}

/// Unwraps a stored value. The error says what is wrong, without the value itself (it may hold
/// users' personal data).
pub fn decode(raw: &str) -> Result<Stored, String> {
    #[derive(Deserialize)]
    struct Envelope {
        v: u32,
        data: Value,
    }
    match serde_json::from_str::<Envelope>(raw) {
        Ok(Envelope { v, data }) => Ok(Stored { version: v, data }),
        Err(err) if err.is_data() => Err(format!(
            "not an edgegram value (expected {{\"v\": <version>, \"data\": ...}}): {err}"
        )),
        Err(err) => Err(format!("not valid JSON: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let data = json!({"count": 3, "nested": {"a": [1, "x", null]}});
        let raw = encode(4, &data.to_string());
        assert_eq!(decode(&raw), Ok(Stored { version: 4, data }));
    }

    #[test]
    fn corrupt_values_are_errors() {
        for bad in [
            "",
            "{",
            "{\"count\": 3}",
            "[1]",
            "{\"v\": -1, \"data\": 1}",
            "\u{0}",
        ] {
            let err = decode(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad:?}");
        }
        assert!(decode("{").unwrap_err().starts_with("not valid JSON"));
        assert!(decode("{\"count\":3}")
            .unwrap_err()
            .starts_with("not an edgegram value"));
    }
}
