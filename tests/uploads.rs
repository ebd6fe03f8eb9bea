//! Files, replies in topics and the content filters, through a bot run by the test kit as
//! Workers run it: handlers queue calls, the outbox stores them, the double receives them.

use edgegram::api::{self, input, InputFile};
use edgegram::testing::Harness;
use edgegram::{
    filters, Application, ApplicationBuilder, CommandHandler, Context, HandlerResult,
    MessageHandler,
};

const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0, 0, 13];

async fn send_photo(ctx: Context) -> HandlerResult {
    ctx.reply_photo(InputFile::bytes("dot.png", PNG))?;
    Ok(())
}

async fn send_album(ctx: Context) -> HandlerResult {
    let media = vec![
        input::InputMediaPhoto::new(InputFile::bytes("a.png", PNG)).into(),
        input::InputMediaPhoto::new("AgAD-known")
            .caption("known")
            .into(),
    ];
    ctx.send(api::SendMediaGroup::reply(&ctx.reply_target()?, media))?;
    Ok(())
}

async fn send_huge(ctx: Context) -> HandlerResult {
    let huge = vec![0u8; 65 * 1024];
    let refused = ctx.reply_document(InputFile::bytes("big.bin", huge.clone()));
    ctx.reply_text(format!("queued: {}", refused.is_ok()))?;
    // At once, nothing is stored: any size the Bot API takes.
    ctx.bot()
        .request(api::SendDocument::reply(
            &ctx.reply_target()?,
            InputFile::bytes("big.bin", huge),
        ))
        .await?;
    Ok(())
}

async fn where_is(ctx: Context) -> HandlerResult {
    let message = ctx.view().message().ok_or("no message")?;
    let at = message.location().ok_or("no location")?;
    ctx.reply_text(format!("{:.2}, {:.2}", at.latitude(), at.longitude()))?;
    Ok(())
}

async fn echo(ctx: Context) -> HandlerResult {
    ctx.reply_text("echo")?;
    Ok(())
}

async fn nice_photo(ctx: Context) -> HandlerResult {
    let sizes = ctx
        .view()
        .message()
        .and_then(|m| m.photo())
        .ok_or("no photo")?;
    let largest = sizes.last().ok_or("no size")?;
    ctx.reply_text(format!(
        "nice {}px photo {}",
        largest.width(),
        largest.file_id()
    ))?;
    Ok(())
}

fn bot(builder: ApplicationBuilder) -> edgegram::Result<Application> {
    builder
        .handler(CommandHandler::new("photo", send_photo))
        .handler(CommandHandler::new("album", send_album))
        .handler(CommandHandler::new("huge", send_huge))
        .handler(MessageHandler::new(filters::location(), where_is))
        .handler(MessageHandler::new(filters::photo(), nice_photo))
        .handler(MessageHandler::new(filters::text(), echo))
        .build()
}

#[test]
fn a_photo_from_bytes_is_queued_stored_and_uploaded() {
    let h = Harness::new(bot);
    let outcome = h.process(h.updates().command(5, 5, "/photo"));
    assert_eq!(outcome.handler_error, None);
    let calls = h.bot().calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "sendPhoto");
    assert_eq!(calls[0].params["chat_id"], 5);
    let uploads = calls[0].uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].0, "photo");
    assert_eq!(
        (
            uploads[0].1.filename.as_str(),
            uploads[0].1.bytes.as_slice()
        ),
        ("dot.png", PNG)
    );
    let sent = calls[0].result.as_ref().unwrap();
    assert_eq!(
        api::Message(sent).photo().unwrap().len(),
        1,
        "the double answers a photo"
    );
}

#[test]
fn an_album_attaches_its_uploads_by_name() {
    let h = Harness::new(bot);
    h.process(h.updates().command(5, 5, "/album"));
    let calls = h.bot().calls();
    assert_eq!(calls[0].method, "sendMediaGroup");
    let uploads = calls[0].uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].0, "file0");
    let answer = calls[0]
        .result
        .as_ref()
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    let ids: Vec<_> = answer
        .iter()
        .map(|m| api::Message(m).message_id())
        .collect();
    assert_eq!(
        ids,
        [2, 3],
        "one message per item, after the user's message 1"
    );
}

#[test]
fn a_queued_upload_is_bounded_and_a_direct_one_is_not() {
    let h = Harness::new(bot);
    let outcome = h.process(h.updates().command(5, 5, "/huge"));
    assert_eq!(outcome.handler_error, None);
    assert_eq!(h.bot().methods(), ["sendDocument", "sendMessage"]);
    assert_eq!(h.bot().texts(), ["queued: false"]);
    assert_eq!(h.bot().calls()[0].uploads()[0].1.bytes.len(), 65 * 1024);
}

#[test]
fn a_location_and_a_photo_are_read_typed() {
    let h = Harness::new(bot);
    h.process(h.updates().location(5, 5, 52.5200, 13.4050));
    h.process(h.updates().photo(5, 5, "AgAD-cat", Some("my cat")));
    assert_eq!(
        h.bot().texts(),
        ["52.52, 13.40", "nice 800px photo AgAD-cat"]
    );
}

#[test]
fn replies_stay_in_the_forum_topic() {
    let h = Harness::new(bot);
    h.process(
        h.updates()
            .topic_message(-1_000_000_000_042, 77, 5, "hello"),
    );
    h.process(
        h.updates()
            .topic_message(-1_000_000_000_042, 77, 5, "/photo"),
    );
    let calls = h.bot().calls();
    assert_eq!(
        calls[0].params["message_thread_id"], 77,
        "{:?}",
        calls[0].params
    );
    assert_eq!(calls[1].method, "sendPhoto");
    assert_eq!(calls[1].params["message_thread_id"], 77);
    // The double answers in the topic, as Telegram does.
    assert_eq!(
        api::Message(calls[0].result.as_ref().unwrap()).message_thread_id(),
        Some(77)
    );
}
