//! [`FilePersistence`]: PicklePersistence's role, for native bots and tools. Not on wasm.
//!
//! The file is JSON, an object from encoded keys ([`Key::encode`]) to stored values, so that it
//! keeps every value exactly as written (also one that a later version must migrate). Files are
//! replaced atomically (write a temporary file, sync, rename): a crash leaves the old file or
//! the new one, never half of one. A file that cannot be read is an error when opening, and is
//! never overwritten.
//!
//! A save that fails leaves the entries in memory as the files hold them: the changes it could
//! not save are gone from memory too. The Application answers such an update with an error, so
//! Telegram delivers it again, and the retry must find the data as it was before, or it would
//! apply the update twice.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures::future::{ready, LocalBoxFuture};
use futures::FutureExt;

use super::memory::MemoryPersistence;
use super::{storage_error, Change, Key, KeyKind, Persistence, DEFAULT_PREFIX};
use crate::error::{Error, Result};

/// Where the data goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileLayout {
    /// One file for everything (PTB's `single_file=True`).
    SingleFile(PathBuf),
    /// A directory with one file per kind: `bot_data.json`, `chat_data.json`,
    /// `user_data.json`, `conversations.json`, `callback_data.json` (PTB's
    /// `single_file=False`).
    PerKind(PathBuf),
}

/// A store kept in JSON files: the entries live in memory and are saved to the files.
#[derive(Debug)]
pub struct FilePersistence {
    layout: FileLayout,
    on_flush: bool,
    /// What reads see: the saved entries and the changes written since.
    memory: MemoryPersistence,
    /// The entries as the files hold them, to go back to when a save fails.
    saved: RefCell<BTreeMap<Key, String>>,
    /// The files whose entries changed since they were saved.
    dirty: RefCell<BTreeSet<PathBuf>>,
}

impl FilePersistence {
    /// Opens (or starts) a store. With `on_flush`, changes are written to disk only by
    /// [`Persistence::flush`] (PTB's `on_flush=True`); otherwise on every write.
    ///
    /// When a save fails (a write, or with `on_flush` a flush), every change since the last
    /// successful save is dropped from memory as well, and the error says which file failed.
    pub fn open(layout: FileLayout, on_flush: bool) -> Result<Self> {
        let mut store = Self {
            layout,
            on_flush,
            memory: MemoryPersistence::new(),
            saved: RefCell::new(BTreeMap::new()),
            dirty: RefCell::new(BTreeSet::new()),
        };
        let mut entries = BTreeMap::new();
        for path in store.files() {
            entries.extend(read_file(&path)?);
        }
        store.memory = MemoryPersistence::from_raw(entries.clone());
        store.saved = RefCell::new(entries);
        Ok(store)
    }

    fn files(&self) -> Vec<PathBuf> {
        match &self.layout {
            FileLayout::SingleFile(path) => vec![path.clone()],
            FileLayout::PerKind(dir) => ["bot", "chat", "user", "conversations", "callback"]
                .iter()
                .map(|name| dir.join(file_name(name)))
                .collect(),
        }
    }

    fn file_of(&self, kind: KeyKind) -> PathBuf {
        match &self.layout {
            FileLayout::SingleFile(path) => path.clone(),
            FileLayout::PerKind(dir) => dir.join(file_name(match kind {
                KeyKind::BotData => "bot",
                KeyKind::ChatData => "chat",
                KeyKind::UserData => "user",
                KeyKind::Conversation => "conversations",
                KeyKind::CallbackKeyboard | KeyKind::CallbackQuery | KeyKind::KeyboardIndex => {
                    "callback"
                }
                KeyKind::Outbox => "outbox",
                KeyKind::Job | KeyKind::JobDue => "jobs",
            })),
        }
    }

    /// Saves the files with changes: first every one to its temporary file, then renames
    /// them over the old ones, so that a failure while writing (a full disk, no permission)
    /// replaces no file. On any failure memory goes back to what the files hold.
    fn save_dirty(&self) -> Result<()> {
        let dirty: Vec<PathBuf> = self.dirty.take().into_iter().collect();
        if dirty.is_empty() {
            return Ok(());
        }
        let mut staged = Vec::with_capacity(dirty.len());
        for path in &dirty {
            match self.stage(path) {
                Ok(tmp) => staged.push((tmp, path)),
                Err(err) => {
                    for (tmp, _) in &staged {
                        let _ = fs::remove_file(tmp);
                    }
                    return Err(self.roll_back(err));
                }
            }
        }
        for (tmp, path) in staged {
            if let Err(e) = fs::rename(&tmp, path) {
                let _ = fs::remove_file(&tmp);
                return Err(self.roll_back(io_error("write", path, e)));
            }
            // This file now holds memory's entries of its kinds.
            let mut saved = self.saved.borrow_mut();
            saved.retain(|key, _| self.file_of(key.kind()) != *path);
            saved.extend(self.entries_of(path));
        }
        Ok(())
    }

