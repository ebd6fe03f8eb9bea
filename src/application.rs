//! [`Application`]: PTB's Application for one webhook request at a time.
//!
//! [`Application::process_update`] is the one entry. Its path, in order:
//! 1. resolve the bot's username if the update addresses a command with `@` and it is unknown
//!    (one cached `getMe`);
//! 2. **load**: one [`Persistence::read`] of bot_data, the effective chat's and user's data,
//!    the handlers' conversation entries and, with arbitrary callback data, the pressed
//!    keyboard's entry and the index of the chat's keyboards (only kinds that
//!    [`PersistenceInput`] stores);
//! 3. **handlers**: groups in ascending order; in each group the first handler whose
//!    `check_update` matches runs; [`Context::stop_processing`] ends the walk;
//! 4. **flush**: with arbitrary callback data, the keyboards made are bound to where they were
//!    sent and the chat's least recently used ones beyond `maxsize` evicted
//!    ([`crate::callback_data`]); then one [`Persistence::write`] of every entry whose
//!    serialized value changed, the deletes of dropped ones and the [`Outbox`] of the Bot API
//!    calls the handlers queued (nothing at all when nothing changed and nothing was queued),
//!    then [`Persistence::flush`];
//! 5. **send** ([`Application::process_update`]; a host that holds a lock for the update calls
//!    [`Application::handle_update`] and [`Application::deliver`] itself, after letting go):
//!    the queued calls, in order, then the outbox's delete ([`crate::outbox`]).
//!
//! A handler error goes to the error handlers, and the walk goes on with the next group, as in
//! PTB (an error handler ends it with [`Context::stop_processing`], PTB's
//! `ApplicationHandlerStop`). Data is changed in place, so what the handlers changed, the
//! failing one up to its error and the error handlers included, is written at the end like any
//! update's changes. [`OnHandlerError`] says whether the webhook then acknowledges the update
//! (and the changes are written) or asks Telegram to deliver it again (and nothing is written:
//! the redelivered update runs from the start, and writing this attempt too would apply it
//! twice).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

use futures::future::LocalBoxFuture;

use crate::bot::{Bot, BotApi};
use crate::callback_data::{self, CallbackDataSettings};
use crate::context::{Context, Data, DataType};
use crate::error::{Error, HandlerError, HandlerResult, Result};
use crate::handlers::Handler;
use crate::outbox::{self, Call, Delivery, FailedCall, Outbox};
use crate::persistence::dict::{self, ImportOptions};
use crate::persistence::{Change, Key, Persistence, PersistenceInput};
use crate::sources::{system_clock, system_random, Clock, RandomSource};
use crate::types::Update;
use crate::update_state::{Migration, Migrations, Settings, UpdateState};

/// Handler groups by number, each in the order handlers were added.
type Groups<B, C, U> = BTreeMap<i32, Vec<Box<dyn Handler<B, C, U>>>>;

/// What the webhook answers after a handler failed, and so whether the update's changes are
/// written: an acknowledged update is done with, so its changes are written; an update that is
/// to be delivered again writes nothing, since the redelivery applies it from the start.
///
/// Whatever the policy, a handler error that is a transient Bot API failure (network, time-out,
/// 5xx, 429: [`BotApiErrorKind::is_transient`](crate::BotApiErrorKind::is_transient)) fails the
/// update: nothing is written and the webhook answers 5xx, so that Telegram delivers it again.
/// A network blip never drops an update, nor keeps its data changes without its reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnHandlerError {
    /// Answer 200 and write the update's changes, the failing handler's and the error
    /// handlers' included, as PTB keeps them. A poison update (one that fails every time)
    /// cannot block the chat's queue. The default, as in PTB, where an error in a handler
    /// does not stop the bot.
    #[default]
    Acknowledge,
    /// Answer 5xx and write nothing: Telegram delivers the update again (with back-off, for
    /// up to 24 hours), and holds back the chat's later updates meanwhile; the redelivery runs
    /// every handler again, so writing this attempt's changes would apply them twice. For bots
    /// whose handlers fail only transiently (an unreachable API) and must not lose updates.
    /// Side effects are not undone: messages the handlers sent are sent again.
    Retry,
}

