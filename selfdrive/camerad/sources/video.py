"""A video file (H.264, HEVC, anything FFmpeg reads; MP4, MKV, TS...) through PyAV, resampled to 20 Hz.

Frame choice: output slot k shows the video at time t = k * 50 ms (from its first frame), i.e. the last
source frame whose timestamp is <= t, as a camera filming a screen would. A 25 fps file (the Udacity
clip) therefore shows source frames 0, 1, 2, 3, 5, 6, 7, 8, 10... (floor(1.25 k)): every 5th is skipped;
a 10 fps file shows each frame twice. The choice depends only on the slot, so it is the same in real time
and lockstep, and a slot skipped by a late camerad skips the video ahead instead of slowing it down.

Looping: a pass ends when t reaches the clip's end (last frame time + one frame period); the next slot
starts the next pass at the first frame. Without looping the source is then `ended`.

Timestamps are video time on the monotonic clock: end of exposure of slot k is `clock_start_ns + k * 50 ms`
(camerad passes the time of its slot 0), start of exposure one source frame period earlier. So lockstep
runs get the same timestamps, spaced 50 ms, however fast they go.
"""

import os
from fractions import Fraction

import av

from common.realtime import DT_MDL
from common.swaglog import cloudlog
from selfdrive.camerad.sources import Frame, SourceError

SLOT = Fraction(DT_MDL).limit_denominator(1000)   # 1/20 s, exact
SLOT_NS = round(DT_MDL * 1e9)


class VideoSource:
    name = "video"

    def __init__(self, path: str, loop: bool = False, clock_start_ns: int = 0):
        # clock_start_ns: camerad sets it to the time of its slot 0 once the file is open
        self.path = path
        self.loop = loop
        self.clock_start_ns = clock_start_ns
        self.ended = False
        self.dropped = 0             # decode errors
        self.native_size: tuple[int, int] | None = None
        self.passes = 0              # times the clip was (re)started
        self._container = None
        self._decoder = None
        self._pass_slot = 0          # the slot the current pass started on
        self._current = None         # (time, av.VideoFrame): the frame shown now
        self._pending = None         # the next decoded frame, not yet due
        self._bgr = None             # _current converted, kept for slots that show it again

    def open(self) -> None:
        if not os.path.isfile(self.path):
            raise SourceError(f"video {self.path}: no such file")
        try:
            self._start_pass(0)
        except (av.error.FFmpegError, IndexError, StopIteration, OSError) as e:
            self.close()
            why = "no video stream" if isinstance(e, IndexError) else "no frames" if isinstance(e, StopIteration) else e
            raise SourceError(f"video {self.path}: cannot be decoded ({why})") from None
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 20
        self.native_size = (stream.width, stream.height)
        self.period = Fraction(1, 1) / Fraction(rate)
        self.period_ns = int(self.period * 10**9)
        cloudlog.info("video opened", extra={"path": self.path, "codec": stream.codec_context.name,
                                             "width": stream.width, "height": stream.height, "fps": float(rate)})

    def _start_pass(self, slot: int) -> None:
        if self._container is not None:
            self._container.close()
        self._container = av.open(self.path)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"   # decode with frame threads: lockstep runs are decode-bound
        self._decoder = self._container.decode(stream)
        first = next(self._decoder)
        self._pts0 = first.pts or 0
        self._pending = (Fraction(0), first)
        self._current = self._bgr = None
        self._pass_slot = slot
        self.passes += 1

    def _next_frame(self):
        try:
            f = next(self._decoder)
        except StopIteration:
            return None
        except av.error.FFmpegError as e:
            self.dropped += 1
            cloudlog.warning("video decode error: treating it as the end of the clip", extra={"path": self.path,
                                                                                              "error": str(e)})
            return None
        # exact pts arithmetic (float seconds would drift over a long clip); no pts: assume the nominal rate
        t = Fraction(f.pts - self._pts0) * f.time_base if f.pts is not None else self._current[0] + self.period
        return (t, f)

    def read(self, slot: int, timeout_s: float = 0.0) -> Frame | None:
        if self.ended:
            return None
        t = (slot - self._pass_slot) * SLOT
        while self._pending is not None and self._pending[0] <= t:
            self._current, self._bgr = self._pending, None
            self._pending = self._next_frame()
        if self._pending is None and t >= self._current[0] + self.period:  # past the clip's end
            if not self.loop:
                self.ended = True
                cloudlog.info("video ended", extra={"path": self.path, "slot": slot})
                return None
            self._start_pass(slot)
            return self.read(slot)
        if self._bgr is None:
            self._bgr = self._current[1].to_ndarray(format="bgr24")
        eof = self.clock_start_ns + slot * SLOT_NS
        return Frame(self._bgr, eof - self.period_ns, eof)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
