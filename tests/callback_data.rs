//! Arbitrary callback data: buttons carry any value behind opaque ids, stored per keyboard,
//! resolved in the update's one read; unresolvable presses reach `invalid_data()` handlers.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use edgegram::callback_data::{sweep, InvalidReason, ID_LEN};
use edgegram::persistence::spy::Call;
use edgegram::persistence::{dict, KeyKind};
use edgegram::testing::Harness;
use edgegram::types::{InlineKeyboardButton, ReplyMarkup};
use edgegram::{
    AnswerCallbackQuery, Application, ApplicationBuilder, CallbackData, CallbackDataSettings,
    CallbackQueryHandler, CommandHandler, Context, EditMessageText, Error, HandlerResult, Key,
    Persistence, PersistenceExt, PersistenceInput, SendMessage, Update,
};

use futures::executor::block_on;
use serde_json::{json, Value};

const CHAT: i64 = 5;
const USER: i64 = 7;

/// The demo contract's `/list` bot; the harness builds it fresh for every update, as every
/// Worker request does.
fn demo(settings: CallbackDataSettings) -> Harness {
    Harness::new(move |builder| demo_bot(builder, settings))
}

fn demo_bot(
    builder: ApplicationBuilder,
    settings: CallbackDataSettings,
) -> edgegram::Result<Application> {
    builder
        .arbitrary_callback_data(settings)
        .handler(CommandHandler::new("list", list))
        .handler(CallbackQueryHandler::new(expired).invalid_data())
        .handler(CallbackQueryHandler::new(pressed))
        .build()
}

/// A harness whose tests build their Applications with `h.builder()`.
fn harness() -> Harness {
    Harness::new(ApplicationBuilder::build)
}

fn list_command(h: &Harness) -> Update {
    h.updates().command(CHAT, USER, "/list")
}

/// A press on a button of the bot's newest message (message 1 when it sent none).
fn press(h: &Harness, data: &str) -> Update {
    let message_id = h.bot().sent().last().map_or(1, |m| m.message_id);
    h.updates().press(CHAT, USER, message_id, data)
}

fn answers(h: &Harness) -> Vec<Value> {
    h.bot().params_of("answerCallbackQuery")
}

fn keyboard_of(data: &str) -> Key {
    Key::CallbackKeyboard(data[..ID_LEN].to_string())
}

/// The index of a chat's keyboards.
fn index_of(chat: i64) -> Key {
    Key::KeyboardIndex(format!("chat.{chat}"))
}

fn buttons(list: &[i64]) -> Vec<Vec<(String, Value)>> {
    vec![(1..=5).map(|n| (n.to_string(), json!([n, list]))).collect()]
}

/// Sends its keyboard at once (not queued), so that the keyboard is bound to the message the
/// answer names.
async fn list(ctx: Context) -> HandlerResult {
    let markup = ctx.callback_keyboard(buttons(&[]))?;
    let chat = ctx.effective_chat().ok_or("no chat")?.id;
    let send = SendMessage::new(chat, "Choose").reply_markup(markup);
    ctx.bot().send_message(send).await?;
    Ok(())
}

/// Queues its keyboard: sent after the update commits, so bound to the chat only.
async fn queued_list(ctx: Context) -> HandlerResult {
    let markup = ctx.callback_keyboard(buttons(&[]))?;
    ctx.reply(|chat| SendMessage::new(chat, "Choose").reply_markup(markup))?;
    Ok(())
}

async fn pressed(ctx: Context) -> HandlerResult {
    let (n, mut list): (i64, Vec<i64>) = ctx.callback_data_as().ok_or("unexpected data")?;
    list.push(n);
    let query = ctx.callback_query().ok_or("no query")?.id.clone();
    ctx.bot()
        .answer_callback_query(AnswerCallbackQuery::new(query))
        .await?;
    let markup = ctx.callback_keyboard(buttons(&list))?;
    let message = ctx.effective_message().ok_or("no message")?;
    let edit = EditMessageText::new(message.chat.id, message.message_id, format!("{list:?}"))
        .reply_markup(markup);
    ctx.bot().edit_message_text(edit).await?;
    ctx.drop_callback_data()?;
    Ok(())
}

