//! Durable Objects: [`DurableObjectPersistence`] over an object's transactional storage, and
//! [`UpdateGate`], which makes one object handle updates one at a time and each update id at
//! most once.
//!
//! Why a gate: a Durable Object is single-threaded, but its input gate opens on every
//! non-storage `await` — a handler awaiting a Bot API call lets the next request in
//! (measured here: 20 concurrent get → fetch → put left a counter at 1, see
//! `../shared/notes/platform.md`). Two updates would then read the same value and one write
//! would be lost. The gate is an async mutex held from before the read until after the
//! commit, so updates of one object run strictly one after the other. It caps one object at
//! 1 / (handler time including Bot API latency) updates per second; the per-chat routing mode
//! spreads chats over objects to go past that.
//!
//! Why effectively-once: Telegram delivers at least once, also while the first copy is still
//! running. The update's id is recorded in the same transaction as its data; a copy that
//! finds it (after waiting for the gate) is answered 200 without running handlers.

use std::cell::{Cell, RefCell};

use futures::future::LocalBoxFuture;
use std::collections::VecDeque;

use futures::channel::oneshot;
use js_sys::Map;
use serde::{Deserialize, Serialize};
use worker::{ListOptions, Storage};

use crate::error::{Error, Result};
use crate::persistence::describe_keys;
use crate::persistence::{storage_error, Change, Key, KeyKind, Persistence};

/// SQLite-backed Durable Object storage: key + value at most 2 MB.
pub const MAX_ENTRY_BYTES: usize = 2_000_000;
/// Keys per `get` batch.
const BATCH: usize = 128;
/// How long processed update ids are remembered: Telegram keeps an update at most 24 hours.
pub const PROCESSED_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// One object's storage as a [`Persistence`]. Each write is atomic (a coalesced batch, or a
/// transaction when it must compare first): all of an update's changes and its processed-update
/// record are committed together or not at all.
pub struct DurableObjectPersistence {
    storage: Storage,
    prefix: String,
    /// The processed-update record to commit with the next write.
    marker: RefCell<Option<(String, String)>>,
    marker_written: Cell<bool>,
    /// The update id whose record the next read looks for (see [`Self::begin_update`]).
    check: Cell<Option<i64>>,
    /// With compare-and-set: the raw values read of home keys, checked again at write time.
    seen: Option<RefCell<std::collections::HashMap<String, Option<String>>>>,
}

impl DurableObjectPersistence {
    /// The storage of one object, entries under `prefix`.
    pub fn new(storage: Storage, prefix: impl Into<String>) -> Self {
        Self {
            storage,
            prefix: prefix.into(),
            marker: RefCell::new(None),
            marker_written: Cell::new(false),
            check: Cell::new(None),
            seen: None,
        }
    }

    /// Writes of bot_data and user_data apply only if those entries still hold what this
    /// persistence read (the home object in `DO_ROUTING=chat`, where chat objects change
    /// them concurrently); otherwise the write fails and nothing is written.
    pub fn with_compare_and_set(mut self) -> Self {
        self.seen = Some(RefCell::new(std::collections::HashMap::new()));
        self
    }

    fn marker_key(&self, update_id: i64) -> String {
        // Zero-padded so that ids list in order and the oldest are pruned first.
        format!("{}upd:{update_id:020}", self.prefix)
    }

    /// The entries under `prefix` (at most `limit`), keys and values as stored, in key order.
    async fn list_prefix(
        &self,
        prefix: &str,
        limit: Option<usize>,
    ) -> Result<Vec<(String, String)>> {
        let mut options = ListOptions::new().prefix(prefix);
        if let Some(limit) = limit {
            options = options.limit(limit);
        }
        let listed = self
            .storage
            .list_with_options(options)
            .await
            .map_err(|e| storage_error("durable_object", "list", prefix, e.to_string()))?;
        Ok(map_entries(&listed))
    }

