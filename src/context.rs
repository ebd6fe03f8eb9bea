//! [`Context`]: what a handler callback gets — the update, the bot, and the data this update
//! loaded (bot_data, the effective chat's chat_data, the effective user's user_data).
//!
//! Data is reached through closures (`ctx.chat_data(|d| ...)`) rather than guards, so that no
//! borrow can be held across an `.await`: on wasm a `RefCell` double borrow would be a panic,
//! and a panic aborts the whole worker without an answer. Nested access to the same data
//! returns an error instead.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::bot::{Bot, SendMessage};
use crate::callback_data::CallbackDataSettings;
use crate::error::{Error, Result};
use crate::persistence::{codec, Change, Key, Persistence, PersistenceInput};
use crate::types::{CallbackQuery, Chat, Message, Update, User};

/// The default data type of bot_data, chat_data and user_data: a JSON object, like PTB's dict.
pub type Data = serde_json::Map<String, Value>;

/// What bot_data, chat_data and user_data types need: serde both ways, a default for entries
/// that do not exist yet. Prefer ordered maps (`BTreeMap`, [`Data`]) inside: changes are found
/// by comparing serialized values, and a `HashMap`'s order can differ between serializations,
/// which costs a needless write.
pub trait DataType: Serialize + DeserializeOwned + Default + 'static {}
impl<T: Serialize + DeserializeOwned + Default + 'static> DataType for T {}

/// One loaded typed entry.
struct Slot<T> {
    value: T,
    /// The value serialized right after loading (or of the default when absent).
    baseline: String,
    /// Dropped during this update: written as a delete unless set again.
    dropped: bool,
    /// Whether this kind is stored at all (PersistenceInput).
    persist: bool,
}

/// One loaded untyped entry (conversation state, callback data).
struct RawSlot {
    value: Option<Value>,
    baseline: Option<Value>,
}

/// The current time in milliseconds since the Unix epoch. Replaceable in tests
/// ([`ApplicationBuilder::clock`](crate::ApplicationBuilder::clock)).
pub type Clock = Rc<dyn Fn() -> i64>;

/// The real clock: `Date.now()` on wasm (where `SystemTime::now` panics), the system time
/// elsewhere.
pub fn system_clock() -> Clock {
    Rc::new(|| {
        #[cfg(target_arch = "wasm32")]
        {
            js_sys::Date::now() as i64
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        }
    })
}

/// Fills a buffer with unpredictable bytes; makes the ids of arbitrary callback data
/// ([`ApplicationBuilder::random`](crate::ApplicationBuilder::random)).
pub type RandomSource = Rc<dyn Fn(&mut [u8])>;

/// The default random source. Natively: SipHash keyed by the operating system's randomness
/// (std's `RandomState`) over a counter, so ids cannot be guessed without that key. On wasm
/// (where std has no randomness): the runtime's `crypto.getRandomValues`, or `None` where
/// there is no such function.
pub fn system_random() -> Option<RandomSource> {
    #[cfg(target_arch = "wasm32")]
    {
        use js_sys::{Function, Reflect, Uint8Array};
        use wasm_bindgen::JsCast;
        let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).ok()?;
        let get_random_values: Function = Reflect::get(&crypto, &"getRandomValues".into())
            .ok()?
            .dyn_into()
            .ok()?;
        Some(Rc::new(move |buf: &mut [u8]| {
            // getRandomValues takes at most 65536 bytes a call.
            for chunk in buf.chunks_mut(65536) {
                let array = Uint8Array::new_with_length(chunk.len() as u32);
                if get_random_values.call1(&crypto, &array).is_ok() {
                    array.copy_to(chunk);
                }
            }
        }))
    }

    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::hash::{BuildHasher, Hasher};
        let keys = std::collections::hash_map::RandomState::new();
        let counter = Cell::new(0u64);
        Some(Rc::new(move |buf: &mut [u8]| {
            for chunk in buf.chunks_mut(8) {
                let mut hasher = keys.build_hasher();
                hasher.write_u64(counter.get());
                counter.set(counter.get().wrapping_add(1));
                let bytes = hasher.finish().to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
        }))
    }
}

