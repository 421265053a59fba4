"""uid's settings: where it serves and what it sends. Light on imports, so the CLI can print the URL."""

import fcntl
import os
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"   # loopback: the car's screen or a laptop on the same machine; a LAN needs --host
DEFAULT_PORT = 8880
PORT_LOCKS = os.path.join(tempfile.gettempdir(), "roadpilot-ui-ports")  # one lock file per port, machine-wide
_claimed: list[int] = []      # this process's port locks (file descriptors), held until it exits
PORT_SEARCH = 100             # a run without ROADPILOT_UI_PORT takes the first free port of DEFAULT_PORT.. +this
HOST_ENV, PORT_ENV = "ROADPILOT_UI_HOST", "ROADPILOT_UI_PORT"


@dataclass(frozen=True)
class UiConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    width: int = 582         # JPEG width: half the model camera, ~15-45 KB a frame at quality 70 (~0.5 MB/s at 20 fps)
    quality: int = 70
    fps: float = 20.0        # at most this many frames a second to the pages


def env_defaults(env: Mapping[str, str] = os.environ) -> tuple[str, int]:
    """(host, port) from ROADPILOT_UI_HOST / ROADPILOT_UI_PORT, else the defaults (a bad port is an error)."""
    port = env.get(PORT_ENV, "").strip()
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"{PORT_ENV} must be a port number (1-65535), got {port!r}")
    return env.get(HOST_ENV, "").strip() or DEFAULT_HOST, int(port) if port else DEFAULT_PORT


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def claim_port(port: int) -> bool:
    """Claims `port` for this process's run until it exits (an flock on a file per port in the temp folder), so two
    runs started together cannot both pick it before either uid binds it. False when another run holds it."""
    os.makedirs(PORT_LOCKS, exist_ok=True)
    fd = os.open(os.path.join(PORT_LOCKS, f"{port}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _claimed.append(fd)  # kept open: the kernel drops the lock when this process ends, however it ends
    return True


def with_free_port(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with ROADPILOT_UI_PORT set: as given, or the first free port from DEFAULT_PORT on that no other run has
    claimed (claim_port), so a second stack (another ROADPILOT_PREFIX) gets its own page instead of a uid that
    cannot bind. ValueError on a bad port or when none is free."""
    host, port = env_defaults(env)
    if env.get(PORT_ENV, "").strip():
        return dict(env)
    for p in range(port, port + PORT_SEARCH):
        if port_is_free(host, p) and claim_port(p):
            return {**env, PORT_ENV: str(p)}
    raise ValueError(f"no free port for the UI in {port}-{port + PORT_SEARCH - 1}: set {PORT_ENV}")


def ui_url(env: Mapping[str, str] = os.environ) -> str:
    """The page's address as the manager will start uid (0.0.0.0 binds every interface: loopback reaches it)."""
    host, port = env_defaults(env)
    host = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/"