    /// Starts handling `update_id` effectively once: the next read also looks for its
    /// processed record (in the same storage call, so duplicates cost no extra round trip)
    /// and fails with [`Error::AlreadyProcessed`] if it is there — before any handler runs,
    /// since the Application reads before handlers. The next write records it, in the same
    /// transaction as the update's data ([`Self::commit_marker`] when nothing else is
    /// written).
    pub fn begin_update(&self, update_id: i64, now_ms: i64) {
        *self.marker.borrow_mut() = Some((self.marker_key(update_id), now_ms.to_string()));
        self.marker_written.set(false);
        self.check.set(Some(update_id));
    }

    /// Commits the processed record alone if no write carried it (an update that changed
    /// nothing, or whose handler failed and was acknowledged).
    pub async fn commit_marker(&self) -> Result<()> {
        if self.marker_written.get() {
            return Ok(());
        }
        self.write(&[]).await
    }

    /// Forgets processed ids older than the window, at most `limit` per call.
    pub async fn prune_processed(&self, now_ms: i64, limit: usize) -> Result<usize> {
        let prefix = format!("{}upd:", self.prefix);
        let mut old = Vec::new();
        for (key, value) in self.list_prefix(&prefix, Some(limit)).await? {
            let at: i64 = value.parse().unwrap_or(0);
            if now_ms - at > PROCESSED_WINDOW_MS {
                old.push(key);
            } else {
                break; // ids increase with time: the rest are newer
            }
        }
        let count = old.len();
        if count > 0 {
            self.storage
                .delete_multiple(old)
                .await
                .map_err(|e| storage_error("durable_object", "delete", prefix, e.to_string()))?;
        }
        Ok(count)
    }

    async fn read_batch(&self, keys: &[Key]) -> Result<Vec<Option<String>>> {
        let encoded: Vec<String> = keys.iter().map(|k| k.encode(&self.prefix)).collect();
        let check = self.check.take();
        let mut wanted = encoded.clone();
        if let Some(update_id) = check {
            wanted.push(self.marker_key(update_id));
        }
        let found = self.storage.get_multiple(wanted).await.map_err(|e| {
            storage_error("durable_object", "read", describe_keys(keys), e.to_string())
        })?;
        if let Some(update_id) = check {
            if found.has(&self.marker_key(update_id).into()) {
                return Err(Error::AlreadyProcessed(update_id));
            }
        }
        let values: Vec<Option<String>> = encoded
            .iter()
            .map(|k| found.get(&k.into()).as_string())
            .collect();
        if let Some(seen) = &self.seen {
            let mut seen = seen.borrow_mut();
            for ((key, encoded), value) in keys.iter().zip(encoded).zip(&values) {
                if lives_at_home(key) {
                    seen.insert(encoded, value.clone());
                }
            }
        }
        Ok(values)
    }
}

/// The string entries of a JS `Map` returned by storage.
fn map_entries(map: &Map) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(map.size() as usize);
    map.for_each(&mut |value, key| {
        if let (Some(key), Some(value)) = (key.as_string(), value.as_string()) {
            out.push((key, value));
        }
    });
    out
}

