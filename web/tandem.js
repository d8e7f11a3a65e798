// TandemClient: the client state machine (client.js) on a WebSocket, with reconnection.
// This is the small API an editor binds to (docs/web-client.md); it knows no editor.
//
//   const client = new TandemClient({ url: "ws://127.0.0.1:8000/ws/notes", on: {
//     change(op) { ... apply op (code points) to the editor ... },
//     status(s) { ... }, presence(client, cursor, user) { ... }, lost(ops, reason) { ... },
//   }});
//   client.start();
//   client.edit(op);                  // a local edit, in code points, on client.text
//   client.setCursor({anchor, head}); // the own selection, in code points
//
// `token` is a string, or a function (it may return a promise) called before every
// connection: the server closes a connection when its token expires (4401), and the client
// comes back with a fresh one. A connection whose access was revoked (4403) is not retried:
// the client stops, with the status "revoked".

import { ClientSession, Phase } from "./client.js";

const DEFAULT_BACKOFF = { base: 250, max: 10000 };
const PING_EVERY_MS = 15000;
const SILENT_LIMIT_MS = 45000; // no frame for this long: the connection is dead
const PRESENCE_DELAY_MS = 30; // selection changes in one burst share one presence message
export const CLOSE_TOKEN_EXPIRED = 4401;
export const CLOSE_REVOKED = 4403;

