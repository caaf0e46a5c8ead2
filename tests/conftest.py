"""Shared fixtures: a real `st-ai serve` process on a fresh database, and the fake
upstreams it can be pointed at. Everything listens on 127.0.0.1 only."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"st-ai ready: REST (http://\S+)/v1\s+gRPC (\S+)")
DISPATCH_ENV = "ST_AI_TEST_DISPATCH"  # how every `st-ai serve` of the run dispatches REST calls


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--dispatch", choices=("in-process", "grpc"), default=None,
                     help="run every `st-ai serve` with this --dispatch (default: serve's own)")


def pytest_configure(config: pytest.Config) -> None:
    if (dispatch := config.getoption("--dispatch")) is not None:
        os.environ[DISPATCH_ENV] = dispatch  # also seen by xdist workers and helper processes


def dispatch_args(extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """`--dispatch` for a `st-ai serve` command line, as the run asks (unless it names one)."""
    dispatch = os.environ.get(DISPATCH_ENV)
    return ("--dispatch", dispatch) if dispatch and "--dispatch" not in extra else ()


@dataclass
class Gateway:
    proc: subprocess.Popen
    db_path: str
    http_url: str        # http://127.0.0.1:PORT
    grpc_target: str     # 127.0.0.1:PORT
    output: str = ""     # what it printed up to its ready line

    @property
    def base_url(self) -> str:
        return f"{self.http_url}/v1"

    def token(self, name: str, models: list[str] | None = None, expires_at: int | None = None) -> str:
        """Create a token (as `st-ai token create` does) and wait until the server knows it."""
        db = open_db(self.db_path)
        try:
            _, key = token_store.create(db, name, models, expires_at)
        finally:
            db.close()
        self.wait_for(lambda: self._status("/v1/models", key) == 200, f"token {name}")
        return key

    def channel(self, name: str, type: str, models: list[str], base_url: str = "", key: str = "",
                model_map: dict[str, str] | None = None, priority: int = 0,
                api_version: str | None = None) -> None:
        """Add a channel and wait until the server routes its models."""
        db = open_db(self.db_path)
        try:
            channel_store.add(db, name, type, base_url, key, models, model_map, priority,
                              api_version=api_version)
            _, probe = token_store.create(db, f"probe-{name}-{time.monotonic_ns()}")
        finally:
            db.close()
        self.wait_for(lambda: all(m in self._models(probe) for m in models), f"channel {name}")

    def enable_auto_disabled(self) -> list[str]:
        """Enable again every channel st-ai disabled (a rejected key), as `st-ai channel
        enable` would; the names it enabled."""
        db = open_db(self.db_path)
        try:
            names = [row[0] for row in db.execute("SELECT name FROM channels WHERE auto_disabled = 1")]
            for name in names:
                channel_store.set_enabled(db, name, True)
        finally:
            db.close()
        return names

    def _status(self, path: str, key: str) -> int:
        request = urllib.request.Request(self.http_url + path, headers={"Authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def _models(self, key: str) -> list[str]:
        import json
        request = urllib.request.Request(self.http_url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return [m["id"] for m in json.load(response)["data"]]
        except urllib.error.HTTPError:
            return []

    @staticmethod
    def wait_for(condition, what: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")


def start_gateway(db_path: str, *extra: str, env: dict | None = None) -> Gateway:
    """Start `st-ai serve` on free ports and wait for its ready line. Its assets go
    beside the database unless `extra` names --assets-dir."""
    if "--assets-dir" not in extra:
        extra = ("--assets-dir", os.path.join(os.path.dirname(db_path), "assets"), *extra)
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--db", db_path, "--host", "127.0.0.1",
         "--http-port", "0", "--grpc-port", "0", *dispatch_args(extra), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "ST_AI_LOG_LEVEL": "WARNING", **(env or {})})
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = READY.search(line)
        if match:
            return Gateway(proc, db_path, match.group(1), match.group(2), "".join(lines))
    proc.kill()
    raise RuntimeError("st-ai serve did not start:\n" + "".join(lines))


def stop_gateway(gateway: Gateway) -> None:
    gateway.proc.send_signal(signal.SIGTERM)
    try:
        gateway.proc.wait(15)
    except subprocess.TimeoutExpired:
        gateway.proc.kill()
        gateway.proc.wait(5)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Gateway:
    """A running gateway with an empty database, shared by one test module."""
    db_path = str(tmp_path_factory.mktemp("gateway") / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path)
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="module")
def fake_openai() -> FakeOpenAI:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fake_anthropic() -> FakeAnthropic:
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()
