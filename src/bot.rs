//! The Bot API client: a [`BotApi`] transport (fetch on Workers, the test kit's
//! `RecordingBot` in tests) and the typed [`Bot`] handlers use.

#[cfg(any(test, feature = "testing", feature = "dev-bot-api"))]
pub mod stand_in;

use std::rc::Rc;

use futures::future::LocalBoxFuture;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::types::{Message, ReplyMarkup, User};

/// Sends one Bot API call and answers its `result`. On Workers this is a `fetch` to
/// `{TELEGRAM_API_BASE}/bot{token}/{method}`; implementations must never put the token in an
/// error or a log line.
pub trait BotApi {
    /// Calls `method` with JSON `params`; answers Telegram's `result` or an [`Error::BotApi`].
    fn call<'a>(&'a self, method: &'a str, params: Value) -> LocalBoxFuture<'a, Result<Value>>;
}

/// Reads a Bot API answer: `{"ok": true, "result": ...}` or `{"ok": false, "error_code": ..,
/// "description": ..}`. `status` is the HTTP status, used when the body is not JSON.
pub fn parse_response(method: &str, status: u16, body: &[u8]) -> Result<Value> {
    let fail = |code: Option<i64>, description: String| Error::BotApi {
        method: method.to_string(),
        code,
        description,
    };
    let answer: Value = serde_json::from_slice(body).map_err(|_| {
        fail(
            Some(status.into()),
            format!("HTTP {status} with a body that is not JSON"),
        )
    })?;
    if answer["ok"] == Value::Bool(true) {
        return Ok(answer.get("result").cloned().unwrap_or(Value::Null));
    }
    let code = answer["error_code"].as_i64().or(Some(status.into()));
    let description = answer["description"]
        .as_str()
        .unwrap_or("no description")
        .to_string();
    Err(fail(code, description))
}

/// The bot as handlers see it: typed calls for the common methods and [`Bot::call`] for any
/// other. Cheap to clone.
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
}

impl SendMessage {
    /// A plain text message.
    pub fn new(chat_id: i64, text: impl Into<String>) -> Self {
        Self {
            chat_id,
            text: text.into(),
            parse_mode: None,
            reply_markup: None,
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
