// The demo worker's webhook and admin routes under Miniflare (real workerd, real local KV), with
// a local HTTP server standing in for the Bot API. Contract: docs/demo-worker.md.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startBotApi } from "./support/bot-api.mjs";
import {
  startWorker, commandUpdate, post, exportState, importState, outcome, SECRET, ADMIN, TOKEN,
} from "./support/worker.mjs";

const variants = [
  ["durable_object", "bot"],
  ["durable_object", "chat"],
  ["kv", "bot"],
  ["memory", "bot"],
];

for (const [persistence, routing] of variants) {
  const perChat = routing === "chat";
  describe(`webhook with PERSISTENCE=${persistence}${persistence === "durable_object" ? ` DO_ROUTING=${routing}` : ""}`, () => {
    let botApi, mf;
    before(async () => {
      botApi = await startBotApi();
      mf = await startWorker({ botApi, persistence, routing });
    });
    after(async () => {
      await mf?.dispose();
      await botApi?.close();
    });

    test("/count increments bot, chat and user counters and replies with them", async () => {
      const chat = -1001500000001;
      const replies = [];
      for (const [user, expected] of [[11, "bot: 1, chat: 1, user: 1"], [12, "bot: 2, chat: 2, user: 1"], [11, "bot: 3, chat: 3, user: 2"]]) {
        botApi.clear();
        const res = await post(mf, commandUpdate({ chat, user, text: "/count" }));
        assert.equal(res.status, 200, await res.clone().text());
        // The reply is queued with the three puts and sent after the commit, before the answer.
        assert.deepEqual(outcome(res), { handled: 1, reads: 1, puts: 3, deletes: 0, queued: 1, sent: 1 });
        assert.equal(botApi.calls.length, 1);
        const [call] = botApi.calls;
        assert.equal(call.method, "sendMessage");
        assert.equal(call.token, TOKEN);
        assert.equal(call.params.chat_id, chat);
        replies.push(call.params.text);
        assert.equal(call.params.text, expected);
      }
      const state = await exportState(mf);
      assert.deepEqual(state.bot_data, { count: 3 });
      assert.deepEqual(state.chat_data[String(chat)], { count: 3 });
      assert.deepEqual(state.user_data["11"], { count: 2 });
      assert.deepEqual(state.user_data["12"], { count: 1 });
    });

    test("/count@username in a group is for this bot; /count@other_bot is not", async () => {
      const chat = -2002;
      botApi.clear();
      let res = await post(mf, commandUpdate({ chat, user: 21, text: "/count@edgegram_demo_bot" }));
      assert.equal(res.status, 200);
      assert.equal(outcome(res).handled, 1);
      res = await post(mf, commandUpdate({ chat, user: 21, text: "/count@other_bot" }));
      assert.equal(res.status, 200);
      assert.deepEqual(outcome(res), { handled: 0, reads: 1, puts: 0, deletes: 0 });
      assert.deepEqual(botApi.texts().map((t) => t.split(", ")[1]), ["chat: 1"]);
    });

    test("an update that changes nothing writes nothing", async () => {
      const before = await exportState(mf);
      for (const update of [
        commandUpdate({ chat: 31, user: 31, text: "hello" }),
        commandUpdate({ chat: 31, user: 31, text: "/unknown" }),
        { update_id: 5000, message_reaction: { chat: { id: 31, type: "private" }, new_reaction: [] } },
      ]) {
        const res = await post(mf, update);
        assert.equal(res.status, 200);
        assert.equal(outcome(res).puts, 0);
        assert.equal(outcome(res).deletes, 0);
      }
      assert.deepEqual(await exportState(mf), before);
    });

    test("a storage write failure answers 5xx, leaves no partial state, and the retry applies once", async () => {
      const chat = 41;
      await post(mf, commandUpdate({ chat, user: 41, text: "/count" }));
      const before = await exportState(mf);
      await mf.dispatchFetch("http://localhost/__test/faults?fail_writes=1");
      const update = commandUpdate({ chat, user: 41, text: "/count" });
      const failed = await post(mf, update);
      assert.equal(failed.status, 500);
      assert.match(await failed.text(), /storage failed/);
      assert.deepEqual(await exportState(mf), before);
      const retried = await post(mf, update);
      assert.equal(retried.status, 200);
      const state = await exportState(mf);
      assert.equal(state.chat_data[String(chat)].count, 2);
      assert.equal(state.bot_data.count, before.bot_data.count + 1);
    });

    test("a storage read failure answers 5xx and runs no handler", async () => {
      botApi.clear();
      await mf.dispatchFetch("http://localhost/__test/faults?fail_reads=1");
      const res = await post(mf, commandUpdate({ chat: 42, user: 42, text: "/count" }));
      assert.equal(res.status, 500);
      assert.equal(botApi.calls.length, 0);
    });

    test("a transient Bot API failure of the queued reply keeps the update; the reply is sent once, later", async () => {
      const chat = 43;
      await post(mf, commandUpdate({ chat, user: 43, text: "/count" }));
      const before = await exportState(mf);
      botApi.failNext(1); // the stand-in answers 500
      botApi.clear();
      const update = commandUpdate({ chat, user: 43, text: "/count" });
      const res = await post(mf, update);
      // Stored with its reply. Durable Objects: 200, the object's alarm sends the reply again
      // (1 s later); KV has no alarm: 500, and Telegram's redelivery, a duplicate, sends what
      // is left and nothing else. Memory (tests only) keeps no update records, so a
      // redelivery would run the update again: 200, and the reply stays unsent.
      const alarm = persistence === "durable_object";
      assert.equal(res.status, alarm || persistence === "memory" ? 200 : 500, await res.text());
      assert.equal((await exportState(mf)).user_data["43"].count, before.user_data["43"].count + 1);
      if (persistence === "memory") {
        assert.deepEqual(botApi.delivered(), []);
        return;
      }
      if (!alarm) {
        assert.equal(res.headers.get("x-edgegram-outcome"), "unsent=1");
        const retry = await post(mf, update);
        assert.equal(retry.status, 200);
        assert.equal(retry.headers.get("x-edgegram-outcome"), "duplicate=1");
      } else {
        const end = Date.now() + 10_000;
        while (botApi.delivered().length < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      }
      const after = await exportState(mf);
      assert.equal(after.user_data["43"].count, before.user_data["43"].count + 1, "applied once");
      const replies = botApi.delivered().filter((c) => c.method === "sendMessage").map((c) => c.params.text);
      assert.deepEqual(replies, [`bot: ${after.bot_data.count}, chat: ${after.chat_data["43"].count}, user: ${after.user_data["43"].count}`], "sent once");
      assert.equal(botApi.calls.filter((c) => c.fault).length, 1);
    });

    test("export and import round-trip python-telegram-bot's DictPersistence shapes", async () => {
      const doc = {
        bot_data: { count: 41 },
        chat_data: { "-1001500000001": { count: 7 }, "555": { note: "x" } },
        user_data: { "456": { count: 2, age: "12" } },
        conversations: { profile: { "[-1001500000001, 456]": "CHOOSING" } },
        // Keyboard and button ids as PTB makes them (uuid4().hex): an import takes no other.
        callback_data: perChat ? null : [[["0f1e".repeat(8), 1700000000.5, { ["a1".repeat(16)]: [1, []] }]], { "9876": "0f1e".repeat(8) }],
      };
      const res = await importState(mf, doc);
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(await res.json(), { imported: perChat ? 5 : 7 });
      assert.deepEqual(await exportState(mf), doc);
      botApi.clear();
      await post(mf, commandUpdate({ chat: -1001500000001, user: 456, text: "/count" }));
      assert.deepEqual(botApi.texts(), ["bot: 42, chat: 8, user: 3"]);
    });

    test("an invalid import names the first bad path and writes nothing", async () => {
      const before = await exportState(mf);
      const res = await importState(mf, { bot_data: {}, chat_data: { "12": {}, "abc": {} } });
      assert.equal(res.status, 400);
      assert.match(await res.text(), /^chat_data\.abc: key is not an integer id/);
      const notJson = await importState(mf, "{nope");
      assert.equal(notJson.status, 400);
      assert.deepEqual(await exportState(mf), before);
    });
  });
}

describe("webhook input checks", () => {
  let botApi, mf;
  before(async () => {
    botApi = await startBotApi();
    mf = await startWorker({ botApi });
  });
  after(async () => {
    await mf?.dispose();
    await botApi?.close();
  });

  test("a missing or wrong secret is 401 and touches nothing", async () => {
    const update = commandUpdate({ chat: 51, user: 51, text: "/count" });
    for (const secret of [null, "", "wrong", SECRET + "x", SECRET.slice(0, -1)]) {
      const res = await post(mf, update, { secret });
      assert.equal(res.status, 401, `secret ${secret}`);
    }
    assert.equal(botApi.calls.length, 0);
    assert.deepEqual((await exportState(mf)).chat_data, {});
  });

  test("bodies that are not a JSON object with an integer update_id are 400 with the reason", async () => {
    const cases = [
      ["{not json", /not valid JSON/],
      ["[1,2]", /not a JSON object/],
      ['"text"', /not a JSON object/],
      ['{"message": {}}', /no update_id/],
      ['{"update_id": "12"}', /update_id is not an integer/],
      ['{"update_id": 1.5}', /update_id is not an integer/],
    ];
    for (const [body, reason] of cases) {
      const res = await post(mf, body);
      assert.equal(res.status, 400, body);
      assert.match(await res.text(), reason);
    }
  });

  test("a body over 1 MiB is 413", async () => {
    const big = JSON.stringify({ update_id: 1, message: { text: "x".repeat(1 << 20) } });
    const res = await post(mf, big);
    assert.equal(res.status, 413);
  });

  test("other methods are 405, other content types 415, unknown paths 404", async () => {
    const get = await post(mf, null, { method: "GET" });
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST");
    const form = await post(mf, "update_id=1", { headers: { "content-type": "application/x-www-form-urlencoded" } });
    assert.equal(form.status, 415);
    const res = await mf.dispatchFetch("http://localhost/nope");
    assert.equal(res.status, 404);
  });

  test("unknown update types and unknown fields are 200 and ignored", async () => {
    const res = await post(mf, { update_id: 77, business_connection: { id: "b", user: { id: 1 } }, future_field: [1] });
    assert.equal(res.status, 200);
    const malformedKnown = await post(mf, { update_id: 78, message: "not an object" });
    assert.equal(malformedKnown.status, 200);
    assert.equal(await malformedKnown.text(), "ignored");
    const extra = commandUpdate({ chat: 52, user: 52, text: "/count" });
    extra.message.brand_new_field = { nested: true };
    extra.message.chat.type = "some_future_chat_type";
    const counted = await post(mf, extra);
    assert.equal(counted.status, 200);
    assert.equal(outcome(counted).puts, 3);
  });

  test("admin routes: wrong token 401", async () => {
    for (const auth of [undefined, "Bearer wrong", `Basic ${ADMIN}`, `Bearer ${ADMIN}x`]) {
      const res = await mf.dispatchFetch("http://localhost/admin/export", {
        headers: auth ? { Authorization: auth } : {},
      });
      assert.equal(res.status, 401, String(auth));
    }
  });
});

describe("configuration", () => {
  test("admin routes are 404 without ADMIN_TOKEN; webhooks are refused without WEBHOOK_SECRET", async () => {
    const botApi = await startBotApi();
    const mf = await startWorker({ botApi, bindings: { ADMIN_TOKEN: "", WEBHOOK_SECRET: "" } });
    try {
      const res = await mf.dispatchFetch("http://localhost/admin/export", {
        headers: { Authorization: "Bearer " },
      });
      assert.equal(res.status, 404);
      const hook = await post(mf, commandUpdate({ chat: 1, user: 1, text: "/count" }));
      assert.equal(hook.status, 500);
      assert.match(await hook.text(), /secret not configured/);
    } finally {
      await mf.dispose();
      await botApi.close();
    }
  });

  test("ALLOW_INSECURE_WEBHOOK=1 accepts webhooks without a secret (local development)", async () => {
    const botApi = await startBotApi();
    const mf = await startWorker({ botApi, bindings: { WEBHOOK_SECRET: "", ALLOW_INSECURE_WEBHOOK: "1" } });
    try {
      const res = await post(mf, commandUpdate({ chat: 1, user: 1, text: "/count" }), { secret: null });
      assert.equal(res.status, 200);
      assert.deepEqual(botApi.texts(), ["bot: 1, chat: 1, user: 1"]);
    } finally {
      await mf.dispose();
      await botApi.close();
    }
  });
});
