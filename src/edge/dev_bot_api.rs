//! Local development only: a Bot API stand-in inside the worker, compiled in with the feature
//! `dev-bot-api` and switched on by the var `DEV_RECORD_BOT_API=1`. The demo's dev build
//! (`build-dev/`, which `npm run dev` runs and gives the var) and its test build have the
//! feature; its deploy build does not, so no var can switch a deploy into recording (the
//! admin route's loopback check on the request's host is a second line, not the first).
//!
//! [`DevBotApi`] records every outgoing Bot API call instead of sending it and answers it as
//! Telegram would: `sendMessage` and `editMessageText` with a `Message` (message ids counting
//! up per chat, the `reply_markup` echoed), `answerCallbackQuery` with `true`, `getMe` with a
//! bot user. The playground page (`www/`) reads the calls back through
//! `GET /admin/dev/calls?after=<seq>` and shows them as Telegram would.
//!
//! Why a Durable Object: with `PERSISTENCE=durable_object` the Application runs inside an
//! object, possibly in another isolate than the worker that serves the page's requests, so a
//! recorder in memory would not be seen. The calls are kept in the storage of one dedicated
//! object, [`DEVLOG_OBJECT`] (same class as the rest), through its `/devlog/...` routes, and
//! survive a restart of `wrangler dev` like the bot's own data. The log keeps the last
//! [`KEEP_CALLS`] calls.
//!
//! The object's routes (reached only through the worker's admin routes, which check
//! `ADMIN_TOKEN`):
//! - `POST /devlog/call` `{"method": .., "params": {..}}` → `{"ok": true, "result": ..}` or
//!   `{"ok": false, "error_code": 400, "description": ..}` (what Telegram would answer);
//! - `GET /devlog/calls?after=<seq>&limit=<n>` → `{"calls": [{"seq", "at", "method",
//!   "params", "ok", "result" | "description"}], "last": <seq of the newest call>}`;
//! - `POST /devlog/message-id?chat=<id>` → `{"message_id": n}`: the next id of that chat, for
//!   the page's own (user) messages, so that users and the bot share one id sequence per
//!   chat as on Telegram.

use std::cell::RefCell;
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use serde_json::{json, Value};
use worker::{ListOptions, Method, Request, Response, Storage, Stub};

use super::http::json_request;

use crate::bot::stand_in::{answer, chat_id_text, response, sends_message};
use crate::bot::{parse_response, BotApi};
use crate::error::{BotApiErrorKind, Error, Result};

/// The name of the object that keeps the log.
pub const DEVLOG_OBJECT: &str = "devlog";
/// How many calls the log keeps (the oldest go first).
pub const KEEP_CALLS: i64 = 1000;
/// The most calls one read answers.
const MAX_READ: usize = 1000;
/// The bot's username when `BOT_USERNAME` is unset.
const DEFAULT_USERNAME: &str = "edgegram_demo_bot";

const SEQ_KEY: &str = "dev:seq";

fn call_key(seq: i64) -> String {
    // Zero-padded so that calls list in order.
    format!("dev:call:{seq:012}")
}

fn message_key(chat: &str) -> String {
    format!("dev:msg:{chat}")
}

/// The Bot API as the playground sees it: every call goes to the log object.
pub struct DevBotApi {
    log: Stub,
}

impl DevBotApi {
    /// Calls are recorded in `log`, the stub of [`DEVLOG_OBJECT`].
    pub fn new(log: Stub) -> Self {
        Self { log }
    }

    async fn send(&self, method: &str, params: Value) -> Result<Value> {
        let fail = |kind: BotApiErrorKind, description: String| Error::BotApi {
            method: method.to_string(),
            code: None,
            description: format!("dev recorder: {description}"),
            kind,
        };
        let body = json!({ "method": method, "params": params }).to_string();
        let request = json_request(
            "https://edgegram.object/devlog/call",
            Method::Post,
            Some(body),
        )
        .map_err(|e| fail(BotApiErrorKind::Unsendable, e.to_string()))?;
        // No answer from the log object: as a network failure would be on Telegram's side.
        let mut response = self
            .log
            .fetch_with_request(request)
            .await
            .map_err(|e| fail(BotApiErrorKind::Network, e.to_string()))?;
        let body = response
            .bytes()
            .await
            .map_err(|e| fail(BotApiErrorKind::Network, e.to_string()))?;
        parse_response(method, response.status_code(), &body)
    }
}

impl BotApi for DevBotApi {
    fn call<'a>(&'a self, method: &'a str, params: Value) -> LocalBoxFuture<'a, Result<Value>> {
        Box::pin(self.send(method, params))
    }
}

