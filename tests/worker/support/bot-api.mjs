// A local HTTP server standing in for the Telegram Bot API: it records every call and answers
// as Telegram does ({"ok": true, "result": ...}, message ids counting up per chat). Used by
// the tests and by `npm run dev`.
import http from "node:http";

export async function startBotApi({ port = 0, delayMs = 0, log = false, echoUrlInErrors = false } = {}) {
  const calls = [];
  const nextMessageId = new Map();
  let failNext = 0;
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const match = /^\/bot([^/]+)\/(\w+)$/.exec(req.url ?? "");
      let params = {};
      try {
        params = body ? JSON.parse(body) : {};
      } catch {
        params = { unparsable: body };
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
      calls.push({ token, method, params, at: Date.now() });
      if (log) console.log(`[bot api] ${method} ${JSON.stringify(params)}`);
      if (failNext > 0) {
        failNext -= 1;
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
    failNext: (n) => (failNext = n),
    clear: () => calls.splice(0, calls.length),
    close: () => new Promise((resolve) => server.close(resolve)),
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
      const message = {
        message_id: messageId,
        date: Math.floor(Date.now() / 1000),
        chat: { id: chatId, type: chatId < 0 ? "supergroup" : "private" },
        from: { id: 1, is_bot: true, first_name: "edgegram demo" },
        text: params.text,
      };
      if (params.reply_markup?.inline_keyboard) message.reply_markup = params.reply_markup;
      return message;
    }
    default:
      return true;
  }
}
