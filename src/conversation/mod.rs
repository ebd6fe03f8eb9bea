//! [`ConversationHandler`]: python-telegram-bot's ConversationHandler, with its state kept in
//! persistence so that a conversation survives the isolate that started it.
//!
//! ```text
//! user: /start            bot: Hi! What is your name?        (entry point → NAME)
//! user: Ann               bot: How old are you, Ann?         (NAME → AGE)
//! user: /cancel           bot: Bye.                          (fallback → END)
//! ```
//!
//! ```
//! use edgegram::conversation::{on, ConversationHandler, Next, StateResult};
//! use edgegram::{filters, Context};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
//! enum Step { Name, Age }
//!
//! async fn start(ctx: Context) -> StateResult<Step> {
//!     ctx.reply_text("Hi! What is your name?")?;
//!     Ok(Next::To(Step::Name))
//! }
//! async fn name(ctx: Context) -> StateResult<Step> {
//!     let name = ctx.text().unwrap_or_default().to_string();
//!     ctx.reply_text(format!("How old are you, {name}?"))?;
//!     Ok(Next::To(Step::Age))
//! }
//! async fn cancel(ctx: Context) -> StateResult<Step> {
//!     ctx.reply_text("Bye.")?;
//!     Ok(Next::End)
//! }
//!
//! # fn main() -> edgegram::Result<()> {
//! # use std::rc::Rc;
//! # use edgegram::{ApplicationBuilder, MemoryPersistence, RecordingBot};
//! let conversation = ConversationHandler::builder()
//!     .entry(on::command("start"), start)
//!     .state(Step::Name, on::message(filters::text() & !filters::command()), name)
//!     .fallback(on::command("cancel"), cancel)
//!     .name("profile")
//!     .persistent(true)
//!     .build()?;
//! let app = ApplicationBuilder::new()
//!     .bot(Rc::new(RecordingBot::new()))
//!     .persistence(Rc::new(MemoryPersistence::new()))
//!     .handler(conversation)
//!     .build()?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Semantics (those of PTB's `telegram/ext/_handlers/conversationhandler.py`)
//! - An update belongs to the conversation of its key: the chat id, the user id, then the
//!   pressed button's message id (or inline message id), as `per_chat` / `per_user` /
//!   `per_message` say. Channel posts never belong to a conversation.
//! - Without a state (or with [`allow_reentry`](ConversationBuilder::allow_reentry)), the
//!   first entry point that matches handles the update. Otherwise the first handler of the
//!   current state that matches, else the first fallback that matches. Nothing matching means
//!   the update is not handled (other handlers of the group get their turn).
//! - A callback answers [`Next`]: [`Next::Stay`] keeps the state (PTB's `None`; from an entry
//!   point the conversation then does not start), [`Next::To`] moves, [`Next::End`] ends.
//! - PTB's `WAITING` state does not exist here: callbacks are always awaited (PTB's
//!   `block=True`), so no update can arrive while one is pending.
//!
//! ## Where the state lives
//! A [`persistent`](ConversationBuilder::persistent) conversation stores one entry per
//! conversation key under [`Key::Conversation`](crate::Key::Conversation); the Application reads it with everything
//! else the update needs (one read) and writes it only when it changed. An ended conversation's
//! entry is deleted. The stored value is the state itself, or with a timeout the state and its
//! deadline ([`ConversationEntry`]); export shows only the state, as PTB's DictPersistence.
//!
//! A conversation that is not persistent keeps its states in the handler's memory. On Workers
//! every request may build a fresh Application, so such a conversation lasts one Application
//! at most: use it for tests, or for a process that keeps one Application. Its state changes
//! as soon as its callback succeeds, even if a later handler of the same update fails.
//!
//! ## Timeouts
//! PTB ends a conversation from a job when
//! [`conversation_timeout`](ConversationBuilder::conversation_timeout) passes, and runs its
//! TIMEOUT handlers with the last update. A Worker has no timer that outlives the request, so
//! the deadline is stored with the state (and, with TIMEOUT handlers, the last update), and
//! acted on by whichever comes first: a Durable Object's alarm at the deadline
//! ([`Application::expire_conversation`](crate::Application::expire_conversation), with the
//! last update), or the next update for the conversation (with that update; see
//! [`ConversationBuilder::timeout_handler`]).
//!
//! ## Nested conversations
//! A conversation may be an entry point, state handler or fallback of another
//! ([`ConversationBuilder::state_conversation`] and friends). Each keeps its own entries under
//! its own name. When the child moves to a state listed in its
//! [`map_to_parent`](ConversationBuilder::map_to_parent), the child ends and the parent
//! moves to the mapped state.

// This file holds the vocabulary (Next, StateResult, Route) and the on:: matchers;
// handler.rs routes an update (select) and runs the choice (run); builder.rs adds the steps
// and checks the configuration; step.rs is what a conversation holds; expiry.rs sweeps
// timed-out entries without an update.
mod builder;
mod expiry;
mod handler;
mod step;

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::error::HandlerError;
use crate::persistence::dict::ConversationEntry;

pub use builder::ConversationBuilder;
pub use expiry::{deadline, expire_due, Expired};
pub use handler::ConversationHandler;

