//! The demo worker (`../shared/notes/demo-worker.md`): `POST /webhook`, `GET /admin/export`,
//! `POST /admin/import`, `GET /admin/info`; with `DEV_RECORD_BOT_API=1` (local development
//! only) the playground's `/admin/dev/` routes (see [`super::dev_bot_api`]); with the
//! `test-hooks` feature also the `/__test/` routes.

use std::rc::Rc;

use serde_json::json;
use worker::{
    console_debug, console_error, console_log, durable_object, event, Context, DurableObject, Env,
    Method, Request, Response, State,
};

use super::dev_bot_api::{self, DevBotApi, DEVLOG_OBJECT};
use super::durable::{ChatObjectPersistence, DurableObjectPersistence, HomeRequest, UpdateGate};
use super::fetch_bot::FetchBot;
use super::http::{json_request, query_param, read_body, read_update};
use super::kv::KvPersistence;
use crate::bot::BotApi;
use crate::callback_data::{sweep, CallbackDataSettings};
use crate::conversation;
use crate::demo::DemoOptions;
use crate::persistence::{codec, dict, Change, Key, Persistence, DEFAULT_PREFIX};
use crate::types::Update;
use crate::webhook::{parse_body, secret_matches, Incoming, Rejection};
use crate::{Error, MemoryPersistence, Outcome};

/// The KV namespace binding.
const KV_BINDING: &str = "EDGEGRAM_KV";
/// The Durable Object namespace binding.
const DO_BINDING: &str = "EDGEGRAM_DO";
/// The answer to a redelivered update that was already processed.
const DUPLICATE: &str = "duplicate";
/// Stored callback data is swept (TTL, maxsize) once every this many update ids.
const SWEEP_EVERY: i64 = 512;
/// The object that holds everything in `DO_ROUTING=bot` mode.
const BOT_OBJECT: &str = "bot";
/// Import documents may be far larger than updates.
const MAX_IMPORT_BYTES: usize = 25 << 20;

thread_local! {
    /// `PERSISTENCE=memory`: lives as long as the isolate.
    static MEMORY: Rc<MemoryPersistence> = Rc::new(MemoryPersistence::new());
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let path = req.path();
    match path.as_str() {
        "/webhook" => webhook(&mut req, &env).await,
        "/admin/export" => admin_export(&req, &env).await,
        "/admin/import" => admin_import(&mut req, &env).await,
        "/admin/info" => admin_info(&req, &env).await,
        p if p.starts_with("/admin/dev/") => admin_dev(&req, &env, p).await,
        #[cfg(feature = "test-hooks")]
        p if p.starts_with("/__test/") => test_hooks::route(&mut req, &env, p).await,
        _ => Response::error("not found", 404),
    }
}

/// A var or secret, `None` when unset or empty.
fn setting(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .ok()
        .or_else(|| env.secret(name).map(|s| s.to_string()).ok())
        .filter(|v| !v.is_empty())
}

fn text(status: u16, body: impl Into<String>) -> worker::Result<Response> {
    Ok(Response::ok(body)?.with_status(status))
}

fn reject(rejection: Rejection) -> worker::Result<Response> {
    let response = text(rejection.status(), rejection.message())?;
    if rejection == Rejection::MethodNotAllowed {
        let mut response = response;
        response.headers_mut().set("Allow", "POST")?;
        return Ok(response);
    }
    Ok(response)
}

/// `PERSISTENCE`, default `durable_object`.
fn persistence_choice(env: &Env) -> String {
    setting(env, "PERSISTENCE").unwrap_or_else(|| "durable_object".into())
}

