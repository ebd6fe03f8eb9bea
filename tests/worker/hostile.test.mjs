// Hostile input and failing storage: clear answers, nothing lost, the token never leaked.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { startBotApi } from "./support/bot-api.mjs";
import { startWorker, commandUpdate, post, exportState, importState, TOKEN, ADMIN } from "./support/worker.mjs";

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
    // An import takes only names the bot has and keys of their shape, so a long KV_PREFIX
    // makes the long key: "eg1:bot" fits in 512 bytes, a conversation's key does not.
    withWorker({ persistence: "kv", bindings: { KV_PREFIX: "p".repeat(500) } }, async ({ mf }) => {
      assert.equal((await importState(mf, { bot_data: { keep: true } })).status, 200);
      const res = await importState(mf, { bot_data: {}, conversations: { profile: { "[1, 2]": "CHOOSING" } } });
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
        // A 5xx from the Bot API is transient: the queued reply stays stored, for the object's
        // alarm (200), or on KV for Telegram's redelivery (500).
        const unsent = persistence === "kv" ? 500 : 200;
        assert.equal(res.status, unsent, "a 5xx from the Bot API leaves the reply to send again");
        const body = await res.text();
        // An unreachable Bot API: the runtime's fetch error names the URL.
        const unreachable = await startWorker({
          botApi: { url: "http://127.0.0.1:9" }, persistence, onLog: (line) => logs.push(line),
        });
        try {
          const down = await post(unreachable, commandUpdate({ chat: 65, user: 65, text: "/count" }));
          assert.equal(down.status, unsent);
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

// Issue 12, item 23: what an import accepts. Bad input is a 400 naming its JSON path (a body
// over the limits 413 naming them), and changes nothing; what the bot could not use is bad
// input.
const IMPORT_LIMIT_BYTES = 4 << 20;
const IMPORT_LIMIT_ENTRIES = 50_000;
const IMPORT_BACKENDS = [
  { persistence: "durable_object", routing: "bot" },
  { persistence: "durable_object", routing: "chat" },
  { persistence: "kv" },
];
const KEYBOARD = "0f".repeat(16);
const BUTTON = "a1".repeat(16);
const named = ({ persistence, routing }) => (routing ? `${persistence}, DO_ROUTING=${routing}` : persistence);

/** Imports `good`, then `bad`; `bad` must be refused with `status` and `pattern`, and the state must still be `good`'s. */
async function refusedWithNothingChanged(mf, good, bad, status, pattern, init = {}) {
  const first = await importState(mf, good);
  assert.equal(first.status, 200, await first.text());
  const before = await exportState(mf);
  const res = await mf.dispatchFetch("http://localhost/admin/import", {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: typeof bad === "string" || bad instanceof Uint8Array ? bad : JSON.stringify(bad),
    ...init,
  });
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(text, pattern);
  assert.deepEqual(await exportState(mf), before, "nothing of the refused import was written, nothing deleted");
  return text;
}

const GOOD = {
  bot_data: { count: 1 },
  chat_data: { "7": { count: 1 } },
  user_data: { "7": { count: 1 } },
  conversations: { profile: { "[7, 7]": "CHOOSING" } },
};

describe("item 23: imports", () => {
  for (const backend of IMPORT_BACKENDS) {
    test(`a conversation state or name the bot does not have is refused with its path (${named(backend)})`, () =>
      withWorker(backend, async ({ mf, botApi }) => {
        await refusedWithNothingChanged(mf, GOOD, { ...GOOD, conversations: { profile: { "[7, 7]": "BOGUS" } } },
          400, /^conversations\.profile\.\[7, 7\]: state "BOGUS" is not a state of conversation "profile" \(its states: "CHOOSING", "TYPING_CHOICE", "TYPING_REPLY"\)/);
        // PTB numbers states; imported without --states they would fit no state of the demo's.
        await refusedWithNothingChanged(mf, GOOD, { ...GOOD, conversations: { profile: { "[7, 7]": 0 } } },
          400, /^conversations\.profile\.\[7, 7\]: state 0 is not a state/);
        await refusedWithNothingChanged(mf, GOOD, { ...GOOD, conversations: { profile: { "[7]": "CHOOSING" } } },
          400, /^conversations\.profile\.\[7\]: .*keyed by \[chat_id, user_id\]/);
        await refusedWithNothingChanged(mf, GOOD, { ...GOOD, conversations: { profil: { "[7, 7]": "CHOOSING" } } },
          400, /^conversations\.profil: no persistent conversation of this bot is named "profil"/);
        // A state it has goes through, and the user carries on from there.
        const ok = await importState(mf, { ...GOOD, conversations: { profile: { "[7, 7]": "TYPING_CHOICE" } } });
        assert.equal(ok.status, 200, await ok.text());
        const res = await post(mf, commandUpdate({ chat: 7, user: 7, text: "Favourite food" }));
        assert.equal(res.status, 200);
        assert.deepEqual(botApi.texts(), ["Your favourite food? Go on."]);
      }));

    test(`invalid UTF-8 is 400, never stored as U+FFFD (${named(backend)})`, () =>
      withWorker(backend, async ({ mf }) => {
        const bytes = new Uint8Array([
          ...new TextEncoder().encode('{"bot_data": {"name": "A'), 0xff, 0xfe, ...new TextEncoder().encode('"}}'),
        ]);
        await refusedWithNothingChanged(mf, GOOD, bytes, 400, /^\$: body is not valid UTF-8 \(invalid byte at offset 24\)/);
      }));
  }

  for (const backend of [{ persistence: "durable_object", routing: "bot" }, { persistence: "kv" }]) {
    test(`keyboard and button ids of another shape than PTB's are refused (${named(backend)})`, () =>
      withWorker(backend, async ({ mf }) => {
        const good = { ...GOOD, callback_data: [[[KEYBOARD, 1700000000.5, { [BUTTON]: [1, []] }]], { "123": KEYBOARD }] };
        const keyboards = (keyboard) => ({ ...GOOD, callback_data: [[keyboard], {}] });
        await refusedWithNothingChanged(mf, good, keyboards(["", 1, { [BUTTON]: 1 }]), 400,
          /^callback_data\.0\.0\.0: keyboard id "" is not 32 hex digits/);
        const huge = "f".repeat(1_500_000);
        const text = await refusedWithNothingChanged(mf, good, keyboards([huge, 1, { [BUTTON]: 1 }]), 400,
          /^callback_data\.0\.0\.0: keyboard id "f{32}"… \(1500000 bytes\) is not 32 hex digits/);
        assert.ok(text.length < 500, "the error does not echo the id");
        await refusedWithNothingChanged(mf, good, keyboards([KEYBOARD, 1, { "b-1": 1 }]), 400,
          /^callback_data\.0\.0\.2: button id "b-1" is not 32 hex digits/);
        await refusedWithNothingChanged(mf, good, { ...GOOD, callback_data: [[], { "q1": "kb-1" }] }, 400,
          /^callback_data\.1\.q1: keyboard id "kb-1" is not 32 hex digits/);
        const buttons = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [i.toString(16).padStart(32, "0"), i]));
        await refusedWithNothingChanged(mf, good, keyboards([KEYBOARD, 1, buttons]), 400,
          /^callback_data\.0\.0\.2: 101 buttons; a Telegram keyboard has at most 100/);
      }));
  }

  test("a body over the import's limit is 413 naming that limit, not the webhook's 1 MiB", () =>
    withWorker({ persistence: "durable_object" }, async ({ mf }) => {
      const big = JSON.stringify({ bot_data: { blob: "x".repeat(IMPORT_LIMIT_BYTES) } });
      const text = await refusedWithNothingChanged(mf, GOOD, big, 413,
        new RegExp(`^import body is over ${IMPORT_LIMIT_BYTES} bytes`));
      assert.doesNotMatch(text, /1048576/);
      assert.match(text, /mode=merge/, "it says what to do");
    }));

  for (const backend of IMPORT_BACKENDS) {
    test(`more entries than the import's limit: 413 naming it; nothing written (${named(backend)})`, () =>
      withWorker(backend, async ({ mf }) => {
        const chats = {};
        for (let i = 0; i <= IMPORT_LIMIT_ENTRIES; i++) chats[String(i)] = {};
        await refusedWithNothingChanged(mf, GOOD, { chat_data: chats }, 413,
          new RegExp(`^the import holds more than ${IMPORT_LIMIT_ENTRIES} entries, the limit of one import: .*mode=merge`));
      }));

    test(`?mode=merge imports a large document in parts, each whole (${named(backend)})`, () =>
      withWorker(backend, async ({ mf }) => {
        assert.equal((await importState(mf, { ...GOOD, chat_data: { "1": { a: 1 }, "2": { a: 2 } } })).status, 200);
        const merge = (doc) => mf.dispatchFetch("http://localhost/admin/import?mode=merge", {
          method: "POST", headers: { Authorization: `Bearer ${ADMIN}` }, body: JSON.stringify(doc),
        });
        const res = await merge({ chat_data: { "2": { a: 22 }, "3": { a: 3 } }, user_data: { "8": { b: 1 } } });
        assert.equal(res.status, 200, await res.clone().text());
        assert.deepEqual(await res.json(), { imported: 3 });
        const state = await exportState(mf);
        assert.deepEqual(state.chat_data, { "1": { a: 1 }, "2": { a: 22 }, "3": { a: 3 } });
        assert.deepEqual(state.user_data, { "7": { count: 1 }, "8": { b: 1 } });
        assert.deepEqual(state.bot_data, GOOD.bot_data, "a part without bot_data leaves it");
        assert.deepEqual(state.conversations, GOOD.conversations);
        // A bad part changes nothing, as a bad whole document.
        const bad = await merge({ chat_data: { "4": {} }, conversations: { profile: { "[4, 4]": "BOGUS" } } });
        assert.equal(bad.status, 400);
        assert.deepEqual(await exportState(mf), state);
        const unknown = await mf.dispatchFetch("http://localhost/admin/import?mode=add", {
          method: "POST", headers: { Authorization: `Bearer ${ADMIN}` }, body: "{}",
        });
        assert.equal(unknown.status, 400);
        assert.match(await unknown.text(), /^mode: "add" is not replace or merge/);
      }));
  }

  test("an import at the limits keeps the isolate's memory well under a Worker's 128 MB", { timeout: 120_000 }, () =>
    withWorker({ persistence: "durable_object" }, async ({ mf }) => {
      const wasm = async () => {
        const res = await mf.dispatchFetch("http://localhost/__test/memory?object=bot");
        assert.equal(res.status, 200, "the test route answers");
        return (await res.json()).wasm_bytes;
      };
      // Many small entries: the most per byte.
      const chats = {};
      for (let i = 0; i < IMPORT_LIMIT_ENTRIES; i++) chats[String(-1001000000000 - i)] = { count: i };
      const many = await importState(mf, { chat_data: chats });
      assert.equal(many.status, 200, await many.text());
      const afterMany = await wasm();
      // Few large values up to the byte limit.
      const blob = "x".repeat(Math.floor(IMPORT_LIMIT_BYTES / 4) - 100);
      const large = await importState(mf, { chat_data: Object.fromEntries([1, 2, 3].map((i) => [String(i), { blob }])) });
      assert.equal(large.status, 200, await large.text());
      const afterLarge = await wasm();
      // One entry whose data is a tree far larger than its text: refused before it is parsed.
      const dense = await importState(mf, { chat_data: { "1": { list: Array.from({ length: 100_000 }, () => ({ a: 0 })) } } });
      assert.equal(dense.status, 400);
      assert.match(await dense.text(), /^chat_data\.1: its value would take about 46\.\d MB of memory as JSON, more than one entry may take \(16\.8 MB\)/);
      const afterDense = await wasm();
      const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;
      console.log(`wasm memory after ${IMPORT_LIMIT_ENTRIES} entries: ${mib(afterMany)}; after 3 MiB of values: ${mib(afterLarge)}; after a dense entry: ${mib(afterDense)}`);
      assert.ok(afterDense < 48 * 1048576, `wasm memory ${mib(afterDense)}`);
    }));
});
