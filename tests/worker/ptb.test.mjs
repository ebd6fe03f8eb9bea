// The python-telegram-bot migration path with real PTB (from PyPI, in the venv .venv-ptb/ made
// once): PicklePersistence files (single and split) and DictPersistence JSON written by PTB itself
// are converted (tools/ptb_pickle_to_json.py) and imported by `npm run ptb-import` into the demo
// worker under Miniflare, whose bot then carries on with the imported conversations and buttons.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ensurePtbVenv } from "../../tools/ptb-venv.mjs";
import { parts } from "../../tools/admin-client.mjs";
import { startBotApi } from "./support/bot-api.mjs";
import { startWorker, commandUpdate, post, exportState, importState, root, ADMIN } from "./support/worker.mjs";

const GROUP = -1001500000001;
const KEYBOARD = "0f".repeat(16);
const BUTTON = "a1".repeat(16);

// Written with PTB's own classes: what a PTB bot's persistence holds after running a while.
const MAKE_FILES = String.raw`
import asyncio, datetime, json, sys
from pathlib import Path
from telegram import User
from telegram.ext import DictPersistence, PersistenceInput, PicklePersistence

class Prefs:  # a custom class of the bot (defined in its __main__, as many bots do)
    def __init__(self):
        self.lang = "en"
        self.tags = {"b", "a"}

CHOOSING, TYPING_REPLY, TYPING_CHOICE = range(3)
GROUP = ${GROUP}

async def fill(p):
    await p.update_bot_data({"count": 3, "since": datetime.date(2024, 1, 2)})
    await p.update_chat_data(GROUP, {"count": 2})
    await p.update_chat_data(7, {"count": 1, "nested": {5: "five"}})
    await p.update_user_data(42, {"favourite colour": "blue", "prefs": Prefs()})
    await p.update_user_data(7, {"me": User(7, "Ann", False)})
    await p.update_conversation("profile", (GROUP, 42), CHOOSING)
    await p.update_conversation("profile", (7, 7), TYPING_CHOICE)
    await p.update_callback_data(([("${KEYBOARD}", 1700000000.5, {"${BUTTON}": (1, [])})], {"q1": "${KEYBOARD}"}))
    await p.flush()

async def main(out):
    out = Path(out)
    inputs = PersistenceInput(callback_data=True)
    await fill(PicklePersistence(filepath=out / "single.pickle", store_data=inputs))
    await fill(PicklePersistence(filepath=out / "split", single_file=False, store_data=inputs))
    # DictPersistence holds JSON-able data only, as its users know.
    d = DictPersistence(store_data=inputs)
    await d.update_bot_data({"count": 5})
    await d.update_chat_data(GROUP, {"count": 4})
    await d.update_user_data(31337, {"age": "99", "favourite colour": "green"})
    await d.update_conversation("profile", (31337, 31337), TYPING_REPLY)
    await d.update_conversation("profile", (GROUP, 31337), CHOOSING)
    (out / "bot_data.json").write_text(d.bot_data_json)
    (out / "chat_data.json").write_text(d.chat_data_json)
    (out / "user_data.json").write_text(d.user_data_json)
    (out / "conversations.json").write_text(d.conversations_json)

asyncio.run(main(sys.argv[1]))
`;

// What the converter must make of the pickles: DictPersistence's shapes.
const FROM_PICKLE = {
  bot_data: { count: 3, since: "2024-01-02" },
  chat_data: { [GROUP]: { count: 2 }, 7: { count: 1, nested: { 5: "five" } } },
  user_data: {
    42: { "favourite colour": "blue", prefs: { lang: "en", tags: ["a", "b"] } },
    7: { me: { id: 7, first_name: "Ann", is_bot: false } },
  },
  conversations: { profile: { [`[${GROUP}, 42]`]: 0, "[7, 7]": 2 } },
  callback_data: [[[KEYBOARD, 1700000000.5, { [BUTTON]: [1, []] }]], { q1: KEYBOARD }],
};

let python;
let dir;
let botApi;
let mf;
let url;

