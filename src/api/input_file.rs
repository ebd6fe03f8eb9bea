//! Files to send ([`InputFile`]) and how a call that uploads one becomes a multipart form
//! ([`Multipart::take`]).
//!
//! **Where the bytes travel.** A file from bytes is held inside the call's JSON parameters as
//! one object, `{"edgegram_upload": {"filename": .., "base64": ..}}` ([`UPLOAD_KEY`]), so that
//! every path a call takes stays JSON: [`crate::Bot::request`], the test kit's recorder, and
//! the outbox a queued call is stored in. Only the transport that posts to Telegram turns it
//! into `multipart/form-data` ([`Multipart::take`]): a top-level file is the part named by its
//! parameter, a nested one (an album's media) an `attach://<name>` reference and a part of
//! that name. A queued call with more than [`MAX_QUEUED_UPLOAD_BYTES`] of uploads is refused
//! when queued: it would be stored with the update. Send larger files with `ctx.bot()` (at
//! once, never stored), or by URL or file id.

use serde_json::{json, Value};

use super::param::IntoParam;
use crate::error::{Error, Result};

/// The key of the JSON object that holds an upload's bytes inside a call's parameters.
pub const UPLOAD_KEY: &str = "edgegram_upload";

/// The most bytes of uploads one queued call may carry (`ctx.send`, `ctx.reply_*`): it is
/// stored with the update's changes (base64, a third larger), and a Durable Object's value
/// holds at most 128 KiB.
pub const MAX_QUEUED_UPLOAD_BYTES: usize = 64 * 1024;

/// A file to send: one Telegram already has (its `file_id`), one at a URL Telegram fetches,
/// or bytes uploaded with the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputFile {
    /// A `file_id` of a file on Telegram's servers, or an HTTP URL for Telegram to fetch.
    Existing(String),
    /// Bytes uploaded with the call as `multipart/form-data`.
    Upload(Upload),
}

/// A file's name and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The file name Telegram sees (its extension matters for documents).
    pub filename: String,
    /// The content.
    pub bytes: Vec<u8>,
}

impl InputFile {
    /// Bytes to upload, named `filename`.
    pub fn bytes(filename: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        InputFile::Upload(Upload {
            filename: filename.into(),
            bytes: bytes.into(),
        })
    }

    /// A file Telegram has, by its `file_id`.
    pub fn file_id(id: impl Into<String>) -> Self {
        InputFile::Existing(id.into())
    }

    /// A file at an HTTP URL, fetched by Telegram.
    pub fn url(url: impl Into<String>) -> Self {
        InputFile::Existing(url.into())
    }
}

impl From<&str> for InputFile {
    /// A `file_id` or URL.
    fn from(id_or_url: &str) -> Self {
        InputFile::Existing(id_or_url.to_string())
    }
}

impl From<String> for InputFile {
    /// A `file_id` or URL.
    fn from(id_or_url: String) -> Self {
        InputFile::Existing(id_or_url)
    }
}

impl IntoParam for InputFile {
    fn into_param(self) -> Value {
        match self {
            InputFile::Existing(id) => Value::String(id),
            InputFile::Upload(upload) => json!({UPLOAD_KEY: {
                "filename": upload.filename,
                "base64": base64_encode(&upload.bytes),
            }}),
        }
    }
}

impl Upload {
    /// The upload `value` holds, if it is an upload object; an error if it is one whose
    /// bytes do not decode.
    pub fn from_param(method: &str, value: &Value) -> Option<Result<Upload>> {
        let inner = value
            .as_object()
            .filter(|o| o.len() == 1)?
            .get(UPLOAD_KEY)?;
        let filename = inner["filename"].as_str().unwrap_or("file").to_string();
        let bytes = inner["base64"]
            .as_str()
            .and_then(base64_decode)
            .ok_or_else(|| Error::Encode {
                key: method.to_string(),
                message: "an upload whose base64 does not decode".into(),
            });
        Some(bytes.map(|bytes| Upload { filename, bytes }))
    }
}

/// A call's parameters as `multipart/form-data`: text fields (JSON for anything but a string)
/// and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    /// Text parts, in parameter order.
    pub fields: Vec<(String, String)>,
    /// File parts: the part's name and the upload.
    pub files: Vec<(String, Upload)>,
}

impl Multipart {
    /// The form of `method`'s `params`, or `None` when they upload nothing (post them as
    /// JSON). Takes the values out of `params` (a nested upload is left as its
    /// `attach://<name>`).
    pub fn take(method: &str, params: &mut Value) -> Option<Result<Multipart>> {
        if !has_upload(params) {
            return None;
        }
        let mut form = Multipart {
            fields: Vec::new(),
            files: Vec::new(),
        };
        let Some(object) = params.as_object_mut() else {
            return Some(Ok(form));
        };
        for (name, value) in object.iter_mut() {
            if let Some(upload) = Upload::from_param(method, value) {
                match upload {
                    Ok(upload) => form.files.push((name.clone(), upload)),
                    Err(e) => return Some(Err(e)),
                }
                continue;
            }
            if let Err(e) = form.attach(method, value) {
                return Some(Err(e));
            }
            let text = match value.take() {
                Value::String(text) => text,
                other => other.to_string(),
            };
            form.fields.push((name.clone(), text));
        }
        Some(Ok(form))
    }

