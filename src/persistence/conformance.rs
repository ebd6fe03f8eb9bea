//! The persistence conformance suite: the behaviour every backend must show, written once.
//!
//! Memory and file run it natively (`cargo test`); KV and Durable Objects run it inside the
//! worker under Miniflare, one route per case (`tests/conformance.test.mjs`). Cases return
//! `Err` instead of panicking, because a panic aborts a wasm worker without an answer.
//!
//! Each case gets a fresh, empty store from the caller.
//!
//! Compiled only with the `testing` feature (the worker's `test-hooks` feature turns it on),
//! so that it never ships in a bot's build.

use futures::future::LocalBoxFuture;
use serde_json::{json, Value};

use super::{codec, dict, Change, Key, KeyKind, Persistence, PersistenceExt};
use crate::error::Error;

/// What a case returns: `Err` says what differed.
pub type CaseResult = Result<(), String>;

type CaseFn = for<'a> fn(&'a dyn Persistence) -> LocalBoxFuture<'a, CaseResult>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case, by name.
        pub const CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |p| Box::pin($name(p)))),*];
    };
}

cases!(
    missing_keys_read_as_none,
    read_answers_in_key_order,
    every_kind_round_trips,
    put_overwrites,
    delete_removes_and_tolerates_missing,
    one_batch_mixes_puts_and_deletes,
    list_returns_exactly_one_kind,
    awkward_keys_and_values_survive,
    reads_of_many_keys_are_complete,
    ptb_methods_decode_and_encode,
    corrupt_values_are_reported_with_their_key,
    import_then_export_round_trips,
    import_replaces_everything,
    invalid_import_writes_nothing,
    a_write_with_an_entry_over_the_limit_applies_nothing,
    a_processed_update_is_recognised_within_its_window,
    a_record_older_than_its_window_turns_nothing_away,
    reads_of_128_keys_and_more_with_the_check_pending_are_complete,
    due_jobs_come_earliest_first_and_no_more_than_asked,
);

/// Runs one case by name against `store`. `None` for an unknown name.
pub async fn run_case(name: &str, store: &dyn Persistence) -> Option<CaseResult> {
    let (_, case) = CASES.iter().find(|(n, _)| *n == name)?;
    Some(case(store).await)
}

