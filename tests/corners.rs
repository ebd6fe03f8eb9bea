//! The corners of issue "Correct in every corner", end to end through the test kit: update
//! kinds whose handlers need their user or chat, schema versions written outside the
//! Application, and Bot API errors a handler can match on.

use std::cell::RefCell;
use std::rc::Rc;

use edgegram::error::BotApiErrorKind;
use edgegram::persistence::codec;
use edgegram::testing::{Answer, Harness};
use edgegram::{
    Application, ApplicationBuilder, Context, Data, Error, Key, Persistence, PersistenceExt,
    TypeHandler,
};
use futures::executor::block_on;
use serde_json::{json, Value};

/// Counts one more `what` in `data`.
fn bump(data: &mut Data, what: &str) {
    let n = data.get(what).and_then(Value::as_i64).unwrap_or(0);
    data.insert(what.into(), json!(n + 1));
}

/// A handler for updates of the kind Telegram names `kind`.
fn on(kind: &'static str) -> impl Fn(&edgegram::Update) -> bool {
    move |update| update.kind().is_some_and(|k| k.as_str() == kind)
}

/// A bot that keeps count of payments, reactions, boosts and business messages: each
/// handler reaches the data of the user or chat the update belongs to.
fn tally(builder: ApplicationBuilder) -> edgegram::Result<Application> {
    builder
        .handler(TypeHandler::new(
            on("pre_checkout_query"),
            |ctx: Context| async move {
                ctx.user_data(|d| bump(d, "checkouts"))?;
                Ok(())
            },
        ))
        .handler(TypeHandler::new(
            on("message_reaction"),
            |ctx: Context| async move {
                ctx.user_data(|d| bump(d, "reactions"))?;
                ctx.chat_data(|d| bump(d, "reactions"))?;
                Ok(())
            },
        ))
        .handler(TypeHandler::new(
            on("chat_boost"),
            |ctx: Context| async move {
                ctx.chat_data(|d| bump(d, "boosts"))?;
                Ok(())
            },
        ))
        .handler(TypeHandler::new(
            on("business_message"),
            |ctx: Context| async move {
                let text = ctx.effective_message().and_then(|m| m.text.clone());
                ctx.user_data(|d| d.insert("wrote".into(), json!(text)))?;
                ctx.chat_data(|d| bump(d, "business_messages"))?;
                Ok(())
            },
        ))
        .build()
}

