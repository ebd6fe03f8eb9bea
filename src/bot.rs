//! The Bot API client: a [`BotApi`] transport (fetch on Workers, the test kit's
//! `RecordingBot` in tests) and the typed [`Bot`] handlers use.

#[cfg(any(test, feature = "testing", feature = "dev-bot-api"))]
pub mod stand_in;

use std::rc::Rc;

use futures::future::LocalBoxFuture;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};

use crate::error::{BotApiErrorKind, Error, Result};
use crate::types::{Message, ReplyMarkup, User};

/// Sends one Bot API call and answers its `result`. On Workers this is a `fetch` to
/// `{TELEGRAM_API_BASE}/bot{token}/{method}`; implementations must never put the token in an
/// error or a log line.
pub trait BotApi {
    /// Calls `method` with JSON `params`; answers Telegram's `result` or an [`Error::BotApi`].
    fn call<'a>(&'a self, method: &'a str, params: Value) -> LocalBoxFuture<'a, Result<Value>>;
}

/// Reads a Bot API answer: `{"ok": true, "result": ...}` or `{"ok": false, "error_code": ..,
/// "description": .., "parameters": {"retry_after": .., "migrate_to_chat_id": ..}}`.
/// `status` is the HTTP status, used when the body is not JSON or has no `error_code`. A
/// failure is an [`Error::BotApi`] whose [`BotApiErrorKind`] says what to do about it.
pub fn parse_response(method: &str, status: u16, body: &[u8]) -> Result<Value> {
    let fail = |code: i64, description: String, parameters: &Value| Error::BotApi {
        method: method.to_string(),
        code: Some(code),
        description,
        kind: BotApiErrorKind::from_answer(code, parameters),
    };
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        let description = format!("HTTP {status} with a body that is not JSON");
        return Err(fail(status.into(), description, &Value::Null));
    };
    if answer["ok"] == Value::Bool(true) {
        return Ok(answer.get("result").cloned().unwrap_or(Value::Null));
    }
    let code = answer["error_code"].as_i64().unwrap_or(status.into());
    let description = answer["description"]
        .as_str()
        .unwrap_or("no description")
        .to_string();
    Err(fail(code, description, &answer["parameters"]))
}

/// Removes the bot token from `text` (an error message, a log line), in every form a URL or
/// a message can hold it: as is (the `bot<token>` path segment), with any or all of its
/// characters percent-encoded (`123%3AAbc`, upper- or lower-case hex, also encoded twice:
/// `%253A`), and its secret part (after the `:`) alone. Each becomes `<token>`; the rest of
/// `text` is kept. An empty token changes nothing.
///
/// ```
/// use edgegram::bot::redact;
///
/// let token = "123456:AAE-secret_part";
/// let error = "fetch https://api.telegram.org/bot123456%3AAAE-secret_part/getMe failed";
/// assert_eq!(redact(error, token), "fetch https://api.telegram.org/bot<token>/getMe failed");
/// ```
pub fn redact(text: &str, token: &str) -> String {
    /// A secret shorter than this is not a real token's (Telegram's have 35 characters), and
    /// on its own would match ordinary words.
    const MIN_SECRET: usize = 8;
    if token.is_empty() {
        return text.to_string();
    }
    let redacted = replace_encoded(text, token.as_bytes());
    match token.split_once(':') {
        Some((_, secret)) if secret.len() >= MIN_SECRET => {
            replace_encoded(&redacted, secret.as_bytes())
        }
        _ => redacted,
    }
}

/// The bot as handlers see it: typed calls for the common methods and [`Bot::call`] for any
/// other, each made at once and awaited. Cheap to clone.
///
/// A handler that needs no answer queues its calls instead ([`Context::send`],
/// [`Context::reply_text`]): they are sent after the update's changes commit, and never for an
/// update that fails or is handled again. A call made here is made at once, holds whatever
/// the host holds for the update meanwhile (a Durable Object's gate), and cannot be taken
/// back if the update then fails: use it only for an answer the handler needs (the id of the
/// message it sends).
///
/// [`Context::send`]: crate::Context::send
/// [`Context::reply_text`]: crate::Context::reply_text
#[derive(Clone)]
pub struct Bot {
    api: Rc<dyn BotApi>,
}

impl Bot {
    /// A bot over `api`.
    pub fn new(api: Rc<dyn BotApi>) -> Self {
        Self { api }
    }

    /// Calls any Bot API method with serializable parameters.
    pub async fn call(&self, method: &str, params: impl Serialize) -> Result<Value> {
        let params = serde_json::to_value(params).map_err(|e| Error::Encode {
            key: method.to_string(),
            message: e.to_string(),
        })?;
        self.api.call(method, params).await
    }

    /// Makes a typed request at once and answers Telegram's `result` as JSON.
    pub async fn request<M: Method>(&self, request: M) -> Result<Value> {
        self.call(M::NAME, request).await
    }

