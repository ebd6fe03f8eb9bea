// The README's `npm run dev` promise, checked end to end: the demo bot on `wrangler dev` with
// local KV answers /count, and its data survives a restart of the dev server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { root } from "./support/worker.mjs";

const PORT = 18787 + Math.floor(Math.random() * 1000);
const BOT_API_PORT = PORT + 1000;
const base = `http://127.0.0.1:${PORT}`;

function startDev(stateDir) {
  const child = spawn(process.execPath, [path.join(root, "scripts", "dev.mjs")], {
    cwd: root,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, DEV_PORT: String(PORT), BOT_API_PORT: String(BOT_API_PORT), STATE_DIR: stateDir },
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  return { child, exited, output: () => output };
}

async function stopDev(dev) {
  try {
    process.kill(-dev.child.pid, "SIGTERM");
  } catch {}
  const timer = setTimeout(() => {
    try {
      process.kill(-dev.child.pid, "SIGKILL");
    } catch {}
  }, 5000);
  await dev.exited;
  clearTimeout(timer);
}

async function waitReady(dev) {
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${base}/admin/export`, { headers: { Authorization: "Bearer dev-admin" } });
      if (res.status === 200) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`wrangler dev did not become ready:\n${dev.output()}`);
}

async function count(updateId) {
  const res = await fetch(`${base}/webhook`, {
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

test("npm run dev: /count three times, restart, the next /count gives 4", { timeout: 420_000 }, async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), "edgegram-dev-"));
  try {
    let dev = startDev(stateDir);
    try {
      await waitReady(dev);
      for (const id of [1, 2, 3]) await count(id);
      const state = await (await fetch(`${base}/admin/export`, { headers: { Authorization: "Bearer dev-admin" } })).json();
      assert.deepEqual(state.bot_data, { count: 3 });
      assert.deepEqual(state.user_data["7"], { count: 3 });
    } finally {
      await stopDev(dev);
    }
    dev = startDev(stateDir);
    try {
      await waitReady(dev);
      await count(4);
      const state = await (await fetch(`${base}/admin/export`, { headers: { Authorization: "Bearer dev-admin" } })).json();
      assert.deepEqual(state.bot_data, { count: 4 });
      assert.deepEqual(state.chat_data["7"], { count: 4 });
      assert.match(dev.output(), /sendMessage \{"chat_id":7,"text":"bot: 4, chat: 4, user: 4"\}/);
    } finally {
      await stopDev(dev);
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});
