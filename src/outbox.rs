//! The transactional outbox: the Bot API calls a handler queues ([`Context::send`],
//! [`Context::reply_text`]) are stored with the update's data changes and its processed-update
//! record, in the update's one write, and sent only after that write committed, by
//! [`deliver`], outside any lock the host holds for the update.
//!
//! So an update's data and its replies succeed or fail together: an update whose write fails
//! sent nothing (Telegram delivers it again and it runs from the start); a conflict re-runs the
//! handlers having sent nothing; a redelivery of a committed update is a duplicate and sends
//! nothing again. A call that fails transiently (network, 5xx, 429) stays stored with how far
//! delivery got, and is retried later (a Durable Object alarm; on KV and D1, Telegram's
//! redelivery of the update); one that fails for good (400, 403) goes to the error handlers.
//!
//! What it cannot promise: a call that reached Telegram whose answer was lost (a time-out after
//! Telegram acted) is sent again on retry, as any client must; the Bot API has no idempotency
//! key. A queued call's answer (the sent message) is not known to the handler: when it needs
//! it, it calls [`Context::bot`] and awaits, which sends at once and cannot be taken back.
//!
//! [`Context::send`]: crate::Context::send
//! [`Context::reply_text`]: crate::Context::reply_text
//! [`Context::bot`]: crate::Context::bot

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bot::BotApi;
use crate::error::{BotApiErrorKind, Error, Result};
use crate::persistence::{codec, Change, Key, KeyKind, Persistence};
use crate::types::Update;

/// The schema version of stored outboxes (their envelope's `v`).
const OUTBOX_VERSION: u32 = 1;

/// Transient failures one call gets before it is given up as failed (its error goes to the
/// error handlers): with the back-off below, about 40 minutes of retries.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 12;

/// The longest wait between two tries of a call, in milliseconds.
pub const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;

/// An outbox no try has failed yet is taken to be still on its way this long after it was
/// queued (its update's first delivery is sending it); after that, a host that finds it sends
/// it (the isolate that should have is gone). Longer than a delivery of a few calls takes,
/// each bounded by the Bot API time-out.
pub const IN_FLIGHT_MS: i64 = 60_000;

thread_local! {
    /// The next [`Outbox::seq`] of this isolate (Workers run one thread per isolate).
    static NEXT_SEQ: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// One Bot API call: a method and its JSON parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The method, e.g. `sendMessage`.
    pub method: String,
    /// Its parameters.
    pub params: Value,
}

impl Call {
    /// A call of `method` with serializable `params`.
    pub fn new(method: impl Into<String>, params: impl Serialize) -> Result<Self> {
        let method = method.into();
        let params = serde_json::to_value(params).map_err(|e| Error::Encode {
            key: method.clone(),
            message: e.to_string(),
        })?;
        Ok(Self { method, params })
    }
}

/// An update's queued calls as stored under [`Key::Outbox`], with how far delivery got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbox {
    /// The update that queued them.
    pub update_id: i64,
    /// The update's chat (0 for updates without one): deliveries keep each chat's order.
    pub chat: i64,
    /// When the update queued them (ms since the epoch, the Application's clock): a chat's
    /// stored outboxes are sent in this order, which is the order their updates committed
    /// (update ids are not: concurrent deliveries commit in any order).
    #[serde(default)]
    pub queued_at_ms: i64,
    /// Breaks ties of `queued_at_ms` (a Worker's clock moves only between I/O, so two updates
    /// can read the same millisecond): counts up in the isolate that queued it.
    #[serde(default)]
    pub seq: u64,
    /// The calls, in the order the handlers queued them.
    pub calls: Vec<Call>,
    /// How many calls are done with (sent, or failed for good).
    #[serde(default)]
    pub done: usize,
    /// Transient failures of `calls[done]` so far.
    #[serde(default)]
    pub attempts: u32,
    /// When the next try is due (ms since the epoch; 0: at once).
    #[serde(default)]
    pub next_try_ms: i64,
    /// When a host that found it stored claimed it to send it (0: never), so that two
    /// redeliveries do not both send it.
    #[serde(default)]
    pub claimed_at_ms: i64,
    /// The update's chat and user (as a message's), for the error handlers of a call that
    /// fails for good: they read and change that chat's and user's data. Not the whole
    /// update: it would make every outbox several times larger.
    #[serde(default)]
    pub update: Value,
}

