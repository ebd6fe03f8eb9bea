//! The Application's side of the persistence protocol, observed through a spy persistence:
//! what is read and written for which update, and what happens when things fail.

use std::cell::RefCell;
use std::rc::Rc;

use edgegram::persistence::spy::Call;
use edgegram::persistence::{codec, PersistenceExt};
use edgegram::testing::{Harness, RecordingBot};
use edgegram::types::ChatType;
use edgegram::{
    filters, Application, ApplicationBuilder, CallbackQueryHandler, Change, CommandHandler,
    Context, Error, HandlerResult, Key, MessageHandler, OnHandlerError, Persistence,
    PersistenceInput, Result, TypeHandler,
};

use futures::executor::block_on;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const GROUP: i64 = -1001500000001;

/// A harness whose tests build their Applications with `h.builder()`.
fn harness() -> Harness {
    Harness::new(ApplicationBuilder::build)
}

fn bump(data: &mut edgegram::Data) -> i64 {
    let n = data.get("count").and_then(Value::as_i64).unwrap_or(0) + 1;
    data.insert("count".into(), n.into());
    n
}

async fn count_all(ctx: Context) -> HandlerResult {
    let (b, c, u) = (
        ctx.bot_data(bump)?,
        ctx.chat_data(bump)?,
        ctx.user_data(bump)?,
    );
    ctx.reply_text(format!("{b} {c} {u}"))?;
    Ok(())
}

async fn count_bot(ctx: Context) -> HandlerResult {
    ctx.bot_data(bump)?;
    Ok(())
}

async fn count_user(ctx: Context) -> HandlerResult {
    ctx.user_data(bump)?;
    Ok(())
}

async fn fail(_ctx: Context) -> HandlerResult {
    Err("handler exploded".into())
}

fn counting_app(builder: ApplicationBuilder) -> Result<Application> {
    builder
        .handler(CommandHandler::new("count", count_all))
        .handler(CommandHandler::new("mine", count_user))
        .handler(CommandHandler::new("fail", fail))
        .build()
}

#[test]
fn one_read_before_and_one_write_after_with_only_the_touched_entries() {
    let h = Harness::new(counting_app);
    let tg = h.updates();
    let outcome = h.process(tg.command(GROUP, 7, "/count"));
    assert_eq!(outcome.reads, 1);
    let calls = h.spy().calls();
    assert_eq!(
        calls[0],
        Call::Read(vec![Key::BotData, Key::ChatData(GROUP), Key::UserData(7)])
    );
    // The three entries and the queued reply, in one write; once the reply is sent, its
    // outbox is deleted.
    let outbox = Key::Outbox {
        chat: GROUP,
        update_id: outcome.update_id,
    };
    let Call::Write(written) = &calls[1] else {
        panic!("{calls:?}");
    };
    let keys: Vec<&Key> = written.iter().map(Change::key).collect();
    let data = [Key::BotData, Key::ChatData(GROUP), Key::UserData(7)];
    assert_eq!(keys, data.iter().chain([&outbox]).collect::<Vec<_>>());
    assert_eq!(calls[2], Call::Flush);
    assert_eq!(calls[3], Call::Write(vec![Change::Delete(outbox)]));
    assert_eq!(calls.len(), 4);
    assert_eq!(h.bot().texts(), ["1 1 1"]);

    h.spy().clear();
    h.process(tg.command(GROUP, 8, "/mine"));
    let writes = h.writes();
    assert_eq!(writes.len(), 1);
    let keys: Vec<&Key> = writes[0].iter().map(Change::key).collect();
    assert_eq!(keys, [&Key::UserData(8)]);
}

#[test]
fn an_update_that_changes_nothing_writes_nothing() {
    let h = Harness::new(counting_app);
    let tg = h.updates();
    h.process(tg.command(GROUP, 7, "/count"));
    h.spy().clear();
    // Unhandled text, a command for another bot, an unknown update type.
    let other_bot = tg.command(GROUP, 7, "/count@other_bot");
    let unknown = tg.from_json(json!({"poll": {"id": "p"}}));
    for update in [tg.message(GROUP, 7, "hello"), other_bot, unknown] {
        let outcome = h.process(update);
        assert!(outcome.changes.is_empty() && !outcome.handled);
    }
    assert!(h.writes().is_empty(), "{:?}", h.spy().calls());
    // A handler that reads data without changing it writes nothing either.
    let app = h
        .builder()
        .handler(TypeHandler::all(|ctx: Context| async move {
            let _ = ctx.chat_data(|d| d.get("count").cloned())?;
            Ok(())
        }))
        .build()
        .unwrap();
    let outcome = h.process_in(&app, tg.message(GROUP, 7, "hi"));
    assert!(outcome.handled && outcome.changes.is_empty());
    assert!(h.writes().is_empty());
}

