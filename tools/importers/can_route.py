"""Imported CAN as a roadpilot route: what every importer writes the same way (comma2k19, canlog).

Frames become `can` messages as canbridged publishes them, one per 10 ms window from the first frame on, stamped
with the window's end in the source's own seconds; an empty window gives an empty message (a silent bus stays
visible). `write_import` is `write_route` for an import: a failure leaves no half-written route behind.
"""

import os
import shutil
from collections.abc import Iterable, Iterator

import numpy as np
from opendbc.car.can_definitions import CanData

from cereal.can_frames import can_list_message
from common.paths import routes_dir
from tools.lib.make_route import write_route

BATCH_S = 0.01        # canbridged publishes one `can` message per 10 ms


def can_messages(t: np.ndarray, frames: list[CanData]) -> Iterator:
    """One `can` Event per 10 ms window from the first frame on, stamped with the window's end.
    `t`: each frame's time in seconds, in order; `frames`: the frames, in the same order."""
    t0 = float(t[0])
    n_windows = int((float(t[-1]) - t0) / BATCH_S) + 1
    ends = t0 + BATCH_S * np.arange(1, n_windows + 1)
    cuts = np.searchsorted(t, ends, side="left")
    prev = 0
    for end, cut in zip(ends.tolist(), cuts.tolist(), strict=True):
        batch = frames[prev:cut]
        msg = can_list_message("can", batch)
        msg.logMonoTime = int(round(end * 1e9))
        prev = cut
        yield msg


def write_import(messages: Iterable, name: str, segment_seconds: float, meta: dict, overwrite: bool,
                 root: str | None = None) -> str:
    """`write_route` (same arguments and errors); when it fails, the route folder it was writing is removed, but
    never a route that was there and not asked to be replaced, nor a folder outside `root` (a name write_route
    refuses, such as "..", may point there)."""
    root = routes_dir() if root is None else root
    path = os.path.normpath(os.path.join(root, name))
    ours = os.path.dirname(path) == os.path.normpath(root) and (overwrite or not os.path.exists(path))
    try:
        return write_route(messages, name, segment_seconds, meta, overwrite, root=root)
    except BaseException:
        if ours:
            shutil.rmtree(path, ignore_errors=True)
        raise
