//! python-telegram-bot's DictPersistence JSON shapes, in and out.
//!
//! One document holds everything:
//! `{"bot_data": {..}, "chat_data": {"<chat_id>": {..}}, "user_data": {"<user_id>": {..}},
//! "conversations": {"<name>": {"[<chat_id>, <user_id>]": <state>}},
//! "callback_data": [[[keyboard_id, access_time, {button_id: data}], ..], {query_id: keyboard_id}]}`
//! (`callback_data` may be `null`). A PTB bot's `DictPersistence(...).bot_data_json` etc. import
//! as they are; [`to_entries`] validates a whole document before anything is written.

use serde_json::{json, Map, Value};

use super::{codec, Change, Key, KeyKind, Persistence};
use crate::error::{Error, Result};

/// Writes a conversation key the way PTB's DictPersistence does (`json.dumps(tuple)`):
/// `[123, 456]`, elements separated by `", "`.
pub fn conversation_key(parts: &[Value]) -> String {
    let inner: Vec<String> = parts.iter().map(Value::to_string).collect();
    format!("[{}]", inner.join(", "))
}

/// One stored conversation entry: the state and, for a conversation with a
/// `conversation_timeout`, when it expires.
///
/// Without a deadline the stored value is the state itself (`"CHOOSING"`), exactly as PTB's
/// DictPersistence writes it. With one it is `{"state": <state>, "expires_at_ms": <ms since
/// the Unix epoch>}`: the edge has no job queue to end a conversation on time, so the deadline
/// travels with the state and the next update (or a Durable Object alarm) acts on it. Export
/// ([`from_entries`]) writes only the state either way, so a PTB bot can import it; an import
/// stores what the document holds (a plain state has no deadline until the conversation next
/// moves).
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationEntry {
    /// The conversation's state as JSON (an enum state is its variant name).
    pub state: Value,
    /// When the conversation times out, in milliseconds since the Unix epoch.
    pub expires_at_ms: Option<i64>,
}

/// The field names of a conversation entry with a deadline.
const STATE_FIELD: &str = "state";
const DEADLINE_FIELD: &str = "expires_at_ms";

impl ConversationEntry {
    /// Reads a stored value. Only an object with exactly the fields `state` and an integer
    /// `expires_at_ms` is taken as state-with-deadline; any other value is a plain state.
    pub fn from_stored(stored: &Value) -> Self {
        if let Some((state, deadline)) = Self::split(stored) {
            return Self {
                state: state.clone(),
                expires_at_ms: Some(deadline),
            };
        }
        Self {
            state: stored.clone(),
            expires_at_ms: None,
        }
    }

    /// The value to store: the state alone, or state and deadline (see the type's docs).
    pub fn to_stored(&self) -> Value {
        match self.expires_at_ms {
            None => self.state.clone(),
            Some(at) => json!({STATE_FIELD: self.state, DEADLINE_FIELD: at}),
        }
    }

    /// Whether `state` would be misread as a state-with-deadline if stored alone; such states
    /// are refused by conversations.
    pub fn looks_wrapped(state: &Value) -> bool {
        Self::split(state).is_some()
    }

    fn split(stored: &Value) -> Option<(&Value, i64)> {
        let object = stored.as_object()?;
        if object.len() != 2 {
            return None;
        }
        let deadline = object.get(DEADLINE_FIELD)?.as_i64()?;
        Some((object.get(STATE_FIELD)?, deadline))
    }
}

/// Normalises a conversation key read from a document: a JSON array of integers or strings.
fn normalize_conversation_key(text: &str) -> Option<String> {
    let parts: Vec<Value> = serde_json::from_str(text).ok()?;
    let valid = parts.iter().all(|p| p.is_i64() || p.is_string()) && !parts.is_empty();
    valid.then(|| conversation_key(&parts))
}

fn parse_id(text: &str) -> Option<i64> {
    let id: i64 = text.parse().ok()?;
    (id.to_string() == text).then_some(id)
}

fn invalid(path: &str, what: &str) -> Error {
    Error::Invalid(format!("{path}: {what}"))
}