#[test]
fn a_failed_flush_is_an_error_and_leaves_no_partial_state_then_the_retry_applies_once() {
    let h = Harness::new(counting_app);
    let tg = h.updates();
    h.process(tg.command(GROUP, 7, "/count"));
    let before = h.to_json();
    h.spy().fail_next_writes(1);
    let update = tg.command(GROUP, 7, "/count");
    let err = h.try_process(update.clone()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Storage {
                operation: "write",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(h.to_json(), before);
    // Telegram redelivers the same update: applied exactly once.
    h.process(update);
    let after = h.to_json();
    assert_eq!(after["bot_data"]["count"], 2);
    assert_eq!(after["chat_data"][GROUP.to_string()]["count"], 2);
}

#[test]
fn a_failed_read_runs_no_handler() {
    let h = Harness::new(counting_app);
    h.spy().fail_next_reads(1);
    let err = h
        .try_process(h.updates().command(GROUP, 7, "/count"))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Storage {
            operation: "read",
            ..
        }
    ));
    assert!(h.bot().calls().is_empty());
    assert!(h.writes().is_empty());
}

/// PTB's `Application.process_update`: an exception in a group's handler goes to the error
/// handlers, then the next group runs; the data changes stay (PTB mutates data in place and
/// persists it later). An error handler that marks the user as blocked is stored.
#[test]
fn a_handler_error_runs_the_error_handlers_then_the_next_groups_and_every_change_is_written() {
    let h = harness();
    let tg = h.updates();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let later_groups = Rc::new(RefCell::new(0));
    let build = |policy| {
        let (seen, later_groups) = (seen.clone(), later_groups.clone());
        h.builder()
            .handler_in_group(CommandHandler::new("fail", count_bot), -1)
            .handler(CommandHandler::new("fail", |ctx: Context| async move {
                ctx.user_data(bump)?; // mutated in place before the failure: kept, as in PTB
                Err("handler exploded".into())
            }))
            .handler_in_group(
                TypeHandler::all(move |ctx: Context| {
                    let later_groups = later_groups.clone();
                    async move {
                        *later_groups.borrow_mut() += 1;
                        ctx.chat_data(bump)?;
                        Ok(())
                    }
                }),
                1,
            )
            .on_handler_error(policy)
            .error_handler(move |ctx: Context, error| {
                let seen = seen.clone();
                async move {
                    let _ = ctx.user_data(|d| d.insert("blocked".into(), true.into()));
                    seen.borrow_mut()
                        .push((ctx.update().update_id, error.to_string()));
                }
            })
            .build()
            .unwrap()
    };
    let outcome = h.process_in(
        &build(OnHandlerError::Acknowledge),
        tg.command(5, 7, "/fail"),
    );
    assert_eq!(outcome.handler_error.as_deref(), Some("handler exploded"));
    assert_eq!(
        *later_groups.borrow(),
        1,
        "the next group ran after the failure"
    );
    assert_eq!(
        outcome.written(),
        [&Key::BotData, &Key::ChatData(5), &Key::UserData(7)]
    );
    assert_eq!(h.writes().len(), 1);
    let stored = h.to_json();
    assert_eq!(stored["bot_data"], json!({"count": 1}));
    assert_eq!(stored["chat_data"], json!({"5": {"count": 1}}));
    assert_eq!(
        stored["user_data"],
        json!({"7": {"count": 1, "blocked": true}})
    );

    // Retry: the same walk, but nothing is written, since Telegram delivers the update again.
    let err = h
        .try_process_in(&build(OnHandlerError::Retry), tg.command(5, 7, "/fail"))
        .unwrap_err();
    assert!(matches!(err, Error::Handler { update_id: 2, .. }), "{err}");
    // The handler's own error is kept, not only its message.
    let source = std::error::Error::source(&err).expect("the handler's error is the source");
    assert_eq!(source.to_string(), "handler exploded");
    assert_eq!(
        err.to_string(),
        "handler failed on update 2: handler exploded"
    );
    assert_eq!(*later_groups.borrow(), 2);
    assert_eq!(h.writes().len(), 1, "Retry writes nothing");
    assert_eq!(h.to_json(), stored);
    assert_eq!(
        *seen.borrow(),
        [
            (1, "handler exploded".to_string()),
            (2, "handler exploded".to_string())
        ]
    );
}

/// PTB: an error handler that raises `ApplicationHandlerStop` ends the walk; here it calls
/// `ctx.stop_processing()`.
#[test]
fn an_error_handler_that_stops_processing_ends_the_walk() {
    let h = harness();
    let app = h
        .builder()
        .handler(CommandHandler::new("fail", fail))
        .handler_in_group(CommandHandler::new("fail", count_bot), 1)
        .error_handler(|ctx: Context, _| async move { ctx.stop_processing() })
        .build()
        .unwrap();
    let outcome = h.process_in(&app, h.updates().command(5, 7, "/fail"));
    assert_eq!(outcome.handler_error.as_deref(), Some("handler exploded"));
    assert!(outcome.changes.is_empty(), "{:?}", outcome.changes);
    assert!(h.memory().is_empty());
}

