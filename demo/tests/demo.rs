//! The demo bot against its contract (`docs/demo-worker.md`), natively: every
//! update runs in a fresh Application over the same storage, as on Workers.

use std::rc::Rc;

use edgegram::{demo, MemoryPersistence, Outcome, RecordingBot, Update};
mod common;

use futures::executor::block_on;
use serde_json::{json, Value};

const GROUP: i64 = -1001500000001;

struct Bot {
    store: Rc<MemoryPersistence>,
    api: Rc<RecordingBot>,
    next_id: i64,
}

impl Bot {
    fn new() -> Self {
        Self {
            store: Rc::new(MemoryPersistence::new()),
            api: Rc::new(RecordingBot::new()),
            next_id: 1,
        }
    }

    fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id - 1
    }

    fn run(&mut self, update: Update) -> Outcome {
        let app = demo::application(
            self.api.clone(),
            self.store.clone(),
            Some("demo_bot".into()),
        )
        .unwrap();
        block_on(app.process_update(update)).unwrap()
    }

    fn say(&mut self, chat: i64, user: i64, text: &str) -> Vec<(String, Value)> {
        let update = common::message(self.next_id(), chat, user, text);
        self.api.take_calls();
        self.run(update);
        self.api.take_calls()
    }

    fn press(&mut self, chat: i64, user: i64, message_id: i64, data: &str) -> Vec<(String, Value)> {
        let update = common::press(self.next_id(), chat, user, message_id, data);
        self.api.take_calls();
        self.run(update);
        self.api.take_calls()
    }

    fn state(&self) -> Value {
        self.store.to_json().unwrap()
    }
}

