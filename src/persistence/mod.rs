//! Persistence: where bot, chat and user data, conversation states and callback data live.
//!
//! python-telegram-bot's `BasePersistence` loads everything at start-up and writes on a timer.
//! Neither fits the edge, where every request may run in a fresh isolate. edgegram's
//! [`Persistence`] is a small batched key-value contract instead; the [`Application`] calls it
//! exactly twice per update:
//!
//! 1. **one [`read`](Persistence::read)** of the entries the update needs (bot_data, the
//!    effective chat's chat_data and user's user_data, the conversation entries of its
//!    handlers), before any handler runs;
//! 2. **one [`write`](Persistence::write)** at the end of the request, with the entries whose
//!    serialized value changed and the deletions of dropped ones, followed by
//!    [`flush`](Persistence::flush). An update that changes nothing writes nothing.
//!
//! Keys, the stored-value envelope and the diffing live once in the core
//! ([`Key`], [`codec`], [`crate::Application`]); a backend only moves strings.
//! The PTB-named conveniences (`get_chat_data`, `update_user_data`, `drop_chat_data`, ...)
//! come with every backend through [`PersistenceExt`].
//!
//! [`Application`]: crate::Application

pub mod codec;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod dict;
#[cfg(not(target_arch = "wasm32"))]
pub mod file;
mod keys;
pub mod limits;
pub mod memory;
pub mod processed;
#[cfg(any(test, feature = "testing"))]
pub mod spy;

use futures::future::LocalBoxFuture;
use serde_json::Value;

use crate::error::{Error, Result};

pub use keys::DEFAULT_PREFIX;

/// One stored entry's address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// The bot-wide data.
    BotData,
    /// One chat's data.
    ChatData(i64),
    /// One user's data.
    UserData(i64),
    /// One conversation's state for one key, e.g. `name = "profile"`, `key = "[1, 2]"` (the
    /// key written as python-telegram-bot writes it in DictPersistence JSON).
    Conversation {
        /// The conversation's name.
        name: String,
        /// The conversation key as a JSON array with PTB's separators.
        key: String,
    },
    /// One inline keyboard's arbitrary callback data, by keyboard id.
    CallbackKeyboard(String),
    /// Which keyboard a callback query id belongs to.
    CallbackQuery(String),
    /// The keyboards made in one chat (`"chat.<id>"`) or, for updates without a chat, for
    /// one user (`"user.<id>"`), with when each was last used: what bounds a chat's stored
    /// keyboards without listing storage. edgegram's own bookkeeping, not part of PTB's
    /// DictPersistence export.
    KeyboardIndex(String),
    /// The Bot API calls an update queued, stored with its changes until they are sent
    /// ([`crate::outbox`]): by the update's chat (0 for none) and id, so that
    /// listing a chat's outboxes gives them in update order. edgegram's own bookkeeping, not part of PTB's DictPersistence export.
    Outbox {
        /// The update's chat id (0 when it has none).
        chat: i64,
        /// The update's id.
        update_id: i64,
    },
    /// One scheduled job ([`crate::jobs`]): by its chat (0 for none), so that with
    /// `DO_ROUTING=chat` it lives in that chat's object, and its id. edgegram's own, not part
    /// of PTB's DictPersistence export (PTB does not persist jobs).
    Job {
        /// The job's chat id (0 when it has none).
        chat: i64,
        /// The job's id.
        id: String,
    },
    /// The job index: one entry per scheduled job, at the time of its next run, so that the
    /// due jobs are the first entries of an ordered listing
    /// ([`Persistence::jobs_due`]) whatever the number of jobs.
    JobDue {
        /// When the job runs next (ms since the epoch).
        at_ms: i64,
        /// The job's chat id (0 when it has none).
        chat: i64,
        /// The job's id.
        id: String,
    },
}

/// The kinds of [`Key`], for listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    /// [`Key::BotData`]
    BotData,
    /// [`Key::ChatData`]
    ChatData,
    /// [`Key::UserData`]
    UserData,
    /// [`Key::Conversation`]
    Conversation,
    /// [`Key::CallbackKeyboard`]
    CallbackKeyboard,
    /// [`Key::CallbackQuery`]
    CallbackQuery,
    /// [`Key::KeyboardIndex`]
    KeyboardIndex,
    /// [`Key::Outbox`]
    Outbox,
    /// [`Key::Job`]
    Job,
    /// [`Key::JobDue`]
    JobDue,
}

