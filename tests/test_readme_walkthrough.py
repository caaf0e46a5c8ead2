"""The README's walk-through, run as written against `st-ai serve --demo`.

The only liberty taken: the gateway listens on free ports, and the commands' 8080 and
50051 are replaced by them, so the test never collides with anything else running."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import READY, ROOT

BIN = Path(sys.executable).parent


def walkthrough_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Five-minute walk-through", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def start_demo(folder: Path) -> tuple[subprocess.Popen, str, str, list[str]]:
    # a quicker simulator and poller than the defaults, so the video steps take seconds
    proc = subprocess.Popen([str(BIN / "st-ai"), "serve", "--demo", "--http-port", "0", "--grpc-port", "0"],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "ST_AI_LOG_LEVEL": "WARNING", "ST_AI_SIMULATOR_VIDEO_SECONDS": "2",
                                 "ST_AI_VIDEO_POLL_INTERVAL": "0.5"})
    printed = []
    for line in proc.stdout:
        printed.append(line)
        if match := READY.search(line):
            return proc, match.group(1), match.group(2), printed
    proc.kill()
    raise AssertionError("st-ai serve --demo did not start:\n" + "".join(printed))


def test_readme_walkthrough_runs_as_written(tmp_path):
    # `. .venv/bin/activate` from the folder the gateway runs in, as the README says
    if (Path(sys.prefix) / "bin" / "activate").exists():
        (tmp_path / ".venv").symlink_to(sys.prefix)
    else:
        (tmp_path / ".venv" / "bin").mkdir(parents=True)
        (tmp_path / ".venv" / "bin" / "activate").write_text(f'export PATH="{BIN}:$PATH"\n')
    proc, http_url, grpc_target, printed = start_demo(tmp_path)
    try:
        assert any("demo: created the token 'demo'" in line for line in printed)
        assert re.search(r"demo:\s+sk-[A-Za-z0-9]{32,}", "".join(printed))
        script = "set -euo pipefail\n" + "\n".join(walkthrough_blocks())
        script = script.replace("http://127.0.0.1:8080", http_url).replace("127.0.0.1:50051", grpc_target)
        run = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
        out = run.stdout
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        proc.terminate()
        proc.wait(15)
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
    assert (tmp_path / "video.mp4").read_bytes()[4:8] == b"ftyp"
    assert "completed 4 1280x720" in out and (tmp_path / "waves.mp4").read_bytes()[4:8] == b"ftyp"
    assert "walkthrough" in out.split("TOKEN", 1)[-1]  # st-ai usage lists the token's requests
