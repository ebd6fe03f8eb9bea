//! [`ConversationHandler`]: the conversation key of an update, its stored state, which handler
//! takes the update (`select`) and running it (`run`), as PTB's `check_update` and
//! `handle_update`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use futures::future::LocalBoxFuture;
use serde_json::{json, Value};

use super::step::{first_match, Handlers, Inner};
use super::{is_ended, Branch, ConversationBuilder, ConversationState, Next, Route, StateResult};
use crate::context::{Context, Data, DataType, Match};
use crate::error::{Error, HandlerResult, Result};
use crate::handlers::Handler;
use crate::persistence::dict::{self, conversation_key, ConversationEntry};
use crate::persistence::Key;
use crate::types::{Update, UpdateKind};

/// PTB's `ConversationHandler`: entry points, states, fallbacks, with state per conversation
/// key (see the [module docs](super) for the semantics and where the state lives).
///
/// `S` is the state type ([`ConversationState`]); `B`, `C`, `U` are the Application's data
/// types. Build with [`ConversationHandler::builder`].
pub struct ConversationHandler<B = Data, C = Data, U = Data, S = String> {
    pub(super) name: Option<String>,
    pub(super) persistent: bool,
    pub(super) per_chat: bool,
    pub(super) per_user: bool,
    pub(super) per_message: bool,
    pub(super) allow_reentry: bool,
    pub(super) timeout_ms: Option<i64>,
    pub(super) entries: Handlers<B, C, U>,
    /// Each state (serialized) with its handlers, in the order first added.
    pub(super) states: Vec<(Value, Handlers<B, C, U>)>,
    pub(super) fallbacks: Handlers<B, C, U>,
    pub(super) timeout_handlers: Vec<Box<dyn Handler<B, C, U>>>,
    pub(super) map_to_parent: Vec<(Next<Value>, Next<Value>)>,
    /// States of a conversation that is not persistent, by conversation key.
    pub(super) memory: RefCell<BTreeMap<String, Value>>,
    pub(super) state_type: PhantomData<fn() -> S>,
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

    /// [`Handler::check_stored`]: the entries of this conversation's name are its own; those
    /// of nested conversations are theirs.
    fn check_owned(&self, key: &Key, value: &Value) -> Option<Result<()>> {
        if let Key::Conversation { name, key: entry } = key {
            if self.name.as_deref() == Some(name.as_str()) {
                return Some(self.check_entry(key, entry, value));
            }
        }
        let inner = self.states.iter().flat_map(|(_, handlers)| handlers);
        self.entries
            .iter()
            .chain(inner)
            .chain(&self.fallbacks)
            .find_map(|handler| handler.check_stored(key, value))
            .or_else(|| {
                self.timeout_handlers
                    .iter()
                    .find_map(|handler| handler.check_stored(key, value))
            })
    }

    /// Whether an imported entry of this conversation, at conversation key `entry`, is one it
    /// can carry on from: a key of the shape its `per_*` settings make, and a state it has
    /// handlers for (an update in any other state reaches only the fallbacks: the user would
    /// be stuck) that fits `S`.
    fn check_entry(&self, key: &Key, entry: &str, value: &Value) -> Result<()> {
        let path = dict::entry_path(key);
        let name = self.name.as_deref().unwrap_or_default();
        let fail = |why: String| Err(Error::Invalid(format!("{path}: {why}")));
        if !self.persistent {
            return fail(format!(
                "conversation {name:?} is not persistent: its states live in the Application's \
                 memory, so an imported one would never be read"
            ));
        }
        let mut shape = Vec::new();
        if self.per_chat {
            shape.push(("chat_id", false));
        }
        if self.per_user {
            shape.push(("user_id", false));
        }
        if self.per_message {
            shape.push(("message_id", true));
        }
        let parts: Vec<Value> = serde_json::from_str(entry).unwrap_or_default();
        let fits = parts.len() == shape.len()
            && parts
                .iter()
                .zip(&shape)
                .all(|(part, (_, text_too))| part.is_i64() || (*text_too && part.is_string()));
        if !fits {
            let names: Vec<&str> = shape.iter().map(|(name, _)| *name).collect();
            return fail(format!(
                "key {} does not fit conversation {name:?}, which is keyed by [{}]",
                dict::shown(entry),
                names.join(", ")
            ));
        }
        let state = ConversationEntry::from_stored(value).state;
        if is_ended(&state) {
            return Ok(());
        }
        let declared = self.states.iter().any(|(s, _)| *s == state);
        if declared && S::deserialize(&state).is_ok() {
            return Ok(());
        }
        const LISTED: usize = 10;
        let mut states: Vec<String> = self
            .states
            .iter()
            .take(LISTED)
            .map(|(s, _)| s.to_string())
            .collect();
        if self.states.len() > LISTED {
            states.push(format!("and {} more", self.states.len() - LISTED));
        }
        fail(format!(
            "state {} is not a state of conversation {name:?} (its states: {})",
            dict::shown_json(&state),
            states.join(", ")
        ))
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
        let route = |branch: Branch, inner: Match| Match {
            route: Some(Route {
                expired,
                branch,
                inner: inner.route.map(Box::new),
            }),
            args: inner.args,
            matches: inner.matches,
        };

        if state.is_none() || self.allow_reentry {
            if let Some((index, inner)) = first_match(&self.entries, ctx) {
                return Some(route(Branch::Entry(index), inner));
            }
        }
        let Some(state) = state else {
            let timeout_matched = expired
                && self
                    .timeout_handlers
                    .iter()
                    .any(|h| h.check_update(ctx).is_some());
            return timeout_matched.then(|| route(Branch::TimeoutOnly, Match::default()));
        };
        if let Some((index, inner)) = first_match(self.handlers_of(&state), ctx) {
            return Some(route(Branch::State(index), inner));
        }
        first_match(&self.fallbacks, ctx)
            .map(|(index, inner)| route(Branch::Fallback(index), inner))
    }

