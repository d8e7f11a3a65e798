// The sans-IO client state machine of protocol version 1: the JavaScript twin of
// ot/client.py (read its module docstring for the rules). Shared scenario vectors
// (tests/vectors/client.json, recorded from the Python machine) keep the two in step.
//
// A ClientSession holds one client's replica of one document. Its caller owns the socket
// and the editor: it feeds in local edits (edit), decoded server messages (receive) and
// connection events (connect, disconnected), and performs the effects each call returns,
// plain objects tagged by `type`:
//   Send {message}                      send it on the current connection
//   TextChanged {op, remote}            the text changed; show it when remote
//   Acknowledged {seq, rev}             local op seq was committed as rev
//   Lost {ops, reason}                  local edits that will never be committed
//   Reconnect {reason}                  close the connection and connect again (a reload)
//   Diverged {rev, detail}              the history received does not fit the replica
//   ServerError {code, message, seq, retryable}
//   PresenceChanged {client, cursor, user}   another client's cursor (null: it left)
//   CaughtUp {rev}                      the replay after hello is done
// Positions and lengths are code points throughout. The cursors are kept by a
// PresenceTracker (peers.js), as ot/client.py leaves them to ot/presence.py.
//
//   Synchronized --edit--> AwaitingAck --edit--> AwaitingWithBuffer
//        ^                  |     ^                   |
//        +------ack---------+     +------ack----------+  (the buffer is sent)
//
//   AwaitingResolution: a snapshot replaced the text while an op was in flight; the op
//   is resent, and its ack (or its committed op) tells whether it is in the text.

import { transformCursor } from "./cursor.js";
import { nextHash } from "./integrity.js";
import { apply, check, compose, IDENTITY, InvalidOperation, normalize, replacement, transform }
  from "./operation.js";
import { PresenceTracker } from "./peers.js";
import { codePointLength } from "./unicode.js";

// Error codes that do not refuse an op for good: it may be resent (resubmit).
export const RETRYABLE = new Set(["rate_limited", "unavailable", "internal"]);

export class ProtocolViolation extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolViolation";
  }
}

// ---------------------------------------------------------------- states

/** The op in flight: `submitted` as sent on `base`, `ops` the same op moved to the current rev. */
const outstanding = (seq, base, submitted, ops, sent = true) => ({ seq, base, submitted, ops, sent });
const submitMessage = (o) => ({ type: "op", seq: o.seq, base: o.base, ops: o.submitted });
const moved = (o, ops) => outstanding(o.seq, o.base, o.submitted, ops, o.sent);

export const SYNCHRONIZED = Object.freeze({ name: "Synchronized" });
const awaitingAck = (o) => ({ name: "AwaitingAck", outstanding: o });
const awaitingWithBuffer = (o, buffer) => ({ name: "AwaitingWithBuffer", outstanding: o, buffer });
const awaitingResolution = (o, buffer) => ({ name: "AwaitingResolution", outstanding: o, buffer });

/** The state after a local edit `op`; `fresh` is the op to put in flight if none is. */
export function localEdit(state, op, fresh) {
  switch (state.name) {
    case "Synchronized": return awaitingAck(fresh);
    case "AwaitingAck": return awaitingWithBuffer(state.outstanding, op);
    case "AwaitingWithBuffer": return awaitingWithBuffer(state.outstanding, compose(state.buffer, op));
    default: return awaitingResolution(state.outstanding, compose(state.buffer, op));
  }
}

/** [next state, op to apply to the local text] for a committed remote `op`. */
export function remoteOp(state, op) {
  const o = state.outstanding;
  switch (state.name) {
    case "Synchronized":
      return [state, op];
    case "AwaitingAck": {
      // the outstanding op wins the tie: it is committed after op
      const [oOps, opPrime] = transform(o.ops, op);
      return [awaitingAck(moved(o, oOps)), opPrime];
    }
    case "AwaitingWithBuffer": {
      //            /\
      //   o.ops   /  \  op
      //          /    \
      //         /\    /
      // buffer /  \  / o.ops'
      //       /    \/
      //       \    /
      //  op''  \  /  op'
      //         \/  buffer'
      const [oOps, opPrime] = transform(o.ops, op);
      const [bufferPrime, op2] = transform(state.buffer, opPrime);
      return [awaitingWithBuffer(moved(o, oOps), bufferPrime), op2];
    }
    default: {
      // the outstanding op is not in the text: only the buffer lies between
      const [bufferPrime, opPrime] = transform(state.buffer, op);
      return [awaitingResolution(o, bufferPrime), opPrime];
    }
  }
}

