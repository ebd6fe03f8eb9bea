// Builds a worker crate of this workspace with worker-build, offline: worker-build would
// otherwise download wasm-bindgen, wasm-opt and esbuild (docs/toolchain.md), so each is named.
//   node scripts/build.mjs                      demo/ -> build/      (what wrangler dev and deploys run)
//   node scripts/build.mjs --test               demo/ -> build-test/ (adds the test-only routes, feature test-hooks)
//   node scripts/build.mjs --crate examples/todo          -> examples/todo/build/
// A build whose .wasm is newer than every source it is made of (the library, the crate, the
// workspace's manifests and lock file) is up to date and skipped, so that `wrangler dev` and
// `wrangler deploy`, which run this script, start in seconds after `npm test` built it;
// --force builds anyway.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { root, toolEnv } from "./setup.mjs";

const { values } = parseArgs({
  options: {
    test: { type: "boolean", default: false },
    crate: { type: "string", default: "demo" },
    out: { type: "string" },
    force: { type: "boolean", default: false },
  },
});
const crate = path.resolve(root, values.crate);
const isDemo = crate === path.join(root, "demo");
const out = values.out
  ? path.resolve(root, values.out)
  : isDemo
    ? path.join(root, values.test ? "build-test" : "build")
    : path.join(crate, "build");
const bin = (name) => path.join(root, "node_modules", ".bin", name);

/** The newest modification time of the files under `dir` (0 when it does not exist). */
function newestIn(dir) {
  if (!existsSync(dir)) return 0;
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestIn(p) : statSync(p).mtimeMs);
  }
  return newest;
}

const wasm = path.join(out, "index_bg.wasm");
// Which features the build had is part of what it is made of: build/ and build-test/ differ.
const sources = Math.max(
  newestIn(path.join(root, "src")),
  newestIn(path.join(crate, "src")),
  ...[path.join(root, "Cargo.toml"), path.join(root, "Cargo.lock"), path.join(crate, "Cargo.toml")].map((f) => statSync(f).mtimeMs),
);
if (!values.force && existsSync(wasm) && statSync(wasm).mtimeMs > sources) {
  console.log(`[build] ${path.relative(root, out)}/ is newer than its sources: up to date (--force rebuilds)`);
  process.exit(0);
}

const args = ["--release", "--out-dir", path.relative(crate, out)];
if (values.test) args.push("--features", "test-hooks");

const result = spawnSync("worker-build", args, {
  cwd: crate,
  stdio: "inherit",
  env: toolEnv({
    WASM_BINDGEN_BIN: process.env.WASM_BINDGEN_BIN ?? "wasm-bindgen",
    WASM_OPT_BIN: process.env.WASM_OPT_BIN ?? bin("wasm-opt"),
    ESBUILD_BIN: process.env.ESBUILD_BIN ?? bin("esbuild"),
  }),
});
if (result.error) {
  console.error(`worker-build could not run (${result.error.message}); node scripts/setup.mjs installs it`);
  process.exit(1);
}
process.exit(result.status ?? 1);