/// A job callback ([`ApplicationBuilder::job`]): gets the run's context, whose
/// [`Context::job`] is the job.
pub type JobCallback<B, C, U> =
    Rc<dyn Fn(Context<B, C, U>) -> LocalBoxFuture<'static, HandlerResult>>;

/// The job callbacks by name.
pub(crate) type JobCallbacks<B, C, U> = Rc<BTreeMap<String, JobCallback<B, C, U>>>;

/// An error handler: gets the context of the failed update and the error.
pub type ErrorCallback<B, C, U> =
    Rc<dyn Fn(Context<B, C, U>, Rc<HandlerError>) -> LocalBoxFuture<'static, ()>>;

/// What processing one update did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The update's id.
    pub update_id: i64,
    /// Whether any handler ran.
    pub handled: bool,
    /// The error of the first handler that failed, if one did. The update's changes are
    /// written all the same (under [`OnHandlerError::Acknowledge`]; under `Retry` the update
    /// is an `Err` instead).
    pub handler_error: Option<String>,
    /// Read round trips to the backend (1 for a typical update; more if handlers loaded
    /// other chats' or users' data).
    pub reads: usize,
    /// The changes written (empty when nothing changed), the outbox's own write aside.
    pub changes: Vec<Change>,
    /// The Bot API calls the handlers queued, written with the changes; `None` when they
    /// queued none.
    pub outbox: Option<Outbox>,
    /// What became of them, once delivered ([`Application::process_update`] delivers; a host
    /// that calls [`Application::handle_update`] delivers them itself).
    pub delivery: Option<Delivery>,
    /// With [`ApplicationBuilder::webhook_reply`]: the update's first queued call, not
    /// stored, for the webhook's answer.
    pub webhook_reply: Option<Call>,
}

impl Outcome {
    /// Keys written with a new value.
    pub fn written(&self) -> Vec<&Key> {
        self.changes
            .iter()
            .filter_map(|c| match c {
                Change::Put(key, _) => Some(key),
                Change::Delete(_) => None,
            })
            .collect()
    }

    /// Keys deleted.
    pub fn deleted(&self) -> Vec<&Key> {
        self.changes
            .iter()
            .filter_map(|c| match c {
                Change::Delete(key) => Some(key),
                Change::Put(..) => None,
            })
            .collect()
    }
}

/// A bot: its handlers, its persistence and its Bot API client.
///
/// `B`, `C` and `U` are the types of bot_data, chat_data and user_data (PTB's ContextTypes),
/// JSON objects by default. On Workers, build one per request: building is cheap (no I/O).
pub struct Application<B = Data, C = Data, U = Data> {
    pub(crate) api: Rc<dyn BotApi>,
    bot: Bot,
    pub(crate) persistence: Rc<dyn Persistence>,
    store: PersistenceInput,
    groups: Groups<B, C, U>,
    pub(crate) error_handlers: Vec<ErrorCallback<B, C, U>>,
    /// The job callbacks, by name ([`ApplicationBuilder::job`]).
    pub(crate) jobs: JobCallbacks<B, C, U>,
    /// Their names, made once: every update's state checks a scheduled job against them.
    job_names: Rc<std::collections::BTreeSet<String>>,
    on_handler_error: OnHandlerError,
    webhook_reply: bool,
    bot_username: RefCell<Option<String>>,
    pub(crate) schema_version: u32,
    pub(crate) clock: Clock,
    random: Option<RandomSource>,
    callback_data: Option<CallbackDataSettings>,
    migrations: Migrations,
}

impl Application {
    /// A builder for an Application with JSON-object data.
    pub fn builder() -> ApplicationBuilder {
        ApplicationBuilder::new()
    }
}