/// Validates a whole DictPersistence-shaped document and lists its entries, values as stored
/// by edgegram. The first problem found is an [`Error::Invalid`] naming its path
/// (`chat_data.abc: ...`). Ended conversations (`null`) yield no entry; a conversation state is
/// stored as it is (see [`ConversationEntry`]).
pub fn to_entries(doc: &Value) -> Result<Vec<(Key, Value)>> {
    let doc = doc
        .as_object()
        .ok_or_else(|| invalid("$", "expected a JSON object"))?;
    let mut entries = Vec::new();
    for (section, value) in doc {
        match section.as_str() {
            "bot_data" => match value {
                Value::Null => {}
                Value::Object(_) => entries.push((Key::BotData, value.clone())),
                _ => return Err(invalid("bot_data", "expected an object")),
            },
            "chat_data" | "user_data" => {
                for (id, data) in object_or_null(value, section)? {
                    let path = format!("{section}.{id}");
                    let id = parse_id(id).ok_or_else(|| invalid(&path, "key is not an integer id"))?;
                    if !data.is_object() {
                        return Err(invalid(&path, "expected an object"));
                    }
                    let key = if section == "chat_data" {
                        Key::ChatData(id)
                    } else {
                        Key::UserData(id)
                    };
                    entries.push((key, data.clone()));
                }
            }
            "conversations" => {
                for (name, states) in object_or_null(value, section)? {
                    let path = format!("conversations.{name}");
                    for (key, state) in object_or_null(states, &path)? {
                        let path = format!("{path}.{key}");
                        let key = normalize_conversation_key(key).ok_or_else(|| {
                            invalid(&path, "key is not a JSON array of integers or strings")
                        })?;
                        if state.is_null() {
                            continue;
                        }
                        let name = name.clone();
                        entries.push((Key::Conversation { name, key }, state.clone()));
                    }
                }
            }
            "callback_data" => callback_entries(value, &mut entries)?,
            other => {
                return Err(invalid(
                    other,
                    "unknown section (expected bot_data, chat_data, user_data, conversations, callback_data)",
                ))
            }
        }
    }
    // Two spellings of one conversation key ("[1,2]" and "[1, 2]"), or a keyboard listed
    // twice, would name one entry twice: which value wins would depend on the backend.
    let mut seen = std::collections::HashSet::new();
    for (key, _) in &entries {
        if !seen.insert(key) {
            let path = match key {
                Key::Conversation { name, key } => format!("conversations.{name}.{key}"),
                Key::CallbackKeyboard(id) => format!("callback_data.0.{id}"),
                other => other.to_string(),
            };
            return Err(invalid(&path, "appears twice in the document"));
        }
    }
    Ok(entries)
}

fn object_or_null<'a>(value: &'a Value, path: &str) -> Result<Vec<(&'a String, &'a Value)>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Object(map) => Ok(map.iter().collect()),
        _ => Err(invalid(path, "expected an object")),
    }
}

fn callback_entries(value: &Value, entries: &mut Vec<(Key, Value)>) -> Result<()> {
    let Some(parts) = value.as_array() else {
        return match value {
            Value::Null => Ok(()),
            _ => Err(invalid(
                "callback_data",
                "expected [keyboards, queries] or null",
            )),
        };
    };
    let [keyboards, queries] = parts.as_slice() else {
        return Err(invalid("callback_data", "expected [keyboards, queries]"));
    };
    let keyboards = keyboards
        .as_array()
        .ok_or_else(|| invalid("callback_data.0", "expected a list of keyboards"))?;
    for (i, keyboard) in keyboards.iter().enumerate() {
        let path = format!("callback_data.0.{i}");
        let (id, time, buttons) = match keyboard.as_array().map(Vec::as_slice) {
            Some([Value::String(id), time, Value::Object(buttons)]) if time.is_number() => {
                (id, time, buttons)
            }
            _ => {
                return Err(invalid(
                    &path,
                    "expected [keyboard_id, access_time, {button_id: data}]",
                ))
            }
        };
        let stored = json!({"access_time": time, "buttons": buttons});
        entries.push((Key::CallbackKeyboard(id.clone()), stored));
    }
    for (query, keyboard) in object_or_null(queries, "callback_data.1")? {
        if !keyboard.is_string() {
            let path = format!("callback_data.1.{query}");
            return Err(invalid(&path, "expected a keyboard id"));
        }
        entries.push((Key::CallbackQuery(query.clone()), keyboard.clone()));
    }
    Ok(())
}

