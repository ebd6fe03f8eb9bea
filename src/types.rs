//! The Telegram Bot API types edgegram reads and writes.
//!
//! Only the fields the framework and typical handlers need are typed. Everything else in an
//! update is kept: [`Update::raw`] holds the update exactly as received, so a handler can read
//! a field that edgegram does not model. Unknown fields and unknown update types never fail
//! parsing; they are simply not typed.
//!
//! The whole Bot API is typed in [`crate::api`] (generated views over [`Update::raw`]); these
//! owned types are what the framework itself reads. Why not a complete serde types crate: see
//! the README ("The Bot API, typed"): the one we measured adds 341 KiB gzip to a `.wasm`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One incoming update. Exactly one of the optional fields is set for the update types
/// edgegram models (all of Bot API 10.1's but `poll`, which has neither chat nor user); for
/// any other type all of them are `None` and [`Update::raw`] holds it.
///
/// Kinds that handlers rarely read are typed only as far as edgegram needs them to find the
/// update's chat and user ([`Sender`], [`ChatEvent`], [`UserEvent`]); read the rest from
/// [`Update::raw`].
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
    /// The bot was connected to or disconnected from a business account, or the connection
    /// changed.
    pub business_connection: Option<UserEvent>,
    /// A new message in a chat of a connected business account.
    pub business_message: Option<Message>,
    /// A new version of a message in a chat of a connected business account.
    pub edited_business_message: Option<Message>,
    /// Messages were deleted in a chat of a connected business account.
    pub deleted_business_messages: Option<ChatEvent>,
    /// A new guest message: the bot was called into a chat it is not a member of.
    pub guest_message: Option<Message>,
    /// A user changed their reaction to a message.
    pub message_reaction: Option<MessageReactionUpdated>,
    /// The anonymous reactions to a message changed.
    pub message_reaction_count: Option<ChatEvent>,
    /// A user chose a result of an inline query and sent it to their chat partner.
    pub chosen_inline_result: Option<Sender>,
    /// A shipping query (invoices with flexible price).
    pub shipping_query: Option<Sender>,
    /// A pre-checkout query: the user is about to pay.
    pub pre_checkout_query: Option<Sender>,
    /// A user purchased paid media with a payload the bot sent.
    pub purchased_paid_media: Option<Sender>,
    /// A user changed their answer in a poll the bot sent.
    pub poll_answer: Option<UserEvent>,
    /// A chat was boosted, or a boost changed.
    pub chat_boost: Option<ChatEvent>,
    /// A boost was removed from a chat.
    pub removed_chat_boost: Option<ChatEvent>,
    /// A bot managed by this bot was created, or its token or owner changed.
    pub managed_bot: Option<UserEvent>,
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
    /// channel post): what [`MessageHandler`](crate::MessageHandler), commands and
    /// [`filters`](crate::filters) read. Business and guest messages are not message-like
    /// (handle them by kind); [`Update::effective_message`] gives them too.
    pub fn message_like(&self) -> Option<&Message> {
        self.message
            .as_ref()
            .or(self.edited_message.as_ref())
            .or(self.channel_post.as_ref())
            .or(self.edited_channel_post.as_ref())
    }

    /// The message this update is about, as PTB's `Update.effective_message`: a message-like
    /// update's, a business or guest message, or the message a pressed button belongs to.
    pub fn effective_message(&self) -> Option<&Message> {
        self.message_like()
            .or(self.business_message.as_ref())
            .or(self.edited_business_message.as_ref())
            .or(self.guest_message.as_ref())
            .or_else(|| self.callback_query.as_ref()?.message.as_ref())
    }

    /// The chat this update belongs to, as PTB's `Update.effective_chat`. `None` for the
    /// kinds that have no chat: inline queries and their chosen results, presses on buttons
    /// of inline-mode messages, shipping and pre-checkout queries, paid media purchases,
    /// polls and poll answers, business connections, managed bots.
    pub fn effective_chat(&self) -> Option<&Chat> {
        if let Some(message) = self.effective_message() {
            return Some(&message.chat);
        }
        if let Some(reaction) = &self.message_reaction {
            return Some(&reaction.chat);
        }
        self.my_chat_member
            .as_ref()
            .or(self.chat_member.as_ref())
            .or(self.chat_join_request.as_ref())
            .map(|m| &m.chat)
            .or_else(|| {
                self.deleted_business_messages
                    .as_ref()
                    .or(self.message_reaction_count.as_ref())
                    .or(self.chat_boost.as_ref())
                    .or(self.removed_chat_boost.as_ref())
                    .map(|event| &event.chat)
            })
    }

    /// The user who caused this update, as PTB's `Update.effective_user`. `None` for the
    /// kinds that have no user (polls, anonymous reactions and votes, reaction counts, chat
    /// boosts, deleted business messages) and for messages without a sender (channel posts).
    pub fn effective_user(&self) -> Option<&User> {
        if let Some(message) = self
            .message_like()
            .or(self.business_message.as_ref())
            .or(self.edited_business_message.as_ref())
            .or(self.guest_message.as_ref())
        {
            return message.from.as_ref();
        }
        if let Some(query) = &self.callback_query {
            return Some(&query.from);
        }
        if let Some(query) = &self.inline_query {
            return Some(&query.from);
        }
        if let Some(member) = self
            .my_chat_member
            .as_ref()
            .or(self.chat_member.as_ref())
            .or(self.chat_join_request.as_ref())
        {
            return Some(&member.from);
        }
        if let Some(sender) = self
            .chosen_inline_result
            .as_ref()
            .or(self.shipping_query.as_ref())
            .or(self.pre_checkout_query.as_ref())
            .or(self.purchased_paid_media.as_ref())
        {
            return Some(&sender.from);
        }
        if let Some(reaction) = &self.message_reaction {
            return reaction.user.as_ref();
        }
        self.poll_answer
            .as_ref()
            .or(self.business_connection.as_ref())
            .or(self.managed_bot.as_ref())
            .and_then(|event| event.user.as_ref())
    }

    /// The whole update, typed: a view of [`Update::raw`] with an accessor for every field of
    /// Bot API 10.1 ([`crate::api`]), read when called.
    pub fn view(&self) -> crate::api::Update<'_> {
        crate::api::Update(&self.raw)
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
    /// `business_connection`: a business account connected or disconnected the bot.
    BusinessConnection,
    /// `business_message`: a new message in a connected business account's chat.
    BusinessMessage,
    /// `edited_business_message`: an edited message in a connected business account's chat.
    EditedBusinessMessage,
    /// `deleted_business_messages`: messages deleted in a connected business account's chat.
    DeletedBusinessMessages,
    /// `guest_message`: a message calling the bot into a chat it is not a member of.
    GuestMessage,
    /// `message_reaction`: a user changed their reaction to a message.
    MessageReaction,
    /// `message_reaction_count`: the anonymous reactions to a message changed.
    MessageReactionCount,
    /// `chosen_inline_result`: a user chose a result of an inline query.
    ChosenInlineResult,
    /// `shipping_query`: a shipping query.
    ShippingQuery,
    /// `pre_checkout_query`: a pre-checkout query.
    PreCheckoutQuery,
    /// `purchased_paid_media`: a user purchased paid media.
    PurchasedPaidMedia,
    /// `poll`: a new state of a poll (only in [`Update::raw`]: it has no chat and no user).
    Poll,
    /// `poll_answer`: a user changed their answer in a poll.
    PollAnswer,
    /// `chat_boost`: a chat was boosted.
    ChatBoost,
    /// `removed_chat_boost`: a boost was removed from a chat.
    RemovedChatBoost,
    /// `managed_bot`: a bot managed by this bot was created or changed.
    ManagedBot,
    /// A type edgegram does not model (one Telegram added after Bot API 10.1), by the name
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

    /// Every kind edgegram models: every update type of Bot API 10.1.
    const MODELLED: [UpdateKind; 25] = [
        UpdateKind::Message,
        UpdateKind::EditedMessage,
        UpdateKind::ChannelPost,
        UpdateKind::EditedChannelPost,
        UpdateKind::CallbackQuery,
        UpdateKind::InlineQuery,
        UpdateKind::MyChatMember,
        UpdateKind::ChatMember,
        UpdateKind::ChatJoinRequest,
        UpdateKind::BusinessConnection,
        UpdateKind::BusinessMessage,
        UpdateKind::EditedBusinessMessage,
        UpdateKind::DeletedBusinessMessages,
        UpdateKind::GuestMessage,
        UpdateKind::MessageReaction,
        UpdateKind::MessageReactionCount,
        UpdateKind::ChosenInlineResult,
        UpdateKind::ShippingQuery,
        UpdateKind::PreCheckoutQuery,
        UpdateKind::PurchasedPaidMedia,
        UpdateKind::Poll,
        UpdateKind::PollAnswer,
        UpdateKind::ChatBoost,
        UpdateKind::RemovedChatBoost,
        UpdateKind::ManagedBot,
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
            UpdateKind::BusinessConnection => "business_connection",
            UpdateKind::BusinessMessage => "business_message",
            UpdateKind::EditedBusinessMessage => "edited_business_message",
            UpdateKind::DeletedBusinessMessages => "deleted_business_messages",
            UpdateKind::GuestMessage => "guest_message",
            UpdateKind::MessageReaction => "message_reaction",
            UpdateKind::MessageReactionCount => "message_reaction_count",
            UpdateKind::ChosenInlineResult => "chosen_inline_result",
            UpdateKind::ShippingQuery => "shipping_query",
            UpdateKind::PreCheckoutQuery => "pre_checkout_query",
            UpdateKind::PurchasedPaidMedia => "purchased_paid_media",
            UpdateKind::Poll => "poll",
            UpdateKind::PollAnswer => "poll_answer",
            UpdateKind::ChatBoost => "chat_boost",
            UpdateKind::RemovedChatBoost => "removed_chat_boost",
            UpdateKind::ManagedBot => "managed_bot",
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

/// Who sent an update that has a sender and no chat: a chosen inline result, a shipping or
/// pre-checkout query, a paid media purchase. edgegram reads only the sender (to load their
/// user_data); the query's id, payload and the rest are in [`Update::raw`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The user who sent it.
    pub from: User,
}

