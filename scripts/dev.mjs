// `npm run dev`: the demo bot on a local Worker (wrangler dev, local KV under .wrangler/state,
// kept across restarts) with a local Bot API stand-in that prints what the bot sends.
//
// Environment (all optional):
//   DEV_PORT (8787), BOT_API_PORT (8788), STATE_DIR (.wrangler/state)
//   BOT_TOKEN + TELEGRAM_API_BASE: talk to a real Bot API instead of the stand-in.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { startBotApi } from "../tests/support/bot-api.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const port = Number(process.env.DEV_PORT ?? 8787);
const stateDir = process.env.STATE_DIR ?? path.join(root, ".wrangler", "state");

let apiBase = process.env.TELEGRAM_API_BASE;
let botApi;
if (!apiBase) {
  botApi = await startBotApi({ port: Number(process.env.BOT_API_PORT ?? 8788), log: true });
  apiBase = botApi.url;
}

const vars = {
  TELEGRAM_API_BASE: apiBase,
  BOT_TOKEN: process.env.BOT_TOKEN ?? "dev-token",
  ADMIN_TOKEN: process.env.ADMIN_TOKEN ?? "dev-admin",
  // Local development only: webhooks without a secret token are accepted.
  ALLOW_INSECURE_WEBHOOK: "1",
  BOT_USERNAME: process.env.BOT_USERNAME ?? "edgegram_demo_bot",
};
const args = ["dev", "--port", String(port), "--ip", "127.0.0.1", "--persist-to", stateDir];
for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}:${value}`);

const wrangler = spawn(path.join(root, "node_modules", ".bin", "wrangler"), args, {
  cwd: root,
  stdio: ["ignore", "inherit", "inherit"],
  env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
});
console.log(`[dev] Bot API stand-in: ${apiBase}`);
console.log(`[dev] webhook: http://127.0.0.1:${port}/webhook (no secret needed locally)`);
console.log(`[dev] state:   curl -s http://127.0.0.1:${port}/admin/export -H 'Authorization: Bearer ${vars.ADMIN_TOKEN}'`);

const stop = () => {
  wrangler.kill("SIGTERM");
  botApi?.close();
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
wrangler.on("exit", (code) => {
  botApi?.close();
  process.exit(code ?? 0);
});
