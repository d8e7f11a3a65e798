"""A raw protocol client over a real WebSocket, for saying exactly what a well-behaved client would not.

Blocking (websockets.sync), so hypothesis can drive it without an event loop per example.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

Message = dict[str, Any]
RECV_TIMEOUT = 10.0


class Raw:
    """One connection to `ws://.../ws/{doc}`; every frame received is decoded and kept in order."""

    def __init__(self, ws_url: str, doc: str, *, query: str = "", max_size: int | None = 2**24) -> None:
        self.url = f"{ws_url}/ws/{doc}{query}"
        self._stack = contextlib.ExitStack()
        self.conn: ClientConnection = self._stack.enter_context(
            connect(self.url, open_timeout=10, max_size=max_size, close_timeout=2)
        )
        self.received: list[Message] = []
        self._pending: list[Message] = []

    def send(self, message: Message | str | bytes) -> None:
        self.conn.send(message if isinstance(message, str | bytes) else json.dumps(message))

    def recv(self, timeout: float = RECV_TIMEOUT) -> Message:
        """The next server message (frames that batch an array are unpacked)."""
        while True:
            if self._pending:
                return self._pending.pop(0)
            frame = self.conn.recv(timeout=timeout)
            decoded = json.loads(frame)
            batch = decoded if isinstance(decoded, list) else [decoded]
            self.received.extend(batch)
            self._pending.extend(batch)

    def until(self, kind: str, timeout: float = RECV_TIMEOUT) -> Message:
        """Read until a message of type `kind`; fail naming what came instead."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            message = self.recv(timeout=max(0.01, deadline - time.monotonic()))
            if message.get("type") == kind:
                return message
            if message.get("type") == "error":
                raise AssertionError(f"waiting for {kind!r}, got {message}")
            seen.append(str(message.get("type")))
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind!r} within {timeout} s; got {seen}")

    def hello(self, client: str, rev: int | None = None, token: str | None = None) -> Message:
        """Say hello and read through `ready`; returns the snapshot (or the ready when resuming)."""
        message: Message = {"type": "hello", "client": client}
        if rev is not None:
            message["rev"] = rev
        if token is not None:
            message["token"] = token
        self.send(message)
        first = self.recv()
        if first.get("type") == "error":
            return first
        ready = first if first.get("type") == "ready" else self.until("ready")
        return first if first.get("type") == "snapshot" else ready

    def error(self, timeout: float = RECV_TIMEOUT) -> Message:
        return self.until("error", timeout)

    def closed_with(self, timeout: float = RECV_TIMEOUT) -> int | None:
        """Read until the server closes; the close code it sent."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.recv(timeout=max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as e:
            return e.rcvd.code if e.rcvd is not None else None
        raise AssertionError(f"server did not close within {timeout} s")

    def alive(self) -> bool:
        """A ping answered by pong: the connection is open and served."""
        try:
            self.send({"type": "ping"})
            self.until("pong", timeout=5)
            return True
        except (ConnectionClosed, TimeoutError):
            return False

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cut(raw: Raw) -> None:
    """Drop the TCP connection without a close frame, as a network failure or a crash would."""
    import socket

    with contextlib.suppress(OSError):
        raw.conn.socket.shutdown(socket.SHUT_RDWR)
    raw.close()
