//! [`UpdateState`]: everything one update loaded, and what it changed.
//!
//! The Application builds one per update: [`UpdateState::load`] reads bot_data, the effective
//! chat's and user's data and the handlers' entries in one round trip, decodes them, migrates
//! them to the current schema version and lets the backend refresh them. Handlers reach the
//! data through [`Context`](crate::Context), which holds this state. At the end,
//! [`UpdateState::changes`] serializes every loaded entry and compares it with what was
//! loaded: only entries that differ are written.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Serialize;
use serde_json::Value;

use crate::bot::{Bot, BotApi};
use crate::callback_data::{self, CallbackDataSettings, Keyboards};
use crate::context::DataType;
use crate::error::{Error, Result};
use crate::jobs::Job;
use crate::outbox::Call;
use crate::persistence::{
    codec, describe_keys, Change, Key, KeyKind, Persistence, PersistenceInput,
};
use crate::sources::{Clock, RandomSource};
use crate::types::Update;

/// Turns a stored value of one schema version into the next
/// ([`ApplicationBuilder::migration`](crate::ApplicationBuilder::migration)). Gets the key (to
/// tell kinds apart) and the data; an `Err` says why the value cannot be migrated.
pub type Migration = Rc<dyn Fn(&Key, Value) -> std::result::Result<Value, String>>;

/// Migrations by the version they start from.
pub(crate) type Migrations = Rc<BTreeMap<u32, Migration>>;

/// The Application's settings an update needs.
pub(crate) struct Settings {
    pub(crate) store: PersistenceInput,
    pub(crate) schema_version: u32,
    pub(crate) bot_username: Option<String>,
    pub(crate) clock: Clock,
    pub(crate) random: Option<RandomSource>,
    pub(crate) callback_data: Option<CallbackDataSettings>,
    pub(crate) migrations: Migrations,
    /// The names of the Application's job callbacks.
    pub(crate) job_names: Rc<std::collections::BTreeSet<String>>,
}

/// Everything one update loaded; shared by the contexts of its handlers.
pub(crate) struct UpdateState<B, C, U> {
    pub(crate) update: Update,
    /// The bot handlers call: with arbitrary callback data on, one that stores the data of the
    /// inline keyboards it sends ([`callback_data`]).
    pub(crate) bot: Bot,
    /// What this update did with arbitrary callback data: keyboards made, and where keyboards
    /// were sent.
    pub(crate) keyboards: Keyboards,
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
    /// The Bot API calls handlers queued ([`crate::outbox`]), in order.
    queued: RefCell<Vec<Call>>,
    job_names: Rc<std::collections::BTreeSet<String>>,
    /// The job this state runs, for a job run ([`crate::jobs`]).
    job: RefCell<Option<Job>>,
}

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
    /// Whether `baseline` is what storage holds; `false` for an entry deleted without being
    /// read ([`UpdateState::delete_entry`]), which is written whatever its value.
    known: bool,
}

