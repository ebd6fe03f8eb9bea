// `npx wrangler deploy --dry-run` for the demo worker at the root: its wrangler.toml builds
// (scripts/build.mjs), bundles and names the Durable Object class and bindings it needs, and
// the deploy build carries no test route.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { root } from "./support/worker.mjs";
import { toolEnv } from "../../scripts/setup.mjs";

test("the demo deploys (dry run) with its Durable Object class and without test routes", () => {
  const outdir = mkdtempSync(path.join(tmpdir(), "edgegram-deploy-"));
  try {
    const result = spawnSync(path.join(root, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", outdir], {
      cwd: root,
      encoding: "utf8",
      env: toolEnv({ WRANGLER_SEND_METRICS: "false" }),
    });
    const output = `${result.stdout}\n${result.stderr}`;
    assert.equal(result.status, 0, output);
    assert.match(output, /--dry-run: exiting now/);
    assert.match(output, /EDGEGRAM_DO.*EdgegramObject/s);
    const wasm = readFileSync(path.join(root, "build", "index_bg.wasm"));
    assert.equal(wasm.includes(Buffer.from("/__test/conformance")), false, "the deploy build has no test routes");
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
});
