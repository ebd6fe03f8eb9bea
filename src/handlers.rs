//! Handlers, as in PTB: each decides whether an update is for it ([`Handler::check_update`])
//! and then runs its callback. Callbacks are plain `async fn(Context) -> HandlerResult`.

use std::future::Future;
use std::ops::{BitAnd, BitOr, Not};
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use regex_lite::Regex;
use serde_json::Value;

use crate::callback_data::CallbackData;
use crate::context::{Context, DataType, Match};
use crate::error::{Error, HandlerResult, Result};
use crate::persistence::Key;
use crate::types::{ChatType, Update, UpdateKind};

/// A callback, boxed: what the handlers store.
pub type Callback<B, C, U> = Rc<dyn Fn(Context<B, C, U>) -> LocalBoxFuture<'static, HandlerResult>>;

/// Boxes an `async fn(Context) -> HandlerResult` (or a closure returning such a future).
pub fn callback<B, C, U, F, Fut>(f: F) -> Callback<B, C, U>
where
    F: Fn(Context<B, C, U>) -> Fut + 'static,
    Fut: Future<Output = HandlerResult> + 'static,
{
    Rc::new(move |ctx| Box::pin(f(ctx)))
}

/// Decides whether an update is for it and handles it.
pub trait Handler<B, C, U> {
    /// Adds the untyped entries (e.g. conversation states) this handler needs to decide about
    /// `update`; the Application reads them with everything else, in one read, before any
    /// handler runs. The default needs none.
    fn keys(&self, _update: &Update, _out: &mut Vec<Key>) {}

    /// Whether this handler handles the update, and what matched. Must not have effects: the
    /// Application asks handlers in order until one answers `Some`.
    fn check_update(&self, ctx: &Context<B, C, U>) -> Option<Match>;

    /// Handles the update; `matched` is what `check_update` answered.
    fn handle<'a>(
        &'a self,
        ctx: Context<B, C, U>,
        matched: Match,
    ) -> LocalBoxFuture<'a, HandlerResult>;

    /// For an import ([`Application::import`](crate::Application::import)): checks a stored
    /// entry this handler owns before anything is written. `None` when `key` is not this
    /// handler's (the default: most handlers keep nothing of their own in storage);
    /// `Some(Err(..))` an [`Error::Invalid`] naming the entry's path in the document
    /// ([`dict::entry_path`](crate::persistence::dict::entry_path)) and why this handler could
    /// not use it. A [`ConversationHandler`](crate::ConversationHandler) owns the entries of
    /// its name and refuses states it does not have.
    fn check_stored(&self, _key: &Key, _value: &Value) -> Option<Result<()>> {
        None
    }

    /// At a conversation's deadline, with no update (a host's timer,
    /// [`Application::expire_conversation`](crate::Application::expire_conversation)): when
    /// the stored conversation entry `key` is this handler's, runs its TIMEOUT handlers with
    /// `ctx` (whose update is the one that last moved the conversation) and ends it. `None`
    /// when `key` is not this handler's (the default).
    fn expire<'a>(
        &'a self,
        _key: &'a Key,
        _ctx: Context<B, C, U>,
    ) -> Option<LocalBoxFuture<'a, HandlerResult>> {
        None
    }

    /// The only kinds of update this handler can match, or `None` when any kind may match.
    /// Handlers that contain others use it to refuse configurations that can never match, e.g.
    /// a [`ConversationHandler`](crate::ConversationHandler) with `per_message(true)` (which
    /// only callback queries reach) that is given a command. The default says nothing.
    fn update_kinds(&self) -> Option<&'static [UpdateKind]> {
        None
    }
}

/// A condition on an update, composable with `&`, `|` and `!` (PTB's `filters`). A filter
/// that matches may carry regex captures; `&` keeps the first non-empty ones.
#[derive(Clone)]
pub struct Filter(Rc<FilterFn>);

/// A filter's test: `Some(captures)` when it matches.
type FilterFn = dyn Fn(&Update) -> Option<Vec<Option<String>>>;

impl Filter {
    /// A filter from a predicate.
    pub fn new(predicate: impl Fn(&Update) -> bool + 'static) -> Self {
        Self(Rc::new(move |u| predicate(u).then(Vec::new)))
    }

    /// Whether the filter matches, with its captures.
    pub fn check(&self, update: &Update) -> Option<Vec<Option<String>>> {
        (self.0)(update)
    }
}

impl BitAnd for Filter {
    type Output = Filter;
    fn bitand(self, other: Filter) -> Filter {
        Filter(Rc::new(move |u| {
            let first = self.check(u)?;
            let second = other.check(u)?;
            Some(if first.is_empty() { second } else { first })
        }))
    }
}

