// Text operations over Unicode code points, and their algebra: the JavaScript twin of
// ot/operation.py and ot/algebra.py. Shared test vectors (tests/vectors/) keep them in step.
//
// An operation is an array of components that walks a document from its start:
//   {type: "Retain", length: n}   keep the next n code points
//   {type: "Insert", content: s}  insert s here
//   {type: "Delete", length: n}   remove the next n code points
// exactly as they travel on the wire. Whatever the components do not reach is kept, so the
// canonical form never ends with a Retain. Components are frozen; so are built operations.

import { advance, codePointLength, hasLoneSurrogate, splitAt } from "./unicode.js";

// Lengths beyond JavaScript's safe integers could not round-trip through JSON here.
export const MAX_LENGTH = Number.MAX_SAFE_INTEGER;

export class InvalidOperation extends Error {
  constructor(message) {
    super(message);
    this.name = "InvalidOperation";
  }
}

export const Retain = (length) => Object.freeze({ type: "Retain", length });
export const Insert = (content) => Object.freeze({ type: "Insert", content });
export const Delete = (length) => Object.freeze({ type: "Delete", length });

export const IDENTITY = Object.freeze([]);

/**
 * Appends components while keeping the canonical form: neighbours of one kind merge, and
 * an insert that follows a delete moves in front of it (delete-then-insert at one position
 * equals insert-then-delete), so two operations with the same effect are built equal.
 */
class Builder {
  constructor() {
    this.parts = [];
  }

  retain(n) {
    if (n <= 0) return;
    const parts = this.parts;
    const last = parts[parts.length - 1];
    if (last && last.type === "Retain") parts[parts.length - 1] = Retain(last.length + n);
    else parts.push(Retain(n));
  }

  insert(s) {
    if (!s) return;
    const parts = this.parts;
    const k = parts.length;
    const last = parts[k - 1];
    if (!last) {
      parts.push(Insert(s));
    } else if (last.type === "Insert") {
      parts[k - 1] = Insert(last.content + s);
    } else if (last.type === "Delete") {
      if (k >= 2 && parts[k - 2].type === "Insert") parts[k - 2] = Insert(parts[k - 2].content + s);
      else parts.splice(k - 1, 0, Insert(s));
    } else {
      parts.push(Insert(s));
    }
  }

  delete(n) {
    if (n <= 0) return;
    const parts = this.parts;
    const last = parts[parts.length - 1];
    if (last && last.type === "Delete") parts[parts.length - 1] = Delete(last.length + n);
    else parts.push(Delete(n));
  }

  append(c) {
    if (c.type === "Retain") this.retain(c.length);
    else if (c.type === "Insert") this.insert(c.content);
    else this.delete(c.length);
  }

  extend(components, start) {
    for (let i = start; i < components.length; i++) this.append(components[i]);
  }

  build() {
    const parts = this.parts;
    if (parts.length && parts[parts.length - 1].type === "Retain") parts.pop();
    return Object.freeze(parts);
  }
}

/** The canonical form: neighbours merged, empty parts dropped, no trailing retain. Idempotent. */
export function normalize(components) {
  const b = new Builder();
  for (const c of components) b.append(c);
  return b.build();
}

const isLength = (n) => Number.isSafeInteger(n) && n >= 1;

/**
 * Throw InvalidOperation naming the first problem of a component list: a malformed
 * component, a lone surrogate in inserted text, or (given docLength) retains and deletes
 * that reach past the document's end.
 */
