// The outbox's rows of `npm run bench` (issue "Bot API calls after the commit"): every worker
// under the same two conditions, one after the other in one run.
//   latency: the Bot API stand-in answers after 50 ms; /count updates, 32 in flight
//   faults:  the stand-in fails 10 % of sendMessage calls (500, 429 with retry_after 1, a
//            dropped connection, in turn); /count from 20 users in 4 chats, every update
//            delivered twice (half of the pairs at the same moment), 24 in flight, each copy
//            sent again after a non-200 answer, as Telegram does
// After the driver is done, the run waits for replies still on their way (a Durable Object's
// alarm, SEND_QUEUED_CALLS=after_answer) before it counts.
import { startBotApi } from "../../tests/worker/support/bot-api.mjs";
import { countStream, message } from "./updates.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The workers compared; `counters` says how to read their stored counts. */
export function outboxWorkers(W, bundles) {
  const grammy = (storage) => (botApi) => W.startBundled({ botApi, script: bundles.grammy, bindings: { SESSION: "multi", STORAGE: storage } });
  const edgegram = (persistence, routing = "bot", bindings = {}) => (botApi) => W.startEdgegram({ botApi, persistence, routing, bindings });
  const after = { SEND_QUEUED_CALLS: "after_answer" };
  return [
    { id: "grammy-multi", label: "grammY multi session, KV", start: grammy("kv"), counters: "grammy-kv" },
    { id: "grammy-multi-d1", label: "grammY multi session, D1", start: grammy("d1"), counters: "grammy-d1" },
    { id: "edgegram-kv", label: "edgegram, KV", start: edgegram("kv"), counters: "edgegram" },
    { id: "edgegram-d1", label: "edgegram, D1", start: edgegram("d1"), counters: "edgegram" },
    { id: "edgegram-do", label: "edgegram, Durable Objects (bot routing)", start: edgegram("durable_object"), counters: "edgegram" },
    { id: "edgegram-do-after", label: "edgegram, Durable Objects (bot routing), SEND_QUEUED_CALLS=after_answer", start: edgegram("durable_object", "bot", after), counters: "edgegram" },
    { id: "edgegram-do-reply", label: "edgegram, Durable Objects (bot routing), WEBHOOK_REPLY=1", start: edgegram("durable_object", "bot", { WEBHOOK_REPLY: "1" }), counters: "edgegram" },
    { id: "edgegram-do-chat", label: "edgegram, Durable Objects (chat routing)", start: edgegram("durable_object", "chat"), counters: "edgegram" },
    { id: "edgegram-do-chat-after", label: "edgegram, Durable Objects (chat routing), SEND_QUEUED_CALLS=after_answer", start: edgegram("durable_object", "chat", after), counters: "edgegram" },
  ];
}

/** bot, summed chat and summed user counters as the worker stored them. */
export async function storedCounts(W, kind, mf) {
  const snap = { bot: 0, chats: 0, users: 0 };
  const add = (key, value) => {
    if (key === "bot:bot") snap.bot += value;
    else if (key.startsWith("chat:")) snap.chats += value;
    else if (key.startsWith("user:")) snap.users += value;
  };
  if (kind === "edgegram") {
    const state = await W.exportState(mf);
    snap.bot = state.bot_data?.count ?? 0;
    for (const d of Object.values(state.chat_data ?? {})) snap.chats += d.count ?? 0;
    for (const d of Object.values(state.user_data ?? {})) snap.users += d.count ?? 0;
  } else if (kind === "grammy-d1") {
    const db = await mf.getD1Database("DB");
    const { results } = await db.prepare("SELECT key, value FROM GrammySessions").all();
    for (const row of results) add(row.key, JSON.parse(row.value).count ?? 0);
  } else {
    const kv = await mf.getKVNamespace("KV");
    let cursor;
    do {
      const page = await kv.list({ cursor });
      for (const { name } of page.keys) add(name, JSON.parse(await kv.get(name)).count ?? 0);
      cursor = page.list_complete ? undefined : page.cursor;
    } while (cursor);
  }
  return snap;
}

/**
 * Posts `body` until it is answered 200 (Telegram redelivers a non-200), making the call a
 * webhook answer carries (WEBHOOK_REPLY) as Telegram would; answers the tries.
 */
async function untilAccepted(W, mf, body, botApi) {
  for (let attempt = 1; ; attempt++) {
    const res = await W.post(mf, body);
    const text = await res.text();
    if (res.status === 200) {
      W.performWebhookReply(botApi, res, text);
      return attempt;
    }
    if (attempt >= 60) throw new Error(`an update answered ${res.status} ${attempt} times`);
    await sleep(Math.random() * Math.min(400, 10 * 2 ** attempt));
  }
}

/**
 * Waits until the stand-in's accepted replies stop growing: for `quietMs` once there are `n`
 * of them, for 15 s (longer than the retries' back-off between two tries) while fewer; at most
 * `maxMs`.
 */
