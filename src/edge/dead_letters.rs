//! Where failed deliveries are counted and dead letters kept ([`crate::attempts`] decides).
//!
//! - Durable Objects: `att:<update_id>` → `<attempts>:<first failure ms>` in the object that
//!   handles the update (serialised by its gate, so exact); dead letters `dead:<update_id>` →
//!   [`DeadLetter`] JSON in the bot (home) object, at most [`MAX_DEAD_LETTERS`] (the lowest
//!   ids go first). The alarm forgets attempt counts older than the processed-update window.
//! - KV: the same keys, with KV's expiration (attempts after the window, letters after
//!   [`KV_LETTER_TTL_SECONDS`]); best effort like everything on KV: two copies handled at once
//!   can both count as one attempt.
//! - D1: the tables `failed_attempts` (one atomic upsert per failed delivery, so exact) and
//!   `dead_letters`, at most [`MAX_DEAD_LETTERS`].
//! - Memory: in the isolate, for local development.

use std::cell::RefCell;
use std::collections::BTreeMap;

use wasm_bindgen::JsValue;
use worker::{console_error, console_warn, D1Database, KvStore, ListOptions, Storage};

use super::durable::map_entries;
use super::settings::Settings;
use crate::attempts::{verdict, DeadLetter, Recurrence, Verdict};
use crate::error::{Error, Result};
use crate::persistence::storage_error;

/// Dead letters kept at most; the oldest (lowest update id) make room.
pub const MAX_DEAD_LETTERS: usize = 500;
/// How long KV keeps a dead letter: a week.
pub const KV_LETTER_TTL_SECONDS: u64 = 7 * 24 * 60 * 60;

thread_local! {
    static MEMORY_ATTEMPTS: RefCell<BTreeMap<i64, u32>> = const { RefCell::new(BTreeMap::new()) };
    static MEMORY_LETTERS: RefCell<BTreeMap<i64, DeadLetter>> = const { RefCell::new(BTreeMap::new()) };
}

fn attempt_key(prefix: &str, update_id: i64) -> String {
    format!("{prefix}att:{update_id}")
}

fn letter_prefix(prefix: &str) -> String {
    format!("{prefix}dead:")
}

/// The store of one backend's attempt counts and dead letters.
pub(crate) enum FailedUpdates<'a> {
    /// A Durable Object's storage.
    Object {
        storage: &'a Storage,
        prefix: &'a str,
    },
    /// Workers KV.
    Kv { kv: &'a KvStore, prefix: &'a str },
    /// D1: the tables `failed_attempts` and `dead_letters` (migrations/).
    D1(&'a D1Database),
    /// The isolate's memory.
    Memory,
}

fn object_error(operation: &'static str, key: &str, e: impl std::fmt::Display) -> Error {
    storage_error("durable_object", operation, key, e.to_string())
}

fn d1_error(operation: &'static str, key: &str, e: impl std::fmt::Display) -> Error {
    storage_error("d1", operation, key, e.to_string())
}

fn kv_error(operation: &'static str, key: &str, e: impl std::fmt::Display) -> Error {
    storage_error("kv", operation, key, e.to_string())
}