export function check(components, docLength = null) {
  if (!Array.isArray(components)) throw new InvalidOperation("an op must be an array of components");
  let spanned = 0;
  components.forEach((c, index) => {
    const type = c && c.type;
    if (type === "Insert") {
      if (typeof c.content !== "string" || !c.content) {
        throw new InvalidOperation(`component ${index}: Insert content must be a non-empty string`);
      }
      if (hasLoneSurrogate(c.content)) {
        throw new InvalidOperation(`component ${index}: Insert content holds a lone surrogate`);
      }
    } else if (type === "Retain" || type === "Delete") {
      if (!isLength(c.length)) {
        throw new InvalidOperation(
          `component ${index}: ${type} length must be a positive integer, got ${JSON.stringify(c.length)}`,
        );
      }
      spanned += c.length;
    } else {
      throw new InvalidOperation(
        `component ${index}: expected Retain, Insert or Delete, got ${JSON.stringify(c)}`,
      );
    }
  });
  if (docLength !== null && spanned > docLength) {
    throw new InvalidOperation(`op spans ${spanned} code points but the document has ${docLength}`);
  }
}

/** How many code points of its base document an op walks over (retains + deletes). */
export function span(op) {
  let n = 0;
  for (const c of op) if (c.type !== "Insert") n += c.length;
  return n;
}

/** How much an op changes the document's length, in code points. */
export function lengthDelta(op) {
  let delta = 0;
  for (const c of op) {
    if (c.type === "Insert") delta += codePointLength(c.content);
    else if (c.type === "Delete") delta -= c.length;
  }
  return delta;
}

/** The text after `op`; throws InvalidOperation when `op` does not fit `text`. */
export function apply(text, op) {
  const pieces = [];
  let pos = 0; // a UTF-16 index into text
  for (const c of op) {
    if (c.type === "Insert") {
      pieces.push(c.content);
      continue;
    }
    const next = advance(text, pos, c.length);
    if (next < 0) {
      throw new InvalidOperation(
        `op spans ${span(op)} code points but the document has ${codePointLength(text)}`,
      );
    }
    if (c.type === "Retain") pieces.push(text.slice(pos, next));
    pos = next;
  }
  pieces.push(text.slice(pos));
  return pieces.join("");
}

/** The op that undoes `op` on the text it was applied to: apply(apply(s, a), invert(a, s)) == s. */
export function invert(op, text) {
  check(op, codePointLength(text));
  const b = new Builder();
  let pos = 0; // a UTF-16 index into text
  for (const c of op) {
    if (c.type === "Retain") {
      b.retain(c.length);
      pos = advance(text, pos, c.length);
    } else if (c.type === "Insert") {
      b.delete(codePointLength(c.content));
    } else {
      const next = advance(text, pos, c.length);
      b.insert(text.slice(pos, next));
      pos = next;
    }
  }
  return b.build();
}

// compose and transform walk both ops at once, each keeping its current, possibly partly
// consumed, component as a kind and a value: a length for retains and deletes, the
// remaining text for inserts. Past its last component an op retains the rest of the
// document, which is how implied trailing retains are honoured.
const END = "End";

class Walker {
  constructor(op) {
    this.op = op;
    this.i = 0;
    this.load();
  }

  load() {
    const c = this.op[this.i];
    if (c === undefined) {
      this.kind = END;
      this.value = 0;
    } else {
      this.kind = c.type;
      this.value = c.type === "Insert" ? c.content : c.length;
    }
  }

  next() {
    this.i++;
    this.load();
  }

  // What is left of the current component, then the components after it.
  drainInto(builder) {
    if (this.kind === END) return;
    builder.append(this.kind === "Insert" ? Insert(this.value) : { type: this.kind, length: this.value });
    builder.extend(this.op, this.i + 1);
  }
}

/**
 * One op with the effect of `a` followed by `b`:
 * apply(apply(s, a), b) == apply(s, compose(a, b)); compose is associative.
 */
