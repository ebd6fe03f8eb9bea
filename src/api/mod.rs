//! The whole Bot API, typed: every method and type of Bot API 10.1, generated from
//! `spec/telegram-bot-api.json` by `tools/generate-bot-api.mjs` (`npm run generate`).
//!
//! - **Reading** (updates, answers): a view per type, [`Message<'a>`](Message) and so on, a
//!   `Copy` wrapper of the JSON with an accessor per field that reads it when called. Get one
//!   from an update with [`crate::types::Update::view`] or wrap any answer:
//!   `api::Message(&value)`. Unknown fields stay readable with `raw()`; union types
//!   (`ChatMember`, `MessageOrigin`, ...) have a `kind()` enum with an `Other` variant for
//!   what a later Bot API adds.
//! - **Calling**: a builder per method, [`SendPhoto`] and so on: required parameters in
//!   `new(..)`, a setter per optional one, an [`crate::Method`] for `ctx.send` and
//!   `Bot::request`. Methods that send into a chat also have `reply(&target, ..)`, which keeps
//!   the topic (`message_thread_id`) and business connection of the update answered
//!   ([`ReplyTarget`]).
//! - **Writing types** a method takes (keyboards, media, ...): builders in [`input`].
//! - **Files**: [`InputFile`] (bytes, `file_id`, URL); see [`input_file`] for how uploads
//!   travel.
//!
//! Why views and builders instead of serde structs: size. A bot's `.wasm` carries only the
//! accessors and setters it calls (ARCHITECTURE.md, BENCHMARKS.md).

pub mod input;
pub mod input_file;
mod methods;
pub mod param;
mod reply;
pub mod view;
mod views;

pub use input_file::{InputFile, Upload};
pub use methods::*;
pub use param::ChatId;
pub use reply::ReplyTarget;
pub use view::{FromJson, List};
pub use views::*;
