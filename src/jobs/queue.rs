//! [`JobQueue`]: the job queue as a handler sees it (`ctx.job_queue()`): what it schedules,
//! removes or disables is part of the update's one write.

use serde_json::Value;

use super::{Job, JobSpec};
use crate::context::DataType;
use crate::error::{Error, Result};
use crate::persistence::{Key, KeyKind};
use crate::update_state::UpdateState;

/// The job queue of one update (or job run): PTB's `context.job_queue`.
pub struct JobQueue<'a, B, C, U> {
    pub(crate) state: &'a UpdateState<B, C, U>,
}

impl<B: DataType, C: DataType, U: DataType> JobQueue<'_, B, C, U> {
    /// Schedules `spec`, written with the update's changes (nothing is scheduled if they are
    /// not written). Answers the job as it will be stored.
    ///
    /// Refused with [`Error::Config`] when the storage has no timer to run it
    /// ([`Persistence::runs_jobs`](crate::persistence::Persistence::runs_jobs): KV, D1) or no
    /// callback of that name was registered
    /// ([`ApplicationBuilder::job`](crate::ApplicationBuilder::job)), and with
    /// [`Error::Invalid`] when the schedule is impossible.
    pub fn schedule(&self, spec: JobSpec) -> Result<Job> {
        let state = self.state;
        if !state.persistence().runs_jobs() {
            return Err(Error::Config(format!(
                "job {}: the {} backend has no timer to run jobs; they need \
                 PERSISTENCE=durable_object (a Durable Object's alarm runs them)",
                spec.callback(),
                state.persistence().backend()
            )));
        }
        if !state.has_job_callback(spec.callback()) {
            return Err(Error::Config(format!(
                "job {}: no job callback of that name (ApplicationBuilder::job)",
                spec.callback()
            )));
        }
        let mut id = [0u8; 8];
        state.fill_random(&mut id)?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let job = spec.into_job(id, state.now_ms())?;
        state.set_entry(job.key(), Some(job.to_value()));
        state.set_entry(job.index_key(), Some(Value::Null));
        Ok(job)
    }

    /// Removes `job` with the update's changes (PTB's `job.schedule_removal()`); from its own
    /// run, it ends the job after this run.
    pub fn schedule_removal(&self, job: &Job) {
        self.state.delete_entry(job.key());
        self.state.delete_entry(job.index_key());
    }

    /// Enables or disables `job` (PTB's `job.enabled = ..`); a disabled job keeps its schedule
    /// and skips its runs (a one-off job disabled at its time is skipped, so it ends).
    pub fn set_enabled(&self, job: &Job, enabled: bool) {
        let job = Job {
            enabled,
            ..job.clone()
        };
        self.state.set_entry(job.key(), Some(job.to_value()));
    }

    /// The jobs stored, with what this update scheduled or removed so far, by next run (PTB's
    /// `jobs()`). Lists every job: one listing and one read. With `DO_ROUTING=chat`, the jobs
    /// of this update's object (its chat's).
    pub async fn jobs(&self) -> Result<Vec<Job>> {
        let persistence = self.state.persistence();
        let keys: Vec<Key> = persistence.list(KeyKind::Job).await?;
        let values = persistence.read(&keys).await?;
        let mut jobs = Vec::with_capacity(keys.len());
        for (key, raw) in keys.iter().zip(values) {
            if let Some(raw) = raw {
                jobs.push(Job::decode(persistence.backend(), key, &raw)?);
            }
        }
        for (key, value) in self.state.touched_entries(KeyKind::Job) {
            jobs.retain(|job| job.key() != key);
            if let Some(value) = value {
                if let Ok(job) = serde_json::from_value::<Job>(value) {
                    jobs.push(job);
                }
            }
        }
        jobs.sort_by(|a, b| (a.next_run_ms, &a.id).cmp(&(b.next_run_ms, &b.id)));
        Ok(jobs)
    }

    /// The jobs named `name` (PTB's `get_jobs_by_name`).
    pub async fn get_jobs_by_name(&self, name: &str) -> Result<Vec<Job>> {
        let mut jobs = self.jobs().await?;
        jobs.retain(|job| job.name == name);
        Ok(jobs)
    }
}
