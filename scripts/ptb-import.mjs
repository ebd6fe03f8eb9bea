// `npm run ptb-import -- [options] FILE...`: moves a python-telegram-bot bot's data into an
// edgegram worker through `POST /admin/import` (README, "Moving from python-telegram-bot").
//
// FILE is any of
//   - DictPersistence JSON: one object with the sections bot_data, chat_data, user_data,
//     conversations, callback_data (or PTB's bot_data_json, ... strings), or one section per
//     file: named after its section (bot_data.json, my_bot_chat_data.json, ...) or written
//     SECTION=FILE (user_data=users.json);
//   - PicklePersistence files: a single file, or any of <filepath>_bot_data, _chat_data,
//     _user_data, _conversations, _callback_data. They are read by tools/ptb_pickle_to_json.py
//     with PTB itself, in a venv made once in .venv-ptb/.
//
// Options:
//   --url URL        the worker (env EDGEGRAM_URL; default the local dev server, 127.0.0.1:8787)
//   --token TOKEN    its ADMIN_TOKEN (env ADMIN_TOKEN; default dev-admin, what npm run dev sets)
//   --states NAME=S0,S1,..  store conversation NAME's integer states as names: PTB bots number
//                    states (CHOOSING, TYPING = range(2)); edgegram's demo stores names
//   --replace        the worker already holds data: replace it all (import always replaces)
//                    A document over what one import takes (4 MiB, 50,000 entries) goes in
//                    parts: the first replaces, the others are merged (each part whole).
//   --out FILE       write the combined document to FILE ('-': stdout) instead of importing
//   --lossy, --path DIR   passed to the pickle converter (see tools/ptb_pickle_to_json.py)
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { SECTIONS, counts, describe, exportState, importState, target } from "../tools/admin-client.mjs";
import { ensurePtbVenv, root } from "../tools/ptb-venv.mjs";

const USAGE = `usage: npm run ptb-import -- [--url URL] [--token TOKEN] [--states NAME=S0,S1,..] [--replace] [--out FILE] [--lossy] [--path DIR] FILE...`;

function fail(message) {
  console.error(`ptb-import: ${message}`);
  process.exit(1);
}

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: "string" },
      token: { type: "string" },
      states: { type: "string", multiple: true, default: [] },
      replace: { type: "boolean", default: false },
      out: { type: "string" },
      lossy: { type: "boolean", default: false },
      path: { type: "string", multiple: true, default: [] },
      help: { type: "boolean", short: "h", default: false },
    },
  });
} catch (e) {
  fail(`${e.message}\n${USAGE}`);
}
if (args.values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (args.positionals.length === 0) fail(`no files given\n${USAGE}`);

/** Which section a file name names, if exactly one. */
function sectionOfName(file) {
  const name = path.basename(file);
  const named = SECTIONS.filter((s) => name.includes(s));
  return named.length === 1 ? named[0] : null;
}

function isPickle(bytes) {
  // Pickle protocol 2 and later start with the PROTO opcode; PTB writes the highest.
  return bytes.length > 1 && bytes[0] === 0x80;
}

/** A DictPersistence-shaped part from one JSON file. */
function jsonPart(file, explicitSection, text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    fail(`${file}: not JSON and not a pickle (${e.message})`);
  }
  const section = explicitSection ?? (isCombined(value) ? null : sectionOfName(file));
  if (section) return { [section]: value };
  if (!isCombined(value)) {
    fail(`${file}: neither a combined document (keys ${SECTIONS.join(", ")}) nor named after one section; write SECTION=${file}`);
  }
  const part = {};
  for (const [key, v] of Object.entries(value)) {
    const name = key.endsWith("_json") ? key.slice(0, -5) : key;
    if (!SECTIONS.includes(name)) fail(`${file}: unknown section ${key}`);
    // PTB's DictPersistence exposes each section as a JSON string (bot_data_json, ...).
    if (typeof v === "string") {
      try {
        part[name] = JSON.parse(v);
      } catch (e) {
        fail(`${file}: ${key} is a string that is not JSON (${e.message})`);
      }
    } else {
      part[name] = v;
    }
  }
  return part;
}