impl<B: DataType, C: DataType, U: DataType> Application<B, C, U> {
    /// The bot, over the transport given. Handlers get their own ([`Context::bot`]), which
    /// with arbitrary callback data on also stores the data of the inline keyboards they send.
    pub fn bot(&self) -> &Bot {
        &self.bot
    }

    /// The Bot API transport as given, without the handlers' keyboard bookkeeping: what
    /// delivers a committed outbox.
    pub fn bot_api(&self) -> Rc<dyn BotApi> {
        self.api.clone()
    }

    /// The persistence.
    pub fn persistence(&self) -> &Rc<dyn Persistence> {
        &self.persistence
    }

    /// The arbitrary callback data settings, if the Application has them on (a host sweeps
    /// expired keyboards with them).
    pub fn callback_data_settings(&self) -> Option<CallbackDataSettings> {
        self.callback_data
    }

    /// The bot's username, once known (configured, or learned from `getMe`).
    pub fn bot_username(&self) -> Option<String> {
        self.bot_username.borrow().clone()
    }

    /// Handles one update and delivers the Bot API calls it queued: [`handle_update`]
    /// (load, handlers, one write of the changes with the queued calls), then
    /// [`deliver`](Application::deliver) over the Application's persistence.
    ///
    /// `Ok` means the update is done with (handled, ignored, or failed in a handler under
    /// [`OnHandlerError::Acknowledge`]) and its changes are durable; [`Outcome::delivery`] says
    /// what became of its queued calls (a call that failed transiently stays stored for
    /// [`deliver`](Application::deliver) to try again). `Err` means it was not handled
    /// durably: a storage read or write failed, a stored value could not be decoded (it is
    /// left untouched), or a handler failed under [`OnHandlerError::Retry`]; the webhook
    /// answers 5xx so Telegram retries, and nothing was sent for it.
    ///
    /// [`handle_update`]: Application::handle_update
    pub async fn process_update(&self, update: Update) -> Result<Outcome> {
        let mut outcome = self.handle_update(update).await?;
        if let Some(outbox) = outcome.outbox.clone() {
            let delivery = self.deliver(outbox, self.persistence.as_ref()).await?;
            outcome.delivery = Some(delivery);
        }
        Ok(outcome)
    }

    /// Handles one update without sending what it queued: load, handlers, then one
    /// [`Persistence::write`] of the changes and of the queued calls' [`Outbox`] (see the
    /// module docs). The outbox is in [`Outcome::outbox`], for the host to
    /// [`deliver`](Application::deliver) once it has let go of whatever it holds for the
    /// update (a Durable Object's gate), so that no lock is held across the network.
    pub async fn handle_update(&self, update: Update) -> Result<Outcome> {
        let update_id = update.update_id;
        self.resolve_username(&update).await?;
        let mut keys = self.handler_keys(&update);
        if self.callback_data.is_some() {
            // The pressed keyboard's data, so that the press resolves without another read,
            // and the index of the chat's keyboards, which bounds them.
            keys.extend(callback_data::keyboard_key(&update));
            keys.extend(callback_data::index_key(&update));
        }
        let state = self.load_state(update, keys).await?;
        let ctx = Context::new(state.clone());
        let mut outcome = Outcome {
            update_id,
            ..Outcome::default()
        };
        let mut failure: Option<Rc<HandlerError>> = None;

        for group in self.groups.values() {
            for handler in group {
                let Some(matched) = handler.check_update(&ctx) else {
                    continue;
                };
                outcome.handled = true;
                if let Err(error) = handler.handle(ctx.with_match(&matched), matched).await {
                    // As PTB's process_update: the error goes to the error handlers, and the
                    // walk goes on with the next group (unless one of them stops it).
                    let error = Rc::new(error);
                    for error_handler in &self.error_handlers {
                        error_handler(ctx.clone(), error.clone()).await;
                    }
                    failure.get_or_insert(error);
                }
                break;
            }
            if state.stopped() {
                break;
            }
        }
        outcome.reads = state.reads();

        if let Some(error) = failure {
            outcome.handler_error = Some(error.to_string());
            // A Bot API call that failed transiently (network, timeout, 5xx, 429) is no verdict
            // on the update: whatever the policy, it fails and nothing is written, so that
            // Telegram delivers it again. A network blip must never drop an update.
            if let Some(transient) = transient_bot_api_error(error.as_ref().as_ref()) {
                return Err(transient);
            }
            if self.on_handler_error == OnHandlerError::Retry {
                // Telegram delivers the update again and it runs again from the start:
                // writing this attempt's changes would apply them twice.
                return Err(Error::Handler { update_id, error });
            }
        }
        state.settle_keyboards();
        let changes = state.changes()?;
        let mut queued = state.take_queued();
        if self.webhook_reply && !queued.is_empty() {
            outcome.webhook_reply = Some(queued.remove(0));
        }
        let outbox =
            (!queued.is_empty()).then(|| Outbox::new(&state.update, queued, state.now_ms()));
        let mut write = changes.clone();
        if let Some(outbox) = &outbox {
            write.push(Change::Put(outbox.key(), outbox.encode()?));
        }
        if !write.is_empty() {
            self.persistence.write(&write).await?;
        }
        self.persistence.flush().await?;
        outcome.changes = changes;
        outcome.outbox = outbox;
        Ok(outcome)
    }

