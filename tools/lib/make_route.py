"""Writes a route from messages that already carry their times (imports, synthetic routes, test fixtures).

loggerd records a live stack with the clock of the moment; tools that build a route after the fact hand
their messages here instead. The layout is loggerd's (`<routes_dir>/<name>/<segment>/{rlog,qlog}.zst`, one
zstd frame per FLUSH_PERIOD of log time, qlog decimated per the services table), so LogReader, replay and
every other tool read both the same way. Segments are cut by the messages' own logMonoTime.
"""

import datetime
import json
import os
import shutil
from collections.abc import Iterable

from cereal.messaging import log_from_bytes
from cereal.services import SERVICES
from common.paths import routes_dir
from selfdrive.loggerd.route_writer import FLUSH_PERIOD, FrameWriter


class RouteExists(FileExistsError):
    """The route name is taken and overwriting was not asked for."""


def _as_bytes(msg) -> bytes:
    return bytes(msg) if isinstance(msg, bytes | bytearray | memoryview) else msg.to_bytes()


def write_route(messages: Iterable, name: str, segment_seconds: float = 60.0, meta: dict | None = None,
                overwrite: bool = False, root: str | None = None) -> str:
    """Writes `messages` (Event builders or bytes, in logMonoTime order) as route `name`; returns its path.

    Raises RouteExists when the route is there and `overwrite` is false, ValueError for messages out of
    time order (a route is a recording: its times only go forward within a writer).
    """
    if not segment_seconds > 0:
        raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
    if not name or "/" in name or name.isdigit() or name in (".", ".."):
        raise ValueError(f"bad route name {name!r}: a folder name that is not a number")
    root = routes_dir() if root is None else root
    path = os.path.join(root, name)
    if os.path.exists(path):
        if not overwrite:
            raise RouteExists(f"route {name!r} already exists at {path} (overwrite to replace it)")
        shutil.rmtree(path)
    os.makedirs(path)

    seg_ns, flush_ns = int(segment_seconds * 1e9), int(FLUSH_PERIOD * 1e9)
    counts = dict.fromkeys(SERVICES, 0)
    writers: tuple[FrameWriter, FrameWriter] | None = None
    segment, t_first, t_prev, last_flush, n = -1, None, None, 0, 0
    try:
        for msg in messages:
            dat = _as_bytes(msg)
            ev = log_from_bytes(dat)
            t, service = ev.logMonoTime, ev.which()
            if t_prev is not None and t < t_prev:
                raise ValueError(f"message {n} ({service}) at {t} ns comes before the previous one at {t_prev} ns")
            t_first = t if t_first is None else t_first
            if (t - t_first) // seg_ns != segment:
                segment = (t - t_first) // seg_ns
                _close(writers)
                os.makedirs(os.path.join(path, str(segment)))
                writers = tuple(FrameWriter(os.path.join(path, str(segment), f"{k}.zst")) for k in ("rlog", "qlog"))
                last_flush = t
            writers[0].add(dat)
            dec = SERVICES[service].decimation
            if dec is not None:
                if counts[service] % dec == 0:
                    writers[1].add(dat)
                counts[service] += 1
            if t - last_flush >= flush_ns:
                for w in writers:
                    w.flush()
                last_flush = t
            t_prev, n = t, n + 1
    finally:
        _close(writers)
    if n == 0:
        shutil.rmtree(path)
        raise ValueError(f"route {name!r}: no messages to write")
    info = {"name": name, "written": datetime.datetime.now().isoformat(timespec="seconds"),
            "segment_seconds": segment_seconds, "messages": n,
            "format": "rlog.zst/qlog.zst: independent zstd frames of framed capnp log.Event messages", **(meta or {})}
    with open(os.path.join(path, "route.json"), "w") as f:
        json.dump(info, f, indent=1)
    return path


def _close(writers: tuple[FrameWriter, FrameWriter] | None) -> None:
    if writers is not None:
        for w in writers:
            w.close()
