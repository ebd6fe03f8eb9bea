//! The demo bot of the demo worker's contract (`docs/demo-worker.md`), runtime-free so that its
//! behaviour is tested natively; `worker.rs` wires it to the edge.
//!
//! ```text
//! user: /count
//! bot:  bot: 1, chat: 1, user: 1
//! user: /start
//! bot:  Hi! Tell me something about yourself.        [Age] [Favourite colour] ...
//! user: Age
//! bot:  Your age? Go on.
//! user: 12
//! bot:  Noted. What I know about you: age - 12 ...
//! user: Done
//! bot:  I learned: age - 12. Until next time!
//! user: /list
//! bot:  Numbers chosen so far: []                    [1] [2] [3] [4] [5]
//! (press 3)
//! bot:  Numbers chosen so far: [3]                   [1] [2] [3] [4] [5]
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use edgegram::bot::{AnswerCallbackQuery, EditMessageText, SendMessage};
use edgegram::callback_data::CallbackDataSettings;
use edgegram::context::{Context, Data};
use edgegram::conversation::{on, ConversationHandler, Next, StateResult};
use edgegram::error::{HandlerResult, Result};
use edgegram::handlers::{
    filters, CallbackQueryHandler, CommandHandler, MessageHandler, TypeHandler,
};
use edgegram::types::ReplyMarkup;
use edgegram::{Application, ApplicationBuilder};

use crate::reminders;

/// Settings of the demo beyond the contract's defaults.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Ends an idle profile conversation after this long (none by default, as in the
    /// contract). The worker takes it from `CONVERSATION_TIMEOUT_SECONDS`.
    pub conversation_timeout: Option<Duration>,
}

/// The demo Application as the contract describes it, on a builder that already has its bot
/// and persistence (from the worker's `Parts`, or a test harness).
pub fn application(builder: ApplicationBuilder) -> Result<Application> {
    application_with(builder, &DemoOptions::default())
}

/// The demo Application with `options`.
pub fn application_with(builder: ApplicationBuilder, options: &DemoOptions) -> Result<Application> {
    builder
        .arbitrary_callback_data(CallbackDataSettings::default())
        .handler(profile_conversation(options.conversation_timeout)?)
        .handler(CommandHandler::new("show_data", show_data))
        .handler(CommandHandler::new("count", count))
        .handler(CommandHandler::new("list", list))
        .handler(CommandHandler::new("remind", reminders::remind))
        .handler(CommandHandler::new("reminders", reminders::reminders))
        .job(reminders::REMINDER, reminders::reminder)
        .handler(CallbackQueryHandler::new(expired_button).invalid_data())
        .handler(CallbackQueryHandler::new(number_pressed))
        .handler(MessageHandler::new(
            filters::migrated_to_supergroup(),
            migrated,
        ))
        .build()
}

/// The value after `data["count"]` (absent counts as 0), or why there is none: the count is
/// at `i64::MAX` (checked arithmetic: it never wraps), or is not a whole number (a count set
/// by hand or imported, which is left as it is rather than reset).
fn next_count(data: &Data) -> std::result::Result<i64, String> {
    let Some(count) = data.get("count") else {
        return Ok(1);
    };
    match count.as_i64() {
        Some(n) => n
            .checked_add(1)
            .ok_or_else(|| format!("is at its maximum, {n}")),
        None => Err(format!("holds {count}, not a whole number")),
    }
}

fn set_count(data: &mut Data, count: i64) {
    data.insert("count".into(), count.into());
}

/// `/count`: increments the bot's, the chat's and the user's counters and replies with them.
/// When one of them cannot go on (see [`next_count`]) none moves, and the reply says which
/// and why.
async fn count(ctx: Context) -> HandlerResult {
    let next = [
        ("bot", ctx.bot_data(|d| next_count(d))?),
        ("chat", ctx.chat_data(|d| next_count(d))?),
        ("user", ctx.user_data(|d| next_count(d))?),
    ];
    let text = match next {
        [(_, Ok(bot)), (_, Ok(chat)), (_, Ok(user))] => {
            ctx.bot_data(|d| set_count(d, bot))?;
            ctx.chat_data(|d| set_count(d, chat))?;
            ctx.user_data(|d| set_count(d, user))?;
            format!("bot: {bot}, chat: {chat}, user: {user}")
        }
        _ => {
            let (name, why) = next
                .iter()
                .find_map(|(name, next)| next.as_ref().err().map(|why| (name, why)))
                .ok_or("a counter failed without a reason")?;
            format!("The {name} counter {why}, so /count counted nothing.")
        }
    };
    ctx.reply_text(text)?;
    Ok(())
}

