// DEV_RECORD_BOT_API=1 under Miniflare (real workerd): the Bot API calls are recorded in the
// `devlog` Durable Object and answered as Telegram would, never sent; the read routes are admin
// routes, local only, and the log keeps the last 1000 calls.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startBotApi } from "./support/bot-api.mjs";
import { startWorker, commandUpdate, pressUpdate, post, ADMIN } from "./support/worker.mjs";

const GROUP = -1001500000077;
let nextId = 1;

function say(chat, user, text) {
  return commandUpdate({ chat, user, text, updateId: nextId++ });
}

function press(chat, user, messageId, data) {
  return pressUpdate({ chat, user, messageId, data, updateId: nextId++ });
}

async function calls(mf, after = 0, { token = ADMIN, host = "localhost" } = {}) {
  const headers = token === null ? {} : { Authorization: `Bearer ${token}` };
  return mf.dispatchFetch(`http://${host}/admin/dev/calls?after=${after}`, { headers });
}

async function callsAfter(mf, after) {
  const res = await calls(mf, after);
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

const backends = [["durable_object", "bot"], ["durable_object", "chat"], ["kv", "bot"]];

for (const [persistence, routing] of backends) {
  describe(`DEV_RECORD_BOT_API=1 on ${persistence}${persistence === "durable_object" ? ` (DO_ROUTING=${routing})` : ""}`, () => {
    let botApi;
    let mf;
    before(async () => {
      botApi = await startBotApi();
      mf = await startWorker({ botApi, persistence, routing, bindings: { DEV_RECORD_BOT_API: "1" } });
    });
    after(async () => {
      await mf?.dispose();
      await botApi?.close();
    });

    test("calls are recorded and answered like Telegram, per-chat message ids, nothing sent", async () => {
      let res = await post(mf, say(5, 5, "/start"));
      assert.equal(res.status, 200, await res.text());
      let log = await callsAfter(mf, 0);
      assert.equal(log.calls.length, 1);
      const [start] = log.calls;
      assert.equal(start.method, "sendMessage");
      assert.equal(start.ok, true);
      assert.equal(start.result.message_id, 1);
      assert.deepEqual(start.result.chat, { id: 5, type: "private" });
      assert.equal(start.result.from.is_bot, true);
      // As Telegram: a sent message carries an inline keyboard, not a reply keyboard (the page
      // reads reply keyboards from the call's params).
      assert.equal(start.result.reply_markup, undefined, "a reply keyboard is not part of the message");
      assert.deepEqual(start.params.reply_markup.keyboard[2], [{ text: "Done" }]);

      // The page's own message takes the next id of the chat, as on Telegram.
      const taken = await mf.dispatchFetch(`http://localhost/admin/dev/message-id?chat=5`, {
        method: "POST",
        headers: { Authorization: `Bearer ${ADMIN}` },
      });
      assert.equal(taken.status, 200);
      assert.deepEqual(await taken.json(), { message_id: 2 });

      res = await post(mf, say(5, 5, "/list"));
      assert.equal(res.status, 200);
      log = await callsAfter(mf, start.seq);
      assert.deepEqual(log.calls.map((c) => c.method), ["sendMessage"]);
      const list = log.calls[0];
      assert.equal(list.result.message_id, 3);
      assert.deepEqual(list.result.reply_markup, list.params.reply_markup);
      const data = list.params.reply_markup.inline_keyboard[0][1].callback_data;

      res = await post(mf, press(5, 5, 3, data));
      assert.equal(res.status, 200);
      log = await callsAfter(mf, list.seq);
      assert.deepEqual(log.calls.map((c) => [c.method, c.ok]), [["answerCallbackQuery", true], ["editMessageText", true]]);
      assert.equal(log.calls[0].result, true);
      const edit = log.calls[1];
      assert.equal(edit.result.message_id, 3, "an edit keeps its message id");
      assert.equal(edit.result.text, "Numbers chosen so far: [2]");
      assert.equal(typeof edit.result.edit_date, "number");
      assert.deepEqual(edit.result.reply_markup, edit.params.reply_markup);
      assert.equal(log.last, edit.seq);

      // Another chat counts its own ids.
      res = await post(mf, say(GROUP, 5, "/count"));
      assert.equal(res.status, 200);
      log = await callsAfter(mf, edit.seq);
      assert.equal(log.calls[0].result.message_id, 1);
      assert.deepEqual(log.calls[0].result.chat, { id: GROUP, type: "supergroup" });

      assert.deepEqual(botApi.calls, [], "nothing reached a Bot API");
    });

    test("the dev routes: 401 with a wrong token, 404 off loopback, 404 for unknown routes", async () => {
      assert.equal((await calls(mf, 0, { token: "wrong" })).status, 401);
      assert.equal((await calls(mf, 0, { token: null })).status, 401);
      assert.equal((await calls(mf, 0, { host: "edgegram-demo.example.workers.dev" })).status, 404);
      const unknown = await mf.dispatchFetch("http://localhost/admin/dev/nothing", { headers: { Authorization: `Bearer ${ADMIN}` } });
      assert.equal(unknown.status, 404);
      const badChat = await mf.dispatchFetch("http://localhost/admin/dev/message-id?chat=abc", {
        method: "POST",
        headers: { Authorization: `Bearer ${ADMIN}` },
      });
      assert.equal(badChat.status, 400);
    });
  });
}

describe("the recorder is off by default and the routes need ADMIN_TOKEN", () => {
  test("without DEV_RECORD_BOT_API calls go to the Bot API and /admin/dev/ is 404", async () => {
    const botApi = await startBotApi();
    const mf = await startWorker({ botApi, persistence: "durable_object" });
    try {
      const res = await post(mf, say(6, 6, "/count"));
      assert.equal(res.status, 200);
      assert.deepEqual(botApi.calls.map((c) => c.method), ["sendMessage"]);
      assert.equal((await calls(mf, 0)).status, 404);
      const info = await mf.dispatchFetch("http://localhost/admin/info", { headers: { Authorization: `Bearer ${ADMIN}` } });
      assert.deepEqual(await info.json(), { persistence: "durable_object", do_routing: "bot", dev_record_bot_api: false, bot_username: "edgegram_demo_bot" });
    } finally {
      await mf.dispose();
      await botApi.close();
    }
  });

  test("with DEV_RECORD_BOT_API=1 but no ADMIN_TOKEN the dev routes are 404", async () => {
    const botApi = await startBotApi();
    const mf = await startWorker({ botApi, persistence: "durable_object", bindings: { DEV_RECORD_BOT_API: "1", ADMIN_TOKEN: "" } });
    try {
      assert.equal((await calls(mf, 0)).status, 404);
      assert.equal((await mf.dispatchFetch("http://localhost/admin/info")).status, 404);
    } finally {
      await mf.dispose();
      await botApi.close();
    }
  });
});

test("the log keeps the last 1000 calls", { timeout: 180_000 }, async () => {
  const botApi = await startBotApi();
  const mf = await startWorker({ botApi, persistence: "memory", bindings: { DEV_RECORD_BOT_API: "1" } });
  try {
    const total = 1005;
    let sent = 0;
    const worker = async () => {
      while (sent < total) {
        sent += 1;
        const res = await post(mf, say(9, 9, "/count"));
        assert.equal(res.status, 200);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const log = await callsAfter(mf, 0);
    assert.equal(log.last, total);
    assert.equal(log.calls.length, 1000);
    assert.equal(log.calls[0].seq, total - 999, "the oldest five are gone");
    assert.equal(log.calls.at(-1).seq, total);
    const ids = log.calls.map((c) => c.result.message_id).sort((a, b) => a - b);
    assert.equal(new Set(ids).size, 1000, "every message got its own id");
    assert.equal(ids.at(-1), total);
    assert.deepEqual(botApi.calls, []);
  } finally {
    await mf.dispose();
    await botApi.close();
  }
});
