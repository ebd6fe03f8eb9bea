//! The generated Bot API (`edgegram::api`): views read what Telegram sends, builders write
//! what it takes.

use edgegram::api::{self, input, ChatMemberKind, InputFile, MessageOriginKind, ReplyTarget};
use edgegram::Method;
use serde_json::{json, Value};

fn to_json(request: impl Method) -> Value {
    serde_json::to_value(request).unwrap()
}

#[test]
fn views_read_photos_locations_and_member_joins() {
    let raw = json!({"update_id": 1, "message": {
        "message_id": 5, "date": 1, "message_thread_id": 77, "is_topic_message": true,
        "chat": {"id": -100123, "type": "supergroup", "title": "G", "is_forum": true},
        "from": {"id": 7, "is_bot": false, "first_name": "Ann"},
        "photo": [{"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
                  {"file_id": "big", "file_unique_id": "b", "width": 800, "height": 800}],
        "location": {"latitude": 52.52, "longitude": 13.405},
        "new_chat_members": [{"id": 8, "is_bot": false, "first_name": "Ben"}],
        "forward_origin": {"type": "user", "date": 1,
            "sender_user": {"id": 9, "is_bot": false, "first_name": "Cy"}},
        "a_field_of_bot_api_11": {"x": 1}}});
    let update = api::Update(&raw);
    let message = update.message().unwrap();
    assert_eq!(message.message_id(), 5);
    assert_eq!(message.chat().type_(), "supergroup");
    assert_eq!(message.photo().unwrap().len(), 2);
    assert_eq!(message.photo().unwrap().last().unwrap().file_id(), "big");
    let location = message.location().unwrap();
    assert_eq!((location.latitude(), location.longitude()), (52.52, 13.405));
    let joined: Vec<_> = message
        .new_chat_members()
        .unwrap()
        .iter()
        .map(|u| u.first_name())
        .collect();
    assert_eq!(joined, ["Ben"]);
    match message.forward_origin().unwrap().kind() {
        MessageOriginKind::User(origin) => assert_eq!(origin.sender_user().id(), 9),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        message.raw()["a_field_of_bot_api_11"]["x"],
        1,
        "unknown fields stay"
    );
    assert_eq!(update.effective_user().unwrap().id(), 7);
    assert_eq!(message.document(), None);

    let target = ReplyTarget::of(message);
    assert_eq!(target.message_thread_id, Some(77));
    assert_eq!(target.chat_id, -100123);
}

#[test]
fn unions_name_their_variants_and_keep_unknown_ones() {
    let owner = json!({"status": "creator", "user": {"id": 1}, "is_anonymous": false});
    assert!(
        matches!(api::ChatMember(&owner).kind(), ChatMemberKind::Owner(o) if !o.is_anonymous())
    );
    let future = json!({"status": "probation", "user": {"id": 1}});
    assert!(matches!(
        api::ChatMember(&future).kind(),
        ChatMemberKind::Other(_)
    ));
    // A missing required field reads as its default, never a panic.
    assert_eq!(api::User(&json!({})).id(), 0);
    assert_eq!(api::Message(&json!(null)).chat().title(), None);
}

#[test]
fn builders_write_required_fields_setters_and_constants() {
    let keyboard =
        input::ReplyKeyboardMarkup::new(vec![vec![
            input::KeyboardButton::new("Share location").request_location(true)
        ]])
        .one_time_keyboard(true);
    let request = api::SendMessage::new(5, "<b>where?</b>")
        .parse_mode("HTML")
        .reply_markup(keyboard);
    assert_eq!(api::SendMessage::NAME, "sendMessage");
    assert_eq!(
        to_json(request),
        json!({"chat_id": 5, "text": "<b>where?</b>", "parse_mode": "HTML", "reply_markup": {
            "keyboard": [[{"text": "Share location", "request_location": true}]],
            "one_time_keyboard": true}})
    );
    assert_eq!(
        to_json(api::SendPhoto::new(
            "@channel",
            "https://example.com/cat.jpg"
        )),
        json!({"chat_id": "@channel", "photo": "https://example.com/cat.jpg"})
    );
    let media = vec![
        input::InputMediaPhoto::new(InputFile::bytes("a.jpg", b"AAA".to_vec())).into(),
        input::InputMediaPhoto::new("file-id").caption("b").into(),
    ];
    let album = to_json(api::SendMediaGroup::new(5, media));
    assert_eq!(
        album["media"][0]["type"], "photo",
        "discriminators are set by new()"
    );
    assert_eq!(
        album["media"][1],
        json!({"type": "photo", "media": "file-id", "caption": "b"})
    );
    assert!(api::input_file::has_upload(&album));
}

#[test]
fn replies_keep_the_topic_and_the_business_connection() {
    let target = ReplyTarget {
        chat_id: 5,
        message_thread_id: Some(3),
        business_connection_id: Some("bc".into()),
    };
    let photo = InputFile::file_id("AgAD");
    assert_eq!(
        to_json(api::SendPhoto::reply(&target, photo)),
        json!({"chat_id": 5, "photo": "AgAD", "message_thread_id": 3,
               "business_connection_id": "bc"})
    );
    let business = json!({"message_id": 1, "date": 1, "business_connection_id": "bc1",
        "chat": {"id": 8, "type": "private"}});
    let target = ReplyTarget::of(api::Message(&business));
    assert_eq!(target.business_connection_id.as_deref(), Some("bc1"));
    assert_eq!(target.message_thread_id, None);
}

#[test]
fn every_update_kind_of_the_spec_is_modelled_and_has_a_view() {
    let spec: Value = serde_json::from_str(include_str!("../spec/telegram-bot-api.json")).unwrap();
    let fields = spec["types"]["Update"]["fields"].as_array().unwrap();
    for field in fields.iter().filter(|f| f["name"] != "update_id") {
        let name = field["name"].as_str().unwrap();
        let kind = edgegram::types::UpdateKind::from_name(name);
        assert!(
            !matches!(kind, edgegram::types::UpdateKind::Other(_)),
            "{name}"
        );
        let raw = json!({"update_id": 1, name: {"id": "x"}});
        assert_eq!(api::Update(&raw).raw()[name]["id"], "x");
    }
}

#[test]
fn a_handler_per_update_kind_reads_its_content_typed() {
    use edgegram::testing::Harness;
    use edgegram::types::UpdateKind;
    use edgegram::{Context, HandlerResult, TypeHandler};

    async fn poll(ctx: Context) -> HandlerResult {
        let poll = ctx.view().poll().ok_or("no poll")?;
        ctx.bot()
            .request(api::SendMessage::new(
                1,
                format!("{}: {}", poll.question(), poll.total_voter_count()),
            ))
            .await?;
        Ok(())
    }
    let h = Harness::new(|b: edgegram::ApplicationBuilder| {
        b.handler(TypeHandler::kind(UpdateKind::Poll, poll)).build()
    });
    h.process(
        h.updates()
            .from_json(json!({"poll": {"id": "p", "question": "Tea?",
        "options": [], "total_voter_count": 3, "is_closed": false, "is_anonymous": true,
        "type": "regular", "allows_multiple_answers": false}})),
    );
    assert_eq!(h.bot().texts(), ["Tea?: 3"]);
}