function isCombined(value) {
  if (!value || typeof value !== "object" || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((k) => SECTIONS.includes(k.replace(/_json$/, "")));
}

function merge(doc, part, origin) {
  for (const [section, value] of Object.entries(part)) {
    if (value === null || value === undefined) continue;
    if (section === "bot_data" || section === "callback_data") {
      const held = (v) => v != null && (section === "callback_data" || Object.keys(v).length > 0);
      if (held(value) && held(doc[section])) fail(`${origin}: ${section} also comes from another file`);
      if (held(value) || doc[section] == null) doc[section] = value;
    } else if (section === "conversations") {
      doc.conversations ??= {};
      for (const [name, states] of Object.entries(value)) {
        doc.conversations[name] = { ...(doc.conversations[name] ?? {}), ...states };
      }
    } else {
      doc[section] ??= {};
      for (const [id, data] of Object.entries(value)) {
        if (id in doc[section]) fail(`${origin}: ${section}.${id} also comes from another file`);
        doc[section][id] = data;
      }
    }
  }
}

function convertPickles(files) {
  const python = ensurePtbVenv();
  const extra = [...(args.values.lossy ? ["--lossy"] : []), ...args.values.path.flatMap((p) => ["--path", p])];
  const result = spawnSync(python, [path.join(root, "tools", "ptb_pickle_to_json.py"), ...extra, ...files], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 512 << 20,
  });
  if (result.stderr) process.stderr.write(result.stderr);
  if (result.status !== 0) fail(`the pickle converter failed (exit ${result.status ?? result.error?.message})`);
  return JSON.parse(result.stdout);
}

function mapStates(doc, specs) {
  for (const spec of specs) {
    const [name, list] = spec.split("=", 2);
    if (!name || !list) fail(`--states ${spec}: expected NAME=S0,S1,...`);
    const names = list.split(",").map((s) => s.trim());
    const states = doc.conversations?.[name];
    if (!states) {
      console.error(`ptb-import: --states ${name}: no conversation of that name in the files`);
      continue;
    }
    for (const [key, state] of Object.entries(states)) {
      if (state === null || typeof state === "string") continue;
      if (!Number.isInteger(state) || state < 0 || state >= names.length) {
        fail(`conversations.${name}.${key}: state ${JSON.stringify(state)} has no name in --states (${names.length} names)`);
      }
      states[key] = names[state];
    }
  }
}

const doc = {};
const pickles = [];
for (const arg of args.positionals) {
  const match = /^(bot_data|chat_data|user_data|conversations|callback_data)=(.+)$/.exec(arg);
  const [section, file] = match ? [match[1], match[2]] : [null, arg];
  let bytes;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    fail(`${file}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
  }
  if (isPickle(bytes)) {
    if (section) fail(`${arg}: SECTION= is for JSON files; name a pickle as PTB wrote it`);
    pickles.push(file);
  } else {
    merge(doc, jsonPart(file, section, bytes.toString("utf8")), file);
  }
}
if (pickles.length > 0) merge(doc, convertPickles(pickles), pickles.join(", "));
for (const section of SECTIONS) doc[section] ??= section === "callback_data" ? null : {};
mapStates(doc, args.values.states);

const wanted = counts(doc);
if (args.values.out) {
  const text = `${JSON.stringify(doc, null, 1)}\n`;
  if (args.values.out === "-") process.stdout.write(text);
  else writeFileSync(args.values.out, text);
  console.error(`ptb-import: ${describe(wanted)} written to ${args.values.out === "-" ? "stdout" : args.values.out}`);
  process.exit(0);
}

const worker = target({ url: args.values.url, token: args.values.token });
try {
  const before = counts(await exportState(worker));
  const held = Object.values(before).some((n) => n > 0);
  if (held && !args.values.replace) {
    fail(`${worker.base} already holds data (${describe(before)}). An import replaces all of it: pass --replace, or keep a copy first with npm run export`);
  }
  const answer = await importState(worker, doc, {
    onPart: (i, n, imported) => n > 1 && console.log(`ptb-import: part ${i} of ${n}: ${imported} entries`),
  });
  const after = counts(await exportState(worker));
  const same = Object.keys(wanted).every((k) => wanted[k] === after[k]);
  if (!same) fail(`imported, but the worker now holds ${describe(after)}; the files had ${describe(wanted)}`);
  const inParts = answer.parts > 1 ? `, in ${answer.parts} parts` : "";
  console.log(`ptb-import: ${describe(after)} imported into ${worker.base} (${answer.imported} entries${inParts})`);
} catch (e) {
  fail(e.message);
}