/** The state after the in-flight op is committed; `fresh` carries the buffer, if any, to send. */
export const acknowledged = (state, fresh) => (fresh && fresh.ops.length ? awaitingAck(fresh) : SYNCHRONIZED);

/** [outstanding or null, buffer] of a state. */
export function pendingOf(state) {
  switch (state.name) {
    case "Synchronized": return [null, IDENTITY];
    case "AwaitingAck": return [state.outstanding, IDENTITY];
    default: return [state.outstanding, state.buffer];
  }
}

function withOutstanding(state, o) {
  switch (state.name) {
    case "AwaitingAck": return awaitingAck(o);
    case "AwaitingWithBuffer": return awaitingWithBuffer(o, state.buffer);
    case "AwaitingResolution": return awaitingResolution(o, state.buffer);
    default: return state;
  }
}

export const Phase = Object.freeze({
  DISCONNECTED: "disconnected",
  CONNECTING: "connecting", // hello sent, replay or snapshot under way
  LIVE: "live", // ready received
  CLOSING: "closing", // a Reconnect was asked for: the rest of this connection is ignored
});

const clampCursor = (c, n) => ({
  anchor: Math.min(Math.max(c.anchor, 0), n),
  head: Math.min(Math.max(c.head, 0), n),
});

// ---------------------------------------------------------------- the session

export class ClientSession {
  /**
   * `clientId` must not be reused with a fresh seq counter: the server would take the new
   * ops for duplicates of old ones. Pass the next unused `seq` when resuming one.
   */
  constructor(clientId, { user = null, token = null, seq = 1, verify = true } = {}) {
    this.clientId = clientId;
    this.token = token;
    this.user = user;
    this.verify = verify;
    this.text = "";
    this.rev = null; // null until the first snapshot
    this.hash = null;
    this.state = SYNCHRONIZED;
    this.nextSeq = seq;
    this.phase = Phase.DISCONNECTED;
    this.presence = new PresenceTracker(clientId);
    this.reload = false;
    this.requested = 0; // the highest revision asked for by a fetch on this connection
  }

  /** The op in flight ({seq, base, submitted, ops, sent}), or null. */
  get outstanding() {
    return pendingOf(this.state)[0];
  }

  /** The local edits waiting behind the op in flight (IDENTITY if none). */
  get buffer() {
    return pendingOf(this.state)[1];
  }

  /** A reload was asked for: the text holds refused or unverified edits until its snapshot. */
  get reloading() {
    return this.reload;
  }

  /** The own cursor in the local text (set it with setCursor). */
  get cursor() {
    return this.presence.cursor;
  }

  /** The other clients' cursors in the local text: Map client -> {cursor, user}. */
  get remoteCursors() {
    return this.presence.peers;
  }

  // ------------------------------------------------------------ connection

  /** A new connection is open: say hello, resuming from the last revision held. */
  connect() {
    this.phase = Phase.CONNECTING;
    this.requested = 0;
    const rev = this.reload ? null : this.rev;
    return [send({ type: "hello", client: this.clientId, rev, token: this.token })];
  }

  /** The connection is gone; messages still queued from it must not be fed in. */
  disconnected() {
    this.phase = Phase.DISCONNECTED;
    this.presence.disconnected();
    return [];
  }

  /** Resend the in-flight op unchanged (after a retryable error). */
  resubmit() {
    const [o] = pendingOf(this.state);
    if (!o || !o.sent || this.phase !== Phase.LIVE) return [];
    return [send(submitMessage(o))];
  }

  // ------------------------------------------------------------ local input

  /** Apply a local edit made on the current text; send it, or buffer it behind the op in flight. */
  edit(op) {
    if (this.rev === null) {
      throw new ProtocolViolation("edit before the first snapshot: the document's text is not known yet");
    }
    check(op, codePointLength(this.text));
    op = normalize(op);
    if (!op.length) return [];
    this.text = apply(this.text, op);
    const live = this.phase === Phase.LIVE;
    const fresh = outstanding(this.nextSeq, this.rev, op, op, live);
    const was = this.state;
    this.state = localEdit(this.state, op, fresh);
    const effects = [{ type: "TextChanged", op, remote: false }];
    if (was.name === "Synchronized") {
      this.nextSeq += 1;
      if (live) effects.push(send(submitMessage(fresh)));
    }
    this.presence.move(op, this.clientId);
    return effects;
  }

