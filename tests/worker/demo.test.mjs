// The demo's persistent conversation and arbitrary callback data on real workerd, for every
// backend, with the runtime restarted midway: the state lives in storage, not in the isolate.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startBotApi } from "./support/bot-api.mjs";
import { startWorker, commandUpdate, pressUpdate, post, exportState } from "./support/worker.mjs";

const GROUP = -1001500000042;
let nextId = 1;

function message(chat, user, text) {
  return commandUpdate({ chat, user, text, updateId: nextId++ });
}

function press(chat, user, messageId, data) {
  return pressUpdate({ chat, user, messageId, data, updateId: nextId++ });
}

/** A worker whose storage survives `restart()`. */
async function restartable(persistence, routing) {
  const dir = mkdtempSync(path.join(tmpdir(), "edgegram-demo-"));
  const botApi = await startBotApi();
  const options = { botApi, persistence, routing, kvPersist: path.join(dir, "kv"), doPersist: path.join(dir, "do") };
  let mf = await startWorker(options);
  const send = async (update) => {
    botApi.clear();
    const res = await post(mf, update);
    assert.equal(res.status, 200, await res.text());
    return botApi.calls.map((c) => ({ method: c.method, ...c.params }));
  };
  return {
    send,
    say: (chat, user, text) => send(message(chat, user, text)),
    press: (chat, user, messageId, data) => send(press(chat, user, messageId, data)),
    state: () => exportState(mf),
    restart: async () => {
      await mf.dispose();
      mf = await startWorker(options);
    },
    close: async () => {
      await mf.dispose();
      await botApi.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const backends = [["durable_object", "bot"], ["durable_object", "chat"], ["kv", "bot"]];

for (const [persistence, routing] of backends) {
  describe(`demo on ${persistence}${persistence === "durable_object" ? ` (DO_ROUTING=${routing})` : ""}`, () => {
    test("the profile conversation continues across a restart; two users interleave in one group", async () => {
      const bot = await restartable(persistence, routing);
      try {
        const conv = async (user) => (await bot.state()).conversations.profile?.[`[${GROUP}, ${user}]`];
        const started = await bot.say(GROUP, 1, "/start");
        assert.deepEqual(started[0].reply_markup.keyboard[2], [{ text: "Done" }]);
        await bot.say(GROUP, 2, "/start");
        await bot.say(GROUP, 1, "Age");
        assert.equal(await conv(1), "TYPING_REPLY");
        assert.equal(await conv(2), "CHOOSING");

        await bot.restart();

        const noted = await bot.say(GROUP, 1, "Forty");
        assert.match(noted[0].text, /age - forty/);
        assert.equal(await conv(1), "CHOOSING");
        await bot.say(GROUP, 2, "Something else...");
        assert.equal(await conv(2), "TYPING_CHOICE");
        assert.deepEqual(await bot.say(GROUP, 1, "/start"), [], "re-entry is off");

        await bot.restart();

        await bot.say(GROUP, 2, "Pet");
        await bot.say(GROUP, 2, "Cat");
        const shown = await bot.say(GROUP, 2, "/show_data");
        assert.match(shown[0].text, /pet - cat/);
        const done = await bot.say(GROUP, 1, "Done");
        assert.deepEqual(done[0].reply_markup, { remove_keyboard: true });
        const state = await bot.state();
        assert.equal(state.conversations.profile?.[`[${GROUP}, 1]`], undefined, "ended conversations disappear");
        assert.equal(state.conversations.profile[`[${GROUP}, 2]`], "CHOOSING");
        assert.deepEqual(state.user_data["1"], { age: "forty" });
        assert.deepEqual(state.user_data["2"], { pet: "cat" });
      } finally {
        await bot.close();
      }
    });

    test("/list presses work across a restart; dropped, unknown and tampered buttons expire", async () => {
      const bot = await restartable(persistence, routing);
      const chat = 4242;
      try {
        const sent = await bot.say(chat, 9, "/list");
        assert.equal(sent[0].text, "Numbers chosen so far: []");
        const first = sent[0].reply_markup.inline_keyboard.flat().map((b) => b.callback_data);
        assert.equal(first.length, 5);
        assert.ok(first.every((d) => d.length <= 64), "Telegram allows 64 bytes");

        await bot.restart();

        const pressed = await bot.press(chat, 9, 1, first[1]);
        assert.deepEqual(pressed.map((c) => c.method), ["answerCallbackQuery", "editMessageText"]);
        assert.equal(pressed[1].text, "Numbers chosen so far: [2]");
        const second = pressed[1].reply_markup.inline_keyboard.flat().map((b) => b.callback_data);

        await bot.restart();

        const again = await bot.press(chat, 9, 1, second[4]);
        assert.equal(again[1].text, "Numbers chosen so far: [2, 5]");
        const third = again[1].reply_markup.inline_keyboard.flat().map((b) => b.callback_data);

        const before = await bot.state();
        const tampered = third[0].slice(0, -1) + (third[0].endsWith("0") ? "1" : "0");
        for (const stale of [first[0], second[0], tampered, "not-an-id", "x".repeat(64)]) {
          const answer = await bot.press(chat, 9, 1, stale);
          assert.deepEqual(answer.map((c) => c.method), ["answerCallbackQuery"], stale);
          assert.equal(answer[0].text, "this button has expired");
        }
        assert.deepEqual(await bot.state(), before, "expired presses change nothing");
        const still = await bot.press(chat, 9, 1, third[2]);
        assert.equal(still[1].text, "Numbers chosen so far: [2, 5, 3]");
      } finally {
        await bot.close();
      }
    });
  });
}

describe("conversation timeouts on Durable Objects", () => {
  test("an idle conversation is ended by the object's alarm, with no update arriving", async () => {
    const botApi = await startBotApi();
    const mf = await startWorker({
      botApi, persistence: "durable_object", bindings: { CONVERSATION_TIMEOUT_SECONDS: "1" },
    });
    try {
      const res = await post(mf, message(777, 7, "/start"));
      assert.equal(res.status, 200);
      const state = await exportState(mf);
      assert.equal(state.conversations.profile["[777, 7]"], "CHOOSING", "export shows only the state");
      const deadline = Date.now() + 10_000;
      let conversations = state.conversations;
      while (Date.now() < deadline && conversations.profile?.["[777, 7]"] !== undefined) {
        await new Promise((r) => setTimeout(r, 250));
        conversations = (await exportState(mf)).conversations;
      }
      assert.equal(conversations.profile?.["[777, 7]"], undefined, "the alarm removed the conversation");
      // The conversation starts afresh.
      await post(mf, message(777, 7, "/start"));
      assert.equal((await exportState(mf)).conversations.profile["[777, 7]"], "CHOOSING");
    } finally {
      await mf.dispose();
      await botApi.close();
    }
  });
});
