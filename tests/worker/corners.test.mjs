// Issue "Correct in every corner", the edge's items, each on workerd with the fault that
// exposed it: processed-update records that expire by time (5), a read of 128 keys with the
// duplicate check (6), chat routing's home part applied once across a failed chat commit (1),
// an import with a value over the limit as workerd counts it (4), KV recognising a
// redelivery (13, in durable.test.mjs), one getMe per isolate (16), Bot API calls that time
// out (21).
import { test } from "node:test";
import assert from "node:assert/strict";
import { startBotApi } from "./support/bot-api.mjs";
import { startWorker, commandUpdate, post, exportState, importState, ADMIN } from "./support/worker.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const GROUP = -1001500000777;

async function admin(mf, path, init = {}) {
  return mf.dispatchFetch(`http://localhost${path}`, { ...init, headers: { Authorization: `Bearer ${ADMIN}`, ...(init.headers ?? {}) } });
}

async function withWorker(options, run) {
  const botApi = await startBotApi(options.botApiOptions ?? {});
  const mf = await startWorker({ botApi, ...options });
  try {
    await run(mf, botApi);
  } finally {
    await mf.dispose();
    await botApi.close();
  }
}

test("item 5: a processed record counts only within its window, and the alarm forgets it with no update coming", async () => {
  await withWorker({ persistence: "durable_object", bindings: { PROCESSED_UPDATE_TTL_SECONDS: "1" } }, async (mf) => {
    const update = commandUpdate({ chat: 31, user: 31, text: "/count", updateId: 4242 });
    assert.equal((await post(mf, update)).headers.get("x-edgegram-outcome").startsWith("handled=1"), true);
    assert.equal((await post(mf, update)).headers.get("x-edgegram-outcome"), "duplicate=1");
    let records = await (await admin(mf, "/__test/records?object=bot")).json();
    assert.deepEqual(records, { records: 1, index: 1 });
    // Telegram restarts update ids after a week without updates: an id seen long ago is new.
    await sleep(1300);
    const reused = await post(mf, update);
    assert.match(reused.headers.get("x-edgegram-outcome"), /^handled=1/, "an expired record turns nothing away");
    assert.equal((await exportState(mf)).user_data["31"].count, 2);
    // No update comes any more: the object's alarm prunes the records once they expire.
    await sleep(2500);
    records = await (await admin(mf, "/__test/records?object=bot")).json();
    assert.deepEqual(records, { records: 0, index: 0 });
  });
});

test("item 5, DO_ROUTING=chat: the home object forgets the records of chat objects' updates too", async () => {
  await withWorker({ persistence: "durable_object", routing: "chat", bindings: { PROCESSED_UPDATE_TTL_SECONDS: "1" } }, async (mf) => {
    const res = await post(mf, commandUpdate({ chat: GROUP, user: 6, text: "/count", updateId: 6100 }));
    assert.equal(res.status, 200, await res.text());
    const records = async (object) => (await admin(mf, `/__test/records?object=${encodeURIComponent(object)}`)).json();
    assert.deepEqual(await records("bot"), { records: 1, index: 1 }, "the home part's record");
    assert.deepEqual(await records(`chat:${GROUP}`), { records: 1, index: 1 });
    await sleep(2500);
    assert.deepEqual(await records("bot"), { records: 0, index: 0 });
    assert.deepEqual(await records(`chat:${GROUP}`), { records: 0, index: 0 });
  });
});

test("item 6: an update that reads 128 entries with its duplicate check pending is one batch too many no more", async () => {
  await withWorker({ persistence: "durable_object" }, async (mf) => {
    for (const keys of [127, 128, 129, 300]) {
      const res = await admin(mf, `/__test/read-many?keys=${keys}`, { method: "POST" });
      const body = await res.text();
      assert.equal(res.status, 200, `${keys} keys: ${body}`);
      assert.equal(body, `read ${keys}`);
    }
  });
});

