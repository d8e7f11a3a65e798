// node --experimental-websocket tests/web/token_provider.js WS_URL TOKENS_JSON
// A TandemClient with an async token provider against a live server: it types "a", waits to be
// closed at its first token's expiry, and types "b" once back. Prints one JSON line.

import { insertOp } from "../../web/operation.js";
import { TandemClient } from "../../web/tandem.js";

const [url, tokensJson] = process.argv.slice(2);
const tokens = JSON.parse(tokensJson);
let calls = 0;
let live = 0;
const closes = [];
const errors = [];

const client = new TandemClient({
  url,
  clientId: "js-1",
  token: async () => tokens[Math.min(calls++, tokens.length - 1)],
  on: {
    caughtUp() { live += 1; },
    error(e) {
      if (e.type === "Closed") closes.push(e.code);
      else errors.push(e.code ?? e.type);
    },
  },
});

async function until(condition, what, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

let failure = null;
try {
  client.start();
  await until(() => live === 1, "the document");
  client.edit(insertOp(0, "a"));
  await until(() => client.pending === 0, "the ack of a");
  await until(() => live === 2, "a reconnect with a fresh token");
  client.edit(insertOp(1, "b"));
  await until(() => client.pending === 0, "the ack of b");
} catch (error) {
  failure = String(error);
}
client.stop();
console.log(JSON.stringify({ failure, calls, closes, errors, text: client.text, rev: client.rev }));
process.exit(0);
