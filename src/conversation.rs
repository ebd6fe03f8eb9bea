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
//!     ctx.reply_text("Hi! What is your name?").await?;
//!     Ok(Next::To(Step::Name))
//! }
//! async fn name(ctx: Context) -> StateResult<Step> {
//!     let name = ctx.text().unwrap_or_default().to_string();
//!     ctx.reply_text(format!("How old are you, {name}?")).await?;
//!     Ok(Next::To(Step::Age))
//! }
//! async fn cancel(ctx: Context) -> StateResult<Step> {
//!     ctx.reply_text("Bye.").await?;
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
//! conversation key under [`Key::Conversation`]; the Application reads it with everything
//! else the update needs (one read) and writes it only when it changed. An ended conversation's
//! entry is deleted. The stored value is the state itself, or with a timeout the state and its
//! deadline ([`ConversationEntry`]); export shows only the state, as PTB's DictPersistence.
//!
//! A conversation that is not persistent keeps its states in the handler's memory. On Workers
//! every request may build a fresh Application, so such a conversation lasts one Application
//! at most: use it for tests, or for a process that keeps one Application. Its state changes
//! as soon as its callback succeeds, even if a later handler of the same update fails.
//!
//! ## Timeouts without a job queue
//! PTB ends a conversation from a job when
//! [`conversation_timeout`](ConversationBuilder::conversation_timeout) passes. A Worker has no
//! timer that outlives the request, so the deadline is stored with the state and acted on when
//! the next update for the conversation arrives (see [`ConversationBuilder::timeout_handler`]),
//! or swept by a Durable Object alarm with [`expire_due`] / [`deadline`].
//!
//! ## Nested conversations
//! A conversation may be an entry point, state handler or fallback of another
//! ([`ConversationBuilder::state_conversation`] and friends). Each keeps its own entries under
//! its own name. When the child moves to a state listed in its
//! [`map_to_parent`](ConversationBuilder::map_to_parent), the child ends and the parent
//! moves to the mapped state.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};

use crate::context::{Context, Data, DataType, Match};
use crate::error::{Error, HandlerError, HandlerResult, Result};
use crate::handlers::Handler;
use crate::persistence::dict::{conversation_key, ConversationEntry};
use crate::persistence::{codec, Change, Key, KeyKind, Persistence};
use crate::types::Update;

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
/// [`HandlerResult`]: the update's changes are then not written).
pub type StateResult<S> = std::result::Result<Next<S>, HandlerError>;

/// What a conversation's state type needs: serde both ways. Unit enums serialize as their
/// variant names (`"CHOOSING"` with `#[serde(rename_all = "SCREAMING_SNAKE_CASE")]`), which is
/// how PTB's DictPersistence shows string states; strings and integers work too (PTB bots
/// often use `range(3)`). A state must not serialize to `null` or `-1` (PTB's "ended") nor to
/// `{"state": .., "expires_at_ms": <integer>}` (the stored shape of a state with a deadline).
pub trait ConversationState: Serialize + DeserializeOwned + 'static {}
impl<T: Serialize + DeserializeOwned + 'static> ConversationState for T {}

/// Matchers for conversation steps: the library's handlers with a callback that does nothing,
/// since in a conversation only their `check_update` is used and the step's own callback
/// runs. Any other [`Handler`] works as a matcher too.
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

/// A state-returning callback with the state already serialized.
type StepCallback<B, C, U> =
    Rc<dyn Fn(Context<B, C, U>) -> LocalBoxFuture<'static, StateResult<Value>>>;

/// One handler inside a conversation: a step (matcher + callback) or a nested conversation.
trait Inner<B, C, U> {
    fn keys(&self, update: &Update, out: &mut Vec<Key>);
    fn check(&self, ctx: &Context<B, C, U>) -> Option<Match>;
    /// Runs it; answers what the containing conversation does next.
    fn run<'a>(
        &'a self,
        ctx: Context<B, C, U>,
        matched: Match,
    ) -> LocalBoxFuture<'a, StateResult<Value>>;
    fn update_kind(&self) -> Option<&'static str>;
    /// The names of the persistent conversations in it, for the uniqueness check.
    fn names(&self, out: &mut Vec<String>);
}

type Handlers<B, C, U> = Vec<Box<dyn Inner<B, C, U>>>;

struct Step<B, C, U> {
    matcher: Box<dyn Handler<B, C, U>>,
    callback: StepCallback<B, C, U>,
}