impl KeyKind {
    /// Whether DictPersistence documents (export, a replacing import) cover this kind: every
    /// kind but [`KeyKind::Outbox`] (the replies still to be sent) and the jobs, which are no
    /// data of the bot in PTB's sense (an export skips them, an import leaves them).
    pub fn in_documents(self) -> bool {
        !matches!(self, KeyKind::Outbox | KeyKind::Job | KeyKind::JobDue)
    }

    /// Every kind, in export order.
    pub const ALL: [KeyKind; 10] = [
        KeyKind::BotData,
        KeyKind::ChatData,
        KeyKind::UserData,
        KeyKind::Conversation,
        KeyKind::CallbackKeyboard,
        KeyKind::CallbackQuery,
        KeyKind::KeyboardIndex,
        KeyKind::Outbox,
        KeyKind::Job,
        KeyKind::JobDue,
    ];
}

impl Key {
    /// This key's kind.
    pub fn kind(&self) -> KeyKind {
        match self {
            Key::BotData => KeyKind::BotData,
            Key::ChatData(_) => KeyKind::ChatData,
            Key::UserData(_) => KeyKind::UserData,
            Key::Conversation { .. } => KeyKind::Conversation,
            Key::CallbackKeyboard(_) => KeyKind::CallbackKeyboard,
            Key::CallbackQuery(_) => KeyKind::CallbackQuery,
            Key::KeyboardIndex(_) => KeyKind::KeyboardIndex,
            Key::Outbox { .. } => KeyKind::Outbox,
            Key::Job { .. } => KeyKind::Job,
            Key::JobDue { .. } => KeyKind::JobDue,
        }
    }

    /// The key as a string under `prefix`, for string-keyed stores (KV, Durable Objects).
    /// [`Key::parse`] reverses it.
    pub fn encode(&self, prefix: &str) -> String {
        keys::encode(self, prefix)
    }

    /// Parses a string written by [`Key::encode`] with the same prefix.
    pub fn parse(encoded: &str, prefix: &str) -> Option<Key> {
        keys::parse(encoded, prefix)
    }

    /// The string prefix under which all keys of `kind` are encoded.
    pub fn kind_prefix(kind: KeyKind, prefix: &str) -> String {
        keys::kind_prefix(kind, prefix)
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&keys::encode(self, ""))
    }
}

/// One change of an end-of-request write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Store this encoded value (see [`codec`]) under the key.
    Put(Key, String),
    /// Remove the key (no error if it is absent).
    Delete(Key),
}

impl Change {
    /// The key this change concerns.
    pub fn key(&self) -> &Key {
        match self {
            Change::Put(key, _) | Change::Delete(key) => key,
        }
    }
}

/// Which kinds of data are stored, as PTB's `PersistenceInput`. Data of a kind that is not
/// stored still exists during one update (handlers may use it) but starts empty every time and
/// is neither read nor written. Conversation states are stored for every conversation that is
/// declared persistent, whatever this says (as in PTB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistenceInput {
    /// Store `bot_data`.
    pub bot_data: bool,
    /// Store `chat_data`.
    pub chat_data: bool,
    /// Store `user_data`.
    pub user_data: bool,
    /// Store arbitrary callback data.
    pub callback_data: bool,
}

impl Default for PersistenceInput {
    fn default() -> Self {
        Self::ALL
    }
}

impl PersistenceInput {
    /// Store everything (the default).
    pub const ALL: Self = Self {
        bot_data: true,
        chat_data: true,
        user_data: true,
        callback_data: true,
    };
    /// Store nothing but persistent conversations.
    pub const NONE: Self = Self {
        bot_data: false,
        chat_data: false,
        user_data: false,
        callback_data: false,
    };
}

