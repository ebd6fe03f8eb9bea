// The playground page (www/) in real Chromium (Debian's, driven by playwright-core) against
// `npm run dev` (wrangler dev, local Durable Objects, the in-worker Bot API recorder): the profile
// conversation by keyboard buttons and typing, /list buttons edited in place, two users in a
// group, a restart of the dev server after which the reloaded page shows the conversation where
// it was and the state unchanged, a reminder that appears in the chat by itself when it fires,
// and a python-telegram-bot DictPersistence export imported with
// `npm run ptb-import` showing up in the state pane. Screenshots go to test-artifacts/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { ensurePtbVenv } from "../../tools/ptb-venv.mjs";
import { randomPort, startDev, stopDev, waitReady } from "./support/dev-server.mjs";
import { root } from "./support/worker.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = path.join(root, "test-artifacts");
const SECTIONS = ["bot_data", "chat_data", "user_data", "conversations", "callback_data"];
const GROUP = -1001500000001;

const PTB_DICT_EXPORT = String.raw`
import asyncio, sys
from pathlib import Path
from telegram.ext import DictPersistence

CHOOSING, TYPING_REPLY, TYPING_CHOICE = range(3)

async def main(out):
    out = Path(out)
    d = DictPersistence()
    await d.update_bot_data({"count": 5})
    await d.update_chat_data(${GROUP}, {"count": 4})
    await d.update_user_data(31337, {"age": "99"})
    await d.update_conversation("profile", (31337, 31337), CHOOSING)
    for name in ("bot_data", "chat_data", "user_data", "conversations"):
        (out / f"{name}.json").write_text(getattr(d, f"{name}_json"))

asyncio.run(main(sys.argv[1]))
`;

/** Waits until the page has sent everything queued and applied the answers. */
async function settle(page) {
  await page.waitForFunction(() => document.body.dataset.ready === "1" && document.body.dataset.pending === undefined, null, { timeout: 30_000 });
}

async function type(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  await settle(page);
}

async function click(locator) {
  await locator.click();
  await settle(locator.page());
}

const botTexts = (page) => page.locator(".msg.bot .text").allTextContents();
const lastBotText = async (page) => (await botTexts(page)).at(-1);

async function state(page) {
  const out = {};
  for (const section of SECTIONS) {
    out[section] = JSON.parse(await page.locator(`#state details[data-section="${section}"] pre`).textContent());
  }
  return out;
}

async function stateTexts(page) {
  return Promise.all(SECTIONS.map((s) => page.locator(`#state details[data-section="${s}"] pre`).textContent()));
}

async function messages(page) {
  return page.locator("#messages .msg").evaluateAll((nodes) =>
    nodes.map((n) => `${n.className}|${n.querySelector(".text")?.textContent ?? n.textContent}|${[...n.querySelectorAll(".inline-button")].map((b) => b.textContent).join(",")}`),
  );
}

const replyButton = (page, name) => page.locator("#reply-keyboard .reply-button", { hasText: name });