async fn expired(ctx: Context) -> HandlerResult {
    let query = ctx.callback_query().ok_or("no query")?.id.clone();
    let answer = AnswerCallbackQuery::new(query).text("this button has expired");
    ctx.bot().answer_callback_query(answer).await?;
    Ok(())
}

#[test]
fn a_keyboard_carries_any_value_behind_opaque_ids_stored_per_keyboard() {
    let h = demo(CallbackDataSettings::default());
    let outcome = h.process(list_command(&h));
    let ids = h.bot().last_callback_data();
    assert_eq!(ids.len(), 5);
    for id in &ids {
        assert_eq!(id.len(), 64, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(id[..ID_LEN], ids[0][..ID_LEN], "one keyboard id");
    }
    let mut suffixes: Vec<&str> = ids.iter().map(|id| &id[ID_LEN..]).collect();
    suffixes.sort();
    suffixes.dedup();
    assert_eq!(suffixes.len(), 5, "distinct button ids");

    let key = keyboard_of(&ids[0]);
    // The keyboard, and the chat's index of keyboards, which bounds them.
    assert_eq!(outcome.written(), [&key, &index_of(CHAT)]);
    let stored = block_on(h.memory().get_entry(&key)).unwrap().unwrap();
    assert_eq!(stored["access_time"], json!(1_700_000_000.0));
    assert_eq!(stored["buttons"][&ids[2][ID_LEN..]], json!([3, []]));
    // Where it was sent: only presses there resolve.
    let message = h.bot().sent()[0].message_id;
    assert_eq!(
        stored["places"],
        json!([{"chat_id": CHAT, "message_id": message}])
    );
    // Exported as PTB's DictPersistence callback_data; the chat's index is edgegram's own
    // entry, left out of the export.
    let doc = block_on(dict::export(h.memory())).unwrap();
    let Key::CallbackKeyboard(keyboard_id) = &key else {
        unreachable!()
    };
    assert_eq!(
        doc["callback_data"],
        json!([[[keyboard_id, 1_700_000_000.0, stored["buttons"]]], {}])
    );
    let index = format!("{keyboard_id}:{}", h.now_ms());
    let stored_index = block_on(h.memory().get_entry(&index_of(CHAT))).unwrap();
    assert_eq!(stored_index, Some(json!(index)));
}

#[test]
fn a_press_resolves_in_the_updates_one_read_and_drops_its_keyboard() {
    let h = demo(CallbackDataSettings::default());
    h.process(list_command(&h));
    let first = h.bot().last_callback_data();

    // Every update in a fresh Application, as in separate Worker isolates.
    h.spy().clear();
    let outcome = h.process(press(&h, &first[2]));
    assert_eq!(outcome.reads, 1);
    let keys = &h.reads()[0];
    assert!(keys.contains(&keyboard_of(&first[2])), "{keys:?}");
    assert_eq!(h.bot().texts().last().unwrap(), "[3]");
    let second = h.bot().last_callback_data();
    assert!(keys.contains(&index_of(CHAT)), "{keys:?}");
    assert_eq!(outcome.deleted(), [&keyboard_of(&first[2])]);
    assert_eq!(
        outcome.written(),
        [&keyboard_of(&second[0]), &index_of(CHAT)]
    );

    h.process(press(&h, &second[0]));
    assert_eq!(h.bot().texts().last().unwrap(), "[3, 1]");

    // The dropped keyboard's buttons no longer resolve.
    let outcome = h.process(press(&h, &first[4]));
    assert!(outcome.changes.is_empty());
    assert_eq!(
        answers(&h).last().unwrap()["text"],
        "this button has expired"
    );
    assert_eq!(h.bot().texts().last().unwrap(), "[3, 1]");
}

#[test]
fn tampered_unknown_and_malformed_data_is_invalid_and_never_a_panic() {
    let settings = CallbackDataSettings::default();
    let h = demo(settings);
    h.process(list_command(&h));
    let good = h.bot().last_callback_data()[0].clone();
    let reasons = Rc::new(RefCell::new(Vec::new()));
    let seen = reasons.clone();
    let app = h
        .builder()
        .arbitrary_callback_data(settings)
        .handler(CallbackQueryHandler::new(move |ctx: Context| {
            let seen = seen.clone();
            async move {
                if let Some(CallbackData::Invalid(invalid)) = ctx.callback_data() {
                    seen.borrow_mut().push(invalid.reason);
                }
                Ok(())
            }
        }))
        .build()
        .unwrap();
    let other_button = format!("{}{}", &good[..ID_LEN], "0".repeat(ID_LEN));
    let other_keyboard = format!("{}{}", "f".repeat(ID_LEN), &good[ID_LEN..]);
    let multibyte = format!("{}é{}", &good[..31], &good[33..]);
    for data in [
        other_button.as_str(),
        other_keyboard.as_str(),
        "short",
        &good[..63],
        multibyte.as_str(),
        "",
    ] {
        let outcome = h.process_in(&app, press(&h, data));
        assert!(outcome.changes.is_empty(), "{data}");
    }
    use InvalidReason::*;
    assert_eq!(
        *reasons.borrow(),
        [Unknown, Unknown, Malformed, Malformed, Malformed, Malformed]
    );
}

#[test]
fn keyboards_expire_after_their_ttl() {
    let h = demo(CallbackDataSettings {
        ttl: Some(Duration::from_secs(60)),
        ..CallbackDataSettings::default()
    });
    h.process(list_command(&h));
    let ids = h.bot().last_callback_data();
    h.advance(Duration::from_millis(59_999));
    h.process(press(&h, &ids[0]));
    assert_eq!(h.bot().texts().last().unwrap(), "[1]");
    let fresh = h.bot().last_callback_data();
    h.advance(Duration::from_secs(60));
    let outcome = h.process(press(&h, &fresh[1]));
    assert!(outcome.changes.is_empty());
    assert_eq!(
        answers(&h).last().unwrap()["text"],
        "this button has expired"
    );
}

#[test]
fn a_ptb_export_imports_and_its_buttons_resolve_with_patterns_and_predicates() {
    let h = harness();
    let keyboard = "0123456789abcdef0123456789abcdef";
    let (hello, number) = ("a".repeat(32), "b".repeat(32));
    let doc = json!({"callback_data": [[[keyboard, 1_699_999_999.5,
        {hello.clone(): "hello world", number.clone(): 42}]], {"q1": keyboard}]});
    block_on(dict::import(h.memory(), &doc, 1)).unwrap();
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let note = |tag: &'static str| {
        let log = log.clone();
        move |ctx: Context| {
            let log = log.clone();
            async move {
                log.borrow_mut().push(format!("{tag} {:?}", ctx.matches));
                Ok(())
            }
        }
    };
    let app = h
        .builder()
        .arbitrary_callback_data(CallbackDataSettings::default())
        .handler(
            CallbackQueryHandler::new(note("pattern"))
                .pattern(r"^hello (\w+)")
                .unwrap(),
        )
        .handler(CallbackQueryHandler::new(note("even")).data_where(|d| d.as_i64() == Some(42)))
        .handler(CallbackQueryHandler::new(note("invalid")).invalid_data())
        .build()
        .unwrap();
    h.process_in(&app, press(&h, &format!("{keyboard}{hello}")));
    h.process_in(&app, press(&h, &format!("{keyboard}{number}")));
    // The raw id itself never matches a pattern: only resolved string data does.
    h.process_in(&app, press(&h, &format!("{keyboard}{}", "c".repeat(32))));
    assert_eq!(
        *log.borrow(),
        [
            r#"pattern [Some("hello world"), Some("world")]"#,
            "even []",
            "invalid []"
        ]
    );
}

