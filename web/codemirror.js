// Binds a TandemClient (tandem.js) to a CodeMirror 6 EditorView: local transactions become
// ops, remote ops become transactions that CodeMirror's history does not undo, the others'
// cursors are decorations, and a panel shows the connection.
//
//   import * as cm from "./vendor/codemirror.js";   // or your own @codemirror/* modules
//   const client = new TandemClient({ url, user });
//   new cm.EditorView({ parent, extensions: [cm.history(), cm.keymap.of(cm.historyKeymap),
//                                            tandemCollab(cm, client)] });
//   client.start();
//
// CodeMirror comes in as an argument (`cm`: the exports of @codemirror/state and
// @codemirror/view) rather than an import, so a page can use the vendored bundle and an
// application its own copy: two copies of @codemirror/state in one editor do not work.
//
// CodeMirror counts UTF-16 units, the protocol code points: positions are converted here,
// walking CodeMirror's document line by line, and nowhere else.

import { transformCursor } from "./cursor.js";
import { Delete, Insert, normalize, Retain } from "./operation.js";
import { caretElement, peerColor, peerName } from "./presence.js";

const isHigh = (u) => u >= 0xd800 && u <= 0xdbff;
const isLow = (u) => u >= 0xdc00 && u <= 0xdfff;

/**
 * Walks a text given as chunks of strings (a CodeMirror Text iterates its lines and line
 * breaks) from its start, converting positions both ways. Positions asked of one walker must
 * not decrease. A surrogate pair never spans two chunks (CodeMirror's lines hold whole ones).
 */
export class PositionWalker {
  constructor(chunks) {
    this.chunks = chunks[Symbol.iterator]();
    this.chunk = "";
    this.i = 0; // UTF-16 index in chunk
    this.units = 0; // UTF-16 units walked
    this.points = 0; // code points walked
    this.prev = 0; // the last unit walked, to count a low surrogate after a high one as nothing
  }

  nextChunk() {
    for (;;) {
      const next = this.chunks.next();
      if (next.done) return false;
      this.chunk = next.value;
      this.i = 0;
      if (this.chunk.length) return true;
    }
  }

  /** The code point position of UTF-16 position `unit` (an index inside a pair counts as after it). */
  toCodePoint(unit) {
    while (this.units < unit) {
      if (this.i >= this.chunk.length && !this.nextChunk()) break;
      const u = this.chunk.charCodeAt(this.i++);
      if (!(isLow(u) && isHigh(this.prev))) this.points++;
      this.prev = u;
      this.units++;
    }
    return this.points;
  }

  /** The UTF-16 position of code point position `point` (clamped to the end). */
  toUtf16(point) {
    while (this.points < point) {
      if (this.i >= this.chunk.length && !this.nextChunk()) break;
      const u = this.chunk.charCodeAt(this.i);
      const pair = isHigh(u) && this.i + 1 < this.chunk.length && isLow(this.chunk.charCodeAt(this.i + 1));
      const width = pair ? 2 : 1;
      this.i += width;
      this.units += width;
      this.points++;
      this.prev = this.chunk.charCodeAt(this.i - 1);
    }
    return this.units;
  }
}

/** `positions` (any order) converted by `convert(walker, position)` in one walk over `chunks`. */
function convertAll(chunks, positions, convert) {
  const order = positions.map((_, k) => k).sort((a, b) => positions[a] - positions[b]);
  const walker = new PositionWalker(chunks);
  const out = new Array(positions.length);
  for (const k of order) out[k] = convert(walker, positions[k]);
  return out;
}

/** UTF-16 positions of `doc` (a CodeMirror Text, or any iterable of strings) as code points. */
export const toCodePoints = (doc, units) => convertAll(doc, units, (w, u) => w.toCodePoint(u));

/** Code point positions of `doc` as UTF-16 positions. */
export const toUtf16s = (doc, points) => convertAll(doc, points, (w, p) => w.toUtf16(p));

/** A CodeMirror ChangeSet on `startDoc` as one op in code points. */
export function changesToOp(changes, startDoc) {
  const walker = new PositionWalker(startDoc);
  const parts = [];
  let at = 0; // code points of startDoc passed
  changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
    const from = walker.toCodePoint(fromA);
    const to = walker.toCodePoint(toA);
    parts.push(Retain(from - at), Insert(inserted.toString()), Delete(to - from));
    at = to;
  });
  return normalize(parts);
}

