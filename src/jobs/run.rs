//! Running due jobs: [`Application::run_job`] (one run, one write) and
//! [`Application::run_due_jobs`] (the due ones, with their calls sent), and scheduling from
//! outside a handler ([`Application::schedule_job`]).

use std::rc::Rc;

use serde_json::Value;

use super::{Job, JobQueue, JobSpec, JOBS_PER_RUN, MAX_JOB_ATTEMPTS};
use crate::application::Application;
use crate::attempts::{DeadLetter, Recurrence};
use crate::context::{Context, DataType};
use crate::error::{Error, HandlerError, Result};
use crate::outbox::{backoff_ms, Delivery, Outbox};
use crate::persistence::{Change, Key};
use crate::update_state::UpdateState;

/// What one [`Application::run_job`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum JobRun {
    /// The callback ran; its changes, its queued calls (`outbox`, to send) and the job's next
    /// run (`None`: the job ended) are written.
    Ran {
        /// The job as it ran.
        job: Job,
        /// The calls it queued, stored, to deliver.
        outbox: Option<Outbox>,
        /// When it runs next, if it does.
        next_run_ms: Option<i64>,
    },
    /// The job is disabled: the run was skipped and the next one scheduled.
    Skipped {
        /// The job.
        job: Job,
    },
    /// The callback failed; nothing of it was written, the run is tried again at `retry_at_ms`.
    Retrying {
        /// The job as it ran.
        job: Job,
        /// When it is tried again.
        retry_at_ms: i64,
        /// The failure.
        error: String,
    },
    /// The callback failed [`MAX_JOB_ATTEMPTS`] times (or has no callback any more): the error
    /// handlers ran, what changed is written with the job's next run, and `letter` is for the
    /// host's dead-letter list.
    GaveUp {
        /// The run, as a dead letter (its `update` holds the job).
        letter: DeadLetter,
        /// The calls the callback and the error handlers queued, stored, to deliver.
        outbox: Option<Outbox>,
        /// When it runs next, if it does.
        next_run_ms: Option<i64>,
    },
    /// The index entry named no job due then (removed or moved meanwhile): it was deleted.
    Stale,
}

impl JobRun {
    /// The calls the run queued, stored, to deliver.
    pub fn outbox(&self) -> Option<&Outbox> {
        match self {
            JobRun::Ran { outbox, .. } | JobRun::GaveUp { outbox, .. } => outbox.as_ref(),
            _ => None,
        }
    }
}

/// What one [`Application::run_due_jobs`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobsRun {
    /// The runs, in the order they were due.
    pub runs: Vec<JobRun>,
    /// What became of the runs' queued calls.
    pub deliveries: Vec<Delivery>,
    /// When the next job is due, for the host's timer (now, if more were due than one call
    /// runs).
    pub next_due_ms: Option<i64>,
}

impl<B: DataType, C: DataType, U: DataType> Application<B, C, U> {
    /// Schedules `spec` from outside a handler (an admin route, a process's start): written
    /// at once, in one write. The same checks as [`JobQueue::schedule`].
    pub async fn schedule_job(&self, spec: JobSpec) -> Result<Job> {
        let state = self.empty_state().await?;
        let job = JobQueue { state: &state }.schedule(spec)?;
        self.persistence.write(&state.changes()?).await?;
        self.persistence.flush().await?;
        Ok(job)
    }

    /// The jobs stored, by next run ([`JobQueue::jobs`]).
    pub async fn jobs(&self) -> Result<Vec<Job>> {
        let state = self.empty_state().await?;
        JobQueue { state: &state }.jobs().await
    }

    /// Runs the jobs due now, at most [`JOBS_PER_RUN`], each with [`run_job`](Self::run_job),
    /// and delivers the calls they queued over the Application's persistence: for a process
    /// that keeps its Application (and the test kit). A Durable Object host runs
    /// [`run_job`](Self::run_job) under its gate and sends outside it.
    pub async fn run_due_jobs(&self) -> Result<JobsRun> {
        let now = (self.clock)();
        let due = self.persistence.jobs_due(now, JOBS_PER_RUN).await?;
        let mut run = JobsRun::default();
        for index in &due {
            let ran = match self.run_job(index).await {
                Ok(ran) => ran,
                // A job that cannot be read is left for a person to look at; the others run.
                Err(Error::Decode { key, .. }) if is_job_of(index, &key) => continue,
                Err(e) => return Err(e),
            };
            if let Some(outbox) = ran.outbox() {
                let delivery = self
                    .deliver(outbox.clone(), self.persistence.as_ref())
                    .await?;
                run.deliveries.push(delivery);
            }
            run.runs.push(ran);
        }
        run.next_due_ms = if due.len() == JOBS_PER_RUN {
            Some(now)
        } else {
            self.next_job_due().await?
        };
        Ok(run)
    }

