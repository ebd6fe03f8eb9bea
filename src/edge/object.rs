//! [`ObjectHost`]: what a worker's Durable Object class does, so that the class itself is a
//! few lines ([`crate::edge_worker!`] writes them).
//!
//! Routes of the object (reached only from the worker, never from outside):
//! - `POST /update[?home=1|?chat=<id>]`: one update, under the object's [`UpdateGate`], once
//!   per update id (a redelivery is answered `duplicate`);
//! - `POST /home`: `DO_ROUTING=chat`: another object reading or writing the entries this one
//!   keeps ([`super::chat_routing::HomeRequest`]);
//! - `POST /dead-letter` (a chat object's dead letter, kept by the home object), `GET
//!   /dead-letters` (the list, `GET /admin/dead-letters`);
//! - `GET /export`, `POST /import` (`?home=1`: the whole bot, gathered from the chat objects);
//! - with features: `/devlog/` (the dev recorder), `/__test/` (tests).
//!
//! The alarm ends conversations whose deadline passed (walking the deadline index,
//! [`super::deadlines`]), runs the jobs due ([`crate::jobs`], walking the job index),
//! forgets expired processed-update records (walking their time index), at most hourly sweeps
//! expired callback data, and sends the stored outboxes (the jobs' replies among them); then it
//! sets itself for the next of those.

use std::cell::Cell;
use std::rc::Rc;

use serde_json::json;
use worker::{console_error, Env, Method, Request, Response, State};

use super::admin::{
    export_from, import_answer, import_into, import_mode, import_options, with_mode,
};
use super::app::{checking_application, run_update, BuildApplication, Parts};
use super::chat_routing::{merge_export, split_by_chat, ChatRoutedPersistence, HomeRequest};
use super::dead_letters::{self, FailedUpdates};
use super::deadlines;
use super::durable::DurableObjectPersistence;
use super::http::query_param;
use super::outcome::WebhookOutcome;
use super::sender::{Alarm, Lanes, SendJob, OUTBOX_NET_MS};
use super::settings::{Routing, SendQueued, Settings};
use super::{forward, text};
use crate::attempts::DeadLetter;
use crate::callback_data::sweep;
use crate::context::DataType;
use crate::conversation;
use crate::jobs::{JobRun, JOBS_PER_RUN};
use crate::outbox::{self, Outbox};
use crate::persistence::dict::{self, ImportMode};
use crate::persistence::processed::DEFAULT_WINDOW_MS;
use crate::persistence::{codec, Change, Key, Persistence, DEFAULT_PREFIX};
use crate::types::Update;
use crate::update_gate::UpdateGate;
use crate::webhook::{not_utf8, parse_body, Incoming};

/// The alarm sweeps the stored callback data at most this often.
pub const SWEEP_INTERVAL_MS: i64 = 60 * 60 * 1000;

/// Expired processed-update records one alarm forgets at most (it sets itself again when more
/// are left).
const PRUNE_PER_ALARM: usize = 512;

/// The name of the object that holds everything with `DO_ROUTING=bot`, and bot_data,
/// user_data and the registry of chat objects with `DO_ROUTING=chat`.
pub const BOT_OBJECT: &str = "bot";

/// Which part an object plays for a request. The worker says it in the query, so one class
/// serves every role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectRole {
    /// `DO_ROUTING=bot`: the one object, holding everything.
    Bot,
    /// `DO_ROUTING=chat`: the home object (bot_data, user_data, updates without a chat).
    Home,
    /// `DO_ROUTING=chat`: the object of one chat.
    Chat(i64),
}

impl ObjectRole {
    /// The object that handles `update`.
    pub fn for_update(routing: Routing, update: &Update) -> Self {
        Self::for_chat(routing, update.effective_chat().map(|chat| chat.id))
    }

    /// The object that handles the updates of `chat` (`None`: updates without a chat).
    pub fn for_chat(routing: Routing, chat: Option<i64>) -> Self {
        match (routing, chat) {
            (Routing::Bot, _) => ObjectRole::Bot,
            (Routing::Chat, Some(chat)) => ObjectRole::Chat(chat),
            (Routing::Chat, None) => ObjectRole::Home,
        }
    }

    /// The object that answers for the whole bot (export, import).
    pub fn whole_bot(routing: Routing) -> Self {
        match routing {
            Routing::Bot => ObjectRole::Bot,
            Routing::Chat => ObjectRole::Home,
        }
    }