fn text(calls: &[(String, Value)]) -> String {
    calls
        .iter()
        .filter_map(|(_, p)| p["text"].as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn count_replies_with_three_counters() {
    let mut bot = Bot::new();
    assert_eq!(
        text(&bot.say(GROUP, 1, "/count")),
        "bot: 1, chat: 1, user: 1"
    );
    assert_eq!(
        text(&bot.say(GROUP, 2, "/count@demo_bot")),
        "bot: 2, chat: 2, user: 1"
    );
    assert_eq!(text(&bot.say(7, 1, "/count")), "bot: 3, chat: 1, user: 2");
    assert!(bot.say(GROUP, 1, "/count@someone_else").is_empty());
}

#[test]
fn the_profile_conversation_follows_the_contract() {
    let mut bot = Bot::new();
    let calls = bot.say(GROUP, 5, "/start");
    assert_eq!(
        calls[0].1["reply_markup"]["keyboard"],
        json!([
        [{"text": "Age"}, {"text": "Favourite colour"}],
        [{"text": "Number of siblings"}, {"text": "Something else..."}],
        [{"text": "Done"}]])
    );
    let conv = |bot: &Bot| bot.state()["conversations"]["profile"][format!("[{GROUP}, 5]")].clone();
    assert_eq!(conv(&bot), "CHOOSING");
    // Re-entry is off: /start while active matches nothing.
    assert!(bot.say(GROUP, 5, "/start").is_empty());
    assert_eq!(conv(&bot), "CHOOSING");

    bot.say(GROUP, 5, "Age");
    assert_eq!(conv(&bot), "TYPING_REPLY");
    assert_eq!(bot.state()["user_data"]["5"]["choice"], "age");
    let reply = text(&bot.say(GROUP, 5, "Twelve"));
    assert!(reply.contains("age - twelve"), "{reply}");
    assert_eq!(conv(&bot), "CHOOSING");
    assert_eq!(bot.state()["user_data"]["5"], json!({"age": "twelve"}));

    bot.say(GROUP, 5, "Something else...");
    assert_eq!(conv(&bot), "TYPING_CHOICE");
    bot.say(GROUP, 5, "Favourite Food");
    assert_eq!(bot.state()["user_data"]["5"]["choice"], "favourite food");
    // A command is not free text: /show_data answers outside the conversation, state kept.
    let shown = text(&bot.say(GROUP, 5, "/show_data"));
    assert!(
        shown.contains("age - twelve") && !shown.contains("choice"),
        "{shown}"
    );
    assert_eq!(conv(&bot), "TYPING_REPLY");
    bot.say(GROUP, 5, "Pizza");

    let calls = bot.say(GROUP, 5, "Done");
    assert_eq!(calls[0].1["reply_markup"], json!({"remove_keyboard": true}));
    assert!(text(&calls).contains("favourite food - pizza"));
    assert!(bot.state()["conversations"]["profile"]
        .get(format!("[{GROUP}, 5]"))
        .is_none());
    // Facts already known are listed at the next /start.
    assert!(text(&bot.say(GROUP, 5, "/start")).contains("age - twelve"));
}

#[test]
fn two_users_converse_in_one_group_without_mixing() {
    let mut bot = Bot::new();
    bot.say(GROUP, 1, "/start");
    bot.say(GROUP, 2, "/start");
    bot.say(GROUP, 1, "Age");
    bot.say(GROUP, 2, "Number of siblings");
    bot.say(GROUP, 2, "3");
    bot.say(GROUP, 1, "40");
    let state = bot.state();
    assert_eq!(state["user_data"]["1"], json!({"age": "40"}));
    assert_eq!(state["user_data"]["2"], json!({"number of siblings": "3"}));
    assert_eq!(
        state["conversations"]["profile"][format!("[{GROUP}, 1]")],
        "CHOOSING"
    );
}

fn buttons(calls: &[(String, Value)]) -> Vec<String> {
    calls
        .iter()
        .rev()
        .find_map(|(_, p)| p["reply_markup"]["inline_keyboard"].as_array().cloned())
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().clone())
        .map(|b| b["callback_data"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn list_presses_accumulate_and_old_or_tampered_buttons_expire() {
    let mut bot = Bot::new();
    let sent = bot.say(7, 7, "/list");
    assert_eq!(text(&sent), "Numbers chosen so far: []");
    let first = buttons(&sent);
    assert_eq!(first.len(), 5);
    let pressed = bot.press(7, 7, 1, &first[2]);
    assert_eq!(pressed[0].0, "answerCallbackQuery");
    assert_eq!(pressed[1].0, "editMessageText");
    assert_eq!(pressed[1].1["text"], "Numbers chosen so far: [3]");
    let second = buttons(&pressed);
    let pressed = bot.press(7, 7, 1, &second[0]);
    assert_eq!(pressed[1].1["text"], "Numbers chosen so far: [3, 1]");
    // The used keyboards' data was dropped: only the newest keyboard is stored.
    assert_eq!(bot.state()["callback_data"][0].as_array().unwrap().len(), 1);

    let before = bot.state();
    for stale in [
        first[0].clone(),
        format!("{}ff", &second[1][..62]),
        "garbage".into(),
    ] {
        let answer = bot.press(7, 7, 1, &stale);
        assert_eq!(answer.len(), 1, "{answer:?}");
        assert_eq!(answer[0].0, "answerCallbackQuery");
        assert_eq!(answer[0].1["text"], "this button has expired");
    }
    assert_eq!(bot.state(), before, "an expired press changes nothing");
}

#[test]
fn with_a_timeout_an_idle_profile_conversation_ends_and_exports_only_its_state() {
    use edgegram::conversation::expire_due;
    use edgegram::demo::{application_with, DemoOptions};
    use std::time::Duration;

    let store = Rc::new(MemoryPersistence::new());
    let api = Rc::new(RecordingBot::new());
    let options = DemoOptions {
        bot_username: None,
        conversation_timeout: Some(Duration::from_secs(60)),
    };
    let app = application_with(api, store.clone(), options).unwrap();
    let start = json!({"update_id": 1, "message": {"message_id": 1, "date": 0,
        "chat": {"id": 3, "type": "private"}, "from": {"id": 3, "is_bot": false, "first_name": "U"},
        "text": "/start", "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}});
    block_on(app.process_update(Update::from_value(start).unwrap())).unwrap();
    let state = store.to_json().unwrap();
    assert_eq!(state["conversations"]["profile"]["[3, 3]"], "CHOOSING");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Not due yet; then due (what a Durable Object alarm does).
    let early = block_on(expire_due(store.as_ref(), now)).unwrap();
    assert!(early.removed.is_empty() && early.next_deadline.is_some());
    let late = block_on(expire_due(store.as_ref(), now + 61_000)).unwrap();
    assert_eq!(late.removed.len(), 1);
    assert!(store.to_json().unwrap()["conversations"]
        .as_object()
        .unwrap()
        .is_empty());
}
