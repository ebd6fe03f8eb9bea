//! `DO_ROUTING=chat`: one Durable Object per chat, bot_data and user_data in one home object.
//!
//! A chat object keeps chat_data, conversations and callback data in its own storage and reads
//! and writes bot_data and user_data through the home object's `/home` route
//! ([`HomeRequest`]), with compare-and-set against what the update read ([`CasOp`]). The home
//! object also keeps the registry of chat objects that hold data, for export and import.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use js_sys::Map;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::durable::{describe_encoded, transaction, Abort, DurableObjectPersistence, BATCH};
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
    fn holds(&self, current: Option<String>) -> bool {
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
    /// Read encoded keys; registers `chat` as a chat object that holds data.
    Read {
        /// Encoded keys.
        keys: Vec<String>,
        /// The chat object asking.
        chat: Option<i64>,
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
            HomeRequest::Write { ops, update } => {
                let mut keys: Vec<String> = ops.iter().map(|o| o.key.clone()).collect();
                let described = describe_encoded(&keys);
                let prefix = self.prefix.clone();
                if let Some(record) = update {
                    keys.push(record_key(&prefix, record.update_id));
                }
                let result = transaction(&self.storage, move |txn, slot| async move {
                    let current = txn.get_multiple(keys).await?;
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
    local: Rc<DurableObjectPersistence>,
    home: worker::Stub,
    chat_id: i64,
    register: bool,
    seen: RefCell<HashMap<Key, Option<String>>>,
}

impl ChatObjectPersistence {
    /// `local`: this object's storage; `home`: the home object's stub; `register`: whether
    /// the home object should (still) be told that this chat object holds data — once per
    /// object instance is enough, the registry is only read by export and import.
    pub fn new(
        local: Rc<DurableObjectPersistence>,
        home: worker::Stub,
        chat_id: i64,
        register: bool,
    ) -> Self {
        Self {
            local,
            home,
            chat_id,
            register,
            seen: RefCell::new(HashMap::new()),
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
            // Every limit before any commit: the home part must not commit when the chat
            // object's part would be refused.
            self.local.check_sizes(changes)?;
            if !home.is_empty() {
                let ops = {
                    let seen = self.seen.borrow();
                    home.iter()
                        .map(|change| {
                            let read = seen.get(change.key()).cloned();
                            CasOp {
                                key: change.key().encode(&self.local.prefix),
                                expected: match (read, change) {
                                    (Some(Some(value)), _) => Expected::Value(value),
                                    (Some(None), _) | (None, Change::Put(..)) => Expected::Absent,
                                    (None, Change::Delete(_)) => Expected::Anything,
                                },
                                value: match change {
                                    Change::Put(_, value) => Some(value.clone()),
                                    Change::Delete(_) => None,
                                },
                            }
                        })
                        .collect()
                };
                let update = self.local.current_record();
                if self
                    .call_home(&HomeRequest::Write { ops, update })
                    .await?
                    .is_none()
                {
                    let keys: Vec<Key> = home.iter().map(|c| c.key().clone()).collect();
                    return Err(Error::Conflict {
                        backend: "durable_object",
                        key: describe_keys(&keys),
                    });
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
