//! python-telegram-bot's DictPersistence JSON shapes, in and out.
//!
//! One document holds everything:
//! `{"bot_data": {..}, "chat_data": {"<chat_id>": {..}}, "user_data": {"<user_id>": {..}},
//! "conversations": {"<name>": {"[<chat_id>, <user_id>]": <state>}},
//! "callback_data": [[[keyboard_id, access_time, {button_id: data}], ..], {query_id: keyboard_id}]}`
//! (`callback_data` may be `null`). A PTB bot's `DictPersistence(...).bot_data_json` etc. import
//! as they are; [`to_entries`] validates a whole document before anything is written.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
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
/// the Unix epoch>}`, and for a conversation with TIMEOUT handlers also `"update": <the update
/// that last moved it>`, which they get at the deadline (PTB's timeout job hands them the last
/// update): the deadline travels with the state, and a Durable Object alarm (or the next
/// update) acts on it. Export
/// ([`from_entries`]) writes only the state either way, so a PTB bot can import it; an import
/// stores what the document holds (a plain state has no deadline until the conversation next
/// moves).
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationEntry {
    /// The conversation's state as JSON (an enum state is its variant name).
    pub state: Value,
    /// When the conversation times out, in milliseconds since the Unix epoch.
    pub expires_at_ms: Option<i64>,
    /// The update that last moved the conversation, as Telegram sent it: kept with a deadline
    /// when the conversation has TIMEOUT handlers, which run with it at the deadline.
    pub last_update: Option<Value>,
}

/// The field names of a conversation entry with a deadline.
const STATE_FIELD: &str = "state";
const DEADLINE_FIELD: &str = "expires_at_ms";
const UPDATE_FIELD: &str = "update";

impl ConversationEntry {
    /// Reads a stored value. Only an object with exactly the fields `state` and an integer
    /// `expires_at_ms`, and maybe an object `update`, is taken as state-with-deadline; any
    /// other value is a plain state.
    pub fn from_stored(stored: &Value) -> Self {
        if let Some((state, deadline, update)) = Self::split(stored) {
            return Self {
                state: state.clone(),
                expires_at_ms: Some(deadline),
                last_update: update.cloned(),
            };
        }
        Self {
            state: stored.clone(),
            expires_at_ms: None,
            last_update: None,
        }
    }

    /// The value to store: the state alone, or state and deadline (see the type's docs).
    pub fn to_stored(&self) -> Value {
        match self.expires_at_ms {
            None => self.state.clone(),
            Some(at) => {
                let mut stored = json!({STATE_FIELD: self.state, DEADLINE_FIELD: at});
                if let Some(update) = &self.last_update {
                    stored[UPDATE_FIELD] = update.clone();
                }
                stored
            }
        }
    }

    /// Whether `state` would be misread as a state-with-deadline if stored alone; such states
    /// are refused by conversations.
    pub fn looks_wrapped(state: &Value) -> bool {
        Self::split(state).is_some()
    }

    fn split(stored: &Value) -> Option<(&Value, i64, Option<&Value>)> {
        let object = stored.as_object()?;
        let update = match object.get(UPDATE_FIELD) {
            Some(update) if update.is_object() && object.len() == 3 => Some(update),
            None if object.len() == 2 => None,
            _ => return None,
        };
        let deadline = object.get(DEADLINE_FIELD)?.as_i64()?;
        Some((object.get(STATE_FIELD)?, deadline, update))
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

/// The most bytes of a text taken from a document that an error shows.
const SHOWN_BYTES: usize = 32;

/// `text` for an error message: quoted, and when long cut short with its length, so that an
/// error never echoes a 1.5 MB key.
pub fn shown(text: &str) -> String {
    if text.len() <= 2 * SHOWN_BYTES {
        return format!("{text:?}");
    }
    let mut cut = SHOWN_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{:?}… ({} bytes)", &text[..cut], text.len())
}

/// A JSON value for an error message: its JSON text, cut short like [`shown`] when long.
pub fn shown_json(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= 2 * SHOWN_BYTES {
        return text;
    }
    let mut cut = SHOWN_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes)", &text[..cut], text.len())
}

/// A member name of a document as it appears in an error's path: as it is, or cut short
/// ([`shown`]) when long.
pub fn segment(name: &str) -> String {
    if name.len() <= 2 * SHOWN_BYTES {
        name.to_string()
    } else {
        shown(name)
    }
}

/// The path of a stored entry in a DictPersistence document, as errors name it:
/// `chat_data.5`, `conversations.profile.[1, 2]`, `callback_data.0.<keyboard id>`.
pub fn entry_path(key: &Key) -> String {
    match key {
        Key::BotData => "bot_data".into(),
        Key::ChatData(id) => format!("chat_data.{id}"),
        Key::UserData(id) => format!("user_data.{id}"),
        Key::Conversation { name, key } => {
            format!("conversations.{}.{}", segment(name), segment(key))
        }
        Key::CallbackKeyboard(id) => format!("callback_data.0.{}", segment(id)),
        Key::CallbackQuery(id) => format!("callback_data.1.{}", segment(id)),
        Key::KeyboardIndex(id) => format!("(keyboard index {})", segment(id)),
        Key::Outbox { chat, update_id } => format!("(outbox of update {update_id}, chat {chat})"),
        Key::Job { chat, id } => format!("(job {}, chat {chat})", segment(id)),
        Key::JobDue { at_ms, chat, id } => {
            format!("(job index {} at {at_ms}, chat {chat})", segment(id))
        }
    }
}

/// The most bytes of a callback query id an import takes (Telegram's are far shorter).
pub const MAX_QUERY_ID_BYTES: usize = 128;

/// How an import treats what is stored already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// The document replaces everything stored: entries it does not hold are deleted (the
    /// contract's `POST /admin/import`).
    #[default]
    Replace,
    /// The document's entries are written over the stored ones; nothing else is deleted (an
    /// ended conversation, `null`, is left out as in a replace). For a document too large for
    /// one import: a replace with its first part, then a merge with each other part.
    Merge,
}

