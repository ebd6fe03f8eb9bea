//! [`Harness`]: a bot under test, as on Workers: every update runs in a fresh Application over
//! the same storage, with the Bot API double and a clock the test sets.

use std::rc::Rc;
use std::time::Duration;

use futures::executor::block_on;
use serde_json::Value;

use super::telegram::Telegram;
use super::{RecordingBot, Updates};
use crate::application::{Application, ApplicationBuilder, Outcome};
use crate::bot::BotApi;
use crate::context::{Data, DataType};
use crate::error::Result;
use crate::jobs::{Job, JobsRun};
use crate::outbox::{self, Delivery, Outbox};
use crate::persistence::memory::MemoryPersistence;
use crate::persistence::spy::{Call, SpyPersistence};
use crate::persistence::{Change, Key, Persistence};
use crate::types::Update;

/// A bot under test: its Application built afresh for every update from the test's function,
/// over [`MemoryPersistence`] seen through [`SpyPersistence`], with a [`RecordingBot`] and a
/// clock that stands still until the test moves it.
///
/// The updates, the bot double and the clock share one Telegram: messages are dated by the
/// clock, and a user's messages and the bot's replies take their ids from one sequence per
/// chat.
///
/// ```
/// use edgegram::testing::Harness;
/// use edgegram::{ApplicationBuilder, Application, CommandHandler, Context, HandlerResult};
///
/// async fn hello(ctx: Context) -> HandlerResult {
///     ctx.user_data(|d| d.insert("greeted".into(), true.into()))?;
///     ctx.reply_text("Hello!")?;
///     Ok(())
/// }
///
/// // The bot's own setup; on Workers it gets a builder with the fetch client and a backend.
/// fn my_bot(builder: ApplicationBuilder) -> edgegram::Result<Application> {
///     builder.handler(CommandHandler::new("hello", hello)).build()
/// }
///
/// let h = Harness::new(my_bot);
/// let outcome = h.process(h.updates().command(42, 42, "/hello"));
/// assert!(outcome.handled && outcome.handler_error.is_none());
/// assert_eq!(h.bot().texts(), ["Hello!"]);
/// assert_eq!(h.to_json()["user_data"]["42"]["greeted"], true);
/// ```
pub struct Harness<B = Data, C = Data, U = Data> {
    telegram: Rc<Telegram>,
    memory: Rc<MemoryPersistence>,
    spy: Rc<SpyPersistence>,
    bot: Rc<RecordingBot>,
    make: Box<MakeApplication<B, C, U>>,
}

/// Builds the Application under test over a harness's parts.
type MakeApplication<B, C, U> = dyn Fn(&Harness<B, C, U>) -> Result<Application<B, C, U>>;

impl<B: DataType, C: DataType, U: DataType> Harness<B, C, U> {
    /// A harness for the bot `setup` makes from a builder that already has the harness's
    /// bot double, storage and clock: the function that adds the bot's handlers and settings
    /// and builds it. Setting another bot, storage or clock in `setup` replaces the
    /// harness's.
    pub fn new(
        setup: impl Fn(ApplicationBuilder<B, C, U>) -> Result<Application<B, C, U>> + 'static,
    ) -> Self {
        Self::with_maker(Box::new(move |harness| setup(harness.builder())))
    }

    /// A harness for a bot made by a function of a Bot API transport and a storage, as
    /// `edgegram::demo::application` is. Such a bot reads the system's clock, unless the
    /// function sets another: to control time, use [`Harness::new`].
    pub fn from_parts(
        build: impl Fn(Rc<dyn BotApi>, Rc<dyn Persistence>) -> Result<Application<B, C, U>> + 'static,
    ) -> Self {
        Self::with_maker(Box::new(move |harness| {
            build(harness.bot.clone(), harness.spy.clone())
        }))
    }

    fn with_maker(make: Box<MakeApplication<B, C, U>>) -> Self {
        let telegram = Rc::new(Telegram::default());
        let memory = Rc::new(MemoryPersistence::new());
        Self {
            spy: Rc::new(SpyPersistence::new(memory.clone())),
            memory,
            bot: Rc::new(RecordingBot::sharing(telegram.clone())),
            telegram,
            make,
        }
    }

