//! ConversationHandler: PTB's documented behaviours (entry, states, fallbacks, re-entry, keys,
//! nesting with map_to_parent, timeouts, configuration errors), and what reaches storage.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use edgegram::conversation::{
    expire_due, on, ConversationHandler, ConversationState, Expired, Next, StateResult,
};
use edgegram::persistence::dict;
use edgegram::testing::Harness;
use edgegram::{
    filters, ApplicationBuilder, CommandHandler, Context, Error, Key, MessageHandler,
    PersistenceExt, TypeHandler, Update,
};

use futures::executor::block_on;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const CHAT: i64 = 5;
const USER: i64 = 7;
const GROUP: i64 = -1001500000001;

type Conversation<S> = ConversationHandler<edgegram::Data, edgegram::Data, edgegram::Data, S>;

/// A bot of one conversation, built afresh for every update as on Workers.
fn bot_of<S: ConversationState>(
    conversation: impl Fn() -> edgegram::Result<Conversation<S>> + 'static,
) -> Harness {
    Harness::new(move |builder| builder.handler(conversation()?).build())
}

/// A harness whose tests build their Applications with `h.builder()`.
fn harness() -> Harness {
    Harness::new(ApplicationBuilder::build)
}

fn stored(h: &Harness, name: &str, key: &str) -> Option<Value> {
    block_on(h.memory().get_conversation(name, key)).unwrap()
}

/// The demo's profile conversation states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Profile {
    Choosing,
    TypingReply,
    TypingChoice,
}

fn conv_key(name: &str, key: &str) -> Key {
    Key::Conversation {
        name: name.into(),
        key: key.into(),
    }
}

async fn start(ctx: Context) -> StateResult<Profile> {
    ctx.reply_text("start")?;
    Ok(Next::To(Profile::Choosing))
}

async fn choice(ctx: Context) -> StateResult<Profile> {
    let text = ctx.text().unwrap_or_default().to_lowercase();
    ctx.user_data(|d| d.insert("choice".into(), text.clone().into()))?;
    ctx.reply_text(format!("your {text}?"))?;
    Ok(Next::To(Profile::TypingReply))
}

async fn custom_choice(ctx: Context) -> StateResult<Profile> {
    ctx.reply_text("category?")?;
    Ok(Next::To(Profile::TypingChoice))
}

async fn received(ctx: Context) -> StateResult<Profile> {
    let text = ctx.text().unwrap_or_default().to_lowercase();
    ctx.user_data(|d| {
        if let Some(Value::String(choice)) = d.remove("choice") {
            d.insert(choice, text.into());
        }
    })?;
    ctx.reply_text("noted")?;
    Ok(Next::To(Profile::Choosing))
}

async fn done(ctx: Context) -> StateResult<Profile> {
    ctx.reply_text("bye")?;
    Ok(Next::End)
}

/// The demo contract's `profile` conversation, persistent.
fn profile() -> edgegram::conversation::ConversationBuilder<
    edgegram::Data,
    edgegram::Data,
    edgegram::Data,
    Profile,
> {
    let free_text = || filters::text() & !filters::command() & !filters::text_eq("Done");
    ConversationHandler::builder()
        .entry(on::command("start"), start)
        .state(
            Profile::Choosing,
            on::message(filters::text_in([
                "Age",
                "Favourite colour",
                "Number of siblings",
            ])),
            choice,
        )
        .state(
            Profile::Choosing,
            on::message(filters::text_eq("Something else...")),
            custom_choice,
        )
        .state(Profile::TypingChoice, on::message(free_text()), choice)
        .state(Profile::TypingReply, on::message(free_text()), received)
        .fallback(on::message(filters::text_eq("Done")), done)
        .name("profile")
        .persistent(true)
}

#[test]
fn a_conversation_moves_through_its_states_and_its_entry_is_deleted_on_end() {
    let h = bot_of(|| profile().build());
    let tg = h.updates();
    let key = conv_key("profile", "[5, 7]");

    let outcome = h.process(tg.message(CHAT, USER, "/start"));
    // The conversation's entry is read with the update's data, in the one read.
    assert_eq!(
        h.reads()[0],
        [
            Key::BotData,
            Key::ChatData(CHAT),
            Key::UserData(USER),
            key.clone()
        ]
    );
    assert_eq!(outcome.reads, 1);
    assert_eq!(outcome.written(), [&key]);
    assert_eq!(stored(&h, "profile", "[5, 7]"), Some(json!("CHOOSING")));

    h.process(tg.message(CHAT, USER, "Something else..."));
    assert_eq!(
        stored(&h, "profile", "[5, 7]"),
        Some(json!("TYPING_CHOICE"))
    );
    h.process(tg.message(CHAT, USER, "Pet"));
    assert_eq!(stored(&h, "profile", "[5, 7]"), Some(json!("TYPING_REPLY")));
    h.process(tg.message(CHAT, USER, "Cat"));
    assert_eq!(
        h.to_json()["conversations"]["profile"]["[5, 7]"],
        "CHOOSING"
    );
    assert_eq!(h.to_json()["user_data"]["7"], json!({"pet": "cat"}));

    let outcome = h.process(tg.message(CHAT, USER, "Done"));
    assert_eq!(outcome.deleted(), [&key]);
    assert_eq!(stored(&h, "profile", "[5, 7]"), None);
    assert_eq!(h.to_json()["conversations"], json!({}));
    assert_eq!(
        h.bot().texts(),
        ["start", "category?", "your pet?", "noted", "bye"]
    );

    // Ended: "Done" is no longer handled (fallbacks only apply to an active conversation).
    let outcome = h.process(tg.message(CHAT, USER, "Done"));
    assert!(!outcome.handled);
}

