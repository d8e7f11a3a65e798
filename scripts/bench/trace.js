#!/usr/bin/env node
// trace.js: streams one editing trace into one document through ShareDB's own client, keystroke by
// keystroke, as fast as the protocol allows (the client keeps one op in flight and composes the
// rest; the loop yields once per keystroke so acks are read as they come).
//
//   node trace.js --url ws://... --trace PATH.json.gz --doc ID [--limit N] --out-text PATH [--max-seconds S]
//
// Prints {"typed_s", "final_s", "client_cpu_s", "ops"}; the text a fresh connection then fetches
// from the server goes to --out-text, for the caller to compare with the trace's end.
// Run from the installed peer kit (its node_modules); ops are ot-text-unicode's, in code points.
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const { performance } = require('perf_hooks');
const WebSocket = require('ws');
const ShareDBClient = require('sharedb/lib/client');
const otText = require('ot-text-unicode');

ShareDBClient.types.register(otText.type);
const COLLECTION = 'bench';

const args = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
const maxMs = Number(args['max-seconds'] || 600) * 1000;

const open = (url) => new Promise((resolve, reject) => {
  const socket = new WebSocket(url);
  socket.on('open', () => resolve(new ShareDBClient.Connection(socket)));
  socket.on('error', reject);
});
const call = (fn) => new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
const turn = () => new Promise((resolve) => setImmediate(resolve));

function op(pos, deleted, inserted) {
  const out = [];
  if (pos > 0) out.push(pos);
  if (deleted > 0) out.push({ d: deleted });
  if (inserted.length > 0) out.push(inserted);
  return out;
}

async function main() {
  const data = JSON.parse(zlib.gunzipSync(fs.readFileSync(args.trace)).toString('utf8'));
  let patches = [];
  for (const txn of data.txns) for (const p of txn.patches) patches.push(p);
  if (args.limit) patches = patches.slice(0, Number(args.limit));

  const connection = await open(args.url);
  const doc = connection.get(COLLECTION, args.doc);
  let failure = null;
  doc.on('error', (e) => { failure = failure || e; });
  await call((cb) => doc.subscribe(cb));
  if (!doc.type) await call((cb) => doc.create(data.startContent || '', otText.type.uri, cb));
  const firstVersion = doc.version;

  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < patches.length; i++) {
    const [pos, deleted, inserted] = patches[i];
    const o = op(pos, deleted, inserted);
    if (o.length) doc.submitOp(o);
    await turn();
    if (failure) throw failure;
    if (i % 1000 === 0 && performance.now() - t0 > maxMs) throw new Error(`${i} of ${patches.length} keystrokes in ${maxMs / 1000} s`);
  }
  const typed = performance.now() - t0;
  await new Promise((resolve) => doc.whenNothingPending(resolve));
  if (failure) throw failure;
  const final = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const ops = doc.version - firstVersion;

  // the server's text, as a fresh client loads it
  const reader = await open(args.url);
  const copy = reader.get(COLLECTION, args.doc);
  await call((cb) => copy.fetch(cb));
  fs.writeFileSync(args['out-text'], copy.data, 'utf8');
  process.stdout.write(JSON.stringify({
    typed_s: typed / 1000, final_s: final / 1000, client_cpu_s: (cpu.user + cpu.system) / 1e6, ops,
  }) + '\n');
  process.exit(0);
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ error: String((err && err.message) || err) }) + '\n');
  process.exit(1);
});
