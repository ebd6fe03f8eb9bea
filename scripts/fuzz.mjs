// `npm run fuzz`: runs each cargo-fuzz target in fuzz/ for a bounded time.
//   FUZZ_SECONDS (default 60) per target.
// cargo-fuzz needs nightly-only compiler flags (-Z sanitizer and coverage options). Where
// there is no nightly toolchain, RUSTC_BOOTSTRAP=1 lets the stable compiler accept them; this
// script uses whichever is available and says which.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const seconds = Number(process.env.FUZZ_SECONDS ?? 60);
const targets = ["webhook_body", "stored_key", "stored_value", "import_document"];

const has = (cmd, args) => spawnSync(cmd, args, { stdio: "ignore" }).status === 0;
if (!has("cargo", ["fuzz", "--version"])) {
  console.error("cargo-fuzz is not installed: cargo install cargo-fuzz --locked");
  process.exit(1);
}
const nightly = has("cargo", ["+nightly", "--version"]);
const env = { ...process.env };
const toolchain = nightly ? ["+nightly"] : [];
if (!nightly) {
  env.RUSTC_BOOTSTRAP = "1";
  console.log("No nightly toolchain: running with RUSTC_BOOTSTRAP=1 on stable.");
}

let failed = false;
for (const target of targets) {
  console.log(`\n== ${target}: ${seconds} s`);
  const result = spawnSync(
    "cargo",
    [...toolchain, "fuzz", "run", "--fuzz-dir", "fuzz", target, "--", `-max_total_time=${seconds}`, "-print_final_stats=1"],
    { cwd: root, stdio: "inherit", env },
  );
  if (result.status !== 0) {
    failed = true;
    console.error(`${target}: the fuzzer found a failure (see fuzz/artifacts/${target}/)`);
  }
}
process.exit(failed ? 1 : 0);