    /// Sends the calls of a committed `outbox` ([`crate::outbox::deliver`]), storing its
    /// progress in `store` (the outbox's own store, with no update recording in it), then
    /// runs the error handlers for the calls that failed for good
    /// ([`report_failed_calls`](Application::report_failed_calls)).
    ///
    /// `Err` when storing the progress failed (the calls were made) or the error handlers'
    /// changes could not be written.
    pub async fn deliver(&self, mut outbox: Outbox, store: &dyn Persistence) -> Result<Delivery> {
        let now = (self.clock)();
        let delivery = outbox::deliver(self.api.as_ref(), store, &mut outbox, now).await?;
        if !delivery.failed().is_empty() {
            self.report_failed_calls(&outbox.update(), delivery.failed())
                .await?;
        }
        Ok(delivery)
    }

    /// Runs the error handlers for queued calls of `update` that failed for good (a 403 from
    /// a user who blocked the bot, a 400), each with the call's [`Error::BotApi`] and a context
    /// over the update's data as stored now: what they change (mark the user as blocked) is
    /// written like any update's changes, in one write, without recording the update again.
    pub async fn report_failed_calls(&self, update: &Update, failed: &[FailedCall]) -> Result<()> {
        if failed.is_empty() || self.error_handlers.is_empty() {
            return Ok(());
        }
        let state = self.load_state(update.clone(), Vec::new()).await?;
        let ctx = Context::new(state.clone());
        for failure in failed {
            let error: Rc<HandlerError> = Rc::new(Box::new(failure.error.clone()));
            for error_handler in &self.error_handlers {
                error_handler(ctx.clone(), error.clone()).await;
            }
        }
        let changes = state.changes()?;
        if !changes.is_empty() {
            self.persistence.write(&changes).await?;
        }
        Ok(())
    }

    /// Writes what a run without a webhook (a job, a conversation's timeout) changed and the
    /// calls it queued, in one write, then flushes; answers the outbox to deliver.
    pub(crate) async fn write_state(
        &self,
        state: &UpdateState<B, C, U>,
        now: i64,
    ) -> Result<Option<Outbox>> {
        state.settle_keyboards();
        let mut write = state.changes()?;
        let queued = state.take_queued();
        let outbox = (!queued.is_empty()).then(|| Outbox::new(&state.update, queued, now));
        if let Some(outbox) = &outbox {
            write.push(Change::Put(outbox.key(), outbox.encode()?));
        }
        if !write.is_empty() {
            self.persistence.write(&write).await?;
        }
        self.persistence.flush().await?;
        Ok(outbox)
    }