test("item 1: DO_ROUTING=chat applies the home part once when the chat object's commit fails and Telegram redelivers", async () => {
  await withWorker({ persistence: "durable_object", routing: "chat" }, async (mf, botApi) => {
    const armed = await admin(mf, "/__test/faults?object_write_errors=1", { method: "POST" });
    assert.equal(armed.status, 200);
    const update = commandUpdate({ chat: GROUP, user: 5, text: "/count", updateId: 5000 });
    const failed = await post(mf, update);
    assert.equal(failed.status, 500, "the chat object's commit failed: Telegram must redeliver");
    const again = await post(mf, update);
    assert.equal(again.status, 200, await again.text());
    const state = await exportState(mf);
    assert.equal(state.bot_data.count, 1, "bot_data applied once");
    assert.equal(state.user_data["5"].count, 1, "user_data applied once");
    assert.equal(state.chat_data[String(GROUP)].count, 1);
    const third = await post(mf, update);
    assert.equal(third.headers.get("x-edgegram-outcome"), "duplicate=1");
    // The failed delivery sent nothing (its reply was queued, and its commit failed); the
    // redelivery's reply went out once (before the outbox: one per delivery, 2). Known limit
    // (README "Not yet"): the redelivery's handlers ran over the home part already applied,
    // so that reply counts bot and user one higher than what is stored.
    assert.equal(botApi.texts().length, 1);
  });
});

test("item 4: an import with one value over the limit as workerd counts it (UTF-16) changes nothing", async () => {
  await withWorker({ persistence: "durable_object" }, async (mf) => {
    const before = { bot_data: { kept: true }, chat_data: { "1": { a: 1 }, "2": { b: 2 }, "3": { c: 3 } }, user_data: {}, conversations: {}, callback_data: null };
    assert.equal((await importState(mf, before)).status, 200);
    const chats = {};
    for (let i = 100; i < 400; i++) chats[String(i)] = { n: i };
    // 1.2 MB of ASCII and one "中": under 2,000,000 bytes in UTF-8, 2.4 MB as V8 stores it.
    chats["999"] = { big: `${"x".repeat(1_200_000)}中` };
    const res = await importState(mf, { bot_data: {}, chat_data: chats, user_data: {}, conversations: {}, callback_data: null });
    const body = await res.text();
    assert.equal(res.status, 400, body);
    assert.match(body, /over the limit/);
    const after = await exportState(mf);
    assert.deepEqual(after.chat_data, before.chat_data, "nothing of the import was written, nothing deleted");
    assert.deepEqual(after.bot_data, before.bot_data);
  });
});

test("item 16: a worker asks getMe once per isolate, not once per update addressed to @bot", async () => {
  await withWorker({ persistence: "kv", bindings: { BOT_USERNAME: "" } }, async (mf, botApi) => {
    for (const id of [7001, 7002, 7003]) {
      const res = await post(mf, commandUpdate({ chat: 41, user: 41, text: "/count@edgegram_demo_bot", updateId: id }));
      assert.equal(res.status, 200, await res.text());
    }
    assert.equal(botApi.calls.filter((c) => c.method === "getMe").length, 1);
    assert.equal(botApi.texts().length, 3, "each update was answered");
  });
});

test("item 21: a Bot API call that stalls times out instead of holding the object's gate", async () => {
  await withWorker({ persistence: "durable_object", bindings: { BOT_API_TIMEOUT_SECONDS: "0.3" }, botApiOptions: { delayMs: 3000 } }, async (mf) => {
    const started = Date.now();
    const [stalled, other] = await Promise.all([
      post(mf, commandUpdate({ chat: 51, user: 51, text: "/count", updateId: 8001 })),
      post(mf, commandUpdate({ chat: 52, user: 52, text: "/count", updateId: 8002 })),
    ]);
    const took = Date.now() - started;
    // The replies are queued: each update commits, its call times out after the commit (a
    // transient failure: the reply stays stored for the object's alarm), and the gate was
    // never held across the network.
    for (const res of [stalled, other]) {
      assert.equal(res.status, 200, await res.text());
      assert.equal(res.headers.get("x-edgegram-outcome"), "handled=1; reads=1; puts=3; deletes=0; queued=1; sent=0");
    }
    assert.equal((await exportState(mf)).bot_data.count, 2);
    assert.ok(took < 2500, `two updates behind a 3 s Bot API took ${took} ms; each call should give up after 0.3 s`);
  });
});