/// A group became a supergroup: its chat_data moves to the supergroup's id, so `/count` there
/// goes on from the group's count (PTB's `migrate_chat_data`).
async fn migrated(ctx: Context) -> HandlerResult {
    let Some(message) = ctx.effective_message() else {
        return Ok(());
    };
    let (old, new) = (message.chat.id, message.migrate_to_chat_id);
    if let Some(new) = new {
        ctx.migrate_chat_data(old, new).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The `profile` conversation (the contract's version of PTB's persistentconversationbot).

/// The profile conversation's states, stored as their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Profile {
    /// Waiting for a category from the keyboard.
    Choosing,
    /// Waiting for the value of the chosen category.
    TypingReply,
    /// Waiting for the name of a custom category.
    TypingChoice,
}

const CATEGORIES: [&str; 3] = ["Age", "Favourite colour", "Number of siblings"];
const SOMETHING_ELSE: &str = "Something else...";
const DONE: &str = "Done";

fn profile_keyboard() -> ReplyMarkup {
    ReplyMarkup::keyboard([
        vec!["Age", "Favourite colour"],
        vec!["Number of siblings", SOMETHING_ELSE],
        vec![DONE],
    ])
}

/// The facts in user_data, one `key - value` per line (the pending `choice` left out).
fn facts(data: &Data) -> String {
    let lines: Vec<String> = data
        .iter()
        .filter(|(key, _)| key.as_str() != "choice")
        .map(|(key, value)| match value {
            Value::String(text) => format!("{key} - {text}"),
            other => format!("{key} - {other}"),
        })
        .collect();
    if lines.is_empty() {
        "nothing yet".into()
    } else {
        lines.join("\n")
    }
}

fn profile_conversation(
    timeout: Option<Duration>,
) -> Result<ConversationHandler<Data, Data, Data, Profile>> {
    // Free text: any text that is neither a command nor "Done".
    let free_text = || filters::text() & !filters::command() & !filters::text_eq(DONE);
    let mut builder = ConversationHandler::builder();
    if let Some(timeout) = timeout {
        builder = builder
            .conversation_timeout(timeout)
            .timeout_handler(TypeHandler::all(timed_out));
    }
    builder
        .name("profile")
        .persistent(true)
        .entry(on::command("start"), start)
        .state(
            Profile::Choosing,
            on::message(filters::text_in(CATEGORIES)),
            category_chosen,
        )
        .state(
            Profile::Choosing,
            on::message(filters::text_eq(SOMETHING_ELSE)),
            custom_category,
        )
        .state(
            Profile::TypingChoice,
            on::message(free_text()),
            category_chosen,
        )
        .state(
            Profile::TypingReply,
            on::message(free_text()),
            value_received,
        )
        .fallback(on::message(filters::text_eq(DONE)), done)
        .build()
}

async fn start(ctx: Context) -> StateResult<Profile> {
    let known = ctx.user_data(|d| {
        let facts_known = d.keys().any(|k| k != "choice");
        facts_known.then(|| facts(d))
    })?;
    let text = match known {
        Some(known) => format!("Welcome back! You already told me:\n{known}\nWhat else?"),
        None => "Hi! Tell me something about yourself.".into(),
    };
    ctx.reply(|chat| SendMessage::new(chat, text).reply_markup(profile_keyboard()))?;
    Ok(Next::To(Profile::Choosing))
}

async fn category_chosen(ctx: Context) -> StateResult<Profile> {
    let choice = ctx.text().unwrap_or_default().to_lowercase();
    ctx.user_data(|d| d.insert("choice".into(), choice.clone().into()))?;
    ctx.reply_text(format!("Your {choice}? Go on."))?;
    Ok(Next::To(Profile::TypingReply))
}

async fn custom_category(ctx: Context) -> StateResult<Profile> {
    ctx.reply_text("Name the category first, for example \"Favourite food\".")?;
    Ok(Next::To(Profile::TypingChoice))
}

async fn value_received(ctx: Context) -> StateResult<Profile> {
    let value = ctx.text().unwrap_or_default().to_lowercase();
    let known = ctx.user_data(|d| {
        if let Some(Value::String(choice)) = d.remove("choice") {
            d.insert(choice, value.into());
        }
        facts(d)
    })?;
    let text = format!("Noted. What I know about you:\n{known}\nTell me more, or press Done.");
    ctx.reply(|chat| SendMessage::new(chat, text).reply_markup(profile_keyboard()))?;
    Ok(Next::To(Profile::Choosing))
}

async fn done(ctx: Context) -> StateResult<Profile> {
    let known = ctx.user_data(|d| {
        d.remove("choice");
        facts(d)
    })?;
    let text = format!("I learned:\n{known}\nUntil next time!");
    ctx.reply(|chat| SendMessage::new(chat, text).reply_markup(ReplyMarkup::remove()))?;
    Ok(Next::End)
}

/// The profile conversation's TIMEOUT handler: at the deadline, with no update (the Durable
/// Object's alarm), it says so and takes the keyboard away; `choice` half-answered is dropped.
async fn timed_out(ctx: Context) -> HandlerResult {
    ctx.user_data(|d| d.remove("choice"))?;
    let text = "Timed out. Send /start to begin again.";
    ctx.reply(|chat| SendMessage::new(chat, text).reply_markup(ReplyMarkup::remove()))?;
    Ok(())
}

/// `/show_data`, in or out of the conversation: the facts in user_data.
async fn show_data(ctx: Context) -> HandlerResult {
    let known = ctx.user_data(|d| facts(d))?;
    ctx.reply_text(format!("What I know about you:\n{known}"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `/list`: arbitrary callback data (the contract's version of PTB's arbitrarycallbackdatabot).

/// A button of `/list`: its label and its data `[n, chosen so far]`.
type NumberButton = (String, (i64, Vec<i64>));

fn number_buttons(chosen: &[i64]) -> Vec<Vec<NumberButton>> {
    vec![(1..=5)
        .map(|n| (n.to_string(), (n, chosen.to_vec())))
        .collect()]
}

fn chosen_text(chosen: &[i64]) -> String {
    format!("Numbers chosen so far: {chosen:?}")
}

async fn list(ctx: Context) -> HandlerResult {
    let markup = ctx.callback_keyboard(number_buttons(&[]))?;
    ctx.reply(|chat| SendMessage::new(chat, chosen_text(&[])).reply_markup(markup))?;
    Ok(())
}

async fn number_pressed(ctx: Context) -> HandlerResult {
    let query = ctx.callback_query().ok_or("not a button press")?.clone();
    let Some((number, mut chosen)) = ctx.callback_data_as::<(i64, Vec<i64>)>() else {
        // Resolved, but not data of ours (another keyboard's shape): say so, change nothing.
        return expired_button(ctx).await;
    };
    chosen.push(number);
    ctx.bot()
        .answer_callback_query(AnswerCallbackQuery::new(&query.id))
        .await?;
    let message = query
        .message
        .as_ref()
        .ok_or("the pressed message is too old")?;
    let markup = ctx.callback_keyboard(number_buttons(&chosen))?;
    let edit = EditMessageText::new(message.chat.id, message.message_id, chosen_text(&chosen))
        .reply_markup(markup);
    ctx.bot().edit_message_text(edit).await?;
    ctx.drop_callback_data()?;
    Ok(())
}

async fn expired_button(ctx: Context) -> HandlerResult {
    let query = ctx.callback_query().ok_or("not a button press")?;
    let answer = AnswerCallbackQuery::new(&query.id).text("this button has expired");
    ctx.bot().answer_callback_query(answer).await?;
    Ok(())
}