    /// Replaces each upload inside `value` by `attach://<name>` and adds it as a part.
    fn attach(&mut self, method: &str, value: &mut Value) -> Result<()> {
        if let Some(upload) = Upload::from_param(method, value) {
            let name = format!("file{}", self.files.len());
            *value = Value::String(format!("attach://{name}"));
            self.files.push((name, upload?));
            return Ok(());
        }
        match value {
            Value::Array(items) => items.iter_mut().try_for_each(|v| self.attach(method, v)),
            Value::Object(object) => object.values_mut().try_for_each(|v| self.attach(method, v)),
            _ => Ok(()),
        }
    }
}

/// Whether `params` hold an upload anywhere.
pub fn has_upload(params: &Value) -> bool {
    match params {
        Value::Object(object) => object.contains_key(UPLOAD_KEY) || object.values().any(has_upload),
        Value::Array(items) => items.iter().any(has_upload),
        _ => false,
    }
}

/// The bytes of the uploads in `params` (as decoded), e.g. to bound a queued call's.
pub fn upload_bytes(params: &Value) -> usize {
    match params {
        Value::Object(object) => match object.get(UPLOAD_KEY) {
            Some(inner) => inner["base64"].as_str().map_or(0, |b| b.len() / 4 * 3),
            None => object.values().map(upload_bytes).sum(),
        },
        Value::Array(items) => items.iter().map(upload_bytes).sum(),
        _ => 0,
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding; `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if text.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|v| v as u32);
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for (i, chunk) in text.chunks(4).enumerate() {
        let last = i == text.len() / 4 - 1;
        let padding = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - padding] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * padding as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - padding]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_length() {
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"f"), "Zg==");
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 250) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&bytes)), Some(bytes));
        }
        assert_eq!(base64_decode("Zg="), None);
        assert_eq!(base64_decode("Zg==Zg=="), None);
        assert_eq!(base64_decode("Z!=="), None);
    }

    #[test]
    fn a_call_without_uploads_stays_json_and_one_with_uploads_is_a_form() {
        let mut plain = json!({"chat_id": 5, "photo": "AgAD-file-id"});
        assert_eq!(Multipart::take("sendPhoto", &mut plain), None);

        let photo = InputFile::bytes("cat.png", vec![0x89, b'P', b'N', b'G']).into_param();
        let mut params = json!({"chat_id": 5, "photo": photo, "caption": "a cat",
            "reply_markup": {"inline_keyboard": []}});
        assert_eq!(upload_bytes(&params), 6, "8 base64 characters");
        let form = Multipart::take("sendPhoto", &mut params).unwrap().unwrap();
        assert_eq!(
            form.fields,
            [
                ("caption".to_string(), "a cat".to_string()),
                ("chat_id".to_string(), "5".to_string()),
                (
                    "reply_markup".to_string(),
                    r#"{"inline_keyboard":[]}"#.to_string()
                )
            ]
        );
        assert_eq!(form.files.len(), 1);
        assert_eq!(form.files[0].0, "photo");
        assert_eq!(form.files[0].1.filename, "cat.png");
        assert_eq!(form.files[0].1.bytes, [0x89, b'P', b'N', b'G']);
    }

    #[test]
    fn nested_uploads_are_attached_by_name() {
        let a = InputFile::bytes("a.jpg", b"AAA".to_vec()).into_param();
        let b = InputFile::bytes("b.jpg", b"BB".to_vec()).into_param();
        let mut params = json!({"chat_id": 5, "media": [
            {"type": "photo", "media": a}, {"type": "photo", "media": "file-id"},
            {"type": "photo", "media": b}]});
        let form = Multipart::take("sendMediaGroup", &mut params)
            .unwrap()
            .unwrap();
        let media: Value = serde_json::from_str(&form.fields[1].1).unwrap();
        assert_eq!(media[0]["media"], "attach://file0");
        assert_eq!(media[1]["media"], "file-id");
        assert_eq!(media[2]["media"], "attach://file1");
        let names: Vec<_> = form
            .files
            .iter()
            .map(|(n, u)| (n.as_str(), u.bytes.len()))
            .collect();
        assert_eq!(names, [("file0", 3), ("file1", 2)]);
    }

    #[test]
    fn an_upload_that_does_not_decode_names_the_method() {
        let mut params = json!({"photo": {UPLOAD_KEY: {"filename": "x", "base64": "%%%"}}});
        let err = Multipart::take("sendPhoto", &mut params)
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("sendPhoto"), "{err}");
    }
}