    /// Loads what `update` needs (bot_data, its chat's and user's data, `keys`) in one read,
    /// over the Application's persistence and Bot API.
    pub(crate) async fn load_state(
        &self,
        update: Update,
        keys: Vec<Key>,
    ) -> Result<Rc<UpdateState<B, C, U>>> {
        UpdateState::load(
            update,
            self.api.clone(),
            self.persistence.clone(),
            self.update_settings(),
            keys,
        )
        .await
    }

    /// The keys the handlers need for `update`, for its one read.
    pub(crate) fn handler_keys(&self, update: &Update) -> Vec<Key> {
        let mut keys = Vec::new();
        for handler in self.groups.values().flatten() {
            handler.keys(update, &mut keys);
        }
        keys
    }

    /// The handlers, group by group.
    pub(crate) fn handlers(&self) -> impl Iterator<Item = &dyn Handler<B, C, U>> {
        self.groups.values().flatten().map(|h| h.as_ref())
    }

    /// What an update's state needs of the Application's settings.
    pub(crate) fn update_settings(&self) -> Settings {
        Settings {
            job_names: self.job_names.clone(),
            store: self.store,
            schema_version: self.schema_version,
            bot_username: self.bot_username(),
            clock: self.clock.clone(),
            random: self.random.clone(),
            callback_data: self.callback_data,
            migrations: self.migrations.clone(),
        }
    }

    /// Imports a DictPersistence-shaped document (JSON text, as PTB's `DictPersistence`
    /// writes it and `/admin/import` receives it) into this Application's persistence, as
    /// `options` say (replace everything, or merge), storing schema version 1 (data written
    /// before this bot's migrations, which then run on load).
    ///
    /// Before anything is written every entry is validated
    /// ([`dict::for_each_entry`](crate::persistence::dict::for_each_entry)) and checked
    /// against this bot ([`Application::check_entry`]): an entry it could not use is refused
    /// with an [`Error::Invalid`] naming its path, and the import writes nothing. Answers how
    /// many entries were written.
    pub async fn import(&self, doc: &str, options: ImportOptions) -> Result<usize> {
        let check = |key: &Key, value: &serde_json::Value| self.check_entry(key, value);
        dict::import_text(self.persistence.as_ref(), doc, 1, options, check).await
    }

    /// Whether this bot can use an imported entry (`value` as stored, at schema version 1):
    /// - bot_data, chat_data and user_data of a kind it stores
    ///   ([`ApplicationBuilder::store_data`]), that its migrations take to this schema version
    ///   and that fit its data types (else every update of that chat or user would fail);
    /// - conversation states that a handler owns and can carry on from
    ///   ([`Handler::check_stored`]: a [`ConversationHandler`](crate::ConversationHandler)
    ///   refuses a state it has no handlers for, or a key of another shape); a conversation
    ///   name no persistent conversation of this bot has is refused, its entries would never
    ///   be read;
    /// - callback data only with arbitrary callback data on.
    ///
    /// An entry it cannot use is an [`Error::Invalid`] naming its path in the document.
    pub fn check_entry(&self, key: &Key, value: &serde_json::Value) -> Result<()> {
        let path = || dict::entry_path(key);
        match key {
            Key::BotData => self.check_data::<B>(key, value, self.store.bot_data, "bot_data"),
            Key::ChatData(_) => self.check_data::<C>(key, value, self.store.chat_data, "chat_data"),
            Key::UserData(_) => self.check_data::<U>(key, value, self.store.user_data, "user_data"),
            Key::Conversation { name, .. } => {
                let owner = self.groups.values().flatten();
                match owner.into_iter().find_map(|h| h.check_stored(key, value)) {
                    Some(checked) => checked,
                    None => Err(Error::Invalid(format!(
                        "conversations.{}: no persistent conversation of this bot is named {}, \
                         so its states would never be read",
                        dict::segment(name),
                        dict::shown(name)
                    ))),
                }
            }
            Key::CallbackKeyboard(_) | Key::CallbackQuery(_) => match self.callback_data {
                Some(_) => Ok(()),
                None => Err(Error::Invalid(format!(
                    "{}: this bot does not use arbitrary callback data \
                     (ApplicationBuilder::arbitrary_callback_data), so no press would reach it",
                    path()
                ))),
            },
            // edgegram's own bookkeeping: never in a document.
            Key::KeyboardIndex(_) | Key::Outbox { .. } | Key::Job { .. } | Key::JobDue { .. } => {
                Ok(())
            }
        }
    }

