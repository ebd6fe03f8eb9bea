//! Property tests: round trips hold and nothing panics on arbitrary input (a panic on wasm
//! aborts the worker without an answer).

use edgegram::bot::redact;
use edgegram::persistence::{codec, dict, Key, DEFAULT_PREFIX};
use edgegram::testing::{command_entities, Updates};
use edgegram::types::{Message, MessageEntity};
use edgegram::webhook::{parse_body, Incoming, Rejection};
use proptest::prelude::*;
use serde_json::{json, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".*".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(".*", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        Just(Key::BotData),
        any::<i64>().prop_map(Key::ChatData),
        any::<i64>().prop_map(Key::UserData),
        (".*", ".*").prop_map(|(name, key)| Key::Conversation { name, key }),
        ".*".prop_map(Key::CallbackKeyboard),
        ".*".prop_map(Key::CallbackQuery),
    ]
}

/// A bot token of Telegram's shape: the bot's id, `:`, 35 characters of `[A-Za-z0-9_-]`.
fn token() -> impl Strategy<Value = String> {
    "[1-9][0-9]{5,10}:[A-Za-z0-9_-]{35}"
}

/// `text` with its percent-escapes decoded, again and again until none is left: what a
/// reader of a log line could recover from it.
fn percent_decoded(text: &str) -> String {
    let mut text = text.to_string();
    loop {
        let bytes = text.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let escape = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
            match (bytes[i], escape) {
                (b'%', Some(byte)) => {
                    decoded.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    decoded.push(byte);
                    i += 1;
                }
            }
        }
        let decoded = String::from_utf8_lossy(&decoded).into_owned();
        if decoded == text {
            return text;
        }
        text = decoded;
    }
}