    async fn call_typed<T: DeserializeOwned>(
        &self,
        method: &str,
        params: impl Serialize,
    ) -> Result<T> {
        let result = self.call(method, params).await?;
        serde_json::from_value(result).map_err(|e| Error::BotApi {
            method: method.to_string(),
            code: None,
            description: format!("unexpected result: {e}"),
            kind: BotApiErrorKind::BadAnswer,
        })
    }

    /// `sendMessage`.
    pub async fn send_message(&self, request: SendMessage) -> Result<Message> {
        self.call_typed("sendMessage", request).await
    }

    /// `editMessageText`. Answers the edited message (`None` for inline messages, where
    /// Telegram answers `true`).
    pub async fn edit_message_text(&self, request: EditMessageText) -> Result<Option<Message>> {
        let result = self.call("editMessageText", request).await?;
        Ok(serde_json::from_value(result).ok())
    }

    /// `answerCallbackQuery`.
    pub async fn answer_callback_query(&self, request: AnswerCallbackQuery) -> Result<bool> {
        self.call_typed("answerCallbackQuery", request).await
    }

    /// `getMe`.
    pub async fn get_me(&self) -> Result<User> {
        self.call_typed("getMe", json!({})).await
    }
}

/// `text` with every occurrence of `needle` replaced by `<token>`, each byte of the needle
/// matched as is or percent-encoded ([`match_byte`]).
fn replace_encoded(text: &str, needle: &[u8]) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut at) = (0, 0);
    while at < bytes.len() {
        let end = needle
            .iter()
            .try_fold(at, |pos, &byte| match_byte(bytes, pos, byte))
            // Only whole characters are cut out (always so for an ASCII token).
            .filter(|&end| text.is_char_boundary(at) && text.is_char_boundary(end));
        match end {
            Some(end) if !needle.is_empty() => {
                out.push_str(&text[copied..at]);
                out.push_str("<token>");
                (copied, at) = (end, end);
            }
            _ => at += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Where `byte` ends if it is at `pos` in `text`: as is, or percent-encoded with either case
/// of hex, its `%` itself encoded any number of times (`%3A`, `%253A`, `%25253A`, ...).
fn match_byte(text: &[u8], pos: usize, byte: u8) -> Option<usize> {
    if text.get(pos) == Some(&byte) {
        return Some(pos + 1);
    }
    if text.get(pos) != Some(&b'%') {
        return None;
    }
    let mut hex = pos + 1;
    loop {
        let digits = text.get(hex..hex + 2)?;
        let value = hex_value(digits[0])? << 4 | hex_value(digits[1])?;
        if value == byte {
            return Some(hex + 2);
        }
        if digits != b"25" {
            return None;
        }
        hex += 2;
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|v| v as u8)
}

/// A typed Bot API request: its parameters, and the method they are for. Queue one with
/// [`Context::send`](crate::Context::send) (sent after the update commits) or make it at once
/// with [`Bot::request`].
pub trait Method: Serialize {
    /// The method's name, e.g. `sendMessage`.
    const NAME: &'static str;
}

impl Method for SendMessage {
    const NAME: &'static str = "sendMessage";
}

impl Method for EditMessageText {
    const NAME: &'static str = "editMessageText";
}

impl Method for AnswerCallbackQuery {
    const NAME: &'static str = "answerCallbackQuery";
}

/// Parameters of `sendMessage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendMessage {
    /// Target chat.
    pub chat_id: i64,
    /// Text, 1-4096 characters.
    pub text: String,
    /// `"HTML"`, `"MarkdownV2"`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_mode: Option<String>,
    /// A keyboard or its removal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_markup: Option<ReplyMarkup>,
    /// The forum topic (or private-chat thread) to send into.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_thread_id: Option<i64>,
    /// The business connection to send through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_connection_id: Option<String>,
}

impl SendMessage {
    /// A plain text message.
    pub fn new(chat_id: i64, text: impl Into<String>) -> Self {
        Self {
            chat_id,
            text: text.into(),
            parse_mode: None,
            reply_markup: None,
            message_thread_id: None,
            business_connection_id: None,
        }
    }

    /// With a keyboard or its removal.
    pub fn reply_markup(mut self, markup: ReplyMarkup) -> Self {
        self.reply_markup = Some(markup);
        self
    }

    /// With a parse mode.
    pub fn parse_mode(mut self, mode: impl Into<String>) -> Self {
        self.parse_mode = Some(mode.into());
        self
    }
}

/// Parameters of `editMessageText`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EditMessageText {
    /// Chat of the message.
    pub chat_id: i64,
    /// The message to edit.
    pub message_id: i64,
    /// New text.
    pub text: String,
    /// New inline keyboard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_markup: Option<ReplyMarkup>,
}

impl EditMessageText {
    /// Replaces the text of a message.
    pub fn new(chat_id: i64, message_id: i64, text: impl Into<String>) -> Self {
        Self {
            chat_id,
            message_id,
            text: text.into(),
            reply_markup: None,
        }
    }

    /// With a new inline keyboard.
    pub fn reply_markup(mut self, markup: ReplyMarkup) -> Self {
        self.reply_markup = Some(markup);
        self
    }
}

