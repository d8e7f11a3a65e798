#!/usr/bin/env python3
"""A bot that types into a Tandem document through the Python client, for demos and smoke tests.

    .venv/bin/python scripts/bot.py --url ws://127.0.0.1:8000/ws/demo --text "hello from a bot"

It connects, types the text one character at a time at a random place (or at the end with
--append), prints every change others make, and stays until the text is typed (or forever
with --stay). Run two of them on one document to watch them converge.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys

from tandem.ot.protocol import User
from tandem.server.client import TandemClient


async def type_into(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)

    def changed(op: object, text: str) -> None:
        if args.verbose:
            print(f"others changed the text: {text!r}", flush=True)

    client = TandemClient(
        args.url, args.client, token=args.token, user=User(name=args.name), on_change=changed
    )
    await client.connect()
    print(f"{client.client_id} connected at revision {client.rev}: {client.text!r}", flush=True)
    try:
        for ch in args.text:
            position = len(client.text) if args.append else rng.randint(0, len(client.text))
            client.insert(position, ch)
            await asyncio.sleep(args.delay)
        await client.synced(timeout=30)
        print(f"typed {len(args.text)} characters; revision {client.rev}: {client.text!r}", flush=True)
        if args.stay:
            await asyncio.Event().wait()
    finally:
        await client.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/demo", help="ws://HOST:PORT/ws/DOC")
    parser.add_argument(
        "--text", default="The quick brown fox jumps over the lazy dog. ", help="what to type"
    )
    parser.add_argument("--delay", type=float, default=0.05, help="seconds between keystrokes")
    parser.add_argument("--append", action="store_true", help="type at the end, not at random places")
    parser.add_argument("--client", default=None, help="client id (default: a fresh one)")
    parser.add_argument("--name", default="bot", help="display name shown to others")
    parser.add_argument("--token", default=None, help="access token when the server has a secret")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the positions")
    parser.add_argument("--stay", action="store_true", help="stay connected after typing")
    parser.add_argument("-v", "--verbose", action="store_true", help="print others' changes")
    args = parser.parse_args()
    try:
        return asyncio.run(type_into(args))
    except KeyboardInterrupt:
        return 0
    except (ConnectionError, TimeoutError, OSError) as e:
        print(f"bot: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