  /** Set the own cursor ({anchor, head} in the local text, or null); shared when live, nothing in flight. */
  setCursor(cursor) {
    const n = codePointLength(this.text);
    if (cursor && !(cursor.anchor >= 0 && cursor.anchor <= n && cursor.head >= 0 && cursor.head <= n)) {
      throw new InvalidOperation(`cursor ${cursor.anchor}..${cursor.head} is outside a text of ${n}`);
    }
    this.presence.cursor = cursor && { anchor: cursor.anchor, head: cursor.head };
    if (this.phase !== Phase.LIVE) return []; // shared at ready
    return this.presence.share(this.user, this.rev, this.outstanding !== null);
  }

  // ------------------------------------------------------------ server input

  /** Handle one decoded server message; returns the effects to perform, in order. */
  receive(msg) {
    if (this.phase === Phase.DISCONNECTED) {
      throw new ProtocolViolation(`received ${msg.type} while disconnected`);
    }
    if (this.phase === Phase.CLOSING) return [];
    switch (msg.type) {
      case "snapshot": return this.onSnapshot(msg);
      case "op": return this.onCommitted(msg);
      case "ack": return this.onAck(msg);
      case "ready": return this.onReady(msg);
      case "presence": return this.presence.receive(msg, this.rev, (c) => this.toLocal(c));
      case "error": return this.onError(msg);
      case "pong": return [];
      default: throw new ProtocolViolation(`not a server message: ${JSON.stringify(msg)}`);
    }
  }

  onSnapshot(msg) {
    if (msg.rev === this.rev && msg.hash === this.hash && !this.reload) return []; // held already
    this.reload = false;
    const effects = [];
    const [o, buffer] = pendingOf(this.state);
    if (o && o.sent) {
      // may or may not be in the snapshot: resent after ready, resolved by its ack
      this.state = awaitingResolution(o, IDENTITY);
      if (buffer.length) {
        effects.push(lost([buffer], "a snapshot replaced the text under edits not yet sent"));
      }
    } else {
      this.state = SYNCHRONIZED;
      if (o) effects.push(lost(buffer.length ? [o.ops, buffer] : [o.ops], "a snapshot replaced the text"));
    }
    const replace = replacement(this.text, msg.text);
    this.text = msg.text;
    this.rev = msg.rev;
    this.hash = msg.hash;
    this.presence.forgetHistory();
    if (replace.length) {
      effects.push({ type: "TextChanged", op: replace, remote: true });
      this.presence.move(replace, null);
    }
    return effects;
  }

  onReady(msg) {
    if (this.rev === null) throw new ProtocolViolation("received ready before any snapshot");
    this.phase = Phase.LIVE;
    const effects = [{ type: "CaughtUp", rev: this.rev }, ...this.fetchThrough(msg.rev)];
    let [o] = pendingOf(this.state);
    if (o) {
      if (!o.sent) {
        o = outstanding(o.seq, this.rev, o.ops, o.ops);
        this.state = withOutstanding(this.state, o);
      }
      effects.push(send(submitMessage(o)));
    }
    return [...effects, ...this.presence.ready(this.user, this.rev, o !== null)];
  }

  onCommitted(msg) {
    const early = this.inOrder(msg.rev);
    if (early) return early;
    const [o] = pendingOf(this.state);
    if (o && o.sent && msg.client === this.clientId && msg.seq === o.seq) {
      if (this.state.name === "AwaitingResolution") {
        const effects = this.applyRemote(msg);
        return this.phase === Phase.CLOSING ? effects : [...effects, ...this.resolve(msg.seq, msg.rev)];
      }
      return this.onAck({ type: "ack", seq: msg.seq, rev: msg.rev, hash: msg.hash });
    }
    return this.applyRemote(msg);
  }

  applyRemote(msg) {
    if (this.verify && nextHash(this.hash, msg.rev, msg.client, msg.seq, msg.ops) !== msg.hash) {
      return this.diverged(msg.rev, "the op's hash does not follow the chain held");
    }
    let op;
    let text;
    try {
      [this.state, op] = remoteOp(this.state, msg.ops);
      text = apply(this.text, op);
    } catch (e) {
      if (!(e instanceof InvalidOperation)) throw e;
      return this.diverged(msg.rev, `the committed op does not fit the replica: ${e.message}`);
    }
    this.text = text;
    this.rev = msg.rev;
    this.hash = msg.hash;
    this.presence.remember(msg.rev, msg.client, msg.ops);
    this.presence.move(op, msg.client);
    const effects = op.length ? [{ type: "TextChanged", op, remote: true }] : [];
    return [...effects, ...this.presence.release(this.rev, (c) => this.toLocal(c))];
  }

