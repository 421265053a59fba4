"""Camera sources: one file each, one tiny interface.

    src.open()                       # raises SourceError with a clear message: missing device, unreadable file
    src.read(slot, timeout_s)        # -> Frame, or None: no frame (yet, or any more)
    src.close()

`slot` is the 20 Hz output slot camerad is filling (slot k is k * 50 ms after camerad started). The video
source uses it to pick the frame shown at that time; live sources (webcam, sim) ignore it and return
their newest frame not handed out yet, waiting at most `timeout_s` for one. `ended` is True once a
finite source (a video without --loop) has nothing more to give.

A Frame's image is BGR (h, w, 3) of any size (camerad fits it to the camera size) or NV12 already of the
camera size. frame_id None means "number it by slot"; the sim source passes the simulator's own ids.
"""

from typing import NamedTuple, Protocol

import numpy as np

from common.transformations.camera import CameraModel


class SourceError(RuntimeError):
    """A source that cannot start: the message says what is missing or wrong."""


class Frame(NamedTuple):
    image: np.ndarray
    sof_ns: int            # start of exposure, monotonic ns
    eof_ns: int            # end of exposure, monotonic ns
    frame_id: int | None = None
    camera: CameraModel | None = None  # the camera that took it, where the source knows it exactly (the sim)


class FrameSource(Protocol):
    name: str
    ended: bool
    dropped: int           # frames the source itself had to skip or reject (bad size, read errors)
    clock_start_ns: int    # monotonic ns of slot 0, set by camerad before the first read
    native_size: tuple[int, int] | None  # its pictures' (width, height) once open; None: not known (sim)

    def open(self) -> None: ...

    def read(self, slot: int, timeout_s: float) -> Frame | None: ...

    def close(self) -> None: ...