impl Persistence for DurableObjectPersistence {
    fn backend(&self) -> &'static str {
        "durable_object"
    }

    fn read<'a>(&'a self, keys: &'a [Key]) -> LocalBoxFuture<'a, Result<Vec<Option<String>>>> {
        Box::pin(async move {
            if keys.is_empty() && self.check.get().is_some() {
                // Nothing to read, but the duplicate check must still happen.
                return self.read_batch(&[]).await;
            }
            let mut values = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(BATCH) {
                values.extend(self.read_batch(chunk).await?);
            }
            Ok(values)
        })
    }

    fn write<'a>(&'a self, changes: &'a [Change]) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut puts: Vec<(String, String)> = Vec::new();
            let mut deletes: Vec<String> = Vec::new();
            let mut expect: Vec<(String, Option<String>)> = Vec::new();
            for change in changes {
                let key = change.key().encode(&self.prefix);
                if let Some(seen) = &self.seen {
                    if lives_at_home(change.key()) {
                        expect.push((key.clone(), seen.borrow().get(&key).cloned().flatten()));
                    }
                }
                match change {
                    Change::Put(_, value) => {
                        let size = key.len() + value.len();
                        if size > MAX_ENTRY_BYTES {
                            return Err(Error::TooLarge {
                                backend: "durable_object",
                                key: key.chars().take(80).collect(),
                                what: "key + value",
                                size,
                                limit: MAX_ENTRY_BYTES,
                            });
                        }
                        puts.push((key, value.clone()));
                    }
                    Change::Delete(_) => deletes.push(key),
                }
            }
            let marker = self.marker.borrow().clone();
            // An Application that read nothing never ran the duplicate check: the
            // transaction does it instead (the handlers ran, but their data is not applied).
            let unchecked = self.check.take();
            let must_be_absent = unchecked.map(|id| self.marker_key(id));
            if let Some(marker) = marker {
                puts.push(marker);
            }
            if puts.is_empty() && deletes.is_empty() {
                return Ok(());
            }
            let described = format!("{} puts and {} deletes", puts.len(), deletes.len());
            if expect.is_empty() && must_be_absent.is_none() {
                // Nothing to check: put and delete calls of up to 128 keys each, all issued
                // in the same tick (joined, no await between them), which Durable Objects
                // commit atomically (automatic write coalescing) — fewer storage calls than a
                // transaction's one call per key.
                let mut calls: Vec<LocalBoxFuture<'_, worker::Result<()>>> = Vec::new();
                for chunk in puts.chunks(BATCH) {
                    let values = js_sys::Object::new();
                    for (key, value) in chunk {
                        js_sys::Reflect::set(&values, &key.into(), &value.into()).map_err(|e| {
                            storage_error(
                                "durable_object",
                                "write",
                                described.clone(),
                                format!("{e:?}"),
                            )
                        })?;
                    }
                    calls.push(Box::pin(self.storage.put_multiple_raw(values)));
                }
                for chunk in deletes.chunks(BATCH) {
                    let keys = chunk.to_vec();
                    calls.push(Box::pin(async move {
                        self.storage.delete_multiple(keys).await.map(|_| ())
                    }));
                }
                for result in futures::future::join_all(calls).await {
                    result.map_err(|e| {
                        storage_error("durable_object", "write", described.clone(), e.to_string())
                    })?;
                }
                self.marker_written.set(true);
                return Ok(());
            }
            // One transaction: all or nothing, rolled back when the closure fails.
            let result = self
                .storage
                .transaction(move |txn| async move {
                    if let Some(marker) = must_be_absent {
                        if txn
                            .get_multiple(vec![marker.clone()])
                            .await?
                            .has(&marker.into())
                        {
                            return Err(worker::Error::RustError(DUPLICATE.into()));
                        }
                    }
                    if !expect.is_empty() {
                        let keys: Vec<String> = expect.iter().map(|(k, _)| k.clone()).collect();
                        let current = txn.get_multiple(keys).await?;
                        for (key, expected) in &expect {
                            if current.get(&key.into()).as_string() != *expected {
                                return Err(worker::Error::RustError(CONFLICT.into()));
                            }
                        }
                    }
                    for (key, value) in puts {
                        txn.put(&key, value).await?;
                    }
                    for key in deletes {
                        txn.delete(&key).await?;
                    }
                    Ok(())
                })
                .await;
            match result {
                Ok(()) => {
                    self.marker_written.set(true);
                    Ok(())
                }
                Err(e) if e.to_string().contains(DUPLICATE) => {
                    Err(Error::AlreadyProcessed(unchecked.unwrap_or_default()))
                }
                Err(e) if e.to_string().contains(CONFLICT) => Err(storage_error(
                    "durable_object",
                    "write",
                    described,
                    "bot_data or user_data changed concurrently; Telegram will redeliver this update",
                )),
                Err(e) => Err(storage_error("durable_object", "write", described, e.to_string())),
            }
        })
    }

    fn list(&self, kind: KeyKind) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        Box::pin(async move {
            let prefix = Key::kind_prefix(kind, &self.prefix);
            Ok(self
                .list_prefix(&prefix, None)
                .await?
                .into_iter()
                .filter_map(|(k, _)| Key::parse(&k, &self.prefix))
                .filter(|k| k.kind() == kind)
                .collect())
        })
    }
}

