//! What a worker gives edgegram: a function that builds its [`Application`] from [`Parts`];
//! and [`run_update`], which runs one update through it wherever the data lives.

use std::cell::RefCell;
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use worker::{console_debug, console_error, Env};

use super::fetch_bot::FetchBot;
use super::outcome::{Failure, WebhookOutcome};
use super::settings::{setting, BotTarget, Settings};
use crate::bot::BotApi;
use crate::callback_data::sweep;
use crate::context::DataType;
use crate::outbox::{self, Delivery, Outbox};
use crate::persistence::{Key, Persistence};
use crate::types::Update;
use crate::{Application, ApplicationBuilder};

/// Stored callback data is swept (TTL, maxsize) once every this many update ids.
pub const SWEEP_EVERY: i64 = 512;

thread_local! {
    /// The bot's username once a `getMe` told it: later Applications of this isolate start
    /// with it, so `/cmd@bot` costs one `getMe` per isolate, not one per update.
    static LEARNED_USERNAME: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// What building an Application for one update gets: the Bot API client and the storage the
/// settings chose, the worker's environment, and its parsed settings.
pub struct Parts<'a> {
    /// Telegram over `fetch` (or the dev recorder).
    pub bot: Rc<dyn BotApi>,
    /// The backend `PERSISTENCE` chose (inside a Durable Object: the object's storage).
    pub persistence: Rc<dyn Persistence>,
    /// The worker's environment, for settings of your own ([`Parts::var`]).
    pub env: &'a Env,
    /// edgegram's settings.
    pub settings: &'a Settings,
}

impl Parts<'_> {
    /// An [`ApplicationBuilder`] with the bot, the persistence, the bot's username (from
    /// `BOT_USERNAME`, or learned earlier in this isolate) and `WEBHOOK_REPLY` already set: add
    /// handlers and build.
    pub fn builder<B: DataType, C: DataType, U: DataType>(&self) -> ApplicationBuilder<B, C, U> {
        let builder = ApplicationBuilder::new()
            .bot(self.bot.clone())
            .persistence(self.persistence.clone())
            .webhook_reply(self.settings.webhook_reply);
        let username = self
            .settings
            .bot_username
            .clone()
            .or_else(|| LEARNED_USERNAME.with(|u| u.borrow().clone()));
        match username {
            Some(username) => builder.bot_username(username),
            None => builder,
        }
    }

    /// A var or secret of the worker, `None` when unset or empty.
    pub fn var(&self, name: &str) -> Option<String> {
        setting(self.env, name)
    }
}

