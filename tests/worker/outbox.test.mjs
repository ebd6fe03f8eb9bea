// The transactional outbox under faults (issue "Bot API calls after the commit"): a Bot API
// stand-in failing 10 % of sendMessage calls (500, 429 with retry_after 1, a dropped
// connection, in turn), every update delivered twice (half of the pairs at the same moment),
// each copy redelivered after a non-200 answer as Telegram does. On Durable Objects, both
// routings: no update lost, no increment doubled, every applied update's reply delivered
// exactly once, and each chat's replies in the order of its updates; on D1 the same but for the
// order (a failed reply goes out with its update's redelivery). The larger run with
// latency and KV's row is `npm run bench` (BENCHMARKS.md).
import { test } from "node:test";
import assert from "node:assert/strict";
import { startBotApi } from "./support/bot-api.mjs";
import { startWorker, commandUpdate, post, exportState } from "./support/worker.mjs";

const CHATS = [-1001500000701, -1001500000702];
const USERS = [11, 12, 13, 14, 15, 16];
const UPDATES = 60;
const IN_FLIGHT = 8;

/** Posts `update` until it is answered 200, as Telegram redelivers; answers the tries. */
async function deliver(mf, update) {
  for (let attempt = 1; attempt <= 30; attempt++) {
    const res = await post(mf, update);
    await res.text();
    if (res.status === 200) return attempt;
    await new Promise((r) => setTimeout(r, 50 * attempt));
  }
  throw new Error(`update ${update.update_id} never answered 200`);
}

/** Runs `jobs` (functions answering promises) with at most `limit` at once. */
async function pool(jobs, limit) {
  let next = 0;
  const workers = Array.from({ length: limit }, async () => {
    while (next < jobs.length) await jobs[next++]();
  });
  await Promise.all(workers);
}

/** Waits until `count()` reaches `expected` (the alarm sends what failed), or `ms` passed. */
async function until(count, expected, ms) {
  const end = Date.now() + ms;
  while (count() < expected && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
  return count();
}

const parse = (text) => Object.fromEntries(text.split(", ").map((part) => part.split(": ")).map(([k, v]) => [k, Number(v)]));

const setups = [
  { name: "Durable Objects, DO_ROUTING=bot", persistence: "durable_object", routing: "bot" },
  { name: "Durable Objects, DO_ROUTING=chat", persistence: "durable_object", routing: "chat" },
  // The webhook answered at the commit, the replies sent after it.
  { name: "Durable Objects, DO_ROUTING=bot, SEND_QUEUED_CALLS=after_answer", persistence: "durable_object", routing: "bot", bindings: { SEND_QUEUED_CALLS: "after_answer" } },
  { name: "Durable Objects, DO_ROUTING=chat, SEND_QUEUED_CALLS=after_answer", persistence: "durable_object", routing: "chat", bindings: { SEND_QUEUED_CALLS: "after_answer" } },
  // No alarm: a reply that failed is answered 500 (unsent) and sent by the redelivery.
  { name: "D1", persistence: "d1", routing: "bot" },
];

for (const { name, persistence, routing, bindings = {} } of setups) {
  test(`${name}: with 10 % of replies failing and every update twice, nothing is lost, doubled or sent twice`, async () => {
    const botApi = await startBotApi({ faults: { rate: 0.1, seed: 7 } });
    const mf = await startWorker({ botApi, persistence, routing, bindings });
    try {
      const updates = Array.from({ length: UPDATES }, (_, i) =>
        commandUpdate({ chat: CHATS[i % CHATS.length], user: USERS[i % USERS.length], text: "/count", updateId: 70000 + i }));
      const jobs = updates.map((update, i) => async () => {
        if (i % 2 === 0) {
          await Promise.all([deliver(mf, update), deliver(mf, update)]);
        } else {
          await deliver(mf, update);
          await deliver(mf, update);
        }
      });
      await pool(jobs, IN_FLIGHT);
      const sent = () => botApi.delivered().filter((c) => c.method === "sendMessage").length;
      const delivered = await until(sent, UPDATES, 60_000);
      // A little longer: a reply sent twice would show now.
      await new Promise((r) => setTimeout(r, 1500));

      const state = await exportState(mf);
      assert.equal(state.bot_data.count, UPDATES, "every update applied once");
      for (const chat of CHATS) assert.equal(state.chat_data[String(chat)].count, UPDATES / CHATS.length);
      for (const user of USERS) assert.equal(state.user_data[String(user)].count, UPDATES / USERS.length);

      const faults = botApi.calls.filter((c) => c.fault !== undefined);
      assert.ok(faults.length >= 3, `the stand-in failed calls (${faults.length})`);
      const replies = botApi.delivered().filter((c) => c.method === "sendMessage");
      assert.equal(delivered, UPDATES);
      assert.equal(replies.length, UPDATES, "every applied update's reply delivered exactly once");
      const botCounts = replies.map((c) => parse(c.params.text).bot).sort((a, b) => a - b);
      assert.deepEqual(botCounts, Array.from({ length: UPDATES }, (_, i) => i + 1), "one reply per applied update");
      for (const chat of CHATS) {
        const chatCounts = replies.filter((c) => c.params.chat_id === chat).map((c) => parse(c.params.text).chat);
        const expected = Array.from({ length: UPDATES / CHATS.length }, (_, i) => i + 1);
        if (persistence === "durable_object") {
          assert.deepEqual(chatCounts, expected, `chat ${chat}'s replies in order`);
        } else {
          // D1 has no object to keep a chat's order: a reply that failed goes out with its
          // update's redelivery, after later ones (README, "Replies after the commit").
          assert.deepEqual([...chatCounts].sort((a, b) => a - b), expected, `chat ${chat}'s replies, each once`);
        }
      }
    } finally {
      await mf.dispose();
      await botApi.close();
    }
  });
}

test("WEBHOOK_REPLY=1: the first queued call is the webhook's answer, made by Telegram; a duplicate answers none", async () => {
  const botApi = await startBotApi();
  const mf = await startWorker({ botApi, persistence: "durable_object", routing: "bot", bindings: { WEBHOOK_REPLY: "1" } });
  try {
    const update = commandUpdate({ chat: -1001500000711, user: 21, text: "/count", updateId: 71000 });
    const res = await post(mf, update);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /application\/json/);
    assert.deepEqual(await res.json(), { method: "sendMessage", chat_id: -1001500000711, text: "bot: 1, chat: 1, user: 1" });
    assert.equal(res.headers.get("x-edgegram-outcome"), "handled=1; reads=1; puts=3; deletes=0; webhook_reply=1", "nothing queued is stored");
    assert.equal(botApi.calls.length, 0, "the worker made no call itself");
    const again = await post(mf, update);
    assert.equal(again.headers.get("x-edgegram-outcome"), "duplicate=1");
    assert.equal(await again.text(), "duplicate");
    assert.equal((await exportState(mf)).bot_data.count, 1);
  } finally {
    await mf.dispose();
    await botApi.close();
  }
});