  onAck(msg) {
    const [o] = pendingOf(this.state);
    if (!o || !o.sent || msg.seq !== o.seq) return []; // a duplicate ack of an op committed before
    if (this.state.name === "AwaitingResolution") {
      if (msg.rev <= this.rev) return this.resolve(msg.seq, msg.rev); // the snapshot held it already
      return this.fetchThrough(msg.rev); // fetch the committed op; it resolves the op
    }
    const early = this.inOrder(msg.rev);
    if (early) return early;
    if (this.verify && nextHash(this.hash, msg.rev, this.clientId, msg.seq, o.ops) !== msg.hash) {
      return this.diverged(msg.rev, "the ack's hash does not match the op in flight");
    }
    this.rev = msg.rev;
    this.hash = msg.hash;
    this.presence.remember(msg.rev, this.clientId, o.ops);
    return [...this.resolve(msg.seq, msg.rev), ...this.presence.release(this.rev, (c) => this.toLocal(c))];
  }

  /** The op in flight is in the text at this.rev: send the buffer, if any. */
  resolve(seq, rev) {
    const [, buffer] = pendingOf(this.state);
    const fresh = outstanding(this.nextSeq, this.rev, buffer, buffer, this.phase === Phase.LIVE);
    this.state = acknowledged(this.state, fresh);
    const effects = [{ type: "Acknowledged", seq, rev }];
    if (buffer.length) {
      this.nextSeq += 1;
      if (fresh.sent) effects.push(send(submitMessage(fresh)));
    } else if (this.phase === Phase.LIVE) {
      effects.push(...this.presence.acknowledged(this.user, this.rev));
    }
    return effects;
  }

  onError(msg) {
    const seq = msg.seq ?? null;
    const retryable = RETRYABLE.has(msg.code);
    const effects = [{ type: "ServerError", code: msg.code, message: msg.message, seq, retryable }];
    const [o, buffer] = pendingOf(this.state);
    if (!o || seq !== o.seq || retryable) return effects;
    // refused for good: the op (applied locally) and everything built on it go
    const ops = buffer.length ? [o.ops, buffer] : [o.ops];
    this.state = SYNCHRONIZED;
    this.reload = true;
    this.phase = Phase.CLOSING;
    return [
      ...effects,
      lost(ops, `the server refused op ${o.seq}: ${msg.code}: ${msg.message}`),
      { type: "Reconnect", reason: "reloading the document after a refused op" },
    ];
  }

  diverged(rev, detail) {
    // The in-flight op may still be committed: keep it; a snapshot will resolve it.
    this.reload = true;
    this.phase = Phase.CLOSING;
    return [{ type: "Diverged", rev, detail }, { type: "Reconnect", reason: `reloading the document: ${detail}` }];
  }

  /** null when `rev` is the next revision; otherwise the effects of skipping the message. */
  inOrder(rev) {
    if (this.rev === null) throw new ProtocolViolation(`received revision ${rev} before any snapshot`);
    if (rev === this.rev + 1) return null;
    return rev > this.rev ? this.fetchThrough(rev) : [];
  }

  /**
   * Ask for the revisions up to `last` that are neither held nor asked for already. A
   * message for the last revision asked for, arriving while the gap is still open, means
   * the answer came without some revisions: those are asked for again.
   */
  fetchThrough(last) {
    if (last <= this.rev || last < this.requested) return [];
    const start = last === this.requested ? this.rev + 1 : Math.max(this.rev, this.requested) + 1;
    this.requested = last;
    return [send({ type: "fetch", from: start, to: last })];
  }

  /** A cursor in the server's text at rev, moved through the own edits the local text adds. */
  toLocal(cursor) {
    const [o, buffer] = pendingOf(this.state);
    if (o && this.state.name !== "AwaitingResolution") cursor = transformCursor(cursor, o.ops);
    return clampCursor(transformCursor(cursor, buffer), codePointLength(this.text));
  }
}

const send = (message) => ({ type: "Send", message });
const lost = (ops, reason) => ({ type: "Lost", ops, reason });