#[test]
fn handlers_of_payments_reactions_boosts_and_business_messages_reach_their_user_and_chat() {
    let h = Harness::new(tally);
    let tg = h.updates();
    let ann = json!({"id": 7, "is_bot": false, "first_name": "Ann"});
    let group = json!({"id": -5, "type": "group", "title": "G"});
    let customer = json!({"id": 8, "type": "private", "first_name": "Cus"});
    let updates = [
        json!({"pre_checkout_query": {"id": "pq1", "from": ann, "currency": "XTR",
            "total_amount": 50, "invoice_payload": "order-1"}}),
        json!({"message_reaction": {"chat": group, "message_id": 3, "user": ann, "date": 1,
            "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "👍"}]}}),
        json!({"chat_boost": {"chat": group, "boost": {"boost_id": "b", "add_date": 1,
            "expiration_date": 2, "source": {"source": "premium", "user": ann}}}}),
        json!({"business_message": {"message_id": 4, "date": 1, "business_connection_id": "bc",
            "chat": customer, "from": {"id": 8, "is_bot": false, "first_name": "Cus"},
            "text": "open today?"}}),
    ];
    for update in updates {
        let outcome = h.process(tg.from_json(update.clone()));
        assert!(outcome.handled, "{update}");
        assert_eq!(outcome.handler_error, None, "{update}");
    }
    let state = h.to_json();
    assert_eq!(
        state["user_data"],
        json!({"7": {"checkouts": 1, "reactions": 1}, "8": {"wrote": "open today?"}})
    );
    assert_eq!(
        state["chat_data"],
        json!({"-5": {"reactions": 1, "boosts": 1}, "8": {"business_messages": 1}})
    );
}

/// A user's data at schema version 2, where the age is a number; version 1 kept it as text.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Aged {
    age: u32,
    #[serde(default)]
    seen: u32,
}

/// A bot at schema version 2 whose migration from version 1 parses the age, and refuses a
/// value whose age is not text: one already in version 2's shape.
fn aged(
    builder: ApplicationBuilder<Data, Data, Aged>,
) -> edgegram::Result<Application<Data, Data, Aged>> {
    builder
        .schema_version(2)
        .migration(1, |key, mut data| {
            if let Key::UserData(_) = key {
                let age = data["age"].as_str().ok_or("age is not text")?;
                data["age"] = json!(age.parse::<u32>().map_err(|e| e.to_string())?);
            }
            Ok(data)
        })
        .handler(TypeHandler::all(
            |ctx: Context<Data, Data, Aged>| async move {
                ctx.user_data(|u| u.seen += 1)?;
                Ok(())
            },
        ))
        .build()
}

#[test]
fn data_written_at_the_apps_schema_version_is_not_migrated_again() {
    let h: Harness<Data, Data, Aged> = Harness::new(aged);
    let tg = h.updates();
    // An admin tool writes user 7 in version 2's shape, at version 2.
    block_on(
        h.memory()
            .versioned(2)
            .update_user_data(7, &json!({"age": 41})),
    )
    .unwrap();
    let outcome = h.process(tg.message(7, 7, "hi"));
    assert_eq!(outcome.handler_error, None);
    assert_eq!(
        block_on(h.memory().read(&[Key::UserData(7)])).unwrap(),
        [Some(codec::encode(2, r#"{"age":41,"seen":1}"#))]
    );
    // The plain PTB method writes version 1, which the migration reads as version 1.
    block_on(h.memory().update_user_data(8, &json!({"age": "30"}))).unwrap();
    h.process(tg.message(8, 8, "hi"));
    let stored = block_on(h.memory().get_stored(&Key::UserData(8))).unwrap();
    let stored = stored.map(|s| (s.version, s.data));
    assert_eq!(stored, Some((2, json!({"age": 30, "seen": 1}))));
}

#[test]
fn a_handler_sees_the_flood_limit_as_retry_after_its_seconds() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let into = seen.clone();
    let h = Harness::new(move |builder: ApplicationBuilder| {
        let into = into.clone();
        builder
            // A call made at once: its failure is the handler's own.
            .handler(TypeHandler::all(|ctx: Context| async move {
                let hello = edgegram::SendMessage::new(5, "hello");
                ctx.bot().send_message(hello).await?;
                Ok(())
            }))
            .error_handler(move |_ctx: Context, error| {
                let into = into.clone();
                async move {
                    let kind = error.downcast_ref::<Error>().and_then(Error::bot_api_kind);
                    into.borrow_mut().push(kind);
                }
            })
            .build()
    });
    h.bot().answer_next(Answer::retry_after(5));
    h.bot().answer_next(Answer::blocked());
    h.bot().answer_next(Answer::migrated(-1_001_234_567_890));
    h.bot().answer_next(Answer::network_failure());
    for _ in 0..4 {
        // Transient failures fail the update (Telegram redelivers it); the error handlers see
        // every failure either way.
        let _ = h.try_process(h.updates().message(5, 5, "hi"));
    }
    assert_eq!(
        *seen.borrow(),
        [
            Some(BotApiErrorKind::RetryAfter(5)),
            Some(BotApiErrorKind::Forbidden),
            Some(BotApiErrorKind::ChatMigrated(-1_001_234_567_890)),
            Some(BotApiErrorKind::Network),
        ]
    );
    let transient: Vec<bool> = seen
        .borrow()
        .iter()
        .flatten()
        .map(|k| k.is_transient())
        .collect();
    assert_eq!(transient, [true, false, false, true]);
}