/// Parameters of `answerCallbackQuery`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerCallbackQuery {
    /// The query to answer.
    pub callback_query_id: String,
    /// A notification to show, 0-200 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl AnswerCallbackQuery {
    /// An answer without text.
    pub fn new(callback_query_id: impl Into<String>) -> Self {
        Self {
            callback_query_id: callback_query_id.into(),
            text: None,
        }
    }

    /// With a notification text.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The kind, code and transience of the error `parse_response` makes of an answer.
    fn classify(status: u16, body: &str) -> (BotApiErrorKind, Option<i64>, bool) {
        match parse_response("sendMessage", status, body.as_bytes()) {
            Err(Error::BotApi {
                method, code, kind, ..
            }) => {
                assert_eq!(method, "sendMessage");
                (kind, code, kind.is_transient())
            }
            other => panic!("{status} {body}: expected a Bot API error, got {other:?}"),
        }
    }

    #[test]
    fn redaction_removes_every_form_of_the_token_and_keeps_the_rest() {
        let token = "123456:AAE-x_Y9secret";
        let cases = [
            (
                "url /bot123456:AAE-x_Y9secret/getMe",
                "url /bot<token>/getMe",
            ),
            ("/bot123456%3aAAE-x_Y9secret/", "/bot<token>/"),
            ("é %31%32%33456%3AAAE-x_Y9secre%74 😀", "é <token> 😀"),
            ("twice: 123456%253AAAE-x_Y9secret.", "twice: <token>."),
            (
                "the secret alone: AAE-x_Y9secret",
                "the secret alone: <token>",
            ),
            ("bot 123456 is public", "bot 123456 is public"),
            ("%3A %25 % %zz 100%", "%3A %25 % %zz 100%"),
        ];
        for (text, expected) in cases {
            assert_eq!(redact(text, token), expected, "{text}");
        }
        assert_eq!(redact("a 1:ab b", "1:ab"), "a <token> b");
        // A secret too short to be a real one is not redacted alone: it would eat words.
        assert_eq!(redact("ab", "1:ab"), "ab");
        assert_eq!(redact("nothing to hide", ""), "nothing to hide");
    }

    #[test]
    fn bot_api_errors_say_whether_to_retry_wait_or_give_up() {
        use BotApiErrorKind::*;
        let flood = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5","parameters":{"retry_after":5}}"#;
        assert_eq!(classify(429, flood), (RetryAfter(5), Some(429), true));
        let blocked = r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#;
        assert_eq!(classify(403, blocked), (Forbidden, Some(403), false));
        let migrated = r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234567890}}"#;
        assert_eq!(
            classify(400, migrated),
            (ChatMigrated(-1_001_234_567_890), Some(400), false)
        );
        let gateway = "<html><body>502 Bad Gateway</body></html>";
        assert_eq!(classify(502, gateway), (Server, Some(502), true));
        let not_found =
            r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#;
        assert_eq!(classify(400, not_found), (BadRequest, Some(400), false));
        let refusal =
            |code: u16| format!(r#"{{"ok":false,"error_code":{code},"description":"refused"}}"#);
        assert_eq!(
            classify(401, &refusal(401)),
            (Unauthorized, Some(401), false)
        );
        assert_eq!(classify(404, &refusal(404)), (NotFound, Some(404), false));
        assert_eq!(
            classify(409, &refusal(409)),
            (OtherClient, Some(409), false)
        );
        assert_eq!(classify(500, &refusal(500)), (Server, Some(500), true));
        // A proxy's 429 without Telegram's parameters: retry, no wait given.
        assert_eq!(classify(429, "slow down"), (RetryAfter(0), Some(429), true));
        // A 200 that is not a Bot API answer: the call may have taken effect.
        assert_eq!(classify(200, "<html>"), (BadAnswer, Some(200), false));

        let Err(error) = parse_response("sendMessage", 429, flood.as_bytes()) else {
            panic!("a flood answer is an error");
        };
        assert_eq!(error.bot_api_kind(), Some(RetryAfter(5)));
        assert_eq!(RetryAfter(5).retry_after(), Some(Duration::from_secs(5)));
        assert_eq!(Forbidden.retry_after(), None);
        assert_eq!(
            error.to_string(),
            "Bot API sendMessage failed (429): Too Many Requests: retry after 5"
        );
        assert!(Network.is_transient());
        assert_eq!(Error::Missing("chat").bot_api_kind(), None);
    }

    #[test]
    fn responses_are_read_with_their_error_code() {
        assert_eq!(
            parse_response("sendMessage", 200, br#"{"ok":true,"result":{"a":1}}"#),
            Ok(json!({"a": 1}))
        );
        let err = parse_response(
            "sendMessage",
            400,
            br#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bot API sendMessage failed (400): Bad Request: chat not found"
        );
        let err = parse_response("getMe", 502, b"<html>bad gateway</html>").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bot API getMe failed (502): HTTP 502 with a body that is not JSON"
        );
    }
}
