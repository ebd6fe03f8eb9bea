// Installs what `npm test` and `npm run dev` need and a fresh clone lacks, skipping whatever is
// already there at the right version:
//   - the npm packages (`npm ci` when node_modules was not installed from this package-lock.json);
//   - the wasm32-unknown-unknown target;
//   - the pinned cargo tools worker-build 0.8.7 and wasm-bindgen-cli 0.2.130 (the toolchain
//     notes: about 5 minutes the first time, cached in ~/.cargo/bin afterwards);
//   - with { chromium: true }: Debian's Chromium for the playground's browser test;
//   - with { ptb: true }: python-telegram-bot in .venv-ptb/ for the PicklePersistence tests.
// Uses only Node's standard library: it runs before node_modules exists.
//
//   node scripts/setup.mjs [--chromium] [--ptb]
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import os from "node:os";
import path from "node:path";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export const WORKER_BUILD_VERSION = "0.8.7";
export const WASM_BINDGEN_VERSION = "0.2.130";
export const CHROMIUM = "/usr/bin/chromium";

/** PATH with ~/.cargo/bin first, where `cargo install` puts the tools. */
export function toolEnv(extra = {}) {
  const cargoBin = path.join(os.homedir(), ".cargo", "bin");
  return { ...process.env, PATH: `${cargoBin}${path.delimiter}${process.env.PATH ?? ""}`, ...extra };
}

function output(command, args) {
  const result = spawnSync(command, args, { encoding: "utf8", env: toolEnv() });
  return result.status === 0 ? result.stdout.trim() : null;
}

function run(command, args) {
  console.log(`[setup] $ ${command} ${args.join(" ")}`);
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", env: toolEnv({ DEBIAN_FRONTEND: "noninteractive" }) });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed (${result.error?.message ?? `exit ${result.status}`})`);
  }
}

function npmPackages() {
  const modules = path.join(root, "node_modules");
  // Installed from exactly this lock file: its hash, noted after the install. (Not times: a
  // checkout or a second worktree touches the lock file without changing it.)
  const hash = createHash("sha256").update(readFileSync(path.join(root, "package-lock.json"))).digest("hex");
  const marker = path.join(modules, ".edgegram-lock-sha256");
  if (existsSync(marker) && readFileSync(marker, "utf8") === hash) return;
  if (existsSync(modules) && lstatSync(modules).isSymbolicLink()) {
    // `npm ci` would empty the directory it points to, another checkout's packages.
    console.log("[setup] node_modules is a symbolic link: left as it is (run npm ci where it points)");
    return;
  }
  run("npm", ["ci", "--no-audit", "--no-fund"]);
  writeFileSync(marker, hash);
}

function wasmTarget() {
  const installed = output("rustup", ["target", "list", "--installed"]) ?? "";
  if (installed.split("\n").includes("wasm32-unknown-unknown")) return;
  run("rustup", ["target", "add", "wasm32-unknown-unknown"]);
}

function cargoTools() {
  if (output("worker-build", ["--version"]) !== WORKER_BUILD_VERSION) {
    run("cargo", ["install", "worker-build", "--version", WORKER_BUILD_VERSION, "--locked"]);
  }
  if (output("wasm-bindgen", ["--version"]) !== `wasm-bindgen ${WASM_BINDGEN_VERSION}`) {
    // No --locked: a yanked entry in its lock file breaks the install (toolchain notes).
    run("cargo", ["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN_VERSION]);
  }
}

function chromium() {
  if (existsSync(CHROMIUM)) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) and run again`);
  }
  run("apt-get", ["update"]);
  run("apt-get", ["install", "-y", "--no-install-recommends", "chromium"]);
}

async function ptbVenv() {
  const { ensurePtbVenv } = await import("../tools/ptb-venv.mjs");
  ensurePtbVenv({ log: (line) => console.log(line) });
}

/** Installs what is missing; see the file's header. */
export async function setup({ chromium: withChromium = false, ptb = false } = {}) {
  npmPackages();
  wasmTarget();
  cargoTools();
  if (withChromium) chromium();
  if (ptb) await ptbVenv();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    await setup({ chromium: process.argv.includes("--chromium"), ptb: process.argv.includes("--ptb") });
  } catch (e) {
    console.error(`[setup] ${e.message}`);
    process.exit(1);
  }
}
