// Unit tests of the browser client's pieces that need no DOM: the UTF-16 edge, the
// textarea diff and the undo manager. Run under Node (run_node.js) and in Chromium
// (test_js.py); returns the names and errors of failing tests, never throws.

import { apply, insertOp, replaceOp, replacement } from "../../web/operation.js";
import { diffToOp, Shown } from "../../web/textarea.js";
import { genesisHash, nextHash } from "../../web/integrity.js";
import { TandemClient } from "../../web/tandem.js";
import { UndoManager } from "../../web/undo.js";
import { codePointLength, hasLoneSurrogate, toCodePoint, toUtf16 } from "../../web/unicode.js";

function eq(got, want, what) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${what}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  }
}

const TESTS = {
  "code points versus UTF-16 units"() {
    eq(codePointLength("a😀b"), 3, "length of a😀b");
    eq(toUtf16("a😀b", 2), 3, "UTF-16 index of code point 2");
    eq(toCodePoint("a😀b", 3), 2, "code point of UTF-16 index 3");
    eq(toUtf16("ab", 9), 2, "positions past the end clamp");
    eq([hasLoneSurrogate("a\ud83d"), hasLoneSurrogate("😀"), hasLoneSurrogate("\ude00")],
      [true, false, true], "lone surrogates");
  },
  "a replacement keeps the common prefix and suffix, in code points"() {
    eq(replacement("a😀bc", "a😀xc"),
      [{ type: "Retain", length: 2 }, { type: "Insert", content: "x" }, { type: "Delete", length: 1 }], "one letter");
    eq(replacement("aa", "a"), [{ type: "Retain", length: 1 }, { type: "Delete", length: 1 }], "a shorter text");
    eq(replacement("same", "same"), [], "no change");
    eq(replaceOp(0, 0, ""), [], "an empty replace");
  },
  "diff of a typed character uses the caret to place it"() {
    eq(diffToOp("aa", "aaa", 1), [{ type: "Insert", content: "a" }], "insert at the start of aa");
    eq(diffToOp("aa", "aaa", 3), [{ type: "Retain", length: 2 }, { type: "Insert", content: "a" }],
      "insert at the end of aa");
  },
  "diff counts code points and never cuts a surrogate pair"() {
    // 😀 and 😃 share their high surrogate: a naive prefix would split the pair
    eq(diffToOp("x😀y", "x😃y", 3),
      [{ type: "Retain", length: 1 }, { type: "Insert", content: "😃" }, { type: "Delete", length: 1 }],
      "replace one emoji by another");
    eq(diffToOp("😀😀", "😀", 2), [{ type: "Retain", length: 1 }, { type: "Delete", length: 1 }],
      "backspace over an emoji");
    const before = "ab👍🏽c";
    const after = "ab👍🏽Zc";
    eq(apply(before, diffToOp(before, after, 7)), after, "diff applies back to the new value");
  },
  "a document with carriage returns maps to what a textarea shows"() {
    const shown = new Shown("a\r\nb\rc😀\r\n");
    eq(shown.text, "a\nb\nc😀\n", "shown text");
    eq([0, 1, 2, 3, 4, 5, 6, 7].map((k) => shown.toDoc(k)), [0, 1, 3, 4, 5, 6, 7, 9], "shown to document");
    eq([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((d) => shown.toShown(d)), [0, 1, 1, 2, 3, 4, 5, 6, 6, 7],
      "document to shown (inside a pair: its start)");
    // backspace over the first line break, then typing at the end
    const joined = apply(shown.doc, shown.opToDoc(diffToOp(shown.text, "ab\nc😀\n", 1)));
    eq(joined, "ab\rc😀\r\n", "backspace removes the whole \\r\\n, nothing else");
    const typed = new Shown(joined);
    eq(apply(joined, typed.opToDoc(diffToOp(typed.text, "ab\nc😀\nz", 8))), "ab\rc😀\r\nz",
      "typing keeps the other line breaks as they were");
    eq(new Shown("plain").widths, null, "no mapping without carriage returns");
  },
  "diff of a replaced selection is one delete and one insert"() {
    eq(diffToOp("hello world", "hello there", 11),
      [{ type: "Retain", length: 6 }, { type: "Insert", content: "there" }, { type: "Delete", length: 5 }],
      "replace world");
  },
  "undo removes only one's own edit, after someone else's"() {
    const undo = new UndoManager({ now: () => 0 });
    let text = "";
    const mine = insertOp(0, "mine ");
    undo.recordEdit(mine, text);
    text = apply(text, mine);
    const theirs = insertOp(0, "theirs ");
    undo.transform(theirs);
    text = apply(text, theirs);
    text = apply(text, undo.undo(text));
    eq(text, "theirs ", "text after undo");
    text = apply(text, undo.redo(text));
    eq(text, "theirs mine ", "text after redo");
  },
  "quick typing of one kind is undone at once; a pause starts a new step"() {
    let clock = 0;
    const undo = new UndoManager({ now: () => clock });
    let text = "";
    for (const [at, ch] of [[0, "a"], [1, "b"], [2, "c"]]) {
      const op = insertOp(at, ch);
      undo.recordEdit(op, text);
      text = apply(text, op);
      clock += 100;
    }
    clock += 5000;
    const op = insertOp(3, "d");
    undo.recordEdit(op, text);
    text = apply(text, op);
    text = apply(text, undo.undo(text));
    eq(text, "abc", "first undo");
    text = apply(text, undo.undo(text));
    eq(text, "", "second undo");
    eq(undo.undo(text), null, "nothing left to undo");
  },
  "an own edit deleted by someone else leaves nothing to undo"() {
    const undo = new UndoManager();
    undo.recordEdit(insertOp(1, "x"), "ab");
    undo.transform([{ type: "Delete", length: 3 }]);
    eq(undo.canUndo, false, "undo after the whole text was deleted");
  },
};

// A WebSocket stand-in: the test opens, feeds and closes it by hand.
class FakeSocket {
  static made = [];

  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    FakeSocket.made.push(this);
  }

  open() {
    this.readyState = 1;
    this.onopen();
  }

  send(data) {
    this.sent.push(JSON.parse(data));
  }

  feed(...messages) {
    this.onmessage({ data: JSON.stringify(messages.length === 1 ? messages[0] : messages) });
  }

  close() {
    this.readyState = 3;
  }
}

