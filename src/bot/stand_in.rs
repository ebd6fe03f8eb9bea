//! What Telegram answers to a Bot API call, as one pure function: [`answer`].
//!
//! Two stand-ins for Telegram need it: the test double `testing::RecordingBot` (feature
//! `testing`) and the in-worker recorder of local development (feature `dev-bot-api`). Both
//! keep their own state (message ids, the clock, the bot's username) and hand it in, so that
//! the answers, and the mistakes Telegram refuses, are the same wherever the bot runs without
//! Telegram.
//!
//! ```
//! use edgegram::bot::stand_in::{answer, response};
//! use serde_json::json;
//!
//! let params = json!({"chat_id": 5, "text": "hi"});
//! let sent = answer("sendMessage", &params, 1_700_000_000_000, "my_bot", Some(3)).unwrap();
//! assert_eq!((sent["message_id"].clone(), sent["chat"]["type"].clone()), (json!(3), json!("private")));
//!
//! let empty = answer("sendMessage", &json!({"chat_id": 5, "text": " "}), 0, "my_bot", Some(4));
//! assert_eq!(empty, Err("Bad Request: message text is empty".to_string()));
//! assert_eq!(response(&empty).0, 400);
//! ```

use serde_json::{json, Value};

/// The bot's user id in every answer (`getMe`, the `from` of the bot's messages).
pub const BOT_ID: i64 = 1;
/// The bot's first name in every answer.
pub const BOT_FIRST_NAME: &str = "edgegram demo";
/// The most characters a message text may have.
pub const MAX_TEXT_CHARS: usize = 4096;
/// The most bytes a button's `callback_data` may have.
pub const MAX_CALLBACK_DATA_BYTES: usize = 64;

/// What Telegram answers to `method` with `params`: `Ok(result)`, or `Err(description)` of a
/// 400 (Bad Request), the only refusal a stand-in can know of without Telegram's state.
///
/// - `now_ms`: the time of the answer (the `date` of a sent message, the `edit_date` of an
///   edited one).
/// - `username`: the bot's username, answered by `getMe` and in the `from` of its messages.
/// - `next_message_id`: the chat's next message id, for a method that sends a message
///   ([`sends_message`]); `None` means the chat is unknown (the answer is "chat not found").
///   The caller keeps the ids, per chat as Telegram numbers them ([`chat_id_text`] is the
///   chat's key), and counts one up only when the answer is `Ok`.
///
/// `sendMessage` and `editMessageText` are refused with an empty or too long text, any
/// message with a button whose `callback_data` is empty or over 64 bytes; `editMessageText`
/// without a message id or with a bad chat id. Methods it does not know answer `true`, as
/// most of Telegram's methods that do not return a message do.
pub fn answer(
    method: &str,
    params: &Value,
    now_ms: i64,
    username: &str,
    next_message_id: Option<i64>,
) -> Result<Value, String> {
    let bot = bot_user(username);
    if method == "getMe" {
        return Ok(bot);
    }
    if method == "sendChatAction" {
        return Ok(Value::Bool(true));
    }
    let is_text = method == "sendMessage" || method == "editMessageText";
    if !is_text && !sends_message(method) {
        return Ok(Value::Bool(true));
    }
    if is_text {
        let text = params["text"].as_str().unwrap_or("");
        if text.trim().is_empty() {
            return Err("Bad Request: message text is empty".into());
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err("Bad Request: message is too long".into());
        }
    }
    if !buttons_are_valid(&params["reply_markup"]) {
        return Err("Bad Request: BUTTON_DATA_INVALID".into());
    }
    let message = |message_id: i64| {
        let chat_id = &params["chat_id"];
        let mut message = json!({
            "message_id": message_id,
            "date": now_ms / 1000,
            "chat": {"id": chat_id, "type": chat_type(chat_id)},
            "from": bot,
        });
        for field in [
            "text",
            "caption",
            "message_thread_id",
            "business_connection_id",
        ] {
            if let Some(value) = params.get(field) {
                message[field] = value.clone();
            }
        }
        // What a media message shows: file ids made from the message id.
        let file = |kind: &str| {
            json!({"file_id": format!("{kind}-{message_id}"),
            "file_unique_id": format!("u{kind}-{message_id}")})
        };
        match method {
            "sendPhoto" => {
                let mut size = file("photo");
                size["width"] = json!(800);
                size["height"] = json!(600);
                message["photo"] = json!([size]);
            }
            "sendDocument" => {
                let mut document = file("document");
                if let Some(name) = upload_filename(&params["document"]) {
                    document["file_name"] = json!(name);
                }
                message["document"] = document;
            }
            "sendLocation" => {
                message["location"] =
                    json!({"latitude": params["latitude"], "longitude": params["longitude"]});
            }
            _ => {}
        }
        // A message carries its inline keyboard; a reply keyboard belongs to the chat.
        if let Some(markup) = params
            .get("reply_markup")
            .filter(|m| m.get("inline_keyboard").is_some())
        {
            message["reply_markup"] = markup.clone();
        }
        message
    };
    if method == "editMessageText" {
        if params.get("inline_message_id").is_some() {
            return Ok(Value::Bool(true));
        }
        let Some(id) = params["message_id"].as_i64() else {
            return Err("Bad Request: message identifier is not specified".into());
        };
        if chat_id_text(&params["chat_id"]).is_none() {
            return Err("Bad Request: chat not found".into());
        }
        let mut edited = message(id);
        edited["edit_date"] = json!(now_ms / 1000);
        return Ok(edited);
    }
    match next_message_id {
        // An album answers one message per item, with ids counting up.
        Some(id) if method == "sendMediaGroup" => {
            let items = messages_sent(method, params) as i64;
            Ok((id..id + items).map(message).collect())
        }
        Some(id) => Ok(message(id)),
        None => Err("Bad Request: chat not found".into()),
    }
}

