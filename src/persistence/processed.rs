//! Processed-update records: how a Durable Object knows an update id it has already handled.
//!
//! `upd:<id>` holds the time the update was handled (ms since the epoch); it is written in the
//! same atomic write as the update's data. A record counts only while it is younger than the
//! window: Telegram keeps an undelivered update for at most 24 hours, and restarts update ids
//! at a random value after a week without updates, so an old record must never turn a new
//! update away as a duplicate.
//!
//! A time index, `updt:<ms, 13 digits>:<id>`, lists the records oldest first whatever their ids
//! (ids are not a clock), so that expiry walks only expired records: the object's alarm prunes
//! them (the Durable Object host), also in objects that no update reaches any more. Workers KV
//! keeps the same `upd:<id>` records with an expiration instead.

/// How long a processed update id is remembered by default: Telegram keeps an update at most
/// 24 hours (`PROCESSED_UPDATE_TTL_SECONDS` changes it).
pub const DEFAULT_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// One update being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The update's id.
    pub update_id: i64,
    /// When it was handled, ms since the epoch.
    pub at_ms: i64,
    /// How long it counts, in ms.
    pub window_ms: i64,
}

impl Record {
    /// Whether a record stored with time `stored` (the value of `upd:<id>`) still makes this
    /// update a duplicate.
    pub fn finds_duplicate(&self, stored: Option<String>) -> bool {
        stored
            .and_then(|at| at.parse::<i64>().ok())
            .is_some_and(|at| self.at_ms - at <= self.window_ms)
    }
}

/// The update a store is recording as processed, between `begin_update` and the write that
/// carries its record: the one state Durable Objects, KV and D1 keep for it.
#[derive(Debug, Default)]
pub struct Pending {
    record: std::cell::Cell<Option<Record>>,
    /// Whether the next read still has to look for the record.
    check: std::cell::Cell<bool>,
    written: std::cell::Cell<bool>,
}

impl Pending {
    /// Starts recording `update_id`, handled at `now_ms`, counting for `window_ms`.
    pub fn begin(&self, update_id: i64, now_ms: i64, window_ms: i64) {
        self.record.set(Some(Record {
            update_id,
            at_ms: now_ms,
            window_ms,
        }));
        self.check.set(true);
        self.written.set(false);
    }

    /// The update being recorded, if one was begun.
    pub fn record(&self) -> Option<Record> {
        self.record.get()
    }

    /// Whether the next read has to look for the record.
    pub fn check_pending(&self) -> bool {
        self.check.get()
    }

    /// The record the next read must look for, once.
    pub fn take_check(&self) -> Option<Record> {
        if self.check.replace(false) {
            self.record.get()
        } else {
            None
        }
    }

    /// The record, if no write has carried it yet.
    pub fn unwritten(&self) -> Option<Record> {
        self.record.get().filter(|_| !self.written.get())
    }

    /// Whether a write has carried the record.
    pub fn written(&self) -> bool {
        self.written.get()
    }

    /// Notes that a write carried the record.
    pub fn mark_written(&self) {
        self.written.set(true);
    }
}

/// The key of an update id's record.
pub fn record_key(prefix: &str, update_id: i64) -> String {
    format!("{prefix}upd:{update_id}")
}

/// The prefix of the time index.
pub fn index_prefix(prefix: &str) -> String {
    format!("{prefix}updt:")
}

/// The time index key of a record; zero-padded so that keys sort by time.
pub fn index_key(prefix: &str, at_ms: i64, update_id: i64) -> String {
    format!("{}{:013}:{update_id}", index_prefix(prefix), at_ms.max(0))
}

/// The time and update id of a time index key (without its prefix).
pub fn parse_index(rest: &str) -> Option<(i64, i64)> {
    let (at, id) = rest.split_once(':')?;
    Some((at.parse().ok()?, id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_counts_only_within_its_window() {
        let record = Record {
            update_id: 5,
            at_ms: 100_000,
            window_ms: 10_000,
        };
        assert!(record.finds_duplicate(Some("95000".into())));
        assert!(record.finds_duplicate(Some("90000".into())));
        assert!(!record.finds_duplicate(Some("89999".into())), "expired");
        assert!(!record.finds_duplicate(None));
        assert!(!record.finds_duplicate(Some("garbage".into())));
    }

    #[test]
    fn index_keys_sort_by_time_whatever_the_ids() {
        let late_small_id = index_key("eg1:", 2_000, 7);
        let early_big_id = index_key("eg1:", 1_000, 900_000_000);
        assert!(early_big_id < late_small_id);
        let rest = late_small_id.strip_prefix(&index_prefix("eg1:")).unwrap();
        assert_eq!(parse_index(rest), Some((2_000, 7)));
    }
}
