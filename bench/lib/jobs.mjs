// The jobs rows of `npm run bench` (issue "Jobs at the edge"), under one Miniflare each:
//   lateness: 100 reminders in 4 chats coming due within the same seconds, sent by edgegram's
//             Durable Object alarm (the demo's /remind), against the floor: a bare Durable
//             Object alarm sending the same 100 messages at the same times after its start,
//             each chat's in order (bench/workers/floor-alarm.js); with an instant Bot API and
//             one that takes 50 ms
//   faults:   the same 100 reminders with 10 % of sendMessage calls failing: each sent once?
//   work:     the storage operations of the alarm that runs one due reminder, counted at the
//             binding, with no other job pending and with 1,000 pending (due in an hour)
import { startBotApi } from "../../tests/worker/support/bot-api.mjs";
import { message } from "./updates.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const CHATS = [-1001500000931, -1001500000932, -1001500000933, -1001500000934];
const AHEAD_S = 4;

/** When each reminder text arrived, from the stand-in's successful calls. */
function arrivals(botApi, prefix) {
  const at = new Map();
  let total = 0;
  for (const call of botApi.delivered()) {
    const text = call.params?.text;
    if (call.method !== "sendMessage" || typeof text !== "string" || !text.startsWith(prefix)) continue;
    total++;
    if (!at.has(text)) at.set(text, call.at);
  }
  return { at, total };
}

function stats(lateness) {
  const sorted = [...lateness].sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return { p50: q(0.5), p99: q(0.99), max: sorted.at(-1) };
}

/** Posts `/remind` updates, 16 in flight; answers when each was first sent (its reminder is
 * due `seconds` after a moment between that and its answer: lateness counted from the send
 * is an upper bound). */
async function schedule(W, mf, texts, seconds, firstId) {
  const answered = new Array(texts.length);
  let next = 0;
  async function lane() {
    while (next < texts.length) {
      const i = next++;
      answered[i] = Date.now();
      const update = message(firstId + i, 100 + (i % 20), `/remind ${seconds} ${texts[i]}`, CHATS[i % CHATS.length]);
      for (let attempt = 1; ; attempt++) {
        const res = await W.post(mf, update);
        await res.text();
        if (res.status === 200) break;
        if (attempt > 50) throw new Error(`/remind ${i} answered ${res.status}`);
        await sleep(20 * attempt);
      }
    }
  }
  await Promise.all(Array.from({ length: 16 }, lane));
  return answered;
}

/** edgegram: `n` reminders, each due AHEAD_S after its /remind was answered. */
async function edgegramRow(W, { n, delayMs = 0, faults = null, firstId }) {
  const botApi = await startBotApi({ delayMs, faults });
  const mf = await W.startEdgegram({ botApi, persistence: "durable_object" });
  try {
    const texts = Array.from({ length: n }, (_, i) => `reminder ${i}`);
    const answered = await schedule(W, mf, texts, AHEAD_S, firstId);
    const deadline = Date.now() + AHEAD_S * 1000 + 60_000;
    while (arrivals(botApi, "reminder ").at.size < n && Date.now() < deadline) await sleep(100);
    await sleep(1500);
    const { at, total } = arrivals(botApi, "reminder ");
    const due = answered.map((t) => t + AHEAD_S * 1000);
    const lateness = texts.flatMap((t, i) => (at.has(t) ? [at.get(t) - due[i]] : []));
    // The plan the floor replays: the same messages at the same times after its start.
    const plan = texts.map((text, i) => ({ offset: due[i] - due[0], chat: CHATS[i % CHATS.length], text }));
    return { n, sent: at.size, messages: total, failed: botApi.calls.filter((c) => c.fault !== undefined).length, ...stats(lateness), plan };
  } finally {
    await mf.dispose();
    await botApi.close();
  }
}

/** The floor: `plan` (edgegram's messages and times) replayed by a bare alarm. */
async function floorRow(W, script, { plan, delayMs = 0 }) {
  const botApi = await startBotApi({ delayMs });
  const mf = await W.startBundled({ botApi, script, durableObjects: { ALARM_DO: { className: "AlarmObject", useSQLite: true } } });
  try {
    const start = Date.now() + AHEAD_S * 1000;
    const timed = plan.map((m) => ({ at: start + m.offset, chat: m.chat, text: m.text }));
    const res = await mf.dispatchFetch("http://localhost/schedule", { method: "POST", body: JSON.stringify(timed) });
    await res.text();
    const deadline = start + 60_000;
    while (arrivals(botApi, "reminder ").at.size < plan.length && Date.now() < deadline) await sleep(100);
    const { at: arrived, total } = arrivals(botApi, "reminder ");
    const lateness = timed.flatMap((m) => (arrived.has(m.text) ? [arrived.get(m.text) - m.at] : []));
    return { n: plan.length, sent: arrived.size, messages: total, failed: 0, ...stats(lateness) };
  } finally {
    await mf.dispose();
    await botApi.close();
  }
}

/** The storage work of the alarm that runs one due reminder, with `pending` others. */
async function workRow(W, { pending, firstId }) {
  const botApi = await startBotApi();
  const mf = await W.startEdgegram({ botApi, persistence: "durable_object", counting: true });
  try {
    const far = Array.from({ length: pending }, (_, i) => `later ${i}`);
    await schedule(W, mf, far, 3600, firstId);
    await schedule(W, mf, ["due now"], 2, firstId + pending + 1);
    await W.takeOps(mf);
    const deadline = Date.now() + 30_000;
    while (!arrivals(botApi, "due now").at.size && Date.now() < deadline) await sleep(50);
    await sleep(500);
    const ops = await W.takeOps(mf);
    return { pending, sent: arrivals(botApi, "due now").at.size, ops };
  } finally {
    await mf.dispose();
    await botApi.close();
  }
}

/** Every jobs row, one after the other. */
export async function jobsRows(W, floorScript, { n, log, firstId }) {
  const lateness = [];
  for (const delayMs of [0, 50]) {
    log(`  lateness, Bot API ${delayMs} ms: edgegram, then the floor on the same times`);
    const { plan, ...edgegram } = await edgegramRow(W, { n, delayMs, firstId: firstId + delayMs * 1000 });
    lateness.push({ delayMs, edgegram, floor: await floorRow(W, floorScript, { plan, delayMs }) });
  }
  log("  10 % of sendMessage failing");
  const { plan: _, ...faults } = await edgegramRow(W, { n, faults: { rate: 0.1, seed: 5, methods: ["sendMessage"] }, firstId: firstId + 200_000 });
  const work = [];
  for (const pending of [0, 1000]) {
    log(`  storage work of one run, ${pending} other jobs pending`);
    work.push(await workRow(W, { pending, firstId: firstId + 300_000 + pending * 10 }));
  }
  return { lateness, faults, work };
}