/// How to import a document: [`ImportMode`], and bounds on what it may hold (none by
/// default; the edge's `/admin/import` sets them to fit a Worker's 128 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// Replace or merge.
    pub mode: ImportMode,
    /// A document with more entries (chat_data, user_data, conversation states, keyboards and
    /// query mappings count one each, bot_data one) is refused with
    /// [`Error::TooManyEntries`] as soon as the walk passes the limit: every entry is held
    /// encoded until the import's one write.
    pub max_entries: usize,
    /// An entry whose value would take more memory than this, in bytes, as a JSON tree
    /// (estimated from its text before it is parsed, see [`tree_bytes`]) is refused with an
    /// [`Error::Invalid`] naming it: the import parses one entry at a time, but every update
    /// that reads the entry decodes it whole too. A megabyte of tiny objects (`{"a":0}`) takes
    /// about 60 MB.
    pub max_entry_memory: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            mode: ImportMode::Replace,
            max_entries: usize::MAX,
            max_entry_memory: usize::MAX,
        }
    }
}

/// Validates a whole DictPersistence-shaped document and lists its entries, values as stored
/// by edgegram. The first problem found is an [`Error::Invalid`] naming its path
/// (`chat_data.abc: ...`). Ended conversations (`null`) yield no entry; a conversation state is
/// stored as it is (see [`ConversationEntry`]). See [`for_each_entry`] for a document as text,
/// without holding it as one JSON tree.
pub fn to_entries(doc: &Value) -> Result<Vec<(Key, Value)>> {
    let mut entries = Vec::new();
    for_each_entry(&doc.to_string(), &ImportOptions::default(), |key, value| {
        entries.push((key, value));
        Ok(())
    })?;
    Ok(entries)
}