impl<B: DataType, C: DataType, U: DataType> UpdateState<B, C, U> {
    /// Loads what `update` needs in one read: bot_data, the effective chat's and user's data
    /// (each only if stored) and `extra` keys (conversation entries of the handlers). Handlers
    /// get a bot over `api`; with arbitrary callback data on, it stores the data of outgoing
    /// inline keyboards in this state.
    pub(crate) async fn load(
        update: Update,
        api: Rc<dyn BotApi>,
        persistence: Rc<dyn Persistence>,
        settings: Settings,
        extra: Vec<Key>,
    ) -> Result<Rc<Self>> {
        let Settings {
            store,
            schema_version,
            bot_username,
            clock,
            random,
            callback_data,
            migrations,
            job_names,
        } = settings;
        let state = Rc::new_cyclic(|weak: &std::rc::Weak<Self>| Self {
            bot: match callback_data {
                Some(_) => callback_data::outgoing_bot(api, weak.clone()),
                None => Bot::new(api),
            },
            keyboards: Keyboards::default(),
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
            queued: RefCell::new(Vec::new()),
            job_names,
            job: RefCell::new(None),
            update,
        });
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
            if (slot.known && slot.value == slot.baseline) || !self.stores(key) {
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

    /// Whether a handler asked to stop processing this update.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.get()
    }

    /// Ends the walk through handler groups after the current handler.
    pub(crate) fn stop(&self) {
        self.stop.set(true);
    }

    /// Read round trips so far.
    pub(crate) fn reads(&self) -> usize {
        self.reads.get()
    }

    /// The Application's clock, now.
    pub(crate) fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// Fills `buf` from the Application's random source. A source that fails is an error,
    /// never the buffer as it was: an id made from it could be guessed. A source that answers
    /// `Ok` but leaves 8 or more bytes all zero (real randomness does that with a chance of
    /// 2^-64 at most) is taken for one that failed silently.
    pub(crate) fn fill_random(&self, buf: &mut [u8]) -> Result<()> {
        let random = self.random.as_ref().ok_or_else(|| {
            Error::Config(
                "no random source for callback data ids: pass one to \
                 ApplicationBuilder::random (on Workers, crypto.getRandomValues)"
                    .into(),
            )
        })?;
        buf.fill(0);
        random(buf).map_err(Error::Random)?;
        if buf.len() >= 8 && buf.iter().all(|&b| b == 0) {
            return Err(Error::Random(
                "it answered Ok but left the buffer zeroed".into(),
            ));
        }
        Ok(())
    }

    /// The arbitrary callback data settings, if they are on.
    pub(crate) fn callback_data(&self) -> Option<CallbackDataSettings> {
        self.callback_data
    }

    /// The bot's username (without `@`), if known.
    pub(crate) fn bot_username(&self) -> Option<&str> {
        self.bot_username.as_deref()
    }

    /// Queues a Bot API call, sent after the update's changes commit ([`crate::outbox`]).
    /// With arbitrary callback data on, its inline keyboards' data is stored now, as for a
    /// call made at once.
    pub(crate) fn queue(&self, mut call: Call) -> Result<()> {
        if self.callback_data.is_some() {
            self.prepare_queued(&mut call.params)?;
        }
        self.queued.borrow_mut().push(call);
        Ok(())
    }

    /// The calls queued so far, taken out.
    pub(crate) fn take_queued(&self) -> Vec<Call> {
        self.queued.take()
    }

    /// Runs `f` on bot_data.
    pub(crate) fn with_bot_data<R>(&self, f: impl FnOnce(&mut B) -> R) -> Result<R> {
        let mut slot = self
            .bot_data
            .try_borrow_mut()
            .map_err(|_| Error::NestedAccess("bot_data"))?;
        let slot = slot.as_mut().ok_or(Error::Missing("bot_data"))?;
        Ok(f(&mut slot.value))
    }

    /// Runs `f` on a loaded chat's chat_data.
    pub(crate) fn with_chat_data<R>(&self, chat_id: i64, f: impl FnOnce(&mut C) -> R) -> Result<R> {
        with_slot(&self.chats, chat_id, "chat_data", f)
    }

    /// Runs `f` on a loaded user's user_data.
    pub(crate) fn with_user_data<R>(&self, user_id: i64, f: impl FnOnce(&mut U) -> R) -> Result<R> {
        with_slot(&self.users, user_id, "user_data", f)
    }

    /// Loads the chat_data of those `chat_ids` this update has not loaded yet, in one read.
    pub(crate) async fn load_chat_data(&self, chat_ids: &[i64]) -> Result<()> {
        let missing: Vec<Key> = chat_ids
            .iter()
            .filter(|id| !self.chats.borrow().contains_key(id))
            .map(|id| Key::ChatData(*id))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        self.load_keys(missing).await
    }

    /// Loads the user_data of those `user_ids` this update has not loaded yet, in one read.
    pub(crate) async fn load_user_data(&self, user_ids: &[i64]) -> Result<()> {
        let missing: Vec<Key> = user_ids
            .iter()
            .filter(|id| !self.users.borrow().contains_key(id))
            .map(|id| Key::UserData(*id))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        self.load_keys(missing).await
    }

    /// Empties a chat's chat_data and deletes it at the end of the update.
    pub(crate) fn drop_chat_data(&self, chat_id: i64) -> Result<()> {
        let key = Key::ChatData(chat_id);
        drop_slot(&self.chats, chat_id, key, "chat_data", self.store.chat_data)
    }

    /// Empties a user's user_data and deletes it at the end of the update.
    pub(crate) fn drop_user_data(&self, user_id: i64) -> Result<()> {
        let key = Key::UserData(user_id);
        drop_slot(&self.users, user_id, key, "user_data", self.store.user_data)
    }

    /// The persistence the update reads and writes.
    pub(crate) fn persistence(&self) -> &dyn Persistence {
        self.persistence.as_ref()
    }

    /// Whether the Application has a job callback named `name`.
    pub(crate) fn has_job_callback(&self, name: &str) -> bool {
        self.job_names.contains(name)
    }

    /// The job this state runs, if it is a job run's.
    pub(crate) fn job(&self) -> Option<Job> {
        self.job.borrow().clone()
    }

    /// Makes this state a run of `job`.
    pub(crate) fn set_job(&self, job: Job) {
        *self.job.borrow_mut() = Some(job);
    }

    /// What this update set an untyped entry to: `None` when it did not touch it,
    /// `Some(None)` when it removed it.
    pub(crate) fn touched(&self, key: &Key) -> Option<Option<Value>> {
        let entries = self.entries.borrow();
        let slot = entries.get(key)?;
        (!slot.known || slot.value != slot.baseline).then(|| slot.value.clone())
    }

    /// The untyped entries of `kind` this update set or removed.
    pub(crate) fn touched_entries(&self, kind: KeyKind) -> Vec<(Key, Option<Value>)> {
        let keys: Vec<Key> = self
            .entries
            .borrow()
            .keys()
            .filter(|key| key.kind() == kind)
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|key| Some((key.clone(), self.touched(&key)?)))
            .collect()
    }

