//! [`DurableObjectPersistence`]: a Durable Object's transactional storage as a [`Persistence`].
//!
//! Why effectively-once: Telegram delivers at least once, also while the first copy is still
//! running. The update's id is recorded in the same atomic write as its data; a copy that finds
//! it (after waiting for the object's [`crate::update_gate::UpdateGate`]) is answered 200 without
//! running handlers.

use std::cell::{Cell, RefCell};

use std::collections::HashMap;
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use js_sys::Map;
use worker::{ListOptions, Storage, Transaction};

use super::chat_routing::lives_at_home;
use crate::error::{Error, Result};
use crate::persistence::{describe_keys, storage_error, Change, Key, KeyKind, Persistence};

/// SQLite-backed Durable Object storage: key + value at most 2 MB.
pub const MAX_ENTRY_BYTES: usize = 2_000_000;
/// Keys per `get` batch.
pub(crate) const BATCH: usize = 128;
/// How long processed update ids are remembered: Telegram keeps an update at most 24 hours.
pub const PROCESSED_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// One object's storage as a [`Persistence`]. Each write is atomic (a coalesced batch, or a
/// transaction when it must compare first): all of an update's changes and its processed-update
/// record are committed together or not at all.
pub struct DurableObjectPersistence {
    pub(crate) storage: Storage,
    pub(crate) prefix: String,
    /// The processed-update record to commit with the next write.
    marker: RefCell<Option<(String, String)>>,
    marker_written: Cell<bool>,
    /// The update id whose record the next read looks for (see [`Self::begin_update`]).
    check: Cell<Option<i64>>,
    /// With compare-and-set: the raw values read of home keys, checked again at write time.
    seen: Option<RefCell<HashMap<String, Option<String>>>>,
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
        self.seen = Some(RefCell::new(HashMap::new()));
        self
    }

    fn marker_key(&self, update_id: i64) -> String {
        // Zero-padded so that ids list in order and the oldest are pruned first.
        format!("{}upd:{update_id:020}", self.prefix)
    }

    /// The entries under `prefix` (at most `limit`), keys and values as stored, in key order.
    pub(crate) async fn list_prefix(
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

/// One write, checked and encoded before anything is issued.
struct WritePlan {
    puts: Vec<(String, String)>,
    deletes: Vec<String>,
    /// Compare-and-set: what home keys must still hold.
    expect: Vec<(String, Option<String>)>,
    /// A processed-update record that must not exist yet (the duplicate check of an update
    /// that read nothing).
    must_be_absent: Option<(i64, String)>,
}

impl WritePlan {
    fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }

    fn describe(&self) -> String {
        format!(
            "{} puts and {} deletes",
            self.puts.len(),
            self.deletes.len()
        )
    }
}

/// Why a transaction gave up on purpose (rolled back), told apart from a storage failure by
/// type rather than by searching an error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abort {
    /// The processed-update record exists: a redelivery.
    AlreadyProcessed,
    /// An entry does not hold what the update read: a concurrent change.
    Conflict,
}

/// Runs `body` in one storage transaction (all or nothing). `Ok(Err(abort))` when the body gave
/// up with [`AbortSlot::abort`], `Err` when storage failed.
pub(crate) async fn transaction<F, Fut>(
    storage: &Storage,
    body: F,
) -> worker::Result<std::result::Result<(), Abort>>
where
    F: FnOnce(Transaction, AbortSlot) -> Fut + 'static,
    Fut: std::future::Future<Output = worker::Result<()>> + 'static,
{
    let slot = AbortSlot(Rc::new(Cell::new(None)));
    let inner = slot.clone();
    let result = storage.transaction(move |txn| body(txn, inner)).await;
    match (slot.0.get(), result) {
        (Some(abort), _) => Ok(Err(abort)),
        (None, Ok(())) => Ok(Ok(())),
        (None, Err(e)) => Err(e),
    }
}

/// Where a transaction body records why it gives up.
#[derive(Clone)]
pub(crate) struct AbortSlot(Rc<Cell<Option<Abort>>>);

impl AbortSlot {
    /// Records `abort` and answers the error that makes the transaction roll back.
    pub(crate) fn abort(&self, abort: Abort) -> worker::Error {
        self.0.set(Some(abort));
        worker::Error::RustError(format!("edgegram: transaction given up: {abort:?}"))
    }
}