#[test]
fn a_corrupt_value_fails_the_update_and_is_never_overwritten() {
    let h = Harness::new(counting_app);
    block_on(
        h.memory()
            .write(&[Change::Put(Key::ChatData(5), "{\"v\":1,\"data\":".into())]),
    )
    .unwrap();
    let err = h
        .try_process(h.updates().command(5, 7, "/count"))
        .unwrap_err();
    match &err {
        Error::Decode { backend, key, .. } => {
            assert_eq!((*backend, key.as_str()), ("memory", "chat:5"))
        }
        other => panic!("{other}"),
    }
    assert!(h.writes().is_empty());
    assert!(h.bot().calls().is_empty());
    let raw = block_on(h.memory().read(&[Key::ChatData(5)])).unwrap();
    assert_eq!(raw, [Some("{\"v\":1,\"data\":".to_string())]);
}

#[test]
fn values_from_a_newer_schema_are_refused() {
    let h = Harness::new(|builder| {
        builder
            .schema_version(2)
            .handler(CommandHandler::new("mine", count_user))
            .build()
    });
    let newer = codec::encode(3, "{\"count\":1}");
    block_on(
        h.memory()
            .write(&[Change::Put(Key::UserData(7), newer.clone())]),
    )
    .unwrap();
    let err = h
        .try_process(h.updates().command(5, 7, "/mine"))
        .unwrap_err();
    assert!(
        err.to_string().contains("newer than this code's 2"),
        "{err}"
    );
    assert_eq!(
        block_on(h.memory().read(&[Key::UserData(7)])).unwrap(),
        [Some(newer)]
    );
}

#[test]
fn persistence_input_limits_what_is_read_and_written() {
    let h = Harness::new(|builder| {
        builder
            .store_data(PersistenceInput {
                chat_data: false,
                bot_data: false,
                ..PersistenceInput::ALL
            })
            .handler(CommandHandler::new("count", count_all))
            .build()
    });
    let tg = h.updates();
    h.process(tg.command(5, 7, "/count"));
    h.process(tg.command(5, 7, "/count"));
    assert_eq!(h.reads()[0], [Key::UserData(7)]);
    // Chat and bot counters restart every update; the user's is stored.
    assert_eq!(h.bot().texts(), ["1 1 1", "1 1 2"]);
    let stored = h.to_json();
    assert_eq!(stored["chat_data"], json!({}));
    assert_eq!(stored["user_data"]["7"]["count"], 2);
}

#[test]
fn groups_run_in_order_first_match_per_group_and_stop_ends_the_walk() {
    let h = harness();
    let tg = h.updates();
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let note = |name: &'static str, stop: bool| {
        let log = log.clone();
        move |ctx: Context| {
            let log = log.clone();
            async move {
                log.borrow_mut().push(name.into());
                if stop {
                    ctx.stop_processing();
                }
                Ok(())
            }
        }
    };
    let app = h
        .builder()
        .handler_in_group(
            MessageHandler::new(filters::text(), note("g1-text", false)),
            1,
        )
        .handler_in_group(
            MessageHandler::new(filters::all(), note("g1-all", false)),
            1,
        )
        .handler_in_group(CommandHandler::new("stop", note("g-1-stop", true)), -1)
        .handler_in_group(
            MessageHandler::new(filters::command(), note("g-1-cmd", false)),
            -1,
        )
        .handler_in_group(TypeHandler::all(note("g5-any", false)), 5)
        .build()
        .unwrap();
    h.process_in(&app, tg.command(5, 7, "/other"));
    assert_eq!(*log.borrow(), ["g-1-cmd", "g1-text", "g5-any"]);
    log.borrow_mut().clear();
    h.process_in(&app, tg.command(5, 7, "/stop"));
    assert_eq!(*log.borrow(), ["g-1-stop"]);
}

#[test]
fn commands_match_by_name_username_and_carry_args() {
    let args = Rc::new(RefCell::new(Vec::new()));
    let args2 = args.clone();
    let h = Harness::new(move |builder| {
        let args = args2.clone();
        builder
            .bot_username("edge_bot")
            .handler(CommandHandler::new("start, Help", move |ctx: Context| {
                let args = args.clone();
                async move {
                    args.borrow_mut().push(ctx.args.join("|"));
                    Ok(())
                }
            }))
            .build()
    });
    let tg = h.updates();
    for text in [
        "/start a  b",
        "/HELP",
        "/start@Edge_Bot x",
        "/start@other_bot y",
        "/starting",
        "start",
    ] {
        h.process(tg.message(5, 7, text));
    }
    assert_eq!(*args.borrow(), ["a|b", "", "x"]);
}