#[test]
fn the_random_source_makes_the_ids() {
    let h = Harness::new(|builder| {
        let next = Rc::new(Cell::new(0u8));
        builder
            .random(move |buf: &mut [u8]| {
                for b in buf {
                    *b = next.get();
                    next.set(next.get().wrapping_add(1));
                }
                Ok(())
            })
            .arbitrary_callback_data(CallbackDataSettings::default())
            .handler(CommandHandler::new("list", list))
            .build()
    });
    h.process(list_command(&h));
    assert_eq!(
        h.bot().last_callback_data()[0],
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    );
}

/// A random source that fails must not leave ids guessable: on wasm a failing
/// `crypto.getRandomValues` left the buffer as it was (zeros), and the keyboard went out with
/// the ids `000…0`.
#[test]
fn a_failing_random_source_fails_the_keyboard_instead_of_making_a_guessable_id() {
    type Source = fn(&mut [u8]) -> Result<(), String>;
    let failing: Source = |_| Err("no entropy today".into());
    // Answers Ok but fills nothing, as the wasm source did when getRandomValues threw.
    let silent: Source = |_| Ok(());
    for (source, reason) in [
        (failing, "no entropy today"),
        (silent, "left the buffer zeroed"),
    ] {
        let h = Harness::new(move |builder| {
            builder
                .random(source)
                .arbitrary_callback_data(CallbackDataSettings::default())
                .handler(CommandHandler::new("one", |ctx: Context| async move {
                    let markup = ctx.callback_keyboard([[("only", 1)]])?;
                    ctx.reply(|chat| SendMessage::new(chat, "One").reply_markup(markup))?;
                    Ok(())
                }))
                .build()
        });
        let outcome = h.process(h.updates().command(CHAT, USER, "/one"));
        let error = outcome.handler_error.clone().unwrap_or_default();
        assert!(
            error.starts_with("the random source failed (") && error.contains(reason),
            "{outcome:?} sent {:?}",
            h.bot().last_callback_data()
        );
        assert!(h.bot().calls().is_empty(), "no keyboard was sent");
        assert!(h.memory().is_empty(), "no keyboard was stored");
    }
}