/// The worker-side backend `PERSISTENCE` names (`kv`, `memory`); Durable Objects run the
/// Application inside the object instead (see [`EdgegramObject`]).
fn persistence(env: &Env) -> Result<Rc<dyn Persistence>, String> {
    let choice = persistence_choice(env);
    let backend: Rc<dyn Persistence> = match choice.as_str() {
        "kv" => {
            let kv = env
                .kv(KV_BINDING)
                .map_err(|e| format!("PERSISTENCE=kv needs the KV binding {KV_BINDING}: {e}"))?;
            let prefix = setting(env, "KV_PREFIX").unwrap_or_else(|| DEFAULT_PREFIX.into());
            Rc::new(KvPersistence::new(kv, prefix))
        }
        "memory" => MEMORY.with(|m| m.clone()),
        "durable_object" => {
            return Err(
                "PERSISTENCE=durable_object is not available in this version; use kv".into(),
            )
        }
        other => return Err(format!("unknown PERSISTENCE {other:?}: use kv or memory")),
    };
    #[cfg(feature = "test-hooks")]
    let backend = test_hooks::wrap(backend);
    Ok(backend)
}

async fn webhook(req: &mut Request, env: &Env) -> worker::Result<Response> {
    let secret = setting(env, "WEBHOOK_SECRET");
    let insecure = setting(env, "ALLOW_INSECURE_WEBHOOK").as_deref() == Some("1");
    if secret.is_none() && !insecure {
        console_error!(
            "WEBHOOK_SECRET is not set: refusing webhooks (ALLOW_INSECURE_WEBHOOK=1 accepts \
             them without a secret, for local development only)"
        );
        return text(500, "webhook secret not configured");
    }
    let (update, body) = match read_update(req, secret.as_deref()).await {
        Err(rejection) => return reject(rejection),
        Ok((Incoming::Untyped { update_id, reason }, _)) => {
            console_log!("update {update_id} ignored: its content could not be typed: {reason}");
            return text(200, "ignored");
        }
        Ok((Incoming::Update(update), body)) => (*update, body),
    };
    if persistence_choice(env) == "durable_object" {
        let name = object_name(env, &update);
        // Chat objects learn their chat from the query: their bot_data and user_data live in
        // the home object.
        let path = match name.strip_prefix("chat:") {
            Some(chat) => format!("/update?chat={chat}"),
            None if per_chat(env) => "/update?home=1".into(),
            None => "/update".into(),
        };
        // The body as it came: no second serialisation (it parsed, so it is UTF-8).
        let body = Some(String::from_utf8_lossy(&body).into_owned());
        return forward(env, &name, &path, Method::Post, body).await;
    }
    let persistence = match persistence(env) {
        Ok(p) => p,
        Err(message) => {
            console_error!("{message}");
            return text(500, "persistence not configured");
        }
    };
    let result = process(env, persistence, update).await;
    respond(result)
}

/// The result of running the Application on one update: the outcome, or the status and
/// public message of a failure (already logged).
type Processed = Result<Outcome, (u16, String)>;

/// Builds the demo Application over `persistence` and runs `update` through it.
async fn process(env: &Env, persistence: Rc<dyn Persistence>, update: Update) -> Processed {
    let update_id = update.update_id;
    let kind = update.kind().map_or("none".into(), |k| k.to_string());
    let bot = bot_api(env)?;
    let options = DemoOptions {
        bot_username: setting(env, "BOT_USERNAME"),
        conversation_timeout: setting(env, "CONVERSATION_TIMEOUT_SECONDS")
            .and_then(|s| s.parse::<u64>().ok())
            .map(std::time::Duration::from_secs),
    };
    let app = crate::demo::application_with(bot, persistence.clone(), options).map_err(|e| {
        console_error!("{e}");
        (500, "application not configured".to_string())
    })?;
    match app.process_update(update).await {
        Ok(outcome) => {
            if let Some(error) = &outcome.handler_error {
                console_error!("update {update_id}: handler failed, nothing written: {error}");
            }
            if !outcome.handled {
                console_debug!("update {update_id} ({kind}) matched no handler: ignored");
            }
            // Keyboards nobody pressed stay until swept: now and then, bound them.
            if update_id % SWEEP_EVERY == 0 {
                let now = js_sys::Date::now() as i64;
                let settings = CallbackDataSettings::default();
                if let Err(e) = sweep(persistence.as_ref(), now, settings).await {
                    console_error!("sweeping callback data failed: {e}");
                }
            }
            Ok(outcome)
        }
        Err(Error::AlreadyProcessed(_)) => Err((200, DUPLICATE.into())),
        Err(e) => {
            console_error!("update {update_id} not handled, Telegram will retry: {e}");
            Err((500, format!("update not handled: {}", public_reason(&e))))
        }
    }
}

