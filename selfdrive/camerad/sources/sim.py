"""Frames pushed by the simulator bridge.

Wire: a ZMQ PUSH (bridge, `SimFramePusher`) -> PULL (camerad, bound) pair on `ipc://<run_dir>/camerad_sim`.
Each frame is one two-part message:
    part 1: SIM_HEADER, 68 bytes little-endian: magic b"RPSF", version u16 (2), width u16, height u16,
            pad u16, frame id u32, start of exposure ns u64, end of exposure ns u64 (the sim's clock), then the
            camera that drew it: fx, fy, cx, cy, k1, k2, p1, p2, k3 as float32 (the simulator's camera is exact)
    part 2: the NV12 pixels, exactly width * height * 3 / 2 bytes, at camerad's configured size
camerad serves each pushed frame at once with the bridge's frame id and timestamps (the simulator owns the
clock, real time or lockstep). Both ends keep a queue of 2 frames: a bridge that gets ahead of camerad sees
push() fail (False) instead of filling memory with stale frames. A frame that is malformed or of the wrong
size is dropped, counted in `dropped` and logged; the frames after it are served.
"""

import struct

import numpy as np
import zmq

from cereal.messaging.endpoints import ipc_endpoint
from common.swaglog import cloudlog, log_due
from common.transformations.camera import CameraModel
from common.transformations.camera_file import FORMAT, CameraFileError, camera_from_dict
from selfdrive.camerad.sources import Frame, SourceError

ENDPOINT = "camerad_sim"
SIM_HEADER = struct.Struct("<4sHHHHIQQ9f")
MAGIC, VERSION = b"RPSF", 2
QUEUE = 2


class SimFramePusher:
    """The bridge's end: `push(nv12, frame_id, sof_ns, eof_ns)`. Connects lazily, so either side may start first."""

    def __init__(self, width: int, height: int, camera: CameraModel | None = None):
        self.width, self.height = width, height
        cam = camera or CameraModel(width, height)
        if (cam.width, cam.height) != (width, height):
            raise ValueError(f"a {cam.width}x{cam.height} camera cannot draw {width}x{height} frames")
        self.camera_fields = (cam.fx, cam.fy, cam.cx, cam.cy, *cam.distortion)
        self.sock = zmq.Context.instance().socket(zmq.PUSH)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, QUEUE)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing while camerad is not there: no stale frames
        self.sock.connect(ipc_endpoint(ENDPOINT))

    def push(self, nv12: np.ndarray, frame_id: int, sof_ns: int, eof_ns: int, timeout_ms: int = 100) -> bool:
        """Sends one frame; False when camerad did not take it within `timeout_ms` (absent or behind)."""
        header = SIM_HEADER.pack(MAGIC, VERSION, self.width, self.height, 0, frame_id, sof_ns, eof_ns,
                                 *self.camera_fields)
        if not self.sock.poll(timeout_ms, zmq.POLLOUT):
            return False
        try:
            self.sock.send_multipart([header, np.ascontiguousarray(nv12)], zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def close(self) -> None:
        self.sock.close(0)


class SimSource:
    name = "sim"

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.ended = False
        self.dropped = 0
        self.clock_start_ns = 0  # unused: frames carry their own capture times
        self.native_size = None  # the bridge's frames are camerad's size; their camera comes with each
        self.sock: zmq.Socket | None = None
        self._camera: CameraModel | None = None

    def open(self) -> None:
        self.sock = zmq.Context.instance().socket(zmq.PULL)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, QUEUE)
        try:
            self.sock.bind(ipc_endpoint(ENDPOINT, create=True))
        except zmq.ZMQError as e:
            raise SourceError(f"sim: cannot listen on {ipc_endpoint(ENDPOINT)}: {e}") from None

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if log_due(self.dropped):
            cloudlog.warning("sim frame dropped", extra={"why": why, "dropped_total": self.dropped})

    def _parse(self, parts: list[bytes]) -> Frame | None:
        if len(parts) != 2 or len(parts[0]) != SIM_HEADER.size:
            return self._drop(f"{len(parts)} parts, header {len(parts[0])} bytes")
        magic, version, w, h, _, fid, sof, eof, *k = SIM_HEADER.unpack(parts[0])
        if magic != MAGIC or version != VERSION:
            return self._drop(f"magic {magic!r} version {version}")
        if (w, h) != (self.width, self.height) or len(parts[1]) != w * h * 3 // 2:
            return self._drop(f"{w}x{h} frame of {len(parts[1])} bytes; camerad serves {self.width}x{self.height}")
        try:
            cam = camera_from_dict({"format": FORMAT, "width": w, "height": h, "fx": k[0], "fy": k[1], "cx": k[2],
                                    "cy": k[3], "distortion": k[4:]})
        except CameraFileError as e:
            return self._drop(f"camera: {e}")
        if cam != self._camera:
            self._camera = cam  # one object while it does not change: camerad compares it per frame
        img = np.frombuffer(parts[1], dtype=np.uint8).reshape(h * 3 // 2, w)
        return Frame(img, sof, eof, fid, self._camera)

    def read(self, slot: int, timeout_s: float) -> Frame | None:
        """The next pushed frame (in order), waiting at most `timeout_s`; bad ones are skipped."""
        deadline_ms = max(0, int(timeout_s * 1000))
        while self.sock.poll(deadline_ms):
            frame = self._parse(self.sock.recv_multipart(zmq.NOBLOCK))
            if frame is not None:
                return frame
            deadline_ms = 0   # after a bad frame only look at what is queued already
        return None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None