/// Builds a DictPersistence-shaped document from stored entries (values as stored by
/// edgegram). Entries whose value does not have the stored shape are skipped.
pub fn from_entries(entries: impl IntoIterator<Item = (Key, Value)>) -> Value {
    let mut bot_data = Value::Object(Map::new());
    let mut chat_data = Map::new();
    let mut user_data = Map::new();
    let mut conversations: Map<String, Value> = Map::new();
    let mut keyboards: Vec<Value> = Vec::new();
    let mut queries = Map::new();
    for (key, value) in entries {
        match key {
            Key::BotData => bot_data = value,
            Key::ChatData(id) => {
                chat_data.insert(id.to_string(), value);
            }
            Key::UserData(id) => {
                user_data.insert(id.to_string(), value);
            }
            Key::Conversation { name, key } => {
                let states = conversations
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(states) = states {
                    // Only the state: a deadline is edgegram's own bookkeeping.
                    states.insert(key, ConversationEntry::from_stored(&value).state);
                }
            }
            Key::CallbackKeyboard(id) => {
                keyboards.push(json!([id, value["access_time"], value["buttons"]]));
            }
            Key::CallbackQuery(id) => {
                queries.insert(id, value);
            }
            // edgegram's own bookkeeping: not part of PTB's shapes (an import lets the sweep
            // bound the keyboards no index lists).
            Key::KeyboardIndex(_) => {}
        }
    }
    // PTB keeps keyboards in access order (oldest first).
    keyboards.sort_by(|a, b| {
        let time = |v: &Value| v[1].as_f64().unwrap_or(0.0);
        time(a).total_cmp(&time(b))
    });
    let callback_data = if keyboards.is_empty() && queries.is_empty() {
        Value::Null
    } else {
        json!([keyboards, queries])
    };
    json!({
        "bot_data": bot_data,
        "chat_data": chat_data,
        "user_data": user_data,
        "conversations": conversations,
        "callback_data": callback_data,
    })
}

/// Exports everything `persistence` holds as one DictPersistence-shaped document. A stored value
/// that cannot be decoded fails the export with an error naming its key.
pub async fn export(persistence: &dyn Persistence) -> Result<Value> {
    let mut keys = Vec::new();
    for kind in KeyKind::ALL {
        keys.extend(persistence.list(kind).await?);
    }
    let values = persistence.read(&keys).await?;
    let mut entries = Vec::with_capacity(keys.len());
    for (key, raw) in keys.into_iter().zip(values) {
        // Listed but gone (deleted in between, or an eventually consistent list): skip.
        let Some(raw) = raw else { continue };
        let stored = codec::decode(&raw).map_err(|message| Error::Decode {
            backend: persistence.backend(),
            key: key.to_string(),
            message,
        })?;
        entries.push((key, stored.data));
    }
    Ok(from_entries(entries))
}