#[test]
fn an_unknown_username_is_learned_once_from_get_me() {
    let h = Harness::new(counting_app);
    let tg = h.updates();
    // One Application for every update, as a long-running process keeps it.
    let app = h.application().unwrap();
    h.process_in(&app, tg.command(5, 7, "/count"));
    assert_eq!(app.bot_username(), None, "no getMe for a plain command");
    h.process_in(&app, tg.command(5, 7, "/count@edgegram_bot"));
    h.process_in(&app, tg.command(5, 7, "/count@edgegram_bot"));
    assert_eq!(
        h.bot().methods(),
        ["sendMessage", "getMe", "sendMessage", "sendMessage"]
    );
    // On Workers every update gets a fresh Application: each addressed command asks again.
    h.bot().clear();
    h.process(tg.command(5, 7, "/count@edgegram_bot"));
    assert_eq!(h.bot().methods(), ["getMe", "sendMessage"]);
}

#[test]
fn filters_compose_and_regex_captures_reach_the_callback() {
    let h = harness();
    let tg = h.updates();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let seen2 = seen.clone();
    let filter = filters::regex(r"^age (\d+)$").unwrap() & filters::groups() & !filters::command();
    let app = h
        .builder()
        .handler(MessageHandler::new(filter, move |ctx: Context| {
            let seen = seen2.clone();
            async move {
                seen.borrow_mut().push(ctx.matches.clone());
                Ok(())
            }
        }))
        .build()
        .unwrap();
    h.process_in(&app, tg.message(GROUP, 7, "age 42"));
    h.process_in(&app, tg.message(5, 7, "age 43")); // private chat
    h.process_in(&app, tg.message(GROUP, 7, "age x"));
    assert_eq!(
        *seen.borrow(),
        [vec![Some("age 42".to_string()), Some("42".to_string())]]
    );
    assert!(filters::regex("(unclosed").is_err());
    assert!(filters::chat_type(ChatType::Supergroup)
        .check(&tg.message(GROUP, 7, "x"))
        .is_some());
}

#[test]
fn callback_queries_match_their_pattern() {
    let h = Harness::new(|builder| {
        builder
            .handler(
                CallbackQueryHandler::new(|ctx: Context| async move {
                    let n = ctx.matches[1].clone().unwrap_or_default();
                    ctx.user_data(|d| d.insert("pressed".into(), n.into()))?;
                    Ok(())
                })
                .pattern(r"^pick:(\d)$")
                .unwrap(),
            )
            .build()
    });
    let tg = h.updates();
    h.process(tg.press(5, 7, 1, "other"));
    assert!(h.memory().is_empty());
    h.process(tg.press(5, 7, 1, "pick:3"));
    assert_eq!(
        block_on(h.memory().get_user_data(7)).unwrap(),
        Some(json!({"pressed": "3"}))
    );
}

#[test]
fn drop_migrate_and_other_chats_data_are_written_at_the_end() {
    let h = Harness::new(|builder| {
        builder
            .handler(CommandHandler::new("admin", |ctx: Context| async move {
                ctx.drop_user_data(8)?;
                ctx.migrate_chat_data(-100, -1009).await?;
                ctx.chat_data_of(42, |d| d.insert("note".into(), "hi".into()))
                    .await?;
                Ok(())
            }))
            .build()
    });
    let doc = json!({"chat_data": {"-100": {"title": "old"}, "5": {"count": 1}}, "user_data": {"8": {"a": 1}}});
    block_on(edgegram::persistence::dict::import(h.memory(), &doc, 1)).unwrap();
    let outcome = h.process(h.updates().command(5, 7, "/admin"));
    // One read for the update, one for -100 and -1009 together, one for 42.
    assert_eq!(outcome.reads, 3);
    assert_eq!(outcome.deleted(), [&Key::ChatData(-100), &Key::UserData(8)]);
    assert_eq!(
        outcome.written(),
        [&Key::ChatData(-1009), &Key::ChatData(42)]
    );
    let stored = h.to_json();
    assert_eq!(
        stored["chat_data"],
        json!({"-1009": {"title": "old"}, "42": {"note": "hi"}, "5": {"count": 1}})
    );
    assert_eq!(stored["user_data"], json!({}));
}

