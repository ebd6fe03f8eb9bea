//! [`serve`]: a worker's `fetch` entry. `POST /webhook` (verify, read within limits, parse, then
//! run the update here or forward it to its Durable Object), the admin routes, and with the
//! matching features the dev recorder's and the tests' routes.

use std::rc::Rc;

use worker::{console_error, console_log, Env, Method, Request, Response};

use super::admin;
use super::app::{run_update, BuildApplication, Sending};
use super::d1::D1Persistence;
use super::dead_letters::{self, FailedUpdates};
use super::http::read_update;
use super::kv::KvPersistence;
use super::object::ObjectRole;
use super::outcome::{Failure, WebhookOutcome};
use super::settings::{Backend, Settings, WebhookAuth};
use super::{forward, D1_BINDING, KV_BINDING};
use crate::context::DataType;
use crate::outbox::Delivery;
use crate::persistence::{Change, Key, Persistence};
use crate::webhook::{not_utf8, Incoming, Rejection};
use crate::MemoryPersistence;

thread_local! {
    /// `PERSISTENCE=memory`: lives as long as the isolate.
    static MEMORY: Rc<MemoryPersistence> = Rc::new(MemoryPersistence::new().without_timer());
}

/// Serves one request to the worker: `POST /webhook`, `GET /admin/export`,
/// `POST /admin/import`, `GET /admin/info` (admin routes only with `ADMIN_TOKEN` set); with the
/// `dev-bot-api` feature the playground's `/admin/dev/` routes, with `testing` the `/__test/`
/// routes. Anything else is 404: a worker with routes of its own matches those first and
/// passes the rest here.
///
/// `build` makes the bot's [`Application`](crate::Application) for one update; with
/// `PERSISTENCE=durable_object` it runs inside the object (see [`super::ObjectHost`]), so the
/// worker's Durable Object class must be built with the same function
/// ([`crate::edge_worker!`] does both).
pub async fn serve<B, C, U>(
    mut req: Request,
    env: Env,
    build: impl BuildApplication<B, C, U>,
) -> worker::Result<Response>
where
    B: DataType,
    C: DataType,
    U: DataType,
{
    let settings = match Settings::from_env(&env) {
        Ok(settings) => settings,
        Err(e) => {
            console_error!("{e}");
            return WebhookOutcome::failed(Failure::NotConfigured).into_response();
        }
    };
    let path = req.path();
    match path.as_str() {
        "/webhook" => webhook(&mut req, &env, &settings, &build).await,
        "/admin/export" | "/admin/import" | "/admin/info" | "/admin/dead-letters" => {
            admin::worker_route(&mut req, &env, &settings, &path, &build).await
        }
        #[cfg(feature = "dev-bot-api")]
        p if p.starts_with("/admin/dev/") => admin::dev_route(&req, &env, &settings, p).await,
        #[cfg(feature = "testing")]
        p if p.starts_with("/__test/") => {
            super::test_routes::worker_route(&mut req, &env, &settings, p).await
        }
        _ => Response::error("not found", 404),
    }
}

