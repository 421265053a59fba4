"""Where sockets live. `ROADPILOT_PREFIX` selects one run directory, so stacks never cross-talk."""

import os
import re

from cereal.services import SERVICES, TCP_PORTS

MAX_IPC_PATH = 107  # sun_path is 108 bytes including the terminating NUL
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def prefix() -> str:
    p = os.environ.get("ROADPILOT_PREFIX", "default")
    if not _PREFIX_RE.match(p):
        raise ValueError(f"ROADPILOT_PREFIX={p!r}: use 1-40 characters from A-Z a-z 0-9 _ . -")
    return p


def run_dir(create: bool = False) -> str:
    """The run directory of this prefix: sockets and other per-run files. Short, so ipc paths fit."""
    d = os.path.join(os.environ.get("ROADPILOT_RUN_ROOT", "/tmp"), f"rp-{prefix()}")
    if create:
        os.makedirs(d, exist_ok=True)
    return d


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
