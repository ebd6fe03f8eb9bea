//! [`RecordingBot`]: the Bot API double. It records every call and answers as Telegram would
//! ([`stand_in::answer`]), or as the test scripted ([`Answer`]): a blocked user, a flood
//! limit, a server error, a network failure.
//!
//! Every answer, scripted or not, is turned into Telegram's HTTP answer and read by
//! [`parse_response`], the function that reads Telegram's real answers; so a handler sees
//! exactly the error it would see in production.

use std::cell::RefCell;
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use serde_json::{json, Value};

use super::telegram::Telegram;
use crate::api::input_file::{Multipart, Upload};
use crate::bot::{parse_response, stand_in, BotApi};
use crate::error::{BotApiErrorKind, Error, Result};
use crate::types::Message;

/// A [`BotApi`] that sends nothing: it records every call and answers it as Telegram would
/// (message ids counting up per chat, what Telegram refuses refused), unless the test
/// scripted another answer.
///
/// ```
/// use std::rc::Rc;
/// use edgegram::testing::{Answer, RecordingBot};
/// use edgegram::{Bot, Error, SendMessage};
/// # futures::executor::block_on(async {
/// let recorder = Rc::new(RecordingBot::new());
/// let bot = Bot::new(recorder.clone());
/// recorder.answer_next_to("sendMessage", Answer::blocked());
///
/// let refused = bot.send_message(SendMessage::new(5, "hi")).await.unwrap_err();
/// assert!(matches!(refused, Error::BotApi { code: Some(403), .. }));
/// let sent = bot.send_message(SendMessage::new(5, "hi again")).await.unwrap();
/// assert_eq!(sent.message_id, 1);
/// assert_eq!(recorder.texts(), ["hi again"]); // what reached the chat
/// assert_eq!(recorder.calls().len(), 2); // what was tried
/// # });
/// ```
#[derive(Debug, Default)]
pub struct RecordingBot {
    telegram: Rc<Telegram>,
    calls: RefCell<Vec<BotCall>>,
    scripts: RefCell<Vec<Script>>,
}

/// One recorded call: what the bot asked and what it got.
#[derive(Debug, Clone, PartialEq)]
pub struct BotCall {
    /// The method, e.g. `"sendMessage"`.
    pub method: String,
    /// The parameters as sent.
    pub params: Value,
    /// Telegram's `result`, or the error the bot got.
    pub result: Result<Value>,
}

/// What Telegram answers to one call, as a test scripts it: an HTTP status and body (read by
/// [`parse_response`] as real answers are), or no answer at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer(Reply);

#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Http { status: u16, body: Vec<u8> },
    NetworkFailure,
}

/// A scripted answer and the calls it is for.
#[derive(Debug)]
struct Script {
    /// `None`: any method.
    method: Option<String>,
    answer: Answer,
    /// Answers every call it fits instead of the next one only.
    every: bool,
}

impl RecordingBot {
    /// A recorder with no calls yet, answering as the bot `@edgegram_bot`
    /// ([`BOT_USERNAME`](super::BOT_USERNAME)) at [`START_MS`](super::START_MS).
    pub fn new() -> Self {
        Self::default()
    }

    /// A recorder over `telegram`, the clock and message ids it shares with update builders.
    pub(crate) fn sharing(telegram: Rc<Telegram>) -> Self {
        Self {
            telegram,
            ..Self::default()
        }
    }

    /// The bot's username, as `getMe` answers it.
    pub fn username(&self) -> String {
        self.telegram.username()
    }

    /// Sets the username `getMe` answers (a leading `@` is dropped). A bot that does not set
    /// its username learns it from `getMe` the first time a command is addressed to it.
    pub fn set_username(&self, username: &str) {
        self.telegram.set_username(username);
    }

    /// Answers the next call, whatever its method, with `answer`. Scripts are used in the
    /// order they were added: two calls of `answer_next` script the next two calls.
    pub fn answer_next(&self, answer: Answer) {
        self.script(None, answer, false);
    }

    /// Answers the next call of `method` with `answer`; calls of other methods are answered
    /// as before.
    pub fn answer_next_to(&self, method: &str, answer: Answer) {
        self.script(Some(method), answer, false);
    }

    /// Answers every call of `method` with `answer`, until [`answer_normally`].
    ///
    /// [`answer_normally`]: RecordingBot::answer_normally
    pub fn answer_every(&self, method: &str, answer: Answer) {
        self.script(Some(method), answer, true);
    }