impl FailedUpdates<'_> {
    /// Counts one more failed delivery of `update_id` and answers how many there were.
    pub(crate) async fn count_attempt(
        &self,
        update_id: i64,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<u32> {
        match self {
            FailedUpdates::Object { storage, prefix } => {
                let key = attempt_key(prefix, update_id);
                let found = storage
                    .get_multiple(vec![key.clone()])
                    .await
                    .map_err(|e| object_error("read", &key, e))?;
                let (count, first) =
                    parse_attempts(found.get(&key.clone().into()).as_string(), now_ms);
                storage
                    .put_raw(&key, format!("{}:{first}", count + 1))
                    .await
                    .map_err(|e| object_error("write", &key, e))?;
                Ok(count + 1)
            }
            FailedUpdates::Kv { kv, prefix } => {
                let key = attempt_key(prefix, update_id);
                let stored = kv
                    .get(&key)
                    .text()
                    .await
                    .map_err(|e| kv_error("read", &key, e))?;
                let (count, first) = parse_attempts(stored, now_ms);
                let ttl = (window_ms / 1000).max(60) as u64;
                kv.put(&key, format!("{}:{first}", count + 1))
                    .map_err(|e| kv_error("write", &key, e))?
                    .expiration_ttl(ttl)
                    .execute()
                    .await
                    .map_err(|e| kv_error("write", &key, e))?;
                Ok(count + 1)
            }
            FailedUpdates::D1(db) => {
                let key = format!("failed_attempts {update_id}");
                let statement = db
                    .prepare(
                        "INSERT INTO failed_attempts (update_id, attempts, first_failed_at) \
                         VALUES (?1, 1, ?2) ON CONFLICT (update_id) DO UPDATE SET \
                         attempts = CASE WHEN first_failed_at < ?3 THEN 1 ELSE attempts + 1 END, \
                         first_failed_at = CASE WHEN first_failed_at < ?3 \
                         THEN excluded.first_failed_at ELSE first_failed_at END \
                         RETURNING attempts",
                    )
                    .bind(&[
                        JsValue::from_str(&update_id.to_string()),
                        JsValue::from_f64(now_ms as f64),
                        JsValue::from_f64((now_ms - window_ms) as f64),
                    ])
                    .map_err(|e| d1_error("write", &key, e))?;
                let count: Option<f64> = statement
                    .first(Some("attempts"))
                    .await
                    .map_err(|e| d1_error("write", &key, e))?;
                Ok(count.unwrap_or(1.0) as u32)
            }
            FailedUpdates::Memory => Ok(MEMORY_ATTEMPTS.with(|a| {
                let mut attempts = a.borrow_mut();
                let count = attempts.entry(update_id).or_insert(0);
                *count += 1;
                *count
            })),
        }
    }

    /// Keeps `letter` (again: the key is its update id).
    pub(crate) async fn keep(&self, letter: &DeadLetter) -> Result<()> {
        let json = serde_json::to_string(letter).map_err(|e| Error::Encode {
            key: format!("dead letter {}", letter.update_id),
            message: e.to_string(),
        })?;
        match self {
            FailedUpdates::Object { storage, prefix } => {
                let key = format!("{}{}", letter_prefix(prefix), letter.update_id);
                storage
                    .put_raw(&key, json)
                    .await
                    .map_err(|e| object_error("write", &key, e))?;
                let listed = storage
                    .list_with_options(ListOptions::new().prefix(&letter_prefix(prefix)))
                    .await
                    .map_err(|e| object_error("list", &key, e))?;
                let mut ids: Vec<(i64, String)> = map_entries(&listed)
                    .into_iter()
                    .filter_map(|(k, _)| {
                        let id = k.strip_prefix(&letter_prefix(prefix))?.parse().ok()?;
                        Some((id, k))
                    })
                    .collect();
                ids.sort_unstable();
                let excess = ids.len().saturating_sub(MAX_DEAD_LETTERS);
                let deletes: Vec<String> = ids.into_iter().take(excess).map(|(_, k)| k).collect();
                for chunk in deletes.chunks(128) {
                    storage
                        .delete_multiple(chunk.to_vec())
                        .await
                        .map_err(|e| object_error("delete", &key, e))?;
                }
                Ok(())
            }
            FailedUpdates::Kv { kv, prefix } => {
                let key = format!("{}{}", letter_prefix(prefix), letter.update_id);
                kv.put(&key, json)
                    .map_err(|e| kv_error("write", &key, e))?
                    .expiration_ttl(KV_LETTER_TTL_SECONDS)
                    .execute()
                    .await
                    .map_err(|e| kv_error("write", &key, e))
            }
            FailedUpdates::D1(db) => {
                let key = format!("dead_letters {}", letter.update_id);
                let keep = db
                    .prepare(
                        "INSERT INTO dead_letters (update_id, letter) VALUES (?, ?) \
                         ON CONFLICT (update_id) DO UPDATE SET letter = excluded.letter",
                    )
                    .bind(&[
                        JsValue::from_str(&letter.update_id.to_string()),
                        JsValue::from_str(&json),
                    ])
                    .map_err(|e| d1_error("write", &key, e))?;
                let trim = db
                    .prepare(
                        "DELETE FROM dead_letters WHERE update_id NOT IN \
                         (SELECT update_id FROM dead_letters ORDER BY update_id DESC LIMIT ?)",
                    )
                    .bind(&[JsValue::from_f64(MAX_DEAD_LETTERS as f64)])
                    .map_err(|e| d1_error("write", &key, e))?;
                db.batch(vec![keep, trim])
                    .await
                    .map(|_| ())
                    .map_err(|e| d1_error("write", &key, e))
            }
            FailedUpdates::Memory => {
                MEMORY_LETTERS.with(|l| {
                    let mut letters = l.borrow_mut();
                    letters.insert(letter.update_id, letter.clone());
                    while letters.len() > MAX_DEAD_LETTERS {
                        letters.pop_first();
                    }
                });
                Ok(())
            }
        }
    }

    /// Forgets the attempt count of `update_id` (it is dead-lettered).
    pub(crate) async fn forget_attempts(&self, update_id: i64) -> Result<()> {
        match self {
            FailedUpdates::Object { storage, prefix } => {
                let key = attempt_key(prefix, update_id);
                storage
                    .delete(&key)
                    .await
                    .map(|_| ())
                    .map_err(|e| object_error("delete", &key, e))
            }
            FailedUpdates::Kv { kv, prefix } => {
                let key = attempt_key(prefix, update_id);
                kv.delete(&key)
                    .await
                    .map_err(|e| kv_error("delete", &key, e))
            }
            FailedUpdates::D1(db) => {
                let key = format!("failed_attempts {update_id}");
                db.prepare("DELETE FROM failed_attempts WHERE update_id = ?")
                    .bind(&[JsValue::from_str(&update_id.to_string())])
                    .map_err(|e| d1_error("delete", &key, e))?
                    .run()
                    .await
                    .map(|_| ())
                    .map_err(|e| d1_error("delete", &key, e))
            }
            FailedUpdates::Memory => {
                MEMORY_ATTEMPTS.with(|a| a.borrow_mut().remove(&update_id));
                Ok(())
            }
        }
    }

    /// The dead letters, by update id.
    pub(crate) async fn list(&self) -> Result<Vec<DeadLetter>> {
        let raw: Vec<String> = match self {
            FailedUpdates::Object { storage, prefix } => {
                let listed = storage
                    .list_with_options(ListOptions::new().prefix(&letter_prefix(prefix)))
                    .await
                    .map_err(|e| object_error("list", &letter_prefix(prefix), e))?;
                map_entries(&listed).into_iter().map(|(_, v)| v).collect()
            }
            FailedUpdates::Kv { kv, prefix } => {
                let page = kv
                    .list()
                    .prefix(letter_prefix(prefix))
                    .execute()
                    .await
                    .map_err(|e| kv_error("list", &letter_prefix(prefix), e))?;
                let mut values = Vec::new();
                for key in page.keys {
                    if let Some(value) = kv
                        .get(&key.name)
                        .text()
                        .await
                        .map_err(|e| kv_error("read", &key.name, e))?
                    {
                        values.push(value);
                    }
                }
                values
            }
            FailedUpdates::D1(db) => {
                #[derive(serde::Deserialize)]
                struct Row {
                    letter: String,
                }
                db.prepare("SELECT letter FROM dead_letters ORDER BY update_id")
                    .all()
                    .await
                    .and_then(|result| result.results::<Row>())
                    .map_err(|e| d1_error("list", "dead_letters", e))?
                    .into_iter()
                    .map(|row| row.letter)
                    .collect()
            }
            FailedUpdates::Memory => {
                return Ok(MEMORY_LETTERS.with(|l| l.borrow().values().cloned().collect()))
            }
        };
        let mut letters: Vec<DeadLetter> = raw
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect();
        letters.sort_by_key(|letter| letter.update_id);
        Ok(letters)
    }
}