/// A worker's Application factory: `fn application(parts: Parts) -> edgegram::Result<Application>`.
/// Called once per update (building is cheap: no I/O).
pub trait BuildApplication<B, C, U>: Fn(Parts<'_>) -> crate::Result<Application<B, C, U>> {}

impl<F, B, C, U> BuildApplication<B, C, U> for F where
    F: Fn(Parts<'_>) -> crate::Result<Application<B, C, U>>
{
}

/// The Bot API calls a committed update queued, with the Application that runs their error
/// handlers: what a host delivers once it has let go of the update's gate.
pub struct Sending<B, C, U> {
    /// The update's Application.
    pub(crate) app: Application<B, C, U>,
    /// Its committed outbox.
    pub(crate) outbox: Outbox,
}

impl<B: DataType, C: DataType, U: DataType> Sending<B, C, U> {
    /// Sends the calls ([`crate::outbox::deliver`]), keeping the outbox's progress in
    /// `store`; answers the delivery, logged when a call failed. The calls that failed for
    /// good are the host's to report ([`Application::report_failed_calls`]), under its gate.
    pub(crate) async fn send(&mut self, store: &dyn Persistence) -> crate::Result<Delivery> {
        let update_id = self.outbox.update_id;
        let now = js_sys::Date::now() as i64;
        let api = self.app.bot_api();
        let delivery = outbox::deliver(api.as_ref(), store, &mut self.outbox, now).await;
        match &delivery {
            Ok(Delivery::Pending { error, .. }) => {
                console_error!("update {update_id}: a queued call failed, to be retried: {error}")
            }
            Err(e) => {
                console_error!("update {update_id}: storing its outbox's progress failed: {e}")
            }
            Ok(Delivery::Done { .. }) => {}
        }
        for failed in delivery.iter().flat_map(Delivery::failed) {
            console_error!(
                "update {update_id}: a queued call failed for good: {}",
                failed.error
            );
        }
        delivery
    }

    /// Runs the error handlers for the calls of `delivery` that failed for good, writing
    /// their changes through the Application's persistence (logged when that fails).
    pub(crate) async fn report(&self, delivery: &Delivery) {
        let failed = delivery.failed();
        if failed.is_empty() {
            return;
        }
        let update = self.outbox.update();
        if let Err(e) = self.app.report_failed_calls(&update, failed).await {
            console_error!(
                "update {}: the error handlers of its failed calls: {e}",
                self.outbox.update_id
            );
        }
    }

    /// The stored outbox under `key` with the worker's Application over `persistence`, to
    /// send what is left of it (a redelivered update, a Durable Object's alarm). `None` when
    /// nothing is stored there (logged when it could not be read or the Application built).
    pub(crate) async fn stored<F: BuildApplication<B, C, U>>(
        settings: &Settings,
        env: &Env,
        persistence: Rc<dyn Persistence>,
        build: &F,
        key: Key,
    ) -> Option<Self> {
        let raw = match persistence.read(std::slice::from_ref(&key)).await {
            Ok(mut values) => values.pop().flatten()?,
            Err(e) => {
                console_error!("reading the outbox {}: {e}", key.encode(""));
                return None;
            }
        };
        let outbox = match Outbox::decode(persistence.backend(), &key, &raw) {
            Ok(outbox) => outbox,
            Err(e) => {
                console_error!("{e}");
                return None;
            }
        };
        let parts = Parts {
            bot: bot_api(settings, env)?,
            persistence,
            env,
            settings,
        };
        match build(parts) {
            Ok(app) => Some(Self { app, outbox }),
            Err(e) => {
                console_error!("the application could not be built: {e}");
                None
            }
        }
    }
}

/// Builds the Application over `persistence` and runs `update` through it: load, handlers,
/// one write with the queued calls. Logs what the caller should know (a handler error, an
/// update nobody handled, a failure Telegram will retry), and now and then sweeps expired
/// callback data. The queued calls come back to be sent ([`Sending`]) once the caller let go
/// of the update's gate.
pub async fn run_update<B, C, U>(
    settings: &Settings,
    env: &Env,
    persistence: Rc<dyn Persistence>,
    update: Update,
    build: &impl BuildApplication<B, C, U>,
) -> (WebhookOutcome, Option<Sending<B, C, U>>)
where
    B: DataType,
    C: DataType,
    U: DataType,
{
    let update_id = update.update_id;
    let Some(bot) = bot_api(settings, env) else {
        return (WebhookOutcome::failed(Failure::NotConfigured), None);
    };
    let parts = Parts {
        bot,
        persistence: persistence.clone(),
        env,
        settings,
    };
    let app = match build(parts) {
        Ok(app) => app,
        Err(e) => {
            console_error!("the application could not be built: {e}");
            return (WebhookOutcome::failed(Failure::NotConfigured), None);
        }
    };
    let result = app.handle_update(update).await;
    if let Some(username) = app.bot_username() {
        LEARNED_USERNAME.with(|u| *u.borrow_mut() = Some(username));
    }
    match &result {
        Ok(outcome) => {
            if let Some(error) = &outcome.handler_error {
                console_error!("update {update_id}: a handler failed: {error}");
            }
            if !outcome.handled {
                console_debug!("update {update_id} matched no handler: ignored");
            }
            // Keyboards nobody pressed stay until swept: now and then, bound them.
            if let Some(callback_data) = app.callback_data_settings() {
                if update_id % SWEEP_EVERY == 0 {
                    let now = js_sys::Date::now() as i64;
                    if let Err(e) = sweep(persistence.as_ref(), now, callback_data).await {
                        console_error!("sweeping callback data failed: {e}");
                    }
                }
            }
        }
        Err(crate::Error::AlreadyProcessed(_)) => {}
        Err(e) => console_error!("update {update_id} not handled, Telegram will retry: {e}"),
    }
    let outbox = result
        .as_ref()
        .ok()
        .and_then(|outcome| outcome.outbox.clone());
    let sending = outbox.map(|outbox| Sending { app, outbox });
    (WebhookOutcome::of(result), sending)
}

/// The worker's Application over `persistence`, built to check an import's entries
/// ([`Application::check_entry`]) rather than to run updates: its Bot API makes no calls (an
/// import runs no handler), so an import needs no `BOT_TOKEN`.
pub(crate) fn checking_application<B, C, U>(
    settings: &Settings,
    env: &Env,
    persistence: Rc<dyn Persistence>,
    build: &impl BuildApplication<B, C, U>,
) -> crate::Result<Application<B, C, U>>
where
    B: DataType,
    C: DataType,
    U: DataType,
{
    build(Parts {
        bot: Rc::new(NoCalls),
        persistence,
        env,
        settings,
    })
}

/// The Bot API of an Application that only checks data: every call fails, none is made.
struct NoCalls;

impl BotApi for NoCalls {
    fn call<'a>(
        &'a self,
        method: &'a str,
        _: serde_json::Value,
    ) -> LocalBoxFuture<'a, crate::Result<serde_json::Value>> {
        Box::pin(async move {
            Err(crate::Error::Config(format!(
                "{method}: an Application built to check an import makes no Bot API calls"
            )))
        })
    }
}

/// The Bot API the settings name; `None` (logged) when it is not configured.
pub(crate) fn bot_api(settings: &Settings, env: &Env) -> Option<Rc<dyn BotApi>> {
    match &settings.bot {
        BotTarget::Telegram {
            base,
            token: Some(token),
        } => {
            let timeout = std::time::Duration::from_millis(settings.bot_api_timeout_ms);
            Some(Rc::new(
                FetchBot::new(base.clone(), token.clone()).with_timeout(timeout),
            ))
        }
        BotTarget::Telegram { token: None, .. } => {
            console_error!("BOT_TOKEN is not set");
            None
        }
        BotTarget::DevRecorder => dev_recorder(env),
    }
}

#[cfg(feature = "dev-bot-api")]
fn dev_recorder(env: &Env) -> Option<Rc<dyn BotApi>> {
    use super::dev_bot_api::{DevBotApi, DEVLOG_OBJECT};
    match super::object_stub(env, DEVLOG_OBJECT) {
        Ok(log) => Some(Rc::new(DevBotApi::new(log))),
        Err(e) => {
            console_error!("DEV_RECORD_BOT_API=1: {e}");
            None
        }
    }
}

#[cfg(not(feature = "dev-bot-api"))]
fn dev_recorder(_env: &Env) -> Option<Rc<dyn BotApi>> {
    console_error!(
        "DEV_RECORD_BOT_API=1, but this build has no recorder (edgegram's dev-bot-api feature)"
    );
    None
}