async fn webhook<B, C, U>(
    req: &mut Request,
    env: &Env,
    settings: &Settings,
    build: &impl BuildApplication<B, C, U>,
) -> worker::Result<Response>
where
    B: DataType,
    C: DataType,
    U: DataType,
{
    let secret = match &settings.webhook {
        WebhookAuth::Secret(secret) => Some(secret.as_str()),
        WebhookAuth::Insecure => None,
        WebhookAuth::Unconfigured => {
            console_error!(
                "WEBHOOK_SECRET is not set: refusing webhooks (ALLOW_INSECURE_WEBHOOK=1 accepts \
                 them without a secret, for local development only)"
            );
            return WebhookOutcome::failed(Failure::SecretNotConfigured).into_response();
        }
    };
    let (update, body) = match read_update(req, secret).await {
        Err(rejection) => return WebhookOutcome::Rejected(rejection).into_response(),
        Ok((Incoming::Untyped { update_id, reason }, _)) => {
            console_log!("update {update_id} ignored: its content could not be typed: {reason}");
            return WebhookOutcome::Ignored { update_id, reason }.into_response();
        }
        Ok((Incoming::Update(update), body)) => (*update, body),
    };
    if let Backend::DurableObject(routing) = settings.backend {
        let role = ObjectRole::for_update(routing, &update);
        // The body as it came: no second serialisation. It parsed, so it is UTF-8; were it not,
        // it would be refused, never forwarded with U+FFFD in place of its bad bytes.
        let body = match String::from_utf8(body) {
            Ok(body) => body,
            Err(e) => {
                let rejection = Rejection::BadRequest(not_utf8(e.utf8_error()));
                return WebhookOutcome::Rejected(rejection).into_response();
            }
        };
        let path = format!("/update{}", role.query());
        return forward(env, &role.object_name(), &path, Method::Post, Some(body)).await;
    }
    let Some(store) = worker_store(settings, env) else {
        return WebhookOutcome::failed(Failure::NotConfigured).into_response();
    };
    let update_id = update.update_id;
    let outbox_key = Key::Outbox {
        chat: update.effective_chat().map_or(0, |chat| chat.id),
        update_id,
    };
    let now = js_sys::Date::now() as i64;
    let recorded = store.begin_update(update_id, now, settings.processed_window_ms);
    let (mut outcome, mut sending) =
        run_update(settings, env, store.persistence(), update, build).await;
    if let WebhookOutcome::Processed(processed) = &outcome {
        // An update no handler matched changed nothing: it costs no record.
        if processed.handled {
            if let Err(e) = store.commit_marker().await {
                console_error!("update {update_id}: recording it as processed failed: {e}");
                outcome = WebhookOutcome::of(Err(e));
                sending = None;
            }
        }
    }
    // What sends (and deletes) the outbox: storage of its own, recording no update (the
    // update's store would record it again with every write); made only when there is an
    // outbox to send or to look for.
    let sender = (sending.is_some() || matches!(outcome, WebhookOutcome::Duplicate(_)))
        .then(|| worker_store(settings, env).map(|store| store.persistence()))
        .flatten();
    // A redelivered update sends what its first delivery left unsent, and nothing else; an
    // outbox the first delivery may still be sending is left to it (answered 500, so that
    // Telegram asks again), unless it is older than a delivery can take.
    if let (WebhookOutcome::Duplicate(_), Some(sender)) = (&outcome, &sender) {
        let stored = Sending::stored(settings, env, sender.clone(), build, outbox_key).await;
        let now = js_sys::Date::now() as i64;
        match stored {
            Some(stored) if stored.outbox.in_flight(now) => {
                let left = stored.outbox.remaining().len();
                outcome = WebhookOutcome::Unsent { update_id, left };
            }
            Some(mut stored) => {
                // Claimed with compare-and-set where the store has it (D1): of two copies
                // redelivered at once, one sends, the other is answered 500.
                stored.outbox.claimed_at_ms = now;
                let claim = match stored.outbox.encode() {
                    Ok(value) => {
                        sender
                            .write(&[Change::Put(stored.outbox.key(), value)])
                            .await
                    }
                    Err(e) => Err(e),
                };
                match claim {
                    Ok(()) => sending = Some(stored),
                    Err(e) => {
                        console_log!("update {update_id}: its outbox is another delivery's: {e}");
                        let left = stored.outbox.remaining().len();
                        outcome = WebhookOutcome::Unsent { update_id, left };
                    }
                }
            }
            None => {}
        }
    }
    // The queued calls, after the commit. There is no alarm here to retry a transient
    // failure: the update is answered 500 and Telegram's redelivery (a duplicate) sends them
    // — where update records are kept (KV, D1); memory keeps none, so there a redelivery
    // would apply the update again, and the calls stay unsent.
    if let (Some(sending), Some(sender)) = (sending.as_mut(), &sender) {
        let delivery = sending.send(sender.as_ref()).await;
        if let Ok(delivery) = &delivery {
            sending.report(delivery).await;
        }
        match delivery {
            Ok(Delivery::Pending { .. }) if recorded => {
                let left = sending.outbox.remaining().len();
                outcome = WebhookOutcome::Unsent { update_id, left };
            }
            Ok(delivery) => {
                if let WebhookOutcome::Processed(processed) = &mut outcome {
                    processed.delivery = Some(delivery);
                }
            }
            // Sent, but the outbox's progress is not stored: answering 500 would send the
            // calls again; the outbox stays behind, and the log says so.
            Err(_) => {}
        }
    }
    // A failed delivery counts against the update's bound; past it, or when it cannot pass,
    // the update is dead-lettered and acknowledged.
    if let WebhookOutcome::Failed {
        recurrence, error, ..
    } = &outcome
    {
        let counts = store.failed_updates();
        let now = js_sys::Date::now() as i64;
        let letter = dead_letters::judge(
            &counts,
            update_id,
            *recurrence,
            error.clone(),
            body.as_ref(),
            settings,
            now,
        )
        .await;
        if let Some(letter) = letter {
            let kept = async {
                counts.keep(&letter).await?;
                store.commit_marker().await?;
                counts.forget_attempts(update_id).await
            };
            match kept.await {
                Ok(()) => outcome = WebhookOutcome::DeadLettered(update_id),
                Err(e) => console_error!("update {update_id}: keeping its dead letter failed: {e}"),
            }
        }
    }
    outcome.into_response()
}

