// The persistence conformance suite (src/persistence/conformance.rs) run inside the worker
// against Workers KV, D1 (its tables from migrations/) and Durable Object storage, one route per case. Memory and file run the same cases natively in
// `cargo test`.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startBotApi } from "./support/bot-api.mjs";
import { startWorker } from "./support/worker.mjs";

const botApi = await startBotApi();
const mf = await startWorker({ botApi });
const cases = await (await mf.dispatchFetch("http://localhost/__test/conformance")).json();

after(async () => {
  await mf.dispose();
  await botApi.close();
});

for (const backend of ["kv", "d1", "durable_object"]) {
  describe(`conformance: ${backend}`, () => {
    test("the suite has cases", () => assert.ok(cases.length >= 10, `only ${cases.length} cases`));
    for (const name of cases) {
      test(name, async () => {
        const res = await mf.dispatchFetch(`http://localhost/__test/conformance/${name}?backend=${backend}`, { method: "POST" });
        const body = await res.text();
        assert.equal(res.status, 200, body);
        assert.equal(body, "ok");
      });
    }
    test("an unknown case is 404, so a typo cannot pass", async () => {
      const res = await mf.dispatchFetch(`http://localhost/__test/conformance/no_such_case?backend=${backend}`, { method: "POST" });
      assert.equal(res.status, 404);
    });
  });
}
