// Builds a worker crate of this workspace with worker-build, offline: worker-build would
// otherwise download wasm-bindgen, wasm-opt and esbuild (docs/toolchain.md), so each is named.
//   node scripts/build.mjs                      demo/ -> build/      (what wrangler dev and deploys run)
//   node scripts/build.mjs --test               demo/ -> build-test/ (adds the test-only routes, feature test-hooks)
//   node scripts/build.mjs --crate examples/todo          -> examples/todo/build/
import { spawnSync } from "node:child_process";
import path from "node:path";
import { parseArgs } from "node:util";
import { root, toolEnv } from "./setup.mjs";

const { values } = parseArgs({
  options: {
    test: { type: "boolean", default: false },
    crate: { type: "string", default: "demo" },
    out: { type: "string" },
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
