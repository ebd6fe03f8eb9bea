//! The conversation deadline index of a Durable Object: how its alarm ends timed-out
//! conversations without reading every conversation it keeps.
//!
//! `cdl:<deadline ms, 13 digits>:<conversation key>` is put in the same atomic write as a
//! conversation entry that has a deadline. Entries are never updated in place: a conversation
//! that moves on gets a new entry and its old one stays until its time comes. The alarm walks
//! only the entries whose time has come ([`due`]), times out the conversations whose
//! *current* deadline has passed (their TIMEOUT handlers run, through the Application), and
//! deletes the entries it dealt with ([`forget`]) — so its work is the number
//! of due entries, not the number of conversations. Objects that kept conversations before the
//! index existed get it built once, on their first alarm ([`build_once`]).

use js_sys::Map;

use super::durable::{describe_encoded, transaction, DurableObjectPersistence, BATCH};
use crate::conversation;
use crate::error::Result;
use crate::persistence::{codec, storage_error, Key, KeyKind};

/// Index entries one alarm walks at most (it sets itself again when more are due).
pub const WALK_PER_ALARM: usize = 512;

fn prefix_of(prefix: &str) -> String {
    format!("{prefix}cdl:")
}

/// The index entry of a conversation entry `raw` stored under `key`, if it has a deadline.
pub(crate) fn index_entry(prefix: &str, key: &Key, raw: &str) -> Option<String> {
    if !matches!(key, Key::Conversation { .. }) {
        return None;
    }
    let deadline = codec::decode(raw)
        .ok()
        .and_then(|stored| conversation::deadline(&stored.data))?;
    Some(format!(
        "{}{:013}:{}",
        prefix_of(prefix),
        deadline.max(0),
        key.encode(prefix)
    ))
}

/// The deadline and encoded conversation key of an index entry.
fn parse_entry<'a>(prefix: &str, entry: &'a str) -> Option<(i64, &'a str)> {
    let rest = entry.strip_prefix(&prefix_of(prefix))?;
    let (at, key) = rest.split_once(':')?;
    Some((at.parse().ok()?, key))
}

/// What one alarm did with the index.
#[derive(Debug, Default)]
pub struct Walked {
    /// Conversations ended.
    pub ended: usize,
    /// Index entries walked (due ones, also those of conversations that had moved on).
    pub walked: usize,
    /// The next deadline in the index, for the next alarm.
    pub next: Option<i64>,
}

/// Ends the conversations whose deadline is at or before `now_ms` without their TIMEOUT
/// handlers, walking at most `limit` due index entries, in one transaction: the alarm's way
/// when it cannot build the Application (no valid settings). A conversation written
/// meanwhile by another object (chat routing) is judged on what it holds then.
pub async fn expire_due(
    store: &DurableObjectPersistence,
    now_ms: i64,
    limit: usize,
) -> Result<Walked> {
    let prefix = store.prefix.clone();
    let due: Vec<String> = due_entries(store, now_ms, limit).await?;
    let mut walked = Walked {
        walked: due.len(),
        ..Walked::default()
    };
    // Each due entry may add its conversation: half a batch keeps a delete within 128 keys.
    for chunk in due.chunks(BATCH / 2) {
        let conversations: Vec<String> = chunk
            .iter()
            .filter_map(|entry| parse_entry(&prefix, entry).map(|(_, key)| key.to_string()))
            .collect();
        let entries = chunk.to_vec();
        let described = describe_encoded(&conversations);
        let ended = std::rc::Rc::new(std::cell::Cell::new(0));
        let counted = ended.clone();
        transaction(&store.storage, move |txn, _| async move {
            let current: Map = txn.get_multiple(conversations.clone()).await?;
            let mut deletes = entries;
            for key in conversations {
                let deadline = current
                    .get(&key.clone().into())
                    .as_string()
                    .and_then(|raw| codec::decode(&raw).ok())
                    .and_then(|stored| conversation::deadline(&stored.data));
                if deadline.is_some_and(|deadline| deadline <= now_ms) {
                    deletes.push(key);
                    counted.set(counted.get() + 1);
                }
            }
            txn.delete_multiple(deletes).await?;
            Ok(())
        })
        .await
        .map_err(|e| storage_error("durable_object", "write", described, e.to_string()))?
        .map_err(|abort| {
            storage_error(
                "durable_object",
                "write",
                "deadline index",
                format!("{abort:?}"),
            )
        })?;
        walked.ended += ended.get();
    }
    // The first entry left: the next time the alarm has work.
    walked.next = next(store).await?;
    Ok(walked)
}

