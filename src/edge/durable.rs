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

use super::chat_routing::Expected;
use super::deadlines;
use crate::error::{Error, Result};
use crate::persistence::limits::{durable_object_entry_bytes, DURABLE_OBJECT_ENTRY_BYTES};
use crate::persistence::processed::{
    index_key, index_prefix, parse_index, record_key, Pending, Record,
};
use crate::persistence::{describe_keys, storage_error, Change, Key, KeyKind, Persistence};

/// SQLite-backed Durable Object storage: key + value at most 2 MB, counted as V8 serialises
/// them ([`durable_object_entry_bytes`]).
pub const MAX_ENTRY_BYTES: usize = DURABLE_OBJECT_ENTRY_BYTES;
/// Keys per `get` batch.
pub(crate) const BATCH: usize = 128;

#[cfg(feature = "testing")]
thread_local! {
    /// Test builds only: this many writes of an object's own storage fail after their checks,
    /// before anything is issued (a storage failure after the home part of `DO_ROUTING=chat`
    /// committed).
    pub static INJECTED_WRITE_FAILURES: Cell<u32> = const { Cell::new(0) };
}

/// One object's storage as a [`Persistence`]. Each write is atomic (a coalesced batch, or a
/// transaction when it must compare first): all of an update's changes and its processed-update
/// record are committed together or not at all.
pub struct DurableObjectPersistence {
    pub(crate) storage: Storage,
    pub(crate) prefix: String,
    /// The update being recorded as processed with the next write (see
    /// [`Persistence::begin_update`]).
    pending: Pending,
    /// With compare-and-set: the raw values read, checked again at write time.
    seen: Option<RefCell<HashMap<String, Option<String>>>>,
}

impl DurableObjectPersistence {
    /// The storage of one object, entries under `prefix`.
    pub fn new(storage: Storage, prefix: impl Into<String>) -> Self {
        Self {
            storage,
            prefix: prefix.into(),
            pending: Pending::default(),
            seen: None,
        }
    }

    /// Writes apply only if the entries they change still hold what this persistence read
    /// (`DO_ROUTING=chat`, where other objects change an object's entries outside its gate);
    /// otherwise the write fails with [`Error::Conflict`] and nothing is written. A delete of
    /// an entry never read expects nothing (PTB's `drop_*` deletes unconditionally).
    pub fn with_compare_and_set(mut self) -> Self {
        self.seen = Some(RefCell::new(HashMap::new()));
        self
    }

    /// The entries under `prefix` (at most `limit`), keys and values as stored, in key order.
    pub(crate) async fn list_prefix(
        &self,
        prefix: &str,
        limit: Option<usize>,
    ) -> Result<Vec<(String, String)>> {
        self.list_range(prefix, None, limit).await
    }

