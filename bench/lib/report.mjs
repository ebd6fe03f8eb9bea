// Turns bench/run.mjs's results into the tables of BENCHMARKS.md. Only the blocks between
// `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` are rewritten; the text around them is
// kept. Without a BENCHMARKS.md, a skeleton with every block is written.

const BLOCKS = ["machine", "targets", "native", "workerd", "outbox", "jobs", "ops", "size", "cold"];

const f0 = (x) => Math.round(x).toLocaleString("en-US");
const f1 = (x) => x.toFixed(1);
const f2 = (x) => x.toFixed(2);
const kib = (b) => `${(b / 1024).toFixed(0)} KiB (${b.toLocaleString("en-US")} B)`;
const ratio = (a, b) => `${(a / b).toFixed(1)}×`;
const yes = (ok) => (ok ? "**met**" : "**not met**");

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const rate = (stream) => stream.updates / median(stream.seconds);

export function render(r, existing) {
  const t = r.throughput;
  const at = (id, c) => t[`${id}@${c}`];
  const nativeRows = r.native.edgegram.streams.map((s) => {
    const p = r.native.ptb.streams.find((x) => x.name === s.name);
    const pf = r.native.ptbFlush.streams.find((x) => x.name === s.name);
    return { name: s.name, updates: s.updates, eg: rate(s), ptb: rate(p), ptbFlush: rate(pf), ops: s.ops };
  });
  const opsOf = (id, workload) => r.ops.find((o) => o.id === id && o.workload === workload);
  const perUpdate = (o, ...keys) => keys.reduce((sum, k) => sum + (o?.[k] ?? 0), 0) / (o?.updates ?? 1);

  // ----- targets
  const headline = nativeRows.filter((n) => n.name !== "idle");
  const nativeMin = Math.min(...headline.map((n) => n.eg / n.ptb));
  const doRatio = [1, 32].map((c) => at("edgegram-do", c).perSecond / at("grammy-multi", c).perSecond);
  const kvRatio = [1, 32].map((c) => at("edgegram-kv", c).perSecond / at("grammy-multi", c).perSecond);
  const doLost = [1, 32].map((c) => at("edgegram-do", c).lost.lost + at("edgegram-do-chat", c).lost.lost);
  const trips = ["edgegram-kv", "edgegram-do", "edgegram-do-chat"].map((id) => {
    const rows = r.ops.filter((o) => o.id === id);
    // The outbox's delete, after the calls were sent, is a write round trip of its own:
    // counted apart (what clearing a sent outbox costs).
    const idle = opsOf(id, "idle");
    return {
      id,
      reads: Math.max(...rows.map((o) => perUpdate(o, "read_round_trips"))),
      writes: Math.max(...rows.map((o) => perUpdate(o, "write_round_trips") - perUpdate(o, "outbox_delete_ops"))),
      clears: Math.max(...rows.map((o) => perUpdate(o, "outbox_delete_ops"))),
      idleWrites: perUpdate(idle, "kv_put", "kv_delete", "do_put", "do_delete", "do_transaction"),
      idleDataWrites: perUpdate(idle, "kv_put", "kv_delete", "do_put", "do_delete", "do_transaction") - perUpdate(idle, "outbox_delete_ops") - (idle?.kv_put ? perUpdate(idle, "outbox_puts") : 0),
      idleEntries: perUpdate(idle, "kv_put", "kv_delete", "do_put_keys", "do_delete_keys", "txn_put_keys", "txn_delete_keys"),
    };
  });
  const nativeIdle = nativeRows.find((n) => n.name === "idle").ops;
  const wasmGzipKiB = r.size.wasm.gzip / 1024;
  const targets = [
    "| target | measured | |",
    "| --- | --- | --- |",
    `| native: at least 20× PTB's updates/s (from JSON bytes; /count and profile) | ${headline.map((n) => `${n.name} ${ratio(n.eg, n.ptb)}`).join(", ")} | ${yes(nativeMin >= 20)} |`,
    `| workerd, Durable Objects: at least 2× grammY multi session, no lost increment | ${doRatio.map((x, i) => `${x.toFixed(1)}× at concurrency ${[1, 32][i]}`).join(", ")}; ${doLost[0] + doLost[1]} increments lost | ${yes(Math.min(...doRatio) >= 2 && doLost[0] + doLost[1] === 0)} |`,
    `| workerd, KV: at least 1.5× grammY multi session | ${kvRatio.map((x, i) => `${x.toFixed(1)}× at concurrency ${[1, 32][i]}`).join(", ")} | ${yes(Math.min(...kvRatio) >= 1.5)}${Math.max(...kvRatio) >= 1.5 && Math.min(...kvRatio) < 1.5 ? " at concurrency 1 (met at 32)" : ""} |`,
    `| at most one storage read round trip and one write round trip per update (then, for an update that queued calls, the outbox's delete once they are sent) | Application (any backend): max ${nativeRows[0].ops.max_reads} read, ${nativeRows[0].ops.max_writes} write; ${trips.map((x) => `${x.id.replace("edgegram-", "")}: ${f2(x.reads)} read, ${f2(x.writes)} write + ${f2(x.clears)} outbox delete`).join("; ")} | ${yes(trips.every((x) => x.reads <= 1.01 && x.writes <= 1.01))}${trips.some((x) => x.reads <= 1.01 && x.writes <= 1.01) && !trips.every((x) => x.reads <= 1.01 && x.writes <= 1.01) ? ` (met by ${trips.filter((x) => x.reads <= 1.01 && x.writes <= 1.01).map((x) => x.id).join(", ")})` : ""} |`,
    `| zero writes when an update changes nothing (but its reply's outbox: /show_data replies) | Application: ${nativeIdle.writes} writes in ${nativeIdle.updates} updates; ${trips.map((x) => `${x.id.replace("edgegram-", "")}: ${f2(x.idleWrites)} write ops (${f2(x.idleEntries)} entries), ${f2(x.idleDataWrites)} without the outbox's`).join("; ")} per update | ${yes(trips.every((x) => x.idleDataWrites <= 0.001))}${trips.some((x) => x.idleDataWrites <= 0.001) && !trips.every((x) => x.idleDataWrites <= 0.001) ? ` (met by ${trips.filter((x) => x.idleDataWrites <= 0.001).map((x) => x.id).join(", ")})` : ""} |`,
    ...outboxTargets(r.outbox),
    ...jobsTargets(r.jobs),
    `| release .wasm at most 600 KiB gzip | ${wasmGzipKiB.toFixed(0)} KiB | ${yes(wasmGzipKiB <= 600)} |`,
  ].join("\n");

  // ----- machine
  const v = r.versions;
  const machine = [
    "| | |",
    "| --- | --- |",
    `| date | ${r.date.slice(0, 16).replace("T", " ")} UTC${r.quick ? " (--quick)" : ""} |`,
    `| machine | ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, ${r.machine.os}; load average at the end ${r.machine.loadAtEnd} (the machine is shared) |`,
    `| edgegram | commit ${v.edgegramCommit}${v.dirty ? " plus uncommitted changes in src/" : ""}; worker ${v.worker}, wasm-bindgen ${v.wasmBindgen}; ${v.rustc} |`,
    `| python-telegram-bot | ${v.ptb} on Python ${v.python} (.venv-bench/) |`,
    `| grammY | grammy ${v.grammy}, @grammyjs/storage-cloudflare ${v.storageCloudflare}, bundled with esbuild ${v.esbuild} |`,
    `| workerd | miniflare ${v.miniflare} (workerd ${v.workerd}), Node ${v.node} |`,
    `| \`npm run bench\` | ${f0(r.seconds)} s: ${r.steps.map((s) => `${s.name} ${f0(s.seconds)} s`).join(", ")} |`,
  ].join("\n");

  // ----- native
  const native = [
    "| workload | updates | edgegram | PTB | edgegram ÷ PTB | PTB + `update_persistence()` per update | edgegram ÷ that |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...nativeRows.map((n) => `| ${NATIVE_NAMES[n.name]} | ${f0(n.updates)} | ${f0(n.eg)}/s (${f2(1e6 / n.eg)} µs) | ${f0(n.ptb)}/s (${f0(1e6 / n.ptb)} µs) | **${ratio(n.eg, n.ptb)}** | ${f0(n.ptbFlush)}/s | ${ratio(n.eg, n.ptbFlush)} |`),
  ].join("\n") + `\n\nMedian of ${r.sizes.nativePasses} passes for edgegram and ${r.sizes.ptbPasses} for PTB, each pass a fresh store; both bots sent the same number of replies and ended with the same bot_data (checked by the run). Building the demo Application, which the worker does for every request, costs ${f2(r.native.edgegram.build_application_us)} µs natively.`;

  // ----- workerd
  const grammyMulti = (c) => at("grammy-multi", c).perSecond;
  const lostText = (row) => (row.lost ? `${row.lost.lost} of ${row.lost.expected}${row.lost.lost ? ` (bot ${row.lost.bot ?? "–"}, chat ${row.lost.chats}, user ${row.lost.users ?? "–"})` : ""}` : "–");
  const ids = ["floor-parse", "floor-kv", "floor-do", "grammy-chat", "grammy-multi", "edgegram-kv", "edgegram-do", "edgegram-do-chat", "grammy-multi-d1", "edgegram-d1"];
  const workerd = [
    "| worker | concurrency 1: updates/s | p50 / p99 ms | concurrency 32: updates/s | p50 / p99 ms | ÷ grammY multi (1 / 32) | increments lost at 32 | redelivered at 32 |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...ids.map((id) => {
      const a = at(id, 1);
      const b = at(id, 32);
      const bold = id.startsWith("edgegram") ? "**" : "";
      return `| ${a.label} | ${bold}${f1(a.perSecond)}${bold} | ${f1(a.p50)} / ${f1(a.p99)} | ${bold}${f1(b.perSecond)}${bold} | ${f1(b.p50)} / ${f1(b.p99)} | ${f2(a.perSecond / grammyMulti(1))} / ${f2(b.perSecond / grammyMulti(32))} | ${lostText(b)} | ${b.retries} |`;
    }),
  ].join("\n") + `\n\n${f0(at("grammy-multi", 1).updates)} /count updates per row at concurrency 1 and ${f0(at("grammy-multi", 32).updates)} at 32 (half for DO_ROUTING=chat), a quarter of them in one group chat, the rest in 100 users' private chats. Every worker runs in its own fresh Miniflare (all started at once, each warmed with 40 updates), and the workers are driven in turns, ${r.sizes.c1.batches} batches of ${r.sizes.c1.batch} at concurrency 1 and ${r.sizes.c32.batches} of ${r.sizes.c32.batch} at 32, so that every row is measured across the same minutes. Increments lost at concurrency 1: ${ids.filter((id) => at(id, 1).lost).map((id) => `${id} ${at(id, 1).lost.lost}`).join(", ")}.`;

  // ----- ops
  const opsRows = [
    "| backend | workload | read round trips | read ops (keys) | write round trips | write ops (entries) | of which the outbox: entries put / deleted | bytes written | listings |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...nativeRows.map((n) => `| Application, any backend (\`SpyPersistence\`, native) | ${n.name} | ${f2(n.ops.reads / n.ops.updates)} | ${f2(n.ops.reads / n.ops.updates)} (${f2(n.ops.read_keys / n.ops.updates)}) | ${f2(n.ops.writes / n.ops.updates)} | ${f2(n.ops.writes / n.ops.updates)} (${f2((n.ops.puts + n.ops.deletes) / n.ops.updates)}) | – | ${f0(n.ops.bytes_written / n.ops.updates)} | – |`),
    ...r.ops.map((o) => {
      const readOps = perUpdate(o, "kv_get", "do_get");
      const readKeys = perUpdate(o, "kv_get_keys", "do_get_keys");
      const writeOps = perUpdate(o, "kv_put", "kv_delete", "do_put", "do_delete", "do_transaction");
      const entries = perUpdate(o, "kv_put", "kv_delete", "do_put_keys", "do_delete_keys", "txn_put_keys", "txn_delete_keys");
      const listings = (o.kv_list ?? 0) + (o.do_list ?? 0);
      const outboxOps = o.id.startsWith("edgegram") ? `${f2(perUpdate(o, "outbox_puts"))} / ${f2(perUpdate(o, "outbox_deletes"))}` : "–";
      return `| ${OPS_NAMES[o.id]} | ${o.workload} | ${f2(perUpdate(o, "read_round_trips"))} | ${f2(readOps)} (${f2(readKeys)}) | ${f2(perUpdate(o, "write_round_trips"))} | ${f2(writeOps)} (${f2(entries)}) | ${outboxOps} | ${f0(perUpdate(o, "bytes_written"))} | ${listings ? `${listings} in ${o.updates} updates` : "–"} |`;
    }),
  ].join("\n") + "\n\nAverages per update, except listings (a count over the whole workload): listings are the worker's periodic sweeps (processed update ids older than 24 hours on Durable Objects, unpressed keyboards), not part of an update's own read. Workloads: `count` = /count (a quarter of them in one group chat); `profile` = the profile conversation; `idle` = /show_data and a plain text, which change nothing (grammY's bot has handlers for neither: its session middleware still runs, and writes the initial session of a user it has not seen).";

  // ----- size
  const w = r.size.wasm;
  const code = w.sections.find((s) => s.name === "code").bytes;
  const named = w.sections.find((s) => s.name === 'custom "name"');
  const top = w.crates.slice(0, 12);
  const rest = w.crates.slice(12).reduce((s, c) => s + c.size, 0);
  const size = [
    "| artifact | raw | gzip -9 |",
    "| --- | --- | --- |",
    `| edgegram: \`build/index_bg.wasm\` (release, what \`wrangler deploy\` uploads) | ${kib(w.raw)} | **${kib(w.gzip)}** |`,
    named ? `| … of which the \`name\` custom section (function names) | ${kib(named.bytes)} | without it: ${kib(w.gzipWithoutNames)} |` : null,
    `| edgegram: \`build/index.js\` (wasm-bindgen glue) | ${kib(r.size.glue.raw)} | ${kib(r.size.glue.gzip)} |`,
    `| edgegram: the whole worker (.wasm + glue) | | ${kib(r.size.edgegramTotalGzip)} |`,
    `| grammY: the bench's counter bot bundle (grammy + storage-cloudflare, esbuild --minify) | ${kib(r.size.grammy.raw)} | **${kib(r.size.grammy.gzip)}** |`,
    `| floor worker bundle | ${kib(r.size.floor.raw)} | ${kib(r.size.floor.gzip)} |`,
  ].filter(Boolean).join("\n") + `\n\nSections of the .wasm: ${w.sections.filter((s) => s.bytes > 1024).map((s) => `${s.name} ${kib(s.bytes).split(" (")[0]}`).join(", ")}.\n\nCode bytes per crate (function bodies attributed by their demangled names in the \`name\` section; generic code counts where its path says, e.g. \`serde_json::…<edgegram::…>\` under serde_json; ${w.named} of ${w.functions} functions named):\n\n| crate | code bytes | share of code |\n| --- | --- | --- |\n${top.map((c) => `| ${c.crate} | ${f0(c.size)} | ${((100 * c.size) / code).toFixed(1)} % |`).join("\n")}\n| ${w.crates.length - top.length} more | ${f0(rest)} | ${((100 * rest) / code).toFixed(1)} % |\n\nedgegram's own code by module: ${w.edgegramModules.slice(0, 10).map((m) => `${m.module} ${f0(m.size)}`).join(", ")}${w.edgegramModules.length > 10 ? `, ${w.edgegramModules.length - 10} more ${f0(w.edgegramModules.slice(10).reduce((s, m) => s + m.size, 0))}` : ""} bytes.`;

  // ----- cold
  const cold = [
    "| worker | new Miniflare → first update answered | of which: ready → first update answered |",
    "| --- | --- | --- |",
    ...r.cold.map((c) => `| ${c.label} | ${f0(c.total)} ms | ${f1(c.first)} ms |`),
  ].join("\n") + `\n\nMedian of ${r.cold[0].samples} starts each. The first column includes starting workerd itself (the floor row is that cost alone); the second is the first request of a fresh isolate: for edgegram, instantiating the .wasm and building the Application; for grammY, building its Bot.`;

  const blocks = { machine, targets, native, workerd, outbox: outboxTables(r.outbox), jobs: jobsTables(r.jobs), ops: opsRows, size, cold };
  let document = existing ?? SKELETON;
  // A block new since the document was written goes before the storage operations.
  for (const name of BLOCKS.filter((b) => !document.includes(`<!-- bench:${b} -->`))) {
    const before = document.indexOf("<!-- bench:ops -->");
    const block = `<!-- bench:${name} -->\n<!-- /bench:${name} -->\n\n`;
    document = before >= 0 ? document.slice(0, before) + block + document.slice(before) : `${document}\n${block}`;
  }
  for (const name of BLOCKS) {
    const pattern = new RegExp(`<!-- bench:${name} -->[\\s\\S]*?<!-- /bench:${name} -->`);
    document = document.replace(pattern, `<!-- bench:${name} -->\n${blocks[name]}\n<!-- /bench:${name} -->`);
  }
  const summary = [targets, "", native, "", workerd].join("\n");
  return { document, summary };
}