/// How many messages a successful call of `method` sends: one per item of an album, else one.
/// The caller takes that many ids.
pub fn messages_sent(method: &str, params: &Value) -> usize {
    match method {
        "sendMediaGroup" => params["media"].as_array().map_or(1, Vec::len).max(1),
        _ => 1,
    }
}

/// The file name of an upload ([`crate::api::input_file`]), if `value` is one.
fn upload_filename(value: &Value) -> Option<&str> {
    value
        .get(crate::api::input_file::UPLOAD_KEY)?
        .get("filename")?
        .as_str()
}

/// Telegram's answer as an HTTP status and JSON body: `200 {"ok": true, "result": ..}` or
/// `400 {"ok": false, "error_code": 400, "description": ..}`.
pub fn response(answer: &Result<Value, String>) -> (u16, Value) {
    match answer {
        Ok(result) => (200, json!({"ok": true, "result": result})),
        Err(description) => (
            400,
            json!({"ok": false, "error_code": 400, "description": description}),
        ),
    }
}

/// Whether an answer to `method` is a new message of the chat, and so takes its next id.
pub fn sends_message(method: &str) -> bool {
    (method.starts_with("send") && method != "sendChatAction")
        || method == "copyMessage"
        || method == "forwardMessage"
}

/// A chat id as Telegram accepts it, normalised to a key: an integer, or an `@username`
/// (channels). `None` when it is neither.
pub fn chat_id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n.as_i64().map(|n| n.to_string()),
        Value::String(s) => {
            if let Ok(n) = s.parse::<i64>() {
                Some(n.to_string())
            } else if s.starts_with('@') && s.len() > 1 && s.len() <= 64 {
                Some(s.clone())
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The type of a chat from its id, by Telegram's numbering: users are positive, basic groups
/// negative, supergroups and channels below -10¹² (`-100…`; supergroup is assumed); an
/// `@username` is a channel.
pub fn chat_type(chat_id: &Value) -> &'static str {
    match chat_id.as_i64() {
        Some(id) if id > 0 => "private",
        Some(id) if id <= -1_000_000_000_000 => "supergroup",
        Some(_) => "group",
        None => "channel",
    }
}

/// The bot's own user, as `getMe` answers it.
pub fn bot_user(username: &str) -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": BOT_FIRST_NAME, "username": username})
}

