//! Jobs: python-telegram-bot's `JobQueue`, kept in persistence so that a job outlives the
//! isolate that scheduled it, and run by the host's timer (a Durable Object's alarm).
//!
//! ```text
//! .job("remind", remind)                                  // the callback, by name
//! ctx.job_queue().schedule(JobSpec::once("remind", When::after_secs(30)).chat_id(chat))?;
//! ```
//!
//! - **Scheduled with the update.** [`JobQueue::schedule`] (from a handler) adds the job to the
//!   update's one write: a handler that fails under [`OnHandlerError::Retry`], or an update
//!   whose write fails, schedules nothing. From outside a handler:
//!   [`Application::schedule_job`](crate::Application::schedule_job).
//! - **Stored in two keys.** The job ([`Key::Job`]) and its entry in the job index
//!   ([`Key::JobDue`], at the time of its next run). A host asks for the due ones with
//!   [`Persistence::jobs_due`], one ranged listing on a Durable Object, so a run costs the same
//!   storage work with a thousand jobs pending as with one.
//! - **Run as an update is.** [`Application::run_job`](crate::Application::run_job) loads
//!   bot_data and the job's chat's and user's data in one read, runs the callback with a
//!   [`Context`](crate::Context) whose [`job`](crate::Context::job) is the job, and writes its
//!   changes, the Bot API calls it queued ([`crate::outbox`]) and the job's next run in one
//!   write: the data and the next run commit together, and the calls are sent after that.
//! - **Missed runs** (the object was not running, or a run failed for a while) are coalesced:
//!   the late run happens once, and the next is the first time after it
//!   ([`Schedule::following`], APScheduler's `coalesce`, PTB's default).
//! - **Failures.** A callback that fails writes nothing and is tried again after 1 s, 2 s,
//!   4 s …; after [`MAX_JOB_ATTEMPTS`] failed tries the run is given up: the error handlers run
//!   (what they and the callback changed is written, as for an update under
//!   [`OnHandlerError::Acknowledge`]), the run is recorded as a dead letter by the host, and
//!   the job goes on with its next run (a one-off job ends).
//! - **Where they run.** Jobs need a timer that outlives a request: a Durable Object's alarm
//!   ([`Persistence::runs_jobs`]). On KV and D1 [`JobQueue::schedule`] is refused with an
//!   error that says so.
//!
//! [`OnHandlerError::Retry`]: crate::OnHandlerError::Retry
//! [`OnHandlerError::Acknowledge`]: crate::OnHandlerError::Acknowledge
//! [`Persistence::jobs_due`]: crate::persistence::Persistence::jobs_due
//! [`Persistence::runs_jobs`]: crate::persistence::Persistence::runs_jobs

mod queue;
mod run;
mod schedule;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::persistence::{codec, Key};
use crate::types::Update;

pub use queue::JobQueue;
pub use run::{is_job_of, JobRun, JobsRun};
pub use schedule::{Days, Schedule, DAY_MS, LATEST_RUN_MS};

/// Tries of one run before it is given up (its error goes to the error handlers and the run to
/// the dead letters).
pub const MAX_JOB_ATTEMPTS: u32 = 5;

/// Due jobs one call of [`Application::run_due_jobs`](crate::Application::run_due_jobs) runs
/// at most; a host asks again when more are due.
pub const JOBS_PER_RUN: usize = 64;

/// The ids of job runs, as [`Update::update_id`] of their stand-in update and their outbox's
/// key, start here: far above any update id Telegram gives.
pub const JOB_RUN_IDS: i64 = 1 << 62;

/// When a job first runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// This long from now.
    After(Duration),
    /// At this time (ms since the epoch); a time already past means at once.
    At(i64),
}

impl When {
    /// `secs` seconds from now.
    pub fn after_secs(secs: u64) -> Self {
        When::After(Duration::from_secs(secs))
    }

    fn resolve(self, now_ms: i64) -> i64 {
        match self {
            When::After(delay) => {
                now_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
            }
            When::At(at) => at,
        }
    }
}

