// Presence in one client's replica: its own cursor, the others' cursors, and the updates
// that arrive before or after the revision they were made on. The JavaScript twin of
// ot/presence.py; the shared scenario vectors (tests/vectors/client.json) pin both.
//
// A PresenceTracker knows revisions and who wrote each op, not the state machine: the
// ClientSession (client.js) tells it what was committed and moved the text, and hands it
// `toLocal`, which moves a cursor from the server's text at the session's revision into
// the local text (through the own edits not committed yet). Drawing the cursors in a page
// is presence.js's business.

import { transformCursor } from "./cursor.js";

// How many committed ops the tracker keeps to move late presence updates forward.
export const PRESENCE_HISTORY = 256;

export class PresenceTracker {
  constructor(clientId) {
    this.clientId = clientId;
    this.cursor = null; // the own cursor, in the local text
    this.peers = new Map(); // client -> {cursor, user}
    this.history = []; // [rev, author, ops] of recent revisions, for late presence updates
    this.early = new Map(); // presence updates for revisions not reached yet
    this.held = false; // the cursor was set with an op in flight: shared after its ack
  }

  // ------------------------------------------------------------ the own cursor

  /** Send the own cursor if the local text is the server's at `rev`; else hold it for the ack. */
  share(user, rev, inFlight) {
    if (inFlight) {
      this.held = true;
      return [];
    }
    this.held = false;
    return [{ type: "Send", message: { type: "presence", cursor: this.cursor, user, rev } }];
  }

  /** A connection became live: what was held for the old one is shared now, if anything. */
  ready(user, rev, inFlight) {
    this.held = false;
    return this.cursor ? this.share(user, rev, inFlight) : [];
  }

  /** Nothing is in flight any more: share a cursor held for the ack. */
  acknowledged(user, rev) {
    return this.held ? this.share(user, rev, false) : [];
  }

  // ------------------------------------------------------------ the text moves

  /** `ops` of `author` was committed as `rev`: kept to move later updates made before it. */
  remember(rev, author, ops) {
    this.history.push([rev, author, ops]);
    if (this.history.length > PRESENCE_HISTORY) this.history.shift();
  }

  /** A snapshot replaced the text: the revisions before it cannot move an update any more. */
  forgetHistory() {
    this.history = [];
  }

  /** Move every cursor through `op` of `author` (null: a snapshot's replacement). */
  move(op, author) {
    for (const [client, peer] of this.peers) {
      const cursor = transformCursor(peer.cursor, op, client === author);
      this.peers.set(client, { cursor, user: peer.user });
    }
    if (this.cursor) this.cursor = transformCursor(this.cursor, op, author === this.clientId);
  }

  // ------------------------------------------------------------ the others

  /** Another client's update, for a replica at `rev`; placed now or once `rev` reaches it. */
  receive(msg, rev, toLocal) {
    if (msg.client === this.clientId || !wellFormed(msg)) return [];
    const user = msg.user ?? null;
    if (!msg.cursor) {
      this.peers.delete(msg.client);
      this.early.delete(msg.client);
      return [{ type: "PresenceChanged", client: msg.client, cursor: null, user }];
    }
    if (msg.rev > rev) {
      this.early.set(msg.client, msg); // placed when the session reaches its revision
      return [];
    }
    return this.place(msg, toLocal);
  }

  /** Place the updates held for revisions the replica has reached now. */
  release(rev, toLocal) {
    const effects = [];
    for (const [client, msg] of [...this.early]) {
      if (rev !== null && msg.rev <= rev) {
        this.early.delete(client);
        effects.push(...this.place(msg, toLocal));
      }
    }
    return effects;
  }

  /** The connection is gone: who is here is learnt again from the next one. */
  disconnected() {
    this.peers.clear();
    this.early.clear();
  }

  place(msg, toLocal) {
    let cursor = msg.cursor;
    for (const [rev, author, op] of this.history) {
      if (rev > msg.rev) cursor = transformCursor(cursor, op, author === msg.client);
    }
    cursor = toLocal(cursor);
    const user = msg.user ?? null;
    this.peers.set(msg.client, { cursor, user });
    return [{ type: "PresenceChanged", client: msg.client, cursor, user }];
  }
}

const isPosition = (n) => Number.isSafeInteger(n) && n >= 0;

/** A presence update a replica can hold: the server checks them all, a replica checks again. */
function wellFormed(msg) {
  if (typeof msg.client !== "string" || !msg.client) return false;
  if (msg.user != null && (typeof msg.user !== "object" || Array.isArray(msg.user))) return false;
  if (!msg.cursor) return true;
  return isPosition(msg.rev) && isPosition(msg.cursor.anchor) && isPosition(msg.cursor.head);
}