impl<B, C, U> Inner<B, C, U> for Step<B, C, U> {
    fn keys(&self, update: &Update, out: &mut Vec<Key>) {
        self.matcher.keys(update, out);
    }

    fn check(&self, ctx: &Context<B, C, U>) -> Option<Match> {
        self.matcher.check_update(ctx)
    }

    fn run<'a>(
        &'a self,
        ctx: Context<B, C, U>,
        _: Match,
    ) -> LocalBoxFuture<'a, StateResult<Value>> {
        (self.callback)(ctx)
    }

    fn update_kind(&self) -> Option<&'static str> {
        self.matcher.update_kind()
    }

    fn names(&self, _: &mut Vec<String>) {}
}

/// Which list the handler that matched is in; the second element of [`Match::route`].
const ENTRY: usize = 0;
const STATE: usize = 1;
const FALLBACK: usize = 2;
/// Only TIMEOUT handlers matched the update that found the conversation expired.
const TIMEOUT_ONLY: usize = 3;

/// PTB's `ConversationHandler`: entry points, states, fallbacks, with state per conversation
/// key (see the [module docs](self) for the semantics and where the state lives).
///
/// `S` is the state type ([`ConversationState`]); `B`, `C`, `U` are the Application's data
/// types. Build with [`ConversationHandler::builder`].
pub struct ConversationHandler<B = Data, C = Data, U = Data, S = String> {
    name: Option<String>,
    persistent: bool,
    per_chat: bool,
    per_user: bool,
    per_message: bool,
    allow_reentry: bool,
    timeout_ms: Option<i64>,
    entries: Handlers<B, C, U>,
    /// Each state (serialized) with its handlers, in the order first added.
    states: Vec<(Value, Handlers<B, C, U>)>,
    fallbacks: Handlers<B, C, U>,
    timeout_handlers: Vec<Box<dyn Handler<B, C, U>>>,
    map_to_parent: Vec<(Next<Value>, Next<Value>)>,
    /// States of a conversation that is not persistent, by conversation key.
    memory: RefCell<BTreeMap<String, Value>>,
    state_type: PhantomData<fn() -> S>,
}

impl<B: DataType, C: DataType, U: DataType, S: ConversationState> ConversationHandler<B, C, U, S> {
    /// A builder with PTB's defaults: per chat and per user, not per message, no re-entry, no
    /// timeout, not persistent.
    pub fn builder() -> ConversationBuilder<B, C, U, S> {
        ConversationBuilder::new()
    }

    /// The conversation's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The conversation key of `update` (`"[chat_id, user_id]"` by default), or `None` if the
    /// update cannot belong to this conversation (no chat, a channel post, ...).
    pub fn key(&self, update: &Update) -> Option<String> {
        if update.channel_post.is_some() || update.edited_channel_post.is_some() {
            return None;
        }
        let query = update.callback_query.as_ref();
        // A press on an inline-mode message has no chat, so it cannot be keyed per chat.
        if self.per_chat && query.is_some_and(|q| q.message.is_none()) {
            return None;
        }
        let mut parts = Vec::with_capacity(3);
        if self.per_chat {
            parts.push(json!(update.effective_chat()?.id));
        }
        if self.per_user {
            parts.push(json!(update.effective_user()?.id));
        }
        if self.per_message {
            let query = query?;
            match (&query.inline_message_id, &query.message) {
                (Some(inline), _) => parts.push(json!(inline)),
                (None, Some(message)) => parts.push(json!(message.message_id)),
                (None, None) => return None,
            }
        }
        Some(conversation_key(&parts))
    }

    /// The current state of the update's conversation: `None` if there is none, it has timed
    /// out, or the stored state does not fit `S`.
    pub fn state(&self, ctx: &Context<B, C, U>) -> Option<S> {
        let key = self.key(ctx.update())?;
        let entry = self.load(ctx, &key)?;
        let expired = entry.expires_at_ms.is_some_and(|at| ctx.now_ms() >= at);
        if expired {
            return None;
        }
        S::deserialize(&entry.state).ok()
    }

    fn storage_key(&self, key: &str) -> Key {
        Key::Conversation {
            name: self.name.clone().unwrap_or_default(),
            key: key.to_string(),
        }
    }

