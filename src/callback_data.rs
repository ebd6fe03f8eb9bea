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
//! callback data it likes); a source that fails makes no keyboard ([`Error::Random`]).
//!
//! ## Plain string buttons: replaced on the way out, as PTB does
//! With arbitrary callback data on, the bot handlers get ([`Context::bot`]) replaces the data of
//! every inline keyboard it sends (`reply_markup` of any method, and of each of
//! `answerInlineQuery`'s results), as PTB's `ExtBot` does: a button whose data is not an id
//! already (`InlineKeyboardButton::callback("x", "plain:1")`) gets one, and its string is
//! stored as its data. A press then resolves to `"plain:1"`, which a `pattern("^plain:")`
//! matches as it would with arbitrary callback data off.
//!
//! Why replace, rather than let presses whose data is not an id through as plain data: with
//! arbitrary callback data on, every press a handler sees resolved to data the bot itself
//! stored, so a modified client cannot send a handler a string it never got (`delete:42`); a
//! press carrying a plain string is invalid data, as in PTB. The cost is one stored keyboard
//! per sent keyboard with plain data, as in PTB. Data of exactly 64 hex digits is taken for an
//! id and sent as it is; buttons of messages sent before arbitrary callback data was turned on
//! carry plain strings, and their presses are invalid (as in PTB). A markup given as JSON text
//! instead of an object is not looked into.
//!
//! ## Storage: one entry per keyboard, one index per chat
//! A keyboard's data is one entry, [`Key::CallbackKeyboard`] → `{"access_time": <seconds since
//! the epoch, float>, "buttons": {<button id>: <data>}, "places": [..]}`, written with the rest
//! of the update at its end. A press carries its keyboard id, so the Application adds that key
//! to the update's one read and the press resolves without another round trip. Export writes
//! the keyboards as PTB's DictPersistence `callback_data` (`[[[keyboard id, access_time,
//! {button id: data}], ...], {}]`), and a PTB export imports: its ids have the same shape.
//!
//! Each chat's keyboards are listed, with the time each was last used, in an index entry of
//! the chat (of the user, for an update without a chat); it is read with the update's one
//! read and written with its one write when the update makes, drops or resolves a keyboard.
//! The index is a key kind of its own, [`Key::KeyboardIndex`]`("chat.<id>")` (`"user.<id>"`),
//! whose value is `"<keyboard id>:<ms> …"`. It is edgegram's bookkeeping, so a
//! DictPersistence export leaves it out; after an import, the sweep bounds the keyboards no
//! index lists.
//!
//! ## Bounds: `maxsize` keyboards per chat, the least recently used evicted
//! PTB's cache keeps `maxsize` keyboards in all, evicting the least recently used. edgegram
//! keeps `maxsize` keyboards **per chat**: the update that stores one more keyboard than that
//! deletes the chat's least recently used ones in the same write (a resolved press makes its
//! keyboard recent). No update lists storage, and one chat's flood of keyboards evicts only its
//! own. The costs: every update with a chat (or user) reads one more key, and a write that
//! makes, drops or resolves a keyboard rewrites the chat's index, about 47 bytes per keyboard
//! of the chat (47 KiB at the default `maxsize` of 1024: lower `maxsize` for chats that keep
//! many keyboards). The number of keyboards stored in all grows with the number of chats, as
//! chat_data does. Keyboards no index lists (imported from PTB, stored before indexes
//! existed, made in an update with neither chat nor user) are bounded together by [`sweep`], which
//! also applies `ttl`.
//!
//! ## Where a keyboard resolves
//! A keyboard's `places` say where it was sent: the chat and message of each message the
//! handlers' bot sent or edited with it (`{"chat_id": .., "message_id": ..}`), an inline
//! message (`{"inline_message_id": ..}`), inline messages of an inline query's results, whose
//! ids Telegram does not tell (`{"inline": true}`). A keyboard made but not seen sent is bound
//! to the update's chat (any message of it), or to inline messages for an update without a
//! chat. A press from anywhere else is invalid data ([`InvalidReason::Misplaced`]) and changes
//! nothing: a keyboard id copied into another chat, another message or an inline message does
//! not reach its data. Keyboards without `places` (imported from PTB, stored before this
//! version) resolve wherever they are pressed: nothing says where they were sent.
//!
//! Other differences from PTB, all to avoid writes the edge pays for:
//! - `access_time` is when the keyboard was stored; the index keeps when it was last used.
//! - Presses are not mapped from callback query id to keyboard (PTB's second mapping):
//!   [`Context::drop_callback_data`] reads the keyboard id from the pressed data itself.
//! - The message's own keyboard (`callback_query.message.reply_markup`) is not resolved.
//! - `ttl` is applied at resolution (an expired keyboard's presses are invalid on time) and by
//!   [`sweep`] (for a cron trigger or Durable Object alarm), which deletes expired keyboards.
//!
//! ## Resolution
//! [`Context::callback_data`] answers the pressed button's data, or
//! [`CallbackData::Invalid`] when it cannot be resolved (unknown, dropped, swept, expired,
//! pressed where it was not sent, or tampered with): PTB's `InvalidCallbackData`. A
//! [`CallbackQueryHandler`](crate::CallbackQueryHandler) matches those with
//! [`invalid_data`](crate::CallbackQueryHandler::invalid_data), and resolved data with
//! [`data_where`](crate::CallbackQueryHandler::data_where) or a `pattern` (which then applies to
//! string data).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};
use std::time::Duration;