    /// The object's name in the namespace.
    pub fn object_name(&self) -> String {
        match self {
            ObjectRole::Bot | ObjectRole::Home => BOT_OBJECT.into(),
            ObjectRole::Chat(chat) => format!("chat:{chat}"),
        }
    }

    /// The query that tells the object its role.
    pub fn query(&self) -> String {
        match self {
            ObjectRole::Bot => String::new(),
            ObjectRole::Home => "?home=1".into(),
            ObjectRole::Chat(chat) => format!("?chat={chat}"),
        }
    }

    /// The role a request to the object names.
    pub fn of_request(req: &Request) -> Self {
        if let Some(chat) = query_param(req, "chat").and_then(|v| v.parse().ok()) {
            return ObjectRole::Chat(chat);
        }
        if query_param(req, "home").as_deref() == Some("1") {
            return ObjectRole::Home;
        }
        ObjectRole::Bot
    }
}

/// The state of one Durable Object of a worker's class: its storage, its gate, and whether it
/// has registered with the home object (chat objects).
pub struct ObjectHost {
    state: State,
    env: Env,
    gate: Rc<UpdateGate>,
    /// Chat objects: whether the home object already knows this one (see
    /// [`ChatRoutedPersistence::new`]).
    registered: Cell<bool>,
    /// When the alarm fires.
    alarm: Alarm,
    /// The chats' delivery lanes ([`super::sender`]).
    lanes: Lanes,
}

impl ObjectHost {
    /// The host of the object the runtime just made.
    pub fn new(state: State, env: Env) -> Self {
        Self {
            alarm: Alarm::new(state.storage()),
            state,
            env,
            gate: Rc::default(),
            registered: Cell::new(false),
            lanes: Lanes::default(),
        }
    }

    fn storage(&self) -> DurableObjectPersistence {
        DurableObjectPersistence::new(self.state.storage(), DEFAULT_PREFIX)
    }

    /// Serves one request to the object (see the module docs). `build` must be the worker's
    /// own Application factory.
    pub async fn fetch<B, C, U>(
        &self,
        mut req: Request,
        build: impl BuildApplication<B, C, U> + Clone + 'static,
    ) -> worker::Result<Response>
    where
        B: DataType,
        C: DataType,
        U: DataType,
    {
        let settings = match Settings::from_env(&self.env) {
            Ok(settings) => settings,
            Err(e) => return text(500, e.to_string()),
        };
        let role = ObjectRole::of_request(&req);
        let path = req.path();
        match path.as_str() {
            "/update" => self.update(&mut req, role, &settings, &build).await,
            "/home" => self.home(&mut req).await,
            "/dead-letter" | "/dead-letters" => self.dead_letters(&mut req).await,
            "/export" => {
                let _turn = self.gate.enter().await;
                if role == ObjectRole::Home {
                    return self.export_all().await;
                }
                export_from(&self.storage()).await
            }
            "/import" => {
                let mode = match import_mode(&req) {
                    Ok(mode) => mode,
                    Err(refusal) => return refusal,
                };
                let body = match String::from_utf8(req.bytes().await?) {
                    Ok(body) => body,
                    Err(e) => return text(400, format!("$: {}", not_utf8(e.utf8_error()))),
                };
                let _turn = self.gate.enter().await;
                if role == ObjectRole::Home {
                    return self.import_all(&body, mode, &settings, &build).await;
                }
                let store = Rc::new(self.storage());
                import_into(&settings, &self.env, store, &build, &body, mode).await
            }
            #[cfg(feature = "dev-bot-api")]
            p if p.starts_with("/devlog/") => {
                if !settings.dev_recording() {
                    return text(404, "DEV_RECORD_BOT_API is not set");
                }
                let username = settings.bot_username.clone();
                super::dev_bot_api::serve(self.state.storage(), &mut req, p, username).await
            }
            #[cfg(feature = "testing")]
            "/__test/drop-unread" => super::test_routes::drop_unread(&req, self, role).await,
            #[cfg(feature = "testing")]
            p if p.starts_with("/__test/") => {
                super::test_routes::object_route(&mut req, p, &self.storage()).await
            }
            _ => text(404, "no such object route"),
        }
    }

