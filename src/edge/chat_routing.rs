//! `DO_ROUTING=chat`: one Durable Object per chat, bot_data and user_data in one home object.
//!
//! Every entry has one owner object ([`owner`]): a chat object keeps its chat's chat_data and
//! conversations, the home object bot_data and user_data; callback data stays where the update
//! runs. An update reads and writes entries of other objects (the home object's, or another
//! chat's: `chat_data_of`, `migrate_chat_data`) through their `/home` route ([`HomeRequest`]),
//! with compare-and-set against what it read ([`CasOp`]). The home object also keeps the
//! registry of chat objects that hold data, for export and import.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use js_sys::Map;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::deadlines;
use super::durable::{describe_encoded, transaction, Abort, DurableObjectPersistence, BATCH};
use super::object::ObjectRole;
use crate::error::{Error, Result};
use crate::persistence::processed::{index_key, record_key, Record};
use crate::persistence::{describe_keys, storage_error, Change, Key, KeyKind, Persistence};

// ---------------------------------------------------------------------------------------------
// DO_ROUTING=chat: one object per chat, bot_data and user_data in one home object.

/// One conditional change sent to the home object: applied only if the key still holds what
/// the chat object expects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CasOp {
    /// Encoded key.
    pub key: String,
    /// What the key must hold for the batch to apply.
    pub expected: Expected,
    /// The new raw value; `None` deletes.
    pub value: Option<String>,
}

/// What a home key must hold for a compare-and-set batch to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    /// The raw value the update read.
    Value(String),
    /// Absent: the update read it as absent, or put a key it never read (it must not
    /// overwrite a value it did not see).
    Absent,
    /// Whatever it holds: a delete of a key the update never read (PTB's `drop_user_data`
    /// deletes unconditionally; demanding absence would fail every delivery).
    Anything,
}

impl Expected {
    /// Whether `current`, what the key holds now, meets the expectation.
    pub(crate) fn holds(&self, current: Option<String>) -> bool {
        match self {
            Expected::Value(value) => current.as_ref() == Some(value),
            Expected::Absent => current.is_none(),
            Expected::Anything => true,
        }
    }
}

