// Turns bench/run.mjs's results into the tables of BENCHMARKS.md. Only the blocks between
// `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` are rewritten; the text around them is
// kept. Without a BENCHMARKS.md, a skeleton with every block is written.

const BLOCKS = ["machine", "targets", "native", "workerd", "ops", "size", "cold"];

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
    return {
      id,
      reads: Math.max(...rows.map((o) => perUpdate(o, "read_round_trips"))),
      writes: Math.max(...rows.map((o) => perUpdate(o, "write_round_trips"))),
      idleWrites: perUpdate(opsOf(id, "idle"), "kv_put", "kv_delete", "do_put", "do_delete", "do_transaction"),
      idleEntries: perUpdate(opsOf(id, "idle"), "kv_put", "kv_delete", "do_put_keys", "do_delete_keys", "txn_put_keys", "txn_delete_keys"),
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
    `| at most one storage read round trip and one write round trip per update | Application (any backend): max ${nativeRows[0].ops.max_reads} read, ${nativeRows[0].ops.max_writes} write; ${trips.map((x) => `${x.id.replace("edgegram-", "")}: ${f2(x.reads)} read, ${f2(x.writes)} write`).join("; ")} | ${yes(trips.every((x) => x.reads <= 1.01 && x.writes <= 1.01))}${trips.some((x) => x.reads <= 1.01 && x.writes <= 1.01) ? ` (met by ${trips.filter((x) => x.reads <= 1.01 && x.writes <= 1.01).map((x) => x.id).join(", ")})` : ""} |`,
    `| zero writes when an update changes nothing | Application: ${nativeIdle.writes} writes in ${nativeIdle.updates} updates; ${trips.map((x) => `${x.id.replace("edgegram-", "")}: ${f2(x.idleWrites)} write ops (${f2(x.idleEntries)} entries)`).join("; ")} per update | ${yes(trips.every((x) => x.idleWrites === 0))}${trips.some((x) => x.idleWrites === 0) ? ` (met by ${trips.filter((x) => x.idleWrites === 0).map((x) => x.id).join(", ")})` : ""} |`,
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
  const ids = ["floor-parse", "floor-kv", "floor-do", "grammy-chat", "grammy-multi", "edgegram-kv", "edgegram-do", "edgegram-do-chat"];
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
    "| backend | workload | read round trips | read ops (keys) | write round trips | write ops (entries) | bytes written | listings |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...nativeRows.map((n) => `| Application, any backend (\`SpyPersistence\`, native) | ${n.name} | ${f2(n.ops.reads / n.ops.updates)} | ${f2(n.ops.reads / n.ops.updates)} (${f2(n.ops.read_keys / n.ops.updates)}) | ${f2(n.ops.writes / n.ops.updates)} | ${f2(n.ops.writes / n.ops.updates)} (${f2((n.ops.puts + n.ops.deletes) / n.ops.updates)}) | ${f0(n.ops.bytes_written / n.ops.updates)} | – |`),
    ...r.ops.map((o) => {
      const readOps = perUpdate(o, "kv_get", "do_get");
      const readKeys = perUpdate(o, "kv_get_keys", "do_get_keys");
      const writeOps = perUpdate(o, "kv_put", "kv_delete", "do_put", "do_delete", "do_transaction");
      const entries = perUpdate(o, "kv_put", "kv_delete", "do_put_keys", "do_delete_keys", "txn_put_keys", "txn_delete_keys");
      const listings = (o.kv_list ?? 0) + (o.do_list ?? 0);
      return `| ${OPS_NAMES[o.id]} | ${o.workload} | ${f2(perUpdate(o, "read_round_trips"))} | ${f2(readOps)} (${f2(readKeys)}) | ${f2(perUpdate(o, "write_round_trips"))} | ${f2(writeOps)} (${f2(entries)}) | ${f0(perUpdate(o, "bytes_written"))} | ${listings ? `${listings} in ${o.updates} updates` : "–"} |`;
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

  const blocks = { machine, targets, native, workerd, ops: opsRows, size, cold };
  let document = existing && BLOCKS.every((b) => existing.includes(`<!-- bench:${b} -->`)) ? existing : SKELETON;
  for (const name of BLOCKS) {
    const pattern = new RegExp(`<!-- bench:${name} -->[\\s\\S]*?<!-- /bench:${name} -->`);
    document = document.replace(pattern, `<!-- bench:${name} -->\n${blocks[name]}\n<!-- /bench:${name} -->`);
  }
  const summary = [targets, "", native, "", workerd].join("\n");
  return { document, summary };
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
