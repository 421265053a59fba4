"""A V4L2 webcam (`/dev/videoN`) through OpenCV.

A thread reads the camera as fast as it delivers (usually 30 fps) and keeps only the newest frame, so the
20 Hz consumer always gets a fresh picture and the driver's queue never builds up latency. `read()`
returns that frame once. The camera's own mode (size, fps) is used as it comes; camerad fits the picture
to the model camera (scale to cover, centre crop).

Timestamps: OpenCV gives no exposure times, so end of exposure is when the frame reached us and start of
exposure is one camera frame period earlier: an estimate, good to a frame.

A camera that stops delivering (unplugged, driver error) shows up as reads that fail: each is counted in
`dropped`, and after REOPEN_AFTER failures in a row the device is opened again, once a second, until it
comes back. Meanwhile read() returns None and camerad reports the stall.
"""

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import cv2

from common.swaglog import cloudlog, log_due
from selfdrive.camerad.sources import Frame, SourceError

REOPEN_AFTER = 10     # failed reads in a row before the device is reopened
RETRY_S = 0.1         # pause after a failed read (a failing driver returns at once: don't spin)
DEFAULT_FPS = 30.0


def open_v4l2(device: str) -> Any:
    return cv2.VideoCapture(device, cv2.CAP_V4L2)


class WebcamSource:
    name = "webcam"

    def __init__(self, device: str, capture_factory: Callable[[str], Any] = open_v4l2):
        # capture_factory: the device edge. Anything with isOpened(), read() -> (ok, bgr), get(prop), release().
        self.device = device
        self._factory = capture_factory
        self.ended = False
        self.dropped = 0
        self.native_size: tuple[int, int] | None = None
        self.clock_start_ns = 0  # unused: frames carry their own capture times
        self.reopens = 0
        self._cap: Any = None
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._seq = 0        # frames captured
        self._taken = 0      # seq of the frame read() last handed out
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        if self._factory is open_v4l2 and not os.path.exists(self.device):
            raise SourceError(f"webcam {self.device}: no such device (is the camera plugged in? see `ls /dev/video*`)")
        cap = self._factory(self.device)
        if cap is None or not cap.isOpened():
            raise SourceError(f"webcam {self.device}: OpenCV cannot open it (not a capture device, busy, or no "
                              "permission: is the user in the `video` group?)")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.native_size = (w, h) if w >= 16 and h >= 16 else None  # None: camerad's default size
        self.period_ns = int(1e9 / (fps if 1.0 <= fps <= 240.0 else DEFAULT_FPS))
        self._thread = threading.Thread(target=self._capture_loop, name="webcam", daemon=True)
        self._thread.start()

    def _capture_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            ok, img = self._cap.read() if self._cap is not None else (False, None)
            eof = time.monotonic_ns()
            if ok and img is not None:
                failures = 0
                with self._cond:
                    self._latest = Frame(img, eof - self.period_ns, eof)
                    self._seq += 1
                    self._cond.notify_all()
                continue
            failures += 1
            self.dropped += 1
            if log_due(self.dropped):
                cloudlog.warning("webcam read failed", extra={"device": self.device, "failed_total": self.dropped})
            if failures >= REOPEN_AFTER and failures % REOPEN_AFTER == 0:
                self._reopen()
            self._stop.wait(RETRY_S)

    def _reopen(self) -> None:
        if self._cap is not None:
            self._cap.release()
        cap = self._factory(self.device)
        self._cap = cap if cap is not None and cap.isOpened() else None
        self.reopens += 1
        cloudlog.info("webcam reopened", extra={"device": self.device, "ok": self._cap is not None,
                                                "reopens": self.reopens})

    def read(self, slot: int, timeout_s: float) -> Frame | None:
        with self._cond:
            self._cond.wait_for(lambda: self._seq > self._taken or self._stop.is_set(), timeout=max(0.0, timeout_s))
            if self._seq == self._taken:
                return None
            self._taken = self._seq
            return self._latest

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._cap is not None:
            self._cap.release()
            self._cap = None
