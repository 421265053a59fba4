"""The road camera's video files and which segment folder they belong in.

Format: `<route>/<segment>/road.mp4`, H.264 (libx264, preset ultrafast, tune zerolatency, CRF 23) in a
*fragmented* MP4 with a keyframe every second (20 frames). A plain MP4 is unreadable until its index is
written at close; a fragmented one is readable up to its last complete fragment, so a killed encoderd
loses at most the last second, like loggerd's rlog. Frame n of the file (in display order, from 0) is the
n-th frame written: `roadEncodeIdx.segmentId`. Timestamps in the file are n / 20 s (constant rate), the
real ones are in the index. Any player opens it; tools/lib/framereader.py reads frame n back.
"""

import contextlib
import os
from fractions import Fraction

import av
import numpy as np

from common.swaglog import cloudlog

VIDEO_NAME = "road.mp4"
FPS = 20
CRF = 23                 # x264's default: ~38-40 dB PSNR on road scenes, ~1-2 MB/s at 1164x874
GOP = FPS                # a keyframe per second: bounds crash loss and seeking
MUX_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}


class VideoWriter:
    """One segment's video. `write(nv12)` returns the frame's position in the file."""

    def __init__(self, path: str, width: int, height: int):
        self.path = path
        self.container = av.open(path, "w", format="mp4", options=MUX_OPTIONS)
        self.stream = self.container.add_stream("libx264", rate=FPS)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "nv12"
        self.stream.codec_context.time_base = Fraction(1, FPS)
        self.stream.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": str(CRF), "g": str(GOP)}
        self.frames = 0

    def write(self, nv12: np.ndarray) -> int:
        frame = av.VideoFrame.from_ndarray(nv12, format="nv12")
        frame.pts = self.frames
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1
        return self.frames - 1

    def close(self) -> None:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()


class SegmentTracker:
    """Follows loggerd: the route named in `<run_dir>/current_route` and its newest segment folder.

    loggerd creates folder n + 1 when it rolls over, so a frame belongs to the newest folder that exists when
    it is received: the video splits within a frame of where the logs split.
    """

    def __init__(self, current_route_file: str, routes_dir: str):
        self.current_route_file, self.routes_dir = current_route_file, routes_dir
        self.route: str | None = None
        self.segment = -1
        self._missing_logged = False

    def poll(self) -> tuple[str, int] | None:
        """(route folder, segment number) being recorded now, or None when no route is."""
        try:
            with open(self.current_route_file) as f:
                name = f.read().strip()
        except FileNotFoundError:
            name = ""
        path = os.path.join(self.routes_dir, name)
        if not name or not os.path.isdir(path):
            if not self._missing_logged:
                cloudlog.info("no route being recorded: frames are not encoded", extra={"route": name or None})
                self._missing_logged = True
            self.route = None
            return None
        self._missing_logged = False
        if name != self.route:
            self.route = name
            with contextlib.suppress(FileNotFoundError):
                self.segment = max((int(d) for d in os.listdir(path) if d.isascii() and d.isdigit()), default=-1)
        while os.path.isdir(os.path.join(path, str(self.segment + 1))):
            self.segment += 1
        return (path, self.segment) if self.segment >= 0 else None
