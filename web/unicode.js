// Code points versus UTF-16 units.
//
// The protocol counts code points ("a😀b" has length 3); JavaScript strings index UTF-16
// units ("a😀b".length is 4). Everything crossing the wire or reaching operation.js is in
// code points; editors speak UTF-16. These helpers convert at that edge.

const isHigh = (u) => u >= 0xd800 && u <= 0xdbff;
const isLow = (u) => u >= 0xdc00 && u <= 0xdfff;

/** The number of code points in `s`. */
export function codePointLength(s) {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    if (isHigh(s.charCodeAt(i)) && isLow(s.charCodeAt(i + 1))) {
      n--;
      i++;
    }
  }
  return n;
}

/**
 * The UTF-16 index reached by walking `n` code points from UTF-16 index `from`,
 * or -1 when the string ends first.
 */
export function advance(s, from, n) {
  let i = from;
  const end = s.length;
  while (n > 0) {
    if (i >= end) return -1;
    i += isHigh(s.charCodeAt(i)) && i + 1 < end && isLow(s.charCodeAt(i + 1)) ? 2 : 1;
    n--;
  }
  return i;
}

/** The UTF-16 index of code point position `cp` (clamped to the end of `s`). */
export function toUtf16(s, cp) {
  const i = advance(s, 0, cp);
  return i < 0 ? s.length : i;
}

/**
 * The code point position of UTF-16 index `index`. An index between the two halves of a
 * surrogate pair (an editor should never report one) counts as the position after the pair.
 */
export function toCodePoint(s, index) {
  return codePointLength(s.slice(0, index));
}

/** The first `n` code points of `s` and the rest. */
export function splitAt(s, n) {
  const i = advance(s, 0, n);
  return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i)];
}

/** Whether `s` holds a surrogate that is not half of a pair (not valid text). */
export function hasLoneSurrogate(s) {
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i);
    if (isHigh(u)) {
      if (i + 1 < s.length && isLow(s.charCodeAt(i + 1))) i++;
      else return true;
    } else if (isLow(u)) {
      return true;
    }
  }
  return false;
}
