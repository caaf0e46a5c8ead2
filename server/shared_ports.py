"""The REST and gRPC ports of `st-ai serve --workers N`, shared by its worker processes
through SO_REUSEPORT: each worker listens on the port itself and the kernel spreads new
connections over the workers' listeners.

The parent reserves each port with a socket that is bound but never listens: the kernel
hands connections only to listening sockets, so the parent gets none, while the port
stays st-ai's (port 0 is resolved once, and nothing else can take the port while a
worker restarts). SO_REUSEPORT lets only sockets of the same user that also ask for it
join, so the parent first binds without it: a port held by anyone, another st-ai's
workers included, is refused as busy."""
from __future__ import annotations

import errno
import socket


def reserve(host: str, port: int, what: str, option: str) -> socket.socket:
    """Hold `host:port` (0: a free port) for the workers; OSError, one line, if it is busy."""
    try:
        with _socket(host, reuse_address=True, shared=False) as probe:  # refused if anyone holds the port
            probe.bind((host, port))
            port = probe.getsockname()[1]
        # Without SO_REUSEADDR: a program binding the port with it (most servers) is refused.
        held = _socket(host, reuse_address=False, shared=True)
        try:
            held.bind((host, port))
        except OSError:
            held.close()
            raise
        return held
    except OSError as exc:
        hint = f" (is another st-ai running? choose another with {option})" if exc.errno == errno.EADDRINUSE else ""
        raise OSError(f"cannot listen for {what} on {host}:{port}: {exc.strerror or exc}{hint}") from None


def join(host: str, port: int, listen: bool) -> socket.socket:
    """A worker's own socket on a port its parent reserved: listening (REST), or only
    bound (the gRPC placeholder, closed when the gRPC server binds the port itself: a
    listening one would take connections it never accepts)."""
    sock = _socket(host, reuse_address=True, shared=True)
    try:
        sock.bind((host, port))
        if listen:
            sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot share {host}:{port} with the other workers: {exc.strerror or exc}") from None
    return sock


def _socket(host: str, reuse_address: bool, shared: bool) -> socket.socket:
    # as socket.create_server does: SO_REUSEADDR (a restart is not refused for connections
    # in TIME_WAIT), and an IPv6 address serves IPv6 only
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    except OSError:
        sock.close()
        raise
    return sock