    /// An untyped entry, `None` if absent or not loaded.
    pub(crate) fn entry(&self, key: &Key) -> Option<Value> {
        self.entries.borrow().get(key)?.value.clone()
    }

    /// Sets (or with `None` removes) an untyped entry.
    pub(crate) fn set_entry(&self, key: Key, value: Option<Value>) {
        let mut entries = self.entries.borrow_mut();
        match entries.get_mut(&key) {
            Some(slot) => slot.value = value,
            None => {
                entries.insert(
                    key,
                    RawSlot {
                        value,
                        baseline: None,
                        known: true,
                    },
                );
            }
        }
    }

    /// Deletes an untyped entry at the end of the update, whether or not this update read it
    /// (an entry it did not read is deleted blindly: no read is spent to learn whether it is
    /// there).
    pub(crate) fn delete_entry(&self, key: Key) {
        let mut entries = self.entries.borrow_mut();
        match entries.get_mut(&key) {
            Some(slot) => slot.value = None,
            None => {
                entries.insert(
                    key,
                    RawSlot {
                        value: None,
                        baseline: None,
                        known: false,
                    },
                );
            }
        }
    }

    /// Whether this update deletes the untyped entry `key` (it was stored, or was not read,
    /// and is now removed).
    pub(crate) fn deletes_entry(&self, key: &Key) -> bool {
        self.entries
            .borrow()
            .get(key)
            .is_some_and(|slot| slot.value.is_none() && (slot.baseline.is_some() || !slot.known))
    }

