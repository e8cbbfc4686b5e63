"""Listening and serving: the socket is bound before the runs are loaded, so a port in use or
a bad host is one ``error:`` line at once; then uvicorn serves the app on that socket."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from xaikit.errors import XaikitError

LOOPBACK_NAMES = ("localhost",)


def parse_port(text: str | int) -> int:
    """A TCP port ``0..65535`` (0: any free port).

    Raises:
        XaikitError: not an integer in range.
    """
    raw = str(text).strip()
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise XaikitError(f"--port must be an integer 0..65535 (0: any free port), got {raw[:40]!r}")
    return int(raw)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (127.0.0.0/8, ::1, localhost)."""
    address = _address(host)
    return host.lower() in LOOPBACK_NAMES if address is None else address.is_loopback


def is_wildcard(host: str) -> bool:
    """Whether ``host`` means every interface (``0.0.0.0``, ``::``)."""
    address = _address(host)
    return address is not None and address.is_unspecified


def allowed_hosts(host: str) -> list[str]:
    """Host header values the server answers: the loopback names, the bound host, or any
    host when bound to every interface."""
    if is_wildcard(host):
        return ["*"]
    names = ["127.0.0.1", "localhost", "[::1]"]
    address = _address(host)
    bound = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else host.lower()
    return names if bound in names else [*names, bound]


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv4 or IPv6), not yet listening.

    Raises:
        XaikitError: the host does not resolve, or the port is in use or not allowed.
    """
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise XaikitError(f"cannot listen on {host!r}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise XaikitError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def url(sock: socket.socket) -> str:
    """The page's address: the bound one, or 127.0.0.1 for a socket on every interface."""
    host, port = sock.getsockname()[:2]
    if is_wildcard(host):
        host = "127.0.0.1"
    if isinstance(_address(host), ipaddress.IPv6Address):
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def serve(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` with uvicorn until interrupted (Ctrl-C)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=3)
    uvicorn.Server(config).run(sockets=[sock])