    /// Ends overdue conversations when no update comes, and bounds the stored callback data;
    /// then sets the next alarm.
    pub async fn alarm<B, C, U>(
        &self,
        build: impl BuildApplication<B, C, U> + Clone + 'static,
    ) -> worker::Result<Response>
    where
        B: DataType,
        C: DataType,
        U: DataType,
    {
        let turn = self.gate.enter().await;
        // The alarm that fired is spent; wake_at sets the next one.
        self.alarm.spent();
        let store = Rc::new(self.storage());
        let now = js_sys::Date::now() as i64;
        let mut next = Vec::new();
        // Parsed once for the whole alarm; without valid settings the records still expire.
        let settings = Settings::from_env(&self.env).ok();
        // Only the deadlines whose time has come, not every conversation: their TIMEOUT
        // handlers run through the Application, or without settings they just end.
        let walked = match settings.as_ref() {
            Some(settings) => self.time_out(settings, &build, &store, now).await,
            None => {
                let walked = async {
                    deadlines::build_once(&store).await?;
                    let mut walked =
                        deadlines::expire_due(&store, now, deadlines::WALK_PER_ALARM).await?;
                    // More were due than one alarm walks: the next alarm comes right away.
                    if walked.walked == deadlines::WALK_PER_ALARM {
                        walked.next = Some(now);
                    }
                    Ok::<_, crate::Error>(walked)
                };
                walked.await
            }
        };
        #[cfg(feature = "testing")]
        if let Ok(walked) = &walked {
            super::test_routes::note_walk(walked.walked, walked.ended);
        }
        match walked {
            Ok(walked) => next.extend(walked.next),
            Err(e) => {
                console_error!("expiring conversations failed: {e}");
                // Tried again a second later.
                next.push(now + 1000);
            }
        }
        // The jobs due: each run one write under the gate; their queued calls are stored
        // outboxes, sent below with the others.
        if let Some(settings) = settings.as_ref() {
            next.extend(self.run_jobs(settings, &build, &store, now).await);
        }
        let window = settings
            .as_ref()
            .map_or(DEFAULT_WINDOW_MS, |s| s.processed_window_ms);
        match store.prune_processed(now, window, PRUNE_PER_ALARM).await {
            Ok(expiry) => next.extend(expiry),
            Err(e) => console_error!("pruning processed update records failed: {e}"),
        }
        let storage = self.state.storage();
        if let Err(e) = dead_letters::prune_attempts(&storage, DEFAULT_PREFIX, now, window).await {
            console_error!("forgetting old attempt counts failed: {e}");
        }
        // The keyboards' sweep lists them all: at most once per SWEEP_INTERVAL_MS, not at
        // every alarm (updates bound each chat's keyboards as they go).
        if self.sweep_due(now).await {
            let callback_data = settings
                .as_ref()
                .and_then(|settings| self.callback_data_settings(settings, store.clone(), &build));
            if let Some(settings) = callback_data {
                if let Err(e) = sweep(store.as_ref(), now, settings).await {
                    console_error!("sweeping callback data failed: {e}");
                }
            }
        }
        // Queued calls a request left (a transient failure, an isolate that ended): sent
        // outside the gate, each chat's in order.
        let outboxes = match outbox::stored(store.as_ref()).await {
            Ok(outboxes) => outboxes,
            Err(e) => {
                console_error!("reading the stored outboxes failed: {e}");
                Vec::new()
            }
        };
        drop(turn);
        if let (false, Some(settings)) = (outboxes.is_empty(), settings.as_ref()) {
            next.extend(self.send_stored(settings, &build, outboxes, now).await);
        }
        self.wake_at(next.into_iter().min()).await;
        Response::ok("done")
    }

    /// The worker's Application over `role`'s storage with no update recorded: for what the
    /// alarm runs (a job, a conversation's timeout).
    fn application_in<B, C, U>(
        &self,
        role: ObjectRole,
        settings: &Settings,
        build: &impl BuildApplication<B, C, U>,
    ) -> crate::Result<crate::Application<B, C, U>>
    where
        B: DataType,
        C: DataType,
        U: DataType,
    {
        let bot = super::app::bot_api(settings, &self.env)
            .ok_or_else(|| crate::Error::Config("no Bot API client (BOT_TOKEN)".into()))?;
        build(Parts {
            bot,
            persistence: self.plain_persistence(role),
            env: &self.env,
            settings,
        })
    }

