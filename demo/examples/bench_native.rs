//! Native throughput of the core, for `npm run bench` (bench/run.mjs): the demo Application
//! (`edgegram_demo::bot::application`) over `MemoryPersistence` and `RecordingBot`, fed update
//! streams as JSON bytes. Every update is parsed with `webhook::parse_body` and handled with
//! `Application::process_update`, as the worker does, minus the network.
//!
//! ```text
//! cargo run --release -p edgegram-demo --example bench_native -- [--passes N] name=updates.jsonl ...
//! ```
//!
//! Prints one JSON document: per stream, the seconds of each timed pass (a fresh store
//! each pass) and the storage operations of one extra, untimed pass through
//! `SpyPersistence` (read and write round trips per update, entries and bytes written).

use std::rc::Rc;
use std::time::Instant;

use edgegram::persistence::spy::{Call, SpyPersistence};
use edgegram::persistence::DEFAULT_PREFIX;
use edgegram::testing::RecordingBot;
use edgegram::webhook::{parse_body, Incoming};
use edgegram::{Application, ApplicationBuilder, Change, MemoryPersistence, Persistence};
use futures::executor::block_on;
use serde_json::{json, Value};

fn application(store: Rc<dyn Persistence>, bot: Rc<RecordingBot>) -> Application {
    let builder = ApplicationBuilder::new()
        .bot(bot)
        .persistence(store)
        .bot_username("edgegram_demo_bot");
    edgegram_demo::bot::application(builder).expect("the demo application builds")
}

fn update(line: &[u8]) -> edgegram::Update {
    match parse_body(line) {
        Ok(Incoming::Update(update)) => *update,
        other => panic!("the bench streams hold typed updates only: {other:?}"),
    }
}

/// One timed pass over `lines` with a fresh store; seconds, replies sent, final state.
fn timed_pass(lines: &[Vec<u8>]) -> (f64, usize, Value) {
    let store = Rc::new(MemoryPersistence::new());
    let bot = Rc::new(RecordingBot::new());
    let app = application(store.clone(), bot.clone());
    let started = Instant::now();
    for line in lines {
        let outcome = block_on(app.process_update(update(line))).expect("update handled");
        if let Some(error) = outcome.handler_error {
            panic!("a handler failed: {error}");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let replies = bot.take_calls().len();
    (seconds, replies, store.to_json().expect("state exports"))
}

/// Storage operations, counted by wrapping the store in `SpyPersistence` (not timed).
fn counted_pass(lines: &[Vec<u8>]) -> Value {
    let spy = Rc::new(SpyPersistence::new(Rc::new(MemoryPersistence::new())));
    let app = application(spy.clone(), Rc::new(RecordingBot::new()));
    let (mut reads, mut read_keys, mut writes, mut puts, mut deletes, mut bytes) =
        (0, 0, 0, 0, 0, 0);
    let (mut max_reads, mut max_writes, mut no_write) = (0, 0, 0);
    for line in lines {
        spy.clear();
        block_on(app.process_update(update(line))).expect("update handled");
        let (mut r, mut w) = (0, 0);
        for call in spy.calls() {
            match call {
                Call::Read(keys) => {
                    r += 1;
                    read_keys += keys.len();
                }
                Call::Write(changes) => {
                    w += 1;
                    for change in &changes {
                        match change {
                            Change::Put(key, value) => {
                                puts += 1;
                                bytes += key.encode(DEFAULT_PREFIX).len() + value.len();
                            }
                            Change::Delete(_) => deletes += 1,
                        }
                    }
                }
                Call::List(_) | Call::Flush | Call::JobsDue(..) => {}
            }
        }
        reads += r;
        writes += w;
        max_reads = max_reads.max(r);
        max_writes = max_writes.max(w);
        no_write += usize::from(w == 0);
    }
    json!({
        "updates": lines.len(),
        "reads": reads, "read_keys": read_keys, "max_reads": max_reads,
        "writes": writes, "max_writes": max_writes, "puts": puts, "deletes": deletes,
        "bytes_written": bytes, "updates_without_write": no_write,
    })
}

fn main() {
    let mut passes = 5;
    let mut streams = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--passes" {
            passes = args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--passes N");
        } else {
            let (name, file) = arg.split_once('=').expect("name=file.jsonl");
            let text = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
            let lines: Vec<Vec<u8>> = text
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            streams.push((name.to_string(), lines));
        }
    }
    let mut results = Vec::new();
    for (name, lines) in &streams {
        // One untimed pass first: page in, warm caches and the allocator.
        timed_pass(lines);
        let mut seconds = Vec::new();
        let mut last = (0, Value::Null);
        for _ in 0..passes {
            let (s, replies, state) = timed_pass(lines);
            seconds.push(s);
            last = (replies, state);
        }
        results.push(json!({
            "name": name,
            "updates": lines.len(),
            "seconds": seconds,
            "replies": last.0,
            "bot_data": last.1["bot_data"],
            "ops": counted_pass(lines),
        }));
    }
    // On Workers the Application is built per request: what that costs on its own.
    let store: Rc<dyn Persistence> = Rc::new(MemoryPersistence::new());
    let bot = Rc::new(RecordingBot::new());
    let builds = 20_000;
    let started = Instant::now();
    for _ in 0..builds {
        std::hint::black_box(application(store.clone(), bot.clone()));
    }
    let build_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(builds);
    println!(
        "{}",
        json!({ "streams": results, "build_application_us": build_us })
    );
}
