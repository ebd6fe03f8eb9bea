// `npm run dev` (scripts/dev.mjs → wrangler dev), or plain `npx wrangler dev`, for tests: random
// port, a given state directory, its own process group so that stopping it stops wrangler and
// workerd too.
import { spawn } from "node:child_process";
import path from "node:path";
import { root } from "./worker.mjs";

export const ADMIN = "dev-admin";

export function randomPort() {
  return 18787 + Math.floor(Math.random() * 2000);
}

export function startDev({ port, stateDir, env = {} }) {
  return started(
    port,
    spawn(process.execPath, [path.join(root, "scripts", "dev.mjs")], {
      cwd: root,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, BOT_TOKEN: "", TELEGRAM_API_BASE: "", ...env, DEV_PORT: String(port), STATE_DIR: stateDir },
    }),
  );
}

/** Plain `npx wrangler dev` at the root (the root wrangler.toml as it is), with `vars`. */
export function startWranglerDev({ port, stateDir, vars = {} }) {
  const args = ["dev", "--port", String(port), "--ip", "127.0.0.1", "--persist-to", stateDir];
  for (const [name, value] of Object.entries({ ADMIN_TOKEN: ADMIN, ...vars })) args.push("--var", `${name}:${value}`);
  return started(
    port,
    spawn(path.join(root, "node_modules", ".bin", "wrangler"), args, {
      cwd: root,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      // As a shell without `npm run dev`'s EDGEGRAM_BUILD: wrangler builds build/.
      env: { ...process.env, EDGEGRAM_BUILD: "", WRANGLER_SEND_METRICS: "false" },
    }),
  );
}

function started(port, child) {
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  return { child, exited, base: `http://127.0.0.1:${port}`, output: () => output };
}

export async function stopDev(dev) {
  try {
    process.kill(-dev.child.pid, "SIGTERM");
  } catch {}
  const timer = setTimeout(() => {
    try {
      process.kill(-dev.child.pid, "SIGKILL");
    } catch {}
  }, 5000);
  await dev.exited;
  clearTimeout(timer);
}

/** Waits until the worker answers its admin routes (wrangler dev builds first). */
export async function waitReady(dev, timeoutMs = 240_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${dev.base}/admin/export`, { headers: { Authorization: `Bearer ${ADMIN}` } });
      if (res.status === 200) return;
    } catch {}
    if (dev.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`wrangler dev did not become ready:\n${dev.output()}`);
}

export async function admin(dev, pathAndQuery, init = {}) {
  const res = await fetch(`${dev.base}${pathAndQuery}`, {
    ...init,
    headers: { Authorization: `Bearer ${ADMIN}`, ...(init.headers ?? {}) },
  });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`${pathAndQuery} answered ${res.status}: ${body}`);
  return JSON.parse(body);
}