    /// Times out the conversations whose deadline came (at most
    /// [`deadlines::WALK_PER_ALARM`] index entries), each in the object that keeps it, through
    /// [`crate::Application::expire_conversation`] (the caller holds the gate); their replies
    /// are stored outboxes, sent with the others.
    async fn time_out<B, C, U>(
        &self,
        settings: &Settings,
        build: &impl BuildApplication<B, C, U>,
        store: &DurableObjectPersistence,
        now: i64,
    ) -> crate::Result<deadlines::Walked>
    where
        B: DataType,
        C: DataType,
        U: DataType,
    {
        deadlines::build_once(store).await?;
        let due = deadlines::due(store, now, deadlines::WALK_PER_ALARM).await?;
        let mut walked = deadlines::Walked {
            walked: due.len(),
            ..deadlines::Walked::default()
        };
        let routing = settings.routing().unwrap_or(Routing::Bot);
        let (mut done, mut failed) = (Vec::new(), false);
        for (entry, key) in due {
            let role = match routing {
                Routing::Bot => ObjectRole::Bot,
                Routing::Chat => super::chat_routing::owner(&key).unwrap_or(ObjectRole::Home),
            };
            let timed_out = match self.application_in(role, settings, build) {
                Ok(app) => app.expire_conversation(&key).await,
                Err(e) => Err(e),
            };
            match timed_out {
                Ok((ended, _)) => {
                    walked.ended += usize::from(ended);
                    done.push(entry);
                }
                // An entry that cannot be read fails the same way every time: its index
                // entry goes (the update that loads it reports it).
                Err(e @ crate::Error::Decode { .. }) => {
                    console_error!("conversation {key}: {e}");
                    done.push(entry);
                }
                Err(e) => {
                    console_error!("timing out conversation {key} failed: {e}");
                    failed = true;
                }
            }
        }
        deadlines::forget(store, done).await?;
        walked.next = if failed {
            // Tried again a second later, not at once for ever.
            Some(now + 1000)
        } else if walked.walked == deadlines::WALK_PER_ALARM {
            Some(now)
        } else {
            deadlines::next(store).await?
        };
        Ok(walked)
    }

    /// Runs the jobs due at `now`, at most [`JOBS_PER_RUN`], each in the object its chat's
    /// updates run in (the caller holds the gate); a run given up goes to the dead letters.
    /// Answers when the alarm is next needed for jobs.
    async fn run_jobs<B, C, U>(
        &self,
        settings: &Settings,
        build: &impl BuildApplication<B, C, U>,
        store: &DurableObjectPersistence,
        now: i64,
    ) -> Option<i64>
    where
        B: DataType,
        C: DataType,
        U: DataType,
    {
        // A storage failure is tried again by the next alarm, a second later.
        let retry = Some(now + 1000);
        let due = match store.jobs_due(now, JOBS_PER_RUN).await {
            Ok(due) => due,
            Err(e) => {
                console_error!("listing the due jobs failed: {e}");
                return retry;
            }
        };
        let routing = settings.routing().unwrap_or(Routing::Bot);
        let mut failed = false;
        for index in &due {
            let Key::JobDue { chat, .. } = index else {
                continue;
            };
            let role = ObjectRole::for_chat(routing, (*chat != 0).then_some(*chat));
            let ran = match self.application_in(role, settings, build) {
                Ok(app) => app.run_job(index).await,
                Err(e) => Err(e),
            };
            match ran {
                Ok(JobRun::GaveUp { letter, .. }) => {
                    let id = letter.update_id;
                    if let Err(e) = self.keep_letter(role, &letter).await {
                        console_error!("job run {id}: keeping its dead letter failed: {e}");
                    }
                }
                Ok(_) => {}
                // A job that cannot be read fails the same way every time: its index entry
                // goes, so that it does not hold up the others, and the job stays for a
                // person to look at. (Data its run loads that cannot be read is another
                // matter: the run is tried again, and runs once the data is fixed.)
                Err(crate::Error::Decode {
                    ref key,
                    ref message,
                    ..
                }) if crate::jobs::is_job_of(index, key) => {
                    console_error!(
                        "job {index} cannot be read ({message}); it leaves the job index"
                    );
                    if let Err(e) = store.write(&[Change::Delete(index.clone())]).await {
                        console_error!("job {index}: {e}");
                    }
                }
                // Storage failed, or the run's data cannot be read: the others still run, and
                // this one is tried again a second later.
                Err(e) => {
                    console_error!("job {index}: {e}");
                    failed = true;
                }
            }
        }
        if failed {
            return retry;
        }
        if due.len() == JOBS_PER_RUN {
            return Some(now);
        }
        match store.jobs_due(i64::MAX, 1).await {
            Ok(first) => first.first().and_then(|key| match key {
                Key::JobDue { at_ms, .. } => Some(*at_ms),
                _ => None,
            }),
            Err(e) => {
                console_error!("listing the next job failed: {e}");
                retry
            }
        }
    }

