"""The `tandem` command: `tandem serve` runs the server, `tandem token` issues access tokens."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import socket
import sys
from collections.abc import Sequence

from tandem.server.settings import FIELDS, Settings, env_name, load

USAGE = """tandem serve [options]      run the server (tandem serve --help)
tandem token DOC [options]  print an access token signed with TANDEM_SECRET
tandem --version            print the version"""


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tandem serve",
        description="Serve Tandem: WebSocket editing at /ws/{doc}, HTTP at /docs/{doc}, the editor at /. "
        "Without a Redis URL an embedded redis-server keeps the op log in the data directory. "
        "Each option may also be set by the environment variable shown.",
    )
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        env = env_name(field.name) + (" or REDIS_URL" if field.name == "redis_url" else "")
        shown = ",".join(default) if isinstance(default, tuple) else default
        shown = shown if shown not in ("", None) else "unset"
        help_text = f"{FIELDS[field.name]} (env {env}; default: {shown})"
        if isinstance(default, bool):  # a switch, --redis-cluster, and its --no-redis-cluster
            help_text = (
                f"{FIELDS[field.name]} (env {env}=true or false; default: {'on' if default else 'off'})"
            )
            action = argparse.BooleanOptionalAction
            parser.add_argument(flag, dest=field.name, default=None, help=help_text, action=action)
            continue
        parser.add_argument(flag, dest=field.name, default=None, help=help_text, metavar=field.name.upper())
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="server log level (default: info)",
    )
    # set by the supervisor of --workers for each worker (server/workers.py), not by hand
    parser.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # one socket per worker on one port (server/workers.py)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(argv: Sequence[str]) -> int:
    args = serve_parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k not in ("log_level", "listen_fd", "worker_index")}
    try:
        settings = load(flags)
    except ValueError as e:
        print(f"tandem serve: {e}", file=sys.stderr)
        return 2
    if settings.workers > 1 and args.listen_fd is None:
        from tandem.server.workers import supervise

        return supervise(settings, argv)
    import uvicorn

    from tandem.server.app import create_app
    from tandem.server.drain import DrainingServer
    from tandem.server.uvicorn_ws import PROTOCOL

    worker = args.worker_index
    try:
        sock = (
            socket.socket(fileno=args.listen_fd)
            if args.listen_fd is not None
            else bind(settings.host, settings.port)
        )
    except OSError as e:
        print(f"tandem serve: cannot listen on {settings.host}:{settings.port}: {e}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host

    def ready() -> None:
        from tandem.server.auth import access_notice

        if worker:  # the supervisor said where and who may edit
            print(f"worker {worker} (pid {os.getpid()}) ready", flush=True)
            return
        print(f"listening on http://{shown_host}:{port}", flush=True)
        print(access_notice(settings.secret, settings.allowed_origins), flush=True)

    _raise_descriptor_limit(settings.max_connections)
    app = create_app(dataclasses.replace(settings, port=port), on_ready=ready)
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=False,
        # Frames are small JSON (~100 bytes): compressing them saves little and cost a quarter
        # of the CPU of a hot document in profiles (docs/performance.md).
        ws_per_message_deflate=False,
        # uvicorn's websockets-sansio protocol, keeping less per idle connection (server/uvicorn_ws.py)
        ws=PROTOCOL or "auto",
        ws_max_size=max(4 * settings.max_frame_bytes, 16 * 1024 * 1024),
        timeout_graceful_shutdown=5,
        # past the WebSocket cap, room for health checks and HTTP; beyond it uvicorn answers 503
        limit_concurrency=settings.max_connections + 256,
        lifespan="on",
        # which worker of `--workers` answered (each has its own /metrics)
        headers=[("x-tandem-worker", str(worker))] if worker else None,
    )
    if args.log_level != "debug":
        logging.getLogger("uvicorn.error").addFilter(_per_connection_lines)
    try:
        DrainingServer(config, app, settings.drain_seconds).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises Ctrl-C once it has shut down cleanly
    return 0


def _raise_descriptor_limit(connections: int) -> None:
    """Let the process have as many descriptors as it may: each connection holds one, and a
    process out of them fails /healthz and every client. Warn when the cap cannot be met."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if soft != resource.RLIM_INFINITY and connections + 512 > soft:
        print(
            f"tandem serve: warning: --max-connections {connections} is close to the limit of "
            f"{soft} open files (ulimit -n); lower it or raise the limit",
            file=sys.stderr,
        )


def _per_connection_lines(record: logging.LogRecord) -> bool:
    """Drop the two INFO lines uvicorn writes for every WebSocket ("[accepted]", "connection
    open"): noise with thousands of clients, and ~0.2-0.4 ms of every join in the benchmark
    (docs/performance.md). `--log-level debug` keeps them."""
    if record.levelno != logging.INFO:
        return True
    msg = str(record.msg)
    return not (msg in ("connection open", "connection closed") or msg.startswith('%s - "WebSocket %s"'))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"tandem {version()}")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "serve":
        return serve(rest)
    if command == "token":
        from tandem.server.auth import token_main

        return token_main(rest)
    print(f"tandem: unknown command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("tandem")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
