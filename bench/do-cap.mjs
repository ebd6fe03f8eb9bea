// Measures the throughput cap that serialising updates puts on one Durable Object: the Bot
// API stand-in answers after 50 ms, and N updates are sent at once.
//   node bench/do-cap.mjs            (needs build-test/: `node scripts/build.mjs --test`)
//   node bench/do-cap.mjs d1         only the rows of one backend (durable_object, d1, kv)
import { startBotApi } from "../tests/worker/support/bot-api.mjs";
import { startWorker, commandUpdate, post } from "../tests/worker/support/worker.mjs";

const DELAY_MS = 50;
const N = 60;

async function run(persistence, routing, chats, text = "/count") {
  const botApi = await startBotApi({ delayMs: DELAY_MS });
  const mf = await startWorker({ botApi, persistence, routing });
  try {
    // Warm up (compile, first object creation) outside the measurement.
    await post(mf, commandUpdate({ chat: -1, user: 1, text: "/count", updateId: 1 }));
    let id = 100;
    const updates = Array.from({ length: N }, (_, i) =>
      // /start in a chat of its own per user (private chats): writes no shared entry.
      text === "/count"
        ? commandUpdate({ chat: -100 - (i % chats), user: 1 + (i % 20), text, updateId: id++ })
        : commandUpdate({ chat: 1000 + i, user: 1000 + i, text, updateId: id++ }));
    const started = performance.now();
    let retries = 0;
    await Promise.all(updates.map(async (u) => {
      for (;;) {
        const res = await post(mf, u);
        await res.arrayBuffer();
        if (res.status === 200) return;
        retries++;
      }
    }));
    const seconds = (performance.now() - started) / 1000;
    return { persistence, routing, workload: text, chats: text === "/count" ? chats : N, updates: N, seconds: +seconds.toFixed(2), perSecond: +(N / seconds).toFixed(1), retries };
  } finally {
    await mf.dispose();
    await botApi.close();
  }
}

const only = process.argv[2];
const runs = [
  ["durable_object", "bot", 1],
  ["durable_object", "bot", 8],
  ["durable_object", "chat", 1],
  ["durable_object", "chat", 8],
  ["durable_object", "bot", N, "/start"],
  ["durable_object", "chat", N, "/start"],
  // D1: no serialisation, compare-and-set; /count shares bot_data, /start shares nothing.
  ["d1", "bot", 1],
  ["d1", "bot", 8],
  ["d1", "bot", N, "/start"],
  ["kv", "bot", 8],
];
const rows = [];
for (const args of runs.filter(([persistence]) => !only || persistence === only)) rows.push(await run(...args));
console.log(`Bot API latency ${DELAY_MS} ms; ${N} /count updates sent at once`);
console.table(rows);
console.log(JSON.stringify(rows));