#[test]
fn a_state_that_does_not_change_writes_nothing() {
    let h = bot_of(|| {
        profile()
            .state(
                Profile::Choosing,
                on::message(filters::text_eq("stay")),
                |_| async { Ok(Next::Stay) },
            )
            .state(
                Profile::Choosing,
                on::message(filters::text_eq("same")),
                |_| async { Ok(Next::To(Profile::Choosing)) },
            )
            .build()
    });
    let tg = h.updates();
    h.process(tg.message(CHAT, USER, "/start"));
    for text in ["stay", "same"] {
        let outcome = h.process(tg.message(CHAT, USER, text));
        assert!(outcome.handled, "{text}");
        assert!(outcome.changes.is_empty(), "{text}: {:?}", outcome.changes);
    }
    assert_eq!(stored(&h, "profile", "[5, 7]"), Some(json!("CHOOSING")));
}

#[test]
fn without_reentry_an_entry_point_matches_nothing_while_active_with_it_restarts() {
    let h = bot_of(|| profile().build());
    let tg = h.updates();
    h.process(tg.message(CHAT, USER, "/start"));
    h.process(tg.message(CHAT, USER, "Age"));
    let outcome = h.process(tg.message(CHAT, USER, "/start"));
    assert!(!outcome.handled && outcome.changes.is_empty());
    assert_eq!(stored(&h, "profile", "[5, 7]"), Some(json!("TYPING_REPLY")));
    assert_eq!(h.bot().texts(), ["start", "your age?"]);

    let h = bot_of(|| profile().allow_reentry(true).build());
    let tg = h.updates();
    h.process(tg.message(CHAT, USER, "/start"));
    h.process(tg.message(CHAT, USER, "Age"));
    let outcome = h.process(tg.message(CHAT, USER, "/start"));
    assert!(outcome.handled);
    assert_eq!(stored(&h, "profile", "[5, 7]"), Some(json!("CHOOSING")));
}

#[test]
fn state_handlers_come_before_fallbacks_and_fallbacks_need_an_active_conversation() {
    let h = bot_of(|| {
        profile()
            // A fallback that would match the free text of TYPING_REPLY as well.
            .fallback(on::message(filters::text()), |ctx: Context| async move {
                ctx.reply_text("fallback")?;
                Ok(Next::Stay)
            })
            .build()
    });
    let tg = h.updates();
    assert!(!h.process(tg.message(CHAT, USER, "hello")).handled);
    h.process(tg.message(CHAT, USER, "/start"));
    h.process(tg.message(CHAT, USER, "Age"));
    h.process(tg.message(CHAT, USER, "12")); // TYPING_REPLY's handler, not the fallback
    h.process(tg.message(CHAT, USER, "/unknown")); // no state handler: the fallback
    assert_eq!(h.bot().texts(), ["start", "your age?", "noted", "fallback"]);
    assert_eq!(stored(&h, "profile", "[5, 7]"), Some(json!("CHOOSING")));
}

#[test]
fn an_entry_point_that_stays_does_not_start_a_conversation() {
    let h = bot_of(|| {
        ConversationHandler::builder()
            .entry(on::command("peek"), |_| async { Ok(Next::Stay) })
            .entry(on::command("start"), start)
            .state(Profile::Choosing, on::message(filters::text()), |_| async {
                Ok(Next::End)
            })
            .name("profile")
            .persistent(true)
            .build()
    });
    let tg = h.updates();
    let outcome = h.process(tg.message(CHAT, USER, "/peek"));
    assert!(outcome.handled && outcome.changes.is_empty());
    assert!(!h.process(tg.message(CHAT, USER, "text")).handled);
}

#[test]
fn a_failing_callback_keeps_the_previous_state() {
    let h = bot_of(|| {
        profile()
            .state(
                Profile::Choosing,
                on::message(filters::text_eq("boom")),
                |_| async { Err("exploded".into()) },
            )
            .build()
    });
    let tg = h.updates();
    h.process(tg.message(CHAT, USER, "/start"));
    let outcome = h.process(tg.message(CHAT, USER, "boom"));
    assert_eq!(outcome.handler_error.as_deref(), Some("exploded"));
    assert!(outcome.changes.is_empty());
    assert_eq!(stored(&h, "profile", "[5, 7]"), Some(json!("CHOOSING")));
}