    /// Processes `update` in a fresh Application, as a Worker request would.
    ///
    /// A handler's error does not panic: it is in [`Outcome::handler_error`] (the webhook
    /// would answer 200), so check it.
    ///
    /// # Panics
    /// When the update fails as a whole (the webhook would answer 500): the Application
    /// cannot be built, storage fails, a stored value cannot be decoded. Use
    /// [`try_process`](Self::try_process) to test those.
    pub fn process(&self, update: Update) -> Outcome {
        let update_id = update.update_id;
        self.try_process(update)
            .unwrap_or_else(|e| panic!("update {update_id} failed: {e}"))
    }

    /// Processes `update` in a fresh Application and answers what it answered.
    pub fn try_process(&self, update: Update) -> Result<Outcome> {
        let application = self.application()?;
        block_on(application.process_update(update))
    }

    /// Processes `update` in `application` (e.g. one kept across updates, as a long-running
    /// process would), panicking as [`process`](Self::process) does.
    pub fn process_in<B2: DataType, C2: DataType, U2: DataType>(
        &self,
        application: &Application<B2, C2, U2>,
        update: Update,
    ) -> Outcome {
        let update_id = update.update_id;
        self.try_process_in(application, update)
            .unwrap_or_else(|e| panic!("update {update_id} failed: {e}"))
    }

    /// Processes `update` in `application` and answers what it answered.
    pub fn try_process_in<B2: DataType, C2: DataType, U2: DataType>(
        &self,
        application: &Application<B2, C2, U2>,
        update: Update,
    ) -> Result<Outcome> {
        block_on(application.process_update(update))
    }

    /// Delivers again, in a fresh Application, every stored outbox whose next try is due at
    /// the harness's time (calls that failed transiently: see [`crate::outbox`]), as a
    /// Durable Object's alarm does; answers what each delivery did, by chat then update.
    pub fn deliver_pending(&self) -> Result<Vec<Delivery>> {
        let application = self.application()?;
        let store: &dyn Persistence = self.spy.as_ref();
        block_on(async {
            let mut deliveries = Vec::new();
            for outbox in outbox::stored(store).await? {
                if outbox.next_try_ms <= self.now_ms() {
                    deliveries.push(application.deliver(outbox, store).await?);
                }
            }
            Ok(deliveries)
        })
    }

    /// Runs the jobs due at the harness's clock, as a Durable Object's alarm does, in a fresh
    /// Application, and delivers the calls they queued
    /// ([`Application::run_due_jobs`]). Move the clock first ([`Harness::advance`]).
    pub fn run_due_jobs(&self) -> Result<JobsRun> {
        let application = self.application()?;
        block_on(application.run_due_jobs())
    }

    /// Ends the conversations past their deadline at the harness's clock, running their
    /// TIMEOUT handlers with the update that last moved each, as a Durable Object's alarm
    /// does, and delivers what they queued ([`Application::expire_conversations`]). Answers
    /// how many ended.
    pub fn expire_conversations(&self) -> Result<usize> {
        let application = self.application()?;
        block_on(application.expire_conversations())
    }

    /// The jobs stored, by next run.
    pub fn jobs(&self) -> Vec<Job> {
        let application = self
            .application()
            .unwrap_or_else(|e| panic!("the bot could not be built: {e}"));
        block_on(application.jobs()).unwrap_or_else(|e| panic!("the jobs cannot be read: {e}"))
    }

    /// The outboxes stored: queued calls not sent yet.
    pub fn stored_outboxes(&self) -> Vec<Outbox> {
        block_on(outbox::stored(self.spy.as_ref()))
            .unwrap_or_else(|e| panic!("the stored outboxes cannot be read: {e}"))
    }

    /// A fresh Application of the bot under test, over the harness's parts.
    pub fn application(&self) -> Result<Application<B, C, U>> {
        (self.make)(self)
    }

    /// A builder with the harness's bot double, storage and clock, for an Application other
    /// than the bot under test (run it with [`process_in`](Self::process_in)).
    pub fn builder(&self) -> ApplicationBuilder<B, C, U> {
        let telegram = self.telegram.clone();
        ApplicationBuilder::new()
            .bot(self.bot.clone())
            .persistence(self.spy.clone())
            .clock(move || telegram.now_ms())
    }

    /// The update factory of this harness (a handle: clones share its counters).
    pub fn updates(&self) -> Updates {
        Updates::sharing(self.telegram.clone())
    }

    /// The Bot API double: the calls made, and scripted answers.
    pub fn bot(&self) -> &RecordingBot {
        &self.bot
    }

    /// The storage itself, to put values in before a test or read them raw.
    pub fn memory(&self) -> &MemoryPersistence {
        &self.memory
    }