const H0 = genesisHash("d");

/** Run `test(client, socket)` on a TandemClient whose first socket has loaded an empty document. */
function withLiveClient(on, test) {
  FakeSocket.made = [];
  const client = new TandemClient({ url: "ws://test/ws/d", clientId: "me", WebSocket: FakeSocket, on });
  client.start();
  try {
    const socket = FakeSocket.made[0];
    socket.open();
    eq(socket.sent, [{ type: "hello", client: "me", rev: null, token: null }], "hello on a fresh start");
    socket.feed({ type: "snapshot", rev: 0, text: "", hash: H0 }, { type: "ready", rev: 0 });
    eq(client.status.state, "connected", "state after ready");
    test(client, socket);
  } finally {
    client.stop();
  }
}

TESTS["the driver resends the op in flight after a reconnect, then the edits made offline"] = () => {
  const statuses = [];
  withLiveClient({ status: (s) => statuses.push(s) }, (client, first) => {
    client.edit(insertOp(0, "a"));
    eq(first.sent[1], { type: "op", seq: 1, base: 0, ops: [{ type: "Insert", content: "a" }] }, "op sent");

    first.readyState = 3;
    first.onclose();
    const waiting = client.status;
    eq([waiting.state, waiting.attempt], ["reconnecting", 1], "state after the socket closed");
    eq(waiting.retryInMs >= 0 && waiting.retryInMs <= 250, true, `first retry within 250 ms: ${waiting.retryInMs}`);
    client.edit(insertOp(1, "b"));
    client.edit(insertOp(2, "c"));
    eq([client.text, client.pending], ["abc", 3], "text and pending edits while disconnected");

    client.open(); // what the retry timer does
    const second = FakeSocket.made[1];
    second.open();
    eq(second.sent, [{ type: "hello", client: "me", rev: 0, token: null }], "hello resumes from rev 0");
    second.feed({ type: "ready", rev: 0 });
    eq(second.sent[1], { type: "op", seq: 1, base: 0, ops: [{ type: "Insert", content: "a" }] },
      "the same op, same seq and base");
    const h1 = nextHash(H0, 1, "me", 1, [{ type: "Insert", content: "a" }]);
    second.feed({ type: "ack", seq: 1, rev: 1, hash: h1 });
    eq(second.sent[2], { type: "op", seq: 2, base: 1, ops: [{ type: "Retain", length: 1 },
      { type: "Insert", content: "bc" }] }, "the offline edits, composed into one op");
    eq([client.pending, client.status.attempt], [2, 0], "pending and attempts after the ack");
    eq(statuses.some((s) => s.state === "reconnecting"), true, "the status went through reconnecting");
  });
};

TESTS["frames wait while held and apply in order on release; a dropped connection's are discarded"] = () => {
  const changes = [];
  withLiveClient({ change: (op) => changes.push(op) }, (client, socket) => {
    const ops = [[{ type: "Insert", content: "a" }], [{ type: "Insert", content: "b" }]];
    const h1 = nextHash(H0, 1, "other", 1, ops[0]);
    const h2 = nextHash(h1, 2, "other", 2, ops[1]);
    client.hold();
    socket.feed({ type: "op", rev: 1, client: "other", seq: 1, ops: ops[0], hash: h1 });
    socket.feed({ type: "op", rev: 2, client: "other", seq: 2, ops: ops[1], hash: h2 });
    eq([client.text, changes.length], ["", 0], "nothing applied while held");
    client.release();
    eq([client.text, client.rev], ["ba", 2], "both applied, in order, on release");
    client.hold();
    socket.feed({ type: "op", rev: 3, client: "other", seq: 3, ops: ops[0], hash: nextHash(h2, 3, "other", 3, ops[0]) });
    client.dropSocket();
    client.release();
    eq(client.rev, 2, "a frame of a dropped connection is not applied");
  });
};

/** Run every test; returns {count, failures: [{name, error}]}. */
export function runUnitTests() {
  const failures = [];
  for (const [name, test] of Object.entries(TESTS)) {
    try {
      test();
    } catch (error) {
      failures.push({ name, error: String(error && error.stack || error) });
    }
  }
  return { count: Object.keys(TESTS).length, failures };
}