/// Walks a DictPersistence-shaped document given as JSON text, entry by entry, and hands each
/// entry (its key, its value as stored by edgegram) to `f` as soon as it is validated; an
/// error of `f` stops the walk and is answered. Only one entry is held as a JSON tree at a
/// time: a document of many small entries costs its text and what `f` keeps, not a tree of
/// it (about ten times the text).
///
/// The first problem found is an [`Error::Invalid`] naming its path; a document over the
/// bounds of `options` is refused as [`ImportOptions`] says (its mode does not matter here).
/// Sections, and entries of one key, may appear once (`[1,2]` and `[1, 2]` name one
/// conversation entry). Answers how many entries `f` got.
pub fn for_each_entry(
    doc: &str,
    options: &ImportOptions,
    mut f: impl FnMut(Key, Value) -> Result<()>,
) -> Result<usize> {
    let doc: &RawValue = serde_json::from_str(doc)
        .map_err(|e| invalid("$", &format!("body is not valid JSON: {e}")))?;
    let mut walk = Walk {
        max_entries: options.max_entries,
        max_entry_memory: options.max_entry_memory,
        members: 0,
        emitted: 0,
        seen: std::collections::HashSet::new(),
        f: &mut f,
    };
    if kind(doc) != b'{' {
        return Err(invalid("$", "expected a JSON object"));
    }
    let mut seen_sections: Vec<String> = Vec::new();
    for_each_member(doc, "$", "expected a JSON object", |section, value| {
        if seen_sections.contains(&section) {
            return Err(invalid(&segment(&section), "appears twice in the document"));
        }
        match section.as_str() {
            "bot_data" => match kind(value) {
                b'n' => {}
                b'{' => walk.entry(Key::BotData, walk.parse(value, "bot_data")?)?,
                _ => return Err(invalid("bot_data", "expected an object")),
            },
            "chat_data" | "user_data" => {
                for_each_member(value, &section, "expected an object", |id, data| {
                    let path = format!("{section}.{}", segment(&id));
                    let id =
                        parse_id(&id).ok_or_else(|| invalid(&path, "key is not an integer id"))?;
                    if kind(data) != b'{' {
                        return Err(invalid(&path, "expected an object"));
                    }
                    let key = if section == "chat_data" {
                        Key::ChatData(id)
                    } else {
                        Key::UserData(id)
                    };
                    walk.entry(key, walk.parse(data, &path)?)
                })?;
            }
            "conversations" => {
                for_each_member(value, "conversations", "expected an object", |name, states| {
                    let path = format!("conversations.{}", segment(&name));
                    for_each_member(states, &path, "expected an object", |key, state| {
                        let path = format!("{path}.{}", segment(&key));
                        let key = normalize_conversation_key(&key).ok_or_else(|| {
                            invalid(&path, "key is not a JSON array of integers or strings")
                        })?;
                        if kind(state) == b'n' {
                            return walk.skip();
                        }
                        let name = name.clone();
                        walk.entry(Key::Conversation { name, key }, walk.parse(state, &path)?)
                    })
                })?;
            }
            "callback_data" => walk.callback_data(value)?,
            other => {
                return Err(invalid(
                    &segment(other),
                    "unknown section (expected bot_data, chat_data, user_data, conversations, callback_data)",
                ))
            }
        }
        seen_sections.push(section);
        Ok(())
    })?;
    Ok(walk.emitted)
}

/// [`for_each_entry`]'s state: the count against the limit, the keys seen (one key may not
/// appear twice: which value won would depend on the backend).
struct Walk<'f, F> {
    max_entries: usize,
    max_entry_memory: usize,
    members: usize,
    emitted: usize,
    seen: std::collections::HashSet<Key>,
    f: &'f mut F,
}

impl<F: FnMut(Key, Value) -> Result<()>> Walk<'_, F> {
    /// Counts a member against the limit.
    fn skip(&mut self) -> Result<()> {
        self.members += 1;
        if self.members > self.max_entries {
            return Err(Error::TooManyEntries {
                limit: self.max_entries,
            });
        }
        Ok(())
    }

    fn entry(&mut self, key: Key, value: Value) -> Result<()> {
        self.skip()?;
        if self.seen.contains(&key) {
            return Err(invalid(&entry_path(&key), "appears twice in the document"));
        }
        self.seen.insert(key.clone());
        self.emitted += 1;
        (self.f)(key, value)
    }

    /// One raw value as a JSON tree, unless the tree would take more than
    /// `max_entry_memory`. It parsed as part of the document, so it cannot fail but for
    /// serde_json's recursion limit or a number out of range, which are then named.
    fn parse(&self, value: &RawValue, path: &str) -> Result<Value> {
        if self.max_entry_memory != usize::MAX {
            let bytes = tree_bytes(value).map_err(|e| invalid(path, &e.to_string()))?;
            if bytes > self.max_entry_memory {
                let mb = |n: usize| n as f64 / 1e6;
                return Err(invalid(
                    path,
                    &format!(
                        "its value would take about {:.1} MB of memory as JSON, more than one \
                         entry may take ({:.1} MB): every update that reads it loads it whole, \
                         and a Worker has 128 MB",
                        mb(bytes),
                        mb(self.max_entry_memory)
                    ),
                ));
            }
        }
        serde_json::from_str(value.get()).map_err(|e| invalid(path, &e.to_string()))
    }

    fn callback_data(&mut self, value: &RawValue) -> Result<()> {
        match kind(value) {
            b'n' => return Ok(()),
            b'[' => {}
            _ => {
                return Err(invalid(
                    "callback_data",
                    "expected [keyboards, queries] or null",
                ))
            }
        }
        let parts = array_elements(value, "callback_data")?;
        let [keyboards, queries] = parts.as_slice() else {
            return Err(invalid("callback_data", "expected [keyboards, queries]"));
        };
        if kind(keyboards) != b'[' {
            return Err(invalid("callback_data.0", "expected a list of keyboards"));
        }
        let mut i = 0;
        for_each_element(keyboards, "callback_data.0", |keyboard| {
            let path = format!("callback_data.0.{i}");
            i += 1;
            let (id, stored) = keyboard_entry(self.parse(keyboard, &path)?, &path)?;
            self.entry(Key::CallbackKeyboard(id), stored)
        })?;
        for_each_member(
            queries,
            "callback_data.1",
            "expected an object",
            |query, keyboard| {
                if query.is_empty() || query.len() > MAX_QUERY_ID_BYTES {
                    return Err(invalid(
                        "callback_data.1",
                        &format!(
                        "query id {} is not a callback query id (1 to {MAX_QUERY_ID_BYTES} bytes)",
                        shown(&query)
                    ),
                    ));
                }
                let path = format!("callback_data.1.{}", segment(&query));
                let keyboard = self.parse(keyboard, &path)?;
                match keyboard.as_str() {
                    Some(id) if crate::callback_data::is_id(id) => {}
                    Some(id) => return Err(invalid(&path, &bad_id("keyboard", id))),
                    None => return Err(invalid(&path, "expected a keyboard id")),
                }
                self.entry(Key::CallbackQuery(query), keyboard)
            },
        )
    }
}

