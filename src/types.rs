//! The Telegram Bot API types edgegram reads and writes.
//!
//! Only the fields the framework and typical handlers need are typed. Everything else in an
//! update is kept: [`Update::raw`] holds the update exactly as received, so a handler can read
//! a field that edgegram does not model. Unknown fields and unknown update types never fail
//! parsing; they are simply not typed.
//!
//! Why not a complete types crate: see the README ("Telegram types"). In short, the one we
//! measured adds about 410 KiB gzip to the `.wasm`, more than the rest of a bot together.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One incoming update. Exactly one of the optional fields is set for the update types
/// edgegram models; for any other type all of them are `None` and [`Update::raw`] holds it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Update {
    /// The update's unique identifier; increases, may skip.
    pub update_id: i64,
    /// A new incoming message.
    pub message: Option<Message>,
    /// A new version of a message that was edited.
    pub edited_message: Option<Message>,
    /// A new channel post.
    pub channel_post: Option<Message>,
    /// A new version of an edited channel post.
    pub edited_channel_post: Option<Message>,
    /// A press on an inline keyboard button.
    pub callback_query: Option<CallbackQuery>,
    /// An inline query.
    pub inline_query: Option<InlineQuery>,
    /// The bot's own membership in a chat changed.
    pub my_chat_member: Option<ChatMemberUpdated>,
    /// A member's status in a chat changed.
    pub chat_member: Option<ChatMemberUpdated>,
    /// A request to join a chat.
    pub chat_join_request: Option<ChatMemberUpdated>,
    /// The update exactly as received (including what is not typed above).
    #[serde(skip)]
    pub raw: Value,
}

impl Update {
    /// Parses an update from its JSON value, keeping the value in [`Update::raw`].
    pub fn from_value(raw: Value) -> Result<Self, serde_json::Error> {
        let mut update = Update::deserialize(&raw)?;
        update.raw = raw;
        Ok(update)
    }

    /// The message of a message-like update (message, edited message, channel post, edited
    /// channel post), as PTB's `Update.effective_message` minus callback queries' messages.
    pub fn message_like(&self) -> Option<&Message> {
        self.message
            .as_ref()
            .or(self.edited_message.as_ref())
            .or(self.channel_post.as_ref())
            .or(self.edited_channel_post.as_ref())
    }

    /// The message this update is about, including the message a pressed button belongs to.
    pub fn effective_message(&self) -> Option<&Message> {
        self.message_like().or_else(|| {
            self.callback_query
                .as_ref()
                .and_then(|q| q.message.as_ref())
        })
    }

    /// The chat this update belongs to, as PTB's `Update.effective_chat`.
    pub fn effective_chat(&self) -> Option<&Chat> {
        if let Some(message) = self.effective_message() {
            return Some(&message.chat);
        }
        self.my_chat_member
            .as_ref()
            .or(self.chat_member.as_ref())
            .or(self.chat_join_request.as_ref())
            .map(|m| &m.chat)
    }

    /// The user who caused this update, as PTB's `Update.effective_user`.
    pub fn effective_user(&self) -> Option<&User> {
        if let Some(query) = &self.callback_query {
            return Some(&query.from);
        }
        if let Some(query) = &self.inline_query {
            return Some(&query.from);
        }
        if let Some(message) = self.message_like() {
            return message.from.as_ref();
        }
        self.my_chat_member
            .as_ref()
            .or(self.chat_member.as_ref())
            .or(self.chat_join_request.as_ref())
            .map(|m| &m.from)
    }

    /// This update's type, read from [`Update::raw`] (so also for types edgegram does not
    /// model, as [`UpdateKind::Other`], and for a known type whose content did not parse).
    /// `None` for a body with no type at all.
    pub fn kind(&self) -> Option<UpdateKind> {
        let name = self
            .raw
            .as_object()?
            .keys()
            .find(|k| k.as_str() != "update_id")?;
        Some(UpdateKind::from_name(name))
    }
}

