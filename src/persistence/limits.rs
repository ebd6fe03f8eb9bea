//! Entry sizes as the storage counts them, so that a write over a limit is refused before any
//! part of it is issued.
//!
//! Durable Objects check an entry's size on its V8-serialised form: a string whose characters
//! are all at most U+00FF is stored one byte per character, any other string as UTF-16, two
//! bytes per code unit — about twice its UTF-8 size for text in most scripts. Measured under
//! workerd: a 1.2 MB value ending in "中" was refused with `SQLITE_TOOBIG` although its UTF-8
//! size was under the 2,000,000-byte guard (`docs/platform.md`).

/// Key + value limit of SQLite-backed Durable Object storage, in bytes.
pub const DURABLE_OBJECT_ENTRY_BYTES: usize = 2_000_000;

/// The bytes V8 serialises a string's characters into: one per character when all are Latin-1,
/// two per UTF-16 code unit otherwise (the few header bytes are left to the guard's margin).
pub fn v8_string_bytes(text: &str) -> usize {
    if text.chars().all(|c| u32::from(c) <= 0xFF) {
        text.chars().count()
    } else {
        text.encode_utf16().count() * 2
    }
}

/// The size a Durable Object counts for an entry: key and value as V8 serialises them.
pub fn durable_object_entry_bytes(key: &str, value: &str) -> usize {
    v8_string_bytes(key) + v8_string_bytes(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_one_byte_a_character_anything_else_two_per_utf16_unit() {
        assert_eq!(v8_string_bytes("abc"), 3);
        assert_eq!(
            v8_string_bytes("café"),
            4,
            "é is Latin-1: one byte, though two in UTF-8"
        );
        assert_eq!(v8_string_bytes("中"), 2);
        assert_eq!(
            v8_string_bytes("a中"),
            4,
            "one wide character makes the whole string wide"
        );
        assert_eq!(v8_string_bytes("😀"), 4, "a surrogate pair");
    }

    #[test]
    fn a_value_with_one_wide_character_counts_twice() {
        let value = format!("{}中", "x".repeat(1_100_000));
        assert!(
            value.len() < DURABLE_OBJECT_ENTRY_BYTES,
            "under the guard in UTF-8"
        );
        assert!(durable_object_entry_bytes("k", &value) > DURABLE_OBJECT_ENTRY_BYTES);
    }
}
