// The editor page: a textarea bound to a TandemClient, with others' cursors, a status
// line, undo of one's own edits and a warning before leaving with unsent edits.

import { documentName, root } from "./address.js";
import { HistoryPanel } from "./history.js";
import { loadUser, saveUser } from "./identity.js";
import { replacement } from "./operation.js";
import { PresenceOverlay } from "./presence.js";
import { CLOSE_REVOKED, TandemClient } from "./tandem.js";
import { TextareaBinding } from "./textarea.js";
import { UndoManager } from "./undo.js";

const $ = (id) => document.getElementById(id);
const textarea = $("editor");
const statusLine = $("status");
const notice = $("notice");
const nameInput = $("name");
const swatch = $("swatch");

const doc = documentName();
document.title = `${doc} · Tandem`;
$("doc").textContent = doc;
let user = loadUser();
nameInput.value = user.name;
swatch.style.background = user.color;

const params = new URL(location.href).searchParams;
// Every URL of the page is relative to Tandem's root (address.js), so it works under a prefix.
const socketUrl = new URL(`ws/${encodeURIComponent(doc)}`, root);
socketUrl.protocol = socketUrl.protocol === "https:" ? "wss:" : "ws:";
const undo = new UndoManager();
const overlay = new PresenceOverlay(textarea);
const redraw = () => overlay.update(
  binding.shown.text,
  [...client.peers].map(([id, { cursor, user }]) => ({ client: id, user, ...binding.toTextarea(cursor) })),
);

const client = new TandemClient({
  url: socketUrl.href,
  user,
  token: params.get("token"),
  on: {
    flush: () => binding.sync(),
    change(op) {
      binding.applyRemote(op);
      undo.transform(op);
      redraw();
    },
    caughtUp() {
      historyPanel.headMoved();
      textarea.readOnly = false;
      textarea.placeholder = "Type here. Open this address in another tab to edit together.";
      client.setCursor(binding.selection());
    },
    presence: () => redraw(),
    status(status) {
      showStatus(status);
      historyPanel.headMoved();
    },
    lost(ops, reason) {
      say(`${ops.length === 1 ? "An edit" : "Some edits"} could not be saved (${reason}).`);
    },
    error(e) {
      if (e.type === "Diverged") say(`Reloading the document: ${e.detail}`);
      else if (e.type === "Closed" && e.code === CLOSE_REVOKED) say("Your access to this document was revoked.");
      else if (e.type === "Closed") say(`The server closed the connection (${e.code}): ${e.reason}`);
      else if (!e.retryable) say(`The server refused: ${e.message}`);
    },
  },
});

const binding = new TextareaBinding(textarea, {
  onLocalOp(op, before) {
    undo.recordEdit(op, before);
    client.edit(op);
    redraw();
  },
  onSelect: (selection) => {
    if (client.ready) client.setCursor(selection);
  },
});

function applyOwn(op) {
  binding.applyLocal(op);
  client.edit(op);
  client.setCursor(binding.selection());
  redraw();
}

/** Make the text `text` again with one own edit (a new revision; undo takes it back). */
function restoreText(text) {
  binding.sync();
  const op = replacement(binding.text, text);
  if (!op.length) return;
  undo.recordEdit(op, binding.text);
  applyOwn(op);
}

const historyPanel = new HistoryPanel({
  root,
  doc,
  token: params.get("token"),
  client,
  restore: restoreText,
  els: {
    panel: $("history"),
    toggle: $("history-toggle"),
    slider: $("history-slider"),
    label: $("history-label"),
    meta: $("history-meta"),
    view: $("history-view"),
    prev: $("history-prev"),
    next: $("history-next"),
    restore: $("history-restore"),
    error: $("history-error"),
  },
});

function undoOrRedo(redo) {
  binding.sync(); // a change the input event has not reported yet goes first
  const op = redo ? undo.redo(binding.text) : undo.undo(binding.text);
  if (op) applyOwn(op);
}

textarea.addEventListener("keydown", (event) => {
  if (!(event.ctrlKey || event.metaKey) || event.altKey) return;
  const key = event.key.toLowerCase();
  if (key === "z" || (key === "y" && !event.shiftKey)) {
    event.preventDefault();
    undoOrRedo(key === "y" || event.shiftKey);
  }
});
// Undo from a menu or a gesture: the browser's own history knows nothing of the others.
textarea.addEventListener("beforeinput", (event) => {
  if (event.inputType === "historyUndo" || event.inputType === "historyRedo") {
    event.preventDefault();
    undoOrRedo(event.inputType === "historyRedo");
  }
});

// An input method composing text must not see the textarea replaced under it: remote ops
// wait until the composition ends (its own input events come first).
textarea.addEventListener("compositionstart", () => client.hold());
textarea.addEventListener("compositionend", () => setTimeout(() => client.release(), 0));

nameInput.addEventListener("change", () => {
  user = saveUser({ ...user, name: nameInput.value });
  nameInput.value = user.name;
  client.setUser(user);
});

addEventListener("beforeunload", (event) => {
  if (client.pending > 0) {
    event.preventDefault();
    event.returnValue = ""; // the browser shows its own "leave site?" question
  }
});

function say(message) {
  notice.textContent = message;
  notice.hidden = false;
}

function showStatus(s) {
  const parts = [];
  if (s.state === "connected") parts.push("connected");
  else if (s.state === "reconnecting" && s.retryInMs !== null) {
    parts.push(`reconnecting (attempt ${s.attempt}, next try in ${(s.retryInMs / 1000).toFixed(1)} s)`);
  } else if (s.state === "offline") parts.push("offline: edits are kept and sent on reconnect");
  else parts.push(s.state);
  parts.push(s.rev === null ? "loading" : `rev ${s.rev}`);
  parts.push(`${s.pending} ${s.pending === 1 ? "edit" : "edits"} awaiting ack`);
  parts.push(`${s.people} ${s.people === 1 ? "person" : "people"} here`);
  statusLine.textContent = parts.join(" · ");
  statusLine.dataset.state = s.state;
}

// The retry countdown moves while nothing else happens.
setInterval(() => {
  if (client.status.state !== "connected") showStatus(client.status);
}, 250);

// For tests and the curious: the live state, without waiting on timers.
window.tandem = {
  client,
  binding,
  undo,
  history: historyPanel,
  doc,
  get text() { return client.text; },
  get rev() { return client.rev; },
  get pending() { return client.pending; },
  get state() { return client.status.state; },
  get synced() { return client.status.state === "connected" && client.pending === 0; },
  get peers() { return Object.fromEntries(client.peers); },
};

textarea.readOnly = true;
client.start();
