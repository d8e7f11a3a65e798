// The edge between a <textarea> (UTF-16 indices, a value that changes under the user's
// fingers) and the OT world (code points, operations).

import { apply, normalize, Delete, Insert, Retain } from "./operation.js";
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
  return normalize([
    Retain(codePointLength(before.slice(0, prefix))),
    Delete(codePointLength(removed)),
    Insert(added),
  ]);
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
 * Binds a textarea to an OT document. `onLocalOp(op, textBefore)` is called for every
 * local change; remote ops go in through `applyRemote`, which keeps the local selection on
 * the same characters as the cursor transform says. `text` is the document as the binding
 * last saw it, always equal to the textarea's value outside an event handler.
 */
export class TextareaBinding {
  constructor(textarea, { onLocalOp, onSelect }) {
    this.textarea = textarea;
    this.text = textarea.value;
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

  /** Turn whatever changed in the textarea since we last looked into one local op. */
  sync() {
    const value = this.textarea.value;
    if (value === this.text) return;
    const before = this.text;
    const op = diffToOp(before, value, this.textarea.selectionEnd);
    this.text = value;
    if (op.length) this.onLocalOp(op, before);
  }

  /** The selection as {anchor, head} in code points. */
  selection() {
    const { selectionStart: start, selectionEnd: end, selectionDirection: dir } = this.textarea;
    const [anchor, head] = dir === "backward" ? [end, start] : [start, end];
    return { anchor: toCodePoint(this.text, anchor), head: toCodePoint(this.text, head) };
  }

  setSelection({ anchor, head }) {
    const a = toUtf16(this.text, anchor);
    const h = toUtf16(this.text, head);
    this.textarea.setSelectionRange(Math.min(a, h), Math.max(a, h), h < a ? "backward" : "forward");
  }

  /** Apply an op from elsewhere; `own` moves the caret along with inserts at it (undo). */
  applyRemote(op, own = false) {
    const ta = this.textarea;
    if (ta.value !== this.text) {
      // the caller flushes changes (sync) before remote ops are computed; this is a bug
      throw new Error("remote op on a textarea holding an unreported change");
    }
    const selection = transformCursor(this.selection(), op, own);
    const { scrollTop, scrollLeft } = ta;
    this.text = apply(this.text, op);
    ta.value = this.text;
    ta.scrollTop = scrollTop;
    ta.scrollLeft = scrollLeft;
    this.setSelection(selection);
    return selection;
  }

  /** Apply an own op made outside the textarea (an undo): the caret goes where it changed. */
  applyLocal(op) {
    this.sync();
    const before = this.text;
    this.text = apply(before, op);
    this.textarea.value = this.text;
    const at = changeEnd(op);
    this.setSelection({ anchor: at, head: at });
    return before;
  }
}
