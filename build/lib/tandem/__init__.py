"""Tandem: a collaborative text editing backend.

Installed, Tandem is one top-level package, ``tandem``, so it never collides with a host
application's own ``server`` or ``ot`` module:

- ``tandem.ot``: the pure OT library and the sans-IO client state machine;
- ``tandem.server``: the server (``create_app``, ``Settings``), its store and the asyncio client.

The names most users need are re-exported here lazily, so ``import tandem`` costs nothing
until one of them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tandem.server.app import create_app
    from tandem.server.client import TandemClient
    from tandem.server.settings import Settings

__all__ = ["Settings", "TandemClient", "create_app"]

_HOMES = {
    "Settings": "tandem.server.settings",
    "TandemClient": "tandem.server.client",
    "create_app": "tandem.server.app",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'tandem' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(home), name)
