//! Sending a Durable Object's committed outboxes ([`crate::outbox`]) outside its gate: one
//! lane per chat (a first-come-first-served lock, entered while the gate is still held, so
//! each chat's calls leave in commit order), the chats whose outbox waits for a retry
//! ("stalled": their later outboxes wait behind it, for the alarm), and [`SendJob`], a
//! delivery that owns everything it needs, so that it can go on after the object answered
//! (`SEND_QUEUED_CALLS=after_answer`).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use worker::{console_error, Env, Storage};

use super::app::{bot_api, BuildApplication, Parts, Sending};
use super::durable::DurableObjectPersistence;
use super::settings::Settings;
use crate::context::DataType;
use crate::outbox::{Delivery, Outbox};
use crate::persistence::{Key, KeyKind, Persistence};
use crate::update_gate::{Ticket, Turn, UpdateGate};

/// After an update that queued calls, the alarm comes at the latest this long after it: should
/// the isolate end between the commit and the send, the alarm sends them.
pub const OUTBOX_NET_MS: i64 = 10_000;

/// The chats' lanes of one object, and which chats are stalled. Cheap to clone (shared).
#[derive(Clone, Default)]
pub(crate) struct Lanes {
    lanes: Rc<RefCell<HashMap<i64, Rc<UpdateGate>>>>,
    stalled: Rc<RefCell<HashSet<i64>>>,
    /// Whether this instance has looked for outboxes left by an earlier one.
    scanned: Rc<Cell<bool>>,
}

impl Lanes {
    /// A place in `chat`'s lane: its deliveries run one at a time, in the order the places
    /// were taken.
    pub(crate) fn ticket(&self, chat: i64) -> Ticket {
        let lane = self.lanes.borrow_mut().entry(chat).or_default().clone();
        lane.ticket()
    }

    fn is_stalled(&self, chat: i64) -> bool {
        self.stalled.borrow().contains(&chat)
    }

    fn stall(&self, chat: i64) {
        self.stalled.borrow_mut().insert(chat);
    }

    fn unstall(&self, chat: i64) {
        self.stalled.borrow_mut().remove(&chat);
    }

    /// Once per instance, before its first delivery (under the gate): the chats with outboxes
    /// an earlier instance left (other than `update_id`'s own, just committed) are stalled, so
    /// that no later message overtakes them. One listing per instance.
    pub(crate) async fn find_stalled_once(&self, store: &dyn Persistence, update_id: i64) {
        if self.scanned.replace(true) {
            return;
        }
        match store.list(KeyKind::Outbox).await {
            Ok(keys) => {
                for key in keys {
                    if let Key::Outbox {
                        chat,
                        update_id: id,
                    } = key
                    {
                        if id != update_id {
                            self.stall(chat);
                        }
                    }
                }
            }
            Err(e) => console_error!("listing the stored outboxes failed: {e}"),
        }
    }
}

/// When the object's alarm fires, kept in memory once read or set, so that an update costs a
/// storage call for the alarm only when it moves it earlier. Cheap to clone (shared).
#[derive(Clone)]
pub(crate) struct Alarm(Rc<AlarmState>);

struct AlarmState {
    storage: Storage,
    at: Cell<Option<i64>>,
}

impl Alarm {
    pub(crate) fn new(storage: Storage) -> Self {
        Self(Rc::new(AlarmState {
            storage,
            at: Cell::new(None),
        }))
    }

    /// The alarm fired: it is spent.
    pub(crate) fn spent(&self) {
        self.0.at.set(None);
    }

    /// Makes sure the alarm fires at `at` or earlier.
    pub(crate) async fn wake_at(&self, at: Option<i64>) {
        let Some(at) = at else { return };
        let state = &self.0;
        let current = match state.at.get() {
            Some(known) => Some(known),
            None => state.storage.get_alarm().await.ok().flatten(),
        };
        if current.is_some_and(|current| current <= at) {
            state.at.set(current);
            return;
        }
        // An i64 is an offset from now for set_alarm (an absolute time for get_alarm).
        let offset = (at - js_sys::Date::now() as i64).max(0);
        match state.storage.set_alarm(offset).await {
            Ok(()) => state.at.set(Some(at)),
            Err(e) => console_error!("setting the object's alarm failed: {e}"),
        }
    }
}

