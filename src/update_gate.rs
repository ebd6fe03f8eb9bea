//! [`UpdateGate`]: one update at a time per Durable Object (or any host that must serialise
//! updates). Platform-free, so that it is tested natively.
//!
//! A Durable Object is single-threaded, but its input gate opens on every non-storage `await`:
//! a handler awaiting a Bot API call lets the next request in (measured here: 20 concurrent
//! get → fetch → put left a counter at 1, see `docs/platform.md`). Two updates would then read
//! the same value and one write would be lost. The gate is an async mutex held from before the
//! read until after the commit, so the updates of one object run strictly one after the
//! other. It caps one object at 1 / (handler time) updates per second: the calls handlers
//! queue are sent after the commit, outside it (a call made at once, `ctx.bot()`, counts);
//! `DO_ROUTING=chat` spreads chats over objects to go past that. The same gate, one per chat,
//! keeps each chat's deliveries in order ([`Ticket`]).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use futures::channel::oneshot;

/// Serialises the updates of one object (see the module docs), first come first served:
/// updates of one chat arrive in order, and a fair queue keeps the latency tail short
/// (an unfair lock let some updates wait behind dozens of later ones).
#[derive(Default)]
pub struct UpdateGate {
    busy: Cell<bool>,
    waiting: RefCell<VecDeque<oneshot::Sender<()>>>,
}

impl UpdateGate {
    /// Waits until every update that arrived earlier is done; the [`Turn`] passes the gate
    /// on when dropped. A caller dropped while waiting (a cancelled request) loses no turn
    /// (see [`Ticket`]).
    pub async fn enter(self: &Rc<Self>) -> Turn {
        self.ticket().turn().await
    }

    /// Hands the turn to the first waiter still waiting, or frees the gate.
    fn pass_on(&self) {
        let mut waiting = self.waiting.borrow_mut();
        while let Some(next) = waiting.pop_front() {
            // A waiter whose request was cancelled is skipped.
            if next.send(()).is_ok() {
                return;
            }
        }
        self.busy.set(false);
    }
}

/// A place in the line of a shared gate, taken at once ([`UpdateGate::ticket`]) and turned into
/// a turn later ([`Ticket::turn`]): what fixes an order (a chat's deliveries in commit order)
/// while the caller still holds something else, without waiting there. Owns its gate, so a
/// delivery that outlives its request can hold it.
pub struct Ticket {
    gate: Rc<UpdateGate>,
    /// `None`: the gate was free, the turn is this ticket's.
    receiver: Option<oneshot::Receiver<()>>,
    /// Turned into a [`Turn`]: from there the turn passes the gate on.
    used: bool,
}

/// The turn a [`Ticket`] got; passes the gate on when dropped.
pub struct Turn {
    gate: Rc<UpdateGate>,
}

impl UpdateGate {
    /// Takes a place in line now, after everyone already waiting.
    pub fn ticket(self: &Rc<Self>) -> Ticket {
        let receiver = if self.busy.replace(true) {
            let (sender, receiver) = oneshot::channel();
            self.waiting.borrow_mut().push_back(sender);
            Some(receiver)
        } else {
            None
        };
        Ticket {
            gate: self.clone(),
            receiver,
            used: false,
        }
    }
}

impl Ticket {
    /// Waits for the ticket's turn.
    pub async fn turn(mut self) -> Turn {
        if let Some(receiver) = self.receiver.as_mut() {
            // A closed channel cannot happen while this ticket is alive (the sender is only
            // dropped after sending).
            let _ = receiver.await;
        }
        self.receiver = None;
        self.used = true;
        Turn {
            gate: self.gate.clone(),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.used {
            return;
        }
        match self.receiver.take() {
            // The gate was free: the turn was this ticket's all along.
            None => self.gate.pass_on(),
            // Handed the turn before it was taken: pass it on. Still waiting: the sender in
            // the line finds the receiver gone and is skipped.
            Some(mut receiver) => {
                if let Ok(Some(())) = receiver.try_recv() {
                    self.gate.pass_on();
                }
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.gate.pass_on();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn turns_are_handed_over_in_arrival_order() {
        let gate = Rc::new(UpdateGate::default());
        let first = gate
            .enter()
            .now_or_never()
            .expect("a free gate lets in at once");
        let mut second = Box::pin(gate.enter());
        let mut third = Box::pin(gate.enter());
        assert!(second.as_mut().now_or_never().is_none());
        assert!(third.as_mut().now_or_never().is_none());
        drop(first);
        assert!(
            third.as_mut().now_or_never().is_none(),
            "the second came first"
        );
        let second = second.now_or_never().expect("the second's turn");
        drop(second);
        assert!(third.now_or_never().is_some());
    }

    #[test]
    fn a_waiter_dropped_after_being_handed_the_turn_passes_it_on() {
        let gate = Rc::new(UpdateGate::default());
        let first = gate
            .enter()
            .now_or_never()
            .expect("a free gate lets in at once");
        let mut second = Box::pin(gate.enter());
        assert!(second.as_mut().now_or_never().is_none());
        // The first update ends and hands the turn to the second, whose request is then
        // cancelled before it runs again.
        drop(first);
        drop(second);
        let third = gate.enter().now_or_never();
        assert!(
            third.is_some(),
            "the turn was lost: every later update would wait for ever"
        );
    }

    #[test]
    fn tickets_keep_the_order_they_were_taken_in_and_a_dropped_one_loses_no_turn() {
        let gate = Rc::new(UpdateGate::default());
        let first = gate.ticket();
        let second = gate.ticket();
        let third = gate.ticket();
        let unused = gate.ticket();
        let mut third = Box::pin(third.turn());
        assert!(
            third.as_mut().now_or_never().is_none(),
            "the first two come first"
        );
        let first = first
            .turn()
            .now_or_never()
            .expect("a free gate's ticket has the turn");
        let mut second = Box::pin(second.turn());
        assert!(second.as_mut().now_or_never().is_none());
        drop(first);
        let second = second.now_or_never().expect("the second's turn");
        assert!(third.as_mut().now_or_never().is_none());
        drop(second);
        let third = third.now_or_never().expect("the third's turn");
        // A ticket dropped while waiting is skipped; one dropped holding the turn passes it on.
        drop(unused);
        drop(third);
        let after = gate.ticket();
        drop(after);
        assert!(gate.enter().now_or_never().is_some(), "no turn was lost");
    }

    #[test]
    fn a_waiter_dropped_before_its_turn_is_skipped() {
        let gate = Rc::new(UpdateGate::default());
        let first = gate
            .enter()
            .now_or_never()
            .expect("a free gate lets in at once");
        let mut second = Box::pin(gate.enter());
        let mut third = Box::pin(gate.enter());
        assert!(second.as_mut().now_or_never().is_none());
        assert!(third.as_mut().now_or_never().is_none());
        drop(second);
        drop(first);
        assert!(third.now_or_never().is_some());
    }
}
