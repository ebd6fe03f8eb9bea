//! The string key scheme of string-keyed stores.
//!
//! `{prefix}bot`, `{prefix}chat:{id}`, `{prefix}user:{id}`, `{prefix}conv:{name}:{key}`,
//! `{prefix}cbk:{keyboard id}`, `{prefix}cbq:{query id}`, `{prefix}cbi:{chat.<id> | user.<id>}`,
//! `{prefix}obx:{chat id}:{update id, 19 digits}`. The default prefix `eg1:` names the
//! scheme's version, so that a future scheme can live beside this one during a migration.
//! In conversation names `%` and `:` are percent-escaped so that the name ends at the first
//! `:`; the conversation key and callback ids are written as they are.

use super::{Key, KeyKind};

/// The default key prefix (scheme version 1).
pub const DEFAULT_PREFIX: &str = "eg1:";

fn tag(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::BotData => "bot",
        KeyKind::ChatData => "chat:",
        KeyKind::UserData => "user:",
        KeyKind::Conversation => "conv:",
        KeyKind::CallbackKeyboard => "cbk:",
        KeyKind::CallbackQuery => "cbq:",
        KeyKind::KeyboardIndex => "cbi:",
        KeyKind::Outbox => "obx:",
    }
}

pub(super) fn kind_prefix(kind: KeyKind, prefix: &str) -> String {
    format!("{prefix}{}", tag(kind))
}

pub(super) fn encode(key: &Key, prefix: &str) -> String {
    let tag = tag(key.kind());
    match key {
        Key::BotData => format!("{prefix}{tag}"),
        Key::ChatData(id) | Key::UserData(id) => format!("{prefix}{tag}{id}"),
        Key::Conversation { name, key } => {
            let name = name.replace('%', "%25").replace(':', "%3A");
            format!("{prefix}{tag}{name}:{key}")
        }
        Key::CallbackKeyboard(id) | Key::CallbackQuery(id) | Key::KeyboardIndex(id) => {
            format!("{prefix}{tag}{id}")
        }
        // Zero-padded, so that listing a chat's outboxes gives them in update order.
        Key::Outbox { chat, update_id } => format!("{prefix}{tag}{chat}:{update_id:019}"),
    }
}

pub(super) fn parse(encoded: &str, prefix: &str) -> Option<Key> {
    let rest = encoded.strip_prefix(prefix)?;
    if rest == "bot" {
        return Some(Key::BotData);
    }
    let (tag, value) = rest.split_once(':')?;
    Some(match tag {
        "chat" => Key::ChatData(parse_id(value)?),
        "user" => Key::UserData(parse_id(value)?),
        "conv" => {
            let (name, key) = value.split_once(':')?;
            Key::Conversation {
                name: unescape(name)?,
                key: key.to_string(),
            }
        }
        "cbk" => Key::CallbackKeyboard(value.to_string()),
        "cbq" => Key::CallbackQuery(value.to_string()),
        "cbi" => Key::KeyboardIndex(value.to_string()),
        "obx" => {
            let (chat, update_id) = value.split_once(':')?;
            let digits = update_id.len() == 19 && update_id.bytes().all(|b| b.is_ascii_digit());
            Key::Outbox {
                chat: parse_id(chat)?,
                update_id: digits.then(|| update_id.parse().ok()).flatten()?,
            }
        }
        _ => return None,
    })
}

/// Parses an id written by `encode`: canonical decimal only, so that parse(encode(k)) == k and
/// no two strings name one key.
fn parse_id(text: &str) -> Option<i64> {
    let id: i64 = text.parse().ok()?;
    (id.to_string() == text).then_some(id)
}

fn unescape(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "25" => '%',
            "3A" => ':',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Key> {
        vec![
            Key::BotData,
            Key::ChatData(-1001500000001),
            Key::UserData(42),
            Key::Conversation {
                name: "pro:file%".into(),
                key: "[-100, 42]".into(),
            },
            Key::Conversation {
                name: String::new(),
                key: "[1]".into(),
            },
            Key::CallbackKeyboard("c0ffee".into()),
            Key::CallbackQuery("1234567890".into()),
            Key::Outbox {
                chat: -1001500000001,
                update_id: 815,
            },
        ]
    }

    #[test]
    fn keys_round_trip_and_sit_under_their_kind_prefix() {
        for key in samples() {
            let encoded = encode(&key, DEFAULT_PREFIX);
            assert_eq!(
                parse(&encoded, DEFAULT_PREFIX),
                Some(key.clone()),
                "{encoded}"
            );
            assert!(encoded.starts_with(&kind_prefix(key.kind(), DEFAULT_PREFIX)));
        }
        assert_eq!(encode(&Key::ChatData(-7), "eg1:"), "eg1:chat:-7");
    }

    #[test]
    fn foreign_and_non_canonical_strings_are_rejected() {
        for bad in [
            "eg1:chat:007",
            "eg1:chat:+7",
            "eg1:chat:x",
            "eg1:user:",
            "eg1:conv:noseparator",
            "eg1:conv:bad%zz:[1]",
            "eg1:what:1",
            "eg2:bot",
            "eg1:botx",
            "eg1:obx:5:815",
            "eg1:obx:5:-000000000000000815",
        ] {
            assert_eq!(parse(bad, DEFAULT_PREFIX), None, "{bad}");
        }
    }
}