async function settle(botApi, n = 0, quietMs = 2500, maxMs = 90_000) {
  const count = () => botApi.delivered().filter((c) => c.method === "sendMessage").length;
  const end = Date.now() + maxMs;
  let last = count();
  let since = Date.now();
  while (Date.now() < end && Date.now() - since < (last >= n ? quietMs : 15_000)) {
    await sleep(200);
    const now = count();
    if (now !== last) [last, since] = [now, Date.now()];
  }
  return last;
}

function replyStats(botApi, n) {
  const replies = botApi.delivered().filter((c) => c.method === "sendMessage").map((c) => c.params.text);
  return { replies: replies.length, distinct: new Set(replies).size, extra: Math.max(0, replies.length - n) };
}

/** The 50 ms Bot API rows: `n` /count updates, `concurrency` in flight. */
export async function latencyRows(W, workers, { n, concurrency, log }) {
  const rows = [];
  for (const worker of workers) {
    const botApi = await startBotApi({ delayMs: 50 });
    const mf = await worker.start(botApi);
    try {
      await W.drive(mf, countStream(20, { firstId: 1, groupEvery: 4 }), 4, { performWebhookReplies: botApi });
      await settle(botApi, 20, 1000);
      const before = await storedCounts(W, worker.counters, mf);
      botApi.clear();
      const run = await W.drive(mf, countStream(n, { firstId: 1000, groupEvery: 4 }), concurrency, { performWebhookReplies: botApi });
      await settle(botApi, n);
      const after = await storedCounts(W, worker.counters, mf);
      const row = {
        id: worker.id, label: worker.label, updates: n, concurrency,
        perSecond: run.perSecond, p50: run.p50, p99: run.p99, redelivered: run.retries,
        counted: { bot: after.bot - before.bot, chats: after.chats - before.chats, users: after.users - before.users },
        ...replyStats(botApi, n),
      };
      rows.push(row);
      log(`  ${worker.id}: ${row.perSecond.toFixed(1)} updates/s, p50 ${row.p50.toFixed(0)} ms, p99 ${row.p99.toFixed(0)} ms, bot counted ${row.counted.bot} of ${n}, replies ${row.replies}`);
    } finally {
      await mf.dispose();
      await botApi.close();
    }
  }
  return rows;
}

/** The fault rows: `n` /count updates from 20 users in 4 chats, each twice, `inFlight` at once. */
export async function faultRows(W, workers, { n, inFlight, log }) {
  const chats = [-1001500000601, -1001500000602, -1001500000603, -1001500000604];
  const rows = [];
  for (const worker of workers) {
    const botApi = await startBotApi({ faults: { rate: 0.1, seed: 11 } });
    const mf = await worker.start(botApi);
    try {
      // Warm up without faults' effect on the counts below.
      await untilAccepted(W, mf, JSON.stringify(message(1, 900, "/count", 900)), botApi);
      await settle(botApi, 1, 1000);
      const before = await storedCounts(W, worker.counters, mf);
      botApi.clear();
      const bodies = Array.from({ length: n }, (_, i) => JSON.stringify(message(10_000 + i, 1 + (i % 20), "/count", chats[i % chats.length])));
      let next = 0;
      let tries = 0;
      const started = performance.now();
      await Promise.all(Array.from({ length: inFlight }, async () => {
        while (next < bodies.length) {
          const i = next++;
          // (`tries += await ...` would read tries before the await and lose the others' adds.)
          if (i % 2 === 0) {
            const both = await Promise.all([untilAccepted(W, mf, bodies[i], botApi), untilAccepted(W, mf, bodies[i], botApi)]);
            tries += both[0] + both[1];
          } else {
            const first = await untilAccepted(W, mf, bodies[i], botApi);
            const second = await untilAccepted(W, mf, bodies[i], botApi);
            tries += first + second;
          }
        }
      }));
      const seconds = (performance.now() - started) / 1000;
      await settle(botApi, n);
      const after = await storedCounts(W, worker.counters, mf);
      const counted = { bot: after.bot - before.bot, chats: after.chats - before.chats, users: after.users - before.users };
      const row = {
        id: worker.id, label: worker.label, updates: n, inFlight, seconds,
        deliveries: tries, faults: botApi.calls.filter((c) => c.fault).length,
        counted,
        lost: Math.max(0, n - counted.bot), doubled: Math.max(0, counted.users - n),
        ...replyStats(botApi, n),
      };
      rows.push(row);
      log(`  ${worker.id}: bot counted ${counted.bot} of ${n}, users ${counted.users}, replies ${row.replies} (${row.distinct} distinct), ${row.faults} faults, ${tries} deliveries`);
    } finally {
      await mf.dispose();
      await botApi.close();
    }
  }
  return rows;
}
