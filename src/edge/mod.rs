//! The edge: thin adapters between Cloudflare Workers and the core. `wasm32` only.
//!
//! - [`fetch_bot::FetchBot`]: the Bot API over `fetch`;
//! - [`kv::KvPersistence`]: the Workers KV backend;
//! - [`durable::DurableObjectPersistence`] and [`durable::UpdateGate`]: Durable Object storage,
//!   one update at a time, each update id once;
//! - [`http`]: reading a webhook request within its limits and turning it into an update;
//! - `demo_worker` (feature `demo`): the demo worker's `fetch` entry and routes.
//!
//! Errors are converted to owned [`crate::Error`] values here, at the JS boundary.

pub mod durable;
pub mod fetch_bot;
pub mod http;
pub mod kv;

#[cfg(feature = "demo")]
mod demo_worker;
