"""`tandem serve` configuration: flags, TANDEM_* variables, --help, and the embedded Redis."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from tandem.server.cli import serve_parser
from tandem.server.settings import Settings, env_name, load
from tests.support import Raw, ServerProcess, document


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