/// The outcome of [`run_all`].
#[derive(Debug, Default)]
pub struct Report {
    /// `(case, error)` of every failed case.
    pub failures: Vec<(&'static str, String)>,
    /// How many cases ran.
    pub ran: usize,
}

impl Report {
    /// Panics with every failure listed (for native tests).
    pub fn assert_passed(&self) {
        assert!(
            self.ran == CASES.len(),
            "ran {} of {} cases",
            self.ran,
            CASES.len()
        );
        assert!(
            self.failures.is_empty(),
            "conformance failures: {:#?}",
            self.failures
        );
    }
}

/// Runs every case, each against a fresh store from `fresh`.
pub async fn run_all(fresh: &dyn Fn() -> Box<dyn Persistence>) -> Report {
    let mut report = Report::default();
    for (name, case) in CASES {
        let store = fresh();
        report.ran += 1;
        if let Err(err) = case(store.as_ref()).await {
            report.failures.push((name, err));
        }
    }
    report
}

fn err(e: Error) -> String {
    e.to_string()
}

fn value(data: Value) -> String {
    codec::encode(1, &data.to_string())
}

fn conv(name: &str, key: &str) -> Key {
    Key::Conversation {
        name: name.into(),
        key: key.into(),
    }
}

fn one_of_each() -> Vec<Key> {
    vec![
        Key::BotData,
        Key::ChatData(-1001500000001),
        Key::UserData(456),
        conv("profile", "[-1001500000001, 456]"),
        Key::CallbackKeyboard("kb-1".into()),
        Key::CallbackQuery("q-1".into()),
        Key::KeyboardIndex("chat.-1001500000001".into()),
        Key::Outbox {
            chat: -1001500000001,
            update_id: 9_007_199_254_740_993,
        },
        Key::Job {
            chat: -1001500000001,
            id: "00ff00ff00ff00ff".into(),
        },
        Key::JobDue {
            at_ms: 1_796_083_200_000,
            chat: -1001500000001,
            id: "00ff00ff00ff00ff".into(),
        },
    ]
}

async fn put(store: &dyn Persistence, changes: &[Change]) -> CaseResult {
    store.write(changes).await.map_err(err)?;
    store.flush().await.map_err(err)
}

async fn missing_keys_read_as_none(store: &dyn Persistence) -> CaseResult {
    let keys = one_of_each();
    let got = store.read(&keys).await.map_err(err)?;
    ensure!(
        got == vec![None; keys.len()],
        "expected all None, got {got:?}"
    );
    let got = store.read(&[]).await.map_err(err)?;
    ensure!(got.is_empty(), "empty read gave {got:?}");
    Ok(())
}

async fn read_answers_in_key_order(store: &dyn Persistence) -> CaseResult {
    let (a, b) = (Key::ChatData(1), Key::UserData(1));
    put(
        store,
        &[
            Change::Put(a.clone(), value(json!({"n": "a"}))),
            Change::Put(b.clone(), value(json!({"n": "b"}))),
        ],
    )
    .await?;
    let got = store
        .read(&[b.clone(), Key::ChatData(2), a.clone()])
        .await
        .map_err(err)?;
    let want = vec![
        Some(value(json!({"n": "b"}))),
        None,
        Some(value(json!({"n": "a"}))),
    ];
    ensure!(got == want, "got {got:?}, want {want:?}");
    Ok(())
}

async fn every_kind_round_trips(store: &dyn Persistence) -> CaseResult {
    let keys = one_of_each();
    let changes: Vec<Change> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Change::Put(k.clone(), value(json!({"i": i}))))
        .collect();
    put(store, &changes).await?;
    let got = store.read(&keys).await.map_err(err)?;
    for (i, (key, got)) in keys.iter().zip(got).enumerate() {
        ensure!(got == Some(value(json!({"i": i}))), "{key}: got {got:?}");
    }
    Ok(())
}

async fn put_overwrites(store: &dyn Persistence) -> CaseResult {
    let key = Key::UserData(7);
    put(store, &[Change::Put(key.clone(), value(json!(1)))]).await?;
    put(store, &[Change::Put(key.clone(), value(json!(2)))]).await?;
    let got = store.read(&[key]).await.map_err(err)?;
    ensure!(got == vec![Some(value(json!(2)))], "got {got:?}");
    Ok(())
}

async fn delete_removes_and_tolerates_missing(store: &dyn Persistence) -> CaseResult {
    let keys = one_of_each();
    let puts: Vec<Change> = keys
        .iter()
        .map(|k| Change::Put(k.clone(), value(json!({}))))
        .collect();
    put(store, &puts).await?;
    let deletes: Vec<Change> = keys.iter().cloned().map(Change::Delete).collect();
    put(store, &deletes).await?;
    let got = store.read(&keys).await.map_err(err)?;
    ensure!(got.iter().all(Option::is_none), "after delete: {got:?}");
    put(store, &[Change::Delete(Key::ChatData(404))]).await?;
    for kind in KeyKind::ALL {
        let listed = store.list(kind).await.map_err(err)?;
        ensure!(listed.is_empty(), "{kind:?} still lists {listed:?}");
    }
    Ok(())
}

