// `node bench/typesize.mjs`: what the Telegram types cost in a .wasm. Builds bench/typesize
// five times (JSON only, edgegram's types, the generated views with the same reads and with
// every accessor called, frankenstein's types; release, LTO, opt-level z),
// runs wasm-opt -Oz without debug sections, and prints raw and gzip -9 sizes.
import { spawnSync } from "node:child_process";
import { readFileSync, mkdtempSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const crate = path.join(root, "bench", "typesize");
const target = path.join(root, "target", "typesize");
const out = mkdtempSync(path.join(tmpdir(), "typesize-"));
const run = (cmd, args, env = {}) => {
  const r = spawnSync(cmd, args, { cwd: crate, stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed`);
};
const rows = [];
for (const [name, features] of [["JSON only (serde_json::Value)", []], ["edgegram's types (src/types.rs)", ["own"]], ["generated views (src/api/), the same reads", ["views"]], ["generated views, every accessor called", ["views-all"]], ["frankenstein 0.52.1 types", ["frank"]]]) {
  const args = ["build", "--release", "--target", "wasm32-unknown-unknown"];
  if (features.length) args.push("--features", features.join(","));
  run("cargo", args, { CARGO_TARGET_DIR: target });
  const built = path.join(target, "wasm32-unknown-unknown", "release", "typesize.wasm");
  const opt = path.join(out, `${features[0] ?? "base"}.wasm`);
  run(path.join(root, "node_modules", ".bin", "wasm-opt"), ["-Oz", "--strip-debug", "--strip-producers", built, "-o", opt]);
  const bytes = readFileSync(opt);
  rows.push({ build: name, raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length });
}
const floor = rows[0].gzip;
for (const row of rows) row["gzip over JSON only"] = row.gzip - floor;
console.table(rows);