/// The Application's settings an update needs.
pub(crate) struct Settings {
    pub(crate) store: PersistenceInput,
    pub(crate) schema_version: u32,
    pub(crate) bot_username: Option<String>,
    pub(crate) clock: Clock,
    pub(crate) random: Option<RandomSource>,
    pub(crate) callback_data: Option<CallbackDataSettings>,
    pub(crate) migrations: Migrations,
}

/// Turns a stored value of one schema version into the next
/// ([`ApplicationBuilder::migration`](crate::ApplicationBuilder::migration)). Gets the key (to
/// tell kinds apart) and the data; an `Err` says why the value cannot be migrated.
pub type Migration = Rc<dyn Fn(&Key, Value) -> std::result::Result<Value, String>>;

/// Migrations by the version they start from.
pub(crate) type Migrations = Rc<BTreeMap<u32, Migration>>;

/// Everything one update loaded; shared by the contexts of its handlers.
pub(crate) struct UpdateState<B, C, U> {
    pub(crate) update: Update,
    pub(crate) bot: Bot,
    persistence: Rc<dyn Persistence>,
    store: PersistenceInput,
    schema_version: u32,
    clock: Clock,
    random: Option<RandomSource>,
    callback_data: Option<CallbackDataSettings>,
    migrations: Migrations,
    bot_data: RefCell<Option<Slot<B>>>,
    chats: RefCell<BTreeMap<i64, Slot<C>>>,
    users: RefCell<BTreeMap<i64, Slot<U>>>,
    entries: RefCell<BTreeMap<Key, RawSlot>>,
    stop: Cell<bool>,
    reads: Cell<usize>,
    bot_username: Option<String>,
}

