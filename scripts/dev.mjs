// `npm run dev`: installs what is missing (scripts/setup.mjs), then runs the demo bot on a local Worker (wrangler dev; local Durable Objects and KV under
// .wrangler/state, kept across restarts) and the playground page at http://127.0.0.1:8787/.
//
// What only local development has, given to wrangler here and never in wrangler.toml, so that
// a deploy has none of it: the dev build build-dev/ (scripts/build.mjs --dev: the deploy build
// plus the Bot API recorder), the playground page (--assets www) and the vars below.
// By default the worker records its Bot API calls and answers them as Telegram would, inside
// the worker (DEV_RECORD_BOT_API=1, see src/edge/dev_bot_api.rs): nothing is sent anywhere, and
// the page shows the bot's replies.
//
// Environment (all optional):
//   DEV_PORT (8787), STATE_DIR (.wrangler/state), ADMIN_TOKEN (dev-admin), BOT_USERNAME
//   BOT_TOKEN [+ TELEGRAM_API_BASE, default https://api.telegram.org]: a real bot instead of the
//     recorder (the page then cannot show replies: they go to Telegram)
//   TELEGRAM_API_BASE alone: another Bot API stand-in, with the token "dev-token"
import { spawn } from "node:child_process";
import path from "node:path";
import { root, setup, toolEnv } from "./setup.mjs";

// A fresh clone has nothing installed: npm packages, the wasm target, the pinned cargo tools.
try {
  await setup();
} catch (e) {
  console.error(`[setup] ${e.message}`);
  process.exit(1);
}

const DEV_BUILD = "build-dev/index.js";
const port = Number(process.env.DEV_PORT ?? 8787);
const stateDir = process.env.STATE_DIR ?? path.join(root, ".wrangler", "state");
const adminToken = process.env.ADMIN_TOKEN || "dev-admin";
const record = !process.env.BOT_TOKEN && !process.env.TELEGRAM_API_BASE;

const vars = {
  ADMIN_TOKEN: adminToken,
  // Local development only: webhooks without a secret token are accepted.
  ALLOW_INSECURE_WEBHOOK: "1",
  BOT_USERNAME: process.env.BOT_USERNAME ?? "edgegram_demo_bot",
};
if (record) {
  // Local development only: Bot API calls are recorded in the worker, not sent.
  vars.DEV_RECORD_BOT_API = "1";
} else {
  vars.BOT_TOKEN = process.env.BOT_TOKEN ?? "dev-token";
  vars.TELEGRAM_API_BASE = process.env.TELEGRAM_API_BASE ?? "https://api.telegram.org";
}
// The dev build, build-dev/ (the deploy build with the recorder): wrangler runs the root
// wrangler.toml's [build] command, scripts/build.mjs, which builds it when told
// EDGEGRAM_BUILD=dev; the entry point given here replaces the config's `main` (build/).
// --assets: the page's files are served as they are, every other path goes to the worker.
const args = ["dev", DEV_BUILD, "--assets", "www", "--port", String(port), "--ip", "127.0.0.1", "--persist-to", stateDir];
for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}:${value}`);

const wrangler = spawn(path.join(root, "node_modules", ".bin", "wrangler"), args, {
  cwd: root,
  stdio: ["ignore", "inherit", "inherit"],
  env: toolEnv({ WRANGLER_SEND_METRICS: "false", EDGEGRAM_BUILD: "dev" }),
});

const base = `http://127.0.0.1:${port}`;
const page = adminToken === "dev-admin" ? `${base}/` : `${base}/#admin=${encodeURIComponent(adminToken)}`;
const auth = `-H 'Authorization: Bearer ${adminToken}'`;
console.log(
  record
    ? `[dev] Bot API: recorded inside the worker (DEV_RECORD_BOT_API=1), nothing is sent; curl -s '${base}/admin/dev/calls?after=0' ${auth}`
    : `[dev] Bot API: ${vars.TELEGRAM_API_BASE} (BOT_TOKEN set: the bot's replies go there, not to the page)`,
);
console.log(`[dev] playground: ${page} (open it once the worker is ready)`);
console.log(`[dev] webhook: ${base}/webhook (no secret needed locally)`);
console.log(`[dev] state:   curl -s ${base}/admin/export ${auth}`);

// Says where the page is once the worker answers (the first build can take a minute).
let stopped = false;
(async () => {
  const deadline = Date.now() + 300_000;
  while (!stopped && Date.now() < deadline) {
    try {
      const res = await fetch(`${base}/admin/info`, { headers: { Authorization: `Bearer ${adminToken}` } });
      if (res.status === 200) {
        console.log(`[dev] ready. Playground: ${page}`);
        return;
      }
    } catch {}
    await new Promise((r) => setTimeout(r, 500));
  }
})();

const stop = () => {
  stopped = true;
  wrangler.kill("SIGTERM");
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
wrangler.on("exit", (code) => {
  stopped = true;
  process.exit(code ?? 0);
});
