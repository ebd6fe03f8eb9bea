//! A to-do list bot on edgegram: each user's list is typed user data, adding an item is a
//! conversation, and the list is an inline keyboard edited in place when a button is pressed.
//!
//! ```text
//! user: /add               bot: What should I remember?
//! user: Buy milk           bot: 1 thing to do.            [☐ Buy milk]
//! (press ☐ Buy milk)       bot: (edits that message) All done!   [☑ Buy milk] [Clear done]
//! (press Clear done)       bot: (edits it again) Nothing to do. /add something.
//! user: /list              bot: Nothing to do. /add something.
//! user: /where             bot: Where should it happen?   [📍 Send my location]
//! (sends a location)       bot: 1 thing to do.            [☐ Be at 52.5200, 13.4050]
//! user: /badge             bot: (a photo, uploaded from bytes) 0 of 1 done.
//! ```
//!
//! The last two read and write through the generated Bot API (`edgegram::api`): a reply
//! keyboard with a location button, the shared location read typed, a photo from bytes.

use edgegram::api::{self, input, InputFile};
use edgegram::bot::{AnswerCallbackQuery, EditMessageText, SendMessage};
use edgegram::conversation::{on, ConversationHandler, Next, StateResult};
use edgegram::types::{InlineKeyboardButton, ReplyMarkup};
use edgegram::{
    filters, Application, ApplicationBuilder, CallbackQueryHandler, CommandHandler, Context, Data,
    HandlerResult, MessageHandler,
};
use serde::{Deserialize, Serialize};

/// One user's list: their user_data, typed (stored as JSON, `{"items": [...], "next_id": 1}`).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodoList {
    /// The items, oldest first.
    pub items: Vec<Item>,
    /// The id the last item got.
    pub next_id: u32,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Its id in the list (the buttons carry it).
    pub id: u32,
    /// What to do.
    pub text: String,
    /// Whether it is done.
    pub done: bool,
}

/// bot_data and chat_data stay JSON objects; user_data is the list.
pub type Todo = Application<Data, Data, TodoList>;
type Ctx = Context<Data, Data, TodoList>;

/// The one state of the `add` conversation: waiting for the item's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Adding {
    /// The next text message is the item.
    Text,
}

/// The bot, on a builder that has its Bot API client and persistence (the worker's, or a
/// test harness's).
pub fn application(builder: ApplicationBuilder<Data, Data, TodoList>) -> edgegram::Result<Todo> {
    let adding = ConversationHandler::builder()
        .name("add")
        .persistent(true)
        .entry(on::command("add"), ask)
        .state(
            Adding::Text,
            on::message(filters::text() & !filters::command()),
            add,
        )
        .fallback(on::command("cancel"), cancel)
        .build()?;
    builder
        .handler(adding)
        .handler(CommandHandler::new("start list", show))
        .handler(CallbackQueryHandler::new(toggle).pattern(r"^toggle:(\d+)$")?)
        .handler(CallbackQueryHandler::new(clear_done).pattern("^clear$")?)
        .handler(CommandHandler::new("where", ask_place))
        .handler(MessageHandler::new(filters::location(), add_place))
        .handler(CommandHandler::new("badge", badge))
        .build()
}

/// The badge `/badge` sends: an 8×8 green PNG, uploaded from these bytes.
pub const BADGE_PNG: &[u8] = include_bytes!("badge.png");

/// Asks for a location with a one-time reply keyboard whose button shares it.
async fn ask_place(ctx: Ctx) -> HandlerResult {
    let button = input::KeyboardButton::new("📍 Send my location").request_location(true);
    let keyboard = input::ReplyKeyboardMarkup::new(vec![vec![button]])
        .one_time_keyboard(true)
        .resize_keyboard(true);
    let ask = api::SendMessage::reply(&ctx.reply_target()?, "Where should it happen?")
        .reply_markup(keyboard);
    ctx.send(ask)?;
    Ok(())
}

/// Adds an item with `text` to the user's list and replies with the list and its buttons.
fn add_item(ctx: &Ctx, text: String) -> HandlerResult {
    let list = ctx.user_data(|list| {
        list.next_id += 1;
        let id = list.next_id;
        list.items.push(Item {
            id,
            text,
            done: false,
        });
        list.clone()
    })?;
    ctx.reply(|chat| SendMessage::new(chat, summary(&list)).reply_markup(keyboard(&list)))?;
    Ok(())
}

