"""Reading recorded camera frames back: `road.mp4` videos (see selfdrive/loggerd/video_writer.py).

    index = frame_locations(LogReader(route))          # frameId -> where encoderd wrote it
    loc = index[frame_id]
    nv12 = FrameReader(os.path.join(route_path, loc.path)).get(loc.position)

Frames come back as NV12 (height*3/2, width), the layout VisionIPC serves. Reading forward is sequential
decoding; reading backwards reopens the file (segments are short, ~1200 frames, so this stays cheap).
"""

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import av
import numpy as np

from selfdrive.camerad.nv12 import i420_to_nv12


class FrameLocation(NamedTuple):
    segment: int
    position: int      # frame index inside the segment's video
    path: str          # relative to the route folder
    timestamp_eof: int


def frame_locations(events: Iterable) -> dict[int, FrameLocation]:
    """frameId -> FrameLocation from the `roadEncodeIdx` messages among `events` (e.g. a LogReader)."""
    out = {}
    for ev in events:
        if ev.which() == "roadEncodeIdx":
            e = ev.roadEncodeIdx
            out[e.frameId] = FrameLocation(e.segmentNum, e.segmentId, e.path, e.timestampEof)
    return out


class FrameReader:
    def __init__(self, path: str):
        self.path = path
        self._container = None
        self._frames: Iterator | None = None
        self._next = 0          # position of the frame the decoder yields next

    def _reopen(self) -> None:
        self.close()
        self._container = av.open(self.path)
        self._frames = self._container.decode(self._container.streams.video[0])
        self._next = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        self._reopen()
        for f in self._frames:
            self._next += 1
            yield self._nv12(f)

    @staticmethod
    def _nv12(f: av.VideoFrame) -> np.ndarray:
        return i420_to_nv12(f.to_ndarray(format="yuv420p"), f.width, f.height)

    def get(self, position: int) -> np.ndarray:
        """Frame `position` (0-based, display order) as NV12. IndexError past the end of the video."""
        if position < 0:
            raise IndexError(f"frame position {position} < 0")
        if self._frames is None or position < self._next:
            self._reopen()
        for f in self._frames:
            self._next += 1
            if self._next - 1 == position:
                return self._nv12(f)
        raise IndexError(f"{self.path} has {self._next} frames; no frame {position}")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
            self._frames = None
