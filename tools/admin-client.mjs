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

/**
 * Imports `doc`, replacing what the worker holds. A document over what one import takes
 * (src/edge/admin.rs: 4 MiB, 50,000 entries) goes in parts (`parts`): the first replaces
 * everything, each other is merged (`?mode=merge`). Each part is whole or nothing; when one
 * fails, the error says how many went in (running the import again starts over with the
 * first). Answers `{ imported, parts }`.
 */
export async function importState(worker, doc, { onPart = () => {} } = {}) {
  const all = parts(doc);
  let imported = 0;
  for (const [i, part] of all.entries()) {
    const path = i === 0 ? "/admin/import" : "/admin/import?mode=merge";
    let answer;
    try {
      answer = await request(worker, path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(part),
      });
    } catch (e) {
      if (i === 0) throw e;
      throw new Error(`part ${i + 1} of ${all.length} failed, ${i} went in (run the import again to start over): ${e.message}`);
    }
    imported += answer.imported;
    onPart(i + 1, all.length, answer.imported);
  }
  return { imported, parts: all.length };
}

/** Room left under the worker's bounds of one import (4 MiB, 50,000 entries). */
export const PART_BYTES = 3 << 20;
export const PART_ENTRIES = 40_000;

/**
 * Splits a DictPersistence-shaped document into parts that each fit one import: entries in
 * document order, a new part when the next entry would pass `entries` or `bytes` (an entry
 * larger than `bytes` alone makes a part of its own, which the worker then judges). Every
 * entry is in exactly one part; the first part holds bot_data.
 */
export function parts(doc, { entries = PART_ENTRIES, bytes = PART_BYTES } = {}) {
  const out = [];
  let part, count, size;
  const fresh = () => {
    part = {};
    count = 0;
    size = 2;
    out.push(part);
  };
  fresh();
  const add = (cost, put) => {
    if (count > 0 && (count + 1 > entries || size + cost > bytes)) fresh();
    put(part);
    count += 1;
    size += cost;
  };
  const cost = (...values) => values.reduce((n, v) => n + Buffer.byteLength(JSON.stringify(v) ?? "null") + 4, 16);
  if (doc.bot_data != null) add(cost(doc.bot_data), (p) => (p.bot_data = doc.bot_data));
  for (const section of ["chat_data", "user_data"]) {
    for (const [id, data] of Object.entries(doc[section] ?? {})) {
      add(cost(id, data), (p) => ((p[section] ??= {})[id] = data));
    }
  }
  for (const [name, states] of Object.entries(doc.conversations ?? {})) {
    for (const [key, state] of Object.entries(states ?? {})) {
      add(cost(name, key, state), (p) => (((p.conversations ??= {})[name] ??= {})[key] = state));
    }
  }
  if (Array.isArray(doc.callback_data)) {
    const [keyboards = [], queries = {}] = doc.callback_data;
    for (const keyboard of keyboards) add(cost(keyboard), (p) => (p.callback_data ??= [[], {}])[0].push(keyboard));
    for (const [query, keyboard] of Object.entries(queries ?? {})) {
      add(cost(query, keyboard), (p) => ((p.callback_data ??= [[], {}])[1][query] = keyboard));
    }
  }
  return out;
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
