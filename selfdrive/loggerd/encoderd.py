"""encoderd: records the road camera (VisionIPC) into the current route, one H.264 video per segment.

    <route>/<segment>/road.mp4      (format and crash behaviour: video_writer.py)

It follows loggerd: the route named in `<run_dir>/current_route`, and a new file whenever loggerd opens
a new segment folder. For every frame written it publishes `roadEncodeIdx` (frameId -> segmentNum,
segmentId = position in that segment's video, the frame's timestamps, path relative to the route), which
loggerd records with the route, so replay finds any frame. Without a route (loggerd not running) frames
are not recorded (logged once).

Two threads, so encoding never holds up reception: the main thread takes each frame from VisionIPC,
copies it out of shared memory before the server reuses the buffer, and queues it; the encoder thread
encodes, writes and publishes the index. When the encoder falls QUEUE_FRAMES (1 s) behind, new frames are
dropped, counted and logged instead of queued; frames VisionIPC reports missed are counted the same way.
A frame id not above the last one recorded (camerad's lockstep resends) is skipped, not recorded twice.
"""

import os
import queue
import signal
import threading
import time
from typing import NamedTuple

import av
import numpy as np

from cereal import messaging
from cereal.visionipc import VisionIpcClient, VisionStreamType
from common.paths import routes_dir, run_dir
from common.swaglog import cloudlog, cloudlog_bind, log_due
from selfdrive.loggerd.video_writer import VIDEO_NAME, SegmentTracker, VideoWriter

PUBLISHES = ("roadEncodeIdx",)
QUEUE_FRAMES = 20
RECV_TIMEOUT_MS = 100
# The encoder waits this long after binding roadEncodeIdx before its first frame (the queue holds them
# meanwhile): subscribers already waiting for it (loggerd) reconnect within ZMQ's 100 ms reconnect interval,
# so the index of a route's first frames is not lost to the slow-joiner effect.
PUB_SETTLE_S = 0.5


class Job(NamedTuple):
    nv12: np.ndarray
    frame_id: int
    sof: int
    eof: int
    route: str        # route folder
    segment: int


class Encoder(threading.Thread):
    """Encodes queued frames into the segment each job names; publishes roadEncodeIdx per frame written."""

    def __init__(self):
        super().__init__(name="encoder", daemon=True)
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=QUEUE_FRAMES)
        self.writer: VideoWriter | None = None
        self.target: tuple[str, int] | None = None
        self.written = 0
        self.write_errors = 0

    def run(self) -> None:
        pm = messaging.PubMaster(list(PUBLISHES))  # this thread's own socket: ZMQ sockets are not thread-safe
        time.sleep(PUB_SETTLE_S)
        while (job := self.jobs.get()) is not None:
            self._encode(job, pm)
            self.jobs.task_done()
        self._close()
        pm.close()

    def _encode(self, job: Job, pm: messaging.PubMaster) -> None:
        if (job.route, job.segment) != self.target:
            self._open(job)
        if self.writer is None:
            return   # this segment's file failed: skip to the next segment rather than overwrite it
        try:
            pos = self.writer.write(job.nv12)
        except (OSError, ValueError, av.error.FFmpegError) as e:  # disk full, codec errors
            return self._fail(e)
        self.written += 1
        msg = messaging.new_message("roadEncodeIdx")
        idx = msg.roadEncodeIdx
        idx.frameId, idx.segmentNum, idx.segmentId = job.frame_id & 0xFFFFFFFF, job.segment, pos
        idx.timestampSof, idx.timestampEof = job.sof, job.eof
        idx.path = f"{job.segment}/{VIDEO_NAME}"
        pm.send("roadEncodeIdx", msg)

    def _open(self, job: Job) -> None:
        self._close()
        self.target = (job.route, job.segment)
        path = os.path.join(job.route, str(job.segment), VIDEO_NAME)
        try:
            h, w = job.nv12.shape[0] * 2 // 3, job.nv12.shape[1]
            self.writer = VideoWriter(path, w, h)
        except (OSError, ValueError, av.error.FFmpegError) as e:
            self._fail(e)
            return
        cloudlog.info("video opened", extra={"path": path, "frame_id": job.frame_id})

    def _fail(self, e: Exception) -> None:
        self.write_errors += 1
        if log_due(self.write_errors):
            cloudlog.error("video write failed: frames of this segment are lost",
                           extra={"target": self.target, "error": str(e), "errors_total": self.write_errors})
        self._close()

    def _close(self) -> None:
        if self.writer is None:
            return
        try:
            self.writer.close()
        except (OSError, ValueError, av.error.FFmpegError) as e:
            cloudlog.error("video close failed", extra={"path": self.writer.path, "error": str(e)})
        cloudlog.info("video closed", extra={"path": self.writer.path, "frames": self.writer.frames})
        self.writer = None


class Encoderd:
    def __init__(self):
        self.client = VisionIpcClient(VisionStreamType.ROAD)
        self.tracker = SegmentTracker(os.path.join(run_dir(), "current_route"), routes_dir())
        self.encoder = Encoder()
        self.last: tuple[int, int] | None = None   # (server generation, frame id) of the last frame queued
        self.received = 0
        self.dropped = 0          # frames lost: queue full, torn, or missed on VisionIPC
        self.duplicates = 0
        self.not_recorded = 0     # frames while no route was being recorded
        self.stop = False

    def drop(self, why: str, n: int = 1) -> None:
        self.dropped += n
        if log_due(self.dropped, n):
            cloudlog.warning("frames dropped", extra={"why": why, "dropped_total": self.dropped})

    def step(self) -> None:
        buf = self.client.recv(RECV_TIMEOUT_MS)
        if buf is None:
            return
        self.received += 1
        if buf.dropped_before:
            self.drop("missed on VisionIPC", buf.dropped_before)
        if self.last is not None and self.last[0] == buf.generation and buf.frame_id <= self.last[1]:
            self.duplicates += 1
            return
        target = self.tracker.poll()
        if target is None:
            self.not_recorded += 1
            return
        nv12 = np.array(buf.nv12)  # copy out: the server rewrites this buffer 4 frames from now
        if not buf.valid_after_read():
            return self.drop("overwritten while copied")
        try:
            self.encoder.jobs.put_nowait(Job(nv12, buf.frame_id, buf.timestamp_sof, buf.timestamp_eof, *target))
        except queue.Full:
            return self.drop("encoder behind")
        self.last = (buf.generation, buf.frame_id)

    def run(self) -> None:
        self.encoder.start()
        while not self.stop:
            self.step()
        self.encoder.jobs.put(None)   # the encoder finishes what is queued, then closes the file
        self.encoder.join()
        self.client.close()
        cloudlog.info("encoderd exiting", extra={"received": self.received, "written": self.encoder.written,
                                                 "dropped": self.dropped, "duplicates": self.duplicates,
                                                 "not_recorded": self.not_recorded})


def main() -> None:
    cloudlog_bind(name="encoderd")
    d = Encoderd()

    def on_signal(signum, frame):
        d.stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    d.run()


if __name__ == "__main__":
    main()
