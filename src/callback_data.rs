//! Arbitrary callback data: PTB's `arbitrary_callback_data`, made to fit one read per update.
//!
//! ```text
//! user: /list             bot: [1] [2] [3]          (each button carries [n, []])
//! user: presses [2]       bot: edits to "[2]" with buttons carrying [m, [2]]
//! ```
//!
//! Telegram allows 64 bytes of callback data per button. With
//! [`ApplicationBuilder::arbitrary_callback_data`](crate::ApplicationBuilder::arbitrary_callback_data)
//! a handler makes its keyboard with [`Context::callback_keyboard`]: every button gets
//! any serde value, which is stored, and Telegram gets an opaque id instead, written as PTB
//! writes it: a 32-hex-digit keyboard id followed by a 32-hex-digit button id. Ids come from
//! the Application's random source, so they cannot be guessed (a modified client can send any
//! callback data it likes).
//!
//! ## Storage: one entry per keyboard
//! A keyboard's data is one entry, [`Key::CallbackKeyboard`] → `{"access_time": <seconds since
//! the epoch, float>, "buttons": {<button id>: <data>}}`, written with the rest of the update
//! at its end. A press carries its keyboard id, so the Application adds that key to the
//! update's one read and the press resolves without another round trip. Export writes the
//! keyboards as PTB's DictPersistence `callback_data` (`[[[keyboard id, access_time,
//! {button id: data}], ...], {}]`), and a PTB export imports: its ids have the same shape.
//!
//! Differences from PTB, all to avoid writes the edge pays for:
//! - `access_time` is when the keyboard was stored; a press does not rewrite it (PTB's LRU
//!   touches it on every press, which would be a storage write per press).
//! - Presses are not mapped from callback query id to keyboard (PTB's second mapping):
//!   [`Context::drop_callback_data`] reads the keyboard id from the pressed data itself.
//! - The message's own keyboard (`callback_query.message.reply_markup`) is not resolved.
//! - `maxsize` and `ttl` are enforced by [`sweep`] (for a cron trigger or Durable Object
//!   alarm); between sweeps `ttl` is still applied at resolution, so an expired keyboard's
//!   presses are invalid on time.
//!
//! ## Resolution
//! [`Context::callback_data`] answers the pressed button's data, or
//! [`CallbackData::Invalid`] when it cannot be resolved (unknown, dropped, swept, expired or
//! tampered with): PTB's `InvalidCallbackData`. A
//! [`CallbackQueryHandler`](crate::CallbackQueryHandler) matches those with
//! [`invalid_data`](crate::CallbackQueryHandler::invalid_data), and resolved data with
//! [`data_where`](crate::CallbackQueryHandler::data_where) or a `pattern` (which then applies to
//! string data).

use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Map, Value};

use crate::context::{Context, DataType};
use crate::error::{Error, Result};
use crate::persistence::{codec, Change, Key, KeyKind, Persistence};
use crate::types::{InlineKeyboardButton, ReplyMarkup, Update};

/// Hex digits in a keyboard id and in a button id (PTB's `uuid4().hex`); together they fill
/// Telegram's 64 bytes.
pub const ID_LEN: usize = 32;

/// How arbitrary callback data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackDataSettings {
    /// A keyboard older than this no longer resolves, and [`sweep`] deletes it. `None` (the
    /// default, as PTB) keeps keyboards until dropped or pushed out by `maxsize`.
    pub ttl: Option<Duration>,
    /// How many keyboards [`sweep`] keeps, the most recent ones (PTB's `maxsize`, 1024 by
    /// default).
    pub maxsize: usize,
}

impl Default for CallbackDataSettings {
    fn default() -> Self {
        Self {
            ttl: None,
            maxsize: 1024,
        }
    }
}