    /// The storage as the Application sees it: every call recorded, faults on request
    /// ([`SpyPersistence::fail_next_writes`], ...).
    pub fn spy(&self) -> &SpyPersistence {
        &self.spy
    }

    /// Everything stored, as python-telegram-bot's DictPersistence shapes it (`bot_data`,
    /// `chat_data`, `user_data`, `conversations`, `callback_data`).
    ///
    /// # Panics
    /// When a stored value cannot be decoded, which only a test that wrote raw values causes.
    pub fn to_json(&self) -> Value {
        self.memory
            .to_json()
            .unwrap_or_else(|e| panic!("the stored state cannot be read: {e}"))
    }

    /// The keys of every read of storage so far, oldest first.
    pub fn reads(&self) -> Vec<Vec<Key>> {
        self.spy
            .calls()
            .into_iter()
            .filter_map(|call| match call {
                Call::Read(keys) => Some(keys),
                _ => None,
            })
            .collect()
    }

    /// The changes of every write to storage so far, oldest first (an update that changes
    /// nothing and queues no call writes nothing; one that queued calls writes again to
    /// delete its outbox once they are sent).
    pub fn writes(&self) -> Vec<Vec<Change>> {
        self.spy
            .calls()
            .into_iter()
            .filter_map(|call| match call {
                Call::Write(changes) => Some(changes),
                _ => None,
            })
            .collect()
    }

    /// The time in milliseconds since the Unix epoch, as handlers, the bot double and the
    /// update builders see it. It starts at [`START_MS`](super::START_MS) and moves only
    /// when the test moves it.
    pub fn now_ms(&self) -> i64 {
        self.telegram.now_ms()
    }

    /// Sets the time.
    pub fn set_now_ms(&self, now_ms: i64) {
        self.telegram.set_now_ms(now_ms);
    }

    /// Moves the time forward by `by`, e.g. past a conversation's timeout.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.set_now_ms(self.now_ms().saturating_add(by));
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde_json::json;

    use super::*;
    use crate::testing::{Answer, START_MS};
    use crate::{CommandHandler, Context, Error, HandlerResult, OnHandlerError};

    async fn visit(ctx: Context) -> HandlerResult {
        let now = ctx.now_ms();
        ctx.chat_data(|d| d.insert("seen_at".into(), now.into()))?;
        ctx.reply_text("noted")?;
        Ok(())
    }

    fn visits(builder: ApplicationBuilder) -> Result<Application> {
        builder.handler(CommandHandler::new("visit", visit)).build()
    }

    #[test]
    fn the_state_after_an_update_is_shown_as_dict_persistence_does() {
        let h = Harness::new(visits);
        let tg = h.updates();
        assert_eq!(h.to_json()["chat_data"], json!({}));
        let outcome = h.process(tg.command(-5, 7, "/visit"));
        assert_eq!(outcome.written(), [&Key::ChatData(-5)]);
        assert_eq!(h.to_json()["chat_data"]["-5"]["seen_at"], START_MS);
        h.advance(Duration::from_secs(90));
        h.process(tg.command(-5, 7, "/visit"));
        assert_eq!(h.to_json()["chat_data"]["-5"]["seen_at"], START_MS + 90_000);
        assert_eq!(h.reads().len(), 2);
        // Each update: its change with its outbox, then the outbox's delete once sent.
        assert_eq!(h.writes().len(), 4);
        assert!(h.stored_outboxes().is_empty());
        // The replies shared the chat's message ids with the users' messages.
        let ids: Vec<i64> = h.bot().sent().iter().map(|m| m.message_id).collect();
        assert_eq!(ids, [2, 4]);
    }

    #[test]
    fn a_built_command_matches_its_handler_and_one_for_another_bot_does_not() {
        let h = Harness::new(visits);
        let tg = h.updates();
        assert!(h.process(tg.command(5, 5, "/visit")).handled);
        assert!(
            h.process(tg.command(5, 5, "/visit@edgegram_bot now"))
                .handled
        );
        assert!(!h.process(tg.command(5, 5, "/visit@other_bot")).handled);
        // What the builder saves a test from: the same text without its entity is no command.
        let bare = tg.from_json(json!({"message": {"message_id": 9, "date": 0,
            "chat": {"id": 5, "type": "private"}, "from": {"id": 5, "first_name": "U"},
            "text": "/visit"}}));
        assert!(!h.process(bare).handled);
        assert_eq!(h.bot().texts(), ["noted", "noted"]);
    }