/// The Bot API the Application talks to: Telegram over fetch, or with
/// `DEV_RECORD_BOT_API=1` the recorder of local development ([`DevBotApi`]).
fn bot_api(env: &Env) -> Result<Rc<dyn BotApi>, (u16, String)> {
    if dev_recording(env) {
        let log = env
            .durable_object(DO_BINDING)
            .and_then(|ns| ns.get_by_name(DEVLOG_OBJECT))
            .map_err(|e| {
                console_error!("DEV_RECORD_BOT_API=1 needs the binding {DO_BINDING}: {e}");
                (500, "dev recorder not configured".to_string())
            })?;
        return Ok(Rc::new(DevBotApi::new(log)));
    }
    let Some(token) = setting(env, "BOT_TOKEN") else {
        console_error!("BOT_TOKEN is not set");
        return Err((500, "bot token not configured".into()));
    };
    let base =
        setting(env, "TELEGRAM_API_BASE").unwrap_or_else(|| "https://api.telegram.org".into());
    Ok(Rc::new(FetchBot::new(base, token)))
}

/// `DEV_RECORD_BOT_API=1`: Bot API calls are recorded, not sent (local development only).
fn dev_recording(env: &Env) -> bool {
    setting(env, "DEV_RECORD_BOT_API").as_deref() == Some("1")
}

fn respond(result: Processed) -> worker::Result<Response> {
    match result {
        Ok(outcome) => {
            let summary = format!(
                "handled={}; reads={}; puts={}; deletes={}",
                u8::from(outcome.handled),
                outcome.reads,
                outcome.written().len(),
                outcome.deleted().len()
            );
            let mut response = text(200, "ok")?;
            response.headers_mut().set("X-Edgegram-Outcome", &summary)?;
            Ok(response)
        }
        Err((200, message)) if message == DUPLICATE => {
            let mut response = text(200, DUPLICATE)?;
            response
                .headers_mut()
                .set("X-Edgegram-Outcome", "duplicate=1")?;
            Ok(response)
        }
        Err((status, message)) => text(status, message),
    }
}

/// Which object handles `update`: `DO_ROUTING=bot` (default) sends everything to one object;
/// `DO_ROUTING=chat` gives every chat its own object (updates without a chat go to the bot
/// object).
fn object_name(env: &Env, update: &Update) -> String {
    match update.effective_chat() {
        Some(chat) if per_chat(env) => format!("chat:{}", chat.id),
        _ => BOT_OBJECT.into(),
    }
}

/// Whether `DO_ROUTING=chat`.
fn per_chat(env: &Env) -> bool {
    setting(env, "DO_ROUTING").as_deref() == Some("chat")
}

/// Sends a request to the named object and passes its answer on.
async fn forward(
    env: &Env,
    name: &str,
    path: &str,
    method: Method,
    body: Option<String>,
) -> worker::Result<Response> {
    let namespace = match env.durable_object(DO_BINDING) {
        Ok(ns) => ns,
        Err(e) => {
            console_error!("PERSISTENCE=durable_object needs the binding {DO_BINDING}: {e}");
            return text(500, "persistence not configured");
        }
    };
    let stub = namespace.get_by_name(name)?;
    let request = json_request(&format!("https://edgegram.object{path}"), method, body)?;
    match stub.fetch_with_request(request).await {
        Ok(response) => Ok(response),
        Err(e) => {
            console_error!("object {name} failed: {e}");
            text(500, "update not handled: storage failed")
        }
    }
}

/// What a 5xx answer says: the kind of failure, not stored data.
fn public_reason(error: &Error) -> &'static str {
    match error {
        Error::Storage { .. } => "storage failed",
        Error::Decode { .. } => "a stored value cannot be decoded",
        Error::TooLarge { .. } => "a value is over the storage limit",
        Error::BotApi { .. } => "Bot API call failed",
        _ => "internal error",
    }
}

