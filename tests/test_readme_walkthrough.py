"""The README's walk-through, run as written against `st-ai serve --demo`, in a fresh
virtualenv made by the README's first command in a copy of this checkout: what that
command does not install, the walk-through cannot use.

The only liberty taken: the gateway listens on free ports, and the commands' 8080 and
50051 are replaced by them, so the test never collides with anything else running."""
from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import READY, ROOT

# what a checkout has that a fresh clone would not
NOT_IN_A_CLONE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", "st-ai.db*",
                                        "st-ai-assets", ".pytest_cache")
INSTALL_AND_START_SECONDS = 420  # a fresh install from pip's cache, on a busy 2-core machine


def readme_blocks() -> tuple[str, list[str]]:
    """The README's first command, and the walk-through's commands."""
    readme = (ROOT / "README.md").read_text()
    first = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip()
    section = readme.split("## Five-minute walk-through", 1)[1].split("\n## ", 1)[0]
    return first, re.findall(r"```bash\n(.*?)```", section, re.S)


def outside_any_virtualenv() -> dict[str, str]:
    """The environment without the test run's own virtualenv, so the walk-through finds
    only what the fresh one has."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH")}
    if sys.prefix == sys.base_prefix:  # the suite itself runs outside a virtualenv
        return env
    ours = {str(Path(sys.prefix) / "bin"), str(Path(sys.executable).parent)}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p not in ours)
    return env


def start_first_command(folder: Path, command: str, env: dict[str, str]) -> tuple[subprocess.Popen, str, str, list[str]]:
    assert command.endswith("st-ai serve --demo"), command
    proc = subprocess.Popen(["bash", "-c", command + " --http-port 0 --grpc-port 0"], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            # a quicker simulator and poller than the defaults, so the video steps take seconds
                            env={**env, "ST_AI_LOG_LEVEL": "WARNING", "ST_AI_SIMULATOR_VIDEO_SECONDS": "2",
                                 "ST_AI_VIDEO_POLL_INTERVAL": "0.5"})
    lines: queue.Queue[str | None] = queue.Queue()

    def read_all() -> None:  # also keeps the pipe drained while st-ai runs
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read_all, daemon=True).start()
    printed: list[str] = []
    deadline = time.monotonic() + INSTALL_AND_START_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        printed.append(line)
        if match := READY.search(line):
            return proc, match.group(1), match.group(2), printed
    stop(proc)
    raise AssertionError("the README's first command did not start st-ai:\n" + "".join(printed[-40:]))


def stop(proc: subprocess.Popen) -> None:
    # bash, pip and st-ai run in the session this test started for them
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@pytest.mark.timeout(INSTALL_AND_START_SECONDS + 180)
def test_readme_walkthrough_runs_as_written_from_a_fresh_virtualenv(tmp_path):
    checkout = tmp_path / "st-ai"
    shutil.copytree(ROOT, checkout, ignore=NOT_IN_A_CLONE)
    first, walkthrough = readme_blocks()
    env = outside_any_virtualenv()
    proc, http_url, grpc_target, printed = start_first_command(checkout, first, env)
    try:
        assert (checkout / ".venv" / "bin" / "st-ai").exists()
        assert any("demo: created the token 'demo'" in line for line in printed)
        assert re.search(r"demo:\s+sk-[A-Za-z0-9]{32,}", "".join(printed))
        script = "set -euo pipefail\n" + "\n".join(walkthrough)
        script = script.replace("http://127.0.0.1:8080", http_url).replace("127.0.0.1:50051", grpc_target)
        run = subprocess.run(["bash", "-c", script], cwd=checkout, capture_output=True, text=True,
                             timeout=150, env=env)
        out = run.stdout
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        stop(proc)
    # what each step of the walk-through shows
    assert "walkthrough" in out and "demo-simulator" in out and "SIMULATOR" in out
    assert '"id":"gpt-4o-mini"' in out
    assert "Simulated reply to: Hello, st-ai" in out
    assert out.count("data: ") >= 4 and "data: [DONE]" in out
    assert '"code":"invalid_api_key"' in out and '"param":"temperature"' in out
    assert "Simulated reply to: Hello from the SDK" in out
    assert "Simulated reply to: Count to three" in out
    assert 'tool call: get_weather {"city":"Paris"}' in out
    assert 'The tool get_weather returned: {"celsius": 21}' in out
    assert "st_ai.v1.Chat" in out and "grpc.health.v1.Health" in out and "SERVING" in out
    assert "Simulated reply to: Hello over gRPC" in out
    assert out.count("\"object\": \"chat.completion.chunk\"") >= 5  # grpcurl prints each streamed message
    assert "b'\\x89PNG\\r\\n\\x1a\\n'" in out  # the image URL served a PNG
    assert "submitted video_" in out and "completed 100" in out
    assert "saved video.mp4 {" in out and "'duration': 5" in out and "'width': 1280" in out
    assert (checkout / "video.mp4").read_bytes()[4:8] == b"ftyp"
    assert "completed 4 1280x720" in out and (checkout / "waves.mp4").read_bytes()[4:8] == b"ftyp"
    assert "walkthrough" in out.split("TOKEN", 1)[-1]  # st-ai usage lists the token's requests