    #[test]
    fn a_scripted_flood_limit_keeps_the_reply_for_a_later_delivery_and_the_update_commits() {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let into = seen.clone();
        let h = Harness::new(move |builder| {
            let into = into.clone();
            visits(builder.error_handler(move |_ctx: Context, error| {
                let into = into.clone();
                async move {
                    into.borrow_mut().push(error.to_string());
                }
            }))
        });
        h.bot()
            .answer_next_to("sendMessage", Answer::retry_after(5));
        // The update's data commits with its queued reply; the 429 leaves the reply stored,
        // due when Telegram said.
        let outcome = h.process(h.updates().command(5, 5, "/visit"));
        let Some(Delivery::Pending {
            sent: 0,
            retry_at_ms,
            error,
            ..
        }) = outcome.delivery
        else {
            panic!("the reply should wait: {outcome:?}");
        };
        assert_eq!(retry_at_ms, START_MS + 5000);
        assert_eq!(
            error.bot_api_kind(),
            Some(crate::BotApiErrorKind::RetryAfter(5))
        );
        assert_eq!(h.to_json()["chat_data"]["5"]["seen_at"], START_MS);
        assert!(h.bot().texts().is_empty());
        assert_eq!(h.stored_outboxes()[0].attempts, 1);
        // Not due yet: nothing is sent.
        assert!(h.deliver_pending().unwrap().is_empty());
        h.advance(Duration::from_secs(5));
        let deliveries = h.deliver_pending().unwrap();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].sent(), 1);
        assert_eq!(h.bot().texts(), ["noted"]);
        assert!(h.stored_outboxes().is_empty());
        // A transient failure is no error for the handlers: the call was sent in the end.
        assert!(seen.borrow().is_empty());
        assert!(h.deliver_pending().unwrap().is_empty());
        assert_eq!(h.bot().texts(), ["noted"]);
    }

    #[test]
    fn every_update_runs_in_a_fresh_application() {
        let built = Rc::new(RefCell::new(0));
        let count = built.clone();
        let h = Harness::new(move |builder| {
            *count.borrow_mut() += 1;
            visits(builder)
        });
        let tg = h.updates();
        h.process(tg.command(5, 5, "/visit"));
        h.process(tg.command(5, 5, "/visit"));
        assert_eq!(*built.borrow(), 2);
        let kept = h.application().unwrap();
        h.process_in(&kept, tg.command(5, 5, "/visit"));
        h.process_in(&kept, tg.command(5, 5, "/visit"));
        assert_eq!(*built.borrow(), 3);
    }

    #[test]
    fn a_failed_update_is_an_error_and_a_failed_handler_is_in_the_outcome() {
        let h = Harness::new(|builder| visits(builder.on_handler_error(OnHandlerError::Retry)));
        let tg = h.updates();
        h.spy().fail_next_writes(1);
        let failed = h.try_process(tg.command(5, 5, "/visit")).unwrap_err();
        assert!(matches!(failed, Error::Storage { .. }), "{failed}");
        assert_eq!(h.to_json()["chat_data"], json!({}));

        let h = Harness::new(visits);
        h.bot().answer_next(Answer::blocked());
        let outcome = h.process(tg.command(5, 5, "/visit"));
        // The queued reply failed for good after the commit: the update's change stays, the
        // reply is done with, and the failure is the delivery's.
        assert_eq!(outcome.handler_error, None);
        let failed = outcome
            .delivery
            .as_ref()
            .map(Delivery::failed)
            .unwrap_or(&[]);
        assert_eq!(failed.len(), 1, "{outcome:?}");
        assert!(failed[0].error.to_string().contains("(403)"));
        assert_eq!(h.to_json()["chat_data"]["5"]["seen_at"], START_MS);
        assert!(h.stored_outboxes().is_empty());
    }

    #[test]
    #[should_panic(expected = "update 1 failed")]
    fn process_panics_when_the_update_fails() {
        let h = Harness::new(visits);
        h.spy().fail_next_reads(1);
        h.process(h.updates().command(5, 5, "/visit"));
    }

    #[test]
    fn a_bot_made_from_parts_gets_the_double_and_the_storage() {
        let h = Harness::from_parts(|bot, store| {
            visits(ApplicationBuilder::new().bot(bot).persistence(store))
        });
        h.process(h.updates().command(5, 5, "/visit"));
        assert_eq!(h.bot().texts(), ["noted"]);
        assert_eq!(h.memory().len(), 1);
    }
}
