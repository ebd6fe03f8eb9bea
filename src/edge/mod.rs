//! The edge: edgegram on Cloudflare Workers. `wasm32` only.
//!
//! A worker is its Application factory plus [`crate::edge_worker!`]:
//!
//! ```ignore
//! fn application(parts: edgegram::edge::Parts) -> edgegram::Result<edgegram::Application> {
//!     parts.builder().handler(CommandHandler::new("start", start)).build()
//! }
//! edgegram::edge_worker!(application, BotObject);   // the fetch entry and the object class
//! ```
//!
//! The rooms:
//! - the entry: [`serve`] (webhook, admin routes), [`Settings`] parsed from the worker's vars,
//!   [`WebhookOutcome`] (the answer Telegram gets), [`Parts`] and [`run_update`] (one update
//!   through the Application);
//! - Durable Objects: [`ObjectHost`] (what the object class does: the update gate, duplicate
//!   detection, alarms, export and import), [`durable::DurableObjectPersistence`] (the
//!   storage adapter), [`crate::update_gate::UpdateGate`], [`chat_routing`] (`DO_ROUTING=chat`);
//! - the other adapters: [`kv::KvPersistence`], [`d1::D1Persistence`], [`fetch_bot::FetchBot`], [`http`] (reading a
//!   request within its limits);
//! - behind features: `dev_bot_api` (`dev-bot-api`: the Bot API recorder of local
//!   development), `test_routes` (`testing`: in-worker conformance and fault injection).
//!
//! Errors are converted to owned [`crate::Error`] values here, at the JS boundary.

mod admin;
mod app;
pub mod chat_routing;
pub mod d1;
mod dead_letters;
mod deadlines;
#[cfg(feature = "dev-bot-api")]
pub mod dev_bot_api;
pub mod durable;
mod entry;
pub mod fetch_bot;
pub mod http;
pub mod kv;
mod macros;
mod object;
mod outcome;
mod sender;
mod settings;
#[cfg(feature = "testing")]
pub mod test_routes;

pub use app::{run_update, BuildApplication, Parts, Sending, SWEEP_EVERY};
pub use entry::serve;
pub use object::{ObjectHost, ObjectRole};
pub use outcome::{Failure, WebhookOutcome, OUTCOME_HEADER};
pub use settings::{
    setting, Backend, BotTarget, Routing, SendQueued, SettingError, Settings, WebhookAuth,
};

use worker::{console_error, Env, Method, Response, Stub};

/// The Durable Object namespace binding a worker declares in its wrangler.toml.
pub const DO_BINDING: &str = "EDGEGRAM_DO";
/// The KV namespace binding (`PERSISTENCE=kv`).
pub const KV_BINDING: &str = "EDGEGRAM_KV";
/// The D1 database binding (`PERSISTENCE=d1`), its tables from `migrations/`.
pub const D1_BINDING: &str = "EDGEGRAM_D1";

/// The stub of the object named `name` in [`DO_BINDING`].
pub(crate) fn object_stub(env: &Env, name: &str) -> worker::Result<Stub> {
    env.durable_object(DO_BINDING)
        .map_err(|e| worker::Error::RustError(format!("the binding {DO_BINDING}: {e}")))?
        .get_by_name(name)
}

/// Sends a request to the object named `name` (at `path`, with its query) and passes its answer
/// on; 500 when the object cannot be reached.
pub(crate) async fn forward(
    env: &Env,
    name: &str,
    path: &str,
    method: Method,
    body: Option<String>,
) -> worker::Result<Response> {
    let stub = match object_stub(env, name) {
        Ok(stub) => stub,
        Err(e) => {
            console_error!("PERSISTENCE=durable_object: {e}");
            return WebhookOutcome::failed(Failure::NotConfigured).into_response();
        }
    };
    let request = http::json_request(&format!("https://edgegram.object{path}"), method, body)?;
    match stub.fetch_with_request(request).await {
        Ok(response) => Ok(response),
        Err(e) => {
            console_error!("object {name} failed: {e}");
            WebhookOutcome::failed(Failure::Storage).into_response()
        }
    }
}

/// A plain-text answer with a status.
pub(crate) fn text(status: u16, body: impl Into<String>) -> worker::Result<Response> {
    Ok(Response::ok(body)?.with_status(status))
}

/// Logs a Rust panic's message to the console before the worker aborts (wasm panics cannot be
/// caught; see the README, "Panics"). [`crate::edge_worker!`] calls it at start.
pub fn install_panic_hook() {
    console_error_panic_hook::set_once();
}
