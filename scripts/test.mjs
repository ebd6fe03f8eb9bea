// `npm test`: every test there is, in order of speed, after installing what is missing
// (scripts/setup.mjs: npm packages, the wasm target, the pinned cargo tools, Chromium, PTB).
//   1. native: `cargo test --workspace` (the library, its conformance suite on memory and file,
//      the test kit, the demo bot's behaviour)
//   2. builds: the demo's deploy build (build/, what a deploy uploads), its dev build
//      (build-dev/, what `npm run dev` runs), its test build (build-test/), the example bot
//      (examples/todo/build/)
//   3. workerd: node's test runner over tests/worker/*.test.mjs and examples/*/tests/*.test.mjs
//      (Miniflare, wrangler dev, Chromium)
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { root, setup, toolEnv } from "./setup.mjs";

function run(command, args) {
  console.log(`\n$ ${command} ${args.join(" ")}`);
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", env: toolEnv() });
  if (result.status !== 0) {
    console.error(`\n${command} ${args[0]} failed (${result.error?.message ?? `exit ${result.status}`})`);
    process.exit(result.status || 1);
  }
}

function testFiles(dir) {
  const full = path.join(root, dir);
  if (!existsSync(full)) return [];
  return readdirSync(full)
    .filter((f) => f.endsWith(".test.mjs"))
    .sort()
    .map((f) => path.join(dir, f));
}

try {
  await setup({ chromium: true, ptb: true });
} catch (e) {
  console.error(`[setup] ${e.message}`);
  process.exit(1);
}

run("cargo", ["test", "--workspace", "--quiet"]);
run(process.execPath, ["scripts/build.mjs"]);
run(process.execPath, ["scripts/build.mjs", "--dev"]);
run(process.execPath, ["scripts/build.mjs", "--test"]);
const examples = readdirSync(path.join(root, "examples")).filter((d) => existsSync(path.join(root, "examples", d, "Cargo.toml")));
for (const example of examples) run(process.execPath, ["scripts/build.mjs", "--crate", `examples/${example}`]);
const files = [...testFiles("tests/worker"), ...examples.flatMap((d) => testFiles(`examples/${d}/tests`))];
// Every test file carries a timeout: a wasm panic never answers (see README, "Panics"). Ten
// minutes: the wrangler dev and browser files start and restart a dev server.
run(process.execPath, ["--test", "--test-timeout=600000", "--test-concurrency=1", ...files]);