    /// PTB's `handle_update`: runs what `select` chose and stores the new state. Answers what
    /// a parent conversation does next (a [`map_to_parent`](ConversationBuilder::map_to_parent)
    /// target, else [`Next::Stay`]).
    async fn run(&self, ctx: Context<B, C, U>, matched: Match) -> StateResult<Value> {
        let Some(key) = self.key(ctx.update()) else {
            return Ok(Next::Stay);
        };
        let Some(Route {
            expired,
            branch,
            inner: inner_route,
        }) = matched.route
        else {
            return Err("conversation: the match does not come from this conversation".into());
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
            if branch == Branch::TimeoutOnly {
                return Ok(Next::Stay);
            }
            // Otherwise the update is an entry point: in PTB the conversation has ended by the
            // time it arrives, so it starts a new one.
        }
        let inner = match branch {
            Branch::Entry(index) => self.entries.get(index),
            Branch::State(index) => state.as_ref().and_then(|s| self.handlers_of(s).get(index)),
            Branch::Fallback(index) => self.fallbacks.get(index),
            // A TimeoutOnly route is always an expired one, which has returned above.
            Branch::TimeoutOnly => None,
        };
        let Some(inner) = inner else {
            return Err("conversation: the matched handler is gone".into());
        };
        let inner_match = Match {
            args: matched.args,
            matches: matched.matches,
            route: inner_route.map(|route| *route),
        };
        let next = inner.run(ctx.with_match(&inner_match), inner_match).await?;
        self.apply(&ctx, &key, state, next)
    }

    /// The conversation `key` at its deadline, with no update (`ctx` holds the one that last
    /// moved it): runs every TIMEOUT handler that matches that update, as PTB's
    /// `_trigger_timeout`, and ends the conversation whatever they do; the first error is
    /// answered after. Nothing when the conversation moved on meanwhile (a later deadline) or
    /// ended.
    async fn time_out(&self, ctx: Context<B, C, U>, key: &str) -> HandlerResult {
        let Some(entry) = self.load(&ctx, key) else {
            return Ok(());
        };
        if entry.expires_at_ms.is_none_or(|at| ctx.now_ms() < at) {
            return Ok(());
        }
        let mut failure = None;
        for handler in &self.timeout_handlers {
            if let Some(m) = handler.check_update(&ctx) {
                if let Err(e) = handler.handle(ctx.with_match(&m), m).await {
                    failure.get_or_insert(e);
                }
            }
        }
        self.store(&ctx, key, None)?;
        failure.map_or(Ok(()), Err)
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
        let deadline = self.timeout_ms.map(|t| ctx.now_ms().saturating_add(t));
        // TIMEOUT handlers run at the deadline with this update, as PTB's job runs them.
        let keep_update = deadline.is_some() && !self.timeout_handlers.is_empty();
        let entry = state.map(|state| ConversationEntry {
            state,
            expires_at_ms: deadline,
            last_update: keep_update.then(|| ctx.update().raw.clone()),
        });
        self.store(ctx, key, entry)?;
        Ok(Next::Stay)
    }
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

    fn check_stored(&self, key: &Key, value: &Value) -> Option<Result<()>> {
        self.check_owned(key, value)
    }

    fn expire<'a>(
        &'a self,
        key: &'a Key,
        ctx: Context<B, C, U>,
    ) -> Option<LocalBoxFuture<'a, HandlerResult>> {
        let Key::Conversation { name, key } = key else {
            return None;
        };
        if !self.persistent || self.name.as_deref() != Some(name.as_str()) {
            return None;
        }
        Some(Box::pin(self.time_out(ctx, key)))
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

    /// A nested conversation may contain handlers of any kind.
    fn update_kinds(&self) -> Option<&'static [UpdateKind]> {
        None
    }

    fn check_stored(&self, key: &Key, value: &Value) -> Option<Result<()>> {
        self.check_owned(key, value)
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