/// The request bodies of the home object's routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum HomeRequest {
    /// Read encoded keys; at the home object, registers chat objects that hold data.
    Read {
        /// Encoded keys.
        keys: Vec<String>,
        /// Chat objects to add to the home object's registry.
        #[serde(default)]
        register: Vec<i64>,
    },
    /// Apply all ops in one transaction if every expectation holds; 409 otherwise. With a
    /// record, at most once per update id: a redelivery whose home part was already committed
    /// (its chat object's own commit failed afterwards) applies nothing here again.
    Write {
        /// The changes.
        ops: Vec<CasOp>,
        /// The update being applied, recorded as processed in the same transaction.
        #[serde(default)]
        update: Option<Record>,
    },
    /// List encoded keys under a prefix.
    List {
        /// The prefix.
        prefix: String,
    },
}

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
            HomeRequest::Read { keys, register } => {
                let wanted: Vec<String> = register
                    .iter()
                    .map(|chat| self.registry_key(*chat))
                    .collect();
                let known = self.raw_get(&wanted).await?;
                for key in wanted {
                    if !known.has(&key.clone().into()) {
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
            HomeRequest::Write { ops, update } => {
                let mut keys: Vec<String> = ops.iter().map(|o| o.key.clone()).collect();
                let described = describe_encoded(&keys);
                let prefix = self.prefix.clone();
                if let Some(record) = update {
                    keys.push(record_key(&prefix, record.update_id));
                }
                let result = transaction(&self.storage, move |txn, slot| async move {
                    let current = Map::new();
                    for chunk in keys.chunks(BATCH) {
                        let found = txn.get_multiple(chunk.to_vec()).await?;
                        found.for_each(&mut |value, key| {
                            current.set(&key, &value);
                        });
                    }
                    if let Some(record) = update {
                        let key = record_key(&prefix, record.update_id);
                        if record.finds_duplicate(current.get(&key.into()).as_string()) {
                            return Ok(()); // applied by an earlier delivery
                        }
                    }
                    for op in &ops {
                        if !op
                            .expected
                            .holds(current.get(&op.key.clone().into()).as_string())
                        {
                            return Err(slot.abort(Abort::Conflict));
                        }
                    }
                    if let Some(record) = update {
                        txn.put(
                            &record_key(&prefix, record.update_id),
                            record.at_ms.to_string(),
                        )
                        .await?;
                        txn.put(&index_key(&prefix, record.at_ms, record.update_id), "")
                            .await?;
                    }
                    for op in ops {
                        match op.value {
                            Some(value) => {
                                let entry = Key::parse(&op.key, &prefix)
                                    .and_then(|key| deadlines::index_entry(&prefix, &key, &value));
                                if let Some(entry) = entry {
                                    txn.put(&entry, "").await?;
                                }
                                txn.put(&op.key, value).await?
                            }
                            None => {
                                txn.delete(&op.key).await?;
                            }
                        }
                    }
                    Ok(())
                })
                .await;
                match result {
                    Ok(Ok(())) => Ok(Some(serde_json::Value::Null)),
                    Ok(Err(_)) => Ok(None),
                    Err(e) => Err(storage_error(
                        "durable_object",
                        "write",
                        described,
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
                    storage_error(
                        "durable_object",
                        "read",
                        describe_encoded(chunk),
                        e.to_string(),
                    )
                })?;
            found.for_each(&mut |value, key| {
                map.set(&key, &value);
            });
        }
        Ok(map)
    }
}

/// The object that keeps `key` with `DO_ROUTING=chat`, wherever the update that touches it
/// runs: bot_data and user_data in the home object, a chat's chat_data in that chat's object,
/// a conversation in the object of the chat its key starts with (PTB's keys are
/// `[chat_id, user_id]`, `[chat_id]`, or `[user_id, ..]` without per_chat: a per_chat=False
/// conversation lives in its user's private chat object, one place for every chat it spans).
/// `None`: kept where the update runs (callback data, the keyboards' index).
pub fn owner(key: &Key) -> Option<ObjectRole> {
    match key {
        Key::BotData | Key::UserData(_) => Some(ObjectRole::Home),
        Key::ChatData(id) => Some(ObjectRole::Chat(*id)),
        Key::Conversation { key, .. } => {
            Some(conversation_chat(key).map_or(ObjectRole::Home, ObjectRole::Chat))
        }
        // A job runs in its chat's object (the home object's without a chat), where its
        // chat_data is: the alarm of that object runs it.
        Key::Job { chat, .. } | Key::JobDue { chat, .. } => Some(match chat {
            0 => ObjectRole::Home,
            chat => ObjectRole::Chat(*chat),
        }),
        Key::CallbackKeyboard(_)
        | Key::CallbackQuery(_)
        | Key::KeyboardIndex(_)
        | Key::Outbox { .. } => None,
    }
}

impl Expected {
    /// What a key must hold for `change` to apply, given what the update read of it (`None`:
    /// never read).
    pub(crate) fn for_change(read: Option<Option<String>>, change: &Change) -> Self {
        match (read, change) {
            (Some(Some(value)), _) => Expected::Value(value),
            (Some(None), _) | (None, Change::Put(..)) => Expected::Absent,
            (None, Change::Delete(_)) => Expected::Anything,
        }
    }
}

/// An update's persistence with `DO_ROUTING=chat`, in the object it runs in (a chat object, or
/// the home object for updates without a chat): the entries this object keeps ([`owner`]) in
/// its own storage, every other one in its owner object through that object's `/home` route
/// ([`HomeRequest`]): read with the update's one read (all objects at once), written with
/// compare-and-set against what the update read, each owner's part at most once per update id.
///
/// Consistency: each object's entries are strongly consistent; an update whose entries changed
/// since it read them (another chat's update wrote them) fails with a conflict, answers 5xx and
/// is redelivered by Telegram, so no change is lost or applied twice — but its handlers run
/// again (a reply may be sent twice). Other objects' parts commit before this object's own; if
/// the latter fails, the redelivery finds those parts recorded and applies them no more.
pub struct ChatRoutedPersistence {
    local: Rc<DurableObjectPersistence>,
    env: worker::Env,
    here: ObjectRole,
    register: bool,
    seen: RefCell<HashMap<Key, Option<String>>>,
}

impl ChatRoutedPersistence {
    /// `local`: this object's storage, with compare-and-set
    /// ([`DurableObjectPersistence::with_compare_and_set`]: other objects write it too);
    /// `here`: this object's role; `register`: whether the home object should (still) be told
    /// that this chat object holds data — once per object instance is enough, the registry is
    /// only read by export and import.
    pub fn new(
        local: Rc<DurableObjectPersistence>,
        env: worker::Env,
        here: ObjectRole,
        register: bool,
    ) -> Self {
        Self {
            local,
            env,
            here,
            register,
            seen: RefCell::new(HashMap::new()),
        }
    }

    /// The object that keeps `key`, `None` when it is this one.
    fn remote(&self, key: &Key) -> Option<ObjectRole> {
        owner(key).filter(|owner| *owner != self.here)
    }

    /// Asks the object `to` (its `/home` route); `Ok(None)` for a write that conflicted.
    async fn call(
        &self,
        to: ObjectRole,
        request: &HomeRequest,
    ) -> Result<Option<serde_json::Value>> {
        let name = to.object_name();
        let fail = |operation: &'static str, message: String| {
            storage_error(
                "durable_object",
                operation,
                format!("object {name}"),
                message,
            )
        };
        let body = serde_json::to_string(request).map_err(|e| fail("encode", e.to_string()))?;
        let req = super::http::json_request(
            "https://edgegram.object/home",
            worker::Method::Post,
            Some(body),
        )
        .map_err(|e| fail("call", e.to_string()))?;
        let stub = super::object_stub(&self.env, &name).map_err(|e| fail("call", e.to_string()))?;
        let mut response = stub
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
                Err(fail("call", format!("answered {status}: {text}")))
            }
        }
    }

    /// Tells the home object that these chat objects hold data (for export and import).
    async fn register(&self, chats: Vec<i64>) -> Result<()> {
        if chats.is_empty() {
            return Ok(());
        }
        let request = HomeRequest::Read {
            keys: Vec::new(),
            register: chats,
        };
        if self.here == ObjectRole::Home {
            self.local.serve_home(request).await.map(|_| ())
        } else {
            self.call(ObjectRole::Home, &request).await.map(|_| ())
        }
    }

    /// Reads `keys` from the object `from`, registering `register` there (the home object).
    async fn read_remote(
        &self,
        from: ObjectRole,
        keys: &[Key],
        register: Vec<i64>,
    ) -> Result<Vec<Option<String>>> {
        let request = HomeRequest::Read {
            keys: keys.iter().map(|k| k.encode(&self.local.prefix)).collect(),
            register,
        };
        let answer = self.call(from, &request).await?;
        let values: Vec<Option<String>> = serde_json::from_value(answer.unwrap_or_default())
            .map_err(|e| {
                storage_error(
                    "durable_object",
                    "read",
                    format!("object {}", from.object_name()),
                    e.to_string(),
                )
            })?;
        if values.len() != keys.len() {
            return Err(storage_error(
                "durable_object",
                "read",
                format!("object {}", from.object_name()),
                "wrong answer length",
            ));
        }
        Ok(values)
    }

    /// One owner's part of an update's changes, as compare-and-set operations.
    fn cas_ops(&self, changes: &[Change]) -> Vec<CasOp> {
        let seen = self.seen.borrow();
        changes
            .iter()
            .map(|change| CasOp {
                key: change.key().encode(&self.local.prefix),
                expected: Expected::for_change(seen.get(change.key()).cloned(), change),
                value: match change {
                    Change::Put(_, value) => Some(value.clone()),
                    Change::Delete(_) => None,
                },
            })
            .collect()
    }

    /// Writes one owner's part, at most once for this update id.
    async fn write_remote(&self, to: ObjectRole, changes: Vec<Change>) -> Result<()> {
        let request = HomeRequest::Write {
            ops: self.cas_ops(&changes),
            update: self.local.current_record(),
        };
        match self.call(to, &request).await? {
            Some(_) => Ok(()),
            None => {
                let keys: Vec<Key> = changes.iter().map(|c| c.key().clone()).collect();
                Err(Error::Conflict {
                    backend: "durable_object",
                    key: describe_keys(&keys),
                })
            }
        }
    }
}

