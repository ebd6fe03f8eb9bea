//! The job queue (src/jobs/): scheduled with the update, run by the host's timer with the
//! job's chat and user data, its changes and next run in one write.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use edgegram::jobs::{JobRun, MAX_JOB_ATTEMPTS};
use edgegram::persistence::spy::Call;
use edgegram::testing::Harness;
use edgegram::{
    Application, ApplicationBuilder, CommandHandler, Context, Error, HandlerResult, JobSpec,
    KeyKind, OnHandlerError, When,
};
use futures::executor::block_on;
use serde_json::Value;

const CHAT: i64 = 42;

async fn remind(ctx: Context) -> HandlerResult {
    let seconds: u64 = ctx.args.first().and_then(|s| s.parse().ok()).unwrap_or(1);
    let text = ctx.args[1..].join(" ");
    let chat = ctx.effective_chat().map(|c| c.id).unwrap_or_default();
    let spec = JobSpec::once("reminder", When::after_secs(seconds))
        .chat_id(chat)
        .data(text)?;
    ctx.job_queue().schedule(spec)?;
    ctx.reply_text("Reminder set.")?;
    Ok(())
}

async fn reminder(ctx: Context) -> HandlerResult {
    let job = ctx.job().expect("a job run has its job");
    let text: String = job.data_as()?;
    ctx.chat_data(|d| {
        let fired = d.get("fired").and_then(Value::as_i64).unwrap_or(0);
        d.insert("fired".into(), (fired + 1).into());
    })?;
    ctx.reply_text(text)?;
    Ok(())
}

/// Every run counts in chat_data; the third removes the job.
async fn tick(ctx: Context) -> HandlerResult {
    let job = ctx.job().expect("a job run has its job");
    let ticks = ctx.chat_data(|d| {
        let ticks = d.get("ticks").and_then(Value::as_i64).unwrap_or(0) + 1;
        d.insert("ticks".into(), ticks.into());
        ticks
    })?;
    if ticks == 3 {
        ctx.job_queue().schedule_removal(&job);
    }
    Ok(())
}

async fn start_ticking(ctx: Context) -> HandlerResult {
    let spec = JobSpec::repeating("tick", Duration::from_secs(10), When::after_secs(10))
        .chat_id(CHAT)
        .name("ticker");
    ctx.job_queue().schedule(spec)?;
    Ok(())
}

fn bot(builder: ApplicationBuilder) -> edgegram::Result<Application> {
    builder
        .handler(CommandHandler::new("remind", remind))
        .handler(CommandHandler::new("tick", start_ticking))
        .job("reminder", reminder)
        .job("tick", tick)
        .build()
}

/// Everything `from` stores, written into `to` (the same storage seen by the next deploy).
fn copy_storage(from: &edgegram::MemoryPersistence, to: &edgegram::MemoryPersistence) {
    use edgegram::Persistence;
    for kind in KeyKind::ALL {
        let keys = block_on(from.list(kind)).unwrap();
        let values = block_on(from.read(&keys)).unwrap();
        let changes: Vec<edgegram::Change> = keys
            .into_iter()
            .zip(values)
            .filter_map(|(key, value)| Some(edgegram::Change::Put(key, value?)))
            .collect();
        block_on(to.write(&changes)).unwrap();
    }
}

fn chat_data(h: &Harness, key: &str) -> Value {
    h.to_json()["chat_data"][CHAT.to_string()][key].clone()
}