for (const routing of ["bot", "chat"]) {
  test(`item 2, DO_ROUTING=${routing}: a group that becomes a supergroup keeps its chat_data in the supergroup's own object`, async () => {
    await withWorker({ persistence: "durable_object", routing }, async (mf, botApi) => {
      const OLD = -4242;
      const NEW = -1001500000999;
      for (const [user, updateId] of [[1, 7001], [2, 7002]]) {
        const res = await post(mf, commandUpdate({ chat: OLD, user, text: "/count", updateId, chatType: "group" }));
        assert.equal(res.status, 200, await res.text());
      }
      const migrate = {
        update_id: 7003,
        message: {
          message_id: 7003,
          date: 1700000000,
          chat: { id: OLD, type: "group" },
          from: { id: 1, is_bot: false, first_name: "User 1" },
          migrate_to_chat_id: NEW,
        },
      };
      const moved = await post(mf, migrate);
      assert.equal(moved.status, 200, await moved.text());
      const res = await post(mf, commandUpdate({ chat: NEW, user: 1, text: "/count", updateId: 7004 }));
      assert.equal(res.status, 200, await res.text());
      assert.equal(botApi.texts().at(-1), "bot: 3, chat: 3, user: 2", "the supergroup goes on from the group's count");
      const state = await exportState(mf);
      assert.equal(state.chat_data[String(NEW)]?.count, 3, JSON.stringify(state.chat_data));
      assert.equal(state.chat_data[String(OLD)], undefined, "the group's entry is gone");
    });
  });
}

test("item 3, DO_ROUTING=chat: deleting user_data and chat_data the update never read is no conflict", async () => {
  await withWorker({ persistence: "durable_object", routing: "chat" }, async (mf) => {
    const chats = [GROUP, -4243, -4244];
    for (const [i, chat] of chats.entries()) {
      const res = await post(mf, commandUpdate({ chat, user: 8 + i, text: "/count", updateId: 7101 + i }));
      assert.equal(res.status, 200, await res.text());
    }
    // In GROUP's object: user 8 (the home object's) and chat -4243 (another chat object's).
    // In the home object: user 9 (its own) and chat -4244.
    for (const [query, updateId] of [[`role=chat&chat=${GROUP}&users=8&chats=-4243`, 7201], ["role=home&users=9&chats=-4244", 7202]]) {
      const res = await admin(mf, `/__test/drop-unread?${query}&update_id=${updateId}`, { method: "POST" });
      assert.equal(res.status, 200, `${query}: ${await res.text()}`);
    }
    const state = await exportState(mf);
    assert.deepEqual(Object.keys(state.user_data).sort(), ["10"], JSON.stringify(state.user_data));
    assert.deepEqual(Object.keys(state.chat_data), [String(GROUP)], JSON.stringify(state.chat_data));
    assert.equal(state.chat_data[String(GROUP)].count, 1);
  });
});

test("item 17: the alarm ends timed-out conversations by walking only the due deadlines, not every conversation", async () => {
  await withWorker({ persistence: "durable_object", bindings: { CONVERSATION_TIMEOUT_SECONDS: "2" } }, async (mf) => {
    // 200 conversations without a deadline (imported from PTB, which has none) stay out of it.
    const states = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`[${-9000 - i}, ${i + 1}]`, "CHOOSING"]));
    const imported = await importState(mf, { bot_data: {}, chat_data: {}, user_data: {}, conversations: { profile: states }, callback_data: null });
    assert.equal(imported.status, 200, await imported.text());
    const deadlines = async () => (await admin(mf, "/__test/deadlines?object=bot")).json();
    const profile = async () => (await exportState(mf)).conversations.profile ?? {};
    const started = Date.now();
    for (const [i, chat] of [71, 72, 73].entries()) {
      const res = await post(mf, commandUpdate({ chat, user: chat, text: "/start", updateId: 7301 + i }));
      assert.equal(res.status, 200, await res.text());
    }
    await sleep(1000 - (Date.now() - started));
    // Chat 71 moves on: its first deadline is stale, its conversation ends a second later.
    const moved = await post(mf, commandUpdate({ chat: 71, user: 71, text: "Age", updateId: 7304 }));
    assert.equal(moved.status, 200, await moved.text());
    assert.equal((await deadlines()).index, 4, "one entry per conversation write with a deadline");
    await sleep(2500 - (Date.now() - started));
    let now = await profile();
    assert.equal(now["[71, 71]"], "TYPING_REPLY", "a stale deadline ends nothing");
    assert.equal(now["[72, 72]"], undefined, "ended at its deadline with no update");
    assert.equal(Object.keys(now).length, 201);
    assert.equal((await deadlines()).index, 1, "the due entries are gone, chat 71's later one is left");
    await sleep(4500 - (Date.now() - started));
    now = await profile();
    assert.equal(now["[71, 71]"], undefined);
    assert.equal(Object.keys(now).length, 200, "the imported ones are untouched");
    const walk = await deadlines();
    assert.deepEqual(walk, { index: 0, walked: 1, ended: 1 }, "the last alarm walked the one entry due");
  });
});