    /// Loads the untyped entries of `keys` this update has not loaded yet, in one read.
    pub(crate) async fn load_entries(&self, keys: Vec<Key>) -> Result<()> {
        let missing: Vec<Key> = {
            let entries = self.entries.borrow();
            keys.into_iter()
                .filter(|k| !entries.contains_key(k))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        self.load_keys(missing).await
    }

    fn stores(&self, key: &Key) -> bool {
        match key {
            Key::BotData => self.store.bot_data,
            Key::ChatData(_) => self.store.chat_data,
            Key::UserData(_) => self.store.user_data,
            Key::CallbackKeyboard(_) | Key::CallbackQuery(_) | Key::KeyboardIndex(_) => {
                self.store.callback_data
            }
            Key::Conversation { .. }
            | Key::Outbox { .. }
            | Key::Job { .. }
            | Key::JobDue { .. } => true,
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
                describe_keys(&stored),
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

    /// Adds a loaded entry to the state.
    async fn insert(&self, key: Key, data: Option<Value>, persist: bool) -> Result<()> {
        match &key {
            Key::BotData => {
                let slot = self.typed(&key, data, persist).await?;
                *self.bot_data.borrow_mut() = Some(slot);
            }
            Key::ChatData(id) => {
                let slot = self.typed(&key, data, persist).await?;
                self.chats.borrow_mut().insert(*id, slot);
            }
            Key::UserData(id) => {
                let slot = self.typed(&key, data, persist).await?;
                self.users.borrow_mut().insert(*id, slot);
            }
            _ => {
                let slot = RawSlot {
                    baseline: data.clone(),
                    value: data,
                    known: true,
                };
                self.entries.borrow_mut().insert(key, slot);
            }
        }
        Ok(())
    }

    /// A typed entry's slot. An entry of a stored kind is refreshed first (PTB's
    /// `refresh_*_data`, which `CallbackContext.refresh_data` calls for every handled update),
    /// an absent one as its type's default: a backend that fills data from an outside source
    /// fills new chats and users too.
    async fn typed<T: DataType>(
        &self,
        key: &Key,
        data: Option<Value>,
        persist: bool,
    ) -> Result<Slot<T>> {
        let backend = self.persistence.backend();
        if !persist {
            return typed_slot(backend, key, Value::Null, false);
        }
        let absent = match data {
            Some(_) => None,
            None => Some(
                serde_json::to_value(T::default()).map_err(|e| Error::Encode {
                    key: key.to_string(),
                    message: e.to_string(),
                })?,
            ),
        };
        let mut data = data.or_else(|| absent.clone()).unwrap_or(Value::Null);
        match key {
            Key::BotData => self.persistence.refresh_bot_data(&mut data).await?,
            Key::ChatData(id) => self.persistence.refresh_chat_data(*id, &mut data).await?,
            Key::UserData(id) => self.persistence.refresh_user_data(*id, &mut data).await?,
            _ => {}
        }
        if absent.as_ref() == Some(&data) {
            // Absent and left as it was: the default itself, without a round trip through JSON.
            data = Value::Null;
        }
        typed_slot(backend, key, data, true)
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

/// Runs `f` on the slot of `id`. The map is already borrowed when this runs inside a closure
/// of the same data: that is an [`Error::NestedAccess`], where a second borrow would panic.
fn with_slot<T, R>(
    map: &RefCell<BTreeMap<i64, Slot<T>>>,
    id: i64,
    what: &'static str,
    f: impl FnOnce(&mut T) -> R,
) -> Result<R> {
    let mut map = map
        .try_borrow_mut()
        .map_err(|_| Error::NestedAccess(what))?;
    let slot = map.get_mut(&id).ok_or(Error::Missing(what))?;
    Ok(f(&mut slot.value))
}

fn drop_slot<T: DataType>(
    map: &RefCell<BTreeMap<i64, Slot<T>>>,
    id: i64,
    key: Key,
    what: &'static str,
    persist: bool,
) -> Result<()> {
    let mut map = map
        .try_borrow_mut()
        .map_err(|_| Error::NestedAccess(what))?;
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
