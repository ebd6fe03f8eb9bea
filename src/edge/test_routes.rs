//! Test-only routes inside a worker, compiled only with the `testing` feature (never in a
//! deploy build): the persistence conformance suite against the worker's own KV and Durable
//! Objects, and storage fault injection. A JavaScript test drives them under Miniflare:
//!
//! - `GET /__test/conformance` → the case names;
//! - `POST /__test/conformance/<case>?backend=kv|d1|durable_object` → 200 `ok` or 500 and why
//!   (each run on a fresh key prefix, an emptied D1 database or a fresh object);
//! - `POST /__test/faults?fail_reads=n&fail_writes=n&kv_errors=n&object_write_errors=n` →
//!   the next `n` storage reads / writes of updates fail, the next `n` KV calls answer like a
//!   failing KV, the next `n` writes of an object's own storage fail after their checks (also
//!   in the object that runs the updates);
//! - `POST /__test/d1-races` → 200 `ok` or 500 and why: on an emptied D1 database, two
//!   stores (two updates) interleaved: a write after another update changed what it read is
//!   a conflict naming d1 and applies nothing; a copy of an update whose twin committed first
//!   is a duplicate;
//! - `GET /__test/records?object=<name>` → `{"records": n, "index": n}`: the processed-update
//!   records an object keeps;
//! - `POST /__test/read-many?keys=n` → a fresh object reads `n` keys with its duplicate check
//!   pending, as an update that needs `n` entries does;
//! - `GET /__test/deadlines?object=<name>` → `{"index": n, "walked": n, "ended": n}`: the
//!   entries of the object's conversation deadline index, and what its last alarm walked and
//!   ended;
//! - `POST /__test/corrupt?key=<encoded key>[&object=<name>]` → puts a value no codec reads
//!   under that key (in KV with `PERSISTENCE=kv`, its row with `PERSISTENCE=d1`, else in the
//!   named object, default `bot`);
//! - `POST /__test/drop-unread?role=chat|home&chat=<id>&users=<ids>&chats=<ids>&update_id=<id>`
//!   → with `DO_ROUTING=chat`, in that chat's object (or the home object), an update that
//!   deletes the user_data and chat_data of those ids without reading them, as
//!   `ctx.drop_user_data(other)` does;
//! - `GET /__test/memory[?object=<name>]` → `{"wasm_bytes": n}`: the WebAssembly memory of the
//!   worker's isolate (or of the isolate that runs the object). It only grows, so it is the
//!   most the module has held yet: what a test of an import's memory reads.

use std::cell::Cell;
use std::rc::Rc;

use worker::{Env, Method, Request, Response};

use super::durable::DurableObjectPersistence;
use super::http::query_param;
use super::kv::KvPersistence;
use super::object::ObjectRole;
use super::settings::Settings;
use super::{forward, text, KV_BINDING};
use crate::persistence::conformance::{run_case, CASES};
use crate::persistence::processed::{index_prefix, DEFAULT_WINDOW_MS};
use crate::persistence::spy::SpyPersistence;
use crate::persistence::{Change, Key, Persistence, DEFAULT_PREFIX};

thread_local! {
    /// What the last alarm of an object of this isolate walked and ended.
    static LAST_WALK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    static FAIL_READS: Cell<u32> = const { Cell::new(0) };
    static FAIL_WRITES: Cell<u32> = const { Cell::new(0) };
    static RUN: Cell<u32> = const { Cell::new(0) };
}

/// Wraps an update's backend so that armed faults fire.
pub(crate) fn with_faults(inner: Rc<dyn Persistence>) -> Rc<dyn Persistence> {
    let spy = SpyPersistence::new(inner);
    spy.fail_next_reads(FAIL_READS.with(|c| c.replace(0)));
    spy.fail_next_writes(FAIL_WRITES.with(|c| c.replace(0)));
    Rc::new(spy)
}