    /// Whether the alarm should sweep the stored callback data now: the last sweep, kept in
    /// storage, is at least [`SWEEP_INTERVAL_MS`] old. Records this one.
    async fn sweep_due(&self, now: i64) -> bool {
        let key = format!("{DEFAULT_PREFIX}swept-at");
        let storage = self.state.storage();
        let last = match storage.get_multiple(vec![key.clone()]).await {
            Ok(found) => found
                .get(&key.clone().into())
                .as_string()
                .and_then(|at| at.parse::<i64>().ok()),
            Err(e) => {
                console_error!("reading {key} failed: {e}");
                return false;
            }
        };
        if last.is_some_and(|last| now - last < SWEEP_INTERVAL_MS) {
            return false;
        }
        if let Err(e) = storage.put_raw(&key, now.to_string()).await {
            console_error!("writing {key} failed: {e}");
        }
        true
    }

    /// The callback data settings of the worker's Application, if it uses arbitrary callback
    /// data (the Application is built, not run: no I/O).
    fn callback_data_settings<B, C, U>(
        &self,
        settings: &Settings,
        persistence: Rc<dyn Persistence>,
        build: &impl BuildApplication<B, C, U>,
    ) -> Option<crate::CallbackDataSettings>
    where
        B: DataType,
        C: DataType,
        U: DataType,
    {
        let parts = Parts {
            bot: super::app::bot_api(settings, &self.env)?,
            persistence,
            env: &self.env,
            settings,
        };
        build(parts).ok()?.callback_data_settings()
    }

