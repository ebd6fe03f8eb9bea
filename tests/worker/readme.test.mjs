// README "Your own bot" shows examples/todo's Cargo.toml and wrangler.toml: they must be the
// example's files exactly, so that what the README tells a user is what npm test builds, runs
// and deploys (dry run) in examples/todo/tests/scenario.test.mjs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { root } from "./support/worker.mjs";

function section(markdown, heading) {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  assert.notEqual(start, -1, `README has no section "${heading}"`);
  const end = markdown.indexOf("\n## ", start + 1);
  return markdown.slice(start, end === -1 ? undefined : end);
}

function blocks(markdown, language) {
  const found = [];
  const fence = new RegExp("^```" + language + "\\n([\\s\\S]*?)^```$", "gm");
  for (let match; (match = fence.exec(markdown)); ) found.push(match[1]);
  return found;
}

test("README 'Your own bot' shows the example's Cargo.toml and wrangler.toml as they are", () => {
  const own = section(readFileSync(path.join(root, "README.md"), "utf8"), "Your own bot");
  const [cargo, wrangler] = blocks(own, "toml");
  assert.equal(cargo, readFileSync(path.join(root, "examples", "todo", "Cargo.toml"), "utf8"));
  assert.equal(wrangler, readFileSync(path.join(root, "examples", "todo", "wrangler.toml"), "utf8"));
  assert.match(own, /edgegram::edge_worker!\(application, TodoObject\);/);
  assert.match(readFileSync(path.join(root, "examples", "todo", "src", "lib.rs"), "utf8"), /edgegram::edge_worker!\(application, TodoObject\);/);
});
