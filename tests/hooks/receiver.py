"""A webhook receiver for the tests: checks every delivery's signature and records it.

In a thread (`Receiver`), or as its own process (``python -m tests.hooks.receiver PORT SECRET
FILE``, killed with -9 by the tests), appending one JSON line per delivery to FILE before it
answers, so a kill between the two shows as a delivery the runner sends again.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tandem.server.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify, webhook_body_decoder


class Receiver:
    """``fail_until``: answer 500 until then (time.monotonic()); ``delay``: seconds before answering."""

    def __init__(self, secret: str, port: int = 0, record: Path | None = None, delay: float = 0.0) -> None:
        self.secret = secret
        self.record = record
        self.delay = delay
        self.fail_until = 0.0
        self.lock = threading.Lock()
        # (doc, revs, status answered, monotonic time received)
        self.deliveries: list[tuple[str, list[int], int, float]] = []
        self.bad_signatures = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = verify(
                    receiver.secret,
                    body,
                    self.headers[TIMESTAMP_HEADER] or "",
                    self.headers[SIGNATURE_HEADER] or "",
                )
                status = 200 if signed else 401
                if signed and time.monotonic() < receiver.fail_until:
                    status = 500
                if signed:
                    delivery = webhook_body_decoder.decode(body)
                    revs = [e.rev for e in delivery.events]
                    assert all(e.doc == delivery.doc for e in delivery.events)
                    with receiver.lock:
                        receiver.deliveries.append((delivery.doc, revs, status, time.monotonic()))
                        if receiver.record is not None:
                            with receiver.record.open("a") as f:
                                f.write(
                                    json.dumps({"doc": delivery.doc, "revs": revs, "status": status}) + "\n"
                                )
                else:
                    with receiver.lock:
                        receiver.bad_signatures += 1
                time.sleep(receiver.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the runner was killed while waiting for this answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def accepted(self) -> dict[str, list[int]]:
        """Per document, the revisions of the deliveries answered 2xx, in the order received."""
        out: dict[str, list[int]] = {}
        with self.lock:
            for doc, revs, status, _ in self.deliveries:
                if status == 200:
                    out.setdefault(doc, []).extend(revs)
        return out

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def read_record(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


if __name__ == "__main__":
    port, secret, record = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    receiver = Receiver(secret, port, record, delay)
    print("ready", flush=True)
    receiver.server.serve_forever()
