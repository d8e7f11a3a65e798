// Cursor and selection transform: where a position goes when an op is applied.
// The JavaScript twin of ot/cursor.py; positions are code points.

import { codePointLength } from "./unicode.js";

/**
 * Where code point position `index` lands after `op`.
 *
 * A position inside deleted text collapses to the deletion point. An insert exactly at the
 * position pushes it right only when the op is the owner's own (`own`): the owner's caret
 * follows what it typed, while another user's insert at one's caret appears after it.
 */
export function transformIndex(index, op, own = false) {
  let walked = 0; // code points of the original document the op has passed over
  let result = index;
  for (const c of op) {
    if (walked > index || (walked === index && !own)) break;
    if (c.type === "Retain") {
      walked += c.length;
    } else if (c.type === "Insert") {
      result += codePointLength(c.content);
    } else {
      result -= Math.min(c.length, index - walked);
      walked += c.length;
    }
  }
  return result;
}

/** Transform both ends of a selection {anchor, head} through `op` (see transformIndex). */
export function transformCursor(cursor, op, own = false) {
  const anchor = transformIndex(cursor.anchor, op, own);
  const head = cursor.head === cursor.anchor ? anchor : transformIndex(cursor.head, op, own);
  return { anchor, head };
}
