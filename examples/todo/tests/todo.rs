//! The to-do bot, natively, with edgegram's test kit: what a user's own tests look like.

use edgegram::api;
use edgegram::testing::{Answer, Harness};
use serde_json::json;
use todo_bot::{application, BADGE_PNG};

const ANN: i64 = 7;

#[test]
fn an_item_is_added_by_conversation_and_toggled_in_place() {
    let h = Harness::new(application);
    let tg = h.updates();
    h.process(tg.command(ANN, ANN, "/add"));
    h.process(tg.message(ANN, ANN, "Buy milk"));
    assert_eq!(
        h.bot().texts(),
        ["What should I remember?", "1 thing to do."]
    );
    assert_eq!(
        h.to_json()["user_data"][ANN.to_string()],
        json!({"items": [{"id": 1, "text": "Buy milk", "done": false}], "next_id": 1})
    );

    let list = h.bot().sent().pop().expect("the list was sent");
    h.bot().clear();
    h.process(tg.press(ANN, ANN, list.message_id, "toggle:1"));
    assert_eq!(
        h.bot().methods(),
        ["answerCallbackQuery", "editMessageText"]
    );
    let edit = &h.bot().params_of("editMessageText")[0];
    assert_eq!(edit["message_id"], list.message_id);
    assert_eq!(edit["text"], "All done!");
    assert_eq!(
        h.to_json()["user_data"][ANN.to_string()]["items"][0]["done"],
        true
    );
}

#[test]
fn a_reply_to_a_user_who_blocked_the_bot_fails_after_the_item_is_kept() {
    let h = Harness::new(application);
    let tg = h.updates();
    h.process(tg.command(ANN, ANN, "/add"));
    h.bot().answer_next_to("sendMessage", Answer::blocked());
    let outcome = h.process(tg.message(ANN, ANN, "Buy milk"));
    // The reply is queued: the handler succeeded, the delivery failed for good.
    assert_eq!(outcome.handler_error, None);
    let failed = outcome.delivery.as_ref().map(|d| d.failed().to_vec());
    let error = failed
        .and_then(|f| f.first().cloned())
        .expect("the reply failed");
    assert!(error.error.to_string().contains("403"), "{}", error.error);
    assert_eq!(
        h.to_json()["user_data"][ANN.to_string()]["items"][0]["text"],
        "Buy milk"
    );
}

#[test]
fn an_empty_item_is_asked_again() {
    let h = Harness::new(application);
    let tg = h.updates();
    h.process(tg.command(ANN, ANN, "/add"));
    h.process(tg.message(ANN, ANN, "   "));
    assert_eq!(
        h.to_json()["conversations"]["add"][format!("[{ANN}, {ANN}]")],
        "TEXT"
    );
    assert_eq!(
        h.bot().texts().last().unwrap(),
        "Send the item as text, or /cancel."
    );
}

#[test]
fn a_shared_location_becomes_an_item_and_the_badge_is_a_photo_from_bytes() {
    let h = Harness::new(application);
    let tg = h.updates();
    h.process(tg.command(ANN, ANN, "/where"));
    let ask = &h.bot().params_of("sendMessage")[0];
    assert_eq!(
        ask["reply_markup"]["keyboard"][0][0],
        json!({"text": "📍 Send my location", "request_location": true})
    );

    h.process(tg.location(ANN, ANN, 52.52, 13.405));
    assert_eq!(
        h.to_json()["user_data"][ANN.to_string()]["items"][0]["text"],
        "Be at 52.5200, 13.4050"
    );
    assert_eq!(h.bot().texts().last().unwrap(), "1 thing to do.");

    h.bot().clear();
    h.process(tg.command(ANN, ANN, "/badge"));
    let calls = h.bot().calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "sendPhoto");
    assert_eq!(calls[0].params["caption"], "0 of 1 done.");
    let uploads = calls[0].uploads();
    assert_eq!(uploads[0].0, "photo");
    assert_eq!(uploads[0].1.bytes, BADGE_PNG);
    let sent = calls[0].result.as_ref().unwrap();
    assert!(api::Message(sent).photo().is_some_and(|p| !p.is_empty()));
}
