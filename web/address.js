// What a page learns from its address: the document it edits, and where Tandem is served.

import { randomId } from "./tandem.js";

const DOC_ID = /^[A-Za-z0-9._-]{1,128}$/;

// Tandem's root is the folder above web/: "/" when served alone, "/collab/" when mounted there.
export const root = new URL("../", import.meta.url);

/** The document named by ?doc=, or a fresh one written into the address bar. */
export function documentName() {
  const url = new URL(location.href);
  const doc = url.searchParams.get("doc");
  if (doc && DOC_ID.test(doc)) return doc;
  const fresh = randomId("doc-", 8);
  url.searchParams.set("doc", fresh);
  history.replaceState(null, "", url);
  return fresh;
}
