//! [`Context`]: what a handler callback gets — the update, the bot, and the data this update
//! loaded (bot_data, the effective chat's chat_data, the effective user's user_data).
//!
//! Data is reached through closures (`ctx.chat_data(|d| ...)`) rather than guards, so that no
//! borrow can be held across an `.await`: on wasm a `RefCell` double borrow would be a panic,
//! and a panic aborts the whole worker without an answer. Nested access to the same data
//! returns an error instead.
//!
//! The Context is a view: the data itself, how it is loaded and how its changes are found live
//! in the crate-private `update_state` module.

use std::rc::Rc;

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::api::input_file::{upload_bytes, MAX_QUEUED_UPLOAD_BYTES};
use crate::api::{self, InputFile, ReplyTarget};
use crate::bot::{Bot, Method, SendMessage};
use crate::conversation::Route;
use crate::error::{Error, Result};
use crate::jobs::{Job, JobQueue};
use crate::outbox::Call;
use crate::persistence::Key;
use crate::types::{CallbackQuery, Chat, Message, Update, User};

/// The method name of a typed request.
fn request_name<M: Method>(_: &M) -> &'static str {
    M::NAME
}
use crate::update_state::UpdateState;

pub use crate::sources::{system_clock, system_random, Clock, RandomSource};
pub use crate::update_state::Migration;

/// The default data type of bot_data, chat_data and user_data: a JSON object, like PTB's dict.
pub type Data = serde_json::Map<String, Value>;

/// What bot_data, chat_data and user_data types need: serde both ways, a default for entries
/// that do not exist yet. Prefer ordered maps (`BTreeMap`, [`Data`]) inside: changes are found
/// by comparing serialized values, and a `HashMap`'s order can differ between serializations,
/// which costs a needless write.
pub trait DataType: Serialize + DeserializeOwned + Default + 'static {}
impl<T: Serialize + DeserializeOwned + Default + 'static> DataType for T {}

/// What matched: a handler's [`Handler::check_update`](crate::Handler::check_update) answer,
/// passed on to its callback through the [`Context`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// Command arguments (words after the command).
    pub args: Vec<String>,
    /// Regex captures: index 0 is the whole match, then each group.
    pub matches: Vec<Option<String>>,
    /// Which of its handlers a [`ConversationHandler`](crate::ConversationHandler) chose;
    /// `None` from other handlers.
    pub route: Option<Route>,
}

/// What a handler callback receives. Cheap to clone; all clones of one update share its data.
pub struct Context<B = Data, C = Data, U = Data> {
    state: Rc<UpdateState<B, C, U>>,
    /// The words after the command, for a [`CommandHandler`](crate::CommandHandler).
    pub args: Vec<String>,
    /// Regex captures of the filter or pattern that matched (index 0: the whole match).
    pub matches: Vec<Option<String>>,
}

impl<B, C, U> Clone for Context<B, C, U> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            args: self.args.clone(),
            matches: self.matches.clone(),
        }
    }
}

impl<B: DataType, C: DataType, U: DataType> Context<B, C, U> {
    pub(crate) fn new(state: Rc<UpdateState<B, C, U>>) -> Self {
        Self {
            state,
            args: Vec::new(),
            matches: Vec::new(),
        }
    }

    pub(crate) fn with_match(&self, matched: &Match) -> Self {
        Self {
            state: self.state.clone(),
            args: matched.args.clone(),
            matches: matched.matches.clone(),
        }
    }

