// Others' cursors and selections over a textarea, in their colours with their names.
//
// A textarea cannot style parts of its text, so a mirror <div> with the same font, padding,
// size and wrapping lies on top of it (pointer-events: none, text transparent). The mirror
// holds the same text, with selections wrapped in tinted spans and zero-width caret marks,
// so the browser's own layout puts each mark exactly where the character is.
//
// A peer's name and colour come from another browser: the name only ever goes into text
// nodes, and a colour reaches a style only when it is a plain #rgb or #rrggbb (else one is
// derived from the client id), so no peer can make this page load a URL or inject markup.

const COPIED_STYLES = [
  "fontFamily", "fontSize", "fontWeight", "fontStyle", "lineHeight", "letterSpacing", "wordSpacing",
  "tabSize", "textIndent", "paddingTop", "paddingRight", "paddingBottom", "paddingLeft",
  "borderTopWidth", "borderRightWidth", "borderBottomWidth", "borderLeftWidth", "textTransform",
];

export class PresenceOverlay {
  constructor(textarea) {
    this.textarea = textarea;
    this.layer = document.createElement("div");
    this.layer.className = "presence-layer";
    this.layer.setAttribute("aria-hidden", "true");
    textarea.parentElement.insertBefore(this.layer, textarea.nextSibling);
    this.text = "";
    this.peers = [];
    textarea.addEventListener("scroll", () => this.syncScroll());
    new ResizeObserver(() => this.render()).observe(textarea);
  }

  /** Draw `peers` ([{client, user, anchor, head}], UTF-16 indices) over the textarea's `text`. */
  update(text, peers) {
    this.text = text;
    this.peers = peers;
    this.render();
  }

  render() {
    if (this.peers.length === 0) {
      this.layer.replaceChildren();
      return;
    }
    const ta = this.textarea;
    const style = getComputedStyle(ta);
    const layer = this.layer;
    for (const name of COPIED_STYLES) layer.style[name] = style[name];
    layer.style.borderColor = "transparent";
    layer.style.borderStyle = "solid";
    layer.style.top = `${ta.offsetTop}px`;
    layer.style.left = `${ta.offsetLeft}px`;
    layer.style.width = `${ta.offsetWidth}px`;
    layer.style.height = `${ta.offsetHeight}px`;
    // the textarea's scrollbar narrows its text; the mirror must wrap at the same width
    layer.style.paddingRight = `${parseFloat(style.paddingRight) + ta.offsetWidth - ta.clientWidth
      - parseFloat(style.borderLeftWidth) - parseFloat(style.borderRightWidth)}px`;
    layer.replaceChildren(...this.content());
    this.syncScroll();
  }

  syncScroll() {
    this.layer.scrollTop = this.textarea.scrollTop;
    this.layer.scrollLeft = this.textarea.scrollLeft;
  }

  /** Text nodes, tinted selection spans and caret marks, in document order. */
  content() {
    const text = this.text;
    const marks = []; // {at (UTF-16), kind: "caret"|"start"|"end", peer}
    for (const { client, user, anchor, head } of this.peers) {
      const peer = { client, name: peerName(client, user), color: peerColor(client, user) };
      if (anchor !== head) {
        marks.push({ at: Math.min(anchor, head), kind: "start", peer });
        marks.push({ at: Math.max(anchor, head), kind: "end", peer });
      }
      marks.push({ at: head, kind: "caret", peer });
    }
    const order = { end: 0, start: 1, caret: 2 };
    marks.sort((a, b) => a.at - b.at || order[a.kind] - order[b.kind]);
    const nodes = [];
    const open = []; // peers whose selection covers the current stretch
    let pos = 0;
    const flush = (to) => {
      if (to <= pos) return;
      const piece = document.createTextNode(text.slice(pos, to));
      if (open.length) {
        const span = document.createElement("span");
        span.className = "peer-selection";
        span.style.backgroundColor = tint(open[open.length - 1].color);
        span.append(piece);
        nodes.push(span);
      } else {
        nodes.push(piece);
      }
      pos = to;
    };
    for (const mark of marks) {
      flush(mark.at);
      if (mark.kind === "start") open.push(mark.peer);
      else if (mark.kind === "end") open.splice(open.indexOf(mark.peer), 1);
      else nodes.push(caret(mark.peer));
    }
    flush(text.length);
    // a trailing newline needs something after it to take up its line
    nodes.push(document.createTextNode("\u200b"));
    return nodes;
  }
}

function caret(peer) {
  return caretElement(peer.client, peer.name, peer.color);
}

/**
 * Another client's caret with its name: the name only as text, the colour (from `peerColor`)
 * only through a custom property, so nothing a peer sends becomes markup or a stylesheet.
 */
export function caretElement(client, name, color,
  { caretClass = "peer-caret", nameClass = "peer-name", colorVar = "--peer-color" } = {}) {
  const mark = document.createElement("span");
  mark.className = caretClass;
  mark.dataset.client = client;
  mark.style.setProperty(colorVar, color);
  const label = document.createElement("span");
  label.className = nameClass;
  label.textContent = name;
  mark.append(label);
  return mark;
}

// The only colours a peer may choose; JavaScript's `$` (no m flag) ends the string, newline or not.
const HEX_COLOR = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;
const FALLBACK_COLORS = ["#1e88e5", "#d81b60", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#e53935",
  "#6d4c41", "#3949ab", "#c0ca33"];

/** The peer's colour when it is a plain hex colour, else one derived from its client id. */
export function peerColor(client, user) {
  const color = user && user.color;
  if (typeof color === "string" && HEX_COLOR.test(color)) return color;
  let h = 0;
  for (const ch of String(client)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return FALLBACK_COLORS[h % FALLBACK_COLORS.length];
}

/** The peer's name (shown as text only), else its client id. */
export function peerName(client, user) {
  const name = user && user.name;
  return typeof name === "string" && name ? [...name].slice(0, 64).join("") : String(client);
}

/** A translucent version of a #rgb or #rrggbb colour, for selection backgrounds. */
function tint(color) {
  let hex = HEX_COLOR.test(color) ? color.slice(1) : "808080";
  if (hex.length === 3) hex = [...hex].map((c) => c + c).join("");
  const n = parseInt(hex, 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, 0.28)`;
}
