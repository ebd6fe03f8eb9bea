//! Where a reply goes ([`ReplyTarget`]), and the update-level helpers of the generated
//! [`Update`] view.

use serde_json::{Map, Value};

use super::{Chat, Message, Update, User};

/// Where a reply to an update goes: its chat, and the forum topic and business connection of
/// its message, so that a reply in a topic lands in that topic (not in General) and a reply to
/// a business message goes out through the business connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTarget {
    /// The chat.
    pub chat_id: i64,
    /// The forum topic (or private-chat thread) of the message answered, if any.
    pub message_thread_id: Option<i64>,
    /// The business connection of the message answered, if any.
    pub business_connection_id: Option<String>,
}

impl ReplyTarget {
    /// The target of a reply to `message`: its chat; its topic when it is in one (a forum
    /// topic message, or a message of a private chat's thread); its business connection.
    pub fn of(message: Message<'_>) -> Self {
        let in_topic =
            message.is_topic_message() == Some(true) || message.chat().type_() == "private";
        ReplyTarget {
            chat_id: message.chat().id(),
            message_thread_id: message.message_thread_id().filter(|_| in_topic),
            business_connection_id: message.business_connection_id().map(str::to_string),
        }
    }

    /// Only a chat.
    pub fn chat(chat_id: i64) -> Self {
        ReplyTarget {
            chat_id,
            message_thread_id: None,
            business_connection_id: None,
        }
    }

    /// Sets the topic and business connection in a method's parameters (the chat is set by
    /// the method's `new`).
    pub(crate) fn fill(&self, params: &mut Map<String, Value>) {
        if let Some(thread) = self.message_thread_id {
            params.insert("message_thread_id".into(), Value::from(thread));
        }
        if let Some(connection) = &self.business_connection_id {
            params.insert(
                "business_connection_id".into(),
                Value::String(connection.clone()),
            );
        }
    }
}

impl<'a> Update<'a> {
    /// The message of the update, as PTB's `Update.effective_message`: of a message, an edit,
    /// a channel post, a business or guest message, or the message of a pressed button.
    pub fn effective_message(&self) -> Option<Message<'a>> {
        self.message()
            .or_else(|| self.edited_message())
            .or_else(|| self.channel_post())
            .or_else(|| self.edited_channel_post())
            .or_else(|| self.business_message())
            .or_else(|| self.edited_business_message())
            .or_else(|| self.guest_message())
            .or_else(|| {
                let message = self.callback_query()?.message()?;
                // An inaccessible message has date 0 and no content to read.
                (message.raw().get("date").and_then(Value::as_i64) != Some(0))
                    .then(|| message.as_message())
            })
    }

    /// The chat of the update's message, if it has one.
    pub fn effective_chat(&self) -> Option<Chat<'a>> {
        self.effective_message().map(|m| m.chat())
    }

    /// The sender of the update's message, or the user who pressed a button.
    pub fn effective_user(&self) -> Option<User<'a>> {
        if let Some(query) = self.callback_query() {
            return Some(query.from());
        }
        self.effective_message()?.from()
    }
}