before(async () => {
  python = ensurePtbVenv();
  dir = mkdtempSync(path.join(tmpdir(), "edgegram-ptb-"));
  const made = spawnSync(python, ["-c", MAKE_FILES, dir], { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  botApi = await startBotApi();
  mf = await startWorker({ botApi, persistence: "durable_object" });
  url = String(await mf.ready).replace(/\/$/, "");
}, { timeout: 600_000 });

after(async () => {
  await mf?.dispose();
  await botApi?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function convert(...files) {
  return spawnSync(python, [path.join(root, "tools", "ptb_pickle_to_json.py"), ...files], { encoding: "utf8" });
}

function ptbImport(...args) {
  return spawnSync(process.execPath, [path.join(root, "scripts", "ptb-import.mjs"), "--url", url, "--token", ADMIN, ...args], {
    encoding: "utf8",
    env: { ...process.env, PTB_VENV: path.dirname(path.dirname(python)) },
  });
}

test("the converter turns PTB's pickles, single and split, into DictPersistence JSON", { timeout: 60_000 }, () => {
  const single = convert(path.join(dir, "single.pickle"));
  assert.equal(single.status, 0, single.stderr);
  assert.deepEqual(JSON.parse(single.stdout), FROM_PICKLE);
  // Every conversion JSON needed is said, with its path.
  assert.match(single.stderr, /bot_data\.since: date stored as ISO 8601 text/);
  assert.match(single.stderr, /user_data\.42\.prefs: __main__\.Prefs \(not importable\) stored as the attributes/);
  assert.match(single.stderr, /user_data\.42\.prefs\.tags: set stored as a list/);
  assert.match(single.stderr, /user_data\.7\.me: Telegram User stored as its to_dict\(\)/);

  const split = convert(path.join(dir, "split_user_data"));
  assert.equal(split.status, 0, split.stderr);
  assert.deepEqual(JSON.parse(split.stdout), FROM_PICKLE, "the other four files are found next to the one named");
});

test("values JSON cannot hold are refused with their path, or kept as repr() with --lossy", { timeout: 60_000 }, () => {
  const file = path.join(dir, "bad.pickle");
  const made = spawnSync(python, ["-c", String.raw`
import asyncio, sys
from telegram.ext import PicklePersistence
async def main():
    p = PicklePersistence(filepath=sys.argv[1])
    await p.update_bot_data({"raw": b"xy", "ok": 1})
    await p.flush()
asyncio.run(main())`, file], { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  const refused = convert(file);
  assert.equal(refused.status, 2);
  assert.equal(refused.stdout, "");
  assert.match(refused.stderr, /bot_data\.raw: a value of type bytes has no JSON form/);
  const lossy = spawnSync(python, [path.join(root, "tools", "ptb_pickle_to_json.py"), "--lossy", file], { encoding: "utf8" });
  assert.equal(lossy.status, 0, lossy.stderr);
  assert.deepEqual(JSON.parse(lossy.stdout).bot_data, { raw: "b'xy'", ok: 1 });
});

test("npm run ptb-import: a pickle into the worker; the bot carries on with its conversations and buttons", { timeout: 120_000 }, async () => {
  const res = ptbImport("--states", "profile=CHOOSING,TYPING_REPLY,TYPING_CHOICE", path.join(dir, "single.pickle"));
  assert.equal(res.status, 0, res.stderr + res.stdout);
  assert.match(res.stdout, /bot_data set, 2 chat_data, 2 user_data, 2 conversation states, 1 callback keyboards imported/);
  const state = await exportState(mf);
  assert.deepEqual(state, {
    ...FROM_PICKLE,
    conversations: { profile: { [`[${GROUP}, 42]`]: "CHOOSING", "[7, 7]": "TYPING_CHOICE" } },
  });

  // User 42 was choosing a category in the group when the PTB bot stopped.
  botApi.clear();
  let answer = await post(mf, commandUpdate({ chat: GROUP, user: 42, text: "Age", updateId: 9001 }));
  assert.equal(answer.status, 200);
  assert.deepEqual(botApi.texts(), ["Your age? Go on."]);
  answer = await post(mf, commandUpdate({ chat: GROUP, user: 42, text: "Forty-two", updateId: 9002 }));
  assert.equal(answer.status, 200);
  const facts = botApi.texts()[1];
  for (const line of ["age - forty-two", "favourite colour - blue", 'prefs - {"lang":"en","tags":["a","b"]}']) {
    assert.ok(facts.split("\n").includes(line), `${line} in ${facts}`);
  }

  // A button of the PTB bot's last keyboard still resolves: its data was [1, []].
  botApi.clear();
  answer = await post(mf, {
    update_id: 9003,
    callback_query: {
      id: "q9003", chat_instance: "ci", data: KEYBOARD + BUTTON,
      from: { id: 7, is_bot: false, first_name: "Ann" },
      message: { message_id: 12, date: 0, chat: { id: 7, type: "private" } },
    },
  });
  assert.equal(answer.status, 200);
  assert.deepEqual(botApi.calls.map((c) => c.method), ["answerCallbackQuery", "editMessageText"]);
  assert.equal(botApi.calls[1].params.text, "Numbers chosen so far: [1]");
});

test("npm run ptb-import: DictPersistence's JSON strings, one file per section; --replace is required over data", { timeout: 120_000 }, async () => {
  const files = ["bot_data", "chat_data", "user_data", "conversations"].map((s) => path.join(dir, `${s}.json`));
  const refused = ptbImport(...files);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /already holds data \(bot_data set, 2 chat_data, 2 user_data, .*pass --replace/);
  assert.equal((await exportState(mf)).bot_data.count, 3, "nothing was replaced");

  const res = ptbImport("--replace", "--states", "profile=CHOOSING,TYPING_REPLY,TYPING_CHOICE", ...files);
  assert.equal(res.status, 0, res.stderr + res.stdout);
  assert.deepEqual(await exportState(mf), {
    bot_data: { count: 5 },
    chat_data: { [GROUP]: { count: 4 } },
    user_data: { 31337: { age: "99", "favourite colour": "green" } },
    conversations: { profile: { "[31337, 31337]": "TYPING_REPLY", [`[${GROUP}, 31337]`]: "CHOOSING" } },
    callback_data: null,
  });

  // The same document as one combined file, PTB's *_json keys included, through --out.
  const combined = path.join(dir, "combined.json");
  writeFileSync(combined, JSON.stringify({
    bot_data_json: readFileSync(files[0], "utf8"),
    chat_data: JSON.parse(readFileSync(files[1], "utf8")),
    user_data_json: readFileSync(files[2], "utf8"),
    conversations: JSON.parse(readFileSync(files[3], "utf8")),
  }));
  const out = ptbImport("--out", "-", combined);
  assert.equal(out.status, 0, out.stderr);
  assert.deepEqual(JSON.parse(out.stdout).user_data, { 31337: { age: "99", "favourite colour": "green" } });
  assert.deepEqual(JSON.parse(out.stdout).conversations.profile, { "[31337, 31337]": 1, [`[${GROUP}, 31337]`]: 0 });

  // npm run export writes what the worker holds; it imports back unchanged.
  const saved = path.join(dir, "export.json");
  const exported = spawnSync(process.execPath, [path.join(root, "scripts", "export.mjs"), "--url", url, "--token", ADMIN, "--out", saved, "--split", path.join(dir, "split-export")], { encoding: "utf8" });
  assert.equal(exported.status, 0, exported.stderr);
  const before = await exportState(mf);
  assert.deepEqual(JSON.parse(readFileSync(saved, "utf8")), before);
  assert.deepEqual(JSON.parse(readFileSync(path.join(dir, "split-export", "user_data.json"), "utf8")), before.user_data);
  assert.equal((await importState(mf, {})).status, 200);
  const back = ptbImport(saved);
  assert.equal(back.status, 0, back.stderr);
  assert.deepEqual(await exportState(mf), before);
});

test("npm run ptb-import: a document over one import's bounds goes in parts, the first replacing, the rest merged", { timeout: 120_000 }, async () => {
  // Issue 12, item 23: one import takes at most 50,000 entries and 4 MiB.
  const users = {};
  for (let i = 1; i <= 90_000; i++) users[String(i)] = { n: i };
  const file = path.join(dir, "many.json");
  writeFileSync(file, JSON.stringify({ bot_data: { big: true }, user_data: users, conversations: { profile: { "[7, 7]": "CHOOSING" } } }));
  const res = ptbImport("--replace", file);
  assert.equal(res.status, 0, res.stderr + res.stdout);
  assert.match(res.stdout, /part 3 of 3/);
  assert.match(res.stdout, /bot_data set, 0 chat_data, 90000 user_data, 1 conversation states, 0 callback keyboards imported .*\(90002 entries, in 3 parts\)/);
  const state = await exportState(mf);
  assert.deepEqual(state.chat_data, {}, "the first part replaced what was there");
  assert.deepEqual([state.user_data["1"], state.user_data["90000"]], [{ n: 1 }, { n: 90000 }]);

  // Large values split by bytes: every entry in exactly one part, each part under the bound.
  const blob = "x".repeat(1 << 20);
  const doc = { bot_data: {}, chat_data: { 1: { blob }, 2: { blob }, 3: { blob }, 4: { blob } }, user_data: { 5: { a: 1 } } };
  const split = parts(doc);
  assert.equal(split.length, 2);
  assert.ok(split.every((p) => JSON.stringify(p).length < 4 << 20));
  assert.deepEqual(split.flatMap((p) => Object.keys(p.chat_data ?? {})), ["1", "2", "3", "4"]);
  assert.deepEqual(parts({}), [{}], "an empty document is one (replacing) part");
});

test("npm run ptb-import: bad input is refused before anything is sent", { timeout: 60_000 }, async () => {
  const before = await exportState(mf);
  const notJson = path.join(dir, "notes.txt");
  writeFileSync(notJson, "hello");
  let res = ptbImport(notJson);
  assert.equal(res.status, 1);
  assert.match(res.stderr, /notes\.txt: not JSON and not a pickle/);
  const unknownShape = path.join(dir, "thing.json");
  writeFileSync(unknownShape, JSON.stringify({ users: {} }));
  res = ptbImport(unknownShape);
  assert.equal(res.status, 1);
  assert.match(res.stderr, /neither a combined document .* nor named after one section/);
  res = ptbImport("--replace", "--states", "profile=ONLY_ONE", path.join(dir, "conversations.json"));
  assert.equal(res.status, 1);
  assert.match(res.stderr, /state 1 has no name in --states/);
  const badIds = path.join(dir, "chat_data_bad.json");
  writeFileSync(badIds, JSON.stringify({ abc: {} }));
  res = ptbImport("--replace", badIds);
  assert.equal(res.status, 1);
  assert.match(res.stderr, /answered 400: chat_data\.abc: key is not an integer id/);
  assert.deepEqual(await exportState(mf), before, "nothing changed");
});
