//! How a builder's field becomes JSON ([`IntoParam`]), and the chat id type.

use serde_json::Value;

/// A parameter value, turned into the JSON the Bot API takes.
pub trait IntoParam {
    /// `self` as JSON.
    fn into_param(self) -> Value;
}

impl IntoParam for i64 {
    fn into_param(self) -> Value {
        Value::from(self)
    }
}

impl IntoParam for f64 {
    fn into_param(self) -> Value {
        Value::from(self)
    }
}

impl IntoParam for bool {
    fn into_param(self) -> Value {
        Value::Bool(self)
    }
}

impl IntoParam for String {
    fn into_param(self) -> Value {
        Value::String(self)
    }
}

impl<T: IntoParam> IntoParam for Vec<T> {
    fn into_param(self) -> Value {
        Value::Array(self.into_iter().map(IntoParam::into_param).collect())
    }
}

/// A chat: its id, or a channel's or supergroup's `@username`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatId {
    /// A chat id.
    Id(i64),
    /// `@channelusername`.
    Username(String),
}

impl From<i64> for ChatId {
    fn from(id: i64) -> Self {
        ChatId::Id(id)
    }
}

impl From<&str> for ChatId {
    fn from(username: &str) -> Self {
        ChatId::Username(username.to_string())
    }
}

impl From<String> for ChatId {
    fn from(username: String) -> Self {
        ChatId::Username(username)
    }
}

impl IntoParam for ChatId {
    fn into_param(self) -> Value {
        match self {
            ChatId::Id(id) => Value::from(id),
            ChatId::Username(name) => Value::String(name),
        }
    }
}