#[test]
fn a_reminder_fires_at_its_time_with_no_update_and_is_gone_after() {
    let h = Harness::new(bot);
    h.process(
        h.updates()
            .command(CHAT, CHAT, "/remind 30 water the plants"),
    );
    assert_eq!(h.bot().texts(), ["Reminder set."]);
    assert_eq!(h.jobs().len(), 1);

    h.advance(Duration::from_secs(29));
    assert!(h.run_due_jobs().unwrap().runs.is_empty(), "not due yet");
    h.advance(Duration::from_secs(1));
    let run = h.run_due_jobs().unwrap();
    assert!(matches!(
        &run.runs[..],
        [JobRun::Ran {
            next_run_ms: None,
            ..
        }]
    ));
    assert_eq!(h.bot().texts(), ["Reminder set.", "water the plants"]);
    assert_eq!(chat_data(&h, "fired"), 1);
    assert!(h.jobs().is_empty());
    assert_eq!(run.next_due_ms, None);
    // Nothing runs twice.
    h.advance(Duration::from_secs(60));
    assert!(h.run_due_jobs().unwrap().runs.is_empty());
    assert_eq!(h.bot().texts().len(), 2);
}

#[test]
fn an_update_whose_handler_fails_under_retry_schedules_nothing() {
    async fn schedule_then_fail(ctx: Context) -> HandlerResult {
        let spec = JobSpec::once("reminder", When::after_secs(1)).chat_id(CHAT);
        ctx.job_queue().schedule(spec.data("never")?)?;
        Err("the handler failed after scheduling".into())
    }
    let h = Harness::new(|b: ApplicationBuilder| {
        b.handler(CommandHandler::new("fail", schedule_then_fail))
            .job("reminder", reminder)
            .on_handler_error(OnHandlerError::Retry)
            .build()
    });
    assert!(h
        .try_process(h.updates().command(CHAT, CHAT, "/fail"))
        .is_err());
    assert!(h.jobs().is_empty());
    h.advance(Duration::from_secs(5));
    assert!(h.run_due_jobs().unwrap().runs.is_empty());
    assert!(h.bot().texts().is_empty());
}

#[test]
fn a_repeating_job_runs_every_interval_until_it_removes_itself() {
    let h = Harness::new(bot);
    h.process(h.updates().command(CHAT, CHAT, "/tick"));
    for _ in 0..5 {
        h.advance(Duration::from_secs(10));
        h.run_due_jobs().unwrap();
    }
    assert_eq!(chat_data(&h, "ticks"), 3, "the third run removed it");
    assert!(h.jobs().is_empty());
}

#[test]
fn runs_missed_while_nothing_ran_are_run_once_late() {
    let h = Harness::new(bot);
    let start = h.now_ms();
    h.process(h.updates().command(CHAT, CHAT, "/tick"));
    // Due at +10 s; nothing runs until +35 s: one run, then the next at +40 s.
    h.advance(Duration::from_secs(35));
    let run = h.run_due_jobs().unwrap();
    assert_eq!(run.runs.len(), 1);
    assert_eq!(chat_data(&h, "ticks"), 1);
    assert_eq!(run.next_due_ms, Some(start + 40_000));
    assert_eq!(h.jobs()[0].next_run_ms, start + 40_000);
}