/// A keyboard of a document, `[keyboard_id, access_time, {button_id: data}]`, checked: ids of
/// the shape presses resolve, at most as many buttons as Telegram shows, a time that is
/// seconds since the epoch. Answers its id and its stored value.
fn keyboard_entry(keyboard: Value, path: &str) -> Result<(String, Value)> {
    use crate::callback_data::{is_id, MAX_BUTTONS};
    let shape = || {
        invalid(
            path,
            "expected [keyboard_id, access_time, {button_id: data}]",
        )
    };
    let Value::Array(parts) = keyboard else {
        return Err(shape());
    };
    let Ok([Value::String(id), time, Value::Object(buttons)]) = <[Value; 3]>::try_from(parts)
    else {
        return Err(shape());
    };
    if !is_id(&id) {
        return Err(invalid(&format!("{path}.0"), &bad_id("keyboard", &id)));
    }
    if !time.as_f64().is_some_and(|t| t >= 0.0) {
        return Err(invalid(
            &format!("{path}.1"),
            "access_time is not seconds since the epoch (a number, at least 0)",
        ));
    }
    let path = format!("{path}.2");
    if buttons.len() > MAX_BUTTONS {
        return Err(invalid(
            &path,
            &format!(
                "{} buttons; a Telegram keyboard has at most {MAX_BUTTONS}",
                buttons.len()
            ),
        ));
    }
    if let Some(button) = buttons.keys().find(|b| !is_id(b)) {
        return Err(invalid(&path, &bad_id("button", button)));
    }
    Ok((id, json!({"access_time": time, "buttons": buttons})))
}

fn bad_id(what: &str, id: &str) -> String {
    format!(
        "{what} id {} is not {} hex digits, the shape edgegram and python-telegram-bot \
         (uuid4().hex) make and a press resolves",
        shown(id),
        crate::callback_data::ID_LEN
    )
}

/// The first byte of a raw JSON value, which tells its type (`{`, `[`, `"`, `n`, `t`, `f`, a
/// digit or `-`).
fn kind(value: &RawValue) -> u8 {
    value.get().as_bytes().first().copied().unwrap_or(b' ')
}