/// Serialises the updates of one object (see the module docs), first come first served:
/// updates of one chat arrive in order, and a fair queue keeps the latency tail short
/// (an unfair lock let some updates wait behind dozens of later ones).
#[derive(Default)]
pub struct UpdateGate {
    busy: Cell<bool>,
    waiting: RefCell<VecDeque<oneshot::Sender<()>>>,
}

/// Held while an update runs; passes the gate to the next in line when dropped.
pub struct GateTurn<'a> {
    gate: &'a UpdateGate,
}

impl UpdateGate {
    /// Waits until every update that arrived earlier is done.
    pub async fn enter(&self) -> GateTurn<'_> {
        if self.busy.replace(true) {
            let (sender, receiver) = oneshot::channel();
            self.waiting.borrow_mut().push_back(sender);
            // The turn is handed over with the gate still busy. A closed channel cannot
            // happen while this future is alive (the sender is only dropped after sending).
            let _ = receiver.await;
        }
        GateTurn { gate: self }
    }
}

impl Drop for GateTurn<'_> {
    fn drop(&mut self) {
        let mut waiting = self.gate.waiting.borrow_mut();
        while let Some(next) = waiting.pop_front() {
            // A waiter whose request was cancelled is skipped.
            if next.send(()).is_ok() {
                return;
            }
        }
        self.gate.busy.set(false);
    }
}

// ---------------------------------------------------------------------------------------------
// DO_ROUTING=chat: one object per chat, bot_data and user_data in one home object.

/// One conditional change sent to the home object: applied only if the key still holds
/// `expected` (the raw value the chat object read; `None`: absent).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CasOp {
    /// Encoded key.
    pub key: String,
    /// What the key must hold for the batch to apply.
    pub expected: Option<String>,
    /// The new raw value; `None` deletes.
    pub value: Option<String>,
}

/// The request bodies of the home object's routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum HomeRequest {
    /// Read encoded keys; registers `chat` as a chat object that holds data.
    Read {
        /// Encoded keys.
        keys: Vec<String>,
        /// The chat object asking.
        chat: Option<i64>,
    },
    /// Apply all ops in one transaction if every expectation holds; 409 otherwise.
    Write {
        /// The changes.
        ops: Vec<CasOp>,
    },
    /// List encoded keys under a prefix.
    List {
        /// The prefix.
        prefix: String,
    },
}

const CONFLICT: &str = "edgegram: concurrent change";
const DUPLICATE: &str = "edgegram: already processed";

impl DurableObjectPersistence {
    fn registry_key(&self, chat_id: i64) -> String {
        format!("{}reg:chat:{chat_id}", self.prefix)
    }

