"""REST throughput phases driven by wrk (HTTP/1.1 keep-alive, the tool issue 11 measured
with), for scripts/bench.py's load generator.

wrk runs for a wall-clock time and, stopped, drops the requests it has in flight; a
request cut that way may or may not reach st-ai's ledger, which would make the bench's
"one ledger row per request sent" check a guess. So the Lua script sends the booked
request (a chat completion) only until a deadline, then `GET /healthz` (never booked or
counted; another gateway's own cheap path for the peers of scripts/bench_peers.py) until
every booked answer is in; it then writes a marker file and the load
generator stops wrk. Each booked answer is checked (status 200, a `Server-Timing`
header, a whole body: the choices, or every SSE event up to `[DONE]`) and the figures are
the script's own: booked requests sent, answered well, and the time from the first sent
to the last answered (CLOCK_MONOTONIC through LuaJIT's ffi, the clock Python's
time.monotonic reads).
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import shutil
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

RESULT_PREFIX = "ST_AI_WRK "
IDLE = ("/healthz", '{"status":"ok"}')  # st-ai's and the bench upstream's: never booked or counted

_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } st_ai_timespec;
int clock_gettime(int clk_id, st_ai_timespec *tp);
]]
local clock = ffi.new("st_ai_timespec")
local function now()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

local deadline = %(deadline)s
local events = %(events)d  -- SSE events a whole stream has (0: not a stream)
local at_least = %(at_least)s  -- a gateway that splits events: `events` or more
local idle_body = %(idle_body)s
local marker = %(marker)s
local booked, idle
local threads = {}

sent, answered, bad, no_timing, first_sent, last_answered = 0, 0, 0, 0, 0, 0
local marked = false
local verifying = true  -- wrk calls request() once before the run, to check what it returns

function setup(thread)
  table.insert(threads, thread)
end

function init(args)  -- once wrk has set the Host header
  booked = wrk.format("POST", %(path)s, {%(headers)s}, %(body)s)
  idle = wrk.format("GET", %(idle_path)s, {})
end

function request()
  if verifying then
    verifying = false
    return booked
  end
  local t = now()
  if t < deadline then
    if sent == 0 then first_sent = t end
    sent = sent + 1
    return booked
  end
  return idle
end

local function whole(body)
  if events == 0 then
    return body:find('"choices"', 1, true) ~= nil
  end
  local _, count = body:gsub("data: ", "")
  return (count == events or (at_least and count > events)) and body:find("data: [DONE]", 1, true) ~= nil
    and body:find('"error"', 1, true) == nil
end

function response(status, headers, body)
  -- the idle path answers exactly this; a booked answer never does
  if status ~= 200 or body ~= idle_body then
    answered = answered + 1
    last_answered = now()
    if status ~= 200 or not whole(body) then bad = bad + 1 end
    if headers["Server-Timing"] == nil and headers["server-timing"] == nil then no_timing = no_timing + 1 end
  end
  if not marked and answered == sent and now() >= deadline then
    marked = true
    local f = io.open(marker, "w")
    if f then f:write("done") f:close() end
  end
end

function done(summary, latency, requests)
  local t = threads[1]
  local errors = summary.errors
  io.write(string.format(
    '%(prefix)s{"sent": %%d, "answered": %%d, "bad": %%d, "no_timing": %%d, "first_sent": %%.6f, ' ..
    '"last_answered": %%.6f, "connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}\n',
    t:get("sent"), t:get("answered"), t:get("bad"), t:get("no_timing"), t:get("first_sent"),
    t:get("last_answered"), errors.connect, errors.read, errors.write, errors.timeout))
end
"""


def available() -> str | None:
    """wrk's path, when it is installed."""
    return shutil.which("wrk")


def _lua_string(text: str) -> str:
    """`text` as a Lua string literal (decimal escapes for anything not plain ASCII)."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        out.append(char if 32 <= byte < 127 and char not in '"\\' else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def script(base_url: str, auth: str, body: bytes, deadline: float, events: int, marker: Path,
           headers: dict | None = None, idle: tuple[str, str] = IDLE, at_least: bool = False) -> str:
    path = urlsplit(base_url).path.rstrip("/") + "/chat/completions"
    sent = {"Authorization": f"Bearer {auth}", "Content-Type": "application/json", **(headers or {})}
    return _SCRIPT % {"deadline": repr(deadline), "events": events, "marker": _lua_string(str(marker)),
                      "path": _lua_string(path), "body": _lua_string(body.decode()), "prefix": RESULT_PREFIX,
                      "headers": ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in sent.items()),
                      "idle_path": _lua_string(idle[0]), "idle_body": _lua_string(idle[1]),
                      "at_least": "true" if at_least else "false"}


async def run(base_url: str, auth: str, body: bytes, events: int, connections: int, seconds: float,
              workdir: Path, timeout: float, on_deadline=None, headers: dict | None = None,
              idle: tuple[str, str] = IDLE, at_least: bool = False) -> dict:
    """One throughput phase of `seconds` through wrk. `on_deadline()` is called at the
    deadline (the caller reads the gateway's CPU time there). Returns wrk's figures and
    its CPU seconds."""
    marker = workdir / "wrk.done"
    marker.unlink(missing_ok=True)
    script_path = workdir / "bench.lua"
    origin = urlsplit(base_url)
    started = time.monotonic()
    deadline = started + 0.2 + seconds  # wrk connects in the first few milliseconds
    script_path.write_text(script(base_url, auth, body, deadline, events, marker, headers, idle, at_least))
    children_cpu0 = _children_cpu()
    # -d only bounds wrk should the marker never come (a stalled gateway): it is stopped
    # with SIGINT once every booked answer is in
    proc = await asyncio.create_subprocess_exec(
        available() or "wrk", "-t1", f"-c{connections}", f"-d{math.ceil(seconds + timeout) + 1}s",
        f"--timeout={math.ceil(timeout)}s", "-s", str(script_path), f"{origin.scheme}://{origin.netloc}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        deadline_reading = on_deadline() if on_deadline else None
        limit = time.monotonic() + timeout
        while not marker.exists() and proc.returncode is None and time.monotonic() < limit:
            await asyncio.sleep(0.01)
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), timeout + 5)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    line = next((line for line in out.decode(errors="replace").splitlines() if line.startswith(RESULT_PREFIX)), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result (exit {proc.returncode}): {err.decode(errors='replace')[-500:]}")
    result = json.loads(line[len(RESULT_PREFIX):])
    result["cpu"] = _children_cpu() - children_cpu0
    result["deadline_reading"] = deadline_reading
    result["window"] = deadline - started
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":  # pragma: no cover - a quick look at the generated script
    print(script("http://127.0.0.1:8080/v1", "sk-x", b'{"a": "b"}', time.monotonic() + 1, 0,
                 Path(os.devnull)))
