//! The filters of PTB's `filters` module that look at what a message carries (photo,
//! document, location, ...), derived from the generated Bot API types: each reads the
//! message-like update's JSON through [`crate::api::Message`], so a field Telegram adds is one
//! `npm run generate` away. Re-exported in [`crate::filters`].

use crate::api::{self, MessageContent};
use crate::handlers::Filter;
use crate::types::Update;

/// The message of a message-like update (message, edit, channel post, edited channel post),
/// as the generated view: what every filter looks at.
fn message_of(update: &Update) -> Option<api::Message<'_>> {
    let view = update.view();
    view.message()
        .or_else(|| view.edited_message())
        .or_else(|| view.channel_post())
        .or_else(|| view.edited_channel_post())
}

fn on_message(test: impl Fn(api::Message<'_>) -> bool + 'static) -> Filter {
    Filter::new(move |u| message_of(u).is_some_and(&test))
}

/// Messages that carry `content`, any kind a message may carry (PTB has a filter for most:
/// `filters.PHOTO` is `has(MessageContent::Photo)`).
pub fn has(content: MessageContent) -> Filter {
    on_message(move |m| m.has(content))
}

/// Photos (PTB's `filters.PHOTO`).
pub fn photo() -> Filter {
    has(MessageContent::Photo)
}

/// General files (PTB's `filters.Document.ALL`).
pub fn document() -> Filter {
    has(MessageContent::Document)
}

/// Videos (PTB's `filters.VIDEO`).
pub fn video() -> Filter {
    has(MessageContent::Video)
}

/// Audio files (PTB's `filters.AUDIO`).
pub fn audio() -> Filter {
    has(MessageContent::Audio)
}

/// Voice notes (PTB's `filters.VOICE`).
pub fn voice() -> Filter {
    has(MessageContent::Voice)
}

/// Stickers (PTB's `filters.Sticker.ALL`).
pub fn sticker() -> Filter {
    has(MessageContent::Sticker)
}

/// Animations (PTB's `filters.ANIMATION`).
pub fn animation() -> Filter {
    has(MessageContent::Animation)
}

/// Shared locations, live ones included (PTB's `filters.LOCATION`).
pub fn location() -> Filter {
    has(MessageContent::Location)
}

/// Venues (PTB's `filters.VENUE`).
pub fn venue() -> Filter {
    has(MessageContent::Venue)
}

/// Shared contacts (PTB's `filters.CONTACT`).
pub fn contact() -> Filter {
    has(MessageContent::Contact)
}

/// Polls (PTB's `filters.POLL`).
pub fn poll() -> Filter {
    has(MessageContent::Poll)
}

/// Dice (PTB's `filters.Dice.ALL`).
pub fn dice() -> Filter {
    has(MessageContent::Dice)
}

/// Forwarded messages (PTB's `filters.FORWARDED`).
pub fn forwarded() -> Filter {
    has(MessageContent::ForwardOrigin)
}

/// Replies to another message (PTB's `filters.REPLY`).
pub fn reply() -> Filter {
    has(MessageContent::ReplyToMessage)
}

/// Messages with a caption (PTB's `filters.CAPTION`).
pub fn caption() -> Filter {
    on_message(|m| m.caption().is_some())
}

/// Messages with an entity of type `kind` in their text or caption, e.g. `"url"`,
/// `"mention"` (PTB's `filters.Entity` and `filters.CaptionEntity` together).
pub fn entity(kind: &'static str) -> Filter {
    on_message(move |m| {
        let of_kind = |e: api::MessageEntity<'_>| e.type_() == kind;
        m.entities().is_some_and(|l| l.iter().any(of_kind))
            || m.caption_entities().is_some_and(|l| l.iter().any(of_kind))
    })
}

/// Messages sent through an inline bot (PTB's `filters.VIA_BOT`).
pub fn via_bot() -> Filter {
    has(MessageContent::ViaBot)
}

/// Messages in a forum topic (PTB's `filters.IS_TOPIC_MESSAGE`).
pub fn is_topic_message() -> Filter {
    on_message(|m| m.is_topic_message() == Some(true))
}

/// Members who joined (PTB's `filters.StatusUpdate.NEW_CHAT_MEMBERS`).
pub fn new_chat_members() -> Filter {
    has(MessageContent::NewChatMembers)
}

/// A member who left (PTB's `filters.StatusUpdate.LEFT_CHAT_MEMBER`).
pub fn left_chat_member() -> Filter {
    has(MessageContent::LeftChatMember)
}

/// Messages from supergroups (PTB's `filters.ChatType.SUPERGROUP`).
pub fn supergroup() -> Filter {
    on_message(|m| m.chat().type_() == "supergroup")
}

/// Channel posts (PTB's `filters.ChatType.CHANNEL`).
pub fn channel() -> Filter {
    on_message(|m| m.chat().type_() == "channel")
}
