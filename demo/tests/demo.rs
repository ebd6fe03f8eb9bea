//! The demo bot against its contract (`docs/demo-worker.md`), natively: every
//! update runs in a fresh Application over the same storage, as on Workers.

use edgegram::testing::{BotCall, Harness};
use edgegram::Update;
use edgegram_demo::bot as demo;

use futures::executor::block_on;
use serde_json::json;

const GROUP: i64 = -1001500000001;

/// The demo bot as the worker builds it, afresh for every update.
fn demo_bot() -> Harness {
    Harness::new(|builder| demo::application(builder.bot_username("demo_bot")))
}

/// The Bot API calls the bot made for `update`.
fn calls_for(h: &Harness, update: Update) -> Vec<BotCall> {
    h.bot().clear();
    h.process(update);
    h.bot().take_calls()
}

fn say(h: &Harness, chat: i64, user: i64, text: &str) -> Vec<BotCall> {
    calls_for(h, h.updates().message(chat, user, text))
}

fn press(h: &Harness, chat: i64, user: i64, message_id: i64, data: &str) -> Vec<BotCall> {
    calls_for(h, h.updates().press(chat, user, message_id, data))
}

fn text(calls: &[BotCall]) -> String {
    calls
        .iter()
        .filter_map(|c| c.params["text"].as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn count_replies_with_three_counters() {
    let h = demo_bot();
    assert_eq!(
        text(&say(&h, GROUP, 1, "/count")),
        "bot: 1, chat: 1, user: 1"
    );
    assert_eq!(
        text(&say(&h, GROUP, 2, "/count@demo_bot")),
        "bot: 2, chat: 2, user: 1"
    );
    assert_eq!(text(&say(&h, 7, 1, "/count")), "bot: 3, chat: 1, user: 2");
    assert!(say(&h, GROUP, 1, "/count@someone_else").is_empty());
}

#[test]
fn the_profile_conversation_follows_the_contract() {
    let h = demo_bot();
    let calls = say(&h, GROUP, 5, "/start");
    assert_eq!(
        calls[0].params["reply_markup"]["keyboard"],
        json!([
        [{"text": "Age"}, {"text": "Favourite colour"}],
        [{"text": "Number of siblings"}, {"text": "Something else..."}],
        [{"text": "Done"}]])
    );
    let conv =
        |h: &Harness| h.to_json()["conversations"]["profile"][format!("[{GROUP}, 5]")].clone();
    assert_eq!(conv(&h), "CHOOSING");
    // Re-entry is off: /start while active matches nothing.
    assert!(say(&h, GROUP, 5, "/start").is_empty());
    assert_eq!(conv(&h), "CHOOSING");

    say(&h, GROUP, 5, "Age");
    assert_eq!(conv(&h), "TYPING_REPLY");
    assert_eq!(h.to_json()["user_data"]["5"]["choice"], "age");
    let reply = text(&say(&h, GROUP, 5, "Twelve"));
    assert!(reply.contains("age - twelve"), "{reply}");
    assert_eq!(conv(&h), "CHOOSING");
    assert_eq!(h.to_json()["user_data"]["5"], json!({"age": "twelve"}));

    say(&h, GROUP, 5, "Something else...");
    assert_eq!(conv(&h), "TYPING_CHOICE");
    say(&h, GROUP, 5, "Favourite Food");
    assert_eq!(h.to_json()["user_data"]["5"]["choice"], "favourite food");
    // A command is not free text: /show_data answers outside the conversation, state kept.
    let shown = text(&say(&h, GROUP, 5, "/show_data"));
    assert!(
        shown.contains("age - twelve") && !shown.contains("choice"),
        "{shown}"
    );
    assert_eq!(conv(&h), "TYPING_REPLY");
    say(&h, GROUP, 5, "Pizza");

    let calls = say(&h, GROUP, 5, "Done");
    assert_eq!(
        calls[0].params["reply_markup"],
        json!({"remove_keyboard": true})
    );
    assert!(text(&calls).contains("favourite food - pizza"));
    assert!(h.to_json()["conversations"]["profile"]
        .get(format!("[{GROUP}, 5]"))
        .is_none());
    // Facts already known are listed at the next /start.
    assert!(text(&say(&h, GROUP, 5, "/start")).contains("age - twelve"));
}

#[test]
fn two_users_converse_in_one_group_without_mixing() {
    let h = demo_bot();
    say(&h, GROUP, 1, "/start");
    say(&h, GROUP, 2, "/start");
    say(&h, GROUP, 1, "Age");
    say(&h, GROUP, 2, "Number of siblings");
    say(&h, GROUP, 2, "3");
    say(&h, GROUP, 1, "40");
    let state = h.to_json();
    assert_eq!(state["user_data"]["1"], json!({"age": "40"}));
    assert_eq!(state["user_data"]["2"], json!({"number of siblings": "3"}));
    assert_eq!(
        state["conversations"]["profile"][format!("[{GROUP}, 1]")],
        "CHOOSING"
    );
}

fn buttons(calls: &[BotCall]) -> Vec<String> {
    calls
        .iter()
        .rev()
        .find_map(|c| {
            c.params["reply_markup"]["inline_keyboard"]
                .as_array()
                .cloned()
        })
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().clone())
        .map(|b| b["callback_data"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn list_presses_accumulate_and_old_or_tampered_buttons_expire() {
    let h = demo_bot();
    let sent = say(&h, 7, 7, "/list");
    assert_eq!(text(&sent), "Numbers chosen so far: []");
    let list = sent[0].result.as_ref().unwrap()["message_id"]
        .as_i64()
        .unwrap();
    let first = buttons(&sent);
    assert_eq!(first.len(), 5);
    let pressed = press(&h, 7, 7, list, &first[2]);
    assert_eq!(pressed[0].method, "answerCallbackQuery");
    assert_eq!(pressed[1].method, "editMessageText");
    assert_eq!(pressed[1].params["message_id"], list);
    assert_eq!(pressed[1].params["text"], "Numbers chosen so far: [3]");
    let second = buttons(&pressed);
    let pressed = press(&h, 7, 7, list, &second[0]);
    assert_eq!(pressed[1].params["text"], "Numbers chosen so far: [3, 1]");
    // The used keyboards' data was dropped: only the newest keyboard is stored.
    assert_eq!(h.to_json()["callback_data"][0].as_array().unwrap().len(), 1);

    let before = h.to_json();
    for stale in [
        first[0].clone(),
        format!("{}ff", &second[1][..62]),
        "garbage".into(),
    ] {
        let answer = press(&h, 7, 7, list, &stale);
        assert_eq!(answer.len(), 1, "{answer:?}");
        assert_eq!(answer[0].method, "answerCallbackQuery");
        assert_eq!(answer[0].params["text"], "this button has expired");
    }
    assert_eq!(h.to_json(), before, "an expired press changes nothing");
}

#[test]
fn with_a_timeout_an_idle_profile_conversation_ends_and_exports_only_its_state() {
    use edgegram::conversation::expire_due;
    use edgegram_demo::bot::{application_with, DemoOptions};
    use std::time::Duration;

    let h = Harness::new(|builder| {
        let options = DemoOptions {
            conversation_timeout: Some(Duration::from_secs(60)),
        };
        application_with(builder, &options)
    });
    h.process(h.updates().command(3, 3, "/start"));
    assert_eq!(
        h.to_json()["conversations"]["profile"]["[3, 3]"],
        "CHOOSING"
    );
    // The harness's clock stands still until advanced; the alarm reads the same time.
    let now = h.now_ms();
    // Not due yet; then due (what a Durable Object alarm does).
    let early = block_on(expire_due(h.memory(), now)).unwrap();
    assert!(early.removed.is_empty() && early.next_deadline.is_some());
    let late = block_on(expire_due(h.memory(), now + 61_000)).unwrap();
    assert_eq!(late.removed.len(), 1);
    assert!(h.to_json()["conversations"].as_object().unwrap().is_empty());
}

#[test]
fn with_a_timeout_an_idle_profile_conversation_says_timed_out_at_its_deadline_with_no_update() {
    use edgegram_demo::bot::{application_with, DemoOptions};
    use std::time::Duration;

    let h = Harness::new(|builder| {
        let options = DemoOptions {
            conversation_timeout: Some(Duration::from_secs(60)),
        };
        application_with(builder, &options)
    });
    say(&h, 3, 3, "/start");
    say(&h, 3, 3, "Age");
    assert_eq!(h.to_json()["user_data"]["3"]["choice"], "age");
    h.advance(Duration::from_secs(59));
    assert_eq!(h.expire_conversations().unwrap(), 0);
    h.bot().clear();
    h.advance(Duration::from_secs(1));
    assert_eq!(h.expire_conversations().unwrap(), 1);
    let calls = h.bot().take_calls();
    assert_eq!(text(&calls), "Timed out. Send /start to begin again.");
    assert_eq!(calls[0].params["chat_id"], 3);
    assert_eq!(calls[0].params["reply_markup"]["remove_keyboard"], true);
    assert!(h.to_json()["conversations"].as_object().unwrap().is_empty());
    assert_eq!(h.to_json()["user_data"]["3"].get("choice"), None);
    // A new /start begins again.
    assert!(text(&say(&h, 3, 3, "/start")).starts_with("Hi!"));
}

#[test]
fn a_group_that_becomes_a_supergroup_keeps_its_chat_data() {
    const SUPERGROUP: i64 = -1001500000999;
    let old_group = -4242;
    let h = demo_bot();
    say(&h, old_group, 1, "/count");
    say(&h, old_group, 2, "/count");
    assert!(calls_for(&h, h.updates().group_migrated(old_group, SUPERGROUP, 1)).is_empty());
    assert_eq!(
        text(&say(&h, SUPERGROUP, 1, "/count")),
        "bot: 3, chat: 3, user: 2"
    );
    let state = h.to_json();
    assert_eq!(state["chat_data"][SUPERGROUP.to_string()]["count"], 3);
    assert!(
        state["chat_data"].get(old_group.to_string()).is_none(),
        "the old group's entry is gone: {state}"
    );
}

#[test]
fn count_at_its_maximum_says_so_and_counts_nothing() {
    // Issue 12, item 23: the counters wrapped at i64::MAX (or, in a debug build, panicked,
    // which on Workers aborts the worker).
    let h = demo_bot();
    let max = i64::MAX;
    let doc = json!({"bot_data": {"count": 5}, "chat_data": {"7": {"count": max}}, "user_data": {"7": {"count": 1}}});
    block_on(edgegram::persistence::dict::import(h.memory(), &doc, 1)).unwrap();
    let before = h.to_json();
    assert_eq!(
        text(&say(&h, 7, 7, "/count")),
        format!("The chat counter is at its maximum, {max}, so /count counted nothing.")
    );
    assert_eq!(h.to_json(), before, "no counter moved, none wrapped");
    // Other chats and users count on; one below the maximum reaches it.
    let doc = json!({"bot_data": {"count": max - 1}});
    block_on(edgegram::persistence::dict::import(h.memory(), &doc, 1)).unwrap();
    assert_eq!(
        text(&say(&h, 8, 8, "/count")),
        format!("bot: {max}, chat: 1, user: 1")
    );
    assert_eq!(
        text(&say(&h, 8, 8, "/count")),
        format!("The bot counter is at its maximum, {max}, so /count counted nothing.")
    );
    // A count that is not a whole number (an import's, say) is left as it is, not reset.
    let doc = json!({"bot_data": {}, "user_data": {"9": {"count": "lots"}}});
    block_on(edgegram::persistence::dict::import(h.memory(), &doc, 1)).unwrap();
    assert_eq!(
        text(&say(&h, 9, 9, "/count")),
        "The user counter holds \"lots\", not a whole number, so /count counted nothing."
    );
    assert_eq!(h.to_json()["user_data"]["9"]["count"], "lots");
}

#[test]
fn an_import_of_a_profile_state_the_conversation_does_not_have_is_refused() {
    // Issue 12, item 23: the user would be stuck (re-entry is off, so /start matches nothing
    // while the conversation is active; only "Done" would get them out).
    let h = demo_bot();
    let app = h.application().unwrap();
    let import = |state: serde_json::Value| {
        let doc = json!({"conversations": {"profile": {"[7, 7]": state}}});
        block_on(app.import(&doc.to_string(), Default::default()))
    };
    let refused = import(json!("TYPING_NOTHING"));
    assert_eq!(
        refused,
        Err(edgegram::Error::Invalid(
            "conversations.profile.[7, 7]: state \"TYPING_NOTHING\" is not a state of \
             conversation \"profile\" (its states: \"CHOOSING\", \"TYPING_CHOICE\", \"TYPING_REPLY\")"
                .into()
        ))
    );
    assert_eq!(h.to_json()["conversations"], json!({}));
    assert_eq!(import(json!("TYPING_REPLY")), Ok(1));
}

#[test]
fn remind_sets_a_reminder_that_fires_once_at_its_time_and_reminders_lists_it() {
    let h = demo_bot();
    assert_eq!(text(&say(&h, 5, 5, "/remind 60 stretch")), "Reminder set.");
    say(&h, 5, 5, "/remind 600 lunch");
    h.advance(std::time::Duration::from_secs(10));
    assert_eq!(
        text(&say(&h, 5, 5, "/reminders")),
        "Pending reminders:\nin 50 s: stretch\nin 590 s: lunch"
    );
    // Another chat's reminders are not listed here.
    assert_eq!(text(&say(&h, 6, 6, "/reminders")), "No reminders pending.");
    h.bot().clear();
    h.advance(std::time::Duration::from_secs(50));
    h.run_due_jobs().unwrap();
    let sent = h.bot().calls();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].params["chat_id"], 5);
    assert_eq!(sent[0].params["text"], "stretch");
    h.advance(std::time::Duration::from_secs(60));
    h.run_due_jobs().unwrap();
    assert_eq!(h.bot().calls().len(), 1, "sent once");
    assert_eq!(
        text(&say(&h, 5, 5, "/reminders")),
        "Pending reminders:\nin 480 s: lunch"
    );
    assert!(text(&say(&h, 5, 5, "/remind soon x")).starts_with("Usage: /remind"));
}
