//! [`Updates`]: updates as Telegram sends them, with their ids counting up.
//!
//! Chats are given by id and typed by Telegram's numbering ([`chat_type`]): a positive id is
//! a private chat (whose id is the user's), a negative one a basic group, one below -10¹²
//! (`-100…`) a supergroup. Users are given by id too; their first name is `User {id}`.
//!
//! Each builder answers an [`Update`]; its [`raw`](Update::raw) field is the JSON Telegram
//! would post to the webhook, for tests that post it.
//!
//! [`chat_type`]: crate::bot::stand_in::chat_type

use std::rc::Rc;

use serde_json::{json, Value};

use super::telegram::Telegram;
use crate::bot::stand_in;
use crate::types::Update;

/// Makes updates as Telegram sends them: ids counting up from 1, dated by the test's clock,
/// each text's commands marked with `bot_command` entities, each message with its chat's
/// next message id.
///
/// A clone shares the counters, as does the factory of a
/// [`Harness`](super::Harness::updates), which also shares the message ids with the bot
/// double: a user's message and the bot's reply in one chat number up together, as on
/// Telegram.
///
/// ```
/// use edgegram::testing::Updates;
///
/// let tg = Updates::new();
/// let start = tg.command(42, 42, "/start@my_bot hello");
/// assert_eq!(start.update_id, 1);
/// assert_eq!(start.message.unwrap().command(), Some(("start", Some("my_bot"))));
///
/// tg.skip_to(100); // Telegram's ids increase but may skip
/// let press = tg.press(-1001234567890, 42, 7, "pick:3");
/// assert_eq!(press.update_id, 100);
/// assert_eq!(press.raw["callback_query"]["message"]["chat"]["type"], "supergroup");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Updates {
    telegram: Rc<Telegram>,
}

impl Updates {
    /// A factory whose first update has id 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// A factory over `telegram`, the clock and message ids it shares with the bot double.
    pub(crate) fn sharing(telegram: Rc<Telegram>) -> Self {
        Self { telegram }
    }

    /// The next update gets id `update_id`, the following ones count up from there.
    pub fn skip_to(&self, update_id: i64) {
        self.telegram.set_next_update_id(update_id);
    }

    /// A text message from `user` in `chat`. Commands in it (`/word` at the start or after a
    /// space, with an optional `@botname`) get their `bot_command` entities, as Telegram
    /// marks them.
    pub fn message(&self, chat: i64, user: i64, text: &str) -> Update {
        let message_id = self.telegram.take_message_id(&chat.to_string());
        let message = self.text_message(chat, user, message_id, text);
        self.update("message", message)
    }

    /// A message that starts with a command, e.g. `/start`, `/start payload` or
    /// `/start@my_bot`: [`message`](Self::message), which marks the command at offset 0 with
    /// its length in UTF-16 code units, so that a `CommandHandler` sees it.
    ///
    /// # Panics
    /// When `text` does not start with `/` and a letter, digit or `_`: Telegram would not
    /// mark it as a command.
    pub fn command(&self, chat: i64, user: i64, text: &str) -> Update {
        let starts_with_command = command_entities(text)
            .first()
            .is_some_and(|e| e["offset"] == 0);
        assert!(
            starts_with_command,
            "Updates::command: {text:?} does not start with a command Telegram would mark \
             (`/` and letters, digits or `_`)"
        );
        self.message(chat, user, text)
    }

    /// A location `user` shares in `chat` (what a reply keyboard's location button sends).
    pub fn location(&self, chat: i64, user: i64, latitude: f64, longitude: f64) -> Update {
        let message_id = self.telegram.take_message_id(&chat.to_string());
        let mut message = self.text_message(chat, user, message_id, "");
        message.as_object_mut().map(|m| m.remove("text"));
        message["location"] = json!({"latitude": latitude, "longitude": longitude});
        self.update("message", message)
    }

    /// A photo from `user` in `chat`, in two sizes (file ids `{file_id}-small` and
    /// `{file_id}`), with an optional caption.
    pub fn photo(&self, chat: i64, user: i64, file_id: &str, caption: Option<&str>) -> Update {
        let message_id = self.telegram.take_message_id(&chat.to_string());
        let mut message = self.text_message(chat, user, message_id, "");
        message.as_object_mut().map(|m| m.remove("text"));
        let size = |id: String, side: i64| {
            json!({"file_id": id, "file_unique_id": format!("u{id}"), "width": side,
                   "height": side})
        };
        message["photo"] = json!([
            size(format!("{file_id}-small"), 90),
            size(file_id.into(), 800)
        ]);
        if let Some(caption) = caption {
            message["caption"] = json!(caption);
        }
        self.update("message", message)
    }

