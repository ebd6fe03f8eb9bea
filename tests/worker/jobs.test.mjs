// Jobs on the Durable Object's alarm (issue "Jobs at the edge"): the demo's `/remind <seconds>
// <text>` schedules a job with the update; the alarm sends the text at its time with no update
// arriving — on both routings, across a restart of the runtime, and for 100 reminders due in
// the same second with 10 % of Bot API calls failing: each sent exactly once. A conversation
// times out at its deadline with no update, its TIMEOUT handler replying. On KV the
// command is refused with a reply that says why.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startBotApi } from "./support/bot-api.mjs";
import { startWorker, commandUpdate, post, exportState } from "./support/worker.mjs";

/** Posts `text` as a command in `chat` and answers the webhook's status. */
async function say(mf, chat, text, user = 5) {
  const res = await post(mf, commandUpdate({ chat, user, text }));
  await res.text();
  return res.status;
}

/** Waits until `check()` holds or `ms` passed; answers whether it held. */
async function until(check, ms) {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  return check();
}

/** The delivered sendMessage texts, with when they were sent. */
const sent = (botApi) => botApi.delivered().filter((c) => c.method === "sendMessage").map((c) => ({ text: c.params.text, chat: c.params.chat_id, at: c.at }));

for (const routing of ["bot", "chat"]) {
  test(`DO_ROUTING=${routing}: a reminder is sent at its time with no update, once, and /reminders lists it until then`, async () => {
    const botApi = await startBotApi();
    const mf = await startWorker({ botApi, persistence: "durable_object", routing });
    const chat = -1001500000901;
    try {
      const setAt = Date.now();
      assert.equal(await say(mf, chat, "/remind 2 stand up"), 200);
      assert.equal(await say(mf, chat, "/reminders"), 200);
      const texts = sent(botApi).map((s) => s.text);
      assert.equal(texts[0], "Reminder set.");
      assert.match(texts[1], /^Pending reminders:\nin [12] s: stand up$/);
      assert.ok(await until(() => sent(botApi).some((s) => s.text === "stand up"), 10_000), "the reminder was sent");
      const reminder = sent(botApi).find((s) => s.text === "stand up");
      assert.equal(reminder.chat, chat);
      const late = reminder.at - (setAt + 2000);
      // Within 1 s of its time (the target), with the machine's own slack on top.
      assert.ok(late >= -50 && late < 2500, `sent ${late} ms after its time`);
      // Nothing more comes: not sent twice.
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(sent(botApi).filter((s) => s.text === "stand up").length, 1);
      assert.equal(await say(mf, chat, "/reminders"), 200);
      assert.equal(sent(botApi).at(-1).text, "No reminders pending.");
    } finally {
      await mf.dispose();
      await botApi.close();
    }
  });
}

test("a reminder survives a restart of the runtime between scheduling and firing", async () => {
  const doPersist = mkdtempSync(path.join(tmpdir(), "edgegram-do-"));
  const botApi = await startBotApi();
  const chat = 77;
  try {
    const first = await startWorker({ botApi, persistence: "durable_object", doPersist });
    try {
      assert.equal(await say(first, chat, "/remind 3 after the restart", chat), 200);
    } finally {
      await first.dispose();
    }
    assert.deepEqual(sent(botApi).map((s) => s.text), ["Reminder set."]);
    const second = await startWorker({ botApi, persistence: "durable_object", doPersist });
    try {
      const fired = await until(() => sent(botApi).some((s) => s.text === "after the restart"), 15_000);
      assert.ok(fired, `not sent after the restart: ${JSON.stringify(sent(botApi))}`);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(sent(botApi).filter((s) => s.text === "after the restart").length, 1);
    } finally {
      await second.dispose();
    }
  } finally {
    await botApi.close();
    rmSync(doPersist, { recursive: true, force: true });
  }
});

test("100 reminders due in the same second, 10 % of sendMessage failing: each sent exactly once", async () => {
  const botApi = await startBotApi({ faults: { rate: 0.1, seed: 11, methods: ["sendMessage"] } });
  const mf = await startWorker({ botApi, persistence: "durable_object" });
  const chats = [-1001500000911, -1001500000912, -1001500000913, -1001500000914];
  const REMINDERS = 100;
  try {
    // Scheduled at once, 4 seconds ahead: they come due within the same second or two.
    const posts = Array.from({ length: REMINDERS }, (_, i) => async () => {
      for (let attempt = 0; attempt < 20; attempt++) {
        if ((await say(mf, chats[i % chats.length], `/remind 4 reminder ${i}`)) === 200) return;
      }
      throw new Error(`reminder ${i} was never scheduled`);
    });
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < posts.length) await posts[next++]();
    }));
    const reminders = () => sent(botApi).filter((s) => s.text.startsWith("reminder "));
    assert.ok(await until(() => new Set(reminders().map((s) => s.text)).size === REMINDERS, 90_000),
      `${new Set(reminders().map((s) => s.text)).size} of ${REMINDERS} reminders sent`);
    await new Promise((r) => setTimeout(r, 2000));
    const counts = new Map();
    for (const { text, chat } of reminders()) {
      assert.equal(chat, chats[Number(text.split(" ")[1]) % chats.length], `${text} in its own chat`);
      counts.set(text, (counts.get(text) ?? 0) + 1);
    }
    const twice = [...counts].filter(([, n]) => n !== 1);
    assert.deepEqual(twice, [], "every reminder exactly once");
    assert.equal(sent(botApi).filter((s) => s.text === "Reminder set.").length, REMINDERS);
    assert.ok(botApi.calls.some((c) => c.fault !== undefined), "faults were injected");
  } finally {
    await mf.dispose();
    await botApi.close();
  }
});

test("on KV /remind is refused with a reply that says why, and nothing else breaks", async () => {
  const botApi = await startBotApi();
  const mf = await startWorker({ botApi, persistence: "kv" });
  try {
    assert.equal(await say(mf, 5, "/remind 1 never"), 200);
    assert.match(sent(botApi)[0].text, /^No reminders here: .*kv backend has no timer.*PERSISTENCE=durable_object/);
    assert.equal(await say(mf, 5, "/count"), 200);
    assert.equal(sent(botApi)[1].text, "bot: 1, chat: 1, user: 1");
  } finally {
    await mf.dispose();
    await botApi.close();
  }
});

for (const routing of ["bot", "chat"]) {
  test(`DO_ROUTING=${routing}: an idle profile conversation times out at its deadline with no update, its TIMEOUT handler replying once`, async () => {
    const botApi = await startBotApi();
    const mf = await startWorker({ botApi, persistence: "durable_object", routing, bindings: { CONVERSATION_TIMEOUT_SECONDS: "2" } });
    const chat = -1001500000921;
    try {
      assert.equal(await say(mf, chat, "/start", 31), 200);
      const started = Date.now();
      const timedOut = () => sent(botApi).filter((s) => s.text === "Timed out. Send /start to begin again.");
      assert.ok(await until(() => timedOut().length > 0, 10_000), "the TIMEOUT handler replied");
      const late = timedOut()[0].at - (started + 2000);
      assert.ok(late >= -100 && late < 2500, `replied ${late} ms after the deadline`);
      assert.equal(timedOut()[0].chat, chat);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(timedOut().length, 1, "once");
      const state = await exportState(mf);
      assert.equal(state.conversations.profile?.[`[${chat}, 31]`], undefined, "the conversation ended");
      // /start begins again.
      assert.equal(await say(mf, chat, "/start", 31), 200);
      assert.match(sent(botApi).at(-1).text, /^Hi!/);
    } finally {
      await mf.dispose();
      await botApi.close();
    }
  });
}