#[test]
fn a_failing_job_is_tried_a_bounded_number_of_times_then_dead_lettered_once() {
    let errors = Rc::new(Cell::new(0));
    let seen = errors.clone();
    let h = Harness::new(move |b: ApplicationBuilder| {
        let seen = seen.clone();
        b.handler(CommandHandler::new("remind", remind))
            .job("reminder", |_ctx: Context| async {
                Err::<(), _>("the reminder's callback is broken".into())
            })
            .error_handler(move |_ctx, _error| {
                let seen = seen.clone();
                async move { seen.set(seen.get() + 1) }
            })
            .build()
    });
    h.process(h.updates().command(CHAT, CHAT, "/remind 1 x"));
    let mut retries = Vec::new();
    let mut letters = Vec::new();
    for _ in 0..20 {
        h.advance(Duration::from_secs(60));
        for run in h.run_due_jobs().unwrap().runs {
            match run {
                JobRun::Retrying { job, .. } => retries.push(job.failures),
                JobRun::GaveUp { letter, .. } => letters.push(letter),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(retries, [0, 1, 2, 3]);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, MAX_JOB_ATTEMPTS);
    assert!(letters[0].error.contains("broken"), "{}", letters[0].error);
    assert_eq!(letters[0].update["job"]["callback"], "reminder");
    assert_eq!(
        errors.get(),
        1,
        "the error handlers ran once, when it was given up"
    );
    assert!(h.jobs().is_empty(), "a one-off job ends when given up");
    assert_eq!(h.bot().texts(), ["Reminder set."]);
}

#[test]
fn a_run_whose_write_fails_changes_nothing_and_runs_once_later() {
    let h = Harness::new(bot);
    h.process(h.updates().command(CHAT, CHAT, "/remind 1 once"));
    h.advance(Duration::from_secs(1));
    h.spy().fail_next_writes(1);
    assert!(h.run_due_jobs().is_err());
    assert_eq!(h.bot().texts(), ["Reminder set."], "nothing sent");
    assert_eq!(chat_data(&h, "fired"), Value::Null);
    assert_eq!(h.jobs().len(), 1, "still due");
    h.run_due_jobs().unwrap();
    assert_eq!(h.bot().texts(), ["Reminder set.", "once"]);
    assert_eq!(chat_data(&h, "fired"), 1);
}

#[test]
fn a_queued_reply_that_fails_transiently_stays_in_the_outbox_and_the_job_is_not_run_again() {
    let h = Harness::new(bot);
    h.process(h.updates().command(CHAT, CHAT, "/remind 1 later"));
    h.advance(Duration::from_secs(1));
    h.bot()
        .answer_next_to("sendMessage", edgegram::testing::Answer::server_error());
    let run = h.run_due_jobs().unwrap();
    assert_eq!(run.runs.len(), 1);
    assert_eq!(h.stored_outboxes().len(), 1);
    h.advance(Duration::from_secs(5));
    assert!(h.run_due_jobs().unwrap().runs.is_empty());
    h.deliver_pending().unwrap();
    let texts = h.bot().texts();
    assert_eq!(
        texts.iter().filter(|t| *t == "later").count(),
        1,
        "{texts:?}"
    );
    assert_eq!(chat_data(&h, "fired"), 1);
}

#[test]
fn with_a_thousand_jobs_pending_a_run_costs_the_same_storage_work_as_with_one() {
    let calls_for_one_run = |pending: usize| {
        let h = Harness::new(bot);
        let app = h.application().unwrap();
        for i in 0..pending {
            let spec = JobSpec::once("reminder", When::At(h.now_ms() + 3_600_000 + i as i64))
                .chat_id(CHAT)
                .data("later")
                .unwrap();
            block_on(app.schedule_job(spec)).unwrap();
        }
        h.process(h.updates().command(CHAT, CHAT, "/remind 1 now"));
        h.advance(Duration::from_secs(1));
        h.spy().clear();
        let run = h.run_due_jobs().unwrap();
        assert_eq!(run.runs.len(), 1);
        let calls = h.spy().calls();
        assert!(
            !calls
                .iter()
                .any(|c| matches!(c, Call::List(KeyKind::Job | KeyKind::JobDue))),
            "no listing of every job: {calls:?}"
        );
        calls.len()
    };
    assert_eq!(calls_for_one_run(1000), calls_for_one_run(0));
}

#[test]
fn a_disabled_job_skips_its_runs_and_keeps_its_schedule() {
    async fn disable(ctx: Context) -> HandlerResult {
        for job in ctx.job_queue().get_jobs_by_name("ticker").await? {
            ctx.job_queue().set_enabled(&job, false);
        }
        Ok(())
    }
    let h =
        Harness::new(|b: ApplicationBuilder| bot(b.handler(CommandHandler::new("pause", disable))));
    h.process(h.updates().command(CHAT, CHAT, "/tick"));
    h.process(h.updates().command(CHAT, CHAT, "/pause"));
    h.advance(Duration::from_secs(10));
    let run = h.run_due_jobs().unwrap();
    assert!(matches!(&run.runs[..], [JobRun::Skipped { .. }]));
    assert_eq!(chat_data(&h, "ticks"), Value::Null);
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 1);
    assert!(!jobs[0].enabled);
    assert_eq!(jobs[0].next_run_ms, h.now_ms() + 10_000);
}

#[test]
fn a_job_naming_no_callback_or_on_a_store_without_a_timer_is_refused() {
    async fn unknown(ctx: Context) -> HandlerResult {
        ctx.job_queue()
            .schedule(JobSpec::once("nobody", When::after_secs(1)))?;
        Ok(())
    }
    let h =
        Harness::new(|b: ApplicationBuilder| b.handler(CommandHandler::new("x", unknown)).build());
    let outcome = h.process(h.updates().command(CHAT, CHAT, "/x"));
    let error = outcome.handler_error.unwrap();
    assert!(error.contains("no job callback"), "{error}");

    struct NoTimer(edgegram::MemoryPersistence);
    impl edgegram::Persistence for NoTimer {
        fn backend(&self) -> &'static str {
            "kv"
        }
        fn read<'a>(
            &'a self,
            keys: &'a [edgegram::Key],
        ) -> futures::future::LocalBoxFuture<'a, edgegram::Result<Vec<Option<String>>>> {
            self.0.read(keys)
        }
        fn write<'a>(
            &'a self,
            changes: &'a [edgegram::Change],
        ) -> futures::future::LocalBoxFuture<'a, edgegram::Result<()>> {
            self.0.write(changes)
        }
        fn list(
            &self,
            kind: KeyKind,
        ) -> futures::future::LocalBoxFuture<'_, edgegram::Result<Vec<edgegram::Key>>> {
            self.0.list(kind)
        }
    }
    let app = ApplicationBuilder::new()
        .bot(Rc::new(edgegram::RecordingBot::new()))
        .persistence(Rc::new(NoTimer(edgegram::MemoryPersistence::new())))
        .job("reminder", reminder)
        .build()
        .unwrap();
    let refused = block_on(app.schedule_job(JobSpec::once("reminder", When::after_secs(1))));
    assert!(
        matches!(&refused, Err(Error::Config(why)) if why.contains("kv backend has no timer")),
        "{refused:?}"
    );
}