    /// When the next stored job is due (one listing of one index entry).
    pub async fn next_job_due(&self) -> Result<Option<i64>> {
        let first = self.persistence.jobs_due(i64::MAX, 1).await?;
        Ok(first.first().and_then(|key| match key {
            Key::JobDue { at_ms, .. } => Some(*at_ms),
            _ => None,
        }))
    }

    /// Runs the job of the index entry `index` ([`Key::JobDue`], from
    /// [`Persistence::jobs_due`](crate::persistence::Persistence::jobs_due)): reads it, loads
    /// bot_data and its chat's and user's data in one read, runs its callback and writes the
    /// changes, the queued calls and its next run in one write (see the [module
    /// docs](crate::jobs)). The calls are not sent: deliver [`JobRun::outbox`].
    ///
    /// `Err` when storage failed (nothing was written: the run is due again) or the job
    /// cannot be decoded (it is left as it is).
    pub async fn run_job(&self, index: &Key) -> Result<JobRun> {
        let Key::JobDue { at_ms, chat, id } = index else {
            return Err(Error::Invalid(format!("{index} is not a job index entry")));
        };
        let key = Key::Job {
            chat: *chat,
            id: id.clone(),
        };
        let persistence = self.persistence.as_ref();
        let stored = persistence.read(std::slice::from_ref(&key)).await?;
        let job = match stored.into_iter().next().flatten() {
            Some(raw) => Some(Job::decode(persistence.backend(), &key, &raw)?),
            None => None,
        };
        let Some(job) = job.filter(|job| job.next_run_ms == *at_ms) else {
            persistence.write(&[Change::Delete(index.clone())]).await?;
            return Ok(JobRun::Stale);
        };
        let now = (self.clock)();
        let state = self.load_state(job.stand_in_update(), Vec::new()).await?;
        state.set_job(job.clone());
        let ctx = Context::new(state.clone());
        if !job.enabled {
            continue_after(&state, &job, now);
            self.persistence.write(&state.changes()?).await?;
            self.persistence.flush().await?;
            return Ok(JobRun::Skipped { job });
        }
        let result: std::result::Result<(), HandlerError> = match self.jobs.get(&job.callback) {
            Some(callback) => callback(ctx.clone()).await,
            None => Err(Box::new(Error::Config(format!(
                "no job callback named {} (ApplicationBuilder::job): the job is given up",
                job.callback
            )))),
        };
        let missing_callback = !self.jobs.contains_key(&job.callback);
        let error = match result {
            Ok(()) => {
                let next_run_ms = continue_after(&state, &job, now);
                match self.write_state(&state, now).await {
                    Ok(outbox) => {
                        return Ok(JobRun::Ran {
                            job,
                            outbox,
                            next_run_ms,
                        })
                    }
                    // What the run changed can never be written (too large, not encodable):
                    // a failure of the run, counted like the callback's own.
                    Err(e) if never_writable(&e) => Rc::new(Box::new(e) as HandlerError),
                    Err(e) => return Err(e),
                }
            }
            Err(error) => Rc::new(error),
        };
        if job.failures + 1 < MAX_JOB_ATTEMPTS && !missing_callback {
            // Nothing of the failed try is kept but the try itself.
            let failures = job.failures + 1;
            let kind = error.downcast_ref::<Error>().and_then(Error::bot_api_kind);
            let retry = Job {
                failures,
                next_run_ms: now + backoff_ms(failures, kind),
                ..job.clone()
            };
            let write = [
                Change::Delete(job.index_key()),
                Change::Put(retry.key(), encoded(&retry, self.schema_version)),
                Change::Put(retry.index_key(), encoded_null(self.schema_version)),
            ];
            self.persistence.write(&write).await?;
            self.persistence.flush().await?;
            return Ok(JobRun::Retrying {
                retry_at_ms: retry.next_run_ms,
                error: error.to_string(),
                job,
            });
        }
        for error_handler in &self.error_handlers {
            error_handler(ctx.clone(), error.clone()).await;
        }
        let recurrence = match error.downcast_ref::<Error>() {
            Some(inner) => Recurrence::of(inner),
            None => Recurrence::Deterministic,
        };
        let letter = DeadLetter {
            update_id: job.run_id(),
            at_ms: now,
            attempts: job.failures + 1,
            recurrence,
            error: error.to_string(),
            update: serde_json::json!({ "job": job.to_value() }),
        };
        if missing_callback {
            // Renamed or removed in a deploy: nothing will ever run it; the job ends.
            state.delete_entry(job.key());
            state.delete_entry(job.index_key());
        }
        let next_run_ms = (!missing_callback)
            .then(|| continue_after(&state, &job, now))
            .flatten();
        let outbox = match self.write_state(&state, now).await {
            Ok(outbox) => outbox,
            Err(e) if never_writable(&e) => {
                // The run's changes cannot be written: the job goes on without them.
                let (changes, _) = continuation(&job, now, self.schema_version);
                self.persistence.write(&changes).await?;
                self.persistence.flush().await?;
                None
            }
            Err(e) => return Err(e),
        };
        Ok(JobRun::GaveUp {
            letter,
            outbox,
            next_run_ms,
        })
    }

