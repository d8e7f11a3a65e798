// Unit tests of the CodeMirror binding's own logic: UTF-16 <-> code point conversion over
// CodeMirror's document, local changes as ops and remote ops as changes, against the
// vendored CodeMirror. Run under Node and in Chromium (test_codemirror.py); returns the
// names and errors of failing tests, never throws.

import { apply } from "../../web/operation.js";
import {
  changesToOp, opToChanges, PositionWalker, statusText, toCodePoints, toUtf16s,
} from "../../web/codemirror.js";
import { toCodePoint, toUtf16 } from "../../web/unicode.js";
import { ChangeSet, EditorState, Text } from "../../web/vendor/codemirror.js";

function eq(got, want, what) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${what}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  }
}

const docOf = (s) => Text.of(s.split("\n"));
const SAMPLES = ["", "abc", "a😀b", "😀😀\n🎉x\n\ny𝄞", "\n\n", "é\u0301 👩‍👩‍👧 \r\nz", "line\r\nbreaks\rkept"];

// a small deterministic generator, so a failure is reproducible
function random(seed) {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

const TESTS = {
  "positions convert as unicode.js does, over CodeMirror's lines"() {
    for (const s of SAMPLES) {
      const doc = EditorState.create({ doc: s, extensions: EditorState.lineSeparator.of("\n") }).doc;
      eq(doc.toString(), s, "the document keeps \\r");
      const units = [...Array(s.length + 1).keys()];
      eq(toCodePoints(doc, units), units.map((u) => toCodePoint(s, u)), `code points of ${JSON.stringify(s)}`);
      const points = [...Array([...s].length + 2).keys()];
      eq(toUtf16s(doc, points), points.map((p) => toUtf16(s, p)), `UTF-16 of ${JSON.stringify(s)}`);
      eq(toCodePoints(doc, [...units].reverse()), units.map((u) => toCodePoint(s, u)).reverse(), "any order");
    }
  },
  "a walker counts a pair once, across line chunks"() {
    const w = new PositionWalker(["😀", "\n", "", "a😀"]);
    eq([w.toCodePoint(0), w.toCodePoint(2), w.toCodePoint(3), w.toCodePoint(6), w.toCodePoint(99)], [0, 1, 2, 4, 4],
      "code points");
    const v = new PositionWalker(["😀", "\n", "", "a😀"]);
    eq([v.toUtf16(1), v.toUtf16(3), v.toUtf16(4), v.toUtf16(9)], [2, 4, 6, 6], "UTF-16 positions");
  },
  "CodeMirror changes become ops in code points"() {
    const doc = docOf("a😀b\n🎉c");
    const changes = ChangeSet.of([{ from: 1, to: 3, insert: "X" }, { from: 5, insert: "𝄞\n" }, { from: 7, to: 8 }],
      doc.length);
    const op = changesToOp(changes, doc);
    eq(op, [{ type: "Retain", length: 1 }, { type: "Insert", content: "X" }, { type: "Delete", length: 1 },
      { type: "Retain", length: 2 }, { type: "Insert", content: "𝄞\n" }, { type: "Retain", length: 1 },
      { type: "Delete", length: 1 }], "the op");
    eq(apply(doc.toString(), op), changes.apply(doc).toString(), "same text both ways");
  },
  "ops become CodeMirror changes in UTF-16 units"() {
    const s = "😀a\n😀b";
    const doc = docOf(s);
    const op = [{ type: "Retain", length: 1 }, { type: "Insert", content: "🎉" }, { type: "Delete", length: 1 },
      { type: "Retain", length: 2 }, { type: "Delete", length: 1 }, { type: "Insert", content: "\n" }];
    const changes = opToChanges(op, doc);
    eq(changes, [{ from: 2, to: 3, insert: "🎉" }, { from: 6, to: 7 }, { from: 7, to: 7, insert: "\n" }], "the changes");
    eq(ChangeSet.of(changes, doc.length).apply(doc).toString(), apply(s, op), "same text both ways");
  },
  "random edits round-trip between ops and changes"() {
    const next = random(7);
    const alphabet = ["a", "b", "\n", "😀", "𝄞", "é", "\r"];
    let s = "x😀y\nz";
    for (let round = 0; round < 300; round++) {
      const doc = EditorState.create({ doc: s, extensions: EditorState.lineSeparator.of("\n") }).doc;
      // a random change set on whole code points
      const points = [...s];
      const specs = [];
      let at = 0;
      while (at <= points.length && specs.length < 3) {
        const from = at + next(3);
        if (from > points.length) break;
        const to = Math.min(points.length, from + next(3));
        const insert = Array.from({ length: next(3) }, () => alphabet[next(alphabet.length)]).join("");
        specs.push({ from: toUtf16(s, from), to: toUtf16(s, to), insert });
        at = to + 1;
      }
      const changes = ChangeSet.of(specs, doc.length, "\n");
      const after = changes.apply(doc).toString();
      const op = changesToOp(changes, doc);
      eq(apply(s, op), after, `round ${round}: the op does what the changes do`);
      const back = ChangeSet.of(opToChanges(op, doc), doc.length, "\n").apply(doc).toString();
      eq(back, after, `round ${round}: the changes of the op do it too`);
      s = after;
    }
  },
  "the status line says state, revision, pending edits and who is here"() {
    eq(statusText({ state: "connected", rev: 4, pending: 1, people: 2 }, ["Ada"]),
      "connected · rev 4 · 1 edit awaiting ack · 2 people here (you, Ada)", "connected");
    eq(statusText({ state: "reconnecting", attempt: 2, retryInMs: 1500, rev: null, pending: 0, people: 1 }),
      "reconnecting (attempt 2, next try in 1.5 s) · loading · 0 edits awaiting ack · 1 person here", "reconnecting");
  },
};

export function runCodeMirrorTests() {
  const failures = [];
  for (const [name, test] of Object.entries(TESTS)) {
    try {
      test();
    } catch (error) {
      failures.push({ test: name, error: String(error && error.stack ? error.stack : error) });
    }
  }
  return { count: Object.keys(TESTS).length, failures };
}
