//! The admin routes: `GET /admin/export`, `POST /admin/import` (DictPersistence's JSON shapes),
//! `GET /admin/dead-letters` (updates acknowledged without being handled, with why) and
//! `GET /admin/info`; with the `dev-bot-api` feature the playground's `/admin/dev/` routes.
//! Every one answers 404 while `ADMIN_TOKEN` is unset (the routes do not exist) and 401 for a
//! wrong token (compared in constant time).

use std::rc::Rc;

use serde_json::json;
use worker::{console_error, Env, Method, Request, Response};

use super::app::{checking_application, BuildApplication};
use super::entry::worker_store;
use super::http::{query_param, read_body};
use super::object::ObjectRole;
use super::outcome::WebhookOutcome;
use super::settings::Settings;
use super::{forward, text};
use crate::context::DataType;
use crate::error::Error;
use crate::persistence::dict::{self, ImportMode, ImportOptions};
use crate::persistence::Persistence;
use crate::webhook::{not_utf8, secret_matches, Rejection};

/// The largest import body read, in bytes (4 MiB). With [`MAX_IMPORT_ENTRIES`] and
/// [`MAX_ENTRY_MEMORY`] it keeps an import well inside a Worker's 128 MB: the body, each entry
/// encoded until the one write, the storage's copy of the batch (README, "Moving from
/// python-telegram-bot", has what was measured). Over it: 413; a larger document is imported
/// in parts (`?mode=merge`).
pub const MAX_IMPORT_BYTES: usize = 4 << 20;

/// The most entries one import may hold (chat_data, user_data, conversation states, keyboards
/// and query mappings count one each): each is held encoded, with its key, until the import's
/// one write. Over it: 413, before more is held; import the document in parts.
pub const MAX_IMPORT_ENTRIES: usize = 50_000;

/// The most memory one entry's value may take as a JSON tree (16 MiB, estimated before it is
/// parsed: [`dict::tree_bytes`]). The import parses one entry at a time, but an update that
/// reads the entry decodes it whole, so a bigger one is refused (400) naming it.
pub const MAX_ENTRY_MEMORY: usize = 16 << 20;

/// What to do about a document over a limit of one import.
const IN_PARTS: &str = "split the document and import the parts: the first with \
     POST /admin/import, each other with POST /admin/import?mode=merge";

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

/// The worker's `/admin/export`, `/admin/import` and `/admin/info`. `build` is the worker's
/// Application factory: an import is checked against the bot's handlers and data types.
pub(crate) async fn worker_route<B, C, U>(
    req: &mut Request,
    env: &Env,
    settings: &Settings,
    path: &str,
    build: &impl BuildApplication<B, C, U>,
) -> worker::Result<Response>
where
    B: DataType,
    C: DataType,
    U: DataType,
{
    if let Some(refusal) = refusal(req, settings) {
        return refusal;
    }
    match (path, req.method()) {
        ("/admin/export", Method::Get) => export(env, settings).await,
        ("/admin/export", _) => text(405, "export is GET"),
        ("/admin/import", Method::Post) => import(req, env, settings, build).await,
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

async fn import<B, C, U>(
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
    let mode = match import_mode(req) {
        Ok(mode) => mode,
        Err(refusal) => return refusal,
    };
    let body = match read_body(req, MAX_IMPORT_BYTES).await {
        Ok(body) => body,
        Err(Rejection::TooLarge { limit }) => {
            return text(
                413,
                format!("import body is over {limit} bytes, the limit of one import: {IN_PARTS}"),
            )
        }
        Err(rejection) => return WebhookOutcome::Rejected(rejection).into_response(),
    };
    // Refused, not read with U+FFFD in place of the bad bytes.
    let body = match String::from_utf8(body) {
        Ok(body) => body,
        Err(e) => return text(400, format!("$: {}", not_utf8(e.utf8_error()))),
    };
    if let Some(routing) = settings.routing() {
        let role = ObjectRole::whole_bot(routing);
        let path = format!("/import{}", with_mode(&role.query(), mode));
        return forward(env, &role.object_name(), &path, Method::Post, Some(body)).await;
    }
    match worker_store(settings, env) {
        Some(store) => import_into(settings, env, store.persistence(), build, &body, mode).await,
        None => text(500, "persistence not configured (see the log)"),
    }
}

/// The import's `?mode=`: `replace` (the default) or `merge`; anything else is answered 400.
pub(crate) fn import_mode(req: &Request) -> Result<ImportMode, worker::Result<Response>> {
    match query_param(req, "mode").as_deref() {
        None | Some("replace") => Ok(ImportMode::Replace),
        Some("merge") => Ok(ImportMode::Merge),
        Some(other) => Err(text(
            400,
            format!("mode: {} is not replace or merge", dict::shown(other)),
        )),
    }
}

/// `query` (`""` or `?home=1`) with the import's mode added.
pub(crate) fn with_mode(query: &str, mode: ImportMode) -> String {
    match (mode, query.is_empty()) {
        (ImportMode::Replace, _) => query.to_string(),
        (ImportMode::Merge, true) => "?mode=merge".into(),
        (ImportMode::Merge, false) => format!("{query}&mode=merge"),
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

/// Imports a DictPersistence document into `persistence` as `mode` says, checked against the
/// worker's Application (built over `persistence`, see [`Application::check_entry`]).
///
/// [`Application::check_entry`]: crate::Application::check_entry
pub(crate) async fn import_into<B, C, U>(
    settings: &Settings,
    env: &Env,
    persistence: Rc<dyn Persistence>,
    build: &impl BuildApplication<B, C, U>,
    doc: &str,
    mode: ImportMode,
) -> worker::Result<Response>
where
    B: DataType,
    C: DataType,
    U: DataType,
{
    let app = match checking_application(settings, env, persistence, build) {
        Ok(app) => app,
        Err(e) => {
            console_error!("the application could not be built: {e}");
            return text(500, format!("the application could not be built: {e}"));
        }
    };
    import_answer(app.import(doc, import_options(mode)).await)
}

/// The options of an import at the edge: `mode`, and the bounds above.
pub(crate) fn import_options(mode: ImportMode) -> ImportOptions {
    ImportOptions {
        mode,
        max_entries: MAX_IMPORT_ENTRIES,
        max_entry_memory: MAX_ENTRY_MEMORY,
    }
}

/// The answer to an import: `{"imported": n}`; 400 naming the first bad path of an invalid
/// document or an entry over a storage limit, 413 over the entries of one import (nothing
/// written either way); 500 when storage failed.
pub(crate) fn import_answer(result: crate::Result<usize>) -> worker::Result<Response> {
    match result {
        Ok(count) => Response::from_json(&json!({ "imported": count })),
        Err(Error::Invalid(message)) => text(400, message),
        Err(Error::TooManyEntries { limit }) => text(
            413,
            format!(
                "the import holds more than {limit} entries, the limit of one import: {IN_PARTS}"
            ),
        ),
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
