// `npm run bench`: edgegram against python-telegram-bot and grammY, measured side by side in
// one run, and the tables of BENCHMARKS.md rewritten from the results.
//
//   node bench/run.mjs [--quick] [--no-build] [--no-write]
//
//   --quick     fewer updates and passes (a smoke run; numbers are noisier)
//   --no-build  use build/ as it is, even if src/ is newer
//   --no-write  print the results, leave BENCHMARKS.md alone
//
// Steps (every one prints what it runs):
//   1. build/ (the deploy build, `node scripts/build.mjs`) if missing or older than src/;
//      the native bench binary (`cargo build --release --example bench_native`, own target
//      dir); PTB 22.x in .venv-bench/ (created once); grammY's worker bundled with esbuild
//   2. native: edgegram's Application vs PTB's on the same update streams, from JSON bytes
//   3. workerd: edgegram (KV, Durable Objects) vs grammY (KvAdapter) vs floor workers under
//      one Miniflare, same Bot API stand-in, same load driver, concurrency 1 and 32
//   3b. the outbox: every worker with a Bot API that takes 50 ms, then with one failing 10 %
//      of replies and every update delivered twice (bench/lib/outbox.mjs)
//   3c. jobs: 100 reminders due at once against a bare Durable Object alarm, with 10 % of
//      sends failing, and the storage work of one run with 1,000 jobs pending (bench/lib/jobs.mjs)
//   4. storage operations per update, counted at the bindings
//   5. size of the release .wasm (sections, code per crate) and of grammY's bundle
//   6. cold start: a fresh Miniflare to the first answered update
// Results: target/bench/results.json; tables: BENCHMARKS.md (between <!-- bench:... --> marks).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { cpus, totalmem, loadavg, release, type } from "node:os";
import path from "node:path";

import { startBotApi } from "../tests/worker/support/bot-api.mjs";
import { countStream, profileStream, idleStream, jsonLines, GROUP } from "./lib/updates.mjs";
import * as W from "./lib/workerd.mjs";
import { wasmReport, gzip } from "./lib/size.mjs";
import { render } from "./lib/report.mjs";
import { outboxWorkers, latencyRows, faultRows, storedCounts } from "./lib/outbox.mjs";
import { jobsRows } from "./lib/jobs.mjs";

const { root, out } = W;
const args = new Set(process.argv.slice(2));
const QUICK = args.has("--quick");
const started = Date.now();
const steps = [];