#[test]
fn a_fresh_application_over_the_same_storage_continues_the_conversation() {
    let h = harness();
    let tg = h.updates();
    let fresh = || {
        h.builder()
            .handler(profile().build().unwrap())
            .build()
            .unwrap()
    };
    h.process_in(&fresh(), tg.message(CHAT, USER, "/start"));
    // The next update reaches another isolate: a new Application, same storage.
    h.process_in(&fresh(), tg.message(CHAT, USER, "Age"));
    h.process_in(&fresh(), tg.message(CHAT, USER, "31"));
    assert_eq!(h.bot().texts(), ["start", "your age?", "noted"]);
    assert_eq!(h.to_json()["user_data"]["7"], json!({"age": "31"}));
}

#[test]
fn a_conversation_that_is_not_persistent_lives_in_its_application_only() {
    let h = bot_of(|| profile().persistent(false).build());
    let tg = h.updates();
    let build = || h.application().unwrap();
    let app = build();
    let outcome = h.process_in(&app, tg.message(CHAT, USER, "/start"));
    assert!(outcome.written().is_empty(), "{:?}", outcome.changes);
    let conversation = |k: &Key| matches!(k, Key::Conversation { .. });
    assert!(!h.reads().iter().flatten().any(conversation));
    h.process_in(&app, tg.message(CHAT, USER, "Age"));
    assert_eq!(h.bot().texts(), ["start", "your age?"]);
    // A new Application does not know it: "31" is not handled, "/start" starts afresh.
    let other = build();
    assert!(!h.process_in(&other, tg.message(CHAT, USER, "31")).handled);
    assert!(
        h.process_in(&other, tg.message(CHAT, USER, "/start"))
            .handled
    );
    // A name alone does not make it persistent (as PTB's persistent=False).
    assert!(h.to_json()["conversations"].as_object().unwrap().is_empty());
}