/// What a conversation callback answers: where the conversation goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next<S> {
    /// Keep the current state (PTB: the callback returns `None`). From an entry point while no
    /// conversation is active, the conversation does not start.
    Stay,
    /// Move to this state.
    To(S),
    /// End the conversation (PTB's `ConversationHandler.END`); its stored entry is deleted.
    End,
}

impl<S> Next<S> {
    fn try_map<T, E>(
        self,
        f: impl FnOnce(S) -> std::result::Result<T, E>,
    ) -> std::result::Result<Next<T>, E> {
        Ok(match self {
            Next::Stay => Next::Stay,
            Next::To(state) => Next::To(f(state)?),
            Next::End => Next::End,
        })
    }
}

/// What a conversation callback returns: the next state, or an error (as
/// [`HandlerResult`](crate::HandlerResult): the update's changes are then not written).
pub type StateResult<S> = std::result::Result<Next<S>, HandlerError>;

/// What a conversation's state type needs: serde both ways. Unit enums serialize as their
/// variant names (`"CHOOSING"` with `#[serde(rename_all = "SCREAMING_SNAKE_CASE")]`), which is
/// how PTB's DictPersistence shows string states; strings and integers work too (PTB bots
/// often use `range(3)`). A state must not serialize to `null` or `-1` (PTB's "ended") nor to
/// `{"state": .., "expires_at_ms": <integer>}` (the stored shape of a state with a deadline).
pub trait ConversationState: Serialize + DeserializeOwned + 'static {}
impl<T: Serialize + DeserializeOwned + 'static> ConversationState for T {}

/// Which handler of a [`ConversationHandler`] takes an update: what its `check_update` chose,
/// carried to its `handle` in [`Match::route`](crate::Match::route) so that the choice is not
/// made twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The conversation was past its deadline: its matching TIMEOUT handlers run and it ends
    /// before the chosen handler (an entry point) starts a new one.
    pub expired: bool,
    /// The list the chosen handler is in, and its index there.
    pub branch: Branch,
    /// The route inside the chosen handler when it is a nested conversation.
    pub inner: Option<Box<Route>>,
}

/// The list of a conversation a chosen handler is in, with the handler's index in that list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Branch {
    /// An entry point: no conversation was active, or re-entry is allowed.
    Entry(usize),
    /// A handler of the current state.
    State(usize),
    /// A fallback: no handler of the current state matched.
    Fallback(usize),
    /// Nothing but TIMEOUT handlers matched an update that found the conversation expired:
    /// they run, the conversation ends, and no other handler runs.
    TimeoutOnly,
}

/// Matchers for conversation steps: the library's handlers with a callback that does nothing,
/// since in a conversation only their `check_update` is used and the step's own callback
/// runs. Any other [`Handler`](crate::Handler) works as a matcher too.
pub mod on {
    use crate::context::{Context, DataType};
    use crate::error::Result;
    use crate::handlers::{
        CallbackQueryHandler, CommandHandler, Filter, MessageHandler, TypeHandler,
    };

    /// Matches `/command` as [`CommandHandler`] does (names separated by spaces or commas).
    pub fn command<B: DataType, C: DataType, U: DataType>(
        command: &str,
    ) -> CommandHandler<B, C, U> {
        CommandHandler::new(command, |_: Context<B, C, U>| async { Ok(()) })
    }

    /// Matches messages that pass `filter`, as [`MessageHandler`] does.
    pub fn message<B: DataType, C: DataType, U: DataType>(
        filter: Filter,
    ) -> MessageHandler<B, C, U> {
        MessageHandler::new(filter, |_: Context<B, C, U>| async { Ok(()) })
    }

    /// Matches every callback query (button press).
    pub fn callback_query<B: DataType, C: DataType, U: DataType>() -> CallbackQueryHandler<B, C, U>
    {
        CallbackQueryHandler::new(|_: Context<B, C, U>| async { Ok(()) })
    }

    /// Matches callback queries whose data matches `pattern`, as
    /// [`CallbackQueryHandler::pattern`]; an invalid pattern is an error here.
    pub fn callback_data<B: DataType, C: DataType, U: DataType>(
        pattern: &str,
    ) -> Result<CallbackQueryHandler<B, C, U>> {
        callback_query().pattern(pattern)
    }

    /// Matches every update (PTB's `TypeHandler(Update, ...)`).
    pub fn any<B: DataType, C: DataType, U: DataType>() -> TypeHandler<B, C, U> {
        TypeHandler::all(|_: Context<B, C, U>| async { Ok(()) })
    }
}

/// Whether a stored state means "no conversation": `null` (DictPersistence's ended
/// conversation) or `-1` (PTB's `END`, which some persistences store as a state).
fn is_ended(state: &Value) -> bool {
    state.is_null() || state.as_i64() == Some(-1)
}

/// Serializes a state and refuses the values that would be misread when loaded.
fn state_value<S: Serialize>(state: &S) -> std::result::Result<Value, String> {
    let value =
        serde_json::to_value(state).map_err(|e| format!("state cannot be serialized: {e}"))?;
    if is_ended(&value) {
        return Err(format!(
            "state {value} would be read back as an ended conversation (null and -1 are PTB's END)"
        ));
    }
    if ConversationEntry::looks_wrapped(&value) {
        return Err(format!(
            "state {value} has the shape of a state with a deadline"
        ));
    }
    Ok(value)
}