/** The issue's targets for the outbox, from the latency and fault rows. */
function outboxTargets(o) {
  const lat = (id) => o.latency.find((x) => x.id === id);
  const flt = (id) => o.faults.find((x) => x.id === id);
  const exact = (x) => x.counted.bot === x.updates && x.counted.users === x.updates && x.replies === x.updates && x.distinct === x.updates;
  const doFaults = ["edgegram-do", "edgegram-do-chat", "edgegram-do-after", "edgegram-do-chat-after"].map(flt);
  const g = lat("grammy-multi");
  const best = ["edgegram-do", "edgegram-do-after"].map(lat).sort((a, b) => b.perSecond - a.perSecond)[0];
  const chat = ["edgegram-do-chat", "edgegram-do-chat-after"].map(lat);
  return [
    `| faults (10 % of replies failing, every update twice): Durable Objects, both routings, 0 lost, 0 doubled, every reply once | ${doFaults.map((x) => `${x.id.replace("edgegram-", "")}: bot ${x.counted.bot}, users ${x.counted.users}, replies ${x.replies} (${x.distinct} distinct) of ${x.updates}`).join("; ")} | ${yes(doFaults.every(exact))} |`,
    `| 50 ms Bot API, 32 in flight: Durable Objects (bot routing) at least grammY multi session's rate, p99 at most 1.5× grammY's | ${best.id.replace("edgegram-", "")} ${f1(best.perSecond)} updates/s (grammY ${f1(g.perSecond)}), p99 ${f0(best.p99)} ms (grammY ${f0(g.p99)}) | ${yes(best.perSecond >= g.perSecond && best.p99 <= 1.5 * g.p99)} |`,
    `| 50 ms Bot API: chat routing sends no reply twice | ${chat.map((x) => `${x.id.replace("edgegram-", "")}: ${x.replies} replies (${x.distinct} distinct) for ${x.updates} updates`).join("; ")} | ${yes(chat.every((x) => x.replies === x.distinct && x.replies === x.updates))} |`,
  ];
}

