//! Conversations at their deadline, without an update:
//! [`Application::expire_conversation`] runs one's TIMEOUT handlers and ends it (a Durable
//! Object's alarm calls it for each due entry of its deadline index),
//! [`Application::expire_conversations`] does it for every due one (a process, the test kit);
//! [`expire_due`] only deletes the due entries; [`deadline`] sets the alarm.

use std::rc::Rc;

use serde_json::Value;

use crate::application::Application;
use crate::context::{Context, DataType};
use crate::error::{Error, Result};
use crate::jobs;
use crate::outbox::Outbox;
use crate::persistence::dict::ConversationEntry;
use crate::persistence::{codec, Change, Key, KeyKind, Persistence};
use crate::types::Update;

/// When a stored conversation entry times out (milliseconds since the Unix epoch), if it was
/// stored with a deadline. `stored` is the entry's data (what [`Context::entry`](crate::Context::entry) or a
/// decoded [`codec`] envelope holds). A Durable Object host uses it to set its alarm.
pub fn deadline(stored: &Value) -> Option<i64> {
    ConversationEntry::from_stored(stored).expires_at_ms
}

/// What [`expire_due`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expired {
    /// The conversation entries deleted because their deadline had passed.
    pub removed: Vec<Key>,
    /// The earliest deadline still ahead, for the next alarm.
    pub next_deadline: Option<i64>,
}

/// Deletes every stored conversation entry whose deadline is at or before `now_ms`, in one
/// write, and reports the next deadline. For a Durable Object alarm (or any periodic sweep),
/// so that timed-out conversations disappear from storage and export without waiting for
/// another update.
///
/// TIMEOUT handlers do not run here: they need an update to match and answer, and an alarm
/// has none. Conversations swept this way simply end, as if their TIMEOUT handlers matched
/// nothing. Entries that cannot be decoded are left alone (the update that loads one reports
/// it). Lists every conversation key: meant for a store where listing is cheap (a Durable
/// Object), not for KV.
pub async fn expire_due(persistence: &dyn Persistence, now_ms: i64) -> Result<Expired> {
    let keys = persistence.list(KeyKind::Conversation).await?;
    let values = persistence.read(&keys).await?;
    let mut expired = Expired::default();
    for (key, raw) in keys.into_iter().zip(values) {
        let Some(deadline) = raw
            .and_then(|raw| codec::decode(&raw).ok())
            .and_then(|stored| deadline(&stored.data))
        else {
            continue;
        };
        if deadline <= now_ms {
            expired.removed.push(key);
        } else if expired.next_deadline.is_none_or(|next| deadline < next) {
            expired.next_deadline = Some(deadline);
        }
    }
    if !expired.removed.is_empty() {
        let changes: Vec<Change> = expired
            .removed
            .iter()
            .cloned()
            .map(Change::Delete)
            .collect();
        persistence.write(&changes).await?;
        persistence.flush().await?;
    }
    Ok(expired)
}

impl<B: DataType, C: DataType, U: DataType> Application<B, C, U> {
    /// The conversation entry `key` at its deadline, with no update (a Durable Object's
    /// alarm walking its deadline index): if it is still past its deadline, the conversation's
    /// TIMEOUT handlers run with the update that last moved it (PTB's timeout job), it ends,
    /// and what they changed and queued is written in one write, like an update's. A
    /// conversation without TIMEOUT handlers (or stored before they kept the update) just
    /// ends. Answers whether it ended, and the outbox of the calls to deliver.
    ///
    /// The handlers' errors go to the error handlers, and the conversation ends all the same.
    /// `Err` when storage failed (nothing was written) or the entry cannot be decoded.
    pub async fn expire_conversation(&self, key: &Key) -> Result<(bool, Option<Outbox>)> {
        let persistence = self.persistence.as_ref();
        let Some(raw) = persistence
            .read(std::slice::from_ref(key))
            .await?
            .into_iter()
            .next()
            .flatten()
        else {
            return Ok((false, None));
        };
        let stored = codec::decode(&raw).map_err(|message| Error::Decode {
            backend: persistence.backend(),
            key: key.encode(""),
            message,
        })?;
        let entry = ConversationEntry::from_stored(&stored.data);
        let now = (self.clock)();
        let Some(deadline) = entry.expires_at_ms.filter(|at| *at <= now) else {
            return Ok((false, None));
        };
        let last = entry
            .last_update
            .and_then(|raw| Update::from_value(raw).ok());
        let Some(mut update) = last else {
            persistence.write(&[Change::Delete(key.clone())]).await?;
            persistence.flush().await?;
            return Ok((true, None));
        };
        // Its own id, as a job run's: the timeout's outbox is not the last update's.
        update.update_id = jobs::run_id(&key.encode(""), deadline);
        let mut keys = self.handler_keys(&update);
        keys.push(key.clone());
        let state = self.load_state(update, keys).await?;
        let ctx = Context::new(state.clone());
        let owner = self.handlers().find_map(|h| h.expire(key, ctx.clone()));
        match owner {
            Some(timed_out) => {
                if let Err(error) = timed_out.await {
                    let error = Rc::new(error);
                    for error_handler in &self.error_handlers {
                        error_handler(ctx.clone(), error.clone()).await;
                    }
                }
            }
            // No handler owns it any more (a conversation removed from the bot): it ends.
            None => state.delete_entry(key.clone()),
        }
        let ended = state.touched(key) == Some(None);
        let outbox = self.write_state(&state, now).await?;
        Ok((ended, outbox))
    }

    /// Runs [`expire_conversation`](Self::expire_conversation) for every stored
    /// conversation past its deadline and delivers what their TIMEOUT handlers queued: for a
    /// process that keeps its Application, and the test kit (it lists every conversation; a
    /// Durable Object walks its deadline index instead). Answers how many ended.
    pub async fn expire_conversations(&self) -> Result<usize> {
        let now = (self.clock)();
        let keys = self.persistence.list(KeyKind::Conversation).await?;
        let values = self.persistence.read(&keys).await?;
        let mut ended = 0;
        for (key, raw) in keys.iter().zip(values) {
            let due = raw
                .and_then(|raw| codec::decode(&raw).ok())
                .and_then(|stored| deadline(&stored.data))
                .is_some_and(|at| at <= now);
            if !due {
                continue;
            }
            let (done, outbox) = self.expire_conversation(key).await?;
            ended += usize::from(done);
            if let Some(outbox) = outbox {
                self.deliver(outbox, self.persistence.as_ref()).await?;
            }
        }
        Ok(ended)
    }
}