/// One chat's delivery in one object, owning what it needs: the committed outbox of an update
/// ([`SendJob::committed`]) or the stored ones the alarm found ([`SendJob::stored`]).
pub(crate) struct SendJob<F> {
    pub(crate) chat: i64,
    /// The place in the chat's lane, taken when the job was made (`None`: take one when run).
    pub(crate) ticket: Option<Ticket>,
    pub(crate) lanes: Lanes,
    /// The object's update gate: the error handlers of failed calls change data under it.
    pub(crate) gate: Rc<UpdateGate>,
    pub(crate) alarm: Alarm,
    /// Where the outboxes are (the object's own storage, recording no update).
    pub(crate) store: Rc<DurableObjectPersistence>,
    /// What the error handlers' changes are written to (the object's role's storage,
    /// recording no update).
    pub(crate) report: Rc<dyn Persistence>,
    pub(crate) env: Env,
    pub(crate) settings: Settings,
    pub(crate) build: F,
}

impl<F> SendJob<F> {
    /// Waits for the job's turn in its chat's lane.
    async fn take_turn(&mut self) -> Turn {
        let ticket = match self.ticket.take() {
            Some(ticket) => ticket,
            None => self.lanes.ticket(self.chat),
        };
        ticket.turn().await
    }

    /// Sends the outbox an update just committed, in the chat's lane (make the job before
    /// letting the gate go: that takes its place). Left to the alarm when the chat is stalled.
    pub(crate) async fn committed<B, C, U>(
        mut self,
        mut sending: Sending<B, C, U>,
    ) -> Option<Delivery>
    where
        F: BuildApplication<B, C, U>,
        B: DataType,
        C: DataType,
        U: DataType,
    {
        let _turn = self.take_turn().await;
        if self.lanes.is_stalled(self.chat) {
            // An earlier outbox of this chat waits for its retry: this one goes after it.
            return None;
        }
        let delivery = sending.send(self.store.as_ref()).await.ok()?;
        match &delivery {
            Delivery::Pending { retry_at_ms, .. } => {
                self.lanes.stall(self.chat);
                self.alarm.wake_at(Some(*retry_at_ms)).await;
            }
            Delivery::Done { .. } => self.report(&sending, &delivery).await,
        }
        Some(delivery)
    }

    /// Sends the chat's stored `outboxes` that are due at `now`, in order, in the chat's lane;
    /// answers when the next try is due, if one is left.
    pub(crate) async fn stored<B, C, U>(mut self, outboxes: Vec<Outbox>, now: i64) -> Option<i64>
    where
        F: BuildApplication<B, C, U>,
        B: DataType,
        C: DataType,
        U: DataType,
    {
        let _turn = self.take_turn().await;
        for outbox in outboxes {
            if outbox.next_try_ms > now {
                return Some(outbox.next_try_ms);
            }
            // Read again in the lane: the update's own delivery may have sent it meanwhile.
            let store: Rc<dyn Persistence> = self.store.clone();
            let found =
                Sending::stored(&self.settings, &self.env, store, &self.build, outbox.key()).await;
            let Some(mut sending) = found else {
                continue;
            };
            match sending.send(self.store.as_ref()).await {
                Ok(Delivery::Pending { retry_at_ms, .. }) => {
                    self.lanes.stall(self.chat);
                    return Some(retry_at_ms);
                }
                Ok(delivery) => self.report(&sending, &delivery).await,
                Err(_) => return Some(now + OUTBOX_NET_MS),
            }
        }
        self.lanes.unstall(self.chat);
        None
    }

    /// Runs the error handlers for the calls of `delivery` that failed for good, under the
    /// gate, over storage that records no update (the update is recorded already).
    async fn report<B, C, U>(&self, sending: &Sending<B, C, U>, delivery: &Delivery)
    where
        F: BuildApplication<B, C, U>,
        B: DataType,
        C: DataType,
        U: DataType,
    {
        if delivery.failed().is_empty() {
            return;
        }
        let _turn = self.gate.enter().await;
        let Some(bot) = bot_api(&self.settings, &self.env) else {
            return;
        };
        let parts = Parts {
            bot,
            persistence: self.report.clone(),
            env: &self.env,
            settings: &self.settings,
        };
        let update = sending.outbox.update();
        let reported = match (self.build)(parts) {
            Ok(app) => app.report_failed_calls(&update, delivery.failed()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = reported {
            let id = update.update_id;
            console_error!("update {id}: the error handlers of its failed calls: {e}");
        }
    }
}