use futures::future::LocalBoxFuture;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Map, Value};

use crate::bot::{Bot, BotApi};
use crate::context::{Context, DataType};
use crate::error::{Error, Result};
use crate::persistence::{codec, Change, Key, KeyKind, Persistence};
use crate::types::{CallbackQuery, InlineKeyboardButton, ReplyMarkup, Update};
use crate::update_state::UpdateState;

/// Hex digits in a keyboard id and in a button id (PTB's `uuid4().hex`); together they fill
/// Telegram's 64 bytes.
pub const ID_LEN: usize = 32;

/// How arbitrary callback data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackDataSettings {
    /// A keyboard older than this no longer resolves, and [`sweep`] deletes it. `None` (the
    /// default, as PTB) keeps keyboards until dropped or pushed out by `maxsize`.
    pub ttl: Option<Duration>,
    /// How many keyboards each chat keeps (1024 by default, PTB's `maxsize`, which PTB counts
    /// over all chats): the update that stores one more deletes the chat's least recently
    /// used keyboard in the same write (see the [module docs](crate::callback_data)). At least
    /// 1.
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
    /// Not a keyboard id and button id: made elsewhere, a plain string of a message sent
    /// before arbitrary callback data was on, or tampered with.
    Malformed,
    /// No such keyboard or button: dropped, swept, evicted, never stored, or tampered with.
    Unknown,
    /// The keyboard was not sent where it was pressed (another chat, another message, an
    /// inline message or not): its id was copied. The keyboard is left as it is.
    Misplaced,
    /// The keyboard is older than the `ttl`.
    Expired,
}

/// What one update did with arbitrary callback data, for [`UpdateState::settle_keyboards`].
#[derive(Default)]
pub(crate) struct Keyboards {
    /// Ids of the keyboards made, in order.
    made: RefCell<Vec<String>>,
    /// Keyboards the handlers' bot sent, each with where it went (a place, as stored).
    sent: RefCell<Vec<(String, Value)>>,
}

/// The most buttons a stored keyboard may have: Telegram shows at most 100 on one message, so
/// a keyboard with more was never sent (an import refuses it).
pub const MAX_BUTTONS: usize = 100;

/// Whether `id` has the shape of a keyboard id or a button id: [`ID_LEN`] ASCII hex digits,
/// as edgegram and PTB (`uuid4().hex`) make them. A press resolves only ids of this shape, so
/// an import takes only these.
pub fn is_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Splits callback data into keyboard id and button id, if it has their shape. Never panics
/// on outside data: lengths are checked and only ASCII hex digits pass.
fn split_ids(data: &str) -> Option<(&str, &str)> {
    if data.len() != 2 * ID_LEN || !data.is_char_boundary(ID_LEN) {
        return None;
    }
    let (keyboard, button) = data.split_at(ID_LEN);
    (is_id(keyboard) && is_id(button)).then_some((keyboard, button))
}

/// The keyboard entry a press needs, for the update's one read.
pub(crate) fn keyboard_key(update: &Update) -> Option<Key> {
    let data = update.callback_query.as_ref()?.data.as_deref()?;
    let (keyboard, _) = split_ids(data)?;
    Some(Key::CallbackKeyboard(keyboard.to_string()))
}