    /// The stored entry of conversation `key`, `None` when there is none or it has ended.
    fn load(&self, ctx: &Context<B, C, U>, key: &str) -> Option<ConversationEntry> {
        let stored = if self.persistent {
            ctx.entry(&self.storage_key(key))?
        } else {
            // Only `store` borrows mutably, and never across this call.
            self.memory.try_borrow().ok()?.get(key).cloned()?
        };
        let entry = ConversationEntry::from_stored(&stored);
        (!is_ended(&entry.state)).then_some(entry)
    }

    fn store(
        &self,
        ctx: &Context<B, C, U>,
        key: &str,
        entry: Option<ConversationEntry>,
    ) -> HandlerResult {
        let value = entry.map(|e| e.to_stored());
        if self.persistent {
            ctx.set_entry(self.storage_key(key), value);
            return Ok(());
        }
        let mut memory = self
            .memory
            .try_borrow_mut()
            .map_err(|_| "conversation state is already being changed")?;
        match value {
            Some(value) => memory.insert(key.to_string(), value),
            None => memory.remove(key),
        };
        Ok(())
    }

    fn handlers_of(&self, state: &Value) -> &[Box<dyn Inner<B, C, U>>] {
        self.states
            .iter()
            .find(|(s, _)| s == state)
            .map_or(&[], |(_, handlers)| handlers.as_slice())
    }

    /// PTB's `check_update`: which handler, if any, takes the update. No effects.
    fn select(&self, ctx: &Context<B, C, U>) -> Option<Match> {
        let key = self.key(ctx.update())?;
        let entry = self.load(ctx, &key);
        let expired = entry
            .as_ref()
            .and_then(|e| e.expires_at_ms)
            .is_some_and(|at| ctx.now_ms() >= at);
        // A conversation past its deadline has ended, as PTB's timeout job would have ended it
        // before this update arrived.
        let state = entry.filter(|_| !expired).map(|e| e.state);
        let route = |phase: usize, index: usize, inner: Match| Match {
            route: [usize::from(expired), phase, index]
                .into_iter()
                .chain(inner.route)
                .collect(),
            args: inner.args,
            matches: inner.matches,
        };

        if state.is_none() || self.allow_reentry {
            if let Some((index, inner)) = first_match(&self.entries, ctx) {
                return Some(route(ENTRY, index, inner));
            }
        }
        let Some(state) = state else {
            let timeout_matched = expired
                && self
                    .timeout_handlers
                    .iter()
                    .any(|h| h.check_update(ctx).is_some());
            return timeout_matched.then(|| route(TIMEOUT_ONLY, 0, Match::default()));
        };
        if let Some((index, inner)) = first_match(self.handlers_of(&state), ctx) {
            return Some(route(STATE, index, inner));
        }
        first_match(&self.fallbacks, ctx).map(|(index, inner)| route(FALLBACK, index, inner))
    }

    /// PTB's `handle_update`: runs what `select` chose and stores the new state. Answers what
    /// a parent conversation does next (a [`map_to_parent`](ConversationBuilder::map_to_parent)
    /// target, else [`Next::Stay`]).
    async fn run(&self, ctx: Context<B, C, U>, matched: Match) -> StateResult<Value> {
        let Some(key) = self.key(ctx.update()) else {
            return Ok(Next::Stay);
        };
        let (expired, phase, index, inner_route) = match matched.route.as_slice() {
            [expired, phase, index, rest @ ..] => (*expired == 1, *phase, *index, rest.to_vec()),
            _ => return Err("conversation: the match does not come from this conversation".into()),
        };
        let mut state = self.load(&ctx, &key).map(|e| e.state);
        if expired {
            // PTB (`_trigger_timeout` in conversationhandler.py) runs *every* TIMEOUT handler
            // whose check_update matches, then ends the conversation. Its job hands them the
            // last update handled before the timeout; without a job queue the first update
            // after the deadline is what we have, so they get that one.
            for handler in &self.timeout_handlers {
                if let Some(m) = handler.check_update(&ctx) {
                    handler.handle(ctx.with_match(&m), m).await?;
                }
            }
            self.store(&ctx, &key, None)?;
            state = None;
            if phase == TIMEOUT_ONLY {
                return Ok(Next::Stay);
            }
            // Otherwise the update is an entry point: in PTB the conversation has ended by the
            // time it arrives, so it starts a new one.
        }
        let handlers = match phase {
            ENTRY => self.entries.as_slice(),
            STATE => state.as_ref().map_or(&[][..], |s| self.handlers_of(s)),
            FALLBACK => self.fallbacks.as_slice(),
            _ => &[],
        };
        let Some(inner) = handlers.get(index) else {
            return Err("conversation: the matched handler is gone".into());
        };
        let inner_match = Match {
            args: matched.args,
            matches: matched.matches,
            route: inner_route,
        };
        let next = inner.run(ctx.with_match(&inner_match), inner_match).await?;
        self.apply(&ctx, &key, state, next)
    }

