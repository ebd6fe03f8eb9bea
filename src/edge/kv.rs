//! [`KvPersistence`]: Workers KV, one KV key per entry.
//!
//! KV is eventually consistent and has no transactions (see the README, "Choosing a
//! backend"): a write may be invisible elsewhere for 60 s or more, two concurrent updates
//! that write the same key lose one write, and a batch of puts is not atomic. What this
//! backend guarantees: keys and values are checked against KV's limits before anything is
//! written, so an oversized entry fails the whole batch up front; reads of up to 100 keys are
//! one bulk `get`; every operation is retried with backoff when KV answers 429 (more than one
//! write per second to a key) or fails transiently, within a bounded budget, before the
//! update fails with 5xx so that Telegram redelivers it.

use std::future::Future;
use std::time::Duration;

use futures::future::{join_all, LocalBoxFuture};
use worker::kv::{KvError, KvStore};
use worker::Delay;

use crate::error::{Error, Result};
use crate::persistence::processed::{record_key, Pending, Record};
use crate::persistence::{describe_keys, storage_error, Change, Key, KeyKind, Persistence};

/// KV's key limit, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// KV's shortest expiration, in seconds.
const MIN_TTL_SECONDS: i64 = 60;
/// KV's value limit, in bytes (25 MiB).
pub const MAX_VALUE_BYTES: usize = 25 << 20;
/// Keys per bulk get.
const BULK_GET: usize = 100;
/// Attempts per operation, and the wait before the first retry (doubled each time):
/// 100 + 200 + 400 + 800 ms at most, far inside Telegram's 60 s and Workers' CPU limits
/// (waiting costs no CPU time).
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF_MS: u64 = 100;

