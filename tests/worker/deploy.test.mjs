// `npx wrangler deploy --dry-run` for the demo worker at the root: its wrangler.toml builds
// (scripts/build.mjs), bundles and names the Durable Object class and bindings it needs, and
// what it would publish is the deploy build alone: no test route, no dev Bot API recorder, no
// playground page (those exist only under `npm run dev`, README "Deploying").
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { root } from "./support/worker.mjs";
import { toolEnv } from "../../scripts/setup.mjs";

// Strings that only feature-gated code puts in the binary: the test routes (edgegram's
// `testing`), the recorder's admin routes and its log object's routes (`dev-bot-api`).
const NOT_IN_A_DEPLOY = [
  ["/__test/", "test routes"],
  ["/admin/dev/", "the dev recorder's admin routes"],
  ["/devlog/", "the dev recorder's log"],
];

function dryRun(env = {}) {
  const outdir = mkdtempSync(path.join(tmpdir(), "edgegram-deploy-"));
  try {
    const result = spawnSync(path.join(root, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", outdir], {
      cwd: root,
      encoding: "utf8",
      env: toolEnv({ WRANGLER_SEND_METRICS: "false", ...env }),
    });
    const output = `${result.stdout}\n${result.stderr}`;
    assert.equal(result.status, 0, output);
    assert.match(output, /--dry-run: exiting now/);
    return output;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

function assertDeployOnly(output) {
  assert.match(output, /EDGEGRAM_DO.*EdgegramObject/s);
  const wasm = readFileSync(path.join(root, "build", "index_bg.wasm"));
  for (const [marker, what] of NOT_IN_A_DEPLOY) {
    assert.equal(wasm.includes(Buffer.from(marker)), false, `the deploy build (build/) contains ${what} (${marker})`);
  }
  // wrangler prints "Read N files from the assets directory ..." when it would upload assets.
  assert.doesNotMatch(output, /assets directory/, "the playground page (www/) is not published");
  assert.doesNotMatch(output, /DEV_RECORD_BOT_API|ALLOW_INSECURE_WEBHOOK/, "no local-development var is deployed");
}

test("the demo deploys (dry run) with its Durable Object class, without test routes, the dev recorder or the playground page", () => {
  assertDeployOnly(dryRun());
});

test("what npm run dev tells the build (EDGEGRAM_BUILD=dev) does not change what a deploy builds", () => {
  const output = dryRun({ EDGEGRAM_BUILD: "dev" });
  assertDeployOnly(output);
  assert.match(output, /EDGEGRAM_BUILD=dev is ignored/);
});