    /// The job queue (PTB's `context.job_queue`): what it schedules or removes is written
    /// with this update's changes ([`crate::jobs`]).
    pub fn job_queue(&self) -> JobQueue<'_, B, C, U> {
        JobQueue { state: &self.state }
    }

    /// In a job callback, the job that runs (PTB's `context.job`); `None` in a handler.
    pub fn job(&self) -> Option<Job> {
        self.state.job()
    }

    /// The update being handled.
    pub fn update(&self) -> &Update {
        &self.state.update
    }

    /// The bot, to call the Bot API at once and await the answer: for a call whose answer the
    /// handler needs. Such a call holds the update's gate while it waits and cannot be taken
    /// back if the update fails; prefer [`Context::send`]. With arbitrary callback data on, it
    /// stores the data of every inline keyboard it sends, plain strings included, and notes
    /// where the keyboard went (see [`crate::callback_data`]).
    pub fn bot(&self) -> &Bot {
        &self.state.bot
    }

    /// The current time, milliseconds since the Unix epoch, from the Application's clock.
    pub fn now_ms(&self) -> i64 {
        self.state.now_ms()
    }

    /// The update's state, for the callback data module.
    pub(crate) fn state(&self) -> &UpdateState<B, C, U> {
        &self.state
    }

    /// The bot's username (without `@`), if known.
    pub fn bot_username(&self) -> Option<&str> {
        self.state.bot_username()
    }

    /// The update's chat, if it has one.
    pub fn effective_chat(&self) -> Option<&Chat> {
        self.state.update.effective_chat()
    }

    /// The update's user, if it has one.
    pub fn effective_user(&self) -> Option<&User> {
        self.state.update.effective_user()
    }

    /// The update's message (also a pressed button's message), if it has one.
    pub fn effective_message(&self) -> Option<&Message> {
        self.state.update.effective_message()
    }

    /// The update's callback query, if it is one.
    pub fn callback_query(&self) -> Option<&CallbackQuery> {
        self.state.update.callback_query.as_ref()
    }

    /// The text of the update's message, if any.
    pub fn text(&self) -> Option<&str> {
        self.state.update.message_like()?.text.as_deref()
    }

    /// The whole update, typed by the generated Bot API ([`crate::api`]): every field of
    /// every kind, read when called.
    pub fn view(&self) -> api::Update<'_> {
        self.state.update.view()
    }

    /// Where a reply to this update goes: its chat, and the forum topic and business
    /// connection of its message, if any. For the generated methods' `reply(&target, ..)`:
    /// `ctx.send(api::SendLocation::reply(&ctx.reply_target()?, 52.5, 13.4))`.
    pub fn reply_target(&self) -> Result<ReplyTarget> {
        if let Some(message) = self.view().effective_message() {
            return Ok(ReplyTarget::of(message));
        }
        let chat = self.effective_chat().ok_or(Error::Missing("chat"))?;
        Ok(ReplyTarget::chat(chat.id))
    }

    /// Queues `text` for the update's chat (PTB's `message.reply_text`), in the topic and
    /// business connection of the message answered: sent after the update's changes commit
    /// ([`Context::send`]).
    pub fn reply_text(&self, text: impl Into<String>) -> Result<()> {
        self.reply(|chat_id| SendMessage::new(chat_id, text))
    }

    /// Queues the message `build` makes for the update's chat id, in the topic and business
    /// connection of the message answered unless `build` set them.
    pub fn reply(&self, build: impl FnOnce(i64) -> SendMessage) -> Result<()> {
        let target = self.reply_target()?;
        let mut request = build(target.chat_id);
        if request.chat_id == target.chat_id {
            request.message_thread_id = request.message_thread_id.or(target.message_thread_id);
            request.business_connection_id = request
                .business_connection_id
                .or(target.business_connection_id);
        }
        self.send(request)
    }

    /// Queues a photo for the update's chat (PTB's `message.reply_photo`), in its topic and
    /// business connection. A photo from bytes is stored with the update until sent: at most
    /// [`MAX_QUEUED_UPLOAD_BYTES`]; send larger ones at once with
    /// `ctx.bot().request(api::SendPhoto::reply(..))`.
    pub fn reply_photo(&self, photo: impl Into<InputFile>) -> Result<()> {
        self.send(api::SendPhoto::reply(&self.reply_target()?, photo))
    }

    /// Queues a document for the update's chat (PTB's `message.reply_document`), as
    /// [`Context::reply_photo`].
    pub fn reply_document(&self, document: impl Into<InputFile>) -> Result<()> {
        self.send(api::SendDocument::reply(&self.reply_target()?, document))
    }

    /// Queues a typed Bot API request in the update's outbox ([`crate::outbox`]): it is
    /// written with the update's data changes and sent once they committed, in the order
    /// queued, outside any lock; an update that fails or is handled again sends nothing. A
    /// call that fails for good reaches the error handlers.
    ///
    /// Files uploaded from bytes are stored with the call: at most
    /// [`MAX_QUEUED_UPLOAD_BYTES`] per call, refused here beyond (`Error::TooLarge`).
    pub fn send(&self, request: impl Method) -> Result<()> {
        self.queue_call(Call::new(request_name(&request), request)?)
    }

    /// Queues any Bot API method with JSON-serializable parameters, as [`Context::send`].
    pub fn queue(&self, method: &str, params: impl Serialize) -> Result<()> {
        self.queue_call(Call::new(method, params)?)
    }

    fn queue_call(&self, call: Call) -> Result<()> {
        let size = upload_bytes(&call.params);
        if size > MAX_QUEUED_UPLOAD_BYTES {
            return Err(Error::TooLarge {
                backend: "outbox",
                key: call.method,
                what: "upload",
                size,
                limit: MAX_QUEUED_UPLOAD_BYTES,
            });
        }
        self.state.queue(call)
    }

    /// Stops processing this update after the current handler: later groups do not run
    /// (PTB's `ApplicationHandlerStop`).
    pub fn stop_processing(&self) {
        self.state.stop();
    }

    /// Reads or changes bot_data. Changes are written at the end of the update.
    pub fn bot_data<R>(&self, f: impl FnOnce(&mut B) -> R) -> Result<R> {
        self.state.with_bot_data(f)
    }

    /// Reads or changes the effective chat's chat_data.
    pub fn chat_data<R>(&self, f: impl FnOnce(&mut C) -> R) -> Result<R> {
        let id = self.effective_chat().ok_or(Error::Missing("chat"))?.id;
        self.state.with_chat_data(id, f)
    }

    /// Reads or changes the effective user's user_data.
    pub fn user_data<R>(&self, f: impl FnOnce(&mut U) -> R) -> Result<R> {
        let id = self.effective_user().ok_or(Error::Missing("user"))?.id;
        self.state.with_user_data(id, f)
    }

    /// Reads or changes another chat's chat_data, loading it first if this update has not
    /// (one extra read). Changes are written at the end of the update like the others.
    pub async fn chat_data_of<R>(&self, chat_id: i64, f: impl FnOnce(&mut C) -> R) -> Result<R> {
        self.state.load_chat_data(&[chat_id]).await?;
        self.state.with_chat_data(chat_id, f)
    }

    /// Reads or changes another user's user_data, loading it first if needed.
    pub async fn user_data_of<R>(&self, user_id: i64, f: impl FnOnce(&mut U) -> R) -> Result<R> {
        self.state.load_user_data(&[user_id]).await?;
        self.state.with_user_data(user_id, f)
    }

    /// Deletes a chat's chat_data at the end of the update (PTB's `drop_chat_data`). Within
    /// this update the chat's data reads as empty afterwards.
    pub fn drop_chat_data(&self, chat_id: i64) -> Result<()> {
        self.state.drop_chat_data(chat_id)
    }

    /// Deletes a user's user_data at the end of the update (PTB's `drop_user_data`).
    pub fn drop_user_data(&self, user_id: i64) -> Result<()> {
        self.state.drop_user_data(user_id)
    }

    /// Moves a chat's chat_data to another chat id, as when a group becomes a supergroup
    /// (PTB's `migrate_chat_data`): the new chat gets the old chat's data, the old chat's
    /// entry is dropped. Conversation states are not moved (as in PTB).
    pub async fn migrate_chat_data(&self, old_chat_id: i64, new_chat_id: i64) -> Result<()> {
        self.state
            .load_chat_data(&[old_chat_id, new_chat_id])
            .await?;
        let data = self.state.with_chat_data(old_chat_id, std::mem::take)?;
        self.drop_chat_data(old_chat_id)?;
        self.state.with_chat_data(new_chat_id, |d| *d = data)
    }

    /// An untyped entry this update loaded (a conversation state, callback data), for
    /// handlers that keep their own state. `None` if absent or not loaded.
    pub fn entry(&self, key: &Key) -> Option<Value> {
        self.state.entry(key)
    }

    /// Sets (or with `None` removes) an untyped entry; written at the end of the update if
    /// it differs from what was loaded.
    pub fn set_entry(&self, key: Key, value: Option<Value>) {
        self.state.set_entry(key, value);
    }

    /// Loads untyped entries this update has not loaded yet, in one read.
    pub async fn load_entries(&self, keys: Vec<Key>) -> Result<()> {
        self.state.load_entries(keys).await
    }
}