/// `None` when the request may use admin routes, else the answer: 404 when `ADMIN_TOKEN` is
/// unset (the routes do not exist), 401 for a wrong token.
fn admin_refusal(req: &Request, env: &Env) -> Option<worker::Result<Response>> {
    let Some(token) = setting(env, "ADMIN_TOKEN") else {
        return Some(Response::error("not found", 404));
    };
    let given = req.headers().get("Authorization").ok().flatten();
    let given = given.as_deref().and_then(|h| h.strip_prefix("Bearer "));
    if secret_matches(&token, given) {
        None
    } else {
        Some(text(
            401,
            "missing or wrong Authorization: Bearer <ADMIN_TOKEN>",
        ))
    }
}

async fn admin_export(req: &Request, env: &Env) -> worker::Result<Response> {
    if let Some(refusal) = admin_refusal(req, env) {
        return refusal;
    }
    if req.method() != Method::Get {
        return text(405, "export is GET");
    }
    if persistence_choice(env) == "durable_object" {
        let path = if per_chat(env) {
            "/export?home=1"
        } else {
            "/export"
        };
        return forward(env, BOT_OBJECT, path, Method::Get, None).await;
    }
    let persistence = match persistence(env) {
        Ok(p) => p,
        Err(message) => return text(500, message),
    };
    export_from(persistence.as_ref()).await
}

/// `GET /admin/info`: which backend and Bot API this worker uses (for the playground page).
async fn admin_info(req: &Request, env: &Env) -> worker::Result<Response> {
    if let Some(refusal) = admin_refusal(req, env) {
        return refusal;
    }
    let persistence = persistence_choice(env);
    let routing = (persistence == "durable_object")
        .then(|| setting(env, "DO_ROUTING").unwrap_or_else(|| "bot".into()));
    Response::from_json(&json!({
        "persistence": persistence,
        "do_routing": routing,
        "dev_record_bot_api": dev_recording(env),
        "bot_username": setting(env, "BOT_USERNAME"),
    }))
}

/// The playground's routes, `/admin/dev/calls` and `/admin/dev/message-id`: like every admin
/// route 404 without `ADMIN_TOKEN` and 401 with a wrong one; 404 unless
/// `DEV_RECORD_BOT_API=1` and the request comes to a loopback host (local development).
async fn admin_dev(req: &Request, env: &Env, path: &str) -> worker::Result<Response> {
    if let Some(refusal) = admin_refusal(req, env) {
        return refusal;
    }
    let url = req.url()?;
    let local = matches!(
        url.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
    );
    if !dev_recording(env) || !local {
        return Response::error(
            "not found (DEV_RECORD_BOT_API=1 is for local development)",
            404,
        );
    }
    let query = url.query().unwrap_or("");
    match (path, req.method()) {
        ("/admin/dev/calls", Method::Get) => {
            let path = format!("/devlog/calls?{query}");
            forward(env, DEVLOG_OBJECT, &path, Method::Get, None).await
        }
        ("/admin/dev/message-id", Method::Post) => {
            let path = format!("/devlog/message-id?{query}");
            forward(env, DEVLOG_OBJECT, &path, Method::Post, None).await
        }
        _ => Response::error("not found", 404),
    }
}

async fn admin_import(req: &mut Request, env: &Env) -> worker::Result<Response> {
    if let Some(refusal) = admin_refusal(req, env) {
        return refusal;
    }
    if req.method() != Method::Post {
        return text(405, "import is POST");
    }
    let body = match read_body(req, MAX_IMPORT_BYTES).await {
        Ok(body) => body,
        Err(rejection) => return reject(rejection),
    };
    if persistence_choice(env) == "durable_object" {
        let body = String::from_utf8_lossy(&body).into_owned();
        let path = if per_chat(env) {
            "/import?home=1"
        } else {
            "/import"
        };
        return forward(env, BOT_OBJECT, path, Method::Post, Some(body)).await;
    }
    let persistence = match persistence(env) {
        Ok(p) => p,
        Err(message) => return text(500, message),
    };
    import_into(persistence.as_ref(), &body).await
}

async fn export_from(persistence: &dyn Persistence) -> worker::Result<Response> {
    match dict::export(persistence).await {
        Ok(doc) => Response::from_json(&doc),
        Err(e) => {
            console_error!("export failed: {e}");
            text(500, e.to_string())
        }
    }
}

