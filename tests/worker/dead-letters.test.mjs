// Bounded attempts and the dead-letter list (issue "Bot API calls after the commit", item 4;
// the demo contract: "An update that fails deterministically is not answered 5xx for ever").
// On every backend with a list: a transient failure is answered 500 until the bound, then
// acknowledged; a deterministic one at once; either way the update is listed by
// GET /admin/dead-letters with why, and a later copy is a duplicate.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startBotApi } from "./support/bot-api.mjs";
import { startWorker, commandUpdate, post, exportState, ADMIN } from "./support/worker.mjs";

const GROUP = -1001500000888;

async function admin(mf, path, init = {}) {
  return mf.dispatchFetch(`http://localhost${path}`, { ...init, headers: { Authorization: `Bearer ${ADMIN}`, ...(init.headers ?? {}) } });
}

const deadLetters = async (mf) => (await (await admin(mf, "/admin/dead-letters")).json()).dead_letters;

const setups = [
  { name: "Durable Objects, DO_ROUTING=bot", persistence: "durable_object", routing: "bot" },
  { name: "Durable Objects, DO_ROUTING=chat", persistence: "durable_object", routing: "chat" },
  { name: "KV", persistence: "kv", routing: "bot" },
  { name: "D1", persistence: "d1", routing: "bot" },
];

for (const setup of setups) {
  test(`${setup.name}: a storage failure on every delivery is answered 500 twice, then dead-lettered on the third`, async () => {
    const botApi = await startBotApi();
    const mf = await startWorker({ botApi, persistence: setup.persistence, routing: setup.routing, bindings: { MAX_UPDATE_ATTEMPTS: "3" } });
    try {
      const update = commandUpdate({ chat: GROUP, user: 3, text: "/count", updateId: 9100 });
      const statuses = [];
      for (let delivery = 1; delivery <= 3; delivery++) {
        const armed = await admin(mf, "/__test/faults?fail_writes=1", { method: "POST" });
        assert.equal(armed.status, 200);
        const res = await post(mf, update);
        statuses.push([res.status, res.headers.get("x-edgegram-outcome")]);
      }
      assert.deepEqual(statuses, [[500, null], [500, null], [200, "dead-letter=1"]]);
      const letters = await deadLetters(mf);
      assert.equal(letters.length, 1, JSON.stringify(letters));
      assert.equal(letters[0].update_id, 9100);
      assert.equal(letters[0].attempts, 3);
      assert.equal(letters[0].recurrence, "transient");
      assert.match(letters[0].error, /injected|storage|write/i);
      assert.deepEqual(letters[0].update, update, "the update as Telegram sent it");
      const again = await post(mf, update);
      assert.equal(again.headers.get("x-edgegram-outcome"), "duplicate=1", "a later copy is done with");
      assert.equal((await exportState(mf)).user_data["3"], undefined, "the update's change was never applied");
    } finally {
      await mf.dispose();
      await botApi.close();
    }
  });

  test(`${setup.name}: an entry that cannot be decoded dead-letters the update at once, and the others go on`, async () => {
    const botApi = await startBotApi();
    const mf = await startWorker({ botApi, persistence: setup.persistence, routing: setup.routing });
    try {
      // user_data lives in the bot object, the home object with chat routing.
      const corrupt = await admin(mf, `/__test/corrupt?key=${encodeURIComponent("eg1:user:4")}&object=bot`, { method: "POST" });
      assert.equal(corrupt.status, 200, await corrupt.text());
      const res = await post(mf, commandUpdate({ chat: GROUP, user: 4, text: "/count", updateId: 9200 }));
      assert.equal(res.status, 200, "never 5xx for a failure that cannot pass");
      assert.equal(res.headers.get("x-edgegram-outcome"), "dead-letter=1");
      const letters = await deadLetters(mf);
      assert.deepEqual(letters.map((l) => [l.update_id, l.attempts, l.recurrence]), [[9200, 1, "deterministic"]]);
      assert.match(letters[0].error, /user:4 cannot be decoded/, "the error names the key");
      const other = await post(mf, commandUpdate({ chat: GROUP, user: 5, text: "/count", updateId: 9201 }));
      assert.equal(other.status, 200);
      assert.match(other.headers.get("x-edgegram-outcome"), /^handled=1/);
      assert.equal(botApi.texts().at(-1), "bot: 1, chat: 1, user: 1");
    } finally {
      await mf.dispose();
      await botApi.close();
    }
  });
}
