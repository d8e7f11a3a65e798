// The second demo page: CodeMirror 6 (the vendored bundle) bound to a TandemClient by
// codemirror.js. Every URL is relative to this module, so the page also works when Tandem
// is mounted under a prefix: /web/cm.html?doc=name.

import { documentName, root } from "./address.js";
import { loadUser, saveUser } from "./identity.js";
import { tandemCollab } from "./codemirror.js";
import { TandemClient } from "./tandem.js";
import * as cm from "./vendor/codemirror.js";

const $ = (id) => document.getElementById(id);
const doc = documentName();
document.title = `${doc} · Tandem · CodeMirror`;
$("doc").textContent = doc;
$("textarea-link").href = new URL(`./?doc=${encodeURIComponent(doc)}`, root).href;
let user = loadUser();
$("name").value = user.name;
$("swatch").style.background = user.color;

const socketUrl = new URL(`ws/${encodeURIComponent(doc)}`, root);
socketUrl.protocol = socketUrl.protocol === "https:" ? "wss:" : "ws:";

const client = new TandemClient({
  url: socketUrl.href,
  user,
  token: new URL(location.href).searchParams.get("token"),
  on: {
    lost(ops, reason) {
      say(`${ops.length === 1 ? "An edit" : "Some edits"} could not be saved (${reason}).`);
    },
    error(e) {
      if (e.type === "Diverged") say(`Reloading the document: ${e.detail}`);
      else if (e.type === "Closed") say(`The server closed the connection (${e.code}): ${e.reason}`);
      else if (e.type === "ServerError" && !e.retryable) say(`The server refused: ${e.message}`);
    },
  },
});

const view = new cm.EditorView({
  parent: $("cm-editor"),
  extensions: [
    cm.lineNumbers(),
    cm.highlightSpecialChars(),
    cm.history(),
    cm.drawSelection(),
    cm.highlightActiveLine(),
    cm.EditorView.lineWrapping,
    cm.keymap.of([...cm.defaultKeymap, ...cm.historyKeymap]),
    cm.placeholder("Type here. Open this address in another tab to edit together."),
    tandemCollab(cm, client),
    cm.EditorView.theme({
      "&": { flex: "1", minHeight: "60vh", background: "#fff", border: "1px solid #d0d7de", borderRadius: "6px" },
      "&.cm-focused": { outline: "none", borderColor: "#0969da", boxShadow: "0 0 0 3px rgba(9, 105, 218, 0.15)" },
      ".cm-scroller": { fontFamily: 'ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, monospace', fontSize: "15px", lineHeight: "1.5" },
      ".cm-content": { paddingTop: "1.1em" }, // room for a name label on the first line
    }),
  ],
});

$("name").addEventListener("change", () => {
  user = saveUser({ ...user, name: $("name").value });
  $("name").value = user.name;
  client.setUser(user);
});

addEventListener("beforeunload", (event) => {
  if (client.pending > 0) {
    event.preventDefault();
    event.returnValue = ""; // the browser asks "leave site?"
  }
});

function say(message) {
  $("notice").textContent = message;
  $("notice").hidden = false;
}

// For tests and the curious: the live state, without waiting on timers.
window.tandem = {
  client,
  view,
  cm,
  doc,
  get text() { return client.text; },
  get editorText() { return view.state.doc.toString(); },
  get rev() { return client.rev; },
  get pending() { return client.pending; },
  get state() { return client.status.state; },
  get synced() { return client.status.state === "connected" && client.pending === 0; },
  get peers() { return Object.fromEntries(client.peers); },
};

client.start();