export function compose(a, b) {
  const out = new Builder();
  const ca = new Walker(a);
  const cb = new Walker(b);
  for (;;) {
    if (ca.kind === "Delete") {
      out.delete(ca.value);
      ca.next();
      continue;
    }
    if (cb.kind === "Insert") {
      out.insert(cb.value);
      cb.next();
      continue;
    }
    if (ca.kind === END) {
      cb.drainInto(out); // a retains the rest: what is left of b passes through unchanged
      break;
    }
    if (cb.kind === END) {
      ca.drainInto(out); // b retains the rest: what is left of a passes through unchanged
      break;
    }
    // ca is Retain or Insert; cb is Retain or Delete
    const lb = cb.value;
    let n;
    if (ca.kind === "Insert") {
      const la = codePointLength(ca.value);
      n = Math.min(la, lb);
      const [head, tail] = splitAt(ca.value, n);
      if (cb.kind === "Retain") out.insert(head);
      // Insert then Delete: the inserted text is removed again; nothing to emit
      if (n === la) ca.next();
      else ca.value = tail;
    } else {
      const la = ca.value;
      n = Math.min(la, lb);
      if (cb.kind === "Retain") out.retain(n);
      else out.delete(n);
      if (n === la) ca.next();
      else ca.value = la - n;
    }
    if (n === lb) cb.next();
    else cb.value = lb - n;
  }
  return out.build();
}

/**
 * Transform two concurrent ops made on the same document. Returns [aPrime, bPrime] with
 * apply(apply(s, a), bPrime) == apply(apply(s, b), aPrime).
 *
 * Tie rule: where both insert at one position, a's text goes to the left. Call it with
 * `a` as the op committed later: the client's own pending op against an incoming one.
 */
export function transform(a, b) {
  const aOut = new Builder();
  const bOut = new Builder();
  const ca = new Walker(a);
  const cb = new Walker(b);
  for (;;) {
    if (ca.kind === "Insert") {
      aOut.insert(ca.value);
      bOut.retain(codePointLength(ca.value));
      ca.next();
      continue;
    }
    if (cb.kind === "Insert") {
      aOut.retain(codePointLength(cb.value));
      bOut.insert(cb.value);
      cb.next();
      continue;
    }
    if (ca.kind === END) {
      cb.drainInto(bOut); // a keeps the rest, so b's remaining components apply as they are
      break;
    }
    if (cb.kind === END) {
      ca.drainInto(aOut);
      break;
    }
    const la = ca.value;
    const lb = cb.value;
    const n = Math.min(la, lb);
    if (ca.kind === "Retain") {
      if (cb.kind === "Retain") {
        aOut.retain(n);
        bOut.retain(n);
      } else {
        bOut.delete(n);
      }
    } else if (cb.kind === "Retain") {
      aOut.delete(n);
    }
    // Delete against Delete: both removed the same text; neither side emits anything
    if (n === la) ca.next();
    else ca.value = la - n;
    if (n === lb) cb.next();
    else cb.value = lb - n;
  }
  return [aOut.build(), bOut.build()];
}

/** Transform `op` through ops committed after its base, in revision order (it wins ties). */
export function rebase(op, committed) {
  let current = op;
  for (const other of committed) current = transform(current, other)[0];
  return current;
}

/** An op inserting `content` at code point `position`. */
export function insertOp(position, content) {
  const b = new Builder();
  b.retain(position);
  b.insert(content);
  return b.build();
}

/** An op deleting `length` code points from `position`. */
export function deleteOp(position, length) {
  const b = new Builder();
  b.retain(position);
  b.delete(length);
  return b.build();
}

/** An op replacing the `length` code points from `position` with `content`. */
export function replaceOp(position, length, content) {
  const b = new Builder();
  b.retain(position);
  b.insert(content);
  b.delete(length);
  return b.build();
}

/** An op turning `old` into `fresh` that keeps their common prefix and suffix (code points). */
export function replacement(old, fresh) {
  if (old === fresh) return IDENTITY;
  const a = Array.from(old);
  const b = Array.from(fresh);
  const limit = Math.min(a.length, b.length);
  let p = 0;
  while (p < limit && a[p] === b[p]) p++;
  let s = 0;
  while (s < limit - p && a[a.length - 1 - s] === b[b.length - 1 - s]) s++;
  return replaceOp(p, a.length - p - s, b.slice(p, b.length - s).join(""));
}

/** Whether an op changes nothing. */
export const isNoop = (op) => op.length === 0;
