// The initial JavaScript of the console (what index.html loads before any lazy
// page) stays under 250 kB gzipped.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { it } from "node:test";
import { gzipSync } from "node:zlib";
import { root } from "./harness.mjs";

const dist = path.join(root, "services/controlplane/internal/console/dist");
const budget = 250 * 1024;

it("keeps the gzipped initial JavaScript under 250 kB", () => {
  const html = fs.readFileSync(path.join(dist, "index.html"), "utf8");
  const initial = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]);
  assert.ok(initial.length > 0, "index.html loads no script");
  let total = 0;
  for (const f of initial) {
    const gz = gzipSync(fs.readFileSync(path.join(dist, f)), { level: 9 }).length;
    console.log(`initial ${f}: ${gz} bytes gzipped`);
    total += gz;
  }
  console.log(`initial JavaScript: ${total} bytes gzipped (budget ${budget})`);
  assert.ok(total < budget, `initial JavaScript is ${total} bytes gzipped, over the ${budget} budget`);
});
