// The README's `npm run dev` promise, checked end to end: the demo bot on `wrangler dev` with
// local Durable Objects answers /count through the in-worker Bot API recorder
// (DEV_RECORD_BOT_API=1), serves the playground page, and its data and the recorded calls
// survive a restart. And plain `npx wrangler dev` at the root runs the demo as it would be
// deployed: no page, no recorder, whatever its vars say.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ADMIN, admin, randomPort, startDev, startWranglerDev, stopDev, waitReady } from "./support/dev-server.mjs";

const PORT = randomPort();

function post(dev, updateId) {
  return fetch(`${dev.base}/webhook`, {
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
}

async function count(dev, updateId) {
  const res = await post(dev, updateId);
  assert.equal(res.status, 200, await res.text());
}

test("npm run dev: /count three times, restart, the next /count gives 4; the recorder keeps its calls", { timeout: 420_000 }, async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), "edgegram-dev-"));
  try {
    let dev = startDev({ port: PORT, stateDir });
    try {
      await waitReady(dev);
      assert.match(dev.output(), new RegExp(`\\[dev\\] playground: http://127\\.0\\.0\\.1:${PORT}/`));
      assert.match(dev.output(), /build-dev\/ \(dev\)/, "npm run dev runs the dev build");
      const page = await fetch(`${dev.base}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<title>edgegram playground<\/title>/);
      assert.equal((await fetch(`${dev.base}/app.js`)).status, 200);
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

test("npx wrangler dev at the root: the demo worker as deployed, without the playground page or the recorder", { timeout: 420_000 }, async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), "edgegram-dev-"));
  const port = randomPort() + 2000;
  // The local-development vars set on purpose: the deploy build has nothing they could switch on.
  const dev = startWranglerDev({ port, stateDir, vars: { ALLOW_INSECURE_WEBHOOK: "1", DEV_RECORD_BOT_API: "1" } });
  try {
    await waitReady(dev);
    assert.match(dev.output(), /build\/ \(deploy\)/, "plain wrangler dev runs the deploy build");
    assert.doesNotMatch(dev.output(), /build-dev/);
    const page = await fetch(`${dev.base}/`);
    assert.equal(page.status, 404, "no playground page");
    assert.doesNotMatch(await page.text(), /playground/);
    assert.equal((await fetch(`${dev.base}/app.js`)).status, 404);
    const calls = await fetch(`${dev.base}/admin/dev/calls?after=0`, { headers: { Authorization: `Bearer ${ADMIN}` } });
    assert.equal(calls.status, 404, "no recorder routes");
    // DEV_RECORD_BOT_API=1 names a recorder the build does not have: the update is refused
    // (Telegram would retry it), not answered by a recorder.
    const res = await post(dev, 1);
    assert.equal(res.status, 500, await res.text());
    const deadline = Date.now() + 10_000;
    while (!/this build has no recorder/.test(dev.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.match(dev.output(), /DEV_RECORD_BOT_API=1, but this build has no recorder/);
  } finally {
    await stopDev(dev);
    rmSync(stateDir, { recursive: true, force: true });
  }
});