/** A random id of the protocol's alphabet, for client ids and document names. */
export function randomId(prefix = "", length = 10) {
  const alphabet = "abcdefghijkmnpqrstuvwxyz23456789";
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return prefix + Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

const noop = () => {};

export class TandemClient {
  constructor({
    url, clientId = randomId("c-"), user = null, token = null, backoff = {},
    WebSocket: Socket = globalThis.WebSocket, on = {},
  }) {
    this.url = url;
    this.tokenProvider = typeof token === "function" ? token : null;
    this.session = new ClientSession(clientId, { user, token: this.tokenProvider ? null : token });
    this.backoff = { ...DEFAULT_BACKOFF, ...backoff };
    this.Socket = Socket;
    this.on = {
      flush: noop, change: noop, status: noop, presence: noop, lost: noop, error: noop, caughtUp: noop, ...on,
    };
    this.ws = null;
    this.attempt = 0; // failed connection attempts since the last successful one
    this.retryAt = null;
    this.timer = null;
    this.stopped = true;
    this.lastHeard = 0;
    this.inFlightEdits = 0; // local edits in the op in flight
    this.bufferedEdits = 0; // local edits composed into the buffer
    this.presenceTimer = null;
    this.held = null; // frames kept while the editor composes (hold / release)
    this.statusName = "connecting";
    // The browser's idea of the network is a hint only: a server on this machine may still
    // answer. Coming online retries at once; going offline only changes the label.
    this.onOnline = () => {
      if (!this.ws || this.ws.readyState !== 1) this.reconnectSoon(0);
    };
    this.onOffline = () => {
      if (this.session.phase !== Phase.LIVE) this.setStatus("offline");
    };
  }

  // ------------------------------------------------------------ what an editor reads

  get text() { return this.session.text; }
  get rev() { return this.session.rev; }
  get clientId() { return this.session.clientId; }
  get ready() { return this.session.rev !== null; }
  /** Local edits not acknowledged by the server yet. */
  get pending() { return this.inFlightEdits + this.bufferedEdits; }
  /** Other clients' cursors: Map client -> {cursor, user}. */
  get peers() { return this.session.remoteCursors; }

  get status() {
    return {
      state: this.statusName,
      attempt: this.attempt,
      retryInMs: this.retryAt === null ? null : Math.max(0, this.retryAt - Date.now()),
      rev: this.session.rev,
      pending: this.pending,
      people: this.peers.size + 1,
    };
  }

  // ------------------------------------------------------------ lifecycle

  start() {
    this.stopped = false;
    globalThis.addEventListener?.("online", this.onOnline);
    globalThis.addEventListener?.("offline", this.onOffline);
    this.heartbeat = setInterval(() => this.checkAlive(), PING_EVERY_MS);
    this.open();
  }

  stop() {
    this.stopped = true;
    globalThis.removeEventListener?.("online", this.onOnline);
    globalThis.removeEventListener?.("offline", this.onOffline);
    clearInterval(this.heartbeat);
    clearTimeout(this.timer);
    this.dropSocket();
    this.setStatus("stopped");
  }

  // ------------------------------------------------------------ editor input

  /** A local edit (code points, on `text`). Throws before the first snapshot has arrived. */
  edit(op) {
    const before = this.session.state.name;
    const effects = this.session.edit(op);
    if (effects.length) {
      if (before === "Synchronized") this.inFlightEdits = 1;
      else this.bufferedEdits += 1;
    }
    this.perform(effects);
  }

  /** The own selection in code points (or null); shared soon, or after the ack of an edit in flight. */
  setCursor(cursor) {
    this.session.setCursor(cursor); // its Send is coalesced below
    clearTimeout(this.presenceTimer);
    this.presenceTimer = setTimeout(() => this.sharePresence(), PRESENCE_DELAY_MS);
  }

  /** Change the own display data ({name, color}) and share it. */
  setUser(user) {
    this.session.user = user;
    this.sharePresence();
  }

  /**
   * Keep incoming frames unapplied until `release()`: an editor in the middle of an input
   * method composition must not have its text replaced under it.
   */
  hold() {
    this.held = this.held || [];
  }

  release() {
    const frames = this.held || [];
    this.held = null;
    for (const data of frames) {
      if (!this.ws) break;
      this.handleFrame(data);
    }
  }

  sharePresence() {
    if (this.session.phase === Phase.LIVE) this.perform(this.session.setCursor(this.session.cursor));
  }

  // ------------------------------------------------------------ the socket

  open() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.retryAt = null;
    this.setStatus(this.attempt ? this.waitingState() : "connecting");
    // a fresh token for every connection, fetched while the socket opens
    const token = this.tokenProvider ? Promise.resolve().then(() => this.tokenProvider()) : null;
    token?.catch(() => {}); // handled at open; a socket that never opens must not leave it unhandled
    const ws = new this.Socket(this.url);
    this.ws = ws;
    ws.onopen = async () => {
      if (this.ws !== ws) return;
      this.lastHeard = Date.now();
      if (token) {
        try {
          this.session.token = await token;
        } catch (error) {
          if (this.ws !== ws) return;
          this.on.error({ type: "TokenError", message: String(error?.message ?? error) });
          this.dropSocket();
          this.reconnectSoon();
          return;
        }
        if (this.ws !== ws) return;
      }
      this.perform(this.session.connect());
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      this.lastHeard = Date.now();
      if (this.held) this.held.push(event.data);
      else this.handleFrame(event.data);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      // 4xxx: the server closed on purpose (a frame too large, ...); say why, then retry
      if (event && event.code >= 4000) this.on.error({ type: "Closed", code: event.code, reason: event.reason });
      if (event && event.code === CLOSE_REVOKED) {
        this.stop(); // coming back would only be refused again
        this.setStatus("revoked");
        return;
      }
      this.dropSocket();
      this.reconnectSoon();
    };
  }

  handleFrame(data) {
    this.on.flush(); // an editor change not reported yet must be an edit before remote ops arrive
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      console.error("tandem: unreadable frame from the server", data);
      return;
    }
    for (const msg of Array.isArray(frame) ? frame : [frame]) {
      try {
        this.perform(this.session.receive(msg));
      } catch (error) {
        // a message the machine cannot take: start over on a fresh connection
        console.error("tandem:", error);
        this.dropSocket();
        this.reconnectSoon();
        return;
      }
      if (this.ws === null) return; // the effects closed this connection
    }
  }

  /** Forget the current socket (its late events are ignored) and tell the session. */
  dropSocket() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    if (this.held) this.held = []; // frames of a gone connection must not be applied
    ws.onopen = ws.onmessage = ws.onclose = null;
    try {
      ws.close();
    } catch {
      // already closed
    }
    this.perform(this.session.disconnected());
  }

  /** Connect again after `delay`, by default exponential in the attempts, with jitter. */
  reconnectSoon(delay = null) {
    if (this.stopped) return;
    if (this.ws) this.dropSocket();
    clearTimeout(this.timer);
    if (delay === null) {
      this.attempt += 1;
      const ceiling = Math.min(this.backoff.max, this.backoff.base * 2 ** (this.attempt - 1));
      delay = ceiling / 2 + Math.random() * (ceiling / 2); // jitter spreads a crowd's retries
    }
    this.retryAt = Date.now() + delay;
    this.setStatus(this.waitingState());
    this.timer = setTimeout(() => this.open(), delay);
  }

  waitingState() {
    return globalThis.navigator && navigator.onLine === false ? "offline" : "reconnecting";
  }

  checkAlive() {
    if (!this.ws || this.ws.readyState !== 1) return;
    if (Date.now() - this.lastHeard > SILENT_LIMIT_MS) {
      this.dropSocket();
      this.reconnectSoon();
    } else {
      this.ws.send(JSON.stringify({ type: "ping" }));
    }
  }

  // ------------------------------------------------------------ effects

  perform(effects) {
    for (const e of effects) {
      switch (e.type) {
        case "Send":
          if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(e.message));
          break;
        case "TextChanged":
          if (e.remote) this.on.change(e.op);
          break;
        case "Acknowledged":
          this.inFlightEdits = this.bufferedEdits;
          this.bufferedEdits = 0;
          break;
        case "CaughtUp":
          this.attempt = 0;
          this.on.caughtUp(e.rev);
          break;
        case "PresenceChanged":
          this.on.presence(e.client, e.cursor, e.user);
          break;
        case "Lost":
          this.on.lost(e.ops, e.reason);
          break;
        case "ServerError":
          this.on.error(e);
          if (e.retryable) setTimeout(() => this.perform(this.session.resubmit()), 500 + Math.random() * 1000);
          if (e.code === "unauthorized" && this.tokenProvider && this.ws && this.session.phase === Phase.CONNECTING) {
            this.dropSocket(); // hello refused: a stale token; ask the provider again, after a backoff
            this.reconnectSoon();
          }
          break;
        case "Diverged":
          this.on.error(e);
          break;
        case "Reconnect":
          this.dropSocket();
          this.reconnectSoon();
          break;
        default:
          break;
      }
    }
    this.countPending();
    this.setStatus(this.ws && this.session.phase === Phase.LIVE ? "connected" : this.statusName);
  }

  countPending() {
    if (!this.session.outstanding) this.inFlightEdits = 0;
    if (!this.session.buffer.length) this.bufferedEdits = 0;
  }

  setStatus(name) {
    this.statusName = name;
    this.on.status(this.status);
  }
}