/// The index of the keyboards made in updates like `update`: its chat's, or its user's when
/// it has no chat; for the update's one read.
pub(crate) fn index_key(update: &Update) -> Option<Key> {
    let scope = match (update.effective_chat(), update.effective_user()) {
        (Some(chat), _) => format!("chat.{}", chat.id),
        (None, Some(user)) => format!("user.{}", user.id),
        (None, None) => return None,
    };
    Some(Key::KeyboardIndex(scope))
}

/// Whether `key` is a keyboard index rather than one of PTB's query mappings.
fn is_index(key: &Key) -> bool {
    matches!(key, Key::KeyboardIndex(_))
}

/// An index's keyboards with the time each was last used (ms), in stored order. Parts that do
/// not parse are left out: the index only bounds storage, it is never trusted for data.
fn parse_index(value: Option<&Value>) -> Vec<(String, i64)> {
    let Some(text) = value.and_then(Value::as_str) else {
        return Vec::new();
    };
    text.split_ascii_whitespace()
        .filter_map(|part| {
            let (id, ms) = part.rsplit_once(':')?;
            Some((id.to_string(), ms.parse().ok()?))
        })
        .collect()
}

fn format_index(index: &[(String, i64)]) -> Value {
    let parts: Vec<String> = index.iter().map(|(id, ms)| format!("{id}:{ms}")).collect();
    Value::String(parts.join(" "))
}

/// The stored `access_time` of a keyboard entry in milliseconds, if it has one.
fn access_time_ms(keyboard: &Value) -> Option<i64> {
    let seconds = keyboard.get("access_time")?.as_f64()?;
    // `as` saturates on out-of-range floats: a bad value cannot panic.
    Some((seconds * 1000.0) as i64)
}

/// Whether a press of `query` comes from `place` (see the module docs' "Where a keyboard
/// resolves"). A place of a shape this code does not know accepts nothing.
fn place_accepts(place: &Value, query: &CallbackQuery) -> bool {
    if let Some(chat) = place.get("chat_id").and_then(Value::as_i64) {
        let Some(message) = &query.message else {
            return false;
        };
        let message_id = place.get("message_id").and_then(Value::as_i64);
        return message.chat.id == chat && message_id.is_none_or(|id| id == message.message_id);
    }
    if let Some(id) = place.get("inline_message_id").and_then(Value::as_str) {
        return query.inline_message_id.as_deref() == Some(id);
    }
    place.get("inline") == Some(&Value::Bool(true)) && query.inline_message_id.is_some()
}

/// Where a keyboard goes that was made in `update` but not seen sent: the update's chat, or
/// inline messages for an update without a chat.
fn default_place(update: &Update) -> Value {
    match update.effective_chat() {
        Some(chat) => json!({"chat_id": chat.id}),
        None => json!({"inline": true}),
    }
}

/// Where a message sent or edited with a keyboard is, from the call's answer (a message) or,
/// for answers that are not one (`true` for inline messages), its parameters.
fn place_of(params: &Value, result: &Value) -> Option<Value> {
    if let (Some(chat), Some(message)) =
        (result["chat"]["id"].as_i64(), result["message_id"].as_i64())
    {
        return Some(json!({"chat_id": chat, "message_id": message}));
    }
    if let Some(id) = params["inline_message_id"].as_str() {
        return Some(json!({"inline_message_id": id}));
    }
    let chat = params["chat_id"].as_i64()?;
    Some(match params["message_id"].as_i64() {
        Some(message) => json!({"chat_id": chat, "message_id": message}),
        None => json!({"chat_id": chat}),
    })
}

