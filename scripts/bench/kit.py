"""The peer kit (ShareDB, ot.js, the load generator): copied to a scratch directory and installed once."""

from __future__ import annotations

import hashlib
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = ROOT.parent / "shared" / "bench" / "peers"
SKIP = {"node_modules", "results"}


def _digest(source: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(source.rglob("*")):
        if path.is_file() and not SKIP.intersection(path.relative_to(source).parts):
            h.update(str(path.relative_to(source)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def prepare(source: Path = DEFAULT_SOURCE, scratch: Path | None = None) -> Path:
    """A writable, installed copy of the kit; the source folder is only read.

    The copy lives under the system temp dir, keyed by the kit's content, so `npm ci` runs once
    per kit version and later runs reuse it.
    """
    if not (source / "loadgen.js").is_file():
        raise SystemExit(f"bench: no peer kit at {source} (expected loadgen.js there; pass --kit)")
    digest = _digest(source)
    base = scratch or Path(tempfile.gettempdir()) / f"tandem-bench-kit-{digest}"
    peers = base / "peers"
    stamp = peers / ".npm-ci-done"
    if stamp.is_file() and stamp.read_text() == digest:
        return peers
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(source, peers, ignore=shutil.ignore_patterns(*SKIP))
    for path in [peers, *peers.rglob("*")]:  # the shared folder may be read-only
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    if shutil.which("npm") is None:
        raise SystemExit("bench: npm not found; the peer kit needs Node >= 18 with npm")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=peers, check=True, stdout=subprocess.DEVNULL)
    stamp.write_text(digest)
    return peers