/** The per-run storage work of a job: every operation and key the alarm's run touched. */
function jobWork(w) {
  const o = w.ops;
  const n = (k) => o[k] ?? 0;
  return {
    lists: n("do_list"),
    listed: n("do_list_keys"),
    keysRead: n("do_get_keys") + n("txn_get_keys"),
    keysWritten: n("do_put_keys") + n("txn_put_keys") + n("do_delete_keys") + n("txn_delete_keys"),
  };
}

/** The issue's targets for jobs. */
function jobsTargets(j) {
  const [none, many] = j.work.map(jobWork);
  const within = j.lateness.map((l) => l.edgegram);
  const f = j.faults;
  return [
    `| under Miniflare a job runs within 1 s of its time (100 reminders due within the same seconds) | edgegram p99 late by ${j.lateness.map((l) => `${f0(l.edgegram.p99)} ms at a ${l.delayMs} ms Bot API (bare alarm ${f0(l.floor.p99)} ms)`).join(", ")} | ${yes(within.every((x) => x.p99 <= 1000 && x.sent === x.n))}${within.some((x) => x.p99 <= 1000) && !within.every((x) => x.p99 <= 1000) ? " (met with the instant Bot API; at 50 ms each chat's 25 reminders go one after another)" : ""} |`,
    `| 1,000 pending jobs cost a run O(log n) storage work, not a scan | keys listed ${none.listed} → ${many.listed}, keys read ${none.keysRead} → ${many.keysRead}, written ${none.keysWritten} → ${many.keysWritten} (0 → 1,000 pending) | ${yes(many.listed <= none.listed + 2 && many.keysRead <= none.keysRead + 2)} |`,
    `| 100 reminders due at once, 10 % of sends failing: each sent exactly once | ${f.sent} of ${f.n} sent, ${f.messages} messages, ${f.failed} failed calls retried | ${yes(f.sent === f.n && f.messages === f.n)} |`,
  ];
}