impl Outbox {
    /// The outbox of `update` with `calls`, queued at `now_ms`.
    pub fn new(update: &Update, calls: Vec<Call>, now_ms: i64) -> Self {
        Self {
            update_id: update.update_id,
            chat: update.effective_chat().map_or(0, |chat| chat.id),
            queued_at_ms: now_ms,
            seq: NEXT_SEQ.with(|next| next.replace(next.get() + 1)),
            calls,
            done: 0,
            attempts: 0,
            next_try_ms: 0,
            claimed_at_ms: 0,
            update: stored_update(update),
        }
    }

    /// Where it is stored.
    pub fn key(&self) -> Key {
        Key::Outbox {
            chat: self.chat,
            update_id: self.update_id,
        }
    }

    /// The stored value (the codec's envelope, so that every backend stores it as any entry).
    pub fn encode(&self) -> Result<String> {
        let json = serde_json::to_string(self).map_err(|e| Error::Encode {
            key: self.key().encode(""),
            message: e.to_string(),
        })?;
        Ok(codec::encode(OUTBOX_VERSION, &json))
    }

    /// Reads an outbox stored under `key` in `backend`.
    pub fn decode(backend: &'static str, key: &Key, raw: &str) -> Result<Self> {
        codec::decode_as(backend, key, raw)
    }

    /// Whether a delivery may be sending it now ([`IN_FLIGHT_MS`]): the one of the update that
    /// queued it (no try failed yet, and it is younger than that), or one that claimed it
    /// less than that ago.
    pub fn in_flight(&self, now_ms: i64) -> bool {
        let first = self.attempts == 0 && self.done == 0;
        now_ms - self.claimed_at_ms < IN_FLIGHT_MS
            || (first && now_ms - self.queued_at_ms < IN_FLIGHT_MS)
    }

    /// The calls not done yet.
    pub fn remaining(&self) -> &[Call] {
        &self.calls[self.done.min(self.calls.len())..]
    }

    /// The update as the error handlers of a delivery get it: its id, chat and user.
    pub fn update(&self) -> Update {
        Update::from_value(self.update.clone()).unwrap_or_else(|_| Update {
            update_id: self.update_id,
            ..Update::default()
        })
    }
}

/// What the update keeps of itself in its outbox: what the error handlers' context reads (the
/// effective chat and user), as a message's.
fn stored_update(update: &Update) -> Value {
    let mut message = serde_json::Map::new();
    message.insert("message_id".into(), Value::from(0));
    message.insert("date".into(), Value::from(0));
    if let Some(chat) = update.effective_chat() {
        message.insert(
            "chat".into(),
            serde_json::to_value(chat).unwrap_or_default(),
        );
    }
    if let Some(user) = update.effective_user() {
        message.insert(
            "from".into(),
            serde_json::to_value(user).unwrap_or_default(),
        );
    }
    serde_json::json!({"update_id": update.update_id, "message": message})
}

/// A call that failed for good, for the error handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCall {
    /// The call.
    pub call: Call,
    /// Why (an [`Error::BotApi`], whose kind says what Telegram answered).
    pub error: Error,
}

/// What one delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Every call is done with (sent or failed for good) and the outbox deleted.
    Done {
        /// Calls Telegram accepted.
        sent: usize,
        /// Calls that failed for good.
        failed: Vec<FailedCall>,
    },
    /// A call failed transiently: it and the calls after it stay stored, with the time of the
    /// next try.
    Pending {
        /// Calls Telegram accepted in this delivery.
        sent: usize,
        /// Calls that failed for good in this delivery.
        failed: Vec<FailedCall>,
        /// When to try again (ms since the epoch).
        retry_at_ms: i64,
        /// The transient failure.
        error: Error,
    },
}

impl Delivery {
    /// The calls that failed for good.
    pub fn failed(&self) -> &[FailedCall] {
        match self {
            Delivery::Done { failed, .. } | Delivery::Pending { failed, .. } => failed,
        }
    }

    /// Calls Telegram accepted.
    pub fn sent(&self) -> usize {
        match self {
            Delivery::Done { sent, .. } | Delivery::Pending { sent, .. } => *sent,
        }
    }
}

/// How long to wait after the `attempts`-th transient failure (`kind` says whether Telegram
/// asked for a time): Telegram's `retry_after` when given, else 1 s doubling, at most
/// [`MAX_BACKOFF_MS`].
pub fn backoff_ms(attempts: u32, kind: Option<BotApiErrorKind>) -> i64 {
    if let Some(BotApiErrorKind::RetryAfter(seconds)) = kind {
        if seconds > 0 {
            return (i64::from(seconds) * 1000).min(MAX_BACKOFF_MS);
        }
    }
    let doubling = 1000i64.saturating_mul(1 << attempts.saturating_sub(1).min(20));
    doubling.min(MAX_BACKOFF_MS)
}