impl<B: DataType, C: DataType, U: DataType> UpdateState<B, C, U> {
    /// Loads what `update` needs in one read: bot_data, the effective chat's and user's data
    /// (each only if stored) and `extra` keys (conversation entries of the handlers).
    pub(crate) async fn load(
        update: Update,
        bot: Bot,
        persistence: Rc<dyn Persistence>,
        settings: Settings,
        extra: Vec<Key>,
    ) -> Result<Self> {
        let Settings {
            store,
            schema_version,
            bot_username,
            clock,
            random,
            callback_data,
            migrations,
        } = settings;
        let state = Self {
            bot,
            persistence,
            store,
            schema_version,
            clock,
            random,
            callback_data,
            migrations,
            bot_data: RefCell::new(None),
            chats: RefCell::new(BTreeMap::new()),
            users: RefCell::new(BTreeMap::new()),
            entries: RefCell::new(BTreeMap::new()),
            stop: Cell::new(false),
            reads: Cell::new(0),
            bot_username,
            update,
        };
        let mut keys = Vec::with_capacity(3 + extra.len());
        keys.push(Key::BotData);
        if let Some(chat) = state.update.effective_chat() {
            keys.push(Key::ChatData(chat.id));
        }
        if let Some(user) = state.update.effective_user() {
            keys.push(Key::UserData(user.id));
        }
        for key in extra {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        state.load_keys(keys).await?;
        Ok(state)
    }

    fn stores(&self, key: &Key) -> bool {
        match key {
            Key::BotData => self.store.bot_data,
            Key::ChatData(_) => self.store.chat_data,
            Key::UserData(_) => self.store.user_data,
            Key::CallbackKeyboard(_) | Key::CallbackQuery(_) => self.store.callback_data,
            Key::Conversation { .. } => true,
        }
    }

    /// Reads `keys` (those of stored kinds) in one round trip and adds them to the state.
    async fn load_keys(&self, keys: Vec<Key>) -> Result<()> {
        let (stored, not_stored): (Vec<Key>, Vec<Key>) =
            keys.into_iter().partition(|k| self.stores(k));
        let values = if stored.is_empty() {
            Vec::new()
        } else {
            self.reads.set(self.reads.get() + 1);
            self.persistence.read(&stored).await?
        };
        if values.len() != stored.len() {
            return Err(crate::persistence::storage_error(
                self.persistence.backend(),
                "read",
                crate::persistence::describe_keys(&stored),
                format!("answered {} values for {} keys", values.len(), stored.len()),
            ));
        }
        for (key, raw) in stored.into_iter().zip(values) {
            let data = match raw {
                Some(raw) => Some(self.decode(&key, &raw)?),
                None => None,
            };
            self.insert(key, data, true).await?;
        }
        for key in not_stored {
            self.insert(key, None, false).await?;
        }
        Ok(())
    }

    fn decode(&self, key: &Key, raw: &str) -> Result<Value> {
        let error = |message: String| Error::Decode {
            backend: self.persistence.backend(),
            key: key.to_string(),
            message,
        };
        let stored = codec::decode(raw).map_err(error)?;
        if stored.version > self.schema_version {
            return Err(error(format!(
                "written with schema version {}, newer than this code's {}",
                stored.version, self.schema_version
            )));
        }
        // Older values are migrated step by step on load; a step without a migration keeps
        // the value as it is. The migrated value is written back only if the update changes
        // it (then with the current version), so untouched entries are never rewritten.
        let mut data = stored.data;
        for version in stored.version..self.schema_version {
            if let Some(migrate) = self.migrations.get(&version) {
                data = migrate(key, data).map_err(|e| {
                    error(format!(
                        "migration from schema version {version} to {} failed: {e}",
                        version + 1
                    ))
                })?;
            }
        }
        Ok(data)
    }

    async fn insert(&self, key: Key, data: Option<Value>, persist: bool) -> Result<()> {
        let backend = self.persistence.backend();
        match &key {
            Key::BotData => {
                let mut data = data.unwrap_or(Value::Null);
                if persist && !data.is_null() {
                    self.persistence.refresh_bot_data(&mut data).await?;
                }
                *self.bot_data.borrow_mut() = Some(typed_slot(backend, &key, data, persist)?);
            }
            Key::ChatData(id) => {
                let mut data = data.unwrap_or(Value::Null);
                if persist && !data.is_null() {
                    self.persistence.refresh_chat_data(*id, &mut data).await?;
                }
                let slot = typed_slot(backend, &key, data, persist)?;
                self.chats.borrow_mut().insert(*id, slot);
            }
            Key::UserData(id) => {
                let mut data = data.unwrap_or(Value::Null);
                if persist && !data.is_null() {
                    self.persistence.refresh_user_data(*id, &mut data).await?;
                }
                let slot = typed_slot(backend, &key, data, persist)?;
                self.users.borrow_mut().insert(*id, slot);
            }
            _ => {
                let slot = RawSlot {
                    baseline: data.clone(),
                    value: data,
                };
                self.entries.borrow_mut().insert(key, slot);
            }
        }
        Ok(())
    }

    /// The changes to write: every entry whose serialized value differs from what was loaded,
    /// and deletes of dropped entries. Ordered by key.
    pub(crate) fn changes(&self) -> Result<Vec<Change>> {
        let mut changes = Vec::new();
        let version = self.schema_version;
        if let Some(slot) = self.bot_data.borrow().as_ref() {
            slot_change(Key::BotData, slot, version, &mut changes)?;
        }
        for (id, slot) in self.chats.borrow().iter() {
            slot_change(Key::ChatData(*id), slot, version, &mut changes)?;
        }
        for (id, slot) in self.users.borrow().iter() {
            slot_change(Key::UserData(*id), slot, version, &mut changes)?;
        }
        for (key, slot) in self.entries.borrow().iter() {
            if slot.value == slot.baseline || !self.stores(key) {
                continue;
            }
            changes.push(match &slot.value {
                Some(value) => Change::Put(key.clone(), codec::encode(version, &value.to_string())),
                None => Change::Delete(key.clone()),
            });
        }
        changes.sort_by(|a, b| a.key().cmp(b.key()));
        Ok(changes)
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stop.get()
    }

    pub(crate) fn reads(&self) -> usize {
        self.reads.get()
    }
}

fn typed_slot<T: DataType>(
    backend: &'static str,
    key: &Key,
    data: Value,
    persist: bool,
) -> Result<Slot<T>> {
    let value = if data.is_null() {
        T::default()
    } else {
        T::deserialize(&data).map_err(|e| Error::Decode {
            backend,
            key: key.to_string(),
            message: format!("does not fit the data type: {e}"),
        })?
    };
    let baseline = serialize(key, &value)?;
    Ok(Slot {
        value,
        baseline,
        dropped: false,
        persist,
    })
}

fn serialize<T: Serialize>(key: &Key, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Encode {
        key: key.to_string(),
        message: e.to_string(),
    })
}

