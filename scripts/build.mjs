// Builds the demo worker with worker-build, offline: worker-build would otherwise download
// wasm-bindgen, wasm-opt and esbuild (see ../shared/notes/toolchain.md), so each is named here.
//   node scripts/build.mjs          -> build/       (what `wrangler dev` and deploys run)
//   node scripts/build.mjs --test   -> build-test/  (adds the test-only routes, feature test-hooks)
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const test = process.argv.includes("--test");
const bin = (name) => path.join(root, "node_modules", ".bin", name);

const args = ["--release", "--out-dir", test ? "build-test" : "build"];
if (test) args.push("--features", "test-hooks");

const result = spawnSync("worker-build", args, {
  cwd: root,
  stdio: "inherit",
  env: {
    ...process.env,
    WASM_BINDGEN_BIN: process.env.WASM_BINDGEN_BIN ?? "wasm-bindgen",
    WASM_OPT_BIN: process.env.WASM_OPT_BIN ?? bin("wasm-opt"),
    ESBUILD_BIN: process.env.ESBUILD_BIN ?? bin("esbuild"),
  },
});
if (result.error) {
  console.error(`worker-build could not run (${result.error.message}); .ci/run installs it`);
  process.exit(1);
}
process.exit(result.status ?? 1);