#[test]
fn misconfigurations_say_how_to_fix_them() {
    let h = harness();
    let err = h
        .builder()
        .arbitrary_callback_data(CallbackDataSettings::default())
        .store_data(PersistenceInput {
            callback_data: false,
            ..PersistenceInput::ALL
        })
        .build()
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("callback_data: false")),
        "{err}"
    );
    // Off: making a keyboard is an error that names the switch; presses stay raw strings.
    let raw = Rc::new(RefCell::new(None));
    let seen = raw.clone();
    let app = h
        .builder()
        .handler(CommandHandler::new("list", list))
        .handler(CallbackQueryHandler::new(move |ctx: Context| {
            let seen = seen.clone();
            async move {
                *seen.borrow_mut() = ctx.callback_data();
                Ok(())
            }
        }))
        .build()
        .unwrap();
    let outcome = h.process_in(&app, list_command(&h));
    assert!(
        outcome
            .handler_error
            .as_deref()
            .is_some_and(|e| e.contains("arbitrary_callback_data(")),
        "{outcome:?}"
    );
    h.process_in(&app, press(&h, "pick:1"));
    assert_eq!(*raw.borrow(), Some(CallbackData::Data(json!("pick:1"))));
}

#[test]
fn a_sweep_enforces_ttl_and_maxsize_in_one_write() {
    let h = demo(CallbackDataSettings::default());
    let start = h.now_ms();
    let mut keys = Vec::new();
    for i in 0..3 {
        h.set_now_ms(start + i * 10_000);
        h.process(list_command(&h));
        keys.push(keyboard_of(&h.bot().last_callback_data()[0]));
    }
    let Key::CallbackKeyboard(oldest) = &keys[0] else {
        unreachable!()
    };
    block_on(
        h.memory()
            .put_entry(Key::CallbackQuery("q-old".into()), &json!(oldest)),
    )
    .unwrap();
    h.spy().clear();
    let removed = block_on(sweep(
        h.spy(),
        start + 25_000,
        CallbackDataSettings {
            ttl: Some(Duration::from_secs(20)), // the first keyboard is 25 s old
            maxsize: 1,                         // of the two left, the older goes
        },
    ))
    .unwrap();
    assert_eq!(
        removed,
        [
            keys[0].clone(),
            keys[1].clone(),
            Key::CallbackQuery("q-old".into())
        ]
    );
    assert_eq!(h.writes().len(), 1);
    let doc = block_on(dict::export(h.memory())).unwrap();
    assert_eq!(doc["callback_data"][0].as_array().unwrap().len(), 1);
    // The chat's index lists only the keyboard left.
    let Key::CallbackKeyboard(left) = &keys[2] else {
        unreachable!()
    };
    let stored_index = block_on(h.memory().get_entry(&index_of(CHAT))).unwrap();
    assert_eq!(
        stored_index,
        Some(json!(format!("{left}:{}", start + 20_000)))
    );
}

