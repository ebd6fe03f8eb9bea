// Starts a worker build (by default the demo's test build, build-test/) under Miniflare,
// with a local Bot API stand-in, and builds Telegram updates.
import { Miniflare } from "miniflare";
import { fileURLToPath } from "node:url";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const SECRET = "test-secret_123";
export const ADMIN = "test-admin-token";
export const TOKEN = "123456:TEST-token-never-logged";

/**
 * Starts a worker build under Miniflare: by default the demo's test build; `build` and
 * `className` name another worker's (examples/todo/build, "TodoObject").
 */
export async function startWorker({ botApi, persistence = "kv", kvPersist = false, doPersist = false, d1Persist = false, routing = "bot", bindings = {}, log, onLog, build = "build-test", className = "EdgegramObject" } = {}) {
  const mf = new Miniflare({
    modules: true,
    scriptPath: path.join(root, build, "index.js"),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
    compatibilityDate: "2026-04-01",
    kvNamespaces: ["EDGEGRAM_KV"],
    kvPersist,
    durableObjects: { EDGEGRAM_DO: { className, useSQLite: true } },
    durableObjectsPersist: doPersist,
    d1Databases: ["EDGEGRAM_D1"],
    d1Persist,
    bindings: {
      BOT_TOKEN: TOKEN,
      WEBHOOK_SECRET: SECRET,
      ADMIN_TOKEN: ADMIN,
      TELEGRAM_API_BASE: botApi.url,
      PERSISTENCE: persistence,
      DO_ROUTING: routing,
      BOT_USERNAME: "edgegram_demo_bot",
      ...bindings,
    },
    ...(log ? { log } : {}),
    // Everything the worker logs (console.*, runtime messages), for tests that read it.
    ...(onLog
      ? {
          handleRuntimeStdio(stdout, stderr) {
            stdout.on("data", (d) => onLog(String(d)));
            stderr.on("data", (d) => onLog(String(d)));
          },
          handleStructuredLogs(entry) {
            onLog(`${entry.level}: ${entry.message}`);
          },
        }
      : {}),

  });
  await mf.ready;
  await applyMigrations(await mf.getD1Database("EDGEGRAM_D1"));
  return mf;
}

/**
 * Applies the migrations/*.sql not yet applied, in name order, to a D1 database, as
 * `wrangler d1 migrations apply` does (each file's statements in one batch, its name recorded
 * in d1_migrations). The files end statements with `;` at a line's end.
 */
export async function applyMigrations(db) {
  const dir = path.join(root, "migrations");
  await db.prepare("CREATE TABLE IF NOT EXISTS d1_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL)").run();
  const applied = new Set((await db.prepare("SELECT name FROM d1_migrations").all()).results.map((r) => r.name));
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql") && !applied.has(f)).sort()) {
    const sql = readFileSync(path.join(dir, file), "utf8")
      .split("\n").filter((line) => !line.trimStart().startsWith("--")).join("\n");
    const statements = sql.split(/;\s*$/m).map((s) => s.trim()).filter(Boolean);
    await db.batch([...statements.map((s) => db.prepare(s)), db.prepare("INSERT INTO d1_migrations (name) VALUES (?)").bind(file)]);
  }
}

let nextUpdateId = 1000;

export function commandUpdate({ chat, user, text, updateId = nextUpdateId++, chatType }) {
  const command = text.split(/\s/)[0];
  return {
    update_id: updateId,
    message: {
      message_id: updateId,
      date: 1700000000,
      chat: { id: chat, type: chatType ?? (chat < 0 ? "supergroup" : "private") },
      from: { id: user, is_bot: false, first_name: `User ${user}` },
      text,
      entities: text.startsWith("/") ? [{ type: "bot_command", offset: 0, length: command.length }] : [],
    },
  };
}

export async function post(mf, body, { secret = SECRET, headers = {}, method = "POST" } = {}) {
  const init = {
    method,
    headers: {
      "content-type": "application/json",
      ...(secret === null ? {} : { "X-Telegram-Bot-Api-Secret-Token": secret }),
      ...headers,
    },
  };
  if (method !== "GET" && method !== "HEAD") init.body = typeof body === "string" ? body : JSON.stringify(body);
  return mf.dispatchFetch("http://localhost/webhook", init);
}

export async function exportState(mf) {
  const res = await mf.dispatchFetch("http://localhost/admin/export", {
    headers: { Authorization: `Bearer ${ADMIN}` },
  });
  if (res.status !== 200) throw new Error(`export answered ${res.status}: ${await res.text()}`);
  return res.json();
}

export async function importState(mf, doc) {
  return mf.dispatchFetch("http://localhost/admin/import", {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: typeof doc === "string" ? doc : JSON.stringify(doc),
  });
}

export function outcome(res) {
  const header = res.headers.get("x-edgegram-outcome") ?? "";
  return Object.fromEntries(header.split("; ").filter(Boolean).map((kv) => {
    const [k, v] = kv.split("=");
    return [k, Number(v)];
  }));
}

/** A press on a button of the bot's message `messageId` in `chat`. */
export function pressUpdate({ chat, user, messageId, data, updateId = nextUpdateId++ }) {
  return {
    update_id: updateId,
    callback_query: {
      id: `q${updateId}`, chat_instance: "ci", data,
      from: { id: user, is_bot: false, first_name: `User ${user}` },
      message: { message_id: messageId, date: 0, chat: { id: chat, type: chat < 0 ? "supergroup" : "private" } },
    },
  };
}