/// The storage of a worker that runs Applications itself.
pub(crate) enum WorkerStore {
    /// `PERSISTENCE=kv`.
    Kv(Rc<KvPersistence>),
    /// `PERSISTENCE=d1`.
    D1(Rc<D1Persistence>),
    /// `PERSISTENCE=memory`.
    Memory(Rc<MemoryPersistence>),
}

impl WorkerStore {
    /// Where this store counts failed deliveries and keeps dead letters.
    pub(crate) fn failed_updates(&self) -> FailedUpdates<'_> {
        match self {
            WorkerStore::Kv(kv) => {
                let (kv, prefix) = kv.parts();
                FailedUpdates::Kv { kv, prefix }
            }
            WorkerStore::D1(d1) => FailedUpdates::D1(d1.database()),
            WorkerStore::Memory(_) => FailedUpdates::Memory,
        }
    }

    /// The store itself, without the test builds' fault injection.
    fn raw(&self) -> &dyn Persistence {
        match self {
            WorkerStore::Kv(kv) => kv.as_ref(),
            WorkerStore::D1(d1) => d1.as_ref(),
            WorkerStore::Memory(memory) => memory.as_ref(),
        }
    }

    /// Starts recording `update_id` as processed where the store keeps records (KV, D1).
    /// Answers whether the store keeps update records (KV, D1; memory does not).
    fn begin_update(&self, update_id: i64, now_ms: i64, window_ms: i64) -> bool {
        self.raw().begin_update(update_id, now_ms, window_ms)
    }

    /// Records the update alone if no write carried its record (KV, D1).
    async fn commit_marker(&self) -> crate::Result<()> {
        self.raw().commit_marker().await
    }

    /// The store as the Application uses it (with armed faults in test builds).
    pub(crate) fn persistence(&self) -> Rc<dyn Persistence> {
        let backend: Rc<dyn Persistence> = match self {
            WorkerStore::Kv(kv) => kv.clone(),
            WorkerStore::D1(d1) => d1.clone(),
            WorkerStore::Memory(memory) => memory.clone(),
        };
        #[cfg(feature = "testing")]
        let backend = super::test_routes::with_faults(backend);
        backend
    }
}

/// The backend of a worker that runs Applications itself (`kv`, `d1`, `memory`); `None` (logged)
/// for Durable Objects, whose Applications run in the object, or a missing binding.
pub(crate) fn worker_store(settings: &Settings, env: &Env) -> Option<WorkerStore> {
    match &settings.backend {
        Backend::Kv { prefix } => match env.kv(KV_BINDING) {
            Ok(kv) => Some(WorkerStore::Kv(Rc::new(KvPersistence::new(
                kv,
                prefix.clone(),
            )))),
            Err(e) => {
                console_error!("PERSISTENCE=kv needs the KV binding {KV_BINDING}: {e}");
                None
            }
        },
        Backend::D1 => match env.d1(D1_BINDING) {
            Ok(db) => Some(WorkerStore::D1(Rc::new(D1Persistence::new(db)))),
            Err(e) => {
                console_error!("PERSISTENCE=d1 needs the D1 binding {D1_BINDING}: {e}");
                None
            }
        },
        Backend::Memory => Some(WorkerStore::Memory(MEMORY.with(|m| m.clone()))),
        Backend::DurableObject(_) => {
            console_error!("PERSISTENCE=durable_object runs the Application in the object");
            None
        }
    }
}