/// A shared location becomes an item: "Be at <latitude>, <longitude>".
async fn add_place(ctx: Ctx) -> HandlerResult {
    let message = ctx.view().message().ok_or("not a new message")?;
    let place = message.location().ok_or("no location")?;
    let text = format!("Be at {:.4}, {:.4}", place.latitude(), place.longitude());
    add_item(&ctx, text)?;
    Ok(())
}

/// Sends the badge photo, from bytes, with the score as caption.
async fn badge(ctx: Ctx) -> HandlerResult {
    let list = ctx.user_data(|list| list.clone())?;
    let done = list.items.iter().filter(|item| item.done).count();
    let caption = format!("{done} of {} done.", list.items.len());
    let photo = InputFile::bytes("badge.png", BADGE_PNG);
    ctx.send(api::SendPhoto::reply(&ctx.reply_target()?, photo).caption(caption))?;
    Ok(())
}

async fn ask(ctx: Ctx) -> StateResult<Adding> {
    ctx.reply_text("What should I remember?")?;
    Ok(Next::To(Adding::Text))
}

async fn add(ctx: Ctx) -> StateResult<Adding> {
    let text = ctx.text().unwrap_or_default().trim().to_string();
    if text.is_empty() {
        ctx.reply_text("Send the item as text, or /cancel.")?;
        return Ok(Next::Stay);
    }
    add_item(&ctx, text)?;
    Ok(Next::End)
}

async fn cancel(ctx: Ctx) -> StateResult<Adding> {
    ctx.reply_text("Nothing added.")?;
    Ok(Next::End)
}

async fn show(ctx: Ctx) -> HandlerResult {
    let list = ctx.user_data(|list| list.clone())?;
    ctx.reply(|chat| SendMessage::new(chat, summary(&list)).reply_markup(keyboard(&list)))?;
    Ok(())
}

async fn toggle(ctx: Ctx) -> HandlerResult {
    let id: u32 = ctx.matches[1].as_deref().ok_or("no item id")?.parse()?;
    let list = ctx.user_data(|list| {
        if let Some(item) = list.items.iter_mut().find(|item| item.id == id) {
            item.done = !item.done;
        }
        list.clone()
    })?;
    show_in_pressed_message(&ctx, &list).await
}

async fn clear_done(ctx: Ctx) -> HandlerResult {
    let list = ctx.user_data(|list| {
        list.items.retain(|item| !item.done);
        list.clone()
    })?;
    show_in_pressed_message(&ctx, &list).await
}

/// Answers the press and edits the pressed message to show `list`.
async fn show_in_pressed_message(ctx: &Ctx, list: &TodoList) -> HandlerResult {
    let query = ctx.callback_query().ok_or("not a button press")?;
    ctx.bot()
        .answer_callback_query(AnswerCallbackQuery::new(&query.id))
        .await?;
    let message = query
        .message
        .as_ref()
        .ok_or("the message is too old to edit")?;
    let edit = EditMessageText::new(message.chat.id, message.message_id, summary(list))
        .reply_markup(keyboard(list));
    ctx.bot().edit_message_text(edit).await?;
    Ok(())
}

fn summary(list: &TodoList) -> String {
    if list.items.is_empty() {
        return "Nothing to do. /add something.".into();
    }
    match list.items.iter().filter(|item| !item.done).count() {
        0 => "All done!".into(),
        1 => "1 thing to do.".into(),
        n => format!("{n} things to do."),
    }
}

fn keyboard(list: &TodoList) -> ReplyMarkup {
    let mut rows: Vec<Vec<InlineKeyboardButton>> = list
        .items
        .iter()
        .map(|item| {
            let mark = if item.done { "☑" } else { "☐" };
            let label = format!("{mark} {}", item.text);
            vec![InlineKeyboardButton::callback(
                label,
                format!("toggle:{}", item.id),
            )]
        })
        .collect();
    if list.items.iter().any(|item| item.done) {
        rows.push(vec![InlineKeyboardButton::callback("Clear done", "clear")]);
    }
    ReplyMarkup::inline(rows)
}

/// The worker: the Application factory and the exports edgegram writes around it.
#[cfg(target_arch = "wasm32")]
mod entry {
    fn application(parts: edgegram::edge::Parts) -> edgegram::Result<super::Todo> {
        super::application(parts.builder())
    }

    edgegram::edge_worker!(application, TodoObject);
}
