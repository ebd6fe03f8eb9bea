// The README's D1 example queries (README, "D1: the bot's state in SQL", the sql block), run as
// written against the local D1 database after some /count updates, with the answers they
// must give; and the README's claim about its UPDATE: the user's next update sees it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { startBotApi } from "./support/bot-api.mjs";
import { startWorker, commandUpdate, post, exportState, root } from "./support/worker.mjs";

/** The statements of the first sql block of the README's D1 section, comments dropped. */
function readmeQueries() {
  const readme = readFileSync(path.join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("### D1: the bot's state in SQL"));
  const block = /```sql\n([\s\S]*?)```/.exec(section);
  assert.ok(block, "the README's D1 section has an sql block");
  return block[1]
    .split("\n").filter((line) => !line.startsWith("--")).join("\n")
    .split(/;\s*$/m).map((s) => s.trim()).filter(Boolean);
}

test("the README's D1 queries answer what it says after /count updates", async () => {
  const botApi = await startBotApi();
  const mf = await startWorker({ botApi, persistence: "d1" });
  try {
    const GROUP = -100;
    const sends = [[GROUP, 101], [GROUP, 101], [GROUP, 101], [GROUP, 102], [GROUP, 102], [103, 103]];
    for (const [chat, user] of sends) {
      const res = await post(mf, commandUpdate({ chat, user, text: "/count" }));
      assert.equal(res.status, 200, await res.text());
    }
    const db = await mf.getD1Database("EDGEGRAM_D1");
    const queries = readmeQueries();
    assert.equal(queries.length, 5, queries.join("\n"));
    const run = (sql) => db.prepare(sql).all();

    assert.deepEqual((await run(queries[0])).results, [{ count: 3 }]);
    assert.deepEqual((await run(queries[1])).results, [
      { user_id: 101, count: 3 },
      { user_id: 102, count: 2 },
      { user_id: 103, count: 1 },
    ]);
    const recent = (await run(queries[2])).results;
    assert.deepEqual(recent.map((r) => r.chat_id).sort((a, b) => a - b), [GROUP, 103]);
    for (const r of recent) assert.match(r.at, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    assert.deepEqual((await run(queries[3])).results, [{ handled: 6 }]);

    // The outside UPDATE: one row changed, and the user's next update goes on from it.
    const update = await run(queries[4]);
    assert.equal(update.meta.changes, 1);
    const res = await post(mf, commandUpdate({ chat: GROUP, user: 101, text: "/count" }));
    assert.equal(res.status, 200, await res.text());
    assert.deepEqual((await run(queries[0])).results, [{ count: 101 }]);
    const state = await exportState(mf);
    assert.equal(state.user_data["101"].count, 101);
    assert.equal(state.chat_data[String(GROUP)].count, 6);
    // The data column is the entry's JSON exactly as the export shows it.
    const row = await db.prepare("SELECT data, version FROM user_data WHERE user_id = 102").first();
    assert.deepEqual(JSON.parse(row.data), state.user_data["102"]);
    assert.equal(row.version, 1);
  } finally {
    await mf.dispose();
    await botApi.close();
  }
});