#[test]
fn nested_access_is_an_error_not_a_panic() {
    let h = harness();
    let tg = h.updates();
    let app = h
        .builder()
        .handler(TypeHandler::all(|ctx: Context| async move {
            let inner = ctx.chat_data(|_| ctx.chat_data(|_| ()))?;
            assert_eq!(inner, Err(Error::NestedAccess("chat_data")));
            let inner = ctx.bot_data(|_| ctx.bot_data(|_| ()))?;
            assert_eq!(inner, Err(Error::NestedAccess("bot_data")));
            let inner = ctx.user_data(|_| ctx.drop_user_data(7))?;
            assert_eq!(inner, Err(Error::NestedAccess("user_data")));
            let other = ctx.chat_data(|_| ctx.user_data(|_| 1))?;
            assert_eq!(other.unwrap(), 1);
            Ok(())
        }))
        .build()
        .unwrap();
    let outcome = h.process_in(&app, tg.message(5, 7, "x"));
    assert!(outcome.handler_error.is_none());
    let no_chat =
        tg.from_json(json!({"inline_query": {"id": "i", "from": {"id": 7}, "query": ""}}));
    let app = h
        .builder()
        .handler(TypeHandler::all(|ctx: Context| async move {
            ctx.chat_data(|_| ())?;
            Ok(())
        }))
        .build()
        .unwrap();
    let outcome = h.process_in(&app, no_chat);
    assert_eq!(
        outcome.handler_error.as_deref(),
        Some("this update has no chat")
    );
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Profile {
    name: String,
    visits: u32,
}

#[test]
fn typed_data_round_trips_and_a_misfit_value_is_a_decode_error() {
    let h: Harness<edgegram::Data, edgegram::Data, Profile> = Harness::new(|builder| {
        builder
            .handler(TypeHandler::all(|ctx: Context<_, _, Profile>| async move {
                ctx.user_data(|p| {
                    p.visits += 1;
                    p.name = "Ann".into();
                })?;
                Ok(())
            }))
            .build()
    });
    let tg = h.updates();
    h.process(tg.message(5, 7, "x"));
    h.process(tg.message(5, 7, "x"));
    assert_eq!(
        block_on(h.memory().get_user_data(7)).unwrap(),
        Some(json!({"name": "Ann", "visits": 2}))
    );
    block_on(h.memory().update_user_data(9, &json!({"visits": "many"}))).unwrap();
    let err = h.try_process(tg.message(5, 9, "x")).unwrap_err();
    assert!(
        matches!(&err, Error::Decode { key, .. } if key == "user:9"),
        "{err}"
    );
}

#[test]
fn building_without_bot_or_persistence_says_how_to_fix_it() {
    let err = ApplicationBuilder::<edgegram::Data, edgegram::Data, edgegram::Data>::new()
        .build()
        .err()
        .unwrap();
    assert!(err.to_string().contains(".bot("), "{err}");
    let err = ApplicationBuilder::<edgegram::Data, edgegram::Data, edgegram::Data>::new()
        .bot(Rc::new(RecordingBot::new()))
        .build()
        .err()
        .unwrap();
    assert!(err.to_string().contains(".persistence("), "{err}");
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AgedUser {
    age: u32,
    #[serde(default)]
    seen: u32,
}

type AgedHarness = Harness<edgegram::Data, edgegram::Data, AgedUser>;

fn aged_app(
    builder: ApplicationBuilder<edgegram::Data, edgegram::Data, AgedUser>,
) -> Result<Application<edgegram::Data, edgegram::Data, AgedUser>> {
    builder
        .schema_version(3)
        // v1 stored the age as a string; v2 -> v3 needs nothing.
        .migration(1, |key, mut data| {
            if let Key::UserData(_) = key {
                let age = data["age"].as_str().ok_or("age is not a string")?;
                data["age"] = json!(age.parse::<u32>().map_err(|e| e.to_string())?);
            }
            Ok(data)
        })
        .handler(CommandHandler::new(
            "seen",
            |ctx: Context<_, _, AgedUser>| async move {
                ctx.user_data(|u| u.seen += 1)?;
                Ok(())
            },
        ))
        .handler(CommandHandler::new(
            "age",
            |ctx: Context<_, _, AgedUser>| async move {
                let age = ctx.user_data(|u| u.age)?;
                ctx.reply_text(age.to_string())?;
                Ok(())
            },
        ))
        .build()
}

#[test]
fn old_values_are_migrated_on_load_and_rewritten_only_when_changed() {
    let h = AgedHarness::new(aged_app);
    let tg = h.updates();
    let old = codec::encode(1, "{\"age\":\"41\"}");
    block_on(
        h.memory()
            .write(&[Change::Put(Key::UserData(7), old.clone())]),
    )
    .unwrap();
    h.process(tg.command(5, 7, "/age"));
    assert_eq!(h.bot().texts(), ["41"]);
    let written: Vec<Change> = h.writes().into_iter().flatten().collect();
    assert!(
        written
            .iter()
            .all(|c| matches!(c.key(), Key::Outbox { .. })),
        "reading a migrated value writes nothing but the reply's outbox: {written:?}"
    );
    assert_eq!(
        block_on(h.memory().read(&[Key::UserData(7)])).unwrap(),
        [Some(old)]
    );
    h.process(tg.command(5, 7, "/seen"));
    let stored = block_on(h.memory().read(&[Key::UserData(7)])).unwrap();
    assert_eq!(stored, [Some(codec::encode(3, "{\"age\":41,\"seen\":1}"))]);
}

#[test]
fn a_failing_migration_fails_the_update_and_leaves_the_value() {
    let h = AgedHarness::new(aged_app);
    let old = codec::encode(1, "{\"age\":\"forty\"}");
    block_on(
        h.memory()
            .write(&[Change::Put(Key::UserData(7), old.clone())]),
    )
    .unwrap();
    let err = h
        .try_process(h.updates().command(5, 7, "/seen"))
        .unwrap_err();
    match &err {
        Error::Decode { key, message, .. } => {
            assert_eq!(key, "user:7");
            assert!(
                message.starts_with("migration from schema version 1 to 2 failed"),
                "{message}"
            );
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        block_on(h.memory().read(&[Key::UserData(7)])).unwrap(),
        [Some(old)]
    );
}

#[test]
fn migrations_outside_the_schema_range_are_configuration_errors() {
    let h = harness();
    for from in [0, 2, 5] {
        let err = h
            .builder()
            .schema_version(2)
            .migration(from, |_, d| Ok(d))
            .build()
            .err()
            .unwrap();
        assert!(err.to_string().contains("migrations go from 1"), "{err}");
    }
}

/// A backend whose `refresh_*` record what they were called for and mark the data they get,
/// over memory storage.
#[derive(Default)]
struct Refreshing {
    inner: edgegram::persistence::memory::MemoryPersistence,
    refreshed: RefCell<Vec<Key>>,
}

impl Refreshing {
    fn mark(&self, key: Key, data: &mut Value) {
        if let Value::Object(map) = data {
            map.insert("refreshed".into(), true.into());
        }
        self.refreshed.borrow_mut().push(key);
    }
}

impl Persistence for Refreshing {
    fn backend(&self) -> &'static str {
        "refreshing"
    }
    fn read<'a>(
        &'a self,
        keys: &'a [Key],
    ) -> futures::future::LocalBoxFuture<'a, Result<Vec<Option<String>>>> {
        self.inner.read(keys)
    }
    fn write<'a>(
        &'a self,
        changes: &'a [Change],
    ) -> futures::future::LocalBoxFuture<'a, Result<()>> {
        self.inner.write(changes)
    }
    fn list(
        &self,
        kind: edgegram::persistence::KeyKind,
    ) -> futures::future::LocalBoxFuture<'_, Result<Vec<Key>>> {
        self.inner.list(kind)
    }
    fn refresh_bot_data<'a>(
        &'a self,
        data: &'a mut Value,
    ) -> futures::future::LocalBoxFuture<'a, Result<()>> {
        self.mark(Key::BotData, data);
        Box::pin(async { Ok(()) })
    }
    fn refresh_chat_data<'a>(
        &'a self,
        chat_id: i64,
        data: &'a mut Value,
    ) -> futures::future::LocalBoxFuture<'a, Result<()>> {
        self.mark(Key::ChatData(chat_id), data);
        Box::pin(async { Ok(()) })
    }
    fn refresh_user_data<'a>(
        &'a self,
        user_id: i64,
        data: &'a mut Value,
    ) -> futures::future::LocalBoxFuture<'a, Result<()>> {
        self.mark(Key::UserData(user_id), data);
        Box::pin(async { Ok(()) })
    }
}