impl BitOr for Filter {
    type Output = Filter;
    fn bitor(self, other: Filter) -> Filter {
        Filter(Rc::new(move |u| self.check(u).or_else(|| other.check(u))))
    }
}

impl Not for Filter {
    type Output = Filter;
    fn not(self) -> Filter {
        Filter(Rc::new(move |u| match self.check(u) {
            Some(_) => None,
            None => Some(Vec::new()),
        }))
    }
}

/// Ready-made filters, applied to the update's message (message, edited message, channel
/// post, edited channel post). What a message carries (photo, location, ...) is tested by
/// the filters derived from the generated types (`has`, `photo`, `location`, ...).
pub mod filters {
    use super::*;

    pub use crate::content_filters::*;

    fn text_of(update: &Update) -> Option<&str> {
        update.message_like()?.text.as_deref()
    }

    /// Every update.
    pub fn all() -> Filter {
        Filter::new(|_| true)
    }

    /// Messages with text (commands included, as PTB's `filters.TEXT`).
    pub fn text() -> Filter {
        Filter::new(|u| text_of(u).is_some())
    }

    /// Messages whose text is exactly `expected`.
    pub fn text_eq(expected: impl Into<String>) -> Filter {
        let expected = expected.into();
        Filter::new(move |u| text_of(u) == Some(expected.as_str()))
    }

    /// Messages whose text is one of `options` (PTB's `filters.Text([...])`).
    pub fn text_in<S: Into<String>>(options: impl IntoIterator<Item = S>) -> Filter {
        let options: Vec<String> = options.into_iter().map(Into::into).collect();
        Filter::new(move |u| text_of(u).is_some_and(|t| options.iter().any(|o| o == t)))
    }

    /// Messages that start with a bot command (PTB's `filters.COMMAND`).
    pub fn command() -> Filter {
        Filter::new(|u| u.message_like().is_some_and(|m| m.command().is_some()))
    }

    /// Messages whose text matches `pattern` (searched, as PTB's `filters.Regex`); the
    /// captures reach the callback as `ctx.matches`. An invalid pattern is an error here, at
    /// build time.
    pub fn regex(pattern: &str) -> Result<Filter> {
        let regex = compile(pattern)?;
        Ok(Filter(Rc::new(move |u| captures(&regex, text_of(u)?))))
    }

    /// The message in a group that says it became a supergroup (`migrate_to_chat_id`), the
    /// moment to move its chat_data with `ctx.migrate_chat_data` (PTB's
    /// `filters.StatusUpdate.MIGRATE` matches this one and the supergroup's first message).
    pub fn migrated_to_supergroup() -> Filter {
        Filter::new(|u| {
            u.message
                .as_ref()
                .is_some_and(|m| m.migrate_to_chat_id.is_some())
        })
    }

    /// Updates from a chat of this type.
    pub fn chat_type(kind: ChatType) -> Filter {
        Filter::new(move |u| u.effective_chat().is_some_and(|c| c.kind == kind))
    }

    /// Updates from private chats.
    pub fn private() -> Filter {
        chat_type(ChatType::Private)
    }

    /// Updates from groups and supergroups (PTB's `filters.ChatType.GROUPS`).
    pub fn groups() -> Filter {
        chat_type(ChatType::Group) | chat_type(ChatType::Supergroup)
    }

    /// Only new messages, not edits or channel posts.
    pub fn new_message() -> Filter {
        Filter::new(|u| u.message.is_some())
    }
}

fn compile(pattern: &str) -> Result<Regex> {
    Regex::new(pattern).map_err(|e| Error::Config(format!("invalid regex {pattern:?}: {e}")))
}

fn captures(regex: &Regex, text: &str) -> Option<Vec<Option<String>>> {
    let caps = regex.captures(text)?;
    Some(
        caps.iter()
            .map(|m| m.map(|m| m.as_str().to_string()))
            .collect(),
    )
}

/// Handles `/command` messages (new and edited, as PTB), also `/command@<bot username>`.
/// Command names compare case-insensitively; the words after the command reach the callback
/// as `ctx.args`.
pub struct CommandHandler<B, C, U> {
    commands: Vec<String>,
    filter: Option<Filter>,
    callback: Callback<B, C, U>,
}

impl<B: DataType, C: DataType, U: DataType> CommandHandler<B, C, U> {
    /// Handles `/command` with `callback`. `command` may list several names separated by
    /// spaces or commas (`"start help"`).
    pub fn new<F, Fut>(command: &str, callback: F) -> Self
    where
        F: Fn(Context<B, C, U>) -> Fut + 'static,
        Fut: Future<Output = HandlerResult> + 'static,
    {
        Self {
            commands: command
                .split([' ', ','])
                .filter(|c| !c.is_empty())
                .map(|c| c.trim_start_matches('/').to_lowercase())
                .collect(),
            filter: None,
            callback: self::callback(callback),
        }
    }