fn slot_change<T: DataType>(
    key: Key,
    slot: &Slot<T>,
    version: u32,
    out: &mut Vec<Change>,
) -> Result<()> {
    if !slot.persist {
        return Ok(());
    }
    let current = serialize(&key, &slot.value)?;
    if slot.dropped {
        // Dropped and not set again: delete. Set again after the drop: store the new value.
        if current == serialize(&key, &T::default())? {
            out.push(Change::Delete(key));
            return Ok(());
        }
    } else if current == slot.baseline {
        return Ok(());
    }
    out.push(Change::Put(key, codec::encode(version, &current)));
    Ok(())
}

/// What matched: a handler's [`Handler::check_update`](crate::Handler::check_update) answer,
/// passed on to its callback through the [`Context`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// Command arguments (words after the command).
    pub args: Vec<String>,
    /// Regex captures: index 0 is the whole match, then each group.
    pub matches: Vec<Option<String>>,
    /// Which inner handler matched, for handlers that contain others (conversations).
    pub route: Vec<usize>,
}

/// What a handler callback receives. Cheap to clone; all clones of one update share its data.
pub struct Context<B = Data, C = Data, U = Data> {
    state: Rc<UpdateState<B, C, U>>,
    /// The words after the command, for a [`CommandHandler`](crate::CommandHandler).
    pub args: Vec<String>,
    /// Regex captures of the filter or pattern that matched (index 0: the whole match).
    pub matches: Vec<Option<String>>,
}

impl<B, C, U> Clone for Context<B, C, U> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            args: self.args.clone(),
            matches: self.matches.clone(),
        }
    }
}

impl<B: DataType, C: DataType, U: DataType> Context<B, C, U> {
    pub(crate) fn new(state: Rc<UpdateState<B, C, U>>) -> Self {
        Self {
            state,
            args: Vec::new(),
            matches: Vec::new(),
        }
    }

    pub(crate) fn with_match(&self, matched: &Match) -> Self {
        Self {
            state: self.state.clone(),
            args: matched.args.clone(),
            matches: matched.matches.clone(),
        }
    }

    /// The update being handled.
    pub fn update(&self) -> &Update {
        &self.state.update
    }

    /// The bot, to call the Bot API.
    pub fn bot(&self) -> &Bot {
        &self.state.bot
    }

    /// The current time, milliseconds since the Unix epoch, from the Application's clock.
    pub fn now_ms(&self) -> i64 {
        (self.state.clock)()
    }

    /// The arbitrary callback data settings, if the Application has them on.
    pub(crate) fn callback_data_settings(&self) -> Option<CallbackDataSettings> {
        self.state.callback_data
    }