function log(message) {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${message}\n`);
}

async function step(name, short, fn) {
  const t = Date.now();
  log(`${name} ...`);
  const result = await fn();
  steps.push({ name: short, seconds: (Date.now() - t) / 1000 });
  return result;
}

function run(command, argv, { env = {}, capture = false } = {}) {
  log(`$ ${Object.entries(env).map(([k, v]) => `${k}=${v} `).join("")}${command} ${argv.join(" ")}`);
  const result = spawnSync(command, argv, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: capture ? ["ignore", "pipe", "inherit"] : "inherit",
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  if (result.error || result.status !== 0) {
    throw new Error(`${command} ${argv[0]} failed: ${result.error?.message ?? `exit ${result.status}`}`);
  }
  return result.stdout;
}

const tryRun = (command, argv) => {
  const r = spawnSync(command, argv, { cwd: root, encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
};

function newestIn(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestIn(p) : statSync(p).mtimeMs);
  }
  return newest;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---------------------------------------------------------------------------------------------
// 1. Builds and installs

const SIZES = QUICK
  ? { count: 2000, profileCycles: 2, idle: 400, nativePasses: 3, ptbPasses: 1, c1: { batches: 2, batch: 50 }, c32: { batches: 2, batch: 100 }, cold: 1, opsCount: 40, opsProfileUsers: 10, opsIdle: 40, latency: 80, faults: 60 }
  : { count: 10000, profileCycles: 10, idle: 2000, nativePasses: 5, ptbPasses: 3, c1: { batches: 6, batch: 80 }, c32: { batches: 3, batch: 160 }, cold: 3, opsCount: 100, opsProfileUsers: 20, opsIdle: 100, latency: 240, faults: 300 };

await step("build/ (the demo worker's deploy build)", "build/", () => {
  const wasm = path.join(root, "build", "index_bg.wasm");
  const sources = Math.max(newestIn(path.join(root, "src")), newestIn(path.join(root, "demo", "src")), statSync(path.join(root, "Cargo.toml")).mtimeMs, statSync(path.join(root, "Cargo.lock")).mtimeMs);
  if (existsSync(wasm) && (args.has("--no-build") || statSync(wasm).mtimeMs >= sources)) {
    log("build/ is present and newer than src/: reused");
    return;
  }
  log(existsSync(wasm) ? "build/ is older than src/: rebuilding" : "build/ is missing: building");
  run(process.execPath, ["scripts/build.mjs"]);
});

const nativeBin = path.join(out, "release", "examples", "bench_native");
await step("native bench binary", "cargo build", () => {
  // opt-level 3: the crate's own release profile is tuned for .wasm size (opt-level "z"); a
  // bot built natively uses its own profile, where cargo's default release is opt-level 3.
  run("cargo", ["build", "--quiet", "--release", "-p", "edgegram-demo", "--example", "bench_native"], {
    env: { CARGO_TARGET_DIR: out, CARGO_PROFILE_RELEASE_OPT_LEVEL: "3" },
  });
});

const venv = path.join(root, ".venv-bench");
const python = path.join(venv, "bin", "python");
await step("python-telegram-bot 22.x in .venv-bench/", "PTB venv", () => {
  const installed = existsSync(python) && tryRun(python, ["-c", "import telegram; print(telegram.__version__)"]);
  if (installed && installed.startsWith("22.")) {
    log(`PTB ${installed} present`);
    return;
  }
  if (!existsSync(python)) run("python3", ["-m", "venv", venv]);
  run(python, ["-m", "pip", "install", "--quiet", "python-telegram-bot==22.*"]);
});

const streamsDir = path.join(out, "streams");
mkdirSync(streamsDir, { recursive: true });
const streams = {
  count: countStream(SIZES.count),
  profile: profileStream(SIZES.profileCycles),
  idle: idleStream(SIZES.idle),
};
const streamArgs = Object.entries(streams).map(([name, updates]) => {
  const file = path.join(streamsDir, `${name}.jsonl`);
  writeFileSync(file, jsonLines(updates));
  return `${name}=${path.relative(root, file)}`;
});

const bundles = await step("bundle the grammY and floor workers (esbuild)", "esbuild", async () => ({
  grammy: await W.bundle("grammy"),
  floor: await W.bundle("floor"),
  floorAlarm: await W.bundle("floor-alarm"),
}));

// ---------------------------------------------------------------------------------------------
// 2. Native: edgegram vs PTB

const native = await step("native: edgegram", "native edgegram", () =>
  JSON.parse(run(nativeBin, ["--passes", String(SIZES.nativePasses), ...streamArgs], { capture: true })));
const ptb = await step("native: python-telegram-bot", "native PTB", () =>
  JSON.parse(run(python, ["bench/ptb/bench_ptb.py", "--passes", String(SIZES.ptbPasses), ...streamArgs], { capture: true })));
const ptbFlush = await step("native: python-telegram-bot, update_persistence() per update", "native PTB + update_persistence", () =>
  JSON.parse(run(python, ["bench/ptb/bench_ptb.py", "--flush", "--passes", String(SIZES.ptbPasses), ...streamArgs], { capture: true })));

for (const s of native.streams) {
  const p = ptb.streams.find((x) => x.name === s.name);
  if (p.replies !== s.replies) throw new Error(`${s.name}: edgegram sent ${s.replies} replies, PTB ${p.replies}: the bots differ`);
  if (JSON.stringify(p.bot_data) !== JSON.stringify(s.bot_data ?? {})) throw new Error(`${s.name}: bot_data differs: ${JSON.stringify(s.bot_data)} vs ${JSON.stringify(p.bot_data)}`);
}

// ---------------------------------------------------------------------------------------------
// 3. workerd throughput

const botApi = await startBotApi();

const WORKERS = [
  { id: "floor-parse", label: "floor: parse the JSON, answer 200", start: () => W.startBundled({ botApi, script: bundles.floor, bindings: { FLOOR: "parse" } }), counters: null },
  { id: "floor-kv", label: "floor: + one KV get and one KV put", start: () => W.startBundled({ botApi, script: bundles.floor, bindings: { FLOOR: "kv" } }), counters: "floor" },
  { id: "floor-do", label: "floor: forward to one Durable Object, one get and one put there", start: () => W.startBundled({ botApi, script: bundles.floor, bindings: { FLOOR: "do" }, durableObjects: { FLOOR_DO: { className: "FloorObject", useSQLite: true } } }), counters: null },
  { id: "grammy-chat", label: "grammY, chat session (KvAdapter)", start: (o = {}) => W.startBundled({ botApi, script: bundles.grammy, bindings: { SESSION: "chat", ...o } }), counters: "grammy-chat" },
  { id: "grammy-multi", label: "grammY, multi session: bot + chat + user (KvAdapter)", start: (o = {}) => W.startBundled({ botApi, script: bundles.grammy, bindings: { SESSION: "multi", ...o } }), counters: "grammy-multi" },
  { id: "edgegram-kv", label: "edgegram, KV", start: (o = {}) => W.startEdgegram({ botApi, persistence: "kv", ...o }), counters: "edgegram" },
  { id: "edgegram-do", label: "edgegram, Durable Objects (DO_ROUTING=bot)", start: (o = {}) => W.startEdgegram({ botApi, persistence: "durable_object", ...o }), counters: "edgegram" },
  { id: "edgegram-do-chat", label: "edgegram, Durable Objects (DO_ROUTING=chat)", start: (o = {}) => W.startEdgegram({ botApi, persistence: "durable_object", routing: "chat", ...o }), counters: "edgegram", small: true },
  // D1 (issue "D1"): grammY's D1Adapter (last write wins) against edgegram's compare-and-set.
  { id: "grammy-multi-d1", label: "grammY, multi session: bot + chat + user (D1Adapter)", start: (o = {}) => W.startBundled({ botApi, script: bundles.grammy, bindings: { SESSION: "multi", STORAGE: "d1", ...o } }), counters: "grammy-d1", small: true },
  { id: "edgegram-d1", label: "edgegram, D1", start: (o = {}) => W.startEdgegram({ botApi, persistence: "d1", ...o }), counters: "edgegram", small: true },
];

/** bot, per-chat and per-user counters as the worker stored them. */
async function counters(kind, mf) {
  const snap = { bot: 0, chats: 0, users: 0 };
  if (kind === "grammy-d1") return storedCounts(W, kind, mf);
  if (kind === "edgegram") {
    const state = await W.exportState(mf);
    snap.bot = state.bot_data?.count ?? 0;
    for (const d of Object.values(state.chat_data ?? {})) snap.chats += d.count ?? 0;
    for (const d of Object.values(state.user_data ?? {})) snap.users += d.count ?? 0;
    return snap;
  }
  const kv = await mf.getKVNamespace("KV");
  let cursor;
  do {
    const page = await kv.list({ cursor });
    for (const { name } of page.keys) {
      const raw = await kv.get(name);
      const value = kind === "floor" ? Number(raw) : JSON.parse(raw).count;
      if (name === "bot:bot") snap.bot += value;
      else if (name.startsWith("chat:")) snap.chats += value;
      else if (name.startsWith("user:")) snap.users += value;
    }
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return snap;
}

function lostIncrements(kind, before, after, n) {
  if (!kind) return null;
  const has = { edgegram: ["bot", "chats", "users"], "grammy-multi": ["bot", "chats", "users"], "grammy-d1": ["bot", "chats", "users"], "grammy-chat": ["chats"], floor: ["chats"] }[kind];
  const lost = {};
  for (const k of has) lost[k] = n - (after[k] - before[k]);
  return { expected: n * has.length, lost: Object.values(lost).reduce((a, b) => a + b, 0), ...lost };
}

let nextId = 1;
const take = (n, options = {}) => {
  const updates = countStream(n, { firstId: nextId, groupEvery: 4, ...options });
  nextId += n;
  return updates;
};

// All workers run at once (one workerd each, idle while not driven) and are driven in turns,
// batch by batch, so that every row is measured across the same minutes: the machine is
// shared, and a build starting next door then slows every row alike instead of one.
const throughput = await step("workerd: throughput at concurrency 1 and 32", "workerd throughput", async () => {
  const running = [];
  try {
    for (const worker of WORKERS) {
      const mf = await worker.start();
      running.push({ worker, mf });
      // Warm up: compile, first objects, first keys.
      await W.drive(mf, take(40), 4);
    }
    const rows = {};
    for (const concurrency of [1, 32]) {
      const { batches, batch } = concurrency === 1 ? SIZES.c1 : SIZES.c32;
      const parts = new Map(running.map(({ worker }) => [worker.id, []]));
      const before = new Map();
      for (const { worker, mf } of running) before.set(worker.id, worker.counters ? await counters(worker.counters, mf) : null);
      for (let b = 0; b < batches; b++) {
        for (const { worker, mf } of running) {
          const n = worker.small ? batch / 2 : batch;
          parts.get(worker.id).push({ n, ...(await W.drive(mf, take(n), concurrency)) });
        }
      }
      for (const { worker, mf } of running) {
        const done = parts.get(worker.id);
        const n = done.reduce((s, p) => s + p.n, 0);
        const seconds = done.reduce((s, p) => s + p.seconds, 0);
        const latencies = done.flatMap((p) => p.latencies);
        const after = worker.counters ? await counters(worker.counters, mf) : null;
        const row = {
          id: worker.id,
          label: worker.label,
          concurrency,
          updates: n,
          seconds,
          perSecond: n / seconds,
          retries: done.reduce((s, p) => s + p.retries, 0),
          ...W.percentiles(latencies),
          lost: lostIncrements(worker.counters, before.get(worker.id), after, n),
        };
        rows[`${worker.id}@${concurrency}`] = row;
        log(`  ${worker.id} @${concurrency}: ${row.perSecond.toFixed(1)} updates/s, p50 ${row.p50.toFixed(1)} ms, p99 ${row.p99.toFixed(1)} ms${row.lost ? `, lost ${row.lost.lost}` : ""}${row.retries ? `, ${row.retries} redeliveries` : ""}`);
      }
      botApi.clear();
    }
    return rows;
  } finally {
    for (const { mf } of running) await mf.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// 3b. The outbox: a Bot API that takes 50 ms, and one that fails 10 % of replies

const outbox = await step("workerd: a 50 ms Bot API, and 10 % of replies failing", "outbox", async () => {
  const workers = outboxWorkers(W, bundles);
  log("  Bot API answering after 50 ms:");
  const latency = await latencyRows(W, workers, { n: SIZES.latency, concurrency: 32, log });
  log("  10 % of sendMessage calls failing, every update twice:");
  const faults = await faultRows(W, workers, { n: SIZES.faults, inFlight: 24, log });
  return { latency, faults };
});

// ---------------------------------------------------------------------------------------------
// 3c. Jobs: reminders on the Durable Object's alarm

const jobs = await step("workerd: 100 reminders due at once, a bare alarm as the floor; one run's storage work", "jobs", () =>
  jobsRows(W, bundles.floorAlarm, { n: QUICK ? 40 : 100, log, firstId: 9_000_000 }));

// ---------------------------------------------------------------------------------------------
// 4. Storage operations per update

const ops = await step("storage operations per update (counted at the bindings)", "storage operations", async () => {
  const result = [];
  const sets = [
    ["count", () => countStream(SIZES.opsCount, { firstId: nextId, groupEvery: 4 })],
    ["profile", () => profileStream(1, { users: SIZES.opsProfileUsers, firstId: nextId })],
    ["idle", () => idleStream(SIZES.opsIdle, { users: SIZES.opsProfileUsers, firstId: nextId })],
  ];
  const targets = [
    ["edgegram-kv", () => W.startEdgegram({ botApi, persistence: "kv", counting: true }), ["count", "profile", "idle"]],
    ["edgegram-do", () => W.startEdgegram({ botApi, persistence: "durable_object", counting: true }), ["count", "profile", "idle"]],
    ["edgegram-do-chat", () => W.startEdgegram({ botApi, persistence: "durable_object", routing: "chat", counting: true }), ["count", "profile", "idle"]],
    ["grammy-multi", () => WORKERS.find((w) => w.id === "grammy-multi").start({ COUNT_OPS: "1" }), ["count", "idle"]],
    ["grammy-chat", () => WORKERS.find((w) => w.id === "grammy-chat").start({ COUNT_OPS: "1" }), ["count", "idle"]],
  ];
  for (const [id, start, workloads] of targets) {
    const mf = await start();
    try {
      await W.takeOps(mf);
      for (const [workload, make] of sets) {
        if (!workloads.includes(workload)) continue;
        const updates = make();
        nextId += updates.length;
        await W.drive(mf, updates, 1);
        result.push({ id, workload, updates: updates.length, ...(await W.takeOps(mf)) });
      }
    } finally {
      await mf.dispose();
    }
  }
  return result;
});

// ---------------------------------------------------------------------------------------------
// 5. Size

const size = await step("size", "size", () => {
  const wasm = wasmReport(path.join(root, "build", "index_bg.wasm"), path.join(root, "src"));
  const glue = readFileSync(path.join(root, "build", "index.js"));
  const grammy = readFileSync(bundles.grammy);
  const floor = readFileSync(bundles.floor);
  return {
    wasm,
    glue: { raw: glue.length, gzip: gzip(glue) },
    edgegramTotalGzip: gzip(Buffer.concat([readFileSync(path.join(root, "build", "index_bg.wasm")), glue])),
    grammy: { raw: grammy.length, gzip: gzip(grammy) },
    floor: { raw: floor.length, gzip: gzip(floor) },
  };
});

// ---------------------------------------------------------------------------------------------
// 6. Cold start

const cold = await step("cold start: a fresh Miniflare to the first answered update", "cold start", async () => {
  const rows = [];
  for (const worker of WORKERS.filter((w) => ["floor-parse", "grammy-multi", "edgegram-kv", "edgegram-do"].includes(w.id))) {
    const total = [];
    const first = [];
    for (let i = 0; i < SIZES.cold; i++) {
      const t0 = performance.now();
      const mf = await worker.start();
      const t1 = performance.now();
      const res = await W.post(mf, countStream(1, { firstId: nextId++ })[0]);
      await res.arrayBuffer();
      const t2 = performance.now();
      if (res.status !== 200) throw new Error(`${worker.id}: first update answered ${res.status}`);
      total.push(t2 - t0);
      first.push(t2 - t1);
      await mf.dispose();
    }
    rows.push({ id: worker.id, label: worker.label, total: median(total), first: median(first), samples: SIZES.cold });
  }
  return rows;
});

await botApi.close();

// ---------------------------------------------------------------------------------------------
// Report

const lockVersion = (name) => {
  const lock = readFileSync(path.join(root, "Cargo.lock"), "utf8");
  return new RegExp(`name = "${name}"\\nversion = "([^"]+)"`).exec(lock)?.[1];
};
const pkgVersion = (name) => JSON.parse(readFileSync(path.join(root, "node_modules", name, "package.json"), "utf8")).version;
const results = {
  date: new Date().toISOString(),
  quick: QUICK,
  seconds: (Date.now() - started) / 1000,
  steps,
  machine: {
    cpu: cpus()[0]?.model?.trim(),
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${type()} ${release()}`,
    loadAtEnd: loadavg().map((l) => l.toFixed(2)).join(" "),
  },
  versions: {
    node: process.versions.node,
    rustc: tryRun("rustc", ["--version"]),
    python: ptb.python,
    ptb: ptb.ptb,
    grammy: pkgVersion("grammy"),
    storageCloudflare: pkgVersion("@grammyjs/storage-cloudflare"),
    miniflare: pkgVersion("miniflare"),
    workerd: pkgVersion("workerd"),
    esbuild: pkgVersion("esbuild"),
    worker: lockVersion("worker"),
    wasmBindgen: lockVersion("wasm-bindgen"),
    edgegramCommit: tryRun("git", ["rev-parse", "--short", "HEAD"]),
    dirty: Boolean(tryRun("git", ["status", "--porcelain", "--untracked-files=no", "src", "demo", "Cargo.toml", "Cargo.lock"])),
  },
  sizes: SIZES,
  native: { edgegram: native, ptb, ptbFlush },
  throughput,
  outbox,
  jobs,
  ops,
  size,
  cold,
  group: GROUP,
};
writeFileSync(path.join(out, "results.json"), JSON.stringify(results, null, 2));
log(`results in ${path.relative(root, path.join(out, "results.json"))}`);

const benchmarks = path.join(root, "BENCHMARKS.md");
const rendered = render(results, existsSync(benchmarks) ? readFileSync(benchmarks, "utf8") : null);
if (args.has("--no-write") || QUICK) {
  process.stdout.write(rendered.summary + "\n");
  if (QUICK) log("--quick: BENCHMARKS.md left alone");
} else {
  writeFileSync(benchmarks, rendered.document);
  process.stdout.write(rendered.summary + "\n");
  log("BENCHMARKS.md rewritten");
}
log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