async fn import_into(persistence: &dyn Persistence, body: &[u8]) -> worker::Result<Response> {
    let doc: serde_json::Value = match serde_json::from_slice(body) {
        Ok(doc) => doc,
        Err(e) => return text(400, format!("$: body is not valid JSON: {e}")),
    };
    match dict::import(persistence, &doc, 1).await {
        Ok(count) => Response::from_json(&json!({ "imported": count })),
        Err(Error::Invalid(message)) => text(400, message),
        Err(e @ Error::TooLarge { .. }) => text(400, e.to_string()),

        Err(e) => {
            console_error!("import failed: {e}");
            text(500, e.to_string())
        }
    }
}

/// The demo's Durable Object: runs the Application against its own storage, one update at a
/// time, each update id at most once (see [`super::durable`]).
#[durable_object]
pub struct EdgegramObject {
    state: State,
    env: Env,
    gate: UpdateGate,
    /// Chat objects: whether the home object already knows this one (see
    /// [`ChatObjectPersistence::new`]).
    registered: std::cell::Cell<bool>,
}

impl DurableObject for EdgegramObject {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            gate: UpdateGate::default(),
            registered: std::cell::Cell::new(false),
        }
    }

    /// Ends overdue conversations when no update comes (there is no job queue at the edge),
    /// and bounds the stored callback data; then sets the next alarm.
    async fn alarm(&self) -> worker::Result<Response> {
        let _turn = self.gate.enter().await;
        let store = self.storage();
        let now = js_sys::Date::now() as i64;
        match conversation::expire_due(&store, now).await {
            Ok(expired) => {
                if let Some(next) = expired.next_deadline {
                    let offset = (next - now).max(0);
                    self.state.storage().set_alarm(offset).await?;
                }
            }
            Err(e) => console_error!("expiring conversations failed: {e}"),
        }
        if let Err(e) = sweep(&store, now, CallbackDataSettings::default()).await {
            console_error!("sweeping callback data failed: {e}");
        }
        Response::ok("done")
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let path = req.path();
        match path.as_str() {
            "/update" => self.update(&mut req).await,

            "/home" => self.home(&mut req).await,
            p if p.starts_with("/devlog/") => {
                if !dev_recording(&self.env) {
                    return text(404, "DEV_RECORD_BOT_API is not set");
                }
                let username = setting(&self.env, "BOT_USERNAME");
                dev_bot_api::serve(self.state.storage(), &mut req, p, username).await
            }
            "/export" => {
                let _turn = self.gate.enter().await;
                if self.is_home(&req) {
                    return self.export_all().await;
                }
                export_from(&self.storage()).await
            }
            "/import" => {
                let home = self.is_home(&req);
                let body = req.bytes().await?;
                let _turn = self.gate.enter().await;
                if home {
                    return self.import_all(&body).await;
                }
                import_into(&self.storage(), &body).await
            }
            #[cfg(feature = "test-hooks")]
            p if p.starts_with("/__test/") => {
                test_hooks::object_route(&mut req, p, &self.storage()).await
            }
            _ => text(404, "no such object route"),
        }
    }
}

impl EdgegramObject {
    fn storage(&self) -> DurableObjectPersistence {
        DurableObjectPersistence::new(self.state.storage(), DEFAULT_PREFIX)
    }

    /// Whether this request treats the object as the home object of `DO_ROUTING=chat`
    /// (bot_data, user_data, the registry of chat objects): the worker says so with
    /// `?home=1`; chat objects are addressed with `?chat=<id>` or plainly by the home object.
    fn is_home(&self, req: &Request) -> bool {
        query_param(req, "home").as_deref() == Some("1")
    }

