// Undo and redo of one's own edits only, as ot.js's UndoManager does it.
//
// Each own edit pushes its inverse. Every edit of someone else transforms the stacks, so an
// inverse always applies to the current document and touches only what its owner did:
//
//   undo stack (bottom .. top):  u1  u2  u3      incoming remote op r
//   u3' = transform(u3, r)[0]; r' = transform(u3, r)[1]; u2' = transform(u2, r')[0]; ...
//
// The top inverse is relative to the current document, the one below it to the document
// before the top edit, and so on; that is why the walk goes from the top down.

import { compose, invert, transform } from "./operation.js";

// Own edits of one kind in quick succession are undone together, as a word typed is.
const GROUP_MS = 1000;

const kindOf = (op) => {
  const inserts = op.some((c) => c.type === "Insert");
  const deletes = op.some((c) => c.type === "Delete");
  return inserts && deletes ? "replace" : inserts ? "insert" : "delete";
};

function transformStack(stack, op) {
  const out = [];
  for (let i = stack.length - 1; i >= 0; i--) {
    const [inverse, rest] = transform(stack[i], op);
    if (inverse.length) out.push(inverse);
    op = rest;
  }
  return out.reverse();
}

export class UndoManager {
  constructor({ now = () => Date.now() } = {}) {
    this.undoStack = [];
    this.redoStack = [];
    this.now = now;
    this.last = null; // {kind, at} of the edit on top of the undo stack, for grouping
  }

  /** An own edit `op` was applied to `textBefore`. */
  recordEdit(op, textBefore) {
    const inverse = invert(op, textBefore);
    const kind = kindOf(op);
    const at = this.now();
    const top = this.undoStack.length - 1;
    if (top >= 0 && this.last && this.last.kind === kind && kind !== "replace" && at - this.last.at < GROUP_MS) {
      this.undoStack[top] = compose(inverse, this.undoStack[top]);
    } else {
      this.undoStack.push(inverse);
    }
    this.last = { kind, at };
    this.redoStack = [];
  }

  /** Someone else's edit was applied: keep both stacks relative to the current document. */
  transform(op) {
    this.undoStack = transformStack(this.undoStack, op);
    this.redoStack = transformStack(this.redoStack, op);
  }

  get canUndo() {
    return this.undoStack.length > 0;
  }

  get canRedo() {
    return this.redoStack.length > 0;
  }

  /** The op undoing the latest own edit on `text`, or null; the caller applies it as an own edit. */
  undo(text) {
    const op = this.undoStack.pop();
    if (!op) return null;
    this.redoStack.push(invert(op, text));
    this.last = null;
    return op;
  }

  /** The op redoing the latest undone edit on `text`, or null. */
  redo(text) {
    const op = this.redoStack.pop();
    if (!op) return null;
    this.undoStack.push(invert(op, text));
    this.last = null;
    return op;
  }
}