/// The keyboards stored now.
fn stored_keyboards(h: &Harness) -> Vec<Key> {
    block_on(h.memory().list(KeyKind::CallbackKeyboard)).unwrap()
}

/// A bot whose presses resolve without dropping their keyboard (a menu pressed many times),
/// recording what each press resolved to.
fn menu_bot(settings: CallbackDataSettings, seen: Rc<RefCell<Vec<String>>>) -> Harness {
    Harness::new(move |builder| {
        let seen = seen.clone();
        builder
            .arbitrary_callback_data(settings)
            .handler(CommandHandler::new("list", list))
            .handler(CallbackQueryHandler::new(move |ctx: Context| {
                let seen = seen.clone();
                async move {
                    let note = match ctx.callback_data() {
                        Some(CallbackData::Data(data)) => data.to_string(),
                        Some(CallbackData::Invalid(invalid)) => format!("{:?}", invalid.reason),
                        None => "none".into(),
                    };
                    seen.borrow_mut().push(note);
                    Ok(())
                }
            }))
            .build()
    })
}

/// PTB's CallbackDataCache is an LRU cache of `maxsize` keyboards: a resolved press makes a
/// keyboard recent again, and storing one more evicts the least recently used. edgegram
/// enforces it in the write of the update that stores the keyboard, without listing storage.
#[test]
fn maxsize_evicts_the_least_recently_used_keyboard_in_the_write_that_stores_one_more() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let settings = CallbackDataSettings {
        maxsize: 3,
        ..CallbackDataSettings::default()
    };
    let h = menu_bot(settings, seen.clone());
    let mut keyboards = Vec::new();
    for _ in 0..3 {
        h.advance(Duration::from_secs(1));
        h.process(list_command(&h));
        keyboards.push(h.bot().last_callback_data());
    }
    // The oldest is pressed: now the second is the least recently used.
    h.advance(Duration::from_secs(1));
    let first_message = h.bot().sent()[0].message_id;
    h.process(
        h.updates()
            .press(CHAT, USER, first_message, &keyboards[0][0]),
    );
    h.advance(Duration::from_secs(1));
    let outcome = h.process(list_command(&h));
    keyboards.push(h.bot().last_callback_data());
    assert_eq!(outcome.deleted(), [&keyboard_of(&keyboards[1][0])]);
    let mut expected: Vec<Key> = [0, 2, 3].map(|i| keyboard_of(&keyboards[i][0])).into();
    expected.sort();
    assert_eq!(stored_keyboards(&h), expected);
    assert!(
        !h.spy().calls().iter().any(|c| matches!(c, Call::List(_))),
        "no update listed storage"
    );
    // The evicted keyboard's buttons are unknown now; the kept ones resolve.
    let sent = h.bot().sent();
    h.process(
        h.updates()
            .press(CHAT, USER, sent[1].message_id, &keyboards[1][0]),
    );
    h.process(
        h.updates()
            .press(CHAT, USER, sent[3].message_id, &keyboards[3][4]),
    );
    assert_eq!(*seen.borrow(), ["[1,[]]", "Unknown", "[5,[]]"]);
}

/// The review's case: 1,100 keyboards in one chat with a maxsize of 1,024.
#[test]
fn no_more_than_maxsize_keyboards_are_kept() {
    let h = demo(CallbackDataSettings::default());
    for _ in 0..1_100 {
        h.process(list_command(&h));
    }
    assert_eq!(stored_keyboards(&h).len(), 1_024);
}

/// One chat's keyboards are bounded on their own: a flood in chat A evicts A's keyboards, never
/// chat B's, at write time and in the sweep alike.
#[test]
fn a_flood_in_one_chat_does_not_evict_another_chats_keyboards() {
    const OTHER: i64 = 6;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let settings = CallbackDataSettings {
        maxsize: 4,
        ..CallbackDataSettings::default()
    };
    let h = menu_bot(settings, seen.clone());
    h.process(h.updates().command(OTHER, 8, "/list"));
    let other = h.bot().last_callback_data();
    let other_message = h.bot().sent()[0].message_id;
    for _ in 0..10 {
        h.advance(Duration::from_secs(1));
        h.process(list_command(&h));
    }
    let flooded = stored_keyboards(&h);
    assert_eq!(flooded.len(), 5, "4 of the flooding chat, 1 of the other");
    assert!(flooded.contains(&keyboard_of(&other[0])));
    // The sweep a host runs now and then keeps them too.
    let removed = block_on(sweep(h.spy(), h.now_ms(), settings)).unwrap();
    assert_eq!(removed, []);
    h.process(h.updates().press(OTHER, 8, other_message, &other[1]));
    assert_eq!(*seen.borrow(), ["[2,[]]"]);
}