    /// Handles only updates that also pass `filter`.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }
}

/// Whether `update` is the command `commands`, with its arguments. A command addressed to
/// another bot (`/cmd@other_bot`) does not match; one addressed with `@` while the bot's own
/// username is unknown does not match either.
pub(crate) fn match_command(
    update: &Update,
    commands: &[String],
    username: Option<&str>,
) -> Option<Vec<String>> {
    let message = update.message.as_ref().or(update.edited_message.as_ref())?;
    let (name, addressed) = message.command()?;
    if let Some(addressed) = addressed {
        if !username.is_some_and(|u| u.eq_ignore_ascii_case(addressed)) {
            return None;
        }
    }
    let name = name.to_lowercase();
    if !commands.contains(&name) {
        return None;
    }
    let text = message.text.as_deref().unwrap_or("");
    let rest = text
        .split_once(char::is_whitespace)
        .map_or("", |(_, rest)| rest);
    Some(rest.split_whitespace().map(String::from).collect())
}

impl<B: DataType, C: DataType, U: DataType> Handler<B, C, U> for CommandHandler<B, C, U> {
    fn check_update(&self, ctx: &Context<B, C, U>) -> Option<Match> {
        let update = ctx.update();
        let args = match_command(update, &self.commands, ctx.bot_username())?;
        let matches = match &self.filter {
            Some(filter) => filter.check(update)?,
            None => Vec::new(),
        };
        Some(Match {
            args,
            matches,
            route: None,
        })
    }

    fn handle<'a>(&'a self, ctx: Context<B, C, U>, _: Match) -> LocalBoxFuture<'a, HandlerResult> {
        (self.callback)(ctx)
    }

    /// New and edited messages: commands in channel posts are not matched.
    fn update_kinds(&self) -> Option<&'static [UpdateKind]> {
        Some(&[UpdateKind::Message, UpdateKind::EditedMessage])
    }
}

/// Handles message updates that pass a [`Filter`] (PTB's `MessageHandler`).
pub struct MessageHandler<B, C, U> {
    filter: Filter,
    callback: Callback<B, C, U>,
}

impl<B: DataType, C: DataType, U: DataType> MessageHandler<B, C, U> {
    /// Handles messages that pass `filter`.
    pub fn new<F, Fut>(filter: Filter, callback: F) -> Self
    where
        F: Fn(Context<B, C, U>) -> Fut + 'static,
        Fut: Future<Output = HandlerResult> + 'static,
    {
        Self {
            filter,
            callback: self::callback(callback),
        }
    }
}

impl<B: DataType, C: DataType, U: DataType> Handler<B, C, U> for MessageHandler<B, C, U> {
    fn check_update(&self, ctx: &Context<B, C, U>) -> Option<Match> {
        ctx.update().message_like()?;
        let matches = self.filter.check(ctx.update())?;
        Some(Match {
            matches,
            ..Match::default()
        })
    }

    fn handle<'a>(&'a self, ctx: Context<B, C, U>, _: Match) -> LocalBoxFuture<'a, HandlerResult> {
        (self.callback)(ctx)
    }

    fn update_kinds(&self) -> Option<&'static [UpdateKind]> {
        Some(UpdateKind::MESSAGE_LIKE)
    }
}

/// A test on resolved callback data.
type DataPredicate = dyn Fn(&Value) -> bool;

/// Handles button presses (PTB's `CallbackQueryHandler`), optionally only those whose data
/// matches a pattern or a predicate, or only those whose arbitrary callback data could not be
/// resolved.
pub struct CallbackQueryHandler<B, C, U> {
    pattern: Option<Regex>,
    data_where: Option<Rc<DataPredicate>>,
    invalid_only: bool,
    callback: Callback<B, C, U>,
}

impl<B: DataType, C: DataType, U: DataType> CallbackQueryHandler<B, C, U> {
    /// Handles every callback query.
    pub fn new<F, Fut>(callback: F) -> Self
    where
        F: Fn(Context<B, C, U>) -> Fut + 'static,
        Fut: Future<Output = HandlerResult> + 'static,
    {
        Self {
            pattern: None,
            data_where: None,
            invalid_only: false,
            callback: self::callback(callback),
        }
    }

    /// Handles only queries whose (resolved) data passes `predicate`, as PTB's callable
    /// `pattern`. With arbitrary callback data off the data is a JSON string.
    pub fn data_where(mut self, predicate: impl Fn(&Value) -> bool + 'static) -> Self {
        self.data_where = Some(Rc::new(predicate));
        self
    }

