"""Where the system Chromium is and how to launch it (Playwright cannot download its own here)."""

from __future__ import annotations

import os
import shutil

# Quiet, local-only Chromium: without these it tries to reach outside hosts.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """TANDEM_CHROMIUM, else the first Chromium on the usual paths or PATH."""
    explicit = os.environ.get("TANDEM_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
