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

/// Reads a stored value of edgegram's own kinds (an outbox, a job) as `T`; an error names
/// `backend` and `key`.
pub fn decode_as<T: serde::de::DeserializeOwned>(
    backend: &'static str,
    key: &crate::persistence::Key,
    raw: &str,
) -> crate::Result<T> {
    let decoded = decode(raw)
        .and_then(|stored| serde_json::from_value(stored.data).map_err(|e| e.to_string()));
    decoded.map_err(|message| crate::Error::Decode {
        backend,
        key: key.encode(""),
        message,
    })
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

/// Splits a stored value into a schema version and the data's JSON text, for stores that keep
/// them in columns of their own (D1): `(Some(v), data)` for an envelope exactly as [`encode`]
/// writes it whose data is valid JSON, `(None, raw)` for anything else (a corrupt value is
/// kept as it is). [`join_columns`] reverses it byte for byte.
pub fn split_columns(raw: &str) -> (Option<u32>, &str) {
    let envelope = || -> Option<(u32, &str)> {
        let rest = raw.strip_prefix("{\"v\":")?;
        let comma = rest.find(",\"data\":")?;
        let version = &rest[..comma];
        let v: u32 = version.parse().ok()?;
        if v.to_string() != version {
            return None;
        }
        let data = rest[comma + ",\"data\":".len()..].strip_suffix('}')?;
        serde_json::from_str::<serde::de::IgnoredAny>(data).ok()?;
        Some((v, data))
    };
    match envelope() {
        Some((v, data)) => (Some(v), data),
        None => (None, raw),
    }
}

/// The stored value of a version and data kept in columns (see [`split_columns`]).
pub fn join_columns(version: Option<u32>, data: String) -> String {
    match version {
        Some(v) => encode(v, &data),
        None => data,
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

    #[test]
    fn columns_split_an_envelope_and_join_back_byte_for_byte() {
        let data = json!({"count": 3, "s": "a\"b", "f": -0.0, "big": 1e300});
        let raw = encode(7, &data.to_string());
        let (version, text) = split_columns(&raw);
        assert_eq!(version, Some(7));
        assert_eq!(text, data.to_string());
        assert_eq!(join_columns(version, text.to_string()), raw);
    }

    #[test]
    fn anything_but_an_envelope_is_kept_whole_without_a_version() {
        for raw in [
            "{not json",
            "",
            "{\"data\":1,\"v\":1}",
            "{\"v\":01,\"data\":1}",
            "{\"v\":-1,\"data\":1}",
            "{\"v\":1,\"data\":nope}",
            "{\"v\":1,\"data\":1",
            "{\"v\":4294967296,\"data\":1}",
        ] {
            assert_eq!(split_columns(raw), (None, raw), "{raw:?}");
            assert_eq!(join_columns(None, raw.to_string()), raw);
        }
    }
}