    /// A text message of `user` in the forum topic `thread` of the supergroup `chat`.
    pub fn topic_message(&self, chat: i64, thread: i64, user: i64, text: &str) -> Update {
        let message_id = self.telegram.take_message_id(&chat.to_string());
        let mut message = self.text_message(chat, user, message_id, text);
        message["message_thread_id"] = json!(thread);
        message["is_topic_message"] = json!(true);
        message["chat"]["is_forum"] = json!(true);
        self.update("message", message)
    }

    /// An edit of message `message_id` of `user` in `chat`, to `text`.
    pub fn edited_message(&self, chat: i64, user: i64, message_id: i64, text: &str) -> Update {
        let mut message = self.text_message(chat, user, message_id, text);
        message["edit_date"] = json!(self.telegram.date());
        self.update("edited_message", message)
    }

    /// A post in `channel`. Channel posts have no sender user, only the channel.
    pub fn channel_post(&self, channel: i64, text: &str) -> Update {
        let chat = json!({"id": channel, "type": "channel", "title": format!("Channel {channel}")});
        let mut post = json!({
            "message_id": self.telegram.take_message_id(&channel.to_string()),
            "date": self.telegram.date(),
            "chat": chat,
            "sender_chat": chat,
            "text": text,
        });
        add_entities(&mut post, text);
        self.update("channel_post", post)
    }

    /// A press by `user` on a button with `data` of the bot's message `message_id` in `chat`
    /// (a callback query). The message id is the one the bot's message got, e.g. from
    /// [`RecordingBot::sent`](super::RecordingBot::sent).
    pub fn press(&self, chat: i64, user: i64, message_id: i64, data: &str) -> Update {
        let update_id = self.telegram.take_update_id();
        let query = json!({
            "id": format!("cq{update_id}"),
            "from": user_json(user),
            "chat_instance": format!("ci{chat}"),
            "data": data,
            "message": {
                "message_id": message_id,
                "date": self.telegram.date(),
                "chat": chat_json(chat),
                "from": stand_in::bot_user(&self.telegram.username()),
            },
        });
        parse(json!({"update_id": update_id, "callback_query": query}))
    }

    /// A press by `user` on a button with `data` of an inline-mode message: it has no chat,
    /// only `inline_message_id`.
    pub fn inline_press(&self, user: i64, inline_message_id: &str, data: &str) -> Update {
        let update_id = self.telegram.take_update_id();
        let query = json!({
            "id": format!("cq{update_id}"),
            "from": user_json(user),
            "chat_instance": format!("ci-inline-{user}"),
            "data": data,
            "inline_message_id": inline_message_id,
        });
        parse(json!({"update_id": update_id, "callback_query": query}))
    }

    /// The service message Telegram sends in group `old` when `user` turns it into the
    /// supergroup `new` (a message with `migrate_to_chat_id`; the supergroup gets its own
    /// message with `migrate_from_chat_id`).
    pub fn group_migrated(&self, old: i64, new: i64, user: i64) -> Update {
        let message_id = self.telegram.take_message_id(&old.to_string());
        let message = json!({
            "message_id": message_id,
            "date": self.telegram.date(),
            "chat": chat_json(old),
            "from": user_json(user),
            "migrate_to_chat_id": new,
        });
        self.update("message", message)
    }

    /// `user` joined `chat` (a `chat_member` update: `left` → `member`). Telegram sends
    /// these only to an administrator bot that asked for them in `allowed_updates`.
    pub fn member_joined(&self, chat: i64, user: i64) -> Update {
        self.chat_member(chat, user, "left", "member")
    }

    /// `user` left `chat` (a `chat_member` update: `member` → `left`).
    pub fn member_left(&self, chat: i64, user: i64) -> Update {
        self.chat_member(chat, user, "member", "left")
    }

    /// The status of `user` in `chat` changed from `old` to `new` (`"member"`, `"left"`,
    /// `"kicked"`, `"administrator"`, ...), by their own doing.
    pub fn chat_member(&self, chat: i64, user: i64, old: &str, new: &str) -> Update {
        let member = user_json(user);
        self.member_update("chat_member", chat, user, member, old, new)
    }

    /// `by` added the bot to `chat` (a `my_chat_member` update: `left` → `member`).
    pub fn bot_added(&self, chat: i64, by: i64) -> Update {
        self.my_chat_member(chat, by, "left", "member")
    }

