//! The demo bot of `../shared/notes/demo-worker.md`, runtime-free so that its behaviour is
//! tested natively; the worker wires it to fetch and KV.
//!
//! ```text
//! user: /count
//! bot:  bot: 1, chat: 1, user: 1
//! ```

use std::rc::Rc;

use crate::bot::BotApi;
use crate::context::{Context, Data};
use crate::error::{HandlerResult, Result};
use crate::handlers::CommandHandler;
use crate::persistence::Persistence;
use crate::{Application, ApplicationBuilder};

/// Builds the demo Application.
pub fn application(
    bot: Rc<dyn BotApi>,
    persistence: Rc<dyn Persistence>,
    bot_username: Option<String>,
) -> Result<Application> {
    let mut builder = ApplicationBuilder::new()
        .bot(bot)
        .persistence(persistence)
        .handler(CommandHandler::new("count", count));
    if let Some(username) = bot_username {
        builder = builder.bot_username(username);
    }
    builder.build()
}

/// Adds one to `data["count"]` (absent counts as 0) and answers the new value.
fn bump(data: &mut Data) -> i64 {
    let count = data.get("count").and_then(|c| c.as_i64()).unwrap_or(0) + 1;
    data.insert("count".into(), count.into());
    count
}

/// `/count`: increments the bot's, the chat's and the user's counters and replies with them.
async fn count(ctx: Context) -> HandlerResult {
    let bot = ctx.bot_data(bump)?;
    let chat = ctx.chat_data(bump)?;
    let user = ctx.user_data(bump)?;
    ctx.reply_text(format!("bot: {bot}, chat: {chat}, user: {user}"))
        .await?;
    Ok(())
}