    /// Forgets every scripted answer: calls are answered as Telegram would again.
    pub fn answer_normally(&self) {
        self.scripts.borrow_mut().clear();
    }

    /// Every call so far, oldest first, answered or refused.
    pub fn calls(&self) -> Vec<BotCall> {
        self.calls.borrow().clone()
    }

    /// Takes the calls so far, leaving none (to look at one update's calls at a time).
    pub fn take_calls(&self) -> Vec<BotCall> {
        self.calls.take()
    }

    /// Forgets the calls so far.
    pub fn clear(&self) {
        self.calls.borrow_mut().clear();
    }

    /// The method of every call so far, oldest first.
    pub fn methods(&self) -> Vec<String> {
        self.calls
            .borrow()
            .iter()
            .map(|c| c.method.clone())
            .collect()
    }

    /// The parameters of every call of `method` so far, answered or refused.
    pub fn params_of(&self, method: &str) -> Vec<Value> {
        self.calls
            .borrow()
            .iter()
            .filter(|c| c.method == method)
            .map(|c| c.params.clone())
            .collect()
    }

    /// The text of every message sent or edited so far (`sendMessage`, `editMessageText`)
    /// that Telegram accepted: what the chats show.
    pub fn texts(&self) -> Vec<String> {
        self.accepted()
            .filter(|c| c.method == "sendMessage" || c.method == "editMessageText")
            .filter_map(|c| c.params["text"].as_str().map(String::from))
            .collect()
    }

    /// Every message sent or edited so far, as Telegram answered it (with its `message_id`,
    /// e.g. to press one of its buttons).
    pub fn sent(&self) -> Vec<Message> {
        self.accepted()
            .filter_map(|c| c.result.ok())
            .filter_map(|result| serde_json::from_value(result).ok())
            .collect()
    }

    /// The `callback_data` of every button of the newest inline keyboard sent or edited that
    /// Telegram accepted, row by row; empty when there is none.
    pub fn last_callback_data(&self) -> Vec<String> {
        let calls = self.calls.borrow();
        let keyboard = calls
            .iter()
            .rev()
            .filter(|c| c.result.is_ok())
            .find_map(|c| c.params["reply_markup"]["inline_keyboard"].as_array());
        keyboard
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|button| button["callback_data"].as_str().map(String::from))
            .collect()
    }

    fn accepted(&self) -> impl Iterator<Item = BotCall> {
        self.calls().into_iter().filter(|c| c.result.is_ok())
    }

    fn script(&self, method: Option<&str>, answer: Answer, every: bool) {
        self.scripts.borrow_mut().push(Script {
            method: method.map(String::from),
            answer,
            every,
        });
    }

    /// The first script that fits `method`, used up unless it answers every call.
    fn scripted(&self, method: &str) -> Option<Answer> {
        let mut scripts = self.scripts.borrow_mut();
        let index = scripts
            .iter()
            .position(|s| s.method.as_deref().is_none_or(|m| m == method))?;
        if scripts[index].every {
            return Some(scripts[index].answer.clone());
        }
        Some(scripts.remove(index).answer)
    }

    /// What Telegram answers when nothing is scripted; a sent message takes its chat's id.
    fn telegram_answer(&self, method: &str, params: &Value) -> Answer {
        let chat = stand_in::sends_message(method)
            .then(|| stand_in::chat_id_text(&params["chat_id"]))
            .flatten();
        let next_id = chat.as_deref().map(|c| self.telegram.peek_message_id(c));
        let answer = stand_in::answer(
            method,
            params,
            self.telegram.now_ms(),
            &self.telegram.username(),
            next_id,
        );
        if let (Ok(_), Some(chat)) = (&answer, &chat) {
            for _ in 0..stand_in::messages_sent(method, params) {
                self.telegram.take_message_id(chat);
            }
        }
        let (status, body) = stand_in::response(&answer);
        Answer::http(status, body.to_string())
    }
}