#[test]
fn a_job_whose_callback_is_gone_after_a_deploy_ends_and_an_unreadable_job_holds_up_no_other() {
    let h = Harness::new(bot);
    h.process(h.updates().command(CHAT, CHAT, "/tick"));
    h.process(h.updates().command(CHAT, CHAT, "/remind 20 still runs"));
    // The next deploy has no "tick" callback any more.
    let renamed = Harness::new(|b: ApplicationBuilder| {
        b.handler(CommandHandler::new("remind", remind))
            .job("reminder", reminder)
            .build()
    });
    copy_storage(h.memory(), renamed.memory());
    renamed.set_now_ms(h.now_ms() + 10_000);
    let run = renamed.run_due_jobs().unwrap();
    assert!(matches!(
        &run.runs[..],
        [JobRun::GaveUp {
            next_run_ms: None,
            ..
        }]
    ));
    assert_eq!(
        renamed.jobs().len(),
        1,
        "the tick job ended; the reminder is left"
    );

    // A job whose stored value cannot be read is skipped; the reminder after it still runs.
    let broken = edgegram::Key::Job {
        chat: CHAT,
        id: "0000000000000bad".into(),
    };
    let index = edgegram::Key::JobDue {
        at_ms: renamed.now_ms(),
        chat: CHAT,
        id: "0000000000000bad".into(),
    };
    let changes = [
        edgegram::Change::Put(broken, "not json".into()),
        edgegram::Change::Put(index, "{\"v\":1,\"data\":null}".into()),
    ];
    block_on(edgegram::Persistence::write(renamed.memory(), &changes)).unwrap();
    renamed.set_now_ms(renamed.now_ms() + 10_000);
    renamed.run_due_jobs().unwrap();
    assert!(renamed.bot().texts().contains(&"still runs".to_string()));
}