#[test]
fn conversations_are_keyed_per_chat_and_per_user_as_configured() {
    // Default: one conversation per user in each chat.
    let h = bot_of(|| profile().build());
    let tg = h.updates();
    h.process(tg.message(GROUP, 7, "/start"));
    assert!(
        !h.process(tg.message(GROUP, 8, "Age")).handled,
        "user 8 has no conversation"
    );
    assert!(
        !h.process(tg.message(CHAT, 7, "Age")).handled,
        "nor has user 7 elsewhere"
    );
    h.process(tg.message(GROUP, 7, "Age"));
    assert_eq!(
        h.to_json()["conversations"]["profile"],
        json!({"[-1001500000001, 7]": "TYPING_REPLY"})
    );

    // per_user(false): the whole chat shares one conversation.
    let h = bot_of(|| profile().per_user(false).build());
    let tg = h.updates();
    h.process(tg.message(GROUP, 7, "/start"));
    assert!(h.process(tg.message(GROUP, 8, "Age")).handled);
    assert_eq!(
        h.to_json()["conversations"]["profile"],
        json!({"[-1001500000001]": "TYPING_REPLY"})
    );

    // per_chat(false): one conversation per user across chats.
    let h = bot_of(|| profile().per_chat(false).build());
    let tg = h.updates();
    h.process(tg.message(GROUP, 7, "/start"));
    assert!(h.process(tg.message(CHAT, 7, "Age")).handled);
    assert_eq!(
        h.to_json()["conversations"]["profile"],
        json!({"[7]": "TYPING_REPLY"})
    );

    // Channel posts never belong to a conversation.
    let h = bot_of(|| profile().per_user(false).build());
    let post = h.updates().channel_post(-1001000000100, "/start");
    assert!(!h.process(post).handled);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Menu {
    Open,
}

fn menu(
    per_chat: bool,
) -> ConversationHandler<edgegram::Data, edgegram::Data, edgegram::Data, Menu> {
    ConversationHandler::builder()
        .entry(on::callback_data("^open$").unwrap(), |_| async {
            Ok(Next::To(Menu::Open))
        })
        .state(
            Menu::Open,
            on::callback_data("^close$").unwrap(),
            |_| async { Ok(Next::End) },
        )
        .per_message(true)
        .per_chat(per_chat)
        .name("menu")
        .persistent(true)
        .build()
        .unwrap()
}

#[test]
fn per_message_keys_each_keyboard_message_separately() {
    let h = bot_of(|| Ok(menu(true)));
    let tg = h.updates();
    h.process(tg.press(CHAT, USER, 100, "open"));
    h.process(tg.press(CHAT, USER, 200, "open"));
    h.process(tg.press(CHAT, USER, 100, "close"));
    assert_eq!(
        h.to_json()["conversations"]["menu"],
        json!({"[5, 7, 200]": "OPEN"})
    );
    // Messages are not callback queries: never part of a per-message conversation.
    assert!(!h.process(tg.message(CHAT, USER, "close")).handled);

    // Inline-mode messages have no chat: keyed by user and inline message id.
    let h = bot_of(|| Ok(menu(false)));
    let tg = h.updates();
    h.process(tg.inline_press(USER, "AAQ-inline", "open"));
    assert_eq!(
        h.to_json()["conversations"]["menu"],
        json!({"[7, \"AAQ-inline\"]": "OPEN"})
    );
    // And a per-chat conversation ignores them (no chat to key by).
    let h = bot_of(|| Ok(menu(true)));
    let tg = h.updates();
    assert!(
        !h.process(tg.inline_press(USER, "AAQ-inline", "open"))
            .handled
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Top {
    Menu,
    Edited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Sub {
    Name,
    Abort,
}

fn nested() -> ConversationHandler<edgegram::Data, edgegram::Data, edgegram::Data, Top> {
    let child = ConversationHandler::builder()
        .entry(on::command("add"), |_| async { Ok(Next::To(Sub::Name)) })
        .state(
            Sub::Name,
            on::message(filters::text() & !filters::command()),
            |_| async { Ok(Next::End) },
        )
        .fallback(on::command("abort"), |_| async { Ok(Next::To(Sub::Abort)) })
        .map_to_parent(Next::End, Next::To(Top::Edited))
        .map_to_parent(Next::To(Sub::Abort), Next::<Top>::End)
        .name("child")
        .persistent(true)
        .build()
        .unwrap();
    ConversationHandler::builder()
        .entry(on::command("start"), |_| async { Ok(Next::To(Top::Menu)) })
        .state_conversation(Top::Menu, child)
        .state(
            Top::Edited,
            on::message(filters::text_eq("ok")),
            |_| async { Ok(Next::End) },
        )
        .name("parent")
        .persistent(true)
        .build()
        .unwrap()
}

#[test]
fn a_nested_conversation_maps_its_end_to_a_parent_state() {
    let h = bot_of(|| Ok(nested()));
    let tg = h.updates();
    let parent = conv_key("parent", "[5, 7]");
    let child = conv_key("child", "[5, 7]");

    h.process(tg.message(CHAT, USER, "/start"));
    // Both conversations' entries are read in the update's one read.
    let keys = &h.reads()[0];
    assert!(keys.contains(&parent) && keys.contains(&child), "{keys:?}");
    let outcome = h.process(tg.message(CHAT, USER, "/add"));
    // The child starts; the parent stays in MENU and is not written.
    assert_eq!(outcome.written(), [&child]);
    assert_eq!(
        h.to_json()["conversations"],
        json!({"parent": {"[5, 7]": "MENU"}, "child": {"[5, 7]": "NAME"}})
    );
    // The child ends (END is mapped to EDITED): the child's entry goes, the parent moves.
    let outcome = h.process(tg.message(CHAT, USER, "Bob"));
    assert_eq!(outcome.deleted(), [&child]);
    assert_eq!(
        h.to_json()["conversations"],
        json!({"parent": {"[5, 7]": "EDITED"}})
    );
    h.process(tg.message(CHAT, USER, "ok"));
    assert_eq!(h.to_json()["conversations"], json!({}));

    // A child state mapped to END ends the parent too.
    h.process(tg.message(CHAT, USER, "/start"));
    h.process(tg.message(CHAT, USER, "/add"));
    let outcome = h.process(tg.message(CHAT, USER, "/abort"));
    assert_eq!(outcome.deleted(), [&child, &parent]);
    assert_eq!(h.to_json()["conversations"], json!({}));
}

#[test]
fn the_match_names_the_branch_that_takes_the_update() {
    use edgegram::conversation::{Branch, Route};
    use edgegram::Handler;

    let h = harness();
    let tg = h.updates();
    let conversation = Rc::new(nested());
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (c2, seen2) = (conversation.clone(), seen.clone());
    // Group -1 asks the conversation what it would choose, before it runs in group 0.
    let app = h
        .builder()
        .handler_in_group(
            TypeHandler::all(move |ctx: Context| {
                seen2
                    .borrow_mut()
                    .push(c2.check_update(&ctx).and_then(|m| m.route));
                async { Ok(()) }
            }),
            -1,
        )
        .handler_in_group(RcHandler(conversation), 0)
        .build()
        .unwrap();
    h.process_in(&app, tg.message(CHAT, USER, "/start"));
    h.process_in(&app, tg.message(CHAT, USER, "/add"));
    h.process_in(&app, tg.message(CHAT, USER, "Bob"));
    h.process_in(&app, tg.message(CHAT, USER, "not ok"));
    let route = |branch, inner: Option<Route>| Route {
        expired: false,
        branch,
        inner: inner.map(Box::new),
    };
    assert_eq!(
        *seen.borrow(),
        [
            // No conversation yet: the parent's entry point.
            Some(route(Branch::Entry(0), None)),
            // MENU's handler 0 is the child conversation, which starts at its entry point.
            Some(route(Branch::State(0), Some(route(Branch::Entry(0), None)))),
            Some(route(Branch::State(0), Some(route(Branch::State(0), None)))),
            // EDITED waits for "ok"; there is no fallback.
            None,
        ]
    );
}

#[test]
fn a_nested_conversation_is_only_consulted_in_its_parent_state() {
    let h = bot_of(|| Ok(nested()));
    let tg = h.updates();
    assert!(!h.process(tg.message(CHAT, USER, "/add")).handled);
    assert_eq!(h.to_json()["conversations"], json!({}));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Ask {
    Asking,
}

type Log = Rc<RefCell<Vec<String>>>;

fn note(
    log: &Log,
    what: &'static str,
) -> impl Fn(Context) -> std::future::Ready<edgegram::HandlerResult> {
    let log = log.clone();
    move |ctx: Context| {
        let text = ctx.text().unwrap_or("<no text>").to_string();
        log.borrow_mut().push(format!("{what}: {text}"));
        std::future::ready(Ok(()))
    }
}

fn asking(
    log: &Log,
) -> edgegram::conversation::ConversationBuilder<edgegram::Data, edgegram::Data, edgegram::Data, Ask>
{
    let (on_start, on_text) = (log.clone(), log.clone());
    ConversationHandler::builder()
        .entry(on::command("start"), move |_| {
            on_start.borrow_mut().push("start".into());
            async { Ok(Next::To(Ask::Asking)) }
        })
        .state(
            Ask::Asking,
            on::message(filters::text() & !filters::command()),
            move |_| {
                on_text.borrow_mut().push("answer".into());
                async { Ok(Next::Stay) }
            },
        )
        .conversation_timeout(Duration::from_secs(1))
        .name("ask")
        .persistent(true)
}

#[test]
fn a_timeout_is_stored_with_the_state_and_every_handled_update_restarts_it() {
    let h = harness();
    let tg = h.updates();
    let log = Log::default();
    let app = h
        .builder()
        .handler(asking(&log).build().unwrap())
        .build()
        .unwrap();
    h.set_now_ms(10_000);
    h.process_in(&app, tg.message(CHAT, USER, "/start"));
    assert_eq!(
        stored(&h, "ask", "[5, 7]"),
        Some(json!({"state": "ASKING", "expires_at_ms": 11_000}))
    );
    // Export shows the state only, as PTB's DictPersistence.
    assert_eq!(h.to_json()["conversations"]["ask"]["[5, 7]"], "ASKING");
    h.set_now_ms(10_900);
    let outcome = h.process_in(&app, tg.message(CHAT, USER, "still here"));
    assert_eq!(outcome.written(), [&conv_key("ask", "[5, 7]")]);
    assert_eq!(
        stored(&h, "ask", "[5, 7]"),
        Some(json!({"state": "ASKING", "expires_at_ms": 11_900}))
    );
    assert_eq!(*log.borrow(), ["start", "answer"]);
}

#[test]
fn the_first_update_after_the_deadline_runs_every_matching_timeout_handler_then_ends() {
    let h = harness();
    let tg = h.updates();
    let log = Log::default();
    let app = h
        .builder()
        .handler(
            asking(&log)
                .timeout_handler(TypeHandler::all(note(&log, "timeout-any")))
                .timeout_handler(CommandHandler::new("never", note(&log, "timeout-never")))
                .timeout_handler(MessageHandler::new(
                    filters::text(),
                    note(&log, "timeout-text"),
                ))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    h.set_now_ms(0);
    h.process_in(&app, tg.message(CHAT, USER, "/start"));
    h.set_now_ms(1_000); // exactly the deadline: timed out
    let outcome = h.process_in(&app, tg.message(CHAT, USER, "late"));
    assert!(outcome.handled);
    assert_eq!(outcome.deleted(), [&conv_key("ask", "[5, 7]")]);
    // The state handler did not run: the conversation had ended.
    assert_eq!(
        *log.borrow(),
        ["start", "timeout-any: late", "timeout-text: late"]
    );
    // Ended: the next free text is not handled at all.
    log.borrow_mut().clear();
    assert!(!h.process_in(&app, tg.message(CHAT, USER, "again")).handled);
    assert!(log.borrow().is_empty());
}

#[test]
fn a_late_entry_point_runs_the_timeout_handlers_then_starts_a_new_conversation() {
    // In PTB the timeout job has ended the conversation before the late update arrives, so the
    // update is checked against the entry points like any other.
    let h = harness();
    let tg = h.updates();
    let log = Log::default();
    let app = h
        .builder()
        .handler(
            asking(&log)
                .timeout_handler(TypeHandler::all(note(&log, "timeout")))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    h.set_now_ms(0);
    h.process_in(&app, tg.message(CHAT, USER, "/start"));
    h.set_now_ms(5_000);
    let outcome = h.process_in(&app, tg.message(CHAT, USER, "/start"));
    assert!(outcome.handled);
    assert_eq!(*log.borrow(), ["start", "timeout: /start", "start"]);
    let stored = stored(&h, "ask", "[5, 7]").unwrap();
    assert_eq!(
        (&stored["state"], &stored["expires_at_ms"]),
        (&json!("ASKING"), &json!(6_000))
    );
    // With TIMEOUT handlers, the update that moved it is kept for them, for the deadline.
    assert_eq!(stored["update"]["message"]["date"], 5);
}

#[test]
fn a_late_update_that_nothing_matches_is_not_handled_and_an_alarm_sweeps_the_entry() {
    let h = harness();
    let tg = h.updates();
    let log = Log::default();
    let app = h
        .builder()
        .handler(
            asking(&log)
                .timeout_handler(MessageHandler::new(filters::text(), note(&log, "timeout")))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    h.set_now_ms(0);
    h.process_in(&app, tg.message(CHAT, USER, "/start"));
    h.process_in(&app, tg.message(GROUP, 8, "/start")); // another conversation, same deadline
    h.set_now_ms(500);
    h.process_in(&app, tg.message(GROUP, 8, "answer")); // moves its deadline to 1500
    h.set_now_ms(1_200);
    // A button press: no timeout handler or entry point matches it, so the conversation
    // does not take it (other handlers of the group could) and writes nothing.
    let outcome = h.process_in(&app, tg.press(CHAT, USER, 1, "x"));
    assert!(!outcome.handled && outcome.changes.is_empty());
    assert_eq!(*log.borrow(), ["start", "start", "answer"]);

    // The Durable Object alarm's sweep: the due entry goes, the next deadline is reported.
    let expired = block_on(expire_due(h.memory(), 1_200)).unwrap();
    assert_eq!(
        expired,
        Expired {
            removed: vec![conv_key("ask", "[5, 7]")],
            next_deadline: Some(1_500),
        }
    );
    assert_eq!(
        h.to_json()["conversations"]["ask"],
        json!({"[-1001500000001, 8]": "ASKING"})
    );
    assert_eq!(
        edgegram::conversation::deadline(&json!({"state": "ASKING", "expires_at_ms": 1_500})),
        Some(1_500)
    );
    assert_eq!(edgegram::conversation::deadline(&json!("ASKING")), None);
}

#[test]
fn a_ptb_export_imports_and_its_conversations_continue() {
    // PTB bots often use integer states (`CHOOSING, TYPING = range(2)`); DictPersistence also
    // holds `null` for ended conversations and some persistences keep END (-1) as a state.
    let h = harness();
    let tg = h.updates();
    let doc = json!({"conversations": {"ints": {"[5, 7]": 1, "[5, 8]": -1, "[5, 9]": null}}});
    block_on(dict::import(h.memory(), &doc, 1)).unwrap();
    let conversation: ConversationHandler<edgegram::Data, edgegram::Data, edgegram::Data, i64> =
        ConversationHandler::builder()
            .entry(on::command("start"), |_| async { Ok(Next::To(0)) })
            .state(1, on::message(filters::text()), |ctx: Context| async move {
                ctx.reply_text("in state 1")?;
                Ok(Next::End)
            })
            .name("ints")
            .persistent(true)
            .build()
            .unwrap();
    let app = h.builder().handler(conversation).build().unwrap();
    h.process_in(&app, tg.message(CHAT, USER, "hello"));
    assert_eq!(h.bot().texts(), ["in state 1"]);
    // -1 reads as ended: the entry point starts a conversation, replacing it.
    assert!(h.process_in(&app, tg.message(CHAT, 8, "/start")).handled);
    assert_eq!(h.to_json()["conversations"]["ints"], json!({"[5, 8]": 0}));
}

#[test]
fn typed_state_is_readable_from_a_callback_context() {
    let h = harness();
    let tg = h.updates();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let conversation = Rc::new(profile().build().unwrap());
    let (c2, seen2) = (conversation.clone(), seen.clone());
    let app = h
        .builder()
        .handler_in_group(RcHandler(conversation), 0)
        .handler_in_group(
            TypeHandler::all(move |ctx: Context| {
                seen2.borrow_mut().push(c2.state(&ctx));
                async { Ok(()) }
            }),
            1,
        )
        .build()
        .unwrap();
    h.process_in(&app, tg.message(CHAT, USER, "/start"));
    h.process_in(&app, tg.message(CHAT, USER, "Age"));
    assert_eq!(
        *seen.borrow(),
        [Some(Profile::Choosing), Some(Profile::TypingReply)]
    );
}

/// Shares one handler between the Application and a test closure.
struct RcHandler<H>(Rc<H>);

impl<H: edgegram::Handler<edgegram::Data, edgegram::Data, edgegram::Data>>
    edgegram::Handler<edgegram::Data, edgegram::Data, edgegram::Data> for RcHandler<H>
{
    fn keys(&self, update: &Update, out: &mut Vec<Key>) {
        self.0.keys(update, out)
    }
    fn check_update(&self, ctx: &Context) -> Option<edgegram::Match> {
        self.0.check_update(ctx)
    }
    fn handle<'a>(
        &'a self,
        ctx: Context,
        matched: edgegram::Match,
    ) -> futures::future::LocalBoxFuture<'a, edgegram::HandlerResult> {
        self.0.handle(ctx, matched)
    }
}

fn config_error<S: std::fmt::Debug>(result: edgegram::Result<S>) -> String {
    match result {
        Err(Error::Config(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn invalid_configurations_are_refused_with_how_to_fix_them() {
    let build =
        |b: edgegram::conversation::ConversationBuilder<_, _, _, Profile>| b.build().map(|_| ());
    let message = config_error(build(profile().per_chat(false).per_user(false)));
    assert!(message.contains("per_message(true)"), "{message}");

    let message = config_error(build(
        ConversationHandler::builder()
            .entry(on::command("start"), start)
            .persistent(true),
    ));
    assert!(message.contains(".name("), "{message}");

    // per_message with a command entry point: it could never run.
    let message = config_error(build(profile().per_message(true)));
    assert!(
        message.contains("entry point 0") && message.contains("per_message(false)"),
        "{message}"
    );
    assert!(
        message.contains("matches only message, edited_message updates"),
        "{message}"
    );
    // ... while callback-query matchers (and matchers of any kind) are fine.
    assert!(build(
        ConversationHandler::builder()
            .entry(on::callback_query(), |_| async {
                Ok(Next::To(Profile::Choosing))
            })
            .fallback(on::any(), |_| async { Ok(Next::End) })
            .per_message(true)
    )
    .is_ok());

    let message = config_error(build(
        profile().map_to_parent(Next::To(Profile::Choosing), Next::<Top>::End),
    ));
    assert!(message.contains("remove one"), "{message}");
    let message = config_error(build(profile().map_to_parent(Next::Stay, Next::<Top>::End)));
    assert!(message.contains("Next::Stay"), "{message}");

    // A nested conversation under the same name would overwrite the parent's states.
    let child = profile().build().unwrap();
    let message = config_error(build(
        profile().state_conversation(Profile::TypingChoice, child),
    ));
    assert!(message.contains("\"profile\""), "{message}");

    // States that would read back as "ended".
    let message = config_error(
        ConversationHandler::<edgegram::Data, edgegram::Data, edgegram::Data, i64>::builder()
            .state(-1, on::any(), |_| async { Ok(Next::Stay) })
            .build()
            .map(|_| ()),
    );
    assert!(message.contains("END"), "{message}");
}

#[test]
fn a_callback_returning_an_unstorable_state_fails_the_update() {
    let h = harness();
    let tg = h.updates();
    let conversation: ConversationHandler<
        edgegram::Data,
        edgegram::Data,
        edgegram::Data,
        Option<String>,
    > = ConversationHandler::builder()
        .entry(on::command("start"), |_| async { Ok(Next::To(None)) })
        .name("opt")
        .persistent(true)
        .build()
        .unwrap();
    let app = h.builder().handler(conversation).build().unwrap();
    let outcome = h.process_in(&app, tg.message(CHAT, USER, "/start"));
    assert!(
        outcome
            .handler_error
            .as_deref()
            .is_some_and(|e| e.contains("ended conversation")),
        "{outcome:?}"
    );
    assert!(outcome.changes.is_empty());
}

/// The message of the `Error::Invalid` an import of `doc` into `app` is refused with; the
/// store must be as it was.
fn import_refusal(h: &Harness, app: &edgegram::Application, doc: Value) -> String {
    let before = h.to_json();
    let result = block_on(app.import(&doc.to_string(), edgegram::ImportOptions::default()));
    assert_eq!(h.to_json(), before, "a refused import changes nothing");
    match result {
        Err(Error::Invalid(message)) => message,
        other => panic!("{doc}: {other:?}"),
    }
}

#[test]
fn an_import_refuses_states_and_names_the_bots_conversations_do_not_have() {
    // Issue 12, item 23: a stored state the conversation has no handlers for leaves the user
    // stuck (only fallbacks reach them, entry points do not: the conversation is active).
    let h = bot_of(|| profile().build());
    let app = h.application().unwrap();
    let good =
        json!({"user_data": {"7": {"a": 1}}, "conversations": {"profile": {"[5, 7]": "CHOOSING"}}});
    assert_eq!(
        block_on(app.import(&good.to_string(), Default::default())),
        Ok(2)
    );

    let with =
        |states: Value| json!({"user_data": {"8": {}}, "conversations": {"profile": states}});
    let message = import_refusal(&h, &app, with(json!({"[5, 8]": "BOGUS"})));
    assert_eq!(
        message,
        "conversations.profile.[5, 8]: state \"BOGUS\" is not a state of conversation \"profile\" \
         (its states: \"CHOOSING\", \"TYPING_CHOICE\", \"TYPING_REPLY\")"
    );
    // PTB's numbered states, imported without naming them, fit no state of an enum.
    let message = import_refusal(&h, &app, with(json!({"[5, 8]": 0})));
    assert!(
        message.starts_with("conversations.profile.[5, 8]: state 0 is not a state"),
        "{message}"
    );
    // With a deadline the state is checked all the same.
    let wrapped = json!({"[5, 8]": {"state": "NOPE", "expires_at_ms": 1}});
    let message = import_refusal(&h, &app, with(wrapped));
    assert!(
        message.starts_with("conversations.profile.[5, 8]: state \"NOPE\""),
        "{message}"
    );
    // A key of another shape than per_chat + per_user make is never reached either.
    for key in ["[5]", "[5, 8, 9]", "[5, \"8\"]"] {
        let message = import_refusal(&h, &app, with(json!({key: "CHOOSING"})));
        assert!(
            message.ends_with(
                "does not fit conversation \"profile\", which is keyed by [chat_id, user_id]"
            ),
            "{message}"
        );
    }
    let message = import_refusal(
        &h,
        &app,
        json!({"conversations": {"profil": {"[5, 8]": "CHOOSING"}}}),
    );
    assert_eq!(
        message,
        "conversations.profil: no persistent conversation of this bot is named \"profil\", so its \
         states would never be read"
    );

    // What the conversation has goes through, and the user carries on from it.
    let fine = with(json!({"[5, 8]": "TYPING_CHOICE", "[5, 9]": null, "[5, 10]": -1}));
    assert_eq!(
        block_on(app.import(&fine.to_string(), Default::default())),
        Ok(3)
    );
    h.process(h.updates().message(CHAT, 8, "Food"));
    assert_eq!(h.bot().texts(), ["your food?"]);
}

#[test]
fn nested_and_per_message_conversations_check_their_own_entries() {
    let h = bot_of(|| Ok(nested()));
    let app = h.application().unwrap();
    let doc = json!({"conversations": {"parent": {"[5, 7]": "MENU"}, "child": {"[5, 7]": "NAME"}}});
    assert_eq!(
        block_on(app.import(&doc.to_string(), Default::default())),
        Ok(2)
    );
    // The child's mapped state ABORT is never stored: it ends the child.
    let doc = json!({"conversations": {"child": {"[5, 7]": "ABORT"}}});
    let message = import_refusal(&h, &app, doc);
    assert!(
        message.starts_with("conversations.child.[5, 7]: state \"ABORT\" is not a state of conversation \"child\" (its states: \"NAME\")"),
        "{message}"
    );

    let h = bot_of(|| Ok(menu(true)));
    let app = h.application().unwrap();
    let doc =
        json!({"conversations": {"menu": {"[5, 7, 12]": "OPEN", "[5, 7, \"inline-1\"]": "OPEN"}}});
    assert_eq!(
        block_on(app.import(&doc.to_string(), Default::default())),
        Ok(2)
    );
    let message = import_refusal(
        &h,
        &app,
        json!({"conversations": {"menu": {"[5, 7]": "OPEN"}}}),
    );
    assert!(
        message.ends_with("which is keyed by [chat_id, user_id, message_id]"),
        "{message}"
    );

    // A conversation that is not persistent keeps nothing in storage to import into.
    let h = bot_of(|| profile().persistent(false).build());
    let app = h.application().unwrap();
    let message = import_refusal(
        &h,
        &app,
        json!({"conversations": {"profile": {"[5, 7]": "CHOOSING"}}}),
    );
    assert!(
        message.contains("conversation \"profile\" is not persistent"),
        "{message}"
    );
}

#[test]
fn at_the_deadline_with_no_update_the_timeout_handlers_run_with_the_last_update_and_reply() {
    let h = harness();
    let tg = h.updates();
    let log = Log::default();
    let noted = note(&log, "timeout");
    let app = h
        .builder()
        .handler(
            asking(&log)
                .timeout_handler(TypeHandler::all(move |ctx: Context| {
                    let noted = noted(ctx.clone());
                    async move {
                        ctx.user_data(|d| d.insert("timed_out".into(), true.into()))?;
                        ctx.reply_text("Timed out.")?;
                        noted.await
                    }
                }))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    h.set_now_ms(0);
    h.process_in(&app, tg.message(CHAT, USER, "/start"));
    h.set_now_ms(500);
    h.process_in(&app, tg.message(CHAT, USER, "my answer"));
    // The answer moved the deadline to 1,500: at 1,000 nothing is due.
    h.set_now_ms(1_000);
    assert_eq!(block_on(app.expire_conversations()).unwrap(), 0);
    h.bot().clear();
    h.set_now_ms(1_500);
    assert_eq!(block_on(app.expire_conversations()).unwrap(), 1);
    // PTB's timeout job hands TIMEOUT handlers the last update: "my answer".
    assert_eq!(*log.borrow(), ["start", "answer", "timeout: my answer"]);
    assert_eq!(h.bot().texts(), ["Timed out."]);
    assert_eq!(h.bot().calls()[0].params["chat_id"], CHAT);
    assert_eq!(stored(&h, "ask", "[5, 7]"), None);
    assert_eq!(
        h.to_json()["user_data"][USER.to_string()]["timed_out"],
        true
    );
    // Once: nothing is left to time out, and the next free text is not handled.
    assert_eq!(block_on(app.expire_conversations()).unwrap(), 0);
    assert!(!h.process_in(&app, tg.message(CHAT, USER, "again")).handled);
    assert_eq!(h.bot().texts(), ["Timed out."]);
}

#[test]
fn a_timeout_handler_that_fails_reaches_the_error_handlers_and_the_conversation_ends_all_the_same()
{
    let h = harness();
    let tg = h.updates();
    let log = Log::default();
    let errors = log.clone();
    let app = h
        .builder()
        .handler(
            asking(&log)
                .timeout_handler(TypeHandler::all(|_ctx: Context| async {
                    Err::<(), _>("the timeout handler failed".into())
                }))
                .build()
                .unwrap(),
        )
        .error_handler(move |_ctx, error| {
            errors.borrow_mut().push(format!("error: {error}"));
            async {}
        })
        .build()
        .unwrap();
    h.set_now_ms(0);
    h.process_in(&app, tg.message(CHAT, USER, "/start"));
    h.set_now_ms(1_000);
    assert_eq!(block_on(app.expire_conversations()).unwrap(), 1);
    assert_eq!(
        *log.borrow(),
        ["start", "error: the timeout handler failed"]
    );
    assert_eq!(stored(&h, "ask", "[5, 7]"), None);
}