/// `token` as it may appear in a URL: each character as is or percent-encoded (upper- or
/// lower-case hex), chosen by `how`; `twice` encodes the escapes' `%` once more (`%253A`).
fn encoded(token: &str, how: &[u8], twice: bool) -> String {
    let percent = if twice { "%25" } else { "%" };
    token
        .bytes()
        .zip(how.iter().cycle())
        .map(|(byte, how)| match how % 3 {
            0 => (byte as char).to_string(),
            1 => format!("{percent}{byte:02X}"),
            _ => format!("{percent}{byte:02x}"),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_form_of_the_bot_token_survives_redaction(
        token in token(),
        form in 0usize..7,
        how in prop::collection::vec(any::<u8>(), 1..50),
        before in "\\PC{0,30}",
        after in "\\PC{0,30}",
    ) {
        let secret = token.split_once(':').unwrap().1.to_string();
        let in_url = match form {
            0 => token.clone(),
            1 => token.replace(':', "%3A"),
            2 => token.replace(':', "%3a"),
            3 => encoded(&token, &[1], false),
            4 => encoded(&token, &[2], false),
            5 => encoded(&token, &how, false),
            _ => encoded(&token, &how, true),
        };
        let url = format!("https://api.telegram.org/bot{in_url}/sendMessage");
        let text = format!("{before} error sending request for url ({url}): {after}");
        let redacted = redact(&text, &token);
        let readable = percent_decoded(&redacted);
        prop_assert!(!readable.contains(&secret), "{} -> {}", text, redacted);
        prop_assert!(redacted.contains("/bot<token>/sendMessage"), "{}", redacted);
        // What is not the token is left as it was.
        prop_assert!(redacted.starts_with(&before) && redacted.ends_with(&after));
    }

    #[test]
    fn keys_round_trip(k in key(), prefix in "[a-z0-9:]{0,8}") {
        prop_assert_eq!(Key::parse(&k.encode(&prefix), &prefix), Some(k.clone()));
        prop_assert_eq!(Key::parse(&k.encode(DEFAULT_PREFIX), DEFAULT_PREFIX), Some(k));
    }

    #[test]
    fn key_parsing_never_panics(text in ".*") {
        let _ = Key::parse(&text, DEFAULT_PREFIX);
        let _ = Key::parse(&text, "");
    }

    #[test]
    fn the_codec_round_trips(data in json_value(), version in any::<u32>()) {
        let stored = codec::decode(&codec::encode(version, &data.to_string())).unwrap();
        prop_assert_eq!(stored.version, version);
        prop_assert_eq!(stored.data, data);
    }

    #[test]
    fn decoding_never_panics(raw in ".*", bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = codec::decode(&raw);
        let _ = codec::decode(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn webhook_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_body(&bytes);
    }

    #[test]
    fn any_object_with_an_integer_update_id_is_accepted(id in any::<i64>(), rest in json_value()) {
        let mut body = match rest { Value::Object(map) => Value::Object(map), _ => json!({}) };
        body["update_id"] = json!(id);
        match parse_body(body.to_string().as_bytes()) {
            Ok(Incoming::Update(update)) => prop_assert_eq!(update.update_id, id),
            Ok(Incoming::Untyped { update_id, .. }) => prop_assert_eq!(update_id, id),
            Err(Rejection::TooLarge { .. }) => {}
            Err(other) => prop_assert!(false, "rejected: {:?}", other),
        }
    }

    #[test]
    fn any_json_value_without_an_integer_update_id_is_a_400(value in json_value()) {
        prop_assume!(!value.get("update_id").is_some_and(Value::is_i64));
        let rejected = matches!(parse_body(value.to_string().as_bytes()), Err(Rejection::BadRequest(_)));
        prop_assert!(rejected);
    }

    #[test]
    fn commands_are_found_without_panicking(
        text in ".*", offset in 0usize..40, length in 0usize..40,
    ) {
        let message = Message {
            text: Some(text.clone()),
            entities: vec![MessageEntity { kind: "bot_command".into(), offset, length }],
            ..Message::default()
        };
        if let Some((name, _)) = message.command() {
            prop_assert!(text.starts_with('/'));
            prop_assert!(text.contains(name));
        }
    }

    #[test]
    fn the_kits_commands_read_back_with_their_name_username_and_any_tail(
        name in "[A-Za-z0-9_]{1,32}",
        username in prop::option::of("[A-Za-z0-9_]{1,32}"),
        tail in "\\PC*",
    ) {
        let addressed = username.as_ref().map(|u| format!("@{u}")).unwrap_or_default();
        let separator = if tail.is_empty() { "" } else { " " };
        let text = format!("/{name}{addressed}{separator}{tail}");
        let message = Updates::new().command(-1001, 7, &text).message.unwrap();
        prop_assert_eq!(message.command(), Some((name.as_str(), username.as_deref())));
    }

    #[test]
    fn command_entities_mark_commands_inside_their_text(
        text in prop_oneof!["\\PC*", "[a-z/@_ é😀\n]{0,40}"],
    ) {
        let utf16: Vec<u16> = text.encode_utf16().collect();
        for entity in command_entities(&text) {
            let offset = entity["offset"].as_u64().unwrap() as usize;
            let end = offset + entity["length"].as_u64().unwrap() as usize;
            prop_assert!(end <= utf16.len(), "{} in {:?}", entity, text);
            let command = String::from_utf16(&utf16[offset..end]).unwrap();
            let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '@';
            prop_assert!(command.len() >= 2 && command.starts_with('/'), "{:?}", command);
            prop_assert!(command[1..].chars().all(word), "{:?}", command);
        }
    }

    #[test]
    fn documents_never_panic_and_valid_ones_round_trip(
        value in json_value(),
        chats in prop::collection::btree_map(any::<i64>(), json_value(), 0..5),
        states in prop::collection::btree_map((any::<i64>(), any::<i64>()), json_value(), 0..5),
    ) {
        let _ = dict::to_entries(&value);
        let states: serde_json::Map<_, _> = states
            .iter()
            .map(|((a, b), s)| (format!("[{a}, {b}]"), json!({"s": s})))
            .collect();
        // An empty conversation holds no entry, so it cannot be exported.
        let conversations = if states.is_empty() { json!({}) } else { json!({"c": states}) };
        let doc = json!({
            "bot_data": {"v": value.clone()},
            "chat_data": chats.iter().map(|(id, v)| (id.to_string(), json!({"v": v}))).collect::<serde_json::Map<_, _>>(),
            "user_data": {},
            "conversations": conversations,
            "callback_data": null,
        });

        let entries = dict::to_entries(&doc).unwrap();
        prop_assert_eq!(dict::from_entries(entries), doc);
    }
}
