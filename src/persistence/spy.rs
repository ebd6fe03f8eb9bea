//! `SpyPersistence`: wraps a backend, records every call, and fails on request.
//!
//! The Application's side of the persistence protocol (what is read and written for which
//! update) is tested with it, separately from each backend's own conformance; the worker's
//! test build uses it to inject storage faults. The double is compiled only with the
//! `testing` feature (the worker's `test-hooks` feature turns it on): it never ships in a
//! bot's build.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use futures::FutureExt;

use super::{describe_keys, storage_error, Change, Key, KeyKind, Persistence};
use crate::error::Result;

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `read(keys)`
    Read(Vec<Key>),
    /// `write(changes)`
    Write(Vec<Change>),
    /// `list(kind)`
    List(KeyKind),
    /// `flush()`
    Flush,
    /// `jobs_due(until_ms, limit)`
    JobsDue(i64, usize),
}

/// A recording, fault-injecting wrapper around another backend.
pub struct SpyPersistence {
    inner: Rc<dyn Persistence>,
    calls: RefCell<Vec<Call>>,
    fail_reads: Cell<u32>,
    fail_writes: Cell<u32>,
}

impl SpyPersistence {
    /// Wraps `inner`.
    pub fn new(inner: Rc<dyn Persistence>) -> Self {
        Self {
            inner,
            calls: RefCell::new(Vec::new()),
            fail_reads: Cell::new(0),
            fail_writes: Cell::new(0),
        }
    }

    /// The calls so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// Forgets the recorded calls.
    pub fn clear(&self) {
        self.calls.borrow_mut().clear();
    }

    /// Makes the next `n` reads fail before they reach the backend.
    pub fn fail_next_reads(&self, n: u32) {
        self.fail_reads.set(n);
    }

    /// Makes the next `n` writes fail before they reach the backend (nothing is written).
    pub fn fail_next_writes(&self, n: u32) {
        self.fail_writes.set(n);
    }

    fn take_fault(counter: &Cell<u32>) -> bool {
        let left = counter.get();
        counter.set(left.saturating_sub(1));
        left > 0
    }
}

impl Persistence for SpyPersistence {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn begin_update(&self, update_id: i64, now_ms: i64, window_ms: i64) -> bool {
        self.inner.begin_update(update_id, now_ms, window_ms)
    }

    fn commit_marker(&self) -> LocalBoxFuture<'_, Result<()>> {
        self.inner.commit_marker()
    }

    fn max_entry_bytes(&self) -> Option<usize> {
        self.inner.max_entry_bytes()
    }

    fn read<'a>(&'a self, keys: &'a [Key]) -> LocalBoxFuture<'a, Result<Vec<Option<String>>>> {
        self.calls.borrow_mut().push(Call::Read(keys.to_vec()));
        if Self::take_fault(&self.fail_reads) {
            let err = storage_error(
                self.backend(),
                "read",
                describe_keys(keys),
                "injected fault",
            );
            return futures::future::ready(Err(err)).boxed_local();
        }
        self.inner.read(keys)
    }

    fn write<'a>(&'a self, changes: &'a [Change]) -> LocalBoxFuture<'a, Result<()>> {
        self.calls.borrow_mut().push(Call::Write(changes.to_vec()));
        if Self::take_fault(&self.fail_writes) {
            let keys: Vec<Key> = changes.iter().map(|c| c.key().clone()).collect();
            let err = storage_error(
                self.backend(),
                "write",
                describe_keys(&keys),
                "injected fault",
            );
            return futures::future::ready(Err(err)).boxed_local();
        }
        self.inner.write(changes)
    }

    fn list(&self, kind: KeyKind) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        self.calls.borrow_mut().push(Call::List(kind));
        self.inner.list(kind)
    }

    fn flush(&self) -> LocalBoxFuture<'_, Result<()>> {
        self.calls.borrow_mut().push(Call::Flush);
        self.inner.flush()
    }

    fn jobs_due(&self, until_ms: i64, limit: usize) -> LocalBoxFuture<'_, Result<Vec<Key>>> {
        self.calls.borrow_mut().push(Call::JobsDue(until_ms, limit));
        self.inner.jobs_due(until_ms, limit)
    }

    fn runs_jobs(&self) -> bool {
        self.inner.runs_jobs()
    }
}
