//! [`D1Persistence`]: Cloudflare D1, one SQL row per entry in tables other services can query
//! (`migrations/0001_edgegram.sql`, README "D1").
//!
//! Each row keeps the entry's data as JSON in `data`, its schema version in `version`, when it
//! was written in `updated_at` and a revision in `rev`. The core stores the codec envelope
//! (`{"v":<version>,"data":<json>}`, [`crate::persistence::codec`]) as one string; this backend
//! splits it into `version` and `data` on write and joins them on read, byte for byte
//! ([`codec::split_columns`]). A value
//! that is not an envelope (a corrupt one) is kept as it was, in `data` with `version` NULL, so
//! that reading it reports a decode error naming its key and never changes it.
//!
//! Per update: one round trip to read (one `batch` of selects, with the processed-update check
//! of `begin_update`), one `batch` to write (a D1 batch is a transaction).
//! D1 does not serialise updates as a Durable Object does, so the write is a compare-and-set:
//! for every entry the update read, the batch first checks that its `rev` is still the one it
//! read (a guard insert that violates a CHECK constraint otherwise, which aborts the batch),
//! and every written row gets a fresh random `rev`. A lost race is [`Error::Conflict`]; the
//! webhook answers 5xx and Telegram delivers the update again.

use std::cell::RefCell;
use std::collections::HashMap;

use futures::future::LocalBoxFuture;
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

use crate::error::{Error, Result};
use crate::persistence::codec;
use crate::persistence::processed::Pending;
use crate::persistence::{describe_keys, storage_error, Change, Key, KeyKind, Persistence};

/// D1's largest string or row, in bytes.
const MAX_ROW_BYTES: usize = 2_000_000;
/// The largest key this backend writes (its columns), in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 50_000;
/// The largest stored value, in UTF-8 bytes: with the largest key and the other columns a row
/// stays within D1's 2,000,000 bytes.
pub const MAX_VALUE_BYTES: usize = MAX_ROW_BYTES - MAX_KEY_BYTES - 50_000;
/// Bound parameters per statement (D1 allows 100).
const MAX_PARAMS: usize = 100;

/// One kind's table and key columns.
struct Table {
    name: &'static str,
    columns: &'static [&'static str],
}