/// PTB's `CallbackContext.refresh_data` refreshes bot_data, chat_data and user_data of every
/// handled update, whether or not they were stored before (an absent entry is refreshed as
/// its empty default), and only the kinds `PersistenceInput` stores.
#[test]
fn refresh_runs_for_every_loaded_entry_of_a_stored_kind_also_an_absent_one() {
    let h = harness();
    let tg = h.updates();
    let backend = Rc::new(Refreshing::default());
    let app = h
        .builder()
        .persistence(backend.clone())
        .store_data(PersistenceInput {
            chat_data: false,
            ..PersistenceInput::ALL
        })
        .handler(TypeHandler::all(|ctx: Context| async move {
            let seen = |d: &mut edgegram::Data| d.get("refreshed").cloned();
            let bot = ctx.bot_data(seen)?;
            let chat = ctx.chat_data(seen)?;
            let user = ctx.user_data(|d| {
                bump(d);
                seen(d)
            })?;
            let other = ctx.user_data_of(9, seen).await?;
            ctx.reply_text(format!("{bot:?} {chat:?} {user:?} {other:?}"))?;
            Ok(())
        }))
        .build()
        .unwrap();
    let refreshed = [Key::BotData, Key::UserData(7), Key::UserData(9)];
    let some = Some(Value::Bool(true));
    let expected = format!("{some:?} None {some:?} {some:?}");

    // Nothing stored yet: bot_data and both users are refreshed all the same.
    h.process_in(&app, tg.message(5, 7, "hi"));
    assert_eq!(*backend.refreshed.borrow(), refreshed);
    assert_eq!(h.bot().texts()[0], expected);
    // Stored now (user 7's count): refreshed again, once each.
    h.process_in(&app, tg.message(5, 7, "hi"));
    assert_eq!(backend.refreshed.borrow()[3..], refreshed);
    assert_eq!(h.bot().texts()[1], expected);
}

