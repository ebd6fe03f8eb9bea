//! What the native integration tests share: updates as Telegram sends them, and a harness of
//! memory storage behind a spy, a recording bot and a settable clock.
#![allow(dead_code)] // each test file uses a different part

use std::cell::Cell;
use std::rc::Rc;

use edgegram::persistence::spy::{Call, SpyPersistence};
use edgegram::{ApplicationBuilder, Change, MemoryPersistence, RecordingBot, Update};
use serde_json::{json, Value};

/// A text message; a leading `/word` gets its `bot_command` entity. Negative chats are
/// supergroups.
pub fn message(update_id: i64, chat: i64, user: i64, text: &str) -> Update {
    let command_len = text.starts_with('/').then(|| {
        text.split_whitespace()
            .next()
            .unwrap_or("")
            .encode_utf16()
            .count()
    });
    let entities: Vec<Value> = command_len
        .map(|len| json!({"type": "bot_command", "offset": 0, "length": len}))
        .into_iter()
        .collect();
    let kind = if chat < 0 { "supergroup" } else { "private" };
    Update::from_value(json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id, "date": 0,
            "chat": {"id": chat, "type": kind},
            "from": {"id": user, "is_bot": false, "first_name": "U"},
            "text": text, "entities": entities,
        }
    }))
    .unwrap()
}

/// A press on a button of message `message_id` in `chat`.
pub fn press(update_id: i64, chat: i64, user: i64, message_id: i64, data: &str) -> Update {
    Update::from_value(json!({
        "update_id": update_id,
        "callback_query": {
            "id": format!("q{update_id}"), "chat_instance": "ci", "data": data,
            "from": {"id": user, "is_bot": false, "first_name": "U"},
            "message": {"message_id": message_id, "date": 0,
                        "chat": {"id": chat, "type": "private"}},
        }
    }))
    .unwrap()
}

/// Memory storage seen through a spy, a recording bot, a clock the test sets.
pub struct Harness {
    pub memory: Rc<MemoryPersistence>,
    pub spy: Rc<SpyPersistence>,
    pub bot: Rc<RecordingBot>,
    pub clock: Rc<Cell<i64>>,
}

impl Harness {
    /// A harness whose clock starts at `now_ms`.
    pub fn at(now_ms: i64) -> Self {
        let memory = Rc::new(MemoryPersistence::new());
        Self {
            spy: Rc::new(SpyPersistence::new(memory.clone())),
            memory,
            bot: Rc::new(RecordingBot::new()),
            clock: Rc::new(Cell::new(now_ms)),
        }
    }

    /// A builder over this harness's bot, storage and clock.
    pub fn builder(&self) -> ApplicationBuilder {
        let clock = self.clock.clone();
        ApplicationBuilder::new()
            .bot(self.bot.clone())
            .persistence(self.spy.clone())
            .bot_username("edge_bot")
            .clock(move || clock.get())
    }

    /// Every batch written so far.
    pub fn writes(&self) -> Vec<Vec<Change>> {
        self.spy
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Write(changes) => Some(changes),
                _ => None,
            })
            .collect()
    }
}
