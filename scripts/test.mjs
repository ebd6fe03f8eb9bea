// `npm test`: every test there is, in order of speed.
//   1. native: `cargo test` (core, persistence conformance on memory and file, demo behaviour)
//   2. builds: the deploy build (build/, used by wrangler dev) and the test build (build-test/)
//   3. workerd: node's test runner over tests/*.test.mjs (Miniflare, wrangler dev)
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function run(command, args) {
  console.log(`\n$ ${command} ${args.join(" ")}`);
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit" });
  if (result.status !== 0) {
    console.error(`\n${command} ${args[0]} failed (${result.error?.message ?? `exit ${result.status}`})`);
    process.exit(result.status || 1);
  }
}

run("cargo", ["test", "--quiet"]);
run(process.execPath, ["scripts/build.mjs"]);
run(process.execPath, ["scripts/build.mjs", "--test"]);
const files = readdirSync(path.join(root, "tests"))
  .filter((f) => f.endsWith(".test.mjs"))
  .sort()
  .map((f) => path.join("tests", f));
// Every test carries a timeout: a wasm panic never answers (see README, "Panics").
run(process.execPath, ["--test", "--test-timeout=120000", "--test-concurrency=1", ...files]);