/// The type of an update: which field of the update's JSON is set. Telegram adds types over
/// time; those edgegram does not model are [`UpdateKind::Other`], by name. Match on
/// [`UpdateKind::as_str`] for those, so that the match keeps working when edgegram models
/// one of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UpdateKind {
    /// `message`: a new incoming message.
    Message,
    /// `edited_message`: a new version of a message that was edited.
    EditedMessage,
    /// `channel_post`: a new channel post.
    ChannelPost,
    /// `edited_channel_post`: a new version of an edited channel post.
    EditedChannelPost,
    /// `callback_query`: a press on an inline keyboard button.
    CallbackQuery,
    /// `inline_query`: an inline query.
    InlineQuery,
    /// `my_chat_member`: the bot's own membership in a chat changed.
    MyChatMember,
    /// `chat_member`: a member's status in a chat changed.
    ChatMember,
    /// `chat_join_request`: a request to join a chat.
    ChatJoinRequest,
    /// A type edgegram does not model (`"poll"`, `"message_reaction"`, ...), by the name
    /// Telegram gives it; its content is in [`Update::raw`].
    Other(String),
}

impl UpdateKind {
    /// The kinds of update that carry a message: what [`Update::message_like`] reads,
    /// [`MessageHandler`](crate::MessageHandler) matches and [`filters`](crate::filters)
    /// look at.
    pub const MESSAGE_LIKE: &'static [UpdateKind] = &[
        UpdateKind::Message,
        UpdateKind::EditedMessage,
        UpdateKind::ChannelPost,
        UpdateKind::EditedChannelPost,
    ];

    /// Every kind edgegram models, in the order of [`Update`]'s fields.
    const MODELLED: [UpdateKind; 9] = [
        UpdateKind::Message,
        UpdateKind::EditedMessage,
        UpdateKind::ChannelPost,
        UpdateKind::EditedChannelPost,
        UpdateKind::CallbackQuery,
        UpdateKind::InlineQuery,
        UpdateKind::MyChatMember,
        UpdateKind::ChatMember,
        UpdateKind::ChatJoinRequest,
    ];

    /// The kind Telegram names `name` (the key of the update's JSON).
    pub fn from_name(name: &str) -> Self {
        Self::MODELLED
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .unwrap_or_else(|| UpdateKind::Other(name.to_string()))
    }

    /// The name Telegram gives this kind, e.g. `"callback_query"`.
    pub fn as_str(&self) -> &str {
        match self {
            UpdateKind::Message => "message",
            UpdateKind::EditedMessage => "edited_message",
            UpdateKind::ChannelPost => "channel_post",
            UpdateKind::EditedChannelPost => "edited_channel_post",
            UpdateKind::CallbackQuery => "callback_query",
            UpdateKind::InlineQuery => "inline_query",
            UpdateKind::MyChatMember => "my_chat_member",
            UpdateKind::ChatMember => "chat_member",
            UpdateKind::ChatJoinRequest => "chat_join_request",
            UpdateKind::Other(name) => name,
        }
    }

    /// Whether updates of this kind carry a message ([`UpdateKind::MESSAGE_LIKE`]).
    pub fn is_message_like(&self) -> bool {
        Self::MESSAGE_LIKE.contains(self)
    }
}

impl std::fmt::Display for UpdateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Telegram user or bot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Unique identifier.
    pub id: i64,
    /// Whether this is a bot.
    #[serde(default)]
    pub is_bot: bool,
    /// First name.
    #[serde(default)]
    pub first_name: String,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Username, without the `@`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// The type of a chat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatType {
    /// A private chat with one user.
    #[default]
    Private,
    /// A basic group.
    Group,
    /// A supergroup.
    Supergroup,
    /// A channel.
    Channel,
    /// A type Telegram added after this version of edgegram.
    #[serde(other)]
    Unknown,
}

/// A chat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    /// Unique identifier (negative for groups and channels).
    pub id: i64,
    /// The chat's type.
    #[serde(rename = "type", default)]
    pub kind: ChatType,
    /// Title, for groups and channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Username, for private chats and public groups and channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// A special part of a message's text (command, mention, link, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEntity {
    /// The entity's type, e.g. `"bot_command"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Offset in UTF-16 code units.
    pub offset: usize,
    /// Length in UTF-16 code units.
    pub length: usize,
}

