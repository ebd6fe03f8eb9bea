//! The demo worker: edgegram's first user, built only from the library's public API.
//!
//! - [`bot`]: the demo bot (`/count`, the `profile` conversation, `/list`), runtime-free and
//!   tested natively; [`reminders`]: `/remind` and `/reminders`, a job per reminder;
//! - `entry` (wasm32): the worker around it — the Application factory and
//!   `edgegram::edge_worker!`, nothing more.

pub mod bot;
pub mod reminders;

#[cfg(target_arch = "wasm32")]
mod entry;
