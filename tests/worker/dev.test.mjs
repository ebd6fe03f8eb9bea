// The README's `npm run dev` promise, checked end to end: the demo bot on `wrangler dev` with
// local Durable Objects answers /count through the in-worker Bot API recorder
// (DEV_RECORD_BOT_API=1), and its data and the recorded calls survive a restart.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { admin, randomPort, startDev, stopDev, waitReady } from "./support/dev-server.mjs";

const PORT = randomPort();

async function count(dev, updateId) {
  const res = await fetch(`${dev.base}/webhook`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      update_id: updateId,
      message: {
        message_id: updateId, date: 0, chat: { id: 7, type: "private" },
        from: { id: 7, is_bot: false, first_name: "Dev" }, text: "/count",
        entities: [{ type: "bot_command", offset: 0, length: 6 }],
      },
    }),
  });
  assert.equal(res.status, 200, await res.text());
}

test("npm run dev: /count three times, restart, the next /count gives 4; the recorder keeps its calls", { timeout: 420_000 }, async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), "edgegram-dev-"));
  try {
    let dev = startDev({ port: PORT, stateDir });
    try {
      await waitReady(dev);
      assert.match(dev.output(), new RegExp(`\\[dev\\] playground: http://127\\.0\\.0\\.1:${PORT}/`));
      for (const id of [1, 2, 3]) await count(dev, id);
      const state = await admin(dev, "/admin/export");
      assert.deepEqual(state.bot_data, { count: 3 });
      assert.deepEqual(state.user_data["7"], { count: 3 });
      const info = await admin(dev, "/admin/info");
      assert.deepEqual(info, { persistence: "durable_object", do_routing: "bot", dev_record_bot_api: true, bot_username: "edgegram_demo_bot" });
    } finally {
      await stopDev(dev);
    }
    dev = startDev({ port: PORT, stateDir });
    try {
      await waitReady(dev);
      await count(dev, 4);
      const state = await admin(dev, "/admin/export");
      assert.deepEqual(state.bot_data, { count: 4 });
      assert.deepEqual(state.chat_data["7"], { count: 4 });
      const { calls, last } = await admin(dev, "/admin/dev/calls?after=0");
      assert.equal(last, 4, "the log survived the restart");
      assert.deepEqual(
        calls.map((c) => [c.seq, c.method, c.params.chat_id, c.params.text, c.result.message_id]),
        [1, 2, 3, 4].map((n) => [n, "sendMessage", 7, `bot: ${n}, chat: ${n}, user: ${n}`, n]),
      );
      const newer = await admin(dev, "/admin/dev/calls?after=3");
      assert.deepEqual(newer.calls.map((c) => c.seq), [4]);
      // Nothing was sent anywhere: there is no stand-in to send to, and no token.
      assert.doesNotMatch(dev.output(), /BOT_TOKEN is not set|Bot API .* failed/);
    } finally {
      await stopDev(dev);
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});