/// A storage backend: a batched key-value store of encoded entries.
///
/// Implement the three required methods; everything PTB-shaped is built on them once, in the
/// core. Backends are single-threaded (Workers run one isolate thread), so nothing here is
/// `Send`.
///
/// Methods return boxed futures so that the trait can be used as `dyn Persistence`.
pub trait Persistence {
    /// A short name used in errors, e.g. `"kv"`.
    fn backend(&self) -> &'static str;

    /// Reads `keys` and answers one slot per key, in the same order: `None` for a key that is
    /// absent.
    ///
    /// Called by the [`Application`](crate::Application) once per update, before handlers
    /// run, with every key that update needs; also by export and the [`PersistenceExt`]
    /// getters. Must not fail for a missing key, must not decode values (the core does, so
    /// that a corrupt value is reported with its key and never overwritten), and should use
    /// one round trip where the store allows it.
    fn read<'a>(&'a self, keys: &'a [Key]) -> LocalBoxFuture<'a, Result<Vec<Option<String>>>>;

    /// Applies `changes` (puts and deletes of distinct keys).
    ///
    /// Called by the Application once per update at the end of the request, only when
    /// something changed, and by import. Should apply all changes or none where the store
    /// allows it and say in its docs where it does not. An `Err` makes the webhook answer
    /// 5xx, so Telegram delivers the update again.
    fn write<'a>(&'a self, changes: &'a [Change]) -> LocalBoxFuture<'a, Result<()>>;

    /// Lists the stored keys of one kind, for export and import. Not called per update.
    fn list(&self, kind: KeyKind) -> LocalBoxFuture<'_, Result<Vec<Key>>>;

    /// The job index's entries ([`Key::JobDue`]) due at or before `until_ms`, earliest first,
    /// at most `limit`: what a host's timer runs ([`crate::jobs`]). The default lists every
    /// entry of the index and sorts them, a scan, fine for memory and files; ordered stores
    /// override it with one ranged listing (Durable Objects), so that a run costs the same
    /// with a thousand jobs pending as with one.
    fn jobs_due(&self, until_ms: i64, limit: usize) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        Box::pin(async move {
            let mut due: Vec<Key> = self
                .list(KeyKind::JobDue)
                .await?
                .into_iter()
                .filter(|key| matches!(key, Key::JobDue { at_ms, .. } if *at_ms <= until_ms))
                .collect();
            due.sort();
            due.truncate(limit);
            Ok(due)
        })
    }

    /// Whether a host runs the jobs stored here when they are due ([`crate::jobs`]): a
    /// Durable Object's alarm does; KV and D1 have no timer, and scheduling a job on them is
    /// refused with an error rather than kept for ever unrun. The default says no.
    fn runs_jobs(&self) -> bool {
        false
    }

    /// Where the store keeps processed-update records ([`processed`]), the update it is
    /// recording: the state behind [`begin_update`](Persistence::begin_update) and
    /// [`commit_marker`](Persistence::commit_marker). `None` (the default): no records.
    fn pending(&self) -> Option<&processed::Pending> {
        None
    }

    /// Starts handling `update_id` effectively once, where the store keeps processed-update
    /// records: the next [`read`](Persistence::read) also looks for the update's record and
    /// fails with [`Error::AlreadyProcessed`] if one younger than `window_ms` is there; the
    /// next [`write`](Persistence::write) records the update with its changes (or
    /// [`commit_marker`](Persistence::commit_marker) alone). Answers whether the store keeps
    /// records; one that keeps none applies a redelivery again.
    fn begin_update(&self, update_id: i64, now_ms: i64, window_ms: i64) -> bool {
        match self.pending() {
            Some(pending) => {
                pending.begin(update_id, now_ms, window_ms);
                true
            }
            None => false,
        }
    }

    /// Records the update [`begin_update`](Persistence::begin_update) started, if no write
    /// carried its record (an update that changed nothing).
    fn commit_marker(&self) -> LocalBoxFuture<'_, Result<()>> {
        Box::pin(async move {
            match self.pending() {
                Some(pending) if !pending.written() => self.write(&[]).await,
                _ => Ok(()),
            }
        })
    }

    /// The largest entry the store takes, in bytes as the store counts them, if it has a
    /// limit; a write with any entry over it must fail whole ([`Error::TooLarge`]) with nothing
    /// of it applied. `None`: no limit of its own (memory, file).
    fn max_entry_bytes(&self) -> Option<usize> {
        None
    }

    /// Makes written changes durable, as PTB's `flush`. Called once per update right after
    /// [`write`](Persistence::write) (also when nothing was written), and after import.
    /// Backends that write through in `write` leave the default, which does nothing.
    fn flush(&self) -> LocalBoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Lets the backend update bot_data from an outside source after it was read and decoded,
    /// before handlers see it (PTB's `refresh_bot_data`). Called once per update that loads
    /// bot_data. Must not write. The default does nothing.
    fn refresh_bot_data<'a>(&'a self, _data: &'a mut Value) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// As [`refresh_bot_data`](Persistence::refresh_bot_data), for one chat's data.
    fn refresh_chat_data<'a>(
        &'a self,
        _chat_id: i64,
        _data: &'a mut Value,
    ) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// As [`refresh_bot_data`](Persistence::refresh_bot_data), for one user's data.
    fn refresh_user_data<'a>(
        &'a self,
        _user_id: i64,
        _data: &'a mut Value,
    ) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// PTB's persistence methods, for every backend. Values are the decoded JSON data; the stored