/// Whether every button of an inline keyboard has callback data Telegram accepts (1-64 bytes
/// when present). Anything that is not an inline keyboard passes.
fn buttons_are_valid(markup: &Value) -> bool {
    let Some(rows) = markup["inline_keyboard"].as_array() else {
        return true;
    };
    rows.iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|button| button.get("callback_data"))
        .all(|data| {
            data.as_str()
                .is_some_and(|d| !d.is_empty() && d.len() <= MAX_CALLBACK_DATA_BYTES)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_500;

    fn send(params: Value, next: Option<i64>) -> Result<Value, String> {
        answer("sendMessage", &params, NOW, "a_bot", next)
    }

    #[test]
    fn a_sent_message_is_answered_with_its_chat_id_date_and_inline_keyboard_only() {
        let keyboard = json!({"inline_keyboard": [[{"text": "1", "callback_data": "one"}]]});
        let sent = send(
            json!({"chat_id": -1001, "text": "hi", "reply_markup": keyboard}),
            Some(9),
        )
        .unwrap();
        assert_eq!(
            sent,
            json!({"message_id": 9, "date": 1_700_000_000, "text": "hi",
                   "chat": {"id": -1001, "type": "group"}, "from": bot_user("a_bot"),
                   "reply_markup": keyboard})
        );
        let with_reply_keyboard = json!({"chat_id": 5, "text": "hi",
            "reply_markup": {"keyboard": [[{"text": "Age"}]]}});
        let sent = send(with_reply_keyboard, Some(1)).unwrap();
        assert!(sent.get("reply_markup").is_none(), "{sent}");
        assert_eq!(sent["chat"]["type"], "private");
    }

    #[test]
    fn what_telegram_refuses_is_a_400_with_its_description() {
        let cases = [
            (json!({"chat_id": 5, "text": ""}), "message text is empty"),
            (json!({"chat_id": 5}), "message text is empty"),
            (
                json!({"chat_id": 5, "text": "x".repeat(4097)}),
                "message is too long",
            ),
            (
                json!({"chat_id": 5, "text": "k", "reply_markup": {"inline_keyboard": [[
                    {"text": "b", "callback_data": "d".repeat(65)}]]}}),
                "BUTTON_DATA_INVALID",
            ),
        ];
        for (params, description) in cases {
            assert_eq!(
                send(params.clone(), Some(1)),
                Err(format!("Bad Request: {description}")),
                "{params}"
            );
        }
        assert!(send(json!({"chat_id": 5, "text": "é".repeat(4096)}), Some(1)).is_ok());
        assert_eq!(
            send(json!({"chat_id": 5, "text": "hi"}), None),
            Err("Bad Request: chat not found".into())
        );
        let refused = response(&send(json!({"chat_id": 5, "text": ""}), Some(1)));
        assert_eq!(
            refused,
            (
                400,
                json!({"ok": false, "error_code": 400,
                       "description": "Bad Request: message text is empty"})
            )
        );
    }

    #[test]
    fn an_edit_keeps_its_message_id_and_needs_one() {
        let edit = |params: Value| answer("editMessageText", &params, NOW, "a_bot", None);
        let edited = edit(json!({"chat_id": 5, "message_id": 4, "text": "new"})).unwrap();
        assert_eq!(
            (&edited["message_id"], &edited["edit_date"]),
            (&json!(4), &json!(1_700_000_000))
        );
        assert_eq!(
            edit(json!({"chat_id": 5, "text": "new"})),
            Err("Bad Request: message identifier is not specified".into())
        );
        assert_eq!(
            edit(json!({"chat_id": "nobody", "message_id": 4, "text": "new"})),
            Err("Bad Request: chat not found".into())
        );
        assert_eq!(
            edit(json!({"inline_message_id": "AAQ", "text": "new"})),
            Ok(json!(true))
        );
    }

    #[test]
    fn other_methods_answer_what_telegram_answers() {
        let call = |method: &str, params: Value| answer(method, &params, NOW, "a_bot", Some(2));
        assert_eq!(call("getMe", json!({})).unwrap()["username"], "a_bot");
        assert_eq!(
            call("sendChatAction", json!({"chat_id": 5})),
            Ok(json!(true))
        );
        assert_eq!(
            call("answerCallbackQuery", json!({"callback_query_id": "q"})),
            Ok(json!(true))
        );
        let photo = call("sendPhoto", json!({"chat_id": "@news", "caption": "c"})).unwrap();
        assert_eq!(
            (
                &photo["message_id"],
                &photo["caption"],
                &photo["chat"]["type"]
            ),
            (&json!(2), &json!("c"), &json!("channel"))
        );
        assert!(sends_message("copyMessage") && !sends_message("sendChatAction"));
        assert_eq!(chat_id_text(&json!("-100")), Some("-100".into()));
        assert_eq!(chat_id_text(&json!("@")), None);
        assert_eq!(chat_type(&json!(-1_000_000_000_001_i64)), "supergroup");
    }
}
