"""Tandem: a collaborative text editing backend.

Installed, Tandem is one top-level package, ``tandem``, so it never collides with a host
application's own ``server`` or ``ot`` module:

- ``tandem.ot``: the pure OT library and the sans-IO client state machine;
- ``tandem.server``: the server (``create_app``, ``Settings``), its store and the asyncio client;
- ``Tandem``: the server to mount inside another ASGI application, with its own access hook
  (``Access``, ``AuthRequest``, ``AuthError``, ``Role``, ``jwt_authorizer``) and change hooks
  (``Hook``, ``ChangeEvent``, ``webhook``).

The names most users need are re-exported here lazily, so ``import tandem`` costs nothing
until one of them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tandem.server.app import create_app
    from tandem.server.auth import Access, AuthError, Authorizer, AuthRequest, Role, jwt_authorizer
    from tandem.server.client import TandemClient
    from tandem.server.embed import Tandem
    from tandem.server.hooks import ChangeEvent, Hook
    from tandem.server.settings import Settings
    from tandem.server.webhook import webhook

__all__ = [
    "Access",
    "AuthError",
    "AuthRequest",
    "Authorizer",
    "ChangeEvent",
    "Hook",
    "Role",
    "Settings",
    "Tandem",
    "TandemClient",
    "create_app",
    "jwt_authorizer",
    "webhook",
]

_HOMES = {
    "Access": "tandem.server.auth",
    "AuthError": "tandem.server.auth",
    "AuthRequest": "tandem.server.auth",
    "Authorizer": "tandem.server.auth",
    "Role": "tandem.server.auth",
    "jwt_authorizer": "tandem.server.auth",
    "Tandem": "tandem.server.embed",
    "ChangeEvent": "tandem.server.hooks",
    "Hook": "tandem.server.hooks",
    "webhook": "tandem.server.webhook",
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