    /// Stores the state `next` leads to and answers the parent's transition.
    fn apply(
        &self,
        ctx: &Context<B, C, U>,
        key: &str,
        current: Option<Value>,
        next: Next<Value>,
    ) -> StateResult<Value> {
        // As PTB: a mapped state ends this conversation and moves the parent instead.
        if next != Next::Stay {
            if let Some((_, to)) = self.map_to_parent.iter().find(|(from, _)| *from == next) {
                self.store(ctx, key, None)?;
                return Ok(to.clone());
            }
        }
        let state = match next {
            Next::Stay => current,
            Next::To(state) => Some(state),
            Next::End => None,
        };
        // Every handled update restarts the timeout, as PTB reschedules its job.
        let entry = state.map(|state| ConversationEntry {
            state,
            expires_at_ms: self.timeout_ms.map(|t| ctx.now_ms().saturating_add(t)),
        });
        self.store(ctx, key, entry)?;
        Ok(Next::Stay)
    }
}

fn first_match<B, C, U>(
    handlers: &[Box<dyn Inner<B, C, U>>],
    ctx: &Context<B, C, U>,
) -> Option<(usize, Match)> {
    handlers
        .iter()
        .enumerate()
        .find_map(|(index, handler)| handler.check(ctx).map(|m| (index, m)))
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

impl<B: DataType, C: DataType, U: DataType, S: ConversationState> Handler<B, C, U>
    for ConversationHandler<B, C, U, S>
{
    /// Requests this conversation's entry for the update (when persistent) and those of its
    /// handlers and nested conversations, so that all are loaded in the update's one read.
    fn keys(&self, update: &Update, out: &mut Vec<Key>) {
        if self.persistent {
            if let Some(key) = self.key(update) {
                out.push(self.storage_key(&key));
            }
        }
        let inner = self.states.iter().flat_map(|(_, handlers)| handlers);
        for handler in self.entries.iter().chain(inner).chain(&self.fallbacks) {
            handler.keys(update, out);
        }
        for handler in &self.timeout_handlers {
            handler.keys(update, out);
        }
    }

    fn check_update(&self, ctx: &Context<B, C, U>) -> Option<Match> {
        self.select(ctx)
    }

    fn handle<'a>(
        &'a self,
        ctx: Context<B, C, U>,
        matched: Match,
    ) -> LocalBoxFuture<'a, HandlerResult> {
        Box::pin(async move { self.run(ctx, matched).await.map(|_| ()) })
    }
}

impl<B: DataType, C: DataType, U: DataType, S: ConversationState> Inner<B, C, U>
    for ConversationHandler<B, C, U, S>
{
    fn keys(&self, update: &Update, out: &mut Vec<Key>) {
        Handler::keys(self, update, out);
    }

    fn check(&self, ctx: &Context<B, C, U>) -> Option<Match> {
        self.select(ctx)
    }

    fn run<'a>(
        &'a self,
        ctx: Context<B, C, U>,
        matched: Match,
    ) -> LocalBoxFuture<'a, StateResult<Value>> {
        Box::pin(ConversationHandler::run(self, ctx, matched))
    }

    fn update_kind(&self) -> Option<&'static str> {
        None
    }

    fn names(&self, out: &mut Vec<String>) {
        if let (true, Some(name)) = (self.persistent, &self.name) {
            out.push(name.clone());
        }
        let inner = self.states.iter().flat_map(|(_, handlers)| handlers);
        for handler in self.entries.iter().chain(inner).chain(&self.fallbacks) {
            handler.names(out);
        }
    }
}

/// Builds a [`ConversationHandler`]; [`build`](ConversationBuilder::build) checks the
/// configuration and says how to fix it.
pub struct ConversationBuilder<B, C, U, S> {
    handler: ConversationHandler<B, C, U, S>,
    /// Problems found while adding states (a state that cannot be serialized), reported by
    /// `build` so that the builder chains.
    problems: Vec<String>,
}