/// A message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Identifier inside the chat.
    pub message_id: i64,
    /// Unix time it was sent.
    #[serde(default)]
    pub date: i64,
    /// The chat it belongs to.
    pub chat: Chat,
    /// Sender; empty for messages sent to channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<User>,
    /// Text of a text message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Entities of the text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<MessageEntity>,
    /// Set when a group became a supergroup with this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate_to_chat_id: Option<i64>,
    /// Set when a supergroup was created from the group with this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate_from_chat_id: Option<i64>,
}

impl Message {
    /// The command this message starts with, if its first entity is a `bot_command` at offset
    /// 0: the name without `/` (as sent, not lowercased) and the `@username` suffix if any.
    pub fn command(&self) -> Option<(&str, Option<&str>)> {
        let text = self.text.as_deref()?;
        let entity = self
            .entities
            .iter()
            .find(|e| e.offset == 0 && e.kind == "bot_command")?;
        let end = utf16_to_byte_index(text, entity.length)?;
        let command = text.get(..end)?.strip_prefix('/')?;
        Some(match command.split_once('@') {
            Some((name, username)) => (name, Some(username)),
            None => (command, None),
        })
    }
}

/// The byte index in `text` of the UTF-16 code unit offset `units`, or `None` if it is past
/// the end or inside a character.
fn utf16_to_byte_index(text: &str, units: usize) -> Option<usize> {
    let mut seen = 0;
    for (index, ch) in text.char_indices() {
        if seen == units {
            return Some(index);
        }
        seen += ch.len_utf16();
        if seen > units {
            return None;
        }
    }
    (seen == units).then_some(text.len())
}

/// A press on an inline keyboard button.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackQuery {
    /// Unique identifier, to answer it.
    pub id: String,
    /// Who pressed.
    pub from: User,
    /// The message with the keyboard, if the bot sent it and it is not too old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// Set instead of `message` for inline-mode messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_message_id: Option<String>,
    /// Global identifier of the chat the message was sent to.
    #[serde(default)]
    pub chat_instance: String,
    /// The button's callback data as sent (up to 64 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// An inline query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineQuery {
    /// Unique identifier.
    pub id: String,
    /// Who sent it.
    pub from: User,
    /// The query text.
    #[serde(default)]
    pub query: String,
}

/// The part of `ChatMemberUpdated` and `ChatJoinRequest` that edgegram needs: chat and user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMemberUpdated {
    /// The chat.
    pub chat: Chat,
    /// The user who caused the change.
    pub from: User,
}

/// A button of an inline keyboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InlineKeyboardButton {
    /// The label.
    pub text: String,
    /// Callback data sent back on a press (1-64 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_data: Option<String>,
    /// A URL to open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl InlineKeyboardButton {
    /// A button that sends `data` back as callback data.
    pub fn callback(text: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            callback_data: Some(data.into()),
            url: None,
        }
    }
}

/// A button of a reply keyboard; pressing it sends its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyboardButton {
    /// The label, sent as a message when pressed.
    pub text: String,
}

/// The markup that may accompany a sent message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReplyMarkup {
    /// Buttons under the message.
    InlineKeyboard {
        /// Rows of buttons.
        inline_keyboard: Vec<Vec<InlineKeyboardButton>>,
    },
    /// A custom keyboard replacing the user's.
    ReplyKeyboard {
        /// Rows of buttons.
        keyboard: Vec<Vec<KeyboardButton>>,
        /// Whether the client may shrink the keyboard.
        #[serde(default)]
        resize_keyboard: bool,
        /// Whether the keyboard hides after one use.
        #[serde(default)]
        one_time_keyboard: bool,
    },
    /// Removes a custom keyboard.
    RemoveKeyboard {
        /// Always `true`.
        remove_keyboard: bool,
    },
}

impl ReplyMarkup {
    /// An inline keyboard from rows of buttons.
    pub fn inline(rows: Vec<Vec<InlineKeyboardButton>>) -> Self {
        Self::InlineKeyboard {
            inline_keyboard: rows,
        }
    }