/// The worker's `/__test/` routes.
pub(crate) async fn worker_route(
    req: &mut Request,
    env: &Env,
    settings: &Settings,
    path: &str,
) -> worker::Result<Response> {
    let url = req.url()?;
    let query = |name: &str| query_param(req, name);
    match path {
        "/__test/conformance" => {
            let names: Vec<&str> = CASES.iter().map(|(n, _)| *n).collect();
            Response::from_json(&names)
        }
        "/__test/faults" => {
            arm(req);
            if let Some(routing) = settings.routing() {
                // The object may run in another isolate: arm it there too.
                let role = ObjectRole::whole_bot(routing);
                let path = format!("/__test/faults?{}", url.query().unwrap_or(""));
                return forward(env, &role.object_name(), &path, Method::Post, None).await;
            }
            text(200, "armed")
        }
        "/__test/records" | "/__test/deadlines" => {
            let name = query("object").unwrap_or_else(|| "bot".into());
            forward(env, &name, path, Method::Get, None).await
        }
        "/__test/corrupt" => {
            let key = query("key").unwrap_or_default();
            if settings.routing().is_some() {
                let name = query("object").unwrap_or_else(|| "bot".into());
                let path = format!("/__test/corrupt?{}", url.query().unwrap_or(""));
                return forward(env, &name, &path, Method::Post, None).await;
            }
            if settings.backend == super::settings::Backend::D1 {
                let Some(parsed) = Key::parse(&key, DEFAULT_PREFIX) else {
                    return text(400, format!("{key} is not an edgegram key"));
                };
                let store = super::d1::D1Persistence::new(env.d1(super::D1_BINDING)?);
                let corrupt = Change::Put(parsed, "\u{1}not a stored value".into());
                return match store.write(&[corrupt]).await {
                    Ok(()) => text(200, format!("corrupted {key}")),
                    Err(e) => text(500, e.to_string()),
                };
            }
            env.kv(KV_BINDING)?
                .put(&key, "\u{1}not a stored value")?
                .execute()
                .await?;
            text(200, format!("corrupted {key}"))
        }
        "/__test/drop-unread" => {
            let role = match query("role").as_deref() {
                Some("home") => ObjectRole::Home,
                _ => ObjectRole::Chat(query("chat").and_then(|c| c.parse().ok()).unwrap_or(0)),
            };
            // The object learns its role from the query, as for an update.
            let path = format!(
                "/__test/drop-unread?{}&{}",
                role.query().trim_start_matches('?'),
                url.query().unwrap_or("")
            );
            forward(env, &role.object_name(), &path, Method::Post, None).await
        }
        "/__test/d1-races" => match d1_races(env).await {
            Ok(()) => text(200, "ok"),
            Err(message) => text(500, message),
        },
        "/__test/memory" => match query("object") {
            Some(name) => forward(env, &name, "/__test/memory", Method::Get, None).await,
            None => memory(),
        },
        "/__test/read-many" => {
            let name = format!("read-many-{}", js_sys::Date::now() as u64);
            let path = format!("/__test/read-many?{}", url.query().unwrap_or(""));
            forward(env, &name, &path, Method::Post, None).await
        }
        p if p.starts_with("/__test/conformance/") => {
            let case = &p["/__test/conformance/".len()..];
            let backend = query("backend").unwrap_or_else(|| "kv".into());
            let run = RUN.with(|r| {
                r.set(r.get() + 1);
                r.get()
            });
            let stamp = js_sys::Date::now() as u64;
            let store: Rc<dyn Persistence> = match backend.as_str() {
                "kv" => Rc::new(KvPersistence::new(
                    env.kv(KV_BINDING)?,
                    format!("conformance-{stamp}-{run}:"),
                )),
                "d1" => {
                    // One database: emptied before each case (the cases run one at a time).
                    let store = super::d1::D1Persistence::new(env.d1(super::D1_BINDING)?);
                    if let Err(e) = store.clear().await {
                        return text(500, e.to_string());
                    }
                    Rc::new(store)
                }
                "durable_object" => {
                    // A fresh object is a fresh, empty storage.
                    let name = format!("conformance-{stamp}-{run}");
                    return forward(env, &name, p, Method::Post, None).await;
                }
                other => return text(400, format!("unknown backend {other}")),
            };
            answer_case(case, store.as_ref()).await
        }
        _ => text(404, "no such test route"),
    }
}

