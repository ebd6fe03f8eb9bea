//! The admin routes: `GET /admin/export`, `POST /admin/import` (DictPersistence's JSON shapes),
//! `GET /admin/dead-letters` (updates acknowledged without being handled, with why) and
//! `GET /admin/info`; with the `dev-bot-api` feature the playground's `/admin/dev/` routes.
//! Every one answers 404 while `ADMIN_TOKEN` is unset (the routes do not exist) and 401 for a
//! wrong token (compared in constant time).

use serde_json::json;
use worker::{console_error, Env, Method, Request, Response};

use super::entry::worker_store;
use super::http::read_body;
use super::object::ObjectRole;
use super::outcome::WebhookOutcome;
use super::settings::Settings;
use super::{forward, text};
use crate::error::Error;
use crate::persistence::{dict, Persistence};
use crate::webhook::secret_matches;

/// Import documents may be far larger than updates.
pub const MAX_IMPORT_BYTES: usize = 25 << 20;

/// `None` when the request may use admin routes, else the answer.
fn refusal(req: &Request, settings: &Settings) -> Option<worker::Result<Response>> {
    let Some(token) = &settings.admin_token else {
        return Some(Response::error("not found", 404));
    };
    let given = req.headers().get("Authorization").ok().flatten();
    let given = given.as_deref().and_then(|h| h.strip_prefix("Bearer "));
    if secret_matches(token, given) {
        None
    } else {
        Some(text(
            401,
            "missing or wrong Authorization: Bearer <ADMIN_TOKEN>",
        ))
    }
}

/// The worker's `/admin/export`, `/admin/import` and `/admin/info`.
pub(crate) async fn worker_route(
    req: &mut Request,
    env: &Env,
    settings: &Settings,
    path: &str,
) -> worker::Result<Response> {
    if let Some(refusal) = refusal(req, settings) {
        return refusal;
    }
    match (path, req.method()) {
        ("/admin/export", Method::Get) => export(env, settings).await,
        ("/admin/export", _) => text(405, "export is GET"),
        ("/admin/import", Method::Post) => import(req, env, settings).await,
        ("/admin/import", _) => text(405, "import is POST"),
        ("/admin/dead-letters", Method::Get) => dead_letters(env, settings).await,
        ("/admin/dead-letters", _) => text(405, "dead-letters is GET"),
        _ => info(settings),
    }
}

/// The dead-letter list: updates acknowledged without being handled, with why.
async fn dead_letters(env: &Env, settings: &Settings) -> worker::Result<Response> {
    if let Some(routing) = settings.routing() {
        let role = ObjectRole::whole_bot(routing);
        return forward(env, &role.object_name(), "/dead-letters", Method::Get, None).await;
    }
    let Some(store) = worker_store(settings, env) else {
        return text(500, "persistence not configured (see the log)");
    };
    match store.failed_updates().list().await {
        Ok(list) => Response::from_json(&json!({ "dead_letters": list })),
        Err(e) => text(500, e.to_string()),
    }
}

async fn export(env: &Env, settings: &Settings) -> worker::Result<Response> {
    if let Some(routing) = settings.routing() {
        let role = ObjectRole::whole_bot(routing);
        let path = format!("/export{}", role.query());
        return forward(env, &role.object_name(), &path, Method::Get, None).await;
    }
    match worker_store(settings, env) {
        Some(store) => export_from(store.persistence().as_ref()).await,
        None => text(500, "persistence not configured (see the log)"),
    }
}

async fn import(req: &mut Request, env: &Env, settings: &Settings) -> worker::Result<Response> {
    let body = match read_body(req, MAX_IMPORT_BYTES).await {
        Ok(body) => body,
        Err(rejection) => return WebhookOutcome::Rejected(rejection).into_response(),
    };
    if let Some(routing) = settings.routing() {
        let role = ObjectRole::whole_bot(routing);
        let path = format!("/import{}", role.query());
        let body = String::from_utf8_lossy(&body).into_owned();
        return forward(env, &role.object_name(), &path, Method::Post, Some(body)).await;
    }
    match worker_store(settings, env) {
        Some(store) => import_into(store.persistence().as_ref(), &body).await,
        None => text(500, "persistence not configured (see the log)"),
    }
}

/// `GET /admin/info`: which backend and Bot API this worker uses (for the playground page).
fn info(settings: &Settings) -> worker::Result<Response> {
    Response::from_json(&json!({
        "persistence": settings.backend.name(),
        "do_routing": settings.routing().map(|r| r.name()),
        "dev_record_bot_api": settings.dev_recording(),
        "bot_username": settings.bot_username,
    }))
}

/// The whole state of `persistence` as DictPersistence's JSON.
pub(crate) async fn export_from(persistence: &dyn Persistence) -> worker::Result<Response> {
    match dict::export(persistence).await {
        Ok(doc) => Response::from_json(&doc),
        Err(e) => {
            console_error!("export failed: {e}");
            text(500, e.to_string())
        }
    }
}

/// Replaces the state of `persistence` with a DictPersistence document; 400 naming the first
/// bad path of an invalid one (nothing written).
pub(crate) async fn import_into(
    persistence: &dyn Persistence,
    body: &[u8],
) -> worker::Result<Response> {
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

/// The playground's routes, `/admin/dev/calls` and `/admin/dev/message-id`: like every admin
/// route 404 without `ADMIN_TOKEN` and 401 with a wrong one; 404 unless
/// `DEV_RECORD_BOT_API=1` and the request comes to a loopback host (local development). The
/// host comes from the request, which a client chooses: what keeps these routes out of a
/// deploy is the feature, which deploy builds do not have.
#[cfg(feature = "dev-bot-api")]
pub(crate) async fn dev_route(
    req: &Request,
    env: &Env,
    settings: &Settings,
    path: &str,
) -> worker::Result<Response> {
    use super::dev_bot_api::DEVLOG_OBJECT;
    if let Some(refusal) = refusal(req, settings) {
        return refusal;
    }
    let url = req.url()?;
    let local = matches!(
        url.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
    );
    if !settings.dev_recording() || !local {
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