    /// Writes `path`'s entries to its temporary file, synced; answers the temporary file.
    fn stage(&self, path: &Path) -> Result<PathBuf> {
        let content: BTreeMap<String, String> = self
            .entries_of(path)
            .into_iter()
            .map(|(key, value)| (key.encode(DEFAULT_PREFIX), value))
            .collect();
        let json = serde_json::to_vec_pretty(&content).map_err(|e| io_error("write", path, e))?;
        write_temporary(path, &json).map_err(|e| io_error("write", path, e))
    }

    /// The entries in memory that `path` holds.
    fn entries_of(&self, path: &Path) -> Vec<(Key, String)> {
        self.memory
            .raw_entries(|key| self.file_of(key.kind()) == path)
    }

    /// Drops every change that is not in the files, and answers `err`.
    fn roll_back(&self, err: Error) -> Error {
        self.memory.replace_raw(self.saved.borrow().clone());
        err
    }
}

fn file_name(kind: &str) -> String {
    match kind {
        "conversations" => "conversations.json".into(),
        other => format!("{other}_data.json"),
    }
}

fn io_error(operation: &'static str, path: &Path, err: impl std::fmt::Display) -> Error {
    storage_error(
        "file",
        operation,
        path.display().to_string(),
        err.to_string(),
    )
}

fn read_file(path: &Path) -> Result<BTreeMap<Key, String>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_error("open", path, e)),
    };
    let decode = |message: String| Error::Decode {
        backend: "file",
        key: path.display().to_string(),
        message,
    };
    let raw: BTreeMap<String, String> = serde_json::from_slice(&bytes)
        .map_err(|e| decode(format!("expected a JSON object of stored values: {e}")))?;
    raw.into_iter()
        .map(|(key, value)| {
            Key::parse(&key, DEFAULT_PREFIX)
                .map(|k| (k, value))
                .ok_or_else(|| decode(format!("unknown key {key:?}")))
        })
        .collect()
}

/// Writes `content` to `path` + `.tmp` and syncs it, for a rename over `path`.
fn write_temporary(path: &Path, content: &[u8]) -> std::io::Result<PathBuf> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut file = fs::File::create(&tmp)?;
    file.write_all(content)?;
    file.sync_all()?;
    Ok(tmp)
}

