//! edgegram: Telegram bots on Cloudflare Workers, with python-telegram-bot's persistence model
//! made correct for the edge.
//!
//! Three rooms (see ARCHITECTURE.md):
//! - the **core**: [`Application`], handlers and [`ConversationHandler`]s, [`Context`],
//!   Telegram [`types`] and the whole generated Bot API ([`api`]), the webhook checks ([`webhook`]); no `worker` import, tested
//!   natively;
//! - the **persistence**: the [`Persistence`] trait, its key scheme and codec, the memory and
//!   file backends ([`persistence`]);
//! - the **edge** (`wasm32` only): the webhook entry, the Durable Object host, the Bot API
//!   client over `fetch`, the KV and Durable Object backends (`edge`, compiled for `wasm32`
//!   only). A worker is its Application factory plus `edgegram::edge_worker!`.
//!
//! With the `testing` feature, the test kit (`testing`): update builders, the Bot API double
//! `RecordingBot`, a harness that runs a bot as Workers do, and the persistence doubles
//! (`persistence::spy`, `persistence::conformance`). None of it is in a build without the
//! feature.

#![warn(missing_docs)]

pub mod api;
pub mod application;
pub mod attempts;
pub mod bot;
pub mod callback_data;
pub mod context;
pub mod conversation;
pub mod error;
pub mod handlers;
pub mod jobs;
pub mod outbox;
pub mod persistence;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod types;
pub mod update_gate;
pub mod webhook;

mod content_filters;
mod sources;
mod update_state;

#[cfg(target_arch = "wasm32")]
pub mod edge;

pub use api::InputFile;
pub use application::{Application, ApplicationBuilder, OnHandlerError, Outcome};
pub use bot::{AnswerCallbackQuery, Bot, BotApi, EditMessageText, Method, SendMessage};
pub use callback_data::{CallbackData, CallbackDataSettings, InvalidCallbackData};
pub use context::{
    system_clock, system_random, Clock, Context, Data, DataType, Match, RandomSource,
};
pub use conversation::{ConversationHandler, Next, StateResult};
pub use error::{BotApiErrorKind, Error, HandlerError, HandlerResult, Result};
pub use handlers::{
    filters, CallbackQueryHandler, CommandHandler, Filter, Handler, MessageHandler, TypeHandler,
};
pub use jobs::{Days, Job, JobQueue, JobSpec, When};
pub use persistence::dict::{ImportMode, ImportOptions};
pub use persistence::memory::MemoryPersistence;
pub use persistence::{Change, Key, KeyKind, Persistence, PersistenceExt, PersistenceInput};
/// The Bot API double, also at the crate root where it used to live (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub use testing::RecordingBot;
pub use types::Update;
