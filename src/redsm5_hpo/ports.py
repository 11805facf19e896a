"""Local TCP ports for the servers ``ui`` starts: is one free, which one is."""

from __future__ import annotations

import socket
from collections.abc import Mapping

HOST = "127.0.0.1"


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server can listen on ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def busy_ports_problem(wanted: Mapping[str, int], host: str = HOST) -> str | None:
    """``wanted`` maps the command-line option that sets a port (``--mlflow-port``) to the port; for those
    taken, one line naming them and the options with free ports to use instead."""
    busy = {option: port for option, port in wanted.items() if not port_is_free(port, host)}
    if not busy:
        return None
    taken = ", ".join(str(port) for port in busy.values())
    options = " ".join(f"{option} {free_port(host)}" for option in busy)
    return f"port {taken} on {host} is in use; run ui again with a free one, e.g. adding `{options}`"
