// node tests/web/run_node.js: the shared OT vectors and the unit tests of the browser
// client, under Node. Prints one JSON line; exits 1 on any failure.

import { readFileSync } from "node:fs";
import { runUnitTests } from "./unit.js";
import { KINDS, runVectors } from "./vectors.js";

const dir = new URL("../vectors/", import.meta.url);
const vectors = Object.fromEntries(
  KINDS.map((kind) => [kind, JSON.parse(readFileSync(new URL(`${kind}.json`, dir), "utf8"))]),
);
const report = { vectors: runVectors(vectors), unit: runUnitTests() };
const failures = [...report.vectors.failures, ...report.unit.failures];
console.log(JSON.stringify({
  vectors: report.vectors.counts,
  unit: report.unit.count,
  failures: failures.slice(0, 5).map(({ case: _, ...f }) => f),
}));
process.exit(failures.length ? 1 : 0);