/// Attempts so far and the time of the first, from a stored `<attempts>:<first ms>`.
fn parse_attempts(stored: Option<String>, now_ms: i64) -> (u32, i64) {
    stored
        .and_then(|s| {
            let (count, first) = s.split_once(':')?;
            Some((count.parse().ok()?, first.parse().ok()?))
        })
        .unwrap_or((0, now_ms))
}

/// Forgets the attempt counts of updates first failed more than `window_ms` ago (Telegram has
/// given up on them, or they succeeded later), for the object's alarm.
pub(crate) async fn prune_attempts(
    storage: &Storage,
    prefix: &str,
    now_ms: i64,
    window_ms: i64,
) -> Result<()> {
    let start = format!("{prefix}att:");
    let listed = storage
        .list_with_options(ListOptions::new().prefix(&start))
        .await
        .map_err(|e| object_error("list", &start, e))?;
    let old: Vec<String> = map_entries(&listed)
        .into_iter()
        .filter(|(_, v)| parse_attempts(Some(v.clone()), now_ms).1 + window_ms < now_ms)
        .map(|(k, _)| k)
        .collect();
    for chunk in old.chunks(128) {
        storage
            .delete_multiple(chunk.to_vec())
            .await
            .map_err(|e| object_error("delete", &start, e))?;
    }
    Ok(())
}

/// What a failed delivery of `update_id` (its `body` as Telegram sent it) comes to: counted,
/// then `Some(letter)` when it is to be dead-lettered ([`crate::attempts::verdict`]), `None`
/// when Telegram should deliver it again (also when the count itself failed: the update is
/// then no worse off than without a bound).
pub(crate) async fn judge(
    counts: &FailedUpdates<'_>,
    update_id: i64,
    recurrence: Recurrence,
    error: Option<String>,
    body: &[u8],
    settings: &Settings,
    now_ms: i64,
) -> Option<DeadLetter> {
    if recurrence == Recurrence::Contention {
        return None; // not this update's failure: delivered again, not counted
    }
    let attempts = match counts
        .count_attempt(update_id, now_ms, settings.processed_window_ms)
        .await
    {
        Ok(attempts) => attempts,
        Err(e) => {
            console_error!("update {update_id}: counting its failed delivery failed: {e}");
            return None;
        }
    };
    match verdict(recurrence, attempts, settings.max_attempts) {
        Verdict::DeliverAgain => {
            console_warn!(
                "update {update_id}: delivery {attempts} of at most {} failed; Telegram will deliver it again",
                settings.max_attempts
            );
            None
        }
        Verdict::DeadLetter => {
            console_error!(
                "update {update_id}: dead-lettered after {attempts} deliveries ({recurrence:?})"
            );
            Some(DeadLetter {
                update_id,
                at_ms: now_ms,
                attempts,
                recurrence,
                error: error.unwrap_or_else(|| "unknown".into()),
                update: serde_json::from_slice(body).unwrap_or(serde_json::Value::Null),
            })
        }
    }
}
