// The history panel: a slider over the document's revisions showing the text at any of them
// (GET docs/{doc}?rev=N), who made that revision and when (GET docs/{doc}/ops?from=N&to=N),
// and a way to restore an old text as a new revision: one op made by the page, so the log
// only grows and the others receive it like any edit.

import { peerName } from "./presence.js";

const DRAG_DELAY_MS = 150; // a slider dragged fires many inputs: fetch once it rests

/** The server's error message from a failed answer, else its HTTP status. */
async function failure(response) {
  try {
    const body = await response.json();
    if (body && typeof body.message === "string") return body.message;
  } catch {
    // not JSON: a proxy's page, say
  }
  return `the server answered ${response.status}`;
}

export class HistoryPanel {
  /**
   * `root`: Tandem's root URL; `client`: the live TandemClient (its head, its peers' names);
   * `restore(text)`: make the document's text `text` with one own edit; `els`: the panel's
   * elements {panel, toggle, slider, label, meta, view, prev, next, restore, error}.
   */
  constructor({ root, doc, token = null, client, restore, els }) {
    this.docUrl = new URL(`docs/${encodeURIComponent(doc)}`, root);
    this.token = token;
    this.client = client;
    this.restoreText = restore;
    this.els = els;
    this.rev = null; // the revision shown
    this.shown = null; // {rev, text, client, time} once loaded
    this.timer = null;
    this.abort = null; // the requests of the revision being loaded
    els.toggle.addEventListener("click", () => this.setOpen(els.panel.hidden));
    els.slider.addEventListener("input", () => this.select(Number(els.slider.value), DRAG_DELAY_MS));
    els.prev.addEventListener("click", () => this.select(this.rev - 1));
    els.next.addEventListener("click", () => this.select(this.rev + 1));
    els.restore.addEventListener("click", () => this.restore());
  }

  get open() { return !this.els.panel.hidden; }

  setOpen(open) {
    this.els.panel.hidden = !open;
    this.els.toggle.setAttribute("aria-expanded", String(open));
    if (open) this.select(this.client.rev ?? 0);
    else this.cancel();
  }

  /** The document advanced (or loaded): the slider reaches the new head; the choice stays. */
  headMoved() {
    if (!this.open || this.rev === null) return;
    const head = this.client.rev ?? 0;
    this.els.slider.max = String(head);
    this.els.label.textContent = `revision ${this.rev} of ${head}`;
    this.buttons();
  }

  /** Show revision `rev` (clamped to 0..head), fetching it after `delay` ms of quiet. */
  select(rev, delay = 0) {
    const head = this.client.rev ?? 0;
    this.rev = Math.max(0, Math.min(head, Number.isFinite(rev) ? rev : head));
    this.els.slider.max = String(head);
    this.els.slider.value = String(this.rev);
    this.els.label.textContent = `revision ${this.rev} of ${head}`;
    this.els.panel.dataset.loading = "true";
    this.buttons();
    this.cancel();
    this.timer = setTimeout(() => this.load(this.rev), delay);
  }

  cancel() {
    clearTimeout(this.timer);
    this.abort?.abort();
    this.abort = null;
  }

  buttons() {
    const head = this.client.rev ?? 0;
    this.els.prev.disabled = this.rev === null || this.rev <= 0;
    this.els.next.disabled = this.rev === null || this.rev >= head;
    this.els.restore.disabled = !this.shown || this.shown.rev !== this.rev || !this.client.ready;
  }

  url(base, params) {
    const url = new URL(base);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, String(v));
    if (this.token) url.searchParams.set("token", this.token);
    return url;
  }

  /** Fetch one revision: its text and its one op record (never a range), the older requests dropped. */
  async load(rev) {
    const abort = new AbortController();
    this.abort = abort;
    const get = async (url) => {
      const response = await fetch(url, { signal: abort.signal, cache: "no-store" });
      if (!response.ok) throw new Error(await failure(response));
      return response.json();
    };
    const [doc, op] = await Promise.allSettled([
      get(this.url(this.docUrl, { rev })),
      rev > 0 ? get(this.url(`${this.docUrl}/ops`, { from: rev, to: rev })).then((p) => p.ops[0] ?? null) : null,
    ]);
    if (abort.signal.aborted) return;
    this.abort = null;
    const failed = [doc, op].find((r) => r.status === "rejected"); // the text's error first
    if (failed) this.show(null, failed.reason.message);
    else {
      const o = op.value;
      this.show({ rev, text: doc.value.text, client: o?.client ?? null, time: o?.time ?? null }, null);
    }
  }

  show(shown, error) {
    const { els } = this;
    this.shown = shown;
    delete els.panel.dataset.loading;
    els.error.hidden = error === null;
    els.error.textContent = error ?? "";
    els.view.textContent = shown ? shown.text : "";
    els.view.dataset.rev = shown ? String(shown.rev) : "";
    els.meta.dataset.client = shown?.client ?? "";
    els.meta.dataset.time = shown?.time === null || !shown ? "" : String(shown.time);
    els.meta.textContent = shown ? this.describe(shown) : "";
    this.buttons();
  }

  describe({ rev, client, time }) {
    if (rev === 0) return "revision 0: the empty document";
    const peer = this.client.peers.get(client);
    const who = client === null ? "an unknown client"
      : client === this.client.clientId ? `you (${client})`
        : peer ? `${peerName(client, peer.user)} (${client})` : client;
    const when = time === null ? "at an unrecorded time" : new Date(time).toLocaleString();
    return `revision ${rev} by ${who}, ${when}`;
  }

  restore() {
    const shown = this.shown;
    if (!shown || shown.rev !== this.rev) return;
    this.restoreText(shown.text);
  }
}