/// Serves the log object's `/devlog/...` routes (see the module docs).
pub async fn serve(
    storage: Storage,
    req: &mut Request,
    path: &str,
    bot_username: Option<String>,
) -> worker::Result<Response> {
    let query = |name: &str| super::http::query_param(req, name);
    match (path, req.method()) {
        ("/devlog/call", Method::Post) => {
            let body = req.bytes().await?;
            let Ok(call) = serde_json::from_slice::<Value>(&body) else {
                return status(400, "call is not JSON");
            };
            let Some(method) = call["method"].as_str().map(String::from) else {
                return status(400, "call has no method");
            };
            let params = match &call["params"] {
                Value::Null => json!({}),
                params => params.clone(),
            };
            let username = bot_username.unwrap_or_else(|| DEFAULT_USERNAME.into());
            record(storage, method, params, username).await
        }
        ("/devlog/calls", Method::Get) => {
            let after = query("after")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
                .max(0);
            let limit = query("limit")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(MAX_READ)
                .clamp(1, MAX_READ);
            calls(storage, after, limit).await
        }
        ("/devlog/message-id", Method::Post) => {
            let Some(chat) = query("chat").and_then(|c| chat_id_text(&Value::String(c))) else {
                return status(400, "chat must be an integer id or an @username");
            };
            next_message_id(storage, chat).await
        }
        _ => status(404, "no such devlog route"),
    }
}

fn status(code: u16, text: &str) -> worker::Result<Response> {
    Ok(Response::ok(text)?.with_status(code))
}

fn read_int(map: &js_sys::Map, key: &str) -> i64 {
    map.get(&key.into())
        .as_string()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Records one call and answers it; one storage transaction.
async fn record(
    storage: Storage,
    method: String,
    params: Value,
    username: String,
) -> worker::Result<Response> {
    let now_ms = js_sys::Date::now() as i64;
    let chat = sends_message(&method)
        .then(|| chat_id_text(&params["chat_id"]))
        .flatten();
    let out: Rc<RefCell<Option<(u16, Value)>>> = Rc::new(RefCell::new(None));
    let into = out.clone();
    storage
        .transaction(move |txn| async move {
            let mut keys = vec![SEQ_KEY.to_string()];
            if let Some(chat) = &chat {
                keys.push(message_key(chat));
            }
            let found = txn.get_multiple(keys).await?;
            let seq = read_int(&found, SEQ_KEY) + 1;
            let next_id = chat
                .as_ref()
                .map(|chat| read_int(&found, &message_key(chat)) + 1);
            let result = answer(&method, &params, now_ms, &username, next_id);
            let mut entry = json!({"seq": seq, "at": now_ms, "method": method, "params": params});
            match &result {
                Ok(result) => {
                    if let (Some(chat), Some(id)) = (&chat, next_id) {
                        txn.put(&message_key(chat), id.to_string()).await?;
                    }
                    entry["ok"] = Value::Bool(true);
                    entry["result"] = result.clone();
                }
                Err(description) => {
                    entry["ok"] = Value::Bool(false);
                    entry["description"] = json!(description);
                }
            }
            txn.put(SEQ_KEY, seq.to_string()).await?;
            txn.put(&call_key(seq), entry.to_string()).await?;
            if seq > KEEP_CALLS {
                txn.delete(&call_key(seq - KEEP_CALLS)).await?;
            }
            *into.borrow_mut() = Some(response(&result));
            Ok(())
        })
        .await?;
    let answer = out.borrow_mut().take();
    match answer {
        Some((code, body)) => Ok(Response::from_json(&body)?.with_status(code)),
        None => status(500, "the call was not recorded"),
    }
}

/// The calls after `after`, oldest first, at most `limit`.
async fn calls(storage: Storage, after: i64, limit: usize) -> worker::Result<Response> {
    let start = call_key(after.saturating_add(1));
    let listed = storage
        .list_with_options(
            ListOptions::new()
                .prefix("dev:call:")
                .start(&start)
                .limit(limit),
        )
        .await?;
    let mut calls = Vec::new();
    listed.for_each(&mut |value, _key| {
        if let Some(entry) = value
            .as_string()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        {
            calls.push(entry);
        }
    });
    let seq = storage.get_multiple(vec![SEQ_KEY.to_string()]).await?;
    Response::from_json(&json!({"calls": calls, "last": read_int(&seq, SEQ_KEY)}))
}

/// Takes the next message id of `chat` for a message the page sends.
async fn next_message_id(storage: Storage, chat: String) -> worker::Result<Response> {
    let out: Rc<RefCell<i64>> = Rc::new(RefCell::new(0));
    let into = out.clone();
    storage
        .transaction(move |txn| async move {
            let key = message_key(&chat);
            let found = txn.get_multiple(vec![key.clone()]).await?;
            let id = read_int(&found, &key) + 1;
            txn.put(&key, id.to_string()).await?;
            *into.borrow_mut() = id;
            Ok(())
        })
        .await?;
    let id = *out.borrow();
    Response::from_json(&json!({ "message_id": id }))
}