    /// `by` removed the bot from `chat` (a `my_chat_member` update: `member` → `left`).
    pub fn bot_removed(&self, chat: i64, by: i64) -> Update {
        self.my_chat_member(chat, by, "member", "left")
    }

    /// `user` blocked the bot in their private chat (`member` → `kicked`); from now on
    /// Telegram refuses messages to them with 403 (see
    /// [`Answer::blocked`](super::Answer::blocked)).
    pub fn bot_blocked(&self, user: i64) -> Update {
        self.my_chat_member(user, user, "member", "kicked")
    }

    /// The bot's status in `chat` changed from `old` to `new`, by `by`'s doing.
    pub fn my_chat_member(&self, chat: i64, by: i64, old: &str, new: &str) -> Update {
        let bot = stand_in::bot_user(&self.telegram.username());
        self.member_update("my_chat_member", chat, by, bot, old, new)
    }

    /// Any other update, from its JSON; it gets the next update id unless it has one.
    ///
    /// # Panics
    /// When `update` is not an update edgegram can read.
    pub fn from_json(&self, mut update: Value) -> Update {
        if update.get("update_id").is_none() {
            update["update_id"] = json!(self.telegram.take_update_id());
        }
        parse(update)
    }

    fn text_message(&self, chat: i64, user: i64, message_id: i64, text: &str) -> Value {
        let mut message = json!({
            "message_id": message_id,
            "date": self.telegram.date(),
            "chat": chat_json(chat),
            "from": user_json(user),
            "text": text,
        });
        add_entities(&mut message, text);
        message
    }

    fn member_update(
        &self,
        kind: &str,
        chat: i64,
        by: i64,
        member: Value,
        old: &str,
        new: &str,
    ) -> Update {
        let status = |status: &str| {
            let mut value = json!({"status": status, "user": member});
            if status == "kicked" {
                value["until_date"] = json!(0);
            }
            value
        };
        let change = json!({
            "chat": chat_json(chat),
            "from": user_json(by),
            "date": self.telegram.date(),
            "old_chat_member": status(old),
            "new_chat_member": status(new),
        });
        self.update(kind, change)
    }

    fn update(&self, kind: &str, content: Value) -> Update {
        let update_id = self.telegram.take_update_id();
        parse(json!({"update_id": update_id, kind: content}))
    }
}

/// The `bot_command` entities Telegram marks in `text`: a `/` at the start or after
/// whitespace, then letters, digits or `_`, then optionally `@` and a bot's username. Offsets
/// and lengths are in UTF-16 code units.
pub fn command_entities(text: &str) -> Vec<Value> {
    let mut entities = Vec::new();
    let mut offset = 0; // UTF-16 code units before `index`
    let mut after_space = true;
    for (index, ch) in text.char_indices() {
        if ch == '/' && after_space {
            let length = command_length(&text[index..]);
            if length > 0 {
                entities.push(json!({"type": "bot_command", "offset": offset, "length": length}));
            }
        }
        after_space = ch.is_whitespace();
        offset += ch.len_utf16();
    }
    entities
}

/// The length of the command at the start of `text` (which starts with `/`), 0 if there is
/// none. Commands are ASCII, so bytes and UTF-16 code units are the same count.
fn command_length(text: &str) -> usize {
    let word = |s: &str| {
        s.bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count()
    };
    let name = word(&text[1..]);
    if name == 0 {
        return 0;
    }
    let rest = &text[1 + name..];
    let username = match rest.strip_prefix('@') {
        Some(after) if word(after) > 0 => 1 + word(after),
        _ => 0,
    };
    1 + name + username
}

fn add_entities(message: &mut Value, text: &str) {
    let entities = command_entities(text);
    if !entities.is_empty() {
        message["entities"] = Value::Array(entities);
    }
}

fn chat_json(chat: i64) -> Value {
    let id = json!(chat);
    match stand_in::chat_type(&id) {
        "private" => json!({"id": chat, "type": "private", "first_name": format!("User {chat}")}),
        kind => json!({"id": chat, "type": kind, "title": format!("Group {chat}")}),
    }
}

fn user_json(user: i64) -> Value {
    json!({"id": user, "is_bot": false, "first_name": format!("User {user}")})
}