async fn one_batch_mixes_puts_and_deletes(store: &dyn Persistence) -> CaseResult {
    let (a, b, c) = (Key::ChatData(1), Key::ChatData(2), Key::ChatData(3));
    put(
        store,
        &[
            Change::Put(a.clone(), value(json!("a"))),
            Change::Put(b.clone(), value(json!("b"))),
        ],
    )
    .await?;
    put(
        store,
        &[
            Change::Delete(a.clone()),
            Change::Put(b.clone(), value(json!("b2"))),
            Change::Put(c.clone(), value(json!("c"))),
        ],
    )
    .await?;
    let got = store.read(&[a, b, c]).await.map_err(err)?;
    let want = vec![None, Some(value(json!("b2"))), Some(value(json!("c")))];
    ensure!(got == want, "got {got:?}, want {want:?}");
    Ok(())
}

async fn list_returns_exactly_one_kind(store: &dyn Persistence) -> CaseResult {
    let mut keys = one_of_each();
    keys.push(Key::ChatData(5));
    keys.push(Key::UserData(-5));
    keys.push(conv("other", "[1]"));
    let puts: Vec<Change> = keys
        .iter()
        .map(|k| Change::Put(k.clone(), value(json!({}))))
        .collect();
    put(store, &puts).await?;
    for kind in KeyKind::ALL {
        let mut listed = store.list(kind).await.map_err(err)?;
        listed.sort();
        let mut want: Vec<Key> = keys.iter().filter(|k| k.kind() == kind).cloned().collect();
        want.sort();
        ensure!(listed == want, "{kind:?}: listed {listed:?}, want {want:?}");
    }
    Ok(())
}

async fn awkward_keys_and_values_survive(store: &dyn Persistence) -> CaseResult {
    let keys = vec![
        Key::ChatData(i64::MIN),
        Key::UserData(i64::MAX),
        conv("a:b%3A:c", "[\"inline message\", 5]"),
        conv("ünïcødé 😀", "[-1, -2]"),
        Key::CallbackQuery("4417349871234567890".into()),
    ];
    let big = "x".repeat(100_000);
    let values = [
        json!({"text": "quote \" backslash \\ newline \n nul \u{0} emoji 😀"}),
        json!({"big": big}),
        json!([1.5, -0.0, 1e300, null, true]),
        json!("CHOOSING"),
        json!("kb-1"),
    ];
    let puts: Vec<Change> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| Change::Put(k.clone(), value(v.clone())))
        .collect();
    put(store, &puts).await?;
    let got = store.read(&keys).await.map_err(err)?;
    for ((key, want), got) in keys.iter().zip(&values).zip(got) {
        ensure!(got == Some(value(want.clone())), "{key}: value changed");
    }
    let mut listed = store.list(KeyKind::Conversation).await.map_err(err)?;
    listed.sort();
    let mut want = keys[2..4].to_vec();
    want.sort();
    ensure!(listed == want, "conversations listed as {listed:?}");
    Ok(())
}

async fn due_jobs_come_earliest_first_and_no_more_than_asked(
    store: &dyn Persistence,
) -> CaseResult {
    let due = |at_ms: i64, chat: i64, id: &str| Key::JobDue {
        at_ms,
        chat,
        id: id.into(),
    };
    // Times of different digit counts and chats of either sign, written out of order.
    let index = [
        due(10_000_000_000_000, 1, "late"),
        due(1_796_083_200_000, -1001500000001, "b"),
        due(999, 5, "early"),
        due(1_796_083_200_000, 7, "a"),
        due(1_796_083_200_001, 7, "c"),
    ];
    let puts: Vec<Change> = index
        .iter()
        .map(|k| Change::Put(k.clone(), value(Value::Null)))
        .collect();
    put(store, &puts).await?;
    let job = Key::Job {
        chat: 7,
        id: "a".into(),
    };
    put(store, &[Change::Put(job, value(json!({"id": "a"})))]).await?;
    let until = store.jobs_due(1_796_083_200_000, 10).await.map_err(err)?;
    let want = vec![index[2].clone(), index[1].clone(), index[3].clone()];
    let mut want_sorted = want.clone();
    want_sorted.sort();
    ensure!(until.len() == 3, "due by then: {until:?}");
    ensure!(
        until[0] == index[2] && until == want_sorted,
        "due by then, earliest first: {until:?}"
    );
    let first = store.jobs_due(i64::MAX, 1).await.map_err(err)?;
    ensure!(first == [index[2].clone()], "the first: {first:?}");
    let all = store.jobs_due(i64::MAX, 100).await.map_err(err)?;
    ensure!(
        all.len() == 5 && all.last() == Some(&index[0]),
        "all: {all:?}"
    );
    Ok(())
}