fn table(kind: KeyKind) -> Table {
    let (name, columns): (&'static str, &'static [&'static str]) = match kind {
        KeyKind::BotData => ("bot_data", &["id"]),
        KeyKind::ChatData => ("chat_data", &["chat_id"]),
        KeyKind::UserData => ("user_data", &["user_id"]),
        KeyKind::Conversation => ("conversations", &["name", "key"]),
        KeyKind::CallbackKeyboard => ("callback_keyboards", &["keyboard_id"]),
        KeyKind::CallbackQuery => ("callback_queries", &["query_id"]),
        KeyKind::KeyboardIndex => ("keyboard_index", &["owner"]),
        KeyKind::Outbox => ("outbox", &["chat_id", "update_id"]),
        KeyKind::Job => ("jobs", &["chat_id", "job_id"]),
        KeyKind::JobDue => ("job_index", &["at_ms", "job"]),
    };
    Table { name, columns }
}

/// Every table edgegram keeps (for [`D1Persistence::clear`]).
const ALL_TABLES: [&str; 14] = [
    "bot_data",
    "chat_data",
    "user_data",
    "conversations",
    "callback_keyboards",
    "callback_queries",
    "keyboard_index",
    "outbox",
    "jobs",
    "job_index",
    "processed_updates",
    "edgegram_conflicts",
    "failed_attempts",
    "dead_letters",
];

/// The key column values of `key`, as text (SQLite's INTEGER affinity stores an id given as
/// text as the integer, exactly, also where a JS number could not hold it).
fn key_values(key: &Key) -> Vec<String> {
    match key {
        Key::BotData => vec!["1".into()],
        Key::ChatData(id) | Key::UserData(id) => vec![id.to_string()],
        Key::Conversation { name, key } => vec![name.clone(), key.clone()],
        Key::CallbackKeyboard(id) | Key::CallbackQuery(id) | Key::KeyboardIndex(id) => {
            vec![id.clone()]
        }
        Key::Outbox { chat, update_id } => vec![chat.to_string(), update_id.to_string()],
        Key::Job { chat, id } => vec![chat.to_string(), id.clone()],
        Key::JobDue { at_ms, chat, id } => vec![at_ms.to_string(), format!("{chat}:{id}")],
    }
}

/// The key of a row of `kind` from its key columns as text.
fn key_of(kind: KeyKind, k1: &str, k2: Option<&str>) -> Option<Key> {
    let id = || -> Option<i64> {
        let id: i64 = k1.parse().ok()?;
        (id.to_string() == k1).then_some(id)
    };
    Some(match kind {
        KeyKind::BotData => Key::BotData,
        KeyKind::ChatData => Key::ChatData(id()?),
        KeyKind::UserData => Key::UserData(id()?),
        KeyKind::Conversation => Key::Conversation {
            name: k1.to_string(),
            key: k2?.to_string(),
        },
        KeyKind::CallbackKeyboard => Key::CallbackKeyboard(k1.to_string()),
        KeyKind::CallbackQuery => Key::CallbackQuery(k1.to_string()),
        KeyKind::KeyboardIndex => Key::KeyboardIndex(k1.to_string()),
        KeyKind::Outbox => Key::Outbox {
            chat: id()?,
            update_id: k2?.parse().ok()?,
        },
        KeyKind::Job => Key::Job {
            chat: id()?,
            id: k2?.to_string(),
        },
        KeyKind::JobDue => {
            let (chat, job) = k2?.split_once(':')?;
            Key::JobDue {
                at_ms: id()?,
                chat: chat.parse().ok()?,
                id: job.to_string(),
            }
        }
    })
}

#[derive(Deserialize)]
struct Row {
    k1: String,
    k2: Option<String>,
    version: Option<String>,
    data: String,
    rev: String,
}

#[derive(Deserialize)]
struct KeyRow {
    k1: String,
    k2: Option<String>,
}

#[derive(Deserialize)]
struct RecordRow {
    at: String,
}

/// A D1 database (binding `EDGEGRAM_D1`) with edgegram's schema as a [`Persistence`].
pub struct D1Persistence {
    db: D1Database,
    /// The revision of every entry read (or written) through this value: `None` for absent.
    /// A write checks these before it applies anything.
    revisions: RefCell<HashMap<Key, Option<i64>>>,
    /// The update being recorded as processed (see [`Persistence::begin_update`]).
    pending: Pending,
}

fn js(text: &str) -> JsValue {
    JsValue::from_str(text)
}

fn d1_error(operation: &'static str, key: impl Into<String>, e: impl ToString) -> Error {
    storage_error("d1", operation, key, e.to_string())
}

impl D1Persistence {
    /// The database must have the tables of `migrations/` (`wrangler d1 migrations apply`).
    pub fn new(db: D1Database) -> Self {
        Self {
            db,
            revisions: RefCell::new(HashMap::new()),
            pending: Pending::default(),
        }
    }

    /// The database, for the attempt counts and dead letters kept beside the data
    /// (`failed_attempts`, `dead_letters`).
    pub(crate) fn database(&self) -> &D1Database {
        &self.db
    }

    /// Deletes every row of edgegram's tables (test routes: a fresh store per case).
    pub async fn clear(&self) -> Result<()> {
        let statements = ALL_TABLES
            .iter()
            .map(|t| self.db.prepare(format!("DELETE FROM {t}")))
            .collect();
        self.db
            .batch(statements)
            .await
            .map_err(|e| d1_error("clear", "every table", e))?;
        self.revisions.borrow_mut().clear();
        Ok(())
    }

    fn statement(&self, sql: String, params: &[JsValue]) -> Result<D1PreparedStatement> {
        self.db
            .prepare(sql)
            .bind(params)
            .map_err(|e| d1_error("prepare", "statement", e))
    }

    /// The selects of `keys` (all of one kind), each within D1's parameter limit.
    fn selects(&self, kind: KeyKind, keys: &[&Key]) -> Result<Vec<D1PreparedStatement>> {
        let t = table(kind);
        let k2 = t
            .columns
            .get(1)
            .map_or("NULL".to_string(), |c| format!("CAST({c} AS TEXT)"));
        let per = MAX_PARAMS / t.columns.len();
        let mut out = Vec::new();
        for chunk in keys.chunks(per) {
            let sql = format!(
                "SELECT CAST({k1} AS TEXT) AS k1, {k2} AS k2, CAST(version AS TEXT) AS version, \
                 data, CAST(rev AS TEXT) AS rev FROM {name} WHERE {matching}",
                k1 = t.columns[0],
                name = t.name,
                matching = matching(&t, chunk.len()),
            );
            let params: Vec<JsValue> = chunk
                .iter()
                .flat_map(|k| key_values(k))
                .map(|v| js(&v))
                .collect();
            out.push(self.statement(sql, &params)?);
        }
        Ok(out)
    }

    fn check_limits(&self, changes: &[Change]) -> Result<()> {
        for change in changes {
            let key_bytes: usize = key_values(change.key()).iter().map(String::len).sum();
            if key_bytes > MAX_KEY_BYTES {
                return Err(too_large(change.key(), "key", key_bytes, MAX_KEY_BYTES));
            }
            if let Change::Put(key, value) = change {
                if value.len() > MAX_VALUE_BYTES {
                    return Err(too_large(key, "value", value.len(), MAX_VALUE_BYTES));
                }
            }
        }
        Ok(())
    }

    /// The statement that fails the batch unless `key`'s row still has revision `rev`
    /// (`None`: still absent).
    fn guard(&self, key: &Key, rev: Option<i64>) -> Result<D1PreparedStatement> {
        let t = table(key.kind());
        let cond: Vec<String> = t.columns.iter().map(|c| format!("{c} = ?")).collect();
        let sql = format!(
            "INSERT INTO edgegram_conflicts (key) SELECT ? WHERE \
             (SELECT rev FROM {name} WHERE {cond}) IS NOT ?",
            name = t.name,
            cond = cond.join(" AND "),
        );
        let mut params = vec![js(&key.to_string())];
        params.extend(key_values(key).iter().map(|v| js(v)));
        params.push(rev.map_or(JsValue::NULL, |r| JsValue::from_f64(r as f64)));
        self.statement(sql, &params)
    }

    /// Upserts of `puts` (all of one kind), several rows per statement.
    fn upserts(
        &self,
        kind: KeyKind,
        puts: &[(&Key, &str)],
        now: f64,
        rev: i64,
    ) -> Result<Vec<D1PreparedStatement>> {
        let t = table(kind);
        let width = t.columns.len() + 4;
        let mut out = Vec::new();
        for chunk in puts.chunks(MAX_PARAMS / width) {
            let tuple = format!("({})", vec!["?"; width].join(", "));
            let sql = format!(
                "INSERT INTO {name} ({cols}, version, data, updated_at, rev) VALUES {values} \
                 ON CONFLICT ({cols}) DO UPDATE SET version = excluded.version, \
                 data = excluded.data, updated_at = excluded.updated_at, rev = excluded.rev",
                name = t.name,
                cols = t.columns.join(", "),
                values = vec![tuple; chunk.len()].join(", "),
            );
            let mut params = Vec::with_capacity(chunk.len() * width);
            for (key, raw) in chunk {
                params.extend(key_values(key).iter().map(|v| js(v)));
                let (version, data) = codec::split_columns(raw);
                params.push(version.map_or(JsValue::NULL, |v| JsValue::from_f64(v as f64)));
                params.push(js(data));
                params.push(JsValue::from_f64(now));
                params.push(JsValue::from_f64(rev as f64));
            }
            out.push(self.statement(sql, &params)?);
        }
        Ok(out)
    }

    /// Deletes of `keys` (all of one kind).
    fn deletes(&self, kind: KeyKind, keys: &[&Key]) -> Result<Vec<D1PreparedStatement>> {
        let t = table(kind);
        let mut out = Vec::new();
        for chunk in keys.chunks(MAX_PARAMS / t.columns.len()) {
            let sql = format!(
                "DELETE FROM {name} WHERE {matching}",
                name = t.name,
                matching = matching(&t, chunk.len()),
            );
            let params: Vec<JsValue> = chunk
                .iter()
                .flat_map(|k| key_values(k))
                .map(|v| js(&v))
                .collect();
            out.push(self.statement(sql, &params)?);
        }
        Ok(out)
    }
}

/// The condition matching `count` keys of `t`, their key columns bound in order: a plain `IN`
/// list for one column (so that SQLite applies the column's INTEGER affinity to ids bound as
/// text), row values for two.
fn matching(t: &Table, count: usize) -> String {
    match t.columns {
        [one] => format!("{one} IN ({})", vec!["?"; count].join(", ")),
        columns => {
            let tuple = format!("({})", vec!["?"; columns.len()].join(", "));
            format!(
                "({}) IN (VALUES {})",
                columns.join(", "),
                vec![tuple; count].join(", ")
            )
        }
    }
}

fn too_large(key: &Key, what: &'static str, size: usize, limit: usize) -> Error {
    Error::TooLarge {
        backend: "d1",
        key: key.to_string().chars().take(80).collect(),
        what,
        size,
        limit,
    }
}

/// Groups `items` by their key's kind, keeping the order within each kind.
fn by_kind<'a, T>(items: impl Iterator<Item = (&'a Key, T)>) -> Vec<(KeyKind, Vec<(&'a Key, T)>)> {
    let mut groups: Vec<(KeyKind, Vec<(&'a Key, T)>)> = Vec::new();
    for (key, item) in items {
        match groups.iter_mut().find(|(kind, _)| *kind == key.kind()) {
            Some((_, group)) => group.push((key, item)),
            None => groups.push((key.kind(), vec![(key, item)])),
        }
    }
    groups
}

/// A fresh revision: random below 2^53, so that JS numbers hold it exactly and a row that was
/// deleted and written again never gets back a revision an update read before.
fn fresh_revision() -> i64 {
    (js_sys::Math::random() * 9_007_199_254_740_991.0) as i64 + 1
}

impl Persistence for D1Persistence {
    fn backend(&self) -> &'static str {
        "d1"
    }

    fn max_entry_bytes(&self) -> Option<usize> {
        Some(MAX_VALUE_BYTES)
    }

    /// Starts handling `update_id` once: the next read also looks for its row in
    /// `processed_updates` (in the same batch) and fails with [`Error::AlreadyProcessed`] if
    /// one younger than `window_ms` is there; the next write inserts the row in the same
    /// transaction as the update's changes, so a copy that ran concurrently and committed
    /// first makes this one's write fail as a duplicate, with nothing of it applied.
    fn pending(&self) -> Option<&Pending> {
        Some(&self.pending)
    }

    fn read<'a>(&'a self, keys: &'a [Key]) -> LocalBoxFuture<'a, Result<Vec<Option<String>>>> {
        Box::pin(async move {
            let check = self.pending.take_check();
            if keys.is_empty() && check.is_none() {
                return Ok(Vec::new());
            }
            let mut statements = Vec::new();
            if let Some(record) = check {
                statements.push(
                    self.statement(
                        "SELECT CAST(processed_at AS TEXT) AS at FROM processed_updates \
                     WHERE update_id = ?"
                            .into(),
                        &[js(&record.update_id.to_string())],
                    )?,
                );
            }
            let groups = by_kind(keys.iter().map(|k| (k, ())));
            let mut kinds = Vec::new();
            for (kind, group) in &groups {
                let group: Vec<&Key> = group.iter().map(|(k, _)| *k).collect();
                for statement in self.selects(*kind, &group)? {
                    statements.push(statement);
                    kinds.push(*kind);
                }
            }
            let results = self
                .db
                .batch(statements)
                .await
                .map_err(|e| d1_error("read", describe_keys(keys), e))?;
            let mut results = results.into_iter();
            if let Some(record) = check {
                let found = results
                    .next()
                    .ok_or_else(|| d1_error("read", "processed_updates", "no result"))?
                    .results::<RecordRow>()
                    .map_err(|e| d1_error("read", "processed_updates", e))?;
                if record.finds_duplicate(found.into_iter().next().map(|r| r.at)) {
                    return Err(Error::AlreadyProcessed(record.update_id));
                }
            }
            let mut found: HashMap<Key, (String, i64)> = HashMap::new();
            for (kind, result) in kinds.into_iter().zip(results) {
                let rows = result
                    .results::<Row>()
                    .map_err(|e| d1_error("read", describe_keys(keys), e))?;
                for row in rows {
                    let Some(key) = key_of(kind, &row.k1, row.k2.as_deref()) else {
                        continue;
                    };
                    let version = match row.version.as_deref().map(str::parse::<u32>) {
                        None => None,
                        Some(Ok(v)) => Some(v),
                        Some(Err(_)) => {
                            return Err(Error::Decode {
                                backend: "d1",
                                key: key.to_string(),
                                message: "the version column is not a schema version".into(),
                            })
                        }
                    };
                    let rev = row.rev.parse::<i64>().unwrap_or(0);
                    found.insert(key, (codec::join_columns(version, row.data), rev));
                }
            }
            let mut revisions = self.revisions.borrow_mut();
            Ok(keys
                .iter()
                .map(|key| {
                    let entry = found.remove(key);
                    revisions.insert(key.clone(), entry.as_ref().map(|(_, rev)| *rev));
                    entry.map(|(value, _)| value)
                })
                .collect())
        })
    }

    fn write<'a>(&'a self, changes: &'a [Change]) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.check_limits(changes)?;
            let record = self.pending.unwritten();
            if changes.is_empty() && record.is_none() {
                return Ok(());
            }
            let now = js_sys::Date::now();
            let rev = fresh_revision();
            let mut statements = Vec::new();
            // The processed-update row first: a copy of this update that committed meanwhile
            // makes this insert fail, which names the duplicate.
            if let Some(record) = record {
                statements.push(self.statement(
                    "DELETE FROM processed_updates WHERE processed_at < ?".into(),
                    &[JsValue::from_f64((record.at_ms - record.window_ms) as f64)],
                )?);
                statements.push(self.statement(
                    "INSERT INTO processed_updates (update_id, processed_at) VALUES (?, ?)".into(),
                    &[
                        js(&record.update_id.to_string()),
                        JsValue::from_f64(record.at_ms as f64),
                    ],
                )?);
            }
            let mut guarded = Vec::new();
            {
                let revisions = self.revisions.borrow();
                for change in changes {
                    if let Some(read) = revisions.get(change.key()) {
                        statements.push(self.guard(change.key(), *read)?);
                        guarded.push(change.key().clone());
                    }
                }
            }
            let puts = by_kind(changes.iter().filter_map(|c| match c {
                Change::Put(key, value) => Some((key, value.as_str())),
                Change::Delete(_) => None,
            }));
            for (kind, group) in &puts {
                statements.extend(self.upserts(*kind, group, now, rev)?);
            }
            let deletes = by_kind(changes.iter().filter_map(|c| match c {
                Change::Delete(key) => Some((key, ())),
                Change::Put(..) => None,
            }));
            for (kind, group) in &deletes {
                let group: Vec<&Key> = group.iter().map(|(k, _)| *k).collect();
                statements.extend(self.deletes(*kind, &group)?);
            }
            let keys: Vec<Key> = changes.iter().map(|c| c.key().clone()).collect();
            if let Err(e) = self.db.batch(statements).await {
                let message = e.to_string();
                if message.contains("edgegram_conflict") {
                    return Err(Error::Conflict {
                        backend: "d1",
                        key: describe_keys(&guarded),
                    });
                }
                if let Some(record) = record {
                    if message.contains("processed_updates.update_id") {
                        return Err(Error::AlreadyProcessed(record.update_id));
                    }
                }
                return Err(d1_error("write", describe_keys(&keys), message));
            }
            self.pending.mark_written();
            let mut revisions = self.revisions.borrow_mut();
            for change in changes {
                let now_rev = match change {
                    Change::Put(..) => Some(rev),
                    Change::Delete(_) => None,
                };
                revisions.insert(change.key().clone(), now_rev);
            }
            Ok(())
        })
    }

    fn list(&self, kind: KeyKind) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        Box::pin(async move {
            let t = table(kind);
            let k2 = t
                .columns
                .get(1)
                .map_or("NULL".to_string(), |c| format!("CAST({c} AS TEXT)"));
            let sql = format!(
                "SELECT CAST({k1} AS TEXT) AS k1, {k2} AS k2 FROM {name}",
                k1 = t.columns[0],
                name = t.name,
            );
            let result = self
                .db
                .prepare(sql)
                .all()
                .await
                .map_err(|e| d1_error("list", t.name, e))?;
            let rows = result
                .results::<KeyRow>()
                .map_err(|e| d1_error("list", t.name, e))?;
            Ok(rows
                .iter()
                .filter_map(|r| key_of(kind, &r.k1, r.k2.as_deref()))
                .collect())
        })
    }
}