    /// Handles only presses whose arbitrary callback data could not be resolved (unknown,
    /// dropped, expired, tampered with): PTB's `pattern=InvalidCallbackData`. See
    /// [`crate::callback_data`].
    pub fn invalid_data(mut self) -> Self {
        self.invalid_only = true;
        self
    }

    /// Handles only queries whose data matches `pattern` (searched with regex, as PTB's
    /// `re.match` anchors at the start: write `^` yourself to anchor). With arbitrary callback
    /// data, only string data can match, as in PTB. Captures reach the
    /// callback as `ctx.matches`.
    pub fn pattern(mut self, pattern: &str) -> Result<Self> {
        self.pattern = Some(compile(pattern)?);
        Ok(self)
    }
}

impl<B: DataType, C: DataType, U: DataType> Handler<B, C, U> for CallbackQueryHandler<B, C, U> {
    fn check_update(&self, ctx: &Context<B, C, U>) -> Option<Match> {
        ctx.update().callback_query.as_ref()?;
        // Resolved through arbitrary callback data when that is on; the raw string otherwise.
        let data = ctx.callback_data();
        if self.invalid_only {
            return matches!(data, Some(CallbackData::Invalid(_))).then(Match::default);
        }
        let resolved = match &data {
            Some(CallbackData::Data(value)) => Some(value),
            _ => None,
        };
        if let Some(predicate) = &self.data_where {
            if !predicate(resolved?) {
                return None;
            }
        }
        let matches = match &self.pattern {
            Some(regex) => captures(regex, resolved?.as_str()?)?,
            None => Vec::new(),
        };
        Some(Match {
            matches,
            ..Match::default()
        })
    }

    fn handle<'a>(&'a self, ctx: Context<B, C, U>, _: Match) -> LocalBoxFuture<'a, HandlerResult> {
        (self.callback)(ctx)
    }

    fn update_kinds(&self) -> Option<&'static [UpdateKind]> {
        Some(&[UpdateKind::CallbackQuery])
    }
}

/// Handles any update that passes a predicate; with [`TypeHandler::all`], every update (a
/// catch-all, as PTB's `TypeHandler(Update, ...)`).
pub struct TypeHandler<B, C, U> {
    predicate: Rc<dyn Fn(&Update) -> bool>,
    callback: Callback<B, C, U>,
}

impl<B: DataType, C: DataType, U: DataType> TypeHandler<B, C, U> {
    /// Handles every update.
    pub fn all<F, Fut>(callback: F) -> Self
    where
        F: Fn(Context<B, C, U>) -> Fut + 'static,
        Fut: Future<Output = HandlerResult> + 'static,
    {
        Self::new(|_| true, callback)
    }

    /// Handles every update of `kind`: PTB's handler per kind (`PollHandler`,
    /// `InlineQueryHandler`, `ChatMemberHandler`, `PreCheckoutQueryHandler`,
    /// `ChatJoinRequestHandler`, `MessageReactionHandler`, `ChatBoostHandler`, ...) in one. The
    /// callback reads the content typed from `ctx.view()` (`.poll()`, `.inline_query()`, ...).
    /// A kind Telegram adds later is `UpdateKind::Other(name)`.
    pub fn kind<F, Fut>(kind: UpdateKind, callback: F) -> Self
    where
        F: Fn(Context<B, C, U>) -> Fut + 'static,
        Fut: Future<Output = HandlerResult> + 'static,
    {
        Self::new(move |u| u.kind().as_ref() == Some(&kind), callback)
    }

    /// Handles updates for which `predicate` holds (e.g. `|u| u.kind().is_some_and(|k| k.as_str() == "poll")`).
    pub fn new<P, F, Fut>(predicate: P, callback: F) -> Self
    where
        P: Fn(&Update) -> bool + 'static,
        F: Fn(Context<B, C, U>) -> Fut + 'static,
        Fut: Future<Output = HandlerResult> + 'static,
    {
        Self {
            predicate: Rc::new(predicate),
            callback: self::callback(callback),
        }
    }
}

impl<B: DataType, C: DataType, U: DataType> Handler<B, C, U> for TypeHandler<B, C, U> {
    fn check_update(&self, ctx: &Context<B, C, U>) -> Option<Match> {
        (self.predicate)(ctx.update()).then(Match::default)
    }

    fn handle<'a>(&'a self, ctx: Context<B, C, U>, _: Match) -> LocalBoxFuture<'a, HandlerResult> {
        (self.callback)(ctx)
    }
}
