// Hostile input and failing storage: clear answers, nothing lost, the token never leaked.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { startBotApi } from "./support/bot-api.mjs";
import { startWorker, commandUpdate, post, exportState, importState, TOKEN } from "./support/worker.mjs";

async function withWorker({ botApi: botApiOptions = {}, ...options }, body) {
  const botApi = await startBotApi(botApiOptions);
  const logs = [];
  const mf = await startWorker({ botApi, onLog: (line) => logs.push(line), ...options });

  try {
    await body({ mf, botApi, logs });
  } finally {
    await mf.dispose();
    await botApi.close();
  }
}

describe("failing KV", () => {
  test("429s are retried with backoff inside the request; the update then succeeds", () =>
    withWorker({ persistence: "kv" }, async ({ mf, botApi }) => {
      await mf.dispatchFetch("http://localhost/__test/faults?kv_errors=3");
      const res = await post(mf, commandUpdate({ chat: 61, user: 61, text: "/count" }));
      assert.equal(res.status, 200, await res.text());
      assert.equal((await exportState(mf)).chat_data["61"].count, 1);
      assert.deepEqual(botApi.texts(), ["bot: 1, chat: 1, user: 1"]);
    }));

  test("when KV keeps failing the update is 5xx and nothing changes; Telegram's retry then applies it once", () =>
    withWorker({ persistence: "kv" }, async ({ mf, botApi }) => {
      const update = commandUpdate({ chat: 62, user: 62, text: "/count" });
      await mf.dispatchFetch("http://localhost/__test/faults?kv_errors=5");
      const failed = await post(mf, update);
      assert.equal(failed.status, 500);
      assert.match(await failed.text(), /storage failed/);
      assert.equal(botApi.calls.length, 0);
      assert.deepEqual((await exportState(mf)).chat_data, {});
      assert.equal((await post(mf, update)).status, 200);
      assert.equal((await exportState(mf)).chat_data["62"].count, 1);
    }));
});

describe("corrupt stored values", () => {
  test("KV: a value that cannot be decoded fails the update, which is dead-lettered (no redelivery for a day); the value is never overwritten", () =>
    withWorker({ persistence: "kv" }, async ({ mf, botApi, logs }) => {
      const kv = await mf.getKVNamespace("EDGEGRAM_KV");
      await kv.put("eg1:chat:63", "{\"count\": 1");
      const res = await post(mf, commandUpdate({ chat: 63, user: 63, text: "/count" }));
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-edgegram-outcome"), "dead-letter=1");
      assert.equal(await kv.get("eg1:chat:63"), "{\"count\": 1");
      assert.equal(botApi.calls.length, 0);
      assert.ok(logs.some((l) => l.includes("chat:63") && l.includes("cannot be decoded")), logs.join(""));
      const exported = await mf.dispatchFetch("http://localhost/admin/export", { headers: { Authorization: "Bearer test-admin-token" } });
      assert.equal(exported.status, 500);
    }));
});

describe("size guards", () => {
  test("Durable Objects: an entry over 2 MB is refused before anything is written", () =>
    withWorker({ persistence: "durable_object" }, async ({ mf }) => {
      await importState(mf, { bot_data: { keep: true } });
      const res = await importState(mf, { bot_data: { replaced: true }, chat_data: { "1": { blob: "x".repeat(2_100_000) } } });
      assert.equal(res.status, 400);
      assert.match(await res.text(), /over the limit of 2000000/);
      assert.deepEqual((await exportState(mf)).bot_data, { keep: true });
    }));

  test("KV: a key over 512 bytes is refused before anything is written", () =>
    withWorker({ persistence: "kv" }, async ({ mf }) => {
      await importState(mf, { bot_data: { keep: true } });
      const name = "n".repeat(600);
      const res = await importState(mf, { bot_data: {}, conversations: { [name]: { "[1, 2]": "A" } } });
      assert.equal(res.status, 400);
      assert.match(await res.text(), /key for .* over the limit of 512/);
      assert.deepEqual((await exportState(mf)).bot_data, { keep: true });
    }));
});

describe("the bot token", () => {
  for (const persistence of ["durable_object", "kv"]) {
    test(`never appears in logs, answers or exports (${persistence})`, () =>
      withWorker({ persistence, botApi: { echoUrlInErrors: true } }, async ({ mf, botApi, logs }) => {
        // A Bot API error that quotes the URL, which contains the token.
        botApi.failNext(1);
        const res = await post(mf, commandUpdate({ chat: 64, user: 64, text: "/count" }));
        assert.equal(res.status, 500, "a 5xx from the Bot API is transient: Telegram redelivers");
        const body = await res.text();
        // An unreachable Bot API: the runtime's fetch error names the URL.
        const unreachable = await startWorker({
          botApi: { url: "http://127.0.0.1:9" }, persistence, onLog: (line) => logs.push(line),
        });
        try {
          const down = await post(unreachable, commandUpdate({ chat: 65, user: 65, text: "/count" }));
          assert.equal(down.status, 500);
          await down.text();
        } finally {
          await unreachable.dispose();
        }
        await new Promise((r) => setTimeout(r, 200)); // let log lines arrive
        const all = logs.join("");
        assert.match(all, /Bot API sendMessage failed/, "the failures were logged");
        assert.match(all, /<token>/, "and the token was redacted in them");
        assert.ok(!all.includes(TOKEN), "token in logs");
        assert.ok(!all.includes(TOKEN.split(":")[1]), "token secret part in logs");
        assert.ok(!body.includes(TOKEN));
        assert.ok(!JSON.stringify(await exportState(mf)).includes(TOKEN));
      }));
  }
});