/// The `/__test/` routes inside an object: arming faults, running a conformance case against
/// the object's own storage.
pub(crate) async fn object_route(
    req: &mut Request,
    path: &str,
    store: &DurableObjectPersistence,
) -> worker::Result<Response> {
    match path {
        "/__test/faults" => {
            arm(req);
            return text(200, "armed");
        }
        "/__test/records" => return records(store).await,
        "/__test/corrupt" => {
            let key = query_param(req, "key").unwrap_or_default();
            store
                .storage
                .put_raw(&key, "\u{1}not a stored value")
                .await?;
            return text(200, format!("corrupted {key}"));
        }
        "/__test/deadlines" => {
            let (walked, ended) = LAST_WALK.with(Cell::get);
            return match store
                .list_prefix(&format!("{DEFAULT_PREFIX}cdl:"), None)
                .await
            {
                Ok(index) => Response::from_json(&serde_json::json!({
                    "index": index.len(),
                    "walked": walked,
                    "ended": ended,
                })),
                Err(e) => text(500, e.to_string()),
            };
        }
        "/__test/memory" => return memory(),
        "/__test/read-many" => {
            let count = query_param(req, "keys")
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(128);
            let keys: Vec<Key> = (0..count).map(Key::UserData).collect();
            let now = js_sys::Date::now() as i64;
            store.begin_update(i64::MAX, now, DEFAULT_WINDOW_MS);
            return match store.read(&keys).await {
                Ok(values) => text(200, format!("read {}", values.len())),
                Err(e) => text(500, e.to_string()),
            };
        }
        _ => {}
    }
    match path.strip_prefix("/__test/conformance/") {
        Some(case) => answer_case(case, store).await,
        None => text(404, "no such test route"),
    }
}

/// Notes what an alarm walked in the deadline index, for `/__test/deadlines`.
pub(crate) fn note_walk(walked: usize, ended: usize) {
    LAST_WALK.with(|w| w.set((walked, ended)));
}

/// `/__test/drop-unread` inside the object of `role`: one update's deletes of entries it never
/// read, through the persistence an update of that object gets.
pub(crate) async fn drop_unread(
    req: &Request,
    host: &super::object::ObjectHost,
    role: ObjectRole,
) -> worker::Result<Response> {
    let ids = |name: &str| -> Vec<i64> {
        query_param(req, name)
            .unwrap_or_default()
            .split(',')
            .filter_map(|id| id.parse().ok())
            .collect()
    };
    let update_id = ids("update_id").first().copied().unwrap_or(1);
    let changes: Vec<Change> = ids("users")
        .into_iter()
        .map(Key::UserData)
        .chain(ids("chats").into_iter().map(Key::ChatData))
        .map(Change::Delete)
        .collect();
    let now = js_sys::Date::now() as i64;
    let (_, persistence) = host.update_persistence(role, update_id, now, DEFAULT_WINDOW_MS);
    match persistence.write(&changes).await {
        Ok(()) => text(200, format!("deleted {}", changes.len())),
        Err(e) => text(500, e.to_string()),
    }
}