/** The jobs block: lateness against a bare alarm, faults, one run's storage work. */
function jobsTables(j) {
  const lateness = [
    "| Bot API | worker | sent | p50 / p99 / max late, ms | p99 ÷ bare alarm's |",
    "| --- | --- | --- | --- | --- |",
    ...j.lateness.flatMap((l) => [
      `| ${l.delayMs} ms | bare Durable Object alarm (floor) | ${l.floor.sent} of ${l.floor.n} | ${f0(l.floor.p50)} / ${f0(l.floor.p99)} / ${f0(l.floor.max)} | 1 |`,
      `| ${l.delayMs} ms | **edgegram, /remind (Durable Objects, bot routing)** | ${l.edgegram.sent} of ${l.edgegram.n} (${l.edgegram.messages} messages) | **${f0(l.edgegram.p50)} / ${f0(l.edgegram.p99)} / ${f0(l.edgegram.max)}** | ${f1(Math.max(l.edgegram.p99, 1) / Math.max(l.floor.p99, 1))}× |`,
    ]),
  ].join("\n");
  const work = [
    "| other jobs pending | listings | keys listed | keys read | keys written or deleted | reminder sent |",
    "| --- | --- | --- | --- | --- | --- |",
    ...j.work.map((w) => {
      const x = jobWork(w);
      return `| ${f0(w.pending)} | ${x.lists} | **${x.listed}** | ${x.keysRead} | ${x.keysWritten} | ${w.sent} |`;
    }),
  ].join("\n");
  const f = j.faults;
  return `${j.lateness[0].edgegram.n} reminders in 4 chats, each scheduled by \`/remind ${4} …\` (16 in flight) and late by the time its message reached the Bot API stand-in after its due time; the floor is one Durable Object alarm sending as many messages at one time, each chat's in order (\`bench/workers/floor-alarm.js\`):

${lateness}

With 10 % of sendMessage calls failing (500, 429 with \`retry_after: 1\`, a dropped connection): ${f.sent} of ${f.n} reminders sent, ${f.messages} messages delivered for them (${f.failed} failed calls), p50 / p99 late ${f0(f.p50)} / ${f0(f.p99)} ms.

The storage operations of the alarm that runs one due reminder (counted at the Durable Object's storage binding; the run, its reply's outbox and the outbox's delete), with other reminders pending an hour ahead:

${work}`;
}