impl DurableObjectPersistence {
    /// Checks sizes and gathers what to write, before anything is issued.
    fn plan(&self, changes: &[Change]) -> Result<WritePlan> {
        let mut plan = WritePlan {
            puts: Vec::new(),
            deletes: Vec::new(),
            expect: Vec::new(),
            must_be_absent: None,
        };
        for change in changes {
            let key = change.key().encode(&self.prefix);
            if let Some(seen) = &self.seen {
                if lives_at_home(change.key()) {
                    let expected = seen.borrow().get(&key).cloned().flatten();
                    plan.expect.push((key.clone(), expected));
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
                    plan.puts.push((key, value.clone()));
                }
                Change::Delete(_) => plan.deletes.push(key),
            }
        }
        // An Application that read nothing never ran the duplicate check: the transaction
        // does it instead (the handlers ran, but their data is not applied).
        plan.must_be_absent = self.check.take().map(|id| (id, self.marker_key(id)));
        if let Some(marker) = self.marker.borrow().clone() {
            plan.puts.push(marker);
        }
        Ok(plan)
    }

    /// Nothing to check: put and delete calls of up to 128 keys each, all issued in the same
    /// tick (joined, no await between them), which Durable Objects commit atomically
    /// (automatic write coalescing) — fewer storage calls than a transaction's one per key.
    async fn write_coalesced(&self, plan: &WritePlan) -> Result<()> {
        let fail =
            |message: String| storage_error("durable_object", "write", plan.describe(), message);
        let mut calls: Vec<LocalBoxFuture<'_, worker::Result<()>>> = Vec::new();
        for chunk in plan.puts.chunks(BATCH) {
            let values = js_sys::Object::new();
            for (key, value) in chunk {
                js_sys::Reflect::set(&values, &key.into(), &value.into())
                    .map_err(|e| fail(format!("{e:?}")))?;
            }
            calls.push(Box::pin(self.storage.put_multiple_raw(values)));
        }
        for chunk in plan.deletes.chunks(BATCH) {
            let keys = chunk.to_vec();
            calls.push(Box::pin(async move {
                self.storage.delete_multiple(keys).await.map(|_| ())
            }));
        }
        for result in futures::future::join_all(calls).await {
            result.map_err(|e| fail(e.to_string()))?;
        }
        Ok(())
    }

    /// One transaction: the duplicate check and the compare-and-set first, then the writes;
    /// rolled back whole when a check fails.
    async fn write_transaction(&self, plan: WritePlan) -> Result<()> {
        let described = plan.describe();
        let WritePlan {
            puts,
            deletes,
            expect,
            must_be_absent,
        } = plan;
        let update_id = must_be_absent.as_ref().map(|(id, _)| *id);
        let conflict_key =
            describe_encoded(&expect.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
        let result = transaction(&self.storage, move |txn, slot| async move {
            if let Some((_, marker)) = must_be_absent {
                let found = txn.get_multiple(vec![marker.clone()]).await?;
                if found.has(&marker.into()) {
                    return Err(slot.abort(Abort::AlreadyProcessed));
                }
            }
            if !expect.is_empty() {
                let keys: Vec<String> = expect.iter().map(|(k, _)| k.clone()).collect();
                let current = txn.get_multiple(keys).await?;
                for (key, expected) in &expect {
                    if current.get(&key.into()).as_string() != *expected {
                        return Err(slot.abort(Abort::Conflict));
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
            Ok(Ok(())) => Ok(()),
            Ok(Err(Abort::AlreadyProcessed)) => {
                Err(Error::AlreadyProcessed(update_id.unwrap_or_default()))
            }
            Ok(Err(Abort::Conflict)) => Err(Error::Conflict {
                backend: "durable_object",
                key: conflict_key,
            }),
            Err(e) => Err(storage_error(
                "durable_object",
                "write",
                described,
                e.to_string(),
            )),
        }
    }
}

/// Describes encoded keys for an error message.
pub(crate) fn describe_encoded(keys: &[String]) -> String {
    match keys {
        [] => "no keys".into(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
    }
}

/// The string entries of a JS `Map` returned by storage.
pub(crate) fn map_entries(map: &Map) -> Vec<(String, String)> {
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
            let plan = self.plan(changes)?;
            if plan.is_empty() {
                return Ok(());
            }
            if plan.expect.is_empty() && plan.must_be_absent.is_none() {
                self.write_coalesced(&plan).await?;
            } else {
                self.write_transaction(plan).await?;
            }
            self.marker_written.set(true);
            Ok(())
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
