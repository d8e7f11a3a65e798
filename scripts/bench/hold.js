#!/usr/bin/env node
// hold.js: opens many idle connections through a peer-kit adapter and holds them, for memory runs.
//
//   node hold.js --adapter PATH --url ws://... --conns N --docs D [--insert TEXT] [--batch 50]
//
// Connection i opens document i % D (the first connection of each document alone, so creation
// is never raced). With --insert, the first connection of each document types TEXT once and
// waits for the ack, so every document holds committed text.
// Steps, driven by the caller over stdin/stdout (one line each):
//   prints {"phase":"warm"} after one warm-up connection + edit on a scratch document (closed),
//   waits for a line on stdin, opens the connections, prints {"phase":"held","conns":N,...},
//   then holds them until stdin closes, closes them and exits.
'use strict';
const readline = require('readline');

const args = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
const adapter = require(args.adapter);
const url = args.url;
const conns = Number(args.conns || 1000);
const docs = Math.max(1, Number(args.docs || 1));
const insert = args.insert || '';
const batch = Number(args.batch || 50);
const tag = `hold-${process.pid}-${Date.now().toString(36)}`;

const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

async function main() {
  const warm = await adapter.connect(url, `${tag}-warm`);
  await warm.submitInsert(0, 'warm');
  await warm.close();
  say({ phase: 'warm' });
  await nextLine();

  const t0 = Date.now();
  const held = [];
  const firsts = [];
  for (let d = 0; d < Math.min(docs, conns); d += batch) {
    const ids = Array.from({ length: Math.min(batch, Math.min(docs, conns) - d) }, (_, k) => `${tag}-${d + k}`);
    firsts.push(...await Promise.all(ids.map((id) => adapter.connect(url, id))));
  }
  held.push(...firsts);
  if (insert) {
    for (let d = 0; d < firsts.length; d += batch) {
      await Promise.all(firsts.slice(d, d + batch).map((c) => c.submitInsert(0, insert)));
    }
  }
  for (let i = held.length; i < conns; i += batch) {
    const n = Math.min(batch, conns - i);
    held.push(...await Promise.all(Array.from({ length: n }, (_, k) => adapter.connect(url, `${tag}-${(i + k) % docs}`))));
  }
  say({ phase: 'held', conns: held.length, docs: Math.min(docs, conns), open_s: (Date.now() - t0) / 1000 });
  lines.on('close', async () => {
    await Promise.all(held.map((c) => c.close()));
    process.exit(0);
  });
}

main().catch((err) => {
  say({ phase: 'error', error: String((err && err.message) || err) });
  process.exit(1);
});
