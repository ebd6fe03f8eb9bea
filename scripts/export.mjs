// `npm run export -- [--url URL] [--token TOKEN] [--out FILE] [--split DIR]`: saves a worker's
// whole state (`GET /admin/export`, DictPersistence's JSON shapes) to a file.
//
//   --url URL      the worker (env EDGEGRAM_URL; default the local dev server, 127.0.0.1:8787)
//   --token TOKEN  its ADMIN_TOKEN (env ADMIN_TOKEN; default dev-admin, what npm run dev sets)
//   --out FILE     where to write (default edgegram-export.json; '-': stdout)
//   --split DIR    also write DIR/bot_data.json, chat_data.json, user_data.json,
//                  conversations.json, callback_data.json: the five strings python-telegram-bot's
//                  DictPersistence(bot_data_json=..., ...) takes
// The file imports back with `npm run ptb-import -- --replace FILE`.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { SECTIONS, counts, describe, exportState, target } from "../tools/admin-client.mjs";

let args;
try {
  args = parseArgs({
    options: {
      url: { type: "string" },
      token: { type: "string" },
      out: { type: "string", default: "edgegram-export.json" },
      split: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
} catch (e) {
  console.error(`export: ${e.message}`);
  process.exit(1);
}
if (args.values.help) {
  console.log("usage: npm run export -- [--url URL] [--token TOKEN] [--out FILE|-] [--split DIR]");
  process.exit(0);
}

const worker = target({ url: args.values.url, token: args.values.token });
let doc;
try {
  doc = await exportState(worker);
} catch (e) {
  console.error(`export: ${e.message}`);
  process.exit(1);
}
const text = `${JSON.stringify(doc, null, 1)}\n`;
if (args.values.out === "-") process.stdout.write(text);
else writeFileSync(args.values.out, text);
if (args.values.split) {
  mkdirSync(args.values.split, { recursive: true });
  for (const section of SECTIONS) {
    writeFileSync(path.join(args.values.split, `${section}.json`), JSON.stringify(doc[section] ?? null));
  }
}
const where = [args.values.out === "-" ? "stdout" : args.values.out, args.values.split].filter(Boolean).join(" and ");
console.error(`export: ${describe(counts(doc))} from ${worker.base} written to ${where}`);