    /// Fills `buf` from the Application's random source.
    pub(crate) fn fill_random(&self, buf: &mut [u8]) -> Result<()> {
        let random = self.state.random.as_ref().ok_or_else(|| {
            Error::Config(
                "no random source for callback data ids: pass one to \
                 ApplicationBuilder::random (on Workers, crypto.getRandomValues)"
                    .into(),
            )
        })?;
        random(buf);
        Ok(())
    }

    /// The bot's username (without `@`), if known.
    pub fn bot_username(&self) -> Option<&str> {
        self.state.bot_username.as_deref()
    }

    /// The update's chat, if it has one.
    pub fn effective_chat(&self) -> Option<&Chat> {
        self.state.update.effective_chat()
    }

    /// The update's user, if it has one.
    pub fn effective_user(&self) -> Option<&User> {
        self.state.update.effective_user()
    }

    /// The update's message (also a pressed button's message), if it has one.
    pub fn effective_message(&self) -> Option<&Message> {
        self.state.update.effective_message()
    }

    /// The update's callback query, if it is one.
    pub fn callback_query(&self) -> Option<&CallbackQuery> {
        self.state.update.callback_query.as_ref()
    }

    /// The text of the update's message, if any.
    pub fn text(&self) -> Option<&str> {
        self.state.update.message_like()?.text.as_deref()
    }

    /// Sends `text` to the update's chat (PTB's `message.reply_text`).
    pub async fn reply_text(&self, text: impl Into<String>) -> Result<Message> {
        self.reply(|chat_id| SendMessage::new(chat_id, text)).await
    }

    /// Sends the message `build` makes for the update's chat id.
    pub async fn reply(&self, build: impl FnOnce(i64) -> SendMessage) -> Result<Message> {
        let chat = self.effective_chat().ok_or(Error::Missing("chat"))?;
        self.state.bot.send_message(build(chat.id)).await
    }

    /// Stops processing this update after the current handler: later groups do not run
    /// (PTB's `ApplicationHandlerStop`).
    pub fn stop_processing(&self) {
        self.state.stop.set(true);
    }

    /// Reads or changes bot_data. Changes are written at the end of the update.
    pub fn bot_data<R>(&self, f: impl FnOnce(&mut B) -> R) -> Result<R> {
        let mut slot = self
            .state
            .bot_data
            .try_borrow_mut()
            .map_err(|_| nested("bot_data"))?;
        let slot = slot.as_mut().ok_or(Error::Missing("bot_data"))?;
        Ok(f(&mut slot.value))
    }

    /// Reads or changes the effective chat's chat_data.
    pub fn chat_data<R>(&self, f: impl FnOnce(&mut C) -> R) -> Result<R> {
        let id = self.effective_chat().ok_or(Error::Missing("chat"))?.id;
        with_slot(&self.state.chats, id, "chat_data", f)
    }

    /// Reads or changes the effective user's user_data.
    pub fn user_data<R>(&self, f: impl FnOnce(&mut U) -> R) -> Result<R> {
        let id = self.effective_user().ok_or(Error::Missing("user"))?.id;
        with_slot(&self.state.users, id, "user_data", f)
    }

    /// Reads or changes another chat's chat_data, loading it first if this update has not
    /// (one extra read). Changes are written at the end of the update like the others.
    pub async fn chat_data_of<R>(&self, chat_id: i64, f: impl FnOnce(&mut C) -> R) -> Result<R> {
        if !self.state.chats.borrow().contains_key(&chat_id) {
            self.state.load_keys(vec![Key::ChatData(chat_id)]).await?;
        }
        with_slot(&self.state.chats, chat_id, "chat_data", f)
    }

    /// Reads or changes another user's user_data, loading it first if needed.
    pub async fn user_data_of<R>(&self, user_id: i64, f: impl FnOnce(&mut U) -> R) -> Result<R> {
        if !self.state.users.borrow().contains_key(&user_id) {
            self.state.load_keys(vec![Key::UserData(user_id)]).await?;
        }
        with_slot(&self.state.users, user_id, "user_data", f)
    }

