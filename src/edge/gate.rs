//! [`UpdateGate`]: one update at a time per Durable Object.
//!
//! A Durable Object is single-threaded, but its input gate opens on every non-storage `await`:
//! a handler awaiting a Bot API call lets the next request in (measured here: 20 concurrent
//! get → fetch → put left a counter at 1, see `docs/platform.md`). Two updates would then read
//! the same value and one write would be lost. The gate is an async mutex held from before the
//! read until after the commit, so the updates of one object run strictly one after the
//! other. It caps one object at 1 / (handler time including Bot API latency) updates per
//! second; `DO_ROUTING=chat` spreads chats over objects to go past that.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use futures::channel::oneshot;

/// Serialises the updates of one object (see the module docs), first come first served:
/// updates of one chat arrive in order, and a fair queue keeps the latency tail short
/// (an unfair lock let some updates wait behind dozens of later ones).
#[derive(Default)]
pub struct UpdateGate {
    busy: Cell<bool>,
    waiting: RefCell<VecDeque<oneshot::Sender<()>>>,
}

/// Held while an update runs; passes the gate to the next in line when dropped.
pub struct GateTurn<'a> {
    gate: &'a UpdateGate,
}

impl UpdateGate {
    /// Waits until every update that arrived earlier is done.
    pub async fn enter(&self) -> GateTurn<'_> {
        if self.busy.replace(true) {
            let (sender, receiver) = oneshot::channel();
            self.waiting.borrow_mut().push_back(sender);
            // The turn is handed over with the gate still busy. A closed channel cannot
            // happen while this future is alive (the sender is only dropped after sending).
            let _ = receiver.await;
        }
        GateTurn { gate: self }
    }
}

impl Drop for GateTurn<'_> {
    fn drop(&mut self) {
        let mut waiting = self.gate.waiting.borrow_mut();
        while let Some(next) = waiting.pop_front() {
            // A waiter whose request was cancelled is skipped.
            if next.send(()).is_ok() {
                return;
            }
        }
        self.gate.busy.set(false);
    }
}