/// A job to schedule: its callback (registered with
/// [`ApplicationBuilder::job`](crate::ApplicationBuilder::job)), when it runs, and what its
/// run's context carries. PTB's `run_once` / `run_repeating` / `run_daily` / `run_monthly`
/// arguments, as a builder.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    callback: String,
    name: Option<String>,
    first: When,
    schedule: Schedule,
    last: Option<When>,
    chat_id: Option<i64>,
    user_id: Option<i64>,
    data: Value,
    enabled: bool,
}

impl JobSpec {
    fn new(callback: &str, first: When, schedule: Schedule) -> Self {
        Self {
            callback: callback.to_string(),
            name: None,
            first,
            schedule,
            last: None,
            chat_id: None,
            user_id: None,
            data: Value::Null,
            enabled: true,
        }
    }

    /// Runs `callback` once, `when` says when (PTB's `run_once`).
    pub fn once(callback: &str, when: When) -> Self {
        Self::new(callback, when, Schedule::Once)
    }

    /// Runs `callback` every `interval`, first at `first` (PTB's `run_repeating`; PTB's
    /// default first run is one interval from now: pass `When::After(interval)`).
    pub fn repeating(callback: &str, interval: Duration, first: When) -> Self {
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        let schedule = Schedule::Repeating {
            interval_ms,
            last_ms: None,
        };
        Self::new(callback, first, schedule)
    }

    /// Runs `callback` on `days` at `time` after midnight UTC (PTB's `run_daily`; for another
    /// offset, [`utc_offset_minutes`](Self::utc_offset_minutes)).
    pub fn daily(callback: &str, time: Duration, days: Days) -> Self {
        let schedule = Schedule::Daily {
            time_ms: i64::try_from(time.as_millis()).unwrap_or(i64::MAX),
            days,
            utc_offset_minutes: 0,
        };
        Self::new(callback, When::At(0), schedule)
    }

    /// Runs `callback` every month on `day` (1–31, -1 for the last day) at `time` after
    /// midnight UTC (PTB's `run_monthly`; months without that day are skipped).
    pub fn monthly(callback: &str, time: Duration, day: i8) -> Self {
        let schedule = Schedule::Monthly {
            time_ms: i64::try_from(time.as_millis()).unwrap_or(i64::MAX),
            day,
            utc_offset_minutes: 0,
        };
        Self::new(callback, When::At(0), schedule)
    }

    /// The job's name (PTB's `name`; by default the callback's), for
    /// [`JobQueue::get_jobs_by_name`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The chat whose chat_data the run's context carries, and where its replies go.
    pub fn chat_id(mut self, chat_id: i64) -> Self {
        self.chat_id = Some(chat_id);
        self
    }

    /// The user whose user_data the run's context carries.
    pub fn user_id(mut self, user_id: i64) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// Data the callback reads in [`Job::data`] (PTB's `data`).
    pub fn data(mut self, data: impl Serialize) -> Result<Self> {
        self.data = serde_json::to_value(data).map_err(|e| Error::Encode {
            key: format!("job data of {}", self.callback),
            message: e.to_string(),
        })?;
        Ok(self)
    }

    /// No run after `last` (repeating jobs; PTB's `last`).
    pub fn last(mut self, last: When) -> Self {
        self.last = Some(last);
        self
    }

    /// The callback's name.
    pub fn callback(&self) -> &str {
        &self.callback
    }

    /// The daily or monthly time is in this offset from UTC, in minutes (UTC+2: 120).
    pub fn utc_offset_minutes(mut self, minutes: i32) -> Self {
        match &mut self.schedule {
            Schedule::Daily {
                utc_offset_minutes, ..
            }
            | Schedule::Monthly {
                utc_offset_minutes, ..
            } => *utc_offset_minutes = minutes,
            _ => {}
        }
        self
    }