    /// Deletes a chat's chat_data at the end of the update (PTB's `drop_chat_data`). Within
    /// this update the chat's data reads as empty afterwards.
    pub fn drop_chat_data(&self, chat_id: i64) -> Result<()> {
        drop_slot(
            &self.state.chats,
            chat_id,
            Key::ChatData(chat_id),
            self.state.store.chat_data,
        )
    }

    /// Deletes a user's user_data at the end of the update (PTB's `drop_user_data`).
    pub fn drop_user_data(&self, user_id: i64) -> Result<()> {
        drop_slot(
            &self.state.users,
            user_id,
            Key::UserData(user_id),
            self.state.store.user_data,
        )
    }

    /// Moves a chat's chat_data to another chat id, as when a group becomes a supergroup
    /// (PTB's `migrate_chat_data`): the new chat gets the old chat's data, the old chat's
    /// entry is dropped. Conversation states are not moved (as in PTB).
    pub async fn migrate_chat_data(&self, old_chat_id: i64, new_chat_id: i64) -> Result<()> {
        let mut missing = Vec::new();
        for id in [old_chat_id, new_chat_id] {
            if !self.state.chats.borrow().contains_key(&id) {
                missing.push(Key::ChatData(id));
            }
        }
        if !missing.is_empty() {
            self.state.load_keys(missing).await?;
        }
        let data = with_slot(&self.state.chats, old_chat_id, "chat_data", std::mem::take)?;
        self.drop_chat_data(old_chat_id)?;
        with_slot(&self.state.chats, new_chat_id, "chat_data", |d| *d = data)
    }

    /// An untyped entry this update loaded (a conversation state, callback data), for
    /// handlers that keep their own state. `None` if absent or not loaded.
    pub fn entry(&self, key: &Key) -> Option<Value> {
        self.state.entries.borrow().get(key)?.value.clone()
    }

    /// Sets (or with `None` removes) an untyped entry; written at the end of the update if
    /// it differs from what was loaded.
    pub fn set_entry(&self, key: Key, value: Option<Value>) {
        let mut entries = self.state.entries.borrow_mut();
        match entries.get_mut(&key) {
            Some(slot) => slot.value = value,
            None => {
                entries.insert(
                    key,
                    RawSlot {
                        value,
                        baseline: None,
                    },
                );
            }
        }
    }

    /// Loads untyped entries this update has not loaded yet, in one read.
    pub async fn load_entries(&self, keys: Vec<Key>) -> Result<()> {
        let missing: Vec<Key> = {
            let entries = self.state.entries.borrow();
            keys.into_iter()
                .filter(|k| !entries.contains_key(k))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        self.state.load_keys(missing).await
    }
}

fn nested(what: &str) -> Error {
    Error::Config(format!(
        "{what} is already being accessed: do not call ctx.{what}(..) inside its own closure"
    ))
}

fn with_slot<T, R>(
    map: &RefCell<BTreeMap<i64, Slot<T>>>,
    id: i64,
    what: &'static str,
    f: impl FnOnce(&mut T) -> R,
) -> Result<R> {
    let mut map = map.try_borrow_mut().map_err(|_| nested(what))?;
    let slot = map.get_mut(&id).ok_or(Error::Missing(what))?;
    Ok(f(&mut slot.value))
}

fn drop_slot<T: DataType>(
    map: &RefCell<BTreeMap<i64, Slot<T>>>,
    id: i64,
    key: Key,
    persist: bool,
) -> Result<()> {
    let mut map = map.try_borrow_mut().map_err(|_| nested("data"))?;
    match map.get_mut(&id) {
        Some(slot) => {
            slot.value = T::default();
            slot.dropped = true;
        }
        None => {
            map.insert(
                id,
                Slot {
                    value: T::default(),
                    baseline: serialize(&key, &T::default())?,
                    dropped: true,
                    persist,
                },
            );
        }
    }
    Ok(())
}