test("playground: chat in a browser, restart the worker, find everything where it was; a PTB export shows up", { timeout: 900_000 }, async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: .ci/run installs Debian's chromium`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const stateDir = mkdtempSync(path.join(tmpdir(), "edgegram-playground-state-"));
  const profileDir = mkdtempSync(path.join(tmpdir(), "edgegram-playground-browser-"));
  const port = randomPort();
  let dev = startDev({ port, stateDir });
  let context;
  try {
    await waitReady(dev);
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1280, height: 800 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${dev.base}/`);
    await settle(page);
    assert.equal(await page.locator("#backend").textContent(), "backend: durable_object · DO_ROUTING=bot · Bot API recorded in the worker");

    // --- The profile conversation in Ann's private chat: typing and keyboard buttons.
    await type(page, "/start");
    assert.equal(await lastBotText(page), "Hi! Tell me something about yourself.");
    assert.deepEqual(await page.locator("#reply-keyboard .reply-button").allTextContents(), ["Age", "Favourite colour", "Number of siblings", "Something else...", "Done"]);
    await click(replyButton(page, "Age"));
    assert.equal(await lastBotText(page), "Your age? Go on.");
    assert.equal(await page.locator("#reply-keyboard").isHidden(), true, "a one-time keyboard hides after use");
    assert.equal(await page.locator("#keyboard-toggle").isVisible(), true);
    await type(page, "Forty");
    assert.equal(await lastBotText(page), "Noted. What I know about you:\nage - forty\nTell me more, or press Done.");
    let persisted = await state(page);
    assert.deepEqual(persisted.user_data, { 1001: { age: "forty" } });
    assert.deepEqual(persisted.conversations, { profile: { "[1001, 1001]": "CHOOSING" } });
    await click(replyButton(page, "Favourite colour"));
    assert.equal(await lastBotText(page), "Your favourite colour? Go on.");
    persisted = await state(page);
    assert.deepEqual(persisted.conversations, { profile: { "[1001, 1001]": "TYPING_REPLY" } });
    assert.deepEqual(persisted.user_data, { 1001: { age: "forty", choice: "favourite colour" } });

    // --- Bob, a group with Ann and Bob, /list presses edited in place, /count by both.
    await page.click("#new-user-toggle");
    await page.fill('#new-user-form input[name="id"]', "2002");
    await page.fill('#new-user-form input[name="name"]', "Bob");
    await page.click('#new-user-form button[type="submit"]');
    await page.click("#new-group-toggle");
    await page.fill('#new-group-form input[name="title"]', "Test group");
    assert.equal(await page.inputValue('#new-group-form input[name="id"]'), String(GROUP));
    await page.locator("#member-list label", { hasText: "Ann" }).locator("input").check();
    await page.click('#new-group-form button[type="submit"]');
    assert.match(await page.locator("#chat-title").textContent(), /^Test group · -1001500000001$/);
    await click(page.locator(".chip", { hasText: "/list" }));
    assert.equal(await lastBotText(page), "Numbers chosen so far: []");
    const listMessage = page.locator(".msg.bot", { hasText: "Numbers chosen so far" });
    assert.deepEqual(await listMessage.locator(".inline-button").allTextContents(), ["1", "2", "3", "4", "5"]);
    await click(listMessage.locator(".inline-button", { hasText: "2" }));
    await click(listMessage.locator(".inline-button", { hasText: "5" }));
    assert.equal(await listMessage.count(), 1, "edits change the message in place");
    assert.equal(await listMessage.locator(".text").textContent(), "Numbers chosen so far: [2, 5]");
    assert.match(await listMessage.locator(".when").textContent(), /^edited /);
    await type(page, "/count");
    assert.equal(await lastBotText(page), "bot: 1, chat: 1, user: 1");
    await page.selectOption("#user-select", "1001");
    assert.equal(await page.inputValue("#chat-select"), String(GROUP), "Ann is a member: the group stays");
    await type(page, "/count");
    assert.equal(await lastBotText(page), "bot: 2, chat: 2, user: 1");
    assert.deepEqual(await page.locator(".msg.other .name").allTextContents(), ["Bob", "Bob"], "others' messages carry their names");
    assert.equal(await page.locator(".msg.me").count(), 1);
    // A reminder arrives by itself, with nothing typed: the alarm sends it, the page polls.
    await click(page.locator(".chip", { hasText: "/remind 5" }));
    assert.equal(await lastBotText(page), "Reminder set.");
    await click(page.locator(".chip", { hasText: "/reminders" }));
    assert.match(await lastBotText(page), /^Pending reminders:\nin [1-5] s: Stretch your legs$/);
    await page.locator(".msg.bot .text", { hasText: /^Stretch your legs$/ }).waitFor({ timeout: 30_000 });
    await settle(page);
    persisted = await state(page);
    assert.deepEqual(persisted.chat_data, { [GROUP]: { count: 2 } });
    assert.deepEqual(persisted.bot_data, { count: 2 });
    assert.equal(persisted.callback_data[0].length, 1, "one live keyboard: the pressed ones were dropped");

    // --- Screenshots: the group at 1280 px, then Ann's private chat at 375 px (chat and state).
    const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, name), animations: "disabled" });
    await shot("playground-1280.png");
    await page.selectOption("#chat-select", "private");
    await page.setViewportSize({ width: 375, height: 740 });
    assert.equal(await page.locator("#state-pane").isHidden(), true, "one pane at a time at 375 px");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling at 375 px (${overflow}px too wide)`);
    await page.click("#keyboard-toggle");
    assert.equal(await replyButton(page, "Done").isVisible(), true, "the keyboard opens again");
    await shot("playground-375.png");
    await page.click('.tab[data-tab="state"]');
    assert.equal(await page.locator("#chat-pane").isHidden(), true);
    await shot("playground-375-state.png");
    await page.click('.tab[data-tab="chat"]');
    await page.setViewportSize({ width: 1280, height: 800 });

    const chatBefore = await messages(page);
    const stateBefore = await stateTexts(page);

    // --- Restart the worker; reload the page.
    await stopDev(dev);
    dev = startDev({ port, stateDir });
    await waitReady(dev);
    await page.reload();
    await settle(page);
    assert.deepEqual(await messages(page), chatBefore, "the chat history is where it was");
    assert.deepEqual(await stateTexts(page), stateBefore, "the state pane is unchanged");
    assert.equal(await replyButton(page, "Done").isVisible(), true, "the bot's keyboard is as it was");

    // The conversation goes on from where it was: the state came back from storage (Ann's
    // /count in the group counts among her facts).
    await type(page, "Blue");
    assert.equal(await lastBotText(page), "Noted. What I know about you:\nage - forty\ncount - 1\nfavourite colour - blue\nTell me more, or press Done.");
    await click(replyButton(page, "Done"));
    assert.equal(await lastBotText(page), "I learned:\nage - forty\ncount - 1\nfavourite colour - blue\nUntil next time!");
    assert.equal(await page.locator("#reply-keyboard").isHidden(), true, "remove_keyboard hides the keyboard");
    assert.equal(await page.locator("#keyboard-toggle").isHidden(), true);
    persisted = await state(page);
    assert.deepEqual(persisted.conversations, {}, "the ended conversation is gone");
    assert.deepEqual(persisted.user_data["1001"], { age: "forty", count: 1, "favourite colour": "blue" });
    await page.selectOption("#chat-select", String(GROUP));
    await click(listMessage.locator(".inline-button", { hasText: "3" }));
    assert.equal(await listMessage.locator(".text").textContent(), "Numbers chosen so far: [2, 5, 3]", "buttons work after the restart");

    // --- A python-telegram-bot DictPersistence export (written by PTB itself) imported.
    const python = ensurePtbVenv();
    const ptbDir = mkdtempSync(path.join(tmpdir(), "edgegram-playground-ptb-"));
    try {
      const made = spawnSync(python, ["-c", PTB_DICT_EXPORT, ptbDir], { encoding: "utf8" });
      assert.equal(made.status, 0, made.stderr);
      const files = ["bot_data", "chat_data", "user_data", "conversations"].map((s) => path.join(ptbDir, `${s}.json`));
      const imported = spawnSync(process.execPath, [path.join(root, "scripts", "ptb-import.mjs"), "--url", dev.base, "--replace", "--states", "profile=CHOOSING,TYPING_REPLY,TYPING_CHOICE", ...files], { encoding: "utf8" });
      assert.equal(imported.status, 0, imported.stderr + imported.stdout);
    } finally {
      rmSync(ptbDir, { recursive: true, force: true });
    }
    await click(page.locator("#refresh"));
    persisted = await state(page);
    assert.deepEqual(persisted, {
      bot_data: { count: 5 },
      chat_data: { [GROUP]: { count: 4 } },
      user_data: { 31337: { age: "99" } },
      conversations: { profile: { "[31337, 31337]": "CHOOSING" } },
      callback_data: null,
    });
    // The import replaced the callback data: the old keyboard's buttons have expired.
    await click(listMessage.locator(".inline-button", { hasText: "1" }));
    assert.equal(await page.locator("#toast").textContent(), "this button has expired");
    assert.equal(await page.locator("#toast").isVisible(), true);
    // The imported user carries on with the imported conversation.
    await page.click("#new-user-toggle");
    await page.fill('#new-user-form input[name="id"]', "31337");
    await page.fill('#new-user-form input[name="name"]', "Pat");
    await page.click('#new-user-form button[type="submit"]');
    assert.equal(await page.inputValue("#chat-select"), "private");
    await type(page, "Number of siblings");
    assert.equal(await lastBotText(page), "Your number of siblings? Go on.");
    assert.deepEqual((await state(page)).conversations, { profile: { "[31337, 31337]": "TYPING_REPLY" } });
    await shot("playground-1280-imported.png");

    assert.deepEqual(errors, [], "no script errors on the page");
  } finally {
    await context?.close();
    await stopDev(dev);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(profileDir, { recursive: true, force: true });
  }
});
