// Data lives in storage, not in the isolate: a Miniflare instance disposed and started again
// on the same KV directory continues where it was.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startBotApi } from "./support/bot-api.mjs";
import { startWorker, commandUpdate, post, exportState } from "./support/worker.mjs";

test("KV state survives a restart of the runtime", async () => {
  const kvPersist = mkdtempSync(path.join(tmpdir(), "edgegram-kv-"));
  const botApi = await startBotApi();
  try {
    for (const [round, expected] of [[1, 2], [2, 4], [3, 6]]) {
      const mf = await startWorker({ botApi, kvPersist });
      try {
        for (let i = 0; i < 2; i++) {
          const res = await post(mf, commandUpdate({ chat: -100, user: 5, text: "/count" }));
          assert.equal(res.status, 200);
        }
        const state = await exportState(mf);
        assert.equal(state.chat_data["-100"].count, expected, `round ${round}`);
      } finally {
        await mf.dispose();
      }
    }
    assert.equal(botApi.texts().at(-1), "bot: 6, chat: 6, user: 6");
  } finally {
    await botApi.close();
    rmSync(kvPersist, { recursive: true, force: true });
  }
});

test("PERSISTENCE=memory is lost with the runtime (as documented)", async () => {
  const botApi = await startBotApi();
  try {
    for (let round = 0; round < 2; round++) {
      const mf = await startWorker({ botApi, persistence: "memory" });
      try {
        await post(mf, commandUpdate({ chat: 9, user: 9, text: "/count" }));
        assert.equal((await exportState(mf)).bot_data.count, 1);
      } finally {
        await mf.dispose();
      }
    }
  } finally {
    await botApi.close();
  }
});
