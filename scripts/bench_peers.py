"""The gateways issue 11 measures st-ai against, run beside it by scripts/bench.py
(`--portkey DIR`, `--litellm PATH`): each is started on the gateway's core, pointed at the
bench's upstream, loaded exactly as st-ai's REST rows are, and measured the same way (its
process tree's CPU time and memory). Their figures come from the same run as st-ai's, so
the host's mood, which moves everything by 20-30% between runs, cancels out of the ratios.

  * Portkey's AI gateway (node): `npm install` in a folder of its own, with
    `@portkey-ai/gateway`, and `@hono/node-server` held at 1.13.8 through `overrides`: later
    versions make every streamed answer fail with `TypeError: immutable` (Portkey issue
    1389). It runs on the `node` on PATH, or the one --node names (Node 22 serves it about
    a quarter faster than Node 20 on this kind of machine). Requests name the upstream per
    request, as Portkey's clients do (`x-portkey-provider: openai`,
    `x-portkey-custom-host`); it keeps no books.
  * LiteLLM's proxy: its own virtualenv with `pip install 'litellm[proxy]'`. One model
    routed to the upstream by a config file, one worker, a master key (it refuses to start
    without one) and no database, so it checks the key and keeps no books either.

Both run as their projects ship them, logs included. Neither is installed by st-ai.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import HTTPError, URLError

from bench_proc import Processes, wait_for
from bench_upstream import MODEL, UPSTREAM_KEY

START_TIMEOUT = 120.0  # seconds: LiteLLM's proxy takes 10-30 s to start on this kind of machine
CALL_TIMEOUT = 10.0
LITELLM_KEY = "sk-bench-litellm-master-key-not-secret"  # 127.0.0.1 only, for one run
PORTKEY_PACKAGE = Path("node_modules") / "@portkey-ai" / "gateway"


@dataclass(frozen=True)
class Peer:
    """A running gateway of another project, as the load generator calls it."""
    name: str  # its rows' path, with its version
    proc: object  # subprocess.Popen
    base_url: str  # ends in /v1
    auth: str  # the bearer key it takes
    headers: dict = field(default_factory=dict)  # sent with every request
    idle_path: str = "/"  # a cheap GET, and what it answers: the wrk phases idle on it
    idle_body: str = ""


def portkey_entry(folder: Path) -> Path:
    """The gateway's start script in `folder` (where `npm install @portkey-ai/gateway` ran,
    or the package's own folder); ValueError saying what is missing otherwise."""
    for package in (folder / PORTKEY_PACKAGE, folder):
        entry = package / "build" / "start-server.js"
        if entry.is_file() and (package / "package.json").is_file():
            return entry
    raise ValueError(f"no Portkey gateway in {folder} (expected {folder / PORTKEY_PACKAGE}/build/start-server.js; "
                     "install it there with `npm install @portkey-ai/gateway`)")


def litellm_entry(path: Path) -> Path:
    """The `litellm` executable: `path` itself, or `bin/litellm` of the virtualenv at `path`."""
    for candidate in (path, path / "bin" / "litellm"):
        if candidate.is_file():
            return candidate
    raise ValueError(f"no litellm executable at {path} (make a virtualenv and `pip install 'litellm[proxy]'` in it)")


def node_version(node: str) -> str:
    """`node --version` without its "v"; ValueError when `node` does not run."""
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ValueError(f"Portkey's gateway needs node: {node!r} does not run ({exc})") from None
    return out.stdout.strip().removeprefix("v")


def start_portkey(procs: Processes, tmp: Path, core: int | None, upstream_url: str, port: int, *,
                  folder: Path, node: str = "node") -> Peer:
    entry = portkey_entry(folder)
    runtime = node_version(node)
    version = json.loads((entry.parent.parent / "package.json").read_text()).get("version", "?")
    log = tmp / "portkey.log"
    proc = procs.start([shutil.which(node) or node, str(entry), f"--port={port}", "--headless"], log, core)
    peer = Peer(f"Portkey {version} (node {runtime})", proc, f"http://127.0.0.1:{port}/v1", UPSTREAM_KEY,
                {"x-portkey-provider": "openai", "x-portkey-custom-host": upstream_url},
                "/", "AI Gateway says hey!")
    return _ready(peer, log)


def start_litellm(procs: Processes, tmp: Path, core: int | None, upstream_url: str, port: int, *,
                  path: Path) -> Peer:
    exe = litellm_entry(path)
    config = tmp / "litellm.yaml"
    # JSON is YAML: no YAML writer needed
    config.write_text(json.dumps({
        "model_list": [{"model_name": MODEL, "litellm_params": {
            "model": f"openai/{MODEL}", "api_base": upstream_url, "api_key": UPSTREAM_KEY}}],
        "general_settings": {"master_key": LITELLM_KEY},
    }, indent=2))
    log = tmp / "litellm.log"
    proc = procs.start([str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                        "--num_workers", "1"], log, core, env={"LITELLM_TELEMETRY": "False"})
    version = _litellm_version(exe)
    peer = Peer(f"LiteLLM {version}", proc, f"http://127.0.0.1:{port}/v1", LITELLM_KEY, {},
                "/health/liveliness", '"I\'m alive!"')
    return _ready(peer, log)


def _litellm_version(exe: Path) -> str:
    # the package's metadata in the virtualenv the executable belongs to
    for meta in exe.resolve().parent.parent.glob("lib/python*/site-packages/litellm-*.dist-info/METADATA"):
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return "?"


def _ready(peer: Peer, log: Path) -> Peer:
    """Wait until `peer` answers its idle path, then check it relays a whole answer and a
    stream from the upstream; RuntimeError saying what failed otherwise."""
    origin = peer.base_url.removesuffix("/v1")

    def answers() -> bool:
        try:
            with urllib.request.urlopen(origin + peer.idle_path, timeout=CALL_TIMEOUT) as answer:
                return answer.status == 200 and answer.read().decode(errors="replace") == peer.idle_body
        except (URLError, OSError):
            return False
    wait_for(peer.name, answers, peer.proc, log, START_TIMEOUT)
    for stream in (False, True):
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}], "stream": stream}
        request = urllib.request.Request(peer.base_url + "/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {peer.auth}",
                                                  "Content-Type": "application/json", **peer.headers})
        try:
            with urllib.request.urlopen(request, timeout=CALL_TIMEOUT) as answer:
                text, ok = answer.read().decode(errors="replace"), answer.status == 200
        except HTTPError as exc:
            text, ok = exc.read().decode(errors="replace"), False
        except (URLError, OSError) as exc:
            text, ok = str(exc), False
        if not ok or ("data: [DONE]" not in text if stream else '"choices"' not in text):
            hint = (" (Portkey with @hono/node-server above 1.13: pin it, see scripts/bench_peers.py)"
                    if stream and peer.name.startswith("Portkey") and "Something went wrong" in text else "")
            raise RuntimeError(f"{peer.name} did not relay a {'stream' if stream else 'whole answer'}: "
                               f"{text[:300]}{hint}")
    return peer