async fn reads_of_many_keys_are_complete(store: &dyn Persistence) -> CaseResult {
    // Past KV's 100-key bulk-read limit and Durable Objects' 128-key batch limit.
    let keys: Vec<Key> = (0..300).map(Key::UserData).collect();
    let puts: Vec<Change> = keys
        .iter()
        .step_by(2)
        .map(|k| Change::Put(k.clone(), value(json!({ "k": k.to_string() }))))
        .collect();
    put(store, &puts).await?;
    let got = store.read(&keys).await.map_err(err)?;
    ensure!(
        got.len() == keys.len(),
        "{} answers for {} keys",
        got.len(),
        keys.len()
    );
    for (i, (key, got)) in keys.iter().zip(got).enumerate() {
        let want = (i % 2 == 0).then(|| value(json!({ "k": key.to_string() })));
        ensure!(got == want, "{key}: got {got:?}");
    }
    let listed = store.list(KeyKind::UserData).await.map_err(err)?;
    ensure!(
        listed.len() == 150,
        "listed {} user entries, want 150",
        listed.len()
    );
    Ok(())
}

async fn ptb_methods_decode_and_encode(store: &dyn Persistence) -> CaseResult {
    ensure!(
        store.get_bot_data().await.map_err(err)?.is_none(),
        "bot_data before any write"
    );
    store
        .update_bot_data(&json!({"count": 1}))
        .await
        .map_err(err)?;
    store
        .update_chat_data(-5, &json!({"title": "g"}))
        .await
        .map_err(err)?;
    store
        .update_user_data(9, &json!({"age": "30"}))
        .await
        .map_err(err)?;
    store
        .update_conversation("profile", "[-5, 9]", Some(&json!("CHOOSING")))
        .await
        .map_err(err)?;
    ensure!(
        store.get_bot_data().await.map_err(err)? == Some(json!({"count": 1})),
        "bot_data"
    );
    ensure!(
        store.get_chat_data(-5).await.map_err(err)? == Some(json!({"title": "g"})),
        "chat_data"
    );
    ensure!(
        store.get_user_data(9).await.map_err(err)? == Some(json!({"age": "30"})),
        "user_data"
    );
    ensure!(
        store
            .get_conversation("profile", "[-5, 9]")
            .await
            .map_err(err)?
            == Some(json!("CHOOSING")),
        "conversation"
    );
    store.drop_chat_data(-5).await.map_err(err)?;
    store.drop_user_data(9).await.map_err(err)?;
    store
        .update_conversation("profile", "[-5, 9]", None)
        .await
        .map_err(err)?;
    ensure!(
        store.get_chat_data(-5).await.map_err(err)?.is_none(),
        "chat_data dropped"
    );
    ensure!(
        store.get_user_data(9).await.map_err(err)?.is_none(),
        "user_data dropped"
    );
    ensure!(
        store
            .get_conversation("profile", "[-5, 9]")
            .await
            .map_err(err)?
            .is_none(),
        "conversation ended"
    );
    Ok(())
}