    /// Serves chat objects' reads and compare-and-set writes of bot_data and user_data.
    /// Does not take the gate: these are storage operations only, atomic on their own.
    async fn home(&self, req: &mut Request) -> worker::Result<Response> {
        let request: HomeRequest = match req.json().await {
            Ok(request) => request,
            Err(e) => return text(400, format!("bad home request: {e}")),
        };
        match self.storage().serve_home(request).await {
            Ok(Some(answer)) => Response::from_json(&answer),
            Ok(None) => text(409, "conflict"),
            Err(e) => {
                console_error!("home object: {e}");
                text(500, e.to_string())
            }
        }
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
            let mut response = forward(
                &self.env,
                &format!("chat:{chat}"),
                "/export",
                Method::Get,
                None,
            )
            .await?;
            if response.status_code() != 200 {
                return text(
                    500,
                    format!("export of chat {chat} failed: {}", response.text().await?),
                );
            }
            let part: serde_json::Value = response.json().await?;
            merge_export(&mut doc, part);
        }
        Response::from_json(&doc)
    }

    /// Splits a document by chat: chat_data and conversations keyed by a chat id go to that
    /// chat's object, the rest stays here. Every chat object known before is replaced too.
    async fn import_all(&self, body: &[u8]) -> worker::Result<Response> {
        let doc: serde_json::Value = match serde_json::from_slice(body) {
            Ok(doc) => doc,
            Err(e) => return text(400, format!("$: body is not valid JSON: {e}")),
        };
        if let Err(e) = dict::to_entries(&doc) {
            return text(
                400,
                e.to_string()
                    .trim_start_matches("invalid input: ")
                    .to_string(),
            );
        }
        if !doc["callback_data"].is_null() {
            return text(400, "callback_data: not importable with DO_ROUTING=chat");
        }
        let store = self.storage();
        let mut parts = split_by_chat(&doc);
        let home = parts.remove(&None).unwrap_or_else(|| json!({}));
        let mut chats: Vec<i64> = store.registered_chats().await.unwrap_or_default();
        chats.extend(parts.keys().flatten());
        chats.sort_unstable();
        chats.dedup();
        let mut imported = 0u64;
        for chat in chats {
            let part = parts.remove(&Some(chat)).unwrap_or_else(|| json!({}));
            let mut response = forward(
                &self.env,
                &format!("chat:{chat}"),
                "/import",
                Method::Post,
                Some(part.to_string()),
            )
            .await?;
            if response.status_code() != 200 {
                return text(
                    500,
                    format!("import into chat {chat} failed: {}", response.text().await?),
                );
            }
            let answer: serde_json::Value = response.json().await?;
            imported += answer["imported"].as_u64().unwrap_or(0);
            let register = HomeRequest::Read {
                keys: Vec::new(),
                chat: Some(chat),
            };
            if let Err(e) = store.serve_home(register).await {
                return text(500, e.to_string());
            }
        }
        match dict::import(&store, &home, 1).await {
            Ok(count) => Response::from_json(&json!({ "imported": imported + count as u64 })),
            Err(e) => text(500, e.to_string()),
        }
    }

    async fn update(&self, req: &mut Request) -> worker::Result<Response> {
        let chat_object: Option<i64> = query_param(req, "chat").and_then(|v| v.parse().ok());
        let home = self.is_home(req);
        let body = req.bytes().await?;
        let update = match parse_body(&body) {
            Ok(Incoming::Update(update)) => *update,
            Ok(Incoming::Untyped { .. }) => return text(200, "ignored"),
            Err(rejection) => return reject(rejection),
        };
        let update_id = update.update_id;
        // Held until the commit: the next update of this object starts from this one's data.
        let _turn = self.gate.enter().await;
        let store = if home {
            Rc::new(self.storage().with_compare_and_set())
        } else {
            Rc::new(self.storage())
        };
        let now = js_sys::Date::now() as i64;
        // The duplicate check rides on the Application's one read.
        store.begin_update(update_id, now);
        let persistence: Rc<dyn Persistence> = match chat_object {
            Some(chat) => {
                let home = self
                    .env
                    .durable_object(DO_BINDING)?
                    .get_by_name(BOT_OBJECT)?;
                let register = !self.registered.get();
                Rc::new(ChatObjectPersistence::new(
                    store.clone(),
                    home,
                    chat,
                    register,
                ))
            }
            None => store.clone(),
        };
        #[cfg(feature = "test-hooks")]
        let persistence = test_hooks::wrap(persistence);
        let mut result = process(&self.env, persistence, update).await;
        // An update no handler matched had no effect: running it again is harmless, so it
        // costs no write (an update that changes nothing writes nothing).
        if result.as_ref().is_ok_and(|outcome| outcome.handled) {
            if let Err(e) = store.commit_marker().await {
                console_error!("update {update_id}: recording it as processed failed: {e}");
                result = Err((500, "update not handled: storage failed".into()));
            }
        }
        if update_id % 64 == 0 {
            if let Err(e) = store.prune_processed(now, 256).await {
                console_error!("pruning processed update ids failed: {e}");
            }
        }
        if let Ok(outcome) = &result {
            if chat_object.is_some() {
                self.registered.set(true);
            }
            self.schedule_timeouts(outcome).await;
        }
        respond(result)
    }

    /// Sets the object's alarm to the earliest conversation deadline this update stored, if
    /// it is earlier than the alarm already set.
    async fn schedule_timeouts(&self, outcome: &Outcome) {
        let earliest = outcome
            .changes
            .iter()
            .filter_map(|change| match change {
                Change::Put(Key::Conversation { .. }, raw) => codec::decode(raw).ok(),
                _ => None,
            })
            .filter_map(|stored| conversation::deadline(&stored.data))
            .min();
        let Some(deadline) = earliest else { return };
        let storage = self.state.storage();
        let current = storage.get_alarm().await.ok().flatten();
        if current.is_none_or(|at| at > deadline) {
            // An i64 is an offset from now for set_alarm (an absolute time for get_alarm).
            let offset = (deadline - js_sys::Date::now() as i64).max(0);
            if let Err(e) = storage.set_alarm(offset).await {
                console_error!("setting the conversation timeout alarm failed: {e}");
            }
        }
    }
}