#[cfg(feature = "testing")]
thread_local! {
    /// Test builds only: this many KV operation attempts fail as if KV answered 429.
    pub static INJECTED_FAILURES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Runs `op` until it succeeds or [`ATTEMPTS`] are used, waiting in between.
async fn with_retries<T, F, Fut>(mut op: F) -> std::result::Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, KvError>>,
{
    let mut wait = FIRST_BACKOFF_MS;
    let mut attempt = 1;
    loop {
        #[cfg(feature = "testing")]
        let injected = INJECTED_FAILURES.with(|c| {
            let left = c.get();
            c.set(left.saturating_sub(1));
            left > 0
        });
        #[cfg(not(feature = "testing"))]
        let injected = false;
        let result = if injected {
            Err("KV PUT failed: 429 Too Many Requests (injected)".to_string())
        } else {
            op().await.map_err(|e| e.to_string())
        };
        match result {
            Ok(value) => return Ok(value),
            Err(message) if attempt >= ATTEMPTS => {
                return Err(format!("{message} (after {attempt} attempts)"))
            }
            Err(_) => {
                Delay::from(Duration::from_millis(wait)).await;
                wait *= 2;
                attempt += 1;
            }
        }
    }
}

/// A KV namespace as a [`Persistence`], under a key prefix.
pub struct KvPersistence {
    kv: KvStore,
    prefix: String,
    /// The update being recorded as processed (see [`Persistence::begin_update`]).
    pending: Pending,
}

impl KvPersistence {
    /// Entries are stored under `prefix` (e.g. [`crate::persistence::DEFAULT_PREFIX`]), so
    /// that several bots or test runs can share one namespace.
    pub fn new(kv: KvStore, prefix: impl Into<String>) -> Self {
        Self {
            kv,
            prefix: prefix.into(),
            pending: Pending::default(),
        }
    }

    /// The namespace and the key prefix, for the records kept beside the data (attempt
    /// counts, dead letters).
    pub(crate) fn parts(&self) -> (&KvStore, &str) {
        (&self.kv, &self.prefix)
    }

    async fn put_record(&self, record: Record) -> Result<()> {
        let key = record_key(&self.prefix, record.update_id);
        let ttl = (record.window_ms / 1000).max(MIN_TTL_SECONDS) as u64;
        with_retries(|| async {
            self.kv
                .put(&key, record.at_ms.to_string())?
                .expiration_ttl(ttl)
                .execute()
                .await
        })
        .await
        .map_err(|e| storage_error("kv", "write", key.clone(), e))
    }

    fn check_limits(&self, changes: &[Change]) -> Result<Vec<String>> {
        let mut encoded = Vec::with_capacity(changes.len());
        for change in changes {
            let key = change.key().encode(&self.prefix);
            if key.len() > MAX_KEY_BYTES {
                return Err(too_large(&key, "key", key.len(), MAX_KEY_BYTES));
            }
            if let Change::Put(_, value) = change {
                if value.len() > MAX_VALUE_BYTES {
                    return Err(too_large(&key, "value", value.len(), MAX_VALUE_BYTES));
                }
            }
            encoded.push(key);
        }
        Ok(encoded)
    }

    async fn read_chunk(&self, keys: &[Key], check: Option<Record>) -> Result<Vec<Option<String>>> {
        let encoded: Vec<String> = keys.iter().map(|k| k.encode(&self.prefix)).collect();
        if let Some(long) = encoded.iter().find(|k| k.len() > MAX_KEY_BYTES) {
            return Err(too_large(long, "key", long.len(), MAX_KEY_BYTES));
        }
        let mut wanted = encoded.clone();
        let record = check.map(|r| record_key(&self.prefix, r.update_id));
        wanted.extend(record.clone());
        let mut found = with_retries(|| self.kv.get_bulk(&wanted).text())
            .await
            .map_err(|e| storage_error("kv", "read", describe_keys(keys), e))?;
        if let (Some(check), Some(record)) = (check, record) {
            if check.finds_duplicate(found.remove(&record).flatten()) {
                return Err(Error::AlreadyProcessed(check.update_id));
            }
        }
        Ok(encoded.iter().map(|k| found.remove(k).flatten()).collect())
    }

    async fn apply(&self, key: &str, change: &Change) -> Result<()> {
        // Puts and deletes are idempotent: retrying one that did land changes nothing.
        let result = with_retries(|| async {
            match change {
                Change::Put(_, value) => self.kv.put(key, value.as_str())?.execute().await,
                Change::Delete(_) => self.kv.delete(key).await,
            }
        })
        .await;
        result.map_err(|e| storage_error("kv", "write", change.key().to_string(), e))
    }
}

fn too_large(key: &str, what: &'static str, size: usize, limit: usize) -> Error {
    let shown: String = key.chars().take(80).collect();
    Error::TooLarge {
        backend: "kv",
        key: shown,
        what,
        size,
        limit,
    }
}

impl Persistence for KvPersistence {
    fn backend(&self) -> &'static str {
        "kv"
    }

    /// Starts handling `update_id` at most once where KV allows it: the next read also looks
    /// for its processed record `upd:<id>` (in the same bulk get) and fails with
    /// [`Error::AlreadyProcessed`] if it is there; the next write puts the record, expiring
    /// after `window_ms` (at least KV's 60 s). Best effort: KV has no transactions and is
    /// eventually consistent, so a redelivery handled in the same place after the first copy
    /// finished is recognised (Telegram's usual retry), but two copies running at the same
    /// time, or in two locations within KV's propagation delay, can both be applied.
    fn pending(&self) -> Option<&Pending> {
        Some(&self.pending)
    }

    fn max_entry_bytes(&self) -> Option<usize> {
        Some(MAX_VALUE_BYTES)
    }

    fn read<'a>(&'a self, keys: &'a [Key]) -> LocalBoxFuture<'a, Result<Vec<Option<String>>>> {
        Box::pin(async move {
            // The first bulk get carries the processed record's key too (one key fewer of the
            // update's, to stay within KV's 100), also when there is nothing else to read.
            let check = self.pending.take_check();
            let first = keys.len().min(if check.is_some() {
                BULK_GET - 1
            } else {
                BULK_GET
            });
            let (head, tail) = keys.split_at(first);
            let mut reads = Vec::new();
            if !head.is_empty() || check.is_some() {
                reads.push(self.read_chunk(head, check));
            }
            reads.extend(tail.chunks(BULK_GET).map(|c| self.read_chunk(c, None)));
            let mut values = Vec::with_capacity(keys.len());
            for chunk in join_all(reads).await {
                values.extend(chunk?);
            }
            Ok(values)
        })
    }

    fn write<'a>(&'a self, changes: &'a [Change]) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let keys = self.check_limits(changes)?;
            let record = self.pending.unwritten();
            if changes.is_empty() && record.is_none() {
                return Ok(());
            }
            // KV has no batch write: all puts and deletes go out at once (one round trip of
            // latency), the processed record with them; a failure of one does not undo the
            // others.
            let mut writes: Vec<LocalBoxFuture<'_, Result<()>>> = keys
                .iter()
                .zip(changes)
                .map(|(k, c)| Box::pin(self.apply(k, c)) as LocalBoxFuture<'_, Result<()>>)
                .collect();
            if let Some(record) = record {
                writes.push(Box::pin(self.put_record(record)));
            }
            let results = join_all(writes).await;
            let failed: Vec<Error> = results.into_iter().filter_map(|r| r.err()).collect();
            if failed.is_empty() {
                self.pending.mark_written();
            }
            match failed.len() {
                0 => Ok(()),
                1 => Err(failed.into_iter().next().unwrap_or(Error::Missing("error"))),
                n => Err(storage_error(
                    "kv",
                    "write",
                    format!("{n} of {} keys", changes.len()),
                    failed[0].to_string(),
                )),
            }
        })
    }

    fn list(&self, kind: KeyKind) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        Box::pin(async move {
            let prefix = Key::kind_prefix(kind, &self.prefix);
            let mut keys = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = with_retries(|| {
                    let mut list = self.kv.list().prefix(prefix.clone());
                    if let Some(cursor) = cursor.clone() {
                        list = list.cursor(cursor);
                    }
                    list.execute()
                })
                .await
                .map_err(|e| storage_error("kv", "list", prefix.clone(), e))?;

                keys.extend(
                    page.keys
                        .iter()
                        .filter_map(|k| Key::parse(&k.name, &self.prefix))
                        .filter(|k| k.kind() == kind),
                );
                match page.cursor.filter(|c| !page.list_complete && !c.is_empty()) {
                    Some(next) => cursor = Some(next),
                    None => return Ok(keys),
                }
            }
        })
    }
}
