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
use futures::lock::{Mutex, MutexGuard};
use js_sys::Map;
use worker::{ListOptions, Storage};

use crate::error::{Error, Result};
use crate::persistence::spy::batch;
use crate::persistence::{storage_error, Change, Key, KeyKind, Persistence};

/// SQLite-backed Durable Object storage: key + value at most 2 MB.
pub const MAX_ENTRY_BYTES: usize = 2_000_000;
/// Keys per `get` batch.
const BATCH: usize = 128;
/// How long processed update ids are remembered: Telegram keeps an update at most 24 hours.
pub const PROCESSED_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// One object's storage as a [`Persistence`]. Writes are one transaction: all of an update's
/// changes (and its processed-update record) are committed together or not at all.
pub struct DurableObjectPersistence {
    storage: Storage,
    prefix: String,
    /// The processed-update record to commit with the next write.
    marker: RefCell<Option<(String, String)>>,
    marker_written: Cell<bool>,
}

impl DurableObjectPersistence {
    /// The storage of one object, entries under `prefix`.
    pub fn new(storage: Storage, prefix: impl Into<String>) -> Self {
        Self {
            storage,
            prefix: prefix.into(),
            marker: RefCell::new(None),
            marker_written: Cell::new(false),
        }
    }

    fn marker_key(&self, update_id: i64) -> String {
        // Zero-padded so that ids list in order and the oldest are pruned first.
        format!("{}upd:{update_id:020}", self.prefix)
    }

    /// Whether `update_id` was processed (committed) within the window.
    pub async fn was_processed(&self, update_id: i64) -> Result<bool> {
        let key = self.marker_key(update_id);
        let found = self
            .storage
            .get_multiple(vec![key.clone()])
            .await
            .map_err(|e| storage_error("durable_object", "read", key.clone(), e.to_string()))?;
        Ok(found.has(&key.into()))
    }

    /// Records `update_id` as processed in the same transaction as the next write.
    pub fn mark_processed_on_write(&self, update_id: i64, now_ms: i64) {
        *self.marker.borrow_mut() = Some((self.marker_key(update_id), now_ms.to_string()));
        self.marker_written.set(false);
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
        let listed = self
            .storage
            .list_with_options(ListOptions::new().prefix(&prefix).limit(limit))
            .await
            .map_err(|e| storage_error("durable_object", "list", prefix.clone(), e.to_string()))?;
        let mut old = Vec::new();
        for (key, value) in map_entries(&listed) {
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
        let found = self
            .storage
            .get_multiple(encoded.clone())
            .await
            .map_err(|e| storage_error("durable_object", "read", batch(keys), e.to_string()))?;
        Ok(encoded
            .iter()
            .map(|k| found.get(&k.into()).as_string())
            .collect())
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
            for change in changes {
                let key = change.key().encode(&self.prefix);
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
            if let Some(marker) = marker {
                puts.push(marker);
            }
            if puts.is_empty() && deletes.is_empty() {
                return Ok(());
            }
            let described = format!("{} puts and {} deletes", puts.len(), deletes.len());
            // One transaction: all or nothing, rolled back when the closure fails.
            self.storage
                .transaction(move |txn| async move {
                    for (key, value) in puts {
                        txn.put(&key, value).await?;
                    }
                    for key in deletes {
                        txn.delete(&key).await?;
                    }
                    Ok(())
                })
                .await
                .map_err(|e| storage_error("durable_object", "write", described, e.to_string()))?;
            self.marker_written.set(true);
            Ok(())
        })
    }

    fn list(&self, kind: KeyKind) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        Box::pin(async move {
            let prefix = Key::kind_prefix(kind, &self.prefix);
            let listed = self
                .storage
                .list_with_options(ListOptions::new().prefix(&prefix))
                .await
                .map_err(|e| {
                    storage_error("durable_object", "list", prefix.clone(), e.to_string())
                })?;
            Ok(map_entries(&listed)
                .into_iter()
                .filter_map(|(k, _)| Key::parse(&k, &self.prefix))
                .filter(|k| k.kind() == kind)
                .collect())
        })
    }
}

/// Serialises the updates of one object (see the module docs).
#[derive(Default)]
pub struct UpdateGate {
    lock: Mutex<()>,
}

impl UpdateGate {
    /// Waits until no other update of this object is being handled.
    pub async fn enter(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().await
    }
}
