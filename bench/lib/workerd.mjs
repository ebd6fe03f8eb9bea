// The workers of the workerd benchmark under programmatic Miniflare (one workerd, the
// version of the repo's pinned miniflare), and the load driver every row uses.
import { Miniflare } from "miniflare";
import { build } from "esbuild";
import { readFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { applyMigrations } from "../../tests/worker/support/worker.mjs";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const out = path.join(root, "target", "bench");
export const SECRET = "bench-secret";
export const TOKEN = "123456:BENCH-token";
export const ADMIN = "bench-admin";
const COMPAT = "2026-04-01";

/** Bundles a bench worker with the repo's esbuild (minified, as a deploy would). */
export async function bundle(name) {
  mkdirSync(path.join(out, "workers"), { recursive: true });
  const outfile = path.join(out, "workers", `${name}.mjs`);
  await build({
    entryPoints: [path.join(root, "bench", "workers", `${name}.js`)],
    outfile,
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    conditions: ["worker", "browser"],
    target: "es2022",
    external: ["cloudflare:*"],
    logLevel: "error",
  });
  return outfile;
}

function common(botApi, bindings) {
  return {
    compatibilityDate: COMPAT,
    // The workers' own logs (edgegram logs every 5xx it answers) are not the bench's output.
    handleRuntimeStdio(stdout, stderr) {
      stdout.resume();
      stderr.resume();
    },
    bindings: { BOT_TOKEN: TOKEN, WEBHOOK_SECRET: SECRET, TELEGRAM_API_BASE: botApi.url, ...bindings },
  };
}

/**
 * edgegram's release build (build/), optionally wrapped so that storage operations count;
 * `bindings` add vars (SEND_QUEUED_CALLS), and a D1 database is bound with its tables.
 */
export async function startEdgegram({ botApi, persistence, routing = "bot", counting = false, bindings = {} }) {
  const buildDir = path.join(root, "build");
  const modules = counting
    ? {
        modulesRoot: buildDir,
        modules: [
          { type: "ESModule", path: path.join(buildDir, "bench-counting.mjs"), contents: readFileSync(path.join(root, "bench", "workers", "edgegram-counting.js"), "utf8") },
          { type: "ESModule", path: path.join(buildDir, "bench-counting-lib.js"), contents: readFileSync(path.join(root, "bench", "workers", "counting.js"), "utf8") },
          { type: "ESModule", path: path.join(buildDir, "index.js") },
          { type: "CompiledWasm", path: path.join(buildDir, "index_bg.wasm") },
        ],
      }
    : {
        modules: true,
        scriptPath: path.join(buildDir, "index.js"),
        modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
      };
  const mf = new Miniflare({
    ...modules,
    ...common(botApi, {
      ADMIN_TOKEN: ADMIN,
      PERSISTENCE: persistence,
      DO_ROUTING: routing,
      BOT_USERNAME: "edgegram_demo_bot",
      ...bindings,
    }),
    kvNamespaces: ["EDGEGRAM_KV"],
    d1Databases: ["EDGEGRAM_D1"],
    durableObjects: { EDGEGRAM_DO: { className: "EdgegramObject", useSQLite: true } },
  });
  await mf.ready;
  await applyMigrations(await mf.getD1Database("EDGEGRAM_D1"));
  return mf;
}

/** A bundled bench worker (grammy, floor) with a KV namespace bound as KV, a D1 database as DB. */
export async function startBundled({ botApi, script, bindings = {}, durableObjects }) {
  const mf = new Miniflare({
    modules: true,
    scriptPath: script,
    ...common(botApi, bindings),
    kvNamespaces: ["KV"],
    d1Databases: ["DB"],
    ...(durableObjects ? { durableObjects } : {}),
  });
  await mf.ready;
  return mf;
}

export function post(mf, update) {
  return mf.dispatchFetch("http://localhost/webhook", {
    method: "POST",
    headers: { "content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET },
    body: typeof update === "string" ? update : JSON.stringify(update),
  });
}

/**
 * Sends `updates` with `concurrency` requests in flight, as Telegram does with
 * max_connections: each update is sent until it is answered 200 (a 5xx is redelivered, as
 * Telegram would). Latency runs from an update's first send to its 200.
 */
export async function drive(mf, updates, concurrency, { performWebhookReplies } = {}) {
  const bodies = updates.map((u) => JSON.stringify(u));
  const latencies = new Array(bodies.length);
  let next = 0;
  let retries = 0;
  const started = performance.now();
  async function lane() {
    while (next < bodies.length) {
      const i = next++;
      const sent = performance.now();
      for (let attempt = 1; ; attempt++) {
        const res = await post(mf, bodies[i]);
        const text = await res.text();
        if (res.status === 200) {
          // WEBHOOK_REPLY: the answer is a call, which Telegram makes.
          if (performWebhookReplies) performWebhookReply(performWebhookReplies, res, text);
          break;
        }
        retries++;
        if (attempt >= 100) throw new Error(`update ${i} answered ${res.status} ${attempt} times`);
        // Telegram redelivers after a while; back off with jitter so that updates that
        // conflicted do not collide again at once.
        await sleep(Math.random() * Math.min(200, 5 * 2 ** attempt));
      }
      latencies[i] = performance.now() - sent;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  const seconds = (performance.now() - started) / 1000;
  return { updates: bodies.length, seconds, perSecond: bodies.length / seconds, retries, latencies, ...percentiles(latencies) };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Makes the call a webhook answer carries (`{"method": ..., ...params}`), as Telegram does. */
export function performWebhookReply(botApi, res, text) {
  if (!(res.headers.get("content-type") ?? "").includes("json")) return;
  const { method, ...params } = JSON.parse(text);
  if (method) botApi.perform(method, params);
}

export function percentiles(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50: at(0.5), p99: at(0.99) };
}

export async function exportState(mf) {
  const res = await mf.dispatchFetch("http://localhost/admin/export", { headers: { Authorization: `Bearer ${ADMIN}` } });
  if (res.status !== 200) throw new Error(`export answered ${res.status}: ${await res.text()}`);
  return res.json();
}

export async function takeOps(mf) {
  const res = await mf.dispatchFetch("http://localhost/__ops");
  return res.json();
}
