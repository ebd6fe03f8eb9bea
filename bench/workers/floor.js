// The floor rows of the workerd benchmark: what a worker costs before any bot framework.
//   FLOOR=parse  read the body as JSON and answer 200
//   FLOOR=kv     the same plus one KV get and one KV put (a counter per chat)
//   FLOOR=do     the same, but the counter lives in a Durable Object (one object, as
//                edgegram's DO_ROUTING=bot): the worker forwards, the object gets and puts
import { DurableObject } from "cloudflare:workers";
import { countingKv, opsResponse } from "./counting.js";

export class FloorObject extends DurableObject {
  async fetch(request) {
    const update = await request.json();
    const key = `chat:${update.message?.chat?.id}`;
    const count = ((await this.ctx.storage.get(key)) ?? 0) + 1;
    await this.ctx.storage.put(key, count);
    return new Response("ok");
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/__ops") return opsResponse();
    if (env.FLOOR === "do") {
      const body = await request.text();
      JSON.parse(body);
      return env.FLOOR_DO.get(env.FLOOR_DO.idFromName("bot")).fetch("https://floor/update", { method: "POST", body });
    }
    const update = await request.json();
    if (env.FLOOR === "kv") {
      const kv = env.COUNT_OPS === "1" ? countingKv(env.KV) : env.KV;
      const key = `chat:${update.message?.chat?.id}`;
      const count = Number((await kv.get(key)) ?? 0) + 1;
      await kv.put(key, String(count));
    }
    return new Response("ok");
  },
};