/// The chat of an update that is about a chat and names no user: deleted business
/// messages, anonymous reaction counts, chat boosts added or removed (the booster is not the
/// update's user, as in PTB). The rest is in [`Update::raw`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatEvent {
    /// The chat.
    pub chat: Chat,
}

/// The user of an update that has no chat: a poll answer (no user when the vote is
/// anonymous), a business connection (the business account's user), a managed bot (its
/// owner). The rest is in [`Update::raw`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEvent {
    /// The user; absent for an anonymous vote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
}

/// The part of `MessageReactionUpdated` that edgegram needs: chat and user. The reactions
/// are in [`Update::raw`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageReactionUpdated {
    /// The chat of the message reacted to.
    pub chat: Chat,
    /// Who reacted; absent when they reacted anonymously (on behalf of a chat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
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
        // A type Telegram may add after Bot API 10.1: its chat is not typed, so not found.
        let raw = json!({
            "update_id": 7,
            "story_reaction": {"chat": {"id": 1, "type": "private"}, "new": [1, 2]},
        });
        let update = Update::from_value(raw.clone()).unwrap();
        assert_eq!(update.update_id, 7);
        assert!(update.message.is_none() && update.effective_chat().is_none());
        assert_eq!(
            update.kind(),
            Some(UpdateKind::Other("story_reaction".into()))
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

    /// One update of every kind Telegram sends (Bot API 10.1), with what python-telegram-bot
    /// 22.8's `Update.effective_chat`, `effective_user` and `effective_message` give for it:
    /// `[kind, content, chat id, user id, message id]`, `null` for none.
    fn every_kind() -> Value {
        let ann = json!({"id": 7, "is_bot": false, "first_name": "Ann", "language_code": "en"});
        let private = json!({"id": 7, "type": "private", "first_name": "Ann"});
        let group = json!({"id": -5, "type": "group", "title": "G"});
        let channel = json!({"id": -1_009_000_000_001_i64, "type": "channel", "title": "News"});
        let customer = json!({"id": 8, "type": "private", "first_name": "Cus"});
        let cus = json!({"id": 8, "is_bot": false, "first_name": "Cus"});
        let bot = json!({"id": 1, "is_bot": true, "first_name": "edgegram", "username": "e_bot"});
        let premium = json!({"source": "premium", "user": ann});
        let joined = json!({"old_chat_member": {"status": "left", "user": ann},
                            "new_chat_member": {"status": "member", "user": ann}});
        let added = json!({"old_chat_member": {"status": "left", "user": bot},
                           "new_chat_member": {"status": "member", "user": bot}});
        json!([
            ["message", {"message_id": 10, "date": 1, "chat": private, "from": ann,
                "text": "hi"}, 7, 7, 10],
            ["edited_message", {"message_id": 11, "date": 1, "edit_date": 2, "chat": group,
                "from": ann, "text": "fixed"}, -5, 7, 11],
            ["channel_post", {"message_id": 12, "date": 1, "chat": channel,
                "sender_chat": channel, "text": "news"}, -1_009_000_000_001_i64, null, 12],
            ["edited_channel_post", {"message_id": 12, "date": 1, "edit_date": 3,
                "chat": channel, "sender_chat": channel, "text": "news!"},
                -1_009_000_000_001_i64, null, 12],
            ["business_connection", {"id": "bc1", "user": ann, "user_chat_id": 7, "date": 1,
                "rights": {"can_reply": true}, "is_enabled": true}, null, 7, null],
            ["business_message", {"message_id": 13, "business_connection_id": "bc1",
                "date": 1, "chat": customer, "from": cus, "text": "open today?"}, 8, 8, 13],
            ["edited_business_message", {"message_id": 13, "business_connection_id": "bc1",
                "date": 1, "edit_date": 2, "chat": customer, "from": cus,
                "text": "open tomorrow?"}, 8, 8, 13],
            ["deleted_business_messages", {"business_connection_id": "bc1", "chat": customer,
                "message_ids": [13, 14]}, 8, null, null],
            ["guest_message", {"message_id": 15, "date": 1, "chat": group, "from": ann,
                "guest_query_id": "gq1", "text": "@e_bot weather?"}, -5, 7, 15],
            ["message_reaction", {"chat": group, "message_id": 10, "user": ann, "date": 1,
                "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "👍"}]},
                -5, 7, null],
            ["message_reaction_count", {"chat": group, "message_id": 10, "date": 1,
                "reactions": [{"type": {"type": "emoji", "emoji": "👍"}, "total_count": 3}]},
                -5, null, null],
            ["inline_query", {"id": "iq1", "from": ann, "query": "cats", "offset": ""},
                null, 7, null],
            ["chosen_inline_result", {"result_id": "r1", "from": ann, "query": "cats",
                "inline_message_id": "AAQ"}, null, 7, null],
            ["callback_query", {"id": "cq1", "from": ann, "chat_instance": "ci", "data": "x",
                "message": {"message_id": 16, "date": 1, "chat": group, "from": bot,
                "text": "pick"}}, -5, 7, 16],
            ["shipping_query", {"id": "sq1", "from": ann, "invoice_payload": "order-1",
                "shipping_address": {"country_code": "DE", "state": "", "city": "Berlin",
                "street_line1": "Str. 1", "street_line2": "", "post_code": "10115"}},
                null, 7, null],
            ["pre_checkout_query", {"id": "pq1", "from": ann, "currency": "XTR",
                "total_amount": 50, "invoice_payload": "order-1"}, null, 7, null],
            ["purchased_paid_media", {"from": ann, "paid_media_payload": "album-1"},
                null, 7, null],
            ["poll", {"id": "p1", "question": "Tea?", "options": [{"persistent_id": "a",
                "text": "yes", "voter_count": 1}], "total_voter_count": 1, "is_closed": true,
                "is_anonymous": true, "type": "regular", "allows_multiple_answers": false,
                "allows_revoting": false, "members_only": false}, null, null, null],
            ["poll_answer", {"poll_id": "p1", "user": ann, "option_ids": [0],
                "option_persistent_ids": ["a"]}, null, 7, null],
            ["my_chat_member", {"chat": group, "from": ann, "date": 1,
                "old_chat_member": added["old_chat_member"],
                "new_chat_member": added["new_chat_member"]}, -5, 7, null],
            ["chat_member", {"chat": group, "from": ann, "date": 1,
                "old_chat_member": joined["old_chat_member"],
                "new_chat_member": joined["new_chat_member"]}, -5, 7, null],
            ["chat_join_request", {"chat": group, "from": ann, "user_chat_id": 7, "date": 1},
                -5, 7, null],
            ["chat_boost", {"chat": channel, "boost": {"boost_id": "b1", "add_date": 1,
                "expiration_date": 2, "source": premium}}, -1_009_000_000_001_i64, null, null],
            ["removed_chat_boost", {"chat": channel, "boost_id": "b1", "remove_date": 2,
                "source": premium}, -1_009_000_000_001_i64, null, null],
            ["managed_bot", {"user": ann, "bot": bot}, null, 7, null]
        ])
    }

    #[test]
    fn every_update_kind_has_ptbs_effective_chat_user_and_message() {
        let cases = every_kind();
        let cases = cases.as_array().unwrap();
        assert_eq!(
            cases.len(),
            25,
            "every field of the Bot API's Update but update_id"
        );
        let mut kinds = std::collections::HashSet::new();
        for (i, case) in cases.iter().enumerate() {
            let kind = case[0].as_str().unwrap();
            let update = Update::from_value(json!({"update_id": i, kind: case[1]}))
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            let seen = update.kind().unwrap_or_else(|| panic!("{kind}: no kind"));
            assert_eq!(seen.as_str(), kind);
            let found = (
                update.effective_chat().map(|c| c.id),
                update.effective_user().map(|u| u.id),
                update.effective_message().map(|m| m.message_id),
            );
            let expected = (case[2].as_i64(), case[3].as_i64(), case[4].as_i64());
            assert_eq!(found, expected, "{kind}: (chat, user, message)");
            assert!(
                !matches!(seen, UpdateKind::Other(_)),
                "{kind} is not modelled"
            );
            kinds.insert(seen);
        }
        assert_eq!(kinds.len(), UpdateKind::MODELLED.len(), "{kinds:?}");
    }

    #[test]
    fn anonymous_reactions_and_votes_have_no_user() {
        let update = Update::from_value(json!({"update_id": 1, "message_reaction": {
            "chat": {"id": -5, "type": "supergroup", "title": "G"}, "message_id": 3,
            "actor_chat": {"id": -5, "type": "supergroup", "title": "G"}, "date": 1,
            "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "🔥"}]}}))
        .unwrap();
        assert_eq!(update.effective_chat().map(|c| c.id), Some(-5));
        assert_eq!(update.effective_user(), None);
        let update = Update::from_value(json!({"update_id": 2, "poll_answer": {
            "poll_id": "p1", "voter_chat": {"id": -5, "type": "supergroup", "title": "G"},
            "option_ids": [1], "option_persistent_ids": ["b"]}}))
        .unwrap();
        assert_eq!(
            update.effective_chat(),
            None,
            "PTB: a poll answer has no chat"
        );
        assert_eq!(update.effective_user(), None);
    }
}
