// The browser client's public API in one ES module, for a bundler or an import map:
//
//   import { TandemClient, tandemCollab } from "tandem-client";   // web/package.json
//   import { TandemClient } from "/web/index.js";                  // straight from a Tandem server
//
// Importing it does nothing by itself (no DOM, no network), so a bundler may drop what is
// not used. CodeMirror is not in it: tandemCollab takes CodeMirror's modules as an argument,
// your own or web/vendor/codemirror.js (docs/web-client.md).

// connect: the state machine on a WebSocket, with reconnection
export { CLOSE_REVOKED, CLOSE_TOKEN_EXPIRED, randomId, TandemClient } from "./tandem.js";
// operations in code points, and their algebra
export {
  apply, compose, Delete, deleteOp, IDENTITY, Insert, insertOp, InvalidOperation, invert, normalize, replaceOp,
  replacement, Retain, transform,
} from "./operation.js";
export { transformCursor, transformIndex } from "./cursor.js";
export { codePointLength, toCodePoint, toUtf16 } from "./unicode.js";
// undo of one's own edits, for editors without a history of their own
export { UndoManager } from "./undo.js";
// presence: who is here and where, drawn safely
export { caretElement, peerColor, peerName, PresenceOverlay } from "./presence.js";
export { loadUser, saveUser } from "./identity.js";
// editor bindings
export { changeEnd, diffToOp, TextareaBinding } from "./textarea.js";
export { CodeMirrorBinding, changesToOp, opToChanges, statusText, tandemCollab } from "./codemirror.js";