impl BotApi for RecordingBot {
    fn call<'a>(&'a self, method: &'a str, params: Value) -> LocalBoxFuture<'a, Result<Value>> {
        let answer = self
            .scripted(method)
            .unwrap_or_else(|| self.telegram_answer(method, &params));
        let result = match answer.0 {
            Reply::Http { status, body } => parse_response(method, status, &body),
            // What the fetch client answers when no response arrives: no code.
            Reply::NetworkFailure => Err(Error::BotApi {
                method: method.to_string(),
                code: None,
                description: "network failure (scripted): no answer from Telegram".into(),
                kind: BotApiErrorKind::Network,
            }),
        };
        self.calls.borrow_mut().push(BotCall {
            method: method.to_string(),
            params,
            result: result.clone(),
        });
        Box::pin(futures::future::ready(result))
    }
}

impl BotCall {
    /// Whether Telegram accepted the call.
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    /// The files this call uploads, as the transport would post them: the part's name (the
    /// parameter, or `file0`.. for an album's media) and the upload. Empty for a call that
    /// uploads nothing.
    pub fn uploads(&self) -> Vec<(String, Upload)> {
        match Multipart::take(&self.method, &mut self.params.clone()) {
            Some(Ok(form)) => form.files,
            _ => Vec::new(),
        }
    }
}

impl Answer {
    /// Success with `result`: `200 {"ok": true, "result": ..}`.
    pub fn result(result: Value) -> Self {
        Self::http(200, json!({"ok": true, "result": result}).to_string())
    }

    /// A refusal as Telegram sends it: HTTP status `code` and
    /// `{"ok": false, "error_code": code, "description": ..}`.
    pub fn error(code: u16, description: &str) -> Self {
        Self::refusal(code, description, None)
    }

    /// `400 Bad Request: {what}`, e.g. `Answer::bad_request("chat not found")`.
    pub fn bad_request(what: &str) -> Self {
        Self::error(400, &format!("Bad Request: {what}"))
    }

    /// `403 Forbidden: bot was blocked by the user`: the user stopped the bot; sending to
    /// them fails until they start it again.
    pub fn blocked() -> Self {
        Self::error(403, "Forbidden: bot was blocked by the user")
    }

    /// `429 Too Many Requests: retry after {seconds}`, with `parameters.retry_after`: the
    /// flood limit.
    pub fn retry_after(seconds: u32) -> Self {
        Self::refusal(
            429,
            &format!("Too Many Requests: retry after {seconds}"),
            Some(json!({ "retry_after": seconds })),
        )
    }

    /// `400 Bad Request: group chat was upgraded to a supergroup chat`, with
    /// `parameters.migrate_to_chat_id`: the group now lives under another id.
    pub fn migrated(to_chat_id: i64) -> Self {
        Self::refusal(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            Some(json!({ "migrate_to_chat_id": to_chat_id })),
        )
    }

    /// `500 Internal Server Error`, as Telegram answers when it fails itself.
    pub fn server_error() -> Self {
        Self::error(500, "Internal Server Error")
    }

    /// Any HTTP answer, e.g. a proxy's `502` with an HTML body.
    pub fn http(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self(Reply::Http {
            status,
            body: body.into(),
        })
    }

    /// No answer at all: the connection failed or timed out.
    pub fn network_failure() -> Self {
        Self(Reply::NetworkFailure)
    }