#[test]
fn a_transient_failure_of_a_queued_reply_keeps_the_update_and_sends_the_reply_once_later() {
    use edgegram::outbox::Delivery;
    use edgegram::testing::Answer;
    let h = Harness::new(counting_app);
    let tg = h.updates();
    h.process(tg.command(GROUP, 7, "/count"));
    for (i, transient) in [
        Answer::server_error(),
        Answer::network_failure(),
        Answer::retry_after(3),
    ]
    .into_iter()
    .enumerate()
    {
        let count = i as i64 + 2;
        h.bot().answer_next_to("sendMessage", transient);
        let outcome = h.process(tg.command(GROUP, 7, "/count"));
        assert!(
            matches!(&outcome.delivery, Some(Delivery::Pending { error, .. })
                if error.bot_api_kind().is_some_and(|k| k.is_transient())),
            "{outcome:?}"
        );
        // The update is done with: its data committed, its reply stored.
        assert_eq!(h.to_json()["user_data"]["7"]["count"], count);
        assert_eq!(h.stored_outboxes().len(), 1);
        assert_eq!(h.bot().texts().len(), i + 1);
        h.advance(std::time::Duration::from_secs(3));
        let deliveries = h.deliver_pending().unwrap();
        assert_eq!(deliveries.iter().map(Delivery::sent).sum::<usize>(), 1);
        assert!(h.stored_outboxes().is_empty());
        let texts = h.bot().texts();
        assert_eq!(texts.len(), i + 2, "sent once: {texts:?}");
        assert_eq!(texts[i + 1], format!("{count} {count} {count}"));
    }
}

#[test]
fn a_transient_failure_of_a_call_made_at_once_fails_the_update_and_writes_nothing() {
    use edgegram::testing::Answer;
    let h = harness();
    let app = h
        .builder()
        .handler(CommandHandler::new("now", |ctx: Context| async move {
            ctx.user_data(bump)?;
            let chat = ctx.effective_chat().map_or(0, |c| c.id);
            ctx.bot()
                .send_message(edgegram::SendMessage::new(chat, "at once"))
                .await?;
            ctx.reply_text("queued")?;
            Ok(())
        }))
        .build()
        .unwrap();
    let tg = h.updates();
    h.bot()
        .answer_next_to("sendMessage", Answer::server_error());
    let update = tg.command(GROUP, 7, "/now");
    let error = h
        .try_process_in(&app, update.clone())
        .expect_err("a transient failure of a call made at once fails the update");
    assert!(
        matches!(&error, Error::BotApi { kind, .. } if kind.is_transient()),
        "{error}"
    );
    assert_eq!(h.to_json()["user_data"], json!({}), "nothing written");
    assert!(h.stored_outboxes().is_empty(), "nothing queued is kept");
    // Telegram's redelivery applies it once; the call made at once went first.
    h.process_in(&app, update);
    assert_eq!(h.to_json()["user_data"]["7"]["count"], 1);
    assert_eq!(h.bot().texts(), ["at once", "queued"]);
}

#[test]
fn a_queued_call_that_fails_for_good_reaches_the_error_handlers_whose_changes_are_written() {
    use edgegram::testing::Answer;
    let h = harness();
    let app = counting_app(h.builder().error_handler(|ctx: Context, error| async move {
        let blocked = error.downcast_ref::<Error>().and_then(Error::bot_api_kind)
            == Some(edgegram::BotApiErrorKind::Forbidden);
        if blocked {
            let _ = ctx.user_data(|d| d.insert("blocked".into(), true.into()));
        }
    }))
    .unwrap();
    let tg = h.updates();
    h.bot().answer_next_to("sendMessage", Answer::blocked());
    let outcome = h.process_in(&app, tg.command(GROUP, 7, "/count"));
    assert_eq!(outcome.handler_error, None);
    let failed = outcome.delivery.as_ref().map(|d| d.failed().len());
    assert_eq!(failed, Some(1), "{outcome:?}");
    let user = &h.to_json()["user_data"]["7"];
    assert_eq!(user["count"], 1, "the update's own changes are kept");
    assert_eq!(
        user["blocked"], true,
        "the error handler's change is written"
    );
    assert!(
        h.stored_outboxes().is_empty(),
        "a call failed for good is not retried"
    );
}