impl<B: DataType, C: DataType, U: DataType, S: ConversationState> Default
    for ConversationBuilder<B, C, U, S>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<B: DataType, C: DataType, U: DataType, S: ConversationState> ConversationBuilder<B, C, U, S> {
    /// A builder with PTB's defaults (see [`ConversationHandler::builder`]).
    pub fn new() -> Self {
        Self {
            handler: ConversationHandler {
                name: None,
                persistent: false,
                per_chat: true,
                per_user: true,
                per_message: false,
                allow_reentry: false,
                timeout_ms: None,
                entries: Vec::new(),
                states: Vec::new(),
                fallbacks: Vec::new(),
                timeout_handlers: Vec::new(),
                map_to_parent: Vec::new(),
                memory: RefCell::new(BTreeMap::new()),
                state_type: PhantomData,
            },
            problems: Vec::new(),
        }
    }

    /// The conversation's name: required to make it persistent, and the name its entries are
    /// stored and exported under (`conversations.<name>`). Unique among an Application's
    /// conversations.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.handler.name = Some(name.into());
        self
    }

    /// Stores the states through the Application's persistence (PTB's `persistent=True`),
    /// so that they survive the Application; off by default, as in PTB.
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.handler.persistent = persistent;
        self
    }

    /// Keys conversations by chat id (default `true`).
    pub fn per_chat(mut self, on: bool) -> Self {
        self.handler.per_chat = on;
        self
    }

    /// Keys conversations by user id (default `true`).
    pub fn per_user(mut self, on: bool) -> Self {
        self.handler.per_user = on;
        self
    }

    /// Keys conversations by the pressed button's message (default `false`): every message
    /// with an inline keyboard has its own conversation. Only callback queries can then
    /// belong to a conversation, so `build` refuses handlers that match other updates.
    pub fn per_message(mut self, on: bool) -> Self {
        self.handler.per_message = on;
        self
    }

    /// Lets an entry point restart an active conversation (default `false`: while a
    /// conversation is active its entry points are not consulted).
    pub fn allow_reentry(mut self, on: bool) -> Self {
        self.handler.allow_reentry = on;
        self
    }

    /// Ends a conversation that has been inactive for `timeout` (PTB's
    /// `conversation_timeout`); zero means no timeout, as in PTB. Millisecond precision.
    ///
    /// Every handled update restarts the clock ([`ctx.now_ms()`](Context::now_ms)). The deadline
    /// is stored with the state; the first update for the conversation after it runs the
    /// matching [`timeout_handler`](Self::timeout_handler)s, ends the conversation, and is then
    /// offered to the entry points as a fresh update. As in PTB, timeouts of nested
    /// conversations are not coordinated with their parent's.
    pub fn conversation_timeout(mut self, timeout: Duration) -> Self {
        match i64::try_from(timeout.as_millis()) {
            Ok(0) => self.handler.timeout_ms = None,
            Ok(ms) => self.handler.timeout_ms = Some(ms),
            Err(_) => self
                .problems
                .push("conversation_timeout is too long".into()),
        }
        self
    }

    /// Adds an entry point: when no conversation is active (or re-entry is allowed) and
    /// `matcher` matches, `callback` runs and its [`Next`] starts the conversation.
    pub fn entry<M, F, Fut>(mut self, matcher: M, callback: F) -> Self
    where
        M: Handler<B, C, U> + 'static,
        F: Fn(Context<B, C, U>) -> Fut + 'static,
        Fut: Future<Output = StateResult<S>> + 'static,
    {
        self.handler.entries.push(step(matcher, callback));
        self
    }

    /// Adds a nested conversation as an entry point.
    pub fn entry_conversation<S2: ConversationState>(
        mut self,
        child: ConversationHandler<B, C, U, S2>,
    ) -> Self {
        self.handler.entries.push(Box::new(child));
        self
    }

    /// Adds a handler for `state`: while the conversation is in `state` and `matcher` matches,
    /// `callback` runs. Handlers of one state are asked in the order they were added.
    pub fn state<M, F, Fut>(mut self, state: S, matcher: M, callback: F) -> Self
    where
        M: Handler<B, C, U> + 'static,
        F: Fn(Context<B, C, U>) -> Fut + 'static,
        Fut: Future<Output = StateResult<S>> + 'static,
    {
        let handler = step(matcher, callback);
        self.add_to_state(&state, handler);
        self
    }

    /// Adds a nested conversation as a handler of `state`.
    pub fn state_conversation<S2: ConversationState>(
        mut self,
        state: S,
        child: ConversationHandler<B, C, U, S2>,
    ) -> Self {
        self.add_to_state(&state, Box::new(child));
        self
    }

    /// Adds a fallback: while a conversation is active and no handler of its state matches,
    /// the first fallback whose `matcher` matches runs.
    pub fn fallback<M, F, Fut>(mut self, matcher: M, callback: F) -> Self
    where
        M: Handler<B, C, U> + 'static,
        F: Fn(Context<B, C, U>) -> Fut + 'static,
        Fut: Future<Output = StateResult<S>> + 'static,
    {
        self.handler.fallbacks.push(step(matcher, callback));
        self
    }

    /// Adds a nested conversation as a fallback.
    pub fn fallback_conversation<S2: ConversationState>(
        mut self,
        child: ConversationHandler<B, C, U, S2>,
    ) -> Self {
        self.handler.fallbacks.push(Box::new(child));
        self
    }

    /// Adds a handler of PTB's `ConversationHandler.TIMEOUT` state: an ordinary handler (its
    /// own callback runs, its result is not a state). When an update arrives for a
    /// conversation past its [`conversation_timeout`](Self::conversation_timeout), *every*
    /// timeout handler that matches that update runs, in order, and the conversation ends.
    /// (PTB gives them the last update before the timeout; here it is the late update.)
    pub fn timeout_handler(mut self, handler: impl Handler<B, C, U> + 'static) -> Self {
        self.handler.timeout_handlers.push(Box::new(handler));
        self
    }

    /// For a nested conversation: when its callback answers `from` (a state or
    /// [`Next::End`]), this conversation ends and its parent goes to `to` (a parent state,
    /// [`Next::End`] to end the parent too, or [`Next::Stay`]). A mapped state takes
    /// precedence over this conversation's own states, so it must not be one of them.
    pub fn map_to_parent<P: Serialize>(mut self, from: Next<S>, to: Next<P>) -> Self {
        if matches!(from, Next::Stay) {
            self.problems.push(
                "map_to_parent(Next::Stay, ..): only a state or Next::End can be mapped".into(),
            );
            return self;
        }
        let from = from.try_map(|s| state_value(&s));
        let to = to.try_map(|s| state_value(&s));
        match (from, to) {
            (Ok(from), Ok(to)) => self.handler.map_to_parent.push((from, to)),
            (Err(e), _) | (_, Err(e)) => self.problems.push(format!("map_to_parent: {e}")),
        }
        self
    }

    fn add_to_state(&mut self, state: &S, handler: Box<dyn Inner<B, C, U>>) {
        let value = match state_value(state) {
            Ok(value) => value,
            Err(e) => return self.problems.push(e),
        };
        match self.handler.states.iter_mut().find(|(s, _)| *s == value) {
            Some((_, handlers)) => handlers.push(handler),
            None => self.handler.states.push((value, vec![handler])),
        }
    }

    /// Checks the configuration: an [`Error::Config`] names the problem and how to fix it.
    pub fn build(self) -> Result<ConversationHandler<B, C, U, S>> {
        let handler = self.handler;
        let label = handler
            .name
            .as_deref()
            .map_or(String::new(), |n| format!(" {n:?}"));
        let config = |message: String| Error::Config(format!("conversation{label}: {message}"));
        if let Some(problem) = self.problems.into_iter().next() {
            return Err(config(problem));
        }
        if !(handler.per_chat || handler.per_user || handler.per_message) {
            return Err(config(
                "per_chat, per_user and per_message are all false, so updates have no conversation key: \
                 keep per_chat and/or per_user (the defaults) or set per_message(true)"
                    .into(),
            ));
        }
        if handler.persistent && handler.name.is_none() {
            return Err(config(
                "persistent(true) needs a name to store the states under: add .name(\"...\")"
                    .into(),
            ));
        }
        if handler.per_message {
            let states = handler.states.iter().flat_map(|(state, handlers)| {
                handlers
                    .iter()
                    .enumerate()
                    .map(move |(i, h)| (format!("handler {i} of state {state}"), h.update_kind()))
            });
            let places = (handler
                .entries
                .iter()
                .enumerate()
                .map(|(i, h)| (format!("entry point {i}"), h.update_kind())))
            .chain(states)
            .chain(
                handler
                    .fallbacks
                    .iter()
                    .enumerate()
                    .map(|(i, h)| (format!("fallback {i}"), h.update_kind())),
            )
            .chain(
                handler
                    .timeout_handlers
                    .iter()
                    .enumerate()
                    .map(|(i, h)| (format!("timeout handler {i}"), h.update_kind())),
            );
            for (place, kind) in places {
                if let Some(kind) = kind.filter(|k| *k != "callback_query") {
                    return Err(config(format!(
                        "per_message(true) keys conversations by the pressed button's message, so only \
                         callback queries can reach them, but {place} matches {kind} updates and would never \
                         run: match callback queries there (on::callback_query()) or use per_message(false)"
                    )));
                }
            }
        }
        for (from, _) in &handler.map_to_parent {
            if let Next::To(state) = from {
                if handler.states.iter().any(|(s, _)| s == state) {
                    return Err(config(format!(
                        "state {state} is both in states and in map_to_parent, so its handlers would never \
                         run: remove one of them"
                    )));
                }
            }
        }
        let mut names = Vec::new();
        Inner::names(&handler, &mut names);
        names.sort();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(config(format!(
                "two persistent conversations are named {:?} and would overwrite each other's states: \
                 give each nested conversation its own name",
                pair[0]
            )));
        }
        Ok(handler)
    }
}