    fn refusal(code: u16, description: &str, parameters: Option<Value>) -> Self {
        let mut body = json!({"ok": false, "error_code": code, "description": description});
        if let Some(parameters) = parameters {
            body["parameters"] = parameters;
        }
        Self::http(code, body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::bot::{Bot, EditMessageText, SendMessage};

    fn recorder() -> (Rc<RecordingBot>, Bot) {
        let recorder = Rc::new(RecordingBot::new());
        (recorder.clone(), Bot::new(recorder))
    }

    fn code(result: Result<impl std::fmt::Debug>) -> Option<i64> {
        match result {
            Err(Error::BotApi { code, .. }) => code,
            other => panic!("expected a Bot API error, got {other:?}"),
        }
    }

    #[test]
    fn messages_take_ids_per_chat_and_edits_keep_theirs() {
        let (recorder, bot) = recorder();
        let send = |chat, text| block_on(bot.send_message(SendMessage::new(chat, text))).unwrap();
        assert_eq!(send(5, "a").message_id, 1);
        assert_eq!(send(5, "b").message_id, 2);
        assert_eq!(send(-7, "c").message_id, 1);
        let edited = block_on(bot.edit_message_text(EditMessageText::new(5, 1, "a2")))
            .unwrap()
            .unwrap();
        assert_eq!((edited.message_id, edited.chat.id), (1, 5));
        assert_eq!(send(5, "d").message_id, 3);
        assert_eq!(recorder.texts(), ["a", "b", "c", "a2", "d"]);
        assert_eq!(
            recorder.methods(),
            [
                "sendMessage",
                "sendMessage",
                "sendMessage",
                "editMessageText",
                "sendMessage"
            ]
        );
        assert_eq!(recorder.sent().len(), 5);
        assert_eq!(recorder.take_calls().len(), 5);
        assert!(recorder.calls().is_empty());
    }

    #[test]
    fn a_refused_message_takes_no_id_and_is_not_in_the_texts() {
        let (recorder, bot) = recorder();
        let empty = block_on(bot.send_message(SendMessage::new(5, "")));
        assert_eq!(code(empty), Some(400));
        let sent = block_on(bot.send_message(SendMessage::new(5, "ok"))).unwrap();
        assert_eq!(sent.message_id, 1);
        assert_eq!(recorder.texts(), ["ok"]);
        assert_eq!(recorder.params_of("sendMessage").len(), 2);
        assert!(!recorder.calls()[0].is_ok());
    }

    #[test]
    fn scripts_answer_in_order_the_calls_they_fit() {
        let (recorder, bot) = recorder();
        recorder.answer_next_to("sendMessage", Answer::retry_after(3));
        recorder.answer_next(Answer::server_error());
        recorder.answer_next(Answer::network_failure());
        // getMe skips the sendMessage script and takes the first for any method.
        assert_eq!(code(block_on(bot.get_me())), Some(500));
        let flood = block_on(bot.send_message(SendMessage::new(5, "x"))).unwrap_err();
        assert_eq!(
            flood.to_string(),
            "Bot API sendMessage failed (429): Too Many Requests: retry after 3"
        );
        assert_eq!(code(block_on(bot.get_me())), None);
        assert!(block_on(bot.get_me()).is_ok());

        recorder.answer_every("sendMessage", Answer::blocked());
        for _ in 0..2 {
            let blocked = block_on(bot.send_message(SendMessage::new(5, "x")));
            assert_eq!(code(blocked), Some(403));
        }
        recorder.answer_normally();
        assert!(block_on(bot.send_message(SendMessage::new(5, "x"))).is_ok());
    }

    #[test]
    fn scripted_answers_are_read_as_telegrams_answers_are() {
        let (recorder, bot) = recorder();
        recorder.answer_next(Answer::http(502, "<html>Bad Gateway</html>"));
        let err = block_on(bot.get_me()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bot API getMe failed (502): HTTP 502 with a body that is not JSON"
        );
        recorder.answer_next(Answer::migrated(-1001));
        let err = block_on(bot.send_message(SendMessage::new(-5, "x"))).unwrap_err();
        assert!(
            err.to_string().contains("upgraded to a supergroup"),
            "{err}"
        );
        let message = json!({"message_id": 77, "date": 1, "chat": {"id": 5, "type": "private"}});
        recorder.answer_next(Answer::result(message));
        let sent = block_on(bot.send_message(SendMessage::new(5, "x"))).unwrap();
        assert_eq!(sent.message_id, 77);
        assert_eq!(recorder.username(), "edgegram_bot");
        recorder.set_username("@other_bot");
        let me = block_on(bot.get_me()).unwrap();
        assert_eq!(me.username.as_deref(), Some("other_bot"));
    }

    #[test]
    fn the_last_inline_keyboard_is_read_from_what_was_accepted() {
        let (recorder, bot) = recorder();
        let keyboard = |data: &str| {
            crate::types::ReplyMarkup::inline(vec![vec![
                crate::types::InlineKeyboardButton::callback("1", format!("{data}1")),
                crate::types::InlineKeyboardButton::callback("2", format!("{data}2")),
            ]])
        };
        assert!(recorder.last_callback_data().is_empty());
        let send = |data: &str| SendMessage::new(5, "pick").reply_markup(keyboard(data));
        block_on(bot.send_message(send("a"))).unwrap();
        recorder.answer_next(Answer::blocked());
        block_on(bot.send_message(send("b"))).unwrap_err();
        block_on(bot.send_message(SendMessage::new(5, "no keyboard"))).unwrap();
        assert_eq!(recorder.last_callback_data(), ["a1", "a2"]);
    }
}
