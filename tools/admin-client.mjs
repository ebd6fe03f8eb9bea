// The admin routes of a running edgegram worker (`/admin/export`, `/admin/import`), for
// scripts/ptb-import.mjs and scripts/export.mjs. The worker is the local dev server unless told
// otherwise: --url / EDGEGRAM_URL, --token / ADMIN_TOKEN (default "dev-admin", what
// `npm run dev` sets).

export const SECTIONS = ["bot_data", "chat_data", "user_data", "conversations", "callback_data"];

export function target({ url, token } = {}) {
  const base = (url ?? process.env.EDGEGRAM_URL ?? `http://127.0.0.1:${process.env.DEV_PORT ?? 8787}`).replace(/\/+$/, "");
  return { base, token: token ?? process.env.ADMIN_TOKEN ?? "dev-admin" };
}

async function request(worker, path, init = {}) {
  let res;
  try {
    res = await fetch(`${worker.base}${path}`, {
      ...init,
      headers: { Authorization: `Bearer ${worker.token}`, ...(init.headers ?? {}) },
    });
  } catch (e) {
    throw new Error(`${worker.base} cannot be reached (${e.cause?.code ?? e.message}); is the worker running (npm run dev)?`);
  }
  if (res.status === 401) throw new Error(`${worker.base} refused the admin token (401): pass --token or ADMIN_TOKEN`);
  if (res.status === 404) throw new Error(`${worker.base}${path} answered 404: the worker's admin routes are off (set the secret ADMIN_TOKEN)`);
  const body = await res.text();
  if (res.status !== 200) throw new Error(`${worker.base}${path} answered ${res.status}: ${body}`);
  try {
    return JSON.parse(body);
  } catch {
    throw new Error(`${worker.base}${path} answered something that is not JSON: ${body.slice(0, 200)}`);
  }
}

export function exportState(worker) {
  return request(worker, "/admin/export");
}

export function importState(worker, doc) {
  return request(worker, "/admin/import", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(doc),
  });
}

/** How many entries of each kind a DictPersistence-shaped document holds. */
export function counts(doc) {
  // Empty entries may be left out of an export (the contract): they are not counted.
  const size = (v) =>
    v && typeof v === "object" ? Object.values(v).filter((d) => d && Object.keys(d).length > 0).length : 0;
  const bot = doc.bot_data && Object.keys(doc.bot_data).length > 0 ? 1 : 0;
  const conversations = Object.values(doc.conversations ?? {}).reduce(
    (n, states) => n + Object.values(states ?? {}).filter((s) => s !== null).length,
    0,
  );
  const keyboards = Array.isArray(doc.callback_data) ? (doc.callback_data[0] ?? []).length : 0;
  return { bot_data: bot, chat_data: size(doc.chat_data), user_data: size(doc.user_data), conversations, callback_keyboards: keyboards };
}

export function describe(c) {
  return `bot_data ${c.bot_data ? "set" : "empty"}, ${c.chat_data} chat_data, ${c.user_data} user_data, ${c.conversations} conversation states, ${c.callback_keyboards} callback keyboards`;
}
