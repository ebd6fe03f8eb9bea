//! `/remind <seconds> <text>` and `/reminders`: a job per reminder, run by the Durable
//! Object's alarm at its time, with no update needed (the demo contract's reminders).
//!
//! ```text
//! user: /remind 30 water the plants
//! bot:  Reminder set.
//! (30 s later, nothing sent)
//! bot:  water the plants
//! ```

use edgegram::context::Context;
use edgegram::error::{Error, HandlerResult};
use edgegram::jobs::{JobSpec, When};

/// The job callback's name (stored with each reminder: it must not change between deploys).
pub const REMINDER: &str = "reminder";

/// The longest delay `/remind` takes: a year.
const MAX_SECONDS: u64 = 366 * 24 * 60 * 60;

/// `/remind <seconds> <text>`: schedules the reminder with the update's changes, for this chat.
pub async fn remind(ctx: Context) -> HandlerResult {
    let Some(chat) = ctx.effective_chat().map(|chat| chat.id) else {
        return Ok(());
    };
    let seconds = ctx.args.first().and_then(|s| s.parse::<u64>().ok());
    let text = ctx.args.get(1..).unwrap_or_default().join(" ");
    let (Some(seconds), false) = (seconds.filter(|s| *s <= MAX_SECONDS), text.is_empty()) else {
        ctx.reply_text(format!(
            "Usage: /remind <seconds> <text>, with at most {MAX_SECONDS} seconds."
        ))?;
        return Ok(());
    };
    let spec = JobSpec::once(REMINDER, When::after_secs(seconds))
        .chat_id(chat)
        .data(&text)?;
    match ctx.job_queue().schedule(spec) {
        Ok(_) => ctx.reply_text("Reminder set.")?,
        // KV and D1 have no timer: say so rather than fail the update.
        Err(Error::Config(why)) => ctx.reply_text(format!("No reminders here: {why}"))?,
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// `/reminders`: the chat's pending reminders, soonest first, with the seconds left.
pub async fn reminders(ctx: Context) -> HandlerResult {
    let Some(chat) = ctx.effective_chat().map(|chat| chat.id) else {
        return Ok(());
    };
    let now = ctx.now_ms();
    let pending: Vec<String> = ctx
        .job_queue()
        .get_jobs_by_name(REMINDER)
        .await?
        .into_iter()
        .filter(|job| job.chat_id == Some(chat))
        .map(|job| {
            let left = ((job.next_run_ms - now).max(0) + 999) / 1000;
            let text: String = job.data_as().unwrap_or_default();
            format!("in {left} s: {text}")
        })
        .collect();
    if pending.is_empty() {
        ctx.reply_text("No reminders pending.")?;
    } else {
        ctx.reply_text(format!("Pending reminders:\n{}", pending.join("\n")))?;
    }
    Ok(())
}

/// The job: sends the reminder's text to its chat (through the outbox: once, after the run's
/// write).
pub async fn reminder(ctx: Context) -> HandlerResult {
    let job = ctx.job().ok_or("the reminder job ran without its job")?;
    let text: String = job.data_as()?;
    ctx.reply_text(text)?;
    Ok(())
}
