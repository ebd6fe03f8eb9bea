//! The Telegram side of a test: what the update builders and the bot double share, as one
//! Telegram would number and date things for one bot.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use super::START_MS;

/// The clock, the update ids, each chat's message ids and the bot's username. A user's
/// message and the bot's reply in one chat take ids from the same sequence, as on Telegram,
/// so that a test can press a button of the message the bot really sent.
#[derive(Debug)]
pub(crate) struct Telegram {
    now_ms: Cell<i64>,
    next_update_id: Cell<i64>,
    message_ids: RefCell<BTreeMap<String, i64>>,
    username: RefCell<String>,
}

impl Default for Telegram {
    fn default() -> Self {
        Self {
            now_ms: Cell::new(START_MS),
            next_update_id: Cell::new(1),
            message_ids: RefCell::new(BTreeMap::new()),
            username: RefCell::new(super::BOT_USERNAME.to_string()),
        }
    }
}

impl Telegram {
    pub(crate) fn now_ms(&self) -> i64 {
        self.now_ms.get()
    }

    pub(crate) fn set_now_ms(&self, now_ms: i64) {
        self.now_ms.set(now_ms);
    }

    /// The Unix time in seconds, as Telegram dates messages.
    pub(crate) fn date(&self) -> i64 {
        self.now_ms.get().div_euclid(1000)
    }

    pub(crate) fn take_update_id(&self) -> i64 {
        let id = self.next_update_id.get();
        self.next_update_id.set(id + 1);
        id
    }

    pub(crate) fn set_next_update_id(&self, id: i64) {
        self.next_update_id.set(id);
    }

    /// The id the next message of `chat` would get, without taking it.
    pub(crate) fn peek_message_id(&self, chat: &str) -> i64 {
        self.message_ids.borrow().get(chat).copied().unwrap_or(0) + 1
    }

    /// Takes the next message id of `chat`.
    pub(crate) fn take_message_id(&self, chat: &str) -> i64 {
        let id = self.peek_message_id(chat);
        self.message_ids.borrow_mut().insert(chat.to_string(), id);
        id
    }

    pub(crate) fn username(&self) -> String {
        self.username.borrow().clone()
    }

    pub(crate) fn set_username(&self, username: &str) {
        *self.username.borrow_mut() = username.trim_start_matches('@').to_string();
    }
}
