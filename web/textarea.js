// The edge between a <textarea> (UTF-16 indices, a value that changes under the user's
// fingers) and the OT world (code points, operations).

import { apply, normalize, replaceOp, Delete, Retain } from "./operation.js";
import { transformCursor } from "./cursor.js";
import { codePointLength, toCodePoint, toUtf16 } from "./unicode.js";

const isHigh = (u) => u >= 0xd800 && u <= 0xdbff;
const isLow = (u) => u >= 0xdc00 && u <= 0xdfff;

/**
 * The op turning `before` into `after`, found by trimming their common prefix and suffix.
 * `caret` (a UTF-16 index into `after`, where the edit ended) settles the ambiguous cases:
 * typing "a" into "aa" at the start must be an insert at 0, not at 2. Never cuts a
 * surrogate pair. Returns the op in code points.
 */
export function diffToOp(before, after, caret = after.length) {
  const shorter = Math.min(before.length, after.length);
  let suffix = 0;
  const maxSuffix = Math.min(shorter, after.length - caret);
  while (suffix < maxSuffix
    && before.charCodeAt(before.length - 1 - suffix) === after.charCodeAt(after.length - 1 - suffix)) {
    suffix++;
  }
  let prefix = 0;
  while (prefix < shorter - suffix && before.charCodeAt(prefix) === after.charCodeAt(prefix)) prefix++;
  if (prefix > 0 && isHigh(before.charCodeAt(prefix - 1))) prefix--;
  if (suffix > 0 && isLow(after.charCodeAt(after.length - suffix))) suffix--;
  const removed = before.slice(prefix, before.length - suffix);
  const added = after.slice(prefix, after.length - suffix);
  return replaceOp(codePointLength(before.slice(0, prefix)), codePointLength(removed), added);
}

/** The code point position, in the text after `op`, just past its last change. */
export function changeEnd(op) {
  let pos = 0;
  let end = 0;
  for (const c of op) {
    if (c.type === "Retain") pos += c.length;
    else if (c.type === "Insert") end = pos += codePointLength(c.content);
    else end = pos;
  }
  return end;
}

/**
 * A document as a textarea shows it. A textarea turns "\r\n" and "\r" into "\n", while
 * documents written by other clients may hold them; `shown` is the document so changed,
 * and positions and ops are mapped between the two (code points both sides). A document
 * without "\r" (the usual case) maps to itself.
 */
export class Shown {
  constructor(doc) {
    this.doc = doc;
    this.text = doc.includes("\r") ? doc.replace(/\r\n?/g, "\n") : doc;
    this.widths = null; // per shown code point, the document code points it stands for
    if (this.text !== doc) {
      const points = Array.from(doc);
      this.widths = [];
      for (let i = 0; i < points.length; i++) {
        const pair = points[i] === "\r" && points[i + 1] === "\n";
        this.widths.push(pair ? 2 : 1);
        if (pair) i++;
      }
    }
  }

  toDoc(position) {
    if (!this.widths) return position;
    let doc = 0;
    for (let k = 0; k < position && k < this.widths.length; k++) doc += this.widths[k];
    return doc;
  }

  toShown(position) {
    if (!this.widths) return position;
    let k = 0;
    for (let doc = 0; k < this.widths.length && doc + this.widths[k] <= position; k++) doc += this.widths[k];
    return k;
  }

  /** An op on the shown text as an op on the document (inserted text holds no "\r"). */
  opToDoc(op) {
    if (!this.widths) return op;
    let k = 0;
    const out = [];
    for (const c of op) {
      if (c.type === "Insert") {
        out.push(c);
        continue;
      }
      let n = 0;
      for (const end = k + c.length; k < end; k++) n += this.widths[k];
      out.push(c.type === "Retain" ? Retain(n) : Delete(n));
    }
    return normalize(out);
  }
}

/**
 * Binds a textarea to an OT document. `onLocalOp(op, textBefore)` is called for every
 * local change; remote ops go in through `applyRemote`, which keeps the local selection on
 * the same characters as the cursor transform says. `text` is the document as the binding
 * last saw it; outside an event handler the textarea shows exactly `shown.text`.
 * Positions are code points of the document.
 */
export class TextareaBinding {
  constructor(textarea, { onLocalOp, onSelect }) {
    this.textarea = textarea;
    this.setText(textarea.value);
    this.onLocalOp = onLocalOp;
    this.onSelect = onSelect;
    textarea.addEventListener("input", () => this.sync());
    for (const type of ["select", "keyup", "mouseup", "focus"]) {
      textarea.addEventListener(type, () => this.onSelect(this.selection()));
    }
    document.addEventListener("selectionchange", () => {
      if (document.activeElement === textarea) this.onSelect(this.selection());
    });
  }

  setText(text) {
    this.text = text;
    this.shown = new Shown(text);
  }

  /** Turn whatever changed in the textarea since we last looked into one local op. */
  sync() {
    const value = this.textarea.value;
    if (value === this.shown.text) return;
    const before = this.text;
    const op = this.shown.opToDoc(diffToOp(this.shown.text, value, this.textarea.selectionEnd));
    this.setText(apply(before, op));
    if (op.length) this.onLocalOp(op, before);
  }

  /** The selection as {anchor, head} in document code points. */
  selection() {
    const { selectionStart: start, selectionEnd: end, selectionDirection: dir } = this.textarea;
    const [anchor, head] = dir === "backward" ? [end, start] : [start, end];
    const toDoc = (index) => this.shown.toDoc(toCodePoint(this.shown.text, index));
    return { anchor: toDoc(anchor), head: toDoc(head) };
  }

  /** A selection in document code points as UTF-16 indices of the textarea. */
  toTextarea({ anchor, head }) {
    const toIndex = (position) => toUtf16(this.shown.text, this.shown.toShown(position));
    return { anchor: toIndex(anchor), head: toIndex(head) };
  }

  setSelection(selection) {
    const { anchor: a, head: h } = this.toTextarea(selection);
    this.textarea.setSelectionRange(Math.min(a, h), Math.max(a, h), h < a ? "backward" : "forward");
  }

  /** Apply an op from elsewhere; the selection moves as the cursor transform says. */
  applyRemote(op) {
    const ta = this.textarea;
    if (ta.value !== this.shown.text) {
      // the caller flushes changes (sync) before remote ops are computed; this is a bug
      throw new Error("remote op on a textarea holding an unreported change");
    }
    const selection = transformCursor(this.selection(), op);
    const { scrollTop, scrollLeft } = ta;
    this.setText(apply(this.text, op));
    ta.value = this.shown.text;
    ta.scrollTop = scrollTop;
    ta.scrollLeft = scrollLeft;
    this.setSelection(selection);
  }

  /** Apply an own op made outside the textarea (an undo): the caret goes where it changed. */
  applyLocal(op) {
    this.sync();
    this.setText(apply(this.text, op));
    this.textarea.value = this.shown.text;
    const at = changeEnd(op);
    this.setSelection({ anchor: at, head: at });
  }
}