/// Whether a call's failure is worth another try.
fn is_transient(error: &Error) -> bool {
    error.bot_api_kind().is_some_and(|kind| kind.is_transient())
}

/// Sends `outbox`'s remaining calls in order through `api`, and stores the result in `store`:
/// the outbox deleted when every call is done with, or rewritten with its progress when a call
/// failed transiently (it and the calls after it wait for the next try: a chat's messages
/// never overtake each other). A call that failed transiently [`MAX_DELIVERY_ATTEMPTS`] times
/// counts as failed for good.
///
/// `Err` only when storing the result failed: the calls were made, and a later delivery of the
/// same stored outbox would make them again.
pub async fn deliver(
    api: &dyn BotApi,
    store: &dyn Persistence,
    outbox: &mut Outbox,
    now_ms: i64,
) -> Result<Delivery> {
    let (mut sent, mut failed) = (0, Vec::new());
    while let Some(call) = outbox.calls.get(outbox.done).cloned() {
        match api.call(&call.method, call.params.clone()).await {
            Ok(_) => sent += 1,
            Err(error) if is_transient(&error) && outbox.attempts + 1 < MAX_DELIVERY_ATTEMPTS => {
                outbox.attempts += 1;
                let retry_at_ms = now_ms + backoff_ms(outbox.attempts, error.bot_api_kind());
                outbox.next_try_ms = retry_at_ms;
                // The next delivery may be anyone's.
                outbox.claimed_at_ms = 0;
                store
                    .write(&[Change::Put(outbox.key(), outbox.encode()?)])
                    .await?;
                return Ok(Delivery::Pending {
                    sent,
                    failed,
                    retry_at_ms,
                    error,
                });
            }
            Err(error) => failed.push(FailedCall { call, error }),
        }
        outbox.done += 1;
        outbox.attempts = 0;
    }
    store.write(&[Change::Delete(outbox.key())]).await?;
    Ok(Delivery::Done { sent, failed })
}

/// The outboxes `store` holds, by chat, each chat's in the order to send them (the order they
/// were queued in). For a host's retries (a Durable Object alarm, the test kit).
pub async fn stored(store: &dyn Persistence) -> Result<Vec<Outbox>> {
    let keys = store.list(KeyKind::Outbox).await?;
    let values = store.read(&keys).await?;
    let mut outboxes = Vec::with_capacity(keys.len());
    for (key, value) in keys.iter().zip(values) {
        if let Some(raw) = value {
            outboxes.push(Outbox::decode(store.backend(), key, &raw)?);
        }
    }
    outboxes.sort_by_key(|o| (o.chat, o.queued_at_ms, o.seq, o.update_id));
    Ok(outboxes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_honours_retry_after_and_is_bounded() {
        assert_eq!(backoff_ms(1, None), 1000);
        assert_eq!(backoff_ms(2, Some(BotApiErrorKind::Server)), 2000);
        assert_eq!(backoff_ms(5, None), 16_000);
        assert_eq!(backoff_ms(30, None), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(1, Some(BotApiErrorKind::RetryAfter(7))), 7000);
        assert_eq!(
            backoff_ms(1, Some(BotApiErrorKind::RetryAfter(100_000))),
            MAX_BACKOFF_MS
        );
        // A 429 without a time is backed off like any transient failure.
        assert_eq!(backoff_ms(3, Some(BotApiErrorKind::RetryAfter(0))), 4000);
    }

    #[test]
    fn a_stored_outbox_round_trips_and_keeps_a_large_update_small() {
        let raw = serde_json::json!({
            "update_id": 9,
            "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                        "from": {"id": 5, "is_bot": false, "first_name": "A"},
                        "text": "x".repeat(20_000)}
        });
        let update = Update::from_value(raw).unwrap();
        let call = Call::new(
            "sendMessage",
            serde_json::json!({"chat_id": 5, "text": "hi"}),
        );
        let outbox = Outbox::new(&update, vec![call.unwrap()], 1);
        assert_eq!(
            outbox.key(),
            Key::Outbox {
                chat: 5,
                update_id: 9
            }
        );
        let stored = outbox.encode().unwrap();
        assert!(stored.len() < 1024, "{} bytes", stored.len());
        let back = Outbox::decode("memory", &outbox.key(), &stored).unwrap();
        assert_eq!(back, outbox);
        let update = back.update();
        assert_eq!(update.effective_chat().map(|c| c.id), Some(5));
        assert_eq!(update.effective_user().map(|u| u.id), Some(5));
    }
}
