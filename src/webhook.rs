//! Webhook request checks, free of any runtime: the secret, the body limit, the body's shape.
//! The edge calls these and turns [`Rejection`]s into HTTP answers; the contract is in
//! `docs/demo-worker.md` and the README's table.

use serde_json::Value;

use crate::types::Update;

/// The largest webhook body accepted, in bytes (1 MiB). Telegram's updates are far smaller;
/// anything larger is refused with 413 before more of it is read.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The header Telegram sends the webhook's `secret_token` in.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// Why a webhook request is refused, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 401: missing or wrong secret token.
    Unauthorized,
    /// 405: not a POST.
    MethodNotAllowed,
    /// 415: a content type that is not JSON.
    UnsupportedMediaType(String),
    /// 413: body over `limit` bytes ([`MAX_BODY_BYTES`] for a webhook; other routes that read
    /// a body have their own, and their answer names it).
    TooLarge {
        /// The limit the body is over, in bytes.
        limit: usize,
    },
    /// 400: the body is not a JSON object with an integer `update_id`; says what is wrong.
    BadRequest(String),
}

impl Rejection {
    /// The HTTP status to answer.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Unauthorized => 401,
            Rejection::MethodNotAllowed => 405,
            Rejection::UnsupportedMediaType(_) => 415,
            Rejection::TooLarge { .. } => 413,
            Rejection::BadRequest(_) => 400,
        }
    }

    /// The answer's text.
    pub fn message(&self) -> String {
        match self {
            Rejection::Unauthorized => format!("missing or wrong {SECRET_HEADER}"),
            Rejection::MethodNotAllowed => "the webhook accepts POST only".into(),
            Rejection::UnsupportedMediaType(kind) => {
                format!("content type {kind:?} is not application/json")
            }
            Rejection::TooLarge { limit } => format!("body is over {limit} bytes"),
            Rejection::BadRequest(message) => message.clone(),
        }
    }
}

/// Compares the configured secret with the header's value in time that does not depend on
/// where they differ (only on the length of the header's value).
pub fn secret_matches(expected: &str, given: Option<&str>) -> bool {
    let Some(given) = given else { return false };
    let (expected, given) = (expected.as_bytes(), given.as_bytes());
    let mut diff = (expected.len() != given.len()) as u8;
    for (i, byte) in given.iter().enumerate() {
        let other = expected.get(i).copied().unwrap_or(!byte);
        diff |= other ^ byte;
    }
    diff == 0
}

/// Checks a content type: absent or `application/json` (any parameters) is fine.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), Rejection> {
    match content_type {
        None => Ok(()),
        Some(kind) => {
            let essence = kind.split(';').next().unwrap_or("").trim();
            if essence.eq_ignore_ascii_case("application/json") {
                Ok(())
            } else {
                Err(Rejection::UnsupportedMediaType(kind.to_string()))
            }
        }
    }
}

/// A webhook body that passed the checks.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// An update edgegram can type.
    Update(Box<Update>),
    /// A JSON object with an integer `update_id` whose content edgegram cannot type (a known
    /// update type with unexpected content). Answered 200 and logged, so that Telegram does
    /// not redeliver it forever.
    Untyped {
        /// Its id.
        update_id: i64,
        /// Why it could not be typed.
        reason: String,
    },
}

/// `body` as text; JSON is UTF-8, and a body that is not is refused (never read with U+FFFD in
/// place of its bad bytes), naming where.
pub fn utf8(body: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(body).map_err(not_utf8)
}

/// What [`utf8`] says of a body that is not UTF-8.
pub fn not_utf8(error: std::str::Utf8Error) -> String {
    format!(
        "body is not valid UTF-8 (invalid byte at offset {})",
        error.valid_up_to()
    )
}

/// Parses a webhook body: a JSON object with an integer `update_id`. Unknown update types
/// and unknown fields are fine.
pub fn parse_body(body: &[u8]) -> Result<Incoming, Rejection> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Rejection::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let bad = |m: String| Rejection::BadRequest(m);
    let body = utf8(body).map_err(bad)?;
    let value: Value =
        serde_json::from_str(body).map_err(|e| bad(format!("body is not valid JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| bad("body is not a JSON object".into()))?;
    let update_id = match object.get("update_id") {
        None => return Err(bad("body has no update_id".into())),
        Some(id) => id
            .as_i64()
            .ok_or_else(|| bad(format!("update_id is not an integer: {id}")))?,
    };
    match Update::from_value(value) {
        Ok(update) => Ok(Incoming::Update(Box::new(update))),
        Err(e) => Ok(Incoming::Untyped {
            update_id,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::UpdateKind;

    #[test]
    fn secrets_compare_exactly() {
        assert!(secret_matches("s3cret", Some("s3cret")));
        for wrong in [
            None,
            Some(""),
            Some("s3cre"),
            Some("s3cret!"),
            Some("S3cret"),
            Some("x3cret"),
        ] {
            assert!(!secret_matches("s3cret", wrong), "{wrong:?}");
        }
        assert!(!secret_matches("", Some("a")));
    }

    #[test]
    fn bodies_are_checked_with_a_reason() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "body is not valid JSON"),
            (b"{\"update_id\": 1", "body is not valid JSON"),
            (b"[1, 2]", "body is not a JSON object"),
            (b"{\"message\": {}}", "body has no update_id"),
            (b"{\"update_id\": \"7\"}", "update_id is not an integer"),
            (b"{\"update_id\": 1.5}", "update_id is not an integer"),
        ];
        for (body, start) in cases {
            match parse_body(body) {
                Err(Rejection::BadRequest(m)) => assert!(m.starts_with(start), "{m}"),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let too_large = parse_body(&big).unwrap_err();
        assert_eq!(
            too_large,
            Rejection::TooLarge {
                limit: MAX_BODY_BYTES
            }
        );
        assert_eq!(too_large.message(), "body is over 1048576 bytes");
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused_naming_where() {
        // Inside a string, where a lossy reading would put U+FFFD and go on.
        let body = b"{\"update_id\": 1, \"message\": {\"text\": \"A\xff\xfe\"}}";
        match parse_body(body) {
            Err(Rejection::BadRequest(m)) => {
                assert_eq!(m, "body is not valid UTF-8 (invalid byte at offset 39)")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_types_pass_and_malformed_known_ones_are_untyped() {
        let ok = parse_body(br#"{"update_id": 5, "story_reaction": {"x": 1}}"#).unwrap();
        assert!(
            matches!(ok, Incoming::Update(u) if u.update_id == 5 && u.kind() == Some(UpdateKind::Other("story_reaction".into())))
        );
        let odd = parse_body(br#"{"update_id": 6, "message": "not an object"}"#).unwrap();
        assert!(matches!(odd, Incoming::Untyped { update_id: 6, .. }));
        // A known type without what edgegram reads in it (a purchase without its buyer).
        let odd = parse_body(br#"{"update_id": 7, "purchased_paid_media": {"x": 1}}"#).unwrap();
        assert!(matches!(odd, Incoming::Untyped { update_id: 7, .. }));
    }

    #[test]
    fn content_types() {
        assert!(check_content_type(None).is_ok());
        assert!(check_content_type(Some("application/json; charset=utf-8")).is_ok());
        assert!(check_content_type(Some("Application/JSON")).is_ok());
        assert_eq!(
            check_content_type(Some("text/plain")).unwrap_err().status(),
            415
        );
    }
}
