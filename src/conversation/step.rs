//! What a conversation holds for each entry point, state handler and fallback: a step (a
//! matcher and a state-returning callback) or a nested conversation, behind one trait.

use std::future::Future;
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use serde_json::Value;

use super::{state_value, ConversationState, StateResult};
use crate::context::{Context, Match};
use crate::error::HandlerError;
use crate::handlers::Handler;
use crate::persistence::Key;
use crate::types::{Update, UpdateKind};

/// A state-returning callback with the state already serialized.
type StepCallback<B, C, U> =
    Rc<dyn Fn(Context<B, C, U>) -> LocalBoxFuture<'static, StateResult<Value>>>;

/// One handler inside a conversation: a step (matcher + callback) or a nested conversation.
pub(super) trait Inner<B, C, U> {
    fn keys(&self, update: &Update, out: &mut Vec<Key>);
    fn check(&self, ctx: &Context<B, C, U>) -> Option<Match>;
    /// Runs it; answers what the containing conversation does next.
    fn run<'a>(
        &'a self,
        ctx: Context<B, C, U>,
        matched: Match,
    ) -> LocalBoxFuture<'a, StateResult<Value>>;
    /// The only kinds of update it can match, `None` for any ([`Handler::update_kinds`]).
    fn update_kinds(&self) -> Option<&'static [UpdateKind]>;
    /// The names of the persistent conversations in it, for the uniqueness check.
    fn names(&self, out: &mut Vec<String>);
    /// [`Handler::check_stored`] of what it holds.
    fn check_stored(&self, key: &Key, value: &Value) -> Option<crate::error::Result<()>>;
}

/// One list of a conversation: its entry points, one state's handlers, or its fallbacks.
pub(super) type Handlers<B, C, U> = Vec<Box<dyn Inner<B, C, U>>>;

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

    fn update_kinds(&self) -> Option<&'static [UpdateKind]> {
        self.matcher.update_kinds()
    }

    fn names(&self, _: &mut Vec<String>) {}

    fn check_stored(&self, key: &Key, value: &Value) -> Option<crate::error::Result<()>> {
        self.matcher.check_stored(key, value)
    }
}

/// Boxes a matcher and a typed callback as a step. The state the callback answers is
/// serialized, and refused if it would read back as something else ([`state_value`]).
pub(super) fn step<B, C, U, S, M, F, Fut>(matcher: M, callback: F) -> Box<dyn Inner<B, C, U>>
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

/// The first of `handlers` that matches the update, with its index.
pub(super) fn first_match<B, C, U>(
    handlers: &[Box<dyn Inner<B, C, U>>],
    ctx: &Context<B, C, U>,
) -> Option<(usize, Match)> {
    handlers
        .iter()
        .enumerate()
        .find_map(|(index, handler)| handler.check(ctx).map(|m| (index, m)))
}
