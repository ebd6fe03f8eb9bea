//! The string key scheme of string-keyed stores.
//!
//! `{prefix}bot`, `{prefix}chat:{id}`, `{prefix}user:{id}`, `{prefix}conv:{name}:{key}`,
//! `{prefix}cbk:{keyboard id}`, `{prefix}cbq:{query id}`, `{prefix}cbi:{chat.<id> | user.<id>}`,
//! `{prefix}obx:{chat id}:{update id, 19 digits}`, `{prefix}job:{chat id}:{job id}`,
//! `{prefix}jobq:{next run ms, 15 digits}:{chat id}:{job id}`. The default prefix `eg1:` names the
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
        KeyKind::Job => "job:",
        KeyKind::JobDue => "jobq:",
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
        Key::Job { chat, id } => format!("{prefix}{tag}{chat}:{id}"),
        // Zero-padded, so that listing the index gives the jobs in the order they are due.
        Key::JobDue { at_ms, chat, id } => {
            format!("{prefix}{tag}{:015}:{chat}:{id}", (*at_ms).max(0))
        }
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
        "job" => {
            let (chat, id) = value.split_once(':')?;
            Key::Job {
                chat: parse_id(chat)?,
                id: job_id(id)?,
            }
        }
        "jobq" => {
            let (at, rest) = value.split_once(':')?;
            let (chat, id) = rest.split_once(':')?;
            let digits = at.len() == 15 && at.bytes().all(|b| b.is_ascii_digit());
            Key::JobDue {
                at_ms: digits.then(|| at.parse().ok()).flatten()?,
                chat: parse_id(chat)?,
                id: job_id(id)?,
            }
        }
        _ => return None,
    })
}

/// A job id as keys hold it: not empty, no `:` (the key's separator).
fn job_id(text: &str) -> Option<String> {
    (!text.is_empty() && !text.contains(':')).then(|| text.to_string())
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
            Key::Job {
                chat: 0,
                id: "00ff00ff00ff00ff".into(),
            },
            Key::JobDue {
                at_ms: 1_790_000_000_123,
                chat: -1001500000001,
                id: "a1".into(),
            },
        ]
    }

    #[test]
    fn the_job_index_lists_in_the_order_jobs_are_due() {
        let at = |at_ms: i64, chat: i64| {
            let id = "j".into();
            encode(&Key::JobDue { at_ms, chat, id }, DEFAULT_PREFIX)
        };
        // A later time sorts after an earlier one whatever their digits and chats.
        assert!(at(999, -5) < at(1000, -100));
        assert!(at(1_700_000_000_000, 5) < at(10_000_000_000_000, -1));
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
            "eg1:job:5:",
            "eg1:job:05:a",
            "eg1:jobq:1000:5:a",
            "eg1:jobq:000000000001000:5:a:b",
        ] {
            assert_eq!(parse(bad, DEFAULT_PREFIX), None, "{bad}");
        }
    }
}