    async fn update<B, C, U>(
        &self,
        req: &mut Request,
        role: ObjectRole,
        settings: &Settings,
        build: &(impl BuildApplication<B, C, U> + Clone + 'static),
    ) -> worker::Result<Response>
    where
        B: DataType,
        C: DataType,
        U: DataType,
    {
        let body = req.bytes().await?;
        let update = match parse_body(&body) {
            Ok(Incoming::Update(update)) => *update,
            Ok(Incoming::Untyped { update_id, reason }) => {
                return WebhookOutcome::Ignored { update_id, reason }.into_response()
            }
            Err(rejection) => return WebhookOutcome::Rejected(rejection).into_response(),
        };
        let update_id = update.update_id;
        // Held until the commit: the next update of this object starts from this one's data.
        let turn = self.gate.enter().await;
        let now = js_sys::Date::now() as i64;
        let window = settings.processed_window_ms;
        let (store, persistence) = self.update_persistence(role, update_id, now, window);
        #[cfg(feature = "testing")]
        let persistence = super::test_routes::with_faults(persistence);
        let (mut outcome, mut sending) =
            run_update(settings, &self.env, persistence, update, build).await;
        // An update no handler matched had no effect: running it again is harmless, so it
        // costs no write (an update that changes nothing writes nothing).
        if let WebhookOutcome::Processed(processed) = &outcome {
            if processed.handled {
                if let Err(e) = store.commit_marker().await {
                    console_error!("update {update_id}: recording it as processed failed: {e}");
                    outcome = WebhookOutcome::of(Err(e));
                    sending = None;
                }
            }
        }
        // A failed delivery counts against the update's bound; past it, or when it cannot
        // pass, the update is dead-lettered and acknowledged.
        if let WebhookOutcome::Failed {
            recurrence, error, ..
        } = &outcome
        {
            let storage = self.state.storage();
            let counts = FailedUpdates::Object {
                storage: &storage,
                prefix: DEFAULT_PREFIX,
            };
            let letter = dead_letters::judge(
                &counts,
                update_id,
                *recurrence,
                error.clone(),
                &body,
                settings,
                now,
            )
            .await;
            if let Some(letter) = letter {
                if let Some(settled) = self.dead_letter(role, &store, &counts, letter).await {
                    outcome = settled;
                }
            }
            // The alarm forgets the count once Telegram would have given up.
            self.wake_at(Some(now + window)).await;
        }
        if let WebhookOutcome::Processed(processed) = &outcome {
            if matches!(role, ObjectRole::Chat(_)) {
                self.registered.set(true);
            }
            // The alarm ends conversations at their deadline and forgets this update's record
            // when it expires, also if no update ever comes to this object again; and it sends
            // the queued calls should this isolate end before it does.
            let deadlines = conversation_deadlines(&processed.changes);
            let jobs = job_times(&processed.changes);
            let record_expiry = processed.handled.then_some(now + window);
            let outbox_net = sending.is_some().then_some(now + OUTBOX_NET_MS);
            let wake = deadlines
                .into_iter()
                .chain(jobs)
                .chain(record_expiry)
                .chain(outbox_net);
            self.wake_at(wake.min()).await;
        }
        let Some(sending) = sending else {
            return outcome.into_response();
        };
        // The queued calls go out after the commit and outside the gate, in the chat's lane,
        // whose place is taken before the gate is let go, so in commit order.
        self.lanes
            .find_stalled_once(&self.storage(), update_id)
            .await;
        let chat = sending.outbox.chat;
        let job = self.send_job(role, chat, settings, build.clone());
        drop(turn);
        let sent = match settings.send_queued {
            SendQueued::BeforeAnswer => job.committed(sending).await,
            SendQueued::AfterAnswer => {
                self.state.wait_until(async move {
                    job.committed(sending).await;
                });
                None
            }
        };
        if let (WebhookOutcome::Processed(processed), Some(sent)) = (&mut outcome, sent) {
            processed.delivery = Some(sent);
        }
        outcome.into_response()
    }

    /// A delivery for `chat`'s outboxes in this object (`role`'s), owning what it needs, with
    /// its place in the chat's lane taken now.
    fn send_job<F>(
        &self,
        role: ObjectRole,
        chat: i64,
        settings: &Settings,
        build: F,
    ) -> SendJob<F> {
        SendJob {
            chat,
            ticket: Some(self.lanes.ticket(chat)),
            lanes: self.lanes.clone(),
            gate: self.gate.clone(),
            alarm: self.alarm.clone(),
            store: Rc::new(self.storage()),
            report: self.plain_persistence(role),
            env: self.env.clone(),
            settings: settings.clone(),
            build,
        }
    }

    /// Sends the stored outboxes that are due (the alarm's part), each chat's in order in its
    /// lane, the chats at once; answers when the next is due.
    async fn send_stored<B, C, U>(
        &self,
        settings: &Settings,
        build: &(impl BuildApplication<B, C, U> + Clone + 'static),
        outboxes: Vec<Outbox>,
        now: i64,
    ) -> Option<i64>
    where
        B: DataType,
        C: DataType,
        U: DataType,
    {
        let mut chats: Vec<(i64, Vec<Outbox>)> = Vec::new();
        for outbox in outboxes {
            match chats.last_mut() {
                Some((chat, list)) if *chat == outbox.chat => list.push(outbox),
                _ => chats.push((outbox.chat, vec![outbox])),
            }
        }
        let routing = settings.routing().unwrap_or(Routing::Bot);
        let sends = chats.into_iter().map(|(chat, outboxes)| {
            // The object that ran the update (an outbox's chat is 0 for none).
            let role = ObjectRole::for_chat(routing, (chat != 0).then_some(chat));
            self.send_job(role, chat, settings, build.clone())
                .stored(outboxes, now)
        });
        futures::future::join_all(sends)
            .await
            .into_iter()
            .flatten()
            .min()
    }

    /// The storage of an object's role with no update recorded: for writes after the update's
    /// own (its error handlers' changes).
    fn plain_persistence(&self, role: ObjectRole) -> Rc<dyn Persistence> {
        match role {
            ObjectRole::Bot => Rc::new(self.storage()),
            _ => Rc::new(ChatRoutedPersistence::new(
                Rc::new(self.storage().with_compare_and_set()),
                self.env.clone(),
                role,
                false,
            )),
        }
    }

    /// The storage of one update in this object: its own (which records the update as
    /// processed) and what the Application gets (with chat routing, one that reaches other
    /// objects' entries too).
    pub(crate) fn update_persistence(
        &self,
        role: ObjectRole,
        update_id: i64,
        now: i64,
        window: i64,
    ) -> (Rc<DurableObjectPersistence>, Rc<dyn Persistence>) {
        // With chat routing other objects write this one's entries outside its gate: its own
        // writes compare too.
        let store = match role {
            ObjectRole::Bot => Rc::new(self.storage()),
            _ => Rc::new(self.storage().with_compare_and_set()),
        };
        // The duplicate check rides on the Application's one read.
        store.begin_update(update_id, now, window);
        let persistence: Rc<dyn Persistence> = match role {
            ObjectRole::Bot => store.clone(),
            _ => Rc::new(ChatRoutedPersistence::new(
                store.clone(),
                self.env.clone(),
                role,
                !self.registered.get(),
            )),
        };
        (store, persistence)
    }

    /// Keeps `letter` in the dead-letter list (the bot or home object's), then records its
    /// update as processed here so that later copies are duplicates. `None` when either
    /// failed: the update's failure is answered and Telegram delivers it again.
    async fn dead_letter(
        &self,
        role: ObjectRole,
        store: &DurableObjectPersistence,
        counts: &FailedUpdates<'_>,
        letter: DeadLetter,
    ) -> Option<WebhookOutcome> {
        let update_id = letter.update_id;
        if let Err(e) = self.keep_letter(role, &letter).await {
            console_error!("update {update_id}: keeping its dead letter failed: {e}");
            return None;
        }
        if let Err(e) = store.commit_marker().await {
            console_error!("update {update_id}: recording the dead-lettered update failed: {e}");
            return None;
        }
        if let Err(e) = counts.forget_attempts(update_id).await {
            console_error!("update {update_id}: forgetting its attempts failed: {e}");
        }
        Some(WebhookOutcome::DeadLettered(update_id))
    }

    /// Keeps `letter` in the dead-letter list: the bot or home object's (a chat object sends
    /// it there).
    async fn keep_letter(&self, role: ObjectRole, letter: &DeadLetter) -> Result<(), String> {
        match role {
            ObjectRole::Chat(_) => {
                let body = serde_json::to_string(letter).ok();
                match forward(&self.env, BOT_OBJECT, "/dead-letter", Method::Post, body).await {
                    Ok(response) if response.status_code() == 200 => Ok(()),
                    Ok(response) => Err(format!(
                        "the home object answered {}",
                        response.status_code()
                    )),
                    Err(e) => Err(e.to_string()),
                }
            }
            _ => {
                let storage = self.state.storage();
                let letters = FailedUpdates::Object {
                    storage: &storage,
                    prefix: DEFAULT_PREFIX,
                };
                letters.keep(letter).await.map_err(|e| e.to_string())
            }
        }
    }

    /// `POST /dead-letter` (a chat object's dead letter, kept here) and `GET /dead-letters`.
    async fn dead_letters(&self, req: &mut Request) -> worker::Result<Response> {
        let storage = self.state.storage();
        let letters = FailedUpdates::Object {
            storage: &storage,
            prefix: DEFAULT_PREFIX,
        };
        if req.method() == Method::Post {
            let letter: DeadLetter = match req.json().await {
                Ok(letter) => letter,
                Err(e) => return text(400, format!("bad dead letter: {e}")),
            };
            return match letters.keep(&letter).await {
                Ok(()) => text(200, "kept"),
                Err(e) => text(500, e.to_string()),
            };
        }
        match letters.list().await {
            Ok(list) => Response::from_json(&json!({ "dead_letters": list })),
            Err(e) => text(500, e.to_string()),
        }
    }

    /// Makes sure the alarm fires at `at` or earlier ([`Alarm::wake_at`]).
    async fn wake_at(&self, at: Option<i64>) {
        self.alarm.wake_at(at).await;
    }

    /// Serves other objects' reads and compare-and-set writes of the entries this one keeps.
    /// Does not take the gate: these are storage operations only, atomic on their own.
    async fn home(&self, req: &mut Request) -> worker::Result<Response> {
        let request: HomeRequest = match req.json().await {
            Ok(request) => request,
            Err(e) => return text(400, format!("bad home request: {e}")),
        };
        // Another object's update recorded here expires here too, and a conversation written
        // here ends at its deadline here: the alarm sees to both.
        let expiry = match &request {
            HomeRequest::Write { ops, update } => {
                let changes: Vec<Change> = ops
                    .iter()
                    .filter_map(|op| {
                        let key = Key::parse(&op.key, DEFAULT_PREFIX)?;
                        Some(Change::Put(key, op.value.clone()?))
                    })
                    .collect();
                let record = update.map(|record| record.at_ms + record.window_ms);
                conversation_deadlines(&changes)
                    .into_iter()
                    .chain(job_times(&changes))
                    .chain(record)
                    .min()
            }
            _ => None,
        };
        match self.storage().serve_home(request).await {
            Ok(Some(answer)) => {
                self.wake_at(expiry).await;
                Response::from_json(&answer)
            }
            Ok(None) => text(409, "conflict"),
            Err(e) => {
                console_error!("home object: {e}");
                text(500, e.to_string())
            }
        }
    }

    /// A chat object's JSON answer at `path`, or the text of its failure.
    async fn ask_chat(
        &self,
        chat: i64,
        path: &str,
        method: Method,
        body: Option<String>,
    ) -> worker::Result<Result<serde_json::Value, String>> {
        let name = ObjectRole::Chat(chat).object_name();
        let mut response = forward(&self.env, &name, path, method, body).await?;
        if response.status_code() != 200 {
            return Ok(Err(response.text().await?));
        }
        Ok(Ok(response.json().await?))
    }

    /// Everything: this object's entries and those of every registered chat object.
    async fn export_all(&self) -> worker::Result<Response> {
        let store = self.storage();
        let mut doc = match dict::export(&store).await {
            Ok(doc) => doc,
            Err(e) => return text(500, e.to_string()),
        };
        let chats = match store.registered_chats().await {
            Ok(chats) => chats,
            Err(e) => return text(500, e.to_string()),
        };
        for chat in chats {
            match self.ask_chat(chat, "/export", Method::Get, None).await? {
                Ok(part) => merge_export(&mut doc, part),
                Err(why) => return text(500, format!("export of chat {chat} failed: {why}")),
            }
        }
        Response::from_json(&doc)
    }

    /// Splits a document by chat: chat_data and conversations keyed by a chat id go to that
    /// chat's object, the rest stays here. With [`ImportMode::Replace`] every chat object known
    /// before is replaced too; with [`ImportMode::Merge`] only the document's chats are
    /// touched. The whole document is checked first (shapes, the bot's own checks, the
    /// bound on entries), so that a bad one changes nothing.
    async fn import_all<B, C, U>(
        &self,
        body: &str,
        mode: ImportMode,
        settings: &Settings,
        build: &impl BuildApplication<B, C, U>,
    ) -> worker::Result<Response>
    where
        B: DataType,
        C: DataType,
        U: DataType,
    {
        let store = self.storage();
        let app = match checking_application(settings, &self.env, Rc::new(self.storage()), build) {
            Ok(app) => app,
            Err(e) => return text(500, format!("the application could not be built: {e}")),
        };
        let options = import_options(mode);
        let checked =
            dict::for_each_entry(body, &options, |key, value| app.check_entry(&key, &value));
        if let Err(e) = checked {
            return import_answer(Err(e));
        }
        let doc: serde_json::Value = match serde_json::from_str(body) {
            Ok(doc) => doc,
            Err(e) => return text(400, format!("$: body is not valid JSON: {e}")),
        };
        if !doc["callback_data"].is_null() {
            return text(400, "callback_data: not importable with DO_ROUTING=chat");
        }
        let mut parts = split_by_chat(&doc);
        drop(doc);
        let home = parts.remove(&None).unwrap_or_else(|| json!({}));
        let mut chats: Vec<i64> = match mode {
            ImportMode::Replace => store.registered_chats().await.unwrap_or_default(),
            ImportMode::Merge => Vec::new(),
        };
        chats.extend(parts.keys().flatten());
        chats.sort_unstable();
        chats.dedup();
        let path = format!("/import{}", with_mode("", mode));
        let mut imported = 0u64;
        for chat in chats {
            let part = parts.remove(&Some(chat)).unwrap_or_else(|| json!({}));
            let body = Some(part.to_string());
            let answer = match self.ask_chat(chat, &path, Method::Post, body).await? {
                Ok(answer) => answer,
                Err(why) => return text(500, format!("import into chat {chat} failed: {why}")),
            };
            imported += answer["imported"].as_u64().unwrap_or(0);
            let register = HomeRequest::Read {
                keys: Vec::new(),
                register: vec![chat],
            };
            if let Err(e) = store.serve_home(register).await {
                return text(500, e.to_string());
            }
        }
        let home = dict::import_text(&store, &home.to_string(), 1, options, |_, _| Ok(())).await;
        match home {
            Ok(count) => Response::from_json(&json!({ "imported": imported + count as u64 })),
            Err(e) => text(500, e.to_string()),
        }
    }
}

/// When the jobs scheduled (or moved) among `changes` run: the object's alarm must come then.
fn job_times(changes: &[Change]) -> Vec<i64> {
    changes
        .iter()
        .filter_map(|change| match change {
            Change::Put(Key::JobDue { at_ms, .. }, _) => Some(*at_ms),
            _ => None,
        })
        .collect()
}

/// The deadlines of the conversation entries among `changes`.
fn conversation_deadlines(changes: &[Change]) -> Vec<i64> {
    changes
        .iter()
        .filter_map(|change| match change {
            Change::Put(Key::Conversation { .. }, raw) => codec::decode(raw).ok(),
            _ => None,
        })
        .filter_map(|stored| conversation::deadline(&stored.data))
        .collect()
}