fn parse(update: Value) -> Update {
    Update::from_value(update.clone())
        .unwrap_or_else(|e| panic!("not an update edgegram can read ({e}): {update}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ChatType;

    #[test]
    fn commands_are_marked_where_telegram_marks_them_in_utf16_units() {
        assert_eq!(
            command_entities("/start"),
            [json!({"type": "bot_command", "offset": 0, "length": 6})]
        );
        assert_eq!(
            command_entities("/start@my_bot payload"),
            [json!({"type": "bot_command", "offset": 0, "length": 13})]
        );
        // "é" is one UTF-16 unit, "😀" two.
        assert_eq!(
            command_entities("é😀 /help, then /x@"),
            [
                json!({"type": "bot_command", "offset": 4, "length": 5}),
                json!({"type": "bot_command", "offset": 16, "length": 2}),
            ]
        );
        for none in ["start", "a/b", "/", "/ x", "/é", "http://x"] {
            assert!(command_entities(none).is_empty(), "{none}");
        }
    }

    #[test]
    fn messages_count_ids_up_and_type_their_chats() {
        let tg = Updates::new();
        let first = tg.message(5, 5, "hi");
        let second = tg.message(5, 5, "again");
        let group = tg.message(-42, 5, "hi");
        let supergroup = tg.message(-1001234567890, 5, "hi");
        assert_eq!(
            [first.update_id, second.update_id, group.update_id],
            [1, 2, 3]
        );
        let message = |u: &Update| u.message.clone().unwrap();
        assert_eq!(
            [message(&first).message_id, message(&second).message_id],
            [1, 2]
        );
        assert_eq!(message(&group).message_id, 1, "ids count per chat");
        assert_eq!(message(&first).chat.kind, ChatType::Private);
        assert_eq!(message(&group).chat.kind, ChatType::Group);
        assert_eq!(message(&supergroup).chat.kind, ChatType::Supergroup);
        assert!(first.raw["message"].get("entities").is_none());
        assert_eq!(first.raw["message"]["date"], 1_700_000_000);
    }

    #[test]
    #[should_panic(expected = "does not start with a command")]
    fn a_command_must_start_with_one() {
        Updates::new().command(5, 5, "hello /start");
    }

    #[test]
    fn every_kind_of_update_reads_with_its_chat_and_user() {
        let tg = Updates::new();
        tg.skip_to(10);
        let cases = [
            (
                tg.edited_message(-5, 7, 3, "fixed"),
                "edited_message",
                Some(-5),
                Some(7),
            ),
            (
                tg.channel_post(-1009, "/news"),
                "channel_post",
                Some(-1009),
                None,
            ),
            (tg.press(5, 7, 2, "d"), "callback_query", Some(5), Some(7)),
            (
                tg.inline_press(7, "AAQ", "d"),
                "callback_query",
                None,
                Some(7),
            ),
            (tg.member_joined(-5, 8), "chat_member", Some(-5), Some(8)),
            (tg.member_left(-5, 8), "chat_member", Some(-5), Some(8)),
            (tg.bot_added(-5, 8), "my_chat_member", Some(-5), Some(8)),
            (tg.bot_removed(-5, 8), "my_chat_member", Some(-5), Some(8)),
            (tg.bot_blocked(8), "my_chat_member", Some(8), Some(8)),
            (
                tg.from_json(json!({"poll": {"id": "p"}})),
                "poll",
                None,
                None,
            ),
        ];
        for (i, (update, kind, chat, user)) in cases.iter().enumerate() {
            assert_eq!(update.update_id, 10 + i as i64);
            assert_eq!(update.kind().map(|k| k.to_string()).as_deref(), Some(*kind));
            assert_eq!(update.effective_chat().map(|c| c.id), *chat, "{kind}");
            assert_eq!(update.effective_user().map(|u| u.id), *user, "{kind}");
        }
        let edited = cases[0].0.edited_message.clone().unwrap();
        assert_eq!(edited.message_id, 3);
        let post = cases[1].0.channel_post.clone().unwrap();
        assert_eq!(post.chat.kind, ChatType::Channel);
        assert_eq!(post.command(), Some(("news", None)));
        let blocked = &cases[8].0.raw["my_chat_member"];
        assert_eq!(blocked["new_chat_member"]["status"], "kicked");
        assert_eq!(blocked["new_chat_member"]["user"]["is_bot"], true);
        let joined = &cases[4].0.raw["chat_member"];
        assert_eq!(
            (
                &joined["old_chat_member"]["status"],
                &joined["new_chat_member"]["status"]
            ),
            (&json!("left"), &json!("member"))
        );
        assert_eq!(
            tg.from_json(json!({"update_id": 3, "poll": {}})).update_id,
            3
        );
    }
}