/// About how many bytes `value` takes as a serde_json tree (sizes of wasm32, where workers
/// run), estimated from its text without building it: 24 per value, each string's and key's
/// bytes (rounded up to 8), and an object's B-tree nodes, about 408 bytes per 6 members (nodes
/// hold 6 to 11). `{"a":0}` is 464 bytes, as measured under workerd.
pub fn tree_bytes(value: &RawValue) -> std::result::Result<usize, serde_json::Error> {
    const VALUE: usize = 24;
    const NODE: usize = 408;
    const NODE_MEMBERS: usize = 6;
    fn heap(len: usize) -> usize {
        len.div_ceil(8) * 8
    }
    struct Cost;
    impl<'de> DeserializeSeed<'de> for Cost {
        type Value = usize;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<usize, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Cost {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_unit<E>(self) -> std::result::Result<usize, E> {
            Ok(VALUE)
        }
        fn visit_bool<E>(self, _: bool) -> std::result::Result<usize, E> {
            Ok(VALUE)
        }
        fn visit_i64<E>(self, _: i64) -> std::result::Result<usize, E> {
            Ok(VALUE)
        }
        fn visit_u64<E>(self, _: u64) -> std::result::Result<usize, E> {
            Ok(VALUE)
        }
        fn visit_f64<E>(self, _: f64) -> std::result::Result<usize, E> {
            Ok(VALUE)
        }
        fn visit_str<E>(self, text: &str) -> std::result::Result<usize, E> {
            Ok(VALUE + heap(text.len()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<usize, A::Error> {
            let mut total = VALUE;
            while let Some(cost) = seq.next_element_seed(Cost)? {
                total = total.saturating_add(cost);
            }
            Ok(total)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<usize, A::Error> {
            let (mut total, mut members) = (VALUE, 0usize);
            while let Some(key) = map.next_key_seed(KeyBytes)? {
                let value = map.next_value_seed(Cost)?;
                total = total.saturating_add(heap(key)).saturating_add(value);
                members += 1;
            }
            Ok(total.saturating_add(NODE * members.div_ceil(NODE_MEMBERS)))
        }
    }
    struct KeyBytes;
    impl<'de> DeserializeSeed<'de> for KeyBytes {
        type Value = usize;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<usize, D::Error> {
            d.deserialize_str(self)
        }
    }
    impl<'de> Visitor<'de> for KeyBytes {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a key")
        }
        fn visit_str<E>(self, text: &str) -> std::result::Result<usize, E> {
            Ok(text.len())
        }
    }
    let mut de = serde_json::Deserializer::from_str(value.get());
    Cost.deserialize(&mut de)
}

/// Hands each member of a JSON object given raw to `f`, in document order (nothing for
/// `null`); anything else is `what` at `path`. Members are not gathered first: a walk over a
/// huge object stops at `f`'s first error.
fn for_each_member<'a>(
    value: &'a RawValue,
    path: &str,
    what: &str,
    mut f: impl FnMut(String, &'a RawValue) -> Result<()>,
) -> Result<()> {
    match kind(value) {
        b'n' => return Ok(()),
        b'{' => {}
        _ => return Err(invalid(path, what)),
    }
    struct Members<'f, 'a> {
        f: &'f mut dyn FnMut(String, &'a RawValue) -> Result<()>,
        failed: &'f mut Option<Error>,
    }
    impl<'a> Visitor<'a> for Members<'_, 'a> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> std::result::Result<(), A::Error> {
            while let Some((name, value)) = map.next_entry::<String, &'a RawValue>()? {
                if let Err(e) = (self.f)(name, value) {
                    *self.failed = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }
    let mut failed = None;
    let members = Members {
        f: &mut f,
        failed: &mut failed,
    };
    let mut de = serde_json::Deserializer::from_str(value.get());
    let result = de.deserialize_map(members);
    match (failed, result) {
        (Some(error), _) => Err(error),
        (None, Ok(())) => Ok(()),
        (None, Err(e)) => Err(invalid(path, &e.to_string())),
    }
}

/// The elements of a short JSON array given raw.
fn array_elements<'a>(value: &'a RawValue, path: &str) -> Result<Vec<&'a RawValue>> {
    serde_json::from_str(value.get()).map_err(|e| invalid(path, &e.to_string()))
}

/// Hands each element of a JSON array given raw to `f`, in order, not gathering them first.
fn for_each_element<'a>(
    value: &'a RawValue,
    path: &str,
    mut f: impl FnMut(&'a RawValue) -> Result<()>,
) -> Result<()> {
    struct Elements<'f, 'a> {
        f: &'f mut dyn FnMut(&'a RawValue) -> Result<()>,
        failed: &'f mut Option<Error>,
    }
    impl<'a> Visitor<'a> for Elements<'_, 'a> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array")
        }
        fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
            while let Some(value) = seq.next_element::<&'a RawValue>()? {
                if let Err(e) = (self.f)(value) {
                    *self.failed = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }
    let mut failed = None;
    let elements = Elements {
        f: &mut f,
        failed: &mut failed,
    };
    let mut de = serde_json::Deserializer::from_str(value.get());
    let result = de.deserialize_seq(elements);
    match (failed, result) {
        (Some(error), _) => Err(error),
        (None, Ok(())) => Ok(()),
        (None, Err(e)) => Err(invalid(path, &e.to_string())),
    }
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
            Key::KeyboardIndex(_) | Key::Outbox { .. } | Key::Job { .. } | Key::JobDue { .. } => {}
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
    for kind in KeyKind::ALL.into_iter().filter(|kind| kind.in_documents()) {
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
/// stored with schema version `version`. See [`import_text`] for a merge, a bound on the
/// entries, and a check of each entry (what
/// [`Application::import`](crate::Application::import) does: entries its handlers could not
/// use are refused).
pub async fn import(persistence: &dyn Persistence, doc: &Value, version: u32) -> Result<usize> {
    let options = ImportOptions::default();
    import_text(persistence, &doc.to_string(), version, options, |_, _| {
        Ok(())
    })
    .await
}

/// Imports a DictPersistence-shaped document given as JSON text, as `options` say: every
/// entry is validated ([`for_each_entry`]) and given to `check` first, and only when all
/// passed is anything written, in one [`Persistence::write`] (a replace deletes the stored
/// entries the document does not hold in the same write). Entries are stored with schema
/// version `version`. Answers how many entries were written.
///
/// Memory: the document's text, and each entry encoded until the write (no JSON tree of the
/// whole document).
pub async fn import_text(
    persistence: &dyn Persistence,
    doc: &str,
    version: u32,
    options: ImportOptions,
    mut check: impl FnMut(&Key, &Value) -> Result<()>,
) -> Result<usize> {
    let mut changes = Vec::new();
    for_each_entry(doc, &options, |key, value| {
        check(&key, &value)?;
        let encoded = codec::encode(version, &value.to_string());
        changes.push(Change::Put(key, encoded));
        Ok(())
    })?;
    let count = changes.len();
    if options.mode == ImportMode::Replace {
        let kept: std::collections::HashSet<&Key> = changes.iter().map(Change::key).collect();
        let mut deletes = Vec::new();
        // Replies still to be sent are not the bot's data: an import leaves them be.
        for kind in KeyKind::ALL.into_iter().filter(|kind| kind.in_documents()) {
            for key in persistence.list(kind).await? {
                if !kept.contains(&key) {
                    deletes.push(Change::Delete(key));
                }
            }
        }
        drop(kept);
        changes.extend(deletes);
    }
    persistence.write(&changes).await?;
    persistence.flush().await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::memory::MemoryPersistence;
    use futures::executor::block_on;

    const KEYBOARD: &str = "0123456789abcdef0123456789abcdef";
    const BUTTON: &str = "fedcba9876543210fedcba9876543210";

    fn sample() -> Value {
        json!({
            "bot_data": {"count": 3},
            "chat_data": {"-1001500000001": {"count": 2}, "5": {}},
            "user_data": {"456": {"age": "12"}},
            "conversations": {"profile": {"[-1001500000001, 456]": "CHOOSING", "[1, 2]": null}},
            "callback_data": [[[KEYBOARD, 1700000000.5, {BUTTON: [1, []]}]], {"q1": KEYBOARD}],
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
            last_update: None,
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
            json!({"state": "A", "expires_at_ms": 1, "update": 2}),
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
    fn the_last_update_is_kept_beside_a_deadline_and_not_exported() {
        let entry = ConversationEntry {
            state: json!("TYPING_REPLY"),
            expires_at_ms: Some(5),
            last_update: Some(json!({"update_id": 9, "message": {"text": "12"}})),
        };
        let stored = entry.to_stored();
        assert_eq!(stored["update"]["update_id"], 9);
        assert_eq!(ConversationEntry::from_stored(&stored), entry);
        assert!(ConversationEntry::looks_wrapped(&stored));
        let key = Key::Conversation {
            name: "profile".into(),
            key: "[1, 2]".into(),
        };
        let doc = from_entries([(key, stored)]);
        assert_eq!(doc["conversations"]["profile"]["[1, 2]"], "TYPING_REPLY");
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
                json!({"callback_data": [[["a", 1, []]], {}]}),
                "callback_data.0.0",
            ),
            (
                json!({"callback_data": [[[KEYBOARD, "t", {}]], {}]}),
                "callback_data.0.0.1",
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
                json!({"callback_data": [[[KEYBOARD, 1, {}], [KEYBOARD, 2, {}]], {}]}),
                &format!("callback_data.0.{KEYBOARD}"),
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

    /// The message of the `Error::Invalid` that `doc` (as text) is refused with.
    fn refusal(doc: &str) -> String {
        match for_each_entry(doc, &ImportOptions::default(), |_, _| Ok(())) {
            Err(Error::Invalid(message)) => message,
            other => panic!("{doc}: {other:?}"),
        }
    }

    fn keyboards(keyboard: Value) -> String {
        json!({"callback_data": [[keyboard], {}]}).to_string()
    }

    #[test]
    fn keyboard_and_button_ids_of_another_shape_than_ptbs_are_refused() {
        let ok = keyboards(json!([KEYBOARD, 1_700_000_000.5, {BUTTON: [1, []]}]));
        assert_eq!(
            for_each_entry(&ok, &ImportOptions::default(), |_, _| Ok(())),
            Ok(1)
        );
        let upper = keyboards(json!([KEYBOARD.to_uppercase(), 1, {BUTTON: 1}]));
        assert_eq!(
            for_each_entry(&upper, &ImportOptions::default(), |_, _| Ok(())),
            Ok(1),
            "a press resolves upper-case hex too"
        );

        let message = refusal(&keyboards(json!(["", 1, {BUTTON: 1}])));
        assert!(
            message.starts_with("callback_data.0.0.0: keyboard id \"\" is not 32 hex digits"),
            "{message}"
        );
        let huge = "f".repeat(1_500_000);
        let message = refusal(&keyboards(json!([huge, 1, {BUTTON: 1}])));
        assert!(
            message.starts_with(&format!(
                "callback_data.0.0.0: keyboard id \"{}\"… (1500000 bytes) is not",
                "f".repeat(32)
            )),
            "{message}"
        );
        assert!(message.len() < 300, "the id is not echoed: {message}");
        for bad in ["kb-1", "0123456789abcdef0123456789abcdeg", &KEYBOARD[1..]] {
            let message = refusal(&keyboards(json!([bad, 1, {BUTTON: 1}])));
            assert!(
                message.starts_with("callback_data.0.0.0: keyboard id"),
                "{message}"
            );
        }

        let message = refusal(&keyboards(json!([KEYBOARD, 1, {"b-1": 1}])));
        assert!(
            message.starts_with("callback_data.0.0.2: button id \"b-1\" is not 32 hex digits"),
            "{message}"
        );
        let message = refusal(&keyboards(json!([KEYBOARD, 1, {"": 1}])));
        assert!(
            message.starts_with("callback_data.0.0.2: button id \"\""),
            "{message}"
        );

        let buttons: Map<String, Value> =
            (0..101).map(|i| (format!("{i:032x}"), json!(i))).collect();
        let message = refusal(&keyboards(json!([KEYBOARD, 1, buttons])));
        assert!(
            message.starts_with(
                "callback_data.0.0.2: 101 buttons; a Telegram keyboard has at most 100"
            ),
            "{message}"
        );
        let buttons: Map<String, Value> =
            (0..100).map(|i| (format!("{i:032x}"), json!(i))).collect();
        let at_most = keyboards(json!([KEYBOARD, 1, buttons]));
        assert_eq!(
            for_each_entry(&at_most, &ImportOptions::default(), |_, _| Ok(())),
            Ok(1)
        );

        let message = refusal(&keyboards(json!([KEYBOARD, -1, {}])));
        assert!(
            message.starts_with("callback_data.0.0.1: access_time"),
            "{message}"
        );

        // The query mappings: a keyboard id of the same shape, a query id of a sane length.
        let queries = |queries: Value| json!({"callback_data": [[], queries]}).to_string();
        let message = refusal(&queries(json!({"q1": "kb-1"})));
        assert!(
            message.starts_with("callback_data.1.q1: keyboard id \"kb-1\" is not 32 hex digits"),
            "{message}"
        );
        let message = refusal(&queries(json!({"": KEYBOARD})));
        assert!(
            message.starts_with("callback_data.1: query id \"\""),
            "{message}"
        );
        let message = refusal(&queries(json!({"9".repeat(129): KEYBOARD})));
        assert!(
            message.starts_with(
                "callback_data.1: query id \"99999999999999999999999999999999\"… (129 bytes)"
            ),
            "{message}"
        );
    }

    #[test]
    fn long_names_in_paths_are_cut_short() {
        let name = "n".repeat(100_000);
        let message = refusal(&json!({"chat_data": {name: {}}}).to_string());
        assert!(
            message.starts_with(&format!(
                "chat_data.\"{}\"… (100000 bytes): key is not",
                "n".repeat(32)
            )),
            "{message}"
        );
    }

    #[test]
    fn a_section_or_an_entry_twice_in_the_text_is_refused() {
        let message = refusal(r#"{"chat_data": {"1": {}}, "chat_data": {"2": {}}}"#);
        assert!(message.starts_with("chat_data: appears twice"), "{message}");
        // A JSON tree would keep the last silently; the walk sees both.
        let message = refusal(r#"{"user_data": {"1": {"a": 1}, "1": {"a": 2}}}"#);
        assert!(
            message.starts_with("user_data.1: appears twice"),
            "{message}"
        );
    }

    #[test]
    fn text_that_is_not_a_json_object_is_refused_at_the_root() {
        for (doc, start) in [
            ("{nope", "$: body is not valid JSON"),
            ("[]", "$: expected a JSON object"),
            (" null ", "$: expected a JSON object"),
            ("{} {}", "$: body is not valid JSON"),
        ] {
            let message = refusal(doc);
            assert!(message.starts_with(start), "{doc}: {message}");
        }
        assert_eq!(
            for_each_entry("  { }  ", &ImportOptions::default(), |_, _| Ok(())),
            Ok(0)
        );
    }

    #[test]
    fn more_entries_than_the_limit_are_refused_before_anything_is_written() {
        let store = MemoryPersistence::from_json(&json!({"bot_data": {"kept": true}})).unwrap();
        let doc = json!({"chat_data": {"1": {}, "2": {}}, "conversations": {"c": {"[1, 2]": null, "[3, 4]": 1}}});
        let options = ImportOptions {
            max_entries: 3,
            ..ImportOptions::default()
        };
        let result = block_on(import_text(&store, &doc.to_string(), 1, options, |_, _| {
            Ok(())
        }));
        assert_eq!(
            result,
            Err(Error::TooManyEntries { limit: 3 }),
            "an ended conversation counts too"
        );
        assert_eq!(store.to_json().unwrap()["bot_data"], json!({"kept": true}));
        let options = ImportOptions {
            max_entries: 4,
            ..options
        };
        let result = block_on(import_text(&store, &doc.to_string(), 1, options, |_, _| {
            Ok(())
        }));
        assert_eq!(result, Ok(3));
        assert_eq!(store.to_json().unwrap()["bot_data"], json!({}));
    }

    #[test]
    fn a_merge_writes_the_documents_entries_and_deletes_nothing() {
        let store = MemoryPersistence::from_json(&json!({
            "bot_data": {"a": 1}, "chat_data": {"1": {"a": 1}, "2": {"a": 2}},
        }))
        .unwrap();
        let part = json!({"chat_data": {"2": {"a": 22}, "3": {"a": 3}}, "user_data": {"8": {}}});
        let options = ImportOptions {
            mode: ImportMode::Merge,
            ..ImportOptions::default()
        };
        let result = block_on(import_text(
            &store,
            &part.to_string(),
            1,
            options,
            |_, _| Ok(()),
        ));
        assert_eq!(result, Ok(3));
        let state = store.to_json().unwrap();
        assert_eq!(state["bot_data"], json!({"a": 1}));
        assert_eq!(
            state["chat_data"],
            json!({"1": {"a": 1}, "2": {"a": 22}, "3": {"a": 3}})
        );
        assert_eq!(state["user_data"], json!({"8": {}}));
    }

    #[test]
    fn a_check_that_refuses_an_entry_stops_the_import_before_anything_is_written() {
        let store = MemoryPersistence::from_json(&json!({"bot_data": {"kept": true}})).unwrap();
        let doc = json!({"chat_data": {"1": {}, "2": {"bad": true}, "3": {}}});
        let mut checked = Vec::new();
        let result = block_on(import_text(
            &store,
            &doc.to_string(),
            1,
            ImportOptions::default(),
            |key, value| {
                checked.push(key.clone());
                match value.get("bad") {
                    Some(_) => Err(Error::Invalid(format!("{}: bad", entry_path(key)))),
                    None => Ok(()),
                }
            },
        ));
        assert_eq!(result, Err(Error::Invalid("chat_data.2: bad".into())));
        assert_eq!(
            checked,
            [Key::ChatData(1), Key::ChatData(2)],
            "the walk stopped there"
        );
        assert_eq!(store.to_json().unwrap()["bot_data"], json!({"kept": true}));
    }

    #[test]
    fn an_entry_whose_tree_would_not_fit_is_refused_before_it_is_parsed() {
        let raw = |text: &str| -> Box<RawValue> { RawValue::from_string(text.into()).unwrap() };
        // The estimate: 24 bytes a value, strings and keys by their bytes, B-tree nodes.
        assert_eq!(tree_bytes(&raw("null")).unwrap(), 24);
        assert_eq!(tree_bytes(&raw(r#""abc""#)).unwrap(), 32);
        assert_eq!(tree_bytes(&raw(r#"{"a":0}"#)).unwrap(), 464);
        assert_eq!(tree_bytes(&raw("[0, 0, 0]")).unwrap(), 96);
        // A megabyte of tiny objects is a tree of about 60 MB; as many bytes of text are one.
        let tiny = format!("[{}]", vec![r#"{"a":0}"#; 131_072].join(","));
        assert!(tree_bytes(&raw(&tiny)).unwrap() > 60_000_000);
        let text = format!("\"{}\"", "x".repeat(1 << 20));
        assert!(tree_bytes(&raw(&text)).unwrap() < (1 << 20) + 100);

        let options = ImportOptions {
            max_entry_memory: 16 << 20,
            ..ImportOptions::default()
        };
        let doc =
            format!(r#"{{"chat_data": {{"1": {{"text": {text}}}, "2": {{"list": {tiny}}}}}}}"#);
        let mut seen = Vec::new();
        let result = for_each_entry(&doc, &options, |key, _| {
            seen.push(key);
            Ok(())
        });
        let Err(Error::Invalid(message)) = result else {
            panic!("{result:?}")
        };
        assert!(
            message.starts_with("chat_data.2: its value would take about 60.8 MB of memory as JSON, more than one entry may take (16.8 MB)"),
            "{message}"
        );
        assert_eq!(seen, [Key::ChatData(1)], "the megabyte of text was fine");
        // Without the bound (native use), it is parsed.
        assert_eq!(
            for_each_entry(&doc, &ImportOptions::default(), |_, _| Ok(())),
            Ok(2)
        );
    }
}