/// Adds a chat object's export to the home object's.
fn merge_export(doc: &mut serde_json::Value, part: serde_json::Value) {
    for section in ["chat_data", "user_data", "conversations"] {
        if let (Some(into), Some(from)) = (doc[section].as_object_mut(), part[section].as_object())
        {
            for (key, value) in from {
                match (into.get_mut(key), value) {
                    (
                        Some(serde_json::Value::Object(existing)),
                        serde_json::Value::Object(more),
                    ) => {
                        existing.extend(more.clone());
                    }
                    _ => {
                        into.insert(key.clone(), value.clone());
                    }
                }
            }
        }
    }
}

/// The chat a conversation key belongs to: its first element, when the key has more than one
/// (PTB's keys are `[chat_id, user_id]`, `[chat_id]`, or `[user_id]` without per_chat).
fn conversation_chat(key: &str) -> Option<i64> {
    let parts: Vec<serde_json::Value> = serde_json::from_str(key).ok()?;
    parts.first()?.as_i64()
}

/// Splits a validated DictPersistence document into per-chat parts (`Some(chat)`) and the
/// home part (`None`).
fn split_by_chat(
    doc: &serde_json::Value,
) -> std::collections::BTreeMap<Option<i64>, serde_json::Value> {
    let mut parts: std::collections::BTreeMap<Option<i64>, serde_json::Value> = Default::default();
    let home = parts.entry(None).or_insert_with(|| json!({}));
    home["bot_data"] = doc["bot_data"].clone();
    home["user_data"] = doc["user_data"].clone();
    if let Some(chats) = doc["chat_data"].as_object() {
        for (id, data) in chats {
            let Ok(chat) = id.parse::<i64>() else {
                continue;
            };
            let part = parts.entry(Some(chat)).or_insert_with(|| json!({}));
            part["chat_data"][id] = data.clone();
        }
    }
    if let Some(conversations) = doc["conversations"].as_object() {
        for (name, states) in conversations {
            for (key, state) in states.as_object().into_iter().flatten() {
                let part = parts
                    .entry(conversation_chat(key))
                    .or_insert_with(|| json!({}));
                part["conversations"][name][key] = state.clone();
            }
        }
    }
    parts
}

#[cfg(feature = "test-hooks")]
mod test_hooks {
    //! Test-only routes, compiled only with the `test-hooks` feature (never in a deploy):
    //! the conformance suite against KV, and storage fault injection.

    use std::cell::Cell;
    use std::rc::Rc;

    use worker::{Env, Method, Request, Response};