async fn corrupt_values_are_reported_with_their_key(store: &dyn Persistence) -> CaseResult {
    put(store, &[Change::Put(Key::ChatData(13), "{not json".into())]).await?;
    match store.get_chat_data(13).await {
        Err(Error::Decode { key, .. }) => {
            ensure!(key.contains("chat:13"), "decode error names {key}")
        }
        other => return Err(format!("expected a decode error, got {other:?}")),
    }
    match dict::export(store).await {
        Err(Error::Decode { key, .. }) => ensure!(key.contains("chat:13"), "export names {key}"),
        other => return Err(format!("export of a corrupt store gave {other:?}")),
    }
    // Reading did not touch it.
    let raw = store.read(&[Key::ChatData(13)]).await.map_err(err)?;
    ensure!(
        raw == vec![Some("{not json".to_string())],
        "corrupt value changed: {raw:?}"
    );
    Ok(())
}

fn ptb_document() -> Value {
    json!({
        "bot_data": {"count": 3},
        "chat_data": {"-1001500000001": {"count": 2}, "777": {"count": 1}},
        "user_data": {"456": {"age": "12", "count": 2}},
        "conversations": {"profile": {"[-1001500000001, 456]": "TYPING_REPLY"}},
        // Keyboard and button ids as PTB makes them (uuid4().hex).
        "callback_data": [[["0f1e2d3c4b5a69788796a5b4c3d2e1f0", 1700000000.25,
                            {"a1".repeat(16): [1, []], "b2".repeat(16): {"x": "y"}}]],
                          {"q-1": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}],
    })
}

async fn import_then_export_round_trips(store: &dyn Persistence) -> CaseResult {
    let doc = ptb_document();
    let count = dict::import(store, &doc, 1).await.map_err(err)?;
    ensure!(count == 7, "imported {count} entries, want 7");
    let exported = dict::export(store).await.map_err(err)?;
    ensure!(exported == doc, "exported {exported}");
    Ok(())
}

async fn import_replaces_everything(store: &dyn Persistence) -> CaseResult {
    dict::import(store, &ptb_document(), 1).await.map_err(err)?;
    let small = json!({"bot_data": {"fresh": true}, "user_data": {"1": {"a": 1}}});
    dict::import(store, &small, 1).await.map_err(err)?;
    let exported = dict::export(store).await.map_err(err)?;
    let want = json!({
        "bot_data": {"fresh": true}, "chat_data": {}, "user_data": {"1": {"a": 1}},
        "conversations": {}, "callback_data": null,
    });
    ensure!(exported == want, "exported {exported}");
    Ok(())
}

async fn invalid_import_writes_nothing(store: &dyn Persistence) -> CaseResult {
    dict::import(store, &ptb_document(), 1).await.map_err(err)?;
    // Valid sections first, the bad one last: nothing of it may be written.
    let bad = json!({"bot_data": {"count": 0}, "chat_data": {"1": {}}, "user_data": {"x": {}}});
    match dict::import(store, &bad, 1).await {
        Err(Error::Invalid(message)) => {
            ensure!(message.starts_with("user_data.x"), "message {message}")
        }
        other => return Err(format!("expected Invalid, got {other:?}")),
    }
    let exported = dict::export(store).await.map_err(err)?;
    ensure!(exported == ptb_document(), "store changed: {exported}");
    Ok(())
}