impl CallbackDataSettings {
    fn ttl_ms(&self) -> Option<i64> {
        self.ttl
            .map(|ttl| i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A pressed button's data.
#[derive(Debug, Clone, PartialEq)]
pub enum CallbackData {
    /// The data the button was made with (with arbitrary callback data off: the raw string).
    Data(Value),
    /// The data could not be resolved (PTB's `InvalidCallbackData`).
    Invalid(InvalidCallbackData),
}

/// Why a press could not be resolved, with the data as Telegram sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCallbackData {
    /// The callback data as received.
    pub callback_data: String,
    /// Why it does not resolve.
    pub reason: InvalidReason,
}

/// Why callback data does not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    /// Not a keyboard id and button id: made elsewhere, or tampered with.
    Malformed,
    /// No such keyboard or button: dropped, swept, never stored, or tampered with.
    Unknown,
    /// The keyboard is older than the `ttl`.
    Expired,
}

/// Splits callback data into keyboard id and button id, if it has their shape. Never panics
/// on outside data: lengths are checked and only ASCII hex digits pass.
fn split_ids(data: &str) -> Option<(&str, &str)> {
    let is_hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    if data.len() != 2 * ID_LEN || !is_hex(data) {
        return None;
    }
    Some(data.split_at(ID_LEN))
}

/// The keyboard entry a press needs, for the update's one read.
pub(crate) fn keyboard_key(update: &Update) -> Option<Key> {
    let data = update.callback_query.as_ref()?.data.as_deref()?;
    let (keyboard, _) = split_ids(data)?;
    Some(Key::CallbackKeyboard(keyboard.to_string()))
}

/// The stored `access_time` of a keyboard entry in milliseconds, if it has one.
fn access_time_ms(keyboard: &Value) -> Option<i64> {
    let seconds = keyboard.get("access_time")?.as_f64()?;
    // `as` saturates on out-of-range floats: a bad value cannot panic.
    Some((seconds * 1000.0) as i64)
}

impl<B: DataType, C: DataType, U: DataType> Context<B, C, U> {
    /// The pressed button's data, resolved (see the [module docs](crate::callback_data)).
    /// `None` when the update is not a callback query or has no data (a game button). With
    /// arbitrary callback data off, the raw string as [`CallbackData::Data`].
    pub fn callback_data(&self) -> Option<CallbackData> {
        let raw = self.callback_query()?.data.as_deref()?;
        let Some(settings) = self.callback_data_settings() else {
            return Some(CallbackData::Data(Value::String(raw.to_string())));
        };
        let invalid = |reason| {
            Some(CallbackData::Invalid(InvalidCallbackData {
                callback_data: raw.to_string(),
                reason,
            }))
        };
        let Some((keyboard_id, button_id)) = split_ids(raw) else {
            return invalid(InvalidReason::Malformed);
        };
        let Some(keyboard) = self.entry(&Key::CallbackKeyboard(keyboard_id.to_string())) else {
            return invalid(InvalidReason::Unknown);
        };
        let Some(data) = keyboard.get("buttons").and_then(|b| b.get(button_id)) else {
            return invalid(InvalidReason::Unknown);
        };
        if let Some(ttl) = settings.ttl_ms() {
            let stored = access_time_ms(&keyboard).unwrap_or(i64::MIN);
            if stored.saturating_add(ttl) <= self.now_ms() {
                return invalid(InvalidReason::Expired);
            }
        }
        Some(CallbackData::Data(data.clone()))
    }

    /// The pressed button's data as `T`, if it resolves and fits `T`.
    pub fn callback_data_as<T: DeserializeOwned>(&self) -> Option<T> {
        match self.callback_data()? {
            CallbackData::Data(data) => T::deserialize(&data).ok(),
            CallbackData::Invalid(_) => None,
        }
    }

    /// Makes an inline keyboard whose buttons carry any serde value (PTB's
    /// `process_keyboard`): rows of `(label, data)`. The data is stored with this update's
    /// changes; the buttons carry opaque ids. Send the markup with the message, e.g.
    /// `SendMessage::new(..).reply_markup(markup)`.
    ///
    /// Errors: arbitrary callback data is off, there is no random source or it failed
    /// ([`Error::Random`]: no keyboard with a guessable id is made), or a value cannot be
    /// serialized.
    pub fn callback_keyboard<R, L, T>(&self, rows: R) -> Result<ReplyMarkup>
    where
        R: IntoIterator,
        R::Item: IntoIterator<Item = (L, T)>,
        L: Into<String>,
        T: Serialize,
    {
        if self.callback_data_settings().is_none() {
            return Err(Error::Config(
                "arbitrary callback data is off: call \
                 ApplicationBuilder::arbitrary_callback_data(CallbackDataSettings::default())"
                    .into(),
            ));
        }
        let keyboard_id = self.new_id()?;
        let key = Key::CallbackKeyboard(keyboard_id.clone());
        let mut buttons = Map::new();
        let mut markup = Vec::new();
        for row in rows {
            let mut out = Vec::new();
            for (label, data) in row {
                let data = serde_json::to_value(data).map_err(|e| Error::Encode {
                    key: key.to_string(),
                    message: e.to_string(),
                })?;
                let mut button_id = self.new_id()?;
                while buttons.contains_key(&button_id) {
                    button_id = self.new_id()?;
                }
                out.push(InlineKeyboardButton::callback(
                    label,
                    format!("{keyboard_id}{button_id}"),
                ));
                buttons.insert(button_id, data);
            }
            markup.push(out);
        }
        let access_time = self.now_ms() as f64 / 1000.0;
        self.set_entry(
            key,
            Some(json!({"access_time": access_time, "buttons": buttons})),
        );
        Ok(ReplyMarkup::inline(markup))
    }