/// Replaces everything `persistence` holds with `doc` (a DictPersistence-shaped document). The
/// whole document is validated first; nothing is written when it is invalid. Entries are
/// stored with schema version `version`.
pub async fn import(persistence: &dyn Persistence, doc: &Value, version: u32) -> Result<usize> {
    let entries = to_entries(doc)?;
    let mut changes = Vec::with_capacity(entries.len());
    let mut kept = std::collections::HashSet::new();
    for (key, value) in entries {
        kept.insert(key.clone());
        changes.push(Change::Put(key, codec::encode(version, &value.to_string())));
    }
    for kind in KeyKind::ALL {
        for key in persistence.list(kind).await? {
            if !kept.contains(&key) {
                changes.push(Change::Delete(key));
            }
        }
    }
    persistence.write(&changes).await?;
    persistence.flush().await?;
    Ok(kept.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "bot_data": {"count": 3},
            "chat_data": {"-1001500000001": {"count": 2}, "5": {}},
            "user_data": {"456": {"age": "12"}},
            "conversations": {"profile": {"[-1001500000001, 456]": "CHOOSING", "[1, 2]": null}},
            "callback_data": [[["kb1", 1700000000.5, {"b1": [1, []]}]], {"q1": "kb1"}],
        })
    }

    #[test]
    fn a_document_round_trips() {
        let entries = to_entries(&sample()).unwrap();
        assert!(entries.contains(&(
            Key::Conversation {
                name: "profile".into(),
                key: "[-1001500000001, 456]".into()
            },
            json!("CHOOSING")
        )));
        let mut expected = sample();
        // The ended conversation is not stored, so it is not exported.
        expected["conversations"]["profile"]
            .as_object_mut()
            .unwrap()
            .remove("[1, 2]");
        assert_eq!(from_entries(entries), expected);
    }

    #[test]
    fn a_conversation_deadline_is_stored_but_not_exported() {
        let entry = ConversationEntry {
            state: json!("CHOOSING"),
            expires_at_ms: Some(1_700_000_000_000),
        };
        let stored = entry.to_stored();
        assert_eq!(
            stored,
            json!({"state": "CHOOSING", "expires_at_ms": 1_700_000_000_000_i64})
        );
        assert_eq!(ConversationEntry::from_stored(&stored), entry);
        let key = Key::Conversation {
            name: "profile".into(),
            key: "[1, 2]".into(),
        };
        let doc = from_entries([(key.clone(), stored)]);
        assert_eq!(doc["conversations"]["profile"]["[1, 2]"], "CHOOSING");
        // A plain state, and objects that only resemble the wrapper, are states as they are.
        for plain in [
            json!(3),
            json!({"state": "A"}),
            json!({"state": "A", "expires_at_ms": "soon"}),
            json!({"state": "A", "expires_at_ms": 1, "x": 2}),
        ] {
            let entry = ConversationEntry::from_stored(&plain);
            assert_eq!((entry.state, entry.expires_at_ms), (plain.clone(), None));
            assert_eq!(
                from_entries([(key.clone(), plain.clone())])["conversations"]["profile"]["[1, 2]"],
                plain
            );
        }
    }

    #[test]
    fn keys_are_normalised_to_ptb_separators() {
        let doc = json!({"conversations": {"c": {"[1,2]": 1, "[\"inline\",3]": 2}}});
        let keys: Vec<Key> = to_entries(&doc).unwrap().into_iter().map(|e| e.0).collect();
        assert!(keys.contains(&Key::Conversation {
            name: "c".into(),
            key: "[1, 2]".into()
        }));
        assert!(keys.contains(&Key::Conversation {
            name: "c".into(),
            key: "[\"inline\", 3]".into()
        }));
    }

    #[test]
    fn bad_documents_name_the_first_bad_path() {
        let cases = [
            (json!([]), "$"),
            (json!({"bot_data": 1}), "bot_data"),
            (json!({"chat_data": {"x1": {}}}), "chat_data.x1"),
            (json!({"user_data": {"1": 5}}), "user_data.1"),
            (
                json!({"conversations": {"p": {"(1, 2)": 1}}}),
                "conversations.p.(1, 2)",
            ),
            (
                json!({"conversations": {"p": {"[]": 1}}}),
                "conversations.p.[]",
            ),
            (
                json!({"callback_data": [[["a", "t", {}]], {}]}),
                "callback_data.0.0",
            ),
            (
                json!({"callback_data": [[], {"q": 1}]}),
                "callback_data.1.q",
            ),
            (json!({"callback_data": [[]]}), "callback_data"),
            (json!({"extra": {}}), "extra"),
            (
                json!({"conversations": {"p": {"[1,2]": 1, "[1, 2]": 2}}}),
                "conversations.p.[1, 2]",
            ),
            (
                json!({"callback_data": [[["k", 1, {}], ["k", 2, {}]], {}]}),
                "callback_data.0.k",
            ),
        ];
        for (doc, path) in cases {
            match to_entries(&doc) {
                Err(Error::Invalid(message)) => {
                    assert!(message.starts_with(&format!("{path}: ")), "{message}")
                }
                other => panic!("{doc}: {other:?}"),
            }
        }
    }
}