    fn check_data<T: DataType>(
        &self,
        key: &Key,
        value: &serde_json::Value,
        stored: bool,
        kind: &str,
    ) -> Result<()> {
        let path = dict::entry_path(key);
        if !stored {
            return Err(Error::Invalid(format!(
                "{path}: this bot does not store {kind} (ApplicationBuilder::store_data)"
            )));
        }
        let mut migrated = None;
        for version in 1..self.schema_version {
            if let Some(migrate) = self.migrations.get(&version) {
                let data = migrated.take().unwrap_or_else(|| value.clone());
                let data = migrate(key, data).map_err(|e| {
                    Error::Invalid(format!(
                        "{path}: the migration from schema version {version} to {} failed: {e}",
                        version + 1
                    ))
                })?;
                migrated = Some(data);
            }
        }
        match T::deserialize(migrated.as_ref().unwrap_or(value)) {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::Invalid(format!(
                "{path}: does not fit this bot's {kind} type: {e}"
            ))),
        }
    }

    /// Learns the bot's username from `getMe` when the update is a command addressed with
    /// `@` and the username is not known yet, so that `/cmd@this_bot` is told apart from
    /// `/cmd@other_bot`. One call per Application at most.
    async fn resolve_username(&self, update: &Update) -> Result<()> {
        if self.bot_username.borrow().is_some() {
            return Ok(());
        }
        let addressed = update
            .message_like()
            .and_then(|m| m.command())
            .is_some_and(|(_, addressed)| addressed.is_some());
        if addressed {
            let me = self.bot.get_me().await?;
            *self.bot_username.borrow_mut() = me.username;
        }
        Ok(())
    }
}