    /// The chat ids of chat objects that have asked this (home) object for data.
    pub async fn registered_chats(&self) -> Result<Vec<i64>> {
        let prefix = format!("{}reg:chat:", self.prefix);
        Ok(self
            .list_prefix(&prefix, None)
            .await?
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(&prefix)?.parse().ok())
            .collect())
    }

    /// Serves one home request (see [`HomeRequest`]); answers the JSON to send back, or
    /// `Ok(None)` for a write whose expectations did not hold.
    pub async fn serve_home(&self, request: HomeRequest) -> Result<Option<serde_json::Value>> {
        match request {
            HomeRequest::Read { keys, chat } => {
                if let Some(chat) = chat {
                    let key = self.registry_key(chat);
                    if !self
                        .raw_get(std::slice::from_ref(&key))
                        .await?
                        .has(&key.clone().into())
                    {
                        self.storage.put_raw(&key, "1").await.map_err(|e| {
                            storage_error("durable_object", "write", key, e.to_string())
                        })?;
                    }
                }
                let found = self.raw_get(&keys).await?;
                let values: Vec<Option<String>> = keys
                    .iter()
                    .map(|k| found.get(&k.into()).as_string())
                    .collect();
                Ok(Some(serde_json::json!(values)))
            }
            HomeRequest::Write { ops } => {
                let result = self
                    .storage
                    .transaction(move |txn| async move {
                        let keys: Vec<String> = ops.iter().map(|o| o.key.clone()).collect();
                        let current = txn.get_multiple(keys).await?;
                        for op in &ops {
                            if current.get(&op.key.clone().into()).as_string() != op.expected {
                                return Err(worker::Error::RustError(CONFLICT.into()));
                            }
                        }
                        for op in ops {
                            match op.value {
                                Some(value) => txn.put(&op.key, value).await?,
                                None => {
                                    txn.delete(&op.key).await?;
                                }
                            }
                        }
                        Ok(())
                    })
                    .await;
                match result {
                    Ok(()) => Ok(Some(serde_json::Value::Null)),
                    Err(e) if e.to_string().contains(CONFLICT) => Ok(None),
                    Err(e) => Err(storage_error(
                        "durable_object",
                        "write",
                        "home batch",
                        e.to_string(),
                    )),
                }
            }
            HomeRequest::List { prefix } => {
                let listed = self.list_prefix(&prefix, None).await?;
                let keys: Vec<String> = listed.into_iter().map(|(k, _)| k).collect();
                Ok(Some(serde_json::json!(keys)))
            }
        }
    }

    async fn raw_get(&self, keys: &[String]) -> Result<Map> {
        let map = Map::new();
        for chunk in keys.chunks(BATCH) {
            let found = self
                .storage
                .get_multiple(chunk.to_vec())
                .await
                .map_err(|e| {
                    storage_error("durable_object", "read", batch_of(chunk), e.to_string())
                })?;
            found.for_each(&mut |value, key| {
                map.set(&key, &value);
            });
        }
        Ok(map)
    }
}

fn batch_of(keys: &[String]) -> String {
    match keys {
        [] => "no keys".into(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
    }
}

/// Whether a key lives in the home object in `DO_ROUTING=chat` mode.
pub fn lives_at_home(key: &Key) -> bool {
    matches!(key, Key::BotData | Key::UserData(_))
}

/// The persistence of a chat object in `DO_ROUTING=chat` mode: chat_data, conversations and
/// callback data in the object's own storage; bot_data and user_data in the home object,
/// written with compare-and-set against what this update read.
///
/// Consistency: chat data is strongly consistent and serialised per chat (the gate). bot_data
/// and user_data are linearizable per home batch: an update whose home entries changed since
/// it read them fails with a conflict, answers 5xx and is redelivered by Telegram, so no
/// change is lost or applied twice — but its handlers run again (a reply may be sent twice).
/// The home batch commits before the chat object's own; if the latter fails after the
/// former succeeded, the retry applies the home part again (a window of one storage failure).
pub struct ChatObjectPersistence {
    local: std::rc::Rc<DurableObjectPersistence>,
    home: worker::Stub,
    chat_id: i64,
    register: bool,
    seen: RefCell<std::collections::HashMap<Key, Option<String>>>,
}

impl ChatObjectPersistence {
    /// `local`: this object's storage; `home`: the home object's stub; `register`: whether
    /// the home object should (still) be told that this chat object holds data — once per
    /// object instance is enough, the registry is only read by export and import.
    pub fn new(
        local: std::rc::Rc<DurableObjectPersistence>,
        home: worker::Stub,
        chat_id: i64,
        register: bool,
    ) -> Self {
        Self {
            local,
            home,
            chat_id,
            register,
            seen: RefCell::new(std::collections::HashMap::new()),
        }
    }

    async fn call_home(&self, request: &HomeRequest) -> Result<Option<serde_json::Value>> {
        let fail = |operation: &'static str, message: String| {
            storage_error("durable_object", operation, "home object", message)
        };
        let body = serde_json::to_string(request).map_err(|e| fail("encode", e.to_string()))?;
        let req = super::http::json_request(
            "https://edgegram.object/home",
            worker::Method::Post,
            Some(body),
        )
        .map_err(|e| fail("call", e.to_string()))?;
        let mut response = self
            .home
            .fetch_with_request(req)
            .await
            .map_err(|e| fail("call", e.to_string()))?;
        match response.status_code() {
            200 => {
                let value = response
                    .json()
                    .await
                    .map_err(|e| fail("call", e.to_string()))?;
                Ok(Some(value))
            }
            409 => Ok(None),
            status => {
                let text = response.text().await.unwrap_or_default();
                Err(fail("call", format!("home answered {status}: {text}")))
            }
        }
    }
}