impl<B: DataType, C: DataType, U: DataType> Context<B, C, U> {
    /// The pressed button's data, resolved (see the [module docs](crate::callback_data)).
    /// `None` when the update is not a callback query or has no data (a game button). With
    /// arbitrary callback data off, the raw string as [`CallbackData::Data`].
    pub fn callback_data(&self) -> Option<CallbackData> {
        self.state().resolve_press()
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
    /// `SendMessage::new(..).reply_markup(markup)`: the handlers' bot notes where it went, and
    /// only presses there resolve (a keyboard not sent through it belongs to this update's
    /// chat).
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
        if self.state().callback_data().is_none() {
            return Err(Error::Config(
                "arbitrary callback data is off: call \
                 ApplicationBuilder::arbitrary_callback_data(CallbackDataSettings::default())"
                    .into(),
            ));
        }
        let mut labels: Vec<Vec<String>> = Vec::new();
        let mut values = Vec::new();
        for row in rows {
            let mut out = Vec::new();
            for (label, data) in row {
                let data = serde_json::to_value(data).map_err(|e| Error::Encode {
                    key: "a button of a callback keyboard".into(),
                    message: e.to_string(),
                })?;
                out.push(label.into());
                values.push(data);
            }
            labels.push(out);
        }
        let mut data = self.state().make_keyboard(values)?.into_iter();
        let markup = labels
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .zip(data.by_ref())
                    .map(|(label, data)| InlineKeyboardButton::callback(label, data))
                    .collect()
            })
            .collect();
        Ok(ReplyMarkup::inline(markup))
    }

    /// Deletes the stored data of the pressed button's keyboard at the end of the update (PTB's
    /// `drop_callback_data`): later presses of any of its buttons are invalid. Does nothing
    /// when arbitrary callback data is off, or for a press that does not resolve (but for an
    /// expired one): a keyboard id pressed where the keyboard was not sent, or with a button
    /// id it does not have, must not delete the real keyboard.
    pub fn drop_callback_data(&self) -> Result<()> {
        let query = self
            .callback_query()
            .ok_or(Error::Missing("callback query"))?;
        if self.state().callback_data().is_none() {
            return Ok(());
        }
        let droppable = match self.callback_data() {
            Some(CallbackData::Data(_)) => true,
            Some(CallbackData::Invalid(invalid)) => invalid.reason == InvalidReason::Expired,
            None => false,
        };
        if let Some((keyboard_id, _)) = query.data.as_deref().and_then(split_ids) {
            if droppable {
                self.drop_keyboard(keyboard_id);
            }
        }
        Ok(())
    }

    /// Deletes one keyboard's stored data at the end of the update, whether or not this
    /// update read it.
    pub fn drop_keyboard(&self, keyboard_id: &str) {
        self.state()
            .delete_entry(Key::CallbackKeyboard(keyboard_id.to_string()));
    }
}

