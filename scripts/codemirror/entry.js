// What web/vendor/codemirror.js exports: the parts of CodeMirror 6 that web/codemirror.js
// and the demo page use, plus the usual editing extensions. Named, so the bundle stays small.
export {
  Annotation, ChangeSet, Compartment, EditorSelection, EditorState, Facet, Prec, RangeSetBuilder,
  StateEffect, StateField, Text, Transaction,
} from "@codemirror/state";
export {
  Decoration, EditorView, ViewPlugin, ViewUpdate, WidgetType, crosshairCursor, drawSelection, dropCursor,
  highlightActiveLine, highlightActiveLineGutter, highlightSpecialChars, keymap, lineNumbers, placeholder,
  rectangularSelection, showPanel,
} from "@codemirror/view";
export {
  defaultKeymap, history, historyKeymap, indentWithTab, isolateHistory, redo, redoDepth, undo, undoDepth,
} from "@codemirror/commands";