/// A queued keyboard is sent after the update commits: its message id is not known when its
/// place is written, so it resolves on any message of the chat it went to, and nowhere else.
#[test]
fn a_queued_keyboard_resolves_in_the_chat_it_was_sent_to_and_nowhere_else() {
    const OTHER: i64 = 6;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let h = menu_bot(CallbackDataSettings::default(), seen.clone());
    let queued = h
        .builder()
        .arbitrary_callback_data(CallbackDataSettings::default())
        .handler(CommandHandler::new("list", queued_list))
        .build()
        .unwrap();
    h.process_in(&queued, list_command(&h));
    let ids = h.bot().last_callback_data();
    let message = h.bot().sent()[0].message_id;
    let stored = block_on(h.memory().get_entry(&keyboard_of(&ids[0])))
        .unwrap()
        .unwrap();
    assert_eq!(stored["places"], json!([{ "chat_id": CHAT }]));
    let tg = h.updates();
    h.process(tg.press(OTHER, 8, message, &ids[0]));
    h.process(tg.press(CHAT, USER, message, &ids[0]));
    assert_eq!(*seen.borrow(), ["Misplaced", "[1,[]]"]);
}

/// A keyboard resolves only where it was sent: a press in another chat, on another message, or
/// on an inline message carrying its id is invalid data and leaves the keyboard alone.
#[test]
fn a_keyboard_resolves_only_in_the_chat_and_message_it_was_sent_to() {
    const OTHER: i64 = 6;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let h = menu_bot(CallbackDataSettings::default(), seen.clone());
    h.process(list_command(&h));
    let ids = h.bot().last_callback_data();
    let message = h.bot().sent()[0].message_id;
    let key = keyboard_of(&ids[0]);
    let before = h.to_json();
    let tg = h.updates();
    // A handler that drops the pressed keyboard, as the demo's does after every press.
    let dropping = h
        .builder()
        .arbitrary_callback_data(CallbackDataSettings::default())
        .handler(CallbackQueryHandler::new(|ctx: Context| async move {
            ctx.drop_callback_data()?;
            Ok(())
        }))
        .build()
        .unwrap();
    for press in [
        tg.press(OTHER, 8, message, &ids[0]),
        tg.press(CHAT, USER, message + 100, &ids[0]),
        tg.inline_press(USER, "inline-1", &ids[0]),
    ] {
        h.process(press.clone());
        let outcome = h.process_in(&dropping, press);
        assert!(outcome.changes.is_empty(), "{:?}", outcome.changes);
    }
    assert_eq!(h.to_json(), before, "the keyboard is as it was");
    h.process(tg.press(CHAT, USER, message, &ids[0]));
    assert_eq!(
        *seen.borrow(),
        ["Misplaced", "Misplaced", "Misplaced", "[1,[]]"]
    );
    assert_eq!(stored_keyboards(&h), [key]);
}

/// Where a keyboard went is what the bot's answer says, not the chat of the update that made
/// it: an admin's command in a private chat that posts a keyboard to a group binds it to the
/// group's message.
#[test]
fn a_keyboard_sent_to_another_chat_resolves_there_and_not_where_it_was_made() {
    const GROUP: i64 = -1001500000001;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let h = menu_bot(CallbackDataSettings::default(), seen.clone());
    let post = h
        .builder()
        .arbitrary_callback_data(CallbackDataSettings::default())
        .handler(CommandHandler::new("post", |ctx: Context| async move {
            let markup = ctx.callback_keyboard([[("Join", "join")]])?;
            ctx.bot()
                .send_message(SendMessage::new(GROUP, "Join us").reply_markup(markup))
                .await?;
            Ok(())
        }))
        .build()
        .unwrap();
    let tg = h.updates();
    h.process_in(&post, tg.command(USER, USER, "/post"));
    let data = h.bot().last_callback_data()[0].clone();
    let posted = h.bot().sent()[0].clone();
    assert_eq!(posted.chat.id, GROUP);
    h.process(tg.press(USER, USER, posted.message_id, &data));
    h.process(tg.press(GROUP, 8, posted.message_id, &data));
    assert_eq!(*seen.borrow(), ["Misplaced", "\"join\""]);
}

