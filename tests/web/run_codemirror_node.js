// node tests/web/run_codemirror_node.js: the CodeMirror binding's unit tests under Node.
// Prints one JSON line; exits 1 on any failure.

import { runCodeMirrorTests } from "./codemirror_unit.js";

const report = runCodeMirrorTests();
console.log(JSON.stringify(report));
process.exit(report.failures.length ? 1 : 0);
