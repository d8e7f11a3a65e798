"""Real editing traces (../shared/bench/traces): each streamed into a document of its own by one
client, keystroke by keystroke, as fast as the protocol allows, then the server's text checked
against the trace's final text.

One patch is one keystroke, one `edit()` of the client. Between two keystrokes the client yields
to its event loop once, so acks are read as they arrive: one op is in flight, and what is typed
meanwhile is composed into a buffer sent with the next ack. Tandem is driven by its Python client
(`TandemClient`, i.e. `ot.client.ClientSession`), ShareDB by its own client in Node (trace.js).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tandem.ot.operation import replace_op
from tandem.server.client import TandemClient
from tandem.testing.harness import document

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = ROOT.parent / "shared" / "bench" / "traces"
NAMES = ("seph-blog1", "rustcode", "automerge-paper")
MAX_SECONDS = 600.0  # one trace through one server, typing and final acks

Patch = tuple[int, int, str]  # position, code points deleted, text inserted
Result = dict[str, Any]


@dataclass(frozen=True)
class Trace:
    name: str
    path: Path
    start: str
    end: str  # the text after the patches kept (endContent when none is cut off)
    patches: list[Patch]
    total: int  # patches in the whole trace


def patches_of(data: dict[str, Any]) -> list[Patch]:
    return [(int(p[0]), int(p[1]), str(p[2])) for txn in data["txns"] for p in txn["patches"]]


def replay(text: str, patches: list[Patch]) -> str:
    for pos, deleted, inserted in patches:
        text = text[:pos] + inserted + text[pos + deleted :]
    return text


def load(path: Path, limit: int = 0) -> Trace:
    """A trace file; with ``limit``, its first ``limit`` keystrokes, ending where they end."""
    with gzip.open(path) as f:
        data = json.load(f)
    patches = patches_of(data)
    total = len(patches)
    start = str(data.get("startContent", ""))
    end = str(data["endContent"])
    if 0 < limit < total:
        patches = patches[:limit]
        end = replay(start, patches)
    name = path.name.removesuffix(".json.gz")
    return Trace(name, path, start, end, patches, total)


async def _stream(url: str, doc: str, trace: Trace, max_seconds: float) -> Result:
    client = TandemClient(f"{url}/ws/{doc}", reconnect=False)
    await client.connect()
    try:
        if trace.start:
            client.insert(0, trace.start)
            await client.synced(max_seconds)
        first_rev = client.rev or 0
        deadline = time.monotonic() + max_seconds
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i, (pos, deleted, inserted) in enumerate(trace.patches):
            client.edit(replace_op(pos, deleted, inserted))
            await asyncio.sleep(0)  # read any ack, so the buffer goes out as soon as it may
            if i % 1000 == 0 and time.monotonic() > deadline:
                raise TimeoutError(f"{trace.name}: {i} of {len(trace.patches)} keystrokes in {max_seconds} s")
        typed = time.perf_counter() - t0
        await client.synced(max(1.0, deadline - time.monotonic()))
        final = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        return {"typed_s": typed, "final_s": final, "client_cpu_s": cpu, "ops": (client.rev or 0) - first_rev}
    finally:
        await client.close()


def run_tandem(http_url: str, doc: str, trace: Trace, max_seconds: float = MAX_SECONDS) -> Result:
    """The trace through `TandemClient` against a running Tandem; the server's text compared after."""
    ws_url = http_url.replace("http://", "ws://")
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            res = runner.run(_stream(ws_url, doc, trace, max_seconds))
    except ImportError:
        res = asyncio.run(_stream(ws_url, doc, trace, max_seconds))
    text = str(document(http_url, doc)["text"])
    return {**res, "matches": text == trace.end, "final_length": len(text)}


def run_sharedb(kit: Path, ws_url: str, doc: str, trace: Trace, scratch: Path, max_seconds: float) -> Result:
    """The trace through ShareDB's client (trace.js, run from the installed kit for its modules)."""
    script = kit / "trace.js"
    shutil.copyfile(Path(__file__).with_name("trace.js"), script)
    out_text = scratch / f"{trace.name}-sharedb.txt"
    cmd = ["node", str(script), "--url", ws_url, "--trace", str(trace.path), "--doc", doc]
    cmd += [
        "--limit",
        str(len(trace.patches)),
        "--out-text",
        str(out_text),
        "--max-seconds",
        str(max_seconds),
    ]
    proc = subprocess.run(cmd, cwd=kit, capture_output=True, text=True, timeout=max_seconds + 120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    res: Result = json.loads(lines[-1]) if lines else {"error": f"trace.js: {proc.stderr.strip()[-300:]}"}
    if proc.returncode != 0 and "error" not in res:
        res["error"] = f"trace.js exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
    if "error" not in res:
        text = out_text.read_text(encoding="utf-8")
        res.update(matches=text == trace.end, final_length=len(text))
    out_text.unlink(missing_ok=True)
    return res


def summary(trace: Trace, server: str, res: Result) -> Result:
    """One row of the traces table: the rates from a run's times."""
    keys = len(trace.patches)
    row: Result = {
        "name": "traces",
        "trace": trace.name,
        "server": server,
        "keystrokes": keys,
        "trace_keystrokes": trace.total,
        **res,
    }
    if res.get("final_s"):
        row["keystrokes_per_s"] = keys / float(res["final_s"])
        row["keystrokes_per_op"] = keys / res["ops"] if res.get("ops") else None
    return row
