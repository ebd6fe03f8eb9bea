//! [`MemoryPersistence`]: PTB's DictPersistence for edgegram. In memory only; built from and
//! exported to DictPersistence's JSON.
//!
//! On Workers, memory lives as long as one isolate, which may vanish at any moment: use it for
//! tests and experiments, never for data that must last.

use std::cell::RefCell;
use std::collections::BTreeMap;

use futures::future::{ready, LocalBoxFuture};
use futures::FutureExt;
use serde_json::Value;

use super::{codec, dict, Change, Key, KeyKind, Persistence};
use crate::error::{Error, Result};

/// An in-memory store. Writes apply all of a batch at once.
#[derive(Debug, Default)]
pub struct MemoryPersistence {
    entries: RefCell<BTreeMap<Key, String>>,
    /// Nothing runs the jobs stored here ([`MemoryPersistence::without_timer`]).
    no_timer: bool,
}

impl MemoryPersistence {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same store, saying that nothing runs its jobs, so that scheduling one is refused
    /// ([`Persistence::runs_jobs`]): a Worker's `PERSISTENCE=memory`, which has no alarm.
    pub fn without_timer(mut self) -> Self {
        self.no_timer = true;
        self
    }

    /// A store holding a DictPersistence-shaped document (see [`dict`]), validated as a whole.
    pub fn from_json(doc: &Value) -> Result<Self> {
        let entries = dict::to_entries(doc)?
            .into_iter()
            .map(|(key, value)| (key, codec::encode(1, &value.to_string())))
            .collect();
        Ok(Self {
            entries: RefCell::new(entries),
            no_timer: false,
        })
    }

    /// Everything held, as a DictPersistence-shaped document. Fails on a value that cannot be
    /// decoded (only possible when a raw value was written through [`Persistence::write`]).
    pub fn to_json(&self) -> Result<Value> {
        let entries = self.entries.borrow();
        let mut decoded = Vec::with_capacity(entries.len());
        for (key, raw) in entries.iter() {
            let stored = codec::decode(raw).map_err(|message| Error::Decode {
                backend: "memory",
                key: key.to_string(),
                message,
            })?;
            decoded.push((key.clone(), stored.data));
        }
        Ok(dict::from_entries(decoded))
    }

    /// A store holding these raw (encoded) entries.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn from_raw(entries: BTreeMap<Key, String>) -> Self {
        Self {
            entries: RefCell::new(entries),
            no_timer: false,
        }
    }

    /// The entries `keep` selects, with their values as stored (for the file backend).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn raw_entries(&self, keep: impl Fn(&Key) -> bool) -> Vec<(Key, String)> {
        self.entries
            .borrow()
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Replaces everything held with these raw (encoded) entries (for the file backend,
    /// going back to what its files hold).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn replace_raw(&self, entries: BTreeMap<Key, String>) {
        *self.entries.borrow_mut() = entries;
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }
}

impl Persistence for MemoryPersistence {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn read<'a>(&'a self, keys: &'a [Key]) -> LocalBoxFuture<'a, Result<Vec<Option<String>>>> {
        let entries = self.entries.borrow();
        ready(Ok(keys.iter().map(|k| entries.get(k).cloned()).collect())).boxed_local()
    }

    fn write<'a>(&'a self, changes: &'a [Change]) -> LocalBoxFuture<'a, Result<()>> {
        let mut entries = self.entries.borrow_mut();
        for change in changes {
            match change {
                Change::Put(key, value) => entries.insert(key.clone(), value.clone()),
                Change::Delete(key) => entries.remove(key),
            };
        }
        ready(Ok(())).boxed_local()
    }

    fn list(&self, kind: KeyKind) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        let keys = self
            .entries
            .borrow()
            .keys()
            .filter(|k| k.kind() == kind)
            .cloned()
            .collect();
        ready(Ok(keys)).boxed_local()
    }

    /// A range of the ordered map: the index entries sort by time within their kind.
    fn jobs_due(&self, until_ms: i64, limit: usize) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        let first = Key::JobDue {
            at_ms: i64::MIN,
            chat: i64::MIN,
            id: String::new(),
        };
        let due = self
            .entries
            .borrow()
            .range(first..)
            .map(|(key, _)| key)
            .take_while(|key| matches!(key, Key::JobDue { at_ms, .. } if *at_ms <= until_ms))
            .take(limit)
            .cloned()
            .collect();
        ready(Ok(due)).boxed_local()
    }

    /// Jobs stored here run when the process that owns them calls
    /// [`Application::run_due_jobs`](crate::Application::run_due_jobs) (the test kit does),
    /// unless the store was made [`without_timer`](MemoryPersistence::without_timer).
    fn runs_jobs(&self) -> bool {
        !self.no_timer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::conformance;

    #[test]
    fn conformance() {
        let report = futures::executor::block_on(conformance::run_all(&|| {
            Box::new(MemoryPersistence::new())
        }));
        report.assert_passed();
    }

    #[test]
    fn json_in_and_out() {
        let doc = serde_json::json!({
            "bot_data": {"count": 1},
            "chat_data": {"1": {"count": 1}},
            "user_data": {},
            "conversations": {},
            "callback_data": null,
        });
        let store = MemoryPersistence::from_json(&doc).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(store.to_json().unwrap(), doc);
    }
}
