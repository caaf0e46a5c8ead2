"""The processes of scripts/bench.py and scripts/soak.py: starting and stopping them (pinned
to cores, ended with their conductor even when it is killed) and reading what they use from
/proc (CPU time, memory, open file descriptors)."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
READY = re.compile(r"st-ai ready: REST (http://\S+)/v1\s+gRPC (\S+)")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- /proc readings -----------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of stat); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def busy_seconds() -> float:
    """CPU time all processes on the machine have used (/proc/stat), in seconds."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def family(pid: int) -> list[int]:
    """`pid` and its children (the workers of `serve --workers`), from /proc/*/stat."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return pids


def family_cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in family(pid):
        try:
            total += cpu_seconds(member)
        except OSError:  # a worker that just ended
            continue
    return total


def family_memory_mb(pid: int) -> tuple[float, float]:
    """The largest (VmRSS, VmHWM) among `pid` and its workers: the target is per worker."""
    readings = []
    for member in family(pid):
        try:
            readings.append(memory_mb(member))
        except OSError:
            continue
    return max(r[0] for r in readings), max(r[1] for r in readings)


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    rss = hwm = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return rss, hwm


def open_fds(pid: int) -> int:
    """How many file descriptors `pid` has open (/proc/PID/fd)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def family_open_fds(pid: int) -> int:
    """Open file descriptors of `pid` and its workers together."""
    total = 0
    for member in family(pid):
        try:
            total += open_fds(member)
        except OSError:
            continue
    return total


# -- processes ------------------------------------------------------------------------------

def child_setup(core: int | set[int] | None):
    """Runs in the child before exec: pin it to `core` (so every thread it ever starts
    inherits that), and have the kernel SIGTERM it should the bench die without cleaning up."""
    def setup() -> None:
        if core is not None:
            os.sched_setaffinity(0, core if isinstance(core, set) else {core})
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    return setup


class Processes:
    """Everything the bench started, stopped in reverse order at exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], log: Path, core: int | set[int] | None,
              env: dict | None = None) -> subprocess.Popen:
        log_file = open(log, "wb")
        try:
            proc = subprocess.Popen(
                argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})}, preexec_fn=child_setup(core))
        finally:
            log_file.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def refuse_careless(parser, args, counts: tuple[str, ...] = (), seconds: tuple[str, ...] = ()) -> None:
    """A bench's numeric options, refused in one line before anything starts: `counts` (attribute
    names) at least 1 when given, `seconds` above 0 and at most an hour (nan refused too)."""
    for name in counts:
        if (value := getattr(args, name)) is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} is at least 1")
    for name in seconds:
        if not 0 < getattr(args, name) <= 3600:
            parser.error(f"--{name.replace('_', '-')} is a number of seconds above 0, at most 3600")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a process that takes its port as an argument."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, check, proc: subprocess.Popen, log: Path, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"{what} did not start:\n{tail}")


def start_upstream(procs: Processes, tmp: Path, core: int | None, chunks: int,
                   chunk_delay: float = 0.0) -> tuple[subprocess.Popen, str]:
    """scripts/bench_upstream.py in a process of its own; returns it and its base URL."""
    port_file = tmp / "upstream.port"
    log = tmp / "upstream.log"
    proc = procs.start([sys.executable, str(SCRIPTS / "bench_upstream.py"), "--chunks", str(chunks),
                        "--chunk-delay", str(chunk_delay), "--port-file", str(port_file)], log, core)
    port = wait_for("the upstream", lambda: port_file.exists() and port_file.read_text(), proc, log)
    return proc, f"http://127.0.0.1:{port}/v1"


def start_gateway(procs: Processes, tmp: Path, db_path: Path, core: int | set[int] | None, name: str,
                  env: dict | None = None, extra: tuple[str, ...] = (),
                  workers: int = 1) -> tuple[subprocess.Popen, str, str, Path]:
    log = tmp / f"gateway-{name}.log"
    proc = procs.start([sys.executable, "-m", "server.cli", "serve", "--db", str(db_path), "--host", "127.0.0.1",
                        "--http-port", "0", "--grpc-port", "0", "--workers", str(workers), *extra], log, core,
                       env={"ST_AI_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", **(env or {})})

    def ready():
        match = READY.search(log.read_text(errors="replace")) if log.exists() else None
        return match and (match.group(1) + "/v1", match.group(2))

    base_url, grpc_target = wait_for(f"st-ai ({name})", ready, proc, log)
    return proc, base_url, grpc_target, log


def logged_problems(log: Path) -> list[str]:
    """The warnings and errors a gateway logged (not its ready line, nor the demo token or
    admin key it prints once at a first start)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line for line in text.splitlines() if re.search(r" (WARNING|ERROR|CRITICAL) ", line)]
