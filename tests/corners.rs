//! The corners of issue "Correct in every corner", end to end through the test kit: update
//! kinds whose handlers need their user or chat, schema versions written outside the
//! Application, and Bot API errors a handler can match on.

use edgegram::testing::Harness;
use edgegram::{Application, ApplicationBuilder, Context, Data, TypeHandler};
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