/// Two updates on D1 interleaved by hand (see `/__test/d1-races`).
async fn d1_races(env: &Env) -> Result<(), String> {
    use super::d1::D1Persistence;
    use crate::error::Error;
    let open = || -> Result<D1Persistence, String> {
        let db = env.d1(super::D1_BINDING).map_err(|e| e.to_string())?;
        Ok(D1Persistence::new(db))
    };
    let put =
        |key: Key, n: i64| Change::Put(key, crate::persistence::codec::encode(1, &n.to_string()));
    let now = js_sys::Date::now() as i64;
    let (a, b) = (open()?, open()?);
    a.clear().await.map_err(|e| e.to_string())?;
    a.write(&[put(Key::UserData(1), 1)])
        .await
        .map_err(|e| e.to_string())?;

    // Lost update: both read user 1; a writes first; b's write (user 1 and chat 2) must fail
    // whole.
    a.begin_update(10, now, DEFAULT_WINDOW_MS);
    b.begin_update(11, now, DEFAULT_WINDOW_MS);
    a.read(&[Key::UserData(1)])
        .await
        .map_err(|e| e.to_string())?;
    b.read(&[Key::UserData(1)])
        .await
        .map_err(|e| e.to_string())?;
    a.write(&[put(Key::UserData(1), 2)])
        .await
        .map_err(|e| e.to_string())?;
    match b
        .write(&[put(Key::UserData(1), 3), put(Key::ChatData(2), 3)])
        .await
    {
        Err(Error::Conflict { backend: "d1", key }) if key.contains("user:1") => {}
        other => {
            return Err(format!(
                "b's write after a's: {other:?}, want a d1 conflict on user:1"
            ))
        }
    }
    let fresh = open()?;
    let got = fresh
        .read(&[Key::UserData(1), Key::ChatData(2)])
        .await
        .map_err(|e| e.to_string())?;
    let want = vec![Some(crate::persistence::codec::encode(1, "2")), None];
    if got != want {
        return Err(format!(
            "after the conflict the store holds {got:?}, want {want:?}"
        ));
    }
    // Nor was b's processed-update row written: its redelivery runs.
    fresh.begin_update(11, now, DEFAULT_WINDOW_MS);
    fresh
        .read(&[])
        .await
        .map_err(|e| format!("update 11 after its conflict: {e}"))?;

    // Twins: two copies of update 20 both read before either wrote; the second to write is a
    // duplicate, and applies nothing.
    let (c, d) = (open()?, open()?);
    c.begin_update(20, now, DEFAULT_WINDOW_MS);
    d.begin_update(20, now, DEFAULT_WINDOW_MS);
    c.read(&[Key::ChatData(5)])
        .await
        .map_err(|e| e.to_string())?;
    d.read(&[Key::ChatData(5)])
        .await
        .map_err(|e| e.to_string())?;
    c.write(&[put(Key::ChatData(5), 1)])
        .await
        .map_err(|e| e.to_string())?;
    match d
        .write(&[put(Key::ChatData(5), 1), put(Key::ChatData(6), 1)])
        .await
    {
        Err(Error::AlreadyProcessed(20)) => {}
        other => {
            return Err(format!(
                "the second copy's write: {other:?}, want AlreadyProcessed(20)"
            ))
        }
    }
    let got = open()?
        .read(&[Key::ChatData(6)])
        .await
        .map_err(|e| e.to_string())?;
    if got != vec![None] {
        return Err(format!("the duplicate's other change was applied: {got:?}"));
    }
    Ok(())
}

/// The module's WebAssembly memory, in bytes (pages of 64 KiB; it never shrinks).
fn memory() -> worker::Result<Response> {
    let bytes = core::arch::wasm32::memory_size::<0>() * 65536;
    Response::from_json(&serde_json::json!({ "wasm_bytes": bytes }))
}

async fn answer_case(case: &str, store: &dyn Persistence) -> worker::Result<Response> {
    match run_case(case, store).await {
        None => text(404, format!("no case {case}")),
        Some(Ok(())) => text(200, "ok"),
        Some(Err(message)) => text(500, message),
    }
}

/// How many processed-update records and time index entries an object keeps.
async fn records(store: &DurableObjectPersistence) -> worker::Result<Response> {
    let count = |prefix: String| async move {
        store
            .list_prefix(&prefix, None)
            .await
            .map(|entries| entries.len())
    };
    let records = count(format!("{DEFAULT_PREFIX}upd:")).await;
    let index = count(index_prefix(DEFAULT_PREFIX)).await;
    match (records, index) {
        (Ok(records), Ok(index)) => {
            Response::from_json(&serde_json::json!({"records": records, "index": index}))
        }
        (Err(e), _) | (_, Err(e)) => text(500, e.to_string()),
    }
}

fn arm(req: &Request) {
    let count = |name: &str| {
        query_param(req, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    FAIL_READS.with(|c| c.set(count("fail_reads")));
    FAIL_WRITES.with(|c| c.set(count("fail_writes")));
    super::kv::INJECTED_FAILURES.with(|c| c.set(count("kv_errors")));
    super::durable::INJECTED_WRITE_FAILURES.with(|c| c.set(count("object_write_errors")));
}
