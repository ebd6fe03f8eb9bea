//! [`ConversationBuilder`]: adds a conversation's steps and checks, at build time, that the
//! configuration can work.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;

use super::step::{step, Inner};
use super::{state_value, ConversationHandler, ConversationState, Next, StateResult};
use crate::context::{Context, DataType};
use crate::error::{Error, Result};
use crate::handlers::Handler;
use crate::types::UpdateKind;

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
    /// own callback runs, its result is not a state). At the deadline of
    /// [`conversation_timeout`](Self::conversation_timeout), *every* timeout handler that
    /// matches the conversation's last update runs, in order, and the conversation ends, as in
    /// PTB: a Durable Object's alarm does it with no update
    /// ([`Application::expire_conversation`](crate::Application::expire_conversation)). Where
    /// no alarm came first (KV, D1), the first update after the deadline does it, and the
    /// handlers get that late update.
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
            // per_message keys a conversation by the pressed button's message, which only
            // callback queries have: a handler that cannot match one would never run.
            for (place, kinds) in kinds_by_place(&handler) {
                let Some(kinds) = kinds else {
                    continue; // any kind may match, callback queries included
                };
                if kinds.contains(&UpdateKind::CallbackQuery) {
                    continue;
                }
                let kinds: Vec<&str> = kinds.iter().map(UpdateKind::as_str).collect();
                return Err(config(format!(
                    "per_message(true) keys conversations by the pressed button's message, so only \
                     callback queries can reach them, but {place} matches only {} updates and would \
                     never run: match callback queries there (on::callback_query()) or use \
                     per_message(false)",
                    kinds.join(", ")
                )));
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

/// Each handler of `handler` (those inside nested conversations aside) by where it is, with
/// the only kinds of update it can match (`None`: any).
fn kinds_by_place<B, C, U, S>(
    handler: &ConversationHandler<B, C, U, S>,
) -> Vec<(String, Option<&'static [UpdateKind]>)> {
    let mut places = Vec::new();
    for (i, h) in handler.entries.iter().enumerate() {
        places.push((format!("entry point {i}"), h.update_kinds()));
    }
    for (state, handlers) in &handler.states {
        for (i, h) in handlers.iter().enumerate() {
            places.push((format!("handler {i} of state {state}"), h.update_kinds()));
        }
    }
    for (i, h) in handler.fallbacks.iter().enumerate() {
        places.push((format!("fallback {i}"), h.update_kinds()));
    }
    for (i, h) in handler.timeout_handlers.iter().enumerate() {
        places.push((format!("timeout handler {i}"), h.update_kinds()));
    }
    places
}
