//! The test kit: test your bot natively with `cargo test`, as it runs on Workers, without
//! Telegram. Compiled only with the `testing` feature, so none of it ships in a bot's build:
//!
//! ```toml
//! [dev-dependencies]
//! edgegram = { version = "0.1", features = ["testing"] }
//! ```
//!
//! - [`Updates`] makes updates as Telegram sends them: commands with their `bot_command`
//!   entities, button presses, edits, channel posts, members joining and leaving.
//! - [`RecordingBot`] stands in for the Bot API: it records every call, answers as Telegram
//!   would, and answers what the test scripts instead ([`Answer`]: a blocked user, a flood
//!   limit, a server error, a network failure).
//! - [`Harness`] runs the bot: every update in a fresh Application over the same storage, as
//!   on Workers, with the double, a clock the test moves, and views of the state and of the
//!   storage calls.
//!
//! The persistence doubles live with the persistence: [`SpyPersistence`] (records every call,
//! fails on request) and the [`conformance`] suite a storage backend must pass.
//!
//! [`SpyPersistence`]: crate::persistence::spy::SpyPersistence
//! [`conformance`]: crate::persistence::conformance
//!
//! # Example
//!
//! ```
//! use edgegram::testing::{Answer, Harness};
//! use edgegram::{Application, ApplicationBuilder, CommandHandler, Context, HandlerResult};
//!
//! async fn count(ctx: Context) -> HandlerResult {
//!     let n = ctx.chat_data(|d| {
//!         let n = d.get("n").and_then(|n| n.as_i64()).unwrap_or(0) + 1;
//!         d.insert("n".into(), n.into());
//!         n
//!     })?;
//!     ctx.reply_text(format!("{n}"))?;
//!     Ok(())
//! }
//!
//! /// The bot, as the worker builds it (with the fetch client and a backend) and as the
//! /// tests build it (with the harness's double and storage).
//! fn my_bot(builder: ApplicationBuilder) -> edgegram::Result<Application> {
//!     builder.handler(CommandHandler::new("count", count)).build()
//! }
//!
//! let h = Harness::new(my_bot);
//! let tg = h.updates();
//! const GROUP: i64 = -1001234567890;
//!
//! h.process(tg.command(GROUP, 7, "/count"));
//! h.process(tg.command(GROUP, 8, "/count@edgegram_bot"));
//! assert_eq!(h.bot().texts(), ["1", "2"]);
//! assert_eq!(h.to_json()["chat_data"][GROUP.to_string()]["n"], 2);
//!
//! // Telegram's flood limit: the reply is queued, so the update commits with it; the 429
//! // leaves the reply stored until Telegram's retry_after has passed.
//! h.bot().answer_next_to("sendMessage", Answer::retry_after(5));
//! h.process(tg.command(GROUP, 7, "/count"));
//! assert_eq!(h.to_json()["chat_data"][GROUP.to_string()]["n"], 3);
//! assert_eq!(h.stored_outboxes().len(), 1);
//! h.advance(std::time::Duration::from_secs(5));
//! h.deliver_pending().unwrap(); // as a Durable Object's alarm does
//! assert_eq!(h.bot().texts(), ["1", "2", "3"]);
//! ```

mod bot;
mod harness;
mod telegram;
mod updates;

pub use bot::{Answer, BotCall, RecordingBot};
pub use harness::Harness;
pub use updates::{command_entities, Updates};

/// Where the clocks of the kit start: 2023-11-14 22:13:20 UTC, in milliseconds since the
/// Unix epoch. A fixed time, so that what a test sees does not depend on when it runs.
pub const START_MS: i64 = 1_700_000_000_000;

/// The bot's username in the kit's answers (`getMe`, the bot's messages), unless the test
/// sets another ([`RecordingBot::set_username`]).
pub const BOT_USERNAME: &str = "edgegram_bot";