    /// A state with nothing loaded but bot_data, for scheduling and listing from outside a
    /// handler.
    async fn empty_state(&self) -> Result<Rc<UpdateState<B, C, U>>> {
        self.load_state(crate::types::Update::default(), Vec::new())
            .await
    }
}

/// Puts `job`'s continuation after the run due at its `due_ms` into `state`: its next run
/// (the first after both that time and `now`, so missed runs are coalesced), or its removal
/// when it has none. What the run did to the job itself comes first: removed
/// ([`JobQueue::schedule_removal`]) it stays removed; changed (disabled) the change is kept.
/// Answers the next run.
fn continue_after<B: DataType, C: DataType, U: DataType>(
    state: &UpdateState<B, C, U>,
    job: &Job,
    now: i64,
) -> Option<i64> {
    let current = match state.touched(&job.key()) {
        Some(None) => return None,
        Some(Some(value)) => serde_json::from_value::<Job>(value).unwrap_or_else(|_| job.clone()),
        None => job.clone(),
    };
    state.delete_entry(job.index_key());
    match current.schedule.following(current.due_ms, now) {
        Some(next) => {
            let next_job = Job {
                due_ms: next,
                next_run_ms: next,
                failures: 0,
                ..current
            };
            state.set_entry(next_job.key(), Some(next_job.to_value()));
            state.set_entry(next_job.index_key(), Some(Value::Null));
            Some(next)
        }
        None => {
            state.delete_entry(current.key());
            None
        }
    }
}

/// Whether `decoded_key` (an [`Error::Decode`]'s key) is the job of the index entry `index`:
/// the job itself cannot be read, rather than the data its run loads.
pub fn is_job_of(index: &Key, decoded_key: &str) -> bool {
    match index {
        Key::JobDue { chat, id, .. } => {
            let job = Key::Job {
                chat: *chat,
                id: id.clone(),
            };
            job.encode("") == decoded_key
        }
        _ => false,
    }
}

/// Whether a write failed in a way that no retry changes (the value is too large or cannot be
/// encoded), rather than because storage failed.
fn never_writable(error: &Error) -> bool {
    matches!(error, Error::TooLarge { .. } | Error::Encode { .. })
}

/// `job`'s continuation after its run due at `due_ms` as changes of its own (without a run's
/// state): its next run, or its end; and when the next run is.
fn continuation(job: &Job, now: i64, version: u32) -> (Vec<Change>, Option<i64>) {
    let mut changes = vec![Change::Delete(job.index_key())];
    let next = job.schedule.following(job.due_ms, now);
    match next {
        Some(next) => {
            let next_job = Job {
                due_ms: next,
                next_run_ms: next,
                failures: 0,
                ..job.clone()
            };
            changes.push(Change::Put(next_job.key(), encoded(&next_job, version)));
            changes.push(Change::Put(next_job.index_key(), encoded_null(version)));
        }
        None => changes.push(Change::Delete(job.key())),
    }
    (changes, next)
}

fn encoded(job: &Job, version: u32) -> String {
    crate::persistence::codec::encode(version, &job.to_value().to_string())
}

fn encoded_null(version: u32) -> String {
    crate::persistence::codec::encode(version, "null")
}
