// Runs the shared OT test vectors (tests/vectors/*.json, generated from the Python
// implementation) against web/operation.js and web/cursor.js. Used under Node
// (run_vectors.js) and in Chromium (test_vectors.py); returns failures, never throws.

import * as ot from "../../web/operation.js";
import { transformCursor, transformIndex } from "../../web/cursor.js";
import { ClientSession } from "../../web/client.js";

export const KINDS = ["apply", "compose", "transform", "invert", "normalize", "cursor", "check", "client"];

const same = (x, y) => JSON.stringify(x) === JSON.stringify(y);

// JSON with sorted keys: effects and messages compare by content, not key order.
const canonical = (x) => JSON.stringify(x, (_, v) => (v && typeof v === "object" && !Array.isArray(v)
  ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]))
  : v));

// Replays a recorded run of ot/client.py; throws naming the first step that differs.
function replayClient(c) {
  const session = new ClientSession("me", { user: { name: "Ada", color: "#1e88e5" } });
  c.steps.forEach((step, i) => {
    let effects;
    switch (step.do) {
      case "connect": effects = session.connect(); break;
      case "disconnected": effects = session.disconnected(); break;
      case "resubmit": effects = session.resubmit(); break;
      case "edit": effects = session.edit(step.op); break;
      case "cursor": effects = session.setCursor(step.cursor); break;
      case "receive": effects = session.receive(step.message); break;
      default: throw new Error(`step ${i}: unknown input ${step.do}`);
    }
    if (canonical(effects) !== canonical(step.effects)) {
      throw new Error(`step ${i} (${step.do}): expected ${canonical(step.effects)}, got ${canonical(effects)}`);
    }
  });
  if (session.text !== c.text || session.rev !== c.rev) {
    throw new Error(`ended at rev ${session.rev} with ${JSON.stringify(session.text)}, expected rev ${c.rev}`);
  }
  return true;
}

function outcome(fn) {
  try {
    return { value: fn() };
  } catch (error) {
    return { error: String(error.message) };
  }
}

const RUN = {
  apply(c) {
    const got = outcome(() => ot.apply(c.doc, c.op));
    return "error" in c ? got.error === c.error : got.value === c.result;
  },
  compose(c) {
    const composed = ot.compose(c.a, c.b);
    return same(composed, c.result) && ot.apply(c.doc, composed) === ot.apply(ot.apply(c.doc, c.a), c.b);
  },
  transform(c) {
    const [aPrime, bPrime] = ot.transform(c.a, c.b);
    return same(aPrime, c.a_prime) && same(bPrime, c.b_prime)
      && ot.apply(ot.apply(c.doc, c.a), bPrime) === ot.apply(ot.apply(c.doc, c.b), aPrime);
  },
  invert(c) {
    const inverse = ot.invert(c.op, c.doc);
    return same(inverse, c.result) && ot.apply(ot.apply(c.doc, c.op), inverse) === c.doc;
  },
  normalize(c) {
    const once = ot.normalize(c.components);
    return same(once, c.result) && same(ot.normalize(once), once);
  },
  cursor(c) {
    return transformIndex(c.cursor.anchor, c.op, c.own) === c.index_result
      && same(transformCursor(c.cursor, c.op, c.own), c.result);
  },
  client: replayClient,
  check(c) {
    return !("error" in outcome(() => ot.check(c.op, c.doc_length))) === c.valid;
  },
};

/** Run every case of `vectors` ({kind: parsed file}); returns {counts, failures}. */
export function runVectors(vectors) {
  const counts = {};
  const failures = [];
  for (const kind of KINDS) {
    const cases = vectors[kind].cases;
    counts[kind] = cases.length;
    cases.forEach((c, index) => {
      const got = outcome(() => RUN[kind](c));
      if (got.value !== true) failures.push({ kind, index, case: c, error: got.error ?? "mismatch" });
    });
  }
  return { counts, failures };
}