    /// Whether it runs when due (PTB's `job.enabled`); a disabled job keeps its schedule and
    /// skips its runs.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// The job this spec makes, with `id`, at `now_ms`; `Err` names what is wrong with it.
    pub(crate) fn into_job(mut self, id: String, now_ms: i64) -> Result<Job> {
        if let (Schedule::Repeating { last_ms, .. }, Some(last)) = (&mut self.schedule, self.last) {
            *last_ms = Some(last.resolve(now_ms));
        }
        let invalid = |why: String| Error::Invalid(format!("job {}: {why}", self.callback));
        self.schedule.check().map_err(invalid)?;
        // A time already past runs at once; the index cannot hold one before 1970.
        let first = match self.schedule {
            Schedule::Once | Schedule::Repeating { .. } => self.first.resolve(now_ms).max(0),
            _ => self
                .schedule
                .next_after(now_ms)
                .ok_or_else(|| invalid("its schedule never runs".into()))?,
        };
        if first > LATEST_RUN_MS {
            return Err(invalid(format!(
                "its first run ({first}) is after the latest time a job can run ({LATEST_RUN_MS})"
            )));
        }
        if let Schedule::Repeating {
            last_ms: Some(last),
            ..
        } = self.schedule
        {
            if last < first {
                return Err(invalid(format!(
                    "its last run ({last}) is before its first ({first})"
                )));
            }
        }
        Ok(Job {
            id,
            name: self.name.unwrap_or_else(|| self.callback.clone()),
            callback: self.callback,
            schedule: self.schedule,
            due_ms: first,
            next_run_ms: first,
            chat_id: self.chat_id,
            user_id: self.user_id,
            data: self.data,
            enabled: self.enabled,
            failures: 0,
        })
    }
}

/// A scheduled job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its id (16 hex digits).
    pub id: String,
    /// Its name (the callback's unless given).
    pub name: String,
    /// The callback that runs it, by the name it was registered with.
    pub callback: String,
    /// When it runs after its next run.
    pub schedule: Schedule,
    /// When its next run is due (ms since the epoch); a failed run's next try is later
    /// ([`next_run_ms`](Self::next_run_ms)), its schedule goes on from this.
    pub due_ms: i64,
    /// When it is tried next.
    pub next_run_ms: i64,
    /// The chat of its context, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<i64>,
    /// The user of its context, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// The data it was scheduled with.
    #[serde(default)]
    pub data: Value,
    /// Whether it runs when due.
    pub enabled: bool,
    /// Failed tries of the run that is due.
    #[serde(default)]
    pub failures: u32,
}

impl Job {
    /// Where it is stored.
    pub fn key(&self) -> Key {
        Key::Job {
            chat: self.chat_id.unwrap_or(0),
            id: self.id.clone(),
        }
    }

    /// Its entry in the job index.
    pub fn index_key(&self) -> Key {
        Key::JobDue {
            at_ms: self.next_run_ms,
            chat: self.chat_id.unwrap_or(0),
            id: self.id.clone(),
        }
    }

    /// The stored value.
    pub(crate) fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Reads a job stored under `key` in `backend`.
    pub(crate) fn decode(backend: &'static str, key: &Key, raw: &str) -> Result<Self> {
        codec::decode_as(backend, key, raw)
    }

    /// Its data as `T`.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.data.clone()).map_err(|e| Error::Decode {
            backend: "job",
            key: self.key().encode(""),
            message: e.to_string(),
        })
    }

    /// The id of its run due at [`due_ms`](Self::due_ms): the update id of the run's stand-in
    /// update and of its outbox, at or above [`JOB_RUN_IDS`], the same for every try of that
    /// run (FNV-1a of the job's id and the time).
    pub fn run_id(&self) -> i64 {
        run_id(&self.id, self.due_ms)
    }

    /// The update a run's context carries: its id is the run's, and it holds a message in
    /// the job's chat from the job's user (a message with id 0), so that
    /// `ctx.effective_chat()`, `ctx.chat_data`, `ctx.user_data` and `ctx.reply_text` work as
    /// in a handler. Without a chat, the user appears as an inline query's sender; without
    /// either, the update is empty.
    pub fn stand_in_update(&self) -> Update {
        let user = self
            .user_id
            .map(|id| serde_json::json!({"id": id, "is_bot": false, "first_name": ""}));
        let mut update = serde_json::json!({"update_id": self.run_id()});
        if let Some(chat) = self.chat_id {
            let mut message = serde_json::json!({
                "message_id": 0,
                "date": self.due_ms.div_euclid(1000),
                "chat": {"id": chat, "type": chat_type(chat)},
            });
            if let Some(user) = user {
                message["from"] = user;
            }
            update["message"] = message;
        } else if let Some(user) = user {
            update["inline_query"] =
                serde_json::json!({"id": "0", "from": user, "query": "", "offset": ""});
        }
        Update::from_value(update).unwrap_or_else(|_| Update {
            update_id: self.run_id(),
            ..Update::default()
        })
    }
}