/// envelope (`{"v": <schema version>, "data": ..}`, see [`codec`]) is handled here.
///
/// **Schema versions.** The plain writes (`update_bot_data`, `update_chat_data`,
/// `update_user_data`, `update_conversation`, `put_entry`) store schema version 1, the
/// version of an Application without [`schema_version`]. For an Application at
/// `schema_version(n)`, write through [`versioned(n)`](PersistenceExt::versioned): a value in
/// version n's shape stored as version 1 would be migrated again on its next load, and a
/// migration that expects version 1's shape would fail that update on every retry. Reads
/// answer the data whatever version wrote it; [`get_stored`](PersistenceExt::get_stored)
/// also answers the version. Drops need no version.
///
/// [`schema_version`]: crate::ApplicationBuilder::schema_version
#[allow(async_fn_in_trait)] // single-threaded: the futures need not be Send
pub trait PersistenceExt: Persistence {
    /// Reads and decodes one entry: its data, whatever schema version wrote it.
    async fn get_entry(&self, key: &Key) -> Result<Option<Value>> {
        Ok(self.get_stored(key).await?.map(|stored| stored.data))
    }

    /// Reads and decodes one entry with the schema version it was written at.
    async fn get_stored(&self, key: &Key) -> Result<Option<codec::Stored>> {
        let raw = self.read(std::slice::from_ref(key)).await?;
        let Some(raw) = raw.into_iter().next().flatten() else {
            return Ok(None);
        };
        codec::decode(&raw)
            .map(Some)
            .map_err(|message| Error::Decode {
                backend: self.backend(),
                key: key.to_string(),
                message,
            })
    }