/// Typed user data of a bot under test: a number of visits.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Visits {
    visits: u32,
}

#[test]
fn an_import_refuses_data_the_bot_cannot_read() {
    // An entry that does not fit the bot's data type would fail every update of its user
    // (500 until Telegram gives up): refused at import, naming where.
    let h: Harness<edgegram::Data, edgegram::Data, Visits> = Harness::new(|builder| {
        builder
            .schema_version(2)
            // Version 1 called it "count".
            .migration(1, |_, mut data| {
                if let Some(count) = data.as_object_mut().and_then(|d| d.remove("count")) {
                    data["visits"] = count;
                }
                Ok(data)
            })
            .build()
    });
    let app = h.application().unwrap();
    let import = |doc: Value| block_on(app.import(&doc.to_string(), Default::default()));
    assert_eq!(import(json!({"user_data": {"7": {"count": 3}}})), Ok(1));
    let before = h.to_json();
    let refused = import(json!({"user_data": {"7": {"count": 3}, "8": {"count": "three"}}}));
    let Err(Error::Invalid(message)) = refused else {
        panic!("{refused:?}")
    };
    assert!(
        message.starts_with(
            "user_data.8: does not fit this bot's user_data type: invalid type: string \"three\""
        ),
        "{message}"
    );
    assert_eq!(h.to_json(), before, "nothing written");

    // Kinds the bot does not store, and callback data without arbitrary callback data.
    let h = harness();
    let app = h
        .builder()
        .store_data(PersistenceInput {
            chat_data: false,
            ..PersistenceInput::ALL
        })
        .build()
        .unwrap();
    let import = |doc: Value| block_on(app.import(&doc.to_string(), Default::default()));
    assert_eq!(
        import(json!({"chat_data": {"5": {}}})),
        Err(Error::Invalid(
            "chat_data.5: this bot does not store chat_data (ApplicationBuilder::store_data)"
                .into()
        ))
    );
    let keyboard = "0f".repeat(16);
    let refused = import(json!({"callback_data": [[[keyboard, 1, {}]], {}]}));
    let Err(Error::Invalid(message)) = refused else {
        panic!("{refused:?}")
    };
    assert!(
        message.starts_with(&format!(
            "callback_data.0.{keyboard}: this bot does not use arbitrary callback data"
        )),
        "{message}"
    );
    assert_eq!(
        import(json!({"bot_data": {"x": 1}, "user_data": {"1": {}}})),
        Ok(2)
    );
}

#[test]
fn with_webhook_reply_the_first_queued_call_is_given_back_and_the_rest_stored_and_sent() {
    let h = harness();
    let app = h
        .builder()
        .webhook_reply(true)
        .handler(CommandHandler::new("two", |ctx: Context| async move {
            ctx.user_data(bump)?;
            ctx.reply_text("first")?;
            ctx.reply_text("second")?;
            Ok(())
        }))
        .build()
        .unwrap();
    let outcome = h.process_in(&app, h.updates().command(GROUP, 7, "/two"));
    let reply = outcome
        .webhook_reply
        .expect("the first call is the webhook's answer");
    assert_eq!(
        (reply.method.as_str(), &reply.params["text"]),
        ("sendMessage", &json!("first"))
    );
    assert_eq!(
        outcome.outbox.map(|o| o.calls.len()),
        Some(1),
        "the second is stored"
    );
    assert_eq!(
        h.bot().texts(),
        ["second"],
        "and sent; the first is Telegram's to make"
    );
}

#[test]
fn a_replacing_import_leaves_the_replies_still_to_be_sent() {
    use edgegram::testing::Answer;
    let h = Harness::new(counting_app);
    h.bot()
        .answer_next_to("sendMessage", Answer::server_error());
    h.process(h.updates().command(GROUP, 7, "/count"));
    assert_eq!(
        h.stored_outboxes().len(),
        1,
        "the reply waits for its retry"
    );
    let app = h.application().unwrap();
    let doc = json!({"bot_data": {"count": 41}, "chat_data": {}, "user_data": {}, "conversations": {}, "callback_data": null});
    block_on(app.import(&doc.to_string(), Default::default())).unwrap();
    assert_eq!(h.to_json()["bot_data"]["count"], 41);
    assert_eq!(
        h.stored_outboxes().len(),
        1,
        "an import replaces data, not unsent replies"
    );
    h.advance(std::time::Duration::from_secs(1));
    h.deliver_pending().unwrap();
    assert_eq!(h.bot().texts(), ["1 1 1"]);
}