/// The index entries due at `now_ms` (at most `limit`), earliest first.
async fn due_entries(
    store: &DurableObjectPersistence,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<String>> {
    let index = prefix_of(&store.prefix);
    let end = format!("{index}{:013}", now_ms.saturating_add(1).max(0));
    let listed = store.list_range(&index, Some(&end), Some(limit)).await?;
    Ok(listed.into_iter().map(|(entry, _)| entry).collect())
}

/// The due index entries (at most `limit`), each with its conversation's key: for the alarm
/// to time each conversation out through the Application (its TIMEOUT handlers), then
/// [`forget`] the entries it dealt with.
pub async fn due(
    store: &DurableObjectPersistence,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<(String, Key)>> {
    Ok(due_entries(store, now_ms, limit)
        .await?
        .into_iter()
        .filter_map(|entry| {
            let key = parse_entry(&store.prefix, &entry)
                .and_then(|(_, key)| Key::parse(key, &store.prefix))?;
            Some((entry, key))
        })
        .collect())
}

/// Deletes index entries the alarm dealt with.
pub async fn forget(store: &DurableObjectPersistence, entries: Vec<String>) -> Result<()> {
    for chunk in entries.chunks(BATCH) {
        store
            .storage
            .delete_multiple(chunk.to_vec())
            .await
            .map_err(|e| {
                storage_error("durable_object", "delete", "deadline index", e.to_string())
            })?;
    }
    Ok(())
}

/// The first deadline in the index, for the next alarm.
pub async fn next(store: &DurableObjectPersistence) -> Result<Option<i64>> {
    let first = store
        .list_prefix(&prefix_of(&store.prefix), Some(1))
        .await?;
    Ok(first
        .first()
        .and_then(|(key, _)| parse_entry(&store.prefix, key).map(|(at, _)| at)))
}

/// Builds the index from the stored conversations once per object (those stored before the
/// index existed, or imported without it); later calls cost one read.
pub async fn build_once(store: &DurableObjectPersistence) -> Result<()> {
    let marker = format!("{}cdl-built", store.prefix);
    let found = store
        .storage
        .get_multiple(vec![marker.clone()])
        .await
        .map_err(|e| storage_error("durable_object", "read", marker.clone(), e.to_string()))?;
    if found.has(&marker.clone().into()) {
        return Ok(());
    }
    let conversations = store
        .list_prefix(
            &Key::kind_prefix(KeyKind::Conversation, &store.prefix),
            None,
        )
        .await?;
    let mut puts: Vec<String> = conversations
        .iter()
        .filter_map(|(encoded, raw)| {
            let key = Key::parse(encoded, &store.prefix)?;
            index_entry(&store.prefix, &key, raw)
        })
        .collect();
    puts.push(marker);
    for chunk in puts.chunks(BATCH) {
        let values = js_sys::Object::new();
        for key in chunk {
            js_sys::Reflect::set(&values, &key.into(), &"".into()).map_err(|e| {
                storage_error("durable_object", "write", key.clone(), format!("{e:?}"))
            })?;
        }
        store.storage.put_multiple_raw(values).await.map_err(|e| {
            storage_error("durable_object", "write", "deadline index", e.to_string())
        })?;
    }
    Ok(())
}
