// Wraps edgegram's release build (build/index.js) so that its storage operations are counted
// at the bindings (counting.js): the worker sees a counting KV namespace, the Durable Object
// a counting storage. bench/run.mjs loads it next to build/ for the untimed counting runs;
// the timed runs load build/index.js itself.
import { WorkerEntrypoint } from "cloudflare:workers";
import Edgegram, { EdgegramObject as InnerObject } from "./index.js";
import { countingKv, countingState, opsResponse } from "./bench-counting-lib.js";

export default class extends WorkerEntrypoint {
  fetch(request) {
    if (new URL(request.url).pathname === "/__ops") return opsResponse();
    const env = { ...this.env, EDGEGRAM_KV: countingKv(this.env.EDGEGRAM_KV) };
    return new Edgegram(this.ctx, env).fetch(request);
  }
}

export class EdgegramObject {
  constructor(state, env) {
    this.inner = new InnerObject(countingState(state), env);
  }
  fetch(request) {
    return this.inner.fetch(request);
  }
  alarm() {
    return this.inner.alarm();
  }
}
