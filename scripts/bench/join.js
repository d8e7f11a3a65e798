#!/usr/bin/env node
// join.js: times joins of one existing document through a peer-kit adapter (connect + full load).
//
//   node join.js --adapter PATH --url ws://... --doc ID [--samples 1] [--warm-doc OTHER]
//
// Prints {"join_ms": [...], "length": N, "version": V}. Used for cold joins: the harness restarts
// the server before each call, so the document is loaded from storage, not from memory;
// --warm-doc joins another document first (untimed), so the process's own first-use costs are not counted.
'use strict';
const { performance } = require('perf_hooks');

const args = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
const adapter = require(args.adapter);

async function main() {
  if (args['warm-doc']) await (await adapter.connect(args.url, args['warm-doc'])).close(); // a fresh process's first join
  const ms = [];
  let length = null; let version = null;
  for (let i = 0; i < Number(args.samples || 1); i++) {
    const t0 = performance.now();
    const c = await adapter.connect(args.url, args.doc);
    ms.push(Math.round((performance.now() - t0) * 1000) / 1000);
    length = c.text.length; version = c.version;
    await c.close();
  }
  process.stdout.write(JSON.stringify({ join_ms: ms, length, version }) + '\n');
  process.exit(0);
}
main().catch((err) => {
  process.stdout.write(JSON.stringify({ error: String((err && err.message) || err) }) + '\n');
  process.exit(1);
});