/// A keyboard made in an update without a chat (inline mode) and sent with an inline query's
/// results belongs to inline messages: presses there resolve, presses in a chat do not.
#[test]
fn an_inline_mode_keyboard_resolves_only_on_inline_messages() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let h = menu_bot(CallbackDataSettings::default(), seen.clone());
    let app = h
        .builder()
        .arbitrary_callback_data(CallbackDataSettings::default())
        .handler(edgegram::TypeHandler::all(|ctx: Context| async move {
            let query = ctx
                .update()
                .inline_query
                .as_ref()
                .ok_or("no query")?
                .id
                .clone();
            let markup = ctx.callback_keyboard([[("pick", 1)]])?;
            let result = json!({"type": "article", "id": "1", "title": "Pick",
                "input_message_content": {"message_text": "Pick"}, "reply_markup": markup});
            ctx.bot()
                .call(
                    "answerInlineQuery",
                    json!({"inline_query_id": query, "results": [result]}),
                )
                .await?;
            Ok(())
        }))
        .build()
        .unwrap();
    let tg = h.updates();
    let inline_query = tg.from_json(json!({"inline_query":
        {"id": "iq1", "from": {"id": USER, "is_bot": false, "first_name": "U"},
         "query": "", "offset": ""}}));
    h.process_in(&app, inline_query);
    let answered = h.bot().params_of("answerInlineQuery");
    let data = answered[0]["results"][0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_string();
    h.process(tg.inline_press(9, "inline-1", &data));
    h.process(tg.press(CHAT, USER, 1, &data));
    assert_eq!(*seen.borrow(), ["1", "Misplaced"]);
}

/// PTB replaces the data of every outgoing inline keyboard: with arbitrary callback data on, a
/// plain string button works as it does without, and a forged plain string does not resolve.
#[test]
fn plain_string_buttons_are_stored_on_the_way_out_and_match_their_pattern() {
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let note = |tag: &'static str| {
        let log = log.clone();
        move |ctx: Context| {
            let log = log.clone();
            async move {
                log.borrow_mut().push(format!("{tag} {:?}", ctx.matches));
                Ok(())
            }
        }
    };
    let (plain, invalid) = (note("plain"), note("invalid"));
    let h = Harness::new(move |builder| {
        builder
            .arbitrary_callback_data(CallbackDataSettings::default())
            .handler(CommandHandler::new("menu", |ctx: Context| async move {
                let markup = ReplyMarkup::inline(vec![vec![
                    InlineKeyboardButton::callback("One", "plain:1"),
                    InlineKeyboardButton::callback("Two", "plain:2"),
                ]]);
                ctx.reply(|chat| SendMessage::new(chat, "Menu").reply_markup(markup))?;
                Ok(())
            }))
            .handler(
                CallbackQueryHandler::new(plain.clone())
                    .pattern(r"^plain:(\d)$")
                    .unwrap(),
            )
            .handler(CallbackQueryHandler::new(invalid.clone()).invalid_data())
            .build()
    });
    let outcome = h.process(h.updates().command(CHAT, USER, "/menu"));
    let sent = h.bot().last_callback_data();
    assert_eq!(sent.len(), 2);
    assert!(
        sent.iter()
            .all(|d| d.len() == 64 && d[..ID_LEN] == sent[0][..ID_LEN]),
        "{sent:?}"
    );
    assert_eq!(outcome.written(), [&keyboard_of(&sent[0]), &index_of(CHAT)]);
    let stored = block_on(h.memory().get_entry(&keyboard_of(&sent[0])))
        .unwrap()
        .unwrap();
    assert_eq!(stored["buttons"][&sent[1][ID_LEN..]], "plain:2");
    h.process(press(&h, &sent[1]));
    h.process(press(&h, "plain:1")); // as a modified client could send it
    assert_eq!(
        *log.borrow(),
        [r#"plain [Some("plain:2"), Some("2")]"#, "invalid []"]
    );
}