impl Persistence for FilePersistence {
    fn backend(&self) -> &'static str {
        "file"
    }

    fn read<'a>(&'a self, keys: &'a [Key]) -> LocalBoxFuture<'a, Result<Vec<Option<String>>>> {
        self.memory.read(keys)
    }

    fn write<'a>(&'a self, changes: &'a [Change]) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.memory.write(changes).await?;
            self.dirty
                .borrow_mut()
                .extend(changes.iter().map(|c| self.file_of(c.key().kind())));
            if self.on_flush {
                Ok(())
            } else {
                self.save_dirty()
            }
        })
    }

    fn list(&self, kind: KeyKind) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        self.memory.list(kind)
    }

    fn flush(&self) -> LocalBoxFuture<'_, Result<()>> {
        ready(self.save_dirty()).boxed_local()
    }

    fn jobs_due(&self, until_ms: i64, limit: usize) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        self.memory.jobs_due(until_ms, limit)
    }

    /// As memory's: the process that owns the file runs them
    /// ([`Application::run_due_jobs`](crate::Application::run_due_jobs)).
    fn runs_jobs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::{conformance, PersistenceExt};
    use crate::testing::Harness;
    use crate::{ApplicationBuilder, CommandHandler, Context};
    use futures::executor::block_on;
    use serde_json::json;
    use std::cell::Cell;
    use std::rc::Rc;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("edgegram-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn conformance_in_every_layout_and_mode() {
        let dir = temp_dir("conformance");
        let n = Cell::new(0);
        for on_flush in [false, true] {
            for single in [true, false] {
                let report = block_on(conformance::run_all(&|| {
                    n.set(n.get() + 1);
                    let path = dir.join(format!("case-{}", n.get()));
                    let layout = if single {
                        FileLayout::SingleFile(path.join("data.json"))
                    } else {
                        FileLayout::PerKind(path)
                    };
                    Box::new(FilePersistence::open(layout, on_flush).unwrap())
                }));
                report.assert_passed();
            }
        }
    }

    #[test]
    fn data_survives_reopening_only_after_the_write_policy_says_so() {
        let dir = temp_dir("reopen");
        for on_flush in [false, true] {
            let layout = FileLayout::PerKind(dir.join(format!("flush-{on_flush}")));
            let store = FilePersistence::open(layout.clone(), on_flush).unwrap();
            block_on(store.write(&[Change::Put(
                Key::ChatData(1),
                super::super::codec::encode(1, "{\"n\":1}"),
            )]))
            .unwrap();
            let reopened = FilePersistence::open(layout.clone(), on_flush).unwrap();
            let seen = block_on(reopened.get_chat_data(1)).unwrap();
            assert_eq!(seen.is_some(), !on_flush, "on_flush={on_flush}");
            block_on(store.flush()).unwrap();
            let reopened = FilePersistence::open(layout, on_flush).unwrap();
            assert_eq!(
                block_on(reopened.get_chat_data(1)).unwrap(),
                Some(json!({"n": 1}))
            );
        }
    }

    /// An Application that counts `/count` commands in the chat's data, over `store`.
    fn counter(store: Rc<FilePersistence>) -> Harness {
        Harness::from_parts(move |bot, _| {
            ApplicationBuilder::new()
                .bot(bot)
                .persistence(store.clone())
                .handler(CommandHandler::new("count", |ctx: Context| async move {
                    ctx.chat_data(|d| {
                        let n = d.get("n").and_then(|n| n.as_i64()).unwrap_or(0);
                        d.insert("n".into(), json!(n + 1));
                    })?;
                    Ok(())
                }))
                .build()
        })
    }

    #[test]
    fn a_failed_save_leaves_memory_as_it_was_so_that_the_retry_applies_once() {
        let dir = temp_dir("failed-save");
        let layouts = [
            FileLayout::SingleFile(dir.join("single").join("data.json")),
            FileLayout::PerKind(dir.join("per-kind")),
        ];
        for layout in layouts {
            for on_flush in [false, true] {
                let case = format!("{layout:?}, on_flush={on_flush}");
                let _ = fs::remove_dir_all(dir.join("single"));
                let _ = fs::remove_dir_all(dir.join("per-kind"));
                let store = Rc::new(FilePersistence::open(layout.clone(), on_flush).unwrap());
                let h = counter(store.clone());
                let update = h.updates().command(-5, 7, "/count");
                // A directory where the temporary file would go: the save fails.
                let chat_file = store.file_of(KeyKind::ChatData);
                let mut blocker = chat_file.clone().into_os_string();
                blocker.push(".tmp");
                fs::create_dir_all(&blocker).unwrap();
                let failed = h.try_process(update.clone()).unwrap_err();
                assert!(
                    matches!(
                        failed,
                        Error::Storage {
                            backend: "file",
                            ..
                        }
                    ),
                    "{case}: {failed}"
                );
                assert_eq!(block_on(store.get_chat_data(-5)).unwrap(), None, "{case}");

                fs::remove_dir(&blocker).unwrap();
                h.process(update); // Telegram delivers it again.
                let counted = Some(json!({"n": 1}));
                assert_eq!(
                    block_on(store.get_chat_data(-5)).unwrap(),
                    counted,
                    "{case}"
                );
                let reopened = FilePersistence::open(layout.clone(), on_flush).unwrap();
                assert_eq!(
                    block_on(reopened.get_chat_data(-5)).unwrap(),
                    counted,
                    "{case}"
                );
            }
        }
    }

    #[test]
    fn a_corrupt_file_is_an_error_and_stays_as_it_was() {
        let dir = temp_dir("corrupt");
        let path = dir.join("data.json");
        fs::write(&path, b"{\"eg1:chat:1\": ").unwrap();
        let err = FilePersistence::open(FileLayout::SingleFile(path.clone()), false).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Decode {
                    backend: "file",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"{\"eg1:chat:1\": ");
        fs::write(&path, b"{\"eg1:nonsense\": \"x\"}").unwrap();
        let err = FilePersistence::open(FileLayout::SingleFile(path), false).unwrap_err();
        assert!(err.to_string().contains("unknown key"), "{err}");
    }
}