    /// The entries under `prefix` before the key `end` (at most `limit`), in key order: the
    /// first entries of a time index up to a time.
    pub(crate) async fn list_range(
        &self,
        prefix: &str,
        end: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<(String, String)>> {
        let mut options = ListOptions::new().prefix(prefix);
        if let Some(end) = end {
            options = options.end(end);
        }
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

    /// The update being recorded, if [`Self::begin_update`] started one.
    pub(crate) fn current_record(&self) -> Option<Record> {
        self.pending.record()
    }

    /// Refuses `changes` if any entry is over the storage limit, counted as workerd counts
    /// it, before anything is issued.
    pub(crate) fn check_sizes(&self, changes: &[Change]) -> Result<()> {
        for change in changes {
            if let Change::Put(key, value) = change {
                let key = key.encode(&self.prefix);
                let size = durable_object_entry_bytes(&key, value);
                if size > MAX_ENTRY_BYTES {
                    return Err(Error::TooLarge {
                        backend: "durable_object",
                        key: key.chars().take(80).collect(),
                        what: "key + value",
                        size,
                        limit: MAX_ENTRY_BYTES,
                    });
                }
            }
        }
        Ok(())
    }

    /// The record's puts: `upd:<id>` → its time, and its time index entry.
    fn record_puts(&self, record: Record) -> [(String, String); 2] {
        [
            (
                record_key(&self.prefix, record.update_id),
                record.at_ms.to_string(),
            ),
            (
                index_key(&self.prefix, record.at_ms, record.update_id),
                String::new(),
            ),
        ]
    }

    /// Forgets processed records older than `window_ms`, oldest first, at most `limit` per
    /// call. Answers when the oldest record left expires (`None`: none left), for the alarm.
    pub async fn prune_processed(
        &self,
        now_ms: i64,
        window_ms: i64,
        limit: usize,
    ) -> Result<Option<i64>> {
        let prefix = index_prefix(&self.prefix);
        // Only the expired entries are listed (older than now - window: the index sorts by
        // time), so that an alarm in an object with many fresh records lists none of them.
        let end = format!("{prefix}{:013}", now_ms.saturating_sub(window_ms).max(0));
        let listed = self.list_range(&prefix, Some(&end), Some(limit)).await?;
        let expired: Vec<(String, i64, i64)> = listed
            .into_iter()
            .filter_map(|(key, _)| {
                let (at, id) = key.strip_prefix(&prefix).and_then(parse_index)?;
                Some((key, at, id))
            })
            .collect();
        for chunk in expired.chunks(BATCH / 2) {
            let records: Vec<String> = chunk
                .iter()
                .map(|(_, _, id)| record_key(&self.prefix, *id))
                .collect();
            let current = self
                .storage
                .get_multiple(records.clone())
                .await
                .map_err(|e| {
                    storage_error(
                        "durable_object",
                        "read",
                        describe_encoded(&records),
                        e.to_string(),
                    )
                })?;
            let mut deletes = Vec::with_capacity(chunk.len() * 2);
            for ((index, at, _), record) in chunk.iter().zip(records) {
                // A record written again later (an id Telegram reused) keeps its newer time.
                if current.get(&record.clone().into()).as_string() == Some(at.to_string()) {
                    deletes.push(record);
                }
                deletes.push(index.clone());
            }
            self.storage.delete_multiple(deletes).await.map_err(|e| {
                storage_error("durable_object", "delete", prefix.clone(), e.to_string())
            })?;
        }
        if expired.len() == limit {
            // More are expired than one call forgets: the next comes at once.
            return Ok(Some(now_ms));
        }
        // The oldest record left: when it expires.
        let first = self.list_prefix(&prefix, Some(1)).await?;
        Ok(first
            .first()
            .and_then(|(key, _)| key.strip_prefix(&prefix).and_then(parse_index))
            .map(|(at, _)| at + window_ms))
    }

    /// The record the next read must look for, once.
    fn pending_check(&self) -> Option<Record> {
        self.pending.take_check()
    }

    async fn read_batch(&self, keys: &[Key]) -> Result<Vec<Option<String>>> {
        let encoded: Vec<String> = keys.iter().map(|k| k.encode(&self.prefix)).collect();
        let check = self.pending_check();
        let mut wanted = encoded.clone();
        if let Some(record) = check {
            wanted.push(record_key(&self.prefix, record.update_id));
        }
        let found = self.storage.get_multiple(wanted).await.map_err(|e| {
            storage_error("durable_object", "read", describe_keys(keys), e.to_string())
        })?;
        if let Some(record) = check {
            let stored = found
                .get(&record_key(&self.prefix, record.update_id).into())
                .as_string();
            if record.finds_duplicate(stored) {
                return Err(Error::AlreadyProcessed(record.update_id));
            }
        }
        let values: Vec<Option<String>> = encoded
            .iter()
            .map(|k| found.get(&k.into()).as_string())
            .collect();
        if let Some(seen) = &self.seen {
            let mut seen = seen.borrow_mut();
            for (encoded, value) in encoded.into_iter().zip(&values) {
                seen.insert(encoded, value.clone());
            }
        }
        Ok(values)
    }
}

/// One write, checked and encoded before anything is issued.
struct WritePlan {
    puts: Vec<(String, String)>,
    deletes: Vec<String>,
    /// Compare-and-set: what the changed keys must still hold.
    expect: Vec<(String, Expected)>,
    /// A processed-update record that must not exist yet (the duplicate check of an update
    /// that read nothing).
    must_be_absent: Option<Record>,
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
        self.check_sizes(changes)?;
        let mut plan = WritePlan {
            puts: Vec::new(),
            deletes: Vec::new(),
            expect: Vec::new(),
            must_be_absent: None,
        };
        for change in changes {
            let key = change.key().encode(&self.prefix);
            if let Some(seen) = &self.seen {
                let expected = Expected::for_change(seen.borrow().get(&key).cloned(), change);
                if expected != Expected::Anything {
                    plan.expect.push((key.clone(), expected));
                }
            }
            match change {
                Change::Put(typed, value) => {
                    // A conversation with a deadline joins the alarm's index in the same write.
                    if let Some(entry) = deadlines::index_entry(&self.prefix, typed, value) {
                        plan.puts.push((entry, String::new()));
                    }
                    plan.puts.push((key, value.clone()));
                }
                Change::Delete(_) => plan.deletes.push(key),
            }
        }
        // An Application that read nothing never ran the duplicate check: the transaction
        // does it instead (the handlers ran, but their data is not applied).
        plan.must_be_absent = self.pending_check();
        if let Some(record) = self.pending.record() {
            plan.puts.extend(self.record_puts(record));
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
        let update_id = must_be_absent.map(|record| record.update_id);
        let prefix = self.prefix.clone();
        let conflict_key =
            describe_encoded(&expect.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
        let result = transaction(&self.storage, move |txn, slot| async move {
            if let Some(record) = must_be_absent {
                let key = record_key(&prefix, record.update_id);
                let found = txn.get_multiple(vec![key.clone()]).await?;
                if record.finds_duplicate(found.get(&key.into()).as_string()) {
                    return Err(slot.abort(Abort::AlreadyProcessed));
                }
            }
            for chunk in expect.chunks(BATCH) {
                let keys: Vec<String> = chunk.iter().map(|(k, _)| k.clone()).collect();
                let current = txn.get_multiple(keys).await?;
                for (key, expected) in chunk {
                    if !expected.holds(current.get(&key.into()).as_string()) {
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

    /// Starts handling `update_id` effectively once: the next read also looks for its
    /// processed record (in the same storage call, so duplicates cost no extra round trip)
    /// and fails with [`Error::AlreadyProcessed`] if a record younger than `window_ms` is
    /// there — before any handler runs, since the Application reads before handlers. The next
    /// write records it, in the same atomic write as the update's data
    /// ([`Persistence::commit_marker`] when nothing else is written).
    fn pending(&self) -> Option<&Pending> {
        Some(&self.pending)
    }

    fn max_entry_bytes(&self) -> Option<usize> {
        Some(MAX_ENTRY_BYTES)
    }

    fn read<'a>(&'a self, keys: &'a [Key]) -> LocalBoxFuture<'a, Result<Vec<Option<String>>>> {
        Box::pin(async move {
            let mut values = Vec::with_capacity(keys.len());
            let mut rest = keys;
            if self.pending.check_pending() {
                // The first batch carries the record's key too: one key fewer of the update's,
                // so that it stays within the 128 keys a get takes. Also when there is nothing
                // to read: the duplicate check must still happen.
                let first = rest.len().min(BATCH - 1);
                values.extend(self.read_batch(&rest[..first]).await?);
                rest = &rest[first..];
            }
            for chunk in rest.chunks(BATCH) {
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
            #[cfg(feature = "testing")]
            if INJECTED_WRITE_FAILURES.with(|c| c.replace(c.get().saturating_sub(1))) > 0 {
                return Err(storage_error(
                    "durable_object",
                    "write",
                    plan.describe(),
                    "injected fault",
                ));
            }
            if plan.expect.is_empty() && plan.must_be_absent.is_none() {
                self.write_coalesced(&plan).await?;
            } else {
                self.write_transaction(plan).await?;
            }
            self.pending.mark_written();
            Ok(())
        })
    }

    /// One ranged listing of the index (`jobq:<time>:…` sorts by time): the work is the
    /// number of due entries, whatever the number of jobs.
    fn jobs_due(&self, until_ms: i64, limit: usize) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        Box::pin(async move {
            let index = Key::kind_prefix(KeyKind::JobDue, &self.prefix);
            let end = format!("{index}{:015}", until_ms.saturating_add(1).max(0));
            let listed = self.list_range(&index, Some(&end), Some(limit)).await?;
            Ok(listed
                .into_iter()
                .filter_map(|(k, _)| Key::parse(&k, &self.prefix))
                .collect())
        })
    }

    /// The object's alarm runs them (`edge::object`).
    fn runs_jobs(&self) -> bool {
        true
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