    use super::{
        forward, persistence_choice, query_param, text, DurableObjectPersistence, KvPersistence,
        BOT_OBJECT, KV_BINDING,
    };
    use crate::persistence::conformance::{run_case, CASES};
    use crate::persistence::spy::SpyPersistence;
    use crate::persistence::Persistence;

    thread_local! {
        static FAIL_READS: Cell<u32> = const { Cell::new(0) };
        static FAIL_WRITES: Cell<u32> = const { Cell::new(0) };
        static RUN: Cell<u32> = const { Cell::new(0) };
    }

    /// Wraps the request's backend so that armed faults fire.
    pub(super) fn wrap(inner: Rc<dyn Persistence>) -> Rc<dyn Persistence> {
        let spy = SpyPersistence::new(inner);
        spy.fail_next_reads(FAIL_READS.with(|c| c.replace(0)));
        spy.fail_next_writes(FAIL_WRITES.with(|c| c.replace(0)));
        Rc::new(spy)
    }

    pub(super) async fn route(
        req: &mut Request,
        env: &Env,
        path: &str,
    ) -> worker::Result<Response> {
        let url = req.url()?;
        let query = |name: &str| query_param(req, name);
        match path {
            "/__test/conformance" => {
                let names: Vec<&str> = CASES.iter().map(|(n, _)| *n).collect();
                Response::from_json(&names)
            }
            "/__test/faults" => {
                arm(
                    &query("fail_reads"),
                    &query("fail_writes"),
                    &query("kv_errors"),
                );
                if persistence_choice(env) == "durable_object" {
                    // The object may run in another isolate: arm it there too.
                    let path = format!("/__test/faults?{}", url.query().unwrap_or(""));
                    return forward(env, BOT_OBJECT, &path, Method::Post, None).await;
                }
                text(200, "armed")
            }
            p if p.starts_with("/__test/conformance/") => {
                let case = &p["/__test/conformance/".len()..];
                let backend = query("backend").unwrap_or_else(|| "kv".into());
                let run = RUN.with(|r| {
                    r.set(r.get() + 1);
                    r.get()
                });
                let stamp = js_sys::Date::now() as u64;
                let store: Rc<dyn Persistence> = match backend.as_str() {
                    "kv" => Rc::new(KvPersistence::new(
                        env.kv(KV_BINDING)?,
                        format!("conformance-{stamp}-{run}:"),
                    )),
                    "durable_object" => {
                        // A fresh object is a fresh, empty storage.
                        let name = format!("conformance-{stamp}-{run}");
                        return forward(env, &name, p, Method::Post, None).await;
                    }
                    other => return text(400, format!("unknown backend {other}")),
                };
                match run_case(case, store.as_ref()).await {
                    None => text(404, format!("no case {case}")),
                    Some(Ok(())) => text(200, "ok"),
                    Some(Err(message)) => text(500, message),
                }
            }
            _ => text(404, "no such test route"),
        }
    }

    fn arm(fail_reads: &Option<String>, fail_writes: &Option<String>, kv_errors: &Option<String>) {
        let count = |v: &Option<String>| v.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
        FAIL_READS.with(|c| c.set(count(fail_reads)));
        FAIL_WRITES.with(|c| c.set(count(fail_writes)));
        crate::edge::kv::INJECTED_FAILURES.with(|c| c.set(count(kv_errors)));
    }

    /// The test routes inside an object: arming faults, running a conformance case against
    /// the object's own storage.
    pub(super) async fn object_route(
        req: &mut Request,
        path: &str,
        store: &DurableObjectPersistence,
    ) -> worker::Result<Response> {
        let query = |name: &str| query_param(req, name);
        if path == "/__test/faults" {
            arm(
                &query("fail_reads"),
                &query("fail_writes"),
                &query("kv_errors"),
            );

            return text(200, "armed");
        }
        let Some(case) = path.strip_prefix("/__test/conformance/") else {
            return text(404, "no such test route");
        };
        match run_case(case, store).await {
            None => text(404, format!("no case {case}")),
            Some(Ok(())) => text(200, "ok"),
            Some(Err(message)) => text(500, message),
        }
    }
}