impl Persistence for ChatObjectPersistence {
    fn backend(&self) -> &'static str {
        "durable_object"
    }

    fn read<'a>(&'a self, keys: &'a [Key]) -> LocalBoxFuture<'a, Result<Vec<Option<String>>>> {
        Box::pin(async move {
            let (home_keys, local_keys): (Vec<Key>, Vec<Key>) =
                keys.iter().cloned().partition(lives_at_home);
            let prefix = &self.local.prefix;
            let home_request = HomeRequest::Read {
                keys: home_keys.iter().map(|k| k.encode(prefix)).collect(),
                chat: self.register.then_some(self.chat_id),
            };
            let (home, local) = futures::future::join(
                async {
                    if home_keys.is_empty() {
                        return Ok(Vec::new());
                    }
                    let answer = self.call_home(&home_request).await?;
                    serde_json::from_value::<Vec<Option<String>>>(answer.unwrap_or_default())
                        .map_err(|e| {
                            storage_error("durable_object", "read", "home object", e.to_string())
                        })
                },
                self.local.read(&local_keys),
            )
            .await;
            let (home, local) = (home?, local?);
            if home.len() != home_keys.len() {
                return Err(storage_error(
                    "durable_object",
                    "read",
                    "home object",
                    "wrong answer length",
                ));
            }
            let mut seen = self.seen.borrow_mut();
            for (key, value) in home_keys.iter().zip(&home) {
                seen.insert(key.clone(), value.clone());
            }
            let mut home = home.into_iter();
            let mut local = local.into_iter();
            Ok(keys
                .iter()
                .map(|k| {
                    if lives_at_home(k) {
                        home.next().flatten()
                    } else {
                        local.next().flatten()
                    }
                })
                .collect())
        })
    }

    fn write<'a>(&'a self, changes: &'a [Change]) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (home, local): (Vec<Change>, Vec<Change>) = changes
                .iter()
                .cloned()
                .partition(|c| lives_at_home(c.key()));
            if !home.is_empty() {
                let ops = {
                    let seen = self.seen.borrow();
                    home.iter()
                        .map(|change| CasOp {
                            key: change.key().encode(&self.local.prefix),
                            // Never read (another chat's user, say): it must still be absent.
                            expected: seen.get(change.key()).cloned().flatten(),
                            value: match change {
                                Change::Put(_, value) => Some(value.clone()),
                                Change::Delete(_) => None,
                            },
                        })
                        .collect()
                };
                if self.call_home(&HomeRequest::Write { ops }).await?.is_none() {
                    return Err(storage_error(
                        "durable_object",
                        "write",
                        crate::persistence::describe_keys(&home.iter().map(|c| c.key().clone()).collect::<Vec<_>>()),
                        "changed concurrently by another chat's update; Telegram will redeliver this one",
                    ));
                }
            }
            self.local.write(&local).await
        })
    }

    fn list(&self, kind: KeyKind) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        Box::pin(async move {
            if !matches!(kind, KeyKind::BotData | KeyKind::UserData) {
                return self.local.list(kind).await;
            }
            let prefix = Key::kind_prefix(kind, &self.local.prefix);
            let answer = self.call_home(&HomeRequest::List { prefix }).await?;
            let keys: Vec<String> =
                serde_json::from_value(answer.unwrap_or_default()).map_err(|e| {
                    storage_error("durable_object", "list", "home object", e.to_string())
                })?;
            Ok(keys
                .iter()
                .filter_map(|k| Key::parse(k, &self.local.prefix))
                .filter(|k| k.kind() == kind)
                .collect())
        })
    }
}
