// grammY's side of the workerd benchmark: the same counter bot as edgegram's /count, on
// grammY with @grammyjs/storage-cloudflare's KvAdapter, written as grammY's guide for
// Cloudflare module workers shows (the bot is built per request, the webhook answered by
// webhookCallback(bot, "cloudflare-mod")). Bundled by bench/run.mjs with the repo's esbuild.
//   SESSION=multi  bot, chat and user counters: a multi session with three fragments
//   SESSION=chat   grammY's plain session, keyed per chat: the chat counter only
//   STORAGE=d1     the multi session in D1 (the adapter's D1Adapter, table GrammySessions)
//                  instead of KV
// COUNT_OPS=1 wraps the KV binding in a counter of operations (GET /__ops reads and resets
// it); the timed runs leave it off.
import { Bot, session, webhookCallback } from "grammy";
import { D1Adapter, KvAdapter } from "@grammyjs/storage-cloudflare";
import { countingKv, opsResponse } from "./counting.js";

const botInfo = {
  id: 1, is_bot: true, first_name: "edgegram demo", username: "edgegram_demo_bot",
  can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false,
};

// D1Adapter.create makes its table; once per isolate, not per update.
let d1Adapter;

function build(env, d1) {
  const kv = env.COUNT_OPS === "1" ? countingKv(env.KV) : env.KV;
  const bot = new Bot(env.BOT_TOKEN, { botInfo, client: { apiRoot: env.TELEGRAM_API_BASE } });
  const initial = () => ({ count: 0 });
  if (env.SESSION === "chat") {
    bot.use(session({ initial, storage: new KvAdapter(kv), prefix: "chat:" }));
    bot.command("count", async (ctx) => {
      ctx.session.count += 1;
      await ctx.reply(`chat: ${ctx.session.count}`);
    });
  } else {
    const storage = d1 ?? new KvAdapter(kv);
    bot.use(session({
      type: "multi",
      bot: { storage, initial, prefix: "bot:", getSessionKey: () => "bot" },
      chat: { storage, initial, prefix: "chat:" },
      user: { storage, initial, prefix: "user:", getSessionKey: (ctx) => ctx.from?.id.toString() },
    }));
    bot.command("count", async (ctx) => {
      const s = ctx.session;
      s.bot.count += 1;
      s.chat.count += 1;
      s.user.count += 1;
      await ctx.reply(`bot: ${s.bot.count}, chat: ${s.chat.count}, user: ${s.user.count}`);
    });
  }
  return bot;
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/__ops") return opsResponse();
    if (url.pathname !== "/webhook") return new Response("not found", { status: 404 });
    if (env.STORAGE === "d1") d1Adapter ??= D1Adapter.create(env.DB);
    const d1 = env.STORAGE === "d1" ? await d1Adapter : undefined;
    const handle = webhookCallback(build(env, d1), "cloudflare-mod", { secretToken: env.WEBHOOK_SECRET });
    return handle(request);
  },
};
