// Builds a worker crate of this workspace with worker-build, offline: worker-build would
// otherwise download wasm-bindgen, wasm-opt and esbuild (docs/toolchain.md), so each is named.
//   node scripts/build.mjs          demo/ -> build/      the deploy build: what `wrangler deploy`
//                                                        (and a plain `npx wrangler dev`) run
//   node scripts/build.mjs --dev    demo/ -> build-dev/  adds the dev Bot API recorder (feature
//                                                        dev-bot-api): what `npm run dev` runs
//   node scripts/build.mjs --test   demo/ -> build-test/ adds the recorder and the test-only
//                                                        routes (features dev-bot-api, test-hooks)
//   node scripts/build.mjs --crate examples/todo  -> examples/todo/build/
// wrangler runs this script, without flags, as the root wrangler.toml's [build] command.
// `npm run dev` (scripts/dev.mjs) gives wrangler the environment variable EDGEGRAM_BUILD=dev,
// which asks for the dev flavour, and runs build-dev/index.js. Any other wrangler command
// (wrangler names it in WRANGLER_COMMAND: deploy, versions upload, ...) ignores
// EDGEGRAM_BUILD: a deploy always builds build/, and build/ never has the recorder.
// Each flavour has its own directory, so switching between `npm run dev` and a deploy
// rebuilds nothing. A build whose .wasm is newer than every source it is made of (the
// library, the crate, the workspace's manifests and lock file) and has what its flavour must
// have (see `contents`) is up to date and skipped, so that `wrangler dev` and `wrangler
// deploy` start in seconds after `npm test` built it; --force builds anyway. Every build is
// checked the same way afterwards: a deploy build that holds the recorder or the test routes
// (a dependency that turned edgegram's features on, say) fails and is removed.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { root, toolEnv } from "./setup.mjs";

const { values } = parseArgs({
  options: {
    dev: { type: "boolean", default: false },
    test: { type: "boolean", default: false },
    crate: { type: "string", default: "demo" },
    out: { type: "string" },
    force: { type: "boolean", default: false },
  },
});
function fail(message) {
  console.error(`[build] ${message}`);
  process.exit(1);
}

const crate = path.resolve(root, values.crate);
const isDemo = crate === path.join(root, "demo");
if (values.dev && values.test) fail("--dev and --test are two flavours: pick one");
if (values.dev && !isDemo) fail("--dev is the demo's flavour (its feature dev-bot-api)");

let flavour = values.test ? "test" : values.dev ? "dev" : "deploy";
const asked = process.env.EDGEGRAM_BUILD ?? "";
if (asked !== "" && asked !== "dev") fail(`EDGEGRAM_BUILD=${asked}: the only value is dev (npm run dev sets it)`);
if (asked === "dev" && flavour === "deploy" && isDemo && !values.out) {
  const command = process.env.WRANGLER_COMMAND;
  if (command && command !== "dev") {
    console.log(`[build] EDGEGRAM_BUILD=dev is ignored: wrangler ${command} builds the deploy build (build/)`);
  } else {
    flavour = "dev";
  }
}
const features = { deploy: [], dev: ["dev-bot-api"], test: ["test-hooks", "dev-bot-api"] }[flavour];
const deployDir = isDemo ? path.join(root, "build") : path.join(crate, "build");
const out = values.out
  ? path.resolve(root, values.out)
  : isDemo
    ? path.join(root, { deploy: "build", dev: "build-dev", test: "build-test" }[flavour])
    : deployDir;
if (flavour !== "deploy" && out === deployDir) fail(`${path.relative(root, out)}/ is the deploy build's directory: the ${flavour} flavour goes elsewhere`);
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

// Route strings only feature-gated code puts in the binary: the dev recorder's admin routes
// (edgegram's dev-bot-api) and the test routes (testing). A build has each exactly when its
// flavour has the feature.
const MARKERS = [
  { text: "/admin/dev/", what: "the dev Bot API recorder", expected: features.includes("dev-bot-api") },
  { text: "/__test/", what: "the test routes", expected: features.includes("test-hooks") },
];
/** What the build at `wasm` has that its flavour must not, or lacks that it must (empty: as it should be). */
function contents() {
  const bytes = readFileSync(wasm);
  return MARKERS.filter((m) => bytes.includes(Buffer.from(m.text)) !== m.expected).map((m) =>
    m.expected ? `lacks ${m.what} (${m.text})` : `contains ${m.what} (${m.text})`,
  );
}

const sources = Math.max(
  newestIn(path.join(root, "src")),
  newestIn(path.join(crate, "src")),
  ...[path.join(root, "Cargo.toml"), path.join(root, "Cargo.lock"), path.join(crate, "Cargo.toml")].map((f) => statSync(f).mtimeMs),
);
const where = `${path.relative(root, out)}/`;
if (!values.force && existsSync(wasm) && statSync(wasm).mtimeMs > sources) {
  const wrong = contents();
  if (wrong.length === 0) {
    console.log(`[build] ${where} (${flavour}) is newer than its sources: up to date (--force rebuilds)`);
    process.exit(0);
  }
  console.log(`[build] ${where} ${wrong.join(" and ")}: not the ${flavour} build, rebuilding`);
}
console.log(`[build] ${where} (${flavour}): building${features.length ? ` with ${features.join(", ")}` : ""}`);

const args = ["--release", "--out-dir", path.relative(crate, out)];
if (features.length) args.push("--features", features.join(","));

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
if (result.status !== 0) process.exit(result.status ?? 1);
const wrong = contents();
if (wrong.length) {
  rmSync(wasm, { force: true });
  fail(`${where} ${wrong.join(" and ")}: not what the ${flavour} build must be, so it was removed. ` +
    "Has a dependency turned an edgegram feature on (cargo unifies features)? `cargo tree -e features` shows which.");
}
