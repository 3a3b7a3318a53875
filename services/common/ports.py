"""TCP ports: flag validation and binding that fails with the cause in plain words."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Callable


def tcp_port(lowest: int = 0) -> Callable[[str], int]:
    """argparse type: a TCP port in `lowest`..65535 (0 means: any free port)."""

    def parse(text: str) -> int:
        try:
            port = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
        if not lowest <= port <= 65535:
            raise argparse.ArgumentTypeError(f"{port} is not a TCP port ({lowest}..65535)")
        return port

    return parse


def bind_listener(host: str, port: int, what: str) -> socket.socket:
    """A socket bound to host:port (SO_REUSEADDR, as servers set it); OSError naming `what`
    and the cause when the port is taken or the address is not ours."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen for {what} on {host}:{port}: "
                               f"{e.strerror or e}") from None
    return sock