    /// A one-time reply keyboard from rows of labels.
    pub fn keyboard<R, S>(rows: R) -> Self
    where
        R: IntoIterator,
        R::Item: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::ReplyKeyboard {
            keyboard: rows
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|text| KeyboardButton { text: text.into() })
                        .collect()
                })
                .collect(),
            resize_keyboard: true,
            one_time_keyboard: true,
        }
    }

    /// Removes the reply keyboard.
    pub fn remove() -> Self {
        Self::RemoveKeyboard {
            remove_keyboard: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text_message(text: &str, command_len: Option<usize>) -> Message {
        Message {
            text: Some(text.into()),
            entities: command_len
                .map(|length| MessageEntity {
                    kind: "bot_command".into(),
                    offset: 0,
                    length,
                })
                .into_iter()
                .collect(),
            ..Message::default()
        }
    }

    #[test]
    fn command_is_read_from_the_entity() {
        assert_eq!(
            text_message("/count", Some(6)).command(),
            Some(("count", None))
        );
        assert_eq!(
            text_message("/count@edge_bot now", Some(15)).command(),
            Some(("count", Some("edge_bot")))
        );
        assert_eq!(text_message("/count", None).command(), None);
        assert_eq!(text_message("count", Some(5)).command(), None);
        // Length past the text or inside a character is rejected, not a panic.
        assert_eq!(text_message("/c", Some(9)).command(), None);
        assert_eq!(text_message("/é😀", Some(3)).command(), None);
        assert_eq!(text_message("/é😀", Some(4)).command(), Some(("é😀", None)));
    }

    #[test]
    fn unknown_update_types_and_fields_parse() {
        let raw = json!({
            "update_id": 7,
            "message_reaction": {"chat": {"id": 1, "type": "private"}, "new": [1, 2]},
        });
        let update = Update::from_value(raw.clone()).unwrap();
        assert_eq!(update.update_id, 7);
        assert!(update.message.is_none() && update.effective_chat().is_none());
        assert_eq!(
            update.kind(),
            Some(UpdateKind::Other("message_reaction".into()))
        );
        assert_eq!(update.raw, raw);

        let update = Update::from_value(json!({
            "update_id": 8,
            "message": {"message_id": 1, "date": 0, "chat": {"id": -5, "type": "forum_2030"},
                        "from": {"id": 9, "is_bot": false, "first_name": "A", "new_field": true},
                        "text": "hi", "some_future_field": {"x": 1}},
        }))
        .unwrap();
        assert_eq!(update.effective_chat().unwrap().kind, ChatType::Unknown);
        assert_eq!(update.effective_user().unwrap().id, 9);
    }

    #[test]
    fn update_kinds_are_named_as_telegram_names_them() {
        for kind in UpdateKind::MODELLED {
            assert_eq!(UpdateKind::from_name(kind.as_str()), kind);
        }
        assert_eq!(UpdateKind::from_name("poll").as_str(), "poll");
        assert_eq!(
            UpdateKind::EditedChannelPost.to_string(),
            "edited_channel_post"
        );
        let update = Update::from_value(json!({
            "update_id": 1,
            "edited_message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}},
        }))
        .unwrap();
        assert_eq!(update.kind(), Some(UpdateKind::EditedMessage));
        assert!(update.kind().is_some_and(|k| k.is_message_like()));
        assert!(!UpdateKind::CallbackQuery.is_message_like());
        assert_eq!(Update::default().kind(), None);
    }

    #[test]
    fn effective_user_of_a_button_press_is_the_presser() {
        let update = Update::from_value(json!({
            "update_id": 1,
            "callback_query": {"id": "q", "from": {"id": 2, "first_name": "B"},
                "chat_instance": "c", "data": "x",
                "message": {"message_id": 3, "date": 0, "chat": {"id": -7, "type": "group"},
                            "from": {"id": 99, "is_bot": true, "first_name": "bot"}}},
        }))
        .unwrap();
        assert_eq!(update.effective_user().unwrap().id, 2);
        assert_eq!(update.effective_chat().unwrap().id, -7);
    }
}
