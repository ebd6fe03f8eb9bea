// The floor row of the jobs benchmark: what firing reminders at their times costs before any
// framework. One Durable Object keeps a plan (messages, each with its time and chat) and sets
// its alarm for the first; when the alarm fires it sends the messages due, each chat's in
// order and the chats at once (the order edgegram keeps too), then sets the alarm for the next.
// Nothing is stored per message, nothing is retried.
import { DurableObject } from "cloudflare:workers";

export class AlarmObject extends DurableObject {
  async fetch(request) {
    const plan = (await request.json()).sort((a, b) => a.at - b.at);
    await this.ctx.storage.put("plan", plan);
    await this.ctx.storage.setAlarm(plan[0].at);
    return new Response("ok");
  }

  async alarm() {
    const plan = await this.ctx.storage.get("plan");
    const now = Date.now();
    const due = plan.filter((m) => m.at <= now);
    const left = plan.filter((m) => m.at > now);
    const send = (m) =>
      fetch(`${this.env.TELEGRAM_API_BASE}/bot${this.env.BOT_TOKEN}/sendMessage`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ chat_id: m.chat, text: m.text }),
      }).then((res) => res.text());
    const chats = [...new Set(due.map((m) => m.chat))];
    await Promise.all(
      chats.map(async (chat) => {
        for (const m of due.filter((d) => d.chat === chat)) await send(m);
      }),
    );
    await this.ctx.storage.put("plan", left);
    if (left.length) await this.ctx.storage.setAlarm(left[0].at);
  }
}

export default {
  fetch(request, env) {
    return env.ALARM_DO.get(env.ALARM_DO.idFromName("floor")).fetch(request);
  },
};