/// The chat objects among `owners`.
fn chats_of<'a>(owners: impl Iterator<Item = &'a ObjectRole>) -> Vec<i64> {
    owners
        .filter_map(|owner| match owner {
            ObjectRole::Chat(chat) => Some(*chat),
            _ => None,
        })
        .collect()
}

impl Persistence for ChatRoutedPersistence {
    fn backend(&self) -> &'static str {
        "durable_object"
    }

    fn max_entry_bytes(&self) -> Option<usize> {
        self.local.max_entry_bytes()
    }

    fn read<'a>(&'a self, keys: &'a [Key]) -> LocalBoxFuture<'a, Result<Vec<Option<String>>>> {
        Box::pin(async move {
            let mut remote: BTreeMap<ObjectRole, Vec<Key>> = BTreeMap::new();
            let mut local_keys = Vec::new();
            for key in keys {
                match self.remote(key) {
                    Some(owner) => remote.entry(owner).or_default().push(key.clone()),
                    None => local_keys.push(key.clone()),
                }
            }
            // The home object learns which chat objects hold data: this one, and those whose
            // entries this update may write. With the home read when there is one.
            let mut register = chats_of(remote.keys());
            if self.register {
                register.extend(chats_of(std::iter::once(&self.here)));
            }
            let registered_on_read = remote.contains_key(&ObjectRole::Home);
            let reads = remote.iter().map(|(owner, keys)| {
                let register = if *owner == ObjectRole::Home {
                    register.clone()
                } else {
                    Vec::new()
                };
                self.read_remote(*owner, keys, register)
            });
            let registration = async {
                if registered_on_read {
                    Ok(())
                } else {
                    self.register(register.clone()).await
                }
            };
            let (remote_values, local, registered) = futures::future::join3(
                futures::future::join_all(reads),
                self.local.read(&local_keys),
                registration,
            )
            .await;
            registered?;
            let mut found: HashMap<Key, Option<String>> = HashMap::new();
            for ((_, keys), values) in remote.iter().zip(remote_values) {
                for (key, value) in keys.iter().zip(values?) {
                    found.insert(key.clone(), value);
                }
            }
            self.seen
                .borrow_mut()
                .extend(found.iter().map(|(k, v)| (k.clone(), v.clone())));
            let mut local = local?.into_iter();
            Ok(keys
                .iter()
                .map(|k| match found.get(k) {
                    Some(value) => value.clone(),
                    None => local.next().flatten(),
                })
                .collect())
        })
    }

    fn write<'a>(&'a self, changes: &'a [Change]) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // Every limit before any commit: no part may commit when another would be refused.
            self.local.check_sizes(changes)?;
            let mut remote: BTreeMap<ObjectRole, Vec<Change>> = BTreeMap::new();
            let mut local = Vec::new();
            for change in changes {
                match self.remote(change.key()) {
                    Some(owner) => remote.entry(owner).or_default().push(change.clone()),
                    None => local.push(change.clone()),
                }
            }
            // A chat object written without being read first must be known to the home
            // object too.
            let unread: Vec<i64> = {
                let seen = self.seen.borrow();
                remote
                    .iter()
                    .filter(|(_, changes)| changes.iter().any(|c| !seen.contains_key(c.key())))
                    .filter_map(|(owner, _)| match owner {
                        ObjectRole::Chat(chat) => Some(*chat),
                        _ => None,
                    })
                    .collect()
            };
            let writes = remote
                .into_iter()
                .map(|(owner, changes)| self.write_remote(owner, changes));
            let (written, registered) =
                futures::future::join(futures::future::join_all(writes), self.register(unread))
                    .await;
            registered?;
            for result in written {
                result?;
            }
            self.local.write(&local).await
        })
    }

    /// This object's jobs: each job lives in its chat's object ([`owner`]).
    fn jobs_due(&self, until_ms: i64, limit: usize) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        self.local.jobs_due(until_ms, limit)
    }

    /// Each object's alarm runs its own.
    fn runs_jobs(&self) -> bool {
        true
    }

    fn list(&self, kind: KeyKind) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        Box::pin(async move {
            let at_home = matches!(kind, KeyKind::BotData | KeyKind::UserData);
            if !at_home || self.here == ObjectRole::Home {
                return self.local.list(kind).await;
            }
            let prefix = Key::kind_prefix(kind, &self.local.prefix);
            let answer = self
                .call(ObjectRole::Home, &HomeRequest::List { prefix })
                .await?;
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

/// Adds a chat object's export to the home object's.
pub(crate) fn merge_export(doc: &mut serde_json::Value, part: serde_json::Value) {
    for section in ["chat_data", "user_data", "conversations"] {
        if let (Some(into), Some(from)) = (doc[section].as_object_mut(), part[section].as_object())
        {
            for (key, value) in from {
                match (into.get_mut(key), value) {
                    (
                        Some(serde_json::Value::Object(existing)),
                        serde_json::Value::Object(more),
                    ) => {
                        existing.extend(more.clone());
                    }
                    _ => {
                        into.insert(key.clone(), value.clone());
                    }
                }
            }
        }
    }
}

/// The chat a conversation key belongs to: its first element, when the key has more than one
/// (PTB's keys are `[chat_id, user_id]`, `[chat_id]`, or `[user_id]` without per_chat).
fn conversation_chat(key: &str) -> Option<i64> {
    let parts: Vec<serde_json::Value> = serde_json::from_str(key).ok()?;
    parts.first()?.as_i64()
}

/// Splits a validated DictPersistence document into per-chat parts (`Some(chat)`) and the
/// home part (`None`).
pub(crate) fn split_by_chat(
    doc: &serde_json::Value,
) -> std::collections::BTreeMap<Option<i64>, serde_json::Value> {
    let mut parts: std::collections::BTreeMap<Option<i64>, serde_json::Value> = Default::default();
    let home = parts.entry(None).or_insert_with(|| json!({}));
    home["bot_data"] = doc["bot_data"].clone();
    home["user_data"] = doc["user_data"].clone();
    if let Some(chats) = doc["chat_data"].as_object() {
        for (id, data) in chats {
            let Ok(chat) = id.parse::<i64>() else {
                continue;
            };
            let part = parts.entry(Some(chat)).or_insert_with(|| json!({}));
            part["chat_data"][id] = data.clone();
        }
    }
    if let Some(conversations) = doc["conversations"].as_object() {
        for (name, states) in conversations {
            for (key, state) in states.as_object().into_iter().flatten() {
                let part = parts
                    .entry(conversation_chat(key))
                    .or_insert_with(|| json!({}));
                part["conversations"][name][key] = state.clone();
            }
        }
    }
    parts
}