    /// The PTB-named writes at schema version `version` (from 1, as
    /// [`ApplicationBuilder::schema_version`](crate::ApplicationBuilder::schema_version)):
    /// `store.versioned(2).update_user_data(id, &data)` stores `data` as version 2, which an
    /// Application at `schema_version(2)` loads without migrating it.
    fn versioned(&self, version: u32) -> Versioned<'_, Self> {
        Versioned {
            persistence: self,
            version,
        }
    }

    /// Encodes and stores one entry at schema version 1, then flushes (see
    /// [`Versioned::put_entry`] for another version).
    async fn put_entry(&self, key: Key, data: &Value) -> Result<()> {
        self.versioned(1).put_entry(key, data).await
    }

    /// Deletes one entry, then flushes.
    async fn delete_entry(&self, key: Key) -> Result<()> {
        self.write(&[Change::Delete(key)]).await?;
        self.flush().await
    }

    /// PTB `get_bot_data`.
    async fn get_bot_data(&self) -> Result<Option<Value>> {
        self.get_entry(&Key::BotData).await
    }
    /// PTB `update_bot_data`, at schema version 1.
    async fn update_bot_data(&self, data: &Value) -> Result<()> {
        self.versioned(1).update_bot_data(data).await
    }
    /// PTB `get_chat_data`, for one chat.
    async fn get_chat_data(&self, chat_id: i64) -> Result<Option<Value>> {
        self.get_entry(&Key::ChatData(chat_id)).await
    }
    /// PTB `update_chat_data`, at schema version 1.
    async fn update_chat_data(&self, chat_id: i64, data: &Value) -> Result<()> {
        self.versioned(1).update_chat_data(chat_id, data).await
    }
    /// PTB `drop_chat_data`.
    async fn drop_chat_data(&self, chat_id: i64) -> Result<()> {
        self.delete_entry(Key::ChatData(chat_id)).await
    }
    /// PTB `get_user_data`, for one user.
    async fn get_user_data(&self, user_id: i64) -> Result<Option<Value>> {
        self.get_entry(&Key::UserData(user_id)).await
    }
    /// PTB `update_user_data`, at schema version 1.
    async fn update_user_data(&self, user_id: i64, data: &Value) -> Result<()> {
        self.versioned(1).update_user_data(user_id, data).await
    }
    /// PTB `drop_user_data`.
    async fn drop_user_data(&self, user_id: i64) -> Result<()> {
        self.delete_entry(Key::UserData(user_id)).await
    }
    /// PTB `get_conversations`, for one conversation key.
    async fn get_conversation(&self, name: &str, key: &str) -> Result<Option<Value>> {
        self.get_entry(&Key::Conversation {
            name: name.into(),
            key: key.into(),
        })
        .await
    }
    /// PTB `update_conversation`, at schema version 1: `None` (END) removes the entry.
    async fn update_conversation(
        &self,
        name: &str,
        key: &str,
        state: Option<&Value>,
    ) -> Result<()> {
        self.versioned(1)
            .update_conversation(name, key, state)
            .await
    }
}

/// PTB's writes at one schema version, from [`PersistenceExt::versioned`]. Each stores the
/// data in the envelope of that version, then flushes.
pub struct Versioned<'a, P: ?Sized> {
    persistence: &'a P,
    version: u32,
}

impl<P: Persistence + ?Sized> Versioned<'_, P> {
    /// The schema version these writes store.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Encodes and stores one entry at this version, then flushes.
    pub async fn put_entry(&self, key: Key, data: &Value) -> Result<()> {
        let encoded = codec::encode(self.version, &data.to_string());
        self.persistence.write(&[Change::Put(key, encoded)]).await?;
        self.persistence.flush().await
    }

    /// PTB `update_bot_data`, at this version.
    pub async fn update_bot_data(&self, data: &Value) -> Result<()> {
        self.put_entry(Key::BotData, data).await
    }

    /// PTB `update_chat_data`, at this version.
    pub async fn update_chat_data(&self, chat_id: i64, data: &Value) -> Result<()> {
        self.put_entry(Key::ChatData(chat_id), data).await
    }

    /// PTB `update_user_data`, at this version.
    pub async fn update_user_data(&self, user_id: i64, data: &Value) -> Result<()> {
        self.put_entry(Key::UserData(user_id), data).await
    }

    /// PTB `update_conversation`, at this version: `None` (END) removes the entry.
    pub async fn update_conversation(
        &self,
        name: &str,
        key: &str,
        state: Option<&Value>,
    ) -> Result<()> {
        let key = Key::Conversation {
            name: name.into(),
            key: key.into(),
        };
        match state {
            Some(state) => self.put_entry(key, state).await,
            None => self.persistence.delete_entry(key).await,
        }
    }
}

impl<P: Persistence + ?Sized> PersistenceExt for P {}

/// Builds a [`Error::Storage`] for `backend`.
pub fn storage_error(
    backend: &'static str,
    operation: &'static str,
    key: impl Into<String>,
    message: impl Into<String>,
) -> Error {
    Error::Storage {
        backend,
        operation,
        key: key.into(),
        message: message.into(),
    }
}

/// Describes a batch of keys for an error message: the key, or the first and how many more.
pub fn describe_keys(keys: &[Key]) -> String {
    match keys {
        [] => "no keys".into(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
    }
}