    /// Deletes the stored data of the pressed button's keyboard at the end of the update (PTB's
    /// `drop_callback_data`): later presses of any of its buttons are invalid. Does nothing for
    /// data that does not resolve to a keyboard.
    pub fn drop_callback_data(&self) -> Result<()> {
        let query = self
            .callback_query()
            .ok_or(Error::Missing("callback query"))?;
        if let Some((keyboard_id, _)) = query.data.as_deref().and_then(split_ids) {
            self.drop_keyboard(keyboard_id);
        }
        Ok(())
    }

    /// Deletes one keyboard's stored data at the end of the update.
    pub fn drop_keyboard(&self, keyboard_id: &str) {
        self.set_entry(Key::CallbackKeyboard(keyboard_id.to_string()), None);
    }

    fn new_id(&self) -> Result<String> {
        let mut bytes = [0u8; ID_LEN / 2];
        self.fill_random(&mut bytes)?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// Enforces `ttl` and `maxsize` on the stored keyboards, in one write: deletes keyboards older
/// than `ttl`, then the oldest beyond `maxsize`, and the query mappings (imported from PTB)
/// that point to deleted or missing keyboards. Answers the keys deleted.
///
/// For a cron trigger or a Durable Object alarm: it lists every keyboard, so run it
/// periodically, not per update. Entries that cannot be decoded are left alone (the update
/// that loads one reports it).
pub async fn sweep(
    persistence: &dyn Persistence,
    now_ms: i64,
    settings: CallbackDataSettings,
) -> Result<Vec<Key>> {
    let keys = persistence.list(KeyKind::CallbackKeyboard).await?;
    let values = persistence.read(&keys).await?;
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    for (key, raw) in keys.into_iter().zip(values) {
        let Some(stored) = raw.and_then(|raw| codec::decode(&raw).ok()) else {
            continue;
        };
        let time = access_time_ms(&stored.data).unwrap_or(i64::MIN);
        let expired = settings
            .ttl_ms()
            .is_some_and(|ttl| time.saturating_add(ttl) <= now_ms);
        if expired {
            removed.push(key);
        } else {
            kept.push((time, key));
        }
    }
    // Newest first; everything past maxsize goes.
    kept.sort_by_key(|(time, _)| std::cmp::Reverse(*time));
    removed.extend(
        kept.drain(settings.maxsize.min(kept.len())..)
            .map(|(_, key)| key),
    );
    let kept: Vec<Key> = kept.into_iter().map(|(_, key)| key).collect();

    let queries = persistence.list(KeyKind::CallbackQuery).await?;
    let targets = persistence.read(&queries).await?;
    for (key, raw) in queries.into_iter().zip(targets) {
        let Some(stored) = raw.and_then(|raw| codec::decode(&raw).ok()) else {
            continue;
        };
        let target = stored
            .data
            .as_str()
            .map(|id| Key::CallbackKeyboard(id.into()));
        if !target.is_some_and(|t| kept.contains(&t)) {
            removed.push(key);
        }
    }
    if !removed.is_empty() {
        let changes: Vec<Change> = removed.iter().cloned().map(Change::Delete).collect();
        persistence.write(&changes).await?;
        persistence.flush().await?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_two_hex_ids_split() {
        let keyboard = "0123456789abcdef0123456789abcdef";
        let button = "fedcba9876543210fedcba9876543210";
        assert_eq!(
            split_ids(&format!("{keyboard}{button}")),
            Some((keyboard, button))
        );
        for bad in [
            String::new(),
            "short".to_string(),
            format!("{keyboard}{button}0"),
            format!("{keyboard}{}", "g".repeat(32)),
            // Multi-byte characters of the right byte length must not split mid-character.
            format!("{}é{}", "a".repeat(31), "b".repeat(31)),
        ] {
            assert_eq!(split_ids(&bad), None, "{bad}");
        }
    }
}