/** An op in code points as CodeMirror change specs on `doc`, in order, positions in `doc`. */
export function opToChanges(op, doc) {
  const walker = new PositionWalker(doc);
  const changes = [];
  let at = 0;
  for (const c of op) {
    if (c.type === "Retain") {
      at += c.length;
    } else if (c.type === "Insert") {
      const from = walker.toUtf16(at);
      changes.push({ from, to: from, insert: c.content });
    } else {
      const from = walker.toUtf16(at);
      const to = walker.toUtf16((at += c.length));
      const last = changes[changes.length - 1];
      if (last && last.to === from) last.to = to; // a replacement: one change
      else changes.push({ from, to });
    }
  }
  return changes;
}

/** A translucent version of a #rgb or #rrggbb colour (peerColor gives nothing else). */
function tint(color) {
  let hex = color.slice(1);
  if (hex.length === 3) hex = [...hex].map((c) => c + c).join("");
  const n = parseInt(hex, 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, 0.28)`;
}

/** Hook `handlers` into `client.on`, each before the handler already there; returns the undo. */
function hook(client, handlers) {
  const previous = {};
  for (const [name, handler] of Object.entries(handlers)) {
    const before = (previous[name] = client.on[name]);
    client.on[name] = (...args) => {
      handler(...args);
      if (before) before(...args);
    };
  }
  return () => Object.assign(client.on, previous);
}

/** The CodeMirror extension binding `client` to the view it is part of (one view per client). */
export function tandemCollab(cm, client, options = {}) {
  return new CodeMirrorBinding(cm, client, options).extension;
}

export class CodeMirrorBinding {
  /**
   * `cm`: the exports of @codemirror/state and @codemirror/view (Annotation, EditorSelection,
   * EditorState, EditorView, Decoration, StateEffect, StateField, Transaction, ViewPlugin,
   * WidgetType, showPanel). `statusPanel: false` leaves showing the connection to the page.
   */
  constructor(cm, client, { statusPanel = true } = {}) {
    this.cm = cm;
    this.client = client;
    this.view = null;
    this.unhook = null;
    this.panel = null;
    this.peersQueued = false;
    this.fromServer = cm.Annotation.define();
    this.setLive = cm.StateEffect.define();
    this.setPeers = cm.StateEffect.define();
    const binding = this;

    // Editable once the document has loaded: `edit` throws before the first snapshot.
    const live = cm.StateField.define({
      create: () => client.ready,
      update: (value, tr) => value || tr.effects.some((e) => e.is(this.setLive)),
    });
    const peers = cm.StateField.define({
      create: () => cm.Decoration.none,
      update: (deco, tr) => {
        deco = deco.map(tr.changes);
        for (const e of tr.effects) if (e.is(this.setPeers)) deco = this.peerDecorations(e.value, tr.newDoc);
        return deco;
      },
      provide: (field) => cm.EditorView.decorations.from(field),
    });
    this.extension = [
      // "\r" and "\r\n" written by other clients stay characters, so the editor's text is
      // always the client's, unit for unit: CodeMirror would otherwise turn them into "\n".
      cm.EditorState.lineSeparator.of("\n"),
      live,
      cm.EditorState.readOnly.from(live, (isLive) => !isLive),
      peers,
      // a local change before the document has loaded has nothing to apply to: dropped
      cm.EditorState.transactionFilter.of((tr) => (tr.docChanged && !client.ready && !tr.annotation(this.fromServer) ? [] : tr)),
      cm.ViewPlugin.define((view) => {
        binding.attach(view);
        return { destroy: () => binding.detach(view) };
      }),
      cm.EditorView.updateListener.of((update) => this.onUpdate(update)),
      statusPanel ? cm.showPanel.of(() => this.makePanel()) : [],
      theme(cm),
    ];
  }

  attach(view) {
    if (this.view) throw new Error("a CodeMirrorBinding binds one view; make one per editor");
    this.view = view;
    this.unhook = hook(this.client, {
      change: (op) => this.applyRemote(op),
      caughtUp: () => this.caughtUp(),
      presence: () => this.queuePeers(),
      status: (status) => this.showStatus(status),
    });
    // Attached to a client that already has the document: take it (not while the view is
    // being built, where dispatching is not allowed).
    if (this.client.ready) queueMicrotask(() => this.resync());
  }

  detach(view) {
    if (this.view !== view) return;
    this.unhook();
    this.view = null;
  }

  /** Selection ranges as code point {anchor, head} of `state`'s document. */
  cursorsOf(state) {
    const ranges = state.selection.ranges;
    const points = toCodePoints(state.doc, ranges.flatMap((r) => [r.anchor, r.head]));
    return ranges.map((_, k) => ({ anchor: points[2 * k], head: points[2 * k + 1] }));
  }

  /** Report local edits and the own selection; remote transactions were the client's already. */
  onUpdate(update) {
    const local = update.transactions.filter((tr) => !tr.annotation(this.fromServer));
    if (!local.length || !this.client.ready) return;
    for (const tr of local) {
      if (!tr.docChanged) continue;
      const op = changesToOp(tr.changes, tr.startState.doc);
      try {
        if (op.length) this.client.edit(op);
      } catch (error) {
        // the editor and the client disagree on the text: the client's wins
        console.error("tandem: a local edit did not fit the document; reloading it", error);
        queueMicrotask(() => this.resync());
        return;
      }
    }
    if (update.docChanged || update.selectionSet) {
      this.client.setCursor(this.cursorsOf(update.state)[update.state.selection.mainIndex]);
    }
  }

  /** A remote op: one transaction, out of the undo history, the selection kept as transformCursor says. */
  applyRemote(op) {
    const view = this.view;
    const { cm } = this;
    const state = view.state;
    const changes = state.changes(opToChanges(op, state.doc));
    const cursors = this.cursorsOf(state).map((cursor) => transformCursor(cursor, op));
    const doc = changes.apply(state.doc);
    const units = toUtf16s(doc, cursors.flatMap((c) => [c.anchor, c.head]));
    const ranges = cursors.map((_, k) => cm.EditorSelection.range(units[2 * k], units[2 * k + 1]));
    view.dispatch({
      changes,
      selection: cm.EditorSelection.create(ranges, state.selection.mainIndex),
      effects: this.setPeers.of(this.peerList()),
      annotations: [this.fromServer.of(true), cm.Transaction.addToHistory.of(false), cm.Transaction.remote.of(true)],
    });
  }

  /** Make the editor show the client's text (after attaching late, or a failed edit). */
  resync() {
    const view = this.view;
    if (!view) return;
    const { cm } = this;
    const text = this.client.text;
    const current = view.state.doc.toString();
    view.dispatch({
      changes: current === text ? [] : { from: 0, to: current.length, insert: text },
      effects: [this.setLive.of(this.client.ready), this.setPeers.of(this.peerList())],
      annotations: [this.fromServer.of(true), cm.Transaction.addToHistory.of(false), cm.Transaction.remote.of(true)],
    });
    this.showStatus(this.client.status);
  }

  caughtUp() {
    this.view.dispatch({ effects: [this.setLive.of(true), this.setPeers.of(this.peerList())] });
    this.client.setCursor(this.cursorsOf(this.view.state)[this.view.state.selection.mainIndex]);
  }

  /** Presence arrives in bursts, and maybe while the view updates: redraw once, soon. */
  queuePeers() {
    if (this.peersQueued) return;
    this.peersQueued = true;
    queueMicrotask(() => {
      this.peersQueued = false;
      if (this.view) this.view.dispatch({ effects: this.setPeers.of(this.peerList()) });
      this.showStatus(this.client.status);
    });
  }

  peerList() {
    return [...this.client.peers].map(([client, { cursor, user }]) => ({ client, cursor, user }));
  }

  /** Carets with names and tinted selections; names are text, colours plain hex only. */
  peerDecorations(peers, doc) {
    const { Decoration } = this.cm;
    const placed = peers.filter((p) => p.cursor);
    const units = toUtf16s(doc, placed.flatMap((p) => [p.cursor.anchor, p.cursor.head]));
    const ranges = [];
    placed.forEach(({ client, user }, k) => {
      const [anchor, head] = [units[2 * k], units[2 * k + 1]];
      const color = peerColor(client, user);
      if (anchor !== head) {
        ranges.push(Decoration.mark({
          class: "cm-tandem-selection",
          attributes: { style: `background-color: ${tint(color)}` },
        }).range(Math.min(anchor, head), Math.max(anchor, head)));
      }
      const widget = new (caretWidget(this.cm))(client, peerName(client, user), color);
      ranges.push(Decoration.widget({ widget, side: -1 }).range(head));
    });
    return Decoration.set(ranges, true);
  }

  makePanel() {
    const dom = document.createElement("div");
    dom.className = "cm-tandem-status";
    dom.setAttribute("role", "status");
    this.panel = dom;
    this.showStatus(this.client.status);
    // the retry countdown moves while nothing else happens
    const timer = setInterval(() => {
      if (this.client.status.state !== "connected") this.showStatus(this.client.status);
    }, 250);
    return { dom, destroy: () => clearInterval(timer) };
  }

  showStatus(s) {
    if (!this.panel) return;
    const names = [...this.client.peers].map(([client, { user }]) => peerName(client, user));
    this.panel.textContent = statusText(s, names);
    this.panel.dataset.state = s.state;
  }
}

/** One line saying how the connection is: state, revision, edits awaiting ack, who is here. */
export function statusText(s, names = []) {
  const parts = [];
  if (s.state === "reconnecting" && s.retryInMs !== null) {
    parts.push(`reconnecting (attempt ${s.attempt}, next try in ${(s.retryInMs / 1000).toFixed(1)} s)`);
  } else if (s.state === "offline") {
    parts.push("offline: edits are kept and sent on reconnect");
  } else {
    parts.push(s.state);
  }
  parts.push(s.rev === null ? "loading" : `rev ${s.rev}`);
  parts.push(`${s.pending} ${s.pending === 1 ? "edit" : "edits"} awaiting ack`);
  const people = `${s.people} ${s.people === 1 ? "person" : "people"} here`;
  parts.push(names.length ? `${people} (you, ${names.join(", ")})` : people);
  return parts.join(" · ");
}

const CARET_CLASSES = { caretClass: "cm-tandem-caret", nameClass: "cm-tandem-name", colorVar: "--tandem-color" };

// One widget class per CodeMirror copy (WidgetType comes from `cm`).
const widgetClasses = new WeakMap();

function caretWidget(cm) {
  let Caret = widgetClasses.get(cm.WidgetType);
  if (Caret) return Caret;
  Caret = class extends cm.WidgetType {
    constructor(client, name, color) {
      super();
      this.client = client;
      this.name = name;
      this.color = color;
    }

    eq(other) {
      return other.client === this.client && other.name === this.name && other.color === this.color;
    }

    toDOM() {
      return caretElement(this.client, this.name, this.color, CARET_CLASSES);
    }

    ignoreEvent() {
      return true;
    }
  };
  widgetClasses.set(cm.WidgetType, Caret);
  return Caret;
}

function theme(cm) {
  return cm.EditorView.baseTheme({
    ".cm-tandem-caret": {
      position: "relative",
      display: "inline-block",
      width: "0",
      height: "1.2em",
      verticalAlign: "text-bottom",
      borderLeft: "2px solid var(--tandem-color)",
      marginLeft: "-1px",
      marginRight: "-1px",
    },
    ".cm-tandem-name": {
      position: "absolute",
      left: "-2px",
      bottom: "100%",
      padding: "0 0.3rem",
      borderRadius: "3px 3px 3px 0",
      background: "var(--tandem-color)",
      color: "#fff",
      font: "600 10px/14px system-ui, sans-serif",
      whiteSpace: "nowrap",
      opacity: "0.9",
      pointerEvents: "none",
      zIndex: "10",
    },
    ".cm-tandem-selection": { borderRadius: "2px" },
    ".cm-tandem-status": { padding: "0.25rem 0.6rem", fontSize: "0.85rem", fontFamily: "system-ui, sans-serif" },
    ".cm-tandem-status[data-state=connected]::before": { content: '"● "', color: "#1a7f37" },
    ".cm-tandem-status[data-state=connecting]::before, .cm-tandem-status[data-state=reconnecting]::before": {
      content: '"● "', color: "#bf8700",
    },
    ".cm-tandem-status[data-state=offline]::before": { content: '"● "', color: "#cf222e" },
  });
}
