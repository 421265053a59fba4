"""modeld: road camera frames (VisionIPC) -> the driving model -> modelV2, at the camera's rate (20 Hz).

Each frame is warped into the model frame with the newest liveCalibration and the camera roadCameraState describes
(selfdrive/modeld/warp.py: intrinsics and lens distortion in one remap) and run together with the previous frame's
warp. modeld always works on the newest frame: when it falls behind,
the frames queued meanwhile are skipped (counted in framesDropped and frameDropPerc), never queued up.
A model file that does not match the contract is refused at start (exit status 1, a clear message).

    python -m selfdrive.modeld.modeld [--model models/driving.onnx] [--threads 2]
"""

import argparse
import collections
import math
import sys
import time

import numpy as np

from cereal import messaging
from cereal.visionipc import FrameOverwritten, VisionIpcClient, VisionStreamType
from common.swaglog import cloudlog, cloudlog_bind
from common.transformations.camera import CameraModel
from common.transformations.camera_file import default_camera, frame_camera
from selfdrive.modeld.constants import INPUT_SHAPE
from selfdrive.modeld.fill_msg import all_finite, fill_model_v2
from selfdrive.modeld.runner import DEFAULT_MODEL, ModelError, ModelRunner
from selfdrive.modeld.warp import warp_maps, warp_y

PUBLISHES = ("modelV2",)
DROP_WINDOW_S = 5.0
THREADS = 2           # onnxruntime intra-op threads: the design's budget is one model frame on 2 cores


class DropCounter:
    """Frames seen vs. skipped over the last DROP_WINDOW_S seconds, and skipped in total."""

    def __init__(self):
        self.total = 0
        self._win: collections.deque[tuple[float, int, int]] = collections.deque()

    def add(self, now: float, used: int, dropped: int) -> float:
        """Records one model run; returns the percentage of frames dropped in the window."""
        self.total += dropped
        self._win.append((now, used, dropped))
        while self._win and now - self._win[0][0] > DROP_WINDOW_S:
            self._win.popleft()
        seen = sum(u + d for _, u, d in self._win)
        return 100.0 * sum(d for _, _, d in self._win) / max(seen, 1)


class FrameWarper:
    """Keeps the warp maps for the current calibration and camera, and the previous model frame."""

    def __init__(self):
        self.rpy = (0.0, 0.0, 0.0)
        self.camera: CameraModel | None = None  # roadCameraState's; None: not heard yet
        self._key = None
        self._maps = None
        self.frames = np.zeros(INPUT_SHAPE, np.uint8)
        self.primed = False

    def set_calibration(self, rpy) -> None:
        vals = [float(v) for v in list(rpy)[:3]]
        if len(vals) == 3 and all(math.isfinite(v) for v in vals):
            self.rpy = tuple(vals)

    def set_camera(self, camera: CameraModel) -> None:
        self.camera = camera

    def push(self, y_plane: np.ndarray) -> np.ndarray:
        """Warps one luma plane; returns the (previous, current) pair (the first frame is paired with itself).
        Frames of another size than the camera said (none said yet) are taken as frame_camera's default."""
        h, w = y_plane.shape
        cam = self.camera
        if cam is None or (cam.width, cam.height) != (w, h):
            cam = default_camera(w, h)
        key = (self.rpy, cam)
        if key != self._key:
            self._key, self._maps = key, warp_maps(self.rpy, cam)
        self.frames[0, 0] = self.frames[0, 1]
        warp_y(y_plane, self._maps, self.frames[0, 1])
        if not self.primed:
            self.frames[0, 0] = self.frames[0, 1]
            self.primed = True
        return self.frames


def newest_frame(client: VisionIpcClient, timeout_ms: int, last_id: int | None = None):
    """The newest intact frame and how many frames were lost on the way to it: the queued ones skipped here
    (a resend of a frame already answered is no loss) and those the client never got before each of them."""
    frame = client.recv(timeout_ms)
    lost = 0
    while frame is not None:
        nxt = client.recv(0)
        if nxt is None:
            break
        lost += frame.dropped_before + (last_id is None or frame.frame_id > last_id)
        frame = nxt
    return frame, lost


def run(runner: ModelRunner) -> None:
    client = VisionIpcClient(VisionStreamType.ROAD, conflate=False)
    pm = messaging.PubMaster(list(PUBLISHES))
    sm = messaging.SubMaster(["liveCalibration", "roadCameraState"])
    warper, drops = FrameWarper(), DropCounter()
    last_id = None
    pending = 0   # frames lost since the last model run, not yet reported
    while not client.connect(1.0):
        cloudlog.info("modeld: waiting for the road camera")
    cloudlog.info("modeld: road camera connected", extra={"width": client.width, "height": client.height})
    while True:
        frame, lost = newest_frame(client, 100, last_id)
        if frame is None:
            continue
        pending += lost + frame.dropped_before
        sm.update(0)
        if sm.updated["liveCalibration"]:
            warper.set_calibration(sm["liveCalibration"].rpyCalib)
        if sm.updated["roadCameraState"]:
            warper.set_camera(frame_camera(sm["roadCameraState"]))
        if frame.frame_id == last_id:
            continue  # a lockstep resend of the frame we already answered
        t0 = time.monotonic()
        try:
            with frame:
                pair = warper.push(frame.y)
        except FrameOverwritten as e:  # the camera lapped us while we read: take the next one
            cloudlog.warning("modeld: frame overwritten while warping", extra={"frame": frame.frame_id, "err": str(e)})
            pending += 1
            continue
        out = runner.run(pair)
        exec_time = time.monotonic() - t0
        last_id = frame.frame_id
        perc = drops.add(t0, 1, pending)
        pending = 0
        msg = messaging.new_message("modelV2", valid=bool(frame.valid) and all_finite(out))
        fill_model_v2(msg.modelV2, out, frame.frame_id, frame.timestamp_eof, exec_time, drops.total, perc)
        pm.send("modelV2", msg)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--threads", type=int, default=THREADS, help="onnxruntime intra-op threads")
    a = p.parse_args(argv)
    cloudlog_bind(name="modeld")
    try:
        runner = ModelRunner(a.model, a.threads)
    except ModelError as e:
        cloudlog.error("modeld: refusing the model", extra={"err": str(e)})
        print(f"modeld: {e}", file=sys.stderr)
        sys.exit(1)
    cloudlog.info("modeld: model loaded", extra={"path": a.model, "threads": a.threads})
    run(runner)


if __name__ == "__main__":
    main()