impl<B: DataType, C: DataType, U: DataType> UpdateState<B, C, U> {
    /// The pressed button's data, resolved: see [`Context::callback_data`].
    pub(crate) fn resolve_press(&self) -> Option<CallbackData> {
        let query = self.update.callback_query.as_ref()?;
        let raw = query.data.as_deref()?;
        let Some(settings) = self.callback_data() else {
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
        // Where it was sent first: a copied id learns nothing, not even whether its button
        // exists.
        let placed = match keyboard.get("places") {
            None => true,
            Some(Value::Array(places)) => places.iter().any(|p| place_accepts(p, query)),
            Some(_) => false,
        };
        if !placed {
            return invalid(InvalidReason::Misplaced);
        }
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

    /// Stores a keyboard of buttons carrying `data`, at the end of the update; answers each
    /// button's callback data (keyboard id and button id), in order.
    pub(crate) fn make_keyboard(&self, data: Vec<Value>) -> Result<Vec<String>> {
        let keyboard_id = self.new_id()?;
        let mut buttons = Map::new();
        let mut out = Vec::with_capacity(data.len());
        for value in data {
            let button_id = self.new_id()?;
            if buttons.contains_key(&button_id) {
                // A real source repeats 128 bits with a chance of 2^-128.
                return Err(Error::Random("it gave the same id twice".into()));
            }
            out.push(format!("{keyboard_id}{button_id}"));
            buttons.insert(button_id, value);
        }
        let access_time = self.now_ms() as f64 / 1000.0;
        self.set_entry(
            Key::CallbackKeyboard(keyboard_id.clone()),
            Some(json!({"access_time": access_time, "buttons": buttons})),
        );
        self.keyboards.made.borrow_mut().push(keyboard_id);
        Ok(out)
    }

    /// Before the update's changes are found: binds the keyboards made or sent to where they
    /// went, and keeps the chat's index: drops the keyboards deleted, makes the pressed one
    /// recent, adds the ones made and evicts the least recently used beyond `maxsize` (see
    /// the module docs). Nothing to read: the index came with the update's one read.
    pub(crate) fn settle_keyboards(&self) {
        let Some(settings) = self.callback_data() else {
            return;
        };
        let now = self.now_ms();
        let made = self.keyboards.made.take();
        let sent = self.keyboards.sent.take();
        let mut bound: Vec<&String> = Vec::new();
        for id in made.iter().chain(sent.iter().map(|(id, _)| id)) {
            if !bound.contains(&id) {
                self.bind(id, made.contains(id), &sent);
                bound.push(id);
            }
        }

        let Some(index_key) = index_key(&self.update) else {
            return;
        };
        let stored = self.entry(&index_key);
        let mut index = parse_index(stored.as_ref());
        index.retain(|(id, _)| !self.deletes_entry(&Key::CallbackKeyboard(id.clone())));
        if let Some(CallbackData::Data(_)) = self.resolve_press() {
            let pressed = self
                .update
                .callback_query
                .as_ref()
                .and_then(|q| q.data.as_deref());
            if let Some((pressed, _)) = pressed.and_then(split_ids) {
                if let Some(entry) = index.iter_mut().find(|(id, _)| id == pressed) {
                    entry.1 = now;
                }
            }
        }
        for id in &made {
            let stored = self.entry(&Key::CallbackKeyboard(id.clone())).is_some();
            if stored && !index.iter().any(|(known, _)| known == id) {
                index.push((id.clone(), now));
            }
        }
        let maxsize = settings.maxsize.max(1);
        if index.len() > maxsize {
            // Least recently used first; equal times keep their order (oldest first).
            index.sort_by_key(|(_, used)| *used);
            let evicted: Vec<(String, i64)> = index.drain(..index.len() - maxsize).collect();
            for (id, _) in evicted {
                self.delete_entry(Key::CallbackKeyboard(id));
            }
        }
        let value = (!index.is_empty()).then(|| format_index(&index));
        if value != stored {
            self.set_entry(index_key, value);
        }
    }

    /// Sets the places of keyboard `id`: where it was seen sent, or for one made in this
    /// update and not seen sent, the update's chat. A keyboard stored before, seen sent again,
    /// gets the new places added, unless it has none (it resolves anywhere, and still does).
    fn bind(&self, id: &str, made_here: bool, sent: &[(String, Value)]) {
        let key = Key::CallbackKeyboard(id.to_string());
        let Some(mut keyboard) = self.entry(&key) else {
            return; // dropped, or stored but not read by this update
        };
        let mut seen: Vec<Value> = Vec::new();
        for (_, place) in sent.iter().filter(|(sent_id, _)| sent_id == id) {
            if !seen.contains(place) {
                seen.push(place.clone());
            }
        }
        let places = if made_here {
            if seen.is_empty() {
                vec![default_place(&self.update)]
            } else {
                seen
            }
        } else {
            let Some(Value::Array(existing)) = keyboard.get("places") else {
                return;
            };
            let mut places = existing.clone();
            for place in seen {
                if !places.contains(&place) {
                    places.push(place);
                }
            }
            places
        };
        let Some(fields) = keyboard.as_object_mut() else {
            return;
        };
        let places = Value::Array(places);
        if fields.get("places") != Some(&places) {
            fields.insert("places".into(), places);
            self.set_entry(key, Some(keyboard));
        }
    }

    /// Replaces the plain data of the inline keyboards in a Bot API call's parameters with
    /// ids of a new stored keyboard per markup, and answers the keyboards the call sends, each
    /// with whether it goes to inline messages of unknown ids (an inline query's results).
    fn prepare_outgoing(&self, params: &mut Value) -> Result<Vec<(String, bool)>> {
        let mut out = Vec::new();
        if let Some(markup) = params.get_mut("reply_markup") {
            self.prepare_markup(markup, false, &mut out)?;
        }
        if let Some(results) = params.get_mut("results").and_then(Value::as_array_mut) {
            for result in results {
                if let Some(markup) = result.get_mut("reply_markup") {
                    self.prepare_markup(markup, true, &mut out)?;
                }
            }
        }
        // answerWebAppQuery: one inline result.
        if let Some(markup) = params
            .get_mut("result")
            .and_then(|r| r.get_mut("reply_markup"))
        {
            self.prepare_markup(markup, true, &mut out)?;
        }
        Ok(out)
    }

    fn prepare_markup(
        &self,
        markup: &mut Value,
        inline: bool,
        out: &mut Vec<(String, bool)>,
    ) -> Result<()> {
        let Some(rows) = markup
            .get_mut("inline_keyboard")
            .and_then(Value::as_array_mut)
        else {
            return Ok(());
        };
        let mut plain = Vec::new();
        for (r, row) in rows.iter().enumerate() {
            for (c, button) in row.as_array().into_iter().flatten().enumerate() {
                let Some(data) = button.get("callback_data").and_then(Value::as_str) else {
                    continue;
                };
                match split_ids(data) {
                    Some((keyboard, _)) => {
                        let keyboard = (keyboard.to_string(), inline);
                        if !out.contains(&keyboard) {
                            out.push(keyboard);
                        }
                    }
                    None => plain.push((r, c)),
                }
            }
        }
        if plain.is_empty() {
            return Ok(());
        }
        let data = plain
            .iter()
            .map(|&(r, c)| rows[r][c]["callback_data"].clone())
            .collect();
        let ids = self.make_keyboard(data)?;
        for (&(r, c), id) in plain.iter().zip(&ids) {
            rows[r][c]["callback_data"] = Value::String(id.clone());
        }
        out.push((ids[0][..ID_LEN].to_string(), inline));
        Ok(())
    }

    fn new_id(&self) -> Result<String> {
        let mut bytes = [0u8; ID_LEN / 2];
        self.fill_random(&mut bytes)?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl<B: DataType, C: DataType, U: DataType> UpdateState<B, C, U> {
    /// Replaces the plain data of a queued call's inline keyboards with stored keyboards, as
    /// [`OutgoingKeyboards`] does for a call made at once. The call is sent after the update,
    /// so its answer is not known here: a keyboard is bound to the chat (or the message an
    /// edit names) it goes to, not to the id of a message it sends.
    pub(crate) fn prepare_queued(&self, params: &mut Value) -> Result<()> {
        let keyboards = self.prepare_outgoing(params)?;
        let target = json!({
            "chat_id": params["chat_id"],
            "message_id": params["message_id"],
            "inline_message_id": params["inline_message_id"],
        });
        for (keyboard, inline) in keyboards {
            let place = if inline {
                Some(json!({"inline": true}))
            } else {
                place_of(&target, &Value::Null)
            };
            if let Some(place) = place {
                self.keyboards.sent.borrow_mut().push((keyboard, place));
            }
        }
        Ok(())
    }
}

/// What the handlers' bot asks of its update's state, without its data types.
trait Outgoing {
    /// See [`UpdateState::prepare_outgoing`].
    fn prepare(&self, params: &mut Value) -> Result<Vec<(String, bool)>>;
    /// Notes that `keyboard` went to `place`.
    fn sent(&self, keyboard: String, place: Value);
}

impl<B: DataType, C: DataType, U: DataType> Outgoing for UpdateState<B, C, U> {
    fn prepare(&self, params: &mut Value) -> Result<Vec<(String, bool)>> {
        self.prepare_outgoing(params)
    }

    fn sent(&self, keyboard: String, place: Value) {
        self.keyboards.sent.borrow_mut().push((keyboard, place));
    }
}

/// The bot handlers get with arbitrary callback data on: `api`, with the data of outgoing
/// inline keyboards replaced and where they went noted in the update's `state` (PTB's
/// `ExtBot` with `arbitrary_callback_data`).
pub(crate) fn outgoing_bot<B: DataType, C: DataType, U: DataType>(
    api: Rc<dyn BotApi>,
    state: Weak<UpdateState<B, C, U>>,
) -> Bot {
    let state: Weak<dyn Outgoing> = state;
    Bot::new(Rc::new(OutgoingKeyboards { inner: api, state }))
}

/// See [`outgoing_bot`]. Holds its state weakly: the state holds the bot.
struct OutgoingKeyboards {
    inner: Rc<dyn BotApi>,
    state: Weak<dyn Outgoing>,
}

impl BotApi for OutgoingKeyboards {
    fn call<'a>(&'a self, method: &'a str, mut params: Value) -> LocalBoxFuture<'a, Result<Value>> {
        Box::pin(async move {
            let Some(state) = self.state.upgrade() else {
                return self.inner.call(method, params).await;
            };
            let keyboards = state.prepare(&mut params)?;
            if keyboards.is_empty() {
                return self.inner.call(method, params).await;
            }
            let target = json!({
                "chat_id": params["chat_id"],
                "message_id": params["message_id"],
                "inline_message_id": params["inline_message_id"],
            });
            let result = self.inner.call(method, params).await?;
            for (keyboard, inline) in keyboards {
                let place = if inline {
                    Some(json!({"inline": true}))
                } else {
                    place_of(&target, &result)
                };
                if let Some(place) = place {
                    state.sent(keyboard, place);
                }
            }
            Ok(result)
        })
    }
}

/// Enforces `ttl` and `maxsize` on the stored keyboards, in one write: deletes keyboards older
/// than `ttl`; in each chat's index, the least recently used keyboards beyond `maxsize`; of
/// the keyboards no index lists (imported from PTB, made before indexes), the oldest beyond
/// `maxsize`; and the query mappings (imported from PTB) that point to deleted or missing
/// keyboards. Indexes are rewritten without what is gone. Answers the keys deleted.
///
/// For a cron trigger or a Durable Object alarm: it lists every keyboard, so run it
/// periodically, not per update (updates bound each chat's keyboards themselves). One chat's
/// keyboards never push out another's. Entries that cannot be decoded are left alone (the
/// update that loads one reports it).
pub async fn sweep(
    persistence: &dyn Persistence,
    now_ms: i64,
    settings: CallbackDataSettings,
) -> Result<Vec<Key>> {
    let maxsize = settings.maxsize.max(1);
    let keys = persistence.list(KeyKind::CallbackKeyboard).await?;
    let values = persistence.read(&keys).await?;
    let mut removed = Vec::new();
    // Keyboards not expired, by id, with their access time.
    let mut alive: BTreeMap<String, i64> = BTreeMap::new();
    for (key, raw) in keys.into_iter().zip(values) {
        let Some(stored) = raw.and_then(|raw| codec::decode(&raw).ok()) else {
            continue;
        };
        let Key::CallbackKeyboard(id) = &key else {
            continue;
        };
        let time = access_time_ms(&stored.data).unwrap_or(i64::MIN);
        let expired = settings
            .ttl_ms()
            .is_some_and(|ttl| time.saturating_add(ttl) <= now_ms);
        if expired {
            removed.push(key);
        } else {
            alive.insert(id.clone(), time);
        }
    }

    let mut queries = persistence.list(KeyKind::CallbackQuery).await?;
    queries.extend(persistence.list(KeyKind::KeyboardIndex).await?);
    let targets = persistence.read(&queries).await?;
    let mut changes = Vec::new();
    let mut indexed = BTreeSet::new();
    let mut mappings = Vec::new();
    for (key, raw) in queries.into_iter().zip(targets) {
        let Some(stored) = raw.and_then(|raw| codec::decode(&raw).ok()) else {
            continue;
        };
        if !is_index(&key) {
            mappings.push((key, stored.data));
            continue;
        }
        let before = parse_index(Some(&stored.data));
        let mut index = before.clone();
        index.retain(|(id, _)| alive.contains_key(id));
        if index.len() > maxsize {
            index.sort_by_key(|(_, used)| *used);
            for (id, _) in index.drain(..index.len() - maxsize) {
                alive.remove(&id);
                removed.push(Key::CallbackKeyboard(id));
            }
        }
        indexed.extend(index.iter().map(|(id, _)| id.clone()));
        if index == before {
            continue;
        }
        if index.is_empty() {
            removed.push(key);
        } else {
            let value = format_index(&index).to_string();
            changes.push(Change::Put(key, codec::encode(stored.version, &value)));
        }
    }

    // Keyboards no index lists: bounded together, newest kept.
    let mut unindexed: Vec<(i64, String)> = alive
        .iter()
        .filter(|(id, _)| !indexed.contains(*id))
        .map(|(id, time)| (*time, id.clone()))
        .collect();
    unindexed.sort_by_key(|(time, _)| std::cmp::Reverse(*time));
    for (_, id) in unindexed.drain(maxsize.min(unindexed.len())..) {
        alive.remove(&id);
        removed.push(Key::CallbackKeyboard(id));
    }

    for (key, target) in mappings {
        if !target.as_str().is_some_and(|id| alive.contains_key(id)) {
            removed.push(key);
        }
    }
    changes.extend(removed.iter().cloned().map(Change::Delete));
    if !changes.is_empty() {
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