fn step<B, C, U, S, M, F, Fut>(matcher: M, callback: F) -> Box<dyn Inner<B, C, U>>
where
    B: 'static,
    C: 'static,
    U: 'static,
    S: ConversationState,
    M: Handler<B, C, U> + 'static,
    F: Fn(Context<B, C, U>) -> Fut + 'static,
    Fut: Future<Output = StateResult<S>> + 'static,
{
    let callback: StepCallback<B, C, U> = Rc::new(move |ctx| {
        let next = callback(ctx);
        Box::pin(async move {
            next.await?
                .try_map(|s| state_value(&s))
                .map_err(HandlerError::from)
        })
    });
    Box::new(Step {
        matcher: Box::new(matcher),
        callback,
    })
}

/// When a stored conversation entry times out (milliseconds since the Unix epoch), if it was
/// stored with a deadline. `stored` is the entry's data (what [`Context::entry`] or a
/// decoded [`codec`] envelope holds). A Durable Object host uses it to set its alarm.
pub fn deadline(stored: &Value) -> Option<i64> {
    ConversationEntry::from_stored(stored).expires_at_ms
}

/// What [`expire_due`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expired {
    /// The conversation entries deleted because their deadline had passed.
    pub removed: Vec<Key>,
    /// The earliest deadline still ahead, for the next alarm.
    pub next_deadline: Option<i64>,
}