/// The id of a run without an update (a job's, a conversation's timeout) of `what` at `at_ms`:
/// at or above [`JOB_RUN_IDS`], FNV-1a of both, the same for every try of that run.
pub(crate) fn run_id(what: &str, at_ms: i64) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in what.bytes().chain(at_ms.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    JOB_RUN_IDS | (hash & ((1 << 61) - 1)) as i64
}

/// A chat's type as its id tells it (Telegram's id ranges): users' private chats are
/// positive, supergroups and channels start at -10^12, basic groups are the other negatives.
fn chat_type(chat: i64) -> &'static str {
    match chat {
        id if id > 0 => "private",
        id if id <= -1_000_000_000_000 => "supergroup",
        _ => "group",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(chat: Option<i64>, user: Option<i64>) -> Job {
        let spec = JobSpec::once("remind", When::At(5_000));
        let spec = match chat {
            Some(chat) => spec.chat_id(chat),
            None => spec,
        };
        let spec = match user {
            Some(user) => spec.user_id(user),
            None => spec,
        };
        spec.into_job("00000000000000ab".into(), 0).unwrap()
    }

    #[test]
    fn a_runs_stand_in_update_carries_its_chat_and_user() {
        let update = job(Some(-1001), Some(7)).stand_in_update();
        assert!(update.update_id >= JOB_RUN_IDS);
        assert_eq!(update.effective_chat().map(|c| c.id), Some(-1001));
        assert_eq!(update.effective_user().map(|u| u.id), Some(7));
        let user_only = job(None, Some(7)).stand_in_update();
        assert_eq!(user_only.effective_chat(), None);
        assert_eq!(user_only.effective_user().map(|u| u.id), Some(7));
        assert_eq!(job(None, None).stand_in_update().effective_user(), None);
    }

    #[test]
    fn a_runs_id_differs_per_run_and_per_job() {
        let a = job(Some(1), None);
        let mut later = a.clone();
        later.due_ms += 60_000;
        let mut other = a.clone();
        other.id = "00000000000000ac".into();
        assert_ne!(a.run_id(), later.run_id());
        assert_ne!(a.run_id(), other.run_id());
        assert_eq!(a.run_id(), a.clone().run_id());
    }

    #[test]
    fn a_spec_that_never_runs_or_ends_before_it_starts_is_refused() {
        let backwards = JobSpec::repeating("tick", Duration::from_secs(60), When::At(10_000))
            .last(When::At(5_000))
            .into_job("a".into(), 0);
        assert!(matches!(backwards, Err(Error::Invalid(why)) if why.contains("before its first")));
        let zero = JobSpec::repeating("tick", Duration::ZERO, When::At(0)).into_job("a".into(), 0);
        assert!(matches!(zero, Err(Error::Invalid(why)) if why.contains("positive")));
        let far = JobSpec::once("tick", When::At(i64::MAX)).into_job("a".into(), 0);
        assert!(matches!(far, Err(Error::Invalid(why)) if why.contains("latest time")));
        let past = JobSpec::once("tick", When::At(-5))
            .into_job("a".into(), 0)
            .unwrap();
        assert_eq!(past.next_run_ms, 0);
        let index = past.index_key();
        assert_eq!(
            Key::parse(&index.encode(""), ""),
            Some(index),
            "its index entry reads back"
        );
    }
}
