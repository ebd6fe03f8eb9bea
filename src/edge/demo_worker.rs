//! The demo worker (`../shared/notes/demo-worker.md`): `POST /webhook`, `GET /admin/export`,
//! `POST /admin/import`; with the `test-hooks` feature also the `/__test/` routes.

use std::rc::Rc;

use serde_json::json;
use worker::{console_error, console_log, event, Context, Env, Method, Request, Response};

use super::fetch_bot::FetchBot;
use super::http::{read_body, read_update};
use super::kv::KvPersistence;
use crate::persistence::{dict, Persistence, DEFAULT_PREFIX};
use crate::webhook::{secret_matches, Incoming, Rejection};
use crate::{Error, MemoryPersistence};

/// The KV namespace binding.
const KV_BINDING: &str = "EDGEGRAM_KV";
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

/// The backend `PERSISTENCE` names (default `kv`).
fn persistence(env: &Env) -> Result<Rc<dyn Persistence>, String> {
    let choice = setting(env, "PERSISTENCE").unwrap_or_else(|| "kv".into());
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
    let update = match read_update(req, secret.as_deref()).await {
        Err(rejection) => return reject(rejection),
        Ok(Incoming::Untyped { update_id, reason }) => {
            console_log!("update {update_id} ignored: its content could not be typed: {reason}");
            return text(200, "ignored");
        }
        Ok(Incoming::Update(update)) => *update,
    };
    let update_id = update.update_id;
    let Some(token) = setting(env, "BOT_TOKEN") else {
        console_error!("BOT_TOKEN is not set");
        return text(500, "bot token not configured");
    };
    let base =
        setting(env, "TELEGRAM_API_BASE").unwrap_or_else(|| "https://api.telegram.org".into());
    let persistence = match persistence(env) {
        Ok(p) => p,
        Err(message) => {
            console_error!("{message}");
            return text(500, "persistence not configured");
        }
    };
    let app = match crate::demo::application(
        Rc::new(FetchBot::new(base, token)),
        persistence,
        setting(env, "BOT_USERNAME"),
    ) {
        Ok(app) => app,
        Err(e) => {
            console_error!("{e}");
            return text(500, "application not configured");
        }
    };
    match app.process_update(update).await {
        Ok(outcome) => {
            if let Some(error) = &outcome.handler_error {
                console_error!("update {update_id}: handler failed, nothing written: {error}");
            }
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
        Err(e) => {
            console_error!("update {update_id} not handled, Telegram will retry: {e}");
            text(500, format!("update not handled: {}", public_reason(&e)))
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
    let persistence = match persistence(env) {
        Ok(p) => p,
        Err(message) => return text(500, message),
    };
    match dict::export(persistence.as_ref()).await {
        Ok(doc) => Response::from_json(&doc),
        Err(e) => {
            console_error!("export failed: {e}");
            text(500, e.to_string())
        }
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
    let doc: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(doc) => doc,
        Err(e) => return text(400, format!("$: body is not valid JSON: {e}")),
    };
    let persistence = match persistence(env) {
        Ok(p) => p,
        Err(message) => return text(500, message),
    };
    match dict::import(persistence.as_ref(), &doc, 1).await {
        Ok(count) => Response::from_json(&json!({ "imported": count })),
        Err(Error::Invalid(message)) => text(400, message),
        Err(e) => {
            console_error!("import failed: {e}");
            text(500, e.to_string())
        }
    }
}

#[cfg(feature = "test-hooks")]
mod test_hooks {
    //! Test-only routes, compiled only with the `test-hooks` feature (never in a deploy):
    //! the conformance suite against KV, and storage fault injection.

    use std::cell::Cell;
    use std::rc::Rc;

    use worker::{Env, Request, Response};

    use super::{text, KvPersistence, KV_BINDING};
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
        let query = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_string())
        };
        match path {
            "/__test/conformance" => {
                let names: Vec<&str> = CASES.iter().map(|(n, _)| *n).collect();
                Response::from_json(&names)
            }
            "/__test/faults" => {
                let count = |name| query(name).and_then(|v| v.parse().ok()).unwrap_or(0);
                FAIL_READS.with(|c| c.set(count("fail_reads")));
                FAIL_WRITES.with(|c| c.set(count("fail_writes")));
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
}