/// Deletes every stored conversation entry whose deadline is at or before `now_ms`, in one
/// write, and reports the next deadline. For a Durable Object alarm (or any periodic sweep),
/// so that timed-out conversations disappear from storage and export without waiting for
/// another update.
///
/// TIMEOUT handlers do not run here: they need an update to match and answer, and an alarm
/// has none. Conversations swept this way simply end, as if their TIMEOUT handlers matched
/// nothing. Entries that cannot be decoded are left alone (the update that loads one reports
/// it). Lists every conversation key: meant for a store where listing is cheap (a Durable
/// Object), not for KV.
pub async fn expire_due(persistence: &dyn Persistence, now_ms: i64) -> Result<Expired> {
    let keys = persistence.list(KeyKind::Conversation).await?;
    let values = persistence.read(&keys).await?;
    let mut expired = Expired::default();
    for (key, raw) in keys.into_iter().zip(values) {
        let Some(deadline) = raw
            .and_then(|raw| codec::decode(&raw).ok())
            .and_then(|stored| deadline(&stored.data))
        else {
            continue;
        };
        if deadline <= now_ms {
            expired.removed.push(key);
        } else if expired.next_deadline.is_none_or(|next| deadline < next) {
            expired.next_deadline = Some(deadline);
        }
    }
    if !expired.removed.is_empty() {
        let changes: Vec<Change> = expired
            .removed
            .iter()
            .cloned()
            .map(Change::Delete)
            .collect();
        persistence.write(&changes).await?;
        persistence.flush().await?;
    }
    Ok(expired)
}
