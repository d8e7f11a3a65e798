// Bundles entry.js into ../../web/vendor/codemirror.js (one minified ES module) and writes
// the licences of every package that ends up in it to ../../web/vendor/LICENSE-codemirror.
// Run through scripts/build_codemirror, after `npm ci`: the lock file pins every version,
// so the output is the same bytes on every run.

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "..", "web", "vendor");
const modules = join(here, "node_modules");

const result = await build({
  entryPoints: [join(here, "entry.js")],
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2020",
  legalComments: "none", // the licences go to their own file, below
  metafile: true,
  write: false,
  logLevel: "warning",
});

// The packages whose code is in the bundle, from the inputs esbuild kept.
const packages = new Set();
const [output] = Object.values(result.metafile.outputs);
for (const [input, info] of Object.entries(output.inputs)) {
  if (info.bytesInOutput === 0) continue;
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (m) packages.add(m[1]);
}
const bundled = [...packages].sort().map((name) => {
  const meta = JSON.parse(readFileSync(join(modules, name, "package.json"), "utf8"));
  return { name, version: meta.version, license: meta.license, text: readFileSync(join(modules, name, "LICENSE"), "utf8") };
});

const header = `// CodeMirror 6, bundled for Tandem by scripts/build_codemirror (esbuild ${esbuildVersion()}).\n`
  + `// MIT licence: see LICENSE-codemirror beside this file. Packages:\n`
  + bundled.map((p) => `//   ${p.name}@${p.version}\n`).join("");
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "codemirror.js"), header + result.outputFiles[0].text);
writeFileSync(
  join(out, "LICENSE-codemirror"),
  "The licences of the packages bundled in codemirror.js.\n\n"
    + bundled.map((p) => `${"=".repeat(72)}\n${p.name}@${p.version} (${p.license})\n\n${p.text.trim()}\n`).join("\n"),
);
console.log(`web/vendor/codemirror.js: ${Buffer.byteLength(header + result.outputFiles[0].text)} bytes, ${bundled.length} packages`);

function esbuildVersion() {
  return JSON.parse(readFileSync(join(modules, "esbuild", "package.json"), "utf8")).version;
}