/// The Bot API error behind a handler's error, if it failed transiently.
fn transient_bot_api_error(error: &(dyn std::error::Error + 'static)) -> Option<Error> {
    match error.downcast_ref::<Error>()? {
        bot_api @ Error::BotApi { kind, .. } if kind.is_transient() => Some(bot_api.clone()),
        _ => None,
    }
}

/// Builds an [`Application`]. Bot and persistence are required.
pub struct ApplicationBuilder<B = Data, C = Data, U = Data> {
    api: Option<Rc<dyn BotApi>>,
    persistence: Option<Rc<dyn Persistence>>,
    store: PersistenceInput,
    groups: Groups<B, C, U>,
    error_handlers: Vec<ErrorCallback<B, C, U>>,
    jobs: BTreeMap<String, JobCallback<B, C, U>>,
    on_handler_error: OnHandlerError,
    webhook_reply: bool,
    bot_username: Option<String>,
    schema_version: u32,
    clock: Clock,
    random: Option<RandomSource>,
    callback_data: Option<CallbackDataSettings>,
    migrations: BTreeMap<u32, Migration>,
}

impl<B: DataType, C: DataType, U: DataType> Default for ApplicationBuilder<B, C, U> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: DataType, C: DataType, U: DataType> ApplicationBuilder<B, C, U> {
    /// An empty builder. Name the data types here for typed data:
    /// `ApplicationBuilder::<MyBotData, MyChatData, MyUserData>::new()`.
    pub fn new() -> Self {
        Self {
            api: None,
            persistence: None,
            store: PersistenceInput::ALL,
            groups: BTreeMap::new(),
            error_handlers: Vec::new(),
            jobs: BTreeMap::new(),
            on_handler_error: OnHandlerError::default(),
            webhook_reply: false,
            bot_username: None,
            schema_version: 1,
            clock: system_clock(),
            random: system_random(),
            callback_data: None,
            migrations: BTreeMap::new(),
        }
    }

    /// The Bot API transport (fetch on Workers, the test kit's `RecordingBot` in tests).
    pub fn bot(mut self, api: Rc<dyn BotApi>) -> Self {
        self.api = Some(api);
        self
    }

    /// Where data is stored.
    pub fn persistence(mut self, persistence: Rc<dyn Persistence>) -> Self {
        self.persistence = Some(persistence);
        self
    }

    /// Which kinds of data are stored (PTB's `PersistenceInput`); all by default.
    pub fn store_data(mut self, store: PersistenceInput) -> Self {
        self.store = store;
        self
    }

    /// The bot's username, if known; saves a `getMe` call the first time a command is
    /// addressed as `/cmd@username`.
    pub fn bot_username(mut self, username: impl Into<String>) -> Self {
        let username: String = username.into();
        self.bot_username = Some(username.trim_start_matches('@').to_string());
        self
    }

    /// The schema version written with every stored value (1 by default). Raise it when the
    /// data types change shape; values written by a newer version are refused, never
    /// overwritten.
    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    /// Registers the migration of stored values from schema version `from` to `from + 1`;
    /// it runs on load, before the value is decoded into the data type, for every kind (the
    /// key says which). Steps without a migration keep the value as it is.
    ///
    /// ```text
    /// .schema_version(2)
    /// .migration(1, |key, mut data| {       // v1 stored "age" as a string
    ///     if let Key::UserData(_) = key { /* parse data["age"] into a number */ }
    ///     Ok(data)
    /// })
    /// ```
    pub fn migration(
        mut self,
        from: u32,
        migrate: impl Fn(&Key, serde_json::Value) -> std::result::Result<serde_json::Value, String>
            + 'static,
    ) -> Self {
        self.migrations.insert(from, Rc::new(migrate));
        self
    }

    /// The clock handlers and timeouts use (`ctx.now_ms()`); the system's by default.
    pub fn clock(mut self, clock: impl Fn() -> i64 + 'static) -> Self {
        self.clock = Rc::new(clock);
        self
    }

    /// The source of the unpredictable ids of arbitrary callback data: fills the buffer, or
    /// answers why it cannot (the default is [`system_random`], on Workers
    /// `crypto.getRandomValues`). When it fails, the keyboard that needed the id is not made:
    /// [`Context::callback_keyboard`] answers [`Error::Random`].
    pub fn random(
        mut self,
        random: impl Fn(&mut [u8]) -> std::result::Result<(), String> + 'static,
    ) -> Self {
        self.random = Some(Rc::new(random));
        self
    }

    /// Gives each update's first queued call back in [`Outcome::webhook_reply`] instead of
    /// storing and sending it, for the host to answer the webhook with (Telegram then makes
    /// the call). Saves that call's round trip; gives up its result and any error (Telegram
    /// reports neither), its retries, and its place after the chat's calls that wait for a
    /// retry. The other calls go through the outbox as usual.
    pub fn webhook_reply(mut self, on: bool) -> Self {
        self.webhook_reply = on;
        self
    }

    /// Turns on arbitrary callback data (PTB's `arbitrary_callback_data`): buttons made with
    /// [`Context::callback_keyboard`] carry any serde value, stored per keyboard through the
    /// persistence; presses resolve before handlers run (see [`crate::callback_data`]).
    pub fn arbitrary_callback_data(mut self, settings: CallbackDataSettings) -> Self {
        self.callback_data = Some(settings);
        self
    }

    /// What the webhook answers after a handler error (see [`OnHandlerError`]).
    pub fn on_handler_error(mut self, policy: OnHandlerError) -> Self {
        self.on_handler_error = policy;
        self
    }

    /// Adds a handler to group 0.
    pub fn handler(self, handler: impl Handler<B, C, U> + 'static) -> Self {
        self.handler_in_group(handler, 0)
    }

    /// Adds a handler to `group`. Groups run in ascending order; within a group, handlers are
    /// asked in the order they were added and only the first that matches runs.
    pub fn handler_in_group(
        mut self,
        handler: impl Handler<B, C, U> + 'static,
        group: i32,
    ) -> Self {
        self.groups
            .entry(group)
            .or_default()
            .push(Box::new(handler));
        self
    }

    /// Adds an error handler; error handlers run, in order, after a handler returned `Err`,
    /// before the next group. Their context is the update's: what they change in its data is
    /// written with the update's other changes, and [`Context::stop_processing`] ends the walk
    /// (PTB's `ApplicationHandlerStop` in an error handler).
    pub fn error_handler<F, Fut>(mut self, callback: F) -> Self
    where
        F: Fn(Context<B, C, U>, Rc<HandlerError>) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.error_handlers
            .push(Rc::new(move |ctx, error| Box::pin(callback(ctx, error))));
        self
    }

    /// Registers the job callback `name` (PTB passes the callable to `run_once`; a stored job
    /// names its callback instead, so that it still runs after a deploy): jobs scheduled with
    /// [`JobSpec`](crate::jobs::JobSpec)s naming it run it ([`crate::jobs`]). Its context is
    /// like a handler's, over the job's chat and user, with [`Context::job`] set. An `Err`
    /// fails the run, which is tried again ([`crate::jobs::MAX_JOB_ATTEMPTS`] times in all).
    pub fn job<F, Fut>(mut self, name: &str, callback: F) -> Self
    where
        F: Fn(Context<B, C, U>) -> Fut + 'static,
        Fut: Future<Output = HandlerResult> + 'static,
    {
        self.jobs.insert(
            name.to_string(),
            Rc::new(move |ctx| Box::pin(callback(ctx))),
        );
        self
    }

    /// Builds the Application, or says what is missing.
    pub fn build(self) -> Result<Application<B, C, U>> {
        let api = self.api.ok_or_else(|| {
            Error::Config("no bot: call .bot(...) with a Bot API transport".into())
        })?;
        let persistence = self.persistence.ok_or_else(|| {
            Error::Config(
                "no persistence: call .persistence(...) (MemoryPersistence for tests)".into(),
            )
        })?;
        if self.schema_version == 0 {
            return Err(Error::Config("schema_version starts at 1".into()));
        }
        if let Some(from) = self
            .migrations
            .keys()
            .find(|&&v| v == 0 || v >= self.schema_version)
        {
            return Err(Error::Config(format!(
                "a migration from schema version {from} cannot run with schema_version({}): \
                 migrations go from 1 up to schema_version - 1",
                self.schema_version
            )));
        }
        if self.callback_data.is_some() && !self.store.callback_data {
            return Err(Error::Config(
                "arbitrary callback data lives in persistence, but store_data has \
                 callback_data: false: store it, or do not turn arbitrary_callback_data on"
                    .into(),
            ));
        }
        if self.callback_data.is_some_and(|c| c.maxsize == 0) {
            return Err(Error::Config(
                "CallbackDataSettings::maxsize is 0: every keyboard would be evicted as it is \
                 stored; keep at least 1 per chat"
                    .into(),
            ));
        }
        Ok(Application {
            bot: Bot::new(api.clone()),
            api,
            persistence,
            store: self.store,
            groups: self.groups,
            error_handlers: self.error_handlers,
            job_names: Rc::new(self.jobs.keys().cloned().collect()),
            jobs: Rc::new(self.jobs),
            on_handler_error: self.on_handler_error,
            webhook_reply: self.webhook_reply,
            bot_username: RefCell::new(self.bot_username),
            schema_version: self.schema_version,
            clock: self.clock,
            random: self.random,
            callback_data: self.callback_data,
            migrations: Rc::new(self.migrations),
        })
    }
}
