//! Sweeping timed-out conversations without an update: [`expire_due`] for a Durable Object
//! alarm, [`deadline`] to set the alarm.

use serde_json::Value;

use crate::error::Result;
use crate::persistence::dict::ConversationEntry;
use crate::persistence::{codec, Change, Key, KeyKind, Persistence};

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
