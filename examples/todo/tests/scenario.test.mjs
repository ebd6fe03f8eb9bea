// The to-do bot (examples/todo) built to wasm and run under Miniflare as its wrangler.toml
// describes it (its own Durable Object class, TodoObject), with the Bot API stand-in: add an
// item through the conversation, press its button (the message is edited in place), clear it,
// restart the runtime in between. Also checks the README's "Your own bot" steps: the example's
// wrangler.toml deploys (dry run).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startBotApi } from "../../../tests/worker/support/bot-api.mjs";
import { startWorker, commandUpdate, pressUpdate, post, exportState, root } from "../../../tests/worker/support/worker.mjs";
import { toolEnv } from "../../../scripts/setup.mjs";

const CHAT = 4242;
const USER = 4242;
let nextId = 1;

test("examples/todo: add an item, press it, clear it, across a restart", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "edgegram-todo-"));
  const botApi = await startBotApi();
  const options = { botApi, persistence: "durable_object", build: "examples/todo/build", className: "TodoObject", doPersist: dir };
  let mf = await startWorker(options);
  const send = async (update) => {
    botApi.clear();
    const res = await post(mf, update);
    assert.equal(res.status, 200, await res.text());
    return botApi.calls.map((c) => ({ method: c.method, ...c.params }));
  };
  const say = (text) => send(commandUpdate({ chat: CHAT, user: USER, text, updateId: nextId++ }));
  const press = (messageId, data) => send(pressUpdate({ chat: CHAT, user: USER, messageId, data, updateId: nextId++ }));
  try {
    assert.deepEqual(await say("/add"), [{ method: "sendMessage", chat_id: CHAT, text: "What should I remember?" }]);
    assert.equal((await exportState(mf)).conversations.add[`[${CHAT}, ${USER}]`], "TEXT");

    await mf.dispose();
    mf = await startWorker(options);

    const added = await say("Buy milk");
    assert.equal(added.length, 1);
    assert.equal(added[0].text, "1 thing to do.");
    assert.deepEqual(added[0].reply_markup.inline_keyboard, [[{ text: "☐ Buy milk", callback_data: "toggle:1" }]]);
    const state = await exportState(mf);
    assert.deepEqual(state.user_data[String(USER)], { items: [{ id: 1, text: "Buy milk", done: false }], next_id: 1 });
    assert.equal(state.conversations.add?.[`[${CHAT}, ${USER}]`] ?? null, null, "the conversation ended");

    // The stand-in numbers the bot's messages per chat: the list went out as message 2.
    const toggled = await press(2, "toggle:1");
    assert.deepEqual(toggled.map((c) => c.method), ["answerCallbackQuery", "editMessageText"]);
    assert.equal(toggled[1].message_id, 2);
    assert.equal(toggled[1].text, "All done!");
    assert.deepEqual(toggled[1].reply_markup.inline_keyboard, [
      [{ text: "☑ Buy milk", callback_data: "toggle:1" }],
      [{ text: "Clear done", callback_data: "clear" }],
    ]);

    const cleared = await press(2, "clear");
    assert.equal(cleared[1].text, "Nothing to do. /add something.");
    assert.deepEqual((await exportState(mf)).user_data[String(USER)].items, []);

    const listed = await say("/list");
    assert.equal(listed[0].text, "Nothing to do. /add something.");
  } finally {
    await mf.dispose();
    await botApi.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("examples/todo: a shared location becomes an item; the badge is uploaded as multipart/form-data", async () => {
  const botApi = await startBotApi();
  const options = { botApi, persistence: "durable_object", build: "examples/todo/build", className: "TodoObject" };
  const mf = await startWorker(options);
  const chat = 4343;
  try {
    botApi.clear();
    const located = {
      update_id: nextId++,
      message: { message_id: 1, date: 1700000000, chat: { id: chat, type: "private" },
        from: { id: chat, is_bot: false, first_name: "Ann" }, location: { latitude: 52.52, longitude: 13.405 } },
    };
    let res = await post(mf, located);
    assert.equal(res.status, 200, await res.text());
    assert.deepEqual(botApi.calls.map((c) => [c.method, c.params.text]), [["sendMessage", "1 thing to do."]]);

    botApi.clear();
    res = await post(mf, commandUpdate({ chat, user: chat, text: "/badge", updateId: nextId++ }));
    assert.equal(res.status, 200, await res.text());
    assert.equal(botApi.calls.length, 1);
    const [call] = botApi.calls;
    assert.equal(call.method, "sendPhoto");
    assert.deepEqual(call.params, { chat_id: chat, caption: "0 of 1 done.", photo: "attach://photo" });
    assert.equal(call.files.photo.filename, "badge.png");
    const png = readFileSync(path.join(root, "examples", "todo", "src", "badge.png"));
    assert.ok(call.files.photo.bytes.equals(png), "the bytes arrive as they were");
  } finally {
    await mf.dispose();
    await botApi.close();
  }
});

test("examples/todo: its wrangler.toml builds and deploys (dry run), as README's 'Your own bot' says", () => {
  const example = path.join(root, "examples", "todo");
  const outdir = mkdtempSync(path.join(tmpdir(), "edgegram-todo-deploy-"));
  try {
    const result = spawnSync(path.join(root, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", outdir], {
      cwd: example,
      encoding: "utf8",
      env: toolEnv({
        WRANGLER_SEND_METRICS: "false",
        // Offline: the tools worker-build would otherwise download (README, "Your own bot").
        WASM_BINDGEN_BIN: "wasm-bindgen",
        WASM_OPT_BIN: path.join(root, "node_modules", ".bin", "wasm-opt"),
        ESBUILD_BIN: path.join(root, "node_modules", ".bin", "esbuild"),
      }),
    });
    const output = `${result.stdout}\n${result.stderr}`;
    assert.equal(result.status, 0, output);
    assert.match(output, /--dry-run: exiting now/);
    assert.match(output, /TodoObject/);
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
});
