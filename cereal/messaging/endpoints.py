"""Where sockets live. `ROADPILOT_PREFIX` selects one run directory, so stacks never cross-talk."""

import os

from cereal.services import SERVICES, TCP_PORTS
from common.paths import run_dir

__all__ = ["ipc_endpoint", "tcp_endpoint"]

MAX_IPC_PATH = 107  # sun_path is 108 bytes including the terminating NUL


def ipc_endpoint(service: str, create: bool = False) -> str:
    path = os.path.join(run_dir(create), service)
    if len(path) > MAX_IPC_PATH:
        raise ValueError(f"ipc socket path {path!r} is {len(path)} bytes; the OS allows {MAX_IPC_PATH}")
    return "ipc://" + path


def tcp_endpoint(service: str, host: str) -> str:
    """tcp endpoint of a service: a fixed port per service, so a remote reader needs only the host."""
    if service not in SERVICES:
        raise KeyError(f"unknown service {service!r}")
    return f"tcp://{host}:{TCP_PORTS[service]}"
