"""Host applications that embed Tandem, and a real uvicorn to run them on 127.0.0.1.

- `fastapi_host`: a FastAPI app with a route of its own and Tandem mounted at /collab,
  started by ``lifespan=tandem.lifespan``.
- `cookie_host`: a Starlette app with a cookie session (SessionMiddleware) whose authorize hook
  reads the session: who is logged in, with which role; API keys for bots as tokens; an admin
  route that changes a user's role or removes the user and calls `tandem.revoke`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tandem import Access, AuthError, AuthRequest, Role, Settings, Tandem
from tests.support import free_port

SESSION_SECRET = "cookie-host-session-secret"


def fastapi_host(settings: Settings) -> tuple[FastAPI, Tandem]:
    tandem = Tandem(settings)
    app = FastAPI(lifespan=tandem.lifespan)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"host": "fastapi"}

    app.mount("/collab", tandem.app)
    return app, tandem


class Directory:
    """The host's users: role by user name, how long an access lasts before a re-check, API
    keys, and how often the hook was asked about each user."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.roles: dict[str, Role] = {}
        self.ttl: dict[str, float] = {}
        self.default_ttl = ttl
        self.keys: dict[str, str] = {}  # API key -> user
        self.asked: Counter[str] = Counter()

    async def authorize(self, request: AuthRequest) -> Access:
        user = request.connection.session.get("user")
        if user is None and request.token is not None:
            user = self.keys.get(request.token)
        if user is None:
            raise AuthError("log in first")
        self.asked[user] += 1
        role = self.roles.get(user)
        if role is None:
            raise AuthError(f"{user} may not open {request.doc!r}")
        return Access(user, role, time.time() + self.ttl.get(user, self.default_ttl))


def cookie_host(settings: Settings, directory: Directory) -> tuple[Starlette, Tandem]:
    tandem = Tandem(settings, authorize=directory.authorize)

    async def login(request: Request) -> Response:
        request.session["user"] = request.path_params["user"]
        return JSONResponse({"user": request.path_params["user"]})

    async def set_role(request: Request) -> Response:
        """POST /admin/users/{user}?role=read|write|none[&doc=...]: change, then revoke."""
        user, role = request.path_params["user"], request.query_params["role"]
        if role == "none":
            directory.roles.pop(user, None)
        else:
            directory.roles[user] = Role(role)
        await tandem.revoke(user, request.query_params.get("doc"))
        return JSONResponse({"user": user, "role": role})

    app = Starlette(
        routes=[
            Route("/login/{user}", login),
            Route("/admin/users/{user}", set_role, methods=["POST"]),
            Mount("/collab", app=tandem.app),
        ],
        middleware=[Middleware(SessionMiddleware, secret_key=SESSION_SECRET)],
        lifespan=tandem.lifespan,
    )
    return app, tandem


class HostServer:
    """uvicorn serving ``app`` on a free 127.0.0.1 port, in a thread of this process."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", ws="websockets-sansio"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"host-{self.port}", daemon=True)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> HostServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the host app did not start (see the log above)")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the host app did not stop"


def settings_for(redis_url: str | None, data_dir: Path) -> Settings:
    return Settings(redis_url=redis_url, data_dir=data_dir, head_check_seconds=0.3)
