"""`tandem serve` configuration: flags, TANDEM_* variables, --help, and the embedded Redis."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tandem.server.cli import serve_parser
from tandem.server.settings import Settings, env_name, load
from tests.support import Raw, ServerProcess, document, http_get


def test_flags_win_over_the_environment_which_wins_over_defaults() -> None:
    env = {
        "TANDEM_PORT": "9001",
        "TANDEM_MAX_DOC_LENGTH": "77",
        "REDIS_URL": "redis://h:1/0",
        "TANDEM_ALLOWED_ORIGINS": "http://a, http://b",
    }
    settings = load({"port": "9002"}, env)
    assert settings.port == 9002 and settings.max_doc_length == 77
    assert settings.redis_url == "redis://h:1/0" and settings.allowed_origins == ("http://a", "http://b")
    assert (
        load({}, {"TANDEM_REDIS_URL": "redis://t/0", "REDIS_URL": "redis://r/0"}).redis_url == "redis://t/0"
    )
    assert load({}, {}) == Settings()


def test_a_bad_value_names_its_source() -> None:
    with pytest.raises(ValueError, match="TANDEM_PORT"):
        load({}, {"TANDEM_PORT": "eighty"})
    with pytest.raises(ValueError, match="fsync"):
        load({"fsync": "never"}, {})


def test_help_documents_every_setting_with_its_variable() -> None:
    text = serve_parser().format_help()
    for field in dataclasses.fields(Settings):
        assert "--" + field.name.replace("_", "-") in text
        assert env_name(field.name) in text


def test_the_console_script_prints_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tandem.server.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and "--redis-url" in result.stdout


def test_serve_with_the_embedded_redis_keeps_documents_across_restarts(tmp_path: Path, doc: str) -> None:
    server = ServerProcess(None, tmp_path, extra_args=("--log-level", "warning"))
    server.start()
    try:
        with Raw(server.ws_url, doc) as a:
            a.hello("a")
            a.send({"type": "op", "seq": 1, "base": 0, "ops": [{"type": "Insert", "content": "kept"}]})
            a.until("ack")
        server.kill()  # the embedded redis-server follows its parent down
        server.start()
        assert document(server.http_url, doc)["text"] == "kept"
    finally:
        server.stop()
    assert (tmp_path / "tandem.aof").exists() or any(tmp_path.glob("**/*.aof"))


def test_a_boolean_setting_is_a_plain_switch() -> None:
    parser = serve_parser()
    assert parser.parse_args(["--redis-cluster"]).redis_cluster is True
    assert parser.parse_args(["--no-redis-cluster"]).redis_cluster is False
    assert parser.parse_args([]).redis_cluster is None  # unset: the variable decides
    with pytest.raises(SystemExit):
        parser.parse_args(["--redis-cluster", "true"])  # no value after a switch
    for word in ("1", "true", "Yes", "on"):
        assert load({}, {"TANDEM_REDIS_CLUSTER": word}).redis_cluster is True
    for word in ("0", "false", "no", "off", ""):
        assert load({}, {"TANDEM_REDIS_CLUSTER": word}).redis_cluster is False
    assert load({"redis_cluster": False}, {"TANDEM_REDIS_CLUSTER": "true"}).redis_cluster is False
    with pytest.raises(ValueError, match="TANDEM_REDIS_CLUSTER"):
        load({}, {"TANDEM_REDIS_CLUSTER": "maybe"})  # a typo is an error, not a silent false


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    for flag in ("--version", "-V"):
        result = subprocess.run(
            [sys.executable, "-m", "tandem.server.cli", flag], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0 and result.stdout == f"tandem {version('tandem')}\n"


def test_sigterm_drains_healthz_503_livez_200_then_closes_with_1012(tmp_path: Path, doc: str) -> None:
    server = ServerProcess(None, tmp_path, extra_args=("--log-level", "warning", "--drain-seconds", "2"))
    server.start()
    try:
        with Raw(server.ws_url, doc) as a:
            a.hello("a")
            assert server.process is not None
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            deadline = signalled + 1.5
            while server.healthz() == 200:
                assert time.monotonic() < deadline, "/healthz still 200 after SIGTERM"
                time.sleep(0.02)
            status, body = http_get(f"{server.http_url}/healthz")
            assert status == 503 and json.loads(body) == {
                "status": "draining",
                "redis": True,
                "draining": True,
            }
            assert http_get(f"{server.http_url}/livez")[0] == 200
            # still serving its clients while the load balancer notices
            a.send({"type": "op", "seq": 1, "base": 0, "ops": [{"type": "Insert", "content": "x"}]})
            a.until("ack")
            assert a.closed_with(timeout=10) == 1012
            assert time.monotonic() - signalled >= 1.9, "closed before the drain was over"
        server.process.wait(timeout=10)
    finally:
        server.stop()