/** The outbox block: the 50 ms Bot API table and the faults table. */
function outboxTables(o) {
  const counted = (x) => `${x.counted.bot} / ${x.counted.chats} / ${x.counted.users}`;
  const bold = (x, text) => (x.id.startsWith("edgegram") ? `**${text}**` : text);
  const g = o.latency.find((x) => x.id === "grammy-multi");
  const latency = [
    "| worker | updates/s | ÷ grammY multi (KV) | p50 / p99 ms | counted: bot / chats / users | replies delivered (distinct) | redelivered |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...o.latency.map((x) => `| ${x.label} | ${bold(x, f1(x.perSecond))} | ${f2(x.perSecond / g.perSecond)} | ${f0(x.p50)} / ${f0(x.p99)} | ${counted(x)} of ${x.updates} each | ${x.replies} (${x.distinct}) | ${x.redelivered} |`),
  ].join("\n");
  const faults = [
    "| worker | counted: bot / chats / users | updates lost (bot) | user increments doubled | replies delivered (distinct) | replies beyond one per update | failed calls | deliveries |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...o.faults.map((x) => `| ${x.label} | ${counted(x)} of ${x.updates} each | ${bold(x, x.lost)} | ${bold(x, x.doubled)} | ${x.replies} (${x.distinct}) | ${bold(x, x.extra)} | ${x.faults} | ${x.deliveries} |`),
  ].join("\n");
  return `Bot API answering after 50 ms; ${o.latency[0].updates} /count updates, ${o.latency[0].concurrency} in flight (a quarter in one group chat, the rest in 100 users' private chats):

${latency}

Bot API failing 10 % of sendMessage calls (500, 429 with \`retry_after: 1\`, a dropped connection, in turn); ${o.faults[0].updates} /count updates from 20 users in 4 group chats, every update delivered twice (half of the pairs at the same moment), ${o.faults[0].inFlight} in flight, each copy sent again after a non-200 answer:\n\n${faults}`;
}

const NATIVE_NAMES = {
  count: "/count, 100 users",
  profile: "profile conversation, 100 users",
  idle: "/show_data and plain text (no change)",
};

const OPS_NAMES = {
  "edgegram-kv": "edgegram, KV",
  "edgegram-do": "edgegram, Durable Objects (bot)",
  "edgegram-do-chat": "edgegram, Durable Objects (chat)",
  "grammy-multi": "grammY multi session, KvAdapter",
  "grammy-chat": "grammY chat session, KvAdapter",
};

const SKELETON = `# Benchmarks

${BLOCKS.map((b) => `<!-- bench:${b} -->\n<!-- /bench:${b} -->`).join("\n\n")}
`;
