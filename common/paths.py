"""Where roadpilot keeps data on disk, and which run it belongs to.

`ROADPILOT_DATA` moves all of it (tests point it at a temp dir). `ROADPILOT_PREFIX` names one isolated run
(its sockets: cereal/messaging/endpoints.py): a run under another prefix keeps its params apart too, so two
stacks on one data folder never read each other's car, calibration or engagement. Routes share one folder
(their names never collide: selfdrive/loggerd/route_writer.py).
"""

import os
import re

DEFAULT_PREFIX = "default"
PREFIX_ENV = "ROADPILOT_PREFIX"
RUN_ROOT_ENV = "ROADPILOT_RUN_ROOT"
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def prefix() -> str:
    p = os.environ.get(PREFIX_ENV, DEFAULT_PREFIX)
    if not _PREFIX_RE.match(p):
        raise ValueError(f"{PREFIX_ENV}={p!r}: use 1-40 characters from A-Z a-z 0-9 _ . -")
    return p


def data_dir() -> str:
    return os.environ.get("ROADPILOT_DATA", os.path.join(os.path.expanduser("~"), ".roadpilot"))


def params_dir() -> str:
    p = prefix()
    return os.path.join(data_dir(), "params" if p == DEFAULT_PREFIX else f"params-{p}")


def routes_dir() -> str:
    return os.path.join(data_dir(), "routes")


def check_data_dir() -> str | None:
    """Why roadpilot cannot keep its data where ROADPILOT_DATA points (a file, unwritable), or None."""
    d = data_dir()
    probe = d
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return f"data folder {d} (ROADPILOT_DATA): {probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"data folder {d} (ROADPILOT_DATA): {probe} is not writable"
    return None


def run_dir(create: bool = False) -> str:
    """The run directory of this prefix: sockets and other per-run files (the driven clock, the published stamps).
    Short, so ipc paths fit."""
    d = os.path.join(os.environ.get(RUN_ROOT_ENV, "/tmp"), f"rp-{prefix()}")
    if create:
        os.makedirs(d, exist_ok=True)
    return d
