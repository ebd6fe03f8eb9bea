//! The edge: thin adapters between Cloudflare Workers and the core. `wasm32` only.
//!
//! - [`fetch_bot::FetchBot`]: the Bot API over `fetch`;
//! - [`kv::KvPersistence`]: the Workers KV backend;
//! - [`durable::DurableObjectPersistence`] and [`durable::UpdateGate`]: Durable Object storage,
//!   one update at a time, each update id once;
//! - [`http`]: reading a webhook request within its limits and turning it into an update;
//! - [`dev_bot_api::DevBotApi`]: the Bot API stand-in of local development
//!   (`DEV_RECORD_BOT_API=1`), calls recorded in a Durable Object;
//! - `demo_worker` (feature `demo`): the demo worker's `fetch` entry and routes.
//!
//! Errors are converted to owned [`crate::Error`] values here, at the JS boundary.

#[cfg(feature = "demo")]
pub mod dev_bot_api;
pub mod durable;
pub mod fetch_bot;
pub mod http;
pub mod kv;

#[cfg(feature = "demo")]
mod demo_worker;
