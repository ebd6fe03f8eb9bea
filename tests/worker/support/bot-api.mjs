// A local HTTP server standing in for the Telegram Bot API: it records every call and answers
// as Telegram does ({"ok": true, "result": ...}, message ids counting up per chat). Used by
// the tests and by `npm run dev`. Calls that upload files come as multipart/form-data: their
// text parts are read as the JSON a call would carry, their files recorded in `call.files`
// (`{name: {filename, size, bytes}}`), as Telegram reads them.
import http from "node:http";

// Faults, for the tests and benchmarks that inject them: `faults = { rate, methods, seed }` fails
// that share of the calls of `methods` (default sendMessage), chosen by a seeded generator so a
// run is repeatable, in turn as 500, 429 with `retry_after: 1`, and a dropped connection (the
// socket closed without an answer). A failed call is recorded with its `fault`; Telegram would
// not have acted on it.
export async function startBotApi({ port = 0, delayMs = 0, log = false, echoUrlInErrors = false, faults = null } = {}) {
  const calls = [];
  const nextMessageId = new Map();
  let failNext = 0;
  const random = mulberry32(faults?.seed ?? 1);
  let faultTurn = 0;
  const faultMethods = new Set(faults?.methods ?? ["sendMessage"]);
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", async () => {
      const raw = Buffer.concat(chunks);
      const body = raw.toString("utf8");
      const match = /^\/bot([^/]+)\/(\w+)$/.exec(req.url ?? "");
      let params = {};
      let files;
      const type = req.headers["content-type"] ?? "";
      if (type.startsWith("multipart/form-data")) {
        ({ params, files } = await readForm(raw, type));
      } else {
        try {
          params = body ? JSON.parse(body) : {};
        } catch {
          params = { unparsable: body };
        }
      }
      const reply = (status, payload) => {
        const send = () => {
          res.writeHead(status, { "content-type": "application/json" });
          res.end(JSON.stringify(payload));
        };
        delayMs > 0 ? setTimeout(send, delayMs) : send();
      };
      if (!match) return reply(404, { ok: false, error_code: 404, description: "Not Found" });
      const [, token, method] = match;
      const call = { token, method, params, at: Date.now(), ...(files ? { files } : {}) };
      calls.push(call);
      if (log) console.log(`[bot api] ${method} ${JSON.stringify(params)}`);
      if (faults && faultMethods.has(method) && random() < faults.rate) {
        const kind = ["500", "429", "drop"][faultTurn++ % 3];
        call.fault = kind;
        if (kind === "drop") return delayMs > 0 ? setTimeout(() => req.socket.destroy(), delayMs) : req.socket.destroy();
        if (kind === "429") {
          return reply(429, { ok: false, error_code: 429, description: "Too Many Requests: retry after 1", parameters: { retry_after: 1 } });
        }
        return reply(500, { ok: false, error_code: 500, description: "Internal Server Error" });
      }
      if (failNext > 0) {
        failNext -= 1;
        call.fault = "500";
        // Some proxies quote the URL (and so the token) in their errors; edgegram must not
        // pass that on.
        const description = echoUrlInErrors ? `Internal Server Error at ${req.url}` : "Internal Server Error";
        return reply(500, { ok: false, error_code: 500, description });
      }

      reply(200, { ok: true, result: answer(method, params, nextMessageId) });
    });
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    calls,
    texts: () => calls.filter((c) => c.params.text !== undefined).map((c) => c.params.text),
    // The calls Telegram would have acted on: answered, not failed.
    delivered: () => calls.filter((c) => c.fault === undefined),
    // A call Telegram makes itself: the one a webhook answer carries (WEBHOOK_REPLY).
    perform: (method, params) => {
      calls.push({ token: null, method, params, at: Date.now(), webhookReply: true });
      answer(method, params, nextMessageId);
    },
    failNext: (n) => (failNext = n),
    clear: () => calls.splice(0, calls.length),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// A multipart/form-data body as a call's params (each text part JSON-parsed when it is JSON,
// as Telegram reads `chat_id=5` or `reply_markup={...}`) and its files.
async function readForm(raw, type) {
  const form = await new Response(raw, { headers: { "content-type": type } }).formData();
  const params = {};
  const files = {};
  for (const [name, value] of form.entries()) {
    if (typeof value === "string") {
      try {
        params[name] = JSON.parse(value);
      } catch {
        params[name] = value;
      }
    } else {
      const bytes = Buffer.from(await value.arrayBuffer());
      files[name] = { filename: value.name, size: bytes.length, bytes };
      params[name] = `attach://${name}`;
    }
  }
  return { params, files };
}

// A small seeded generator (Tommy Ettinger's mulberry32): repeatable fault patterns.
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A message the bot sent in `chatId`, as Telegram answers it (the fields every kind has). */
function botMessage(chatId, messageId) {
  return {
    message_id: messageId,
    date: Math.floor(Date.now() / 1000),
    chat: { id: chatId, type: chatId < 0 ? "supergroup" : "private" },
    from: { id: 1, is_bot: true, first_name: "edgegram demo" },
  };
}

function answer(method, params, nextMessageId) {
  switch (method) {
    case "getMe":
      return { id: 1, is_bot: true, first_name: "edgegram demo", username: "edgegram_demo_bot" };
    case "sendMessage":
    case "editMessageText": {
      const chatId = params.chat_id;
      let messageId = params.message_id;
      if (messageId === undefined) {
        messageId = (nextMessageId.get(chatId) ?? 0) + 1;
        nextMessageId.set(chatId, messageId);
      }
      const message = { ...botMessage(chatId, messageId), text: params.text };
      if (params.reply_markup?.inline_keyboard) message.reply_markup = params.reply_markup;
      return message;
    }
    case "sendPhoto":
    case "sendDocument":
    case "sendLocation": {
      const chatId = params.chat_id;
      const messageId = (nextMessageId.get(chatId) ?? 0) + 1;
      nextMessageId.set(chatId, messageId);
      const message = botMessage(chatId, messageId);
      const file = (kind) => ({ file_id: `${kind}-${messageId}`, file_unique_id: `u${kind}-${messageId}` });
      if (method === "sendPhoto") message.photo = [{ ...file("photo"), width: 800, height: 600 }];
      if (method === "sendDocument") message.document = file("document");
      if (method === "sendLocation") message.location = { latitude: params.latitude, longitude: params.longitude };
      if (params.caption !== undefined) message.caption = params.caption;
      if (params.message_thread_id !== undefined) message.message_thread_id = params.message_thread_id;
      return message;
    }
    default:
      return true;
  }
}