/// Issue 12, item 4: a write is whole or nothing also when one entry is over the store's
/// limit, counted as the store counts it ("中" is 2 bytes in V8's serialisation, 3 in UTF-8).
/// A store without a limit of its own keeps a value of a few megabytes.
async fn a_write_with_an_entry_over_the_limit_applies_nothing(
    store: &dyn Persistence,
) -> CaseResult {
    let (kept, deleted, small, big) = (
        Key::ChatData(1),
        Key::ChatData(2),
        Key::ChatData(3),
        Key::ChatData(4),
    );
    put(
        store,
        &[
            Change::Put(kept.clone(), value(json!("kept"))),
            Change::Put(deleted.clone(), value(json!("still here"))),
        ],
    )
    .await?;
    let chars = store
        .max_entry_bytes()
        .map_or(1 << 20, |limit| limit / 2 + 1);
    let huge = value(json!("中".repeat(chars)));
    let changes = [
        Change::Put(small.clone(), value(json!("small"))),
        Change::Delete(deleted.clone()),
        Change::Put(big.clone(), huge.clone()),
    ];
    let result = store.write(&changes).await;
    let got = store
        .read(&[kept, deleted.clone(), small.clone(), big.clone()])
        .await
        .map_err(err)?;
    match store.max_entry_bytes() {
        Some(limit) => {
            match result {
                Err(Error::TooLarge { size, .. }) => {
                    ensure!(
                        size > limit,
                        "reported size {size} is within the limit {limit}"
                    )
                }
                other => return Err(format!("expected TooLarge, got {other:?}")),
            }
            let want = vec![
                Some(value(json!("kept"))),
                Some(value(json!("still here"))),
                None,
                None,
            ];
            ensure!(got == want, "a refused write changed the store: {got:?}");
        }
        None => {
            result.map_err(err)?;
            ensure!(
                got[1].is_none() && got[2].is_some(),
                "the write was not applied"
            );
            ensure!(
                got[3].as_ref() == Some(&huge),
                "the {chars}-character value came back changed"
            );
        }
    }
    Ok(())
}

const T0: i64 = 1_700_000_000_000;
const WINDOW: i64 = 60_000;

/// Issue 12, item 13 (KV) and the Durable Objects' effectively-once: an update recorded with
/// its write is a duplicate when delivered again. A store that keeps no records applies it
/// again, and must say so.
async fn a_processed_update_is_recognised_within_its_window(store: &dyn Persistence) -> CaseResult {
    let keeps = store.begin_update(7, T0, WINDOW);
    store.read(&[Key::BotData]).await.map_err(err)?;
    put(
        store,
        &[Change::Put(Key::BotData, value(json!({"count": 1})))],
    )
    .await?;
    let again = store.begin_update(7, T0 + 1_000, WINDOW);
    ensure!(again == keeps, "begin_update answered {keeps} then {again}");
    match (keeps, store.read(&[Key::BotData]).await) {
        (true, Err(Error::AlreadyProcessed(7))) | (false, Ok(_)) => Ok(()),
        (keeps, other) => Err(format!(
            "keeps records: {keeps}; the second delivery's read gave {other:?}"
        )),
    }
}

/// Issue 12, item 5: a record counts within its window only (Telegram reuses update ids after
/// a week without updates); also a record committed alone, by an update that wrote nothing.
async fn a_record_older_than_its_window_turns_nothing_away(store: &dyn Persistence) -> CaseResult {
    if !store.begin_update(8, T0, WINDOW) {
        return Ok(()); // keeps no records: the case above checked that it says so
    }
    store.read(&[Key::BotData]).await.map_err(err)?;
    store.commit_marker().await.map_err(err)?;
    store.begin_update(8, T0 + WINDOW / 2, WINDOW);
    match store.read(&[Key::BotData]).await {
        Err(Error::AlreadyProcessed(8)) => {}
        other => return Err(format!("within the window: {other:?}")),
    }
    store.begin_update(8, T0 + WINDOW + 1, WINDOW);
    store.read(&[Key::BotData]).await.map_err(err)?;
    Ok(())
}

/// Issue 12, item 6: the record's key rides on the update's read without pushing a batch over
/// the store's limit (128 keys per Durable Object `get`).
async fn reads_of_128_keys_and_more_with_the_check_pending_are_complete(
    store: &dyn Persistence,
) -> CaseResult {
    for (n, update_id) in [(127, 9), (128, 10), (129, 11), (300, 12)] {
        store.begin_update(update_id, T0, WINDOW);
        let keys: Vec<Key> = (0..n).map(Key::UserData).collect();
        let got = store.read(&keys).await.map_err(err)?;
        ensure!(got.len() == keys.len(), "{n} keys: {} values", got.len());
    }
    Ok(())
}
