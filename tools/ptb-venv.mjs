// A Python venv with python-telegram-bot, for the PicklePersistence converter
// (tools/ptb_pickle_to_json.py) and its tests. Made once in .venv-ptb/ (or $PTB_VENV) and reused:
// nothing is installed when it already holds the right PTB.
//
//   node tools/ptb-venv.mjs      prints the venv's python, creating the venv when missing
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** The PTB the converter is tested with. */
export const PTB_REQUIREMENT = "python-telegram-bot==22.*";
const PTB_MAJOR = "22.";

export function venvDir() {
  return process.env.PTB_VENV ?? path.join(root, ".venv-ptb");
}

export function venvPython() {
  return path.join(venvDir(), "bin", "python");
}

function ready(python) {
  if (!existsSync(python)) return false;
  const check = spawnSync(python, ["-c", `import telegram, sys; sys.exit(0 if telegram.__version__.startswith("${PTB_MAJOR}") else 1)`], {
    stdio: "ignore",
  });
  return check.status === 0;
}

function run(command, args, log) {
  log(`$ ${command} ${args.join(" ")}`);
  const result = spawnSync(command, args, { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
  if (result.status !== 0) {
    const why = result.error?.message ?? `${result.stderr}${result.stdout}`.trim();
    throw new Error(`${command} ${args.join(" ")} failed: ${why}`);
  }
}

/** The venv's python, with PTB installed; creates the venv when it is missing or lacks PTB. */
export function ensurePtbVenv({ log = (line) => console.error(line) } = {}) {
  const python = venvPython();
  if (ready(python)) return python;
  const base = process.env.PYTHON ?? "python3";
  log(`[ptb] making ${venvDir()} with ${PTB_REQUIREMENT} (once; later runs reuse it)`);
  if (!existsSync(python)) run(base, ["-m", "venv", venvDir()], log);
  run(python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", PTB_REQUIREMENT], log);
  if (!ready(python)) throw new Error(`${venvDir()}: python-telegram-bot still does not import`);
  return python;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    console.log(ensurePtbVenv());
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
